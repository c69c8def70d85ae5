import numpy as np
import pytest

import jax
import jax.numpy as jnp
import optax

from pinnrun.alignment import (
    adam_precondition,
    alignment_metrics,
    alignment_score,
    cosine,
    flatten_batched,
    mean_pairwise_cosine,
    pairwise_cosines,
    precondition,
    stack_flat,
)


def _np_cos(a, b):
    a = np.asarray(a, np.float64).ravel()
    b = np.asarray(b, np.float64).ravel()
    return a @ b / (np.linalg.norm(a) * np.linalg.norm(b))


def test_k2_equals_cosine():
    rng = np.random.default_rng(0)
    for _ in range(5):
        a, b = rng.normal(size=(2, 17)).astype(np.float32)
        A = alignment_score(jnp.stack([a, b]))
        np.testing.assert_allclose(float(A), _np_cos(a, b), atol=1e-6)
        np.testing.assert_allclose(float(cosine(a, b)), _np_cos(a, b), atol=1e-6)


def test_identical_directions_any_scale():
    v = jnp.array([1.0, -2.0, 3.0, 0.5])
    G = jnp.stack([0.001 * v, v, 1e4 * v, 7.0 * v])
    np.testing.assert_allclose(float(alignment_score(G)), 1.0, atol=1e-6)


def test_opposite_vectors():
    v = jnp.array([1.0, -2.0, 3.0])
    np.testing.assert_allclose(float(alignment_score(jnp.stack([v, -3.0 * v]))), -1.0, atol=1e-6)


@pytest.mark.parametrize("k", [2, 3, 4, 5, 6])
def test_orthogonal_unit_vectors(k):
    G = jnp.eye(k, 8) * jnp.arange(1, k + 1)[:, None]  # orthogonal, different lengths
    np.testing.assert_allclose(float(alignment_score(G)), 2.0 / k - 1.0, atol=1e-6)
    np.testing.assert_allclose(float(mean_pairwise_cosine(G)), 0.0, atol=1e-7)


def test_positive_rescaling_invariance():
    rng = np.random.default_rng(1)
    G = rng.normal(size=(4, 30)).astype(np.float32)
    A0 = float(alignment_score(G))
    for _ in range(3):
        s = rng.uniform(1e-3, 1e3, size=(4, 1)).astype(np.float32)
        np.testing.assert_allclose(float(alignment_score(G * s)), A0, atol=1e-5)


def test_pytree_and_array_agree():
    rng = np.random.default_rng(2)
    trees = [
        {"w": rng.normal(size=(3, 2)).astype(np.float32), "b": rng.normal(size=(2,)).astype(np.float32)}
        for _ in range(3)
    ]
    flat = np.stack([np.concatenate([t["b"].ravel(), t["w"].ravel()]) for t in trees])
    # leaf order is jax's (sorted dict keys: b, w)
    np.testing.assert_allclose(np.asarray(stack_flat(trees)), flat)
    np.testing.assert_allclose(float(alignment_score(trees)), float(alignment_score(flat)), atol=1e-6)
    np.testing.assert_allclose(float(alignment_score(tuple(trees))), float(alignment_score(flat)), atol=1e-6)
    # jacrev layout (leading K axis) flattens to the same matrix
    batched = jax.tree_util.tree_map(lambda *xs: np.stack(xs), *trees)
    np.testing.assert_allclose(np.asarray(flatten_batched(batched)), flat)


@pytest.mark.parametrize("k", [3, 8])
def test_identity_with_mean_pairwise_cosine(k):
    rng = np.random.default_rng(10 + k)
    G = rng.normal(size=(k, 50)).astype(np.float32)
    G[1] = G[0] + 0.3 * G[1]  # some correlation
    C = np.array([[_np_cos(G[i], G[j]) for j in range(k)] for i in range(k)])
    mean_cos = C[np.triu_indices(k, 1)].mean()
    expected = 2.0 / k - 1.0 + 2.0 * (k - 1) / k * mean_cos
    np.testing.assert_allclose(float(alignment_score(G)), expected, atol=1e-5)
    np.testing.assert_allclose(float(mean_pairwise_cosine(G)), mean_cos, atol=1e-6)
    np.testing.assert_allclose(np.asarray(pairwise_cosines(G)), C, atol=1e-6)


def test_zero_vector_is_finite():
    v = jnp.array([1.0, 2.0, 3.0])
    G = jnp.stack([v, jnp.zeros(3)])
    A = alignment_score(G)
    assert np.isfinite(float(A))
    # zero gradient = zero unit vector: ||v/|v| / 2||^2 * 2 - 1 = -0.5
    np.testing.assert_allclose(float(A), -0.5, atol=1e-6)
    assert np.isfinite(float(alignment_score(jnp.zeros((3, 4)))))
    assert float(cosine(v, jnp.zeros(3))) == 0.0
    assert np.all(np.isfinite(np.asarray(pairwise_cosines(G))))
    # tiny and huge float32 magnitudes stay accurate (no under/overflow)
    for s in (1e-30, 1e30):
        np.testing.assert_allclose(float(alignment_score(jnp.stack([s * v, s * v]))), 1.0, atol=1e-6)


def test_k1_raises():
    with pytest.raises(ValueError):
        alignment_score(jnp.ones((1, 4)))
    with pytest.raises(ValueError):
        alignment_score([{"a": jnp.ones(3)}])


def test_jit():
    G = jnp.array([[1.0, 0.0], [1.0, 1.0]])
    np.testing.assert_allclose(float(jax.jit(alignment_score)(G)), np.sqrt(0.5), atol=1e-6)
    m = jax.jit(lambda g: alignment_metrics(["a", "b"], g))(G)
    np.testing.assert_allclose(float(m["cos/a__b"]), np.sqrt(0.5), atol=1e-6)


def test_alignment_metrics_jacrev_layout():
    # params p = {"x": [x0, x1], "y": y}; losses: L_pde = x0 + 2 y, L_bc = x1, L_ic = -x0 - 2 y
    def losses(p):
        x, y = p["x"], p["y"]
        return jnp.stack([x[0] + 2.0 * y, x[1], -x[0] - 2.0 * y])

    p = {"x": jnp.array([0.3, -0.1]), "y": jnp.array(0.7)}
    J = jax.jacrev(losses)(p)
    assert J["x"].shape == (3, 2) and J["y"].shape == (3,)
    # flat (leaf order x0, x1, y): g_pde = (1,0,2), g_bc = (0,1,0), g_ic = (-1,0,-2)
    m = alignment_metrics(["pde", "bc", "ic"], J)
    expected_keys = {
        "align/intra",
        "align/mean_cos",
        "grad_norm/pde",
        "grad_norm/bc",
        "grad_norm/ic",
        "cos/pde__bc",
        "cos/pde__ic",
        "cos/bc__ic",
    }
    assert set(m) == expected_keys
    np.testing.assert_allclose(float(m["grad_norm/pde"]), np.sqrt(5.0), rtol=1e-6)
    np.testing.assert_allclose(float(m["grad_norm/bc"]), 1.0, rtol=1e-6)
    np.testing.assert_allclose(float(m["grad_norm/ic"]), np.sqrt(5.0), rtol=1e-6)
    np.testing.assert_allclose(float(m["cos/pde__bc"]), 0.0, atol=1e-7)
    np.testing.assert_allclose(float(m["cos/pde__ic"]), -1.0, atol=1e-6)
    np.testing.assert_allclose(float(m["cos/bc__ic"]), 0.0, atol=1e-7)
    np.testing.assert_allclose(float(m["align/mean_cos"]), -1.0 / 3.0, atol=1e-6)
    # mean unit vector = (0, 1, 0)/3 -> A = 2/9 - 1
    np.testing.assert_allclose(float(m["align/intra"]), 2.0 / 9.0 - 1.0, atol=1e-6)

    # preconditioned: scale coordinates so the pde/ic pair is unchanged -> same score
    P = jax.tree_util.tree_map(lambda g: 3.0 * g, J)
    m2 = alignment_metrics(["pde", "bc", "ic"], J, preconditioned=P)
    assert set(m2) == expected_keys | {"align/intra_precond"}
    np.testing.assert_allclose(float(m2["align/intra_precond"]), 2.0 / 9.0 - 1.0, atol=1e-6)

    with pytest.raises(ValueError):
        alignment_metrics(["pde", "bc"], J)
    # a single term: only the norm
    m1 = alignment_metrics(["pde"], jax.tree_util.tree_map(lambda g: g[:1], J))
    assert set(m1) == {"grad_norm/pde"}


def _adam_setup(b2=0.999, eps=1e-8, steps=4):
    rng = np.random.default_rng(3)
    params = {"w": jnp.asarray(rng.normal(size=(3, 2)), jnp.float32), "b": jnp.zeros(2)}
    opt = optax.chain(optax.clip_by_global_norm(1.0), optax.adam(1e-2, b2=b2, eps=eps))
    state = opt.init(params)

    def loss(p):
        x = jnp.arange(6.0).reshape(2, 3) / 6.0
        return jnp.sum(jnp.tanh(x @ p["w"] + p["b"]) ** 2)

    @jax.jit
    def step(params, state, nu):
        g = jax.grad(loss)(params)
        # track nu by hand on the clipped gradients
        gnorm = jnp.sqrt(sum(jnp.sum(x * x) for x in jax.tree_util.tree_leaves(g)))
        gc = jax.tree_util.tree_map(lambda x: x * jnp.minimum(1.0, 1.0 / gnorm), g)
        nu = jax.tree_util.tree_map(lambda n, x: b2 * n + (1 - b2) * x * x, nu, gc)
        upd, state = opt.update(g, state, params)
        return optax.apply_updates(params, upd), state, nu

    nu = jax.tree_util.tree_map(jnp.zeros_like, params)
    for _ in range(steps):
        params, state, nu = step(params, state, nu)
    return params, state, nu, steps


def test_adam_precondition_matches_hand_computation():
    b2, eps = 0.99, 1e-8
    params, state, nu, steps = _adam_setup(b2=b2, eps=eps)
    rng = np.random.default_rng(4)
    grads = jax.tree_util.tree_map(lambda x: jnp.asarray(rng.normal(size=x.shape), jnp.float32), params)

    def expected(g):
        return jax.tree_util.tree_map(
            lambda gl, nl: gl / (jnp.sqrt(nl / (1 - b2**steps)) + eps), g, nu
        )

    out = adam_precondition(state, grads, eps=eps, b2=b2)
    for k in ("w", "b"):
        np.testing.assert_allclose(np.asarray(out[k]), np.asarray(expected(grads)[k]), rtol=2e-4)

    # per-term layout (leading K axis): vmapped over K, auto-detected and explicit
    K = 3
    batched = jax.tree_util.tree_map(
        lambda x: jnp.asarray(rng.normal(size=(K,) + x.shape), jnp.float32), params
    )
    exp_b = jax.vmap(expected)(batched)
    for out_b in (
        adam_precondition(state, batched, eps=eps, b2=b2),
        adam_precondition(state, batched, eps=eps, b2=b2, batched=True),
        precondition(state, batched, eps=eps, b2=b2),
        jax.jit(lambda s, g: adam_precondition(s, g, eps=eps, b2=b2))(state, batched),
    ):
        for k in ("w", "b"):
            assert out_b[k].shape == (K,) + params[k].shape
            np.testing.assert_allclose(np.asarray(out_b[k]), np.asarray(exp_b[k]), rtol=2e-4)


def test_adam_precondition_count_zero_and_missing():
    params = {"a": jnp.ones(3)}
    opt = optax.chain(optax.clip_by_global_norm(1.0), optax.adam(1e-3))
    state = opt.init(params)
    g = {"a": jnp.array([1.0, -2.0, 3.0])}
    out = adam_precondition(state, g)
    np.testing.assert_allclose(np.asarray(out["a"]), np.asarray(g["a"]))
    assert adam_precondition(optax.sgd(0.1).init(params), g) is None
    assert precondition(optax.sgd(0.1).init(params), g) is None


def test_precondition_prefers_soap_and_vmaps(monkeypatch):
    """precondition() dispatches to pinnrun.optim.soap (faked here) and vmaps over K."""
    import sys
    import types
    from typing import NamedTuple

    class FakeSoapState(NamedTuple):
        count: jax.Array
        mu: dict
        Q: jax.Array

    def find_soap_state(opt_state):
        for node in jax.tree_util.tree_leaves(opt_state, is_leaf=lambda x: isinstance(x, FakeSoapState)):
            if isinstance(node, FakeSoapState):
                return node
        return None

    def precondition_without_momentum(state, grads):
        assert grads["w"].ndim == 2  # unbatched: one gradient at a time
        return {"w": state.Q @ grads["w"]}

    fake = types.ModuleType("pinnrun.optim.soap")
    fake.find_soap_state = find_soap_state
    fake.precondition_without_momentum = precondition_without_momentum
    monkeypatch.setitem(sys.modules, "pinnrun.optim.soap", fake)

    Q = jnp.array([[0.0, 1.0, 0.0], [2.0, 0.0, 0.0], [0.0, 0.0, 3.0]])
    state = (optax.EmptyState(), (FakeSoapState(jnp.array(1), {"w": jnp.zeros((3, 2))}, Q),))
    g = jnp.arange(24.0).reshape(4, 3, 2)  # K = 4 per-term gradients of a [3, 2] leaf
    out = precondition(state, {"w": g})
    np.testing.assert_allclose(np.asarray(out["w"]), np.einsum("ij,kjl->kil", Q, g))
    single = precondition(state, {"w": g[0]})
    np.testing.assert_allclose(np.asarray(single["w"]), np.asarray(Q @ g[0]))
    # no SOAP state -> falls back to Adam, then None
    assert precondition(optax.sgd(0.1).init({"w": g[0]}), {"w": g}) is None


def test_per_term_gradients_equal_jacrev_of_the_loss_vector():
    import jax

    from pinnrun.archs import build_model
    from pinnrun.losses import PINNLoss
    from pinnrun.pdes.kovasznay import Kovasznay

    pde = Kovasznay(eval_resolution=(5, 5))
    model = build_model({"name": "mlp", "width": 8, "depth": 2, "activation": "tanh"}, input_dim=2, output_dim=3)
    params = model.init(jax.random.PRNGKey(0))
    loss = PINNLoss(pde, model.apply, 32)
    points = loss.sample(jax.random.PRNGKey(1), {})
    fast = jax.jit(loss.per_term_gradients)(params, points)
    reference = jax.jit(jax.jacrev(loss.loss_vector))(params, points)
    for a, b in zip(jax.tree.leaves(fast), jax.tree.leaves(reference)):
        np.testing.assert_allclose(a, b, rtol=2e-4, atol=1e-7)

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


def test_group_score_by_hand():
    # flat gradients (x0, x1, y): g_pde = (1, 0, 2), g_bc = (0, 1, 0), g_ic = (-1, 0, -2)
    def losses(p):
        x, y = p["x"], p["y"]
        return jnp.stack([x[0] + 2.0 * y, x[1], -x[0] - 2.0 * y])

    J = jax.jacrev(losses)({"x": jnp.array([0.3, -0.1]), "y": jnp.array(0.7)})
    names = ["pde", "bc", "ic"]
    # groups: pde | bc + 3 ic (weights 1, 1, 3): (1, 0, 2) against (-3, 1, -6)
    m = alignment_metrics(names, J, preconditioned=J, groups=[["pde"], ["bc", "ic"]], weights=jnp.array([1.0, 1.0, 3.0]))
    expected = _np_cos([1.0, 0.0, 2.0], [-3.0, 1.0, -6.0])
    np.testing.assert_allclose(float(m["align/groups"]), expected, atol=1e-6)
    np.testing.assert_allclose(float(m["align/groups_precond"]), expected, atol=1e-6)
    # a group with no terms is left out: one group left, no group score
    assert "align/groups" not in alignment_metrics(names, J, groups=[["pde", "bc", "ic"], []])


def test_term_groups_are_residual_against_the_rest():
    from pinnrun.alignment import term_groups
    from pinnrun.pdes.burgers import Burgers
    from pinnrun.pdes.kovasznay import Kovasznay

    assert term_groups(Kovasznay(eval_resolution=(5, 5)).point_sets()) == (("ru", "rv", "rc"), ("bc",))
    residual, rest = term_groups(Burgers().point_sets())
    assert residual == ("res",) and set(rest) == {"ic", "bc"}


# ----- real optimizer states: a few steps of the trainer on a small Kovasznay problem -----
SMALL = ["arch.width=8", "arch.depth=2", "train.batch_size=16", "checkpoint.every=0", "train.figures=false",
         "train.progress=none", "optim.warmup_steps=1"]
STEPS = 6


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """optimizer name -> (trainer, stage, state before, state after STEPS steps, chunk metrics).

    Adam runs with alignment on; SOAP (bases refreshed every 2 steps) with train.alignment_every=0."""
    from conftest import COMPILE_CACHE

    from pinnrun.build import build, jax_settings
    from pinnrun.cli import compose_config
    from pinnrun.config import validate
    from pinnrun.trainer import Trainer

    out = {}
    for name, extra in (("adam", ["train.alignment_every=5"]), ("soap", ["train.alignment_every=0", "optim.precondition_frequency=2"])):
        cfg = validate(compose_config([f"optim={name}", *SMALL, *extra, f"train.compile_cache_dir={COMPILE_CACHE}"]))
        with jax_settings(cfg):
            trainer = Trainer(cfg, build(cfg), tmp_path_factory.mktemp(name))
            stage = trainer.stages[0]
            state = trainer.enter_stage(stage, trainer.init_state(), None, quiet=True)
            before = jax.tree.map(jnp.copy, state)
            after, metrics = trainer._chunk_fn(stage, STEPS, state)(state)
            out[name] = (trainer, stage, before, after, jax.device_get(metrics), cfg)
    return out


def _np_score(rows):
    rows = np.asarray(rows, np.float64)
    units = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    return 2.0 * np.sum(units.mean(axis=0) ** 2) - 1.0


def _state_of(opt_state, cls):
    (node,) = [n for n in jax.tree.leaves(opt_state, is_leaf=lambda x: isinstance(x, cls)) if isinstance(n, cls)]
    return node


def _per_term(trainer, stage, state):
    """The per-term gradients the trainer's alignment step sees (its batch), as float64 leaves."""
    loss = trainer.loss(stage)
    fn = jax.jit(lambda s: loss.per_term_gradients(s.params, loss.sample(jax.random.fold_in(s.key, 1), trainer.fixed_points(stage), s.context)))
    return [np.asarray(l, np.float64) for l in jax.tree.leaves(fn(state))]


def _hand_metrics(trainer, state, leaves, precondition_leaf):
    """align/intra_precond and align/groups_precond from the state's arrays, in float64 numpy:
    ``precondition_leaf(leaf index, [K, *shape] gradients) -> preconditioned``."""
    P = np.concatenate([precondition_leaf(i, g).reshape(g.shape[0], -1) for i, g in enumerate(leaves)], axis=1)
    names = list(trainer.term_names)
    w = np.array([float(state.weights[k]) for k in names])
    residual = [names.index(k) for k in ("ru", "rv", "rc")]
    groups = np.stack([sum(w[k] * P[k] for k in residual), w[names.index("bc")] * P[names.index("bc")]])
    return _np_score(P), _np_score(groups)


def test_intra_precond_on_a_real_adam_state(trained):
    trainer, stage, _, state, _, cfg = trained["adam"]
    adam = _state_of(state.opt_state, optax.ScaleByAdamState)
    count = int(adam.count)
    assert count == STEPS
    b2, eps = cfg["optim"]["b2"], cfg["optim"]["eps"]
    nu = [np.asarray(l, np.float64) for l in jax.tree.leaves(adam.nu)]

    def leaf(i, g):
        return g / (np.sqrt(nu[i] / (1.0 - b2**count)) + eps)

    intra, groups = _hand_metrics(trainer, state, _per_term(trainer, stage, state), leaf)
    m = trainer.alignment_metrics(stage, state)
    np.testing.assert_allclose(m["align/intra_precond"], intra, atol=1e-5)
    np.testing.assert_allclose(m["align/groups_precond"], groups, atol=1e-5)


def test_intra_precond_on_a_real_soap_state_with_refreshed_bases(trained):
    from pinnrun.optim.soap import ScaleBySoapState

    trainer, stage, _, state, _, cfg = trained["soap"]
    soap = _state_of(state.opt_state, ScaleBySoapState)
    count = int(soap.count)
    assert count == STEPS - 1 >= 4  # the first call builds the bases; refreshed at updates 2 and 4
    bases = [[None if q is None else np.asarray(q, np.float64) for q in qs] for qs in soap.bases]
    assert sum(q is not None for qs in bases for q in qs) == 6  # both sides of the three kernels
    for qs in bases:
        for q in qs:
            if q is not None:
                assert np.abs(q - np.eye(len(q))).max() > 0.1  # not the identity
                np.testing.assert_allclose(q.T @ q, np.eye(len(q)), atol=1e-5)
    b2, eps = cfg["optim"]["b2"], cfg["optim"]["eps"]
    nu = [np.asarray(l, np.float64) for l in jax.tree.leaves(soap.nu)]

    def leaf(i, g):  # g: [K, *shape]; Q_L (Q_L^T g Q_R / (sqrt(v_hat) + eps)) Q_R^T, per term
        q_l, q_r = (bases[i] + [None])[:2] if g.ndim == 3 else (None, None)
        assert g.ndim in (2, 3) and (g.ndim == 3 or bases[i] == [None])
        rotated = g
        if q_l is not None:
            rotated = np.einsum("ij,kil->kjl", q_l, rotated)
        if q_r is not None:
            rotated = np.einsum("kil,lj->kij", rotated, q_r)
        p = rotated / (np.sqrt(nu[i] / (1.0 - b2**count)) + eps)
        if q_l is not None:
            p = np.einsum("ij,kjl->kil", q_l, p)
        if q_r is not None:
            p = np.einsum("kil,jl->kij", p, q_r)
        return p

    leaves = _per_term(trainer, stage, state)
    intra, groups = _hand_metrics(trainer, state, leaves, leaf)
    m = trainer.alignment_metrics(stage, state)
    np.testing.assert_allclose(m["align/intra_precond"], intra, atol=1e-5)
    np.testing.assert_allclose(m["align/groups_precond"], groups, atol=1e-5)
    # the rotation matters here: without it the score is another one
    plain, _ = _hand_metrics(trainer, state, leaves, lambda i, g: g / (np.sqrt(nu[i] / (1.0 - b2**count)) + eps))
    assert abs(plain - intra) > 1e-3
    # one gradient at a time (no K axis) is preconditioned as the rows of the batched layout
    treedef = jax.tree.structure(state.params)
    single = precondition(state.opt_state, jax.tree.unflatten(treedef, [jnp.asarray(l[0], jnp.float32) for l in leaves]))
    for got, l, i in zip(jax.tree.leaves(single), leaves, range(len(leaves))):
        expected = leaf(i, l[:1])[0]  # float32 against float64: the amplified coordinates carry ~1e-4 of the largest
        np.testing.assert_allclose(np.asarray(got), expected, atol=1e-3 * np.abs(expected).max())
    with pytest.raises(ValueError):
        precondition(state.opt_state, jax.tree.unflatten(treedef, [jnp.ones((2, 2) + l.shape[1:]) for l in leaves]))


def _count_primitive(jaxpr, name: str) -> int:
    """Occurrences of a primitive in a jaxpr and every jaxpr nested in it (scan bodies, jit, cond)."""
    count = 0
    for eqn in jaxpr.eqns:
        count += eqn.primitive.name == name
        for value in eqn.params.values():
            for sub in value if isinstance(value, (tuple, list)) else (value,):
                inner = getattr(sub, "jaxpr", sub)
                if hasattr(inner, "eqns"):
                    count += _count_primitive(inner, name)
    return count


def test_no_inter_step_cosine_with_alignment_off(trained):
    from pinnrun.trainer import make_chunk

    trainer, stage, before, _, metrics, _ = trained["soap"]  # a run with train.alignment_every=0
    assert not [k for k in metrics if k.startswith("align/")]
    stepper = trainer.stepper(stage)
    in_step = _count_primitive(jax.make_jaxpr(stepper.step)(before).jaxpr, "concatenate")
    off = _count_primitive(jax.make_jaxpr(make_chunk(stepper, 3, alignment_on=False))(before).jaxpr, "concatenate")
    on = _count_primitive(jax.make_jaxpr(make_chunk(stepper, 3, alignment_on=True))(before).jaxpr, "concatenate")
    assert off == in_step  # nothing concatenated beyond the step's own work
    assert on > in_step  # the check sees the cosines' concatenation when they are on
    assert not [k for k in jax.eval_shape(make_chunk(stepper, 3, alignment_on=False), before)[1] if k.startswith("align/")]


def test_inter_step_cosines_of_updates_and_raw_gradients(trained):
    trainer, stage, before, after, metrics, _ = trained["adam"]
    stepper = trainer.stepper(stage)
    step = jax.jit(stepper.step)
    state, updates, grads = before, [], []
    for _ in range(STEPS):
        state, (_, _, _, update, grad) = step(state)
        flat = lambda tree: np.concatenate([np.ravel(np.asarray(l, np.float64)) for l in jax.tree.leaves(tree)])  # noqa: E731
        updates.append(flat(update))
        grads.append(flat(grad))
    for mine, chunk in zip(jax.tree.leaves(state.params), jax.tree.leaves(after.params)):
        np.testing.assert_allclose(mine, chunk, rtol=1e-5, atol=1e-7)
    expected = {name: np.mean([_np_cos(v[t], v[t - 1]) for t in range(1, STEPS)]) for name, v in
                (("align/inter", updates), ("align/inter_grad", grads))}
    for name, value in expected.items():
        np.testing.assert_allclose(metrics[name], value, atol=1e-5)
    assert abs(expected["align/inter"] - expected["align/inter_grad"]) > 1e-3  # two different figures


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

import numpy as np
import pytest

import jax
import jax.numpy as jnp

from pinnrun.losses import CausalConfig, causal_term_losses
from pinnrun.weighting import (
    causal_weights,
    causal_weights_system,
    chunk_means,
    grad_norm_weights,
    ntk_trace,
    ntk_weights,
    smooth,
)


def test_grad_norm_weights_hand_case():
    # norms 1, 2, 3 -> mean 2; w_k = 2 / (n_k + 2e-5)
    norms = {"pde": 1.0, "bc": 2.0, "ic": 3.0}
    w = grad_norm_weights(norms)
    assert list(w) == ["pde", "bc", "ic"]
    np.testing.assert_allclose(float(w["pde"]), 2.0 / 1.00002, rtol=1e-6)
    np.testing.assert_allclose(float(w["bc"]), 2.0 / 2.00002, rtol=1e-6)
    np.testing.assert_allclose(float(w["ic"]), 2.0 / 3.00002, rtol=1e-6)
    wa = grad_norm_weights(jnp.array([1.0, 2.0, 3.0]))
    np.testing.assert_allclose(np.asarray(wa), [2.0 / 1.00002, 2.0 / 2.00002, 2.0 / 3.00002], rtol=1e-6)
    # a zero norm gets the capped weight 1e5; all zeros -> ones
    np.testing.assert_allclose(np.asarray(grad_norm_weights(jnp.array([0.0, 2.0]))), [1e5, 1.0 / 2.00001], rtol=1e-5)
    np.testing.assert_allclose(np.asarray(grad_norm_weights(jnp.zeros(3))), np.ones(3))
    # NTK balancing: same formula
    np.testing.assert_allclose(np.asarray(ntk_weights(jnp.array([4.0, 12.0]))), [8.0 / 4.00008, 8.0 / 12.00008], rtol=1e-6)


def _mlp_init(key):
    k1, k2 = jax.random.split(key)
    return {
        "W1": jax.random.normal(k1, (2, 8)) / np.sqrt(2.0),
        "b1": jnp.linspace(-0.5, 0.5, 8),
        "W2": jax.random.normal(k2, (8, 1)) / np.sqrt(8.0),
        "b2": jnp.array([0.1]),
    }


def _mlp(p, z):
    h = jnp.tanh(z @ p["W1"] + p["b1"])
    return h @ p["W2"] + p["b2"]  # [1] for one point, [n, 1] for a batch


def _residual(p, z):  # scalar-ish residual [1] of one point z in R^2
    return _mlp(p, z) - jnp.sin(z[0]) * z[1]


def _residual_vec(p, z):  # two-component residual [2]
    u = _mlp(p, z)[0]
    return jnp.stack([u - z[0], u * u])


def _brute_force(resid, p, pts):
    def all_res(p):
        return jax.vmap(lambda z: jnp.ravel(resid(p, z)))(pts).ravel()  # [n * m]

    J = jax.jit(jax.jacrev(all_res))(p)  # full Jacobian [n * m, *param shapes]
    J = np.concatenate([np.asarray(l).reshape(l.shape[0], -1) for l in jax.tree_util.tree_leaves(J)], axis=1)
    n = pts.shape[0]
    return np.sum(J.astype(np.float64) ** 2) / n  # mean over points of sum over components


def test_ntk_trace_matches_brute_force():
    p = _mlp_init(jax.random.PRNGKey(0))
    pts = jax.random.uniform(jax.random.PRNGKey(1), (13, 2), minval=-1.0, maxval=1.0)
    expected = _brute_force(_residual, p, pts)
    # 13 points: chunk sizes that divide it, that do not (padding), and larger than n
    for chunk_size in (1, 4, 13, 64):
        got = ntk_trace(_residual, p, pts, chunk_size=chunk_size)
        np.testing.assert_allclose(float(got), expected, rtol=1e-5, err_msg=f"chunk_size={chunk_size}")


def test_ntk_trace_vector_residual_and_jit():
    p = _mlp_init(jax.random.PRNGKey(2))
    pts = jax.random.uniform(jax.random.PRNGKey(3), (10, 2))
    expected = _brute_force(_residual_vec, p, pts)
    np.testing.assert_allclose(float(ntk_trace(_residual_vec, p, pts, chunk_size=3)), expected, rtol=1e-5)
    # inside an outer jit
    f = jax.jit(lambda p, x: ntk_trace(_residual_vec, p, x, chunk_size=3))
    np.testing.assert_allclose(float(f(p, pts)), expected, rtol=1e-5)


def test_ntk_trace_subsample():
    p = _mlp_init(jax.random.PRNGKey(4))
    pts = jax.random.uniform(jax.random.PRNGKey(5), (20, 2))
    key = jax.random.PRNGKey(6)
    idx = jax.random.choice(key, 20, (6,), replace=False)
    expected = _brute_force(_residual, p, pts[idx])
    got = ntk_trace(_residual, p, pts, chunk_size=4, max_points=6, key=key)
    np.testing.assert_allclose(float(got), expected, rtol=1e-5)
    with pytest.raises(ValueError):
        ntk_trace(_residual, p, pts, max_points=6)
    # max_points >= n: all points, no key needed
    np.testing.assert_allclose(
        float(ntk_trace(_residual, p, pts, chunk_size=8, max_points=50)), _brute_force(_residual, p, pts), rtol=1e-5
    )


def test_smooth():
    np.testing.assert_allclose(float(smooth(1.0, 2.0)), 0.9 * 1.0 + 0.1 * 2.0, rtol=1e-7)
    out = smooth({"a": jnp.array(10.0), "b": jnp.array(0.0)}, {"a": jnp.array(0.0), "b": jnp.array(5.0)}, momentum=0.5)
    np.testing.assert_allclose(float(out["a"]), 5.0)
    np.testing.assert_allclose(float(out["b"]), 2.5)
    # no gradient through smoothing
    assert float(jax.grad(lambda x: smooth(x, 2.0 * x))(1.0)) == 0.0


# ----- causal weighting: the loss training uses (losses.causal_term_losses), checked by hand --------
def _expected_causal(res_sq, t, C, tol, t_min, t_max):
    res_sq = np.asarray(res_sq, np.float64)
    idx = np.clip(np.floor((np.asarray(t) - t_min) / (t_max - t_min) * C).astype(int), 0, C - 1)
    l = np.array([res_sq[idx == c].mean() if np.any(idx == c) else 0.0 for c in range(C)])
    w = np.array([np.exp(-tol * l[:c].sum()) for c in range(C)])
    return l, w, np.mean(w * l)


def _causal(residuals, t, num_chunks, tol, t_min=0.0, t_max=1.0, weights=None):
    """losses.causal_term_losses of {term: residual [n, m]} (arrays as float32)."""
    cfg = CausalConfig(num_chunks=num_chunks, tol=tol, time_axis=0, t_min=t_min, t_max=t_max)
    residuals = {k: jnp.asarray(v, jnp.float32).reshape(len(t), -1) for k, v in residuals.items()}
    return causal_term_losses(residuals, jnp.asarray(t, jnp.float32), cfg, weights)


def test_causal_weights_hand_case_shuffled():
    # 4 chunks on [0, 1]: t in chunk c = [c/4, (c+1)/4); t = 1.0 belongs to the last chunk
    t = np.array([0.05, 0.2, 0.3, 0.45, 0.55, 0.6, 0.7, 0.8, 0.9, 1.0])
    r_sq = np.array([1.0, 3.0, 0.5, 1.5, 2.0, 4.0, 6.0, 0.1, 0.2, 0.3])
    # by hand: l = [2, 1, 4, 0.2]; cumsums before c: [0, 2, 3, 7]
    tol = 0.5
    w_hand = np.exp(-tol * np.array([0.0, 2.0, 3.0, 7.0]))
    loss_hand = np.mean(w_hand * np.array([2.0, 1.0, 4.0, 0.2]))
    l, w, loss = _expected_causal(r_sq, t, 4, tol, 0.0, 1.0)
    np.testing.assert_allclose(l, [2.0, 1.0, 4.0, 0.2])
    np.testing.assert_allclose(w, w_hand)

    perm = np.random.default_rng(0).permutation(len(t))
    r = np.sqrt(r_sq[perm]) * np.where(np.arange(len(t)) % 2, 1.0, -1.0)  # the sign of a residual is irrelevant
    losses, got_w = _causal({"res": r}, t[perm], 4, tol)
    np.testing.assert_allclose(np.asarray(got_w), w_hand, rtol=1e-6)
    np.testing.assert_allclose(float(losses["res"]), loss_hand, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(causal_weights(jnp.array([2.0, 1.0, 4.0, 0.2]), tol)), w_hand, rtol=1e-6)
    # jit, and the chunks of a stage's window [2, 3] (points mapped onto it)
    cfg = CausalConfig(num_chunks=4, tol=tol, time_axis=0, t_min=0.0, t_max=1.0)
    f = jax.jit(lambda r, tt: causal_term_losses({"res": r[:, None]}, tt + 2.0, cfg, None, (2.0, 3.0)))
    losses, got_w = f(jnp.asarray(r, jnp.float32), jnp.asarray(t[perm], jnp.float32))
    np.testing.assert_allclose(float(losses["res"]), loss_hand, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(got_w), w_hand, rtol=1e-6)


def test_causal_empty_chunk_and_random():
    rng = np.random.default_rng(1)
    t = rng.uniform(0.0, 2.0, size=200)
    t = t[(t < 0.5) | (t > 1.0)]  # chunk [0.5, 1.0) of 4 chunks on [0, 2] is empty
    r = rng.uniform(0, 1, size=t.shape)
    l, w, loss = _expected_causal(r, t, 4, 1.0, 0.0, 2.0)
    assert l[1] == 0.0
    losses, got_w = _causal({"res": np.sqrt(r)}, t, 4, 1.0, 0.0, 2.0)
    np.testing.assert_allclose(np.asarray(got_w), w, rtol=1e-5)
    np.testing.assert_allclose(float(losses["res"]), loss, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(chunk_means(jnp.asarray(r), jnp.asarray(t), 4, 0.0, 2.0)), l, rtol=1e-5)


def test_causal_system_shares_the_minimum_weights_across_equations():
    le = jnp.array([[1.0, 2.0, 0.5], [0.2, 5.0, 1.0]])
    tol = 0.3
    w1 = np.exp(-tol * np.array([0.0, 1.0, 3.0]))
    w2 = np.exp(-tol * np.array([0.0, 0.2, 5.2]))
    np.testing.assert_allclose(np.asarray(causal_weights_system(le, tol)), np.minimum(w1, w2), rtol=1e-6)

    # The terms of one point set (the equations of a system, e.g. ru, rv): per-equation chunk losses,
    # one set of weights, the minimum over equations; each term keeps its own loss mean_c w_c l_c^e.
    # A term with several components (m = 2 here) counts their mean square.
    rng = np.random.default_rng(2)
    t = rng.uniform(0, 1, size=40)
    # ru is large in the first chunk, rv in the later ones: each equation's weights are the smaller in some chunks
    early = (t < 0.2)[:, None]
    r0 = rng.uniform(-1, 1, size=40) * np.where(early[:, 0], 2.0, 0.3)
    r1 = rng.uniform(-1, 1, size=(40, 2)) * np.where(early, 0.2, 1.5)
    l0, w0, _ = _expected_causal(r0**2, t, 5, tol, 0.0, 1.0)
    l1, w1, _ = _expected_causal(np.mean(r1**2, axis=1), t, 5, tol, 0.0, 1.0)
    w = np.minimum(w0, w1)
    assert np.any(w0 < w1) and np.any(w1 < w0)  # each equation decides some chunks
    losses, got_w = _causal({"ru": r0, "rv": r1}, t, 5, tol)
    np.testing.assert_allclose(np.asarray(got_w), w, rtol=1e-5)
    np.testing.assert_allclose(float(losses["ru"]), np.mean(w * l0), rtol=1e-5)
    np.testing.assert_allclose(float(losses["rv"]), np.mean(w * l1), rtol=1e-5)
    # frozen weights (L-BFGS) are used as given
    frozen = jnp.array([1.0, 0.5, 0.25, 0.125, 0.0])
    losses, got_w = _causal({"ru": r0, "rv": r1}, t, 5, tol, weights=frozen)
    np.testing.assert_array_equal(np.asarray(got_w), np.asarray(frozen))
    np.testing.assert_allclose(float(losses["rv"]), np.mean(np.asarray(frozen) * l1), rtol=1e-5)


def test_no_gradient_through_causal_weights():
    p = _mlp_init(jax.random.PRNGKey(7))
    pts = jax.random.uniform(jax.random.PRNGKey(8), (32, 2))
    t = pts[:, 1]
    C, tol = 4, 2.0
    cfg = CausalConfig(num_chunks=C, tol=tol, time_axis=0, t_min=0.0, t_max=1.0)

    def residual(p):
        return jax.vmap(lambda z: _residual(p, z))(pts)  # [n, 1]

    def loss_causal(p):
        return causal_term_losses({"res": residual(p)}, t, cfg)[0]["res"]

    w_const = np.asarray(jax.jit(lambda p: causal_term_losses({"res": residual(p)}, t, cfg)[1])(p))
    chunk = np.clip(np.floor(np.asarray(t) * C).astype(int), 0, C - 1)
    masks = jnp.asarray(np.stack([chunk == c for c in range(C)]), jnp.float32)  # [C, n], by hand

    def loss_const(p):  # mean_c w_c l_c with w a constant and l_c the chunk's mean square
        l = masks @ residual(p)[:, 0] ** 2 / jnp.sum(masks, axis=1)
        return jnp.mean(jnp.asarray(w_const) * l)

    (l1, g1), (l2, g2) = jax.jit(jax.value_and_grad(loss_causal))(p), jax.jit(jax.value_and_grad(loss_const))(p)
    np.testing.assert_allclose(float(l1), float(l2), rtol=1e-6)
    for k in p:
        np.testing.assert_allclose(np.asarray(g1[k]), np.asarray(g2[k]), rtol=1e-5, atol=1e-8)
    # the weights really vary (the test is not vacuous)
    assert w_const.min() < 0.99
    # and the balancing weights carry no gradient either
    assert float(jax.grad(lambda x: grad_norm_weights(jnp.stack([x, 2.0]))[0])(1.0)) == 0.0


def test_the_training_loss_weighs_the_residual_term_causally():
    """PINNLoss.term_losses, the loss the steps minimise, on a hand-set field of the wave problem:
    u = p t^3 / 6 has u_tt = p t and u_xx = 0, so the residual is p t at every interior point, and the
    residual term is mean_c w_c l_c with l_c = mean over chunk c of p^2 t^2; the initial and wall
    terms stay plain means; the diagnostics report the weights' min and mean."""
    from pinnrun.losses import PINNLoss
    from pinnrun.pdes.wave import Wave

    pde = Wave(eval_resolution=(5, 16))
    C, tol, p = 4, 0.5, jnp.float32(3.0)
    loss = PINNLoss(pde, lambda p, z: p * z[:1] ** 3 / 6, 64, causal=CausalConfig(C, tol, 0, 0.0, 1.0))
    batch = jax.jit(lambda key: loss.sample(key, loss.fixed_points(jax.random.fold_in(key, 1))))(jax.random.PRNGKey(1))
    losses, diagnostics = jax.jit(loss.term_losses)(p, batch)

    t = np.asarray(batch.points["interior"][:, 0], np.float64)
    l, w, expected = _expected_causal(9.0 * t**2, t, C, tol, 0.0, 1.0)
    assert w.min() < 0.5 and np.all(l > 0)  # the weights matter, and every chunk has points
    np.testing.assert_allclose(float(losses["res"]), expected, rtol=1e-5)
    assert abs(expected - np.mean(9.0 * t**2)) > 0.1 * expected  # not the plain mean
    np.testing.assert_allclose(float(diagnostics["causal/min_w"]), w.min(), rtol=1e-5)
    np.testing.assert_allclose(float(diagnostics["causal/mean_w"]), w.mean(), rtol=1e-5)
    # the initial and boundary terms are plain means (u = 0 at t = 0; u = p t^3 / 6 on the walls)
    u0 = np.asarray(batch.context.targets["initial"])
    np.testing.assert_allclose(float(losses["ic"]), np.mean(u0[:, 0] ** 2), rtol=1e-5)
    np.testing.assert_allclose(float(losses["ic_t"]), np.mean(u0[:, 1] ** 2), rtol=1e-5, atol=1e-12)
    tb = np.asarray(batch.points["boundary"][:, 0], np.float64)
    np.testing.assert_allclose(float(losses["bc"]), np.mean((3.0 * tb**3 / 6) ** 2), rtol=1e-5)
    # the same causal weights come out of PINNLoss.causal_weights (what L-BFGS freezes)
    np.testing.assert_allclose(np.asarray(jax.jit(loss.causal_weights)(p, batch)["interior"]), w, rtol=1e-5)

"""Tests of pinnrun.optim.shampoo: one-step property, ill-conditioned Kronecker quadratic vs SGD,
n-D leaves, Adam grafting norms and argument validation."""

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from pinnrun.optim.shampoo import scale_by_shampoo, shampoo

HIGHEST = jax.lax.Precision.HIGHEST


# Square G is full rank, so float32 and eps = 1e-12 are fine. Rectangular G makes one factor
# rank-deficient: its null-space eigenvalues come out of a float32 eigh at ~1e-7 * max rather than
# 0, and with eps = 1e-12 their inverse fourth roots amplify that noise to ~1e-4 relative error.
# So rectangular shapes are checked in float64, and in float32 with a (still small) eps = 1e-8.
@pytest.mark.parametrize(
    "shape,dtype,eps",
    [((5, 5), "float32", 1e-12), ((6, 4), "float64", 1e-12), ((4, 6), "float64", 1e-12),
     ((6, 4), "float32", 1e-8), ((4, 6), "float32", 1e-8)],
)
def test_first_update_is_polar_factor(shape, dtype, eps):
    # b1 = 0, no grafting, tiny eps, bias-corrected factors: L = G G^T, R = G^T G and
    # L^{-1/4} G R^{-1/4} = U V^T for G = U S V^T.
    rng = np.random.default_rng(0)
    g = rng.normal(size=shape)
    lr = 0.1
    with jax.enable_x64(dtype == "float64"):
        opt = shampoo(lr, b1=0.0, grafting="none", eps=eps)
        params = {"w": jnp.zeros(shape, dtype)}
        updates, _ = jax.jit(opt.update)({"w": jnp.asarray(g, dtype)}, opt.init(params), params)
        assert updates["w"].dtype == jnp.dtype(dtype)
    u, _, vt = np.linalg.svd(g, full_matrices=False)
    want = -lr * u @ vt
    got = np.asarray(updates["w"], np.float64)
    assert np.linalg.norm(got - want) / np.linalg.norm(want) < 1e-4


def _spd(n, cond, rng):
    q, _ = np.linalg.qr(rng.normal(size=(n, n)))
    return (q * np.geomspace(1.0, cond, n)) @ q.T


def _kron_loss(w, a, b):
    # f(W) = 0.5 tr(W^T A W B); gradient A W B; Hessian B kron A.
    return 0.5 * jnp.sum(jnp.matmul(a, w, precision=HIGHEST) * jnp.matmul(w, b, precision=HIGHEST))


@partial(jax.jit, static_argnums=(0, 4))
def _run(opt, a, b, w0, steps):
    def body(carry, _):
        w, s = carry
        g = jax.grad(_kron_loss)(w, a, b)
        u, s = opt.update(g, s, w)
        return (optax.apply_updates(w, u), s), None

    (w, _), _ = jax.lax.scan(body, (w0, opt.init(w0)), None, length=steps)
    return _kron_loss(w, a, b)


def test_beats_sgd_on_ill_conditioned_kronecker_quadratic():
    rng = np.random.default_rng(0)
    a_np, b_np = _spd(8, 100.0, rng), _spd(6, 100.0, rng)  # cond(A kron B) = 1e4
    lam = np.linalg.eigvalsh(np.kron(b_np, a_np))
    assert lam.max() / lam.min() == pytest.approx(1e4, rel=1e-3)
    a, b = jnp.asarray(a_np, jnp.float32), jnp.asarray(b_np, jnp.float32)
    w0 = jnp.asarray(rng.normal(size=(8, 6)), jnp.float32)
    steps = 200
    loss0 = float(_kron_loss(w0, a, b))

    # SGD at its best stable learning rates (stable below 2 / lambda_max).
    sgd = [float(_run(optax.sgd(f / lam.max()), a, b, w0, steps)) for f in (1.0, 1.5, 1.9)]
    best_sgd = min(sgd)
    assert np.isfinite(best_sgd) and best_sgd < loss0

    sh = float(_run(shampoo(0.3), a, b, w0, steps))  # defaults: b1 0.9, Adam grafting
    # Observed ratio over seeds 0-5: 4e4 .. 1e7; assert a robust 1000x.
    assert sh * 1000.0 < best_sgd, (sh, best_sgd)


def test_nd_leaves_decrease_loss():
    rng = np.random.default_rng(1)
    d = jnp.asarray(rng.uniform(0.1, 10.0, size=(3, 4, 5)), jnp.float32)
    params = {"T": jnp.asarray(rng.normal(size=(3, 4, 5)), jnp.float32),
              "b": jnp.asarray(rng.normal(size=(4,)), jnp.float32), "s": jnp.asarray(1.5)}

    def loss(p):
        return 0.5 * jnp.sum(d * p["T"] ** 2) + jnp.sum(p["b"] ** 2) + p["s"] ** 2

    opt = shampoo(0.05, precondition_frequency=2, precondition_1d=True)
    state = opt.init(params)
    st = state[0]
    # leaves order T, b, s: 3 factors, 1 factor (precondition_1d), none.
    assert [f.shape for f in st.factors[0]] == [(3, 3), (4, 4), (5, 5)]
    assert [f.shape for f in st.factors[1]] == [(4, 4)]
    assert st.factors[2] == ()

    @jax.jit
    def run(p, s):
        def body(c, _):
            p, s = c
            u, s = opt.update(jax.grad(loss)(p), s, p)
            return (optax.apply_updates(p, u), s), loss(p)

        (p, s), losses = jax.lax.scan(body, (p, s), None, length=60)
        return p, s, losses

    p, s, losses = run(params, state)
    assert np.all(np.isfinite(np.asarray(losses)))
    assert float(loss(p)) < 0.05 * float(loss(params))
    for r in s[0].inv_roots[0]:
        assert np.all(np.isfinite(np.asarray(r)))


def test_adam_grafting_norms_per_leaf():
    rng = np.random.default_rng(2)
    shapes = {"W": (5, 3), "v": (4,), "T": (2, 3, 2), "s": ()}
    params = {k: jnp.zeros(s, jnp.float32) for k, s in shapes.items()}
    grads = [{k: jnp.asarray(rng.normal(size=s) * (1 + i), jnp.float32) for k, s in shapes.items()}
             for i in range(5)]
    start = 3
    tx = scale_by_shampoo(b1=0.9, b2=0.99, grafting="adam", start_preconditioning_step=start,
                          precondition_1d=True)
    adam = optax.scale_by_adam(b1=0.9, b2=0.99, eps=1e-8)

    @jax.jit
    def both(g, s1, s2):
        u1, s1 = tx.update(g, s1)
        u2, s2 = adam.update(g, s2)
        return u1, s1, u2, s2

    s1, s2 = tx.init(params), adam.init(params)
    for t, g in enumerate(grads, start=1):
        u1, s1, u2, s2 = both(g, s1, s2)
        for k in shapes:
            a, b = np.asarray(u1[k]), np.asarray(u2[k])
            if t < start:  # plain Adam before preconditioning starts
                np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
            else:
                assert np.linalg.norm(a) == pytest.approx(np.linalg.norm(b), rel=1e-5)
        if t >= start:
            # ... but not the Adam direction (the test would be vacuous otherwise).
            a, b = np.ravel(u1["W"]), np.ravel(u2["W"])
            assert a @ b / (np.linalg.norm(a) * np.linalg.norm(b)) < 0.99


def test_invalid_grafting_raises():
    for bad in ("sgd", "Adam", None):
        with pytest.raises(ValueError, match="'adam', 'none'"):
            shampoo(1e-3, grafting=bad)
    with pytest.raises(ValueError, match="grafting"):
        scale_by_shampoo(grafting="rmsprop")

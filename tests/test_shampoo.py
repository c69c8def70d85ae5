"""Tests of pinnrun.optim.shampoo: one-step property, ill-conditioned Kronecker quadratic vs SGD,
n-D leaves, Adam grafting norms, the order of Google's Distributed Shampoo (grafting, then
momentum; leaves without factors get the grafting update), the float32 inverse fourth root against
float64 (and the default damping chosen from it) and argument validation."""

import inspect

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from pinnrun.optim.shampoo import _inverse_root, scale_by_shampoo, shampoo

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
    # b1 = 0: the grafting update is Adam's (b1 = 0) update, and each leaf's update has its norm;
    # leaves without a factor ("s", a scalar) get it exactly.
    rng = np.random.default_rng(2)
    shapes = {"W": (5, 3), "v": (4,), "T": (2, 3, 2), "s": ()}
    params = {k: jnp.zeros(s, jnp.float32) for k, s in shapes.items()}
    grads = [{k: jnp.asarray(rng.normal(size=s) * (1 + i), jnp.float32) for k, s in shapes.items()}
             for i in range(5)]
    start = 3
    tx = scale_by_shampoo(b1=0.0, b2=0.99, grafting="adam", start_preconditioning_step=start,
                          precondition_1d=True)
    adam = optax.scale_by_adam(b1=0.0, b2=0.99, eps=1e-8)

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
            if t < start or k == "s":  # plain Adam before preconditioning starts / no factor
                np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
            else:
                assert np.linalg.norm(a) == pytest.approx(np.linalg.norm(b), rel=1e-5)
        if t >= start:
            # ... but not the Adam direction (the test would be vacuous otherwise).
            a, b = np.ravel(u1["W"]), np.ravel(u2["W"])
            assert a @ b / (np.linalg.norm(a) * np.linalg.norm(b)) < 0.99


def test_leaf_without_factor_gets_the_grafting_update():
    # A bias and a scalar have no factor: their update is the grafting update itself,
    # A = g / (sqrt(v_hat) + eps) (b1 = 0: Adam's update), not the gradient rescaled to A's norm.
    # With momentum (b1 = 0.9): test_update_follows_the_reference_order, same leaves.
    b1, b2, eps = 0.0, 0.99, 1e-8
    rng = np.random.default_rng(6)
    shapes = {"W": (4, 3), "b": (3,), "s": ()}
    grads = [{k: rng.normal(size=sh) * (1 + i) for k, sh in shapes.items()} for i in range(4)]
    tx = scale_by_shampoo(b1=b1, b2=b2, graft_eps=eps)
    state = tx.init({k: jnp.zeros(sh, jnp.float32) for k, sh in shapes.items()})
    step = jax.jit(tx.update)
    m = {k: 0.0 for k in ("b", "s")}
    v = dict(m)
    for t, g in enumerate(grads, start=1):
        u, state = step({k: jnp.asarray(x, jnp.float32) for k, x in g.items()}, state)
        for k in ("b", "s"):
            v[k] = b2 * v[k] + (1 - b2) * g[k] ** 2
            a = g[k] / (np.sqrt(v[k] / (1 - b2**t)) + eps)
            m[k] = b1 * m[k] + (1 - b1) * a
            np.testing.assert_allclose(np.asarray(u[k]), m[k] / (1 - b1**t), rtol=2e-5, atol=1e-6,
                                       err_msg=f"{k}, step {t}")


# --- The order of the reference (Google's scalable_shampoo/optax/distributed_shampoo.py,
# _transform_grad), written out in numpy float64 independently of the module.

def _np_inverse_root(f, p, eps, eig=None):
    lam, q = np.linalg.eigh(np.asarray(f, np.float64)) if eig is None else eig
    lam = np.maximum(lam, 0.0)
    lam = lam + eps * lam.max()
    root = np.where(lam > 0, np.where(lam > 0, lam, 1.0) ** (-1.0 / p), 0.0)
    return (q * root) @ q.T


def _np_reference(grads, factored, b1, b2, bs, eps, start, freq, graft_eps=1e-8):
    """Per step: A = g / (sqrt(v_hat) + eps); P = g x_i F_hat_i^{-1/(2k)}; S = P ||A|| / ||P||
    (S = A without factors); m = EMA_b1(S), m_g = EMA_b1(A); u = (m if t >= start else m_g) / bc."""
    g0 = grads[0]
    facs = [np.zeros((d, d)) if f else None for d, f in zip(g0.shape, factored)]
    roots = [np.eye(d) if f else None for d, f in zip(g0.shape, factored)]
    k = sum(factored)
    m, mg, v = np.zeros_like(g0), np.zeros_like(g0), np.zeros_like(g0)
    out = []
    for t, g in enumerate(grads, start=1):
        v = b2 * v + (1 - b2) * g * g
        a = g / (np.sqrt(v / (1 - b2**t)) + graft_eps)
        for i, f in enumerate(facs):
            if f is not None:
                gi = np.moveaxis(g, i, 0).reshape(g.shape[i], -1)
                facs[i] = bs * f + (1 - bs) * gi @ gi.T
                if (t - 1) % freq == 0:
                    roots[i] = _np_inverse_root(facs[i] / (1 - bs**t), 2 * k, eps)
        if k:
            p = g
            for i, r in enumerate(roots):
                if r is not None:
                    p = np.moveaxis(np.tensordot(p, r, axes=([i], [0])), -1, i)
            s = p * np.linalg.norm(a) / np.linalg.norm(p)
        else:
            s = a
        m = b1 * m + (1 - b1) * s
        mg = b1 * mg + (1 - b1) * a
        out.append((m if t >= start else mg) / (1 - b1**t))
    return out


@pytest.mark.parametrize(
    "shapes,kwargs",
    [({"W": (6, 4), "b": (5,), "s": ()}, {}),        # kernel; bias and scalar (RWF-like): no factor
     ({"W": (6, 4)}, {"max_precond_dim": 5}),         # one factor only: its -1/2 root
     ({"T": (2, 3, 2), "b": (5,), "s": ()}, {"start_preconditioning_step": 3,
                                             "precondition_frequency": 2})],
)
def test_update_follows_the_reference_order(shapes, kwargs):
    # Momentum after grafting, a leaf without factors getting the grafting update: matches an
    # independent float64 transcription of the reference's order over several steps.
    b1, b2, bs, eps, steps = 0.9, 0.99, 0.95, 1e-6, 6
    rng = np.random.default_rng(3)
    scale = 1 + 0.5 * np.arange(steps)
    grads = {k: rng.normal(size=(steps, *sh)) * scale.reshape(-1, *[1] * len(sh))
             for k, sh in shapes.items()}
    with jax.enable_x64(True):
        tx = scale_by_shampoo(b1=b1, b2=b2, shampoo_beta=bs, eps=eps, **kwargs)
        state = tx.init({k: jnp.zeros(sh, jnp.float64) for k, sh in shapes.items()})

        def body(st, g):
            u, st = tx.update(g, st)
            return st, u

        _, got = jax.jit(lambda st, gs: jax.lax.scan(body, st, gs))(
            state, {k: jnp.asarray(g, jnp.float64) for k, g in grads.items()})
    max_dim = kwargs.get("max_precond_dim", 10000)
    for i, (k, sh) in enumerate(sorted(shapes.items())):  # dict leaves flatten in sorted order
        factored = tuple(len(sh) > 1 and d <= max_dim for d in sh)
        assert tuple(f is not None for f in state.factors[i]) == factored
        want = _np_reference(list(grads[k]), factored, b1, b2, bs, eps,
                             kwargs.get("start_preconditioning_step", 1),
                             kwargs.get("precondition_frequency", 1))
        for t in range(steps):
            np.testing.assert_allclose(np.asarray(got[k][t]), want[t], rtol=1e-9, atol=1e-12,
                                       err_msg=f"{k}, step {t + 1}")


# --- Damping: the float32 inverse fourth root (the module's own path) against float64 eigh.
# Float32 eigh puts a rank-deficient factor's null-space eigenvalues at ~2e-7 * max instead of 0;
# the relative damping must sit above that noise, or the root's null-space block (eigenvalues
# (eps * max)^(-1/4), the largest in the matrix) is noise.

DAMPING_CANDIDATES = (1e-12, 1e-8, 1e-7, 1e-6)
# Relative Frobenius error of the float32 inverse root. Measured worst over the kernels below
# (seeds 0-7 agree to +-10%): 8e-1, 2e-1, 7e-2, 1.1e-2 for eps 1e-12, 1e-8, 1e-7, 1e-6
# (1e-5: 1.2e-3); the error scales like noise / eps, so 3e-2 separates 1e-7 from 1e-6 by 2x.
ROOT_TOL = 3e-2


def _kernel_factors(shape, steps, rng, beta=0.999):
    """Bias-corrected factors (L, R) of `steps` Gaussian gradients of a `shape` kernel, float32."""
    fl = np.zeros((shape[0],) * 2, np.float32)
    fr = np.zeros((shape[1],) * 2, np.float32)
    for _ in range(steps):
        g = rng.normal(size=shape).astype(np.float32)
        fl = beta * fl + (1 - beta) * (g @ g.T)
        fr = beta * fr + (1 - beta) * (g.T @ g)
    bc = np.float32(1 - beta**steps)
    return fl / bc, fr / bc


_root32 = jax.jit(lambda f, eps: _inverse_root(f, 0.25, eps, jnp.eye(f.shape[0], dtype=f.dtype)))


def _worst_root_errors(candidates):
    rng = np.random.default_rng(4)
    worst = dict.fromkeys(candidates, 0.0)
    # PINN kernels: first layer (2, 64), hidden (64, 64), output (64, 2) (test below: (256, 64));
    # one step (rank-deficient factors) and a few (still rank-deficient for the thin ones).
    for shape in ((64, 2), (2, 64), (64, 64)):
        for steps in (1, 8):
            for f in _kernel_factors(shape, steps, rng):
                eig = np.linalg.eigh(np.asarray(f, np.float64))
                for eps in candidates:
                    want = _np_inverse_root(f, 4, eps, eig)
                    got = np.asarray(_root32(jnp.asarray(f), eps), np.float64)
                    err = np.linalg.norm(got - want) / np.linalg.norm(want)
                    worst[eps] = max(worst[eps], err)
    return worst


def test_default_damping_is_the_smallest_accurate_one():
    # The measurement behind the default (numbers at ROOT_TOL): the smallest candidate damping
    # whose worst inverse-root error is below ROOT_TOL.
    errors = _worst_root_errors(DAMPING_CANDIDATES)
    accurate = [eps for eps, err in errors.items() if err < ROOT_TOL]
    default = inspect.signature(scale_by_shampoo).parameters["eps"].default
    assert accurate and default == min(accurate), errors
    assert inspect.signature(shampoo).parameters["eps"].default == default
    assert errors[1e-12] > 10 * ROOT_TOL, errors  # the old default was well inside the noise


def test_inverse_root_at_default_damping_matches_float64():
    # At the default damping the module's float32 inverse fourth root of rectangular kernels'
    # factors, wide hidden layer included, is within ROOT_TOL of float64 eigh.
    eps = inspect.signature(scale_by_shampoo).parameters["eps"].default
    rng = np.random.default_rng(5)
    for shape in ((2, 64), (256, 64), (64, 2)):
        for steps in (1, 3):
            for f in _kernel_factors(shape, steps, rng):
                want = _np_inverse_root(f, 4, eps)
                got = np.asarray(_root32(jnp.asarray(f), eps), np.float64)
                err = np.linalg.norm(got - want) / np.linalg.norm(want)
                assert err < ROOT_TOL, (shape, steps, f.shape, err)


def test_invalid_grafting_raises():
    for bad in ("sgd", "Adam", None):
        with pytest.raises(ValueError, match="'adam', 'none'"):
            shampoo(1e-3, grafting=bad)
    with pytest.raises(ValueError, match="grafting"):
        scale_by_shampoo(grafting="rmsprop")

"""Tests for pinnrun.archs (MLP, Modified MLP, PirateNet, embeddings, RWF, PI init)."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pinnrun.archs import ACTIVATIONS, ARCHITECTURES, Model, build_model
from pinnrun.archs.embeddings import fourier_apply, periodic_embed
from pinnrun.archs.layers import dense_init, dense_kernel


def x64():
    """Context manager enabling float64 (jax.experimental.enable_x64 was removed in newer jax)."""
    exp = getattr(jax.experimental, "enable_x64", None)
    if exp is not None:
        return exp()
    return jax.enable_x64(True)


def to_np(tree):
    return jax.tree.map(np.asarray, tree)


def cfg(name="mlp", **kw):
    base = dict(name=name, width=16, depth=2, activation="tanh", fourier=None, periodic=False,
                rwf=None, pi_init=False)
    base.update(kw)
    return base


FULL = dict(fourier={"scale": 1.0, "dim": 8}, periodic=True, rwf={"mean": 1.0, "std": 0.1})


def test_registry():
    assert set(ACTIVATIONS) == {"tanh", "sin", "swish", "gelu"}
    assert ARCHITECTURES == ("mlp", "modified_mlp", "pirate")


@pytest.mark.parametrize("name", ARCHITECTURES)
@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_shapes_and_dtypes(name, activation):
    m = build_model(cfg(name, activation=activation, **FULL), input_dim=2, output_dim=3,
                    periodic_axes={1: 2.0})
    assert isinstance(m, Model)
    assert (m.fit_output is not None) == (name == "pirate")
    p = m.init(jax.random.key(0))
    assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(p))
    z = jnp.array([0.3, -0.7])
    y = jax.eval_shape(m.apply, p, z)
    assert y.shape == (3,) and y.dtype == jnp.float32
    g = jax.eval_shape(jax.grad(lambda q: jnp.sum(m.apply(q, z) ** 2)), p)
    assert jax.tree.structure(g) == jax.tree.structure(p)
    if activation != "tanh":  # numerics for the other activations: see the jet test
        return

    if name == "pirate":  # make the blocks active so the whole network is exercised
        p = dict(p, blocks=[dict(b, alpha=jnp.float32(0.7)) for b in p["blocks"]])
    eps = 3e-3

    @jax.jit
    def run(p, zs):
        """Batched apply, parameter gradient, and forward-mode (jvp) vs central finite difference."""
        f = jax.vmap(m.apply, in_axes=(None, 0))
        ys = f(p, zs)
        g = jax.grad(lambda q: jnp.sum(f(q, zs) ** 2))(p)
        jvps, fds = [], []
        for d in jnp.eye(2, dtype=zs.dtype):
            jvps.append(jax.vmap(lambda z: jax.jvp(lambda zz: m.apply(p, zz), (z,), (d,))[1])(zs))
            fds.append((f(p, zs + eps * d) - f(p, zs - eps * d)) / (2 * eps))
        return ys, g, jnp.stack(jvps), jnp.stack(fds)

    zs = np.random.default_rng(0).uniform(-1.0, 1.0, (5, 2)).astype(np.float32)
    ys, g, jv, fd = run(p, zs)
    assert ys.shape == (5, 3) and ys.dtype == jnp.float32 and bool(jnp.all(jnp.isfinite(ys)))
    assert all(bool(jnp.all(jnp.isfinite(leaf))) for leaf in jax.tree.leaves(g))
    np.testing.assert_allclose(jv, fd, rtol=2e-3, atol=2e-3)  # O(eps^2) truncation in float32
    assert jax.tree.structure(g) == jax.tree.structure(p)


def test_plain_mlp_structure():
    m = build_model(cfg("mlp", depth=3, width=16), input_dim=2, output_dim=1)
    p = m.init(jax.random.key(1))
    assert p["embedding"] == {}
    assert [l["kernel"].shape for l in p["hidden"]] == [(2, 16), (16, 16), (16, 16)]
    assert p["output"]["kernel"].shape == (16, 1)
    pn = to_np(p)
    assert all(np.abs(l["bias"]).max() == 0.0 for l in pn["hidden"] + [pn["output"]])
    # output layer is linear: output = h @ W + b with h the last hidden state
    z = np.array([0.1, 0.2], np.float32)
    h = z
    for l in pn["hidden"]:
        h = np.tanh(h @ l["kernel"] + l["bias"])
    np.testing.assert_allclose(jax.jit(m.apply)(p, z), h @ pn["output"]["kernel"], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_periodic_embedding_exact_period(name):
    L = 2.0
    m = build_model(cfg(name, **FULL), input_dim=2, output_dim=2, periodic_axes={1: L})
    p = m.init(jax.random.key(2))
    f = jax.jit(jax.vmap(m.apply, in_axes=(None, 0)))
    z = np.random.default_rng(3).uniform(-1.0, 1.0, (16, 2)).astype(np.float32)
    shift_x = np.array([0.0, L], np.float32)
    np.testing.assert_allclose(f(p, z + shift_x), f(p, z), atol=2e-5)
    np.testing.assert_allclose(f(p, z - 3 * shift_x), f(p, z), atol=5e-5)
    # not periodic in the other axis
    shift_t = np.array([L, 0.0], np.float32)
    assert float(np.abs(f(p, z + shift_t) - f(p, z)).max()) > 1e-2


def test_periodic_embed_values_and_ignored_when_off():
    z = jnp.array([0.5, 0.25, 3.0])
    e = jax.jit(lambda z: periodic_embed(z, {1: 1.0}))(z)  # w = 2 pi
    np.testing.assert_allclose(e, [0.5, math.cos(math.pi / 2), math.sin(math.pi / 2), 3.0], atol=1e-6)
    # periodic=False or empty axes: raw input goes in
    for c, axes in [(cfg(periodic=False), {1: 1.0}), (cfg(periodic=True), {}), (cfg(periodic=True), None)]:
        m = build_model(c, input_dim=3, output_dim=1, periodic_axes=axes)
        assert jax.eval_shape(m.init, jax.random.key(0))["hidden"][0]["kernel"].shape[0] == 3
    m = build_model(cfg(periodic=True), input_dim=3, output_dim=1, periodic_axes={0: 1.0, 2: 2.0})
    assert jax.eval_shape(m.init, jax.random.key(0))["hidden"][0]["kernel"].shape[0] == 5


def test_rwf_effective_kernel_equals_glorot():
    @jax.jit
    def make(key):
        plain = dense_init(key, 200, 300)
        fact = dense_init(key, 200, 300, rwf=(0.5, 0.1))
        return plain, fact, dense_kernel(fact)

    plain, fact, kernel = to_np(make(jax.random.key(4)))
    assert set(fact) == {"v", "s", "bias"} and fact["s"].shape == (300,) and fact["v"].shape == (200, 300)
    np.testing.assert_allclose(np.exp(fact["s"]) * fact["v"], plain["kernel"], rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(kernel, plain["kernel"], rtol=1e-5, atol=1e-7)
    # Glorot normal std sqrt(2 / (fan_in + fan_out)); s ~ N(mean, std)
    assert abs(np.std(plain["kernel"]) / math.sqrt(2 / 500) - 1) < 0.05
    assert abs(np.mean(fact["s"]) - 0.5) < 0.03 and abs(np.std(fact["s"]) - 0.1) < 0.03


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_rwf_model_matches_unfactorised_at_init(name):
    kw = dict(fourier={"scale": 1.0, "dim": 8})
    m0 = build_model(cfg(name, **kw), input_dim=2, output_dim=2)
    m1 = build_model(cfg(name, rwf={"mean": 1.0, "std": 0.1}, **kw), input_dim=2, output_dim=2)
    key = jax.random.key(6)
    z = np.array([0.4, -0.2], np.float32)
    y1 = jax.jit(m1.apply)(m1.init(key), z)
    y0 = jax.jit(m0.apply)(m0.init(key), z)
    np.testing.assert_allclose(y1, y0, rtol=1e-4, atol=1e-5)


def test_fourier_scale_statistics():
    m = build_model(cfg("mlp", fourier={"scale": 10.0, "dim": 1000}), input_dim=3, output_dim=1)
    p = m.init(jax.random.key(7))
    B = np.asarray(p["embedding"]["fourier"]["B"])
    assert B.shape == (3, 1000)
    assert abs(np.std(B) / 10.0 - 1) < 0.05 and abs(np.mean(B)) < 0.5
    assert p["hidden"][0]["kernel"].shape[0] == 2000  # [cos(zB), sin(zB)]
    z = np.array([0.1, 0.2, 0.3], np.float32)
    feats = np.asarray(jax.jit(fourier_apply)(p["embedding"]["fourier"], z))
    np.testing.assert_allclose(feats, np.concatenate([np.cos(z @ B), np.sin(z @ B)]), atol=1e-4)


def test_modified_mlp_gates_between_its_two_encoders():
    """Hand-set weights, read through the model's outputs: the encoders give U = tanh(phi Wu + bu) and
    V = tanh(phi Wv + bv) from the input's embedding phi; each layer's activation g gates
    h = g U + (1 - g) V, so a gate of 1 passes U, of 0 passes V, and the last layer's gate decides;
    the next layer's gate reads the gated state; the output layer is linear in the last state."""
    m = build_model(cfg("modified_mlp", depth=2, width=3), input_dim=2, output_dim=3)
    p = jax.eval_shape(m.init, jax.random.key(8))
    assert p["embedding"] == {} and len(p["hidden"]) == 2
    assert {k: p[k]["kernel"].shape for k in ("encoder_u", "encoder_v", "output")} == {
        "encoder_u": (2, 3), "encoder_v": (2, 3), "output": (3, 3)}
    assert [l["kernel"].shape for l in p["hidden"]] == [(2, 3), (3, 3)]
    u0, v0 = np.array([0.5, -0.2, 0.9]), np.array([-0.3, 0.7, 0.1])
    apply = jax.jit(m.apply)

    def dense(kernel, bias):
        return {"kernel": jnp.asarray(kernel, jnp.float32), "bias": jnp.asarray(bias, jnp.float32)}

    def net(gates, kernels=(np.zeros((2, 3)), np.zeros((3, 3))), enc=(np.zeros((2, 3)), np.zeros((2, 3))),
            out=(np.eye(3), np.zeros(3))):
        """Encoders U = tanh(z Au + atanh u0), V = tanh(z Av + atanh v0); layer i's gate tanh(h W_i + b_i)
        with b_i = atanh(gates[i]) (a gate of 1: b_i = 20, where tanh is 1 in float32)."""
        bias = lambda g: np.full(3, 20.0 if g == 1.0 else np.arctanh(g))  # noqa: E731
        return {
            "embedding": {},
            "encoder_u": dense(enc[0], np.arctanh(u0)),
            "encoder_v": dense(enc[1], np.arctanh(v0)),
            "hidden": [dense(k, bias(g)) for k, g in zip(kernels, gates)],
            "output": dense(*out),
        }

    z = jnp.array([0.3, -0.6])
    close = lambda got, want: np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)  # noqa: E731
    close(apply(net((1.0, 1.0)), z), u0)  # gates open: U
    close(apply(net((0.0, 0.0)), z), v0)  # gates shut: V
    close(apply(net((0.0, 1.0)), z), u0)  # the last layer's gate decides
    close(apply(net((1.0, 0.0)), z), v0)
    close(apply(net((1.0, 0.25)), z), 0.25 * u0 + 0.75 * v0)  # a gate in between mixes them
    # the second gate reads the first layer's output: h1 = U, gate tanh(2 h1)
    gate = np.tanh(2 * u0)
    close(apply(net((1.0, 0.0), kernels=(np.zeros((2, 3)), 2 * np.eye(3))), z), gate * u0 + (1 - gate) * v0)
    # the encoders read the input, not the hidden state: with z-dependent encoders the output is
    # U(z) (gate 1) or V(z) (gate 0) after two layers
    a_u, a_v = np.array([[0.4, -0.7, 0.2], [0.1, 0.5, -0.3]]), np.array([[-0.2, 0.3, 0.6], [0.8, -0.1, 0.4]])
    zn = np.asarray(z, np.float64)
    close(apply(net((0.0, 1.0), enc=(a_u, a_v)), z), np.tanh(zn @ a_u + np.arctanh(u0)))
    close(apply(net((1.0, 0.0), enc=(a_u, a_v)), z), np.tanh(zn @ a_v + np.arctanh(v0)))
    # the output layer: last state @ W + b
    w_out, b_out = np.arange(9.0).reshape(3, 3) / 9 - 0.4, np.array([0.1, -0.2, 0.3])
    close(apply(net((1.0, 1.0), out=(w_out, b_out)), z), u0 @ w_out + b_out)


def _pirate_embed(p, z, L):
    return fourier_apply(p["embedding"]["fourier"], periodic_embed(z, {1: L}))


def test_pirate_linear_in_embedding_at_init():
    L = 2.0
    m = build_model(cfg("pirate", width=16, num_blocks=3, **FULL), input_dim=2, output_dim=2,
                    periodic_axes={1: L})
    p = m.init(jax.random.key(9))
    assert len(p["blocks"]) == 3 and all(float(b["alpha"]) == 0.0 for b in p["blocks"])
    z = np.random.default_rng(10).uniform(0.0, 1.0, (8, 2)).astype(np.float32)
    f = jax.jit(jax.vmap(m.apply, in_axes=(None, 0)))

    @jax.jit
    def linear_model(p, z):
        emb = jax.vmap(_pirate_embed, in_axes=(None, 0, None))(p, z, L)
        return emb, emb @ dense_kernel(p["output"]) + p["output"]["bias"]

    emb, expected = linear_model(p, z)
    assert emb.shape == (8, 16)  # fourier dim 8 -> 16 = width
    np.testing.assert_allclose(f(p, z), expected, rtol=1e-5, atol=1e-6)
    # once alpha moves, the blocks contribute
    p2 = dict(p, blocks=[dict(b, alpha=jnp.float32(0.5)) for b in p["blocks"]])
    assert float(jnp.abs(f(p2, z) - expected).max()) > 1e-4


def test_pirate_depth_fallback_and_default_fourier_dim():
    m = build_model({"name": "pirate", "width": 12, "depth": 2, "activation": "tanh",
                     "fourier": {"scale": 2.0}}, input_dim=2, output_dim=1)
    p = m.init(jax.random.key(0))
    assert len(p["blocks"]) == 2 and p["embedding"]["fourier"]["B"].shape == (2, 6)
    assert p["blocks"][0]["dense3"]["kernel"].shape == (12, 12)


@pytest.mark.parametrize("rwf", [None, {"mean": 1.0, "std": 0.1}])
def test_pirate_pi_init_fits_targets_in_span(rwf):
    m = build_model(cfg("pirate", width=16, num_blocks=2, fourier={"scale": 1.0, "dim": 8}, rwf=rwf),
                    input_dim=2, output_dim=2)
    p = m.init(jax.random.key(11))
    rng = np.random.default_rng(12)
    pts = rng.uniform(-1.0, 1.0, (64, 2)).astype(np.float32)
    w_true = rng.normal(size=(16, 2)).astype(np.float32)

    @jax.jit
    def fit(p, pts):
        emb = jax.vmap(lambda z: fourier_apply(p["embedding"]["fourier"], z))(pts)
        targets = emb @ w_true + jnp.array([0.3, -0.1])
        q = m.fit_output(p, pts, targets)
        return targets, q, jax.vmap(m.apply, in_axes=(None, 0))(q, pts)

    targets, q, pred = fit(p, pts)
    assert float(jnp.abs(pred - targets).max()) < 1e-4 * max(1.0, float(jnp.abs(targets).max()))
    # only the output layer changed (RWF scales kept)
    for k in ("embedding", "encoder_u", "encoder_v", "blocks"):
        assert jax.tree.all(jax.tree.map(lambda a, b: bool(jnp.array_equal(a, b)), q[k], p[k]))
    if rwf is not None:
        assert bool(jnp.array_equal(q["output"]["s"], p["output"]["s"]))


def test_pirate_pi_init_reduces_error_on_sine():
    m = build_model(cfg("pirate", width=64, num_blocks=1, fourier={"scale": 2.0, "dim": 32},
                        periodic=True), input_dim=2, output_dim=1, periodic_axes={1: 2.0})
    p = m.init(jax.random.key(14))
    x = np.linspace(-1.0, 1.0, 128, dtype=np.float32)
    pts = np.stack([np.zeros_like(x), x], axis=1)  # (t = 0, x)
    u0 = np.sin(np.pi * x)
    f = jax.jit(jax.vmap(m.apply, in_axes=(None, 0)))
    before = float(np.sqrt(np.mean((f(p, pts)[:, 0] - u0) ** 2)))
    q = jax.jit(m.fit_output)(p, pts, u0)  # 1-D targets accepted when output_dim == 1
    after = float(np.sqrt(np.mean((f(q, pts)[:, 0] - u0) ** 2)))
    assert after < 1e-2 and after < 0.05 * before
    # also fits between the training points
    xt = np.linspace(-0.99, 0.99, 128, dtype=np.float32)
    ptt = np.stack([np.zeros_like(xt), xt], axis=1)
    assert float(np.abs(f(q, ptt)[:, 0] - np.sin(np.pi * xt)).max()) < 5e-2


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_activation_smooth_under_jet(activation):
    from jax.experimental import jet

    act = ACTIVATIONS[activation]

    @jax.jit
    def derivs(x):
        _, (d1, d2) = jet.jet(act, (x,), ((jnp.ones_like(x), jnp.zeros_like(x)),))
        return d1, d2, jax.vmap(jax.grad(act))(x), jax.vmap(jax.grad(jax.grad(act)))(x)

    d1, d2, d1_ref, d2_ref = derivs(np.linspace(-2.0, 2.0, 7, dtype=np.float32))
    np.testing.assert_allclose(d1, d1_ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(d2, d2_ref, rtol=1e-4, atol=1e-5)


def test_model_jet_second_derivative_matches_nested_jvp():
    from jax.experimental import jet

    m = build_model(cfg("pirate", activation="gelu", num_blocks=1, **FULL), input_dim=2, output_dim=1,
                    periodic_axes={1: 2.0})
    p = m.init(jax.random.key(16))
    p = dict(p, blocks=[dict(b, alpha=jnp.float32(0.5)) for b in p["blocks"]])
    z = jnp.array([0.2, 0.5])
    d = jnp.array([0.0, 1.0])
    fn = lambda zz: m.apply(p, zz)
    first = lambda zz: jax.jvp(fn, (zz,), (d,))[1]

    @jax.jit
    def both(z):
        _, (d1, d2) = jet.jet(fn, (z,), ((d, jnp.zeros_like(d)),))
        return d1, d2, first(z), jax.jvp(first, (z,), (d,))[1]

    d1, d2, d1_ref, second = both(z)
    np.testing.assert_allclose(d1, d1_ref, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(d2, second, rtol=1e-3, atol=1e-4)


def test_float64_build():
    with x64():
        for name in ARCHITECTURES:
            m = build_model(cfg(name, activation="swish", **FULL), input_dim=2, output_dim=2,
                            periodic_axes={1: 2.0}, dtype=jnp.float64)
            shapes = jax.eval_shape(m.init, jax.random.key(15))
            assert all(leaf.dtype == jnp.float64 for leaf in jax.tree.leaves(shapes))
            assert jax.eval_shape(m.apply, shapes, jnp.zeros(2, jnp.float64)).dtype == jnp.float64
        # numerics in float64 on the full PirateNet: init, fit_output, jvp vs finite difference
        p = m.init(jax.random.key(15))
        assert all(leaf.dtype == jnp.float64 for leaf in jax.tree.leaves(p))
        pts = jnp.linspace(0, 1, 40).reshape(20, 2)
        q = jax.jit(m.fit_output)(p, pts, jnp.sin(pts))
        assert all(leaf.dtype == jnp.float64 for leaf in jax.tree.leaves(q))
        p = dict(p, blocks=[dict(b, alpha=jnp.float64(0.7)) for b in p["blocks"]])  # blocks active
        z = jnp.array([0.3, -0.4])
        eps = 1e-6

        @jax.jit
        def both(p):
            out = []
            for d in jnp.eye(2):
                y, jv = jax.jvp(lambda zz: m.apply(p, zz), (z,), (d,))
                fd = (m.apply(p, z + eps * d) - m.apply(p, z - eps * d)) / (2 * eps)
                out.append((y, jv, fd))
            return out

        for y, jv, fd in both(p):
            assert y.dtype == jnp.float64 and y.shape == (2,)
            np.testing.assert_allclose(jv, fd, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize(
    "bad, needle",
    [
        (dict(activation="relu"), "gelu"),
        (dict(name="resnet"), "modified_mlp"),
        (dict(width=0), "width"),
        (dict(depth=-1), "depth"),
        (dict(width=True), "width"),
        (dict(name="pirate", num_blocks=0), "num_blocks"),
        (dict(fourier={"scale": 1.0, "dim": 0}), "fourier.dim"),
        (dict(rwf="yes"), "rwf"),
    ],
)
def test_bad_config_raises(bad, needle):
    with pytest.raises(ValueError, match=needle) as info:
        build_model(cfg(**bad), input_dim=2, output_dim=1)
    assert "\n" not in str(info.value)
    if "activation" in bad:
        assert all(a in str(info.value) for a in ACTIVATIONS) and "activation" in str(info.value)
    if "name" in bad and bad["name"] != "pirate":
        assert all(a in str(info.value) for a in ARCHITECTURES)


def test_bad_periodic_axis_raises():
    with pytest.raises(ValueError, match="periodic_axes"):
        build_model(cfg(periodic=True), input_dim=2, output_dim=1, periodic_axes={2: 1.0})


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_input_scale_feeds_the_network_the_scaled_input(name):
    """input_scale {0: s}: the model at (t, x) is the unscaled model (same params) at (s t, x), and its
    t-derivative carries the chain-rule factor s (under jet, as the residuals take it)."""
    from jax.experimental import jet

    base = dict(FULL, rwf=None)
    periodic = {1: 2.0}
    scaled = build_model(cfg(name, **base), input_dim=2, output_dim=2, periodic_axes=periodic, input_scale={0: 20.0})
    plain = build_model(cfg(name, **base), input_dim=2, output_dim=2, periodic_axes=periodic)
    params = scaled.init(jax.random.key(3))
    z = jnp.array([0.013, 0.4])
    np.testing.assert_allclose(scaled.apply(params, z), plain.apply(params, z * jnp.array([20.0, 1.0])), rtol=1e-6)
    direction = jnp.array([1.0, 0.0])
    _, (d_scaled, _) = jet.jet(lambda q: scaled.apply(params, q), (z,), ((direction, jnp.zeros(2)),))
    _, d_plain = jax.jvp(lambda q: plain.apply(params, q), (z * jnp.array([20.0, 1.0]),), (direction,))
    np.testing.assert_allclose(d_scaled, 20.0 * d_plain, rtol=1e-5)
    # No scale is the plain model, bit for bit.
    unscaled = build_model(cfg(name, **base), input_dim=2, output_dim=2, periodic_axes=periodic, input_scale={})
    assert np.array_equal(unscaled.apply(params, z), plain.apply(params, z))


@pytest.mark.parametrize("scale, needle", [({1: 2.0}, "periodic"), ({0: 0.0}, "> 0"), ({3: 1.0}, "out of range")])
def test_bad_input_scale_raises(scale, needle):
    with pytest.raises(ValueError, match=needle) as info:
        build_model(cfg(periodic=True), input_dim=2, output_dim=1, periodic_axes={1: 2.0}, input_scale=scale)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_output_scale_multiplies_the_networks_outputs(name):
    """output_scale {k: s}: output k is s times the unscaled model's (same params), the others are
    untouched; PirateNet's output fit then matches its targets through the scale."""
    base = dict(FULL, rwf=None)
    scaled = build_model(cfg(name, **base), input_dim=2, output_dim=3, periodic_axes={1: 2.0}, output_scale={1: 0.03})
    plain = build_model(cfg(name, **base), input_dim=2, output_dim=3, periodic_axes={1: 2.0})
    params = plain.init(jax.random.key(4))
    z = jnp.array([0.2, 0.7])
    np.testing.assert_allclose(scaled.apply(params, z), plain.apply(params, z) * jnp.array([1.0, 0.03, 1.0]), rtol=1e-6)
    assert (scaled.fit_output is None) == (name != "pirate")
    if name == "pirate":
        pts = jax.random.uniform(jax.random.key(5), (64, 2))
        targets = jnp.stack([jnp.sin(pts[:, 1]), 0.01 * jnp.cos(pts[:, 1]), pts[:, 0]], axis=-1)
        fitted = scaled.fit_output(params, pts, targets)
        reference = plain.fit_output(params, pts, targets / jnp.array([1.0, 0.03, 1.0]))
        np.testing.assert_allclose(jax.vmap(lambda q: scaled.apply(fitted, q))(pts),
                                   jax.vmap(lambda q: plain.apply(reference, q))(pts) * jnp.array([1.0, 0.03, 1.0]), rtol=1e-5, atol=1e-7)
    with pytest.raises(ValueError, match="output_scale: factor for axis 0 must be > 0"):
        build_model(cfg(name), input_dim=2, output_dim=3, output_scale={0: 0.0})


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_background_is_added_to_the_scaled_network(name):
    """background b(z): the model is b(z) + the (scaled) network, with the same params, and its
    derivatives are b's plus the network's; PirateNet's output fit learns targets - b."""
    from jax.experimental import jet

    base = dict(FULL, rwf=None)

    def background(z):
        return jnp.stack([jnp.tanh(z[0]), 0.0 * z[0], jnp.exp(z[1])])

    plain = build_model(cfg(name, **base), input_dim=2, output_dim=3, periodic_axes={1: 2.0}, output_scale={1: 0.03})
    shifted = build_model(cfg(name, **base), input_dim=2, output_dim=3, periodic_axes={1: 2.0}, output_scale={1: 0.03},
                          background=background)
    params = plain.init(jax.random.key(4))
    z = jnp.array([0.2, 0.7])
    np.testing.assert_allclose(shifted.apply(params, z), plain.apply(params, z) + background(z), rtol=1e-6)
    tangent = jnp.array([1.0, -0.5])
    _, d_shifted = jet.jet(lambda q: shifted.apply(params, q), (z,), ((tangent, jnp.zeros(2)),))
    _, d_plain = jet.jet(lambda q: plain.apply(params, q), (z,), ((tangent, jnp.zeros(2)),))
    _, d_background = jet.jet(background, (z,), ((tangent, jnp.zeros(2)),))
    for a, b, c in zip(d_shifted, d_plain, d_background):
        np.testing.assert_allclose(a, b + c, rtol=1e-5, atol=1e-6)
    assert (shifted.fit_output is None) == (name != "pirate")
    if name == "pirate":
        pts = jax.random.uniform(jax.random.key(5), (64, 2))
        targets = jnp.stack([jnp.sin(pts[:, 1]), 0.01 * jnp.cos(pts[:, 1]), pts[:, 0]], axis=-1)
        fitted = shifted.fit_output(params, pts, targets)
        reference = plain.fit_output(params, pts, targets - jax.vmap(background)(pts))
        np.testing.assert_allclose(jax.vmap(lambda q: shifted.apply(fitted, q))(pts),
                                   jax.vmap(lambda q: plain.apply(reference, q) + background(q))(pts), rtol=1e-5, atol=1e-6)

"""Tests for pinnrun.archs (MLP, Modified MLP, PirateNet, embeddings, RWF, PI init)."""

from __future__ import annotations

import contextlib
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
    y = jax.eval_shape(m.apply, p, jnp.array([0.3, -0.7]))
    assert y.shape == (3,) and y.dtype == jnp.float32

    @jax.jit
    def run(p, zs):  # batched apply + parameter gradient in one compile
        ys = jax.vmap(m.apply, in_axes=(None, 0))(p, zs)
        return ys, jax.grad(lambda q: jnp.sum(jax.vmap(m.apply, in_axes=(None, 0))(q, zs) ** 2))(p)

    ys, g = run(p, jnp.ones((5, 2)))
    assert ys.shape == (5, 3) and ys.dtype == jnp.float32 and bool(jnp.all(jnp.isfinite(ys)))
    # gradients w.r.t. params flow to every leaf
    assert jax.tree.structure(g) == jax.tree.structure(p)


def test_plain_mlp_structure():
    m = build_model(cfg("mlp", depth=3, width=7), input_dim=2, output_dim=1)
    p = m.init(jax.random.key(1))
    assert p["embedding"] == {}
    assert [l["kernel"].shape for l in p["hidden"]] == [(2, 7), (7, 7), (7, 7)]
    assert p["output"]["kernel"].shape == (7, 1)
    assert all(float(jnp.abs(l["bias"]).max()) == 0.0 for l in p["hidden"] + [p["output"]])
    # output layer is linear: output = h @ W + b with h the last hidden state
    z = jnp.array([0.1, 0.2])
    h = z
    for l in p["hidden"]:
        h = jnp.tanh(h @ l["kernel"] + l["bias"])
    np.testing.assert_allclose(m.apply(p, z), h @ p["output"]["kernel"], rtol=1e-6)


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_periodic_embedding_exact_period(name):
    L = 2.0
    m = build_model(cfg(name, **FULL), input_dim=2, output_dim=2, periodic_axes={1: L})
    p = m.init(jax.random.key(2))
    f = jax.vmap(m.apply, in_axes=(None, 0))
    z = jax.random.uniform(jax.random.key(3), (16, 2), minval=-1.0, maxval=1.0)
    shift_x = jnp.array([0.0, L])
    np.testing.assert_allclose(f(p, z + shift_x), f(p, z), atol=2e-5)
    np.testing.assert_allclose(f(p, z - 3 * shift_x), f(p, z), atol=5e-5)
    # not periodic in the other axis
    shift_t = jnp.array([L, 0.0])
    assert float(jnp.abs(f(p, z + shift_t) - f(p, z)).max()) > 1e-2


def test_periodic_embed_values_and_ignored_when_off():
    z = jnp.array([0.5, 0.25, 3.0])
    e = periodic_embed(z, {1: 1.0})  # w = 2 pi
    np.testing.assert_allclose(e, [0.5, math.cos(math.pi / 2), math.sin(math.pi / 2), 3.0], atol=1e-6)
    # periodic=False or empty axes: raw input goes in
    for c, axes in [(cfg(periodic=False), {1: 1.0}), (cfg(periodic=True), {}), (cfg(periodic=True), None)]:
        p = build_model(c, input_dim=3, output_dim=1, periodic_axes=axes).init(jax.random.key(0))
        assert p["hidden"][0]["kernel"].shape[0] == 3
    p = build_model(cfg(periodic=True), input_dim=3, output_dim=1, periodic_axes={0: 1.0, 2: 2.0}).init(
        jax.random.key(0))
    assert p["hidden"][0]["kernel"].shape[0] == 5


def test_rwf_effective_kernel_equals_glorot():
    key = jax.random.key(4)
    plain = dense_init(key, 30, 40)
    fact = dense_init(key, 30, 40, rwf=(1.0, 0.1))
    assert set(fact) == {"v", "s", "bias"} and fact["s"].shape == (40,)
    np.testing.assert_allclose(jnp.exp(fact["s"]) * fact["v"], plain["kernel"], rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(dense_kernel(fact), plain["kernel"], rtol=1e-5, atol=1e-7)
    # Glorot normal std sqrt(2 / (fan_in + fan_out)); s ~ N(mean, std)
    big = dense_init(jax.random.key(5), 200, 300, rwf=(0.5, 0.1))
    w0 = dense_kernel(big)
    assert abs(float(jnp.std(w0)) / math.sqrt(2 / 500) - 1) < 0.05
    assert abs(float(jnp.mean(big["s"])) - 0.5) < 0.03 and abs(float(jnp.std(big["s"])) - 0.1) < 0.03


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_rwf_model_matches_unfactorised_at_init(name):
    kw = dict(fourier={"scale": 1.0, "dim": 8})
    m0 = build_model(cfg(name, **kw), input_dim=2, output_dim=2)
    m1 = build_model(cfg(name, rwf={"mean": 1.0, "std": 0.1}, **kw), input_dim=2, output_dim=2)
    key = jax.random.key(6)
    z = jnp.array([0.4, -0.2])
    np.testing.assert_allclose(m1.apply(m1.init(key), z), m0.apply(m0.init(key), z), rtol=1e-4, atol=1e-5)


def test_fourier_scale_statistics():
    m = build_model(cfg("mlp", fourier={"scale": 10.0, "dim": 1000}), input_dim=3, output_dim=1)
    p = m.init(jax.random.key(7))
    B = p["embedding"]["fourier"]["B"]
    assert B.shape == (3, 1000)
    assert abs(float(jnp.std(B)) / 10.0 - 1) < 0.05 and abs(float(jnp.mean(B))) < 0.5
    assert p["hidden"][0]["kernel"].shape[0] == 2000  # [cos(zB), sin(zB)]
    z = jnp.array([0.1, 0.2, 0.3])
    np.testing.assert_allclose(fourier_apply(p["embedding"]["fourier"], z)[:1000], jnp.cos(z @ B), atol=1e-6)


def test_modified_mlp_structure():
    m = build_model(cfg("modified_mlp", depth=3, width=9), input_dim=2, output_dim=1)
    p = m.init(jax.random.key(8))
    assert p["encoder_u"]["kernel"].shape == (2, 9) and p["encoder_v"]["kernel"].shape == (2, 9)
    assert len(p["hidden"]) == 3
    z = jnp.array([0.3, 0.6])
    u = jnp.tanh(z @ p["encoder_u"]["kernel"])
    v = jnp.tanh(z @ p["encoder_v"]["kernel"])
    h = z
    for l in p["hidden"]:
        h = jnp.tanh(h @ l["kernel"])
        h = h * u + (1 - h) * v
    np.testing.assert_allclose(m.apply(p, z), h @ p["output"]["kernel"], rtol=1e-5, atol=1e-6)


def _pirate_embed(p, z, L):
    return fourier_apply(p["embedding"]["fourier"], periodic_embed(z, {1: L}))


def test_pirate_linear_in_embedding_at_init():
    L = 2.0
    m = build_model(cfg("pirate", width=16, num_blocks=3, **FULL), input_dim=2, output_dim=2,
                    periodic_axes={1: L})
    p = m.init(jax.random.key(9))
    assert len(p["blocks"]) == 3 and all(float(b["alpha"]) == 0.0 for b in p["blocks"])
    z = jax.random.uniform(jax.random.key(10), (8, 2))
    emb = jax.vmap(_pirate_embed, in_axes=(None, 0, None))(p, z, L)
    assert emb.shape == (8, 16)  # fourier dim 8 -> 16 = width
    expected = emb @ dense_kernel(p["output"]) + p["output"]["bias"]
    np.testing.assert_allclose(jax.vmap(m.apply, in_axes=(None, 0))(p, z), expected, rtol=1e-5, atol=1e-6)
    # once alpha moves, the blocks contribute
    p2 = dict(p, blocks=[dict(b, alpha=jnp.float32(0.5)) for b in p["blocks"]])
    assert float(jnp.abs(jax.vmap(m.apply, in_axes=(None, 0))(p2, z) - expected).max()) > 1e-4


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
    pts = jax.random.uniform(jax.random.key(12), (64, 2), minval=-1.0, maxval=1.0)
    emb = jax.vmap(lambda z: fourier_apply(p["embedding"]["fourier"], z))(pts)
    w_true = jax.random.normal(jax.random.key(13), (16, 2))
    targets = emb @ w_true + jnp.array([0.3, -0.1])
    q = m.fit_output(p, pts, targets)
    pred = jax.vmap(m.apply, in_axes=(None, 0))(q, pts)
    assert float(jnp.abs(pred - targets).max()) < 1e-4 * max(1.0, float(jnp.abs(targets).max()))
    # only the output layer changed (RWF scales kept)
    for k in ("embedding", "encoder_u", "encoder_v", "blocks"):
        assert jax.tree.all(jax.tree.map(lambda a, b: bool(jnp.array_equal(a, b)), q[k], p[k]))
    if rwf is not None:
        assert bool(jnp.array_equal(q["output"]["s"], p["output"]["s"]))
    jax.jit(m.fit_output)(p, pts, targets)  # jittable


def test_pirate_pi_init_reduces_error_on_sine():
    m = build_model(cfg("pirate", width=64, num_blocks=1, fourier={"scale": 2.0, "dim": 32},
                        periodic=True), input_dim=2, output_dim=1, periodic_axes={1: 2.0})
    p = m.init(jax.random.key(14))
    x = jnp.linspace(-1.0, 1.0, 128)
    pts = jnp.stack([jnp.zeros_like(x), x], axis=1)  # (t = 0, x)
    u0 = jnp.sin(jnp.pi * x)
    f = jax.jit(jax.vmap(m.apply, in_axes=(None, 0)))
    before = float(jnp.sqrt(jnp.mean((f(p, pts)[:, 0] - u0) ** 2)))
    q = jax.jit(m.fit_output)(p, pts, u0)  # 1-D targets accepted when output_dim == 1
    after = float(jnp.sqrt(jnp.mean((f(q, pts)[:, 0] - u0) ** 2)))
    assert after < 1e-2 and after < 0.05 * before
    # also fits between the training points
    xt = jnp.linspace(-0.99, 0.99, 57)
    ptt = jnp.stack([jnp.zeros_like(xt), xt], axis=1)
    assert float(jnp.abs(f(q, ptt)[:, 0] - jnp.sin(jnp.pi * xt)).max()) < 5e-2


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_forward_mode_matches_finite_difference(name):
    with x64():
        m = build_model(cfg(name, activation="swish", **FULL), input_dim=2, output_dim=2,
                        periodic_axes={1: 2.0}, dtype=jnp.float64)
        p = m.init(jax.random.key(15))
        if name == "pirate":  # make the blocks active
            p = dict(p, blocks=[dict(b, alpha=jnp.float64(0.7)) for b in p["blocks"]])
        z = jnp.array([0.3, -0.4])
        eps = 1e-6

        @jax.jit
        def both(p, d):
            _, jv = jax.jvp(lambda zz: m.apply(p, zz), (z,), (d,))
            fd = (m.apply(p, z + eps * d) - m.apply(p, z - eps * d)) / (2 * eps)
            return jv, fd

        for d in (jnp.array([1.0, 0.0]), jnp.array([0.0, 1.0])):
            jv, fd = both(p, d)
            np.testing.assert_allclose(jv, fd, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_jet_second_derivative_matches_nested_jvp(activation):
    from jax.experimental import jet

    m = build_model(cfg("modified_mlp", activation=activation, **FULL), input_dim=2, output_dim=1,
                    periodic_axes={1: 2.0})
    p = m.init(jax.random.key(16))
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


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_float64_build(name):
    with x64():
        m = build_model(cfg(name, **FULL), input_dim=2, output_dim=1, periodic_axes={0: 1.0},
                        dtype=jnp.float64)
        p = m.init(jax.random.key(17))
        assert all(leaf.dtype == jnp.float64 for leaf in jax.tree.leaves(p))
        assert m.apply(p, jnp.array([0.1, 0.2])).dtype == jnp.float64
        if m.fit_output is not None:
            pts = jnp.linspace(0, 1, 40).reshape(20, 2)
            q = m.fit_output(p, pts, jnp.sin(pts[:, :1]))
            assert all(leaf.dtype == jnp.float64 for leaf in jax.tree.leaves(q))


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

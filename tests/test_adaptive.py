"""Adaptive loss weights and causal training inside real runs."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import QUICK, read_jsonl
from pinnrun import weighting
from pinnrun.adaptive import grad_norm_targets, ntk_targets
from pinnrun.losses import PINNLoss
from pinnrun.pdes.wave import Wave
from pinnrun.archs import build_model


def small_wave_loss(batch=32):
    pde = Wave(eval_resolution=(5, 16))
    model = build_model({"name": "mlp", "width": 8, "depth": 2, "activation": "tanh"}, input_dim=2, output_dim=1)
    params = model.init(jax.random.PRNGKey(0))
    loss = PINNLoss(pde, model.apply, batch)
    points = loss.sample(jax.random.PRNGKey(1), loss.fixed_points(jax.random.PRNGKey(2)))
    return loss, params, points


def test_grad_norm_targets_follow_the_formula():
    loss, params, points = small_wave_loss()
    per_term = jax.jit(jax.jacrev(loss.loss_vector))(params, points)
    norms = np.array([
        np.sqrt(sum(float(jnp.sum(leaf[k] ** 2)) for leaf in jax.tree.leaves(per_term)))
        for k in range(len(loss.term_names))
    ])
    expected = norms.mean() / (norms + 1e-5 * norms.mean())
    np.testing.assert_allclose(jax.jit(grad_norm_targets, static_argnums=0)(loss, params, points), expected, rtol=1e-4)


def test_ntk_targets_match_brute_force_jacobians():
    loss, params, points = small_wave_loss(batch=16)
    traces = []
    for ps in loss.point_sets:
        y = points.context.targets.get(ps.name)
        residuals = lambda p, ps=ps, y=y: jax.vmap(lambda z, y: ps.evaluate(lambda zz: loss.apply(p, zz), z, y))(points.points[ps.name], y)  # noqa: E731
        for term in ps.terms:
            jac = jax.jit(jax.jacrev(lambda p, term=term, residuals=residuals: residuals(p)[term].reshape(-1)))(params)
            rows = sum(jnp.sum(leaf.reshape(leaf.shape[0], -1) ** 2, axis=1) for leaf in jax.tree.leaves(jac))
            traces.append(float(jnp.mean(rows)))
    expected = weighting.ntk_weights(jnp.array(traces))
    got = ntk_targets(loss, params, points, jax.random.PRNGKey(3), chunk_size=5, max_points=None)
    np.testing.assert_allclose(got, expected, rtol=1e-4)


# The NTK run is slow (about 25 s); its maths stays in the default suite through
# test_ntk_targets_match_brute_force_jacobians, the in-run update path through the grad-norm run.
@pytest.mark.parametrize("scheme", ["grad_norm", pytest.param("ntk", marks=pytest.mark.slow)])
def test_adaptive_weights_change_during_a_run(cli, scheme):
    extra = ["weighting.ntk_max_points=32"] if scheme == "ntk" else []
    result = cli(["pde=wave", f"weighting={scheme}", "weighting.update_every=10", *QUICK, "pde.eval_resolution=[11,16]", "arch.fourier.dim=8", *extra])
    assert result.returncode == 0, result.stderr[-3000:]
    (path,) = cli.cwd.rglob("metrics.jsonl")
    records = read_jsonl(path)
    first = {k: v for k, v in records[0].items() if k.startswith("weight/")}
    assert set(first) == {"weight/ic", "weight/ic_t", "weight/bc", "weight/res"}
    # initial weights 100, 100, 10, 1 move towards the balancing targets
    assert first != {"weight/ic": 100.0, "weight/ic_t": 100.0, "weight/bc": 10.0, "weight/res": 1.0}
    assert records[0]["weight/res"] != records[1]["weight/res"]


def test_causal_training_logs_causal_weights(cli):
    result = cli(["pde=wave", "weighting.causal=true", "weighting.causal_tol=1.0", "weighting.num_chunks=8", *QUICK, "pde.eval_resolution=[11,16]", "arch.fourier.dim=8"])
    assert result.returncode == 0, result.stderr[-3000:]
    (path,) = cli.cwd.rglob("metrics.jsonl")
    record = read_jsonl(path)[-1]
    assert 0.0 <= record["causal/min_w"] <= record["causal/mean_w"] <= 1.0

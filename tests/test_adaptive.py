"""Adaptive loss weights and causal training inside real runs."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import COMPILE_CACHE, QUICK, read_jsonl
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


def ntk_rows_by_hand(loss, params, batch):
    """[(point set, per-point ||d r_k(z) / d theta||^2 as float64)] for every term, from each term's
    residual Jacobian (brute force, not through pinnrun.weighting)."""
    out = []
    for ps in loss.point_sets:
        y = batch.context.targets.get(ps.name)
        res = lambda p, ps=ps, y=y: jax.vmap(lambda z, y: ps.evaluate(lambda zz: loss.apply(p, zz), z, y))(batch.points[ps.name], y)  # noqa: E731
        for term in ps.terms:
            jac = jax.jit(jax.jacrev(lambda p, term=term, res=res: res(p)[term].reshape(-1)))(params)
            out.append((ps, sum(np.sum(np.asarray(leaf).reshape(leaf.shape[0], -1).astype(np.float64) ** 2, axis=1) for leaf in jax.tree.leaves(jac))))
    return out


def test_ntk_targets_match_brute_force_jacobians():
    loss, params, points = small_wave_loss(batch=16)
    traces = [rows.mean() for _, rows in ntk_rows_by_hand(loss, params, points)]
    expected = weighting.ntk_weights(jnp.array(traces))
    got = ntk_targets(loss, params, points, jax.random.PRNGKey(3), chunk_size=5, max_points=None)
    np.testing.assert_allclose(got, expected, rtol=1e-4)


def run_recording_weight_updates(tmp_path, overrides):
    """A short run in this process: (metrics records, the weight updates made), each update as
    (step, params, key, context, weights before, weights after), copied when it is made (the chunks
    donate the state's buffers)."""
    from hydra import compose, initialize_config_module

    from pinnrun.build import build, jax_settings
    from pinnrun.config import validate
    from pinnrun.trainer import Trainer

    with initialize_config_module(config_module="pinnrun.conf", version_base="1.3"):
        cfg = validate(compose(config_name="config", overrides=[*QUICK, "train.progress=none", f"train.compile_cache_dir={COMPILE_CACHE}", *overrides]))
    updates = []
    with jax_settings(cfg):
        trainer = Trainer(cfg, build(cfg), tmp_path)
        update = trainer.weighting.update

        def recording(stage, loss, fixed_points, state):
            new = update(stage, loss, fixed_points, state)
            copy = lambda tree: jax.tree.map(np.asarray, jax.device_get(tree))  # noqa: E731
            updates.append((int(state.step), copy(state.params), copy(state.key), copy(state.context), copy(state.weights), copy(new)))
            return new

        trainer.weighting.update = recording
        trainer.train()
        return read_jsonl(tmp_path / "metrics.jsonl"), updates, trainer, cfg


def by_hand_targets(scheme, loss, params, batch):
    """The balancing targets mean_j s_j / (s_k + 1e-5 mean_j s_j) from the run's own gradients, not
    through pinnrun.adaptive: s_k = ||grad L_k|| from the Jacobian of the loss vector (grad_norm), or
    s_k = mean over the term's points of ||d r_k(z) / d theta||^2 from each term's residual Jacobian
    (ntk, every point, no causal weights)."""
    if scheme == "grad_norm":
        jac = jax.jit(jax.jacrev(loss.loss_vector))(params, batch)
        s = np.sqrt(sum(np.sum(np.asarray(leaf).reshape(leaf.shape[0], -1).astype(np.float64) ** 2, axis=1) for leaf in jax.tree.leaves(jac)))
    else:
        s = [rows.mean() for _, rows in ntk_rows_by_hand(loss, params, batch)]
        s = np.array(s)
    return s.mean() / (s + 1e-5 * s.mean())


# The NTK run is slow (about 15 s); its maths stays in the default suite through
# test_ntk_targets_match_brute_force_jacobians, the in-run update path through the grad-norm run.
@pytest.mark.parametrize("scheme", ["grad_norm", pytest.param("ntk", marks=pytest.mark.slow)])
def test_adaptive_weights_of_a_run_follow_the_formula_on_its_gradients(tmp_path, scheme):
    """Every update_every steps the logged weights become 0.9 w + 0.1 w_new, w_new the balancing targets
    of the gradients at the run's parameters of that step (on that update's batch), recomputed here."""
    extra = ["weighting.ntk_max_points=100000", "weighting.causal=false"] if scheme == "ntk" else []  # every point
    records, updates, trainer, cfg = run_recording_weight_updates(
        tmp_path, ["pde=wave", f"weighting={scheme}", "weighting.update_every=10", "pde.eval_resolution=[11,16]", "arch.fourier.dim=8", *extra])
    assert [step for step, *_ in updates] == [0, 10] and [r["step"] for r in records] == [10, 20]
    names = trainer.term_names
    assert names == ("ic", "ic_t", "bc", "res")
    initial = {"ic": 100.0, "ic_t": 100.0, "bc": 10.0, "res": 1.0}
    assert updates[0][4] == initial and cfg["weighting"]["momentum"] == 0.9
    stage = trainer.stages[0]
    loss, fixed = trainer.loss(stage), trainer.fixed_points(stage)
    if scheme == "grad_norm":
        assert loss.causal is not None  # the wave's recipe trains causally: the norms are the causal loss's
    from pinnrun.build import jax_settings

    with jax_settings(cfg):  # the run's matmul precision
        for (step, params, key, context, before, after), record in zip(updates, records):
            batch = jax.jit(loss.sample)(jax.random.fold_in(key, 2), fixed, context)  # the update's own batch
            targets = by_hand_targets(scheme, loss, params, batch)
            expected = {k: 0.9 * before[k] + 0.1 * targets[i] for i, k in enumerate(names)}
            logged = {k: record[f"weight/{k}"] for k in names}  # the weights the next chunk trained with
            np.testing.assert_allclose([logged[k] for k in names], [expected[k] for k in names], rtol=2e-4, err_msg=f"step {step}")
            assert logged == {k: float(after[k]) for k in names}
    # not vacuous: the targets moved the weights, and differently at the two updates
    assert max(abs(records[0][f"weight/{k}"] - initial[k]) / initial[k] for k in names) > 0.05
    assert records[0]["weight/res"] != records[1]["weight/res"]


def test_ntk_targets_weigh_residual_points_by_their_causal_weights():
    """With causal training, the residual's trace is sum_c w_c mean_{i in c} K_ii / C, the NTK of the
    causal loss (the paper's compute_diag_ntk multiplies each time chunk's mean NTK by its weight);
    the initial and boundary terms keep the plain mean. A large tol makes the late weights tiny, so a
    trace that ignores them is off by far more than the tolerance."""
    import dataclasses

    from pinnrun.losses import CausalConfig

    loss, params, points = small_wave_loss(batch=24)
    loss = dataclasses.replace(loss, causal=CausalConfig(num_chunks=4, tol=50.0, time_axis=0, t_min=0.0, t_max=1.0))
    (residual_set,) = loss.causal_sets()
    chunk_weights = np.asarray(loss.causal_weights(params, points)[residual_set.name])
    assert chunk_weights[-1] < 0.5 * chunk_weights[0]   # the weights matter in this case
    traces = []
    for ps, rows in ntk_rows_by_hand(loss, params, points):
        if ps.name != residual_set.name:
            traces.append(rows.mean())
            continue
        chunk = np.minimum(np.floor(np.asarray(points.points[ps.name][:, 0]) * 4).astype(int), 3)
        means = [rows[chunk == c].mean() if np.any(chunk == c) else 0.0 for c in range(4)]
        traces.append(float(np.mean(chunk_weights * np.array(means))))
    expected = weighting.ntk_weights(jnp.array(traces))
    got = jax.jit(ntk_targets, static_argnums=(0, 4, 5))(loss, params, points, jax.random.PRNGKey(3), 5, None)
    np.testing.assert_allclose(got, expected, rtol=1e-4)
    # and with a subsample: every term still gets a finite, positive target
    sub = ntk_targets(loss, params, points, jax.random.PRNGKey(3), chunk_size=5, max_points=10)
    assert np.all(np.isfinite(sub)) and np.all(np.asarray(sub) > 0)

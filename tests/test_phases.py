"""Optimizer phases, L-BFGS, and the optimizer factory."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from conftest import QUICK, line_search_step, read_jsonl
from pinnrun.optim.factory import build_optimizer
from pinnrun.phases import make_lbfgs
from pinnrun.stages import plan_stages


def test_lbfgs_converges_on_rosenbrock():
    def rosenbrock(p):
        return (1 - p[0]) ** 2 + 100 * (p[1] - p[0] ** 2) ** 2

    optimizer = make_lbfgs(memory_size=10, max_linesearch_steps=30)
    params = jnp.array([-1.2, 1.0])
    state = optimizer.init(params)
    step = line_search_step(optimizer, rosenbrock)

    for _ in range(100):
        params, state = step(params, state)
    assert float(rosenbrock(params)) < 1e-6
    np.testing.assert_allclose(params, [1.0, 1.0], atol=1e-3)


def plan_phases(optim, steps, precision):
    cfg = {"train": {"steps": steps, "batch_size": 8, "time_windows": 1, "precision": precision}, "optim": optim, "pde": {}}
    return plan_stages(cfg, lambda pde: (0.0, 1.0))


def test_plan_phases_splits_the_steps():
    cfg = {"name": "phased", "phases": [{"name": "adam", "steps": None}, {"name": "lbfgs", "steps": 30, "precision": "float64"}]}
    phases = plan_phases(cfg, 100, "float32")
    assert [(p.phase, p.start, p.end, p.precision) for p in phases] == [("adam", 0, 70, "float32"), ("lbfgs", 70, 100, "float64")]
    single = plan_phases({"name": "adam"}, 100, "float32")
    assert [(p.start, p.end, p.name, p.phase) for p in single] == [(0, 100, "adam", None)]
    with pytest.raises(ValueError, match="optim.phases"):
        plan_phases({"name": "phased", "phases": [{"name": "adam", "steps": 80}, {"name": "lbfgs", "steps": 30}]}, 100, "float32")
    with pytest.raises(ValueError, match="at most one entry"):
        plan_phases({"name": "phased", "phases": [{"name": "adam", "steps": None}, {"name": "soap", "steps": None}]}, 100, "float32")


# Shampoo is slow to compile (4 s on 2 cores) and goes through the same factory line as the others.
@pytest.mark.parametrize("name", ["adam", "soap", pytest.param("shampoo", marks=pytest.mark.slow)])
def test_clip_norm_clips_the_gradient_every_optimizer_steps_with(name):
    """clip_norm c: the clipped optimizer's updates are those of the unclipped one fed g min(1, c / ||g||),
    over steps with gradient norms above and below c. Several steps, since a single one proves nothing:
    SOAP's first call only builds its bases, and Adam's first update g / |g| is blind to the scale."""
    base = {"lr": 0.1, "warmup_steps": 0, "decay_rate": 1.0, "decay_steps": 1}
    extra = {"weight_decay": 0.0, "precondition_frequency": 2} if name == "soap" else {}
    clipped, _ = build_optimizer({"name": name, **base, "clip_norm": 1.0, **extra})
    plain, _ = build_optimizer({"name": name, **base, **extra})
    params = {"w": jnp.arange(12.0).reshape(3, 4) / 10, "b": jnp.zeros(4)}
    rng = np.random.default_rng(0)
    grads = [
        {"w": jnp.asarray(scale * rng.normal(size=(3, 4)), jnp.float32), "b": jnp.asarray(scale * rng.normal(size=4), jnp.float32)}
        for scale in (30.0, 0.1, 10.0, 0.02, 3.0, 0.2)
    ]

    def by_hand(g):
        norm = np.sqrt(sum(float(jnp.sum(x**2)) for x in jax.tree.leaves(g)))
        return jax.tree.map(lambda x: x * min(1.0, 1.0 / norm), g)

    def updates(optimizer, gradients):
        step = jax.jit(optimizer.update)
        state, out = optimizer.init(params), []
        for g in gradients:
            u, state = step(g, state, params)
            out.append(np.concatenate([np.ravel(x) for x in jax.tree.leaves(u)]))
        return np.stack(out)

    got = updates(clipped, grads)
    expected = updates(plain, [by_hand(g) for g in grads])
    unclipped = updates(plain, grads)
    assert np.abs(got[1:]).min(axis=1).max() > 0  # the optimizer moves (SOAP: from the second call)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-7)
    # not vacuous: without clipping the updates differ (the big gradients dominate the moments)
    assert np.max(np.abs(unclipped - expected)) > 0.1 * np.max(np.abs(expected))


def test_adam_then_lbfgs_run_logs_both_phases(cli):
    result = cli(["optim=adam_lbfgs", *QUICK, "train.steps=40", "optim.phases.1.steps=20", "optim.phases.1.resample_every=10", "pde.eval_resolution=[11,11]"])
    assert result.returncode == 0, result.stderr[-3000:]
    assert "phase 2/2: lbfgs from step 20" in result.stdout
    (path,) = cli.cwd.rglob("metrics.jsonl")
    records = read_jsonl(path)
    assert [r["phase"] for r in records] == ["adam", "adam", "lbfgs", "lbfgs"]
    assert "lr" in records[0] and "lr" not in records[-1]
    summary = json.loads((path.parent / "summary.json").read_text())
    assert summary["optimizer"] == "adam+lbfgs"


# Slow (35-50 s on 2 cores). The default suite keeps the path: a two-phase run by
# test_adam_then_lbfgs_run_logs_both_phases, float64 networks by test_archs' test_float64_build.
@pytest.mark.slow
def test_float64_polish_phase(cli):
    result = cli(["optim=adam_lbfgs", *QUICK, "train.steps=30", "optim.phases.1.steps=10", "+optim.phases.1.precision=float64", "pde.eval_resolution=[11,11]"])
    assert result.returncode == 0, result.stderr[-3000:]
    assert "lbfgs from step 20 (float64)" in result.stdout
    (path,) = cli.cwd.rglob("params.npz")
    with np.load(path) as params:
        assert all(params[k].dtype == np.float64 for k in params.files)


def test_soap_chunk_runs_without_host_callbacks():
    from hydra import compose, initialize_config_module

    from pinnrun.build import build, jax_settings
    from pinnrun.config import validate
    from pinnrun.losses import StageContext
    from pinnrun.phases import build_stepper
    from pinnrun.trainer import TrainState, make_chunk

    with initialize_config_module(config_module="pinnrun.conf", version_base="1.3"):
        cfg = validate(compose(config_name="config", overrides=["optim=soap", "arch.width=8", "arch.depth=2", "train.batch_size=16"]))
    with jax_settings(cfg):
        components = build(cfg)
        stepper = build_stepper(components.stages[0], components.loss, {})
        params = components.model.init(jax.random.PRNGKey(0))
        context = StageContext(None, {})
        weights = {k: jnp.asarray(1.0) for k in components.weights}
        state = TrainState(jnp.asarray(0, jnp.int32), params, stepper.init(params, None, context), weights, jax.random.PRNGKey(1), context)
        hlo = jax.jit(make_chunk(stepper, 5)).lower(state).as_text()
    assert "while" in hlo  # the scan over steps
    assert "callback" not in hlo.lower() and "host" not in hlo.lower()


@pytest.mark.parametrize("mode", [True, "textbook"])
def test_schedule_free_is_the_papers_chain(mode):
    """optim.schedule_free=true builds chain(clip, schedule_free(soap(schedule, b1=0.9), schedule, b1=0.9))
    as the paper's public code does (base momentum kept); textbook turns the base momentum off."""
    from pinnrun.optim.schedules import warmup_exponential_decay
    from pinnrun.optim.soap import soap

    cfg = {"name": "soap", "lr": 1e-2, "warmup_steps": 3, "decay_rate": 0.9, "decay_steps": 5, "clip_norm": 1.0,
           "schedule_free": mode, "schedule_free_b1": 0.9, "b1": 0.9, "b2": 0.999, "precondition_frequency": 2}
    built, _ = build_optimizer(cfg)
    schedule = warmup_exponential_decay(1e-2, 3, 0.9, 5)
    by_hand = optax.chain(
        optax.clip_by_global_norm(1.0),
        optax.contrib.schedule_free(soap(schedule, b1=0.9 if mode is True else 0.0, b2=0.999, precondition_frequency=2), schedule, b1=0.9),
    )
    target = jnp.arange(12.0).reshape(3, 4) / 10
    loss = lambda p: jnp.sum((p["w"] @ jnp.ones(4) - target @ jnp.ones(4)) ** 2) + jnp.sum((p["w"] - target) ** 4)  # noqa: E731
    results = []
    for optimizer in (built, by_hand):
        params, state = {"w": jnp.zeros((3, 4))}, optimizer.init({"w": jnp.zeros((3, 4))})
        for _ in range(8):
            updates, state = optimizer.update(jax.grad(loss)(params), state, params)
            params = optax.apply_updates(params, updates)
        results.append((params, state))
    (params, state), (expected, _) = results
    np.testing.assert_array_equal(params["w"], expected["w"])
    # Training uses the parameters the optimizer returns (the gradient points y), not the average x.
    averaged = optax.contrib.schedule_free_eval_params(state[1], params)
    assert not np.allclose(averaged["w"], params["w"])
    assert float(loss(params)) < float(loss({"w": jnp.zeros((3, 4))}))

"""Stages: one loop for optimizer phases, time windows and curricula (pinnrun.stages, pinnrun.trainer)."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hydra import compose, initialize_config_module

from conftest import read_jsonl
from pinnrun.config import ConfigError, validate
from pinnrun.stages import plan_stages
from test_resume import SLOWISH, check_resumed_equals_reference, reference_run, start, wait_for_checkpoint

TINY = [
    "arch.width=16",
    "arch.depth=2",
    "train.batch_size=64",
    "train.log_every=10",
    "train.eval_every=10",
    "train.figures=false",
    "train.alignment_every=0",
    "train.progress=none",
    "checkpoint.every=0",
]


def composed(*overrides: str) -> dict:
    with initialize_config_module(config_module="pinnrun.conf", version_base="1.3"):
        return validate(compose(config_name="config", overrides=list(overrides)))


def train_in_process(cfg: dict, run_dir):
    from pinnrun.build import build, jax_settings
    from pinnrun.trainer import Trainer

    with jax_settings(cfg):
        trainer = Trainer(cfg, build(cfg), run_dir)
        summary = trainer.train()
    return trainer, summary


def adam_count(opt_state) -> int:
    import optax

    nodes = jax.tree.leaves(opt_state, is_leaf=lambda x: isinstance(x, optax.ScaleByAdamState))
    return int(next(n for n in nodes if isinstance(n, optax.ScaleByAdamState)).count)


# ----- planning -----------------------------------------------------------------------------------
def test_a_curriculum_of_time_windows_with_two_phases_each():
    cfg = {
        "train": {"steps": 30, "batch_size": 8, "time_windows": 2, "precision": "float32"},
        "optim": {"name": "phased", "phases": [{"name": "soap", "steps": None, "lr": 1e-3}, {"name": "lbfgs", "steps": 10}]},
        "pde": {"_target_": "p", "t_max": 1.0},
        "stages": [
            {"name": "a", "steps": 30, "carry": {"opt_state": False}},
            {"name": "b", "steps": None, "pde": {"t_max": 2.0}, "batch_size": 16, "carry": {"opt_state": False, "lr_clock": False}},
        ],
    }
    cfg["train"]["steps"] = 60
    stages = plan_stages(cfg, lambda pde: (0.0, pde["t_max"]))
    assert [s.name for s in stages] == [
        "a/window_0/soap", "a/window_0/lbfgs", "a/window_1/soap", "a/window_1/lbfgs",
        "b/window_0/soap", "b/window_0/lbfgs", "b/window_1/soap", "b/window_1/lbfgs",
    ]
    assert [(s.start, s.end) for s in stages][:3] == [(0, 20), (20, 30), (30, 50)] and stages[-1].end == 120
    assert [s.time_range for s in stages[::2]] == [(0.0, 0.5), (0.5, 1.0), (0.0, 1.0), (1.0, 2.0)]
    assert stages[4].pde["t_max"] == 2.0 and stages[4].batch_size == 16 and stages[0].batch_size == 8
    window = stages[2].carry  # a new window: the previous network and its initial condition, a fresh optimizer
    assert window.params and window.initial_condition and not (window.opt_state or window.weights or window.lr_clock or window.rng)
    phase = stages[1].carry  # a new phase: parameters, weights and random stream, a fresh optimizer and schedule
    assert phase.params and phase.weights and phase.rng and not (phase.opt_state or phase.lr_clock or phase.initial_condition)
    assert not stages[4].carry.initial_condition  # a new curriculum entry starts from the PDE's own initial condition
    # Windows of one entry compile to the same step; the other entry's PDE differs.
    assert stages[0].signature == stages[2].signature != stages[4].signature
    assert stages[2].clock_origin == 30 and stages[2].weights_origin == 30 and stages[1].weights_origin == 0


def test_each_time_window_may_have_its_own_step_count():
    cfg = {
        "train": {"steps": 30, "batch_size": 8, "time_windows": 3, "window_steps": [40, 15, 12], "precision": "float32"},
        "optim": {"name": "phased", "phases": [{"name": "soap", "steps": None, "lr": 1e-3}, {"name": "lbfgs", "steps": 10}]},
        "pde": {"t_max": 0.3},
    }
    stages = plan_stages(cfg, lambda pde: (0.0, pde["t_max"]))
    assert [(s.name, s.start, s.end) for s in stages] == [
        ("window_0/soap", 0, 30), ("window_0/lbfgs", 30, 40), ("window_1/soap", 40, 45), ("window_1/lbfgs", 45, 55),
        ("window_2/soap", 55, 57), ("window_2/lbfgs", 57, 67),
    ]
    assert [s.clock_origin for s in stages[::2]] == [0, 40, 55]   # every window restarts its schedule
    cfg["train"]["window_steps"] = [40, 15, 10]   # the fixed L-BFGS phase leaves nothing to SOAP in window 2
    with pytest.raises(ConfigError, match=r"set train.window_steps\[2\] to more than 10"):
        plan_stages(cfg, lambda pde: (0.0, pde["t_max"]))


def test_carrying_the_learning_rate_clock_shifts_the_schedule():
    cfg = {
        "train": {"steps": 20, "batch_size": 8, "time_windows": 1, "precision": "float32"},
        "optim": {"name": "adam", "lr": 1e-3},
        "pde": {},
        "stages": [{"steps": 10}, {"steps": 10, "carry": {"opt_state": False, "lr_clock": True}},
                   {"steps": None, "carry": {"opt_state": True, "lr_clock": False}}],
    }
    cfg["train"]["steps"] = 30
    first, second, third = plan_stages(cfg, None)
    assert (second.clock_origin, second.count_origin, second.schedule_offset) == (0, 10, 10)
    assert (third.clock_origin, third.count_origin, third.schedule_offset) == (20, 10, -10)


@pytest.mark.parametrize(
    "change, fragment",
    [
        ({"stages": [{"steps": 10, "optim": {"name": "soap"}}, {"steps": 10}]}, "carry.opt_state: the optimizer changes"),
        ({"stages": [{"steps": 10, "bogus": 1}]}, "stages[0].bogus: unknown key"),
        ({"stages": [{"steps": 10, "carry": {"momentum": True}}]}, "stages[0].carry.momentum: unknown key"),
        ({"stages": [{"steps": 10, "carry": {"params": "yes"}}]}, "stages[0].carry.params must be true or false"),
        ({"stages": [{"steps": 10}, {"steps": 15}]}, "stages: the steps given (stages.0.steps=10, stages.1.steps=15) must leave"),
        ({"stages": [{"steps": 20, "optim": {"lr": -1}}]}, "stages[0].optim.lr must be a number > 0.0"),
        ({"stages": [{"steps": 20, "pde": {"_target_": "x"}}]}, "stages[0].pde._target_"),
        ({"stages": []}, "stages must be null or a non-empty list"),
        ({"optim": {"schedule_free": "maybe"}}, "optim.schedule_free must be one of false, true"),
        ({"train": {"time_windows": 2, "window_steps": [10]}}, "train.window_steps must list one step count per time window: 2"),
        ({"train": {"time_windows": 2, "window_steps": [10, 0]}}, "train.window_steps[1] must be an integer >= 1; got 0"),
        ({"train": {"time_windows": 2, "window_steps": 10}}, "train.window_steps must be null or a list of 2 step counts"),
        ({"train": {"time_windows": 1, "window_steps": [10]}, "stages": [{"steps": 20}]}, "train.window_steps: a curriculum"),
    ],
)
def test_bad_stages_are_one_line_config_errors(change, fragment):
    from pinnrun.build import build, jax_settings
    from pinnrun.stages import merge

    cfg = merge(composed("train.steps=20", "pde.eval_resolution=[5,5]"), change)
    with pytest.raises(ConfigError) as error:
        with jax_settings(validate(cfg)):
            build(cfg)
    assert fragment in str(error.value) and "\n" not in str(error.value)


# ----- the loop -----------------------------------------------------------------------------------
def test_rollback_into_an_earlier_phase_runs_the_phase_it_interrupted(tmp_path, monkeypatch):
    """Adam for 20 steps, then an optimizer that turns NaN at its 6th step while the learning rate is
    above 7.5e-4: the rollback restores the checkpoint at step 20 (the end of the Adam phase) and must
    run the second phase again, at half the learning rate, not skip it."""
    from pinnrun.optim import factory

    monkeypatch.setitem(factory.OPTIMIZERS, "spiky", "test_resume:spiky_sgd")
    cfg = composed("train.on_nan=rollback", "train.steps=40", *SLOWISH)
    cfg["optim"] = {
        "name": "phased",
        "phases": [
            {"name": "adam", "steps": 20, "lr": 1e-3, "warmup_steps": 0, "decay_rate": 0.9, "decay_steps": 2000, "clip_norm": None},
            {"name": "spiky", "steps": 20, "lr": 1e-3, "warmup_steps": 0, "decay_rate": 1.0, "decay_steps": 1, "clip_norm": None, "spike_at": 5},
        ],
    }
    cfg = validate(cfg)
    _, summary = train_in_process(cfg, tmp_path)
    assert summary["rollbacks"] == 1
    records = read_jsonl(tmp_path / "metrics.jsonl")
    assert [(r["step"], r["phase"]) for r in records] == [(10, "adam"), (20, "adam"), (30, "spiky"), (40, "spiky")]
    assert records[2]["lr"] == pytest.approx(5e-4) and all(np.isfinite(r["loss"]) for r in records)


CURRICULUM = ["stages=kovasznay_re", "stages.0.steps=20", "train.steps=40", "optim.warmup_steps=30", "pde.eval_resolution=[11,11]", *TINY]


@pytest.mark.parametrize("carry", [True, False])
def test_a_curriculum_carries_optimizer_state_and_learning_rate_clock(tmp_path, carry):
    flag = str(carry).lower()
    cfg = composed(*CURRICULUM, f"stages.1.carry.opt_state={flag}", f"stages.1.carry.lr_clock={flag}")
    trainer, summary = train_in_process(cfg, tmp_path)
    # Adam's step count goes on through both stages, or restarts at the second.
    assert adam_count(trainer.final_state.opt_state) == (40 if carry else 20)
    records = {r["step"]: r for r in read_jsonl(tmp_path / "metrics.jsonl")}
    # Warmup over 30 steps: at step 30 (the last lr used is step 29's) the clock reads 29, or 9 after a restart.
    assert records[30]["lr"] == pytest.approx(1e-3 * (30 if carry else 10) / 30)
    assert [records[s]["stage"] for s in (10, 20, 30, 40)] == ["re20", "re20", "re40", "re40"]
    assert [(s["name"], s["start"], s["end"]) for s in summary["stages"]] == [("re20", 0, 20), ("re40", 20, 40)]
    assert all(s["wall_seconds"] > 0 and set(s["final_rel_l2"]) == {"u", "v", "p"} for s in summary["stages"])
    assert summary["final_rel_l2"] == summary["stages"][-1]["final_rel_l2"]
    # The first stage is judged against Re 20's exact solution, the second against Re 40's.
    assert trainer.evaluator(trainer.stages[0]).reference.fields["u"].min() != trainer.evaluator(None).reference.fields["u"].min()


# Slow (57 s): the default suite keeps the same path (a schedule-free, clipped SOAP curriculum killed
# in its second stage and resumed bit for bit) in tests/test_cavity.py's kill test.
@pytest.mark.slow
def test_a_schedule_free_curriculum_resumes_bit_for_bit_after_a_kill_in_its_second_stage(tmp_path):
    args = ["stages=kovasznay_re", "stages.0.steps=60", "optim=soap", "optim.schedule_free=true", "optim.clip_norm=1.0"]
    steps = 120
    reference = reference_run(tmp_path, steps, args)
    run_dir = tmp_path / "killed"
    proc = start([f"train.steps={steps}", *SLOWISH, *args, f"hydra.run.dir={run_dir}"], tmp_path)
    wait_for_checkpoint(run_dir, 80, proc)  # inside stage re40 (steps 60-120)
    proc.kill()
    proc.wait()
    assert not (run_dir / "summary.json").exists(), "the run finished before it was killed"
    check_resumed_equals_reference(tmp_path, run_dir, reference, steps)
    got, want = (json.loads((d / "summary.json").read_text())["stages"] for d in (run_dir, reference))
    assert [(s["name"], s["final_rel_l2"]) for s in got] == [(s["name"], s["final_rel_l2"]) for s in want]


def test_time_marching_compiles_once_and_hands_each_window_the_previous_network(tmp_path):
    # KdV's quick budget (4 windows, its network, batch and causal weights), 10 steps per window but the last.
    quick = ["train.steps=10", "train.log_every=10", "train.eval_every=10", "train.figures=false",
             "train.alignment_every=0", "train.progress=none", "checkpoint.every=0"]
    # The last window takes 20 steps of its own (train.window_steps).
    cfg = composed("pde=kdv", "train=cpu_quick", *quick, "train.window_steps=[10,10,10,20]")
    trainer, summary = train_in_process(cfg, tmp_path)
    assert summary["compilations"] == 1 and summary["time_windows"] == 4 and summary["steps"] == 50
    assert [s["name"] for s in summary["stages"]] == ["window_0", "window_1", "window_2", "window_3"]
    records = read_jsonl(tmp_path / "metrics.jsonl")
    assert [(r["step"], r["window"]) for r in records] == [(10, 0), (20, 1), (30, 2), (40, 3), (50, 3)]
    # Window 1's initial-condition targets are window 0's network at t = 1/4 on the x-grid, evaluated
    # once (what the old per-step closure computed), to a few float32 ulp.
    first, second = trainer.stages[:2]
    params = trainer.window_params[0]
    from pinnrun.build import jax_settings

    with jax_settings(cfg):
        context = trainer.stage_context(second, first, params)
        x = trainer.pde(second).space_grid()[0]
        points = jnp.asarray(np.stack([np.full_like(x, 0.25), x], axis=-1), jnp.float32)
        apply = trainer.c.model_for(jnp.float32).apply
        closure = jax.jit(jax.vmap(lambda z: apply(params, z)))(points)
    # Two differently fused XLA programs evaluate the same network: their float32 sums differ by a few
    # units in the last place of the field's scale (measured: 6.4 ulp; bound: 16).
    difference = np.max(np.abs(np.asarray(context.targets["initial"]) - np.asarray(closure)))
    assert difference <= 16 * np.finfo(np.float32).eps * np.max(np.abs(np.asarray(closure)))
    assert float(context.time_range[0]) == 0.25 and float(context.time_range[1]) == 0.5
    assert sorted(p.name for p in (tmp_path / "windows").iterdir()) == [f"window_{k}.npz" for k in range(4)]


# Slow (about 25 s). The default suite keeps its parts: windows sharing one compilation by
# test_time_marching_compiles_once_and_hands_each_window_the_previous_network, an Adam -> L-BFGS run by
# tests/test_phases.py's test_adam_then_lbfgs_run_logs_both_phases.
@pytest.mark.slow
def test_a_curriculum_of_time_windows_with_adam_then_lbfgs_runs_and_shares_compilations(tmp_path):
    cfg = composed(
        "pde=wave", "weighting=fixed", "optim=adam_lbfgs", "optim.phases.1.steps=10", "optim.phases.1.resample_every=10",
        "optim.phases.1.max_linesearch_steps=4", "train.time_windows=2", "train.steps=40", "arch.fourier.dim=8",
        "pde.eval_resolution=[21,16]", *TINY,
    )
    cfg["stages"] = [
        {"name": "first", "steps": 20},
        # Adam's state cannot carry over from L-BFGS; a fresh clock too keeps the windows' steps alike.
        {"name": "second", "steps": None, "carry": {"opt_state": False, "lr_clock": False}},
    ]
    trainer, summary = train_in_process(validate(cfg), tmp_path)
    names = [s["name"] for s in summary["stages"]]
    assert names == [f"{e}/window_{k}/{p}" for e in ("first", "second") for k in (0, 1) for p in ("adam", "lbfgs")]
    assert summary["steps"] == 80 and summary["optimizer"] == "adam+lbfgs"
    # One compilation per optimizer: the windows of both entries (same PDE, same settings) share them.
    # (A curriculum entry that changes the PDE's parameters compiles its own: see the Kovasznay tests.)
    assert summary["compilations"] == 2
    records = read_jsonl(tmp_path / "metrics.jsonl")
    assert [r["stage"] for r in records] == names  # one record per 10-step stage
    assert all(np.isfinite(r["loss"]) for r in records)

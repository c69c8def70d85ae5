"""The lid-driven cavity PDE and its Reynolds curriculum (pinnrun/pdes/lid_driven_cavity.py,
conf/pde/lid_driven_cavity.yaml). The reference solver has its own tests (test_reference_cavity.py);
here references are generated on coarse grids (33 nodes per axis) in a cache folder of the test's own.
"""

from __future__ import annotations

import json
import math
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hydra import compose, initialize_config_module

from conftest import read_jsonl, run_cli
from pinnrun.config import ConfigError, validate
from pinnrun.pdes.lid_driven_cavity import LidDrivenCavity
from test_resume import assert_bitwise_equal, params_of, start, wait_for_checkpoint

PI = math.pi


def composed(*overrides: str) -> dict:
    with initialize_config_module(config_module="pinnrun.conf", version_base="1.3"):
        return validate(compose(config_name="config", overrides=["pde=lid_driven_cavity", *overrides]))


def terms(pde, name, f, z):
    ps = next(ps for ps in pde.point_sets() if ps.name == name)
    out = jax.vmap(lambda point: ps.evaluate(f, point))(jnp.asarray(z))
    return {k: np.asarray(v[:, 0]) for k, v in out.items()}


# ----- the PDE ------------------------------------------------------------------------------------


def test_navier_stokes_residuals_of_a_manufactured_flow():
    """u = sin(pi x) cos(pi y), v = -cos(pi x) sin(pi y) (divergence-free), p = x y: written out,
    ru = u u_x + v u_y + p_x + 2 pi^2 u / Re and rv likewise; rc = 0."""
    re = 400.0
    pde = LidDrivenCavity(re=re, eval_resolution=33)

    def f(z):
        x, y = z[0], z[1]
        return jnp.stack([jnp.sin(PI * x) * jnp.cos(PI * y), -jnp.cos(PI * x) * jnp.sin(PI * y), x * y])

    z = np.asarray(pde.sample_interior(jax.random.PRNGKey(0), 64), np.float64)
    x, y = z.T
    u, v = np.sin(PI * x) * np.cos(PI * y), -np.cos(PI * x) * np.sin(PI * y)
    u_x, u_y = PI * np.cos(PI * x) * np.cos(PI * y), -PI * np.sin(PI * x) * np.sin(PI * y)
    v_x, v_y = PI * np.sin(PI * x) * np.sin(PI * y), -PI * np.cos(PI * x) * np.cos(PI * y)
    got = terms(pde, "interior", f, z)   # float32
    np.testing.assert_allclose(got["ru"], u * u_x + v * u_y + y + 2 * PI**2 * u / re, atol=2e-5)
    np.testing.assert_allclose(got["rv"], u * v_x + v * v_y + x + 2 * PI**2 * v / re, atol=2e-5)
    np.testing.assert_allclose(got["rc"], 0.0, atol=2e-5)


@pytest.mark.parametrize("lid", ["smooth", "classic"])
def test_wall_terms_vanish_exactly_for_the_wall_velocity(lid):
    pde = LidDrivenCavity(lid=lid, eval_resolution=33)
    lid_u = lambda x: jnp.ones_like(x) if lid == "classic" else 1.0 - jnp.cosh(50.0 * (x - 0.5)) / np.cosh(25.0)  # noqa: E731

    def at_rest_but_the_lid(z):   # the wall velocity, and an arbitrary pressure
        return jnp.stack([jnp.where(z[1] == 1.0, lid_u(z[0]), 0.0), 0.0 * z[0], 3.0 + z[0]])

    ps = next(ps for ps in pde.point_sets() if ps.name == "boundary")
    z = np.asarray(ps.sample(jax.random.PRNGKey(1), 400))
    on_walls = (z == 0.0) | (z == 1.0)
    assert on_walls.any(axis=1).all()
    for axis in (0, 1):
        for side in (0.0, 1.0):   # every wall gets its quarter
            assert np.sum(z[:, axis] == side) == 100
    got = terms(pde, "boundary", at_rest_but_the_lid, z)
    np.testing.assert_array_equal(got["u_bc"], 0.0)
    np.testing.assert_array_equal(got["v_bc"], 0.0)
    lid_points = z[:, 1] == 1.0
    moved = terms(pde, "boundary", lambda p: jnp.zeros(3), z)["u_bc"]
    np.testing.assert_allclose(-moved[lid_points], np.asarray(lid_u(jnp.asarray(z[lid_points, 0]))), rtol=1e-6)
    assert np.all(moved[~lid_points] == 0.0)
    if lid == "smooth":   # the smooth lid is at rest at the corners, within float32
        assert abs(float(lid_u(jnp.float32(0.0)))) < 1e-6 and abs(float(lid_u(jnp.float32(1.0)))) < 1e-6


def test_reference_is_the_smooth_lid_solution_with_the_speed(tmp_path, monkeypatch):
    monkeypatch.setenv("PINNRUN_CACHE_DIR", str(tmp_path))
    pde = LidDrivenCavity(re=100.0, eval_resolution=33)
    ref = pde.reference()
    assert list(ref.axes) == ["x", "y"] and ref.shape == (33, 33)
    assert set(ref.fields) == {"u", "v", "p", "speed"}
    np.testing.assert_allclose(ref.fields["speed"], np.hypot(ref.fields["u"], ref.fields["v"]), rtol=1e-14, atol=0)
    np.testing.assert_allclose(ref.fields["u"][:, -1], 1.0 - np.cosh(50 * (ref.axes["x"] - 0.5)) / np.cosh(25.0))
    assert pde.evaluated_names == ("u", "v", "p", "speed")
    prov = pde.provenance()
    assert prov["parameters"] == {"re": 100.0, "lid": "smooth"} and len(prov["checksum"]) == 64


@pytest.mark.parametrize(
    "override, fragment",
    [
        ("pde.re=50", "pde.re must be a number in [100, 10000]"),
        ("quick.stages.1.pde.re=20000", "stages[1] (re400): pde (pinnrun.pdes.lid_driven_cavity.LidDrivenCavity): pde.re must be a number in [100, 10000]"),
    ],
)
def test_bad_cavity_input_is_a_one_line_error_before_anything_is_built(tmp_path, override, fragment):
    result = run_cli(["pde=lid_driven_cavity", "train=cpu_quick", override, f"hydra.run.dir={tmp_path / 'run'}"], tmp_path,
                     env={"PINNRUN_CACHE_DIR": str(tmp_path / "cache")})
    assert result.returncode != 0
    lines = [ln for ln in result.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and fragment in lines[0], result.stderr[-2000:]
    assert "compiling" not in result.stdout
    assert not (tmp_path / "cache").exists() and not (tmp_path / "run" / "checkpoints").exists()


@pytest.mark.parametrize(
    "override, fragment",
    [
        ("pde.lid=sliding", "pde.lid must be one of classic, smooth; got 'sliding'"),
        ("pde.eval_resolution=64", "pde.eval_resolution must be an odd integer >= 17"),
        ("pde.re=50", "pde.re must be a number in [100, 10000]"),
        ("pde.re=true", "pde.re must be a number; got True"),   # the kind check of every PDE parameter
    ],
)
def test_bad_cavity_parameters_are_config_errors(override, fragment):
    from pinnrun.build import build

    with pytest.raises(ConfigError, match=None) as info:
        build(composed("train=cpu_quick", override))
    assert fragment in str(info.value) and "\n" not in str(info.value)


# ----- the budgets --------------------------------------------------------------------------------


def test_recipe_is_the_papers():
    cfg = composed()
    assert [(s["name"], s["steps"], s["pde"]["re"]) for s in cfg["stages"]] == [
        ("re100", 10000, 100.0), ("re400", 20000, 400.0), ("re1000", 50000, 1000.0), ("re1600", 50000, 1600.0), ("re3200", None, 3200.0)]
    assert cfg["train"]["steps"] - 130000 == 500000 and cfg["train"]["batch_size"] == 4096
    arch = cfg["arch"]
    assert (arch["name"], arch["width"], arch["depth"], arch["activation"], arch["pi_init"], arch["periodic"]) == ("pirate", 256, 4, "tanh", False, False)
    assert arch["fourier"] == {"scale": 15.0, "dim": 256} and arch["rwf"] == {"mean": 1.0, "std": 0.1}
    assert cfg["pde"]["weights"] == {"u_bc": 100.0, "v_bc": 100.0, "ru": 1.0, "rv": 1.0, "rc": 10.0}
    w = cfg["weighting"]
    assert (w["name"], w["update_every"], w["causal"]) == ("grad_norm", 1000, False)
    soap = composed("optim=soap")["optim"]
    assert (soap["warmup_steps"], soap["decay_steps"], soap["decay_rate"], soap["precondition_frequency"]) == (5000, 10000, 0.9, 2)
    assert soap["schedule_free"] is True and soap["clip_norm"] == 1.0
    # every stage carries everything (the default): one network, one optimizer state, one lr clock
    assert all("carry" not in s for s in cfg["stages"])


def test_a_preset_goes_on_to_re_10000():
    cfg = composed("stages=lid_driven_cavity_re10k")
    assert [s["pde"]["re"] for s in cfg["stages"]] == [100.0, 400.0, 1000.0, 1600.0, 3200.0, 5000.0, 7500.0, 10000.0]
    from pinnrun.stages import entries_of

    assert [e["steps"] for e in entries_of(cfg)][-1] == 630000 - 430000
    with pytest.raises(ConfigError, match="stages"):   # meant for the recipe's steps, not the quick budget's
        composed("stages=lid_driven_cavity_re10k", "train=cpu_quick")


def test_quick_curriculum_is_re_100_400_1000():
    cfg = composed("train=cpu_quick")
    assert [s["pde"]["re"] for s in cfg["stages"]] == [100.0, 400.0, 1000.0]
    assert cfg["arch"]["name"] == "mlp" and cfg["pde"]["eval_resolution"] == 257


# ----- a curriculum, killed in its second stage ----------------------------------------------------

TINY_CAVITY = [
    "pde=lid_driven_cavity", "optim=soap", "train=cpu_quick", "quick.eval_resolution=33",
    "quick.stages.0.steps=40", "quick.stages.1.steps=40", "train.steps=120",
    "train.batch_size=128", "quick.boundary_points=64", "arch.width=16", "arch.depth=2",
    "train.log_every=10", "train.eval_every=20", "train.figures=false", "checkpoint.every=20",
    "train.chunk_steps=10", "train.alignment_every=0",
]


# Slow (75-150 s on 2 cores: each of the three Reynolds stages compiles its own step). The default suite
# keeps the path: kill -9 and bit-for-bit resume across stages by test_marching's Ginzburg-Landau case,
# the cavity's curriculum stages by test_stages' curriculum tests.
@pytest.mark.slow
def test_a_cavity_curriculum_resumes_bit_for_bit_after_a_kill_in_its_second_stage(tmp_path):
    env = {"PINNRUN_CACHE_DIR": str(tmp_path / "cache")}
    reference = tmp_path / "uninterrupted"
    result = run_cli([*TINY_CAVITY, f"hydra.run.dir={reference}"], tmp_path, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    run_dir = tmp_path / "killed"
    proc = start([*TINY_CAVITY, f"hydra.run.dir={run_dir}"], tmp_path, env=env)
    wait_for_checkpoint(run_dir, 60, proc)   # inside stage re400 (steps 40-80)
    proc.kill()
    proc.wait()
    assert not (run_dir / "summary.json").exists(), "the run finished before it was killed"
    result = run_cli([f"resume={run_dir}"], tmp_path, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    resumed_from = int(result.stdout.split("resuming from the checkpoint at step ")[1].split()[0])
    assert 40 < resumed_from < 80
    assert_bitwise_equal(params_of(run_dir), params_of(reference))
    got, want = (json.loads((d / "summary.json").read_text()) for d in (run_dir, reference))
    assert [s["name"] for s in want["stages"]] == ["re100", "re400", "re1000"]
    assert [(s["name"], s["final_rel_l2"]) for s in got["stages"]] == [(s["name"], s["final_rel_l2"]) for s in want["stages"]]
    assert all(set(s["final_rel_l2"]) == {"u", "v", "p", "speed"} for s in want["stages"])
    assert got["final_rel_l2"] == want["final_rel_l2"] == want["stages"][-1]["final_rel_l2"]
    records, expected = read_jsonl(run_dir / "metrics.jsonl"), read_jsonl(reference / "metrics.jsonl")
    assert [r["step"] for r in records] == [r["step"] for r in expected]
    for a, b in zip(records, expected):
        assert {k: v for k, v in a.items() if k != "wall_seconds"} == {k: v for k, v in b.items() if k != "wall_seconds"}
    # Each stage's centrelines (network and its own reference), bit for bit after the resume too.
    names = sorted(p.name for p in (reference / "stages").glob("*_profiles.npz"))
    assert names == ["00_re100_profiles.npz", "01_re400_profiles.npz", "02_re1000_profiles.npz"]
    for name in names:
        with np.load(reference / "stages" / name) as want, np.load(run_dir / "stages" / name) as got_:
            assert set(want.files) == {f"{k}/{part}" for k in ("u_y", "v_x") for part in ("coords", "at", "reference", "prediction")}
            assert want["u_y/at"].tolist() == [0.5] and want["v_x/at"].tolist() == [0.5]
            for key in want.files:
                np.testing.assert_array_equal(got_[key], want[key])
    with np.load(reference / "stages" / names[0]) as first, np.load(reference / "stages" / names[1]) as second:
        assert not np.array_equal(first["u_y/reference"], second["u_y/reference"])   # Re 100, then Re 400
    # Each stage is judged against its own Re's reference: three cached smooth-lid entries.
    assert len(list((tmp_path / "cache").glob("lid_driven_cavity-*.npz"))) == 3
    assert os.path.exists(run_dir / "summary.json")

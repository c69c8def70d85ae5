"""Data parallelism over local devices (two CPU devices forced by XLA_FLAGS, in subprocesses)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from conftest import COMPILE_CACHE, read_jsonl, run_cli

TWO_DEVICES = {"XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
SMALL = [
    "train.steps=50",
    "train.log_every=5",
    "train.eval_every=50",
    "train.batch_size=256",
    "arch.width=32",
    "arch.depth=2",
    "pde.eval_resolution=[11,11]",
    "train.figures=false",
    "checkpoint.every=0",
]


# Slow (about 40 s): test_the_batch_is_split_across_devices keeps the two-device path in the default suite.
@pytest.mark.slow
def test_two_devices_match_one_device_with_the_same_global_batch(tmp_path):
    losses = {}
    for devices in (1, 2):
        run_dir = tmp_path / f"d{devices}"
        result = run_cli([f"train.devices={devices}", *SMALL, f"hydra.run.dir={run_dir}"], tmp_path, env=TWO_DEVICES)
        assert result.returncode == 0, result.stderr[-3000:]
        losses[devices] = [r["loss"] for r in read_jsonl(run_dir / "metrics.jsonl")]
    assert len(losses[1]) == 10
    for one, two in zip(losses[1], losses[2]):
        assert abs(one - two) <= 1e-5 * abs(one)


def test_the_batch_is_split_across_devices(tmp_path):
    script = textwrap.dedent(
        """
        import jax
        from hydra import compose, initialize_config_module
        from pinnrun.build import build, jax_settings
        from pinnrun.config import validate

        with initialize_config_module(config_module="pinnrun.conf", version_base="1.3"):
            cfg = validate(compose(config_name="config", overrides=["train.devices=auto", "train.batch_size=64"]))
        with jax_settings(cfg):
            components = build(cfg)
            loss = components.loss
            points = jax.jit(lambda key: loss.sample(key, {}))(jax.random.PRNGKey(0))
            for name, p in points.points.items():
                shards = sorted(tuple(s.data.shape) for s in p.addressable_shards)
                print(name, p.shape, p.sharding.spec, shards)
            params = components.replicate(components.model.init(jax.random.PRNGKey(0)))
            print("params", jax.tree.leaves(params)[0].sharding.is_fully_replicated)
        """
    )
    env = {**os.environ, **TWO_DEVICES, "PINNRUN_COMPILE_CACHE": str(COMPILE_CACHE)}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = dict(line.split(" ", 1) for line in result.stdout.strip().splitlines())
    assert lines["interior"] == "(64, 2) P('batch',) [(32, 2), (32, 2)]"
    assert lines["boundary"] == "(64, 2) P('batch',) [(32, 2), (32, 2)]"
    assert lines["params"] == "True"


def test_more_devices_than_available_is_a_config_error(cli):
    result = cli(["train.devices=4", "train.steps=5"])
    assert result.returncode == 2
    assert "train.devices: 4 requested but only 1 available" in result.stderr


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# Slow (30 s): two processes start JAX each; the in-process two-device tests above keep the
# data-parallel maths in the default suite.
@pytest.mark.slow
def test_two_processes_with_jax_distributed_match_one_process(tmp_path):
    from conftest import pinnrun_command

    single = tmp_path / "single"
    result = run_cli(["train.devices=1", *SMALL, f"hydra.run.dir={single}"], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]

    shared = tmp_path / "two_processes"
    port = free_port()
    procs = []
    for rank in range(2):
        env = {
            **os.environ,
            "PINNRUN_COMPILE_CACHE": str(COMPILE_CACHE),
            "WANDB_MODE": "disabled",
            "PINNRUN_COORDINATOR_ADDRESS": f"127.0.0.1:{port}",
            "PINNRUN_NUM_PROCESSES": "2",
            "PINNRUN_PROCESS_ID": str(rank),
        }
        args = pinnrun_command() + ["train.devices=auto", *SMALL, "checkpoint.every=25", f"hydra.run.dir={shared}"]
        procs.append(subprocess.Popen(args, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    try:
        outputs = [p.communicate(timeout=300) for p in procs]
    finally:
        for p in procs:
            p.kill()
    for p, (_, err) in zip(procs, outputs):
        assert p.returncode == 0, err[-3000:]
    # process 0 alone wrote the metrics; both wrote their part of the checkpoints
    records = read_jsonl(shared / "metrics.jsonl")
    expected = read_jsonl(single / "metrics.jsonl")
    assert [r["step"] for r in records] == [r["step"] for r in expected]
    for got, want in zip(records, expected):
        assert abs(got["loss"] - want["loss"]) <= 1e-5 * abs(want["loss"])
    assert "compiling" in outputs[0][0] and "compiling" not in outputs[1][0]
    assert sorted(p.name for p in (shared / "checkpoints").iterdir() if p.name.isdigit()) == ["25", "50"]

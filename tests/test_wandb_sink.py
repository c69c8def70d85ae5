"""Tests of pinnrun.wandb_sink, offline only (no network): records reach the run file, resume keeps the
id, disabled/missing/failing W&B gives None, log failures are swallowed, the default mode."""

from __future__ import annotations

import struct
import sys
import time
import warnings
from pathlib import Path

import pytest

from pinnrun import wandb_sink
from pinnrun.wandb_sink import WandbSink, flatten, resolve_mode

wandb = pytest.importorskip("wandb")


@pytest.fixture(autouse=True)
def hermetic_wandb(monkeypatch, tmp_path):
    """No credentials, and wandb's own caches/config under tmp_path."""
    for name in ("WANDB_API_KEY", "WANDB_IDENTITY_TOKEN_FILE", "WANDB_BASE_URL", "WANDB_MODE", "NETRC"):
        monkeypatch.delenv(name, raising=False)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for name in ("WANDB_CACHE_DIR", "WANDB_CONFIG_DIR", "WANDB_DATA_DIR", "WANDB_ARTIFACT_DIR"):
        monkeypatch.setenv(name, str(tmp_path / "wandb-home" / name.lower()))
    monkeypatch.setenv("WANDB_SILENT", "true")


def read_wandb_records(path: Path) -> list:
    """The protobuf records of a run-*.wandb file (a LevelDB-style log of 32 KiB blocks, 7-byte headers)."""
    from wandb.proto import wandb_internal_pb2 as pb

    data = path.read_bytes()
    assert data[:4] == b":W&B"
    block, pos, buf, records = 32768, 7, b"", []
    while pos + 7 <= len(data):
        left = block - pos % block
        if left < 7:  # block trailer padding
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        if kind == 0 and length == 0:
            pos += left
            continue
        chunk = data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        buf = chunk if kind in (1, 2) else buf + chunk  # FULL/FIRST start a record; MIDDLE/LAST extend it
        if kind in (1, 4):
            record = pb.Record()
            record.ParseFromString(buf)
            records.append(record)
    return records


def history(path: Path) -> list[dict[str, str]]:
    rows = []
    for record in read_wandb_records(path):
        if record.WhichOneof("record_type") == "history":
            rows.append({item.key or "/".join(item.nested_key): item.value_json for item in record.history.item})
    return rows


def summary_keys(path: Path) -> set[str]:
    keys = set()
    for record in read_wandb_records(path):
        if record.WhichOneof("record_type") == "summary":
            keys |= {item.key or "/".join(item.nested_key) for item in record.summary.update}
    return keys


def run_files(run_dir: Path, run_id: str) -> list[Path]:
    return sorted((run_dir / "wandb").glob(f"offline-run-*-{run_id}*/run-{run_id}.wandb"))


def eventually(check, timeout: float = 20.0):
    """``check()`` once it is truthy: offline, ``run.finish()`` can return before wandb-core has flushed."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = check()
        except Exception:  # a file still being written may not parse yet
            result = None
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.1)


RECORDS = [
    {"step": 10, "loss": 1.5, "align/intra": 0.25, "align/inter": -0.5, "rel_l2/u": 0.1},
    {"step": 20, "loss": 0.75, "align/intra": 0.5, "align/inter": 0.125, "rel_l2/u": 0.05},
]


def test_offline_log_close_and_resume(monkeypatch, tmp_path):
    Image = pytest.importorskip("PIL.Image")
    monkeypatch.setenv("WANDB_MODE", "offline")
    run_dir = tmp_path / "run"
    config = {"pde": {"name": "wave"}, "optim": {"name": "soap", "lr": 1e-3}}
    sink = WandbSink.create(config, run_dir, tags=("test",), group="g")
    assert sink is not None
    run_id = sink.run_id
    assert run_id and isinstance(run_id, str)
    for record in RECORDS:
        sink.log(record)
    image = tmp_path / "solution.png"
    Image.new("RGB", (4, 4)).save(image)
    sink.log_images({"figures/solution": image, "missing": tmp_path / "nope.png"}, step=20)
    sink.close({"final_rel_l2": {"u": 0.05}, "steps": 20})
    sink.close({})  # idempotent

    def first_run_complete():
        files = run_files(run_dir, run_id)
        if len(files) == 1 and {"final_rel_l2/u", "steps"} <= summary_keys(files[0]):
            return history(files[0])

    rows = eventually(first_run_complete)
    assert rows, f"no complete offline run for {run_id} under {run_dir / 'wandb'}"
    logged = [row for row in rows if "loss" in row]
    assert [row["step"] for row in logged] == ["10", "20"]
    assert {"align/intra", "align/inter", "rel_l2/u"} <= set(logged[0])
    assert float(logged[1]["align/inter"]) == 0.125
    images = [row for row in rows if any(k.startswith("figures/solution/") for k in row)]
    assert len(images) == 1 and images[0]["step"] == "20"
    assert images[0]["figures/solution/_type"] == '"image-file"'

    # Resuming with the same id continues the same run (offline: a second folder with that id).
    resumed = WandbSink.create(config, run_dir, run_id=run_id)
    assert resumed is not None and resumed.run_id == run_id
    resumed.log({"step": 30, "loss": 0.5, "align/intra": 0.75})
    resumed.mark_preempting()
    resumed.close({}, exit_code=75)

    def resumed_logged():
        files = run_files(run_dir, run_id)
        return len(files) == 2 and any(row.get("step") == "30" for f in files for row in history(f))

    assert eventually(resumed_logged)


def test_disabled_returns_none(monkeypatch, tmp_path):
    monkeypatch.setenv("WANDB_MODE", "disabled")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # disabled is deliberate: no warning
        assert WandbSink.create({}, tmp_path) is None
    monkeypatch.delenv("WANDB_MODE")
    assert WandbSink.create({}, tmp_path, mode="disabled") is None
    assert not (tmp_path / "wandb").exists()


def test_failing_init_returns_none_with_warning(monkeypatch, tmp_path):
    def broken_init(*args, **kwargs):
        raise RuntimeError("no network\nsecond line")

    monkeypatch.setattr(wandb, "init", broken_init)
    with pytest.warns(RuntimeWarning, match="W&B init failed .*no network") as record:
        assert WandbSink.create({}, tmp_path, mode="online") is None
    assert len(record) == 1
    assert "second line" not in str(record[0].message)


def test_wandb_not_installed(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "wandb", None)  # makes `import wandb` raise ImportError
    with pytest.warns(RuntimeWarning, match="not installed"):
        assert WandbSink.create({}, tmp_path, mode="offline") is None


def test_log_failures_are_swallowed_with_one_warning():
    class BrokenRun:
        id = "abc"

        def log(self, record):
            raise OSError("disk full")

        def finish(self, exit_code=None):
            raise OSError("disk full")

        summary = {}

    sink = WandbSink(BrokenRun(), wandb)
    with pytest.warns(RuntimeWarning, match="W&B log failed") as record:
        sink.log({"step": 1, "loss": 1.0})
        sink.log({"step": 2, "loss": 1.0})
        sink.close({"a": {"b": 1}})
    assert len(record) == 1
    assert BrokenRun.summary == {"a/b": 1}


def test_default_mode_offline_without_key(monkeypatch, tmp_path):
    assert resolve_mode() == "offline"
    assert resolve_mode("online") == "online"
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert resolve_mode() == "disabled"
    monkeypatch.delenv("WANDB_MODE")
    netrc = Path.home() / ".netrc"
    netrc.write_text("machine api.wandb.ai\n  login user\n  password " + "k" * 40 + "\n")
    netrc.chmod(0o600)
    assert wandb_sink.api_key_configured()
    assert resolve_mode() == "online"
    netrc.write_text("machine example.com login user password x\n")
    assert resolve_mode() == "offline"
    monkeypatch.setenv("WANDB_API_KEY", "k" * 40)
    assert resolve_mode() == "online"


def test_flatten():
    assert flatten({"a": {"b": 1, "c": {"d": 2}}, "e": 3}) == {"a/b": 1, "a/c/d": 2, "e": 3}

"""Tests of pinnrun.checkpoint: bitwise round trips, async saves, latest-N + best-N retention,
fallback past damaged checkpoints, unfinished saves, metadata, float64."""

from __future__ import annotations

import os
import shutil
import warnings
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from pinnrun.checkpoint import CheckpointError, Checkpointer
from pinnrun.optim.soap import soap

# Restoring a damaged checkpoint: a failed tensorstore read can complete after orbax's asyncio loop has
# closed ("Event loop is closed", reported later as an unraisable exception). Orbax-internal, harmless.
pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")


class State(NamedTuple):  # the trainer's TrainState layout
    step: jax.Array
    params: dict
    opt_state: object
    weights: dict
    key: jax.Array


def make_state(seed: int = 0, optimizer=None, dtype=jnp.float32, step: int = 0) -> State:
    """A realistic TrainState with distinct values per seed (numpy-built: no XLA compiles, fast tests)."""
    rng = np.random.default_rng(seed)

    def normal(*shape):
        return jnp.asarray(rng.standard_normal(shape), dtype)

    params = {
        "dense_0": {"kernel": normal(3, 8), "bias": jnp.zeros((8,), dtype)},
        "dense_1": {"kernel": normal(8, 1), "bias": jnp.full((1,), 0.5, dtype)},
    }
    optimizer = optimizer or optax.adam(1e-3)
    # Moments filled with random values (as after some updates), counts kept as they are.
    opt_state = jax.tree.map(
        lambda x: normal(*x.shape) if jnp.issubdtype(x.dtype, jnp.floating) else x, optimizer.init(params)
    )
    weights = {"pde": jnp.asarray(1.0, dtype), "ic": jnp.asarray(10.0 + seed, dtype)}
    key = jax.random.PRNGKey(seed + 1000)
    return State(jnp.asarray(step, jnp.int32), params, opt_state, weights, key)


def assert_bitwise_equal(a, b):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        x, y = np.asarray(x), np.asarray(y)
        assert x.dtype == y.dtype and x.shape == y.shape
        assert x.tobytes() == y.tobytes()


def save_steps(ckpt: Checkpointer, steps_metrics, wait_each=False):
    for step, metric in steps_metrics:
        ckpt.save(step, make_state(seed=step, step=step), {"step": step}, metric=metric)
        if wait_each:
            ckpt.wait()
    ckpt.wait()


def test_round_trip_bitwise_with_dtypes(tmp_path):
    state = make_state(seed=3, step=1234)
    metadata = {"config": {"pde": {"name": "wave", "c": 2.0}, "tags": ["a", "b"]}, "wandb_run_id": "abc", "best": 0.25}
    with Checkpointer(tmp_path / "ckpt") as ckpt:
        assert ckpt.directory.is_absolute()
        assert ckpt.save(1234, state, metadata, metric=0.5)
        ckpt.wait()
        like = make_state(seed=99)  # different values, same structure
        restored, meta, step = ckpt.restore(like)
    assert step == 1234
    assert meta == metadata
    assert type(restored) is State
    assert_bitwise_equal(restored, state)
    assert restored.step.dtype == jnp.int32 and int(restored.step) == 1234
    assert restored.key.dtype == jnp.uint32 and restored.key.shape == (2,)
    assert isinstance(restored.opt_state[0], optax.ScaleByAdamState)
    assert restored.opt_state[0].count.dtype == jnp.int32


def test_soap_state_with_none_leaves_and_abstract_template(tmp_path):
    optimizer = optax.chain(optax.clip_by_global_norm(1.0), soap(1e-3))
    state = make_state(seed=1, optimizer=optimizer)
    like = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), state)
    ckpt = Checkpointer(tmp_path / "ckpt", async_save=False)
    ckpt.save(5, state, {})
    restored, meta, step = ckpt.restore(like)
    ckpt.close()
    assert step == 5 and meta == {}
    assert_bitwise_equal(restored, state)


def test_async_save_then_wait_and_reopen(tmp_path):
    ckpt = Checkpointer(tmp_path / "ckpt", keep=5)
    for step in (10, 20, 30):
        ckpt.save(step, make_state(seed=step, step=step), {"step": step})
    ckpt.wait()
    assert ckpt.steps() == [10, 20, 30]
    assert ckpt.latest_step() == 30
    assert ckpt.save(30, make_state(), {}) is False  # an existing step is not saved again
    ckpt.close()
    reopened = Checkpointer(tmp_path / "ckpt", keep=5)
    assert reopened.steps() == [10, 20, 30]
    restored, meta, step = reopened.restore(make_state(), step=20)
    assert step == 20 and meta == {"step": 20}
    assert_bitwise_equal(restored, make_state(seed=20, step=20))
    reopened.close()


def test_pending_save_is_not_listed(tmp_path):
    ckpt = Checkpointer(tmp_path / "ckpt")
    big = {"w": jnp.ones((2_000_000,), jnp.float32)}
    ckpt.save(1, big, {})
    steps_during = ckpt.steps()  # either still writing (not listed) or already finished
    assert steps_during in ([], [1])
    ckpt.wait()
    assert ckpt.steps() == [1]
    ckpt.close()


def test_retention_latest_and_best(tmp_path):
    ckpt = Checkpointer(tmp_path / "ckpt", keep=2, keep_best=1, best_mode="min")
    # The best error is at an old step (200); 500 and 600 are the latest; 400 was not evaluated.
    save_steps(ckpt, [(100, 0.9), (200, 0.1), (300, 0.5), (400, None), (500, 0.7), (600, None)])
    assert ckpt.steps() == [200, 500, 600]
    assert ckpt.best_step() == 200
    on_disk = sorted(int(p.name) for p in ckpt.directory.iterdir() if p.name.isdigit())
    assert on_disk == [200, 500, 600]
    ckpt.close()
    reopened = Checkpointer(tmp_path / "ckpt", keep=2, keep_best=1)
    assert reopened.steps() == [200, 500, 600] and reopened.best_step() == 200
    # A new best replaces the old one; the previous best is now neither best nor latest.
    save_steps(reopened, [(700, 0.05)])
    assert reopened.steps() == [600, 700]
    assert reopened.best_step() == 700
    reopened.close()


def test_retention_best_mode_max_and_non_finite_metric(tmp_path):
    ckpt = Checkpointer(tmp_path / "ckpt", keep=1, keep_best=1, best_mode="max")
    save_steps(ckpt, [(1, 0.2), (2, 0.9), (3, float("nan")), (4, 0.5)])
    assert ckpt.steps() == [2, 4]  # NaN is never the best
    assert ckpt.best_step() == 2
    ckpt.close()


def test_no_metric_ever(tmp_path):
    ckpt = Checkpointer(tmp_path / "ckpt", keep=2, keep_best=1)
    save_steps(ckpt, [(1, None), (2, None), (3, None)])
    assert ckpt.steps() == [2, 3]
    assert ckpt.best_step() is None
    ckpt.close()


def _largest_file(folder):
    files = [os.path.join(root, f) for root, _, names in os.walk(folder) for f in names]
    return max(files, key=os.path.getsize)


@pytest.mark.parametrize("damage", ["truncate_largest", "truncate_arrays", "delete_state"])
def test_damaged_latest_falls_back_to_previous(tmp_path, damage):
    ckpt = Checkpointer(tmp_path / "ckpt", keep=3)
    save_steps(ckpt, [(1, None), (2, None), (3, None)])
    latest = ckpt.directory / "3"
    if damage == "truncate_largest":
        path = _largest_file(latest)
        os.truncate(path, os.path.getsize(path) // 2)
    elif damage == "truncate_arrays":
        for path in (latest / "state").rglob("*"):
            if path.is_file() and path.parent.name == "d":
                os.truncate(path, path.stat().st_size // 2)
    else:
        shutil.rmtree(latest / "state")
    with pytest.warns(RuntimeWarning) as caught:
        restored, meta, step = ckpt.restore(make_state())
    messages = [str(w.message) for w in caught]
    assert any("checkpoint at step 3" in m and "cannot be restored" in m for m in messages), messages
    assert any("moved the damaged checkpoint" in m and m.endswith("3.corrupt") for m in messages), messages
    assert step == 2 and meta == {"step": 2}
    assert_bitwise_equal(restored, make_state(seed=2, step=2))
    # The damaged folder is moved aside, so training can save step 3 again.
    assert ckpt.steps() == [1, 2]
    assert (ckpt.directory / "3.corrupt").is_dir()
    assert ckpt.save(3, make_state(seed=33, step=3), {"step": 3})
    ckpt.wait()
    restored, _, step = ckpt.restore(make_state())
    assert step == 3
    assert_bitwise_equal(restored, make_state(seed=33, step=3))
    ckpt.close()


def test_template_from_metadata_with_fallback(tmp_path):
    """The state's structure depends on the checkpoint (e.g. the optimizer of its phase)."""
    adam, sgd = optax.adam(1e-3), optax.sgd(1e-3, momentum=0.9)
    ckpt = Checkpointer(tmp_path / "ckpt", keep=3)
    ckpt.save(1, make_state(seed=1, optimizer=adam), {"phase": "adam"})
    ckpt.save(2, make_state(seed=2, optimizer=sgd), {"phase": "sgd"})
    ckpt.save(3, make_state(seed=3, optimizer=sgd), {"phase": "sgd"})
    ckpt.wait()
    shutil.rmtree(ckpt.directory / "3" / "state")  # metadata readable, state gone
    seen = []

    def like(metadata):
        seen.append(metadata["phase"])
        return make_state(optimizer=adam if metadata["phase"] == "adam" else sgd)

    with pytest.warns(RuntimeWarning) as caught:
        restored, meta, step = ckpt.restore(like)
    assert "checkpoint at step 3" in str(caught[0].message) and "moved" in str(caught[-1].message)
    assert step == 2 and meta == {"phase": "sgd"} and seen == ["sgd", "sgd"]
    assert_bitwise_equal(restored, make_state(seed=2, optimizer=sgd))
    restored, meta, step = ckpt.restore(like, step=1)
    assert step == 1 and meta == {"phase": "adam"}
    assert_bitwise_equal(restored, make_state(seed=1, optimizer=adam))
    ckpt.close()


def test_nothing_restorable_raises(tmp_path):
    ckpt = Checkpointer(tmp_path / "ckpt")
    with pytest.raises(CheckpointError, match="no checkpoint"):
        ckpt.restore(make_state())
    save_steps(ckpt, [(1, None)])
    shutil.rmtree(ckpt.directory / "1" / "state")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(CheckpointError, match="step 1"):
            ckpt.restore(make_state())
    # A mismatched template fails for every step: nothing is moved aside.
    ckpt2 = Checkpointer(tmp_path / "other")
    save_steps(ckpt2, [(1, None), (2, None)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(CheckpointError):
            ckpt2.restore({"something": jnp.zeros(3)})
    assert ckpt2.steps() == [1, 2]
    with pytest.raises(CheckpointError, match="step 7"):
        ckpt2.restore(make_state(), step=7)
    ckpt.close()
    ckpt2.close()


def test_unfinished_save_is_ignored(tmp_path):
    ckpt = Checkpointer(tmp_path / "ckpt")
    save_steps(ckpt, [(1, None)])
    ckpt.close()
    # What a save killed half-way leaves behind: orbax writes into a tmp folder, renamed when complete.
    partial = tmp_path / "ckpt" / "2.orbax-checkpoint-tmp-1234567890"
    (partial / "state").mkdir(parents=True)
    (partial / "state" / "_METADATA").write_text("{")
    reopened = Checkpointer(tmp_path / "ckpt")
    assert reopened.steps() == [1]
    assert reopened.latest_step() == 1
    _, _, step = reopened.restore(make_state())
    assert step == 1
    reopened.close()


def test_typed_prng_key_and_omegaconf_metadata(tmp_path):
    from omegaconf import OmegaConf

    state = {"key": jax.random.key(7), "step": jnp.asarray(3, jnp.int32)}
    cfg = OmegaConf.create({"train": {"steps": 10, "seed": "${oc.env:NOPE,1}"}})
    ckpt = Checkpointer(tmp_path / "ckpt")
    ckpt.save(3, state, {"config": cfg, "run_dir": tmp_path})
    restored, meta, _ = ckpt.restore({"key": jax.random.key(0), "step": jnp.asarray(0, jnp.int32)})
    ckpt.close()
    assert jnp.issubdtype(restored["key"].dtype, jax.dtypes.prng_key)
    assert np.array_equal(jax.random.key_data(restored["key"]), jax.random.key_data(state["key"]))
    assert meta == {"config": {"train": {"steps": 10, "seed": "1"}}, "run_dir": str(tmp_path)}


def test_metadata_round_trip(tmp_path):
    metadata = {
        "config": {"optim": {"name": "soap", "lr": 1e-3}, "arch": {"width": 64}},
        "wandb_run_id": "x1y2z3",
        "best_error": np.float32(0.125),  # numpy scalars are converted
        "pinnrun_version": "0.1.0",
        "phase": 2,
        "window": [0.0, 0.5],
        "none": None,
    }
    ckpt = Checkpointer(tmp_path / "ckpt")
    ckpt.save(7, make_state(), metadata)
    ckpt.save(8, make_state(), {**metadata, "phase": 3})
    assert ckpt.restore_metadata(7)["phase"] == 2
    got = ckpt.restore_metadata()
    assert got == {**metadata, "best_error": 0.125, "phase": 3}
    ckpt.close()


def test_float64_under_x64(tmp_path):
    with jax.enable_x64(True):
        state = make_state(seed=4, dtype=jnp.float64, step=9)
        assert state.params["dense_0"]["kernel"].dtype == jnp.float64
        ckpt = Checkpointer(tmp_path / "ckpt")
        ckpt.save(9, state, {})
        restored, _, _ = ckpt.restore(make_state(dtype=jnp.float64))
        ckpt.close()
        assert restored.params["dense_0"]["kernel"].dtype == jnp.float64
        assert restored.step.dtype == jnp.int32
        assert_bitwise_equal(restored, state)


def test_async_save_survives_donation(tmp_path):
    """The trainer donates the state to the next chunk right after save(): the checkpoint keeps the old values."""
    state = {"w": jnp.arange(100_000, dtype=jnp.float32), "step": jnp.asarray(1, jnp.int32)}
    expected = jax.tree.map(np.array, state)
    advance = jax.jit(lambda s: jax.tree.map(lambda x: x * 3 + 1, s), donate_argnums=0)
    ckpt = Checkpointer(tmp_path / "ckpt")
    ckpt.save(1, state, {})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "donated buffers were not usable" on some backends
        new = advance(advance(state))
    jax.block_until_ready(new)
    restored, _, _ = ckpt.restore(jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), expected))
    ckpt.close()
    assert_bitwise_equal(restored, expected)

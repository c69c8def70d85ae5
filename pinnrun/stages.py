"""A run is a list of stages: optimizer phases, time windows and curricula, all run by one loop.

A stage is a step range with its own optimizer config, precision, PDE parameters, batch size and time
window, plus a ``Carry`` rule for what it takes over from the stage before. Three sources of stages
compose, outermost first:

* ``stages:`` (a curriculum): a list of entries, each with ``steps`` and overrides of the ``pde`` and
  ``optim`` configs (Kovasznay at Re 20, then Re 40); ``carry`` says what passes between entries
  (default: everything: parameters, optimizer state, loss weights, learning-rate clock).
* ``train.time_windows``: each entry's horizon split into windows, each started from the previous
  window's network (parameters, and the initial condition evaluated from it); optimizer state, loss
  weights, the learning-rate clock and the random stream start afresh.
* ``optim.phases``: inside each window, optimizers one after another (Adam then L-BFGS); parameters
  and loss weights carry over, each optimizer starts its own state and schedule.

``steps`` of an entry (or ``train.steps`` without entries) count per window and are split among the
phases; ``train.window_steps`` (a list, one count per window) gives each window its own instead, for
problems whose first window holds a fast transient and whose later ones change slowly. ``plan_stages`` flattens all of this into one list with global step ranges; the trainer runs
it and recomputes its position from any restored checkpoint (the stage index is in its metadata).
"""

from __future__ import annotations

import copy
import dataclasses
import json
from collections.abc import Mapping, Sequence
from typing import Any

from pinnrun.config import ConfigError
from pinnrun.marching import window_edges

CARRY_KEYS = ("params", "opt_state", "weights", "lr_clock", "initial_condition", "rng")
STAGE_KEYS = ("name", "steps", "pde", "optim", "batch_size", "carry")


@dataclasses.dataclass(frozen=True)
class Carry:
    """What a stage takes over from the stage before it (the first stage starts afresh)."""

    params: bool = True  # else: a fresh initialisation from the run's seed
    opt_state: bool = False  # else: the optimizer starts from its init
    weights: bool = True  # loss weights; else: the PDE's configured weights
    lr_clock: bool = False  # the learning-rate schedule continues; else it restarts at the stage start
    initial_condition: bool = False  # the initial-condition targets come from the previous network
    rng: bool = True  # the random stream (collocation points) goes on; else it restarts from the seed


PHASE_CARRY = Carry()
# Each window draws its points from the run's seed afresh, as pinnrun's windows always have (the
# draws are mapped onto each window's time range), so that time-marched results stay comparable.
WINDOW_CARRY = Carry(weights=False, initial_condition=True, rng=False)
ENTRY_CARRY = Carry(opt_state=True, lr_clock=True)  # a curriculum's default


@dataclasses.dataclass(frozen=True)
class Stage:
    index: int
    name: str
    start: int  # first global step (inclusive)
    end: int  # last global step (exclusive)
    optim: Mapping[str, Any]  # one optimizer's config
    precision: str
    pde: Mapping[str, Any]  # the stage's whole PDE config
    batch_size: int
    carry: Carry
    entry: int = 0  # index of its curriculum entry
    window: int | None = None  # index of its time window (None: not time-marching)
    time_range: tuple[float, float] | None = None
    phase: str | None = None  # the optimizer's name, when the entry has several phases
    clock_origin: int = 0  # global step at which its learning-rate schedule is at step 0
    count_origin: int = 0  # global step at which its optimizer state was initialised
    weights_origin: int = 0  # global step at which its loss weights were (re)set

    @property
    def steps(self) -> int:
        return self.end - self.start

    @property
    def uses_line_search(self) -> bool:
        """L-BFGS or a dense quasi-Newton method: a frozen batch, a line search, no learning rate."""
        from pinnrun.phases import LINE_SEARCH_METHODS

        return self.optim["name"] in LINE_SEARCH_METHODS

    @property
    def schedule_offset(self) -> int:
        """The optimizer's step count plus this is its learning-rate schedule's step."""
        return self.count_origin - self.clock_origin

    @property
    def pde_key(self) -> str:
        return config_key(self.pde)

    @property
    def signature(self) -> str:
        """Everything its compiled step depends on besides the state: stages with equal signatures
        (the windows of a time-marched run) share one compilation."""
        return config_key((self.optim, self.precision, self.pde, self.batch_size, self.schedule_offset))


def config_key(value: Any) -> str:
    """A config (or a tuple of them) as a string that is equal exactly when the configs are."""
    return json.dumps(value, sort_keys=True, default=str)


def phase_configs(optim_cfg: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The list of optimizer configs of a (possibly single-phase) optim config."""
    return list(optim_cfg["phases"]) if optim_cfg.get("phases") else [optim_cfg]


def split_steps(items: Sequence[Mapping[str, Any]], total: int, key: str, total_key: str = "train.steps") -> list[int]:
    """Steps of each item; at most one item with steps null takes what the others leave of ``total``
    (the value of ``total_key``)."""
    fixed = sum(int(c["steps"]) for c in items if c.get("steps") is not None)
    open_items = [c for c in items if c.get("steps") is None]
    rest = total - fixed
    if len(open_items) > 1:
        raise ConfigError(f"{key}: at most one entry may have steps: null")
    if rest < 0 or (not open_items and rest != 0) or (open_items and rest < 1):
        given = ", ".join(f"{key}.{i}.steps={c['steps']}" for i, c in enumerate(items) if c.get("steps") is not None)
        need = f"more than {fixed}" if open_items else f"exactly {fixed}"
        raise ConfigError(
            f"{key}: the steps given ({given}) must leave at least one step of {total} "
            f"to the entry with steps: null, or add up to {total} exactly; "
            f"set {total_key} to {need} or change those entries"
        )
    return [rest if c.get("steps") is None else int(c["steps"]) for c in items]


def merge(base: Mapping[str, Any], override: Mapping[str, Any] | None) -> dict[str, Any]:
    """``base`` with ``override``'s keys replaced (recursively for mappings; lists are replaced)."""
    out = copy.deepcopy(dict(base))
    for key, value in (override or {}).items():
        out[key] = merge(out[key], value) if isinstance(value, Mapping) and isinstance(out.get(key), Mapping) else copy.deepcopy(value)
    return out


def entries_of(cfg: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The curriculum's entries, each with its whole optim and pde config (one entry without stages)."""
    listed = cfg.get("stages")
    if not listed:
        return [{"name": None, "steps": int(cfg["train"]["steps"]), "optim": cfg["optim"], "pde": cfg["pde"],
                 "batch_size": int(cfg["train"]["batch_size"]), "carry": ENTRY_CARRY}]
    steps = split_steps(listed, int(cfg["train"]["steps"]), "stages")
    entries = []
    for i, (entry, n) in enumerate(zip(listed, steps)):
        carry = dataclasses.replace(ENTRY_CARRY, **dict(entry.get("carry") or {}))
        entries.append({
            "name": entry.get("name") or f"stage_{i}",
            "steps": n,
            "optim": merge(cfg["optim"], entry.get("optim")),
            "pde": merge(cfg["pde"], entry.get("pde")),
            "batch_size": int(entry.get("batch_size") or cfg["train"]["batch_size"]),
            "carry": carry,
        })
    return entries


def optimizer_identity(optim: Mapping[str, Any], precision: str) -> dict[str, Any]:
    """What fixes an optimizer state's structure: all but its schedule and phase keys."""
    from pinnrun.optim.factory import SCHEDULE_KEYS

    return {"precision": precision, **{k: v for k, v in optim.items() if k not in (*SCHEDULE_KEYS, "steps", "precision")}}


def plan_stages(cfg: Mapping[str, Any], time_bounds) -> list[Stage]:
    """The run's stages in order. ``time_bounds(pde_cfg) -> (t0, T)`` gives an entry's horizon."""
    windows = int(cfg["train"]["time_windows"])
    window_steps = cfg["train"].get("window_steps")
    stages: list[Stage] = []
    start = 0
    for e, entry in enumerate(entries_of(cfg)):
        phases = phase_configs(entry["optim"])
        key = "optim.phases" if len(phases) > 1 else "optim"
        total_key = f"stages.{e}.steps" if cfg.get("stages") else "train.steps"
        edges = window_edges(*time_bounds(entry["pde"]), windows) if windows > 1 else None
        for k in range(windows):
            if window_steps:   # a step count of its own for each window (train.window_steps)
                window_total, window_key = int(window_steps[k]), f"train.window_steps[{k}]"
            else:
                window_total, window_key = entry["steps"], total_key
            phase_steps = split_steps(phases, window_total, key, window_key) if len(phases) > 1 else [window_total]
            for j, (phase, n) in enumerate(zip(phases, phase_steps)):
                if not stages:
                    carry = Carry(params=False, weights=False)
                elif j > 0:
                    carry = PHASE_CARRY
                elif k > 0:
                    carry = WINDOW_CARRY
                else:
                    carry = entry["carry"]
                parts = [entry["name"], f"window_{k}" if windows > 1 else None, phase["name"] if len(phases) > 1 else None]
                name = "/".join(p for p in parts if p) or phase["name"]
                precision = phase.get("precision") or cfg["train"]["precision"]
                previous = stages[-1] if stages else None
                if carry.opt_state and previous is not None:
                    if optimizer_identity(previous.optim, previous.precision) != optimizer_identity(phase, precision):
                        raise ConfigError(
                            f"stages[{e}].carry.opt_state: the optimizer changes from stage {previous.name} "
                            f"({previous.optim['name']}, {previous.precision}) to {name} ({phase['name']}, {precision}); "
                            "its state cannot carry over: set carry.opt_state: false"
                        )
                stage = Stage(
                    index=len(stages),
                    name=name,
                    start=start,
                    end=start + n,
                    optim=phase,
                    precision=precision,
                    pde=entry["pde"],
                    batch_size=entry["batch_size"],
                    carry=carry,
                    entry=e,
                    window=k if windows > 1 else None,
                    time_range=(float(edges[k]), float(edges[k + 1])) if edges is not None else None,
                    phase=phase["name"] if len(phases) > 1 else None,
                    clock_origin=previous.clock_origin if carry.lr_clock and previous else start,
                    count_origin=previous.count_origin if carry.opt_state and previous else start,
                    weights_origin=previous.weights_origin if carry.weights and previous else start,
                )
                stages.append(stage)
                start += n
    return stages


def learning_rate(stage: Stage, step: int) -> float | None:
    """The scheduled learning rate at a global step (None for line-search stages)."""
    from pinnrun.optim.factory import build_schedule

    if stage.uses_line_search:
        return None
    return float(build_schedule(stage.optim)(step - stage.clock_origin))


def validate_stages(cfg: Mapping[str, Any]) -> None:
    """One-line errors for a malformed ``stages:`` list (before anything is built)."""
    from pinnrun.config import check_bool, check_int, check_keys, validate_optimizer

    listed = cfg.get("stages")
    if listed is None:
        return
    if not isinstance(listed, list) or not listed:
        raise ConfigError(f"stages must be null or a non-empty list of stages; got {listed!r}")
    for i, entry in enumerate(listed):
        key = f"stages[{i}]"
        if not isinstance(entry, Mapping):
            raise ConfigError(f"{key} must be a mapping with keys {', '.join(STAGE_KEYS)}; got {entry!r}")
        check_keys(cfg, key, STAGE_KEYS)
        for name in ("steps", "batch_size"):
            if name in entry:
                check_int(cfg, f"{key}.{name}", 1, allow_none=True)
        for group in ("pde", "optim", "carry"):
            if entry.get(group) is not None and not isinstance(entry[group], Mapping):
                raise ConfigError(f"{key}.{group} must be a mapping; got {entry[group]!r}")
        if entry.get("carry"):
            check_keys(cfg, f"{key}.carry", CARRY_KEYS)
            for name in entry["carry"]:
                check_bool(cfg, f"{key}.carry.{name}")
        if "_target_" in (entry.get("pde") or {}):
            raise ConfigError(f"{key}.pde._target_: a stage changes the PDE's parameters, not the PDE")
    names = [e.get("name") for e in listed if e.get("name")]
    if len(set(names)) != len(names):
        raise ConfigError(f"stages: names must differ; got {', '.join(map(str, names))}")
    split_steps(listed, int(cfg["train"]["steps"]), "stages")
    for i, entry in enumerate(listed):
        # Each entry's optimizer as it will run (the optim group with the entry's overrides), checked
        # under the entry's own key so that an error names stages[i].optim.<key>.
        optim = merge(cfg["optim"], entry.get("optim"))
        scratch = {**cfg, "stages": [*listed[:i], {**entry, "optim": optim}, *listed[i + 1 :]]}
        if optim.get("phases"):
            for j in range(len(optim["phases"])):
                validate_optimizer(scratch, f"stages[{i}].optim.phases[{j}]", in_phases=True)
        else:
            validate_optimizer(scratch, f"stages[{i}].optim")

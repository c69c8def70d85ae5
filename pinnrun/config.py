"""Validation of the composed config: bad input becomes one clear line before anything compiles.

Each check names the dotted key, the allowed values and what it got. ``validate(cfg)`` raises
``ConfigError``; the CLI prints its message and exits with status 2.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from omegaconf import DictConfig, OmegaConf

PRECISIONS = ("float32", "float64")
MATMUL_PRECISIONS = ("highest", "high", "default")
PROGRESS_MODES = ("auto", "bar", "lines", "none")
WEIGHTINGS = ("fixed", "grad_norm", "ntk")
LOGGERS = ("jsonl", "none", "wandb")
MODES = ("train", "eval")
ON_NAN = ("stop", "rollback")


class ConfigError(ValueError):
    """A config value that is not allowed; the message is one line naming the key."""


def _get(cfg: Mapping, key: str) -> Any:
    """The value at a dotted key; ``phases[1]`` indexes a list."""
    node: Any = cfg
    for part in key.split("."):
        name, _, index = part.partition("[")
        if not isinstance(node, Mapping) or name not in node:
            raise ConfigError(f"{key}: missing from the config")
        node = node[name]
        if index:
            node = node[int(index.rstrip("]"))]
    return node


def check_int(cfg: Mapping, key: str, minimum: int | None = None, allow_none: bool = False) -> None:
    value = _get(cfg, key)
    if value is None and allow_none:
        return
    bound = f" >= {minimum}" if minimum is not None else ""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{key} must be an integer{bound}{' or null' if allow_none else ''}; got {value!r}")
    if minimum is not None and value < minimum:
        raise ConfigError(f"{key} must be an integer{bound}; got {value}")


def check_float(
    cfg: Mapping,
    key: str,
    minimum: float | None = None,
    maximum: float | None = None,
    exclusive_min: bool = False,
    allow_none: bool = False,
) -> None:
    value = _get(cfg, key)
    if value is None and allow_none:
        return
    lo = "" if minimum is None else (f" > {minimum}" if exclusive_min else f" >= {minimum}")
    hi = "" if maximum is None else f" <= {maximum}"
    what = f"a number{lo}{' and' if lo and hi else ''}{hi}{' or null' if allow_none else ''}"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{key} must be {what}; got {value!r}")
    if minimum is not None and (value <= minimum if exclusive_min else value < minimum):
        raise ConfigError(f"{key} must be {what}; got {value}")
    if maximum is not None and value > maximum:
        raise ConfigError(f"{key} must be {what}; got {value}")


def check_choice(cfg: Mapping, key: str, choices) -> None:
    value = _get(cfg, key)
    if value not in choices:
        raise ConfigError(f"{key} must be one of {', '.join(map(str, choices))}; got {value!r}")


def check_bool(cfg: Mapping, key: str) -> None:
    value = _get(cfg, key)
    if not isinstance(value, bool):
        raise ConfigError(f"{key} must be true or false; got {value!r}")


def check_keys(cfg: Mapping, key: str, allowed) -> None:
    node = _get(cfg, key) if key else cfg
    unknown = [k for k in node if k not in allowed]
    if unknown:
        raise ConfigError(f"{key}.{unknown[0]}: unknown key; allowed: {', '.join(allowed)}")


# ----------------------------------------------------------------------------------------------
def check_window_steps(cfg: Mapping) -> None:
    """``train.window_steps``: null, or one step count (an integer >= 1) per time window."""
    listed = cfg["train"].get("window_steps")   # absent from configs stored before it existed
    if listed is None:
        return
    windows = cfg["train"]["time_windows"]
    if isinstance(listed, (str, bytes, Mapping)) or not isinstance(listed, Sequence):
        raise ConfigError(f"train.window_steps must be null or a list of {windows} step counts (one per time window); got {listed!r}")
    if len(listed) != windows:
        raise ConfigError(f"train.window_steps must list one step count per time window: {windows} "
                          f"(train.time_windows); got {len(listed)}")
    for k, n in enumerate(listed):
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ConfigError(f"train.window_steps[{k}] must be an integer >= 1; got {n!r}")
    if cfg.get("stages"):
        raise ConfigError("train.window_steps: a curriculum (stages:) gives each stage its steps; "
                          "use train.window_steps only without stages (set stages=none)")


def validate_train(cfg: Mapping) -> None:
    check_int(cfg, "train.steps", 1)
    check_int(cfg, "train.batch_size", 1)
    check_int(cfg, "train.seed", 0)
    check_int(cfg, "train.time_windows", 1)
    check_window_steps(cfg)
    devices = _get(cfg, "train.devices")
    if devices != "auto" and (isinstance(devices, bool) or not isinstance(devices, int) or devices < 1):
        raise ConfigError(f"train.devices must be auto or an integer >= 1; got {devices!r}")
    check_choice(cfg, "train.precision", PRECISIONS)
    check_choice(cfg, "train.matmul_precision", MATMUL_PRECISIONS)
    check_int(cfg, "train.log_every", 1)
    check_int(cfg, "train.eval_every", 1)
    check_int(cfg, "train.alignment_every", 0, allow_none=True)
    check_int(cfg, "train.chunk_steps", 1, allow_none=True)
    check_int(cfg, "train.eval_batch_size", 1)
    check_choice(cfg, "train.progress", PROGRESS_MODES)
    heartbeat = cfg["train"].get("heartbeat_seconds")   # absent from configs stored before it existed
    if heartbeat is not None and (isinstance(heartbeat, bool) or not isinstance(heartbeat, (int, float)) or heartbeat < 0):
        raise ConfigError(f"train.heartbeat_seconds must be a number >= 0 (0: no heartbeat); got {heartbeat!r}")
    check_bool(cfg, "train.figures")
    check_choice(cfg, "train.on_nan", ON_NAN)
    check_int(cfg, "train.max_rollbacks", 0)


def validate_arch(cfg: Mapping) -> None:
    from pinnrun.archs import ACTIVATIONS, architectures

    check_choice(cfg, "arch.name", architectures())
    check_choice(cfg, "arch.activation", tuple(ACTIVATIONS))
    check_int(cfg, "arch.width", 1)
    check_int(cfg, "arch.depth", 1)
    check_bool(cfg, "arch.periodic")
    if "background" in cfg["arch"]:   # absent from the configs of runs made before it existed
        check_bool(cfg, "arch.background")
    check_bool(cfg, "arch.pi_init")
    if _get(cfg, "arch.fourier") is not None:
        check_keys(cfg, "arch.fourier", ("scale", "dim"))
        check_float(cfg, "arch.fourier.scale", 0.0, exclusive_min=True)
        check_int(cfg, "arch.fourier.dim", 1)
    scale = cfg["arch"].get("input_scale")
    if scale is not None:
        if not isinstance(scale, Mapping):
            raise ConfigError(f"arch.input_scale: must be null or a mapping input name -> factor, e.g. {{t: 5.0}}; got {scale!r}")
        for name in scale:
            check_float(cfg, f"arch.input_scale.{name}", 0.0, exclusive_min=True)
    scale = cfg["arch"].get("output_scale")
    if scale is not None:
        if not isinstance(scale, Mapping):
            raise ConfigError(f"arch.output_scale: must be null or a mapping field name -> factor, e.g. {{u: 0.05}}; got {scale!r}")
        for name in scale:
            check_float(cfg, f"arch.output_scale.{name}", 0.0, exclusive_min=True)
    if _get(cfg, "arch.rwf") is not None:
        check_keys(cfg, "arch.rwf", ("mean", "std"))
        check_float(cfg, "arch.rwf.mean")
        check_float(cfg, "arch.rwf.std", 0.0)


def validate_optimizer(cfg: Mapping, prefix: str, in_phases: bool = False) -> None:
    """One optimizer config: its name, schedule and its own keyword arguments."""
    from pinnrun.optim.factory import OPTIMIZERS, SCHEDULE_FREE_MODES, allowed_kwargs, optimizer_kwargs
    from pinnrun.phases import LINE_SEARCH_METHODS, RESAMPLE_MODES, line_search_keys

    check_choice(cfg, f"{prefix}.name", (*OPTIMIZERS, *LINE_SEARCH_METHODS))
    node = _get(cfg, prefix)
    phase_keys = ("steps", "precision")
    if in_phases:
        check_int(cfg, f"{prefix}.steps", 1, allow_none=True)
        if node.get("precision") is not None:
            check_choice(cfg, f"{prefix}.precision", PRECISIONS)
    if node["name"] in LINE_SEARCH_METHODS:
        keys = line_search_keys(node["name"])
        check_keys(cfg, prefix, ("name", *phase_keys, *keys))
        for key in ("memory_size", "resample_every", "max_linesearch_steps", "rad_pool", "max_params"):
            if key in keys and key in node:
                check_int(cfg, f"{prefix}.{key}", 1)
        if "resample" in node:
            check_choice(cfg, f"{prefix}.resample", RESAMPLE_MODES)
        for key in ("rad_k", "rad_c", "curvature_eps"):
            if key in node:
                check_float(cfg, f"{prefix}.{key}", 0.0)
        return
    check_float(cfg, f"{prefix}.lr", 0.0, exclusive_min=True)
    check_int(cfg, f"{prefix}.warmup_steps", 0)
    check_float(cfg, f"{prefix}.decay_rate", 0.0, 1.0, exclusive_min=True)
    check_int(cfg, f"{prefix}.decay_steps", 1)
    check_float(cfg, f"{prefix}.clip_norm", 0.0, exclusive_min=True, allow_none=True)
    if "schedule_free" in node:
        mode = node["schedule_free"]
        if mode not in SCHEDULE_FREE_MODES or isinstance(mode, int) and not isinstance(mode, bool):
            raise ConfigError(f"{prefix}.schedule_free must be one of false, true (the paper's), textbook; got {mode!r}")
    if "schedule_free_b1" in node:
        check_float(cfg, f"{prefix}.schedule_free_b1", 0.0, 1.0, exclusive_min=True)
    allowed = allowed_kwargs(node["name"])
    for key in optimizer_kwargs(node):
        if key in phase_keys and in_phases:
            continue
        if key not in allowed:
            raise ConfigError(
                f"{prefix}.{key}: not an option of optimizer {node['name']}; allowed: {', '.join(allowed)}"
            )


def validate_optim(cfg: Mapping) -> None:
    """A single optimizer, or a list of phases run one after another."""
    node = _get(cfg, "optim")
    if not node.get("phases"):
        validate_optimizer(cfg, "optim")
        return
    check_keys(cfg, "optim", ("name", "phases"))
    for i in range(len(node["phases"])):
        validate_optimizer(cfg, f"optim.phases[{i}]", in_phases=True)


def validate_weighting(cfg: Mapping) -> None:
    from pinnrun.plugins import WEIGHTING_GROUP, with_plugin_names

    check_choice(cfg, "weighting.name", with_plugin_names(WEIGHTINGS, WEIGHTING_GROUP))
    check_int(cfg, "weighting.update_every", 1)
    check_float(cfg, "weighting.momentum", 0.0, 1.0)
    check_bool(cfg, "weighting.causal")
    check_int(cfg, "weighting.num_chunks", 1)
    check_float(cfg, "weighting.causal_tol", 0.0)
    for term, value in _get(cfg, "weighting.weights").items():
        check_float(cfg, f"weighting.weights.{term}", 0.0)


def validate_run(cfg: Mapping) -> None:
    """``run.name``: a string or null; ``run.tags``: a list of strings."""
    name, tags = _get(cfg, "run.name"), _get(cfg, "run.tags")
    if name is not None and (not isinstance(name, str) or not name.strip()):
        raise ConfigError(f"run.name must be a non-empty string or null; got {name!r}")
    if not isinstance(tags, list) or not all(isinstance(t, str) and t for t in tags):
        raise ConfigError(f"run.tags must be a list of non-empty strings, e.g. run.tags=[baseline,lr-sweep]; got {tags!r}")


def pdes_with_budget(budget: str) -> list[str]:
    """pinnrun's own PDEs whose YAML gives the named budget (``qn``, ``quick``)."""
    from pathlib import Path

    import pinnrun.conf as conf

    folder = Path(conf.__file__).parent / "pde"
    return sorted(p.stem for p in folder.glob("*.yaml") if OmegaConf.load(p).get(budget) is not None)


def validate(cfg: DictConfig | Mapping) -> dict:
    """Check every group; return the config as a plain, resolved dict."""
    if isinstance(cfg, DictConfig):
        if "budget" in cfg and OmegaConf.to_container(cfg, resolve=False).get("budget") == "${qn}" and cfg.get("qn") is None:
            raise ConfigError(f"train=cpu_qn: pde={cfg.pde.get('_target_', '?').rsplit('.', 2)[-2]} has no qn budget (a `qn:` "
                              f"entry in its YAML); PDEs with one: {', '.join(pdes_with_budget('qn'))}")
        try:
            cfg = OmegaConf.to_container(cfg, resolve=True)
        except Exception as error:  # an interpolation that cannot resolve
            raise ConfigError(f"config: {str(error).splitlines()[0]}") from None
    check_choice(cfg, "mode", MODES)
    validate_train(cfg)
    validate_arch(cfg)
    validate_optim(cfg)
    validate_weighting(cfg)
    check_choice(cfg, "logger.name", LOGGERS)
    check_int(cfg, "checkpoint.every", 0)
    check_int(cfg, "checkpoint.keep", 1)
    check_int(cfg, "checkpoint.keep_best", 0)
    if _get(cfg, "checkpoint.auto_resume") is not None:
        check_bool(cfg, "checkpoint.auto_resume")
    validate_run(cfg)
    if not isinstance(_get(cfg, "pde"), Mapping) or "_target_" not in cfg["pde"]:
        raise ConfigError("pde._target_: missing; choose a PDE with pde=<name>")
    from pinnrun.stages import validate_stages

    validate_stages(cfg)
    return cfg

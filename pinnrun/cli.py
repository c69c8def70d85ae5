"""Command-line entry points. Thin: check the arguments, compose, validate, build, run.

``pinnrun [overrides]`` trains; ``pinnrun resume=<run_dir>`` continues a run from its latest checkpoint;
``pinnrun init_from=<run_dir>`` starts a new run from another run's parameters; ``pinnrun mode=eval
run_dir=<run_dir>`` evaluates a run's saved parameters without training.
"""

from __future__ import annotations

import importlib.resources
import json
import logging
import re
import sys
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from pinnrun import run_names  # noqa: F401  (registers the resolvers of the run folders' names)
from pinnrun.config import ConfigError, validate

CONFIG_PACKAGE = "pinnrun.conf"
# An override that selects a config group option: `group=value`, `+group=value`, `~group`, ...
_GROUP_OVERRIDE = re.compile(r"^[+~]{0,2}(?P<group>[A-Za-z_][\w/]*)=(?P<value>.*)$")
_SWEEP_FUNCTION = re.compile(r"^\w+\(.*\)$")
# What a resumed run may change: nothing that alters the maths of the steps already planned.
RESUME_ALLOWED = (
    "resume",
    "train.steps",
    "train.log_every",
    "train.eval_every",
    "train.alignment_every",
    "train.progress",
    "train.heartbeat_seconds",
    "train.figures",
    "train.eval_batch_size",
    "train.compile_cache_dir",
    "train.chunk_steps",
    "train.on_nan",
    "train.max_rollbacks",
    "checkpoint.every",
    "checkpoint.keep",
    "checkpoint.keep_best",
    "checkpoint.auto_resume",
    "logger",
)
EXIT_BAD_CONFIG = 2
EXIT_NON_FINITE = 3


def config_groups(argv: list[str] = ()) -> dict[str, list[str]]:
    """Group name -> available options: pinnrun's packaged configs plus those of every search-path
    entry of the command line (``hydra.searchpath=[...]``, the entry points' packages included)."""
    from pinnrun.plugins import command_line_searchpath, group_options, searchpath_folder

    groups = group_options(importlib.resources.files(CONFIG_PACKAGE))
    for entry in command_line_searchpath(argv):
        folder = searchpath_folder(entry)
        for group, options in ({} if folder is None else group_options(folder)).items():
            groups[group] = sorted({*groups.get(group, []), *options})
    return groups


def check_group_choices(argv: list[str]) -> str | None:
    """A one-line error for the first override naming a group option that does not exist, else None."""
    groups = config_groups(argv)
    for arg in argv:
        match = _GROUP_OVERRIDE.match(arg)
        if not match or match["group"] not in groups:
            continue
        value = match["value"]
        if _SWEEP_FUNCTION.match(value) or value in ("", "null"):
            continue
        for choice in value.split(","):
            if choice not in groups[match["group"]]:
                return (
                    f"unknown {match['group']} option '{choice}'; available {match['group']} options: "
                    f"{', '.join(groups[match['group']])}"
                )
    return None


def override_key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def resume_argument(argv: list[str]) -> str | None:
    """The folder given as ``resume=<dir>`` on the command line (None when there is none)."""
    resume = next((a.split("=", 1)[1] for a in argv if override_key(a) == "resume" and "=" in a), None)
    return None if not resume or resume == "null" else resume


def check_resume_folder(argv: list[str]) -> str | None:
    """The error for ``resume=<dir>`` naming a folder that does not exist (checked before Hydra
    creates the resumed run's own subfolder in it)."""
    resume = resume_argument(argv)
    if resume is not None and not Path(resume).expanduser().is_dir():
        return f"resume: {Path(resume).expanduser().absolute()} does not exist (give the folder of an earlier run)"
    return None


def check_composed_config(argv: list[str]) -> str | None:
    """The config checks of a run, on the config this command composes, before Hydra makes the run's
    folder (a refused command writes nothing) or shows it (``--cfg job``). None: nothing wrong, or
    nothing to check here (a sweep's jobs, resume and eval check their own configs)."""
    flags = ("--cfg", "-c")
    if any(a in ("-m", "--multirun", "--help", "-h", "--hydra-help", "--info", "-i") for a in argv):
        return None
    overrides = [a for i, a in enumerate(argv) if not a.startswith("-") and (i == 0 or argv[i - 1] not in (*flags, "-p", "--package"))]
    from hydra.errors import ConfigCompositionException
    from omegaconf.errors import ConfigAttributeError

    try:
        cfg = compose_config(overrides)
    except ConfigCompositionException as error:
        cause = error.__cause__
        if isinstance(cause, ConfigAttributeError) and getattr(cause, "full_key", None):   # a key not in the config
            try:   # the config without that override, for the closest valid key
                base = compose_config([o for o in overrides if override_key(o) != cause.full_key])
            except Exception:  # noqa: BLE001  (another wrong override: no suggestion)
                base = OmegaConf.create({})
            return unknown_key_message(str(cause.full_key), base)
        return None   # Hydra reports its own composition errors
    except Exception:  # noqa: BLE001
        return None
    if cfg.get("resume") or cfg.get("mode") == "eval":
        return None
    added = [override_key(o) for o in overrides if o.startswith("+") and not o.startswith("++")]
    if added:
        error = check_added_keys(added, compose_config([o for o in overrides if not o.startswith("+")]), cfg)
        if error:
            return error
    try:
        validate(cfg)
    except ConfigError as error:
        return str(error)
    return None


# Groups whose keys are all declared in pinnrun's YAML: a key added with +group.key=... must be one
# of them (keys meant to be set freely are declared with a null default). The optimizer's keys are
# checked against its own list by validation; a PDE's against its constructor's parameters.
DECLARED_GROUPS = ("train", "arch", "weighting", "checkpoint", "logger", "run")


def compose_config(overrides: list[str]) -> DictConfig:
    from hydra import compose, initialize_config_module

    with initialize_config_module(config_module=CONFIG_PACKAGE, version_base="1.3"):
        return compose(config_name="config", overrides=overrides)


def closest(name: str, candidates: list[str]) -> list[str]:
    """The candidate nearest ``name`` in spelling, if any is near (difflib)."""
    import difflib

    return difflib.get_close_matches(name, candidates, n=1)


def unknown_key_message(key: str, base: DictConfig) -> str:
    """'unknown key train.stpes; did you mean train.steps?' (or the keys there are)."""
    parent, _, leaf = key.rpartition(".")
    node = OmegaConf.select(base, parent) if parent else base
    siblings = [str(k) for k in node.keys()] if isinstance(node, DictConfig) else []
    close = closest(leaf, siblings)
    prefix = f"{parent}." if parent else ""
    if close:
        return f"unknown key {key}; did you mean {prefix}{close[0]}?"
    if not siblings:
        return f"unknown key {key}: not in the config"
    return f"unknown key {key}; keys of {parent or 'the config'}: {', '.join(siblings)}"


def check_added_keys(added: list[str], base: DictConfig, composed: DictConfig) -> str | None:
    """The error for a key added with ``+`` that pinnrun does not know: in a declared group, one that
    is not in its YAML; in ``pde``, one that is not a parameter of the PDE's constructor."""
    import inspect

    from pinnrun.build import pde_parameters

    missing = object()
    for key in added:
        group = key.split(".")[0]
        if group in DECLARED_GROUPS and OmegaConf.select(base, key, default=missing) is missing:
            return unknown_key_message(key, base)
        if group == "pde" and key.count(".") == 1:
            parameters = pde_parameters(composed.pde._target_)
            if parameters is None:   # an unknown target: building the PDE reports it
                continue
            takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
            name = key.split(".")[1]
            if name not in parameters and not takes_any:
                close = closest(name, list(parameters))
                hint = f"did you mean pde.{close[0]}?" if close else f"parameters: {', '.join(parameters)}"
                return f"unknown key {key}: not a parameter of {composed.pde._target_}; {hint}"
    return None


def segment_dir_override(argv: list[str]) -> list[str]:
    """A resumed run writes Hydra's files to its own subfolder, never over the original run's; an
    evaluation writes only inside the run it evaluates (<run_dir>/eval)."""
    if any(override_key(a) == "hydra.run.dir" for a in argv):
        return argv
    run_dir = next((a.split("=", 1)[1] for a in argv if override_key(a) == "run_dir" and "=" in a), None)
    if "mode=eval" in argv and run_dir not in (None, "", "null"):
        return [*argv, f"hydra.run.dir={Path(run_dir).expanduser().absolute() / 'eval'}"]
    resume = resume_argument(argv)
    if resume is None:
        return argv
    folder = Path(resume).expanduser().absolute() / "resumed" / "${now:%Y-%m-%d_%H-%M-%S}"
    return [*argv, f"hydra.run.dir={folder}"]


def fail(message: str, status: int = EXIT_BAD_CONFIG) -> None:
    print(f"pinnrun: {message}", file=sys.stderr)
    raise SystemExit(status)


def _is_multirun() -> bool:
    from hydra.types import RunMode

    return HydraConfig.get().mode == RunMode.MULTIRUN


def resumed_config(run_dir: Path, overrides: list[str], composed: DictConfig | None = None) -> dict[str, Any]:
    """The run's own config (from its checkpoint), with the harmless command-line overrides applied.
    ``composed``: this command's composed config, whose ``logger`` group replaces the run's when the
    command chooses a logger (``logger=wandb`` is a group choice, not a value)."""
    from pinnrun.checkpoint import CheckpointError, Checkpointer

    ckpt_dir = latest_checkpoint_folder(run_dir)
    if ckpt_dir is None:
        raise ConfigError(f"resume: {run_dir} holds no checkpoints (run it with checkpoint.every=N to make them)")
    checkpointer = Checkpointer(ckpt_dir)
    try:
        if checkpointer.latest_step() is None:
            raise ConfigError(f"resume: {run_dir} holds no finished checkpoint")
        stored = checkpointer.restore_metadata()["config"]
    except CheckpointError as error:   # every checkpoint's metadata damaged: one line, nothing written
        raise ConfigError(f"resume: {error}") from None
    finally:
        checkpointer.close()
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    config = OmegaConf.create(stored)
    for override in overrides:
        key = override_key(override)
        if key.startswith("hydra."):
            continue
        if not any(key == allowed or key.startswith(allowed + ".") for allowed in RESUME_ALLOWED):
            raise ConfigError(
                f"resume: {key} cannot change on resume (it changes the maths of the run); "
                f"allowed: {', '.join(a for a in RESUME_ALLOWED if a != 'resume')}"
            )
        if key.split(".")[0] == "logger" and composed is not None:
            config.logger = OmegaConf.create(OmegaConf.to_container(composed.logger, resolve=True))
        elif key != "resume" and "=" in override:
            OmegaConf.update(config, key, parser.parse_override(override).value(), force_add=True)
    return validate(config)


def wandb_sink(config: dict, run_dir: Path, run_id: str | None):
    if config["logger"]["name"] != "wandb":
        return None
    from pinnrun.wandb_sink import WandbSink

    logger = config["logger"]
    return WandbSink.create(
        config,
        run_dir,
        run_id=run_id,
        project=logger.get("project") or "pinnrun",
        entity=logger.get("entity"),
        group=logger.get("group"),
        tags=tuple(dict.fromkeys([*(logger.get("tags") or ()), *((config.get("run") or {}).get("tags") or ())])),
        mode=logger.get("mode"),
        name=(config.get("run") or {}).get("name") or Path(run_dir).name,
    )


def run_job(cfg: DictConfig) -> float:
    """One Hydra job: validate, build, train; returns the mean final relative L2 (what sweepers minimise)."""
    from pinnrun.launch import assign_worker_device

    assign_worker_device()  # joblib workers: one GPU each, no XLA preallocation (before JAX starts)
    from pinnrun import distributed

    distributed.initialize()  # multi-process runs only
    from pinnrun.build import build, jax_settings
    from pinnrun.trainer import RunOptions, Trainer

    logging.getLogger("jax._src.xla_bridge").setLevel(logging.WARNING)
    try:
        if cfg.get("mode") == "eval":
            return run_eval(cfg)
        output_dir = Path(HydraConfig.get().runtime.output_dir)
        if cfg.get("resume"):
            run_dir = Path(str(cfg.resume)).expanduser().absolute()
            try:
                config = resumed_config(run_dir, list(HydraConfig.get().overrides.task), cfg)
            except ConfigError:
                discard_segment(output_dir, run_dir)
                raise
            resume = True
        else:
            config = validate(cfg)
            run_dir = output_dir
            auto = config["checkpoint"].get("auto_resume")
            auto = _is_multirun() if auto is None else bool(auto)
            resume = auto and (run_dir / "checkpoints").is_dir() and any((run_dir / "checkpoints").iterdir())
    except ConfigError as error:
        fail(str(error))
    import pinnrun

    with jax_settings(config):
        try:
            components = build(config)
        except ConfigError as error:
            if resume:
                discard_segment(output_dir, run_dir)
            else:
                discard_refused_run(output_dir)
            fail(str(error))
        stored_metadata = _stored_metadata(run_dir) if resume else {}
        if resume:
            try:
                finished = _finished_run(run_dir, stored_metadata["step"], components.stages[-1].end)
            except ConfigError as error:
                discard_segment(output_dir, run_dir)
                fail(str(error))
            if finished is not None:
                discard_segment(output_dir, run_dir)
                print(f"run {run_dir} is already complete at step {stored_metadata['step']}; nothing to do")
                return finished
        try:
            init_params = _init_params(config, components) if config.get("init_from") and not resume else None
        except ConfigError as error:
            fail(str(error))
        main_process = distributed.is_main_process()
        if not resume and main_process:
            OmegaConf.save(OmegaConf.create(config), run_dir / "config.yaml")
        sink = wandb_sink(config, run_dir, stored_metadata.get("wandb_run_id")) if main_process else None
        metadata = {
            "config": config,
            "wandb_run_id": sink.run_id if sink is not None else stored_metadata.get("wandb_run_id"),
            "pinnrun_version": pinnrun.__version__,
        }
        options = RunOptions(resume=resume, init_params=init_params, metadata=metadata)
        from pinnrun.checkpoint import CheckpointError

        try:
            summary = Trainer(config, components, run_dir, sinks=[sink] if sink else [], options=options).train()
        except FloatingPointError as error:
            fail(str(error), status=EXIT_NON_FINITE)
        except CheckpointError as error:   # raised before any step: nothing to restore from, or an unusable folder
            if resume:
                discard_segment(output_dir, run_dir)
            fail(str(error))
    errors = list(summary["final_rel_l2"].values())
    print(f"run directory: {run_dir}")
    print("final relative L2: " + ", ".join(f"{k} {v:.3e}" for k, v in summary["final_rel_l2"].items()))
    return float(sum(errors) / len(errors))


def discard_segment(output_dir: Path, run_dir: Path) -> None:
    """Remove the folder Hydra made for a resume that does nothing (refused, or nothing left to do):
    ``<run_dir>/resumed/<time>``, and ``resumed/`` when it is left empty. Nothing else is touched."""
    import shutil

    segments = run_dir / "resumed"
    if output_dir.parent != segments or not output_dir.is_dir():
        return   # an explicit hydra.run.dir: not ours to remove
    logging.shutdown()   # Hydra's pinnrun.log handler holds a file in it
    shutil.rmtree(output_dir, ignore_errors=True)
    if segments.is_dir() and not any(segments.iterdir()):
        segments.rmdir()


HYDRA_FILES = {".hydra", "pinnrun.log"}


def discard_refused_run(output_dir: Path) -> None:
    """Remove the folder Hydra made for a run refused before it started, when it holds nothing but
    Hydra's own files, and the parents (outputs/<date>) that this leaves empty, up to the working
    folder. A folder with anything else in it is left alone."""
    import shutil

    if not output_dir.is_dir() or not {p.name for p in output_dir.iterdir()} <= HYDRA_FILES:
        return
    logging.shutdown()   # Hydra's pinnrun.log handler holds a file in it
    shutil.rmtree(output_dir, ignore_errors=True)
    stop = Path.cwd().absolute()
    parent = output_dir.parent
    while parent != stop and stop in parent.parents and parent.is_dir() and not any(parent.iterdir()):
        parent.rmdir()
        parent = parent.parent


def latest_checkpoint_folder(run_dir: Path) -> Path | None:
    """<run_dir>/checkpoints, where every stage of a run saves its checkpoints."""
    root = run_dir / "checkpoints"
    return root if root.is_dir() else None


def _stored_metadata(run_dir: Path) -> dict[str, Any]:
    from pinnrun.checkpoint import Checkpointer

    checkpointer = Checkpointer(latest_checkpoint_folder(run_dir))
    try:
        return {**checkpointer.restore_metadata(), "step": checkpointer.latest_step()}
    finally:
        checkpointer.close()


def _finished_run(run_dir: Path, step: int | None, total: int) -> float | None:
    """The mean final error of a run whose checkpoint is already at its last step (None when there is
    work left); a ConfigError when the command asks for fewer steps than the checkpoint has done."""
    if step is None or step < total:
        return None
    if step > total:
        raise ConfigError(f"train.steps: {run_dir} is checkpointed at step {step}, past the {total} steps asked for; "
                          f"a resume can only go on (train.steps >= its steps so far)")
    summary_path = run_dir / "summary.json"
    if not summary_path.is_file():
        return None   # killed after its last checkpoint: the resume writes the outputs
    errors = list(json.loads(summary_path.read_text())["final_rel_l2"].values())
    return float(sum(errors) / len(errors))


def _init_params(config: dict, components):
    """Parameters of another run (init_from=<run_dir>): its latest checkpoint, else its params.npz."""
    import jax

    from pinnrun.evaluate import run_params

    source = Path(str(config["init_from"])).expanduser().absolute()
    like = components.model.init(jax.random.PRNGKey(0))
    try:
        return run_params(source, like, prefer="latest", key="init_from")[0]
    except ConfigError:
        raise
    except (KeyError, ValueError) as error:
        raise ConfigError(f"init_from: the parameters of {source} do not fit this architecture ({error})") from None


class SweepReportHint(Callback):
    """Hydra callback: at the end of ``pinnrun -m ...``, where the runs are and how to compare them."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        folder = Path(str(config.hydra.sweep.dir)).absolute()
        print(f"sweep finished: {folder}\ncompare its runs with: pinnrun-report {folder}")


def run_eval(cfg: DictConfig) -> float:
    """Evaluate a finished or interrupted run: best checkpoint if any, else its params.npz."""
    from pinnrun.evaluate import evaluate_run

    if not cfg.get("run_dir"):
        raise ConfigError("run_dir: required with mode=eval (pinnrun mode=eval run_dir=<dir>)")
    return evaluate_run(Path(str(cfg.run_dir)).expanduser().absolute(), Path(HydraConfig.get().runtime.output_dir))


@hydra.main(version_base="1.3", config_path=f"pkg://{CONFIG_PACKAGE}", config_name="config")
def _hydra_main(cfg: DictConfig) -> float:
    return run_job(cfg)


def one_line_warnings() -> None:
    """pinnrun's own warnings ("pinnrun: ...") print as that one line, without Python's file:line
    prefix and source line; others keep Python's format."""
    import warnings

    default = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        text = str(message)
        if text.startswith("pinnrun:"):
            print(text.splitlines()[0], file=file or sys.stderr)
        else:
            default(message, category, filename, lineno, file, line)

    warnings.showwarning = show


def main() -> None:
    """The ``pinnrun`` console script."""
    one_line_warnings()
    from pinnrun.plugins import with_plugin_searchpath

    argv = with_plugin_searchpath(sys.argv[1:])   # the entry points' config packages (pinnrun.plugins)
    error = check_group_choices(argv) or check_resume_folder(argv) or check_composed_config(argv)
    if error:
        fail(error)
    sys.argv = [sys.argv[0], *show_config_of_sweep(segment_dir_override(argv))]
    _hydra_main()


def show_config_of_sweep(argv: list[str]) -> list[str]:
    """``pinnrun -m ... --cfg hydra`` shows the (launcher's) config: Hydra allows only one of the two."""
    if any(a in ("--cfg", "-c", "--info", "-i") for a in argv):
        return [a for a in argv if a not in ("-m", "--multirun")]
    return argv


if __name__ == "__main__":
    main()

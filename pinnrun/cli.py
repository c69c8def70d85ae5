"""Command-line entry points. Thin: check the arguments, compose, validate, build, run."""

from __future__ import annotations

import importlib.resources
import re
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from pinnrun.config import ConfigError, validate

CONFIG_PACKAGE = "pinnrun.conf"
# An override that selects a config group option: `group=value`, `+group=value`, `~group`, ...
_GROUP_OVERRIDE = re.compile(r"^[+~]{0,2}(?P<group>[A-Za-z_][\w/]*)=(?P<value>.*)$")
_SWEEP_FUNCTION = re.compile(r"^\w+\(.*\)$")


def config_groups() -> dict[str, list[str]]:
    """Group name -> available options, read from the packaged configs."""
    root = importlib.resources.files(CONFIG_PACKAGE)
    groups = {}
    for entry in root.iterdir():
        if entry.is_dir() and not entry.name.startswith(("_", ".")):
            options = sorted(f.name[: -len(".yaml")] for f in entry.iterdir() if f.name.endswith(".yaml"))
            if options:
                groups[entry.name] = options
    return groups


def check_group_choices(argv: list[str]) -> str | None:
    """A one-line error for the first override naming a group option that does not exist, else None."""
    groups = config_groups()
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


def fail(message: str, status: int = 2) -> None:
    print(f"pinnrun: {message}", file=sys.stderr)
    raise SystemExit(status)


def run_job(cfg: DictConfig) -> float:
    """One Hydra job: validate, build, train; returns the mean final relative L2 (what sweepers minimise)."""
    from pinnrun.build import build, jax_settings
    from pinnrun.trainer import Trainer

    try:
        config = validate(cfg)
    except ConfigError as error:
        fail(str(error))
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    with jax_settings(config):
        try:
            components = build(config)
        except ConfigError as error:
            fail(str(error))
        from omegaconf import OmegaConf

        OmegaConf.save(OmegaConf.create(config), run_dir / "config.yaml")
        try:
            summary = Trainer(config, components, run_dir).train()
        except FloatingPointError as error:
            fail(str(error), status=3)
    errors = list(summary["final_rel_l2"].values())
    print(f"run directory: {run_dir}")
    print("final relative L2: " + ", ".join(f"{k} {v:.3e}" for k, v in summary["final_rel_l2"].items()))
    return float(sum(errors) / len(errors))


@hydra.main(version_base="1.3", config_path=f"pkg://{CONFIG_PACKAGE}", config_name="config")
def _hydra_main(cfg: DictConfig) -> float:
    return run_job(cfg)


def main() -> None:
    """The ``pinnrun`` console script."""
    error = check_group_choices(sys.argv[1:])
    if error:
        fail(error)
    _hydra_main()


if __name__ == "__main__":
    main()

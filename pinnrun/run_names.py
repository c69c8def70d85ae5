"""Run folder names that say what ran: ``<time>_<pde>_<optim>[_<other overrides>]``.

The PDE part is the ``name`` of the PDE class actually built (a ``pde._target_=...`` override or a
plug-in PDE names its own folder), the optimizer part the ``optim`` choice, and every other override
of the command line adds one short part: a group choice its value (``train=cpu_quick`` ->
``cpu_quick``), a key its last component and value (``train.seed=1`` -> ``seed1``,
``arch.width=32`` -> ``width32``). Characters other than letters, digits, ``_``, ``.``, ``+`` and ``-``
become ``-`` (Orbax cannot restore from a path with brackets or commas), and the name is cut at
``MAX_LENGTH`` characters. ``run.name=...`` replaces the derived part by the given name.

Hydra resolves the names through the resolvers ``pinnrun.run_name`` and ``pinnrun.job_name``
(conf/config.yaml: ``hydra.run.dir`` and ``hydra.sweep.subdir``), registered on importing this module.
"""

from __future__ import annotations

import re
from typing import Iterable

from omegaconf import OmegaConf

MAX_LENGTH = 100
# Overrides that name no variant of the maths, or are named already (pde, optim).
_SKIPPED = ("pde", "optim", "resume", "mode", "run_dir", "init_from", "run.name", "run.tags")
_UNSAFE = re.compile(r"[^A-Za-z0-9_.+-]+")


def safe(text: str) -> str:
    return _UNSAFE.sub("-", str(text)).strip("-")


def pde_name(target: str | None, choice: str) -> str:
    """The ``name`` of the PDE class ``target`` when it is importable, else the config choice."""
    if target:
        try:
            from hydra.utils import get_class

            name = getattr(get_class(str(target)), "name", None)
            if isinstance(name, str) and name:
                return name
        except Exception:  # noqa: BLE001  (not importable here: the run itself reports that)
            pass
    return choice


def override_parts(overrides: Iterable[str]) -> list[str]:
    """One short part per override that is not skipped (see the module docstring)."""
    parts = []
    for override in overrides:
        key, sep, value = str(override).partition("=")
        key = key.lstrip("+~")
        if not sep or key.startswith("hydra.") or key in _SKIPPED or key.startswith("pde._target_"):
            continue
        part = safe(value) if "." not in key else safe(key.rsplit(".", 1)[-1] + value)
        if part:
            parts.append(part)
    return parts


def run_name(pde_choice: str, pde_target: str | None, optim_choice: str, overrides=(), given: str | None = None) -> str:
    """The folder name after the time stamp."""
    if given:
        return safe(given)[:MAX_LENGTH] or "run"
    parts = [safe(pde_name(pde_target, pde_choice)), safe(optim_choice), *override_parts(overrides or ())]
    return "_".join(p for p in parts if p)[:MAX_LENGTH].rstrip("_-")


def job_name(number, overrides=(), given: str | None = None) -> str:
    """A sweep job's folder: its number, then the overrides of the job (pde and optim included)."""
    if given:
        return f"{number}_{safe(given)[:MAX_LENGTH]}"
    parts = []
    for override in overrides or ():
        key, sep, value = str(override).partition("=")
        key = key.lstrip("+~")
        if sep and key in ("pde", "optim"):
            parts.append(safe(value))
    parts += override_parts(overrides or ())
    name = "_".join(p for p in parts if p)[:MAX_LENGTH].rstrip("_-")
    return f"{number}_{name}" if name else str(number)


def register() -> None:
    for name, fn in (("pinnrun.run_name", run_name), ("pinnrun.job_name", job_name)):
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, fn)


register()

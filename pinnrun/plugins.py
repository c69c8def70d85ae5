"""Configs and PDEs from outside the package, the Hydra way.

Two doors, both ending in Hydra's config search path:

* ``hydra.searchpath=[file:///path/to/conf]`` on the command line (Hydra's own override): the folder
  holds config groups laid out like pinnrun's ``conf/`` (``pde/poisson.yaml``, ...), and a PDE's YAML
  names its class by ``_target_`` (importable: on ``PYTHONPATH`` or installed).
* an installed package that declares an entry point in the group ``pinnrun.configs`` whose value is
  a config package (a module holding the group folders), e.g. in its pyproject.toml::

      [project.entry-points."pinnrun.configs"]
      my_pinns = "my_pinns.conf"

  pinnrun appends ``pkg://my_pinns.conf`` to the search path of every command.

pinnrun's own checks (the option lists of ``pde=...`` and the other groups, the config validation
before anything is written) see the same search path as Hydra.

Architectures and weighting schemes are code: a package adds them by entry points too, each naming a
function, and a YAML of its own in its config package selects them by name (docs/plugins.md):

* ``pinnrun.archs``: ``name = "pkg.module:build"`` with ``build(cfg, *, input_dim, output_dim, embedding,
  dtype) -> pinnrun.archs.Model`` (``embedding``: pinnrun's input embedding of the run's periodic axes,
  Fourier features and input scales; ``arch.output_scale`` is applied by pinnrun);
* ``pinnrun.weightings``: ``name = "pkg.module:targets"`` with ``targets(loss, params, batch, key, cfg)
  -> [K] array`` of balancing weights in ``loss``'s term order (jitted; pinnrun smooths them with
  ``weighting.momentum`` every ``weighting.update_every`` steps, as it does grad-norm and NTK weights).
"""

from __future__ import annotations

import importlib.resources
from importlib.metadata import entry_points
from pathlib import Path
from typing import Iterable

ENTRY_POINT_GROUP = "pinnrun.configs"
ARCH_GROUP = "pinnrun.archs"
WEIGHTING_GROUP = "pinnrun.weightings"
SEARCHPATH_KEY = "hydra.searchpath"


def plugin_names(group: str) -> tuple[str, ...]:
    """The names declared in an entry-point group (``pinnrun.archs``, ``pinnrun.weightings``)."""
    return tuple(sorted({ep.name for ep in entry_points(group=group)}))


def with_plugin_names(builtin: tuple[str, ...], group: str) -> tuple[str, ...]:
    """pinnrun's own names, then those declared in ``group`` that are not among them."""
    return builtin + tuple(n for n in plugin_names(group) if n not in builtin)


def load_plugin(group: str, name: str):
    """The object an entry point of ``group`` named ``name`` points to (imported now)."""
    ep = next((ep for ep in entry_points(group=group) if ep.name == name), None)
    if ep is None:
        raise ValueError(f"no {group} entry point named {name!r}; declared: {', '.join(plugin_names(group)) or 'none'}")
    return ep.load()


def entry_point_packages() -> list[str]:
    """Config packages declared by installed distributions in the ``pinnrun.configs`` group."""
    return sorted({ep.value.strip() for ep in entry_points(group=ENTRY_POINT_GROUP)})


def _is_searchpath_override(arg: str) -> bool:
    return arg.split("=", 1)[0].lstrip("+~") == SEARCHPATH_KEY and "=" in arg


def command_line_searchpath(argv: Iterable[str]) -> list[str]:
    """The entries of a ``hydra.searchpath=[...]`` override (the last one wins, as in Hydra)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    found: list[str] = []
    for arg in argv:
        if _is_searchpath_override(arg):
            value = OverridesParser.create().parse_overrides([arg])[0].value()
            found = [str(v) for v in value] if isinstance(value, list) else [str(value)]
    return found


def with_plugin_searchpath(argv: list[str]) -> list[str]:
    """``argv`` with the entry points' config packages added to the search path: appended to the
    command line's ``hydra.searchpath=[...]`` if there is one, else as a new such override."""
    extra = [f"pkg://{module}" for module in entry_point_packages()]
    if not extra:
        return list(argv)
    given = command_line_searchpath(argv)
    merged = given + [e for e in extra if e not in given]
    rest = [a for a in argv if not _is_searchpath_override(a)]
    return [*rest, f"{SEARCHPATH_KEY}=[{','.join(merged)}]"]


def searchpath_folder(entry: str):
    """The folder (a ``Path`` or an importlib resource) of one search-path entry; None when it does
    not exist (Hydra reports missing entries itself)."""
    if entry.startswith("file://"):
        folder = Path(entry[len("file://"):]).expanduser()
        return folder if folder.is_dir() else None
    if entry.startswith("pkg://"):
        try:
            return importlib.resources.files(entry[len("pkg://"):].replace("/", "."))
        except ModuleNotFoundError:
            return None
    folder = Path(entry).expanduser()   # Hydra reads a bare path as a file path
    return folder if folder.is_dir() else None


def group_options(folder) -> dict[str, list[str]]:
    """Config group name -> its options (YAML files) in one config folder."""
    groups: dict[str, list[str]] = {}
    for entry in folder.iterdir():
        if entry.is_dir() and not entry.name.startswith(("_", ".")) and entry.name != "hydra":
            options = sorted(f.name[: -len(".yaml")] for f in entry.iterdir() if f.name.endswith(".yaml"))
            if options:
                groups[entry.name] = options
    return groups

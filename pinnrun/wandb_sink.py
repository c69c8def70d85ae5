"""Weights & Biases sink: the same ``log(record)`` / ``close(summary)`` protocol as ``JsonlSink``.

W&B is optional and must never stop training: ``WandbSink.create`` returns ``None`` (after one warning)
if wandb is not installed or ``wandb.init`` fails for any reason, and a failing ``log`` is reported once
and otherwise ignored.

Mode: an explicit ``mode`` wins; otherwise ``$WANDB_MODE`` is respected; otherwise, if no API key is
configured (neither ``$WANDB_API_KEY``/``$WANDB_IDENTITY_TOKEN_FILE`` nor a .netrc entry for the W&B host),
the run is logged **offline** under ``<run_dir>/wandb/`` (upload it later with ``wandb sync``) instead
of prompting for a login. Mode ``disabled`` returns ``None`` without importing wandb.

Runs are resumable: pass the ``run_id`` of the interrupted run (kept in the checkpoint metadata) and the
same W&B run continues (``resume="allow"``); every metric is plotted against pinnrun's ``step``, so a
resumed run keeps its x axis. Offline, a resumed run writes a second ``offline-run-*`` folder with the
same id; ``wandb sync`` merges them.
"""

from __future__ import annotations

import netrc
import os
import secrets
import string
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

DEFAULT_HOST = "https://api.wandb.ai"


def _warn(message: str) -> None:
    warnings.warn(f"pinnrun: {message}", RuntimeWarning, stacklevel=3)


def api_key_configured() -> bool:
    """Whether W&B credentials are configured: env variables or a .netrc entry for the W&B host."""
    if os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_IDENTITY_TOKEN_FILE"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL") or DEFAULT_HOST).hostname or "api.wandb.ai"
    candidates = [os.environ["NETRC"]] if os.environ.get("NETRC") else [
        os.path.expanduser("~/.netrc"),
        os.path.expanduser("~/_netrc"),
    ]
    for path in candidates:
        try:
            if os.path.isfile(path):
                entry = netrc.netrc(path).authenticators(host)
                if entry and entry[2]:
                    return True
        except (OSError, netrc.NetrcParseError):
            continue
    return False


def resolve_mode(mode: str | None = None) -> str:
    """The W&B mode to use: ``mode``, else ``$WANDB_MODE``, else online with a key / offline without."""
    if mode:
        return mode
    if os.environ.get("WANDB_MODE"):
        return os.environ["WANDB_MODE"]
    return "online" if api_key_configured() else "offline"


def new_run_id(length: int = 8) -> str:
    """A fresh W&B-style run id (lowercase letters and digits; wandb 0.31 no longer has util.generate_id)."""
    alphabet = string.ascii_lowercase + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(length))


def plain(config: Any) -> Any:
    """A config as plain dicts/lists (OmegaConf containers are resolved)."""
    try:
        from omegaconf import DictConfig, ListConfig, OmegaConf

        if isinstance(config, (DictConfig, ListConfig)):
            return OmegaConf.to_container(config, resolve=True)
    except ImportError:  # pragma: no cover
        pass
    if isinstance(config, Mapping):
        return {str(k): plain(v) for k, v in config.items()}
    if isinstance(config, (list, tuple)):
        return [plain(v) for v in config]
    return config


def flatten(tree: Mapping[str, Any], prefix: str = "", sep: str = "/") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a/b": 1}``."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{sep}{key}" if prefix else str(key)
        if isinstance(value, Mapping):
            out.update(flatten(value, name, sep))
        else:
            out[name] = value
    return out


class WandbSink:
    """Logs pinnrun records to a W&B run; build it with ``WandbSink.create`` (may return None)."""

    def __init__(self, run, wandb_module):
        self.run = run
        self._wandb = wandb_module
        self._failed = False
        self._closed = False

    @classmethod
    def create(
        cls,
        config: Mapping[str, Any],
        run_dir: Path,
        run_id: str | None = None,
        project: str = "pinnrun",
        entity: str | None = None,
        group: str | None = None,
        tags: tuple[str, ...] | list[str] = (),
        mode: str | None = None,
        name: str | None = None,
    ) -> WandbSink | None:
        """Start (or resume, given ``run_id``) a W&B run logging into ``run_dir/wandb``; None if that fails."""
        mode = resolve_mode(mode)
        if mode == "disabled":
            return None
        try:
            import wandb
        except ImportError:
            _warn("logger=wandb but wandb is not installed (pip install 'pinnrun[wandb]'); not logging to W&B")
            return None
        try:
            run_dir = Path(run_dir)
            run_dir.mkdir(parents=True, exist_ok=True)
            settings = wandb.Settings(
                silent=True,  # no banners or sync hints on the console
                console="off",  # do not capture stdout/stderr (the progress bar)
                x_disable_stats=True,  # no system-metrics sampling thread
                x_save_requirements=False,
            )
            run = wandb.init(
                project=project,
                entity=entity,
                group=group,
                tags=list(tags) if tags else None,
                name=name,
                dir=str(run_dir),
                id=run_id or new_run_id(),
                resume="allow",
                config=plain(config),
                mode=mode,
                reinit="finish_previous",  # several Hydra jobs in one process
                settings=settings,
            )
            run.define_metric("step")
            run.define_metric("*", step_metric="step")
        except Exception as error:  # noqa: BLE001 - W&B must never stop training
            _warn(f"W&B init failed ({type(error).__name__}: {_first_line(error)}); not logging to W&B")
            return None
        return cls(run, wandb)

    @property
    def run_id(self) -> str:
        return self.run.id

    def _report(self, what: str, error: Exception) -> None:
        if not self._failed:
            self._failed = True
            _warn(f"W&B {what} failed ({type(error).__name__}: {_first_line(error)}); further W&B errors are ignored")

    def log(self, record: Mapping[str, Any]) -> None:
        if self._closed:
            return
        try:
            self.run.log(dict(record))
        except Exception as error:  # noqa: BLE001
            self._report("log", error)

    def log_images(self, paths: Mapping[str, Path], step: int | None = None) -> None:
        """One ``wandb.Image`` per existing file, under its key; ``step`` puts them on pinnrun's step axis."""
        if self._closed:
            return
        try:
            images: dict[str, Any] = {k: self._wandb.Image(str(p)) for k, p in paths.items() if Path(p).is_file()}
            if not images:
                return
            if step is not None:
                images["step"] = int(step)
            self.run.log(images)
        except Exception as error:  # noqa: BLE001
            self._report("image logging", error)

    def mark_preempting(self) -> None:
        """Tell W&B the run is being preempted (shown as such, and resumable), before ``close(exit_code=75)``."""
        if self._closed:
            return
        try:
            self.run.mark_preempting()
        except Exception as error:  # noqa: BLE001
            self._report("mark_preempting", error)

    def close(self, summary: Mapping[str, Any] | None = None, exit_code: int | None = None) -> None:
        """Write ``summary`` (nested dicts flattened to ``a/b`` keys) and finish the run (idempotent).

        ``exit_code`` (e.g. 75 after a preemption) is passed to ``run.finish``; None means success.
        """
        if self._closed:
            return
        self._closed = True
        try:
            if summary:
                self.run.summary.update(flatten(plain(summary)))
        except Exception as error:  # noqa: BLE001
            self._report("summary", error)
        try:
            if exit_code is None:
                self.run.finish()
            else:
                self.run.finish(exit_code=exit_code)
        except Exception as error:  # noqa: BLE001
            self._report("finish", error)


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0][:200] if text else "no message"

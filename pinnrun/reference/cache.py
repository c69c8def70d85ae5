"""On-disk cache of generated reference solutions.

Entries are ``.npz`` files named ``<name>-<key>.npz`` where ``key`` is a SHA-256 digest (first 20
hex digits) of everything that determines the numbers: PDE name and kind, parameters, initial
condition, domain, evaluation grid, solver resolution (modes, dt, padding) and the solver version
string.  Each file stores ``t``, ``x``, ``u``, the key data as JSON (``meta``) and a SHA-256
checksum of the arrays.  Writes are atomic (temporary file in the same folder + ``os.replace``).
An entry that cannot be read, lacks keys, has the wrong metadata, shapes or checksum, or holds
non-finite values is reported with a ``RuntimeWarning`` and regenerated.

Folder: the ``cache_dir`` argument, else ``$PINNRUN_CACHE_DIR``, else ``~/.cache/pinnrun/reference``.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import sys
import time
import warnings
import zipfile
from pathlib import Path
from typing import Optional, Union

import numpy as np

from .problems import PeriodicProblem, solve

__all__ = [
    "CacheError",
    "default_cache_dir",
    "resolve_cache_dir",
    "cache_key",
    "cache_path",
    "read_entry",
    "write_entry",
    "load_or_generate",
    "StderrProgress",
]

ENV_VAR = "PINNRUN_CACHE_DIR"
_ARRAYS = ("t", "x", "u")
_REQUIRED = _ARRAYS + ("meta", "checksum")

PathLike = Union[str, os.PathLike]


class CacheError(Exception):
    """A cache entry is missing, unreadable or inconsistent."""


def default_cache_dir() -> Path:
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser()
    return Path("~/.cache/pinnrun/reference").expanduser()


def resolve_cache_dir(cache_dir: Optional[PathLike] = None) -> Path:
    return Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()


def cache_key(problem: PeriodicProblem) -> str:
    blob = json.dumps(problem.key_data(), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:20]


def cache_path(problem: PeriodicProblem, cache_dir: Optional[PathLike] = None) -> Path:
    return resolve_cache_dir(cache_dir) / f"{problem.name}-{cache_key(problem)}.npz"


def _checksum(t: np.ndarray, x: np.ndarray, u: np.ndarray) -> str:
    h = hashlib.sha256()
    for arr in (t, x, u):
        a = np.ascontiguousarray(arr, dtype="<f8")
        h.update(str(a.shape).encode())
        h.update(a.tobytes())
    return h.hexdigest()


def write_entry(path: PathLike, problem: PeriodicProblem, data: dict, seconds: float = float("nan")) -> Path:
    """Atomically write ``data`` (``t``, ``x``, ``u``) for ``problem`` to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    t, x, u = (np.ascontiguousarray(data[k], dtype=np.float64) for k in _ARRAYS)
    meta = dict(problem.key_data())
    meta["generation_seconds"] = float(seconds)
    meta["created"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    # A unique temporary name in the same folder (so os.replace is atomic); opened with "xb" so
    # the file gets the usual umask-based permissions.
    tmp = path.parent / f".{path.stem}.{os.getpid()}.{secrets.token_hex(6)}.tmp"
    try:
        with open(tmp, "xb") as fh:
            np.savez(
                fh,
                t=t,
                x=x,
                u=u,
                meta=np.array(json.dumps(meta, sort_keys=True)),
                checksum=np.array(_checksum(t, x, u)),
            )
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return path


def read_entry(path: PathLike, problem: PeriodicProblem) -> dict:
    """Read and validate a cache entry; raise ``CacheError`` (with the reason) if it is bad."""
    path = Path(path)
    if not path.exists():
        raise CacheError("missing")
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = [k for k in _REQUIRED if k not in npz.files]
            if missing:
                raise CacheError(f"missing keys {missing}")
            arrays = {k: np.asarray(npz[k]) for k in _ARRAYS}
            meta_raw = str(npz["meta"][()])
            checksum = str(npz["checksum"][()])
    except CacheError:
        raise
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as exc:
        raise CacheError(f"unreadable ({type(exc).__name__}: {exc})") from None
    try:
        meta = json.loads(meta_raw)
    except json.JSONDecodeError:
        raise CacheError("metadata is not valid JSON") from None
    expected = problem.key_data()
    if {k: meta.get(k) for k in expected} != json.loads(json.dumps(expected)):
        raise CacheError("metadata does not match the problem definition")
    t, x, u = arrays["t"], arrays["x"], arrays["u"]
    shapes = {"t": (problem.nt,), "x": (problem.nx,), "u": (problem.nt, problem.nx)}
    for k, arr in arrays.items():
        if arr.dtype != np.float64:
            raise CacheError(f"{k} has dtype {arr.dtype}, expected float64")
        if arr.shape != shapes[k]:
            raise CacheError(f"{k} has shape {arr.shape}, expected {shapes[k]}")
        if not np.all(np.isfinite(arr)):
            raise CacheError(f"{k} contains non-finite values")
    if _checksum(t, x, u) != checksum:
        raise CacheError("checksum mismatch")
    if not (np.allclose(t, problem.t, rtol=0, atol=1e-12) and np.allclose(x, problem.x, rtol=0, atol=1e-12)):
        raise CacheError("grid does not match the problem definition")
    return {"t": t, "x": x, "u": u}


class StderrProgress:
    """Progress line on stderr (called every ~10% of the time steps)."""

    def __init__(self, label: str, stream=None):
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())

    def __call__(self, step: int, total: int, seconds: float) -> None:
        pct = 100.0 * step / max(total, 1)
        msg = f"pinnrun-reference: {self.label}: {pct:3.0f}% ({step}/{total} steps, {seconds:.1f} s)"
        end = "\n" if (not self.tty or step >= total) else ""
        self.stream.write(("\r" if self.tty else "") + msg + end)
        self.stream.flush()


def _generate(problem: PeriodicProblem, progress: bool):
    cb = StderrProgress(problem.name) if progress else None
    start = time.perf_counter()
    data = solve(problem, progress=cb)
    seconds = time.perf_counter() - start
    u = data["u"]
    if u.shape != (problem.nt, problem.nx) or not np.all(np.isfinite(u)):
        raise FloatingPointError(f"generation of {problem.name!r} produced an invalid solution")
    return data, seconds


def load_or_generate(
    problem: PeriodicProblem,
    cache_dir: Optional[PathLike] = None,
    force: bool = False,
    progress: bool = True,
) -> tuple:
    """Return ``(data, path, generated_seconds_or_None)``; generate and store when needed."""
    path = cache_path(problem, cache_dir)
    if not force and path.exists():
        try:
            return read_entry(path, problem), path, None
        except CacheError as exc:
            warnings.warn(
                f"pinnrun.reference: cache entry {path} is invalid ({exc}); regenerating it",
                RuntimeWarning,
                stacklevel=3,
            )
    data, seconds = _generate(problem, progress)
    write_entry(path, problem, data, seconds)
    return data, path, seconds

"""On-disk cache of generated reference solutions.

Entries are ``.npz`` files named ``<name>-<key>.npz`` where ``key`` is a SHA-256 digest (first 20
hex digits) of everything that determines the numbers: PDE name and kind, parameters, initial
condition, domain, evaluation grid, solver resolution (modes, dt, padding) and the solver version
string.  Each file stores the problem's arrays (``problem.ARRAYS``: ``t``, ``x``, ``u`` for the 1-D
problems, ``t``, ``x``, ``y``, ``u``, ``v`` for the 2-D ones), the key data as JSON (``meta``) and
a SHA-256 checksum of the arrays (in ``ARRAYS`` order).  Writes are atomic (temporary file in the
same folder + ``os.replace``).
An entry that cannot be read, lacks keys, has the wrong metadata, shapes or checksum, or holds
non-finite values is reported with a ``RuntimeWarning`` and regenerated.  ``read_info`` reads only
the metadata and the stored checksum (no arrays: what ``provenance`` needs).

A problem is anything with ``name``, ``ARRAYS``, ``key_data()``, ``shapes()`` (array name ->
shape), ``grid()`` (coordinate arrays to validate) and ``compute(progress)`` (the solver run):
``problems.PeriodicProblem`` and ``problems2d.Periodic2DProblem``.

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

from .problems import PeriodicProblem

__all__ = [
    "CacheError",
    "default_cache_dir",
    "resolve_cache_dir",
    "cache_key",
    "cache_path",
    "read_entry",
    "read_info",
    "write_entry",
    "load_or_generate",
    "load_or_generate_entry",
    "StderrProgress",
]

ENV_VAR = "PINNRUN_CACHE_DIR"
_META = ("meta", "checksum")


def _arrays(problem) -> tuple:
    """Names of the arrays stored for ``problem`` (checksum order)."""
    return tuple(getattr(problem, "ARRAYS", ("t", "x", "u")))

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


def _checksum(*arrays: np.ndarray) -> str:
    """SHA-256 over the arrays' shapes and little-endian float64 bytes, in the given order."""
    h = hashlib.sha256()
    for arr in arrays:
        a = np.ascontiguousarray(arr, dtype="<f8")
        h.update(str(a.shape).encode())
        h.update(a.tobytes())
    return h.hexdigest()


def write_entry(path: PathLike, problem: PeriodicProblem, data: dict, seconds: float = float("nan")) -> Path:
    """Atomically write ``data`` (the arrays ``problem.ARRAYS``) for ``problem`` to ``path``."""
    return _write(path, problem, data, seconds)[0]


def _write(path: PathLike, problem, data: dict, seconds: float = float("nan")) -> tuple:
    """``write_entry``, returning ``(path, checksum)``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    names = _arrays(problem)
    arrays = {k: np.ascontiguousarray(data[k], dtype=np.float64) for k in names}
    meta = dict(problem.key_data())
    meta["generation_seconds"] = float(seconds)
    meta["created"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    # A unique temporary name in the same folder (so os.replace is atomic); opened with "xb" so
    # the file gets the usual umask-based permissions.
    tmp = path.parent / f".{path.stem}.{os.getpid()}.{secrets.token_hex(6)}.tmp"
    checksum = _checksum(*(arrays[k] for k in names))
    try:
        with open(tmp, "xb") as fh:
            np.savez(
                fh,
                **arrays,
                meta=np.array(json.dumps(meta, sort_keys=True)),
                checksum=np.array(checksum),
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
    return path, checksum


def _check_meta(meta_raw: str, problem) -> dict:
    try:
        meta = json.loads(meta_raw)
    except json.JSONDecodeError:
        raise CacheError("metadata is not valid JSON") from None
    if not isinstance(meta, dict):
        raise CacheError("metadata is not a JSON object")
    expected = problem.key_data()
    if {k: meta.get(k) for k in expected} != json.loads(json.dumps(expected)):
        raise CacheError("metadata does not match the problem definition")
    return meta


def _read(path: PathLike, problem, with_arrays: bool = True) -> tuple:
    """``(arrays or None, meta, stored checksum)``; the arrays are validated when read."""
    path = Path(path)
    if not path.exists():
        raise CacheError("missing")
    names = _arrays(problem)
    required = (names if with_arrays else ()) + _META
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = [k for k in required if k not in npz.files]
            if missing:
                raise CacheError(f"missing keys {missing}")
            arrays = {k: np.asarray(npz[k]) for k in names} if with_arrays else None
            meta_raw = str(npz["meta"][()])
            checksum = str(npz["checksum"][()])
    except CacheError:
        raise
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as exc:
        raise CacheError(f"unreadable ({type(exc).__name__}: {exc})") from None
    meta = _check_meta(meta_raw, problem)
    if not with_arrays:
        return None, meta, checksum
    shapes = problem.shapes()
    for k, arr in arrays.items():
        if arr.dtype != np.float64:
            raise CacheError(f"{k} has dtype {arr.dtype}, expected float64")
        if arr.shape != tuple(shapes[k]):
            raise CacheError(f"{k} has shape {arr.shape}, expected {tuple(shapes[k])}")
        if not np.all(np.isfinite(arr)):
            raise CacheError(f"{k} contains non-finite values")
    if _checksum(*(arrays[k] for k in names)) != checksum:
        raise CacheError("checksum mismatch")
    for k, coord in problem.grid().items():
        if not np.allclose(arrays[k], coord, rtol=0, atol=1e-12):
            raise CacheError("grid does not match the problem definition")
    return arrays, meta, checksum


def read_entry(path: PathLike, problem: PeriodicProblem) -> dict:
    """Read and validate a cache entry; raise ``CacheError`` (with the reason) if it is bad."""
    return _read(path, problem)[0]


def read_info(path: PathLike, problem) -> dict:
    """``{"meta": dict, "checksum": str}`` of an entry, without reading (or checking) its arrays.

    Raises ``CacheError`` if the entry is missing, unreadable or its metadata does not match
    ``problem``.
    """
    _, meta, checksum = _read(path, problem, with_arrays=False)
    return {"meta": meta, "checksum": checksum}


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


def _generate(problem, progress: bool):
    cb = StderrProgress(problem.name) if progress else None
    start = time.perf_counter()
    data = problem.compute(progress=cb)
    seconds = time.perf_counter() - start
    shapes = problem.shapes()
    for k in getattr(problem, "FIELDS", ("u",)):
        arr = data[k]
        if arr.shape != tuple(shapes[k]) or not np.all(np.isfinite(arr)):
            raise FloatingPointError(f"generation of {problem.name!r} produced an invalid solution")
    return data, seconds


def load_or_generate_entry(
    problem,
    cache_dir: Optional[PathLike] = None,
    force: bool = False,
    progress: bool = True,
) -> tuple:
    """``(data, path, generated_seconds_or_None, checksum)``: as ``load_or_generate``, with the
    entry's checksum (read from a valid entry, or the one just written)."""
    path = cache_path(problem, cache_dir)
    if not force and path.exists():
        try:
            data, _, checksum = _read(path, problem)
            return data, path, None, checksum
        except CacheError as exc:
            warnings.warn(
                f"pinnrun.reference: cache entry {path} is invalid ({exc}); regenerating it",
                RuntimeWarning,
                stacklevel=4,
            )
    data, seconds = _generate(problem, progress)
    _, checksum = _write(path, problem, data, seconds)
    return data, path, seconds, checksum


def load_or_generate(
    problem: PeriodicProblem,
    cache_dir: Optional[PathLike] = None,
    force: bool = False,
    progress: bool = True,
) -> tuple:
    """Return ``(data, path, generated_seconds_or_None)``; generate and store when needed."""
    data, path, seconds, _ = load_or_generate_entry(problem, cache_dir, force, progress)
    return data, path, seconds

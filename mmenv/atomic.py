"""Atomic file writes: a killed process leaves the old file or the new one, never a torn one.

Every file the package writes for a user (checkpoints, saved agents, ``results.csv``,
``results.md``, ``config.yaml``, ``train.json``, per-run result files, feature caches)
goes through :func:`atomic_write`: the content is written to a temporary file
``.<name>.<random>.tmp`` in the target's folder, flushed and ``fsync``\\ ed, then
``os.replace``\\ d over the target (atomic on POSIX and Windows within one file system),
and the folder is ``fsync``\\ ed so the rename itself is durable.

Failures: the temporary file is removed, and an ``OSError`` (disk full, read-only folder,
no permission) or a writer's own I/O error (torch raises ``RuntimeError: ... enforce fail
at inline_container.cc`` on a full disk) becomes one :class:`~mmenv.errors.WriteError`
naming the path and the cause, which ``mmenv`` prints as one line.

Mode: the file gets the permissions a plain ``open(path, "w")`` would give it, ``0o666``
minus the process umask (``0644`` under the usual umask ``022``), not the ``0600`` of a
temporary file: results stay readable by the other users and services that the umask
lets read them.

Output folders: :func:`ensure_out_dir` creates an output folder and checks that files can
be created in it, so a read-only or unwritable ``--out`` is one :class:`WriteError` line
before any work starts.

Stray temporary files of earlier *killed* writes (no ``except`` ran there) are removed by
the next successful write of the same target once they are older than
:data:`STALE_TMP_SECONDS` (a younger one may belong to a writer still running).

Figures (``plots/*.png``) are written by matplotlib directly, not atomically: a figure is
derived output that the next run rewrites from the result files.
"""

from __future__ import annotations

import errno
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from .errors import WriteError

__all__ = ["atomic_write", "atomic_write_text", "STALE_TMP_SECONDS", "clean_stale_tmp", "write_error", "file_mode",
           "ensure_out_dir"]

#: A leftover ``.<name>.*.tmp`` older than this is from a killed write and is removed.
STALE_TMP_SECONDS = 60.0

_HINTS = {
    errno.ENOSPC: "the disk is full; free space or choose another folder",
    errno.EROFS: "the file system is read-only; choose another folder",
    errno.EACCES: "no permission to write there; choose another folder",
    errno.EPERM: "no permission to write there; choose another folder",
    errno.EDQUOT: "the disk quota is exceeded; free space or choose another folder",
}


def write_error(path: str | os.PathLike, exc: BaseException) -> WriteError:
    """One-line :class:`WriteError` for a failed write of ``path`` (with a hint for the usual causes)."""
    code = getattr(exc, "errno", None)
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if code is None and ("No space left" in str(exc) or "file write failed" in str(exc)):
        code = errno.ENOSPC  # torch's writer reports a full disk as a RuntimeError
    hint = _HINTS.get(code, "") if code is not None else ""
    # One argument only: OSError's str() would otherwise reformat the message.
    return WriteError(f"cannot write {path}: {text}{'; ' + hint if hint else ''}")


def _current_umask() -> int:
    """The process umask, read without changing it where the OS tells it (Linux ``/proc``)."""
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)   # elsewhere: set and restore (the only portable way to read it)
    os.umask(mask)
    return mask


def file_mode() -> int:
    """The mode a new file gets from ``open(path, "w")``: ``0o666`` minus the process umask."""
    return 0o666 & ~_current_umask()


def ensure_out_dir(path: str | os.PathLike, option: str = "--out") -> Path:
    """Create the output folder ``path`` (and its parents) and check that files can be created in it.

    A read-only file system, a folder without write permission or a file in the way is one
    :class:`WriteError` naming ``option`` and the folder, before any work starts.
    """
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".mmenv-write-check.", suffix=".tmp", dir=path)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        code = getattr(exc, "errno", None)
        hint = _HINTS.get(code, "choose another folder") if code is not None else "choose another folder"
        reason = exc.strerror or str(exc)
        raise WriteError(f"{option} {str(path)!r}: cannot create files there ({reason}); {hint}") from None
    return path


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # e.g. Windows: directories cannot be opened
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def clean_stale_tmp(path: str | os.PathLike, older_than: float = STALE_TMP_SECONDS) -> list[Path]:
    """Remove ``.<name>.*.tmp`` files next to ``path`` older than ``older_than`` seconds; return them."""
    path = Path(path)
    removed: list[Path] = []
    now = time.time()
    try:
        candidates = list(path.parent.glob(f".{path.name}.*.tmp"))
    except OSError:
        return removed
    for tmp in candidates:
        try:
            if now - tmp.stat().st_mtime > older_than:
                tmp.unlink()
                removed.append(tmp)
        except OSError:  # gone already, or not ours to remove
            pass
    return removed


def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], Any], make_parents: bool = True) -> Path:
    """Write ``path`` atomically with ``write(binary_file_object)`` (see the module docstring)."""
    path = Path(path)
    directory = path.parent if str(path.parent) else Path(".")
    tmp: str | None = None
    try:
        if make_parents:
            directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
        if hasattr(os, "fchmod"):   # mkstemp makes 0600; the result gets open()'s mode
            os.fchmod(fd, file_mode())
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        tmp = None
        _fsync_dir(directory)
    except (OSError, RuntimeError) as exc:
        if isinstance(exc, RuntimeError) and not _is_io_runtime_error(exc):
            raise
        raise write_error(path, exc) from exc
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass
    clean_stale_tmp(path)
    return path


def _is_io_runtime_error(exc: RuntimeError) -> bool:
    """torch's serializer reports I/O failures (a full disk) as RuntimeError."""
    text = str(exc)
    return any(s in text for s in ("inline_container", "file write failed", "No space left", "PytorchStreamWriter"))


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write the string ``text`` (UTF-8) to ``path`` atomically."""
    return atomic_write(path, lambda fh: fh.write(text.encode("utf-8")))

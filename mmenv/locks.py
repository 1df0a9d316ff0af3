"""A lock on an output folder, so two sweeps never write the same results.

``mmenv compare`` holds :class:`FolderLock` on its ``--out`` folder for the whole sweep.
The lock is the file ``<out>/.mmenv.lock`` holding the owner's PID and host, locked
with ``fcntl.flock`` (POSIX): the kernel releases it when the owner dies, however it
dies (SIGKILL included), so a lock left by a killed process is simply taken over; the
file itself stays and is rewritten by the next owner. A second process asking for a held
lock gets :class:`~mmenv.errors.LockError` naming the lock file and the owner's PID.

Where ``fcntl`` does not exist (Windows) the lock falls back to the PID in the file: a
lock whose PID is no longer a live process is stale and taken over.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from types import TracebackType

from .errors import LockError

__all__ = ["FolderLock", "LOCK_NAME"]

LOCK_NAME = ".mmenv.lock"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:   # alive, owned by someone else
        return True
    except OSError:
        return False
    return True


class FolderLock:
    """Exclusive lock on ``folder`` (created if missing); a context manager.

    Args:
        folder: the folder to lock.
        what: the command holding it, for the error message (``"mmenv compare"``).
    """

    def __init__(self, folder: str | os.PathLike, what: str = "mmenv") -> None:
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self.what = what
        self._fd: int | None = None

    def _owner(self) -> str:
        try:
            text = self.path.read_text().strip()
        except OSError:
            return "unknown"
        return text or "unknown"

    def acquire(self) -> FolderLock:
        from .atomic import write_error

        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise write_error(self.path, exc) from exc
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows: PID-file lock
            os.close(fd)
            self._acquire_by_pid()
            return self
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            owner = self._owner()
            os.close(fd)
            raise LockError(f"{self.folder} is in use by another {self.what} (lock file {self.path}, held by "
                            f"{owner}); wait for it to finish, or choose another output folder") from None
        # Ours now (a previous owner that died released it); record who holds it.
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode())
        self._fd = fd
        return self

    def _acquire_by_pid(self) -> None:  # pragma: no cover - only where fcntl is missing
        owner = self._owner()
        parts = owner.split()
        if len(parts) >= 2 and parts[0] == "pid" and parts[1].isdigit():
            pid = int(parts[1])
            if pid != os.getpid() and _pid_alive(pid):
                raise LockError(f"{self.folder} is in use by another {self.what} (lock file {self.path}, held by "
                                f"{owner}); wait for it to finish, or choose another output folder")
        self.path.write_text(f"pid {os.getpid()} on {socket.gethostname()}\n")

    def release(self) -> None:
        if self._fd is not None:
            try:
                import fcntl

                fcntl.flock(self._fd, fcntl.LOCK_UN)
            finally:
                os.close(self._fd)
                self._fd = None

    def __enter__(self) -> FolderLock:
        return self.acquire()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()

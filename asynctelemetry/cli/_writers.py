"""Who else writes this database: an advisory lock beside it, held while a command writes.

``collect`` and ``demo`` hold ``<db>.writer`` locked with ``flock`` while they write ``<db>``; the
file says who holds it (``pid 4121 (asynctelemetry collect on 127.0.0.1:4317)``). A second writer
finds it locked and says so. The lock is the kernel's: it goes away with its process, however that
process ends, so it is never stale. It does not stop anyone: two collectors writing one file is
safe for SQLite (WAL, one writer at a time) and their calls mix, but it is rarely what was meant.
A lock on the database file itself would be simpler and is avoided on purpose: SQLite locks byte
ranges of it, and on some file systems ``flock`` and those locks are the same lock.
"""

from __future__ import annotations

import contextlib
import os
from typing import IO, Self

try:
    import fcntl
except ImportError:  # Windows: no advisory locks here; nobody is reported
    fcntl = None  # type: ignore[assignment]

__all__ = ["WriterLock"]


class WriterLock:
    """``<path>.writer`` locked while this process writes ``path``.

    Args:
        path: the database file.
        what: who this process is, for the other writer's message.
    """

    def __init__(self, path: str, what: str) -> None:
        self.path = f"{path}.writer"
        self.what = what
        self._file: IO[str] | None = None

    def acquire(self) -> str | None:
        """Take the lock; return who holds it instead, when another process does."""
        if fcntl is None:
            return None
        try:
            file = open(self.path, "a+", encoding="utf-8")
        except OSError:
            return None  # a read-only directory: the database cannot be written either
        try:
            fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            file.seek(0)
            holder = file.read(200).strip() or "another process"
            file.close()
            return holder
        file.seek(0)
        file.truncate()
        file.write(f"pid {os.getpid()} ({self.what})\n")
        file.flush()
        self._file = file
        return None

    def release(self) -> None:
        """Let go (and remove the file). Idempotent."""
        file, self._file = self._file, None
        if file is None:
            return
        with contextlib.suppress(OSError):
            os.unlink(self.path)
        file.close()  # closing releases the lock

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

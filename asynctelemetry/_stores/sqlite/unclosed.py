"""Stores left open: no hang at exit, and a word about what they still held.

A store's SQLite connections each run a worker thread. Those threads are made daemon threads
(:func:`connect`), so a store nobody closed cannot keep the interpreter alive at exit (aiosqlite's
own threads are not daemons: the interpreter would wait for them forever). What such a store
still had queued is written while its event loop runs (see ``BatchQueue(drain_on_cancel=...)``:
``asyncio.run`` cancelling the writer at its end lets it finish the queue first); what is still
queued when the interpreter exits is reported by :func:`report_unclosed` (an ``atexit`` hook) as
lost, with a ``ResourceWarning`` naming the store, as a store garbage-collected open is.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import threading
import warnings
import weakref
from collections import deque
from typing import Any, Protocol

import aiosqlite

__all__ = [
    "connect",
    "forget",
    "log_later",
    "lost_message",
    "remember",
    "report_unclosed",
    "reported",
]

logger = logging.getLogger("asynctelemetry")


class _Open(Protocol):
    @property
    def pending(self) -> int: ...

    @property
    def is_open(self) -> bool: ...


_OPEN: weakref.WeakSet[Any] = weakref.WeakSet()
_REPORTED: weakref.WeakSet[Any] = weakref.WeakSet()


async def connect(path: str, **kwargs: Any) -> aiosqlite.Connection:
    """``aiosqlite.connect`` whose worker thread is a daemon thread (see the module docstring)."""
    conn = aiosqlite.connect(path, **kwargs)
    # aiosqlite >= 0.21 keeps its thread in ``_thread``; older versions are the thread.
    thread = getattr(conn, "_thread", conn)
    if isinstance(thread, threading.Thread) and not thread.is_alive():
        thread.daemon = True
    return await conn


def lost_message(store: _Open, when: str) -> str:
    """``"<store> was <when> without aclose(): N queued calls were lost"`` (or nothing was)."""
    lost = store.pending
    what = (
        f"{lost:,} queued call{'' if lost == 1 else 's'} {'was' if lost == 1 else 'were'} lost"
        if lost
        else "nothing queued was lost"
    )
    return f"{store!r} was {when} without aclose(): {what}"


def remember(store: _Open) -> None:
    """Watch ``store`` (now open) until :func:`forget`; reported at exit if still open."""
    _OPEN.add(store)


def forget(store: _Open) -> None:
    """``store`` was closed."""
    _OPEN.discard(store)


#: Error lines finalizers left to be logged (a finalizer does no logging: a handler writes and
#: takes locks, and the collection may have interrupted that very handler).
_LATE: deque[str] = deque()


def log_later(message: str) -> None:
    """Log ``message`` (an error) for a finalizer: on the next turn of the loop running in this
    thread, else at exit. Called inside the finalizer; appends and schedules, nothing more."""
    _LATE.append(message)
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return  # no loop here: the exit hook logs it
    loop.call_soon(_log_late)


def _log_late() -> None:
    while _LATE:
        logger.error("asynctelemetry: %s", _LATE.popleft())


def report_unclosed() -> None:
    """At exit: a ``ResourceWarning`` for every store still open, an error log if it lost calls."""
    _log_late()
    for store in list(_OPEN):
        if not store.is_open:
            continue
        message = lost_message(store, "still open at exit")
        if store.pending:
            logger.error("asynctelemetry: %s", message)
        warnings.warn(message, ResourceWarning, stacklevel=1, source=store)
        _REPORTED.add(store)
    _OPEN.clear()


def reported(store: object) -> bool:
    """Whether the exit report named ``store`` already (its ``__del__`` need not again)."""
    return store in _REPORTED


atexit.register(report_unclosed)

"""The OTLP/HTTP receiver's limits on slow and greedy clients, and its quiet log.

:class:`HttpLimits` is the one settings object (a frozen dataclass, as httpx's ``Limits``):
deadlines for a request's headers and body, caps on open connections and on requests in flight,
each also per client (a client is a peer address), so that one client cannot take every
connection or every slot however it behaves. :class:`ConnectionCaps` enforces the connection
caps on an aiohttp server; :class:`RepeatedLog` stands in for aiohttp's server logger so that a
repeated error is logged once, then counted, never a traceback per connection.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from dataclasses import dataclass
from typing import Any, Final

from .._exceptions import ConfigError, require_int

__all__ = ["ConnectionCaps", "HttpLimits", "RepeatedLog", "client_of"]

logger = logging.getLogger("asynctelemetry")


@dataclass(frozen=True)
class HttpLimits:
    """Limits of the collector's OTLP/HTTP receiver (``AsyncCollector(http_limits=...)``).

    Attributes:
        header_timeout: seconds a connection has to send a request's complete headers, from
            when it opens or its last answer was sent (an idle keep-alive connection is closed
            after it too).
        idle_timeout: longest pause, in seconds, while a request body arrives (408 after it).
        read_timeout: seconds a whole request body may take to arrive (408 after it).
        max_connections: most connections open at once; more are closed as they arrive.
        max_connections_per_client: most connections one client (peer address) may hold.
        max_in_flight: most requests read and decoded at once; more get 429.
        max_in_flight_per_client: most of those one client may hold; more get 429.
    """

    header_timeout: float = 10.0
    idle_timeout: float = 5.0
    read_timeout: float = 30.0
    max_connections: int = 256
    max_connections_per_client: int = 32
    max_in_flight: int = 64
    max_in_flight_per_client: int = 16

    def __post_init__(self) -> None:
        for name in ("header_timeout", "idle_timeout", "read_timeout"):
            seconds = getattr(self, name)
            if not (isinstance(seconds, int | float) and 0 < seconds < math.inf):
                raise ConfigError(f"{name} must be finite seconds > 0, not {seconds!r}")
        for name in (
            "max_connections",
            "max_connections_per_client",
            "max_in_flight",
            "max_in_flight_per_client",
        ):
            require_int(name, getattr(self, name))


def client_of(transport: Any) -> str:
    """A connection's client: its peer's address (without the port)."""
    peer = transport.get_extra_info("peername") if transport is not None else None
    if isinstance(peer, tuple) and peer:
        return str(peer[0])
    return str(peer)


class ConnectionCaps:
    """Caps an aiohttp ``web.Server``'s open connections, in all and per client.

    A connection over a cap is closed as soon as it is made (it costs a moment's file
    descriptor, never a task waiting for headers); ``refused`` counts them.
    """

    def __init__(self, server: Any, limits: HttpLimits) -> None:
        self.limits = limits
        self.refused = 0
        self.by_client: dict[str, int] = {}
        self._clients: dict[object, str] = {}  # handler → its client, while counted
        self._server = server
        self._made = server.connection_made
        self._lost = server.connection_lost
        server.connection_made = self._connection_made
        server.connection_lost = self._connection_lost

    @property
    def open(self) -> int:
        """Connections counted as open."""
        return len(self._clients)

    def _connection_made(self, handler: Any, transport: asyncio.Transport) -> None:
        self._made(handler, transport)
        client = client_of(transport)
        held = self.by_client.get(client, 0)
        limits = self.limits
        if (
            len(self._clients) >= limits.max_connections
            or held >= limits.max_connections_per_client
        ):
            self.refused += 1
            # Closed on the loop's next turn, once aiohttp has finished setting the connection
            # up (closing it inside connection_made leaves its handler task to fail).
            asyncio.get_running_loop().call_soon(transport.abort)
            return
        self.by_client[client] = held + 1
        self._clients[handler] = client

    def _connection_lost(self, handler: Any, exc: BaseException | None = None) -> None:
        client = self._clients.pop(handler, None)
        if client is not None:
            left = self.by_client[client] - 1
            if left:
                self.by_client[client] = left
            else:
                del self.by_client[client]
        self._lost(handler, exc)


#: Seconds between two reports of the same repeated message.
REPORT_EVERY: Final = 60.0


class RepeatedLog:
    """A logger for aiohttp's request handlers: each distinct message is logged once (one line,
    the exception's type and text, no traceback), then counted and reported at most every
    :data:`REPORT_EVERY` seconds with how many times it recurred. Debug lines pass through."""

    def __init__(self, name: str = "OTLP/HTTP") -> None:
        self.name = name
        self.counts: dict[str, int] = {}  # message → occurrences not yet reported
        self.total: dict[str, int] = {}  # message → occurrences in all
        self._reported: dict[str, float] = {}

    def isEnabledFor(self, level: int) -> bool:
        return logger.isEnabledFor(level)

    def debug(self, msg: object, *args: object, **kwargs: Any) -> None:
        if logger.isEnabledFor(logging.DEBUG):
            text = str(msg) % args if args else str(msg)
            logger.debug("%s: %s", self.name, text)

    def info(self, msg: object, *args: object, **kwargs: Any) -> None:
        self._once(logging.INFO, msg, args, kwargs)

    def warning(self, msg: object, *args: object, **kwargs: Any) -> None:
        self._once(logging.WARNING, msg, args, kwargs)

    def error(self, msg: object, *args: object, **kwargs: Any) -> None:
        self._once(logging.ERROR, msg, args, kwargs)

    def exception(self, msg: object, *args: object, **kwargs: Any) -> None:
        self._once(logging.ERROR, msg, args, kwargs)

    def _once(self, level: int, msg: object, args: tuple[object, ...], kwargs: Any) -> None:
        try:
            text = str(msg) % args if args else str(msg)
        except (TypeError, ValueError):
            text = str(msg)
        exc = kwargs.get("exc_info")
        if isinstance(exc, BaseException):
            text += f": {type(exc).__name__}: {str(exc)[:200]}"
        text = " ".join(text.split())  # one line
        self.total[text] = self.total.get(text, 0) + 1
        now = time.monotonic()
        last = self._reported.get(text)
        if last is None:
            if len(self._reported) >= 256:  # bounded: forget the messages seen longest ago
                oldest = next(iter(self._reported))
                del self._reported[oldest]
                self.counts.pop(oldest, None)
            self._reported[text] = now
            logger.log(level, "%s: %s (logged once; repeats are counted)", self.name, text)
            return
        self.counts[text] = self.counts.get(text, 0) + 1
        if now - last >= REPORT_EVERY:
            repeats = self.counts.pop(text)
            self._reported[text] = now
            logger.log(
                level,
                "%s: %s (%d more times in the last %.0f s)",
                self.name,
                text,
                repeats,
                now - last,
            )

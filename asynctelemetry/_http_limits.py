"""Fair admission to the HTTP servers (the OTLP/HTTP receiver, the dashboard, ``/metrics``), and
their quiet log.

:class:`HttpLimits` is the one settings object (a frozen dataclass, as httpx's ``Limits``):
deadlines for a request's headers and body, and caps on open connections and on requests in
flight. :class:`Admission` enforces the caps on an aiohttp server *without telling clients apart
by address*: on one host or in a sidecar every client has the same address, so a cap per address
would let one greedy client shut out the rest. When every connection (or every in-flight slot)
is taken, the one making the least progress is closed to admit the newcomer:

1. an idle keep-alive connection (answered, its answer sent, nothing new), the longest idle
   first;
2. a connection still sending a request's headers or body (or nothing yet): among the oldest
   such requests, the one with the lowest byte rate, counting a credit of :data:`CREDIT`
   bytes, so that a request just begun is never taken for a slow one;
3. never a request being worked on (its body complete) or answered: when only those are left,
   the newcomer is refused (the connection closed at once, or 429 for a request).

Both kinds go in that order among connections whose spell (idle, or the request so far) has
lasted :data:`GRACE`; when every one is younger, the one with the lowest byte rate goes, an idle
spell counting as no bytes: a client just answered is the likeliest to send its next request at
the very moment its connection is closed, and one just connected has not had the time to send
anything, so neither goes before a connection that has had its chance.

An idle connection is closed politely (the client sees the end of it before reusing it), an
unfinished one is aborted.

So a client that trickles its headers, stalls its body or parks idle connections can hold a
connection only as long as nobody needs it, and an honest client from the same address is
served at once. Caps per address are an extra, off by default, for deployments whose clients
have distinct addresses. :class:`RepeatedLog` stands in for aiohttp's server logger so that a
repeated error is logged once, then counted, never a traceback per connection.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from ._exceptions import ConfigError, require_int

try:
    from fcntl import ioctl
    from termios import FIONREAD
except ImportError:  # not on Windows: there, an idle connection's unread bytes go unseen
    ioctl = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from collections.abc import Iterable

    from aiohttp import web

__all__ = ["Admission", "HttpLimits", "RepeatedLog", "client_of"]

logger = logging.getLogger("asynctelemetry")

#: Bytes a request is credited with when its byte rate is compared: a request that has just
#: begun (nothing arrived yet) counts as fast, one that has sent little for long as slow.
CREDIT: Final = 1024
#: Seconds a connection's spell (idle since its last answer, or its request so far) must have
#: lasted for it to go before any younger one.
GRACE: Final = 1.0
#: How many of the oldest unfinished requests are compared by byte rate when one must go (a
#: bound on the work of admitting a connection when the server is full).
COMPARED: Final = 16


@dataclass(frozen=True)
class HttpLimits:
    """Limits of an HTTP server of the package (``AsyncCollector(http_limits=...)`` for the
    OTLP/HTTP receiver; the dashboard has its own).

    Attributes:
        header_timeout: seconds a connection has to send a request's complete headers, from
            when it opens or its last answer was sent (an idle keep-alive connection is closed
            after it too).
        idle_timeout: longest pause, in seconds, while a request body arrives (408 after it).
        read_timeout: seconds a whole request body may take to arrive (408 after it).
        max_connections: most connections open at once. A connection past it is admitted by
            closing the open one making the least progress (see :class:`Admission`), or
            closed at once when every open one is being answered.
        max_connections_per_client: most connections one client (peer address) may hold, or
            None (the default): no cap per address, since clients on the same host or behind
            one proxy share an address. Set it only where every client has its own address.
        max_in_flight: most requests read and decoded at once; past it the slowest body
            still arriving loses its slot (its connection is closed), or, when every slot is
            being worked on, the request gets 429.
        max_in_flight_per_client: most of those one client (peer address) may hold (429 past
            it), or None (the default): off, as ``max_connections_per_client``.
    """

    header_timeout: float = 10.0
    idle_timeout: float = 5.0
    read_timeout: float = 30.0
    max_connections: int = 256
    max_connections_per_client: int | None = None
    max_in_flight: int = 64
    max_in_flight_per_client: int | None = None

    def __post_init__(self) -> None:
        for name in ("header_timeout", "idle_timeout", "read_timeout"):
            seconds = getattr(self, name)
            if not (isinstance(seconds, int | float) and 0 < seconds < math.inf):
                raise ConfigError(f"{name} must be finite seconds > 0, not {seconds!r}")
        for name in ("max_connections", "max_in_flight"):
            require_int(name, getattr(self, name))
        for name in ("max_connections_per_client", "max_in_flight_per_client"):
            if getattr(self, name) is not None:
                require_int(name, getattr(self, name))


def client_of(transport: Any) -> str:
    """A connection's client: its peer's address (without the port)."""
    peer = transport.get_extra_info("peername") if transport is not None else None
    if isinstance(peer, tuple) and peer:
        return str(peer[0])
    return str(peer)


# A connection's phases: answered and waiting for its next request (idle keep-alive); receiving
# a request's headers (also a connection just opened); its body (holding a slot); the request
# being worked on and answered; closed to admit another.
_IDLE, _HEADERS, _BODY, _WORKING, _SHED = range(5)


class _Connection:
    """What :class:`Admission` knows of one connection: its phase and its request's progress."""

    __slots__ = ("began", "client", "phase", "received", "slot", "transport")

    def __init__(self, transport: asyncio.Transport, client: str, now: float) -> None:
        self.transport = transport
        self.client = client
        self.phase = _HEADERS
        self.began = now  # when the current request (or the idle spell) began
        self.received = 0  # bytes of the current request so far
        self.slot = False  # holds an in-flight slot

    def rate(self, now: float) -> float:
        """Bytes per second of the current request, with :data:`CREDIT`."""
        return (self.received + CREDIT) / max(now - self.began, 1e-3)


def _quiet(transport: asyncio.Transport) -> bool:
    """Whether an idle connection may be closed politely: its answer is out, and no next
    request waits unread in its socket (the loop may not have read it yet)."""
    return not transport.get_write_buffer_size() and not _unread(transport)


def _unread(transport: asyncio.Transport) -> bool:
    """Whether bytes wait in the connection's socket that the loop has not read yet."""
    sock = transport.get_extra_info("socket")
    if sock is None or ioctl is None:
        return False
    try:
        waiting = ioctl(sock.fileno(), FIONREAD, b"\0\0\0\0")
    except OSError:
        return False
    return int.from_bytes(waiting, sys.byteorder) > 0


class _Watch(asyncio.Protocol):
    """Stands between a transport and aiohttp's handler to count the bytes each request sends
    (set with the transport's public ``set_protocol``; everything else is passed on)."""

    __slots__ = ("_admission", "_connection", "_inner")

    def __init__(self, inner: Any, connection: _Connection, admission: Admission) -> None:
        self._inner = inner
        self._connection = connection
        self._admission = admission

    def data_received(self, data: bytes) -> None:
        self._admission._received(self._connection, len(data))
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        result: bool | None = self._inner.eof_received()
        return result

    def connection_lost(self, exc: Exception | None) -> None:
        self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()


class Admission:
    """Admits an aiohttp ``web.Server``'s connections and requests fairly (see the module);
    a server on ``asyncio.start_server`` calls :meth:`admit`, :meth:`working` and
    :meth:`release` itself.

    ``refused`` counts connections closed as they arrived (every open one being answered, or
    a cap per address), ``shed`` those closed to admit another connection or request.
    """

    def __init__(self, limits: HttpLimits) -> None:
        self.limits = limits
        self.refused = 0
        self.shed = 0
        self.by_client: dict[str, int] = {}  # open connections per address (with that cap)
        self._connections: dict[object, _Connection] = {}  # a connection's key → its state
        # Waiting and unfinished connections in the order their spell or request began
        # (dicts keep insertion order: a connection moves to the end when it begins anew).
        self._idle: dict[_Connection, None] = {}
        self._unfinished: dict[_Connection, None] = {}
        self._reading: dict[_Connection, None] = {}  # bodies arriving, holding a slot
        self._slots = 0
        self._slots_by_client: dict[str, int] = {}
        #: Set while no request holds a slot.
        self.drained = asyncio.Event()
        self.drained.set()
        self._made: Any = None
        self._lost: Any = None

    def watch(self, server: web.Server) -> None:
        """Admit ``server``'s connections (before it serves; one server per admission)."""
        self._made = server.connection_made
        self._lost = server.connection_lost
        server.connection_made = self._connection_made  # type: ignore[method-assign]
        server.connection_lost = self._connection_lost  # type: ignore[method-assign]

    async def serve(
        self,
        module: Any,
        server: web.Server,
        host: str,
        port: int,
        ssl_context: Any = None,
    ) -> tuple[web.ServerRunner, int]:
        """Serve an aiohttp low-level ``server`` on ``host:port`` under this admission
        (``module``: ``aiohttp.web``, an extra the caller imported); its runner and bound port.

        Raises:
            ConfigError: the address cannot be bound.
        """
        self.watch(server)
        runner = module.ServerRunner(server, shutdown_timeout=1.0)
        await runner.setup()
        site = module.TCPSite(runner, host, port, ssl_context=ssl_context)
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            raise ConfigError(f"cannot bind {host}:{port}: {exc}") from exc
        except BaseException:
            await runner.cleanup()
            raise
        return runner, int(runner.addresses[0][1])

    @property
    def open(self) -> int:
        """Connections counted as open."""
        return len(self._connections)

    @property
    def in_flight(self) -> int:
        """Requests holding a slot."""
        return self._slots

    # -- connections ----------------------------------------------------------------------------
    def _connection_made(self, handler: Any, transport: asyncio.Transport) -> None:
        self._made(handler, transport)
        self.admit(handler, transport)

    def _connection_lost(self, handler: Any, exc: BaseException | None = None) -> None:
        self.release(handler)
        self._lost(handler, exc)

    def admit(self, key: object, transport: asyncio.Transport) -> bool:
        """Admit a connection just made, known by ``key`` (aiohttp's handler, or a stream
        server's transport), counting the bytes its protocol receives; False: refused (it is
        aborted on the loop's next turn, once its server has finished setting it up)."""
        client = client_of(transport)
        limits = self.limits
        per_client = limits.max_connections_per_client
        if (per_client is not None and self.by_client.get(client, 0) >= per_client) or (
            len(self._connections) >= limits.max_connections and not self._shed_connection()
        ):
            self.refused += 1
            # Closed on the loop's next turn (closing it inside connection_made leaves aiohttp's
            # handler task to fail).
            asyncio.get_running_loop().call_soon(transport.abort)
            return False
        if per_client is not None:
            self.by_client[client] = self.by_client.get(client, 0) + 1
        connection = _Connection(transport, client, time.monotonic())
        self._connections[key] = connection
        self._unfinished[connection] = None
        transport.set_protocol(_Watch(transport.get_protocol(), connection, self))
        return True

    def release(self, key: object) -> None:
        """The connection ``key`` is closed (a no-op for one refused or already released)."""
        connection = self._connections.pop(key, None)
        if connection is None:
            return
        self._release(connection)
        self._idle.pop(connection, None)
        self._unfinished.pop(connection, None)
        if self.limits.max_connections_per_client is not None:
            left = self.by_client[connection.client] - 1
            if left:
                self.by_client[connection.client] = left
            else:
                del self.by_client[connection.client]

    def _received(self, connection: _Connection, size: int) -> None:
        if connection.phase == _IDLE:  # the next request on a kept-alive connection
            del self._idle[connection]
            self._unfinished[connection] = None
            connection.phase = _HEADERS
            connection.began = time.monotonic()
        connection.received += size

    def _shed_connection(self) -> bool:
        """Close the open connection making the least progress; False when none may go."""
        settled = time.monotonic() - GRACE
        for idle in self._idle:  # longest idle first
            if idle.began > settled:
                break
            if _quiet(idle.transport):
                return self._close(idle)
        begun = itertools.takewhile(lambda c: c.began <= settled, self._unfinished)
        victim = self._slowest(itertools.islice(begun, COMPARED))
        if victim is None:  # every one young: the slowest, an idle spell counting as no bytes
            quiet = (c for c in itertools.islice(self._idle, COMPARED) if _quiet(c.transport))
            young = itertools.islice(self._unfinished, COMPARED)
            victim = self._slowest(itertools.chain(quiet, young))
        return victim is not None and self._close(victim)

    def _close(self, connection: _Connection) -> bool:
        """Close a connection to admit another: politely when idle, else abruptly."""
        idle = connection.phase == _IDLE
        self._drop(connection)
        if idle:
            connection.transport.close()
        else:
            connection.transport.abort()
        return True

    def _slowest(self, connections: Iterable[_Connection]) -> _Connection | None:
        """The connection with the lowest byte rate (with :data:`CREDIT`) of ``connections``."""
        now = time.monotonic()
        return min(connections, key=lambda connection: connection.rate(now), default=None)

    def _drop(self, connection: _Connection) -> None:
        """Forget a connection about to be closed (its handler's end is then a no-op here)."""
        self.shed += 1
        self._release(connection)
        self._idle.pop(connection, None)
        self._unfinished.pop(connection, None)
        connection.phase = _SHED  # never picked again, nor made idle by its answer

    # -- requests -------------------------------------------------------------------------------
    def enter(self, request: web.BaseRequest, *, body: bool) -> bool:
        """Take an in-flight slot for ``request``, whose headers have arrived; ``body``: its body
        is still to be read (it may be shed until :meth:`body_read`). False: no slot (429)."""
        connection = self._connections.get(request.protocol)
        if connection is None or connection.phase == _SHED:  # nobody to serve
            return False
        limits = self.limits
        per_client = limits.max_in_flight_per_client
        client = connection.client
        if per_client is not None and self._slots_by_client.get(client, 0) >= per_client:
            return False
        if self._slots >= limits.max_in_flight:
            victim = self._slowest(itertools.islice(self._reading, COMPARED))
            if victim is None:
                return False
            self._drop(victim)
            victim.transport.abort()
        connection.slot = True
        self._slots += 1
        self._slots_by_client[client] = self._slots_by_client.get(client, 0) + 1
        self.drained.clear()
        if body:
            connection.phase = _BODY
            self._reading[connection] = None
        else:
            self.body_read(request)
        return True

    def body_read(self, request: web.BaseRequest) -> None:
        """``request`` is complete: it is worked on now, and never shed."""
        self.working(request.protocol)

    def working(self, key: object) -> None:
        """The request on connection ``key`` is complete: it is worked on, and never shed."""
        connection = self._connections.get(key)
        if connection is not None and connection.phase in (_HEADERS, _BODY):
            connection.phase = _WORKING
            self._unfinished.pop(connection, None)
            self._reading.pop(connection, None)

    def answered(self, request: web.BaseRequest) -> None:
        """``request`` is answered (whether it held a slot or not): its slot is free, and its
        connection waits for the next request."""
        connection = self._connections.get(request.protocol)
        if connection is None or connection.phase in (_IDLE, _SHED):
            return
        self._release(connection)
        self._unfinished.pop(connection, None)
        connection.phase = _IDLE
        connection.began = time.monotonic()
        connection.received = 0
        self._idle[connection] = None

    def _release(self, connection: _Connection) -> None:
        self._reading.pop(connection, None)
        if not connection.slot:
            return
        connection.slot = False
        self._slots -= 1
        left = self._slots_by_client[connection.client] - 1
        if left:
            self._slots_by_client[connection.client] = left
        else:
            del self._slots_by_client[connection.client]
        if not self._slots:
            self.drained.set()


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

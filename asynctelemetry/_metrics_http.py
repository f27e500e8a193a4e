"""Serving ``/metrics`` from the event loop: :class:`PrometheusExporter`.

A deliberately small HTTP/1.x responder on ``asyncio.start_server`` (no server thread, unlike
prometheus-client's own server; only the rendering of a scrape runs in a worker thread, so the
loop gets the GIL back every switch interval instead of waiting for the whole exposition): one
request per connection, the request head bounded in size and read within a timeout,
``GET``/``HEAD /metrics`` answered with the registry's text exposition, 404 for other paths,
405 for other methods, 400 for anything unreadable. Slow or malformed clients cost one task
each, up to a bound, and never the loop.

Connections are admitted by :class:`~asynctelemetry._http_limits.Admission`, the rule of the
OTLP/HTTP receiver and the dashboard: when ``max_connections`` are open, the one making the least
progress on its request (an old one with the lowest byte rate) is closed to admit the newcomer,
never one being answered, so a client holding every connection idle or trickling its headers
cannot shut out a scrape, even from its own address.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any, Final, cast

from ._batching import Lifecycle, Listens
from ._exceptions import ConfigError, require
from ._http_limits import Admission, HttpLimits
from ._stats import ScrapeStats
from ._wire import host_port

if TYPE_CHECKING:
    from typing import Self

__all__ = ["PrometheusExporter"]

logger = logging.getLogger("asynctelemetry")

#: Largest request head (request line and headers) accepted, bytes.
MAX_REQUEST_HEAD: Final = 8192
_REASONS: Final = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed"}


class PrometheusExporter(Listens):
    """Serves a registry at ``http://host:port/metrics`` from the running event loop.

    Args:
        port: TCP port; ``0`` lets the OS pick one (read it back from :attr:`port`).
        registry: a ``CollectorRegistry``, a :class:`~asynctelemetry.metrics.MetricsRecorder`
            (its registry is served), or ``None`` for prometheus-client's global registry.
        host: interface to bind; loopback by default, pass ``"0.0.0.0"`` to expose it.
        read_timeout: seconds a client has to send its request head.
        max_connections: most connections open at once. A connection past it is admitted by
            closing the open one making the least progress on its request (see
            :class:`~asynctelemetry._http_limits.Admission`), or closed at once when every
            open one is being answered.
    """

    def __init__(
        self,
        port: int = 8000,
        registry: Any = None,
        host: str = "127.0.0.1",
        *,
        read_timeout: float = 5.0,
        max_connections: int = 64,
    ) -> None:
        prom: Any = require("prometheus_client", "prometheus", "PrometheusExporter")
        self._prom = prom
        if not 0 <= port <= 65535:
            raise ConfigError(f"port must be in 0..65535, not {port}")
        # A MetricsRecorder stands for its registry.
        source: Any = getattr(registry, "registry", registry)
        self.registry: Any = source if source is not None else prom.REGISTRY
        self.host = host
        self.read_timeout = read_timeout
        self.max_connections = max_connections
        #: Open connections (``refused`` and ``shed`` count those closed to admit others).
        self.admission = Admission(
            HttpLimits(header_timeout=read_timeout, max_connections=max_connections)
        )
        self._port = port
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self._life = Lifecycle("PrometheusExporter")
        self._requests = 0  # read through ``stats``
        self._bad_requests = 0

    @property
    def port(self) -> int:
        """The bound port once started (the OS's pick for ``port=0``), else the one asked for."""
        return self._port

    @property
    def url(self) -> str:
        """The scrape URL."""
        return f"http://{host_port(self.host, self._port)}/metrics"

    async def start(self) -> None:
        """Start listening. Idempotent.

        Raises:
            StoreClosedError: after :meth:`aclose`.
            OSError: the address is taken or cannot be bound.
        """
        self._life.check()
        if self._server is not None:
            return
        self._server = await asyncio.start_server(
            self._accept, self.host, self._port, limit=MAX_REQUEST_HEAD
        )
        self._port = self._server.sockets[0].getsockname()[1]
        self._life.opened()

    async def stop(self) -> None:
        """Stop listening and drop open connections. Safe when not started; may start again."""
        server, self._server = self._server, None
        self._life.stopped()
        if server is None:
            return
        server.close()
        for task in list(self._handlers):
            task.cancel()
        if self._handlers:
            await asyncio.gather(*self._handlers, return_exceptions=True)
        await server.wait_closed()

    async def aclose(self) -> None:
        """Stop for good: :meth:`start` refuses afterwards. Idempotent: a later or concurrent
        call returns once the first one has stopped the server."""
        await self._life.close(self.stop)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    @property
    def stats(self) -> ScrapeStats:
        """A snapshot of what this exporter has served (see :class:`ScrapeStats`)."""
        return ScrapeStats(self._requests, self._bad_requests, len(self._handlers))

    # -- serving --------------------------------------------------------------------------------
    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # A stream server's transport reads too (the stubs say only that it writes).
        if not self.admission.admit(writer.transport, cast("asyncio.Transport", writer.transport)):
            return
        task = asyncio.get_running_loop().create_task(self._serve(reader, writer))
        self._handlers.add(task)
        task.add_done_callback(self._handlers.discard)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            try:
                async with asyncio.timeout(self.read_timeout):
                    head = await reader.readuntil(b"\r\n\r\n")
            except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
                self._bad_requests += 1
                return  # too slow, cut short or too big: close without an answer
            self.admission.working(writer.transport)  # answered now, never shed
            status, body, content_type, head_only = self._answer(head)
            if status == 200:
                # Rendering a large registry is Python work: in a thread, the loop gets the GIL
                # back every switch interval (5 ms) instead of waiting for the whole scrape.
                body = await asyncio.to_thread(self._prom.generate_latest, self.registry)
            headers = (
                f"HTTP/1.1 {status} {_REASONS[status]}\r\n"
                f"Content-Type: {content_type}\r\n"
                f"Content-Length: {len(body)}\r\n"
                "Connection: close\r\n\r\n"
            )
            writer.write(headers.encode("ascii") + (b"" if head_only else body))
            async with asyncio.timeout(self.read_timeout):
                await writer.drain()
        except (ConnectionError, TimeoutError):
            pass  # the client went away or would not read: nothing more to do
        finally:
            writer.close()
            self.admission.release(writer.transport)
            with contextlib.suppress(ConnectionError, TimeoutError):
                async with asyncio.timeout(1.0):
                    await writer.wait_closed()

    def _answer(self, head: bytes) -> tuple[int, bytes, str, bool]:
        plain = "text/plain; charset=utf-8"
        parts = head.split(b"\r\n", 1)[0].split(b" ")
        if len(parts) != 3 or not parts[2].startswith(b"HTTP/1."):
            self._bad_requests += 1
            return 400, b"bad request\n", plain, False
        method, target = parts[0], parts[1].split(b"?", 1)[0]
        if target not in (b"/metrics", b"/metrics/"):
            return 404, b"not found: try /metrics\n", plain, method == b"HEAD"
        if method not in (b"GET", b"HEAD"):
            return 405, b"method not allowed\n", plain, False
        self._requests += 1
        return 200, b"", self._prom.CONTENT_TYPE_LATEST, method == b"HEAD"  # body: in a thread

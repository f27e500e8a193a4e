"""The collector's OTLP/HTTP receiver: ``POST /v1/traces`` on aiohttp, in the caller's event loop.

Each request goes through the same checks in the same order, each answered the way the OTLP/HTTP
specification names, with a ``google.rpc.Status`` body in the request's own encoding:

======================================  ======  ===============================================
what                                    status  notes
======================================  ======  ===============================================
another path                            404
another method on ``/v1/traces``        405     ``Allow: POST``
missing or wrong bearer token           401     constant-time compare, ``stats.unauthenticated``
media type not protobuf or JSON         415     also for an unknown ``Content-Encoding``
every in-flight slot being worked on    429     ``Retry-After``; nothing read (see below)
body over ``max_message_bytes``         413     before and after decompression
body stalled or slower than the limits  408     ``idle_timeout``, ``read_timeout``
not decompressible, not OTLP            400     ``stats.malformed_requests``
the store cannot keep up                503     ``Retry-After``; nothing kept (retry is safe)
accepted                                200     ``ExportTraceServiceResponse``
======================================  ======  ===============================================

Bodies are read with a bound, decompressed with a bound on the output (a zip bomb is refused
after ``max_message_bytes`` bytes, never expanded), JSON is encoded to protobuf by
:mod:`._otlp_json`, and everything then takes the collector's one ingest path. Bodies over 4 KiB
are inflated in a worker thread (zlib releases the GIL); small JSON bodies are encoded on the
loop in steps, large (or very deep) ones in a worker process (:mod:`._json_worker`), so that the
loop is never held for long.

Connections and in-flight slots are admitted by :class:`~asynctelemetry._http_limits.Admission`,
the rule of the dashboard and of ``/metrics`` too: when all are taken, the connection making the
least progress (an idle keep-alive, or the slowest unfinished request) is closed to admit the
newcomer, so one client cannot shut out another on the same address.
"""

from __future__ import annotations

import asyncio
import hmac
import math
import ssl
import zlib
from typing import TYPE_CHECKING, Any, Final, cast

from .._batching import run_sliced
from .._exceptions import ConfigError, require
from .._http_limits import Admission, HttpLimits, RepeatedLog
from ._json_worker import JSON_IN_PROCESS_BYTES, JsonWorker, WorkerLost
from ._otlp_json import (
    BadJson,
    TooDeepForTheLoop,
    json_to_request_steps,
    response_to_json,
    status_body,
)
from ._stats import MalformedRequest, StoreBehind

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from pathlib import Path

    from aiohttp import StreamReader, web

    from ._stats import CollectorCounts

__all__ = ["HttpReceiver"]

PATH: Final = "/v1/traces"
_PROTOBUF: Final = frozenset({"application/x-protobuf", "application/protobuf"})
_JSON: Final = "application/json"
#: Compressed bodies at least this large are inflated in a worker thread (zlib drops the GIL):
#: 4 KiB may inflate to 4 MiB, a few milliseconds of work.
_INFLATE_IN_THREAD: Final = 4 * 1024
#: Compressed input fed to zlib at a time (see :func:`inflate`).
_INFLATE_STEP: Final = 64 * 1024
#: Most gzip members one body may hold (concatenated gzip files); more is a 400.
MAX_GZIP_MEMBERS: Final = 64
# gRPC codes carried in the google.rpc.Status bodies (OTLP clients go by the HTTP status).
_INVALID_ARGUMENT, _NOT_FOUND, _RESOURCE_EXHAUSTED = 3, 5, 8
_UNIMPLEMENTED, _INTERNAL, _UNAVAILABLE, _UNAUTHENTICATED = 12, 13, 14, 16


class _TooLarge(Exception):
    """The body (or what it inflates to) is over the bound."""


class _Stalled(Exception):
    """No byte of the body arrived for ``idle_timeout`` seconds."""


class HttpReceiver:
    """Serves ``POST /v1/traces`` for an :class:`~asynctelemetry.AsyncCollector`.

    Args:
        ingest: the collector's ingest path (serialized request in, serialized response out;
            raises ``MalformedRequest`` or ``StoreBehind``).
        stats: the collector's counters (malformed requests, unauthenticated calls, answers
            by status).
        host: interface to bind.
        port: TCP port; 0 picks a free one.
        max_message_bytes: largest body, before and after decompression.
        auth_token: when set, requests must carry ``Authorization: Bearer <token>``.
        tls: PEM certificate and key files; with them the port speaks HTTPS only.
        retry_delay: seconds a refused client is asked to wait (``Retry-After``, whole seconds).
        limits: deadlines and caps on connections and requests (:class:`HttpLimits`), enforced
            by :attr:`admission`.
    """

    def __init__(
        self,
        ingest: Callable[[bytes], Awaitable[bytes]],
        stats: CollectorCounts,
        *,
        host: str,
        port: int,
        max_message_bytes: int,
        auth_token: str | None = None,
        tls: tuple[Path, Path] | None = None,
        retry_delay: float = 1.0,
        limits: HttpLimits | None = None,
    ) -> None:
        self._web = cast("Any", require("aiohttp.web", "http", "the OTLP/HTTP receiver"))
        self._response: type[web.Response] = self._web.Response
        self._ingest = ingest
        self._stats = stats
        self.host = host
        self._requested_port = port
        self.max_message_bytes = max_message_bytes
        self._expected = f"Bearer {auth_token}".encode() if auth_token is not None else None
        self._tls = tls
        self._retry_delay = retry_delay
        self._retry_after = str(max(1, math.ceil(retry_delay)))
        limits = limits or HttpLimits()
        self.limits = limits
        self.read_timeout = limits.read_timeout
        self.idle_timeout = limits.idle_timeout
        #: aiohttp's per-connection errors, each logged once and then counted.
        self.log = RepeatedLog()
        #: Open connections and requests in flight (``refused`` and ``shed`` count the closed).
        self.admission = Admission(limits)
        self._json_turn = asyncio.Lock()
        self._json_worker = JsonWorker()
        self._runner: web.ServerRunner | None = None
        self._port: int | None = None
        #: Answers given, by HTTP status (the collector's ``stats.http_responses``).
        self.responses: dict[int, int] = stats.http_responses

    @property
    def port(self) -> int:
        """The bound port."""
        if self._port is None:
            raise RuntimeError("the OTLP/HTTP receiver is not started")
        return self._port

    async def start(self) -> None:
        """Bind and serve.

        Raises:
            ConfigError: the address cannot be bound or the TLS files cannot be used.
        """
        web = self._web
        context = await self._ssl_context() if self._tls is not None else None
        server = web.Server(
            self._handle,
            auto_decompress=False,  # we inflate ourselves, with a bound on the output
            access_log=None,
            # aiohttp closes a connection still waiting for a complete request this long after
            # it opened or was last answered: the header deadline and the idle timeout in one.
            keepalive_timeout=self.limits.header_timeout,
            logger=self.log,
        )
        self._runner, self._port = await self.admission.serve(
            web, server, self.host, self._requested_port, context
        )

    async def _ssl_context(self) -> ssl.SSLContext:
        assert self._tls is not None
        cert, key = self._tls
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)  # TLS 1.2 and newer

        def load() -> None:
            context.load_cert_chain(cert, key)  # reads files: not on the loop

        try:
            await asyncio.to_thread(load)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"cannot use the TLS files for OTLP/HTTP: {exc}") from exc
        return context

    async def stop(self, grace: float) -> None:
        """Stop accepting, let requests in flight finish within ``grace`` s, close. Idempotent."""
        runner, self._runner = self._runner, None
        if runner is None:
            return
        try:
            for site in list(runner.sites):
                await site.stop()  # no new connections; open ones finish their request
            if self.admission.in_flight:
                try:
                    async with asyncio.timeout(grace):
                        await self.admission.drained.wait()
                except TimeoutError:
                    pass  # the runner's cleanup cancels what is left
        finally:
            try:
                await runner.cleanup()
            finally:
                await self._json_worker.aclose()

    # -- one request ----------------------------------------------------------------------------
    async def _handle(self, request: web.BaseRequest) -> web.Response:
        try:
            return await self._checked(request)
        finally:
            self.admission.answered(request)

    async def _checked(self, request: web.BaseRequest) -> web.Response:
        as_json = request.content_type == _JSON
        if request.path != PATH:
            return self._error(
                404, _NOT_FOUND, f"not found: OTLP/HTTP traces go to {PATH}", as_json
            )
        if request.method != "POST":
            return self._error(
                405, _UNIMPLEMENTED, "method not allowed: use POST", as_json, {"Allow": "POST"}
            )
        if self._expected is not None and not self._authorized(request):
            self._stats.unauthenticated += 1
            return self._error(
                401,
                _UNAUTHENTICATED,
                "missing or invalid bearer token",
                as_json,
                {"WWW-Authenticate": "Bearer"},
            )
        media = request.content_type
        if media != _JSON and media not in _PROTOBUF:
            return self._error(
                415,
                _INVALID_ARGUMENT,
                "unsupported media type: send application/x-protobuf or application/json",
                False,
            )
        coding = request.headers.get("Content-Encoding", "identity").strip().lower()
        if coding not in ("identity", "", "gzip", "deflate"):
            return self._error(
                415, _INVALID_ARGUMENT, "unsupported Content-Encoding: use gzip or deflate", as_json
            )
        if not self.admission.enter(request, body=True):
            return self._error(
                429,
                _RESOURCE_EXHAUSTED,
                "too many requests in flight; retry later",
                as_json,
                {"Retry-After": self._retry_after},
                retry=True,
            )
        return await self._export(request, media, coding, as_json)

    async def _export(
        self, request: web.BaseRequest, media: str, coding: str, as_json: bool
    ) -> web.Response:
        limit = self.max_message_bytes
        too_large = f"request body over the {limit}-byte limit"
        length = request.content_length
        if length is not None and length > limit:
            return self._error(413, _RESOURCE_EXHAUSTED, too_large, as_json)
        await self._continue(request)
        try:
            async with asyncio.timeout(self.read_timeout):
                body = await _read(request.content, limit, self.idle_timeout)
            self.admission.body_read(request)
            if coding in ("gzip", "deflate"):
                if len(body) >= _INFLATE_IN_THREAD:
                    body = await asyncio.to_thread(inflate, body, coding, limit)
                else:
                    body = inflate(body, coding, limit)
            if as_json:
                raw = await self._encode_json(body)
            else:
                raw = body
        except _TooLarge:
            return self._error(413, _RESOURCE_EXHAUSTED, too_large, as_json)
        except (zlib.error, BadJson) as exc:
            self._stats.malformed_requests += 1
            return self._error(400, _INVALID_ARGUMENT, f"bad request body: {exc}", as_json)
        except self._web.RequestPayloadError:
            self._stats.malformed_requests += 1
            return self._error(400, _INVALID_ARGUMENT, "the request body was cut short", as_json)
        except ConnectionError:  # the client went away mid-body: nobody to answer
            return self._error(400, _INVALID_ARGUMENT, "the connection was lost", as_json)
        except WorkerLost:
            return self._error(
                503,
                _UNAVAILABLE,
                "the JSON worker process was lost; retry later",
                as_json,
                {"Retry-After": self._retry_after},
                retry=True,
            )
        except _Stalled:
            return self._error(
                408,
                _INVALID_ARGUMENT,
                f"the body stalled for over {self.idle_timeout} s",
                as_json,
            )
        except TimeoutError:
            return self._error(
                408,
                _INVALID_ARGUMENT,
                f"the body took over {self.read_timeout} s to arrive",
                as_json,
            )
        try:
            answer = await self._ingest(raw)
        except MalformedRequest:
            return self._error(
                400, _INVALID_ARGUMENT, "not a valid ExportTraceServiceRequest", as_json
            )
        except StoreBehind:
            return self._error(
                503,
                _UNAVAILABLE,
                "the collector's store is behind; retry later",
                as_json,
                {"Retry-After": self._retry_after},
                retry=True,
            )
        self.responses[200] = self.responses.get(200, 0) + 1
        if as_json:
            return self._response(body=response_to_json(answer), content_type=_JSON)
        return self._response(body=answer, content_type=media)

    async def _encode_json(self, body: bytes) -> bytes:
        """OTLP/JSON to protobuf: small bodies on the loop in steps, one at a time (as the
        collector converts); large or very deep ones in the worker process."""
        if len(body) < JSON_IN_PROCESS_BYTES:
            try:
                async with self._json_turn:
                    return await _encode_json(body)
            except TooDeepForTheLoop:
                pass
        return await self._json_worker.encode(body)

    def _authorized(self, request: web.BaseRequest) -> bool:
        presented = request.headers.get("Authorization", "")
        raw = presented.encode("utf-8", "surrogateescape")
        assert self._expected is not None
        return hmac.compare_digest(raw, self._expected)

    async def _continue(self, request: web.BaseRequest) -> None:
        """Answer ``Expect: 100-continue`` once the request has passed every header check."""
        expect = request.headers.get("Expect", "").lower()
        if expect == "100-continue" and request.version >= (1, 1):
            await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            request.writer.output_size = 0

    def _error(
        self,
        status: int,
        code: int,
        message: str,
        as_json: bool,
        headers: dict[str, str] | None = None,
        *,
        retry: bool = False,
    ) -> web.Response:
        self.responses[status] = self.responses.get(status, 0) + 1
        body = status_body(
            code, message, as_json=as_json, retry_delay=self._retry_delay if retry else None
        )
        return self._response(
            status=status,
            body=body,
            content_type=_JSON if as_json else "application/x-protobuf",
            headers=headers,
        )


async def _encode_json(body: bytes) -> bytes:
    """OTLP/JSON to protobuf on the loop, giving other tasks a turn every few dozen spans.

    A worker thread would not spare the loop here: ``json.loads`` and the encoder hold the GIL.
    Stepping keeps each hold to a few milliseconds for the small bodies encoded here (larger
    ones go to the worker process, :mod:`._json_worker`).
    """
    raw: bytes = await run_sliced(json_to_request_steps(body, cut=False))
    return raw


async def _read(stream: StreamReader, limit: int, idle: float) -> bytes:
    """The whole body, or :class:`_TooLarge` as soon as it passes ``limit`` bytes, or
    :class:`_Stalled` when no byte arrives for ``idle`` seconds."""
    chunks: list[bytes] = []
    size = 0
    while True:
        try:
            async with asyncio.timeout(idle):
                chunk = await stream.readany()
        except TimeoutError:
            raise _Stalled from None
        if not chunk:
            break
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def inflate(body: bytes, coding: str, limit: int, max_members: int = MAX_GZIP_MEMBERS) -> bytes:
    """Decompress a gzip or deflate body, refusing to produce more than ``limit`` bytes.

    ``deflate`` is zlib-wrapped as HTTP says; raw deflate streams are accepted too. Several
    gzip members in a row (what concatenating gzip files gives) are all inflated, up to
    ``max_members``. Linear in the body: input is fed in slices of at most 64 KiB, so a member's
    leftover input is never copied as a whole (many tiny members cost what one member costs).

    Raises:
        _TooLarge: the output would pass ``limit`` (nothing more is inflated).
        zlib.error: the body is not valid, is cut short or holds too many gzip members.
    """
    if coding == "gzip":
        wbits = 16 + zlib.MAX_WBITS
    elif body[:1] and (body[0] & 0x0F) == 8 and int.from_bytes(body[:2], "big") % 31 == 0:
        wbits = zlib.MAX_WBITS  # a zlib header
    else:
        wbits = -zlib.MAX_WBITS
    out: list[bytes] = []
    room = limit
    view = memoryview(body)
    pos, end = 0, len(body)
    members = 0
    while True:
        members += 1
        if members > max_members:
            raise zlib.error(f"more than {max_members} gzip members")
        inflater = zlib.decompressobj(wbits)
        while not inflater.eof:
            if pos >= end:
                raise zlib.error("the compressed body is cut short")
            step = view[pos : pos + _INFLATE_STEP]
            pos += len(step)
            chunk = inflater.decompress(step, room + 1)
            if len(chunk) > room or inflater.unconsumed_tail:  # stopped at the output bound
                raise _TooLarge
            room -= len(chunk)
            out.append(chunk)
        pos -= len(inflater.unused_data)  # the next member starts in the slice just fed
        if pos >= end or coding != "gzip":
            break
    if pos < end:
        raise zlib.error("data after the end of the compressed stream")
    return b"".join(out)

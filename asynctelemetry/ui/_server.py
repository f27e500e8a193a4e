"""The dashboard's HTTP server: aiohttp's low-level server in the caller's event loop.

The same pattern as the collector's OTLP/HTTP receiver: one handler, every request checked in
the same order, every answer carrying the same security headers.

======================================  ======  ===============================================
what                                    status  notes
======================================  ======  ===============================================
a method other than GET or HEAD         405     ``Allow: GET, HEAD``: nothing changes a store
more requests in flight than the bound  429     ``Retry-After`` (each may hold a store query)
no or wrong token (with ``auth_token``)  401     bearer header or the page's cookie
``/?token=…`` with the right token      303     sets an HttpOnly SameSite=Strict cookie
an unknown path, call, trace, session   404
a bad query parameter                   400     ``{"error": "<what is wrong>"}``
the store failed a read                 503     ``{"error": ...}``, logged
an unexpected exception (a bug)         500     ``{"error": ...}``, no traceback; logged once
======================================  ======  ===============================================
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import warnings
from importlib import resources
from typing import TYPE_CHECKING, Any, Final, cast
from urllib.parse import urlencode

from .._batching import Lifecycle, Listens
from .._exceptions import ConfigError, StoreError, require
from .._http_limits import Admission, HttpLimits, RepeatedLog
from .._wire import host_port
from . import _api
from ._params import ParamError, no_params, parse_query

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from typing import Self

    from aiohttp import web

    from .._alerts import AlertMonitor
    from .._stores import CallStore
    from ._params import Query

    _Route = Callable[[CallStore, Query], Awaitable[dict[str, Any]]]

__all__ = ["Dashboard"]

logger = logging.getLogger("asynctelemetry")

#: The page's files: name → content type. Nothing else under /static/ is served.
ASSETS: Final = {
    "state.js": "text/javascript; charset=utf-8",
    "format.js": "text/javascript; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "charts.js": "text/javascript; charset=utf-8",
    "budgets.js": "text/javascript; charset=utf-8",
    "session.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}
#: Every response: no inline script or style, nothing from another origin, no framing.
SECURITY_HEADERS: Final = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}
COOKIE: Final = "asynctelemetry_ui"
#: Most requests served at once; more get 429 (each may hold a store query).
DEFAULT_MAX_IN_FLIGHT: Final = 32
#: At most 64 connections open: past that, the one making the least progress (idle longest, or
#: slowest to send its request) is closed to admit a newcomer, the OTLP/HTTP receiver's rule; a
#: connection idle or slow to send its headers for 10 s is closed.
MAX_CONNECTIONS: Final = 64
HEADER_TIMEOUT: Final = 10.0

#: Routes of the API: path → (handler, the route's own parameters).
_ROUTES: Final[dict[str, tuple[_Route, tuple[str, ...]]]] = {
    "/api/summary": (_api.summary, ("by", "total", "limit", "order")),
    "/api/timeseries": (_api.timeseries, ("by", "bucket")),
    "/api/calls": (_api.calls, ("limit", "order", "sort", "after", "q")),
    "/api/errors": (_api.errors, ("limit",)),
    "/api/traces": (_api.traces, ("user", "agent", "limit", "order")),
}


class Dashboard(Listens):
    """A web page and JSON API over any :class:`~asynctelemetry.CallStore`, read-only.

    Served from the running event loop (aiohttp, extra ``ui``); an async context manager, or
    :meth:`start` / :meth:`stop`.

    Args:
        store: the store to show; it is only read (``query``, ``summary``, ``timeseries``,
            ``get``, ``trace``).
        host: interface to bind; loopback by default.
        port: TCP port; 0 picks a free one (see :attr:`port`).
        auth_token: when set, every page and API request needs ``Authorization: Bearer
            <token>``, or the cookie that opening ``/?token=<token>`` sets in a browser.
        max_in_flight: most requests served at once; more are answered 429.
        budgets: an ``AsyncTracer`` whose budgets ``/api/budgets`` shows (else the budgets kept
            in the store's database, when it is SQLite or PostgreSQL).
        alerts: an :class:`~asynctelemetry.AlertMonitor` whose firing rules and history
            ``/api/budgets`` shows.

    Raises:
        MissingDependencyError: aiohttp is not installed (``pip install 'asynctelemetry[ui]'``).
        ConfigError: a port outside 0..65535, an empty token or ``max_in_flight`` below 1.
    """

    def __init__(
        self,
        store: CallStore,
        *,
        host: str = "127.0.0.1",
        port: int = 4320,
        auth_token: str | None = None,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        budgets: Any = None,
        alerts: AlertMonitor | None = None,
    ) -> None:
        self._web = cast("Any", require("aiohttp.web", "ui", "the dashboard"))
        self.budgets = budgets
        self.alerts = alerts
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            raise ConfigError(f"port must be an int in 0..65535, not {port!r}")
        if auth_token is not None and (not isinstance(auth_token, str) or not auth_token):
            raise ConfigError("auth_token must be a non-empty str or None")
        self.store = store
        self.host = host
        self._requested_port = port
        self._token = auth_token
        self._expected = f"Bearer {auth_token}".encode() if auth_token is not None else None
        # The cookie holds a digest of the token, not the token itself.
        self._cookie = (
            hashlib.sha256(f"asynctelemetry-ui:{auth_token}".encode()).hexdigest()
            if auth_token is not None
            else None
        )
        self.max_in_flight = max_in_flight
        self._assets: dict[str, bytes] = {}
        self._runner: web.ServerRunner | None = None
        self._port: int | None = None
        self._life = Lifecycle("Dashboard")
        self._log = RepeatedLog("dashboard")
        #: Open connections and requests in flight (``refused`` and ``shed`` count the closed).
        self.admission = Admission(
            HttpLimits(
                header_timeout=HEADER_TIMEOUT,
                max_connections=MAX_CONNECTIONS,
                max_in_flight=max_in_flight,
            )
        )
        #: Answers given, by HTTP status.
        self.responses: dict[int, int] = {}

    def __repr__(self) -> str:
        state = "serving" if self._life.is_open else "stopped"
        return f"<Dashboard {self.url} {state}>"

    def __del__(self) -> None:
        life = getattr(self, "_life", None)
        if life is not None and life.is_open:
            warnings.warn(
                f"{self!r} was garbage-collected while serving: await stop() or use 'async with'",
                ResourceWarning,
                stacklevel=1,
            )

    @property
    def port(self) -> int:
        """The bound port once started (the OS's pick for ``port=0``), else the one asked for."""
        return self._port if self._port is not None else self._requested_port

    @property
    def url(self) -> str:
        """The page's address, ``http://127.0.0.1:4320/``."""
        return f"http://{host_port(self.host, self.port)}/"

    async def start(self) -> None:
        """Bind and serve. Idempotent.

        Raises:
            ConfigError: the address cannot be bound.
            StoreClosedError: after :meth:`aclose`.
        """
        self._life.check()
        if self._runner is not None:
            return
        if not self._assets:
            self._assets = await asyncio.to_thread(_load_assets)
        web = self._web
        server = web.Server(
            self._handle,
            access_log=None,
            keepalive_timeout=HEADER_TIMEOUT,
            logger=self._log,
        )
        self._runner, self._port = await self.admission.serve(
            web, server, self.host, self._requested_port
        )
        self._life.opened()

    async def stop(self) -> None:
        """Stop serving and close open connections. Idempotent; may start again."""
        runner, self._runner = self._runner, None
        self._life.stopped()
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def aclose(self) -> None:
        """Stop for good (leaving ``async with`` calls it): :meth:`start` refuses afterwards.
        Idempotent: a later or concurrent call returns once the first one has stopped."""
        await self._life.close(self.stop)

    # -- one request ----------------------------------------------------------------------------
    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        try:
            response = await self._answer(request)
        except Exception as exc:  # a bug: the client gets JSON, the log gets the exception once
            self._log.exception("unexpected error answering %s", request.path, exc_info=exc)
            response = self._json(500, {"error": "internal error; the server's log has it"})
        finally:
            self.admission.answered(request)
        response.headers.update(SECURITY_HEADERS)
        response.headers.setdefault("Cache-Control", "no-store")
        status = response.status
        self.responses[status] = self.responses.get(status, 0) + 1
        return response

    async def _answer(self, request: web.BaseRequest) -> web.StreamResponse:
        if request.method not in ("GET", "HEAD"):
            return self._json(
                405, {"error": "the dashboard is read-only: use GET"}, {"Allow": "GET, HEAD"}
            )
        if not self.admission.enter(request, body=False):
            return self._json(429, {"error": "too many requests; retry"}, {"Retry-After": "1"})
        return await self._route(request)

    async def _route(self, request: web.BaseRequest) -> web.StreamResponse:
        path = request.path
        if path == "/" and self._token is not None and "token" in request.query:
            return self._login(request)
        if not self._authorized(request):
            return self._unauthorized(path)
        if path == "/":
            return self._asset("index.html", "text/html; charset=utf-8")
        if path.startswith("/static/"):
            name = path[len("/static/") :]
            if name in ASSETS:
                return self._asset(name, ASSETS[name])
            return self._json(404, {"error": "no such file"})
        if path.startswith("/api/"):
            return await self._api(request)
        return self._json(404, {"error": f"not found: {path}; the page is at /"})

    async def _api(self, request: web.BaseRequest) -> web.Response:
        path = request.path
        pairs = list(request.query.items())
        try:
            if path in _ROUTES:
                route, allowed = _ROUTES[path]
                body = await route(self.store, parse_query(pairs, allowed=allowed))
            elif path.startswith("/api/calls/") and len(path) > len("/api/calls/"):
                no_params(pairs)
                body = await _api.call_by_id(self.store, path[len("/api/calls/") :])
            elif path.startswith("/api/traces/") and len(path) > len("/api/traces/"):
                no_params(pairs)
                body = await _api.trace(self.store, path[len("/api/traces/") :])
            elif path.startswith("/api/sessions/") and len(path) > len("/api/sessions/"):
                options = no_params(pairs, ("limit", "after"))
                body = await _api.session(self.store, path[len("/api/sessions/") :], options)
            elif path == "/api/budgets":
                no_params(pairs)
                body = await _api.budgets(self.store, self.budgets, self.alerts)
            else:
                return self._json(404, {"error": f"no API route {path}", "routes": _ROUTE_LIST})
        except ParamError as exc:
            return self._json(400, {"error": str(exc)})
        except _api.NotFound as exc:
            return self._json(404, {"error": str(exc)})
        except StoreError as exc:
            logger.warning("dashboard: the store failed a read: %s", exc)
            return self._json(503, {"error": f"the store failed: {exc}"})
        return self._json(200, body)

    # -- auth -----------------------------------------------------------------------------------
    def _authorized(self, request: web.BaseRequest) -> bool:
        if self._expected is None:
            return True
        presented = request.headers.get("Authorization")
        if presented is not None:
            raw = presented.encode("utf-8", "surrogateescape")
            return hmac.compare_digest(raw, self._expected)
        cookie = request.cookies.get(COOKIE)
        assert self._cookie is not None
        return cookie is not None and hmac.compare_digest(
            cookie.encode("utf-8", "surrogateescape"), self._cookie.encode()
        )

    def _login(self, request: web.BaseRequest) -> web.StreamResponse:
        """``/?token=…``: the right token sets the cookie and sends the browser to ``/``, with
        the link's other parameters (the view it opens), the token left out."""
        presented = request.query.get("token", "").encode("utf-8", "surrogateescape")
        assert self._token is not None and self._cookie is not None
        if not hmac.compare_digest(presented, self._token.encode()):
            return self._unauthorized("/")
        rest = [(k, v) for k, v in request.query.items() if k != "token"]
        location = "/?" + urlencode(rest) if rest else "/"
        response = self._web.Response(status=303, headers={"Location": location})
        response.set_cookie(COOKIE, self._cookie, httponly=True, samesite="Strict", path="/")
        return cast("web.StreamResponse", response)

    def _unauthorized(self, path: str) -> web.Response:
        message = (
            "this dashboard needs a token: send 'Authorization: Bearer <token>', "
            "or open /?token=<token> in the browser"
        )
        headers = {"WWW-Authenticate": "Bearer"}
        if path.startswith("/api/"):
            return self._json(401, {"error": message}, headers)
        return cast(
            "web.Response",
            self._web.Response(status=401, text=message + "\n", headers=headers),
        )

    # -- answers --------------------------------------------------------------------------------
    def _asset(self, name: str, content_type: str) -> web.Response:
        response = self._web.Response(body=self._assets[name], content_type=None)
        response.headers["Content-Type"] = content_type
        return cast("web.Response", response)

    def _json(
        self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None
    ) -> web.Response:
        text = json.dumps(body, allow_nan=False, separators=(",", ":"))
        response = self._web.Response(
            status=status, text=text, content_type="application/json", headers=headers
        )
        return cast("web.Response", response)


_ROUTE_LIST: Final = [
    *_ROUTES,
    "/api/budgets",
    "/api/calls/{call_id}",
    "/api/traces/{trace_id}",
    "/api/sessions/{session_id}",
]


def _load_assets() -> dict[str, bytes]:
    """The page's files, read once from the package (they ship in the wheel)."""
    static = resources.files(__package__).joinpath("static")
    names = ["index.html", *ASSETS]
    return {name: static.joinpath(name).read_bytes() for name in names}

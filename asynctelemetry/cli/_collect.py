"""``collect``: run an :class:`AsyncCollector` until Ctrl-C, with a live view on a terminal.

On a terminal the live view (:mod:`._view`) is redrawn about twice a second; otherwise each call
is printed as a line (or, with ``--json``, as one JSON object per line) so the output can be piped.
SIGINT and SIGTERM stop the collector cleanly: in-flight exports finish, queued calls reach the
store, the store is flushed and closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from typing import TYPE_CHECKING, Any

from .._collector import AsyncCollector
from .._exceptions import ConfigError, MissingDependencyError, StoreError, mask_secrets
from .._export import format_call
from .._stores import MemoryStore, SQLiteStore, open_store
from .._wire import host_port
from ._common import is_postgres_url, other_url, postgres_store, source_name, stop_signals
from ._errors import CLIError, UsageError, describe_bind_failure, port_in_use
from ._help import plural
from ._live import CallTap, LiveView
from ._writers import WriterLock

if TYPE_CHECKING:
    import argparse
    from collections.abc import AsyncIterator

    from rich.console import Console

    from .._pipeline import Sink
    from .._stores import CallStore

__all__ = ["AUTH_TOKEN_ENV", "FORWARD_TOKEN_ENV", "run_collect"]

#: Environment variable read when ``--auth-token`` is not given.
AUTH_TOKEN_ENV = "ASYNCTELEMETRY_AUTH_TOKEN"
#: Environment variable read when ``--forward-token`` is not given.
FORWARD_TOKEN_ENV = "ASYNCTELEMETRY_FORWARD_TOKEN"


def _store_of(args: argparse.Namespace) -> tuple[CallStore, str]:
    retention = {
        name: value
        for name, value in (("max_age", args.max_age), ("max_rows", args.max_rows))
        if value is not None
    }
    if args.memory is not None:
        if retention:
            raise UsageError("--max-age/--max-rows apply to --db (a MemoryStore is bounded by N)")
        return MemoryStore(args.memory), f"memory (last {args.memory:,} calls)"
    if args.store is not None:
        if retention:
            raise UsageError("with --store, give retention as URL options (?max_age=7d&max_rows=N)")
        try:
            return open_store(args.store), mask_secrets(args.store)
        except ConfigError as exc:
            raise UsageError(str(exc)) from None
    if is_postgres_url(args.db):
        return postgres_store(args.db, **retention), source_name(args)
    args.db = other_url(args.db) or args.db
    if os.path.isdir(args.db):
        raise CLIError(f"{args.db} is a directory, not a call store")
    try:
        return SQLiteStore(args.db, adopt=args.adopt, **retention), args.db
    except ConfigError as exc:
        raise UsageError(str(exc)) from None


@contextlib.asynccontextmanager
async def _writing(store: CallStore, args: argparse.Namespace) -> AsyncIterator[None]:
    """Hold the writer lock of a SQLite file while collecting; say who else writes it."""
    path = getattr(store, "path", ":memory:") if isinstance(store, SQLiteStore) else ":memory:"
    if path == ":memory:":
        yield
        return
    with WriterLock(path, f"asynctelemetry collect on {args.host}:{args.port}") as lock:
        holder = lock.acquire()
        if holder is not None:
            _say(
                f"warning: {path} is also being written by {holder}; both write into it and "
                "their calls mix (use another --db for a separate store)"
            )
        yield


@contextlib.asynccontextmanager
async def _metrics(args: argparse.Namespace, sinks: list[Sink]) -> AsyncIterator[str | None]:
    """A MetricsRecorder among ``sinks`` and its /metrics server, when ``--metrics-port`` asks."""
    if args.metrics_port is None:
        yield None
        return
    from .._metrics_http import PrometheusExporter
    from ..metrics import MetricsRecorder

    recorder = MetricsRecorder()
    sinks.append(recorder)
    server = PrometheusExporter(args.metrics_port, recorder, host=args.host)
    try:
        await server.start()
    except OSError:
        raise CLIError(
            describe_bind_failure(args.host, args.metrics_port, "metrics server")
        ) from None
    try:
        yield server.url
    finally:
        await server.stop()


@contextlib.asynccontextmanager
async def _dashboard(
    args: argparse.Namespace, store: CallStore, alerts: Any = None
) -> AsyncIterator[None]:
    """The dashboard on the collector's store, when ``--ui-port`` asks: live, as calls arrive
    (with the ``--alert`` rules' state)."""
    if args.ui_port is None:
        yield
        return
    from ._ui import dashboard, page_link, ui_token

    token = ui_token(args.ui_token)
    where = {"host": args.host, "port": args.ui_port, "token": token, "alerts": alerts}
    async with dashboard(store, **where) as url:
        _say(f"dashboard on {page_link(url, token)}")
        yield


@contextlib.asynccontextmanager
async def _alerting(args: argparse.Namespace, store: CallStore) -> AsyncIterator[Any]:
    """Alert rules (``--alert``) checked on the store: every event is a line on stderr (the
    monitor logs it), and a JSON POST to ``--alert-webhook`` when given."""
    if not args.alert:
        if args.alert_webhook:
            raise UsageError("--alert-webhook needs at least one --alert RULE")
        yield None
        return
    from .._alerts import AlertEvent, AlertMonitor

    async def logged_only(event: AlertEvent) -> None:
        """The monitor's own log line is the notification."""

    try:
        monitor = AlertMonitor(
            store,
            args.alert,
            notify=args.alert_webhook or logged_only,
            interval=args.alert_interval,
        )
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    async with monitor:
        if args.alert_webhook:
            _say(f"alerts go to {mask_secrets(args.alert_webhook)}")
        yield monitor


def _auth_token(args: argparse.Namespace) -> str | None:
    token: str | None = args.auth_token
    if token is None:
        token = os.environ.get(AUTH_TOKEN_ENV)
    return token or None


def _forward_headers(args: argparse.Namespace) -> dict[str, str] | None:
    token: str | None = args.forward_token
    if token is None and args.forward_to:
        token = os.environ.get(FORWARD_TOKEN_ENV)
    return {"authorization": f"Bearer {token}"} if token else None


def _collector(args: argparse.Namespace, store: CallStore, sinks: list[Sink]) -> AsyncCollector:
    token = _auth_token(args)
    try:
        return AsyncCollector(
            store,
            host=args.host,
            port=args.port,
            auth_token=token or None,
            tls_cert=args.tls_cert,
            tls_key=args.tls_key,
            capture_content=args.capture_content,
            http_port=args.http_port,
            forward_to=args.forward_to,
            forward_headers=_forward_headers(args),
            sinks=sinks,
        )
    except (ConfigError, ValueError) as exc:
        raise UsageError(str(exc)) from None


def _say(text: str) -> None:
    sys.stderr.write(f"asynctelemetry: {text}\n")
    sys.stderr.flush()


async def run_collect(args: argparse.Namespace, console: Console) -> int:
    """Serve OTLP until SIGINT/SIGTERM; return 0 after a clean, flushed stop."""
    live = console.is_terminal and not args.json and not args.no_live
    line: Any = None
    if args.json:
        line = lambda call: call.model_dump_json()  # noqa: E731
    elif not live and not args.quiet:
        line = format_call
    stop = asyncio.Event()  # set by SIGINT/SIGTERM, or when the reader of stdout goes away
    tap = CallTap(line=line, stream=console.file, on_broken_pipe=stop.set)  # type: ignore[arg-type]
    sinks: list[Sink] = [tap]
    store, where = _store_of(args)
    for port, what in ((args.port, "collector"), (args.http_port, "OTLP/HTTP receiver")):
        if port and port_in_use(args.host, port):
            raise CLIError(describe_bind_failure(args.host, port, what))
    try:
        async with (
            store,
            _writing(store, args),
            _metrics(args, sinks) as metrics_url,
            _alerting(args, store) as monitor,
            _dashboard(args, store, monitor),
        ):
            collector = _collector(args, store, sinks)
            try:
                await collector.start()
            except ConfigError as exc:
                if "TLS" in str(exc):
                    raise CLIError(str(exc)) from None
                raise CLIError(describe_bind_failure(args.host, args.port, "collector")) from None
            except OSError:  # only the OTLP/HTTP receiver binds through the OS directly
                reason = describe_bind_failure(args.host, args.http_port or 0, "OTLP/HTTP receiver")
                raise CLIError(reason) from None
            try:
                await _serve(
                    args, collector, store, tap, console, where, metrics_url, live, stop, monitor
                )
            finally:
                await collector.stop()
    except StoreError as exc:
        raise CLIError(str(exc)) from None
    except MissingDependencyError as exc:
        raise CLIError(str(exc)) from None
    stats = collector.stats
    _say(
        f"stopped: {plural(stats.stored, 'call')} stored in {where} "
        f"({plural(stats.received_spans, 'span')} received, {plural(stats.steps, 'step')} kept, "
        f"{plural(stats.ignored_spans, 'other span')} ignored, {stats.rejected_spans:,} rejected)"
    )
    return 0


async def _serve(
    args: argparse.Namespace,
    collector: AsyncCollector,
    store: CallStore,
    tap: CallTap,
    console: Console,
    where: str,
    metrics_url: str | None,
    live: bool,
    stop: asyncio.Event,
    alerts: Any = None,
) -> None:
    # Handlers first, announcement second: a Ctrl-C sent as soon as the address is printed
    # (a script, a test) must stop the collector cleanly, not interrupt it (status 130).
    with stop_signals(stop):
        scheme = "OTLP/gRPC+TLS" if args.tls_cert else "OTLP/gRPC"
        _say(f"collecting {scheme} on {collector.endpoint} into {where}")
        if collector.http_port is not None:
            web = "https" if args.tls_cert else "http"
            where_http = host_port(args.host, collector.http_port)
            _say(f"collecting OTLP/HTTP on {web}://{where_http}/v1/traces")
        if metrics_url:
            _say(f"Prometheus metrics on {metrics_url}")
        if args.forward_to:
            _say(f"forwarding every request to {mask_secrets(args.forward_to)}")
        if args.host not in ("127.0.0.1", "::1", "localhost"):
            auth = "with" if _auth_token(args) else "WITHOUT"
            _say(f"listening beyond loopback ({args.host}) {auth} a bearer token")
        _say(f"export with OTEL_EXPORTER_OTLP_ENDPOINT=http://{collector.endpoint}; Ctrl-C stops")
        if not live:
            await stop.wait()
            return

        def counters() -> dict[str, int]:
            s = collector.stats
            shown = {"spans": s.received_spans, "not LLM": s.ignored_spans}
            if s.rejected_spans:
                shown["rejected"] = s.rejected_spans
            if s.refused_requests:
                shown["refused (store behind)"] = s.refused_requests
            if s.unauthenticated:
                shown["unauthenticated"] = s.unauthenticated
            return shown

        title = f"asynctelemetry collect · {collector.endpoint} → {where}"
        async with LiveView(store, tap, console, title=title, counters=counters, alerts=alerts):
            await stop.wait()

"""Alerts: rules over a store's time series that notify once when they fire and once when they
resolve.

Layer 6 (a face: it reads stores through the store protocol and tells people). Each
:class:`Alert` is evaluated every ``interval`` seconds by an :class:`AlertMonitor` from
``store.timeseries`` (rollups in SQLite and PostgreSQL: cheap at any volume), per key when the
rule has a ``by``. Notifications go through one bounded :class:`~._batching.BatchQueue` with
retry and backoff, so a slow or failing receiver never holds the evaluations, let alone calls.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import re
from collections import deque
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final, Literal, Self
from urllib.parse import urlsplit

from ._batching import BatchQueue, ClosesOnExit, Lifecycle, Retryable, RetryPolicy
from ._exceptions import ConfigError, mask_secrets, require
from ._stores._base import bucket_ns

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Sequence

    from ._stores import CallStore, TimeBucket
    from .metrics import MetricsRecorder

__all__ = ["Alert", "AlertEvent", "AlertMonitor", "AlertStats", "parse_alert"]

logger = logging.getLogger("asynctelemetry.alerts")

METRICS: Final = ("cost", "calls", "errors", "error_rate", "p95_latency_ms", "budget")
_BY: Final = ("model", "request_model", "provider", "session", "route")
#: Events a monitor remembers (``monitor.history``).
HISTORY: Final = 200
#: A rule resolves when its value falls below ``above * (1 - HYSTERESIS)`` (no flapping).
HYSTERESIS: Final = 0.1
_RULE: Final = re.compile(
    r"^\s*(?P<metric>[a-z0-9_]+)\s*>\s*(?P<above>[0-9.eE+-]+)\s*(?:/\s*(?P<window>\w+))?\s*$"
)


def _window_seconds(window: str | timedelta) -> float:
    try:
        return bucket_ns(window) / 1e9
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"window must be like '5m', '1h' or a timedelta: {exc}") from None


@dataclass(frozen=True, slots=True)
class Alert:
    """A rule: ``metric`` over the last ``window`` is above ``above`` (per key when ``by``).

    Args:
        metric: ``"cost"`` (USD), ``"calls"``, ``"errors"``, ``"error_rate"`` (0..1),
            ``"p95_latency_ms"`` (the worst minute's p95 in the window), or ``"budget"`` (the
            fraction of each budget spent and reserved, e.g. ``above=0.8``; needs the monitor's
            ``budgets=``).
        above: the threshold (finite).
        window: how far back each evaluation looks (``"5m"``, ``"1h"``, a timedelta).
        by: evaluate per ``"model"``, ``"request_model"``, ``"provider"``, ``"session"`` or
            ``"route"`` (each key fires on its own); ``None``: all calls together.
        name: shown in notifications (default: the rule as text, e.g. ``error_rate>0.05/5m``).
        min_calls: for ``error_rate`` and ``p95_latency_ms``, windows with fewer calls are not
            judged (one failed call out of one is not a 100% error rate worth waking anyone).

    Raises:
        ConfigError: an unknown metric or ``by``, a non-finite threshold, a bad window.
    """

    metric: str
    above: float
    window: str | timedelta = "5m"
    by: str | None = None
    name: str | None = None
    min_calls: int = 1

    def __post_init__(self) -> None:
        if self.metric not in METRICS:
            raise ConfigError(f"metric must be one of {', '.join(METRICS)}, got {self.metric!r}")
        above = self.above
        if (
            isinstance(above, bool)
            or not isinstance(above, int | float)
            or not math.isfinite(above)
        ):
            raise ConfigError(f"above must be a finite number, got {above!r}")
        object.__setattr__(self, "above", float(above))
        _window_seconds(self.window)
        if self.by is not None and self.by not in _BY:
            raise ConfigError(f"by must be one of {', '.join(_BY)} or None, got {self.by!r}")
        if self.min_calls.__class__ is not int or self.min_calls < 1:
            raise ConfigError(f"min_calls must be an int >= 1, got {self.min_calls!r}")
        if self.name is None:
            window = self.window if isinstance(self.window, str) else f"{self.seconds:g}s"
            object.__setattr__(self, "name", f"{self.metric}>{self.above:g}/{window}")

    @property
    def seconds(self) -> float:
        """The window in seconds."""
        return _window_seconds(self.window)

    @property
    def label(self) -> str:
        """The alert's name (always set after construction)."""
        return self.name or ""


def parse_alert(text: str) -> Alert:
    """An :class:`Alert` from the CLI's form ``metric>threshold[/window]``, e.g.
    ``error_rate>0.05/5m`` or ``cost>10/1h``.

    Raises:
        ConfigError: text not of that form, or a rule :class:`Alert` refuses.
    """
    match = _RULE.match(text)
    if match is None:
        raise ConfigError(
            f"an alert is metric>threshold[/window], e.g. error_rate>0.05/5m: {text!r}"
        )
    try:
        above = float(match["above"])
    except ValueError:
        raise ConfigError(f"not a number: {match['above']!r} in {text!r}") from None
    return Alert(match["metric"], above=above, window=match["window"] or "5m")


@dataclass(frozen=True, slots=True)
class AlertEvent:
    """A rule started firing (``state="firing"``) or resolved (``"resolved"``).

    ``value`` is the metric's value at that evaluation, ``key`` the group it is for (``None``
    for a rule without ``by``), ``at`` when it was evaluated.
    """

    state: Literal["firing", "resolved"]
    alert: str
    metric: str
    value: float
    above: float
    window: str
    key: str | None
    at: datetime

    def as_json(self) -> dict[str, Any]:
        """The event as a webhook receives it."""
        data = asdict(self)
        data["at"] = self.at.isoformat()
        return data


@dataclass(frozen=True, slots=True)
class AlertStats:
    """What a monitor has done (a snapshot): evaluations run and failed, rules firing now,
    notifications delivered and given up on (after retries, or dropped when the queue was
    full)."""

    evaluations: int = 0
    failed_evaluations: int = 0
    firing: int = 0
    notified: int = 0
    notify_failed: int = 0


def _value(metric: str, buckets: Sequence[TimeBucket], min_calls: int) -> float | None:
    calls = sum(b.calls for b in buckets)
    if metric == "calls":
        return float(calls)
    if metric == "errors":
        return float(sum(b.errors for b in buckets))
    if metric == "cost":
        return sum(b.cost_usd or 0.0 for b in buckets)
    if calls < min_calls:
        return None
    if metric == "error_rate":
        return sum(b.errors for b in buckets) / calls
    p95 = [b.p95_latency_ms for b in buckets if b.p95_latency_ms is not None]
    return max(p95) if p95 else None


@dataclass
class _State:
    firing: bool = False
    value: float = 0.0


@dataclass
class _Counts:
    evaluations: int = 0
    failed_evaluations: int = 0
    notified: int = 0
    notify_failed: int = 0
    states: dict[tuple[str, str | None], _State] = field(default_factory=dict)


class AlertMonitor(ClosesOnExit):
    """Evaluates alert rules on a store every ``interval`` seconds and notifies on changes.

    Args:
        store: any :class:`CallStore` (its ``timeseries``).
        alerts: the rules.
        notify: an async callable taking an :class:`AlertEvent`, or an ``http(s)://`` webhook URL
            that receives the event as a JSON POST (extra ``otlp``: httpx).
        interval: seconds between evaluations.
        budgets: what the ``budget`` metric reads (an ``AsyncTracer`` with budgets).
        headers: headers of webhook POSTs (``{"authorization": "Bearer …"}``).
        max_queue: notifications held while the receiver is slow; past it the oldest go
            (counted in ``stats.notify_failed``).
        close_timeout: seconds ``aclose()`` spends delivering what is queued.
        metrics: a :class:`~asynctelemetry.metrics.MetricsRecorder` whose
            ``{ns}_alerts_firing`` and ``{ns}_budget_remaining_usd`` gauges are set after each
            evaluation.

    A rule fires once when its value goes above ``above``, and resolves once when the value
    falls below ``above * 0.9`` (the 10% band keeps a value hovering at the threshold from
    flapping). Failed deliveries are retried with backoff (6 attempts, about 10 s), then counted.

    Raises:
        ConfigError: no rules, a duplicate name, ``notify`` neither callable nor an http(s) URL,
            a ``budget`` rule without ``budgets=``.
    """

    def __init__(
        self,
        store: CallStore,
        alerts: Sequence[Alert],
        *,
        notify: Callable[[AlertEvent], Awaitable[Any]] | str,
        interval: float = 15.0,
        budgets: Any = None,
        headers: dict[str, str] | None = None,
        max_queue: int = 1000,
        close_timeout: float = 5.0,
        metrics: MetricsRecorder | None = None,
    ) -> None:
        self.store = store
        self.alerts = tuple(alerts)
        if not self.alerts:
            raise ConfigError("AlertMonitor needs at least one Alert")
        names = [a.label for a in self.alerts]
        if len(set(names)) != len(names):
            raise ConfigError(f"alert names must be unique, got {names}")
        if any(a.metric == "budget" for a in self.alerts) and budgets is None:
            raise ConfigError("a 'budget' alert needs AlertMonitor(..., budgets=tracer)")
        if not (isinstance(interval, int | float) and math.isfinite(interval) and interval > 0):
            raise ConfigError(f"interval must be a positive number of seconds, got {interval!r}")
        self.interval = float(interval)
        self.budgets = budgets
        self._send: Callable[[AlertEvent], Awaitable[Any]]
        self._client: Any = None
        if isinstance(notify, str):
            parts = urlsplit(notify)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise ConfigError(f"a webhook must be an http(s) URL, got {mask_secrets(notify)!r}")
            self.webhook: str | None = notify
            self._headers = dict(headers or {})
            require("httpx", "otlp", "webhook alerts")
            self._send = self._post
        elif callable(notify):
            self.webhook = None
            self._send = notify
        else:
            raise ConfigError("notify must be an async callable or an http(s) webhook URL")
        self._counts = _Counts()
        self._queue: BatchQueue[AlertEvent] = BatchQueue(
            self._deliver,
            max_size=max_queue,
            batch_size=1,
            flush_interval=0.0,
            overflow="drop_oldest",
            retry=RetryPolicy(initial=0.2, maximum=5.0, max_attempts=6),
            name="alert notifications",
        )
        self._task: asyncio.Task[None] | None = None
        self._life = Lifecycle("AlertMonitor")
        self.close_timeout = close_timeout
        self.metrics = metrics
        #: The latest events, newest last (at most :data:`HISTORY`), for the dashboard.
        self.history: deque[AlertEvent] = deque(maxlen=HISTORY)

    # -- lifecycle ------------------------------------------------------------------------------
    async def start(self) -> None:
        """Start evaluating every ``interval`` seconds (the first evaluation at once)."""
        if self._life.ended:
            raise ConfigError("AlertMonitor is closed")
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="alerts")
            self._life.opened()

    async def aclose(self) -> None:
        """Stop evaluating; deliver what is queued (bounded by the retries); close. Idempotent:
        a later or concurrent call returns once the first one has closed."""
        await self._life.close(self._close)

    async def _close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        await self._queue.aclose(self.close_timeout)
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    @property
    def stats(self) -> AlertStats:
        """A snapshot of what the monitor has done."""
        counts = self._counts
        queue = self._queue.stats
        return AlertStats(
            evaluations=counts.evaluations,
            failed_evaluations=counts.failed_evaluations,
            firing=sum(1 for s in counts.states.values() if s.firing),
            notified=counts.notified,
            notify_failed=queue.dropped_failed + queue.dropped_overflow + queue.dropped_on_close,
        )

    def firing(self) -> list[tuple[str, str | None, float]]:
        """The rules firing now: ``(alert, key, value)``."""
        return [(a, k, s.value) for (a, k), s in self._counts.states.items() if s.firing]

    # -- evaluation -----------------------------------------------------------------------------
    async def _run(self) -> None:
        while True:
            await self.evaluate()
            await asyncio.sleep(self.interval)

    async def evaluate(self, now: datetime | None = None) -> list[AlertEvent]:
        """Evaluate every rule once (as the monitor does each ``interval``); returns the events
        it queued. A store that fails is logged and counted; the next round tries again."""
        now = now or datetime.now(UTC)
        events: list[AlertEvent] = []
        for alert in self.alerts:
            try:
                values = await self._values(alert, now)
            except Exception as exc:
                self._counts.failed_evaluations += 1
                logger.warning("alert %s: evaluation failed: %s", alert.label, exc)
                continue
            events.extend(self._judge(alert, values, now))
        self._counts.evaluations += 1
        for event in events:
            key = f" [{event.key}]" if event.key is not None else ""
            logger.warning("alert %s: %s%s = %.6g", event.state, event.alert, key, event.value)
            self.history.append(event)
            self._queue.put_nowait(event)
        if self.metrics is not None:
            await self._gauges(self.metrics)
        return events

    async def _gauges(self, metrics: MetricsRecorder) -> None:
        firing = [alert for alert, _key, _value in self.firing()]
        metrics.record_alerts([a.label for a in self.alerts], firing)
        if self.budgets is not None:
            try:
                metrics.record_budgets(await self.budgets.budget_status())
            except Exception as exc:
                logger.warning("budget gauges: reading budgets failed: %s", exc)

    async def _values(self, alert: Alert, now: datetime) -> dict[str | None, float | None]:
        if alert.metric == "budget":
            statuses = await self.budgets.budget_status()
            return {f"{s.name}/{s.key}" if s.key else s.name: s.used for s in statuses}
        seconds = alert.seconds
        bucket = "1m" if seconds <= 2 * 3600 else "1h"
        since = now - timedelta(seconds=seconds)
        rows = await self.store.timeseries(bucket=bucket, by=alert.by, since=since, until=now)  # type: ignore[arg-type]
        groups: dict[str | None, list[TimeBucket]] = {}
        for row in rows:
            groups.setdefault(row.key, []).append(row)
        return {key: _value(alert.metric, group, alert.min_calls) for key, group in groups.items()}

    def _judge(
        self, alert: Alert, values: dict[str | None, float | None], now: datetime
    ) -> list[AlertEvent]:
        states = self._counts.states
        name = alert.label
        for (rule, gone), state in states.items():  # keys gone from the window: their value is 0
            if rule == name and gone not in values and state.firing:
                values[gone] = 0.0 if alert.metric in ("calls", "errors", "cost") else None
        events = []
        for key, value in values.items():
            if value is None:
                continue  # too few calls to judge: the state stays as it is
            state = states.setdefault((name, key), _State())
            state.value = value
            if not state.firing and value > alert.above:
                state.firing = True
                events.append(self._event("firing", alert, value, key, now))
            elif (state.firing and value < alert.above * (1 - HYSTERESIS)) or (
                state.firing and alert.above == 0 and value <= 0
            ):
                state.firing = False
                events.append(self._event("resolved", alert, value, key, now))
        return events

    @staticmethod
    def _event(
        state: Literal["firing", "resolved"],
        alert: Alert,
        value: float,
        key: str | None,
        now: datetime,
    ) -> AlertEvent:
        window = alert.window if isinstance(alert.window, str) else f"{alert.seconds:g}s"
        return AlertEvent(state, alert.label, alert.metric, value, alert.above, window, key, now)

    # -- delivery -------------------------------------------------------------------------------
    async def _deliver(self, batch: list[AlertEvent]) -> None:
        for event in batch:
            try:
                await self._send(event)
            except Exception as exc:
                logger.warning("alert %s: notification failed: %s", event.alert, exc)
                raise Retryable(exc) from exc
            self._counts.notified += 1

    async def _post(self, event: AlertEvent) -> None:
        if self._client is None:
            import httpx

            self._client = httpx.AsyncClient(timeout=5.0, headers=self._headers)
        response = await self._client.post(
            self.webhook,
            content=json.dumps(event.as_json()),
            headers={"content-type": "application/json"},
        )
        if response.status_code >= 300:
            raise RuntimeError(f"webhook answered {response.status_code}")

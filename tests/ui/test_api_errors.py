"""Every API error is JSON: dates and windows at the edges of the calendar are a 400 with a
reason (issue 23, fault 6: they were a plain-text 500), and a handler's unexpected exception is
a JSON 500 with no traceback in the body, logged once."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import aiohttp
import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from asynctelemetry import MemoryStore
from asynctelemetry.ui import Dashboard

if TYPE_CHECKING:
    from .conftest import Served

ROUTES = ("/api/summary", "/api/timeseries", "/api/calls")

#: Any zone offset a datetime may carry (under a day either way), in whole minutes.
offsets = st.integers(-1439, 1439).map(lambda m: timezone(timedelta(minutes=m)))
#: Times anywhere in the calendar, weighted to its two ends and the stores' int64-ns limits.
moments = st.one_of(
    st.datetimes(timezones=st.one_of(st.none(), offsets)),
    st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(1, 1, 3), timezones=offsets),
    st.datetimes(
        min_value=datetime(9999, 12, 29),
        max_value=datetime(9999, 12, 31, 23, 59, 59),
        timezones=offsets,
    ),
    st.datetimes(min_value=datetime(1677, 9, 1), max_value=datetime(1678, 1, 2), timezones=offsets),
    st.datetimes(
        min_value=datetime(2261, 12, 1), max_value=datetime(2262, 4, 12), timezones=offsets
    ),
)
durations = st.builds(
    lambda n, unit: f"{n}{unit}",
    st.one_of(st.integers(1, 60), st.integers(0, 9_999_999)),
    st.sampled_from("smhdw"),
)


@st.composite
def queries(draw: st.DrawFn) -> tuple[str, dict[str, str]]:
    """A route and its window: ``since``/``until`` (either may be left out) or ``window``, and
    for time series a ``bucket``."""
    route = draw(st.sampled_from(ROUTES))
    params: dict[str, str] = {}
    if draw(st.booleans()):
        since = draw(moments)
        params["since"] = since.isoformat()
        if draw(st.booleans()):
            until = draw(
                st.one_of(
                    moments,
                    st.timedeltas(timedelta(0), timedelta(days=400)).map(
                        lambda d: since + d if since.year < 9999 else since
                    ),
                )
            )
            params["until"] = until.isoformat()
    elif draw(st.booleans()):
        params["window"] = draw(durations)
    if route == "/api/timeseries" and draw(st.booleans()):
        params["bucket"] = draw(st.one_of(st.just("auto"), durations))
    return route, params


@settings(
    max_examples=100,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(query=queries())
def test_any_date_or_window_is_answered_200_or_a_json_400(
    served: Served, query: tuple[str, dict[str, str]]
) -> None:
    """Whatever the dates, zone offsets and windows, the real dashboard over SQLite answers 200
    or a JSON 400 naming the parameter, never a 500."""
    route, params = query
    answer = httpx.get(f"{served.url.rstrip('/')}{route}?{urlencode(params)}", timeout=30)
    assert answer.headers["Content-Type"].startswith("application/json"), answer.text
    assert answer.status_code in (200, 400), answer.text
    if answer.status_code == 400:
        message = answer.json()["error"]
        assert any(name in message for name in ("since", "until", "window", "bucket")), message


@pytest.mark.parametrize(
    ("params", "says"),
    [
        ({"since": "0001-01-01T00:00:00+01:00"}, "since="),
        ({"since": "9999-12-31T23:00:00-05:00"}, "since="),
        ({"since": "0001-01-01T00:00:00Z", "until": "0001-01-02T00:00:00Z"}, "between"),
        ({"since": "2262-04-10T00:00:00Z", "until": "2262-04-11T00:00:00Z"}, "between"),
    ],
)
def test_times_a_store_cannot_hold_are_a_400(
    served: Served, params: dict[str, str], says: str
) -> None:
    """Times outside what a store keeps (int64 nanoseconds: 1678 to 2261), or that cannot be
    converted to UTC at all, are refused before any store is asked."""
    answer = httpx.get(f"{served.url.rstrip('/')}/api/summary?{urlencode(params)}", timeout=30)
    assert answer.status_code == 400
    assert says in answer.json()["error"]


class Broken(MemoryStore):
    """A store whose reads fail with an error no handler expects."""

    async def page(self, **filters: Any) -> Any:
        raise RuntimeError("a bug in a store, with a secret /etc/path in its text")


async def test_an_unexpected_error_is_a_json_500_without_a_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A handler's unexpected exception is answered 500 with a JSON body that holds neither
    the traceback nor the exception's text, and is logged once (repeats counted)."""
    caplog.set_level(logging.WARNING, logger="asynctelemetry")
    async with (
        Dashboard(Broken(), port=0) as board,
        aiohttp.ClientSession() as client,
    ):
        for _ in range(3):
            async with client.get(board.url + "api/calls") as response:
                assert response.status == 500
                assert response.content_type == "application/json"
                body = await response.json()
        assert set(body) == {"error"}
        assert "Traceback" not in body["error"] and "/etc/path" not in body["error"]
        async with client.get(board.url + "api/summary") as response:
            assert response.status == 200  # the dashboard still serves
    logged = [r for r in caplog.records if "RuntimeError" in r.getMessage()]
    assert len(logged) == 1, caplog.text


def test_the_edges_are_what_a_store_holds() -> None:
    """The bounds the API checks are inside what int64 nanoseconds since 1970 can hold."""
    from asynctelemetry.ui._params import EARLIEST, LATEST

    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    assert epoch + timedelta(microseconds=-(2**63) // 1000) < EARLIEST
    assert LATEST < epoch + timedelta(microseconds=(2**63 - 1) // 1000)

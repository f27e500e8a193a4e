"""The API's query parameters: windows, buckets and filters, checked before any store read."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from asynctelemetry.ui._params import ParamError, auto_bucket, parse_query

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("span", "bucket"),
    [
        pytest.param(timedelta(minutes=15), timedelta(seconds=10), id="15m"),
        pytest.param(timedelta(hours=1), timedelta(minutes=1), id="1h"),
        pytest.param(timedelta(hours=24), timedelta(minutes=15), id="24h"),
        pytest.param(timedelta(days=7), timedelta(hours=2), id="7d"),
        pytest.param(timedelta(days=366), timedelta(days=4), id="366d"),
    ],
)
def test_auto_bucket_is_round_and_at_most_96(span: timedelta, bucket: timedelta) -> None:
    """``bucket=auto`` picks a round width giving at most 96 bars."""
    assert auto_bucket(span) == bucket
    assert span / bucket <= 96


def test_window_ends_now_and_filters_map_to_store_keywords() -> None:
    """``window=24h`` is the day before now; ``session`` becomes ``session_id``."""
    query = parse_query(
        [("window", "24h"), ("session", "s1"), ("model", "<b>"), ("status", "error")], now=NOW
    )
    assert query.filters == {
        "since": NOW - timedelta(days=1),
        "until": NOW,
        "session_id": "s1",
        "model": "<b>",
        "status": "error",
    }
    assert query.echo()["window"] == "24h"


def test_custom_window_naive_means_utc() -> None:
    """``since``/``until`` without a zone are UTC; with one they are converted."""
    query = parse_query(
        [("since", "2026-01-01T00:00:00"), ("until", "2026-01-01T03:00:00+02:00")], now=NOW
    )
    assert query.since == datetime(2026, 1, 1, tzinfo=UTC)
    assert query.until == datetime(2026, 1, 1, 1, tzinfo=UTC)
    assert query.window == "custom"
    assert parse_query([("since", "2026-02-28T12:00:00Z")], now=NOW).until == NOW


def test_route_options_only_where_allowed() -> None:
    """A route's own parameter is refused on another route."""
    assert parse_query([("by", "provider")], allowed=("by",), now=NOW).option("by") == "provider"
    with pytest.raises(ParamError, match="unknown parameter 'by'"):
        parse_query([("by", "provider")], now=NOW)

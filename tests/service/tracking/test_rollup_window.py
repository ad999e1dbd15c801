"""How a window is split between hourly rollups, minute rollups and rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from service.tracking.rollups import (
    FAR_FUTURE,
    HOUR,
    MINUTE,
    ORIGIN,
    Window,
    ceil_to,
    floor_to,
    retention_horizon,
)

# hypothesis takes naive bounds and attaches the time zone itself.
moments = st.datetimes(
    min_value=datetime(2026, 1, 1),  # noqa: DTZ001
    max_value=datetime(2026, 1, 3),  # noqa: DTZ001
    timezones=st.just(UTC),
)


@given(since=moments, length=st.timedeltas(min_value=timedelta(microseconds=1), max_value=timedelta(days=2)))
def test_pieces_cover_the_window_once_in_order(since: datetime, length: timedelta) -> None:
    """since <= m1 <= h1 <= h2 <= m2 <= until: rows, minutes, hours, minutes, rows tile the window."""
    w = Window.of(since, since + length)
    assert w.since <= w.m1 <= w.h1 <= w.h2 <= w.m2 <= w.until
    assert (w.since, w.until) == (since, since + length)


@given(since=moments, length=st.timedeltas(min_value=timedelta(minutes=2), max_value=timedelta(days=2)))
def test_rollup_pieces_are_whole_buckets(since: datetime, length: timedelta) -> None:
    """Minute pieces start and end on whole minutes, hour pieces on whole hours."""
    w = Window.of(since, since + length)
    for bound in (w.m1, w.h1, w.h2, w.m2):
        assert floor_to(bound, MINUTE) == bound
    if w.h1 < w.h2:
        assert (floor_to(w.h1, HOUR), floor_to(w.h2, HOUR)) == (w.h1, w.h2)
    assert w.m1 - w.since < MINUTE


def test_an_open_end_is_read_in_whole_hours() -> None:
    """With no end (FAR_FUTURE) only the window's start has edges: every later hour is read whole."""
    since = datetime(2026, 1, 1, 10, 30, 15, tzinfo=UTC)
    w = Window.of(since, FAR_FUTURE)
    assert (w.m1, w.h1) == (datetime(2026, 1, 1, 10, 31, tzinfo=UTC), datetime(2026, 1, 1, 11, 0, tzinfo=UTC))
    assert w.h2 == w.m2 == w.until == FAR_FUTURE


def test_buckets_are_utc_minutes_and_hours() -> None:
    """Bucket bounds are whole UTC minutes and hours, as the database's date_bin from 2000-01-01 UTC."""
    at = datetime(2026, 3, 4, 5, 6, 7, 8, tzinfo=UTC)
    assert (floor_to(at, HOUR), ceil_to(at, MINUTE)) == (
        datetime(2026, 3, 4, 5, 0, tzinfo=UTC),
        datetime(2026, 3, 4, 5, 7, tzinfo=UTC),
    )
    assert floor_to(ORIGIN, HOUR) == ORIGIN


def test_retention_horizon_is_the_first_whole_hour_retention_left() -> None:
    """The horizon is the hour after now - days; no retention, no horizon."""
    now = datetime(2026, 3, 31, 12, 15, tzinfo=UTC)
    assert retention_horizon(30, now=now) == datetime(2026, 3, 1, 13, 0, tzinfo=UTC)
    assert retention_horizon(None, now=now) is None

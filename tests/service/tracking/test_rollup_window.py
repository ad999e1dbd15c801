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
lengths = st.timedeltas(min_value=timedelta(microseconds=1), max_value=timedelta(days=2))


def coverage(window: Window, at: datetime) -> int:
    """How many times the signed pieces count a row created at `at`."""
    return sum(sign for _, start, end, sign in window.pieces() if start <= at < end)


@given(
    since=moments,
    length=lengths,
    offset=st.timedeltas(min_value=timedelta(hours=-3), max_value=timedelta(days=3)),
)
def test_signed_pieces_count_every_moment_of_the_window_once(
    since: datetime, length: timedelta, offset: timedelta
) -> None:
    """A row is counted once if created in [since, until), never otherwise."""
    window = Window.of(since, since + length)
    at = since + offset
    assert coverage(window, at) == (1 if since <= at < since + length else 0)


@given(since=moments, length=lengths)
def test_window_edges_are_counted_exactly(since: datetime, length: timedelta) -> None:
    """The first and last microsecond of the window count once; the ones just outside, never."""
    window = Window.of(since, since + length)
    micro = timedelta(microseconds=1)
    assert [coverage(window, t) for t in (since - micro, since, since + length - micro, since + length)] == [
        0,
        1,
        1,
        0,
    ]


@given(since=moments, length=lengths)
def test_rollup_pieces_are_whole_buckets_and_row_pieces_short(since: datetime, length: timedelta) -> None:
    """Minute pieces are whole minutes, hour pieces whole hours, and row pieces span under two minutes."""
    window = Window.of(since, since + length)
    for source, start, end, _ in window.pieces():
        if start >= end:
            continue
        step = HOUR if source == "hours" else MINUTE if source == "minutes" else None
        if step is None:
            assert end - start < 2 * MINUTE
        else:
            assert (floor_to(start, step), floor_to(end, step)) == (start, end)


@given(since=moments)
def test_the_start_reads_at_most_half_an_hour_of_minutes(since: datetime) -> None:
    """The start's minutes are added up to the next hour or taken away from the previous one, whichever is fewer."""
    window = Window.of(since, FAR_FUTURE)
    assert window.lead_m2 - window.lead_m1 <= HOUR / 2


def test_an_open_end_is_read_in_whole_hours() -> None:
    """With no end (FAR_FUTURE) only the window's start has edges: every later hour is read whole."""
    window = Window.of(datetime(2026, 1, 1, 10, 40, 15, tzinfo=UTC), FAR_FUTURE)
    assert (window.h1, window.h2, window.m2) == (
        datetime(2026, 1, 1, 11, 0, tzinfo=UTC),
        FAR_FUTURE,
        FAR_FUTURE,
    )


def test_an_early_start_is_taken_away_from_its_hour() -> None:
    """At 10:10:15 the 10:00 hour is read whole, less 10:00-10:10 (minutes) and 10:10-10:10:15 (rows)."""
    window = Window.of(datetime(2026, 1, 1, 10, 10, 15, tzinfo=UTC), FAR_FUTURE)
    assert window.pieces()[:3] == [
        ("hours", datetime(2026, 1, 1, 10, 0, tzinfo=UTC), FAR_FUTURE, 1),
        ("minutes", datetime(2026, 1, 1, 10, 0, tzinfo=UTC), datetime(2026, 1, 1, 10, 10, tzinfo=UTC), -1),
        ("rows", datetime(2026, 1, 1, 10, 10, tzinfo=UTC), datetime(2026, 1, 1, 10, 10, 15, tzinfo=UTC), -1),
    ]


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

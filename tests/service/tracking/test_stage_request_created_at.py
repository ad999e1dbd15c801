"""Every stage row carries its request's created_at, however it was inserted."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import psycopg
import pytest

from service.db import migrate
from service.db.urls import libpq_dsn
from service.runtime import Runtime
from service.video_request import VideoRequest
from tests.support.pg import PgCluster

CREATED = datetime(2026, 3, 1, 12, 30, 15, 123456, tzinfo=UTC)
STAGE_DAYS = """
SELECT s.stage_name, s.request_created_at, s.updated_at, r.created_at
FROM request_stages s JOIN video_requests r ON r.id = s.request_id
WHERE s.request_id = %s ORDER BY s.stage_order
"""


def insert_request(conn: psycopg.Connection[tuple[object, ...]]) -> uuid.UUID:
    rid = uuid.uuid4()
    conn.execute(
        "INSERT INTO video_requests (id, correlation_id, user_id, prompt, created_at, updated_at)"
        " VALUES (%s, 'vvd_1772368215123_0000000a', 'u1', 'a fox', %s, %s)",
        (rid, CREATED, CREATED),
    )
    return rid


@pytest.fixture
def conn(database_url: str) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    with psycopg.connect(libpq_dsn(database_url), autocommit=True) as c:
        yield c


async def test_tracker_created_stages_carry_the_request_created_at(
    runtime: Runtime, database_url: str
) -> None:
    """The stages made with a request hold exactly that request's created_at."""
    created = await runtime.tracker.create_request(VideoRequest(user_id="u1", guild_id="g1", prompt="a cat"))
    with psycopg.connect(libpq_dsn(database_url)) as c:
        rows = c.execute(STAGE_DAYS, (created.id,)).fetchall()
    assert rows
    assert all(stage_at == request_at for _, stage_at, _, request_at in rows)


def test_an_insert_without_it_gets_it_from_the_request(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    """A stage inserted by hand, without request_created_at, gets its request's created_at."""
    rid = insert_request(conn)
    conn.execute(
        "INSERT INTO request_stages (request_id, stage_name, stage_order) VALUES (%s, 'validation', 1)",
        (rid,),
    )
    [(_, stage_at, _, _)] = conn.execute(STAGE_DAYS, (rid,)).fetchall()
    assert stage_at == CREATED


def test_a_stage_of_a_missing_request_is_a_foreign_key_violation(
    conn: psycopg.Connection[tuple[object, ...]],
) -> None:
    """A stage whose request does not exist fails on the foreign key, not on a NOT NULL column."""
    with pytest.raises(psycopg.errors.ForeignKeyViolation) as caught:
        conn.execute(
            "INSERT INTO request_stages (request_id, stage_name, stage_order) VALUES (%s, 'validation', 1)",
            (uuid.uuid4(),),
        )
    assert caught.value.diag.constraint_name == "fk_request_stages_request_id_video_requests"


def test_upgrade_fills_existing_stages_and_keeps_their_updated_at(pg_cluster: PgCluster) -> None:
    """Stages written before the column existed get their request's created_at; updated_at is untouched."""
    name = pg_cluster.new_database(from_template=False)
    try:
        url = pg_cluster.url(name)
        migrate.upgrade(url, "0004")
        stamped = datetime(2026, 3, 2, tzinfo=UTC)
        with psycopg.connect(libpq_dsn(url), autocommit=True) as c:
            rid = insert_request(c)
            c.execute(
                "INSERT INTO request_stages (request_id, stage_name, stage_order, updated_at)"
                " VALUES (%s, 'validation', 1, %s), (%s, 'video_generation', 2, %s)",
                (rid, stamped, rid, stamped),
            )
        migrate.upgrade(url)
        with psycopg.connect(libpq_dsn(url)) as c:
            rows = c.execute(STAGE_DAYS, (rid,)).fetchall()
        assert [(stage_at, updated) for _, stage_at, updated, _ in rows] == [(CREATED, stamped)] * 2
    finally:
        pg_cluster.drop_database(name)

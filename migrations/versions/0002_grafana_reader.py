"""A read-only role for Grafana's PostgreSQL datasource: `reeltrace_reader`.

The role may SELECT every table and view of the schema (and, through default
privileges, every table later migrations create there), except `api_keys`, which
holds key hashes no dashboard needs. A future table with secrets must REVOKE too.

Roles belong to the whole cluster, not to one database, so the role is created only
if it does not exist yet, and the downgrade drops it only when no other database of
the cluster still grants it anything; otherwise it just revokes this database's
privileges. The password is taken from `REELTRACE_READER_PASSWORD` when the
migration runs (and set again on every upgrade that sees it); without it the role has
no password and cannot log in with password authentication. If the migrating user
may not create roles, the role is skipped with a warning: create it as an
administrator first (`CREATE ROLE reeltrace_reader LOGIN PASSWORD '...'`), then
migrate, and the grants follow.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CREDENTIAL_ENV_VAR = "REELTRACE_READER_PASSWORD"
# DDL takes no bind parameters; the password travels in a transaction-local setting
# and the DO block quotes it with format(%L), so no quoting happens in Python.
TRANSIENT_SETTING = "reeltrace.reader_password"

UPGRADE = """
DO $$
DECLARE
    target_schema text := current_schema();
    password text := current_setting('reeltrace.reader_password', true);
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'reeltrace_reader') THEN
        IF NOT (SELECT rolsuper OR rolcreaterole FROM pg_roles WHERE rolname = current_user) THEN
            RAISE WARNING 'role reeltrace_reader not created: % may not create roles', current_user
                USING HINT = 'create it as an administrator, then grant SELECT as this migration does';
            RETURN;
        END IF;
        BEGIN
            CREATE ROLE reeltrace_reader LOGIN;
        EXCEPTION WHEN duplicate_object THEN
            NULL;  -- a migration of another database in this cluster created it meanwhile
        END;
    END IF;
    IF coalesce(password, '') <> '' THEN
        EXECUTE format('ALTER ROLE reeltrace_reader WITH LOGIN PASSWORD %L', password);
    END IF;
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO reeltrace_reader', current_database());
    EXECUTE format('GRANT USAGE ON SCHEMA %I TO reeltrace_reader', target_schema);
    EXECUTE format('GRANT SELECT ON ALL TABLES IN SCHEMA %I TO reeltrace_reader', target_schema);
    REVOKE ALL ON TABLE api_keys FROM reeltrace_reader;
    EXECUTE format('ALTER DEFAULT PRIVILEGES IN SCHEMA %I GRANT SELECT ON TABLES TO reeltrace_reader',
                   target_schema);
END
$$;
"""

DOWNGRADE = """
DO $$
DECLARE
    target_schema text := current_schema();
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'reeltrace_reader') THEN
        RETURN;
    END IF;
    EXECUTE format('ALTER DEFAULT PRIVILEGES IN SCHEMA %I REVOKE ALL ON TABLES FROM reeltrace_reader',
                   target_schema);
    EXECUTE format('REVOKE ALL ON ALL TABLES IN SCHEMA %I FROM reeltrace_reader', target_schema);
    EXECUTE format('REVOKE ALL ON SCHEMA %I FROM reeltrace_reader', target_schema);
    EXECUTE format('REVOKE ALL ON DATABASE %I FROM reeltrace_reader', current_database());
    BEGIN
        DROP ROLE reeltrace_reader;
    EXCEPTION
        WHEN dependent_objects_still_exist THEN
            RAISE NOTICE 'role reeltrace_reader kept: other databases of this cluster grant it privileges';
        WHEN insufficient_privilege THEN
            RAISE NOTICE 'role reeltrace_reader kept: % may not drop roles', current_user;
    END;
END
$$;
"""


def upgrade() -> None:
    password = os.environ.get(CREDENTIAL_ENV_VAR, "")
    op.execute(
        sa.text("SELECT set_config(:name, :password, true)").bindparams(
            name=TRANSIENT_SETTING, password=password
        )
    )
    op.execute(UPGRADE)
    op.execute(sa.text("SELECT set_config(:name, '', true)").bindparams(name=TRANSIENT_SETTING))


def downgrade() -> None:
    op.execute(DOWNGRADE)

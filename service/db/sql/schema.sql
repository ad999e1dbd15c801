-- The schema's migration state, as Alembic records it (service/db/revision.py).

-- name: has_version_table
SELECT to_regclass('alembic_version') IS NOT NULL AS present;

-- name: current_revision
SELECT max(version_num) AS revision FROM alembic_version;

"""${message}

Revision ID: ${up_revision}
Revises: ${down_revision | comma,n}
Create Date: ${create_date}
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
${imports if imports else ""}
from migrations.schema_functions import downgrade_functions, upgrade_functions

revision: str = ${repr(up_revision)}
down_revision: str | None = ${repr(down_revision)}
branch_labels: str | Sequence[str] | None = ${repr(branch_labels)}
depends_on: str | Sequence[str] | None = ${repr(depends_on)}


def upgrade() -> None:
    ${upgrades if upgrades else "pass"}
    # This revision's migrations/functions/<revision>.sql, if it has one.
    upgrade_functions(revision)


def downgrade() -> None:
    # The functions file before this revision's, if it has one.
    downgrade_functions(revision)
    ${downgrades if downgrades else "pass"}

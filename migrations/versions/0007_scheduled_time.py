"""scheduled_time: the time a task was submitted (or rescheduled) for, kept when it moves.

execution_time is when the next attempt is due: a retry's backoff, a requeue after a lost lease and
a redrive all move it. The first move copies the submitted time here; until then it is NULL and
equals execution_time, so an insert writes nothing more and existing rows need no rewrite.

Revision ID: 0007
Revises: 0006
"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE tasks ADD COLUMN scheduled_time timestamptz;")


def downgrade() -> None:
    op.execute("ALTER TABLE tasks DROP COLUMN scheduled_time;")

"""List a schedule's tasks: GET /task?schedule=NAME pages by (schedule, id).

Partial (only scheduled tasks have a schedule), so a one-off task's insert and every claim and
finish of one write no entry to it; a scheduled task's insert writes one.

Revision ID: 0010
Revises: 0009
"""

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "CREATE INDEX tasks_schedule_page_idx ON tasks (schedule, id) WHERE schedule IS NOT NULL"
    )


def downgrade() -> None:
    op.execute("DROP INDEX tasks_schedule_page_idx")

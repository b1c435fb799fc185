"""Statistics on (status, task_type) together, for estimated counts at millions of rows.

GET /stats counts each status exactly up to a bound through its partial index; beyond it, the
count by type is estimated from this MCV list (what ANALYZE found most common, with frequencies)
times the table's row estimate: no scan of the big finished set per request.

Revision ID: 0008
Revises: 0007
"""

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE STATISTICS tasks_status_type (mcv) ON status, task_type FROM tasks;")


def downgrade() -> None:
    op.execute("DROP STATISTICS tasks_status_type;")

"""List pages by status without an index entry for every claim and finish.

tasks_status_id_idx held every row under its status, so each claim, heartbeat and finish (all
change status or the lease) added an entry to it: a third of a task's index writes. The new
partial index holds only the states that have no other index to be found by: submitted (until
claimed), failed and deleted. Running rows are found through tasks_lease_idx and done ones along
the primary key or tasks_finished_idx. The drain gained 8% (docs/benchmarks.md).

Revision ID: 0004
Revises: 0003
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
    CREATE INDEX tasks_page_idx ON tasks (status, id)
        WHERE status IN ('submitted', 'failed', 'deleted');
    DROP INDEX tasks_status_id_idx;
    """)


def downgrade() -> None:
    op.execute("""
    CREATE INDEX tasks_status_id_idx ON tasks (status, id);
    DROP INDEX tasks_page_idx;
    """)

"""Retention: the pruner's index on finished rows, and autovacuum sized for a queue table.

Revision ID: 0003
Revises: 0002
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
    -- The pruner's scan: finished rows of one status, oldest first. Pending rows are not in it,
    -- so an insert pays nothing for it; a finish pays one entry (a finish is never a HOT update
    -- anyway: it changes status, which tasks_status_id_idx holds).
    CREATE INDEX tasks_finished_idx ON tasks (status, finished_at) WHERE finished_at IS NOT NULL;

    -- Every task is inserted, updated twice or more (claim, finish, heartbeats) and finally
    -- deleted by the pruner: the table makes dead rows at the rate tasks run. The default
    -- thresholds (20% of the table) let a table of millions pile up hundreds of thousands of dead
    -- rows, whose index entries the claim then steps over; vacuum it after 2% instead. See
    -- docs/operations.md.
    ALTER TABLE tasks SET (
        autovacuum_vacuum_scale_factor = 0.02,
        autovacuum_vacuum_threshold = 1000,
        autovacuum_vacuum_insert_scale_factor = 0.02,
        autovacuum_vacuum_insert_threshold = 1000,
        autovacuum_analyze_scale_factor = 0.02,
        autovacuum_analyze_threshold = 1000
    );
    """)


def downgrade() -> None:
    op.execute("""
    ALTER TABLE tasks RESET (
        autovacuum_vacuum_scale_factor, autovacuum_vacuum_threshold,
        autovacuum_vacuum_insert_scale_factor, autovacuum_vacuum_insert_threshold,
        autovacuum_analyze_scale_factor, autovacuum_analyze_threshold
    );
    DROP INDEX tasks_finished_idx;
    """)

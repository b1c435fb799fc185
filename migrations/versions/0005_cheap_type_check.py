"""The task_type CHECK without a bounded repetition: the same rule, 15 times cheaper.

PostgreSQL checks every CHECK constraint on every INSERT and UPDATE of a row, so a task pays for
them at its insert, its claim, each heartbeat and its finish. `~ '^[A-Za-z0-9_.:-]{1,100}$'` costs
about 13 µs a row here (the regex engine expands {1,100}); the same rule as `+` and a length
comparison costs under 1 µs. At three checks per task that was about 38 µs of the server's ~80 µs
per task in a drain, and a quarter of a bulk insert's.

Revision ID: 0005
Revises: 0004
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
    ALTER TABLE tasks
        DROP CONSTRAINT task_type_name,
        ADD CONSTRAINT task_type_name
            CHECK (length(task_type) BETWEEN 1 AND 100 AND task_type ~ '^[A-Za-z0-9_.:-]+$');
    """)


def downgrade() -> None:
    op.execute("""
    ALTER TABLE tasks
        DROP CONSTRAINT task_type_name,
        ADD CONSTRAINT task_type_name CHECK (task_type ~ '^[A-Za-z0-9_.:-]{1,100}$');
    """)

"""Idempotency keys of bulk submissions: one row per POST /tasks sent with an Idempotency-Key.

A single task keeps its key on its own row (tasks_idempotency_key_idx). A batch has many rows and
one key, so the key and the ids it made live here: a replay answers the same ids and writes
nothing. The pruner removes a key after retention_done_seconds, as it removes a done task.

Revision ID: 0006
Revises: 0005
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
    CREATE TABLE task_batches (
        idempotency_key text PRIMARY KEY,
        task_ids        uuid[] NOT NULL,
        created_at      timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT batch_key_length CHECK (length(idempotency_key) BETWEEN 1 AND 200)
    );
    -- The pruner's scan, oldest first.
    CREATE INDEX task_batches_created_idx ON task_batches (created_at);
    """)


def downgrade() -> None:
    op.execute("DROP TABLE task_batches;")

"""The tasks table, its status enum, the state machine's CHECKs and the claim's partial index.

Revision ID: 0001
Revises:
"""

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
    CREATE TYPE task_status AS ENUM
        ('submitted', 'started_executing', 'done', 'failed', 'deleted');

    CREATE TABLE tasks (
        id               uuid PRIMARY KEY,
        task_type        text NOT NULL,
        status           task_status NOT NULL DEFAULT 'submitted',
        execution_time   timestamptz NOT NULL,
        created_at       timestamptz NOT NULL DEFAULT now(),
        started_at       timestamptz,
        finished_at      timestamptz,
        attempts         integer NOT NULL DEFAULT 0,
        worker_id        text,
        lease_expires_at timestamptz,
        last_error       text,
        payload          jsonb NOT NULL DEFAULT '{}',
        result           jsonb,
        CONSTRAINT task_type_name CHECK (task_type ~ '^[A-Za-z0-9_.:-]{1,100}$'),
        CONSTRAINT payload_is_object CHECK (jsonb_typeof(payload) = 'object'),
        CONSTRAINT attempts_not_negative CHECK (attempts >= 0),
        CONSTRAINT finished_iff_terminal
            CHECK ((status IN ('done', 'failed', 'deleted')) = (finished_at IS NOT NULL)),
        CONSTRAINT executing_has_owner CHECK (
            status <> 'started_executing'
            OR (started_at IS NOT NULL AND worker_id IS NOT NULL AND attempts >= 1
                AND lease_expires_at IS NOT NULL)),
        CONSTRAINT ran_before_done
            CHECK (status <> 'done' OR (started_at IS NOT NULL AND attempts >= 1))
    );

    -- Drives the claim: only pending rows, in due order, so its cost stays flat however many
    -- finished or future rows the table holds.
    CREATE INDEX tasks_due_idx ON tasks (execution_time) WHERE status = 'submitted';
    -- Keyset pages of GET /task?status=...
    CREATE INDEX tasks_status_id_idx ON tasks (status, id);
    """)


def downgrade() -> None:
    op.execute("DROP TABLE tasks; DROP TYPE task_status;")

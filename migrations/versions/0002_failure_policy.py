"""Each task's failure policy on its row, why it failed, idempotency keys and the rescuer's index.

Revision ID: 0002
Revises: 0001
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
    -- The policy is fixed when the task is submitted (from the request, else its type's, else the
    -- settings), so every decision about it can be one guarded UPDATE in SQL.
    ALTER TABLE tasks
        ADD COLUMN max_attempts          integer NOT NULL DEFAULT 1,
        ADD COLUMN backoff               text NOT NULL DEFAULT 'exponential',
        ADD COLUMN backoff_base_seconds  float8 NOT NULL DEFAULT 1,
        ADD COLUMN backoff_cap_seconds   float8 NOT NULL DEFAULT 300,
        ADD COLUMN retry_on_loss         boolean NOT NULL DEFAULT false,
        ADD COLUMN timeout_seconds       float8 NOT NULL DEFAULT 300,
        ADD COLUMN error_reason          text,
        ADD COLUMN idempotency_key       text,
        ADD CONSTRAINT max_attempts_positive CHECK (max_attempts BETWEEN 1 AND 1000),
        ADD CONSTRAINT backoff_kind CHECK (backoff IN ('fixed', 'linear', 'exponential')),
        ADD CONSTRAINT backoff_seconds CHECK (
            backoff_base_seconds >= 0 AND backoff_cap_seconds >= backoff_base_seconds),
        ADD CONSTRAINT timeout_positive CHECK (timeout_seconds > 0),
        ADD CONSTRAINT error_reason_kind
            CHECK (error_reason IN ('error', 'timeout', 'lost', 'retry', 'fail')),
        ADD CONSTRAINT idempotency_key_length CHECK (length(idempotency_key) BETWEEN 1 AND 200);

    -- One task per key, whatever races; rows without a key cost the index nothing.
    CREATE UNIQUE INDEX tasks_idempotency_key_idx ON tasks (idempotency_key)
        WHERE idempotency_key IS NOT NULL;
    -- The rescuer's scan for expired leases, and a worker's look at its own running attempts:
    -- only running rows, a few per worker slot, however large the table.
    CREATE INDEX tasks_lease_idx ON tasks (lease_expires_at) WHERE status = 'started_executing';

    -- Seconds to wait before retry number `attempt` (1 = the first retry): fixed `base`; linear
    -- `base * attempt` or exponential `base * 2^(attempt-1)` with full jitter (a uniform draw from
    -- 0 to that) so that tasks failing together do not retry together; never more than `cap`.
    CREATE FUNCTION task_backoff(kind text, base float8, cap float8, attempt integer)
    RETURNS float8 LANGUAGE sql VOLATILE AS $$
        SELECT CASE kind
            WHEN 'fixed' THEN least(cap, base)
            WHEN 'linear' THEN random() * least(cap, base * attempt)
            ELSE random() * least(cap, base * power(2::float8, least(attempt - 1, 60)))
        END
    $$;
    """)


def downgrade() -> None:
    op.execute("""
    DROP FUNCTION task_backoff(text, float8, float8, integer);
    DROP INDEX tasks_lease_idx;
    DROP INDEX tasks_idempotency_key_idx;
    ALTER TABLE tasks
        DROP COLUMN max_attempts, DROP COLUMN backoff, DROP COLUMN backoff_base_seconds,
        DROP COLUMN backoff_cap_seconds, DROP COLUMN retry_on_loss, DROP COLUMN timeout_seconds,
        DROP COLUMN error_reason, DROP COLUMN idempotency_key;
    """)

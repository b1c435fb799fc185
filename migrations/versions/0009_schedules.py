"""Recurring schedules: the schedules table, and the occurrence each scheduled task stands for.

A schedule holds its cadence (cron in a zone, or an interval), its task (type, payload and a
failure policy resolved when it was written), and `next_at`: the next occurrence not yet made a
task. Every worker's scheduler takes schedules whose next_at falls within its horizon with SKIP
LOCKED and a lease (no leader, no state in a process), inserts their occurrences and moves
next_at on. The unique (schedule, occurrence) index makes each occurrence one task however many
schedulers race for it.

Revision ID: 0009
Revises: 0008
"""

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
        CREATE TABLE schedules (
            name text PRIMARY KEY,
            task_type text NOT NULL,
            payload jsonb NOT NULL DEFAULT '{}',
            cron text,
            interval_seconds double precision,
            timezone text NOT NULL DEFAULT 'UTC',
            start_at timestamptz,
            end_at timestamptz,
            enabled boolean NOT NULL DEFAULT true,
            overlap text NOT NULL DEFAULT 'allow',
            catch_up text NOT NULL DEFAULT 'latest',
            catch_up_limit integer NOT NULL DEFAULT 100,
            max_attempts integer NOT NULL,
            backoff text NOT NULL,
            backoff_base_seconds double precision NOT NULL,
            backoff_cap_seconds double precision NOT NULL,
            retry_on_loss boolean NOT NULL,
            timeout_seconds double precision NOT NULL,
            anchor timestamptz NOT NULL DEFAULT now(),
            next_at timestamptz,
            lease_until timestamptz,
            created_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now(),
            CONSTRAINT schedule_name CHECK (name ~ '^[A-Za-z0-9_.:-]+$' AND length(name) <= 200),
            CONSTRAINT schedule_cadence CHECK ((cron IS NULL) <> (interval_seconds IS NULL)),
            CONSTRAINT schedule_interval CHECK (interval_seconds >= 1),
            CONSTRAINT schedule_window CHECK (end_at >= start_at),
            CONSTRAINT schedule_overlap CHECK (overlap IN ('allow', 'skip')),
            CONSTRAINT schedule_catch_up CHECK (catch_up IN ('latest', 'all', 'none')),
            CONSTRAINT schedule_catch_up_limit CHECK (catch_up_limit BETWEEN 1 AND 1000),
            CONSTRAINT schedule_payload CHECK (jsonb_typeof(payload) = 'object')
        );
        -- What the schedulers look for: enabled schedules by their next occurrence.
        CREATE INDEX schedules_next_idx ON schedules (next_at)
            WHERE enabled AND next_at IS NOT NULL;
        ALTER TABLE tasks ADD COLUMN schedule text, ADD COLUMN occurrence timestamptz;
        ALTER TABLE tasks ADD CONSTRAINT occurrence_has_schedule
            CHECK ((schedule IS NULL) = (occurrence IS NULL));
        CREATE UNIQUE INDEX tasks_occurrence_idx ON tasks (schedule, occurrence)
            WHERE schedule IS NOT NULL;
    """)


def downgrade() -> None:
    op.execute("""
        DROP INDEX tasks_occurrence_idx;
        ALTER TABLE tasks DROP CONSTRAINT occurrence_has_schedule;
        ALTER TABLE tasks DROP COLUMN occurrence, DROP COLUMN schedule;
        DROP TABLE schedules;
    """)

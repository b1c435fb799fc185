-- name: schedule_take_due
-- Takes up to $1 enabled schedules whose next occurrence falls within $2 seconds of $4
-- timestamptz now (NULL: the database's clock), leasing each for $3 seconds: schedulers on any
-- number of workers share them out with SKIP LOCKED, and a scheduler that dies mid-pass leaves
-- its schedules to the next one once the lease runs out. Returns each schedule with the lease
-- (the fence of schedule_materialize) and the database's now.
WITH due AS (
    SELECT name
    FROM schedules
    WHERE enabled AND next_at IS NOT NULL
        AND next_at <= coalesce($4::timestamptz, now()) + make_interval(secs => $2)
        AND (lease_until IS NULL OR lease_until < coalesce($4::timestamptz, now()))
    ORDER BY next_at
    LIMIT $1
    FOR UPDATE SKIP LOCKED
)
UPDATE schedules AS s
SET lease_until = coalesce($4::timestamptz, now()) + make_interval(secs => $3)
WHERE s.name = ANY(ARRAY(SELECT name FROM due))
RETURNING s.*, coalesce($4::timestamptz, now()) AS db_now;

-- name: schedule_materialize
-- Makes tasks of schedule $1's occurrences $3 timestamptz[] (ids $4 uuid[]), each due at its
-- occurrence, with the schedule's payload and policy, and moves next_at to $5 (NULL: no more),
-- releasing the lease: all fenced by the lease $2 the scheduler took (a scheduler whose lease
-- ran out writes nothing). ON CONFLICT makes an occurrence one task however many schedulers
-- race. With overlap 'skip', nothing is made while the schedule's latest occurrence is still
-- submitted or running (the occurrences are skipped; next_at still moves). Returns how many
-- were made, whether the schedule moved, and the seconds until the earliest made one is due.
WITH s AS (
    -- Locked: a DELETE of the schedule waits for this pass, or this pass finds no schedule.
    SELECT * FROM schedules WHERE name = $1 AND lease_until = $2 FOR UPDATE
), busy AS (
    SELECT status IN ('submitted', 'started_executing') AS yes
    FROM tasks
    WHERE schedule = $1
    ORDER BY occurrence DESC
    LIMIT 1
), made AS (
    INSERT INTO tasks (id, task_type, execution_time, payload, max_attempts, backoff,
        backoff_base_seconds, backoff_cap_seconds, retry_on_loss, timeout_seconds,
        schedule, occurrence)
    SELECT o.id, s.task_type, o.at, s.payload, s.max_attempts, s.backoff,
        s.backoff_base_seconds, s.backoff_cap_seconds, s.retry_on_loss, s.timeout_seconds,
        s.name, o.at
    FROM s, unnest($4::uuid[], $3::timestamptz[]) AS o(id, at)
    WHERE NOT (s.overlap = 'skip' AND coalesce((SELECT yes FROM busy), false))
    ON CONFLICT (schedule, occurrence) WHERE schedule IS NOT NULL DO NOTHING
    RETURNING execution_time
), moved AS (
    UPDATE schedules
    SET next_at = $5, lease_until = NULL
    WHERE name = $1 AND lease_until = $2
    RETURNING name
)
SELECT (SELECT count(*) FROM made)::int AS made,
    (SELECT count(*) FROM moved)::int AS moved,
    (SELECT extract(epoch FROM min(execution_time) - now())::float8 FROM made) AS due_in;

-- name: schedule_insert
-- A new schedule: $1 name, $2 task type, $3 payload (JSON text), $4 cron or NULL, $5 interval
-- seconds or NULL, $6 time zone, $7 start_at, $8 end_at, $9 enabled, $10 overlap, $11 catch_up,
-- $12 catch_up_limit; the resolved failure policy: $13 max_attempts, $14 backoff, $15 base
-- seconds, $16 cap seconds, $17 retry_on_loss, $18 timeout seconds; $19 anchor (intervals count
-- from it), $20 next_at. Returns the row, or nothing if the name is taken.
INSERT INTO schedules (name, task_type, payload, cron, interval_seconds, timezone, start_at, end_at,
    enabled, overlap, catch_up, catch_up_limit, max_attempts, backoff, backoff_base_seconds,
    backoff_cap_seconds, retry_on_loss, timeout_seconds, anchor, next_at)
VALUES ($1, $2, $3::jsonb, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18,
    $19, $20)
ON CONFLICT (name) DO NOTHING
RETURNING *;

-- name: schedule_get
-- One schedule by $1 name.
SELECT * FROM schedules WHERE name = $1;

-- name: schedule_list
-- A keyset page of schedules in name order: $1 text cursor (the last name of the previous page)
-- or NULL, $2 int page size.
SELECT * FROM schedules WHERE ($1::text IS NULL OR name > $1) ORDER BY name LIMIT $2;

-- name: schedule_delete
-- Removes schedule $1 name (waiting for a scheduler pass that holds it): no occurrence of it is
-- made after this commits. Returns the name, or nothing if there was none.
DELETE FROM schedules WHERE name = $1 RETURNING name;

-- name: schedule_delete_occurrences
-- Deletes the occurrences of schedule $1 name still submitted, each as DELETE /task does (a
-- guarded UPDATE: none of them starts). Run after schedule_delete, in a new snapshot, so that it
-- sees every occurrence a pass made before the schedule went. Returns how many.
WITH gone AS (
    UPDATE tasks SET status = 'deleted', finished_at = now()
    WHERE schedule = $1 AND status = 'submitted'
    RETURNING 1
)
SELECT count(*)::int FROM gone;

-- name: schedule_set_enabled
-- Pauses ($2 false) or resumes ($2 true) schedule $1 name. The lease is cleared, so a pass in
-- flight writes nothing (its fence fails). A resumed schedule's next_at is where the pause left
-- it: the occurrences missed meanwhile are caught up as its catch_up says. Returns the row.
UPDATE schedules
SET enabled = $2, lease_until = NULL, updated_at = now()
WHERE name = $1
RETURNING *;

-- name: schedule_trigger
-- One task of schedule $1 name due now, outside its cadence, with id $2 uuid (its occurrence is
-- now). Returns the task's id, or nothing if there is no such schedule.
INSERT INTO tasks (id, task_type, execution_time, payload, max_attempts, backoff,
    backoff_base_seconds, backoff_cap_seconds, retry_on_loss, timeout_seconds, schedule,
    occurrence)
SELECT $2, task_type, now(), payload, max_attempts, backoff, backoff_base_seconds,
    backoff_cap_seconds, retry_on_loss, timeout_seconds, name, now()
FROM schedules
WHERE name = $1
RETURNING id;

-- name: schedule_lock
-- Schedule $1 name, locked until the transaction ends (a scheduler's materialize of it waits,
-- then finds its lease gone), with the database's now and the latest occurrence made a task.
SELECT s.*, now() AS db_now,
    (SELECT max(occurrence) FROM tasks WHERE schedule = $1) AS last_made
FROM schedules AS s
WHERE s.name = $1
FOR UPDATE;

-- name: schedule_update
-- Rewrites schedule $1 name, the values in schedule_insert's order: $2 task type, $3 payload,
-- $4 cron, $5 interval seconds, $6 time zone, $7 start_at, $8 end_at, $9 enabled, $10 overlap,
-- $11 catch_up, $12 catch_up_limit, $13 max_attempts, $14 backoff, $15 base seconds, $16 cap
-- seconds, $17 retry_on_loss, $18 timeout seconds, $19 anchor, $20 next_at; and clears the
-- lease, so a pass in flight writes nothing. Returns the row.
UPDATE schedules
SET task_type = $2, payload = $3::jsonb, cron = $4, interval_seconds = $5, timezone = $6,
    start_at = $7, end_at = $8, enabled = $9, overlap = $10, catch_up = $11, catch_up_limit = $12,
    max_attempts = $13, backoff = $14, backoff_base_seconds = $15, backoff_cap_seconds = $16,
    retry_on_loss = $17, timeout_seconds = $18, anchor = $19, next_at = $20, lease_until = NULL,
    updated_at = now()
WHERE name = $1
RETURNING *;

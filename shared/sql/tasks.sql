-- Every query duetime runs on the tasks table. One named block per query: `-- name:` then a line
-- saying what it does and what each $n is. A parameter called `now` pins the clock in tests; NULL
-- (always, in production) means the database's clock, never the app's.

-- name: task_insert_many
-- Inserts a batch of tasks. Returns the seconds from now (the database's clock) to the batch's
-- earliest execution_time, which the API uses to decide whether to wake the workers.
-- $1 uuid[] ids, $2 text[] task types, $3 timestamptz[] execution times, $4 text[] payloads (JSON
-- objects).
WITH ins AS (
    INSERT INTO tasks (id, task_type, execution_time, payload)
    SELECT id, task_type, execution_time, payload::jsonb
    FROM unnest($1::uuid[], $2::text[], $3::timestamptz[], $4::text[])
        AS n(id, task_type, execution_time, payload)
    RETURNING execution_time
)
SELECT extract(epoch FROM min(execution_time) - now())::float8 AS due_in FROM ins;

-- name: task_notify_due
-- Wakes the workers: some task is due in $1 text seconds (a float, 0 when due now). Sent after the
-- insert committed, at most once per few ms per API process: a NOTIFY takes a database-wide lock
-- at commit, so one per insert would serialise them.
SELECT pg_notify('duetime_due', $1);

-- name: task_claim_due
-- Claims up to $1 due submitted tasks, oldest due first, for worker $2 with a lease of $3 seconds,
-- of the task types in $4 text[] (those it has handlers for). $5 timestamptz now (NULL: the
-- database's clock). SKIP LOCKED lets any number of workers claim side by side; the partial index
-- tasks_due_idx drives the scan whatever the statistics say.
-- Returns the claimed rows, then one row with id NULL whose next_due_in is the seconds to the
-- earliest task not yet due (NULL if none): the worker sleeps that long. Due rows it skipped are
-- held by another worker's claim and are that worker's to run.
WITH due AS (
    SELECT id
    FROM tasks
    WHERE status = 'submitted'
        AND execution_time <= coalesce($5::timestamptz, now())
        AND task_type = ANY($4::text[])
    ORDER BY execution_time
    LIMIT $1
    FOR UPDATE SKIP LOCKED
), claimed AS (
    UPDATE tasks AS t
    SET status = 'started_executing',
        attempts = t.attempts + 1,
        started_at = coalesce($5::timestamptz, now()),
        worker_id = $2,
        lease_expires_at = coalesce($5::timestamptz, now()) + make_interval(secs => $3)
    FROM due
    WHERE t.id = due.id AND t.status = 'submitted'
    RETURNING t.id, t.task_type, t.attempts, t.execution_time, t.payload
)
SELECT id, task_type, attempts, execution_time, payload, NULL::float8 AS next_due_in
FROM claimed
UNION ALL
SELECT NULL, NULL, NULL, NULL, NULL, (
    SELECT extract(epoch FROM min(execution_time) - coalesce($5::timestamptz, now()))::float8
    FROM tasks
    WHERE status = 'submitted'
        AND execution_time > coalesce($5::timestamptz, now())
        AND task_type = ANY($4::text[])
);

-- name: task_complete_many
-- Finishes a batch of attempts, each fenced by its attempt number so a stale worker can never
-- overwrite a newer attempt. $1 uuid[] ids, $2 int[] attempts, $3 text[] statuses ('done' or
-- 'failed'), $4 text[] results (JSON or NULL), $5 text[] errors (or NULL). Returns the ids written.
UPDATE tasks AS t
SET status = c.status::task_status,
    finished_at = now(),
    lease_expires_at = NULL,
    result = c.result::jsonb,
    last_error = c.error
FROM unnest($1::uuid[], $2::int[], $3::text[], $4::text[], $5::text[])
    AS c(id, attempt, status, result, error)
WHERE t.id = c.id AND t.status = 'started_executing' AND t.attempts = c.attempt
RETURNING t.id;

-- name: task_get
-- One task by id. $1 uuid id.
SELECT * FROM tasks WHERE id = $1;

-- name: task_list
-- A keyset page of tasks in id (creation) order. $1 text task type or NULL for all, $2 uuid
-- cursor (the last id of the previous page) or NULL, $3 int page size.
SELECT *
FROM tasks
WHERE ($1::text IS NULL OR task_type = $1) AND ($2::uuid IS NULL OR id > $2)
ORDER BY id
LIMIT $3;

-- name: task_list_by_status
-- A keyset page of tasks in one status, in id order, through tasks_status_id_idx. $1 task_status,
-- $2 text task type or NULL for all, $3 uuid cursor or NULL, $4 int page size.
SELECT *
FROM tasks
WHERE status = $1::task_status
    AND ($2::text IS NULL OR task_type = $2)
    AND ($3::uuid IS NULL OR id > $3)
ORDER BY status, id
LIMIT $4;

-- name: task_delete_submitted
-- Deletes a task only while it is submitted: once this commits the task can never start. A claim
-- holding the row makes this wait and then re-check the status. $1 uuid id. Returns the row.
UPDATE tasks
SET status = 'deleted', finished_at = now()
WHERE id = $1 AND status = 'submitted'
RETURNING *;

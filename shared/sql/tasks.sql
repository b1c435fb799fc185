-- Every query duetime runs on the tasks table. One named block per query: `-- name:` then a line
-- saying what it does and what each $n is. A parameter called `now` pins the clock in tests; NULL
-- (always, in production) means the database's clock, never the app's.

-- name: task_insert_many
-- Inserts a batch of tasks, each with its failure policy, and, when $12 is a key, records the
-- batch's ids under that key in the same statement, unless the key is taken: then nothing is
-- written (a concurrent batch with the same key waits for the other to commit, then yields).
-- Returns `created` (false: the key was taken, task_batch_get_by_key has its ids) and the seconds
-- from now (the database's clock) to the batch's earliest execution_time, which the API uses to
-- decide whether to wake the workers.
-- $1 uuid[] ids, $2 text[] task types, $3 timestamptz[] execution times, $4 text[] payloads (JSON
-- objects), $5 int[] each task's policy: its number (from 1) in the policy arrays that follow,
-- which hold each distinct policy once: $6 int[] max_attempts, $7 text[] backoff kinds,
-- $8 float8[] backoff base seconds, $9 float8[] backoff cap seconds, $10 bool[] retry_on_loss,
-- $11 float8[] timeout seconds, $12 text the batch's idempotency key or NULL, $13 float8[] the
-- delays of the tasks whose execution time is NULL (due that many seconds after the database's
-- now), or NULL when every task has one (unnest pads it out with NULLs).
WITH batch AS (
    INSERT INTO task_batches (idempotency_key, task_ids)
    SELECT $12::text, $1::uuid[] WHERE $12::text IS NOT NULL
    ON CONFLICT (idempotency_key) DO NOTHING
    RETURNING 1
), ins AS (
    INSERT INTO tasks (
        id, task_type, execution_time, payload, max_attempts, backoff, backoff_base_seconds,
        backoff_cap_seconds, retry_on_loss, timeout_seconds
    )
    SELECT n.id, n.task_type, coalesce(n.execution_time, now() + make_interval(secs => n.delay)),
        n.payload::jsonb, p.max_attempts, p.backoff, p.base, p.cap, p.retry_on_loss, p.timeout
    FROM unnest($1::uuid[], $2::text[], $3::timestamptz[], $4::text[], $5::int[], $13::float8[])
        AS n(id, task_type, execution_time, payload, policy, delay)
    -- LEFT: a task whose number names no policy fails the batch (NOT NULL), never goes missing.
    LEFT JOIN unnest(
        $6::int[], $7::text[], $8::float8[], $9::float8[], $10::bool[], $11::float8[]
    ) WITH ORDINALITY AS p(max_attempts, backoff, base, cap, retry_on_loss, timeout, policy)
        USING (policy)
    WHERE $12::text IS NULL OR EXISTS (SELECT FROM batch)
    RETURNING execution_time
)
SELECT $12::text IS NULL OR EXISTS (SELECT FROM batch) AS created,
    (SELECT extract(epoch FROM min(execution_time) - now())::float8 FROM ins) AS due_in;

-- name: task_batch_get_by_key
-- The ids of the batch submitted under an idempotency key, in request order. $1 text key.
SELECT task_ids FROM task_batches WHERE idempotency_key = $1;

-- name: task_insert_keyed
-- Inserts one task under an idempotency key unless a task with that key exists (a concurrent
-- insert of the same key waits for the other to commit, then yields). Returns the seconds to its
-- execution_time, or no row if the key was taken: then task_get_by_key finds the task.
-- $1 uuid id, $2 text task type, $3 timestamptz execution time, $4 text payload, $5 int
-- max_attempts, $6 text backoff kind, $7 float8 backoff base, $8 float8 backoff cap, $9 bool
-- retry_on_loss, $10 float8 timeout seconds, $11 text idempotency key, $12 float8 the delay
-- from the database's now when $3 is NULL.
INSERT INTO tasks (
    id, task_type, execution_time, payload, max_attempts, backoff, backoff_base_seconds,
    backoff_cap_seconds, retry_on_loss, timeout_seconds, idempotency_key
)
VALUES ($1, $2, coalesce($3, now() + make_interval(secs => $12)), $4::jsonb, $5, $6, $7, $8, $9,
    $10, $11)
ON CONFLICT (idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
RETURNING extract(epoch FROM execution_time - now())::float8 AS due_in;

-- name: task_get_by_key
-- The task submitted under an idempotency key. $1 text key.
SELECT * FROM tasks WHERE idempotency_key = $1;

-- name: task_notify_due
-- Wakes the workers: some task is due in $1 text seconds (a float, 0 when due now). Sent after the
-- insert committed, at most once per few ms per API process: a NOTIFY takes a database-wide lock
-- at commit, so one per insert would serialise them.
SELECT pg_notify('duetime_due', $1);

-- name: task_claim_due
-- Claims up to $1 due submitted tasks, oldest due first, for $2 (the worker's id for this claim,
-- `worker#n`: see task_hand_back_claims) with a lease of $3 seconds,
-- of the task types in $4 text[] (those it has handlers for). $5 timestamptz now (NULL: the
-- database's clock). SKIP LOCKED lets any number of workers claim side by side; the partial index
-- tasks_due_idx drives the scan whatever the statistics say. The UPDATE takes the ids as an array,
-- not a join: a generic plan guesses LIMIT $1 at a tenth of the due rows and would hash-join a
-- sequential scan of the whole table (0.26 s a claim at 350,000 rows); an array is looked up by
-- index in any plan. The rescue and the prune below do the same.
-- Returns the claimed rows (with the attempt's timeout), then one row with id NULL whose
-- next_due_in is the seconds to the earliest task not yet due (NULL if none): the worker sleeps
-- that long. Due rows it skipped are
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
    WHERE t.id = ANY(ARRAY(SELECT id FROM due)) AND t.status = 'submitted'
    RETURNING t.id, t.task_type, t.attempts, t.execution_time, t.payload, t.timeout_seconds
)
SELECT id, task_type, attempts, execution_time, payload, timeout_seconds,
    NULL::float8 AS next_due_in
FROM claimed
UNION ALL
SELECT NULL, NULL, NULL, NULL, NULL, NULL, (
    SELECT extract(epoch FROM min(execution_time) - coalesce($5::timestamptz, now()))::float8
    FROM tasks
    WHERE status = 'submitted'
        AND execution_time > coalesce($5::timestamptz, now())
        AND task_type = ANY($4::text[])
);

-- name: task_finish_many
-- Ends a batch of attempts, each fenced by its attempt number so a worker that lost its lease can
-- never overwrite what the rescuer decided or what a newer attempt does. An outcome is 'done';
-- 'retry' (back to submitted, due after the given delay or the task's backoff, if it has attempts
-- left; else failed); or 'fail' (failed whatever attempts are left). The error and its reason are
-- kept for the next attempt to see, and cleared by an attempt that is done; the first retry keeps
-- the submitted time in scheduled_time. Returns the ids written and the status each got.
-- The fence compares status as text so that no partial index on running rows can drive the
-- statement: ANALYZE rarely sees a running row, and a plan that scans tasks_lease_idx (guessed at
-- one row) and re-reads the whole batch for each row it finds costs running rows × batch, seconds
-- under load. As text, the batch drives the plan through the primary key. The heartbeat does the
-- same.
-- $1 uuid[] ids, $2 int[] attempts, $3 text[] outcomes, $4 text[] results (JSON or NULL),
-- $5 text[] errors (or NULL), $6 text[] reasons (error_reason or NULL), $7 float8[] retry delays
-- in seconds (NULL: the task's backoff).
UPDATE tasks AS t
SET status = (CASE
        WHEN c.outcome = 'done' THEN 'done'
        WHEN c.outcome = 'retry' AND t.attempts < t.max_attempts THEN 'submitted'
        ELSE 'failed'
    END)::task_status,
    execution_time = CASE
        WHEN c.outcome = 'retry' AND t.attempts < t.max_attempts THEN now() + make_interval(
            secs => coalesce(c.retry_in, task_backoff(
                t.backoff, t.backoff_base_seconds, t.backoff_cap_seconds, t.attempts)))
        ELSE t.execution_time
    END,
    scheduled_time = coalesce(t.scheduled_time, t.execution_time),
    finished_at = CASE
        WHEN c.outcome = 'retry' AND t.attempts < t.max_attempts THEN NULL
        ELSE now()
    END,
    lease_expires_at = NULL,
    result = c.result::jsonb,
    -- The error of the latest attempt that failed; an attempt that succeeds clears it.
    last_error = CASE WHEN c.outcome = 'done' THEN NULL ELSE coalesce(c.error, t.last_error) END,
    error_reason = CASE WHEN c.outcome = 'done' THEN NULL ELSE coalesce(c.reason, t.error_reason) END
FROM unnest($1::uuid[], $2::int[], $3::text[], $4::text[], $5::text[], $6::text[], $7::float8[])
    AS c(id, attempt, outcome, result, error, reason, retry_in)
WHERE t.id = c.id AND t.status::text = 'started_executing' AND t.attempts = c.attempt
RETURNING t.id, t.status;

-- name: task_heartbeat_many
-- Renews the leases of the attempts worker $3 is running, by $4 seconds from now: rows recorded
-- under its id or one of its claims' (`$3#n`, see task_hand_back_claims). $1 uuid[] ids,
-- $2 int[] attempts. Fenced like a completion: returns the ids still held; an attempt missing
-- from the answer was resolved by the rescuer (its lease had expired) and must be abandoned.
-- The worker is checked in the SET and the answer, not the WHERE: ANALYZE has rarely seen a
-- worker's id, so a WHERE on it is guessed at one row and drives the plan through the running
-- rows, re-reading the batch for each (see task_finish_many).
WITH beat AS (
    UPDATE tasks AS t
    SET lease_expires_at = CASE
        WHEN t.worker_id = $3 OR starts_with(t.worker_id, $3 || '#')
        THEN now() + make_interval(secs => $4)
        ELSE t.lease_expires_at
    END
    FROM unnest($1::uuid[], $2::int[]) AS h(id, attempt)
    WHERE t.id = h.id AND t.status::text = 'started_executing' AND t.attempts = h.attempt
    RETURNING t.id, t.worker_id
)
SELECT id FROM beat WHERE worker_id = $3 OR starts_with(worker_id, $3 || '#');

-- name: task_rescue_expired
-- Resolves up to $1 attempts whose lease expired before $2 timestamptz now (NULL: the database's
-- clock): their worker stopped renewing them (killed, paused, cut off). Each becomes failed with
-- reason 'lost', or, if the task allows retry on loss and has attempts left, submitted again
-- after its backoff. Any number of workers run this side by side: SKIP LOCKED shares the rows out
-- and the UPDATE re-checks the lease, so a heartbeat that won the race keeps its attempt.
-- Returns each resolved id, its new status, attempt, the worker that lost it and the seconds
-- until it is due again.
WITH expired AS (
    SELECT id
    FROM tasks
    WHERE status = 'started_executing' AND lease_expires_at < coalesce($2::timestamptz, now())
    ORDER BY lease_expires_at
    LIMIT $1
    FOR UPDATE SKIP LOCKED
)
UPDATE tasks AS t
SET status = (CASE
        WHEN t.retry_on_loss AND t.attempts < t.max_attempts THEN 'submitted'
        ELSE 'failed'
    END)::task_status,
    execution_time = CASE
        WHEN t.retry_on_loss AND t.attempts < t.max_attempts
        THEN coalesce($2::timestamptz, now()) + make_interval(secs => task_backoff(
            t.backoff, t.backoff_base_seconds, t.backoff_cap_seconds, t.attempts))
        ELSE t.execution_time
    END,
    scheduled_time = coalesce(t.scheduled_time, t.execution_time),
    finished_at = CASE
        WHEN t.retry_on_loss AND t.attempts < t.max_attempts THEN NULL
        ELSE coalesce($2::timestamptz, now())
    END,
    lease_expires_at = NULL,
    last_error = 'lease expired: worker ' || t.worker_id || ' stopped renewing it',
    error_reason = 'lost'
WHERE t.id = ANY(ARRAY(SELECT id FROM expired)) AND t.status = 'started_executing'
    AND t.lease_expires_at < coalesce($2::timestamptz, now())
RETURNING t.id, t.status, t.attempts, t.worker_id,
    extract(epoch FROM t.execution_time - coalesce($2::timestamptz, now()))::float8 AS due_in;

-- name: task_hand_back
-- At a worker's exit, gives back every attempt recorded under worker $1 (or one of its claims,
-- `$1#n`) that it is not running, listed in $2 uuid[] (running, or finished with the result not
-- yet written): claims whose rows never reached it, or that it released at shutdown. They were
-- never started, so they return to submitted and the attempt is not counted. Returns the ids.
UPDATE tasks
SET status = 'submitted',
    attempts = attempts - 1,
    started_at = CASE WHEN attempts = 1 THEN NULL ELSE started_at END,
    lease_expires_at = NULL
WHERE status = 'started_executing' AND (worker_id = $1 OR starts_with(worker_id, $1 || '#'))
    AND NOT id = ANY($2::uuid[])
RETURNING id;

-- name: task_hand_back_claims
-- Gives back the rows of claims whose answer never reached their worker, $1 text[] of claim ids
-- (each claim records its own worker id, `worker#n`): a claim that failed or passed its deadline
-- may still commit later, when its statement, held up on the way, reaches the server. No attempt
-- of such a claim was started, and none of its ids is ever used again for a claim, so whatever
-- is recorded under them returns to submitted uncounted, whenever it landed. Returns the ids.
UPDATE tasks
SET status = 'submitted',
    attempts = attempts - 1,
    started_at = CASE WHEN attempts = 1 THEN NULL ELSE started_at END,
    lease_expires_at = NULL
WHERE status = 'started_executing' AND worker_id = ANY($1::text[])
RETURNING id;

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
-- A keyset page of tasks in one status, in id order. {status} is a TaskStatus value that
-- queries.list_tasks writes into the text (never a request's text): each status has its own
-- prepared statement, whose plans, generic ones too, can use the partial tasks_page_idx
-- (submitted, failed, deleted), which a $n status could not be proven to match. Running rows come
-- through tasks_lease_idx, done ones along the primary key or tasks_finished_idx.
-- $1 text task type or NULL for all, $2 uuid cursor or NULL, $3 int page size.
SELECT *
FROM tasks
WHERE status = '{status}'
    AND ($1::text IS NULL OR task_type = $1)
    AND ($2::uuid IS NULL OR id > $2)
ORDER BY id
LIMIT $3;

-- name: task_list_by_schedule
-- A keyset page of schedule $1 text name's tasks, in id order, through tasks_schedule_page_idx.
-- $2 text status or NULL for all, $3 text task type or NULL, $4 uuid cursor or NULL, $5 int page
-- size.
SELECT *
FROM tasks
WHERE schedule = $1
    AND ($2::task_status IS NULL OR status = $2::task_status)
    AND ($3::text IS NULL OR task_type = $3)
    AND ($4::uuid IS NULL OR id > $4)
ORDER BY schedule, id
LIMIT $5;

-- name: task_delete_submitted
-- Deletes a task only while it is submitted: once this commits the task can never start. A claim
-- holding the row makes this wait and then re-check the status. $1 uuid id. Returns the row.
UPDATE tasks
SET status = 'deleted', finished_at = now()
WHERE id = $1 AND status = 'submitted'
RETURNING *;

-- name: task_reschedule_submitted
-- Changes a task only while it is submitted: once this commits, the old time and payload are never
-- used. A claim holding the row makes this wait and then re-check the status (as a delete does).
-- $1 uuid id, $2 timestamptz the new execution_time (NULL: unchanged; a new one is also the new
-- scheduled_time), $3 text the new payload, a JSON object (NULL: unchanged). Returns the row and
-- due_in, the seconds until it is due.
UPDATE tasks
SET execution_time = coalesce($2, execution_time),
    scheduled_time = CASE WHEN $2 IS NULL THEN scheduled_time END,
    payload = coalesce($3::jsonb, payload)
WHERE id = $1 AND status = 'submitted'
RETURNING *, extract(epoch FROM execution_time - now())::float8 AS due_in;

-- name: task_retry_failed
-- Redrive: puts a failed task back to submitted, due now, for one more attempt (its attempts and
-- last error are kept; scheduled_time keeps the time it was submitted for). Only a failed task;
-- returns the row, or nothing. $1 uuid id.
UPDATE tasks
SET status = 'submitted', execution_time = now(), finished_at = NULL, result = NULL,
    scheduled_time = coalesce(scheduled_time, execution_time)
WHERE id = $1 AND status = 'failed'
RETURNING *;

-- name: task_prune
-- Deletes up to $3 tasks in status $1 (done, failed or deleted) that finished more than $2
-- seconds before $4 timestamptz now (NULL: the database's clock), oldest first, through
-- tasks_finished_idx. Every worker's pruner runs this side by side: SKIP LOCKED shares the rows
-- out. Returns how many it deleted.
WITH old AS (
    SELECT id
    FROM tasks
    WHERE status = $1::task_status AND finished_at IS NOT NULL
        AND finished_at < coalesce($4::timestamptz, now()) - make_interval(secs => $2)
    ORDER BY finished_at
    LIMIT $3
    FOR UPDATE SKIP LOCKED
), gone AS (
    DELETE FROM tasks
    WHERE id = ANY(ARRAY(SELECT id FROM old))
    RETURNING 1
)
SELECT count(*) FROM gone;

-- name: task_batch_prune
-- Deletes up to $2 bulk idempotency keys recorded more than $1 seconds before $3 timestamptz now
-- (NULL: the database's clock), oldest first; pruners side by side share them (SKIP LOCKED).
-- Returns how many it deleted.
WITH old AS (
    SELECT idempotency_key
    FROM task_batches
    WHERE created_at < coalesce($3::timestamptz, now()) - make_interval(secs => $1)
    ORDER BY created_at
    LIMIT $2
    FOR UPDATE SKIP LOCKED
), gone AS (
    DELETE FROM task_batches
    WHERE idempotency_key = ANY(ARRAY(SELECT idempotency_key FROM old))
    RETURNING 1
)
SELECT count(*) FROM gone;

-- name: task_count_bounded
-- Counts the tasks of each status by type, exactly, but at most $1 int rows of each status: each
-- branch walks its status's partial index (submitted: tasks_due_idx, running: tasks_lease_idx,
-- failed and deleted: tasks_page_idx, done: tasks_finished_idx) and stops after $1 rows, so the
-- cost is bounded whatever the table holds. A status that reaches $1 is estimated instead
-- (task_count_estimates). Returns (status, task_type, n).
SELECT 'submitted' AS status, task_type, count(*) AS n
FROM (SELECT task_type FROM tasks WHERE status = 'submitted' LIMIT $1) AS s GROUP BY task_type
UNION ALL
SELECT 'started_executing', task_type, count(*)
FROM (SELECT task_type FROM tasks WHERE status = 'started_executing' LIMIT $1) AS s
GROUP BY task_type
UNION ALL
SELECT 'done', task_type, count(*)
FROM (SELECT task_type FROM tasks WHERE status = 'done' AND finished_at IS NOT NULL LIMIT $1) AS s
GROUP BY task_type
UNION ALL
SELECT 'failed', task_type, count(*)
FROM (SELECT task_type FROM tasks WHERE status = 'failed' LIMIT $1) AS s GROUP BY task_type
UNION ALL
SELECT 'deleted', task_type, count(*)
FROM (SELECT task_type FROM tasks WHERE status = 'deleted' LIMIT $1) AS s GROUP BY task_type;

-- name: task_count_estimates
-- What ANALYZE last found of the tasks table: its estimated row count times the fraction of rows
-- that each of the most common (status, task_type) pairs holds (the tasks_status_type statistics,
-- whose pairs are in attnames' order; no rows before the first ANALYZE, or for a user who does
-- not own the table). Returns (status, task_type, n) estimates.
SELECT s.most_common_vals[i][array_position(s.attnames, 'status')] AS status,
    s.most_common_vals[i][array_position(s.attnames, 'task_type')] AS task_type,
    round(s.most_common_freqs[i] * greatest(c.reltuples, 0))::bigint AS n
FROM pg_class AS c
CROSS JOIN pg_stats_ext AS s
CROSS JOIN LATERAL generate_subscripts(s.most_common_freqs, 1) AS i
WHERE c.oid = 'tasks'::regclass
    AND s.schemaname = current_schema() AND s.tablename = 'tasks'
    AND s.statistics_name = 'tasks_status_type';

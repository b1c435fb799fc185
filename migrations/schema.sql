-- The schema the migrations make (migrations/versions), dumped by scripts/dump_schema.py:
-- do not edit; change a migration and run `uv run python -m scripts.dump_schema`.

CREATE TYPE public.task_status AS ENUM (
    'submitted',
    'started_executing',
    'done',
    'failed',
    'deleted'
);

CREATE FUNCTION public.task_backoff(kind text, base double precision, cap double precision, attempt integer) RETURNS double precision
    LANGUAGE sql
    AS $$
        SELECT CASE kind
            WHEN 'fixed' THEN least(cap, base)
            WHEN 'linear' THEN random() * least(cap, base * attempt)
            ELSE random() * least(cap, base * power(2::float8, least(attempt - 1, 60)))
        END
    $$;

CREATE TABLE public.schedules (
    name text NOT NULL,
    task_type text NOT NULL,
    payload jsonb DEFAULT '{}'::jsonb NOT NULL,
    cron text,
    interval_seconds double precision,
    timezone text DEFAULT 'UTC'::text NOT NULL,
    start_at timestamp with time zone,
    end_at timestamp with time zone,
    enabled boolean DEFAULT true NOT NULL,
    overlap text DEFAULT 'allow'::text NOT NULL,
    catch_up text DEFAULT 'latest'::text NOT NULL,
    catch_up_limit integer DEFAULT 100 NOT NULL,
    max_attempts integer NOT NULL,
    backoff text NOT NULL,
    backoff_base_seconds double precision NOT NULL,
    backoff_cap_seconds double precision NOT NULL,
    retry_on_loss boolean NOT NULL,
    timeout_seconds double precision NOT NULL,
    anchor timestamp with time zone DEFAULT now() NOT NULL,
    next_at timestamp with time zone,
    lease_until timestamp with time zone,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT schedule_cadence CHECK (((cron IS NULL) <> (interval_seconds IS NULL))),
    CONSTRAINT schedule_catch_up CHECK ((catch_up = ANY (ARRAY['latest'::text, 'all'::text, 'none'::text]))),
    CONSTRAINT schedule_catch_up_limit CHECK (((catch_up_limit >= 1) AND (catch_up_limit <= 1000))),
    CONSTRAINT schedule_interval CHECK ((interval_seconds >= (1)::double precision)),
    CONSTRAINT schedule_name CHECK (((name ~ '^[A-Za-z0-9_.:-]+$'::text) AND (length(name) <= 200))),
    CONSTRAINT schedule_overlap CHECK ((overlap = ANY (ARRAY['allow'::text, 'skip'::text]))),
    CONSTRAINT schedule_payload CHECK ((jsonb_typeof(payload) = 'object'::text)),
    CONSTRAINT schedule_window CHECK ((end_at >= start_at))
);

CREATE TABLE public.task_batches (
    idempotency_key text NOT NULL,
    task_ids uuid[] NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT batch_key_length CHECK (((length(idempotency_key) >= 1) AND (length(idempotency_key) <= 200)))
);

CREATE TABLE public.tasks (
    id uuid NOT NULL,
    task_type text NOT NULL,
    status public.task_status DEFAULT 'submitted'::public.task_status NOT NULL,
    execution_time timestamp with time zone NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    started_at timestamp with time zone,
    finished_at timestamp with time zone,
    attempts integer DEFAULT 0 NOT NULL,
    worker_id text,
    lease_expires_at timestamp with time zone,
    last_error text,
    payload jsonb DEFAULT '{}'::jsonb NOT NULL,
    result jsonb,
    max_attempts integer DEFAULT 1 NOT NULL,
    backoff text DEFAULT 'exponential'::text NOT NULL,
    backoff_base_seconds double precision DEFAULT 1 NOT NULL,
    backoff_cap_seconds double precision DEFAULT 300 NOT NULL,
    retry_on_loss boolean DEFAULT false NOT NULL,
    timeout_seconds double precision DEFAULT 300 NOT NULL,
    error_reason text,
    idempotency_key text,
    scheduled_time timestamp with time zone,
    schedule text,
    occurrence timestamp with time zone,
    CONSTRAINT attempts_not_negative CHECK ((attempts >= 0)),
    CONSTRAINT backoff_kind CHECK ((backoff = ANY (ARRAY['fixed'::text, 'linear'::text, 'exponential'::text]))),
    CONSTRAINT backoff_seconds CHECK (((backoff_base_seconds >= (0)::double precision) AND (backoff_cap_seconds >= backoff_base_seconds))),
    CONSTRAINT error_reason_kind CHECK ((error_reason = ANY (ARRAY['error'::text, 'timeout'::text, 'lost'::text, 'retry'::text, 'fail'::text]))),
    CONSTRAINT executing_has_owner CHECK (((status <> 'started_executing'::public.task_status) OR ((started_at IS NOT NULL) AND (worker_id IS NOT NULL) AND (attempts >= 1) AND (lease_expires_at IS NOT NULL)))),
    CONSTRAINT finished_iff_terminal CHECK (((status = ANY (ARRAY['done'::public.task_status, 'failed'::public.task_status, 'deleted'::public.task_status])) = (finished_at IS NOT NULL))),
    CONSTRAINT idempotency_key_length CHECK (((length(idempotency_key) >= 1) AND (length(idempotency_key) <= 200))),
    CONSTRAINT max_attempts_positive CHECK (((max_attempts >= 1) AND (max_attempts <= 1000))),
    CONSTRAINT occurrence_has_schedule CHECK (((schedule IS NULL) = (occurrence IS NULL))),
    CONSTRAINT payload_is_object CHECK ((jsonb_typeof(payload) = 'object'::text)),
    CONSTRAINT ran_before_done CHECK (((status <> 'done'::public.task_status) OR ((started_at IS NOT NULL) AND (attempts >= 1)))),
    CONSTRAINT task_type_name CHECK ((((length(task_type) >= 1) AND (length(task_type) <= 100)) AND (task_type ~ '^[A-Za-z0-9_.:-]+$'::text))),
    CONSTRAINT timeout_positive CHECK ((timeout_seconds > (0)::double precision))
)
WITH (autovacuum_vacuum_scale_factor='0.02', autovacuum_vacuum_threshold='1000', autovacuum_vacuum_insert_scale_factor='0.02', autovacuum_vacuum_insert_threshold='1000', autovacuum_analyze_scale_factor='0.02', autovacuum_analyze_threshold='1000');

ALTER TABLE ONLY public.schedules
    ADD CONSTRAINT schedules_pkey PRIMARY KEY (name);

ALTER TABLE ONLY public.task_batches
    ADD CONSTRAINT task_batches_pkey PRIMARY KEY (idempotency_key);

ALTER TABLE ONLY public.tasks
    ADD CONSTRAINT tasks_pkey PRIMARY KEY (id);

CREATE INDEX schedules_next_idx ON public.schedules USING btree (next_at) WHERE (enabled AND (next_at IS NOT NULL));

CREATE INDEX task_batches_created_idx ON public.task_batches USING btree (created_at);

CREATE INDEX tasks_due_idx ON public.tasks USING btree (execution_time) WHERE (status = 'submitted'::public.task_status);

CREATE INDEX tasks_finished_idx ON public.tasks USING btree (status, finished_at) WHERE (finished_at IS NOT NULL);

CREATE UNIQUE INDEX tasks_idempotency_key_idx ON public.tasks USING btree (idempotency_key) WHERE (idempotency_key IS NOT NULL);

CREATE INDEX tasks_lease_idx ON public.tasks USING btree (lease_expires_at) WHERE (status = 'started_executing'::public.task_status);

CREATE UNIQUE INDEX tasks_occurrence_idx ON public.tasks USING btree (schedule, occurrence) WHERE (schedule IS NOT NULL);

CREATE INDEX tasks_page_idx ON public.tasks USING btree (status, id) WHERE (status = ANY (ARRAY['submitted'::public.task_status, 'failed'::public.task_status, 'deleted'::public.task_status]));

CREATE INDEX tasks_schedule_page_idx ON public.tasks USING btree (schedule, id) WHERE (schedule IS NOT NULL);

CREATE STATISTICS public.tasks_status_type (mcv) ON task_type, status FROM public.tasks;

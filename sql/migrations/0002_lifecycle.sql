-- The durable lifecycle: per-function options, retries, scheduled runs,
-- idempotency keys, concurrency limits, cancellation, retention, and the SQL
-- API (picloud.invoke and friends).
--
-- Nothing here polls. A run due later is a River job in state 'scheduled',
-- announced on picloud_due so that workers arm a timer for it; finished rows
-- are deleted by a timer armed for the oldest one's deadline.

ALTER TABLE picloud.functions
    ADD COLUMN timeout_ms integer
        CONSTRAINT function_timeout_ms CHECK (timeout_ms BETWEEN 1 AND 900000),
    ADD COLUMN max_attempts integer NOT NULL DEFAULT 1
        CONSTRAINT function_max_attempts CHECK (max_attempts BETWEEN 1 AND 100),
    ADD COLUMN max_concurrency integer
        CONSTRAINT function_max_concurrency CHECK (max_concurrency >= 1),
    ADD COLUMN retry_backoff_ms integer NOT NULL DEFAULT 1000
        CONSTRAINT function_retry_backoff_ms CHECK (retry_backoff_ms BETWEEN 0 AND 3600000);

ALTER TABLE picloud.invocations
    ADD COLUMN idempotency_key text,
    -- When the pending attempt is due; null means as soon as possible.
    ADD COLUMN run_at timestamptz,
    -- One {attempt, error, at} per failed attempt.
    ADD COLUMN errors jsonb NOT NULL DEFAULT '[]',
    -- Queued, but waiting for a slot under the function's max_concurrency:
    -- it has no River job until a running invocation of the function ends.
    ADD COLUMN parked boolean NOT NULL DEFAULT false;

CREATE INDEX invocations_parked ON picloud.invocations (function, id) WHERE parked;
CREATE INDEX invocations_finished_at ON picloud.invocations (finished_at) WHERE finished_at IS NOT NULL;

-- Every invocation row is updated twice (start, finish). Room on the page
-- lets the start, which changes no indexed column, be a HOT update that
-- writes no index entry.
ALTER TABLE picloud.invocations SET (fillfactor = 80);

-- The invocations holding a slot of a function with max_concurrency. A
-- small table of its own, rather than an index on invocations.status, so
-- that functions without a limit pay nothing for the feature: such an index
-- would make every status change of every invocation update it.
CREATE TABLE picloud.running_slots (
    invocation_id bigint PRIMARY KEY,
    function      text NOT NULL
);
CREATE INDEX running_slots_function ON picloud.running_slots (function);

-- Platform settings that SQL functions need as much as the Go side, kept in
-- one row so there is a single source of truth. Changing them notifies the
-- workers (picloud_settings).
CREATE TABLE picloud.settings (
    singleton          boolean PRIMARY KEY DEFAULT true CONSTRAINT settings_singleton CHECK (singleton),
    -- How long a finished invocation is kept.
    retention          interval NOT NULL DEFAULT '7 days'
                       CONSTRAINT settings_retention CHECK (retention > interval '0'),
    -- How long an idempotency key keeps returning its first invocation.
    idempotency_window interval NOT NULL DEFAULT '24 hours'
                       CONSTRAINT settings_idempotency_window CHECK (idempotency_window > interval '0')
);
INSERT INTO picloud.settings DEFAULT VALUES;

CREATE FUNCTION picloud.announce_settings() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('picloud_settings', '');
    RETURN NULL;
END;
$$;

CREATE TRIGGER settings_announce
    AFTER UPDATE ON picloud.settings
    FOR EACH STATEMENT EXECUTE FUNCTION picloud.announce_settings();

-- A key belongs to the invocation it first created until it expires; then
-- the next use of the key creates a new invocation. Deleting the invocation
-- (retention) deletes its key.
CREATE TABLE picloud.idempotency_keys (
    function      text NOT NULL,
    key           text NOT NULL,
    invocation_id bigint NOT NULL REFERENCES picloud.invocations (id) ON DELETE CASCADE
                  DEFERRABLE INITIALLY DEFERRED,
    expires_at    timestamptz NOT NULL,
    PRIMARY KEY (function, key)
);
CREATE INDEX idempotency_keys_invocation ON picloud.idempotency_keys (invocation_id);

-- schedule_attempt creates the River job for the next attempt of an
-- invocation. A job due now is 'available' and wakes River's producers; a
-- job due later is 'scheduled' and announces its due time (epoch seconds)
-- on picloud_due, so that a worker arms a timer and promotes it when due.
-- River's own scheduler would promote it too, but only on its 5-second
-- leader tick and without a wake-up.
CREATE FUNCTION picloud.schedule_attempt(p_invocation bigint, p_due timestamptz) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF p_due IS NULL OR p_due <= clock_timestamp() THEN
        INSERT INTO picloud.river_job (args, kind, max_attempts, queue, priority, state)
        VALUES (jsonb_build_object('invocation_id', p_invocation), 'picloud.invocation', 1, 'picloud', 1, 'available');
        PERFORM pg_notify('picloud.river_insert', '{"queue":"picloud"}');
    ELSE
        INSERT INTO picloud.river_job (args, kind, max_attempts, queue, priority, state, scheduled_at)
        VALUES (jsonb_build_object('invocation_id', p_invocation), 'picloud.invocation', 1, 'picloud', 1, 'scheduled', p_due);
        PERFORM pg_notify('picloud_due', extract(epoch FROM p_due)::text);
    END IF;
END;
$$;

DROP FUNCTION picloud.enqueue_invocation(text, text, jsonb, bytea, jsonb, integer);

-- enqueue_invocation returns the new invocation or, for an idempotency key
-- still in its window, the invocation the key first created. Null timeout
-- and max_attempts take the function's settings.
CREATE FUNCTION picloud.enqueue_invocation(
    p_function        text,
    p_trigger         text,
    p_request         jsonb,
    p_request_body    bytea,
    p_payload         jsonb,
    p_timeout_ms      integer,
    p_max_attempts    integer,
    p_idempotency_key text,
    p_run_at          timestamptz
) RETURNS SETOF picloud.invocations
LANGUAGE plpgsql AS $$
DECLARE
    v_fn       record;
    v_id       bigint;
    v_existing bigint;
BEGIN
    SELECT f.version, v.id AS version_id, f.timeout_ms, f.max_attempts INTO v_fn
    FROM picloud.functions f
    JOIN picloud.function_versions v ON v.function = f.name AND v.version = f.version
    WHERE f.name = p_function;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'picloud: function "%" does not exist', p_function
            USING ERRCODE = 'PC404', HINT = 'Create it with PUT /v1/functions/{name}.';
    END IF;

    v_id := nextval('picloud.invocations_id_seq');
    IF p_idempotency_key IS NOT NULL THEN
        INSERT INTO picloud.idempotency_keys AS k (function, key, invocation_id, expires_at)
        VALUES (p_function, p_idempotency_key, v_id, now() + (SELECT idempotency_window FROM picloud.settings))
        ON CONFLICT (function, key) DO UPDATE
            SET invocation_id = excluded.invocation_id, expires_at = excluded.expires_at
            WHERE k.expires_at <= now()
        RETURNING invocation_id INTO v_existing;
        IF v_existing IS NULL THEN
            -- The key is live: answer with its invocation, run nothing.
            RETURN QUERY
                SELECT i.* FROM picloud.invocations i
                JOIN picloud.idempotency_keys k ON k.invocation_id = i.id
                WHERE k.function = p_function AND k.key = p_idempotency_key;
            RETURN;
        END IF;
    END IF;

    RETURN QUERY
        INSERT INTO picloud.invocations
            (id, function, function_version, function_version_id, trigger, request, request_body, payload,
             timeout_ms, max_attempts, idempotency_key, run_at)
        OVERRIDING SYSTEM VALUE
        VALUES
            (v_id, p_function, v_fn.version, v_fn.version_id, p_trigger, p_request, p_request_body, p_payload,
             coalesce(p_timeout_ms, v_fn.timeout_ms, 10000), coalesce(p_max_attempts, v_fn.max_attempts),
             p_idempotency_key, p_run_at)
        RETURNING *;
    PERFORM picloud.schedule_attempt(v_id, p_run_at);
END;
$$;

-- start_invocation claims an invocation for a run and returns it; it
-- returns nothing when the invocation is final (cancelled, or finished by an
-- earlier delivery of its job) or must wait for a concurrency slot, in which
-- case it is parked.
--
-- The function row lock serializes the count of held slots with
-- every other start and with release_slot, so max_concurrency holds across
-- any number of workers. Each statement of a plpgsql function sees rows
-- committed before it began, so the count after the lock is current.
CREATE FUNCTION picloud.start_invocation(p_id bigint) RETURNS SETOF picloud.invocations
LANGUAGE plpgsql AS $$
DECLARE
    v_function text;
    v_limit    integer;
BEGIN
    SELECT i.function INTO v_function
    FROM picloud.invocations i
    WHERE i.id = p_id AND i.status IN ('queued', 'running');
    IF NOT FOUND THEN
        RETURN;
    END IF;
    SELECT f.max_concurrency INTO v_limit FROM picloud.functions f WHERE f.name = v_function;
    IF v_limit IS NOT NULL THEN
        PERFORM 1 FROM picloud.functions f WHERE f.name = v_function FOR UPDATE;
        IF NOT EXISTS (SELECT 1 FROM picloud.running_slots WHERE invocation_id = p_id)
           AND (SELECT count(*) FROM picloud.running_slots WHERE function = v_function) >= v_limit THEN
            UPDATE picloud.invocations SET parked = true WHERE id = p_id AND status = 'queued';
            RETURN;
        END IF;
        INSERT INTO picloud.running_slots (invocation_id, function) VALUES (p_id, v_function)
        ON CONFLICT (invocation_id) DO NOTHING;
    END IF;
    RETURN QUERY
        UPDATE picloud.invocations
        SET status = 'running', started_at = clock_timestamp(), attempt = attempt + 1, parked = false
        WHERE id = p_id AND status IN ('queued', 'running')
        RETURNING *;
END;
$$;

-- admit_parked gives jobs to as many parked invocations of p_function,
-- oldest first, as its free slots allow (all of them once it has no limit).
-- It runs when a slot is released and when the function's limit changes.
CREATE FUNCTION picloud.admit_parked(p_function text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_limit integer;
    v_free  bigint;
    v_next  bigint;
BEGIN
    SELECT f.max_concurrency INTO v_limit FROM picloud.functions f WHERE f.name = p_function FOR UPDATE;
    IF v_limit IS NULL THEN
        v_free := NULL; -- no limit: LIMIT NULL admits everyone
    ELSE
        v_free := v_limit - (SELECT count(*) FROM picloud.running_slots WHERE function = p_function);
        IF v_free <= 0 THEN
            RETURN;
        END IF;
    END IF;
    FOR v_next IN
        WITH admitted AS (
            SELECT i.id FROM picloud.invocations i
            WHERE i.function = p_function AND i.parked AND i.status = 'queued'
            ORDER BY i.id
            LIMIT v_free
            FOR UPDATE SKIP LOCKED
        )
        UPDATE picloud.invocations i SET parked = false FROM admitted WHERE i.id = admitted.id
        RETURNING i.id
    LOOP
        PERFORM picloud.schedule_attempt(v_next, NULL);
    END LOOP;
END;
$$;

-- release_slot runs after invocation p_id stops running. Only an
-- invocation that held a slot (its function had a limit when it started)
-- can free one, so a function without a limit pays one index probe here.
CREATE FUNCTION picloud.release_slot(p_function text, p_id bigint) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM picloud.running_slots WHERE invocation_id = p_id;
    IF FOUND THEN
        PERFORM picloud.admit_parked(p_function);
    END IF;
END;
$$;

-- finish_invocation records the outcome of the running attempt. The
-- trigger invocations_announce_finished sends the NOTIFY.
CREATE FUNCTION picloud.finish_invocation(
    p_id     bigint,
    p_status text,
    p_result jsonb,
    p_error  text,
    p_logs   jsonb
) RETURNS SETOF picloud.invocations
LANGUAGE plpgsql AS $$
DECLARE
    v_row picloud.invocations;
BEGIN
    UPDATE picloud.invocations
    SET status = p_status, result = p_result, error = p_error, logs = p_logs, finished_at = clock_timestamp(),
        errors = CASE WHEN p_error IS NULL THEN errors
                      ELSE errors || jsonb_build_object('attempt', attempt, 'error', p_error, 'at', clock_timestamp()) END
    WHERE id = p_id AND status = 'running'
    RETURNING * INTO v_row;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    PERFORM picloud.release_slot(v_row.function, p_id);
    RETURN NEXT v_row;
END;
$$;

-- retry_invocation ends a failed attempt that has attempts left: the error
-- joins the invocation's errors, and the next attempt is scheduled for p_due.
CREATE FUNCTION picloud.retry_invocation(p_id bigint, p_error text, p_logs jsonb, p_due timestamptz)
RETURNS SETOF picloud.invocations
LANGUAGE plpgsql AS $$
DECLARE
    v_row picloud.invocations;
BEGIN
    UPDATE picloud.invocations
    SET status = 'queued', error = p_error, logs = p_logs, run_at = p_due,
        errors = errors || jsonb_build_object('attempt', attempt, 'error', p_error, 'at', clock_timestamp())
    WHERE id = p_id AND status = 'running'
    RETURNING * INTO v_row;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    PERFORM picloud.release_slot(v_row.function, p_id);
    PERFORM picloud.schedule_attempt(p_id, p_due);
    RETURN NEXT v_row;
END;
$$;

-- cancel stops an invocation: a queued one never runs, a running one is
-- stopped in its sandbox (its worker hears picloud_cancel). It returns the
-- invocation's status afterwards; a finished invocation is left as it is.
CREATE FUNCTION picloud.cancel(p_id bigint) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    v_before text;
    v_function text;
BEGIN
    SELECT status, function INTO v_before, v_function FROM picloud.invocations WHERE id = p_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'picloud: invocation % does not exist', p_id USING ERRCODE = 'PC405';
    END IF;
    IF v_before NOT IN ('queued', 'running') THEN
        RETURN v_before;
    END IF;
    UPDATE picloud.invocations
    SET status = 'cancelled', parked = false, finished_at = clock_timestamp(),
        error = 'cancelled by request'
    WHERE id = p_id;
    IF v_before = 'running' THEN
        PERFORM pg_notify('picloud_cancel', p_id::text);
        PERFORM picloud.release_slot(v_function, p_id);
    END IF;
    RETURN 'cancelled';
END;
$$;

-- promote_due makes scheduled attempts that are due available, wakes River's
-- producers, and returns when the next attempt is due (null: none).
--
-- River's leader also promotes scheduled jobs, up to 5 s early and without
-- a wake-up: such a job is 'available' with a future scheduled_at, which
-- River's fetch skips until it is due. So the next due time counts those
-- too, and the wake-up is sent whenever the timer fires, whoever promoted.
CREATE FUNCTION picloud.promote_due() RETURNS timestamptz
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE picloud.river_job
    SET state = 'available'
    WHERE state IN ('scheduled', 'retryable') AND queue = 'picloud' AND priority = 1
      AND scheduled_at <= clock_timestamp();
    PERFORM pg_notify('picloud.river_insert', '{"queue":"picloud"}');
    RETURN (SELECT min(scheduled_at) FROM picloud.river_job
            WHERE state IN ('scheduled', 'retryable', 'available') AND queue = 'picloud' AND priority = 1
              AND scheduled_at > clock_timestamp());
END;
$$;

-- sweep deletes finished invocations older than the retention, and expired
-- idempotency keys, and returns when the next finished invocation falls due
-- (null: none is finished).
CREATE FUNCTION picloud.sweep() RETURNS timestamptz
LANGUAGE plpgsql AS $$
DECLARE
    v_retention interval;
BEGIN
    SELECT retention INTO v_retention FROM picloud.settings;
    DELETE FROM picloud.invocations WHERE finished_at < clock_timestamp() - v_retention;
    DELETE FROM picloud.idempotency_keys WHERE expires_at < clock_timestamp();
    RETURN (SELECT min(finished_at) FROM picloud.invocations WHERE finished_at IS NOT NULL) + v_retention;
END;
$$;

-- The SQL API ----------------------------------------------------------------

-- invoke enqueues an invocation of function_name with the payload, seen by
-- the script as req.payload (req.trigger is 'sql'), and returns its id. It
-- runs when, and only when, the calling transaction commits. An unknown
-- function raises SQLSTATE PC404.
CREATE FUNCTION picloud.invoke(
    function_name   text,
    payload         jsonb DEFAULT '{}',
    idempotency_key text DEFAULT NULL,
    run_at          timestamptz DEFAULT NULL
) RETURNS bigint
LANGUAGE sql AS $$
    SELECT id FROM picloud.enqueue_invocation(function_name, 'sql', NULL, NULL, coalesce(payload, '{}'::jsonb),
                                              NULL, NULL, idempotency_key, run_at);
$$;

-- invoke_trigger invokes the function named by its argument for every row
-- change, with {op, schema, table, new, old} as the payload:
--   CREATE TRIGGER t AFTER INSERT OR UPDATE OR DELETE ON orders
--       FOR EACH ROW EXECUTE FUNCTION picloud.invoke_trigger('on_order');
CREATE FUNCTION picloud.invoke_trigger() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_NARGS <> 1 THEN
        RAISE EXCEPTION 'picloud.invoke_trigger takes one argument, the function name (got %)', TG_NARGS
            USING ERRCODE = 'PC400';
    END IF;
    PERFORM picloud.invoke(TG_ARGV[0], jsonb_build_object(
        'op', TG_OP,
        'schema', TG_TABLE_SCHEMA,
        'table', TG_TABLE_NAME,
        'new', CASE WHEN TG_OP IN ('INSERT', 'UPDATE') THEN to_jsonb(NEW) END,
        'old', CASE WHEN TG_OP IN ('UPDATE', 'DELETE') THEN to_jsonb(OLD) END));
    -- Ignored in an AFTER trigger; in a BEFORE trigger it lets the change
    -- through unaltered.
    RETURN coalesce(NEW, OLD);
END;
$$;

-- status returns an invocation's status, or null if there is no such
-- invocation.
CREATE FUNCTION picloud.status(id bigint) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT i.status FROM picloud.invocations i WHERE i.id = status.id;
$$;

-- result returns a finished invocation's result: for trigger http the HTTP
-- response {status, headers, body}, otherwise the function's return value.
CREATE FUNCTION picloud.result(id bigint) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT i.result FROM picloud.invocations i WHERE i.id = result.id;
$$;

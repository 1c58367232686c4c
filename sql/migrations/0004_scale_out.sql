-- Scale-out without a River leader: PiCloud rescues the invocations of a
-- worker that died, and cleans River's finished jobs, itself, on timers
-- armed for when something is due.
--
-- River's leader runs its rescuer and cleaner (and scheduler and election)
-- on fixed tickers, which keep an idle database busy; PiCloud's workers run
-- with leader election disabled.

-- The earliest moment a running invocation may be overdue: its start plus
-- its timeout plus a grace for the worker to stop it and write the outcome.
-- start_invocation lowers it, and announces the new value on picloud_due,
-- only when a start brings it forward, so that under steady load a start
-- costs a read of this row, not a write.
CREATE TABLE picloud.rescue_clock (
    singleton boolean PRIMARY KEY DEFAULT true CONSTRAINT rescue_clock_singleton CHECK (singleton),
    next_at   timestamptz
);
INSERT INTO picloud.rescue_clock DEFAULT VALUES;

-- How long past its timeout a running invocation's worker has to report
-- before the invocation is taken from it: the sandbox is killed 2 s after
-- the deadline, and writing the outcome takes milliseconds.
ALTER TABLE picloud.settings
    ADD COLUMN rescue_grace interval NOT NULL DEFAULT '10 seconds'
        CONSTRAINT settings_rescue_grace CHECK (rescue_grace >= interval '0');

CREATE FUNCTION picloud.rescue_grace() RETURNS interval
LANGUAGE sql STABLE AS $$ SELECT rescue_grace FROM picloud.settings $$;

CREATE OR REPLACE FUNCTION picloud.start_invocation(p_id bigint) RETURNS SETOF picloud.invocations
LANGUAGE plpgsql AS $$
DECLARE
    v_function text;
    v_limit    integer;
    v_row      picloud.invocations;
BEGIN
    -- Only a queued invocation starts: a running one belongs to a worker,
    -- or, if that worker died, to rescue_overdue.
    SELECT i.function INTO v_function
    FROM picloud.invocations i
    WHERE i.id = p_id AND i.status = 'queued';
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
    UPDATE picloud.invocations
    SET status = 'running', started_at = clock_timestamp(), attempt = attempt + 1, parked = false
    WHERE id = p_id AND status = 'queued'
    RETURNING * INTO v_row;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    PERFORM picloud.arm_rescue(v_row.started_at + v_row.timeout_ms * interval '1 millisecond' + picloud.rescue_grace());
    RETURN NEXT v_row;
END;
$$;

-- finish_invocation and retry_invocation now name the attempt they end: a
-- worker that was presumed dead and whose invocation was rescued and
-- restarted must not overwrite the new attempt.
DROP FUNCTION picloud.finish_invocation(bigint, text, jsonb, text, jsonb, jsonb, jsonb);
CREATE FUNCTION picloud.finish_invocation(
    p_id      bigint,
    p_attempt integer,
    p_status  text,
    p_result  jsonb,
    p_error   text,
    p_logs    jsonb,
    p_kv      jsonb,
    p_invokes jsonb
) RETURNS SETOF picloud.invocations
LANGUAGE plpgsql AS $$
DECLARE
    v_row picloud.invocations;
    v_inv jsonb;
BEGIN
    UPDATE picloud.invocations
    SET status = p_status, result = p_result, error = p_error, logs = p_logs, finished_at = clock_timestamp(),
        errors = CASE WHEN p_error IS NULL THEN errors
                      ELSE errors || jsonb_build_object('attempt', attempt, 'error', p_error, 'at', clock_timestamp()) END
    WHERE id = p_id AND status = 'running' AND attempt = p_attempt
    RETURNING * INTO v_row;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    IF p_status = 'succeeded' THEN
        PERFORM picloud.kv_apply(v_row.function, p_kv);
        FOR v_inv IN SELECT * FROM jsonb_array_elements(coalesce(p_invokes, '[]'::jsonb)) LOOP
            PERFORM picloud.enqueue_reserved(
                (v_inv->>'id')::bigint, v_inv->>'function', v_inv->'payload',
                v_inv->>'idempotency_key', (v_inv->>'run_at')::timestamptz, p_id);
        END LOOP;
    END IF;
    PERFORM picloud.release_slot(v_row.function, p_id);
    RETURN NEXT v_row;
END;
$$;

DROP FUNCTION picloud.retry_invocation(bigint, text, jsonb, timestamptz);
CREATE FUNCTION picloud.retry_invocation(p_id bigint, p_attempt integer, p_error text, p_logs jsonb, p_due timestamptz)
RETURNS SETOF picloud.invocations
LANGUAGE plpgsql AS $$
DECLARE
    v_row picloud.invocations;
BEGIN
    UPDATE picloud.invocations
    SET status = 'queued', error = p_error, logs = p_logs, run_at = p_due,
        errors = errors || jsonb_build_object('attempt', attempt, 'error', p_error, 'at', clock_timestamp())
    WHERE id = p_id AND status = 'running' AND attempt = p_attempt
    RETURNING * INTO v_row;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    PERFORM picloud.release_slot(v_row.function, p_id);
    PERFORM picloud.schedule_attempt(p_id, p_due);
    RETURN NEXT v_row;
END;
$$;

-- arm_rescue brings the rescue clock forward to p_at if that is earlier,
-- and announces it on picloud_due when it does.
CREATE FUNCTION picloud.arm_rescue(p_at timestamptz) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE picloud.rescue_clock SET next_at = p_at WHERE next_at IS NULL OR next_at > p_at;
    IF FOUND THEN
        PERFORM pg_notify('picloud_due', extract(epoch FROM p_at)::text);
    END IF;
END;
$$;

-- A job due now also arms the rescue clock: a worker can die after River
-- fetched the job and before the invocation started, and only a timer
-- already running would notice. Under load the clock is already earlier
-- and this is a read.
CREATE OR REPLACE FUNCTION picloud.schedule_attempt(p_invocation bigint, p_due timestamptz) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF p_due IS NULL OR p_due <= clock_timestamp() THEN
        INSERT INTO picloud.river_job (args, kind, max_attempts, queue, priority, state)
        VALUES (jsonb_build_object('invocation_id', p_invocation), 'picloud.invocation', 1, 'picloud', 1, 'available');
        PERFORM pg_notify('picloud.river_insert', '{"queue":"picloud"}');
        PERFORM picloud.arm_rescue(clock_timestamp() + picloud.rescue_grace());
    ELSE
        INSERT INTO picloud.river_job (args, kind, max_attempts, queue, priority, state, scheduled_at)
        VALUES (jsonb_build_object('invocation_id', p_invocation), 'picloud.invocation', 1, 'picloud', 1, 'scheduled', p_due);
        PERFORM pg_notify('picloud_due', extract(epoch FROM p_due)::text);
    END IF;
END;
$$;

-- rescue_overdue takes back what a worker that stopped reporting (it died,
-- most likely) left behind, and discards its River jobs, which no River
-- rescuer will touch:
--   - a running invocation not finished within its timeout plus the grace
--     is queued again if it has attempts left, and fails otherwise;
--   - a job fetched more than the grace ago whose invocation never started
--     gets a new job (the attempt never began).
-- It returns when the next of either may become overdue, as long as any
-- job runs.
CREATE FUNCTION picloud.rescue_overdue() RETURNS timestamptz
LANGUAGE plpgsql AS $$
DECLARE
    v_inv  picloud.invocations;
    v_next timestamptz;
    v_lost constant text := 'the worker running this attempt stopped responding (it may have crashed)';
BEGIN
    FOR v_inv IN
        SELECT i.* FROM picloud.river_job j
        JOIN picloud.invocations i ON i.id = (j.args->>'invocation_id')::bigint
        WHERE j.state = 'running' AND j.queue = 'picloud'
          AND (i.status = 'running'
               AND i.started_at + i.timeout_ms * interval '1 millisecond' + picloud.rescue_grace() <= clock_timestamp()
               OR i.status = 'queued' AND NOT i.parked
               AND j.attempted_at + picloud.rescue_grace() <= clock_timestamp())
        FOR UPDATE OF i SKIP LOCKED
    LOOP
        UPDATE picloud.river_job SET state = 'discarded', finalized_at = clock_timestamp()
        WHERE state = 'running' AND queue = 'picloud' AND args @> jsonb_build_object('invocation_id', v_inv.id);
        IF v_inv.status = 'queued' THEN
            PERFORM picloud.schedule_attempt(v_inv.id, NULL);
        ELSIF v_inv.attempt < v_inv.max_attempts THEN
            PERFORM picloud.retry_invocation(v_inv.id, v_inv.attempt, v_lost, v_inv.logs, clock_timestamp());
        ELSE
            PERFORM picloud.finish_invocation(v_inv.id, v_inv.attempt, 'failed', NULL, v_lost, v_inv.logs, NULL, NULL);
        END IF;
    END LOOP;

    SELECT min(CASE WHEN i.status = 'running'
                    THEN i.started_at + i.timeout_ms * interval '1 millisecond'
                    ELSE j.attempted_at END) + picloud.rescue_grace() INTO v_next
    FROM picloud.river_job j
    JOIN picloud.invocations i ON i.id = (j.args->>'invocation_id')::bigint
    WHERE j.state = 'running' AND j.queue = 'picloud'
      AND (i.status = 'running' OR i.status = 'queued' AND NOT i.parked);
    -- A start that committed while this ran may have set an earlier,
    -- still future, deadline: keep it.
    UPDATE picloud.rescue_clock
    SET next_at = least(v_next, CASE WHEN next_at > clock_timestamp() THEN next_at END)
    RETURNING next_at INTO v_next;
    RETURN v_next;
END;
$$;

-- promote_due now also rescues: its timer fires for the earliest of a
-- scheduled attempt and an overdue running one.
CREATE OR REPLACE FUNCTION picloud.promote_due() RETURNS timestamptz
LANGUAGE plpgsql AS $$
DECLARE
    v_rescue timestamptz;
BEGIN
    UPDATE picloud.river_job
    SET state = 'available'
    WHERE state IN ('scheduled', 'retryable') AND queue = 'picloud' AND priority = 1
      AND scheduled_at <= clock_timestamp();
    v_rescue := picloud.rescue_overdue();
    PERFORM pg_notify('picloud.river_insert', '{"queue":"picloud"}');
    RETURN least(v_rescue,
                 (SELECT min(scheduled_at) FROM picloud.river_job
                  WHERE state IN ('scheduled', 'retryable', 'available') AND queue = 'picloud' AND priority = 1
                    AND scheduled_at > clock_timestamp()));
END;
$$;

-- How long River's finished jobs are kept: the invocation row is the
-- record, a job only carried it. River's cleaner is a leader duty.
CREATE FUNCTION picloud.job_retention() RETURNS interval
LANGUAGE sql IMMUTABLE AS $$ SELECT interval '10 minutes' $$;

CREATE OR REPLACE FUNCTION picloud.sweep() RETURNS timestamptz
LANGUAGE plpgsql AS $$
DECLARE
    v_retention interval;
BEGIN
    SELECT retention INTO v_retention FROM picloud.settings;
    DELETE FROM picloud.invocations WHERE finished_at < clock_timestamp() - v_retention;
    DELETE FROM picloud.idempotency_keys WHERE expires_at < clock_timestamp();
    DELETE FROM picloud.kv WHERE expires_at < clock_timestamp();
    DELETE FROM picloud.river_job
    WHERE state IN ('completed', 'cancelled', 'discarded') AND queue = 'picloud'
      AND finalized_at < clock_timestamp() - picloud.job_retention();
    RETURN least(
        (SELECT min(finished_at) FROM picloud.invocations WHERE finished_at IS NOT NULL) + v_retention,
        (SELECT min(finalized_at) FROM picloud.river_job
         WHERE state IN ('completed', 'cancelled', 'discarded') AND queue = 'picloud') + picloud.job_retention());
END;
$$;

-- nudge wakes River's producers if work is waiting: after a database
-- restart, River's LISTEN connection comes back on its own schedule, and a
-- wake-up sent before that is lost.
CREATE FUNCTION picloud.nudge() RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT FROM picloud.river_job WHERE state = 'available' AND queue = 'picloud' AND priority = 1) THEN
        PERFORM pg_notify('picloud.river_insert', '{"queue":"picloud"}');
        RETURN true;
    END IF;
    RETURN false;
END;
$$;

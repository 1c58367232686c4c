-- Run here: a synchronous call that reaches a node with a free worker slot
-- starts on that node in the statement that writes it.
--
-- The general path costs a synchronous caller two wake-ups and two writes
-- before Lua starts: the enqueue's NOTIFY wakes River's producer, which
-- fetches the job (a write), whose worker then starts the invocation (a
-- write); the finish's NOTIFY then wakes the waiting API node. When the
-- node that took the call can run it, none of that is needed: invoke_here
-- writes the invocation already running, and the node's own finish tells
-- its waiter in memory.
--
-- No River job carries such an attempt. A River job row costs two GIN
-- index inserts (args and metadata) and as much again when it is
-- completed: measured with pgbench, writing one made invoke_here plus
-- finish_invocation 37% slower. What the job would give, a rescue if the
-- node dies mid-run, a small table gives instead: one row per attempt
-- running here, with the moment it is overdue, deleted when the attempt
-- ends.
CREATE TABLE picloud.run_here_deadlines (
    invocation_id bigint PRIMARY KEY,
    node          text NOT NULL,
    -- started_at + timeout + rescue_grace: past it, the node is presumed dead.
    overdue_at    timestamptz NOT NULL
);

ALTER TABLE picloud.invocations
    -- True while the attempt started by invoke_here runs; the row in
    -- run_here_deadlines exists exactly as long.
    ADD COLUMN run_here boolean NOT NULL DEFAULT false;

-- invoke_here writes an invocation due now and starts it on node p_node,
-- when nothing makes it wait: the function has no max_concurrency (a slot
-- count needs the general path's lock and parking). Otherwise, and for
-- every error, it is enqueue_authorized_invocation. The caller tells them
-- apart by the returned status: running means "run it now, here".
CREATE FUNCTION picloud.invoke_here(
    p_function      text,
    p_trigger       text,
    p_request       jsonb,
    p_request_body  bytea,
    p_payload       jsonb,
    p_timeout_ms    integer,
    p_max_attempts  integer,
    p_authenticated boolean,
    p_trace_parent  text,
    p_node          text
) RETURNS SETOF picloud.invocations
LANGUAGE plpgsql AS $$
DECLARE
    v_fn      record;
    v_id      bigint;
    v_overdue timestamptz;
    v_row     picloud.invocations;
BEGIN
    SELECT f.version, v.id AS version_id, f.timeout_ms, f.max_attempts, f.max_concurrency, f.auth INTO v_fn
    FROM picloud.functions f
    JOIN picloud.function_versions v ON v.function = f.name AND v.version = f.version
    WHERE f.name = p_function;
    IF NOT FOUND OR v_fn.max_concurrency IS NOT NULL
       OR (p_trigger = 'http' AND NOT p_authenticated AND v_fn.auth = 'key') THEN
        RETURN QUERY SELECT * FROM picloud.enqueue_authorized_invocation(
            p_function, p_trigger, p_request, p_request_body, p_payload,
            p_timeout_ms, p_max_attempts, NULL, NULL, p_authenticated, p_trace_parent);
        RETURN;
    END IF;
    PERFORM set_config('picloud.trace_parent', coalesce(p_trace_parent, ''), true);

    v_id := nextval('picloud.invocations_id_seq');
    INSERT INTO picloud.invocations
        (id, function, function_version, function_version_id, trigger, request, request_body, payload,
         timeout_ms, max_attempts, status, attempt, started_at, run_here)
    OVERRIDING SYSTEM VALUE
    VALUES
        (v_id, p_function, v_fn.version, v_fn.version_id, p_trigger, p_request, p_request_body, p_payload,
         coalesce(p_timeout_ms, v_fn.timeout_ms, 10000), coalesce(p_max_attempts, v_fn.max_attempts),
         'running', 1, clock_timestamp(), true)
    RETURNING * INTO v_row;
    v_overdue := v_row.started_at + v_row.timeout_ms * interval '1 millisecond' + picloud.rescue_grace();
    INSERT INTO picloud.run_here_deadlines (invocation_id, node, overdue_at) VALUES (v_id, p_node, v_overdue);
    PERFORM picloud.arm_rescue(v_overdue);
    RETURN NEXT v_row;
END;
$$;

-- Whatever ends the attempt (finish, retry, cancel, rescue), it no longer
-- runs here.
CREATE FUNCTION picloud.end_run_here() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM picloud.run_here_deadlines WHERE invocation_id = OLD.id;
    NEW.run_here := false;
    RETURN NEW;
END;
$$;

CREATE TRIGGER invocations_end_run_here
    BEFORE UPDATE OF status ON picloud.invocations
    FOR EACH ROW
    WHEN (OLD.run_here AND NEW.status <> 'running')
    EXECUTE FUNCTION picloud.end_run_here();

-- rescue_overdue_here takes back the attempts started here by a node that
-- stopped reporting, exactly as rescue_overdue does for a worker whose River
-- job is left running: queued again with attempts left, failed otherwise.
-- It runs after rescue_overdue, which sets the rescue clock from River's
-- jobs alone, brings the clock forward to the next deadline here, and
-- returns it.
CREATE FUNCTION picloud.rescue_overdue_here() RETURNS timestamptz
LANGUAGE plpgsql AS $$
DECLARE
    v_inv  picloud.invocations;
    v_next timestamptz;
    v_lost constant text := 'the worker running this attempt stopped responding (it may have crashed)';
BEGIN
    FOR v_inv IN
        SELECT i.* FROM picloud.run_here_deadlines d
        JOIN picloud.invocations i ON i.id = d.invocation_id
        WHERE d.overdue_at <= clock_timestamp() AND i.status = 'running'
        FOR UPDATE OF i SKIP LOCKED
    LOOP
        IF v_inv.attempt < v_inv.max_attempts THEN
            PERFORM picloud.retry_invocation(v_inv.id, v_inv.attempt, v_lost, v_inv.logs, clock_timestamp());
        ELSE
            PERFORM picloud.finish_invocation(v_inv.id, v_inv.attempt, 'failed', NULL, v_lost, v_inv.logs, NULL, NULL);
        END IF;
    END LOOP;
    SELECT min(overdue_at) INTO v_next FROM picloud.run_here_deadlines;
    UPDATE picloud.rescue_clock SET next_at = v_next WHERE v_next IS NOT NULL AND (next_at IS NULL OR next_at > v_next);
    RETURN v_next;
END;
$$;

-- promote_due as in 0005, with both rescues.
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
    v_rescue := least(v_rescue, picloud.rescue_overdue_here());
    PERFORM pg_notify('picloud.river_insert', '{"queue":"picloud"}');
    RETURN least(v_rescue,
                 (SELECT min(scheduled_at) FROM picloud.river_job
                  WHERE state IN ('scheduled', 'retryable', 'available') AND queue = 'picloud' AND priority = 1
                    AND scheduled_at > clock_timestamp()),
                 (SELECT min(next_run_at) FROM picloud.schedules WHERE enabled));
END;
$$;

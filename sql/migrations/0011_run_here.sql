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
-- The River job is still written, as River's fetch would have left it
-- (running, attempted by this node), so that rescue_overdue takes the
-- invocation back if the node dies mid-run, exactly as for a fetched job.
-- No River client owns it, so the invocation row points at it and the
-- first status change away from running completes it.
ALTER TABLE picloud.invocations
    -- The running River job written by invoke_here, until the attempt it
    -- carries ends; NULL for every invocation started through River.
    ADD COLUMN run_here_job bigint;

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
    v_fn  record;
    v_id  bigint;
    v_job bigint;
    v_row picloud.invocations;
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
    INSERT INTO picloud.river_job (args, kind, max_attempts, queue, priority, state, attempt, attempted_at, attempted_by)
    VALUES (jsonb_build_object('invocation_id', v_id), 'picloud.invocation', 1, 'picloud', 1, 'running',
            1, clock_timestamp(), ARRAY[p_node])
    RETURNING id INTO v_job;
    INSERT INTO picloud.invocations
        (id, function, function_version, function_version_id, trigger, request, request_body, payload,
         timeout_ms, max_attempts, status, attempt, started_at, run_here_job)
    OVERRIDING SYSTEM VALUE
    VALUES
        (v_id, p_function, v_fn.version, v_fn.version_id, p_trigger, p_request, p_request_body, p_payload,
         coalesce(p_timeout_ms, v_fn.timeout_ms, 10000), coalesce(p_max_attempts, v_fn.max_attempts),
         'running', 1, clock_timestamp(), v_job)
    RETURNING * INTO v_row;
    PERFORM picloud.arm_rescue(v_row.started_at + v_row.timeout_ms * interval '1 millisecond' + picloud.rescue_grace());
    RETURN NEXT v_row;
END;
$$;

-- Whatever ends the attempt (finish, retry, cancel, rescue), the job that
-- carried it is done: no River client will complete it.
CREATE FUNCTION picloud.complete_run_here_job() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE picloud.river_job SET state = 'completed', finalized_at = clock_timestamp()
    WHERE id = OLD.run_here_job AND state = 'running';
    NEW.run_here_job := NULL;
    RETURN NEW;
END;
$$;

CREATE TRIGGER invocations_complete_run_here_job
    BEFORE UPDATE OF status ON picloud.invocations
    FOR EACH ROW
    WHEN (OLD.run_here_job IS NOT NULL AND NEW.status <> 'running')
    EXECUTE FUNCTION picloud.complete_run_here_job();

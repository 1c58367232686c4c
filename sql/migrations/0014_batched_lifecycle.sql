-- The batched hot path: invocations are started, finished and announced
-- many at a time.
--
-- Until now a worker paid one plpgsql call per invocation to start it (a
-- row trigger on River's fetch running start_invocation, about 140 µs of
-- server time each), one to finish it (finish_invocation, about 170 µs),
-- and one NOTIFY per finish from a row trigger. A worker now gathers the
-- invocations that are ready at the same moment and starts them in one
-- statement (start_invocations) and finishes them in one statement
-- (finish_invocations), with group commit: the first goes at once, those
-- that arrive while a statement is in flight go together in the next.
-- Announcements are made once per statement, as JSON arrays.

-- Announcements ---------------------------------------------------------------

-- notify_events sends p_events (JSON objects, in order) on p_channel as
-- JSON arrays, as many as pg_notify's payload limit (under 8,000 bytes)
-- requires. An invocation_event is about 250 bytes and never near 1,000
-- (a function name has at most 63 characters), so chunks cut at every
-- 7,000 bytes of running total stay under the limit. A batch of 1,000
-- finishes is about 40 notifications rather than 1,000.
CREATE FUNCTION picloud.notify_events(p_channel text, p_events text[]) RETURNS void
LANGUAGE plpgsql AS $$
-- plpgsql rather than sql: PostgreSQL plans a LANGUAGE sql function's
-- statement anew on every call, and this one runs in every statement that
-- changes an invocation's status (measured: 0.16 ms per call as sql, most
-- of a lone finish's trigger).
BEGIN
    CASE coalesce(cardinality(p_events), 0)
    WHEN 0 THEN
        RETURN;
    WHEN 1 THEN
        PERFORM pg_notify(p_channel, '[' || p_events[1] || ']');
    ELSE
        PERFORM pg_notify(p_channel, '[' || string_agg(e.event, ',' ORDER BY e.n) || ']')
        FROM (SELECT u.event, u.n, sum(octet_length(u.event) + 1) OVER (ORDER BY u.n) / 7000 AS chunk
              FROM unnest(p_events) WITH ORDINALITY AS u(event, n)) e
        GROUP BY e.chunk;
    END CASE;
END;
$$;

DROP TRIGGER invocations_announce_finished ON picloud.invocations;
DROP TRIGGER invocations_announce_progress ON picloud.invocations;
DROP TRIGGER invocations_announce_queued ON picloud.invocations;
DROP FUNCTION picloud.announce_finished();
DROP FUNCTION picloud.announce_progress();

-- announce_updates announces, once per statement, every invocation the
-- statement brought to a final status (picloud_finished, always) or to
-- queued or running (picloud_events, only while someone watches). A
-- statement-level trigger with transition tables: PostgreSQL does not allow
-- those with a column list (UPDATE OF status), so it runs for every update
-- of invocations and compares the old and new status itself.
CREATE FUNCTION picloud.announce_updates() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v_finished text[];
    v_progress text[];
BEGIN
    -- One pass over the statement's rows for both channels; the progress
    -- events are built only while someone watches.
    SELECT array_agg(picloud.invocation_event(n) ORDER BY n.id)
               FILTER (WHERE n.status IN ('succeeded', 'failed', 'timed_out', 'cancelled')),
           array_agg(picloud.invocation_event(n) ORDER BY n.id)
               FILTER (WHERE n.status IN ('queued', 'running') AND (SELECT until FROM picloud.event_watch) > now())
    INTO v_finished, v_progress
    FROM new_rows n JOIN old_rows o ON o.id = n.id
    WHERE o.status IS DISTINCT FROM n.status;
    PERFORM picloud.notify_events('picloud_finished', v_finished);
    PERFORM picloud.notify_events('picloud_events', v_progress);
    RETURN NULL;
END;
$$;

-- start_invocations opts out (picloud.announce_updates = 'off') and
-- announces its own steps: a start brings nothing to a final status, and
-- what it would announce (running) is wanted only while someone watches.
CREATE TRIGGER invocations_announce_updates
    AFTER UPDATE ON picloud.invocations
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT
    WHEN (current_setting('picloud.announce_updates', true) IS DISTINCT FROM 'off')
    EXECUTE FUNCTION picloud.announce_updates();

-- announce_inserted announces a new invocation (queued, or running when
-- started where it was written) while someone watches. A row trigger, with
-- a condition that lets a bulk insert opt out: picloud.enqueue_many sets
-- picloud.announce_inserts to 'off' for its INSERT and announces the batch
-- itself, once. (A statement-level trigger with a transition table cost a
-- bulk insert 14 µs a row for capturing rows nobody reads unless someone
-- watches: 29,000 rows/s against 48,000 without it.)
CREATE FUNCTION picloud.announce_inserted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF (SELECT until FROM picloud.event_watch) > now() THEN
        PERFORM pg_notify('picloud_events', '[' || picloud.invocation_event(NEW) || ']');
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER invocations_announce_inserted
    AFTER INSERT ON picloud.invocations
    FOR EACH ROW
    WHEN (current_setting('picloud.announce_inserts', true) IS DISTINCT FROM 'off')
    EXECUTE FUNCTION picloud.announce_inserted();

-- Starting --------------------------------------------------------------------

-- River's fetch no longer starts invocations: a row trigger inside River's
-- own statement ran start_invocation once per job, and bent River in a way
-- it does not know of. Workers start what River hands them with
-- start_invocations instead, many at a time.
DROP TRIGGER river_job_start_on_fetch ON picloud.river_job;
DROP FUNCTION picloud.start_on_fetch();

-- start_invocations starts the queued invocations among p_ids and returns
-- them; an id that is final already, running, or parked for a concurrency
-- slot is left out. Invocations of a function without max_concurrency (the
-- common case) start in one UPDATE; the others take start_invocation, one
-- at a time, under their function's lock. The rescue clock is armed once,
-- for the earliest deadline among them.
--
-- Its statements take generic plans (and so does finish_invocations's):
-- with array arguments PostgreSQL keeps choosing custom plans, planned
-- anew on every call, which cost a lone finish 0.2 ms of its 0.33 ms
-- (measured in a DO loop of 200 calls: 0.33 ms a call, 0.125 ms with
-- generic plans). The generic plan is the one wanted at any batch size:
-- index lookups by id.
CREATE FUNCTION picloud.start_invocations(p_ids bigint[]) RETURNS SETOF picloud.invocations
LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
    v_now     timestamptz := clock_timestamp();
    v_started picloud.invocations[];
    v_timeout integer;
    v_id      bigint;
BEGIN
    -- One statement for the common case; the limited check, the rescue
    -- clock and the per-row path cost nothing when they have nothing to do
    -- (a lone start took 0.78 ms with each as a statement of its own).
    -- The statement trigger stands aside (it cost a lone start 0.09 ms of
    -- 0.35): the running steps are announced below, while someone watches.
    PERFORM set_config('picloud.announce_updates', 'off', true);
    WITH started AS (
        UPDATE picloud.invocations i
        SET status = 'running', started_at = v_now, attempt = i.attempt + 1, parked = false
        WHERE i.id = ANY(p_ids) AND i.status = 'queued'
          AND NOT EXISTS (SELECT FROM picloud.functions f WHERE f.name = i.function AND f.max_concurrency IS NOT NULL)
        RETURNING i.*
    )
    SELECT array_agg(s ORDER BY s.id), min(s.timeout_ms) INTO v_started, v_timeout FROM started s;
    PERFORM set_config('picloud.announce_updates', '', true);
    IF v_started IS NOT NULL THEN
        PERFORM picloud.arm_rescue(v_now + v_timeout * interval '1 millisecond' + picloud.rescue_grace());
        IF (SELECT w.until FROM picloud.event_watch w) > now() THEN
            PERFORM picloud.notify_events('picloud_events', ARRAY(SELECT picloud.invocation_event(s) FROM unnest(v_started) s));
        END IF;
        RETURN QUERY SELECT * FROM unnest(v_started);
    END IF;

    IF coalesce(cardinality(v_started), 0) < cardinality(p_ids) THEN
        FOR v_id IN
            SELECT i.id FROM picloud.invocations i JOIN picloud.functions f ON f.name = i.function
            WHERE i.id = ANY(p_ids) AND i.status = 'queued' AND f.max_concurrency IS NOT NULL
            ORDER BY i.id
        LOOP
            RETURN QUERY SELECT * FROM picloud.start_invocation(v_id);
        END LOOP;
    END IF;
END;
$$;

-- hand_back returns a started attempt that never ran (it waited on this
-- node for a sandbox so long that the rescue would soon take it) to the
-- queue, as if it had not started: the attempt is not counted and no error
-- is recorded.
CREATE FUNCTION picloud.hand_back(p_id bigint, p_attempt integer) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    v_function text;
BEGIN
    UPDATE picloud.invocations
    SET status = 'queued', attempt = attempt - 1, started_at = CASE WHEN attempt > 1 THEN started_at END
    WHERE id = p_id AND status = 'running' AND attempt = p_attempt
    RETURNING function INTO v_function;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    PERFORM picloud.release_slot(v_function, p_id);
    PERFORM picloud.schedule_attempt(p_id, NULL);
    RETURN true;
END;
$$;

-- Finishing -------------------------------------------------------------------

-- finish_invocations records the outcomes of many running attempts in one
-- statement: element k of every array describes one attempt, as
-- finish_invocation's arguments do. It returns the attempts it finished;
-- one that no longer runs (cancelled, or rescued and restarted) is left
-- out. The kv writes and the invocations a successful script enqueued
-- commit with its result; slots are released, and parked invocations
-- admitted, once per function.
CREATE FUNCTION picloud.finish_invocations(
    p_ids      bigint[],
    p_attempts integer[],
    p_statuses text[],
    p_results  jsonb[],
    p_errors   text[],
    p_logs     jsonb[],
    p_kv       jsonb[],
    p_invokes  jsonb[]
) RETURNS SETOF picloud.invocations
LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
    v_now      timestamptz := clock_timestamp();
    v_rows     picloud.invocations[];
    v_effects  jsonb[];
    v_effect   jsonb;
    v_inv      jsonb;
    v_function text;
BEGIN
    -- One UPDATE for the batch; only the outcomes with kv writes or
    -- enqueued invocations take a loop. (A loop over every row, with an
    -- array appended to per row, made the statement 20% slower at 1,000.)
    WITH input AS (
        -- An empty error is none: Go's []string cannot hold a NULL.
        SELECT u.id, u.attempt, u.status, u.result, nullif(u.error, '') AS error, u.logs, u.kv, u.invokes
        FROM unnest(p_ids, p_attempts, p_statuses, p_results, p_errors, p_logs, p_kv, p_invokes)
            AS u(id, attempt, status, result, error, logs, kv, invokes)
    ), done AS (
        UPDATE picloud.invocations i
        SET status = x.status, result = x.result, error = x.error, logs = x.logs, finished_at = v_now,
            errors = CASE WHEN x.error IS NULL THEN i.errors
                          ELSE i.errors || jsonb_build_object('attempt', i.attempt, 'error', x.error, 'at', v_now) END
        FROM input x
        WHERE i.id = x.id AND i.status = 'running' AND i.attempt = x.attempt
        RETURNING i AS row, x.kv, x.invokes
    )
    SELECT array_agg(d.row),
           array_agg(jsonb_build_object('id', (d.row).id, 'function', (d.row).function, 'kv', d.kv, 'invokes', d.invokes))
               FILTER (WHERE (d.row).status = 'succeeded' AND (d.kv IS NOT NULL OR d.invokes IS NOT NULL))
    INTO v_rows, v_effects
    FROM done d;
    IF v_rows IS NULL THEN
        RETURN;
    END IF;

    FOREACH v_effect IN ARRAY coalesce(v_effects, '{}') LOOP
        IF jsonb_typeof(v_effect->'kv') = 'array' THEN
            PERFORM picloud.kv_apply(v_effect->>'function', v_effect->'kv');
        END IF;
        FOR v_inv IN SELECT * FROM jsonb_array_elements(CASE WHEN jsonb_typeof(v_effect->'invokes') = 'array'
                                                             THEN v_effect->'invokes' ELSE '[]' END) LOOP
            PERFORM picloud.enqueue_reserved(
                (v_inv->>'id')::bigint, v_inv->>'function', v_inv->'payload',
                v_inv->>'idempotency_key', (v_inv->>'run_at')::timestamptz, (v_effect->>'id')::bigint);
        END LOOP;
    END LOOP;

    FOR v_function IN
        WITH freed AS (
            DELETE FROM picloud.running_slots s
            WHERE s.invocation_id IN (SELECT r.id FROM unnest(v_rows) r)
            RETURNING s.function
        )
        SELECT DISTINCT f.function FROM freed f
    LOOP
        PERFORM picloud.admit_parked(v_function);
    END LOOP;
    RETURN QUERY SELECT * FROM unnest(v_rows);
END;
$$;

-- The SQL API ------------------------------------------------------------------

-- invoke, as in 0002, in plpgsql: as a LANGUAGE sql function its statement
-- was planned anew on every call, about 60 µs of the 320 µs one call cost
-- (issue 10's profile); plpgsql keeps the plan for the session.
CREATE OR REPLACE FUNCTION picloud.invoke(
    function_name   text,
    payload         jsonb DEFAULT '{}',
    idempotency_key text DEFAULT NULL,
    run_at          timestamptz DEFAULT NULL
) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    v_id bigint;
BEGIN
    SELECT i.id INTO v_id
    FROM picloud.enqueue_invocation($1, 'sql', NULL, NULL, coalesce($2, '{}'::jsonb), NULL, NULL, $3, $4) i;
    RETURN v_id;
END;
$$;

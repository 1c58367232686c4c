-- Set-based bulk enqueue: picloud.invoke_many writes N invocations, their N
-- River jobs and their idempotency keys with one INSERT ... SELECT each,
-- and wakes the workers once.
--
-- picloud.invoke per row from generate_series pays, for every row, a
-- plpgsql call of enqueue_invocation and schedule_attempt, a lookup of the
-- function, single-row INSERTs into invocations and river_job, a
-- pg_notify and an arm_rescue: 8,160 invocations a second on a 2-core
-- machine (100,000 in one statement). One statement per table instead
-- writes them at 43,400 a second, and 58,800 without the per-row trigger
-- invocations_announce_queued, next to River's InsertManyFast of as many
-- jobs at 98,700 (cmd/picloud-bench --scenarios enqueue, one run; more in
-- docs/architecture.md, "Bulk enqueue").

-- enqueue_many is the core that invoke_many and the REST batch share. It
-- creates one invocation per element of p_payloads (a NULL element is
-- '{}'), with trigger p_trigger and the function's timeout and
-- max_attempts, and returns, in payload order, each element's invocation
-- id and status: 'queued' for a new one; for an idempotency key still in
-- its window, the invocation the key first created and its current status,
-- as enqueue_invocation does. Elements that repeat a key within the call
-- share the invocation the first of them creates. p_idempotency_keys and
-- p_run_ats, when not NULL, hold one element (NULL: none) per payload.
-- p_trace_parent, when not NULL, sets picloud.trace_parent for the
-- transaction ('' clears it), which the trace_parent column's default
-- reads; NULL leaves the caller's setting alone.
--
-- It writes nothing when it raises. Errors:
--   PC404  the function does not exist;
--   PC400  an argument is malformed; the message names it.
CREATE FUNCTION picloud.enqueue_many(
    p_function         text,
    p_trigger          text,
    p_payloads         jsonb[],
    p_idempotency_keys text[],
    p_run_ats          timestamptz[],
    p_trace_parent     text
) RETURNS TABLE (id bigint, status text)
LANGUAGE plpgsql AS $$
DECLARE
    v_n       integer := cardinality(p_payloads);
    v_fn      record;
    v_now     timestamptz;
    v_keyed   boolean;
    v_ids     bigint[];
    v_due     boolean;
    v_next    timestamptz;
BEGIN
    IF p_function IS NULL THEN
        RAISE EXCEPTION 'picloud: function_name must not be null' USING ERRCODE = 'PC400';
    END IF;
    IF v_n IS NULL OR v_n = 0 THEN
        RAISE EXCEPTION 'picloud: payloads must be a non-empty array, not %',
            coalesce(p_payloads::text, 'NULL')
            USING ERRCODE = 'PC400', HINT = 'Pass one jsonb per invocation, e.g. ARRAY[''{}''::jsonb].';
    END IF;
    IF array_ndims(p_payloads) <> 1 THEN
        RAISE EXCEPTION 'picloud: payloads must be a one-dimensional array, not % dimensions', array_ndims(p_payloads)
            USING ERRCODE = 'PC400';
    END IF;
    IF v_n > picloud.invoke_many_max() THEN
        RAISE EXCEPTION 'picloud: payloads has % elements, at most % are allowed in one call', v_n, picloud.invoke_many_max()
            USING ERRCODE = 'PC400', HINT = 'Split the batch into several calls; they may share a transaction.';
    END IF;
    IF p_idempotency_keys IS NOT NULL
       AND (array_ndims(p_idempotency_keys) IS DISTINCT FROM 1 OR cardinality(p_idempotency_keys) <> v_n) THEN
        RAISE EXCEPTION 'picloud: idempotency_keys has % elements, payloads has %: give one key (or NULL) per payload',
            cardinality(p_idempotency_keys), v_n
            USING ERRCODE = 'PC400';
    END IF;
    IF p_run_ats IS NOT NULL AND (array_ndims(p_run_ats) IS DISTINCT FROM 1 OR cardinality(p_run_ats) <> v_n) THEN
        RAISE EXCEPTION 'picloud: run_at has % elements, payloads has %: give one time (or NULL) per payload',
            cardinality(p_run_ats), v_n
            USING ERRCODE = 'PC400';
    END IF;

    SELECT f.version, v.id AS version_id, coalesce(f.timeout_ms, 10000) AS timeout_ms, f.max_attempts INTO v_fn
    FROM picloud.functions f
    JOIN picloud.function_versions v ON v.function = f.name AND v.version = f.version
    WHERE f.name = p_function;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'picloud: function "%" does not exist', p_function
            USING ERRCODE = 'PC404', HINT = 'Create it with PUT /v1/functions/{name}.';
    END IF;

    IF p_trace_parent IS NOT NULL THEN
        PERFORM set_config('picloud.trace_parent', p_trace_parent, true);
    END IF;

    -- One clock reading decides, for every element, whether it is due now
    -- (an available job) or later (a scheduled one), as schedule_attempt
    -- decides for one.
    v_now := clock_timestamp();
    v_keyed := coalesce(cardinality(array_remove(p_idempotency_keys, NULL)) > 0, false);
    -- The row trigger that announces new invocations to event streams
    -- stands aside (see announce_inserted): the batch is announced once,
    -- below, and only while someone watches.
    PERFORM set_config('picloud.announce_inserts', 'off', true);

    IF NOT v_keyed THEN
        SELECT bool_or(r IS NULL OR r <= v_now), min(r) FILTER (WHERE r > v_now) INTO v_due, v_next
        FROM unnest(coalesce(p_run_ats, ARRAY[NULL::timestamptz])) r;
        -- Without keys every element is a new invocation. Ids are taken in
        -- the function scan's order, which is payload order, so they
        -- ascend with it, and so do the River jobs' ids: workers fetch the
        -- batch in payload order. MATERIALIZED: nextval must run once per
        -- element, not once per reference to the CTE.
        WITH input AS MATERIALIZED (
            SELECT nextval('picloud.invocations_id_seq') AS id, u.ord,
                   coalesce(u.payload, '{}'::jsonb) AS payload, u.run_at
            FROM unnest(p_payloads, p_run_ats) WITH ORDINALITY AS u(payload, run_at, ord)
        ), created AS (
            INSERT INTO picloud.invocations
                (id, function, function_version, function_version_id, trigger, payload, timeout_ms, max_attempts, run_at)
            OVERRIDING SYSTEM VALUE
            SELECT input.id, p_function, v_fn.version, v_fn.version_id, p_trigger, input.payload,
                   v_fn.timeout_ms, v_fn.max_attempts, input.run_at
            FROM input
        ), jobs AS (
            -- The columns and values schedule_attempt writes.
            INSERT INTO picloud.river_job (args, kind, max_attempts, queue, priority, state, scheduled_at)
            SELECT jsonb_build_object('invocation_id', input.id), 'picloud.invocation', 1, 'picloud', 1,
                   CASE WHEN input.run_at > v_now THEN 'scheduled' ELSE 'available' END::picloud.river_job_state,
                   CASE WHEN input.run_at > v_now THEN input.run_at ELSE now() END
            FROM input
        )
        SELECT array_agg(input.id ORDER BY input.ord) INTO v_ids FROM input;
        RETURN QUERY SELECT u.id, 'queued'::text FROM unnest(v_ids) WITH ORDINALITY AS u(id, ord) ORDER BY u.ord;
    ELSE
        -- With keys, an element creates an invocation when it has no key,
        -- or when it is the first with its key and the key is free (never
        -- used, or expired): the INSERT ... ON CONFLICT below claims free
        -- keys, as enqueue_invocation does one at a time. The others
        -- answer with the key's invocation. Keys are claimed in key order,
        -- so that two calls sharing keys lock them in the same order and
        -- wait for each other rather than deadlock.
        WITH input AS MATERIALIZED (
            SELECT u.ord, coalesce(u.payload, '{}'::jsonb) AS payload, u.key, u.run_at
            FROM unnest(p_payloads, p_idempotency_keys, p_run_ats) WITH ORDINALITY AS u(payload, key, run_at, ord)
        ), candidates AS MATERIALIZED (
            -- nextval runs after the sort (PostgreSQL evaluates volatile
            -- output expressions after ORDER BY): ids ascend with payload order.
            SELECT nextval('picloud.invocations_id_seq') AS id, c.ord, c.payload, c.key, c.run_at
            FROM (SELECT * FROM input WHERE input.key IS NULL
                  UNION ALL
                  (SELECT DISTINCT ON (input.key) * FROM input WHERE input.key IS NOT NULL ORDER BY input.key, input.ord)) c
            ORDER BY c.ord
        ), claimed AS (
            INSERT INTO picloud.idempotency_keys AS k (function, key, invocation_id, expires_at)
            SELECT p_function, c.key, c.id, now() + (SELECT s.idempotency_window FROM picloud.settings s)
            FROM candidates c WHERE c.key IS NOT NULL
            ORDER BY c.key
            ON CONFLICT (function, key) DO UPDATE
                SET invocation_id = excluded.invocation_id, expires_at = excluded.expires_at
                WHERE k.expires_at <= now()
            RETURNING k.key, k.invocation_id
        ), created AS MATERIALIZED (
            SELECT c.* FROM candidates c WHERE c.key IS NULL
            UNION ALL
            SELECT c.* FROM candidates c JOIN claimed USING (key)
        ), inserted AS (
            INSERT INTO picloud.invocations
                (id, function, function_version, function_version_id, trigger, payload, timeout_ms, max_attempts,
                 idempotency_key, run_at)
            OVERRIDING SYSTEM VALUE
            SELECT c.id, p_function, v_fn.version, v_fn.version_id, p_trigger, c.payload,
                   v_fn.timeout_ms, v_fn.max_attempts, c.key, c.run_at
            FROM created c ORDER BY c.ord
        ), jobs AS (
            INSERT INTO picloud.river_job (args, kind, max_attempts, queue, priority, state, scheduled_at)
            SELECT jsonb_build_object('invocation_id', c.id), 'picloud.invocation', 1, 'picloud', 1,
                   CASE WHEN c.run_at > v_now THEN 'scheduled' ELSE 'available' END::picloud.river_job_state,
                   CASE WHEN c.run_at > v_now THEN c.run_at ELSE now() END
            FROM created c ORDER BY c.ord
        )
        -- Per element: its new invocation, or NULL where its key is live.
        SELECT array_agg(CASE WHEN i.key IS NULL THEN c.id ELSE k.invocation_id END ORDER BY i.ord),
               (SELECT bool_or(c.run_at IS NULL OR c.run_at <= v_now) FROM created c),
               (SELECT min(c.run_at) FROM created c WHERE c.run_at > v_now)
        INTO v_ids, v_due, v_next
        FROM input i
        LEFT JOIN candidates c ON i.key IS NULL AND c.ord = i.ord
        LEFT JOIN claimed k ON k.key = i.key;

        IF array_position(v_ids, NULL) IS NULL THEN
            -- Every key was free, the usual case: nothing to look up.
            RETURN QUERY
            SELECT u.id, 'queued'::text FROM unnest(v_ids) WITH ORDINALITY AS u(id, ord) ORDER BY u.ord;
        ELSE
            -- A statement of its own, with a snapshot of its own: a key that
            -- a concurrent transaction claimed and committed while the
            -- INSERT above waited for it is visible here, and not in the
            -- INSERT's snapshot.
            RETURN QUERY
            SELECT coalesce(u.id, k.invocation_id),
                   CASE WHEN u.id IS NOT NULL THEN 'queued' ELSE inv.status END
            FROM unnest(v_ids, p_idempotency_keys) WITH ORDINALITY AS u(id, key, ord)
            LEFT JOIN picloud.idempotency_keys k ON u.id IS NULL AND k.function = p_function AND k.key = u.key
            LEFT JOIN picloud.invocations inv ON inv.id = k.invocation_id
            ORDER BY u.ord;
        END IF;
    END IF;

    PERFORM set_config('picloud.announce_inserts', '', true);
    IF (SELECT w.until FROM picloud.event_watch w) > now() THEN
        PERFORM picloud.notify_events('picloud_events', ARRAY(
            SELECT picloud.invocation_event(i) FROM picloud.invocations i
            WHERE i.id = ANY(v_ids) AND i.created_at >= v_now ORDER BY i.id));
    END IF;

    -- One wake-up and one rescue-clock check for the whole batch, where
    -- schedule_attempt sends them per row (PostgreSQL folds identical
    -- notifications, but each call still costs a lookup). The earliest
    -- scheduled element is enough for picloud_due: promote_due returns the
    -- next due time after it, and the timer re-arms for that.
    IF v_due THEN
        PERFORM pg_notify('picloud.river_insert', '{"queue":"picloud"}');
        PERFORM picloud.arm_rescue(clock_timestamp() + picloud.rescue_grace());
    END IF;
    IF v_next IS NOT NULL THEN
        PERFORM pg_notify('picloud_due', extract(epoch FROM v_next)::text);
    END IF;
END;
$$;

-- invoke_many_max is the most elements one call may carry. The rate is the
-- same from 1,000 to 1,000,000 payloads a call (20,600 to 22,800 rows/s on
-- one loaded machine), so the cap costs nothing; it keeps a call's arrays
-- (about 30 MB of jsonb for a million small payloads) well below
-- PostgreSQL's 1 GB limit on one value, which would fail with a less
-- precise error, and a single statement under a minute.
CREATE FUNCTION picloud.invoke_many_max() RETURNS integer
LANGUAGE sql IMMUTABLE AS $$ SELECT 1000000 $$;

-- The SQL API ----------------------------------------------------------------

-- invoke_many enqueues one invocation of function_name per element of
-- payloads and returns their ids in payload order: picloud.invoke for a
-- whole array in one statement. idempotency_keys, when given, holds one key
-- (or NULL) per payload; an element whose key is still in its window
-- returns the invocation the key first created, and elements repeating a
-- key within the call share one invocation. run_at schedules every element.
-- Like invoke, the invocations exist and run if, and only if, the calling
-- transaction commits.
--   SELECT * FROM picloud.invoke_many('thumbnail',
--       ARRAY(SELECT jsonb_build_object('i', g) FROM generate_series(1, 100000) g));
CREATE FUNCTION picloud.invoke_many(
    function_name    text,
    payloads         jsonb[],
    idempotency_keys text[] DEFAULT NULL,
    run_at           timestamptz DEFAULT NULL
) RETURNS SETOF bigint
LANGUAGE sql AS $$
    SELECT e.id FROM picloud.enqueue_many(
        function_name, 'sql', payloads, idempotency_keys,
        CASE WHEN run_at IS NOT NULL AND cardinality(payloads) > 0
             THEN array_fill(run_at, ARRAY[cardinality(payloads)]) END,
        NULL) e;
$$;

-- The invocation lifecycle: enqueue, start, finish, retry, hand back,
-- cancel. The state machine it implements is described in queue/doc.go:
--
--   queued ──start──▶ running ──finish──▶ succeeded | failed | timed_out
--     ▲  │ (parked while its function's slots are taken)  │
--     │  └──────────────cancel──────────────▶ cancelled ◀─┘
--     └──retry / hand back / rescue── running
--
-- Each concept has one definition here: function_head is the function
-- lookup, claim_idempotency_keys the idempotency upsert, create_invocations
-- the invocation insert; schedule_attempts (10_transport.sql) hands
-- attempts to the transport and overdue_at (50_rescue.sql) says when a
-- running attempt is overdue. Every statement that makes an attempt
-- running records it in running_attempts, and the statement trigger
-- invocations_updated deletes it whatever ends it, so the rescue sees every
-- running attempt, whatever fails in a worker after the start. The entry
-- points are set-based where
-- invocations come in crowds (enqueue_many, start_invocations,
-- finish_invocations) and per row where they come one at a time
-- (enqueue_invocation).

-- Enqueue ---------------------------------------------------------------------

-- function_head is what an enqueue needs of a function: its current
-- version, and the defaults of a new invocation. An inlined SQL function,
-- planned with its caller's query. The default timeout is 10 s.
CREATE OR REPLACE FUNCTION picloud.function_head(p_function text)
RETURNS TABLE (version integer, version_id bigint, timeout_ms integer, max_attempts integer,
               max_concurrency integer, auth text)
LANGUAGE sql STABLE AS $$
    SELECT f.version, v.id, coalesce(f.timeout_ms, 10000), f.max_attempts, f.max_concurrency, f.auth
    FROM picloud.functions f
    JOIN picloud.function_versions v ON v.function = f.name AND v.version = f.version
    WHERE f.name = p_function
$$;

-- claim_idempotency_keys claims the keys p_keys (distinct, not NULL) of
-- p_function for the invocations p_ids, element by element, and returns the
-- keys it claimed. A key is free when it was never used or its window
-- (settings.idempotency_window) has passed; a live key is left to the
-- invocation it first created, and is not returned. Keys are claimed in key
-- order, so that two calls sharing keys lock them in the same order and
-- wait for each other rather than deadlock.
--
-- A key longer than picloud.max_idempotency_key_length() characters is
-- refused with PC400, whichever way it came (REST, SQL, a script): keys
-- are compared and indexed whole, and a key of megabytes was accepted from
-- SQL and from scripts while REST refused it.
CREATE OR REPLACE FUNCTION picloud.claim_idempotency_keys(p_function text, p_keys text[], p_ids bigint[])
RETURNS TABLE (claimed_key text, claimed_id bigint)
LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
    v_long text;
BEGIN
    SELECT k INTO v_long FROM unnest(p_keys) k WHERE char_length(k) > picloud.max_idempotency_key_length() LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'picloud: idempotency key of % characters ("%..."): the most is %',
            char_length(v_long), left(v_long, 20), picloud.max_idempotency_key_length()
            USING ERRCODE = 'PC400';
    END IF;
    RETURN QUERY
    INSERT INTO picloud.idempotency_keys AS k (function, key, invocation_id, expires_at)
    SELECT p_function, u.key, u.id, now() + (SELECT s.idempotency_window FROM picloud.settings s)
    FROM unnest(p_keys, p_ids) AS u(key, id)
    ORDER BY u.key
    ON CONFLICT (function, key) DO UPDATE
        SET invocation_id = excluded.invocation_id, expires_at = excluded.expires_at
        WHERE k.expires_at <= now()
    RETURNING k.key, k.invocation_id;
END;
$$;

-- max_idempotency_key_length is the longest idempotency key, in
-- characters; the REST API's maxLength is the same.
CREATE OR REPLACE FUNCTION picloud.max_idempotency_key_length() RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT 255 $$;

-- max_invocation_depth is how deep a chain of invocations made by scripts
-- may go: an invocation at this depth may not invoke another. With at most
-- 100 invocations per run, it bounds what one call can set off, where a
-- function invoking itself once ran until it was deleted. 16 levels leave
-- room for any pipeline written by hand.
CREATE OR REPLACE FUNCTION picloud.max_invocation_depth() RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT 16 $$;

-- max_payload_bytes is the largest payload an invocation may have, as
-- stored (jsonb's binary form, which pg_column_size reads from the header).
-- A payload is decoded into a Lua table before the script starts, whether
-- it reads it or not, and a 3,000,000-element one killed the sandbox; the
-- binary size counts each element (about 8 to 12 bytes for a small number,
-- against 2 as text), so it bounds that work better than the text's length
-- does. 8 MiB takes any 6 MiB REST body of strings or objects, and about
-- 700,000 small numbers.
CREATE OR REPLACE FUNCTION picloud.max_payload_bytes() RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT 8388608 $$;

-- refuse_payload raises the PC400 of a payload over max_payload_bytes:
-- element p_n of its call, of p_size bytes.
CREATE OR REPLACE FUNCTION picloud.refuse_payload(p_n bigint, p_size integer) RETURNS jsonb
LANGUAGE plpgsql
AS $$
BEGIN
    RAISE EXCEPTION 'picloud: payload % is % bytes as stored, over the limit of % bytes', p_n, p_size, picloud.max_payload_bytes()
        USING ERRCODE = 'PC400', HINT = 'Pass large data by reference (a kv key, a URL) rather than in the payload.';
END;
$$;

-- create_invocations writes the invocation rows p_ids of one function
-- version, element k with payload p_payloads[k], idempotency key p_keys[k]
-- and run_at p_run_ats[k] (a NULL array: none for any), in p_ids' order.
-- They are queued, or, with p_running, running their first attempt from
-- now, where they were written (see enqueue_invocation). It does not hand
-- them to the transport: its callers do, for as many as need it.
--
-- Invocations of a script (p_parent_id) are one level deeper than their
-- parent, and refused with PC400 past picloud.max_invocation_depth() (the
-- script's picloud.invoke refuses them first, with a Lua error).
--
-- A payload over picloud.max_payload_bytes() is refused with PC400 (see
-- there). The check is made in the INSERT's own pass over the payloads,
-- with pg_column_size, which reads the size from the value's header
-- without decoding it; refuse_payload runs only for a payload refused.
--
-- A run_at outside [2000-01-01, 10000-01-01) UTC (±infinity included) is
-- refused with PC400: such a time is a mistake, and one that a client
-- cannot even read back (JSON and most languages stop at year 9999); the
-- REST API and the scripts' picloud.invoke refuse the same range.
CREATE OR REPLACE FUNCTION picloud.create_invocations(
    p_function     text,
    p_version      integer,
    p_version_id   bigint,
    p_trigger      text,
    p_ids          bigint[],
    p_payloads     jsonb[],
    p_keys         text[],
    p_run_ats      timestamptz[],
    p_timeout_ms   integer,
    p_max_attempts integer,
    p_request      jsonb,
    p_request_body bytea,
    p_parent_id    bigint,
    p_running      boolean
) RETURNS void
LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
    v_bad   timestamptz;
    v_depth integer := 0;
BEGIN
    IF p_parent_id IS NOT NULL THEN
        SELECT p.depth + 1 INTO v_depth FROM picloud.invocations p WHERE p.id = p_parent_id;
        v_depth := coalesce(v_depth, 1);
        IF v_depth > picloud.max_invocation_depth() THEN
            RAISE EXCEPTION 'picloud: invocation chain too deep: invocation % is at depth %, the most is %',
                p_parent_id, v_depth - 1, picloud.max_invocation_depth()
                USING ERRCODE = 'PC400';
        END IF;
    END IF;
    IF p_run_ats IS NOT NULL THEN
        SELECT r INTO v_bad FROM unnest(p_run_ats) r
        WHERE r < '2000-01-01 00:00:00+00' OR r >= '10000-01-01 00:00:00+00'
        LIMIT 1;
        IF FOUND THEN
            RAISE EXCEPTION 'picloud: run_at % is outside the times PiCloud schedules', v_bad
                USING ERRCODE = 'PC400', HINT = 'Give a time from 2000-01-01 to 9999-12-31 UTC, or NULL for now.';
        END IF;
    END IF;
    INSERT INTO picloud.invocations
        (id, function, function_version, function_version_id, trigger, request, request_body, payload,
         timeout_ms, max_attempts, idempotency_key, run_at, parent_id, status, attempt, started_at, depth)
    OVERRIDING SYSTEM VALUE
    SELECT u.id, p_function, p_version, p_version_id, p_trigger, p_request, p_request_body,
           CASE WHEN pg_column_size(u.payload) > picloud.max_payload_bytes()
                THEN picloud.refuse_payload(u.n, pg_column_size(u.payload))
                ELSE u.payload END,
           p_timeout_ms, p_max_attempts, u.key, u.run_at, p_parent_id,
           CASE WHEN p_running THEN 'running' ELSE 'queued' END,
           CASE WHEN p_running THEN 1 ELSE 0 END,
           CASE WHEN p_running THEN clock_timestamp() END,
           v_depth
    FROM unnest(p_ids, p_payloads, p_keys, p_run_ats) WITH ORDINALITY AS u(id, payload, key, run_at, n)
    WHERE u.id IS NOT NULL
    ORDER BY u.n;
END;
$$;

-- enqueue_invocation writes one invocation and returns it; for an
-- idempotency key still in its window it returns, unchanged, the
-- invocation the key first created. Null timeout and max_attempts take the
-- function's settings.
--
-- With p_node, it starts the invocation at once on that node when nothing
-- makes it wait (no key, no run_at, and no max_concurrency, whose slot count
-- needs start_invocation's lock and parking): the row is written running,
-- with no transport job, and its row in running_attempts names the node. The caller tells the two apart by
-- the returned status: running means "run it now, here". This saves a
-- synchronous call two wake-ups and two writes (the transport's fetch and
-- the start) before Lua starts.
--
-- An HTTP call (p_trigger 'http') to a function with auth 'key' from a
-- caller without a key (p_authenticated false) is refused here, so that a
-- public call stays one round trip. p_trace_parent, when not NULL, sets
-- picloud.trace_parent for the transaction, which the trace_parent column's
-- default reads.
--
-- Errors: PC404 the function does not exist; PC401 it needs an API key.
CREATE OR REPLACE FUNCTION picloud.enqueue_invocation(
    p_function        text,
    p_trigger         text,
    p_request         jsonb,
    p_request_body    bytea,
    p_payload         jsonb,
    p_timeout_ms      integer,
    p_max_attempts    integer,
    p_idempotency_key text,
    p_run_at          timestamptz,
    p_authenticated   boolean,
    p_trace_parent    text,
    p_node            text
) RETURNS SETOF picloud.invocations
LANGUAGE plpgsql AS $$
DECLARE
    v_fn   record;
    v_id   bigint;
    v_here boolean;
    v_row  picloud.invocations;
BEGIN
    SELECT * INTO v_fn FROM picloud.function_head(p_function);
    IF NOT FOUND THEN
        RAISE EXCEPTION 'picloud: function "%" does not exist', p_function
            USING ERRCODE = 'PC404', HINT = 'Create it with PUT /v1/functions/{name}.';
    END IF;
    IF p_trigger = 'http' AND p_authenticated IS FALSE AND v_fn.auth = 'key' THEN
        RAISE EXCEPTION 'picloud: function "%" needs an API key', p_function
            USING ERRCODE = 'PC401', HINT = 'Send Authorization: Bearer <key> with an invoke or admin key.';
    END IF;
    IF p_trace_parent IS NOT NULL THEN
        PERFORM set_config('picloud.trace_parent', p_trace_parent, true);
    END IF;

    v_id := nextval('picloud.invocations_id_seq');
    IF p_idempotency_key IS NOT NULL THEN
        PERFORM FROM picloud.claim_idempotency_keys(p_function, ARRAY[p_idempotency_key], ARRAY[v_id]);
        IF NOT FOUND THEN
            -- The key is live: answer with its invocation, run nothing.
            RETURN QUERY
                SELECT i.* FROM picloud.invocations i
                JOIN picloud.idempotency_keys k ON k.invocation_id = i.id
                WHERE k.function = p_function AND k.key = p_idempotency_key;
            RETURN;
        END IF;
    END IF;

    v_here := p_node IS NOT NULL AND p_idempotency_key IS NULL AND p_run_at IS NULL AND v_fn.max_concurrency IS NULL;
    PERFORM picloud.create_invocations(
        p_function, v_fn.version, v_fn.version_id, p_trigger, ARRAY[v_id], ARRAY[p_payload],
        ARRAY[p_idempotency_key], ARRAY[p_run_at], coalesce(p_timeout_ms, v_fn.timeout_ms),
        coalesce(p_max_attempts, v_fn.max_attempts), p_request, p_request_body, NULL, v_here);
    SELECT * INTO v_row FROM picloud.invocations WHERE id = v_id;
    IF v_here THEN
        INSERT INTO picloud.running_attempts (invocation_id, node) VALUES (v_id, p_node);
        PERFORM picloud.arm_rescue(picloud.overdue_at(v_row.started_at, v_row.timeout_ms));
    ELSE
        PERFORM picloud.schedule_attempts(ARRAY[v_id], ARRAY[p_run_at]);
    END IF;
    RETURN NEXT v_row;
END;
$$;

-- enqueue_many creates one invocation per element of p_payloads (a NULL
-- element is '{}'), with trigger p_trigger and the function's timeout and
-- max_attempts, and returns, in payload order, each element's invocation
-- id and status: 'queued' for a new one; for an idempotency key still in
-- its window, the invocation the key first created and its current status,
-- as enqueue_invocation does. Elements that repeat a key within the call
-- share the invocation the first of them creates. p_idempotency_keys and
-- p_run_ats, when not NULL, hold one element (NULL: none) per payload.
-- p_trace_parent, when not NULL, sets picloud.trace_parent for the
-- transaction ('' clears it); NULL leaves the caller's setting alone.
-- invoke_many and the REST batch share it.
--
-- Measured on a 2-core machine (cmd/picloud-bench --scenarios enqueue):
-- picloud.invoke per row from generate_series, 8,160 invocations a second;
-- this, one statement per table, about 46,000, next to River's
-- InsertManyFast of as many jobs at 98,700.
--
-- It writes nothing when it raises. Errors:
--   PC404  the function does not exist;
--   PC400  an argument is malformed; the message names it.
CREATE OR REPLACE FUNCTION picloud.enqueue_many(
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
    v_ids     bigint[];
    v_created bigint[];
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

    SELECT * INTO v_fn FROM picloud.function_head(p_function);
    IF NOT FOUND THEN
        RAISE EXCEPTION 'picloud: function "%" does not exist', p_function
            USING ERRCODE = 'PC404', HINT = 'Create it with PUT /v1/functions/{name}.';
    END IF;
    IF p_trace_parent IS NOT NULL THEN
        PERFORM set_config('picloud.trace_parent', p_trace_parent, true);
    END IF;

    -- An id per element, ascending with payload order, so that workers
    -- fetch the batch in that order.
    v_ids := ARRAY(SELECT nextval('picloud.invocations_id_seq') FROM generate_series(1, v_n));
    IF coalesce(cardinality(array_remove(p_idempotency_keys, NULL)) > 0, false) THEN
        -- An element creates an invocation when it has no key, or when it
        -- is the first with its key and claims it; the others answer with
        -- the key's invocation (NULL in v_created).
        WITH firsts AS (
            SELECT DISTINCT ON (u.key) u.key, u.id
            FROM unnest(p_idempotency_keys, v_ids) WITH ORDINALITY AS u(key, id, n)
            WHERE u.key IS NOT NULL
            ORDER BY u.key, u.n
        ), claimed AS (
            SELECT c.claimed_key, c.claimed_id
            FROM picloud.claim_idempotency_keys(p_function,
                     ARRAY(SELECT f.key FROM firsts f), ARRAY(SELECT f.id FROM firsts f)) c
        )
        SELECT array_agg(CASE WHEN u.key IS NULL OR c.claimed_id = u.id THEN u.id END ORDER BY u.n)
        INTO v_created
        FROM unnest(p_idempotency_keys, v_ids) WITH ORDINALITY AS u(key, id, n)
        LEFT JOIN claimed c ON c.claimed_key = u.key;
    ELSE
        v_created := v_ids;
    END IF;

    -- The row trigger that announces new invocations to event streams
    -- stands aside (see announce_inserted): the batch is announced once,
    -- below, and only while someone watches.
    PERFORM set_config('picloud.announce_inserts', 'off', true);
    PERFORM picloud.create_invocations(
        p_function, v_fn.version, v_fn.version_id, p_trigger, v_created,
        ARRAY(SELECT coalesce(u.p, '{}'::jsonb) FROM unnest(p_payloads) WITH ORDINALITY AS u(p, n) ORDER BY u.n),
        p_idempotency_keys, p_run_ats, v_fn.timeout_ms, v_fn.max_attempts, NULL, NULL, NULL, false);
    PERFORM set_config('picloud.announce_inserts', '', true);
    PERFORM picloud.schedule_attempts(v_created, p_run_ats);
    IF (SELECT w.until FROM picloud.event_watch w) > now() THEN
        PERFORM picloud.notify_events('picloud_events', ARRAY(
            SELECT picloud.invocation_event(i) FROM picloud.invocations i
            WHERE i.id = ANY(v_created) ORDER BY i.id));
    END IF;

    IF array_position(v_created, NULL) IS NULL THEN
        -- Every element created its invocation, the usual case.
        RETURN QUERY SELECT u.id, 'queued'::text FROM unnest(v_created) WITH ORDINALITY AS u(id, n) ORDER BY u.n;
        RETURN;
    END IF;
    -- A statement of its own, with a snapshot of its own: a key that a
    -- concurrent transaction claimed and committed while the claim above
    -- waited for it is visible here, and not in the claim's snapshot.
    RETURN QUERY
    SELECT coalesce(u.id, inv.id), CASE WHEN u.id IS NOT NULL THEN 'queued' ELSE inv.status END
    FROM unnest(v_created, p_idempotency_keys) WITH ORDINALITY AS u(id, key, n)
    LEFT JOIN picloud.idempotency_keys k ON u.id IS NULL AND k.function = p_function AND k.key = u.key
    LEFT JOIN picloud.invocations inv ON inv.id = k.invocation_id
    ORDER BY u.n;
END;
$$;

-- invoke_many_max is the most elements one enqueue_many call may carry.
-- The rate is the same from 1,000 to 1,000,000 payloads a call, so the cap
-- costs nothing; it keeps a call's arrays (about 30 MB of jsonb for a
-- million small payloads) well below PostgreSQL's 1 GB limit on one value,
-- which would fail with a less precise error, and a single statement under
-- a minute.
CREATE OR REPLACE FUNCTION picloud.invoke_many_max() RETURNS integer
LANGUAGE sql IMMUTABLE AS $$ SELECT 1000000 $$;

-- reserve_invocation_id checks that a function exists and reserves the id
-- of an invocation a running script enqueues; the row is written by
-- enqueue_reserved when the script's outcome is recorded, if it succeeded.
CREATE OR REPLACE FUNCTION picloud.reserve_invocation_id(p_function text) RETURNS bigint
LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT FROM picloud.functions WHERE name = p_function) THEN
        RAISE EXCEPTION 'picloud: function "%" does not exist', p_function USING ERRCODE = 'PC404';
    END IF;
    RETURN nextval('picloud.invocations_id_seq');
END;
$$;

-- enqueue_reserved enqueues an invocation made by a script, under the id it
-- reserved. The function may have been deleted since: then nothing is
-- enqueued. A live idempotency key keeps its first invocation.
CREATE OR REPLACE FUNCTION picloud.enqueue_reserved(
    p_id              bigint,
    p_function        text,
    p_payload         jsonb,
    p_idempotency_key text,
    p_run_at          timestamptz,
    p_parent_id       bigint
) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_fn record;
BEGIN
    SELECT * INTO v_fn FROM picloud.function_head(p_function);
    IF NOT FOUND THEN
        RETURN;
    END IF;
    IF p_idempotency_key IS NOT NULL THEN
        PERFORM FROM picloud.claim_idempotency_keys(p_function, ARRAY[p_idempotency_key], ARRAY[p_id]);
        IF NOT FOUND THEN
            RETURN;
        END IF;
    END IF;
    PERFORM picloud.create_invocations(
        p_function, v_fn.version, v_fn.version_id, 'function', ARRAY[p_id], ARRAY[coalesce(p_payload, '{}'::jsonb)],
        ARRAY[p_idempotency_key], ARRAY[p_run_at], v_fn.timeout_ms, v_fn.max_attempts, NULL, NULL, p_parent_id, false);
    PERFORM picloud.schedule_attempts(ARRAY[p_id], ARRAY[p_run_at]);
END;
$$;

-- Start -----------------------------------------------------------------------

-- start_invocations starts the queued invocations among p_ids and returns
-- them; an id that is final already, running, or parked for a concurrency
-- slot is left out. Invocations of a function without max_concurrency (the
-- common case) start in one UPDATE; the others take start_invocation, one
-- at a time, under their function's lock. The rescue clock is armed once,
-- for the earliest deadline among them.
--
-- Its statements take generic plans (and so do finish_invocations's): with
-- array arguments PostgreSQL keeps choosing custom plans, planned anew on
-- every call, which cost a lone finish 0.2 ms of its 0.33 ms (measured in a
-- DO loop of 200 calls: 0.33 ms a call, 0.125 ms with generic plans). The
-- generic plan is the one wanted at any batch size: index lookups by id.
CREATE OR REPLACE FUNCTION picloud.start_invocations(p_ids bigint[]) RETURNS SETOF picloud.invocations
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
    -- The statement trigger stands aside: the running steps are announced
    -- below, while someone watches.
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
        INSERT INTO picloud.running_attempts (invocation_id) SELECT s.id FROM unnest(v_started) s;
        PERFORM picloud.arm_rescue(picloud.overdue_at(v_now, v_timeout));
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

-- start_invocation starts one queued invocation of a function with
-- max_concurrency, or parks it while every slot is taken, in which case it
-- returns nothing (as it does for an invocation that is not queued: a
-- running one belongs to a worker, or, if that worker died, to the rescue).
--
-- The function row lock serializes the count of held slots with every
-- other start and with release_slot, so max_concurrency holds across any
-- number of workers. Each statement of a plpgsql function sees rows
-- committed before it began, so the count after the lock is current.
CREATE OR REPLACE FUNCTION picloud.start_invocation(p_id bigint) RETURNS SETOF picloud.invocations
LANGUAGE plpgsql AS $$
DECLARE
    v_function text;
    v_limit    integer;
    v_row      picloud.invocations;
BEGIN
    SELECT i.function INTO v_function
    FROM picloud.invocations i
    WHERE i.id = p_id AND i.status = 'queued';
    IF NOT FOUND THEN
        RETURN;
    END IF;
    SELECT f.max_concurrency INTO v_limit FROM picloud.functions f WHERE f.name = v_function FOR UPDATE;
    IF v_limit IS NOT NULL THEN
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
    INSERT INTO picloud.running_attempts (invocation_id) VALUES (p_id);
    PERFORM picloud.arm_rescue(picloud.overdue_at(v_row.started_at, v_row.timeout_ms));
    RETURN NEXT v_row;
END;
$$;

-- admit_parked hands to the transport as many parked invocations of
-- p_function, oldest first, as its free slots allow (all of them once it
-- has no limit). It runs when a slot is released and when the function's
-- limit changes.
CREATE OR REPLACE FUNCTION picloud.admit_parked(p_function text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_limit integer;
    v_free  bigint;
    v_ids   bigint[];
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
    WITH admitted AS (
        SELECT i.id FROM picloud.invocations i
        WHERE i.function = p_function AND i.parked AND i.status = 'queued'
        ORDER BY i.id
        LIMIT v_free
        FOR UPDATE SKIP LOCKED
    ), unparked AS (
        UPDATE picloud.invocations i SET parked = false FROM admitted WHERE i.id = admitted.id
        RETURNING i.id
    )
    SELECT array_agg(u.id ORDER BY u.id) INTO v_ids FROM unparked u;
    PERFORM picloud.schedule_attempts(v_ids);
END;
$$;

-- release_slot runs after invocation p_id stops running. Only an
-- invocation that held a slot (its function had a limit when it started)
-- can free one, so a function without a limit pays one index probe here.
CREATE OR REPLACE FUNCTION picloud.release_slot(p_function text, p_id bigint) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM picloud.running_slots WHERE invocation_id = p_id;
    IF FOUND THEN
        PERFORM picloud.admit_parked(p_function);
    END IF;
END;
$$;

-- Finish ----------------------------------------------------------------------

-- finish_invocations records the outcomes of running attempts in one
-- statement: element k of every array describes one attempt (p_attempts
-- names it, so that a worker presumed dead, whose invocation was rescued
-- and restarted, cannot overwrite the new attempt). It returns the attempts
-- it finished; one that no longer runs (cancelled, or rescued) is left out.
-- What a successful script asked for commits with its result or not at
-- all: its kv writes (p_kv: [{"op": "set", "key": k, "value": v, "ttl":
-- seconds|null}, {"op": "delete", "key": k}]) and the invocations it
-- enqueued (p_invokes: [{"id", "function", "payload", "idempotency_key",
-- "run_at"}], ids reserved while it ran). Slots are released, and parked
-- invocations admitted, once per function. The statement trigger
-- announces the finished rows.
CREATE OR REPLACE FUNCTION picloud.finish_invocations(
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

-- retry_invocation ends a failed attempt p_attempt that has attempts left:
-- the error joins the invocation's errors, and the next attempt is due at
-- p_due.
CREATE OR REPLACE FUNCTION picloud.retry_invocation(p_id bigint, p_attempt integer, p_error text, p_logs jsonb, p_due timestamptz)
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
    PERFORM picloud.schedule_attempts(ARRAY[p_id], ARRAY[p_due]);
    RETURN NEXT v_row;
END;
$$;

-- hand_back returns a started attempt that never ran (it waited on this
-- node for a sandbox so long that the rescue would soon take it) to the
-- queue, as if it had not started: the attempt is not counted and no error
-- is recorded.
CREATE OR REPLACE FUNCTION picloud.hand_back(p_id bigint, p_attempt integer) RETURNS boolean
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
    PERFORM picloud.schedule_attempts(ARRAY[p_id]);
    RETURN true;
END;
$$;

-- cancel stops an invocation: a queued one never runs, a running one is
-- stopped in its sandbox (its worker hears picloud_cancel). It returns the
-- invocation's status afterwards; a finished invocation is left as it is.
-- Error: PC405 there is no such invocation.
CREATE OR REPLACE FUNCTION picloud.cancel(p_id bigint) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    v_before   text;
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

-- Retired: the row trigger that ended run-here bookkeeping is replaced by
-- picloud.invocations_updated (20_notifications.sql), per statement.
DROP TRIGGER IF EXISTS invocations_end_run_here ON picloud.invocations;
DROP FUNCTION IF EXISTS picloud.end_run_here();

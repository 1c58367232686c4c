-- What scripts reach outside their sandbox: a key-value store per
-- function, configuration and secrets, outbound HTTP to allowed hosts, and
-- invocations of other functions.

-- Hosts a function may reach with http.request; empty means none. An entry
-- is a host name ("api.example.com"), a wildcard for its subdomains
-- ("*.example.com"), or either with a port ("localhost:8080").
ALTER TABLE picloud.functions
    ADD COLUMN http_allow text[] NOT NULL DEFAULT '{}';

-- An invocation a script enqueues with picloud.invoke has trigger
-- 'function' and remembers which invocation made it.
ALTER TABLE picloud.invocations
    DROP CONSTRAINT invocation_trigger,
    ADD CONSTRAINT invocation_trigger CHECK (trigger IN ('http', 'api', 'sql', 'schedule', 'function')),
    ADD COLUMN parent_id bigint;

-- Per-function key-value state, readable from SQL. Keys sort bytewise (C)
-- so that a prefix is a range scan.
CREATE TABLE picloud.kv (
    function   text NOT NULL REFERENCES picloud.functions (name) ON DELETE CASCADE,
    key        text COLLATE "C" NOT NULL
               CONSTRAINT kv_key_length CHECK (length(key) BETWEEN 1 AND 1024),
    value      jsonb NOT NULL,
    expires_at timestamptz,
    updated_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (function, key)
);

-- Configuration (readable back) and secrets (write-only through the API),
-- given to each invocation as env.NAME and secrets.NAME.
CREATE TABLE picloud.function_env (
    function text NOT NULL REFERENCES picloud.functions (name) ON DELETE CASCADE,
    name     text NOT NULL CONSTRAINT function_env_name CHECK (name ~ '^[A-Za-z_][A-Za-z0-9_]{0,127}$'),
    value    text NOT NULL,
    secret   boolean NOT NULL,
    PRIMARY KEY (function, name)
);

-- kv_apply applies the buffered writes of an invocation, in order:
-- [{"op": "set", "key": k, "value": v, "ttl": seconds|null}, {"op": "delete", "key": k}].
CREATE FUNCTION picloud.kv_apply(p_function text, p_ops jsonb) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_op jsonb;
BEGIN
    FOR v_op IN SELECT * FROM jsonb_array_elements(coalesce(p_ops, '[]'::jsonb)) LOOP
        IF v_op->>'op' = 'set' THEN
            INSERT INTO picloud.kv AS k (function, key, value, expires_at)
            VALUES (p_function, v_op->>'key', v_op->'value',
                    clock_timestamp() + make_interval(secs => (v_op->>'ttl')::float8))
            ON CONFLICT (function, key) DO UPDATE
                SET value = excluded.value, expires_at = excluded.expires_at, updated_at = clock_timestamp();
        ELSIF v_op->>'op' = 'delete' THEN
            DELETE FROM picloud.kv WHERE function = p_function AND key = v_op->>'key';
        ELSE
            RAISE EXCEPTION 'picloud: unknown kv operation %', v_op->>'op' USING ERRCODE = 'PC400';
        END IF;
    END LOOP;
END;
$$;

-- kv_incr adds p_by to a numeric value (a missing or expired key counts as
-- 0) and returns the sum. It commits at once rather than with the
-- invocation: a counter shared by concurrent invocations must be atomic.
CREATE FUNCTION picloud.kv_incr(p_function text, p_key text, p_by numeric) RETURNS numeric
LANGUAGE plpgsql AS $$
DECLARE
    v_sum numeric;
BEGIN
    INSERT INTO picloud.kv AS k (function, key, value)
    VALUES (p_function, p_key, to_jsonb(p_by))
    ON CONFLICT (function, key) DO UPDATE
        SET value = to_jsonb(CASE WHEN k.expires_at <= clock_timestamp() THEN 0
                                  ELSE (k.value #>> '{}')::numeric END + p_by),
            expires_at = CASE WHEN k.expires_at <= clock_timestamp() THEN NULL ELSE k.expires_at END,
            updated_at = clock_timestamp()
    RETURNING (value #>> '{}')::numeric INTO v_sum;
    RETURN v_sum;
EXCEPTION WHEN invalid_text_representation THEN
    RAISE EXCEPTION 'picloud: kv value of "%" is not a number', p_key USING ERRCODE = 'PC400';
END;
$$;

DROP FUNCTION picloud.finish_invocation(bigint, text, jsonb, text, jsonb);

-- finish_invocation records the outcome of the running attempt together
-- with what the script asked to happen on success: its kv writes and the
-- invocations it enqueued (with ids reserved while it ran). They commit
-- with the result or not at all. The trigger invocations_announce_finished
-- sends the NOTIFY.
CREATE FUNCTION picloud.finish_invocation(
    p_id      bigint,
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
    WHERE id = p_id AND status = 'running'
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

-- reserve_invocation_id checks that a function exists and reserves the id
-- of an invocation a running script enqueues; the row is written by
-- finish_invocation if the script succeeds.
CREATE FUNCTION picloud.reserve_invocation_id(p_function text) RETURNS bigint
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
-- enqueued.
CREATE FUNCTION picloud.enqueue_reserved(
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
    SELECT f.version, v.id AS version_id, f.timeout_ms, f.max_attempts INTO v_fn
    FROM picloud.functions f
    JOIN picloud.function_versions v ON v.function = f.name AND v.version = f.version
    WHERE f.name = p_function;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    IF p_idempotency_key IS NOT NULL THEN
        INSERT INTO picloud.idempotency_keys AS k (function, key, invocation_id, expires_at)
        VALUES (p_function, p_idempotency_key, p_id, now() + (SELECT idempotency_window FROM picloud.settings))
        ON CONFLICT (function, key) DO UPDATE
            SET invocation_id = excluded.invocation_id, expires_at = excluded.expires_at
            WHERE k.expires_at <= now();
        IF NOT FOUND THEN
            RETURN; -- the key is live: its first invocation stands
        END IF;
    END IF;
    INSERT INTO picloud.invocations
        (id, function, function_version, function_version_id, trigger, payload, timeout_ms, max_attempts,
         idempotency_key, run_at, parent_id)
    OVERRIDING SYSTEM VALUE
    VALUES
        (p_id, p_function, v_fn.version, v_fn.version_id, 'function', coalesce(p_payload, '{}'::jsonb),
         coalesce(v_fn.timeout_ms, 10000), v_fn.max_attempts, p_idempotency_key, p_run_at, p_parent_id);
    PERFORM picloud.schedule_attempt(p_id, p_run_at);
END;
$$;

-- Expired kv entries are invisible at once; the sweep also deletes them.
CREATE OR REPLACE FUNCTION picloud.sweep() RETURNS timestamptz
LANGUAGE plpgsql AS $$
DECLARE
    v_retention interval;
BEGIN
    SELECT retention INTO v_retention FROM picloud.settings;
    DELETE FROM picloud.invocations WHERE finished_at < clock_timestamp() - v_retention;
    DELETE FROM picloud.idempotency_keys WHERE expires_at < clock_timestamp();
    DELETE FROM picloud.kv WHERE expires_at < clock_timestamp();
    RETURN (SELECT min(finished_at) FROM picloud.invocations WHERE finished_at IS NOT NULL) + v_retention;
END;
$$;

-- The SQL API: what applications call from their own transactions and
-- triggers. Each call takes effect if, and only if, the calling transaction
-- commits. Errors carry SQLSTATEs of their own: PC404 (no such function),
-- PC405 (no such invocation), PC400 (a malformed argument).

-- invoke enqueues an invocation of function_name with the payload, seen by
-- the script as req.payload (req.trigger is 'sql'), and returns its id. An
-- idempotency key still in its window returns the invocation it first
-- created; run_at delays the run. plpgsql rather than sql: as a LANGUAGE sql
-- function its statement was planned anew on every call, about 60 µs of
-- the 320 µs one call cost; plpgsql keeps the plan for the session.
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
    IF $1 IS NULL THEN
        RAISE EXCEPTION 'picloud: function_name must not be null' USING ERRCODE = 'PC400';
    END IF;
    SELECT i.id INTO v_id
    FROM picloud.enqueue_invocation($1, 'sql', NULL, NULL, coalesce($2, '{}'::jsonb), NULL, NULL, $3, $4,
                                    NULL, NULL, NULL) i;
    RETURN v_id;
END;
$$;

-- invoke_many enqueues one invocation of function_name per element of
-- payloads and returns their ids in payload order: picloud.invoke for a
-- whole array in one statement. idempotency_keys, when given, holds one key
-- (or NULL) per payload; an element whose key is still in its window
-- returns the invocation the key first created, and elements repeating a
-- key within the call share one invocation. run_at schedules every element.
--   SELECT * FROM picloud.invoke_many('thumbnail',
--       ARRAY(SELECT jsonb_build_object('i', g) FROM generate_series(1, 100000) g));
CREATE OR REPLACE FUNCTION picloud.invoke_many(
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

-- invoke_trigger invokes the function named by its argument for every row
-- change, with {op, schema, table, new, old} as the payload:
--   CREATE TRIGGER t AFTER INSERT OR UPDATE OR DELETE ON orders
--       FOR EACH ROW EXECUTE FUNCTION picloud.invoke_trigger('on_order');
CREATE OR REPLACE FUNCTION picloud.invoke_trigger() RETURNS trigger
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
CREATE OR REPLACE FUNCTION picloud.status(id bigint) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT i.status FROM picloud.invocations i WHERE i.id = status.id;
$$;

-- result returns a finished invocation's result: for trigger http the HTTP
-- response {status, headers, body}, otherwise the function's return value.
CREATE OR REPLACE FUNCTION picloud.result(id bigint) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT i.result FROM picloud.invocations i WHERE i.id = result.id;
$$;

-- The key-value store a function's scripts read and write (kv.*), kept per
-- function in picloud.kv and readable from SQL. Reads are plain queries
-- (sql/queries/host.sql); writes are buffered while the script runs and
-- applied with its outcome, except kv.incr, which must be atomic across
-- concurrent invocations.

-- kv_apply applies the buffered writes of an invocation, in order:
-- [{"op": "set", "key": k, "value": v, "ttl": seconds|null}, {"op": "delete", "key": k}].
CREATE OR REPLACE FUNCTION picloud.kv_apply(p_function text, p_ops jsonb) RETURNS void
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
CREATE OR REPLACE FUNCTION picloud.kv_incr(p_function text, p_key text, p_by numeric) RETURNS numeric
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

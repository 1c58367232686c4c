-- Retention: finished invocations, their logs, expired idempotency keys and
-- kv entries, and the transport's finished jobs are deleted by a timer armed
-- for the oldest one's deadline, not by a periodic job.

-- sweep deletes what is past its retention and returns when the next thing
-- falls due (null: nothing is kept that will).
CREATE OR REPLACE FUNCTION picloud.sweep() RETURNS timestamptz
LANGUAGE plpgsql AS $$
DECLARE
    v_retention interval;
BEGIN
    SELECT retention INTO v_retention FROM picloud.settings;
    DELETE FROM picloud.invocations WHERE finished_at < clock_timestamp() - v_retention;
    UPDATE picloud.invocations i SET logs = '[]'::jsonb
    FROM picloud.functions f
    WHERE f.name = i.function AND f.log_retention IS NOT NULL
      AND i.finished_at < clock_timestamp() - f.log_retention AND i.logs <> '[]'::jsonb;
    -- Expired kv entries are invisible at once; this only reclaims them.
    DELETE FROM picloud.idempotency_keys WHERE expires_at < clock_timestamp();
    DELETE FROM picloud.kv WHERE expires_at < clock_timestamp();
    RETURN least(
        (SELECT min(finished_at) FROM picloud.invocations WHERE finished_at IS NOT NULL) + v_retention,
        (SELECT min(oldest.due) FROM picloud.functions f
         CROSS JOIN LATERAL (
             SELECT min(i.finished_at) + f.log_retention AS due FROM picloud.invocations i
             WHERE i.function = f.name AND i.finished_at IS NOT NULL AND i.logs <> '[]'::jsonb) oldest
         WHERE f.log_retention IS NOT NULL),
        picloud.sweep_jobs());
END;
$$;

-- A function may keep its invocations' log lines for less time than the
-- rows themselves (picloud.settings.retention): logs are the bulk of a row
-- and may hold what should not be kept long. Null keeps them with the row.
ALTER TABLE picloud.functions
    ADD COLUMN log_retention interval
        CONSTRAINT function_log_retention CHECK (log_retention > interval '0');

-- Finds each function's oldest finished invocation that still has logs,
-- without reading the rest.
CREATE INDEX invocations_logs_kept ON picloud.invocations (function, finished_at)
    WHERE finished_at IS NOT NULL AND logs <> '[]'::jsonb;

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
    DELETE FROM picloud.idempotency_keys WHERE expires_at < clock_timestamp();
    DELETE FROM picloud.kv WHERE expires_at < clock_timestamp();
    DELETE FROM picloud.river_job
    WHERE state IN ('completed', 'cancelled', 'discarded') AND queue = 'picloud'
      AND finalized_at < clock_timestamp() - picloud.job_retention();
    RETURN least(
        (SELECT min(finished_at) FROM picloud.invocations WHERE finished_at IS NOT NULL) + v_retention,
        (SELECT min(oldest.due) FROM picloud.functions f
         CROSS JOIN LATERAL (
             SELECT min(i.finished_at) + f.log_retention AS due FROM picloud.invocations i
             WHERE i.function = f.name AND i.finished_at IS NOT NULL AND i.logs <> '[]'::jsonb) oldest
         WHERE f.log_retention IS NOT NULL),
        (SELECT min(finalized_at) FROM picloud.river_job
         WHERE state IN ('completed', 'cancelled', 'discarded') AND queue = 'picloud') + picloud.job_retention());
END;
$$;

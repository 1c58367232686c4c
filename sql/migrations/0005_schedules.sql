-- Cron schedules: a function invoked on every tick of a cron expression,
-- exactly once per tick however many workers run.
--
-- Cron expressions are parsed in Go, so the next tick is computed there and
-- stored in next_run_at; the workers' timer fires at the earliest one. A
-- worker fires a due schedule under a row lock taken with SKIP LOCKED, so
-- one worker fires each tick, and the invocation carries an idempotency key
-- naming the tick, so even a fire repeated after a crash makes one.
CREATE TABLE picloud.schedules (
    function           text NOT NULL REFERENCES picloud.functions (name) ON DELETE CASCADE,
    name               text NOT NULL CONSTRAINT schedule_name_format CHECK (name ~ '^[a-z][a-z0-9_-]{0,62}$'),
    cron               text NOT NULL,
    timezone           text NOT NULL DEFAULT 'UTC',
    payload            jsonb NOT NULL DEFAULT '{}',
    enabled            boolean NOT NULL DEFAULT true,
    next_run_at        timestamptz,
    last_run_at        timestamptz,
    last_invocation_id bigint,
    created_at         timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_at         timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (function, name)
);
CREATE INDEX schedules_due ON picloud.schedules (next_run_at) WHERE enabled;

-- A schedule created or changed announces its next tick, so that the
-- workers arm their timers for it.
CREATE FUNCTION picloud.announce_schedule() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.enabled AND NEW.next_run_at IS NOT NULL THEN
        PERFORM pg_notify('picloud_due', extract(epoch FROM NEW.next_run_at)::text);
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER schedules_announce
    AFTER INSERT OR UPDATE OF next_run_at, enabled ON picloud.schedules
    FOR EACH ROW EXECUTE FUNCTION picloud.announce_schedule();

-- promote_due's deadline now includes the next schedule tick.
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
    PERFORM pg_notify('picloud.river_insert', '{"queue":"picloud"}');
    RETURN least(v_rescue,
                 (SELECT min(scheduled_at) FROM picloud.river_job
                  WHERE state IN ('scheduled', 'retryable', 'available') AND queue = 'picloud' AND priority = 1
                    AND scheduled_at > clock_timestamp()),
                 (SELECT min(next_run_at) FROM picloud.schedules WHERE enabled));
END;
$$;

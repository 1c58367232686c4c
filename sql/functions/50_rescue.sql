-- Rescue and timers: what a worker that stopped reporting (it died, most
-- likely) left behind is taken back, and scheduled work is promoted, on one
-- timer that each worker arms for the earliest database deadline
-- (promote_due returns it). Nothing polls.

-- rescue_grace is how long past its timeout a running attempt's worker has
-- to report before the attempt is taken from it.
CREATE OR REPLACE FUNCTION picloud.rescue_grace() RETURNS interval
LANGUAGE sql STABLE AS $$ SELECT rescue_grace FROM picloud.settings $$;

-- overdue_at is when an attempt that started at p_started_at, with a
-- timeout of p_timeout_ms, is overdue: past it, its worker is presumed
-- dead. The one definition of "overdue"; inlined into its callers.
CREATE OR REPLACE FUNCTION picloud.overdue_at(p_started_at timestamptz, p_timeout_ms integer) RETURNS timestamptz
LANGUAGE sql STABLE AS $$
    SELECT p_started_at + p_timeout_ms * interval '1 millisecond' + picloud.rescue_grace()
$$;

-- arm_rescue brings the rescue clock forward to p_at if that is earlier,
-- and announces it on picloud_due when it does; otherwise it is a read.
CREATE OR REPLACE FUNCTION picloud.arm_rescue(p_at timestamptz) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE picloud.rescue_clock SET next_at = p_at WHERE next_at IS NULL OR next_at > p_at;
    IF FOUND THEN
        PERFORM pg_notify('picloud_due', extract(epoch FROM p_at)::text);
    END IF;
END;
$$;

-- rescue_overdue takes back what workers that stopped reporting (they
-- died, most likely, or failed between the start and the finish) left
-- behind:
--   - a running attempt (running_attempts) not finished by its overdue_at
--     is queued again if the invocation has attempts left, and fails
--     otherwise; a transport job still carrying it is discarded;
--   - a transport job handed to a worker more than the grace ago whose
--     invocation never started (the attempt never began) is discarded and
--     the invocation handed to the transport again.
-- It returns when the next of either may become overdue (null: none).
CREATE OR REPLACE FUNCTION picloud.rescue_overdue() RETURNS timestamptz
LANGUAGE plpgsql AS $$
DECLARE
    v_lost constant text := 'the worker running this attempt stopped responding (it may have crashed)';
    v_inv  record;
    v_next timestamptz;
BEGIN
    FOR v_inv IN
        SELECT i.id, i.status, i.attempt, i.max_attempts, i.logs
        FROM picloud.invocations i
        WHERE i.id IN (SELECT a.invocation_id FROM picloud.running_attempts a
                       UNION ALL
                       SELECT j.invocation_id FROM picloud.running_jobs() j)
          AND (i.status = 'running' AND picloud.overdue_at(i.started_at, i.timeout_ms) <= clock_timestamp()
               OR i.status = 'queued' AND NOT i.parked
                  AND EXISTS (SELECT FROM picloud.running_jobs() j
                              WHERE j.invocation_id = i.id AND picloud.overdue_at(j.attempted_at, 0) <= clock_timestamp()))
        FOR UPDATE OF i SKIP LOCKED
    LOOP
        PERFORM picloud.discard_jobs(ARRAY[v_inv.id]);
        IF v_inv.status = 'queued' THEN
            PERFORM picloud.schedule_attempts(ARRAY[v_inv.id]);
        ELSIF v_inv.attempt < v_inv.max_attempts THEN
            PERFORM picloud.retry_invocation(v_inv.id, v_inv.attempt, v_lost, v_inv.logs, clock_timestamp());
        ELSE
            PERFORM picloud.finish_invocations(ARRAY[v_inv.id], ARRAY[v_inv.attempt], ARRAY['failed'],
                                               ARRAY[NULL::jsonb], ARRAY[v_lost], ARRAY[v_inv.logs],
                                               ARRAY[NULL::jsonb], ARRAY[NULL::jsonb]);
        END IF;
    END LOOP;

    SELECT least(
        (SELECT min(picloud.overdue_at(i.started_at, i.timeout_ms))
         FROM picloud.running_attempts a JOIN picloud.invocations i ON i.id = a.invocation_id
         WHERE i.status = 'running'),
        (SELECT min(picloud.overdue_at(j.attempted_at, 0))
         FROM picloud.running_jobs() j JOIN picloud.invocations i ON i.id = j.invocation_id
         WHERE i.status = 'queued' AND NOT i.parked))
    INTO v_next;
    -- A start that committed while this ran may have set an earlier,
    -- still future, deadline: keep it.
    UPDATE picloud.rescue_clock
    SET next_at = least(v_next, CASE WHEN next_at > clock_timestamp() THEN next_at END)
    RETURNING next_at INTO v_next;
    RETURN v_next;
END;
$$;

-- Retired: the run-here rescue, now part of rescue_overdue.
DROP FUNCTION IF EXISTS picloud.rescue_overdue_here();

-- promote_due hands due scheduled attempts to workers, rescues overdue
-- attempts, and returns when the next of a scheduled attempt, a rescue
-- check and a schedule's tick is due (null: none): the workers' timer is
-- armed for it.
CREATE OR REPLACE FUNCTION picloud.promote_due() RETURNS timestamptz
LANGUAGE plpgsql AS $$
DECLARE
    v_jobs   timestamptz;
    v_rescue timestamptz;
BEGIN
    v_jobs := picloud.promote_due_jobs();
    v_rescue := picloud.rescue_overdue();
    RETURN least(v_jobs, v_rescue, (SELECT min(next_run_at) FROM picloud.schedules WHERE enabled));
END;
$$;

-- The transport: River's tables, states and channels, behind the functions
-- below. This is the only SQL file that names them (river_test.go checks),
-- and queue/river_test.go pins the River schema version it was written
-- for, so a River upgrade fails the tests until this file is re-checked.
--
-- A queued invocation travels to a worker as a River job in queue
-- 'picloud' (kind 'picloud.invocation', priority 1, args
-- {"invocation_id": N}). River's producers LISTEN on
-- 'picloud.river_insert' (River's schema is 'picloud') and expect
-- {"queue": ...}. The job only carries the invocation; the invocation row
-- is the record, and its status, not the job's state, is the truth: a job
-- whose invocation is final or running is completed by the worker without
-- a run.
--
-- PiCloud runs River without leader election, so River's scheduler,
-- rescuer and cleaner never run; promote_due_jobs, running_jobs with
-- discard_jobs, and sweep_jobs do their work on timers armed from database
-- deadlines.

-- schedule_attempts creates the River jobs for the next attempts of the
-- invocations p_ids, element k due at p_due[k] (NULL, or p_due itself NULL:
-- now). Jobs due now are 'available' and wake River's producers, once for
-- the whole call, and arm the rescue clock: a worker can die after River
-- fetched the job and before the invocation started, and only a timer
-- already running would notice (under load the clock is earlier already
-- and this is a read). Jobs due later are 'scheduled', and the earliest is
-- announced on picloud_due so that a worker arms a timer and promotes them
-- when due (River's own scheduler would promote them only on its 5-second
-- leader tick, and without a wake-up); promote_due returns the next due
-- time after it, and the timer re-arms for that.
--
-- Job ids ascend with p_ids' order, so workers fetch a batch in that order.
CREATE OR REPLACE FUNCTION picloud.schedule_attempts(p_ids bigint[], p_due timestamptz[] DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
    v_now  timestamptz := clock_timestamp();
    v_due  boolean;
    v_next timestamptz;
BEGIN
    WITH jobs AS (
        INSERT INTO picloud.river_job (args, kind, max_attempts, queue, priority, state, scheduled_at)
        SELECT jsonb_build_object('invocation_id', u.id), 'picloud.invocation', 1, 'picloud', 1,
               CASE WHEN u.due > v_now THEN 'scheduled' ELSE 'available' END::picloud.river_job_state,
               CASE WHEN u.due > v_now THEN u.due ELSE now() END
        FROM unnest(p_ids, p_due) WITH ORDINALITY AS u(id, due, n)
        WHERE u.id IS NOT NULL
        ORDER BY u.n
        RETURNING state, scheduled_at
    )
    SELECT bool_or(j.state = 'available'), min(j.scheduled_at) FILTER (WHERE j.state = 'scheduled')
    INTO v_due, v_next
    FROM jobs j;
    IF v_due THEN
        PERFORM pg_notify('picloud.river_insert', '{"queue":"picloud"}');
        PERFORM picloud.arm_rescue(clock_timestamp() + picloud.rescue_grace());
    END IF;
    IF v_next IS NOT NULL THEN
        PERFORM pg_notify('picloud_due', extract(epoch FROM v_next)::text);
    END IF;
END;
$$;

-- promote_due_jobs makes the scheduled attempts that are due available,
-- wakes River's producers, and returns when the next attempt is due (null:
-- none). The wake-up goes out whenever the timer fires, whoever promoted:
-- a job River promoted early (it may, up to 5 s ahead, as 'available' with
-- a future scheduled_at that its fetch skips until due) is counted in the
-- next due time too.
CREATE OR REPLACE FUNCTION picloud.promote_due_jobs() RETURNS timestamptz
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE picloud.river_job
    SET state = 'available'
    WHERE state IN ('scheduled', 'retryable') AND queue = 'picloud' AND priority = 1
      AND scheduled_at <= clock_timestamp();
    PERFORM pg_notify('picloud.river_insert', '{"queue":"picloud"}');
    RETURN (SELECT min(scheduled_at) FROM picloud.river_job
            WHERE state IN ('scheduled', 'retryable', 'available') AND queue = 'picloud' AND priority = 1
              AND scheduled_at > clock_timestamp());
END;
$$;

-- running_jobs lists the invocations whose jobs River has handed to a
-- worker and not yet seen completed, with when the worker got each: what
-- the rescue needs to find a worker that died. An inlined SQL function:
-- the rescue's query is planned with it, by River's (state, queue) index.
CREATE OR REPLACE FUNCTION picloud.running_jobs()
RETURNS TABLE (invocation_id bigint, attempted_at timestamptz)
LANGUAGE sql STABLE AS $$
    SELECT (j.args->>'invocation_id')::bigint, j.attempted_at
    FROM picloud.river_job j
    WHERE j.state = 'running' AND j.queue = 'picloud'
$$;

-- discard_jobs ends the running jobs of invocations taken back by the
-- rescue: no River rescuer will touch them, and their workers are presumed
-- dead.
CREATE OR REPLACE FUNCTION picloud.discard_jobs(p_invocation_ids bigint[]) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE picloud.river_job SET state = 'discarded', finalized_at = clock_timestamp()
    WHERE state = 'running' AND queue = 'picloud'
      AND (args->>'invocation_id')::bigint = ANY(p_invocation_ids);
END;
$$;

-- sweep_jobs deletes River's finished jobs, which River's cleaner (a leader
-- duty) would delete, and returns when the next one falls due. They are
-- kept 10 minutes: the invocation row is the record, a job only carried it.
CREATE OR REPLACE FUNCTION picloud.sweep_jobs() RETURNS timestamptz
LANGUAGE plpgsql AS $$
DECLARE
    v_kept constant interval := interval '10 minutes';
BEGIN
    DELETE FROM picloud.river_job
    WHERE state IN ('completed', 'cancelled', 'discarded') AND queue = 'picloud'
      AND finalized_at < clock_timestamp() - v_kept;
    RETURN (SELECT min(finalized_at) FROM picloud.river_job
            WHERE state IN ('completed', 'cancelled', 'discarded') AND queue = 'picloud') + v_kept;
END;
$$;

-- wake_channel is the channel River's producers wake on. A worker hears it
-- on its own LISTEN connection and hands it to River (queue/river_wake.go),
-- so River keeps no connection of its own that a database restart could
-- leave reconnecting on River's backoff.
CREATE OR REPLACE FUNCTION picloud.wake_channel() RETURNS text
LANGUAGE sql IMMUTABLE AS $$ SELECT 'picloud.river_insert' $$;

-- nudge is gone: the listener wakes River itself after a reconnect.
DROP FUNCTION IF EXISTS picloud.nudge();

-- queue_depth counts queued invocations by what they wait for: a worker
-- (due), their time (scheduled: a run_at or a retry's backoff), or their
-- function's max_concurrency (parked). It serves the metrics scrape, so it
-- runs only when something scrapes. It walks River's job table by its
-- (state, queue) index, reads invocations by primary key, and counts parked
-- ones by their partial index: status has no index (one would make every
-- start a non-HOT update), so counting by status would scan every row kept
-- for the retention period.
CREATE OR REPLACE FUNCTION picloud.queue_depth(OUT due bigint, OUT scheduled bigint, OUT parked bigint)
LANGUAGE sql STABLE AS $$
    SELECT
        count(*) FILTER (WHERE j.state = 'available' OR j.scheduled_at <= now()),
        count(*) FILTER (WHERE j.state <> 'available' AND j.scheduled_at > now()),
        (SELECT count(*) FROM picloud.invocations p WHERE p.parked)
    FROM picloud.river_job j
    JOIN picloud.invocations i ON i.id = (j.args->>'invocation_id')::bigint AND i.status = 'queued'
    WHERE j.queue = 'picloud' AND j.state IN ('available', 'scheduled', 'retryable');
$$;

-- worker_demand counts what needs a worker now: invocations running or
-- queued and due (their job available, or scheduled and due), and cron
-- ticks that are due. Autoscalers scale workers on it (KEDA's postgresql
-- scaler in docs/deploy/kubernetes/worker-autoscaling.yaml). It walks
-- River's job table by its (state, queue, ...) index (finished jobs are
-- deleted after 10 minutes) and reads invocations by primary key: 0.2 ms
-- for a million kept rows on PostgreSQL 15, where counting invocations by
-- status (which has no index, on purpose) scans them all, 270 ms. It leaves
-- out invocations that no worker may run yet (a run_at next month, a retry
-- in its backoff, parked ones waiting for a concurrency slot), which would
-- hold workers up for nothing.
CREATE OR REPLACE FUNCTION picloud.worker_demand() RETURNS bigint
LANGUAGE sql STABLE AS $$
    SELECT (SELECT count(*) FROM picloud.invocations i
            WHERE i.status IN ('queued', 'running')
              AND i.id IN (SELECT (j.args->>'invocation_id')::bigint FROM picloud.river_job j
                           WHERE j.queue = 'picloud'
                             AND (j.state IN ('available', 'running')
                                  OR j.state IN ('scheduled', 'retryable') AND j.scheduled_at <= now())))
         + (SELECT count(*) FROM picloud.schedules s WHERE s.enabled AND s.next_run_at <= now())
$$;

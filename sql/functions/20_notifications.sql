-- Announcements: what happens to invocations, settings, keys and schedules
-- is told on NOTIFY channels, so that nobody polls.
--
--   picloud_finished  every invocation that reaches a final status, as a
--                     JSON array of invocation_event objects (waiting HTTP
--                     callers, SQL clients that LISTEN);
--   picloud_events    queued and running steps, only while some API node
--                     has an event stream open (picloud.event_watch);
--   picloud_due       a deadline (epoch seconds) a worker should arm a
--                     timer for;
--   picloud_settings, picloud_keys
--                     settings or API keys changed.
--
-- Triggers are re-created by every migrate, so each is dropped first.

-- invocation_event is the JSON object announced for an invocation: what a
-- live list shows, so that an event needs no read of the row.
CREATE OR REPLACE FUNCTION picloud.invocation_event(i picloud.invocations) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT json_build_object(
        'id', i.id, 'function', i.function, 'status', i.status, 'trigger', i.trigger,
        'attempt', i.attempt, 'max_attempts', i.max_attempts,
        'created_at', i.created_at, 'started_at', i.started_at, 'finished_at', i.finished_at)::text
$$;

-- notify_events sends p_events (JSON objects, in order) on p_channel as
-- JSON arrays, as many as pg_notify's payload limit (under 8,000 bytes)
-- requires. An invocation_event is about 250 bytes and never near 1,000
-- (a function name has at most 63 characters), so chunks cut at every
-- 7,000 bytes of running total stay under the limit. A batch of 1,000
-- finishes is about 40 notifications rather than 1,000.
CREATE OR REPLACE FUNCTION picloud.notify_events(p_channel text, p_events text[]) RETURNS void
LANGUAGE plpgsql AS $$
-- plpgsql rather than sql: PostgreSQL plans a LANGUAGE sql function's
-- statement anew on every call, and this one runs in every statement that
-- changes an invocation's status (measured: 0.16 ms per call as sql, most
-- of a lone finish's trigger; 0.03 ms as plpgsql).
BEGIN
    CASE coalesce(cardinality(p_events), 0)
    WHEN 0 THEN
        RETURN;
    WHEN 1 THEN
        PERFORM pg_notify(p_channel, '[' || p_events[1] || ']');
    ELSE
        PERFORM pg_notify(p_channel, '[' || string_agg(e.event, ',' ORDER BY e.n) || ']')
        FROM (SELECT u.event, u.n, sum(octet_length(u.event) + 1) OVER (ORDER BY u.n) / 7000 AS chunk
              FROM unnest(p_events) WITH ORDINALITY AS u(event, n)) e
        GROUP BY e.chunk;
    END CASE;
END;
$$;

-- invocations_updated runs once per statement that updates invocations.
-- It ends the bookkeeping of the attempts the statement stopped (their rows
-- in running_attempts), and announces every invocation the statement
-- brought to a final status (picloud_finished, always) or to queued or
-- running (picloud_events, only while someone watches). A statement-level
-- trigger with transition tables: PostgreSQL does not allow those with a
-- column list (UPDATE OF status), so it runs for every update of
-- invocations and compares the old and new status itself; a row trigger
-- would cost a plpgsql call per finished invocation.
--
-- A statement that neither stops an attempt nor needs announcing by it
-- opts out by setting picloud.announce_updates to 'off' for its UPDATE
-- (start_invocations does: a start ends nothing, and it announces its
-- running steps itself; the trigger cost a lone start 0.09 ms of 0.35).
CREATE OR REPLACE FUNCTION picloud.invocations_updated() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v_stopped  bigint[];
    v_finished text[];
    v_progress text[];
BEGIN
    -- One pass over the statement's rows; the progress events are built
    -- only while someone watches.
    SELECT array_agg(n.id) FILTER (WHERE o.status = 'running'),
           array_agg(picloud.invocation_event(n) ORDER BY n.id)
               FILTER (WHERE n.status IN ('succeeded', 'failed', 'timed_out', 'cancelled')),
           array_agg(picloud.invocation_event(n) ORDER BY n.id)
               FILTER (WHERE n.status IN ('queued', 'running') AND (SELECT w.until FROM picloud.event_watch w) > now())
    INTO v_stopped, v_finished, v_progress
    FROM new_rows n JOIN old_rows o ON o.id = n.id
    WHERE o.status IS DISTINCT FROM n.status;
    IF v_stopped IS NOT NULL THEN
        DELETE FROM picloud.running_attempts WHERE invocation_id = ANY(v_stopped);
    END IF;
    PERFORM picloud.notify_events('picloud_finished', v_finished);
    PERFORM picloud.notify_events('picloud_events', v_progress);
    RETURN NULL;
END;
$$;

-- Retired name of the same trigger.
DROP TRIGGER IF EXISTS invocations_announce_updates ON picloud.invocations;
DROP FUNCTION IF EXISTS picloud.announce_updates();

DROP TRIGGER IF EXISTS invocations_updated ON picloud.invocations;
CREATE TRIGGER invocations_updated
    AFTER UPDATE ON picloud.invocations
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT
    WHEN (current_setting('picloud.announce_updates', true) IS DISTINCT FROM 'off')
    EXECUTE FUNCTION picloud.invocations_updated();

-- announce_inserted announces a new invocation (queued, or running when
-- started where it was written) while someone watches. A row trigger, with
-- a condition that lets a bulk insert opt out: picloud.enqueue_many sets
-- picloud.announce_inserts to 'off' for its INSERT and announces the batch
-- itself, once. (A statement-level trigger with a transition table cost a
-- bulk insert 14 µs a row for capturing rows nobody reads unless someone
-- watches: 29,000 rows/s against 48,000 without it.)
CREATE OR REPLACE FUNCTION picloud.announce_inserted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF (SELECT w.until FROM picloud.event_watch w) > now() THEN
        PERFORM pg_notify('picloud_events', '[' || picloud.invocation_event(NEW) || ']');
    END IF;
    RETURN NULL;
END;
$$;

DROP TRIGGER IF EXISTS invocations_announce_inserted ON picloud.invocations;
CREATE TRIGGER invocations_announce_inserted
    AFTER INSERT ON picloud.invocations
    FOR EACH ROW
    WHEN (current_setting('picloud.announce_inserts', true) IS DISTINCT FROM 'off')
    EXECUTE FUNCTION picloud.announce_inserted();

-- Settings changed: workers re-read them.
CREATE OR REPLACE FUNCTION picloud.announce_settings() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('picloud_settings', '');
    RETURN NULL;
END;
$$;

DROP TRIGGER IF EXISTS settings_announce ON picloud.settings;
CREATE TRIGGER settings_announce
    AFTER UPDATE ON picloud.settings
    FOR EACH STATEMENT EXECUTE FUNCTION picloud.announce_settings();

-- API nodes cache keys they have checked; a revocation tells every node to
-- forget them at once instead of after the cache's lifetime.
CREATE OR REPLACE FUNCTION picloud.announce_key_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('picloud_keys', '');
    RETURN NULL;
END;
$$;

DROP TRIGGER IF EXISTS api_keys_changed ON picloud.api_keys;
CREATE TRIGGER api_keys_changed
    AFTER UPDATE OF revoked_at OR DELETE ON picloud.api_keys
    FOR EACH STATEMENT EXECUTE FUNCTION picloud.announce_key_change();

-- A schedule created or changed announces its next tick, so that the
-- workers arm their timers for it.
CREATE OR REPLACE FUNCTION picloud.announce_schedule() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.enabled AND NEW.next_run_at IS NOT NULL THEN
        PERFORM pg_notify('picloud_due', extract(epoch FROM NEW.next_run_at)::text);
    END IF;
    RETURN NULL;
END;
$$;

DROP TRIGGER IF EXISTS schedules_announce ON picloud.schedules;
CREATE TRIGGER schedules_announce
    AFTER INSERT OR UPDATE OF next_run_at, enabled ON picloud.schedules
    FOR EACH ROW EXECUTE FUNCTION picloud.announce_schedule();

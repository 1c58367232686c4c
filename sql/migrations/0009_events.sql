-- Live events for the API's Server-Sent Events streams.
--
-- Final statuses are always announced on picloud_finished (0001); its
-- payload now carries what a live list shows, so an event needs no read of
-- the row. The steps before (queued, running) are announced on
-- picloud_events, but only while some API node has a stream open: a burst
-- of 100,000 invocations that nobody watches must not queue 200,000
-- notifications. A node with subscribers keeps event_watch.until a minute
-- ahead; once nobody watches, it lapses by itself.
CREATE TABLE picloud.event_watch (
    singleton boolean PRIMARY KEY DEFAULT true CONSTRAINT event_watch_singleton CHECK (singleton),
    until     timestamptz NOT NULL
);
INSERT INTO picloud.event_watch (until) VALUES ('-infinity');

CREATE FUNCTION picloud.invocation_event(i picloud.invocations) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT json_build_object(
        'id', i.id, 'function', i.function, 'status', i.status, 'trigger', i.trigger,
        'attempt', i.attempt, 'max_attempts', i.max_attempts,
        'created_at', i.created_at, 'started_at', i.started_at, 'finished_at', i.finished_at)::text
$$;

CREATE OR REPLACE FUNCTION picloud.announce_finished() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('picloud_finished', picloud.invocation_event(NEW));
    RETURN NULL;
END;
$$;

CREATE FUNCTION picloud.announce_progress() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF (SELECT until FROM picloud.event_watch) > now() THEN
        PERFORM pg_notify('picloud_events', picloud.invocation_event(NEW));
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER invocations_announce_queued
    AFTER INSERT ON picloud.invocations
    FOR EACH ROW EXECUTE FUNCTION picloud.announce_progress();

CREATE TRIGGER invocations_announce_progress
    AFTER UPDATE OF status ON picloud.invocations
    FOR EACH ROW
    WHEN (NEW.status IN ('queued', 'running') AND OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION picloud.announce_progress();

-- Start on fetch: the statement in which River's producer claims a batch of
-- jobs also starts their invocations.
--
-- Until now a worker started each fetched invocation with a statement of
-- its own (picloud.start_invocation: a write and a commit) before Lua could
-- run, so a queued invocation cost a fetch, a start and a finish, and the
-- start was paid one invocation at a time. This trigger runs the same start
-- inside River's fetch (its UPDATE of available jobs to running), so a
-- burst of jobs claimed together is started together, and the worker only
-- reads what the run needs. The attempt it started travels back in the
-- job's metadata, which River's fetch returns: no attempt there means the
-- invocation was final already or is parked for a concurrency slot.
--
-- A trigger on River's table bends River: River does not know of it, and
-- it holds the fetch's row locks a little longer (start_invocation takes
-- the invocation's row lock, and the function's for max_concurrency). No
-- PiCloud statement waits on an available job's lock while holding those,
-- so the order cannot deadlock.
CREATE FUNCTION picloud.start_on_fetch() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v_attempt integer;
BEGIN
    SELECT i.attempt INTO v_attempt FROM picloud.start_invocation((NEW.args->>'invocation_id')::bigint) i;
    IF FOUND THEN
        NEW.metadata := NEW.metadata || jsonb_build_object('picloud_attempt', v_attempt);
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER river_job_start_on_fetch
    BEFORE UPDATE OF state ON picloud.river_job
    FOR EACH ROW
    WHEN (OLD.state = 'available' AND NEW.state = 'running' AND NEW.kind = 'picloud.invocation')
    EXECUTE FUNCTION picloud.start_on_fetch();

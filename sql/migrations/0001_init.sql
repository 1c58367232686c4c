-- Functions, their versions and the invocation rows.
--
-- River's own tables (river_job and friends) live in the same schema: they
-- are the transport that carries an invocation to a worker, while
-- picloud.invocations is the record users read.

CREATE TABLE picloud.functions (
    name       text PRIMARY KEY
               CONSTRAINT function_name_format CHECK (name ~ '^[a-z][a-z0-9_-]{0,62}$'),
    version    integer NOT NULL,
    created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_at timestamptz NOT NULL DEFAULT clock_timestamp()
);

-- Every source a function ever had. id is global, so a function deleted and
-- created again under the same name never reuses the id of its old code:
-- workers cache compiled chunks by it.
CREATE TABLE picloud.function_versions (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    function      text NOT NULL REFERENCES picloud.functions (name) ON DELETE CASCADE,
    version       integer NOT NULL,
    source        text NOT NULL,
    source_sha256 bytea NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
    UNIQUE (function, version)
);

-- No foreign keys to the functions: the history of a deleted function stays,
-- and deleting a function must not rewrite its invocations.
CREATE TABLE picloud.invocations (
    id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    function            text NOT NULL,
    function_version    integer NOT NULL,
    function_version_id bigint NOT NULL,
    trigger             text NOT NULL
                        CONSTRAINT invocation_trigger CHECK (trigger IN ('http', 'api', 'sql', 'schedule')),
    status              text NOT NULL DEFAULT 'queued'
                        CONSTRAINT invocation_status CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'timed_out', 'cancelled')),
    -- For trigger http: {method, path, query, headers}; the body is kept as
    -- bytes because it need not be text.
    request             jsonb,
    request_body        bytea,
    payload             jsonb,
    -- For trigger http: the HTTP response {status, headers, body} (body_base64
    -- instead of body when it is not UTF-8); otherwise the return value.
    result              jsonb,
    error               text,
    logs                jsonb NOT NULL DEFAULT '[]',
    attempt             integer NOT NULL DEFAULT 0,
    max_attempts        integer NOT NULL DEFAULT 1,
    timeout_ms          integer NOT NULL,
    created_at          timestamptz NOT NULL DEFAULT clock_timestamp(),
    started_at          timestamptz,
    finished_at         timestamptz
);

CREATE INDEX invocations_function_id ON picloud.invocations (function, id DESC);

-- enqueue_invocation writes the invocation row and the River job that carries
-- it, and wakes the workers. The NOTIFY is transactional: inside a caller's
-- transaction it is delivered at COMMIT and dropped on ROLLBACK, so a worker
-- never looks for a row it cannot see yet. Postgres folds identical
-- notifications of one transaction into one, so a bulk insert sends a single
-- wake-up.
--
-- River is configured with Schema 'picloud' and queue 'picloud', so its
-- producers LISTEN on 'picloud.river_insert' and expect {"queue": ...}.
CREATE FUNCTION picloud.enqueue_invocation(
    p_function     text,
    p_trigger      text,
    p_request      jsonb,
    p_request_body bytea,
    p_payload      jsonb,
    p_timeout_ms   integer
) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    v_version    integer;
    v_version_id bigint;
    v_id         bigint;
BEGIN
    SELECT f.version, v.id INTO v_version, v_version_id
    FROM picloud.functions f
    JOIN picloud.function_versions v ON v.function = f.name AND v.version = f.version
    WHERE f.name = p_function;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'picloud: function "%" does not exist', p_function
            USING ERRCODE = 'PC404', HINT = 'Create it with PUT /v1/functions/{name}.';
    END IF;

    INSERT INTO picloud.invocations
        (function, function_version, function_version_id, trigger, request, request_body, payload, timeout_ms)
    VALUES
        (p_function, v_version, v_version_id, p_trigger, p_request, p_request_body, p_payload, p_timeout_ms)
    RETURNING id INTO v_id;

    INSERT INTO picloud.river_job (args, kind, max_attempts, queue, priority, state)
    VALUES (jsonb_build_object('invocation_id', v_id), 'picloud.invocation', 1, 'picloud', 1, 'available');

    PERFORM pg_notify('picloud.river_insert', '{"queue":"picloud"}');
    RETURN v_id;
END;
$$;

-- Announces every invocation that reaches a final status on the channel
-- picloud_finished, whoever finished it. Waiting HTTP callers and SQL clients
-- (LISTEN picloud_finished) learn of completion without polling. The payload
-- is {"id": ..., "function": ..., "status": ...}.
CREATE FUNCTION picloud.announce_finished() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('picloud_finished',
        json_build_object('id', NEW.id, 'function', NEW.function, 'status', NEW.status)::text);
    RETURN NULL;
END;
$$;

CREATE TRIGGER invocations_announce_finished
    AFTER UPDATE OF status ON picloud.invocations
    FOR EACH ROW
    WHEN (NEW.status IN ('succeeded', 'failed', 'timed_out', 'cancelled') AND OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION picloud.announce_finished();

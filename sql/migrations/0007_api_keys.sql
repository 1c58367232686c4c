-- API keys. Only a SHA-256 of each key is stored: a key is 200 random bits,
-- so a slow hash would add nothing but latency to every request. prefix is
-- the key's first characters, enough for a person to tell keys apart.
CREATE TABLE picloud.api_keys (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name         text NOT NULL DEFAULT ''
                 CONSTRAINT api_key_name_length CHECK (length(name) <= 200),
    scope        text NOT NULL
                 CONSTRAINT api_key_scope CHECK (scope IN ('admin', 'invoke')),
    prefix       text NOT NULL,
    hash         bytea NOT NULL UNIQUE,
    created_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    last_used_at timestamptz,
    revoked_at   timestamptz
);

-- API nodes cache keys they have checked; a revocation tells every node to
-- forget them at once instead of after the cache's lifetime.
CREATE FUNCTION picloud.announce_key_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('picloud_keys', '');
    RETURN NULL;
END;
$$;

CREATE TRIGGER api_keys_changed
    AFTER UPDATE OF revoked_at OR DELETE ON picloud.api_keys
    FOR EACH STATEMENT EXECUTE FUNCTION picloud.announce_key_change();

-- Who may call /fn/{name}: anyone (public, the default: a deployed function
-- is a URL), or only a caller with an API key (key).
ALTER TABLE picloud.functions
    ADD COLUMN auth text NOT NULL DEFAULT 'public'
        CONSTRAINT function_auth CHECK (auth IN ('public', 'key'));

-- enqueue_authorized_invocation is enqueue_invocation that refuses an HTTP
-- call to a key-only function from a caller without a key. Checking here
-- keeps a public call at one round trip: the ingress does not read the
-- function before enqueueing.
CREATE FUNCTION picloud.enqueue_authorized_invocation(
    p_function        text,
    p_trigger         text,
    p_request         jsonb,
    p_request_body    bytea,
    p_payload         jsonb,
    p_timeout_ms      integer,
    p_max_attempts    integer,
    p_idempotency_key text,
    p_run_at          timestamptz,
    p_authenticated   boolean
) RETURNS SETOF picloud.invocations
LANGUAGE plpgsql AS $$
BEGIN
    IF p_trigger = 'http' AND NOT p_authenticated
       AND EXISTS (SELECT 1 FROM picloud.functions WHERE name = p_function AND auth = 'key') THEN
        RAISE EXCEPTION 'picloud: function "%" needs an API key', p_function
            USING ERRCODE = 'PC401', HINT = 'Send Authorization: Bearer <key> with an invoke or admin key.';
    END IF;
    RETURN QUERY SELECT * FROM picloud.enqueue_invocation(
        p_function, p_trigger, p_request, p_request_body, p_payload,
        p_timeout_ms, p_max_attempts, p_idempotency_key, p_run_at);
END;
$$;

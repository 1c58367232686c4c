-- The tables of PiCloud, as of its first release. Tables, indexes and rows
-- change only through numbered migrations like this one; the SQL functions,
-- triggers and views that work on them live in sql/functions/, one file per
-- concern, and are applied with CREATE OR REPLACE by every migrate.
--
-- River's own tables live in the same schema: they
-- are the transport that carries a queued invocation to a worker, while
-- picloud.invocations is the record users read. Only
-- sql/functions/10_transport.sql names them.
--
-- Column order is part of the interface: functions return SETOF
-- picloud.invocations, and the generated Go reads rows in this order. A new
-- column goes at the end.

-- Functions and their code ---------------------------------------------------

CREATE TABLE picloud.functions (
    name             text PRIMARY KEY
                     CONSTRAINT function_name_format CHECK (name ~ '^[a-z][a-z0-9_-]{0,62}$'),
    version          integer NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_at       timestamptz NOT NULL DEFAULT clock_timestamp(),
    -- Null: the platform's default, 10 s.
    timeout_ms       integer
                     CONSTRAINT function_timeout_ms CHECK (timeout_ms BETWEEN 1 AND 900000),
    max_attempts     integer NOT NULL DEFAULT 1
                     CONSTRAINT function_max_attempts CHECK (max_attempts BETWEEN 1 AND 100),
    -- Null: no limit. With a limit, an invocation that finds every slot
    -- taken is parked until one is released.
    max_concurrency  integer
                     CONSTRAINT function_max_concurrency CHECK (max_concurrency >= 1),
    retry_backoff_ms integer NOT NULL DEFAULT 1000
                     CONSTRAINT function_retry_backoff_ms CHECK (retry_backoff_ms BETWEEN 0 AND 3600000),
    -- Hosts a function may reach with http.request; empty means none. An
    -- entry is a host name ("api.example.com"), a wildcard for its
    -- subdomains ("*.example.com"), or either with a port ("localhost:8080").
    http_allow       text[] NOT NULL DEFAULT '{}',
    -- The VM instruction budget per attempt; null means the platform's
    -- default (executor.DefaultInstructions, 40 million: about 0.3 to 3.5 s
    -- of pure Lua on a small machine, depending on the code).
    max_instructions bigint
                     CONSTRAINT function_max_instructions CHECK (max_instructions BETWEEN 1000 AND 100000000000),
    -- Who may call /fn/{name}: anyone (public, the default: a deployed
    -- function is a URL), or only a caller with an API key (key).
    auth             text NOT NULL DEFAULT 'public'
                     CONSTRAINT function_auth CHECK (auth IN ('public', 'key')),
    -- How long its invocations keep their log lines, when shorter than the
    -- rows themselves (settings.retention): logs are the bulk of a row and
    -- may hold what should not be kept long. Null keeps them with the row.
    log_retention    interval
                     CONSTRAINT function_log_retention CHECK (log_retention > interval '0')
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

-- Configuration (readable back) and secrets (write-only through the API),
-- given to each invocation as env.NAME and secrets.NAME.
CREATE TABLE picloud.function_env (
    function text NOT NULL REFERENCES picloud.functions (name) ON DELETE CASCADE,
    name     text NOT NULL CONSTRAINT function_env_name CHECK (name ~ '^[A-Za-z_][A-Za-z0-9_]{0,127}$'),
    value    text NOT NULL,
    secret   boolean NOT NULL,
    PRIMARY KEY (function, name)
);

-- Per-function key-value state, readable from SQL. Keys sort bytewise (C)
-- so that a prefix is a range scan.
CREATE TABLE picloud.kv (
    function   text NOT NULL REFERENCES picloud.functions (name) ON DELETE CASCADE,
    key        text COLLATE "C" NOT NULL
               CONSTRAINT kv_key_length CHECK (length(key) BETWEEN 1 AND 1024),
    value      jsonb NOT NULL,
    expires_at timestamptz,
    updated_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (function, key)
);

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

-- Invocations ------------------------------------------------------------------

-- No foreign keys to the functions: the history of a deleted function stays,
-- and deleting a function must not rewrite its invocations.
CREATE TABLE picloud.invocations (
    id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    function            text NOT NULL,
    function_version    integer NOT NULL,
    function_version_id bigint NOT NULL,
    -- 'function': enqueued by a running script (see parent_id).
    trigger             text NOT NULL
                        CONSTRAINT invocation_trigger CHECK (trigger IN ('http', 'api', 'sql', 'schedule', 'function')),
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
    finished_at         timestamptz,
    idempotency_key     text,
    -- When the pending attempt is due; null means as soon as possible.
    run_at              timestamptz,
    -- One {attempt, error, at} per failed attempt.
    errors              jsonb NOT NULL DEFAULT '[]',
    -- Queued, but waiting for a slot under the function's max_concurrency:
    -- it has no transport job until a running invocation of the function
    -- ends.
    parked              boolean NOT NULL DEFAULT false,
    -- The invocation whose script enqueued this one.
    parent_id           bigint,
    -- The W3C traceparent of the request that made it, so that whichever
    -- worker runs it continues the same trace. The default reads the
    -- transaction-local setting picloud.trace_parent, which the enqueue
    -- functions set, and which an application can set around its own
    -- picloud.invoke calls:
    --   SELECT set_config('picloud.trace_parent', '00-...-...-01', true);
    -- (current_setting is '' rather than NULL once the setting was used in
    -- the session; nullif maps that back to NULL.)
    trace_parent        text DEFAULT nullif(current_setting('picloud.trace_parent', true), '')
)
-- Every invocation row is updated twice (start, finish). Room on the page
-- lets the start, which changes no indexed column, be a HOT update that
-- writes no index entry.
WITH (fillfactor = 80);

CREATE INDEX invocations_function_id ON picloud.invocations (function, id DESC);
CREATE INDEX invocations_parked ON picloud.invocations (function, id) WHERE parked;
CREATE INDEX invocations_finished_at ON picloud.invocations (finished_at) WHERE finished_at IS NOT NULL;
-- Finds each function's oldest finished invocation that still has logs,
-- without reading the rest.
CREATE INDEX invocations_logs_kept ON picloud.invocations (function, finished_at)
    WHERE finished_at IS NOT NULL AND logs <> '[]'::jsonb;

-- A key belongs to the invocation it first created until it expires; then
-- the next use of the key creates a new invocation. Deleting the invocation
-- (retention) deletes its key.
CREATE TABLE picloud.idempotency_keys (
    function      text NOT NULL,
    key           text NOT NULL,
    invocation_id bigint NOT NULL REFERENCES picloud.invocations (id) ON DELETE CASCADE
                  DEFERRABLE INITIALLY DEFERRED,
    expires_at    timestamptz NOT NULL,
    PRIMARY KEY (function, key)
);
CREATE INDEX idempotency_keys_invocation ON picloud.idempotency_keys (invocation_id);

-- The invocations holding a slot of a function with max_concurrency. A
-- small table of its own, rather than an index on invocations.status, so
-- that functions without a limit pay nothing for the feature: such an index
-- would make every status change of every invocation update it.
CREATE TABLE picloud.running_slots (
    invocation_id bigint PRIMARY KEY,
    function      text NOT NULL
);
CREATE INDEX running_slots_function ON picloud.running_slots (function);

-- One row per running attempt, from the statement that starts it to the
-- one that ends it, whatever ends it (finish, retry, hand-back, cancel,
-- rescue): what the rescue reads to find attempts whose worker stopped
-- reporting. Kept apart from invocations, whose status has no index on
-- purpose (an index would make every start a non-HOT update), so that
-- finding the running attempts never scans the rows kept for retention.
CREATE TABLE picloud.running_attempts (
    invocation_id bigint PRIMARY KEY,
    -- The node that started it where it was written (enqueue_invocation
    -- with a node), with no transport job; null when a transport job
    -- carried it to a worker.
    node          text
);

-- Platform state ---------------------------------------------------------------

-- Platform settings that SQL functions need as much as the Go side, kept in
-- one row so there is a single source of truth. Changing them notifies the
-- workers (picloud_settings).
CREATE TABLE picloud.settings (
    singleton          boolean PRIMARY KEY DEFAULT true CONSTRAINT settings_singleton CHECK (singleton),
    -- How long a finished invocation is kept.
    retention          interval NOT NULL DEFAULT '7 days'
                       CONSTRAINT settings_retention CHECK (retention > interval '0'),
    -- How long an idempotency key keeps returning its first invocation.
    idempotency_window interval NOT NULL DEFAULT '24 hours'
                       CONSTRAINT settings_idempotency_window CHECK (idempotency_window > interval '0'),
    -- How long past its timeout a running invocation's worker has to report
    -- before the invocation is taken from it: the sandbox is killed 2 s after
    -- the deadline, and writing the outcome takes milliseconds.
    rescue_grace       interval NOT NULL DEFAULT '10 seconds'
                       CONSTRAINT settings_rescue_grace CHECK (rescue_grace >= interval '0')
);
INSERT INTO picloud.settings DEFAULT VALUES;

-- The earliest moment a running invocation may be overdue. A start lowers
-- it, and announces the new value on picloud_due, only when the start
-- brings it forward, so that under steady load a start costs a read of this
-- row, not a write.
CREATE TABLE picloud.rescue_clock (
    singleton boolean PRIMARY KEY DEFAULT true CONSTRAINT rescue_clock_singleton CHECK (singleton),
    next_at   timestamptz
);
INSERT INTO picloud.rescue_clock DEFAULT VALUES;

-- Live events for the API's Server-Sent Events streams: the steps before a
-- final status (queued, running) are announced on picloud_events only while
-- some API node has a stream open, so that a burst of 100,000 invocations
-- that nobody watches queues no notifications. A node with subscribers
-- keeps until a minute ahead; once nobody watches, it lapses by itself.
CREATE TABLE picloud.event_watch (
    singleton boolean PRIMARY KEY DEFAULT true CONSTRAINT event_watch_singleton CHECK (singleton),
    until     timestamptz NOT NULL
);
INSERT INTO picloud.event_watch (until) VALUES ('-infinity');

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

-- How deep in a chain of invocations made by scripts an invocation is: 0
-- for one made by a client, a cron tick or SQL, its parent's depth plus one
-- for one a script made with picloud.invoke. A function that invokes itself
-- once made 16,789 invocations in 40 s and stopped only when it was
-- deleted; picloud.max_invocation_depth() bounds the chain (see
-- sql/functions/30_lifecycle.sql). A constant default: PostgreSQL adds the
-- column without rewriting the table.
ALTER TABLE picloud.invocations ADD COLUMN depth integer NOT NULL DEFAULT 0;

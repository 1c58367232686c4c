-- Whether /fn shows a failed invocation's error text to callers without an
-- API key. Off by default: the text is the script's own (a Lua error names
-- the chunk, the line and often a variable), which an anonymous caller of a
-- public endpoint should not learn; the owner reads it in the invocation
-- row. A constant default: PostgreSQL adds the column without rewriting the
-- table.
ALTER TABLE picloud.functions ADD COLUMN expose_errors boolean NOT NULL DEFAULT false;

-- A function's VM instruction budget per attempt; null means the
-- platform's default (executor.DefaultInstructions, 40 million: about 0.3
-- to 3.5 s of pure Lua on a small machine, depending on the code).
ALTER TABLE picloud.functions
    ADD COLUMN max_instructions bigint
        CONSTRAINT function_max_instructions CHECK (max_instructions BETWEEN 1000 AND 100000000000);

-- The commands an operator token sent in the last minute: the rate limit counts them here, in
-- the store every hub of a cluster shares, rather than in each hub's memory.
CREATE INDEX commands_actor ON commands (actor, created_at);

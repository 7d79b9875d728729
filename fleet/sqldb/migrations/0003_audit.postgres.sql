-- PostgreSQL variant of 0003_audit.sql (recorded under that name): 64-bit sequence numbers and
-- times. (On SQLite, seq INTEGER PRIMARY KEY is the 64-bit rowid; BIGINT there would make it an
-- ordinary column with an index of its own.)
CREATE TABLE audit (
	seq       BIGINT PRIMARY KEY,
	time      BIGINT NOT NULL,
	actor     TEXT   NOT NULL,
	action    TEXT   NOT NULL,
	device    TEXT   NOT NULL DEFAULT '',
	detail    TEXT   NOT NULL DEFAULT '{}',
	prev_hash TEXT   NOT NULL,
	hash      TEXT   NOT NULL
);
CREATE INDEX audit_device ON audit (device);
CREATE INDEX audit_time ON audit (time);

-- The head, as in 0003_audit.sql. On PostgreSQL appends also lock this row (SELECT ... FOR
-- UPDATE) to take turns, since several hubs append at once.
CREATE TABLE audit_head (
	id   INTEGER PRIMARY KEY CHECK (id = 1),
	seq  BIGINT  NOT NULL,
	hash TEXT    NOT NULL
);
INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, '');

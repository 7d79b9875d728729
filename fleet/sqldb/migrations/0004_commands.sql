-- Commands sent to devices and what became of them. Times are Unix milliseconds.
--
-- Portable: the same file runs on SQLite and PostgreSQL. BIGINT and DOUBLE PRECISION are what
-- SQLite calls INTEGER and REAL (the same affinities, which is what this file said before it
-- ran on PostgreSQL too), and 64 bits on PostgreSQL, whose INTEGER and REAL are 32.
CREATE TABLE commands (
	id              TEXT             PRIMARY KEY,
	device          TEXT             NOT NULL,
	type            TEXT             NOT NULL,
	door            INTEGER          NOT NULL DEFAULT 0,
	target          TEXT             NOT NULL DEFAULT '',
	setpoint_c      DOUBLE PRECISION,
	reason          TEXT             NOT NULL,
	actor           TEXT             NOT NULL,
	idempotency_key TEXT,
	status          TEXT             NOT NULL,
	outcome         TEXT             NOT NULL DEFAULT '',
	detail          TEXT             NOT NULL DEFAULT '',
	created_at      BIGINT           NOT NULL,
	expires_at      BIGINT           NOT NULL,
	sent_at         BIGINT,
	completed_at    BIGINT
);
CREATE UNIQUE INDEX commands_idempotency ON commands (actor, idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX commands_device ON commands (device, created_at);

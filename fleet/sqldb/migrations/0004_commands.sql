-- Commands sent to devices and what became of them. Times are Unix milliseconds.
CREATE TABLE commands (
	id              TEXT    PRIMARY KEY,
	device          TEXT    NOT NULL,
	type            TEXT    NOT NULL,
	door            INTEGER NOT NULL DEFAULT 0,
	target          TEXT    NOT NULL DEFAULT '',
	setpoint_c      REAL,
	reason          TEXT    NOT NULL,
	actor           TEXT    NOT NULL,
	idempotency_key TEXT,
	status          TEXT    NOT NULL,
	outcome         TEXT    NOT NULL DEFAULT '',
	detail          TEXT    NOT NULL DEFAULT '',
	created_at      INTEGER NOT NULL,
	expires_at      INTEGER NOT NULL,
	sent_at         INTEGER,
	completed_at    INTEGER
);
CREATE UNIQUE INDEX commands_idempotency ON commands (actor, idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX commands_device ON commands (device, created_at);

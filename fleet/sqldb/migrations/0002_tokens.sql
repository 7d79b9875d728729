-- API tokens. The secret is never stored: only its SHA-256 (tokens carry 256 random bits, so a
-- fast hash is enough and keeps every API request cheap). Times are Unix milliseconds.
CREATE TABLE tokens (
	id          TEXT    PRIMARY KEY,
	name        TEXT    NOT NULL,
	role        TEXT    NOT NULL,
	sites       TEXT    NOT NULL DEFAULT '[]',
	secret_hash BLOB    NOT NULL,
	created_at  INTEGER NOT NULL,
	revoked_at  INTEGER
);

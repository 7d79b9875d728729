-- PostgreSQL variant of 0002_tokens.sql (recorded under that name): BYTEA for SQLite's BLOB,
-- 64-bit times.
CREATE TABLE tokens (
	id          TEXT   PRIMARY KEY,
	name        TEXT   NOT NULL,
	role        TEXT   NOT NULL,
	sites       TEXT   NOT NULL DEFAULT '[]',
	secret_hash BYTEA  NOT NULL,
	created_at  BIGINT NOT NULL,
	revoked_at  BIGINT
);

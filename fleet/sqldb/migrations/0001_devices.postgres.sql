-- PostgreSQL variant of 0001_devices.sql (recorded under that name): the same tables, with
-- 64-bit times (PostgreSQL's INTEGER is 32 bits), a real boolean, and the triggers written as a
-- trigger function, which is how PostgreSQL spells them.
CREATE TABLE devices (
	id          TEXT    PRIMARY KEY,
	kind        TEXT    NOT NULL,
	site        TEXT    NOT NULL,
	doors       INTEGER NOT NULL CHECK (doors > 0),
	labels      TEXT    NOT NULL DEFAULT '{}',
	enabled     BOOLEAN NOT NULL DEFAULT TRUE,
	secret_hash TEXT    NOT NULL,
	created_at  BIGINT  NOT NULL,
	updated_at  BIGINT  NOT NULL
);
CREATE INDEX devices_site ON devices (site);

CREATE TABLE registry_version (
	id      INTEGER PRIMARY KEY CHECK (id = 1),
	version BIGINT  NOT NULL
);
INSERT INTO registry_version (id, version) VALUES (1, 0);

-- One bump per statement that changed at least one device (SQLite's triggers bump once per
-- row): watchers only compare versions, and an import of 10,000 devices in one transaction
-- should not rewrite this row 10,000 times. A statement that changed no row (the update of an
-- unknown id) bumps nothing, so it does not make every hub revalidate its sessions.
CREATE FUNCTION registry_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF EXISTS (SELECT 1 FROM changed) THEN
		UPDATE registry_version SET version = version + 1 WHERE id = 1;
	END IF;
	RETURN NULL;
END;
$$;
CREATE TRIGGER devices_inserted AFTER INSERT ON devices REFERENCING NEW TABLE AS changed
	FOR EACH STATEMENT EXECUTE FUNCTION registry_changed();
CREATE TRIGGER devices_updated AFTER UPDATE ON devices REFERENCING NEW TABLE AS changed
	FOR EACH STATEMENT EXECUTE FUNCTION registry_changed();
CREATE TRIGGER devices_deleted AFTER DELETE ON devices REFERENCING OLD TABLE AS changed
	FOR EACH STATEMENT EXECUTE FUNCTION registry_changed();

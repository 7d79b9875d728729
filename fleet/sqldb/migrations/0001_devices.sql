-- Device registry. Times are Unix milliseconds (UTC); labels are a JSON object.
CREATE TABLE devices (
	id          TEXT    PRIMARY KEY,
	kind        TEXT    NOT NULL,
	site        TEXT    NOT NULL,
	doors       INTEGER NOT NULL CHECK (doors > 0),
	labels      TEXT    NOT NULL DEFAULT '{}',
	enabled     INTEGER NOT NULL DEFAULT 1,
	secret_hash TEXT    NOT NULL,
	created_at  INTEGER NOT NULL,
	updated_at  INTEGER NOT NULL
);
CREATE INDEX devices_site ON devices (site);

-- registry_version counts changes to the registry, whoever makes them (the hub, the CLI, the
-- API), so that a running hub notices them with one cheap query and nothing else in the
-- database (commands, alerts, audit) wakes it.
CREATE TABLE registry_version (
	id      INTEGER PRIMARY KEY CHECK (id = 1),
	version INTEGER NOT NULL
);
INSERT INTO registry_version (id, version) VALUES (1, 0);
CREATE TRIGGER devices_inserted AFTER INSERT ON devices BEGIN UPDATE registry_version SET version = version + 1; END;
CREATE TRIGGER devices_updated AFTER UPDATE ON devices BEGIN UPDATE registry_version SET version = version + 1; END;
CREATE TRIGGER devices_deleted AFTER DELETE ON devices BEGIN UPDATE registry_version SET version = version + 1; END;

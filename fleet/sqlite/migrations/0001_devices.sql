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

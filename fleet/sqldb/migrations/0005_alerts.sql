-- Alerts raised by the health rules. Times are Unix milliseconds; 0 means not yet.
CREATE TABLE alerts (
	id           INTEGER PRIMARY KEY AUTOINCREMENT,
	rule         TEXT    NOT NULL,
	severity     TEXT    NOT NULL,
	scope        TEXT    NOT NULL,
	device       TEXT    NOT NULL,
	site         TEXT    NOT NULL,
	door         INTEGER NOT NULL DEFAULT 0,
	state        TEXT    NOT NULL,
	summary      TEXT    NOT NULL,
	value        REAL,
	fired_at     INTEGER NOT NULL,
	acked_at     INTEGER NOT NULL DEFAULT 0,
	acked_by     TEXT    NOT NULL DEFAULT '',
	ack_note     TEXT    NOT NULL DEFAULT '',
	resolved_at  INTEGER NOT NULL DEFAULT 0,
	resolved_by  TEXT    NOT NULL DEFAULT '',
	resolve_note TEXT    NOT NULL DEFAULT ''
);
-- One open alert per condition: a rule that keeps holding is one alert, not one per message,
-- even if two writers race.
CREATE UNIQUE INDEX alerts_open ON alerts (rule, device, door) WHERE state != 'resolved';
CREATE INDEX alerts_device ON alerts (device, fired_at);
CREATE INDEX alerts_state ON alerts (state, fired_at);

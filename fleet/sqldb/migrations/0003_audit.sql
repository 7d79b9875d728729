-- Audit trail: a hash chain, append-only (see fleet.AuditEntry for what each hash covers).
-- Times are Unix milliseconds; detail is the canonical JSON object the hash covers.
CREATE TABLE audit (
	seq       INTEGER PRIMARY KEY,
	time      INTEGER NOT NULL,
	actor     TEXT    NOT NULL,
	action    TEXT    NOT NULL,
	device    TEXT    NOT NULL DEFAULT '',
	detail    TEXT    NOT NULL DEFAULT '{}',
	prev_hash TEXT    NOT NULL,
	hash      TEXT    NOT NULL
);
CREATE INDEX audit_device ON audit (device);
CREATE INDEX audit_time ON audit (time);

-- The last entry, updated in the transaction that appends it. The rows alone cannot show that
-- entries were deleted from the end of the chain; a head that points past the last row can.
-- Appends also continue from here rather than from the last row, so that a deleted tail stays
-- a visible gap instead of being papered over by the next entry.
CREATE TABLE audit_head (
	id   INTEGER PRIMARY KEY CHECK (id = 1),
	seq  INTEGER NOT NULL,
	hash TEXT    NOT NULL
);
INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, '');

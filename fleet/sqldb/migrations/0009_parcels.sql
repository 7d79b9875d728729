-- Parcel custody (fleet.Parcel): every delivery into a compartment and what became of it, and
-- the version of each unit's set of pickup codes (fleet.CodeSetVersion). Times are Unix
-- milliseconds. The code itself is never stored: only its salt and PBKDF2 hash, in standard
-- base64 as the code sets carry them (wire.Code), which keeps this file portable.
--
-- Portable: the same file runs on SQLite and PostgreSQL (booleans are INTEGER 0/1).
CREATE TABLE parcels (
	id           TEXT    PRIMARY KEY,
	device       TEXT    NOT NULL,
	registration TEXT    NOT NULL,
	site         TEXT    NOT NULL,
	door         INTEGER NOT NULL,
	compartment  TEXT    NOT NULL,
	size         TEXT    NOT NULL DEFAULT '',
	perishable   INTEGER NOT NULL DEFAULT 0,
	recipient    TEXT    NOT NULL DEFAULT '',
	carrier      TEXT    NOT NULL DEFAULT '',
	status       TEXT    NOT NULL,
	created_at   BIGINT  NOT NULL,
	dropped_at   BIGINT,
	expires_at   BIGINT  NOT NULL,
	picked_up_at BIGINT,
	closed_at    BIGINT,
	closed_by    TEXT    NOT NULL DEFAULT '',
	close_reason TEXT    NOT NULL DEFAULT '',
	offline      INTEGER NOT NULL DEFAULT 0,
	actor        TEXT    NOT NULL,
	actor_name   TEXT    NOT NULL DEFAULT '',
	code_salt    TEXT    NOT NULL,
	code_hash    TEXT    NOT NULL
);
-- One parcel holds a door (fleet.Parcel.Holds: a reservation, or a parcel inside) at a time.
-- The database decides, so of two deliveries to one door at once, by one hub or two, exactly
-- one is stored. A unit registered again under the same id starts with free doors: what is
-- left of the earlier registration belongs to it.
CREATE UNIQUE INDEX parcels_door ON parcels (device, registration, door)
	WHERE status = 'awaiting-dropoff' OR (dropped_at IS NOT NULL AND status NOT IN ('picked-up', 'retrieved'));
CREATE INDEX parcels_device ON parcels (device, created_at);
CREATE INDEX parcels_site ON parcels (site, created_at);
CREATE INDEX parcels_actor ON parcels (actor, created_at);
-- The codes' deadlines: the expiry timer asks for the earliest live one.
CREATE INDEX parcels_expiry ON parcels (status, expires_at);

-- The code set each unit should hold (want, bumped with every change of its live codes) and
-- the one it last reported in its telemetry. Versions only grow, across registrations too: a
-- unit keeps the highest version it has seen.
CREATE TABLE code_sets (
	device       TEXT   PRIMARY KEY,
	registration TEXT   NOT NULL,
	want         BIGINT NOT NULL,
	reported     BIGINT NOT NULL DEFAULT 0
);

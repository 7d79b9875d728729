-- PostgreSQL variant of 0007_registrations.sql (recorded under that name), which says what this
-- does: the same statements, with the random ids made from md5 and random(), since PostgreSQL
-- has no randomblob.
ALTER TABLE devices ADD COLUMN registration TEXT NOT NULL DEFAULT '';
UPDATE devices SET registration = md5(random()::text || clock_timestamp()::text || id);

ALTER TABLE commands ADD COLUMN registration TEXT NOT NULL DEFAULT '';
UPDATE commands SET registration = coalesce((SELECT d.registration FROM devices d
	WHERE d.id = commands.device AND d.created_at <= commands.created_at), '');

ALTER TABLE alerts ADD COLUMN registration TEXT NOT NULL DEFAULT '';
UPDATE alerts SET registration = coalesce((SELECT d.registration FROM devices d
	WHERE d.id = alerts.device AND d.created_at <= alerts.fired_at), '');

DROP INDEX alerts_open;
CREATE UNIQUE INDEX alerts_open ON alerts (rule, device, registration, door) WHERE state != 'resolved';

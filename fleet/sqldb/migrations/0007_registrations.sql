-- Registrations: a device id can be removed and registered again, by another unit at another
-- site, and what the hub recorded of the first unit (its commands, its alerts) must not show
-- under the second (see the fleet package doc). Each registration gets a random id, recorded on
-- the commands and alerts made during it.
--
-- Existing rows: every device gets a registration id. A command or an alert belongs to its
-- device's current registration if that was created no later than it; otherwise (its device
-- was removed, or removed and registered again after it) it is left with '', which no
-- registration has, so readers of the current registration never see it. Open alerts left with
-- '' are resolved by the health rules when the hub starts, as those of removed devices always
-- were (fleet/alerts restore), which also tells their notification receivers.
ALTER TABLE devices ADD COLUMN registration TEXT NOT NULL DEFAULT '';
UPDATE devices SET registration = lower(hex(randomblob(16)));

ALTER TABLE commands ADD COLUMN registration TEXT NOT NULL DEFAULT '';
UPDATE commands SET registration = coalesce((SELECT d.registration FROM devices d
	WHERE d.id = commands.device AND d.created_at <= commands.created_at), '');

ALTER TABLE alerts ADD COLUMN registration TEXT NOT NULL DEFAULT '';
UPDATE alerts SET registration = coalesce((SELECT d.registration FROM devices d
	WHERE d.id = alerts.device AND d.created_at <= alerts.fired_at), '');

-- One open alert per condition of one registration: an alert of an earlier unit, until it is
-- resolved, does not keep the new unit's from firing.
DROP INDEX alerts_open;
CREATE UNIQUE INDEX alerts_open ON alerts (rule, device, registration, door) WHERE state != 'resolved';

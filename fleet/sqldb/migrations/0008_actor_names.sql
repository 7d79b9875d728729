-- Who did it, by name: the name of the token that sent a command, acknowledged or resolved an
-- alert, or made an audit entry, copied into the record at the time (fleet.Actor), so that it
-- outlives the token's revocation. '' for the hub's own actors.
--
-- Portable: the same file runs on SQLite and PostgreSQL.
--
-- Existing commands and alerts take the names from the tokens table, which keeps revoked tokens
-- and never renames one, so these are the names the tokens had when they acted. Existing audit
-- entries keep none: their hashes cover what they were written with, and the chain must still
-- verify (see fleet.AuditEntry on the canonical encoding).
ALTER TABLE commands ADD COLUMN actor_name TEXT NOT NULL DEFAULT '';
UPDATE commands SET actor_name = coalesce((SELECT t.name FROM tokens t WHERE 'token:' || t.id = commands.actor), '');

ALTER TABLE alerts ADD COLUMN acked_by_name TEXT NOT NULL DEFAULT '';
ALTER TABLE alerts ADD COLUMN resolved_by_name TEXT NOT NULL DEFAULT '';
UPDATE alerts SET
	acked_by_name = coalesce((SELECT t.name FROM tokens t WHERE 'token:' || t.id = alerts.acked_by), ''),
	resolved_by_name = coalesce((SELECT t.name FROM tokens t WHERE 'token:' || t.id = alerts.resolved_by), '');

ALTER TABLE audit ADD COLUMN actor_name TEXT NOT NULL DEFAULT '';

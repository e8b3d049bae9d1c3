-- Device lifetimes (docs/SAFETY.md, "What is deleted and when").
-- * seen_hour: the hour a member's browser or app last authenticated, rounded down to the
--   hour like every stored time that is not an expiry. The sweeper removes member devices
--   unseen for `member_device_ttl_secs`, and messages are encrypted only to devices seen
--   within that time, so an abandoned browser neither fills its queue nor receives copies.
--   Survivor devices keep NULL here: no column records when a survivor was last active.
-- * server_secrets: the token signing key no longer lives in the database (it would be in
--   every backup); the server moves a key found here to a 0600 file in the data directory
--   on start and deletes the row. The table is kept empty for older builds.
ALTER TABLE devices ADD COLUMN seen_hour INTEGER;
UPDATE devices SET seen_hour = created_hour WHERE member_id IS NOT NULL;
CREATE INDEX devices_seen ON devices (seen_hour);

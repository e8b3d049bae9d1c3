-- Push registrations: where and when a device may be sent a content-free wake signal
-- (DESIGN.md §7, safe hours; docs/WAKE.md). Privacy notes (DESIGN.md §3):
-- * One row per device, deleted with it (ON DELETE CASCADE) or by DELETE /v1/devices/me/push:
--   the endpoint URL lives only while the device exists.
-- * No record of survivor activity: nothing says when a message arrived or a wake was sent.
--   next_wake_at is an expiry (the earliest time another wake may go out); the wake task resets
--   it to 0 once it has passed, so a dump shows at most that a wake went out in the last
--   `push_min_interval_secs`.
CREATE TABLE push_registrations (
    -- The device's random id; the row dies with the device.
    device_id BLOB PRIMARY KEY NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
    -- The push gateway's URL for this device (UnifiedPush / Web Push). Needed to send the
    -- wake; it names the device at the gateway, so it is kept no longer than the device.
    endpoint TEXT NOT NULL,
    -- The device's own offset from UTC in minutes, as the client chose to give it: a time
    -- zone at most, never a place. A client may send 0 and give its windows in UTC.
    utc_offset_minutes INTEGER NOT NULL,
    -- The weekly safe-hours windows, JSON `[{"day","start_minute","end_minute"}]` in the
    -- device's local time. Wake signals are sent only inside them.
    safe_hours TEXT NOT NULL,
    -- Expiry of the rate limit: no wake before this Unix time; 0 when none is pending.
    next_wake_at INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX push_registrations_next_wake ON push_registrations (next_wake_at);

-- Stream tickets: a browser cannot put an access token in the header of a WebSocket
-- upgrade, so it trades its token for a ticket (POST /v1/stream/ticket) and opens the stream
-- with `?ticket=...`. Kept in the database rather than in one process's memory so a ticket
-- issued by one replica is honoured by another behind the same load balancer.
-- * Only the SHA-256 hash of the ticket is stored; the ticket itself lives 30 seconds and is
--   deleted by the first attempt to use it.
-- * The row carries what the access token carried (subject, token epoch and the token's own
--   expiry, at which a stream opened with the ticket ends), nothing more; it is deleted with
--   its device or member.
-- * expires_at is exact, not rounded up to the hour like other stored expiries: a ticket
--   honoured for an hour would defeat its purpose, and the row lives 30 seconds at most.
CREATE TABLE stream_tickets (
    hash BLOB PRIMARY KEY NOT NULL,
    device_id BLOB NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
    member_id BLOB REFERENCES members(id) ON DELETE CASCADE,
    token_epoch INTEGER NOT NULL,
    access_expires_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX stream_tickets_device ON stream_tickets (device_id);
CREATE INDEX stream_tickets_member ON stream_tickets (member_id);
CREATE INDEX stream_tickets_expiry ON stream_tickets (expires_at);

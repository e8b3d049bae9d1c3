-- Retention set by each organisation (DESIGN.md §7: the program, not the vendor, decides).
-- Lifetimes in seconds; the operator's configuration caps them (max_envelope_ttl_secs,
-- max_idle_ttl_secs). Conversations idle longer than idle_ttl_secs are purged by the sweeper;
-- closing a conversation always purges it at once.
ALTER TABLE orgs ADD COLUMN envelope_ttl_secs BIGINT NOT NULL DEFAULT 604800;
ALTER TABLE orgs ADD COLUMN idle_ttl_secs BIGINT NOT NULL DEFAULT 2592000;
CREATE INDEX conversations_active ON conversations (active_hour);

-- Purge-on-close as an organisation setting (DESIGN.md §7). With purge_on_close = 1 (the
-- default) closing a conversation deletes it at once. With 0, closing deletes its envelopes
-- and events at once but keeps the conversation row, marked closed, until it has been idle
-- for the organisation's idle lifetime, so the survivor can come back to the same advocate.
-- The row holds no message content either way.
ALTER TABLE orgs ADD COLUMN purge_on_close BIGINT NOT NULL DEFAULT 1;
ALTER TABLE conversations ADD COLUMN closed BIGINT NOT NULL DEFAULT 0;

-- Quietline schema, SQLite. Privacy notes (DESIGN.md §3):
-- * No table has a column for an IP address, user agent, phone number, e-mail or name of a
--   survivor. Survivor devices are known only by a random id and their public keys.
-- * Times that are not expiries are stored rounded down to the hour (*_hour columns).
-- * Tokens are stored only as SHA-256 hashes.
-- * Envelopes have no sender column: who sent a message travels inside the ciphertext.

-- Organisations (tenants): a hotline or shelter.
CREATE TABLE orgs (
    id BLOB PRIMARY KEY NOT NULL,                -- 16 random bytes
    code TEXT NOT NULL UNIQUE,                   -- public code survivors use to reach it
    name TEXT NOT NULL,                          -- shown to its members only
    out_of_hours_message TEXT NOT NULL DEFAULT '',
    created_hour INTEGER NOT NULL
);

-- Advocates and supervisors. Members are staff, not survivors; the handle is chosen by the
-- organisation and need not be a real name.
CREATE TABLE members (
    id BLOB PRIMARY KEY NOT NULL,
    org_id BLOB NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    handle TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('advocate', 'supervisor')),
    password_hash TEXT,                          -- argon2id PHC string; NULL until enrolled
    totp_secret BLOB,                            -- NULL until enrolled
    last_totp_step INTEGER NOT NULL DEFAULT 0,   -- refuses a replayed TOTP code
    enroll_token_hash BLOB UNIQUE,               -- SHA-256 of the one-time invitation token
    enroll_expires_at INTEGER,
    on_duty INTEGER NOT NULL DEFAULT 0,
    revoked INTEGER NOT NULL DEFAULT 0,
    token_epoch INTEGER NOT NULL DEFAULT 0,      -- bumped to kill every access token at once
    failed_logins INTEGER NOT NULL DEFAULT 0,
    locked_until INTEGER NOT NULL DEFAULT 0,     -- expiry of the login back-off
    UNIQUE (org_id, handle)
);

-- Devices: survivor phones (member_id NULL) and members' browsers. Only public keys.
CREATE TABLE devices (
    id BLOB PRIMARY KEY NOT NULL,
    member_id BLOB REFERENCES members(id) ON DELETE CASCADE,
    identity_key BLOB NOT NULL,
    signing_key BLOB NOT NULL,
    signed_prekey_id INTEGER NOT NULL,
    signed_prekey BLOB NOT NULL,
    signed_prekey_sig BLOB NOT NULL,
    exit_token_hash BLOB UNIQUE,                 -- survivor devices only
    token_epoch INTEGER NOT NULL DEFAULT 0,
    hidden INTEGER NOT NULL DEFAULT 0,           -- quick exit "hide": deliveries held
    created_hour INTEGER NOT NULL
);
CREATE INDEX devices_member ON devices (member_id);

-- One-time prekeys, each handed out at most once, then deleted.
CREATE TABLE one_time_prekeys (
    device_id BLOB NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
    key_id INTEGER NOT NULL,
    public_key BLOB NOT NULL,
    PRIMARY KEY (device_id, key_id)
);

-- Refresh tokens, hashed. A family is one login or registration; reuse of a used token
-- deletes the whole family.
CREATE TABLE refresh_tokens (
    hash BLOB PRIMARY KEY NOT NULL,
    family BLOB NOT NULL,
    member_id BLOB REFERENCES members(id) ON DELETE CASCADE,
    device_id BLOB REFERENCES devices(id) ON DELETE CASCADE,
    used INTEGER NOT NULL DEFAULT 0,
    expires_at INTEGER NOT NULL
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family);
CREATE INDEX refresh_tokens_device ON refresh_tokens (device_id);
CREATE INDEX refresh_tokens_member ON refresh_tokens (member_id);

-- Outstanding proof-of-work challenges; deleted when used or expired.
CREATE TABLE challenges (
    challenge BLOB PRIMARY KEY NOT NULL,
    bits INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);

-- Conversations: one per survivor device at a time.
CREATE TABLE conversations (
    id BLOB PRIMARY KEY NOT NULL,
    org_id BLOB NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    survivor_device BLOB NOT NULL UNIQUE REFERENCES devices(id) ON DELETE CASCADE,
    assigned_member BLOB REFERENCES members(id) ON DELETE SET NULL,
    urgent INTEGER NOT NULL DEFAULT 0,
    language TEXT,
    queue_seq INTEGER NOT NULL,                    -- order in the queue (not a time)
    opened_hour INTEGER NOT NULL,
    active_hour INTEGER NOT NULL                 -- last activity, for idle purge
);
CREATE INDEX conversations_org ON conversations (org_id, assigned_member, queue_seq);
CREATE INDEX conversations_assigned ON conversations (assigned_member);

-- Envelopes: opaque ciphertext for one recipient device. No sender column.
CREATE TABLE envelopes (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    recipient BLOB NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
    id BLOB NOT NULL,                            -- the sender's random message id
    conversation_id BLOB NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    ciphertext BLOB NOT NULL,
    expires_at INTEGER NOT NULL,
    UNIQUE (recipient, id)
);
CREATE INDEX envelopes_recipient ON envelopes (recipient, seq);
CREATE INDEX envelopes_conversation ON envelopes (conversation_id);
CREATE INDEX envelopes_expiry ON envelopes (expires_at);

-- Events: workflow and safety notices to a device; never message content.
CREATE TABLE events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    recipient BLOB NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
    id BLOB NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    conversation_id BLOB,
    expires_at INTEGER NOT NULL
);
CREATE INDEX events_recipient ON events (recipient, seq);
CREATE INDEX events_conversation ON events (conversation_id);
CREATE INDEX events_expiry ON events (expires_at);

-- Server-wide secrets generated on first start (the token signing key when none is
-- configured), shared by every replica through the database.
CREATE TABLE server_secrets (
    name TEXT PRIMARY KEY NOT NULL,
    value BLOB NOT NULL
);

-- Trust that holds against the relay itself (docs/CRYPTO.md, "Trust").
--
-- * identity_signature: each device's Ed25519 key signs its X25519 identity key, so neither
--   half of an identity can be paired with someone else's. Public; clients check it.
-- * certificate / certificate_sig / certified_until: a member device becomes a recipient
--   only once a supervisor has signed a certificate for it with the organisation key. The
--   server stores and serves the certificate; it cannot make one, because the private half of
--   the organisation key never reaches it. certified_until is the certificate's own expiry,
--   copied out so fan-out can skip expired devices without parsing blobs. Survivor devices
--   never have a certificate.
-- * org_keys: the public half of each organisation's key, with every replacement signed by
--   the key before it, so clients that pinned an older key can follow the chain. Public data.
ALTER TABLE devices ADD COLUMN identity_signature BYTEA NOT NULL DEFAULT ''::bytea;
ALTER TABLE devices ADD COLUMN certificate BYTEA;
ALTER TABLE devices ADD COLUMN certificate_sig BYTEA;
ALTER TABLE devices ADD COLUMN certified_until BIGINT;

CREATE TABLE org_keys (
    org_id BYTEA NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    seq BIGINT NOT NULL,                        -- 0 = first key; each next one replaces it
    public_key BYTEA NOT NULL,                    -- Ed25519, 32 bytes
    signature BYTEA,                              -- by the previous key; NULL for seq 0
    created_hour BIGINT NOT NULL,
    PRIMARY KEY (org_id, seq)
);

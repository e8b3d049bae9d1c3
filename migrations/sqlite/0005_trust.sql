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
ALTER TABLE devices ADD COLUMN identity_signature BLOB NOT NULL DEFAULT x'';
ALTER TABLE devices ADD COLUMN certificate BLOB;
ALTER TABLE devices ADD COLUMN certificate_sig BLOB;
ALTER TABLE devices ADD COLUMN certified_until INTEGER;

CREATE TABLE org_keys (
    org_id BLOB NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,                        -- 0 = first key; each next one replaces it
    public_key BLOB NOT NULL,                    -- Ed25519, 32 bytes
    signature BLOB,                              -- by the previous key; NULL for seq 0
    created_hour INTEGER NOT NULL,
    PRIMARY KEY (org_id, seq)
);

#!/usr/bin/env python3
"""Independent check of Quietline's frozen vectors (protocol version 2).

Recomputes every envelope in x3dh_ratchet.json from the private keys alone, using PyPI's
`cryptography` package (OpenSSL's X25519, Ed25519, HKDF, HMAC and ChaCha20-Poly1305) and
the protocol as written in docs/CRYPTO.md, and compares byte for byte. It also re-derives
the private keys from the deterministic generator the Rust tests use (SHA-256 of label and
counter) and re-creates the signed-prekey and identity binding signatures.

From org_trust.json it re-creates the device certificate body and its signature, the
organisation key change statement and its signature, the organisation fingerprint, the
survivor fingerprint and conversation safety number, and the sealed organisation key file
(Argon2id from `cryptography`, XChaCha20-Poly1305 as HChaCha20 written out here plus
OpenSSL's ChaCha20-Poly1305).

    pip install cryptography   # any recent version; checked with 48.0
    python3 proto/tests/vectors/crosscheck.py

Exit status 0 and "all N checks passed" means Rust and OpenSSL agree on every byte.
"""

import hashlib
import json
import struct
import sys
from pathlib import Path

from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.asymmetric.x25519 import (
    X25519PrivateKey,
    X25519PublicKey,
)
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

VERSION = 2
X3DH_INFO = b"Quietline_X3DH_v1"
RATCHET_INFO = b"Quietline_Ratchet_v1"
MESSAGE_KEYS_INFO = b"Quietline_MsgKeys_v1"
SIGNED_PREKEY_LABEL = b"Quietline_SignedPrekey_v1"
IDENTITY_BINDING = b"Quietline_IdentityBinding_v1"
FINGERPRINT = b"Quietline_Fingerprint_v1"
CERTIFICATE = b"Quietline_DeviceCertificate_v1"
ORG_KEY_CHANGE = b"Quietline_OrgKeyChange_v1"
ORG_FINGERPRINT = b"Quietline_OrgKey_Fingerprint_v1"
ORG_KEY_SEAL = b"Quietline_OrgKeySeal_v1"
BUCKETS = [1024, 4096, 16384, 65536]
TAG = 16

checks = 0


def check(what, got, want):
    global checks
    if got != want:
        print(f"MISMATCH {what}:\n  python {got!r}\n  frozen {want!r}")
        sys.exit(1)
    checks += 1


def seeded(label, index):
    """Block `index` of the Rust tests' SeededRng: SHA-256(label || u64 BE index)."""
    return hashlib.sha256(label.encode() + struct.pack(">Q", index)).digest()


def x_pub(priv):
    return X25519PrivateKey.from_private_bytes(priv).public_key().public_bytes_raw()


def dh(priv, pub):
    # OpenSSL refuses the all-zero result itself, like our contributory check.
    return X25519PrivateKey.from_private_bytes(priv).exchange(
        X25519PublicKey.from_public_bytes(pub)
    )


def hkdf(salt, ikm, info, length):
    return HKDF(hashes.SHA256(), length, salt, info).derive(ikm)


def hmac256(key, data):
    m = hmac.HMAC(key, hashes.SHA256())
    m.update(data)
    return m.finalize()


def kdf_rk(rk, dh_out):
    okm = hkdf(rk, dh_out, RATCHET_INFO, 64)
    return okm[:32], okm[32:]


def kdf_ck(ck):
    return hmac256(ck, b"\x02"), hmac256(ck, b"\x01")  # (next chain key, message key)


def x3dh(dhs):
    return hkdf(b"\x00" * 32, b"\xff" * 32 + b"".join(dhs), X3DH_INFO, 32)


def encode_envelope(prekey, dh_pub, pn, n, plaintext, mk, session_ad):
    out = bytes([VERSION])
    if prekey is not None:
        ik_dh, ik_sig, binding, ek, spk_id, opk_id = prekey
        out += bytes([1]) + ik_dh + ik_sig + binding + ek + struct.pack(">I", spk_id)
        out += bytes([1 if opk_id is not None else 0]) + struct.pack(">I", opk_id or 0)
        out += struct.pack(">H", 0)  # empty KEM slot
    else:
        out += bytes([2])
    out += dh_pub + struct.pack(">II", pn, n)
    need = len(out) + len(plaintext) + 1 + TAG
    total = next(b for b in BUCKETS if b >= need)
    padded = plaintext + b"\x80" + b"\x00" * (total - TAG - len(out) - len(plaintext) - 1)
    okm = hkdf(b"\x00" * 32, mk, MESSAGE_KEYS_INFO, 44)
    key, nonce = okm[:32], okm[32:]
    return out + ChaCha20Poly1305(key).encrypt(nonce, padded, session_ad + out)


def run(name, case):
    a, b = case["alice"], case["bob"]
    la, lb = case["rng_alice"], case["rng_bob"]
    h = bytes.fromhex

    # The private keys are what the deterministic generator gives, in draw order.
    check(f"{name} alice ik", h(a["identity_dh_private"]), seeded(la, 0))
    check(f"{name} alice seed", h(a["signing_seed"]), seeded(la, 1))
    check(f"{name} alice ek", h(a["ephemeral_private"]), seeded(la, 2))
    check(f"{name} alice ratchet", [h(x) for x in a["ratchet_private"]], [seeded(la, 3), seeded(la, 4)])
    check(f"{name} bob ik", h(b["identity_dh_private"]), seeded(lb, 0))
    check(f"{name} bob seed", h(b["signing_seed"]), seeded(lb, 1))
    check(f"{name} bob spk", h(b["signed_prekey_private"]), seeded(lb, 2))
    check(f"{name} bob ratchet", [h(x) for x in b["ratchet_private"]], [seeded(lb, 5), seeded(lb, 6)])

    ik_a, ek_a = h(a["identity_dh_private"]), h(a["ephemeral_private"])
    ik_b, spk_b = h(b["identity_dh_private"]), h(b["signed_prekey_private"])
    opk_b = h(b["one_time_prekey_private"]) if b["one_time_prekey_private"] else None
    sig_a = Ed25519PrivateKey.from_private_bytes(h(a["signing_seed"])).public_key().public_bytes_raw()
    bob_signer = Ed25519PrivateKey.from_private_bytes(h(b["signing_seed"]))
    sig_b = bob_signer.public_key().public_bytes_raw()
    check(f"{name} alice public", (x_pub(ik_a), sig_a), (h(a["identity_dh_public"]), h(a["signing_public"])))
    check(f"{name} bob public", (x_pub(ik_b), sig_b), (h(b["identity_dh_public"]), h(b["signing_public"])))
    check(f"{name} spk public", x_pub(spk_b), h(b["signed_prekey_public"]))

    # Signed prekey: Ed25519 over label || IK_B (X25519) || id (u32 BE) || SPK_B.
    spk_msg = SIGNED_PREKEY_LABEL + x_pub(ik_b) + struct.pack(">I", b["signed_prekey_id"]) + x_pub(spk_b)
    Ed25519PublicKey.from_public_bytes(sig_b).verify(h(b["signed_prekey_signature"]), spk_msg)
    check(f"{name} spk signature", bob_signer.sign(spk_msg), h(b["signed_prekey_signature"]))

    # Identity binding: Ed25519 over label || X25519 identity key, both devices.
    alice_signer = Ed25519PrivateKey.from_private_bytes(h(a["signing_seed"]))
    binding_a = alice_signer.sign(IDENTITY_BINDING + x_pub(ik_a))
    check(f"{name} alice identity binding", binding_a, h(a["identity_signature"]))
    check(f"{name} bob identity binding", bob_signer.sign(IDENTITY_BINDING + x_pub(ik_b)), h(b["identity_signature"]))

    # X3DH, Alice's side and Bob's side.
    dhs_a = [dh(ik_a, x_pub(spk_b)), dh(ek_a, x_pub(ik_b)), dh(ek_a, x_pub(spk_b))]
    dhs_b = [dh(spk_b, x_pub(ik_a)), dh(ik_b, x_pub(ek_a)), dh(spk_b, x_pub(ek_a))]
    if opk_b:
        dhs_a.append(dh(ek_a, x_pub(opk_b)))
        dhs_b.append(dh(opk_b, x_pub(ek_a)))
    sk = x3dh(dhs_a)
    check(f"{name} x3dh both sides", x3dh(dhs_b), sk)
    print(f"{name}: SK = {sk.hex()}")

    conv = h(case["conversation_id"])
    session_ad = bytes([VERSION]) + x_pub(ik_a) + sig_a + x_pub(ik_b) + sig_b + conv
    prekey = (x_pub(ik_a), sig_a, binding_a, x_pub(ek_a), b["signed_prekey_id"], b["one_time_prekey_id"])
    msgs = case["messages"]
    pt = [m["plaintext"].encode() for m in msgs]

    # Alice: RatchetInitAlice with Bob's signed prekey as his first ratchet key.
    dhs_a0, dhs_a1 = (h(x) for x in a["ratchet_private"])
    dhs_b1 = h(b["ratchet_private"][0])
    rk, cks = kdf_rk(sk, dh(dhs_a0, x_pub(spk_b)))
    cks, mk0 = kdf_ck(cks)
    cks, mk1 = kdf_ck(cks)
    env = [None] * 4
    env[0] = encode_envelope(prekey, x_pub(dhs_a0), 0, 0, pt[0], mk0, session_ad)
    env[1] = encode_envelope(prekey, x_pub(dhs_a0), 0, 1, pt[1], mk1, session_ad)

    # Bob: RatchetInitBob (rk = SK, DHs = SPK), DH ratchet on Alice's key, then answers.
    rk_b, ckr_b = kdf_rk(sk, dh(spk_b, x_pub(dhs_a0)))
    check(f"{name} bob receiving chain = alice sending chain", kdf_ck(kdf_ck(ckr_b)[0])[1], mk1)
    rk_b, cks_b = kdf_rk(rk_b, dh(dhs_b1, x_pub(dhs_a0)))
    cks_b, mk = kdf_ck(cks_b)
    env[2] = encode_envelope(None, x_pub(dhs_b1), 0, 0, pt[2], mk, session_ad)

    # Alice: DH ratchet on Bob's new key (PN = 2 messages sent in her first chain).
    rk, ckr = kdf_rk(rk, dh(dhs_a0, x_pub(dhs_b1)))
    check(f"{name} alice receiving chain = bob sending chain", kdf_ck(ckr)[1], mk)
    rk, cks = kdf_rk(rk, dh(dhs_a1, x_pub(dhs_b1)))
    cks, mk = kdf_ck(cks)
    env[3] = encode_envelope(None, x_pub(dhs_a1), 2, 0, pt[3], mk, session_ad)

    for i in range(4):
        check(f"{name} envelope {i}", env[i].hex(), msgs[i]["envelope"])

    # Bob's receiving half of the next DH ratchet step lands on Alice's root key.
    rk_b, ckr_b = kdf_rk(rk_b, dh(dhs_b1, x_pub(dhs_a1)))
    check(f"{name} bob root = alice root", rk_b, rk)


def fingerprint(label, data):
    """30 digits: 5,200 rounds of SHA-512, first over label || 0x01 || data, then hash || data."""
    digest = hashlib.sha512(label + b"\x01" + data).digest()
    for _ in range(1, 5200):
        digest = hashlib.sha512(digest + data).digest()
    return "".join(f"{int.from_bytes(digest[i:i + 5], 'big') % 100000:05d}" for i in range(0, 30, 5))


def rotl(v, c):
    return ((v << c) & 0xFFFFFFFF) | (v >> (32 - c))


def hchacha20(key, nonce16):
    """HChaCha20 (draft-irtf-cfrg-xchacha, section 2.2): the XChaCha20 subkey."""
    state = [0x61707865, 0x3320646E, 0x79622D32, 0x6B206574]
    state += list(struct.unpack("<8I", key)) + list(struct.unpack("<4I", nonce16))

    def qr(a, b, c, d):
        state[a] = (state[a] + state[b]) & 0xFFFFFFFF; state[d] = rotl(state[d] ^ state[a], 16)
        state[c] = (state[c] + state[d]) & 0xFFFFFFFF; state[b] = rotl(state[b] ^ state[c], 12)
        state[a] = (state[a] + state[b]) & 0xFFFFFFFF; state[d] = rotl(state[d] ^ state[a], 8)
        state[c] = (state[c] + state[d]) & 0xFFFFFFFF; state[b] = rotl(state[b] ^ state[c], 7)

    for _ in range(10):
        qr(0, 4, 8, 12); qr(1, 5, 9, 13); qr(2, 6, 10, 14); qr(3, 7, 11, 15)
        qr(0, 5, 10, 15); qr(1, 6, 11, 12); qr(2, 7, 8, 13); qr(3, 4, 9, 14)
    return struct.pack("<8I", *(state[0:4] + state[12:16]))


def xchacha20poly1305_encrypt(key, nonce24, plaintext, aad):
    subkey = hchacha20(key, nonce24[:16])
    return ChaCha20Poly1305(subkey).encrypt(b"\x00" * 4 + nonce24[16:], plaintext, aad)


def seeded_stream(label, length):
    out = b""
    i = 0
    while len(out) < length:
        out += seeded(label, i)
        i += 1
    return out[:length]


def run_trust(t):
    h = bytes.fromhex
    label = t["rng_org"]
    check("org seed", h(t["org_seed"]), seeded(label, 0))
    org = Ed25519PrivateKey.from_private_bytes(h(t["org_seed"]))
    org_pub = org.public_key().public_bytes_raw()
    check("org public", org_pub, h(t["org_public"]))
    digits = fingerprint(ORG_FINGERPRINT, org_pub)
    check("org fingerprint", " ".join(digits[i:i + 5] for i in range(0, 30, 5)), t["org_fingerprint"])

    # Certificate body: format | org len | org | member | role | device | IK | signing key |
    # not_before i64 BE | not_after i64 BE; signed as label || body.
    c = t["certificate"]
    org_code = c["org"].encode()
    body = bytes([1, len(org_code)]) + org_code + h(c["member_id"]) + bytes([c["role"]])
    body += h(c["device_id"]) + h(c["identity_key"]) + h(c["signing_key"])
    body += struct.pack(">qq", c["not_before"], c["not_after"])
    check("certificate body", body.hex(), c["body"])
    org.public_key().verify(h(c["signature"]), CERTIFICATE + body)
    check("certificate signature", org.sign(CERTIFICATE + body), h(c["signature"]))

    # Key change: label || org len | org | previous key | next key, signed by the previous key.
    k = t["key_change"]
    check("next seed", h(k["next_seed"]), seeded(label, 1))
    next_pub = Ed25519PrivateKey.from_private_bytes(h(k["next_seed"])).public_key().public_bytes_raw()
    check("next public", next_pub, h(k["next_public"]))
    code = k["org"].encode()
    statement = ORG_KEY_CHANGE + bytes([len(code)]) + code + org_pub + next_pub
    check("change statement", statement.hex(), k["statement"])
    check("change signature", org.sign(statement), h(k["signature"]))

    # Conversation safety number: organisation digits, then the survivor's fingerprint.
    s = t["survivor"]
    survivor = fingerprint(FINGERPRINT, h(s["identity_dh_public"]) + h(s["signing_public"]))
    check("survivor fingerprint", survivor, s["fingerprint"])
    check("conversation safety number", digits + survivor, s["conversation_safety_number"])

    # Sealed organisation key: QLOK | 1 | m | t | p | salt 16 | nonce 24 | ciphertext || tag.
    sealed = t["sealed_org_key"]
    m, t_cost, p = sealed["m_kib"], sealed["t"], sealed["p"]
    header = b"QLOK" + bytes([1]) + struct.pack(">III", m, t_cost, p)
    stream = seeded_stream(sealed["rng"], 40)
    salt, nonce = stream[:16], stream[16:40]
    key = Argon2id(salt=salt, length=32, iterations=t_cost, lanes=p, memory_cost=m).derive(
        sealed["passphrase"].encode()
    )
    ciphertext = xchacha20poly1305_encrypt(key, nonce, h(t["org_seed"]), ORG_KEY_SEAL + header)
    check("sealed org key file", (header + salt + nonce + ciphertext).hex(), sealed["file"])


def check_hchacha20():
    # draft-irtf-cfrg-xchacha-03, section 2.2.1.
    key = bytes(range(32))
    nonce = bytes.fromhex("000000090000004a0000000031415927")
    want = "82413b4227b27bfed30e42508a877d73a0f9e4d58a74a853c12ec41326d3ecdc"
    check("hchacha20 test vector", hchacha20(key, nonce).hex(), want)


def main():
    path = Path(__file__).with_name("x3dh_ratchet.json")
    vectors = json.loads(path.read_text())
    for name in ("with_one_time_prekey", "without_one_time_prekey"):
        run(name, vectors[name])
    check_hchacha20()
    run_trust(json.loads(Path(__file__).with_name("org_trust.json").read_text()))
    print(f"all {checks} checks passed")


if __name__ == "__main__":
    main()

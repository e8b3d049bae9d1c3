#!/usr/bin/env python3
"""Independent check of Quietline's frozen X3DH / Double Ratchet vectors.

Recomputes every envelope in x3dh_ratchet.json from the private keys alone, using PyPI's
`cryptography` package (OpenSSL's X25519, Ed25519, HKDF, HMAC and ChaCha20-Poly1305) and
the protocol as written in docs/CRYPTO.md, and compares byte for byte. It also re-derives
the private keys from the deterministic generator the Rust tests use (SHA-256 of label and
counter) and re-creates the signed-prekey signature.

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
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

VERSION = 1
X3DH_INFO = b"Quietline_X3DH_v1"
RATCHET_INFO = b"Quietline_Ratchet_v1"
MESSAGE_KEYS_INFO = b"Quietline_MsgKeys_v1"
SIGNED_PREKEY_LABEL = b"Quietline_SignedPrekey_v1"
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
        ik_dh, ik_sig, ek, spk_id, opk_id = prekey
        out += bytes([1]) + ik_dh + ik_sig + ek + struct.pack(">I", spk_id)
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
    prekey = (x_pub(ik_a), sig_a, x_pub(ek_a), b["signed_prekey_id"], b["one_time_prekey_id"])
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


def main():
    path = Path(__file__).with_name("x3dh_ratchet.json")
    vectors = json.loads(path.read_text())
    for name in ("with_one_time_prekey", "without_one_time_prekey"):
        run(name, vectors[name])
    print(f"all {checks} checks passed")


if __name__ == "__main__":
    main()

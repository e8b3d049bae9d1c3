//! Device certificates as a client receives them from the relay: the strict body decoder
//! and the full check under a pinned organisation key. Never panics; whatever decodes
//! re-encodes to the same bytes (one encoding per body); a changed certificate never
//! verifies.
#![no_main]

mod trust_setup;

use libfuzzer_sys::fuzz_target;
use quietline_proto::b64::Bytes;
use quietline_proto::trust::CertificateBody;
use quietline_proto::wire::Certificate;

fuzz_target!(|data: &[u8]| {
    let fixture = trust_setup::fixture();
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let cert = match mode % 3 {
        // Raw bytes as the body, with the genuine signature.
        0 => Certificate {
            body: Bytes(rest.to_vec()),
            signature: fixture.certificate.signature.clone(),
        },
        // The genuine certificate with bytes changed in the body or the signature.
        1 => Certificate {
            body: Bytes(trust_setup::flip(&fixture.certificate.body.0, rest)),
            signature: fixture.certificate.signature.clone(),
        },
        _ => Certificate {
            body: fixture.certificate.body.clone(),
            signature: Bytes(trust_setup::flip(&fixture.certificate.signature.0, rest)),
        },
    };
    if let Ok(body) = CertificateBody::decode(cert.body.as_slice()) {
        assert_eq!(body.encode(), cert.body.0);
    }
    match fixture
        .org
        .verify_certificate(&cert, trust_setup::ORG, trust_setup::NOW)
    {
        Ok(_) => assert!(cert == fixture.certificate),
        Err(_) => assert!(cert != fixture.certificate),
    }
});

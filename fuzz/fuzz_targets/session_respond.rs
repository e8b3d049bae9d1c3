//! The responder's X3DH on first-message envelopes: never panics, a changed envelope never
//! creates a session, and a refused one leaves the device secrets (one-time prekeys) intact.
#![no_main]

mod setup;

use libfuzzer_sys::fuzz_target;
use quietline_proto::crypto::session::Session;

fuzz_target!(|data: &[u8]| {
    let fixture = setup::fixture();
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let input = if mode % 2 == 0 {
        setup::flip(&fixture.first_contact, rest)
    } else {
        rest.to_vec()
    };
    let mut secrets = fixture.bob_secrets.clone();
    let before = secrets.to_bytes();
    match Session::respond_with(
        &mut secrets,
        setup::CONVERSATION,
        &input,
        &mut setup::Counter(0),
        None,
    ) {
        Ok(_) => assert!(input == fixture.first_contact),
        Err(_) => assert_eq!(secrets.to_bytes(), before),
    }
});

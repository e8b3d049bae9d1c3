//! Organisation key histories as the relay serves them (`GET /v1/orgs/{code}/key`): any
//! JSON, and a genuine three-key history with bytes changed. Never panics; a changed
//! history never verifies from its first key.
#![no_main]

mod trust_setup;

use libfuzzer_sys::fuzz_target;
use quietline_proto::trust::{chain_head, verify_chain};
use quietline_proto::wire::OrgKeyChain;

fuzz_target!(|data: &[u8]| {
    let fixture = trust_setup::fixture();
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode % 2 == 0 {
        if let Ok(chain) = serde_json::from_slice::<OrgKeyChain>(rest) {
            let _ = chain_head(trust_setup::ORG, &chain);
            let _ = verify_chain(&fixture.org, trust_setup::ORG, &chain);
        }
        return;
    }
    let mut chain = fixture.chain.clone();
    let Some((&which, edits)) = rest.split_first() else {
        return;
    };
    let i = usize::from(which) % chain.changes.len();
    if which & 0x80 == 0 {
        chain.changes[i].key.0 = trust_setup::flip(&chain.changes[i].key.0, edits);
    } else {
        chain.changes[i].signature.0 = trust_setup::flip(&chain.changes[i].signature.0, edits);
    }
    let head = chain_head(trust_setup::ORG, &chain);
    let pinned = verify_chain(&fixture.org, trust_setup::ORG, &chain);
    if chain == fixture.chain {
        assert_eq!(head, Ok(fixture.current));
        assert_eq!(pinned, Ok(fixture.current));
    } else {
        assert!(head.is_err() && pinned.is_err());
    }
});

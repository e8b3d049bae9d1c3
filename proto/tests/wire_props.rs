//! Property tests for the decoders the relay runs on untrusted input: ids, base64url fields
//! and request bodies. Whatever parses round-trips; nothing panics.

use proptest::prelude::*;
use quietline_proto::wire::{Ack, ClientFrame, SendMessage};
use quietline_proto::{Id, b64};

proptest! {
    #[test]
    fn ids_round_trip_and_only_canonical_text_parses(bytes in any::<[u8; 16]>(), text in ".{0,40}") {
        let id = Id(bytes);
        prop_assert_eq!(id.to_string().parse::<Id>(), Ok(id));
        if let Ok(parsed) = text.parse::<Id>() {
            prop_assert_eq!(parsed.to_string(), text);
        }
    }

    #[test]
    fn base64url_round_trips_and_is_canonical(bytes in proptest::collection::vec(any::<u8>(), 0..300), text in "[A-Za-z0-9_=+/-]{0,64}") {
        prop_assert_eq!(b64::decode(&b64::encode(&bytes)).unwrap(), bytes);
        if let Ok(decoded) = b64::decode(&text) {
            prop_assert_eq!(b64::encode(&decoded), text);
        }
    }

    #[test]
    fn request_decoders_never_panic_and_round_trip(data in proptest::collection::vec(any::<u8>(), 0..512)) {
        if let Ok(m) = serde_json::from_slice::<SendMessage>(&data) {
            let again: SendMessage = serde_json::from_slice(&serde_json::to_vec(&m).unwrap()).unwrap();
            prop_assert_eq!(again, m);
        }
        let _ = serde_json::from_slice::<Ack>(&data);
        let _ = serde_json::from_slice::<ClientFrame>(&data);
    }

    #[test]
    fn valid_send_message_bodies_parse(ids in proptest::collection::vec(any::<[u8; 16]>(), 1..5), len in 0usize..2048) {
        let body = serde_json::json!({
            "message_id": Id(ids[0]).to_string(),
            "envelopes": ids.iter().map(|d| serde_json::json!({"device_id": Id(*d).to_string(), "ciphertext": b64::encode(&vec![7u8; len])})).collect::<Vec<_>>(),
        });
        let m: SendMessage = serde_json::from_value(body).unwrap();
        prop_assert_eq!(m.envelopes.len(), ids.len());
        prop_assert!(m.envelopes.iter().all(|e| e.ciphertext.len() == len));
    }
}

//! Property tests for the decoders the relay runs on untrusted input: ids, base64url fields
//! and request bodies. The inputs are valid encodings, the same with one change (a character
//! or byte replaced, cut short, lengthened), and random text, so both the "parses and
//! round-trips" branch and the "refused without panicking" branch run in every case set.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use proptest::prelude::*;
use quietline_proto::wire::{Ack, ClientFrame, OutgoingEnvelope, SendMessage};
use quietline_proto::{Id, b64};

/// Replace the character at `at` (modulo the length) with `c`.
fn replace_char(s: &str, at: usize, c: char) -> String {
    let mut chars: Vec<char> = s.chars().collect();
    if !chars.is_empty() {
        let i = at % chars.len();
        chars[i] = c;
    }
    chars.into_iter().collect()
}

/// Text that is a canonical id, an id with one character changed, an id of the wrong
/// length, or random.
fn id_text() -> impl Strategy<Value = String> {
    let alphabet = "[A-Za-z0-9_=+/.-]";
    prop_oneof![
        any::<[u8; 16]>().prop_map(|b| Id(b).to_string()),
        (any::<[u8; 16]>(), any::<usize>(), alphabet).prop_map(|(b, at, c)| replace_char(
            &Id(b).to_string(),
            at,
            c.chars().next().unwrap_or('A')
        )),
        (any::<[u8; 16]>(), "[A-Za-z0-9_-]{1,3}").prop_map(|(b, extra)| Id(b).to_string() + &extra),
        any::<[u8; 16]>().prop_map(|b| Id(b).to_string()[..21].to_owned()),
        ".{0,40}",
    ]
}

/// Text that is canonical unpadded base64url, the same with one character changed or one
/// appended, or random text over the base64 alphabets.
fn b64_text() -> impl Strategy<Value = String> {
    let bytes = proptest::collection::vec(any::<u8>(), 0..100);
    prop_oneof![
        bytes.clone().prop_map(|b| b64::encode(&b)),
        (bytes.clone(), any::<usize>(), "[A-Za-z0-9_=+/-]").prop_map(|(b, at, c)| replace_char(
            &b64::encode(&b),
            at,
            c.chars().next().unwrap_or('A')
        )),
        (bytes, "[A-Za-z0-9_-]").prop_map(|(b, c)| b64::encode(&b) + &c),
        "[A-Za-z0-9_=+/-]{0,64}",
    ]
}

fn send_message() -> impl Strategy<Value = SendMessage> {
    (
        any::<[u8; 16]>(),
        proptest::collection::vec(
            (
                any::<[u8; 16]>(),
                proptest::collection::vec(any::<u8>(), 0..64),
            ),
            0..4,
        ),
    )
        .prop_map(|(id, envs)| SendMessage {
            message_id: Id(id),
            envelopes: envs
                .into_iter()
                .map(|(d, c)| OutgoingEnvelope {
                    device_id: Id(d),
                    ciphertext: b64::Bytes(c),
                })
                .collect(),
        })
}

fn ack() -> impl Strategy<Value = Ack> {
    proptest::collection::vec(any::<[u8; 16]>(), 0..5).prop_map(|ids| Ack {
        ids: ids.into_iter().map(Id).collect(),
    })
}

/// How a valid body is changed before decoding.
#[derive(Debug, Clone)]
enum Change {
    None,
    Byte { at: usize, to: u8 },
    Truncate { at: usize },
    AppendField,
}

fn change() -> impl Strategy<Value = Change> {
    prop_oneof![
        2 => Just(Change::None),
        2 => (any::<usize>(), any::<u8>()).prop_map(|(at, to)| Change::Byte { at, to }),
        1 => any::<usize>().prop_map(|at| Change::Truncate { at }),
        1 => Just(Change::AppendField),
    ]
}

fn apply(mut body: Vec<u8>, change: &Change) -> Vec<u8> {
    match *change {
        Change::None => {}
        Change::Byte { at, to } => {
            let i = at % body.len();
            body[i] = to;
        }
        Change::Truncate { at } => body.truncate(at % body.len()),
        Change::AppendField => {
            // `{"a":1,...}` or `{}` gains an unknown field, which requests refuse.
            body.pop();
            if body.len() > 1 {
                body.push(b',');
            }
            body.extend_from_slice(br#""extra":1}"#);
        }
    }
    body
}

/// Decode `data` as `T`; whatever decodes re-encodes and decodes to the same value.
fn round_trips<T>(data: &[u8]) -> Result<bool, TestCaseError>
where
    T: serde::de::DeserializeOwned + serde::Serialize + PartialEq + std::fmt::Debug,
{
    match serde_json::from_slice::<T>(data) {
        Ok(value) => {
            let again: T = serde_json::from_slice(&serde_json::to_vec(&value).unwrap()).unwrap();
            prop_assert_eq!(again, value);
            Ok(true)
        }
        Err(_) => Ok(false),
    }
}

proptest! {
    #[test]
    fn ids_round_trip_and_only_canonical_text_parses(bytes in any::<[u8; 16]>(), text in id_text()) {
        let id = Id(bytes);
        prop_assert_eq!(id.to_string().parse::<Id>(), Ok(id));
        if let Ok(parsed) = text.parse::<Id>() {
            prop_assert_eq!(parsed.to_string(), text);
        } else {
            prop_assert!(text.len() != 22 || b64::decode(&text).is_err());
        }
    }

    #[test]
    fn base64url_round_trips_and_is_canonical(bytes in proptest::collection::vec(any::<u8>(), 0..300), text in b64_text()) {
        prop_assert_eq!(b64::decode(&b64::encode(&bytes)).unwrap(), bytes);
        if let Ok(decoded) = b64::decode(&text) {
            prop_assert_eq!(b64::encode(&decoded), text);
        }
    }

    #[test]
    fn request_decoders_never_panic_and_round_trip(
        message in send_message(),
        acked in ack(),
        how in change(),
        noise in proptest::collection::vec(any::<u8>(), 0..256),
    ) {
        let valid = [
            serde_json::to_vec(&message).unwrap(),
            serde_json::to_vec(&acked).unwrap(),
            serde_json::to_vec(&ClientFrame::Ack { ids: acked.ids.clone() }).unwrap(),
        ];
        // Unchanged valid bodies always decode to what was encoded.
        if matches!(how, Change::None) {
            prop_assert_eq!(serde_json::from_slice::<SendMessage>(&valid[0]).unwrap(), message.clone());
            prop_assert_eq!(serde_json::from_slice::<Ack>(&valid[1]).unwrap(), acked.clone());
        }
        if matches!(how, Change::AppendField) {
            prop_assert!(serde_json::from_slice::<SendMessage>(&apply(valid[0].clone(), &how)).is_err());
            prop_assert!(serde_json::from_slice::<Ack>(&apply(valid[1].clone(), &how)).is_err());
        }
        for body in valid.iter().map(|b| apply(b.clone(), &how)).chain([noise]) {
            round_trips::<SendMessage>(&body)?;
            round_trips::<Ack>(&body)?;
            round_trips::<ClientFrame>(&body)?;
        }
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

/// The changed inputs really reach both branches: a one-character change to an id is
/// sometimes still an id (and then canonical) and sometimes not.
#[test]
fn changed_ids_reach_both_branches() {
    let id = Id([0x5a; 16]).to_string();
    assert_eq!(id, "WlpaWlpaWlpaWlpaWlpaWg");
    let changed = replace_char(&id, 0, 'A');
    assert_eq!(changed.parse::<Id>().unwrap().to_string(), changed);
    assert!(replace_char(&id, 0, '+').parse::<Id>().is_err());
    // The last character carries 4 spare bits that must be zero: `h` sets one.
    assert!(replace_char(&id, 21, 'h').parse::<Id>().is_err());
    assert!(replace_char(&id, 21, 'w').parse::<Id>().is_ok());
}

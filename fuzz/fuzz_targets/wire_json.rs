//! The relay's request decoders on any input: every request body type, the stream's client
//! frames, ids and base64url fields. The server parses exactly these from untrusted clients;
//! none may panic, and whatever parses must serialise and parse back to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use quietline_proto::wire::*;
use quietline_proto::{Id, b64};

fn round_trip<T>(data: &[u8])
where
    T: serde::de::DeserializeOwned + serde::Serialize + PartialEq + std::fmt::Debug,
{
    if let Ok(v) = serde_json::from_slice::<T>(data) {
        let text = serde_json::to_vec(&v).unwrap();
        let back: T = serde_json::from_slice(&text).unwrap();
        assert_eq!(back, v);
    }
}

fuzz_target!(|data: &[u8]| {
    round_trip::<RegisterDevice>(data);
    round_trip::<UploadPrekeys>(data);
    round_trip::<SendMessage>(data);
    round_trip::<Ack>(data);
    round_trip::<ClientFrame>(data);
    round_trip::<OpenConversation>(data);
    round_trip::<Transfer>(data);
    round_trip::<Duty>(data);
    round_trip::<OrgSettings>(data);
    round_trip::<ExitRequest>(data);
    round_trip::<ReturnRequest>(data);
    round_trip::<PushRegistration>(data);
    round_trip::<SetOrgKey>(data);
    round_trip::<Certificate>(data);
    round_trip::<OrgKeyChain>(data);
    let _ = serde_json::from_slice::<Login>(data);
    let _ = serde_json::from_slice::<Enroll>(data);
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(id) = text.parse::<Id>() {
            assert_eq!(id.to_string(), text);
        }
        if let Ok(bytes) = b64::decode(text) {
            assert_eq!(b64::encode(&bytes), text);
        }
    }
});

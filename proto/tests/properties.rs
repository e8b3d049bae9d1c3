//! Property tests over random interleavings (issue 3, point 4): two devices send in both
//! directions while the network loses, reorders, duplicates and tampers with envelopes.
//! Every delivered message opens exactly once with its own plaintext; a tampered or
//! replayed envelope fails and leaves the receiver's state byte-for-byte unchanged; the
//! skip bounds hold.
#![cfg(feature = "crypto")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::established_pair;
use proptest::prelude::*;
use quietline_proto::crypto::CryptoError;
use quietline_proto::crypto::session::{MAX_SKIP, MAX_STORED_SKIPPED, Session};
use quietline_proto::padding::is_bucket;

#[derive(Debug, Clone)]
enum Op {
    /// Sender (0 = Alice, 1 = Bob) encrypts a message of this length.
    Send { from: usize, len: usize },
    /// Deliver the in-flight envelope picked by `pick`; keep a copy in flight if `dup`.
    Deliver { to: usize, pick: usize, dup: bool },
    /// Lose an in-flight envelope.
    Drop { to: usize, pick: usize },
    /// Deliver a copy of an envelope (in flight or already delivered) with one byte changed.
    Tamper {
        to: usize,
        pick: usize,
        at: usize,
        xor: u8,
    },
    /// Deliver again an envelope that was already opened.
    Replay { to: usize, pick: usize },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..2usize, 0..1200usize).prop_map(|(from, len)| Op::Send { from, len }),
        4 => (0..2usize, any::<usize>(), any::<bool>()).prop_map(|(to, pick, dup)| Op::Deliver { to, pick, dup }),
        1 => (0..2usize, any::<usize>()).prop_map(|(to, pick)| Op::Drop { to, pick }),
        1 => (0..2usize, any::<usize>(), any::<usize>(), 1..=255u8)
            .prop_map(|(to, pick, at, xor)| Op::Tamper { to, pick, at, xor }),
        1 => (0..2usize, any::<usize>()).prop_map(|(to, pick)| Op::Replay { to, pick }),
    ]
}

struct Net {
    /// Per receiver: envelopes in flight, with the plaintext they carry.
    in_flight: [Vec<(Vec<u8>, Vec<u8>)>; 2],
    /// Per receiver: envelopes already opened.
    opened: [Vec<Vec<u8>>; 2],
}

fn plaintext(from: usize, seq: usize, len: usize) -> Vec<u8> {
    let mut p = format!("{from}:{seq}:").into_bytes();
    p.resize(len.max(p.len()), b'.');
    p
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn interleavings_with_loss_reordering_duplication_and_tampering(
        seed in any::<u64>(),
        ops in proptest::collection::vec(op(), 1..80),
    ) {
        let p = established_pair(&format!("prop-{seed}"));
        let mut peers: [Session; 2] = [p.alice, p.bob];
        let mut net = Net { in_flight: [Vec::new(), Vec::new()], opened: [Vec::new(), Vec::new()] };
        let mut seq = 0usize;
        for op in ops {
            match op {
                Op::Send { from, len } => {
                    seq += 1;
                    let pt = plaintext(from, seq, len);
                    let env = peers[from].encrypt(&pt).unwrap();
                    prop_assert!(is_bucket(env.len()));
                    net.in_flight[1 - from].push((env, pt));
                }
                Op::Deliver { to, pick, dup } => {
                    if net.in_flight[to].is_empty() { continue; }
                    let i = pick % net.in_flight[to].len();
                    let (env, pt) = if dup {
                        net.in_flight[to][i].clone()
                    } else {
                        net.in_flight[to].remove(i)
                    };
                    let already = net.opened[to].contains(&env);
                    let before = peers[to].to_bytes();
                    match peers[to].decrypt(&env) {
                        Ok(got) => {
                            prop_assert!(!already, "a message opened twice");
                            prop_assert_eq!(&got[..], &pt[..]);
                            net.opened[to].push(env);
                        }
                        Err(e) => {
                            prop_assert!(already, "a first delivery failed: {e:?}");
                            prop_assert_eq!(peers[to].to_bytes(), before);
                        }
                    }
                }
                Op::Drop { to, pick } => {
                    if !net.in_flight[to].is_empty() {
                        let i = pick % net.in_flight[to].len();
                        net.in_flight[to].remove(i);
                    }
                }
                Op::Tamper { to, pick, at, xor } => {
                    let pool: Vec<&Vec<u8>> = net.in_flight[to].iter().map(|(e, _)| e)
                        .chain(net.opened[to].iter()).collect();
                    if pool.is_empty() { continue; }
                    let mut bad = pool[pick % pool.len()].clone();
                    let at = at % bad.len();
                    bad[at] ^= xor;
                    let before = peers[to].to_bytes();
                    prop_assert!(peers[to].decrypt(&bad).is_err(), "tampered byte {at} opened");
                    prop_assert_eq!(peers[to].to_bytes(), before);
                }
                Op::Replay { to, pick } => {
                    if net.opened[to].is_empty() { continue; }
                    let env = net.opened[to][pick % net.opened[to].len()].clone();
                    let before = peers[to].to_bytes();
                    prop_assert!(peers[to].decrypt(&env).is_err());
                    prop_assert_eq!(peers[to].to_bytes(), before);
                }
            }
            for peer in &peers {
                prop_assert!(peer.skipped_keys() <= MAX_STORED_SKIPPED);
            }
        }
        // Whatever is still in flight opens now, exactly once, in any order.
        for (to, peer) in peers.iter_mut().enumerate() {
            for (env, pt) in std::mem::take(&mut net.in_flight[to]).into_iter().rev() {
                let already = net.opened[to].contains(&env);
                match peer.decrypt(&env) {
                    Ok(got) => {
                        prop_assert!(!already);
                        prop_assert_eq!(&got[..], &pt[..]);
                        net.opened[to].push(env);
                    }
                    Err(_) => prop_assert!(already),
                }
            }
        }
    }

}

proptest! {
    // Each case encrypts up to 1,300 messages: fewer cases; the exact edges are also pinned
    // by `session::skip_gap_is_bounded_and_always_fits_the_skipped_key_store`.
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    #[test]
    fn skip_bounds_hold(gap in 0u32..(MAX_SKIP + 300), back in any::<u32>()) {
        let mut p = established_pair("prop-skip");
        // One envelope per message number; only the last one's content matters.
        let mut envs = Vec::new();
        for i in 0..=gap {
            envs.push(p.bob.encrypt(format!("{i}").as_bytes()).unwrap());
        }
        let before = p.alice.to_bytes();
        let last = p.alice.decrypt(&envs[gap as usize]);
        if gap > MAX_SKIP {
            prop_assert_eq!(last.unwrap_err(), CryptoError::TooManySkipped);
            prop_assert_eq!(p.alice.to_bytes(), before);
            return Ok(());
        }
        let expected = format!("{gap}");
        prop_assert_eq!(&last.unwrap()[..], expected.as_bytes());
        let stored = (gap as usize).min(MAX_STORED_SKIPPED);
        prop_assert_eq!(p.alice.skipped_keys(), stored);
        if gap > 0 {
            // An earlier message opens iff its key is among the newest MAX_STORED_SKIPPED.
            let i = back % gap;
            let kept = (gap - i) as usize <= MAX_STORED_SKIPPED;
            let res = p.alice.decrypt(&envs[i as usize]);
            prop_assert_eq!(res.is_ok(), kept, "message {} of gap {}", i, gap);
        }
    }
}

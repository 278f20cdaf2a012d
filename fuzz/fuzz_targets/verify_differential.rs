//! Differential fuzzing of signature verification: for any input, parthenon's single and batch
//! verdicts equal the reference's (ed25519-zebra for Zip215, ed25519-dalek `verify_strict` for
//! Strict, libsecp256k1 for BIP-340).
//!
//! Input layout: `mode ‖ shape ‖ 32 bytes ‖ 64 bytes ‖ message` (98 bytes at least).
//!
//! `mode`: bit 0 picks the scheme (Ed25519 / BIP-340), bit 1 the Ed25519 rules (Zip215 /
//! Strict). With bit 2 set, the 32 bytes are a secret key that signs the message (so the fuzzer
//! reaches valid signatures) and the 64 bytes are XORed into the signature and (first 32) the
//! public key when bit 3 is set; otherwise they are the public key and signature verbatim.
//! Bits 4–6 are the fuzzed item's slot in its group of eight; bit 7 runs the batch on the
//! portable path (`cpu::verify_batch_portable`, dalek/k256) instead of `cpu::verify_batch`
//! (our AVX-512 IFMA arithmetic where the CPU has it).
//!
//! `shape`: bits 0–1 give the threads (1–4); bit 2 a large batch (129–160 items: the
//! multiscalar multiplication and the decoding are split among the threads, which needs more
//! than 64 items per thread and 256 terms) instead of a small one (17–48 items); bits 3–7 the
//! size within that range and the group the fuzzed item sits in.
//!
//! The batch: valid signatures (made once per process), the fuzzed item, and in the same group
//! of eight (so in the same plain sum of `locate_confirmed`) its twin. In signing mode the twin
//! is the honest signature with `s_t = 2·s_h − s' mod ℓ` (BIP-340: `mod n`), `s_h` the honest
//! and `s'` the fuzzed item's `s`: when the fuzzed item differs from the honest one only in `s`,
//! its error is `D = [s_h − s']B` and the twin's is `−D`, so their plain sum vanishes and only
//! the confirmation catches them (then the group search decides). Otherwise the twin is a
//! second copy of the fuzzed item. Sets of more than 16 items go through the whole confirmed
//! search (batch equation, plain sums, single checks, confirmation), never straight to the
//! group search.
//!
//! Run: `cargo +nightly fuzz run verify_differential` from the crate root (see fuzz/README.md).
#![no_main]

use ed25519_dalek::Signer;
use libfuzzer_sys::fuzz_target;
use parthenon::sigverify::{cpu, Batch, Rules, Scheme};
use std::sync::OnceLock;

/// ℓ, little-endian 64-bit words.
const ELL: [u64; 4] = [0x5812_631a_5cf5_d3ed, 0x14de_f9de_a2f7_9cd6, 0, 0x1000_0000_0000_0000];
/// The secp256k1 group order n, little-endian 64-bit words.
const N: [u64; 4] = [0xbfd2_5e8c_d036_4141, 0xbaae_dce6_af48_a03b, 0xffff_ffff_ffff_fffe, 0xffff_ffff_ffff_ffff];

/// Valid items of one scheme: (public key, message, signature).
type Pool = Vec<([u8; 32], Vec<u8>, [u8; 64])>;

/// 160 valid signatures per scheme, deterministic, made once.
fn pool(scheme: Scheme) -> &'static Pool {
    static ED: OnceLock<Pool> = OnceLock::new();
    static BIP: OnceLock<Pool> = OnceLock::new();
    let make = |scheme: Scheme| -> Pool {
        (0..160u32)
            .map(|i| {
                let mut secret = [0u8; 32];
                secret[..4].copy_from_slice(&i.to_le_bytes());
                secret[31] = 0x5a;
                let msg = format!("parthenon fuzz filler {i}").into_bytes();
                match scheme {
                    Scheme::Ed25519 => {
                        let sk = ed25519_dalek::SigningKey::from_bytes(&secret);
                        (sk.verifying_key().to_bytes(), msg.clone(), sk.sign(&msg).to_bytes())
                    }
                    Scheme::Bip340 => {
                        let kp = secp256k1::Keypair::from_secret_bytes(secret).expect("a valid secret");
                        let sig = kp.sign_schnorr_no_aux_rand(&msg).to_byte_array();
                        (kp.x_only_public_key().0.to_byte_array(), msg, sig)
                    }
                }
            })
            .collect()
    };
    match scheme {
        Scheme::Ed25519 => ED.get_or_init(|| make(Scheme::Ed25519)),
        Scheme::Bip340 => BIP.get_or_init(|| make(Scheme::Bip340)),
    }
}

fn reference(scheme: Scheme, rules: Rules, pk: &[u8; 32], msg: &[u8], sig: &[u8; 64]) -> bool {
    match (scheme, rules) {
        (Scheme::Ed25519, Rules::Zip215) => ed25519_zebra::VerificationKey::try_from(*pk)
            .is_ok_and(|vk| vk.verify(&ed25519_zebra::Signature::from_bytes(sig), msg).is_ok()),
        (Scheme::Ed25519, Rules::Strict) => ed25519_dalek::VerifyingKey::from_bytes(pk)
            .is_ok_and(|vk| vk.verify_strict(msg, &ed25519_dalek::Signature::from_bytes(sig)).is_ok()),
        (Scheme::Bip340, _) => secp256k1::XOnlyPublicKey::from_byte_array(*pk).is_ok_and(|pk| {
            secp256k1::schnorr::verify(&secp256k1::schnorr::Signature::from_byte_array(*sig), msg, &pk).is_ok()
        }),
    }
}

/// `a < b` for little-endian words.
fn lt(a: &[u64; 4], b: &[u64; 4]) -> bool {
    a.iter().rev().zip(b.iter().rev()).find(|(x, y)| x != y).is_some_and(|(x, y)| x < y)
}

/// `a + b` with the carry out.
fn add(a: &[u64; 4], b: &[u64; 4]) -> ([u64; 4], bool) {
    let mut out = [0u64; 4];
    let mut carry = false;
    for i in 0..4 {
        let (s, c1) = a[i].overflowing_add(b[i]);
        let (s, c2) = s.overflowing_add(u64::from(carry));
        out[i] = s;
        carry = c1 || c2;
    }
    (out, carry)
}

/// `a − b` (wrapping).
fn sub(a: &[u64; 4], b: &[u64; 4]) -> [u64; 4] {
    let mut out = [0u64; 4];
    let mut borrow = false;
    for i in 0..4 {
        let (d, b1) = a[i].overflowing_sub(b[i]);
        let (d, b2) = d.overflowing_sub(u64::from(borrow));
        out[i] = d;
        borrow = b1 || b2;
    }
    out
}

/// `a + b mod m` for `a, b < m`.
fn add_mod(a: &[u64; 4], b: &[u64; 4], m: &[u64; 4]) -> [u64; 4] {
    let (s, carry) = add(a, b);
    if carry || !lt(&s, m) {
        sub(&s, m)
    } else {
        s
    }
}

/// `2·honest − fuzzed mod m`, or `None` when `fuzzed ≥ m` (then the item fails to decode and
/// has no error to negate).
fn twin_scalar(honest: &[u64; 4], fuzzed: &[u64; 4], m: &[u64; 4]) -> Option<[u64; 4]> {
    if !lt(fuzzed, m) || !lt(honest, m) {
        return None;
    }
    let diff = if lt(honest, fuzzed) { add(honest, &sub(m, fuzzed)).0 } else { sub(honest, fuzzed) };
    Some(add_mod(honest, &diff, m))
}

/// The `s` half of a signature as little-endian words (Ed25519 little-endian, BIP-340 big-endian).
fn s_words(scheme: Scheme, sig: &[u8; 64]) -> [u64; 4] {
    let mut w = [0u64; 4];
    for (i, word) in w.iter_mut().enumerate() {
        let mut b = [0u8; 8];
        match scheme {
            Scheme::Ed25519 => b.copy_from_slice(&sig[32 + 8 * i..40 + 8 * i]),
            Scheme::Bip340 => {
                b.copy_from_slice(&sig[64 - 8 * (i + 1)..64 - 8 * i]);
                b.reverse();
            }
        }
        *word = u64::from_le_bytes(b);
    }
    w
}

/// Writes `w` as the `s` half of `sig` (the inverse of [`s_words`]).
fn set_s(scheme: Scheme, sig: &mut [u8; 64], w: &[u64; 4]) {
    for (i, word) in w.iter().enumerate() {
        let b = word.to_le_bytes();
        match scheme {
            Scheme::Ed25519 => sig[32 + 8 * i..40 + 8 * i].copy_from_slice(&b),
            Scheme::Bip340 => {
                let mut be = b;
                be.reverse();
                sig[64 - 8 * (i + 1)..64 - 8 * i].copy_from_slice(&be);
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 98 {
        return;
    }
    let (mode, shape) = (data[0], data[1]);
    let a: [u8; 32] = data[2..34].try_into().unwrap();
    let b: [u8; 64] = data[34..98].try_into().unwrap();
    let msg = &data[98..];
    let scheme = if mode & 1 == 0 { Scheme::Ed25519 } else { Scheme::Bip340 };
    let rules = if mode & 2 == 0 { Rules::Zip215 } else { Rules::Strict };
    let (mut pk, mut sig) = (a, b);
    let mut honest = None;
    if mode & 4 != 0 {
        match scheme {
            Scheme::Ed25519 => {
                let sk = ed25519_dalek::SigningKey::from_bytes(&a);
                pk = sk.verifying_key().to_bytes();
                sig = sk.sign(msg).to_bytes();
            }
            Scheme::Bip340 => {
                let Ok(kp) = secp256k1::Keypair::from_secret_bytes(a) else { return };
                pk = kp.x_only_public_key().0.to_byte_array();
                sig = kp.sign_schnorr_no_aux_rand(msg).to_byte_array();
            }
        }
        honest = Some((pk, sig));
        if mode & 8 != 0 {
            for (s, x) in sig.iter_mut().zip(b) {
                *s ^= x;
            }
            for (p, x) in pk.iter_mut().zip(&b[..32]) {
                *p ^= x;
            }
        }
    }
    let want = reference(scheme, rules, &pk, msg, &sig);
    assert_eq!(cpu::verify_one(scheme, rules, &pk, msg, &sig), want, "single");

    // The twin: the honest item with the negated error, or a second copy.
    let modulus = if scheme == Scheme::Ed25519 { &ELL } else { &N };
    let (twin_pk, twin_sig) = match honest {
        Some((hpk, hsig)) => match twin_scalar(&s_words(scheme, &hsig), &s_words(scheme, &sig), modulus) {
            Some(t) => {
                let mut tsig = hsig;
                set_s(scheme, &mut tsig, &t);
                (hpk, tsig)
            }
            None => (pk, sig),
        },
        None => (pk, sig),
    };
    let twin_want = reference(scheme, rules, &twin_pk, msg, &twin_sig);

    // The batch: valid items, the fuzzed item and its twin in one group of eight.
    let threads = 1 + usize::from(shape & 3);
    let offset = usize::from(shape >> 3);
    let n = if shape & 4 != 0 { 129 + offset } else { 17 + offset };
    let group = offset % (n / 8);
    let slot = usize::from((mode >> 4) & 7);
    let (at, twin_at) = (8 * group + slot, 8 * group + (slot + 3) % 8);
    let filler = pool(scheme);
    let mut batch = Batch::with_capacity(n, 0);
    let mut expect = Vec::with_capacity(n);
    for i in 0..n {
        if i == at {
            batch.push(scheme, &pk, msg, &sig).unwrap();
            expect.push(want);
        } else if i == twin_at {
            batch.push(scheme, &twin_pk, msg, &twin_sig).unwrap();
            expect.push(twin_want);
        } else {
            let (fpk, fmsg, fsig) = &filler[i % filler.len()];
            batch.push(scheme, fpk, fmsg, fsig).unwrap();
            expect.push(true);
        }
    }
    let v = if mode & 0x80 != 0 {
        cpu::verify_batch_portable(&batch, rules, threads)
    } else {
        cpu::verify_batch(&batch, rules, threads)
    };
    assert_eq!(v.iter().collect::<Vec<_>>(), expect, "batch of {n} on {threads} thread(s), item {at}, twin {twin_at}");
});

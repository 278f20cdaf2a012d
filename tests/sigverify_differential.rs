//! Differential tests: our verdicts against the reference implementations on a corpus of random
//! valid signatures and adversarial mutations, through single verification and through the batch
//! path (one thread and several, batches of many sizes with valid and invalid items mixed).
//!
//! - Ed25519 `Rules::Zip215` against ed25519-zebra 5, `Rules::Strict` against ed25519-dalek 3
//!   `verify_strict`;
//! - BIP-340 against libsecp256k1 (`secp256k1` crate) `schnorr::verify`.
//!
//! Corpus size per scheme: `PARTHENON_DIFF_ITEMS` (default 50 000, so the two tests cover
//! 100 000 signatures); seed: `PARTHENON_DIFF_SEED` (default fixed; printed).

use curve25519_dalek::constants::EIGHT_TORSION;
use curve25519_dalek::edwards::EdwardsPoint;
use curve25519_dalek::scalar::Scalar;
use k256::elliptic_curve::point::AffineCoordinates;
use parthenon::sigverify::{cpu, Batch, Rules, Scheme};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use sha2::{Digest, Sha256, Sha512};

fn items() -> usize {
    std::env::var("PARTHENON_DIFF_ITEMS").ok().and_then(|s| s.parse().ok()).unwrap_or(50_000)
}

fn rng(salt: u64) -> StdRng {
    let seed = std::env::var("PARTHENON_DIFF_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0x5eed_2026u64);
    println!("PARTHENON_DIFF_SEED={seed}");
    StdRng::seed_from_u64(seed ^ salt)
}

struct Item {
    pk: [u8; 32],
    msg: Vec<u8>,
    sig: [u8; 64],
    kind: &'static str,
}

// ---------------------------------------------------------------- Ed25519 corpus

const L_BYTES: [u8; 32] = [
    0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
];

fn add_le(a: &[u8; 32], b: &[u8; 32]) -> [u8; 32] {
    let mut out = [0u8; 32];
    let mut carry = 0u16;
    for i in 0..32 {
        let v = a[i] as u16 + b[i] as u16 + carry;
        out[i] = v as u8;
        carry = v >> 8;
    }
    out
}

/// Encodings of small-order points: canonical, sign-flipped, and `y + p` where that fits.
fn small_order_encodings() -> Vec<[u8; 32]> {
    let p: [u8; 32] = {
        let mut p = [0xffu8; 32];
        p[0] = 0xed;
        p[31] = 0x7f;
        p
    };
    let mut out = Vec::new();
    for t in EIGHT_TORSION {
        let c = t.compress().to_bytes();
        out.push(c);
        let mut flipped = c;
        flipped[31] ^= 0x80;
        out.push(flipped);
        let mut y = c;
        y[31] &= 0x7f;
        // y < 19: y + p < 2^255 is a non-canonical encoding of the same y.
        if y[1..].iter().all(|b| *b == 0) && y[0] < 19 {
            let mut nc = add_le(&y, &p);
            out.push(nc);
            nc[31] |= 0x80;
            out.push(nc);
        }
    }
    out
}

/// Flips one random bit of `buf`; returns `kind`.
fn flip_bit(r: &mut StdRng, buf: &mut [u8], kind: &'static str) -> &'static str {
    let bit = r.random_range(0..buf.len() * 8);
    buf[bit / 8] ^= 1 << (bit % 8);
    kind
}

/// Flips one random bit of the message (appends a zero byte to an empty one).
fn flip_msg_bit(r: &mut StdRng, msg: &mut Vec<u8>) -> &'static str {
    if msg.is_empty() {
        msg.push(0);
        "msg bit flip"
    } else {
        flip_bit(r, msg, "msg bit flip")
    }
}

fn random_scalar(r: &mut StdRng) -> Scalar {
    let wide: [u8; 64] = r.random();
    Scalar::from_bytes_mod_order_wide(&wide)
}

fn hram(r: &[u8; 32], a: &[u8; 32], m: &[u8]) -> Scalar {
    let wide: [u8; 64] = Sha512::new().chain_update(r).chain_update(a).chain_update(m).finalize().into();
    Scalar::from_bytes_mod_order_wide(&wide)
}

/// `s = nonce + k·secret` for the given encodings.
fn ed_sign(secret: &Scalar, a: &[u8; 32], r_enc: &[u8; 32], nonce: &Scalar, msg: &[u8]) -> [u8; 64] {
    let s = nonce + hram(r_enc, a, msg) * secret;
    let mut sig = [0u8; 64];
    sig[..32].copy_from_slice(r_enc);
    sig[32..].copy_from_slice(s.as_bytes());
    sig
}

fn ed_corpus(n: usize, r: &mut StdRng) -> Vec<Item> {
    let small = small_order_encodings();
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let secret = random_scalar(r);
        let a_point = EdwardsPoint::mul_base(&secret);
        let a = a_point.compress().to_bytes();
        let nonce = random_scalar(r);
        let r_enc = EdwardsPoint::mul_base(&nonce).compress().to_bytes();
        let len = r.random_range(0..=160usize);
        let mut msg: Vec<u8> = (0..len).map(|_| r.random()).collect();
        let mut sig = ed_sign(&secret, &a, &r_enc, &nonce, &msg);
        let mut pk = a;
        let kind = match i % 16 {
            0..=5 => "valid",
            6 => flip_bit(r, &mut sig, "sig bit flip"),
            7 => flip_bit(r, &mut pk, "pk bit flip"),
            8 => flip_msg_bit(r, &mut msg),
            9 => {
                let s: [u8; 32] = sig[32..].try_into().unwrap();
                sig[32..].copy_from_slice(&add_le(&s, &L_BYTES));
                "s + L"
            }
            10 => {
                // Mixed-order key and nonce: A' = A + T1, R' = R + T2, s from A' and R'.
                let t1 = EIGHT_TORSION[r.random_range(0..8usize)];
                let t2 = EIGHT_TORSION[r.random_range(0..8usize)];
                pk = (a_point + t1).compress().to_bytes();
                let r2 = (EdwardsPoint::mul_base(&nonce) + t2).compress().to_bytes();
                sig = ed_sign(&secret, &pk, &r2, &nonce, &msg);
                "mixed-order A and R"
            }
            11 => {
                pk = small[r.random_range(0..small.len())];
                let r_small = small[r.random_range(0..small.len())];
                sig[..32].copy_from_slice(&r_small);
                if r.random_bool(0.5) {
                    sig[32..].fill(0);
                }
                "small-order A and R"
            }
            12 => {
                // R of small order (any encoding), s = k·a: valid iff the rule ignores torsion.
                let r_small = small[r.random_range(0..small.len())];
                sig = ed_sign(&secret, &a, &r_small, &Scalar::ZERO, &msg);
                "small-order R, s = k·a"
            }
            13 => {
                sig[31] ^= 0x80;
                "R sign bit flipped"
            }
            14 => {
                sig[63] |= 0xe0;
                "s high bits set"
            }
            _ => {
                pk = r.random();
                sig = std::array::from_fn(|_| r.random());
                "random bytes"
            }
        };
        out.push(Item { pk, msg, sig, kind });
    }
    out
}

fn zebra(it: &Item) -> bool {
    let Ok(vk) = ed25519_zebra::VerificationKey::try_from(it.pk) else { return false };
    vk.verify(&ed25519_zebra::Signature::from_bytes(&it.sig), &it.msg).is_ok()
}

fn dalek_strict(it: &Item) -> bool {
    let Ok(vk) = ed25519_dalek::VerifyingKey::from_bytes(&it.pk) else { return false };
    vk.verify_strict(&it.msg, &ed25519_dalek::Signature::from_bytes(&it.sig)).is_ok()
}

// ---------------------------------------------------------------- BIP-340 corpus

fn tagged_challenge(r: &[u8], pk: &[u8], m: &[u8]) -> k256::Scalar {
    use k256::elliptic_curve::ops::Reduce;
    let tag = Sha256::digest(b"BIP0340/challenge");
    let h: [u8; 32] = Sha256::new()
        .chain_update(tag)
        .chain_update(tag)
        .chain_update(r)
        .chain_update(pk)
        .chain_update(m)
        .finalize()
        .into();
    <k256::Scalar as Reduce<k256::FieldBytes>>::reduce(&k256::FieldBytes::from(h))
}

fn schnorr_corpus(n: usize, r: &mut StdRng) -> Vec<Item> {
    const P: [u8; 32] = {
        let mut p = [0xffu8; 32];
        p[27] = 0xfe;
        p[28] = 0xff;
        p[29] = 0xff;
        p[30] = 0xfc;
        p[31] = 0x2f;
        p
    };
    const N: [u8; 32] = [
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe, 0xba, 0xae,
        0xdc, 0xe6, 0xaf, 0x48, 0xa0, 0x3b, 0xbf, 0xd2, 0x5e, 0x8c, 0xd0, 0x36, 0x41, 0x41,
    ];
    let be_add = |a: &[u8; 32], b: &[u8; 32]| -> Option<[u8; 32]> {
        let mut out = [0u8; 32];
        let mut carry = 0u16;
        for i in (0..32).rev() {
            let v = a[i] as u16 + b[i] as u16 + carry;
            out[i] = v as u8;
            carry = v >> 8;
        }
        (carry == 0).then_some(out)
    };
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let kp = loop {
            if let Ok(kp) = secp256k1::Keypair::from_secret_bytes(r.random()) {
                break kp;
            }
        };
        let len = r.random_range(0..=160usize);
        let mut msg: Vec<u8> = (0..len).map(|_| r.random()).collect();
        let mut sig = kp.sign_schnorr_no_aux_rand(&msg).to_byte_array();
        let mut pk = kp.x_only_public_key().0.to_byte_array();
        let kind = match i % 12 {
            0..=4 => "valid",
            5 => flip_bit(r, &mut sig, "sig bit flip"),
            6 => flip_bit(r, &mut pk, "pk bit flip"),
            7 => flip_msg_bit(r, &mut msg),
            8 => {
                let mut small = [0u8; 32];
                small[31] = r.random_range(0..0x3d0u16) as u8;
                small[30] = r.random_range(0..4u8);
                sig[..32].copy_from_slice(&be_add(&P, &small).unwrap_or([0xff; 32]));
                "r >= p"
            }
            9 => {
                let s: [u8; 32] = sig[32..].try_into().unwrap();
                sig[32..].copy_from_slice(&be_add(&s, &N).unwrap_or(N));
                "s + n"
            }
            10 => {
                if r.random_bool(0.5) {
                    pk = r.random();
                    "random pk"
                } else {
                    let mut small = [0u8; 32];
                    small[31] = r.random();
                    pk = be_add(&P, &small).unwrap_or([0xff; 32]);
                    "pk >= p"
                }
            }
            _ => {
                // A signer that forgets to negate the nonce when R has odd y.
                let d = k256::Scalar::from(r.random::<u128>()) * k256::Scalar::from(r.random::<u128>());
                let mut d = if d == k256::Scalar::ZERO { k256::Scalar::ONE } else { d };
                let p_aff = (k256::ProjectivePoint::GENERATOR * d).to_affine();
                if bool::from(p_aff.y_is_odd()) {
                    d = -d;
                }
                let p_bytes: [u8; 32] = p_aff.x().into();
                let mut k = k256::Scalar::from(r.random::<u128>()) + k256::Scalar::ONE;
                let r_aff = (k256::ProjectivePoint::GENERATOR * k).to_affine();
                if !bool::from(r_aff.y_is_odd()) {
                    k = -k;
                }
                let r_bytes: [u8; 32] = (k256::ProjectivePoint::GENERATOR * k).to_affine().x().into();
                let e = tagged_challenge(&r_bytes, &p_bytes, &msg);
                let s = k + e * d;
                sig[..32].copy_from_slice(&r_bytes);
                sig[32..].copy_from_slice(&s.to_bytes());
                pk = p_bytes;
                "R with odd y"
            }
        };
        out.push(Item { pk, msg, sig, kind });
    }
    out
}

fn libsecp(it: &Item) -> bool {
    let Ok(pk) = secp256k1::XOnlyPublicKey::from_byte_array(it.pk) else { return false };
    secp256k1::schnorr::verify(&secp256k1::schnorr::Signature::from_byte_array(it.sig), &it.msg, &pk).is_ok()
}

// ---------------------------------------------------------------- the comparison

/// Single and batch verdicts against `reference`, batches cut at pseudo-random sizes.
fn compare(scheme: Scheme, rules: Rules, corpus: &[Item], reference: fn(&Item) -> bool, r: &mut StdRng) {
    let want: Vec<bool> = corpus.iter().map(reference).collect();
    let mut counts = std::collections::BTreeMap::<&str, (usize, usize)>::new();
    for (it, w) in corpus.iter().zip(&want) {
        let e = counts.entry(it.kind).or_default();
        e.0 += 1;
        e.1 += usize::from(*w);
        let single = cpu::verify_one(scheme, rules, &it.pk, &it.msg, &it.sig);
        assert_eq!(
            single,
            *w,
            "{scheme} {rules} single vs reference, kind {}: pk {} sig {} msg {}",
            it.kind,
            hex::encode(it.pk),
            hex::encode(it.sig),
            hex::encode(&it.msg)
        );
    }
    println!("{scheme} {rules}: kind -> (items, reference accepts): {counts:?}");
    let mut start = 0;
    let mut batches = 0;
    while start < corpus.len() {
        let len = match batches % 4 {
            0 => r.random_range(1..=8usize),
            1 => r.random_range(9..=300usize),
            2 => r.random_range(300..=3000usize),
            _ => r.random_range(1..=1200usize),
        };
        let end = (start + len).min(corpus.len());
        let mut batch = Batch::with_capacity(end - start, 0);
        for it in &corpus[start..end] {
            batch.push(scheme, &it.pk, &it.msg, &it.sig).unwrap();
        }
        let threads = 1 + batches % 3;
        let got = cpu::verify_batch(&batch, rules, threads);
        for (j, w) in want[start..end].iter().enumerate() {
            let it = &corpus[start + j];
            assert_eq!(
                got.get(j),
                Some(*w),
                "{scheme} {rules} batch (len {}, threads {threads}) item {j} kind {}: pk {} sig {}",
                end - start,
                it.kind,
                hex::encode(it.pk),
                hex::encode(it.sig)
            );
        }
        start = end;
        batches += 1;
    }
}

/// Mostly-valid batches (the common case): reference-valid items with 1 % invalid mixed in.
fn compare_mostly_valid(scheme: Scheme, rules: Rules, corpus: &[Item], reference: fn(&Item) -> bool) {
    let (valid, invalid): (Vec<&Item>, Vec<&Item>) = corpus.iter().partition(|it| reference(it));
    let mut batch = Batch::new();
    let mut want = Vec::new();
    for (i, it) in valid.iter().take(2000).enumerate() {
        batch.push(scheme, &it.pk, &it.msg, &it.sig).unwrap();
        want.push(true);
        if i % 100 == 37 {
            if let Some(bad) = invalid.get(i / 100) {
                batch.push(scheme, &bad.pk, &bad.msg, &bad.sig).unwrap();
                want.push(false);
            }
        }
    }
    for threads in [1, 2] {
        let got = cpu::verify_batch(&batch, rules, threads);
        assert_eq!(got.iter().collect::<Vec<_>>(), want, "{scheme} {rules} mostly valid, threads {threads}");
    }
}

#[test]
fn ed25519_zip215_and_strict_match_references() {
    let mut r = rng(1);
    let corpus = ed_corpus(items(), &mut r);
    compare(Scheme::Ed25519, Rules::Zip215, &corpus, zebra, &mut r);
    compare(Scheme::Ed25519, Rules::Strict, &corpus, dalek_strict, &mut r);
    compare_mostly_valid(Scheme::Ed25519, Rules::Zip215, &corpus, zebra);
    compare_mostly_valid(Scheme::Ed25519, Rules::Strict, &corpus, dalek_strict);
}

#[test]
fn bip340_matches_libsecp256k1() {
    let mut r = rng(2);
    let corpus = schnorr_corpus(items(), &mut r);
    compare(Scheme::Bip340, Rules::Zip215, &corpus, libsecp, &mut r);
    compare_mostly_valid(Scheme::Bip340, Rules::Zip215, &corpus, libsecp);
}

#[test]
fn mixed_schemes_in_one_batch() {
    let mut r = rng(3);
    let n = (items() / 20).max(200);
    let ed = ed_corpus(n, &mut r);
    let sc = schnorr_corpus(n, &mut r);
    let mut batch = Batch::new();
    let mut want = Vec::new();
    for (e, s) in ed.iter().zip(&sc) {
        batch.push(Scheme::Ed25519, &e.pk, &e.msg, &e.sig).unwrap();
        want.push(zebra(e));
        batch.push(Scheme::Bip340, &s.pk, &s.msg, &s.sig).unwrap();
        want.push(libsecp(s));
    }
    for threads in [1, 2, 4] {
        assert_eq!(cpu::verify_batch(&batch, Rules::Zip215, threads).iter().collect::<Vec<_>>(), want);
    }
}

//! Differential tests: our verdicts against the reference implementations on a corpus of random
//! valid signatures and adversarial mutations, through single verification and through the batch
//! path (one thread and several, batches of many sizes with valid and invalid items mixed).
//!
//! Both batch paths run in the same test run: `cpu::verify_batch` (our AVX-512 IFMA arithmetic
//! where the CPU has it) over the whole corpus and, where it has it, also
//! `cpu::verify_batch_portable` (the dalek/k256 path that CPUs without IFMA run) over the first
//! `PARTHENON_DIFF_PORTABLE_ITEMS` items (default a fifth of the corpus). Without IFMA, or with
//! `PARTHENON_NO_IFMA=1`, `verify_batch` is itself the portable path.
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

/// Items of each corpus also run through the portable batch path where `verify_batch` is not
/// that path already.
fn portable_items() -> usize {
    std::env::var("PARTHENON_DIFF_PORTABLE_ITEMS").ok().and_then(|s| s.parse().ok()).unwrap_or(items() / 5)
}

/// A batch path: `cpu::verify_batch` or `cpu::verify_batch_portable`.
type Path = fn(&Batch, Rules, usize) -> parthenon::sigverify::Verdicts;

/// The batch paths to compare, named, with the items each covers: the default path over
/// `n`, and the portable one over [`portable_items`] when the default path uses IFMA.
fn paths(n: usize) -> Vec<(&'static str, Path, usize)> {
    let mut out: Vec<(&'static str, Path, usize)> =
        vec![(if cpu::uses_ifma() { "ifma" } else { "portable" }, cpu::verify_batch, n)];
    if cpu::uses_ifma() {
        out.push(("portable", cpu::verify_batch_portable, portable_items().min(n)));
    }
    out
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

/// `p = 2^255 − 19`, little-endian.
const P_BYTES: [u8; 32] = {
    let mut p = [0xffu8; 32];
    p[0] = 0xed;
    p[31] = 0x7f;
    p
};

/// Encodings of small-order points: canonical, sign-flipped, and `y + p` where that fits.
fn small_order_encodings() -> Vec<[u8; 32]> {
    let p = P_BYTES;
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

/// Every non-canonical encoding `y + p` (`y < 19`, so `y + p < 2^255`), both sign bits, that
/// decodes to a point *not* of small order, with that `y`. These are mixed-order points (a
/// torsion part plus a prime-order part): y ∈ {3, 4, 5, 6, 9, 10, 14, 15, 16, 18}, asserted
/// here because docs/rules.md states it.
fn noncanonical_mixed_order_encodings() -> Vec<(u8, [u8; 32])> {
    let mut out = Vec::new();
    for y in 0u8..19 {
        for sign in [0u8, 0x80] {
            let mut small = [0u8; 32];
            small[0] = y;
            let mut enc = add_le(&small, &P_BYTES);
            enc[31] |= sign;
            let Some(point) = curve25519_dalek::edwards::CompressedEdwardsY(enc).decompress() else { continue };
            if point.is_small_order() {
                continue;
            }
            assert!(!point.is_torsion_free(), "y = {y}: mixed order, not prime order");
            assert_ne!(point.compress().to_bytes(), enc, "y = {y}: the encoding is non-canonical");
            out.push((y, enc));
        }
    }
    let ys: std::collections::BTreeSet<u8> = out.iter().map(|(y, _)| *y).collect();
    assert_eq!(ys.into_iter().collect::<Vec<_>>(), [3, 4, 5, 6, 9, 10, 14, 15, 16, 18]);
    assert_eq!(out.len(), 20, "both sign bits of each y");
    out
}

/// The encodings kind 11 draws `A` and `R` from: small-order ones in every encoding, and the
/// non-canonical encodings of mixed-order points.
fn adversarial_encodings() -> Vec<[u8; 32]> {
    let mut out = small_order_encodings();
    out.extend(noncanonical_mixed_order_encodings().into_iter().map(|(_, e)| e));
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
    let adversarial = adversarial_encodings();
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
                // Small-order or non-canonical mixed-order A and R, s = 0, s = k·a or random.
                pk = adversarial[r.random_range(0..adversarial.len())];
                let r_adv = adversarial[r.random_range(0..adversarial.len())];
                sig[..32].copy_from_slice(&r_adv);
                match r.random_range(0..3u8) {
                    0 => sig[32..].fill(0),
                    1 => sig = ed_sign(&secret, &pk, &r_adv, &Scalar::ZERO, &msg),
                    _ => {}
                }
                "small-order or non-canonical A and R"
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
    for (name, path, n) in paths(corpus.len()) {
        println!("{scheme} {rules}: {name} batch path over {n} items");
        compare_batches(scheme, rules, &corpus[..n], &want[..n], path, name, r);
    }
}

/// Batch verdicts of `path` against `want`, batches cut at pseudo-random sizes.
#[allow(clippy::too_many_arguments)]
fn compare_batches(
    scheme: Scheme,
    rules: Rules,
    corpus: &[Item],
    want: &[bool],
    path: Path,
    name: &str,
    r: &mut StdRng,
) {
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
        let got = path(&batch, rules, threads);
        for (j, w) in want[start..end].iter().enumerate() {
            let it = &corpus[start + j];
            assert_eq!(
                got.get(j),
                Some(*w),
                "{scheme} {rules} {name} batch (len {}, threads {threads}) item {j} kind {}: pk {} sig {}",
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
    for (name, path, _) in paths(batch.len()) {
        for threads in [1, 2] {
            let got = path(&batch, rules, threads);
            assert_eq!(got.iter().collect::<Vec<_>>(), want, "{scheme} {rules} {name} mostly valid, threads {threads}");
        }
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
    for (name, path, _) in paths(batch.len()) {
        for threads in [1, 2, 4] {
            assert_eq!(
                path(&batch, Rules::Zip215, threads).iter().collect::<Vec<_>>(),
                want,
                "{name}, threads {threads}"
            );
        }
    }
}

/// Every non-canonical encoding of a mixed-order point, and every encoding of a small-order one,
/// as `A` and as `R` (with `s = 0`, `s = k·a` and an honest `s`), under both rules: single
/// verification and both batch paths, alone and among valid items (so the batch equation, plain
/// sums and confirmation see them), on 1 and 2 threads.
#[test]
fn noncanonical_and_small_order_encodings_as_a_and_r() {
    let mut r = rng(4);
    let mut items = Vec::new();
    let encodings = adversarial_encodings();
    for (j, enc) in encodings.iter().enumerate() {
        let secret = random_scalar(&mut r);
        let a = EdwardsPoint::mul_base(&secret).compress().to_bytes();
        let nonce = random_scalar(&mut r);
        let r_enc = EdwardsPoint::mul_base(&nonce).compress().to_bytes();
        let msg: Vec<u8> = (0..r.random_range(0..40usize)).map(|_| r.random()).collect();
        let other = encodings[(j * 7 + 3) % encodings.len()];
        // As A: an honest-looking signature for the encoding, and s = 0 with an adversarial R.
        items.push(Item { pk: *enc, sig: ed_sign(&secret, enc, &r_enc, &nonce, &msg), msg: msg.clone(), kind: "A" });
        let mut sig = [0u8; 64];
        sig[..32].copy_from_slice(&other);
        items.push(Item { pk: *enc, sig, msg: msg.clone(), kind: "A and R, s = 0" });
        // As R, with a real key and s = k·a: valid under Zip215 iff R has small order.
        items.push(Item { pk: a, sig: ed_sign(&secret, &a, enc, &Scalar::ZERO, &msg), msg: msg.clone(), kind: "R" });
        let mut sig = ed_sign(&secret, &a, enc, &nonce, &msg);
        sig[32..].fill(0);
        items.push(Item { pk: a, sig, msg, kind: "R, s = 0" });
    }
    let valid: Vec<Item> = ed_corpus(64, &mut r).into_iter().filter(|it| it.kind == "valid").collect();
    assert!(valid.len() >= 20);
    for (rules, reference) in [(Rules::Zip215, zebra as fn(&Item) -> bool), (Rules::Strict, dalek_strict)] {
        let want: Vec<bool> = items.iter().map(reference).collect();
        if rules == Rules::Zip215 {
            assert!(want.iter().any(|v| *v) && want.iter().any(|v| !*v), "both verdicts occur");
        }
        for (it, w) in items.iter().zip(&want) {
            assert_eq!(
                cpu::verify_one(Scheme::Ed25519, rules, &it.pk, &it.msg, &it.sig),
                *w,
                "{rules} single {}",
                it.kind
            );
        }
        // Alone, then one in every third slot among valid items.
        let mut alone = Batch::new();
        for it in &items {
            alone.push(Scheme::Ed25519, &it.pk, &it.msg, &it.sig).unwrap();
        }
        let mut mixed = Batch::new();
        let mut mixed_want = Vec::new();
        for (k, (it, w)) in items.iter().zip(&want).enumerate() {
            for v in valid.iter().skip(k % valid.len()).take(2) {
                mixed.push(Scheme::Ed25519, &v.pk, &v.msg, &v.sig).unwrap();
                mixed_want.push(true);
            }
            mixed.push(Scheme::Ed25519, &it.pk, &it.msg, &it.sig).unwrap();
            mixed_want.push(*w);
        }
        for (name, path, _) in paths(items.len()) {
            for threads in [1, 2] {
                let got: Vec<bool> = path(&alone, rules, threads).iter().collect();
                assert_eq!(got, want, "{rules} {name} alone, threads {threads}");
                let got: Vec<bool> = path(&mixed, rules, threads).iter().collect();
                assert_eq!(got, mixed_want, "{rules} {name} among valid items, threads {threads}");
            }
        }
    }
}

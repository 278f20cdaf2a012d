//! The differential corpus shared by the GPU agreement tests: public vectors (BIP-340 csv,
//! Wycheproof ed25519, ed25519-speccheck), random valid signatures, and mutations of them
//! (bit flips, non-canonical S and r/s/x >= modulus, small-order and mixed-order points,
//! non-canonical point encodings), with verdicts from the pinned reference implementations:
//! ed25519-zebra 5 (ZIP-215), ed25519-dalek 3 `verify_strict`, libsecp256k1 through secp256k1 0.33.
#![allow(dead_code)]

use curve25519_dalek::constants::{ED25519_BASEPOINT_POINT, EIGHT_TORSION};
use curve25519_dalek::edwards::CompressedEdwardsY;
use curve25519_dalek::scalar::Scalar;
use ed25519_dalek::Signer;
use parthenon::sigverify::gpu::{EdRules, GpuError, GpuVerifier, SoaBatch};
use sha2::{Digest, Sha512};

pub const ED25519: u8 = 0;
pub const BIP340: u8 = 1;

#[derive(Clone, Debug)]
pub struct Item {
    pub scheme: u8,
    pub pk: [u8; 32],
    pub sig: [u8; 64],
    pub msg: Vec<u8>,
    pub origin: String,
}

/// Reference verdicts: (zip215, strict) for Ed25519; (bip340, bip340) for BIP-340.
pub fn reference(item: &Item) -> (bool, bool) {
    match item.scheme {
        ED25519 => {
            let sig = ed25519_dalek::Signature::from_bytes(&item.sig);
            let zip = ed25519_zebra::VerificationKey::try_from(item.pk)
                .map(|vk| vk.verify(&sig, &item.msg).is_ok())
                .unwrap_or(false);
            let strict = ed25519_dalek::VerifyingKey::from_bytes(&item.pk)
                .map(|vk| vk.verify_strict(&item.msg, &sig).is_ok())
                .unwrap_or(false);
            (zip, strict)
        }
        _ => {
            let ok = secp256k1::XOnlyPublicKey::from_byte_array(item.pk)
                .map(|pk| {
                    secp256k1::schnorr::verify(
                        &secp256k1::schnorr::Signature::from_byte_array(item.sig),
                        &item.msg,
                        &pk,
                    )
                    .is_ok()
                })
                .unwrap_or(false);
            (ok, ok)
        }
    }
}

pub use super::common::vectors::vectors_dir;

pub fn hex(s: &str) -> Vec<u8> {
    let s = s.trim();
    (0..s.len() / 2).map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).expect("hex")).collect()
}

fn arr<const N: usize>(v: &[u8]) -> Option<[u8; N]> {
    v.try_into().ok()
}

/// Every vector that fits the batch shape (32-byte key, 64-byte signature): exactly 19 BIP-340,
/// 139 Wycheproof and 12 speccheck cases from the public files (asserted, so a renamed field or
/// a parse that drops lines fails here instead of testing fewer cases).
pub fn vector_items(dir: &std::path::Path) -> Vec<Item> {
    let items = read_vector_items(dir);
    let count = |prefix: &str| items.iter().filter(|i| i.origin.starts_with(prefix)).count();
    assert_eq!(
        (count("bip340 "), count("wycheproof "), count("speccheck ")),
        (19, 139, 12),
        "vector cases read (BIP-340, Wycheproof, speccheck) from {}",
        dir.display()
    );
    items
}

fn read_vector_items(dir: &std::path::Path) -> Vec<Item> {
    let mut out = Vec::new();
    let csv = std::fs::read_to_string(dir.join("bip340/test-vectors.csv")).expect("bip340 csv");
    for line in csv.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        if f.len() < 7 {
            continue;
        }
        if let (Some(pk), Some(sig)) = (arr(&hex(f[2])), arr(&hex(f[5]))) {
            out.push(Item { scheme: BIP340, pk, sig, msg: hex(f[4]), origin: format!("bip340 #{}", f[0]) });
        }
    }
    let w: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("wycheproof/ed25519_test.json")).expect("wycheproof"))
            .expect("json");
    for g in w["testGroups"].as_array().expect("groups") {
        let Some(pk) = arr(&hex(g["publicKey"]["pk"].as_str().unwrap_or(""))) else { continue };
        for t in g["tests"].as_array().expect("tests") {
            if let Some(sig) = arr(&hex(t["sig"].as_str().unwrap_or(""))) {
                let msg = hex(t["msg"].as_str().unwrap_or(""));
                out.push(Item { scheme: ED25519, pk, sig, msg, origin: format!("wycheproof tc{}", t["tcId"]) });
            }
        }
    }
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("ed25519-speccheck/cases.json")).expect("speccheck"))
            .expect("json");
    for (i, c) in s.as_array().expect("cases").iter().enumerate() {
        if let (Some(pk), Some(sig)) =
            (arr(&hex(c["pub_key"].as_str().unwrap_or(""))), arr(&hex(c["signature"].as_str().unwrap_or(""))))
        {
            let msg = hex(c["message"].as_str().unwrap_or(""));
            out.push(Item { scheme: ED25519, pk, sig, msg, origin: format!("speccheck #{i}") });
        }
    }
    out
}

/// splitmix64: a deterministic generator, so a failure names a reproducible item.
pub struct Rng(u64);
impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E3779B97F4A7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58476D1CE4E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D049BB133111EB);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    pub fn bytes<const N: usize>(&mut self) -> [u8; N] {
        let mut b = [0u8; N];
        for x in b.iter_mut() {
            *x = self.next() as u8;
        }
        b
    }
    pub fn message(&mut self) -> Vec<u8> {
        const EDGES: [usize; 12] = [0, 1, 31, 55, 56, 63, 64, 111, 112, 127, 128, 129];
        let len = if self.below(3) == 0 { EDGES[self.below(12) as usize] } else { self.below(400) as usize };
        (0..len).map(|_| self.next() as u8).collect()
    }
}

/// Encodings of small-order points, canonical and not (y >= p, sign bit on x = 0).
pub fn small_order_encodings() -> Vec<[u8; 32]> {
    let mut v: Vec<[u8; 32]> = EIGHT_TORSION.iter().map(|t| t.compress().to_bytes()).collect();
    // p + 0 (y = 0, order 4), p + 1 (y = 1, the identity), with and without the sign bit.
    let mut p = [0xffu8; 32];
    p[0] = 0xed;
    p[31] = 0x7f;
    let mut p1 = p;
    p1[0] = 0xee;
    v.push(p);
    v.push(p1);
    let mut pn = p;
    pn[31] |= 0x80;
    v.push(pn);
    let mut p1n = p1;
    p1n[31] |= 0x80;
    v.push(p1n);
    // y = 1 and y = -1 with the sign bit set ("-0").
    let mut one = [0u8; 32];
    one[0] = 1;
    one[31] = 0x80;
    v.push(one);
    let mut m1 = [0xffu8; 32];
    m1[0] = 0xec;
    m1[31] = 0xff;
    v.push(m1);
    v
}

/// The `y` below 19 that are the y-coordinate of a curve point: exactly these have a second,
/// non-canonical encoding `y + p` below 2^255.
pub const NON_CANONICAL_Y: [u8; 12] = [0, 1, 3, 4, 5, 6, 9, 10, 14, 15, 16, 18];

/// Every non-canonical point encoding: `y + p` for each `y` of [`NON_CANONICAL_Y`], with the
/// sign bit clear and set (24 encodings; `y` in 0 and 1 are small order, the others are not).
pub fn non_canonical_encodings() -> Vec<[u8; 32]> {
    let mut out = Vec::new();
    for y in 0u8..19 {
        let mut canonical = [0u8; 32];
        canonical[0] = y;
        if CompressedEdwardsY(canonical).decompress().is_none() {
            continue;
        }
        // p + y, little-endian, with p = 2^255 - 19: 0xed + y <= 0xff, so no carry.
        let mut enc = [0xffu8; 32];
        enc[0] = 0xed + y;
        enc[31] = 0x7f;
        out.push(enc);
        enc[31] |= 0x80;
        out.push(enc);
    }
    out
}

fn ed_sign_raw(a: Scalar, a_enc: [u8; 32], r: Scalar, r_enc: [u8; 32], msg: &[u8]) -> [u8; 64] {
    let k = Scalar::from_hash(Sha512::new().chain_update(r_enc).chain_update(a_enc).chain_update(msg));
    let s = r + k * a;
    let mut sig = [0u8; 64];
    sig[..32].copy_from_slice(&r_enc);
    sig[32..].copy_from_slice(s.as_bytes());
    sig
}

fn scalar(rng: &mut Rng) -> Scalar {
    Scalar::from_bytes_mod_order_wide(&rng.bytes::<64>())
}

const L_BYTES: [u8; 32] = [
    0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
];

fn add_le(a: &[u8], b: &[u8; 32]) -> [u8; 32] {
    let mut out = [0u8; 32];
    let mut c = 0u16;
    for i in 0..32 {
        let t = a[i] as u16 + b[i] as u16 + c;
        out[i] = t as u8;
        c = t >> 8;
    }
    out
}

/// Random Ed25519 items: valid signatures, then mutations and adversarial constructions.
pub fn ed25519_items(rng: &mut Rng, n: usize) -> Vec<Item> {
    let small = small_order_encodings();
    let non_canonical = non_canonical_encodings();
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let msg = rng.message();
        let kind = rng.below(14);
        let item = match kind {
            0..=2 => {
                let sk = ed25519_dalek::SigningKey::from_bytes(&rng.bytes());
                let sig = sk.sign(&msg).to_bytes();
                let mut it =
                    Item { scheme: ED25519, pk: sk.verifying_key().to_bytes(), sig, msg, origin: String::new() };
                match kind {
                    0 => it.origin = "ed valid".into(),
                    1 => {
                        let bit = rng.below(64 * 8 + 32 * 8 + 8) as usize;
                        if bit < 512 {
                            it.sig[bit / 8] ^= 1 << (bit % 8);
                        } else if bit < 768 {
                            it.pk[(bit - 512) / 8] ^= 1 << (bit % 8);
                        } else {
                            it.msg.push(1);
                        }
                        it.origin = format!("ed flip {bit}");
                    }
                    _ => {
                        let s = add_le(&it.sig[32..], &L_BYTES);
                        it.sig[32..].copy_from_slice(&s);
                        it.origin = "ed S+L".into();
                    }
                }
                it
            }
            3..=6 => {
                // Mixed-order A and/or R: A = aB + T_i, R = rB + T_j, S = r + k a.
                let a = scalar(rng);
                let r = scalar(rng);
                let ti = EIGHT_TORSION[rng.below(8) as usize];
                let tj = EIGHT_TORSION[rng.below(8) as usize];
                let a_pt = ED25519_BASEPOINT_POINT * a + ti;
                let r_pt = ED25519_BASEPOINT_POINT * r + tj;
                let (a_enc, r_enc) = (a_pt.compress().to_bytes(), r_pt.compress().to_bytes());
                let sig = ed_sign_raw(a, a_enc, r, r_enc, &msg);
                Item { scheme: ED25519, pk: a_enc, sig, msg, origin: "ed mixed-order".into() }
            }
            7 | 8 => {
                // Small-order (possibly non-canonical) A with a scalar a = 0, R random.
                let a_enc = small[rng.below(small.len() as u64) as usize];
                let r = scalar(rng);
                let r_enc = (ED25519_BASEPOINT_POINT * r).compress().to_bytes();
                let sig = ed_sign_raw(Scalar::ZERO, a_enc, r, r_enc, &msg);
                Item { scheme: ED25519, pk: a_enc, sig, msg, origin: "ed small-order A".into() }
            }
            9 => {
                // Small-order R with r = 0, honest key.
                let a = scalar(rng);
                let a_enc = (ED25519_BASEPOINT_POINT * a).compress().to_bytes();
                let r_enc = small[rng.below(small.len() as u64) as usize];
                let sig = ed_sign_raw(a, a_enc, Scalar::ZERO, r_enc, &msg);
                Item { scheme: ED25519, pk: a_enc, sig, msg, origin: "ed small-order R".into() }
            }
            10 => {
                // Both small order, S = 0.
                let mut sig = [0u8; 64];
                sig[..32].copy_from_slice(&small[rng.below(small.len() as u64) as usize]);
                Item {
                    scheme: ED25519,
                    pk: small[rng.below(small.len() as u64) as usize],
                    sig,
                    msg,
                    origin: "ed both small".into(),
                }
            }
            12 => {
                // A non-canonical A (y + p) signed with a = 0: valid under ZIP-215 only where
                // the point is small order (y = 0, 1); the decoders must agree on every one.
                let a_enc = non_canonical[rng.below(non_canonical.len() as u64) as usize];
                let r = scalar(rng);
                let r_enc = (ED25519_BASEPOINT_POINT * r).compress().to_bytes();
                let sig = ed_sign_raw(Scalar::ZERO, a_enc, r, r_enc, &msg);
                Item {
                    scheme: ED25519,
                    pk: a_enc,
                    sig,
                    msg,
                    origin: format!("ed non-canonical A {:02x?}", &a_enc[..1]),
                }
            }
            13 => {
                // A non-canonical R (y + p) with r = 0 and an honest key.
                let a = scalar(rng);
                let a_enc = (ED25519_BASEPOINT_POINT * a).compress().to_bytes();
                let r_enc = non_canonical[rng.below(non_canonical.len() as u64) as usize];
                let sig = ed_sign_raw(a, a_enc, Scalar::ZERO, r_enc, &msg);
                Item {
                    scheme: ED25519,
                    pk: a_enc,
                    sig,
                    msg,
                    origin: format!("ed non-canonical R {:02x?}", &r_enc[..1]),
                }
            }
            _ => {
                // Random bytes: mostly undecodable or invalid.
                Item { scheme: ED25519, pk: rng.bytes(), sig: rng.bytes(), msg, origin: "ed random".into() }
            }
        };
        out.push(item);
    }
    out
}

const SECP_P: [u8; 32] = [
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe, 0xff, 0xff, 0xfc, 0x2f,
];
const SECP_N: [u8; 32] = [
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe, 0xba, 0xae, 0xdc,
    0xe6, 0xaf, 0x48, 0xa0, 0x3b, 0xbf, 0xd2, 0x5e, 0x8c, 0xd0, 0x36, 0x41, 0x41,
];

fn be_add_small(v: &[u8; 32], k: u8) -> [u8; 32] {
    let mut out = *v;
    let mut c = k as u16;
    for b in out.iter_mut().rev() {
        let t = *b as u16 + c;
        *b = t as u8;
        c = t >> 8;
    }
    out
}

/// Random BIP-340 items: valid signatures and mutations (flips, r/s/x at or above the modulus,
/// x off the curve, s = 0).
pub fn bip340_items(rng: &mut Rng, n: usize) -> Vec<Item> {
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let msg = rng.message();
        let Ok(kp) = secp256k1::Keypair::from_secret_bytes(rng.bytes()) else { continue };
        let pk = kp.x_only_public_key().0.to_byte_array();
        let sig = secp256k1::schnorr::sign_no_aux_rand(&msg, &kp).to_byte_array();
        let mut it = Item { scheme: BIP340, pk, sig, msg, origin: String::new() };
        match rng.below(9) {
            0 | 1 => it.origin = "bip valid".into(),
            2 | 3 => {
                let bit = rng.below(64 * 8 + 32 * 8 + 8) as usize;
                if bit < 512 {
                    it.sig[bit / 8] ^= 1 << (bit % 8);
                } else if bit < 768 {
                    it.pk[(bit - 512) / 8] ^= 1 << (bit % 8);
                } else {
                    it.msg.push(0);
                }
                it.origin = format!("bip flip {bit}");
            }
            4 => {
                let r = be_add_small(&SECP_P, rng.below(3) as u8);
                it.sig[..32].copy_from_slice(&r);
                it.origin = "bip r>=p".into();
            }
            5 => {
                let s = be_add_small(&SECP_N, rng.below(3) as u8);
                it.sig[32..].copy_from_slice(&s);
                it.origin = "bip s>=n".into();
            }
            6 => {
                it.pk = be_add_small(&SECP_P, rng.below(3) as u8);
                it.origin = "bip x>=p".into();
            }
            7 => {
                it.pk = rng.bytes();
                it.origin = "bip random x".into();
            }
            _ => {
                it.sig[32..].fill(0);
                it.origin = "bip s=0".into();
            }
        }
        out.push(it);
    }
    out
}

/// The corpus size from `PARTHENON_GPU_CORPUS` (random items per scheme), else `default`.
pub fn corpus_size(default: usize) -> usize {
    std::env::var("PARTHENON_GPU_CORPUS").ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Structure-of-arrays copy of `items`.
pub struct Soa {
    pub schemes: Vec<u8>,
    pub pubkeys: Vec<[u8; 32]>,
    pub signatures: Vec<[u8; 64]>,
    pub messages: Vec<u8>,
    pub offsets: Vec<u64>,
}

pub fn soa(items: &[Item]) -> Soa {
    let mut s = Soa { schemes: vec![], pubkeys: vec![], signatures: vec![], messages: vec![], offsets: vec![0] };
    for it in items {
        s.schemes.push(it.scheme);
        s.pubkeys.push(it.pk);
        s.signatures.push(it.sig);
        s.messages.extend_from_slice(&it.msg);
        s.offsets.push(s.messages.len() as u64);
    }
    s
}

/// Runs `items` through `v` under ZIP-215 and strict (BIP-340 items have one rule) and asserts the
/// device's verdict equals the pinned reference's on every item, listing every disagreement.
pub fn check_against_reference<V: GpuVerifier + ?Sized>(v: &V, items: &[Item]) {
    let s = soa(items);
    let batch = SoaBatch {
        schemes: &s.schemes,
        pubkeys: &s.pubkeys,
        signatures: &s.signatures,
        messages: &s.messages,
        offsets: &s.offsets,
    };
    let refs: Vec<(bool, bool)> = items.iter().map(reference).collect();
    let zip_valid = refs.iter().filter(|r| r.0).count();
    let strict_valid = refs.iter().filter(|r| r.1).count();
    let rules_differ = refs.iter().filter(|r| r.0 != r.1).count();
    println!(
        "{} items: {zip_valid} valid under ZIP-215, {strict_valid} under strict, {rules_differ} where the rules differ",
        items.len()
    );
    for (rules, pick) in [(EdRules::Zip215, 0usize), (EdRules::Strict, 1)] {
        let t = std::time::Instant::now();
        let got = v.verify_soa(&batch, rules).expect("device verification");
        println!("{} items under {rules:?} on {} in {:.2?}", items.len(), v.describe(), t.elapsed());
        let mut bad = Vec::new();
        for (i, it) in items.iter().enumerate() {
            let want = if pick == 0 { refs[i].0 } else { refs[i].1 };
            if (got[i] == 1) != want {
                bad.push(format!("item {i} ({}) {rules:?}: device {} reference {want}", it.origin, got[i]));
            }
        }
        assert!(bad.is_empty(), "{} disagreements:\n{}", bad.len(), bad.join("\n"));
    }
}

/// `n` random and mutated items per scheme, interleaved so mixed batches are exercised; asserts the
/// corpus has enough valid items and enough items where ZIP-215 and strict differ, so agreement
/// under one rule cannot hide the other.
pub fn mixed_corpus(n: usize, seed: u64) -> Vec<Item> {
    let mut rng = Rng::new(seed);
    let mut items = ed25519_items(&mut rng, n);
    items.extend(bip340_items(&mut rng, n));
    let mut mixed = Vec::with_capacity(items.len());
    let (a, b) = items.split_at(n);
    for i in 0..n {
        mixed.push(a[i].clone());
        mixed.push(b[i].clone());
    }
    let valid = mixed.iter().filter(|it| reference(it).0).count();
    assert!(valid > mixed.len() / 10, "corpus has too few valid items ({valid})");
    let differ = mixed.iter().map(reference).filter(|r| r.0 != r.1).count();
    assert!(differ > n / 20, "corpus has too few items where ZIP-215 and strict differ ({differ})");
    mixed
}

/// Held from reading the process-wide [`parthenon::sigverify::stats`] before an engine call to
/// reading them after it, by every test that checks what the call counted: the tests of one
/// binary run in parallel, and another's device batch or fallback would count in this one's
/// difference (a device that verified nothing would pass for one that did).
static STATS: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// [`STATS`], held (a test that failed holding it does not fail the others).
fn stats_lock() -> std::sync::MutexGuard<'static, ()> {
    STATS.lock().unwrap_or_else(|e| e.into_inner())
}

/// The engine's own path: a route forced to `backend` serves a mixed batch on the device (no
/// fallback counted) and returns the CPU backend's verdicts, under both Ed25519 rules.
pub fn engine_forced_matches_cpu_backend(backend: parthenon::Backend) {
    use parthenon::sigverify::{cpu, stats, Rules};
    let engine = parthenon::Engine::builder().force(backend).build().expect("the backend is present");
    let mut rng = Rng::new(0x5eed_0002);
    let mut items = ed25519_items(&mut rng, 100);
    items.extend(bip340_items(&mut rng, 100));
    let batch = to_batch(&items);
    for rules in [Rules::Zip215, Rules::Strict] {
        let counted = stats_lock();
        let before = stats();
        let got = engine.verify_with(&batch, rules);
        let after = stats();
        drop(counted);
        assert_eq!(after.device_fallbacks, before.device_fallbacks, "the device path fell back to the CPU");
        assert!(after.device_batches > before.device_batches, "the device verified no batch");
        let want = cpu::verify_batch(&batch, rules, 2);
        assert_eq!(got.as_bytes(), want.as_bytes(), "{rules:?}");
    }
}

/// `items` as a [`parthenon::sigverify::Batch`].
pub fn to_batch(items: &[Item]) -> parthenon::sigverify::Batch {
    use parthenon::sigverify::{Batch, Scheme};
    let mut batch = Batch::new();
    for it in items {
        let scheme = if it.scheme == ED25519 { Scheme::Ed25519 } else { Scheme::Bip340 };
        batch.push(scheme, &it.pk, &it.msg, &it.sig).expect("well-formed item");
    }
    batch
}

/// `items` shuffled (deterministically): runs of one scheme of random lengths, so a device's
/// grouping by scheme and its chunks cut the batch at every kind of place.
pub fn shuffled(mut items: Vec<Item>, seed: u64) -> Vec<Item> {
    let mut rng = Rng::new(seed);
    for i in (1..items.len()).rev() {
        items.swap(i, rng.below(i as u64 + 1) as usize);
    }
    items
}

/// A mixed corpus of `n` items per scheme, shuffled into runs of one scheme of random lengths,
/// through `device` whole and in chunks of 13: every verdict is scattered back to its own item.
pub fn shuffled_corpus_agrees_with_reference(device: &dyn GpuVerifier, n: usize) {
    let items = shuffled(mixed_corpus(n, 0x5eed_0004), 0x5eed_0005);
    check_against_reference(device, &items);
    check_against_reference(&Chunked { device, chunk: 13 }, &items);
}

/// Batch sizes at the edges of lanes, warps and chunks (with [`Chunked`] of 8 items, also at
/// chunk edges), for [`boundary_sizes_agree_with_reference`].
pub const BOUNDARY_SIZES: [usize; 11] = [0, 1, 7, 8, 9, 63, 64, 65, 127, 128, 129];

/// The first `n` items of one shuffled mixed corpus, for every `n` in [`BOUNDARY_SIZES`], through
/// `device` whole and in chunks of 8: verdicts equal the reference's at every batch size.
pub fn boundary_sizes_agree_with_reference(device: &dyn GpuVerifier) {
    let items = shuffled(mixed_corpus(80, 0x5eed_0007), 0x5eed_0008);
    for n in BOUNDARY_SIZES {
        check_against_reference(device, &items[..n]);
        check_against_reference(&Chunked { device, chunk: 8 }, &items[..n]);
    }
}

/// Un-pins the crossover when dropped, so a failing split test leaves no pin behind for the
/// tests after it in the same process.
struct Unpin;

impl Drop for Unpin {
    fn drop(&mut self) {
        parthenon::sigverify::gpu::route::pin(None);
    }
}

/// The CPU+GPU split of an auto-routed `engine` (whose verify route must be a device): with a
/// crossover pinned so that every batch is split — about a third of the items on the device,
/// then a single item, then all but one — the engine returns the CPU backend's verdicts, item by
/// item, on the mixed adversarial corpus under both Ed25519 rules, with no fallback to the CPU
/// and the device's share verified by the device. The device is prepared first
/// (`Engine::prepare_verify`): until it is, an auto route verifies on the CPU.
pub fn engine_split_matches_cpu_backend(engine: &parthenon::Engine, items: &[Item]) {
    let n = items.len() as f64;
    for share in [0.37, 1.0 / n, (n - 1.0) / n] {
        engine_split_share_matches_cpu_backend(engine, items, share);
    }
}

fn engine_split_share_matches_cpu_backend(engine: &parthenon::Engine, items: &[Item], device_share: f64) {
    use parthenon::sigverify::gpu::route::{pin, Crossover, Plan};
    use parthenon::sigverify::{cpu, stats, Rules};
    let route = engine.route(parthenon::Job::Verify);
    assert_ne!(route.reason, "forced", "the split applies to auto routes only");
    let split = Crossover {
        fingerprint: "pinned by the split test".into(),
        min_device_batch: 1,
        split_from: 1,
        device_share,
        cpu_rate: 1.0,
        device_rate: 1.0,
    };
    let Plan::Split { device } = split.plan(items.len()) else { panic!("share {device_share} does not split") };
    let batch = to_batch(items);
    pin(Some(split));
    let _unpin = Unpin;
    for rules in [Rules::Zip215, Rules::Strict] {
        engine.prepare_verify(rules).expect("the device is prepared");
        let counted = stats_lock();
        let before = stats();
        let got = engine.verify_with(&batch, rules);
        let after = stats();
        drop(counted);
        assert_eq!(after.device_fallbacks, before.device_fallbacks, "the device share fell back to the CPU");
        assert!(after.device_batches > before.device_batches, "the device verified no share of the split");
        let want = cpu::verify_batch(&batch, rules, 2);
        let bad: Vec<String> = (0..items.len())
            .filter(|&i| got.as_bytes()[i] != want.as_bytes()[i])
            .map(|i| {
                format!(
                    "item {i} ({}) {rules:?}: split {} cpu {}",
                    items[i].origin,
                    got.as_bytes()[i],
                    want.as_bytes()[i]
                )
            })
            .collect();
        assert!(bad.is_empty(), "{} disagreements on {}:\n{}", bad.len(), route.backend, bad.join("\n"));
        println!(
            "split of {} items ({device} on {}) under {rules:?}: agrees with the CPU backend",
            items.len(),
            route.backend
        );
    }
}

/// A device whose [`GpuVerifier::verify_soa`] uses chunks of `chunk` items, so small batches go
/// through several chunks per stream or queue.
pub struct Chunked<'a> {
    pub device: &'a dyn GpuVerifier,
    pub chunk: usize,
}

impl GpuVerifier for Chunked<'_> {
    fn describe(&self) -> String {
        format!("{} in chunks of {}", self.device.describe(), self.chunk)
    }
    fn chunk_items(&self) -> usize {
        self.chunk
    }
    fn verify_chunked(
        &self,
        batch: &SoaBatch<'_>,
        rules: EdRules,
        chunk_items: usize,
    ) -> Result<(Vec<u8>, f64), GpuError> {
        self.device.verify_chunked(batch, rules, chunk_items)
    }
}

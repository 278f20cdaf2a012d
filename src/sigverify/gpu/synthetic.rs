//! Deterministic batches of valid signatures, for calibration and benchmarks.
//!
//! A pool of up to [`POOL`] distinct key/message/signature triples per scheme is generated from
//! a seed (Ed25519 by RFC 8032 signing over curve25519-dalek, BIP-340 by the BIP's signing
//! algorithm over k256, deterministic nonces) and tiled to the requested size. Tiling keeps
//! generation cheap for batches of a million; verification cost per item is unchanged because
//! no backend caches across items.

use super::{OwnedSoa, SCHEME_BIP340, SCHEME_ED25519};
use curve25519_dalek::edwards::EdwardsPoint;
use curve25519_dalek::scalar::Scalar as EdScalar;
use k256::elliptic_curve::ops::Reduce;
use k256::elliptic_curve::point::AffineCoordinates;
use k256::elliptic_curve::PrimeField;
use k256::{FieldBytes, ProjectivePoint, Scalar as KScalar};
use sha2::{Digest, Sha256, Sha512};

/// Distinct items generated per scheme before tiling.
pub const POOL: usize = 4096;
/// Message length of every synthetic item.
pub const MESSAGE_LEN: usize = 32;

/// One generated item: public key, message, signature.
pub type Item = ([u8; 32], Vec<u8>, [u8; 64]);

/// Which schemes a synthetic batch holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mix {
    /// Ed25519 only.
    Ed25519,
    /// BIP-340 only.
    Bip340,
    /// Alternating Ed25519 and BIP-340.
    Mixed,
}

fn seed_bytes(seed: u64, i: usize, label: &[u8]) -> [u8; 32] {
    Sha256::new()
        .chain_update(label)
        .chain_update(seed.to_le_bytes())
        .chain_update((i as u64).to_le_bytes())
        .finalize()
        .into()
}

/// One valid Ed25519 item (public key, message, signature) from `seed`, `i`.
pub fn ed25519_item(seed: u64, i: usize) -> Item {
    let sk = seed_bytes(seed, i, b"ed25519 key");
    let msg = seed_bytes(seed, i, b"ed25519 msg").to_vec();
    let h: [u8; 64] = Sha512::digest(sk).into();
    let mut a_bytes = [0u8; 32];
    a_bytes.copy_from_slice(&h[..32]);
    a_bytes[0] &= 248;
    a_bytes[31] &= 127;
    a_bytes[31] |= 64;
    let a = EdScalar::from_bytes_mod_order(a_bytes);
    let pk = EdwardsPoint::mul_base(&a).compress().to_bytes();
    let r_wide: [u8; 64] = Sha512::new().chain_update(&h[32..]).chain_update(&msg).finalize().into();
    let r = EdScalar::from_bytes_mod_order_wide(&r_wide);
    let r_enc = EdwardsPoint::mul_base(&r).compress().to_bytes();
    let k = EdScalar::from_hash(Sha512::new().chain_update(r_enc).chain_update(pk).chain_update(&msg));
    let s = r + k * a;
    let mut sig = [0u8; 64];
    sig[..32].copy_from_slice(&r_enc);
    sig[32..].copy_from_slice(s.as_bytes());
    (pk, msg, sig)
}

fn k_scalar(bytes: [u8; 32]) -> KScalar {
    <KScalar as Reduce<FieldBytes>>::reduce(&FieldBytes::from(bytes))
}

/// One valid BIP-340 item (x-only public key, message, signature) from `seed`, `i`.
pub fn bip340_item(seed: u64, i: usize) -> Item {
    let msg = seed_bytes(seed, i, b"bip340 msg").to_vec();
    let mut d = k_scalar(seed_bytes(seed, i, b"bip340 key"));
    if bool::from(d.is_zero()) {
        d = KScalar::ONE;
    }
    let p = (ProjectivePoint::GENERATOR * d).to_affine();
    if bool::from(p.y_is_odd()) {
        d = -d;
    }
    let px: [u8; 32] = p.x().into();
    let mut k = k_scalar(Sha256::new().chain_update(d.to_repr()).chain_update(&msg).finalize().into());
    if bool::from(k.is_zero()) {
        k = KScalar::ONE;
    }
    let r = (ProjectivePoint::GENERATOR * k).to_affine();
    if bool::from(r.y_is_odd()) {
        k = -k;
    }
    let rx: [u8; 32] = r.x().into();
    let tag: [u8; 32] = Sha256::digest(b"BIP0340/challenge").into();
    let e: [u8; 32] = Sha256::new()
        .chain_update(tag)
        .chain_update(tag)
        .chain_update(rx)
        .chain_update(px)
        .chain_update(&msg)
        .finalize()
        .into();
    let s = k + k_scalar(e) * d;
    let mut sig = [0u8; 64];
    sig[..32].copy_from_slice(&rx);
    sig[32..].copy_from_slice(&s.to_repr());
    (px, msg, sig)
}

/// A batch of `n` valid items of `mix`, tiled from a pool of at most [`POOL`] distinct ones.
pub fn valid_batch(mix: Mix, n: usize, seed: u64) -> OwnedSoa {
    let pool_len = n.min(POOL);
    let make =
        |scheme: u8, i: usize| if scheme == SCHEME_ED25519 { ed25519_item(seed, i) } else { bip340_item(seed, i) };
    let scheme_of = |i: usize| match mix {
        Mix::Ed25519 => SCHEME_ED25519,
        Mix::Bip340 => SCHEME_BIP340,
        Mix::Mixed => {
            if i.is_multiple_of(2) {
                SCHEME_ED25519
            } else {
                SCHEME_BIP340
            }
        }
    };
    let pool: Vec<(u8, Item)> = (0..pool_len).map(|i| (scheme_of(i), make(scheme_of(i), i))).collect();
    let mut out = OwnedSoa::with_capacity(n, n * MESSAGE_LEN);
    for i in 0..n {
        let (scheme, (pk, msg, sig)) = &pool[i % pool_len.max(1)];
        out.push(*scheme, pk, msg, sig);
    }
    out
}

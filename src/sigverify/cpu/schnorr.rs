//! BIP-340 Schnorr verification over secp256k1, single and batch (k256 arithmetic).
//!
//! # Single verification (= libsecp256k1 `secp256k1_schnorrsig_verify`)
//!
//! `P = lift_x(pk)` (fails if `pk ≥ p` or `pk³ + 7` is not a square); `r = sig[0..32]` must be
//! `< p`; `s = sig[32..64]` must be `< n`; `e = int(SHA-256(T ‖ T ‖ r ‖ pk ‖ m)) mod n` with
//! `T = SHA-256("BIP0340/challenge")`, for a message `m` of any length; `R = [s]G − [e]P`; valid
//! iff `R` is not infinity, `y(R)` is even and `x(R) = r`.
//!
//! Equivalently, valid iff `r` lifts to a point `R_r = lift_x(r)` (even `y`) and
//! `D = R_r + [e]P − [s]G` is the identity: `R = [s]G − [e]P` has even `y` and `x(R) = r` exactly
//! when `R = R_r`, and infinity is never `R_r`. (If `r` does not lift, no point has `x = r` and
//! the item is invalid both ways.) That form is what the batch equation sums.
//!
//! # Batch verification (BIP-340, "Batch Verification")
//!
//! The coefficients are derived deterministically from all inputs, as the BIP specifies:
//! `seed = SHA-256("parthenon/bip340-batch" ‖ for each item: pk ‖ sig ‖ c)` where `c` is the
//! item's 32-byte challenge hash before reduction (which binds `r`, `pk` and `m`), then
//! `a_i = SHA-256(seed ‖ i)` truncated to 128 bits, forced non-zero. The batch accepts iff
//! `Σ [a_i]R_i + Σ [a_i e_i]P_i − [Σ a_i s_i]G = 0`, one multiscalar multiplication
//! (`super::msm`). Completeness: valid items have `D_i = 0`, so the sum is 0. Soundness: the
//! group has prime order n; if some `D_j ≠ 0`, for fixed other terms exactly one residue of
//! `a_j` mod n cancels it, and `a_j` is the output of a hash over the inputs, so an adversary
//! needs about 2^128 hash evaluations per success. A failing batch is searched
//! (`super::locate::locate_confirmed`): plain sums of eight items, single checks of the failing
//! ones, and a confirmation with the same coefficients; the group search with those coefficients
//! if the confirmation fails.

use super::lift::{lift_many, lift_one};
use super::locate::{self, Checker};
use super::msm;
use k256::elliptic_curve::ff::PrimeField;
use k256::elliptic_curve::ops::{LinearCombination, MulByGeneratorVartime, Reduce};
use k256::{AffinePoint, FieldBytes, ProjectivePoint, Scalar};
use sha2::{Digest, Sha256};
use std::sync::OnceLock;

/// `SHA-256("BIP0340/challenge")`, the tag prefix of the challenge hash.
fn challenge_tag() -> &'static [u8; 32] {
    static TAG: OnceLock<[u8; 32]> = OnceLock::new();
    TAG.get_or_init(|| Sha256::digest(b"BIP0340/challenge").into())
}

/// The 32-byte challenge hash `SHA-256(T ‖ T ‖ r ‖ pk ‖ m)` (before reduction mod n).
fn challenge_hash(r: &[u8], pk: &[u8; 32], msg: &[u8]) -> [u8; 32] {
    let tag = challenge_tag();
    let mut h = Sha256::new();
    h.update(tag);
    h.update(tag);
    h.update(r);
    h.update(pk);
    h.update(msg);
    h.finalize().into()
}

/// A decoded item: `R = lift_x(r)`, `P = lift_x(pk)`, `s`, `e`, and its batch coefficient.
#[derive(Debug, Clone, Copy)]
pub(super) struct Prepared {
    p: AffinePoint,
    r: AffinePoint,
    s: Scalar,
    e: Scalar,
    challenge: [u8; 32],
    a: Scalar,
}

/// Decodes an item; `None` when it is invalid by encoding (`pk` or `r` do not lift, `s ≥ n`).
pub(super) fn prepare(pubkey: &[u8; 32], msg: &[u8], sig: &[u8; 64]) -> Option<Prepared> {
    prepare_lifted(lift_one(pubkey), lift_one(&sig[..32]), pubkey, msg, sig)
}

/// [`prepare`] with `P = lift_x(pubkey)` and `R = lift_x(r)` already computed ([`lift_many`]).
fn prepare_lifted(
    p: Option<AffinePoint>,
    r: Option<AffinePoint>,
    pubkey: &[u8; 32],
    msg: &[u8],
    sig: &[u8; 64],
) -> Option<Prepared> {
    let (p, r) = (p?, r?);
    let s_bytes = FieldBytes::try_from(&sig[32..]).ok()?;
    let s = Option::<Scalar>::from(Scalar::from_repr(s_bytes))?;
    let challenge = challenge_hash(&sig[..32], pubkey, msg);
    let e = <Scalar as Reduce<FieldBytes>>::reduce(&FieldBytes::from(challenge));
    Some(Prepared { p, r, s, e, challenge, a: Scalar::ONE })
}

impl Prepared {
    /// `[s]G − [e]P == R`.
    fn check_one(&self) -> bool {
        let r =
            ProjectivePoint::mul_by_generator_and_mul_add_vartime(&self.s, &-self.e, &ProjectivePoint::from(self.p));
        r == ProjectivePoint::from(self.r)
    }
}

/// Single verification (the reference function of this module).
pub fn verify_one(pubkey: &[u8; 32], msg: &[u8], sig: &[u8; 64]) -> bool {
    prepare(pubkey, msg, sig).is_some_and(|p| p.check_one())
}

/// Sets the batch coefficients `a_i` from a hash of all inputs (see the module docs).
fn assign_coefficients(items: Vec<(&mut Prepared, [u8; 32], [u8; 64])>) {
    let mut h = Sha256::new();
    h.update(b"parthenon/bip340-batch");
    for (it, pk, sig) in &items {
        h.update(pk);
        h.update(sig);
        h.update(it.challenge);
    }
    let seed: [u8; 32] = h.finalize().into();
    for (i, (it, _, _)) in items.into_iter().enumerate() {
        let d: [u8; 32] = Sha256::new().chain_update(seed).chain_update((i as u64).to_le_bytes()).finalize().into();
        let mut lo = [0u8; 16];
        lo.copy_from_slice(&d[..16]);
        let a = u128::from_le_bytes(lo).max(1);
        it.a = Scalar::from(a);
    }
}

/// The BIP-340 batch equation over prepared items, its multiscalar multiplication on up to
/// `threads` threads.
pub(super) struct Bip340 {
    threads: usize,
}

impl Bip340 {
    /// `Σ [a_i]R_i + Σ [a_i e_i]P_i − [Σ a_i s_i]G` over `items`.
    fn batch_sum(&self, items: &[Prepared]) -> ProjectivePoint {
        let mut g_coeff = Scalar::ZERO;
        let mut terms = Vec::with_capacity(2 * items.len());
        for it in items {
            g_coeff -= it.a * it.s;
            terms.push((it.r, it.a));
            terms.push((it.p, it.a * it.e));
        }
        msm::multiscalar_mul_threads(&terms, self.threads) + ProjectivePoint::mul_by_generator_vartime(&g_coeff)
    }
}

impl Checker for Bip340 {
    type Item = Prepared;

    fn check_batch(&self, items: &[Prepared]) -> bool {
        self.batch_sum(items) == ProjectivePoint::IDENTITY
    }

    fn check_one(&self, item: &Prepared) -> bool {
        item.check_one()
    }

    fn check_each(&self, items: &[&Prepared]) -> Vec<bool> {
        super::on_parts(items, self.threads, 1, |part| part.iter().map(|it| it.check_one()).collect())
    }
}

/// The confirmed search of [`locate`]: plain sums `Σ R_i + Σ [e_i]P_i − [Σ s_i]G` (the `R_i`
/// added, one `lincomb_vartime` for the rest), and the confirmation subtracts the terms of the
/// items found invalid from the failed sum. The coefficients `a_i` are a hash of every input
/// (module docs), so the set found invalid, computed without them from the same inputs, cannot
/// be chosen to make the confirmation pass except by grinding that hash (≈ 2^128 evaluations),
/// the BIP's own argument.
impl locate::Confirming for Bip340 {
    type Failed = ProjectivePoint;

    fn batch_or_failure(&self, items: &[Prepared]) -> Option<ProjectivePoint> {
        Some(self.batch_sum(items)).filter(|sum| *sum != ProjectivePoint::IDENTITY)
    }

    fn plain_sums(&self, sets: &[&[Prepared]]) -> Vec<bool> {
        let vanishes = |items: &[Prepared]| {
            let mut s_sum = Scalar::ZERO;
            let mut r_sum = ProjectivePoint::IDENTITY;
            let mut pairs = Vec::with_capacity(items.len() + 1);
            for it in items {
                s_sum += it.s;
                r_sum += it.r;
                pairs.push((ProjectivePoint::from(it.p), it.e));
            }
            pairs.push((ProjectivePoint::GENERATOR, -s_sum));
            r_sum + ProjectivePoint::lincomb_vartime(pairs.as_slice()) == ProjectivePoint::IDENTITY
        };
        super::on_parts(sets, self.threads, 1, |part| part.iter().map(|items| vanishes(items)).collect())
    }

    fn confirm(&self, failed: &ProjectivePoint, items: &[Prepared], invalid: &[usize]) -> bool {
        let mut g_coeff = Scalar::ZERO;
        let mut pairs = Vec::with_capacity(2 * invalid.len() + 1);
        for &i in invalid {
            let Some(it) = items.get(i) else { return false };
            g_coeff += it.a * it.s;
            pairs.push((ProjectivePoint::from(it.r), -it.a));
            pairs.push((ProjectivePoint::from(it.p), -(it.a * it.e)));
        }
        pairs.push((ProjectivePoint::GENERATOR, g_coeff));
        *failed + ProjectivePoint::lincomb_vartime(pairs.as_slice()) == ProjectivePoint::IDENTITY
    }
}

/// Decodes the items `indices` of `batch` (all lifts of the slice in one [`lift_many`] call);
/// `None` for an item invalid by encoding.
fn prepare_all(
    batch: &crate::sigverify::Batch,
    indices: &[usize],
    cpu: Option<super::IfmaToken>,
) -> Vec<Option<Prepared>> {
    let (pks, sigs) = (batch.pubkeys(), batch.signatures());
    let mut xs = Vec::with_capacity(2 * indices.len());
    for &i in indices {
        xs.push(pks[i]);
        let mut r = [0u8; 32];
        r.copy_from_slice(&sigs[i][..32]);
        xs.push(r);
    }
    let lifted = lift_many(&xs, cpu);
    indices
        .iter()
        .enumerate()
        .map(|(slot, &i)| prepare_lifted(lifted[2 * slot], lifted[2 * slot + 1], &pks[i], batch.message(i), &sigs[i]))
        .collect()
}

/// Verifies the items `indices` of `batch` with up to `threads` threads; one verdict per index,
/// in order. Decoding is split across the threads by items, the batch equation by windows of
/// its multiscalar multiplication ([`msm::multiscalar_mul_threads`]): one equation over the
/// whole slice costs less per item than one per thread. `lift_x` runs on our IFMA arithmetic
/// when given the token, with k256 otherwise.
pub(super) fn verify_indices(
    batch: &crate::sigverify::Batch,
    indices: &[usize],
    threads: usize,
    cpu: Option<super::IfmaToken>,
) -> Vec<bool> {
    let (pks, sigs) = (batch.pubkeys(), batch.signatures());
    let threads = super::threads_used(indices.len(), threads);
    let mut prepared: Vec<Option<Prepared>> =
        super::on_parts(indices, threads, 1, |part| prepare_all(batch, part, cpu));
    assign_coefficients(
        prepared.iter_mut().zip(indices).filter_map(|(p, &i)| p.as_mut().map(|p| (p, pks[i], sigs[i]))).collect(),
    );
    locate::verdicts(prepared, |items| locate::locate_confirmed(&Bip340 { threads }, items))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sigverify::{Batch, Scheme};
    use k256::elliptic_curve::point::AffineCoordinates;
    use rand::RngExt;

    /// A random secret whose point has even `y` (so that `lift_x` of its `x` is that point), with
    /// the point's x-coordinate.
    fn even_secret() -> (Scalar, [u8; 32]) {
        let x = <Scalar as Reduce<FieldBytes>>::reduce(&FieldBytes::from(rand::rng().random::<[u8; 32]>()));
        let p = ProjectivePoint::mul_by_generator_vartime(&x).to_affine();
        let x = if bool::from(p.y_is_odd()) { -x } else { x };
        (x, p.x().into())
    }

    /// Valid items, except items 8 and 11 (one plain-sum group) whose errors cancel,
    /// `D_8 = [d]G = −D_11`, and item 50, plainly invalid: the plain sums cannot see the pair, the
    /// confirmation must, and every verdict must equal single verification's.
    #[test]
    fn cancelling_errors_are_found() {
        let d = Scalar::from(rand::rng().random::<u64>() | 1);
        let mut batch = Batch::new();
        for i in 0..100 {
            let (x, pk) = even_secret();
            let (k, r) = even_secret();
            let msg: [u8; 16] = rand::rng().random();
            let e = <Scalar as Reduce<FieldBytes>>::reduce(&FieldBytes::from(challenge_hash(&r, &pk, &msg)));
            // D = R + [e]P − [s]G = [k + e·x − s]G.
            let s = match i {
                8 => k + e * x - d,
                11 => k + e * x + d,
                50 => k + e * x + Scalar::ONE,
                _ => k + e * x,
            };
            let mut sig = [0u8; 64];
            sig[..32].copy_from_slice(&r);
            sig[32..].copy_from_slice(&s.to_bytes());
            if batch.push(Scheme::Bip340, &pk, &msg, &sig).is_err() {
                unreachable!("well-formed lengths");
            }
        }
        let want: Vec<bool> = (0..100).map(|i| ![8, 11, 50].contains(&i)).collect();
        let (pks, sigs) = (batch.pubkeys(), batch.signatures());
        let single: Vec<bool> = (0..100).map(|i| verify_one(&pks[i], batch.message(i), &sigs[i])).collect();
        assert_eq!(single, want);
        let indices: Vec<usize> = (0..100).collect();
        for cpu in [None, super::super::IfmaToken::hardware()] {
            for threads in [1, 2] {
                assert_eq!(verify_indices(&batch, &indices, threads, cpu), want, "threads {threads}, IFMA {cpu:?}");
            }
        }
        // The plain sum of the pair's group vanishes: the confirmation is what catches it.
        use locate::Confirming;
        let mut items: Vec<Prepared> = prepare_all(&batch, &indices, None).into_iter().flatten().collect();
        assign_coefficients(items.iter_mut().zip(indices.iter()).map(|(p, &i)| (p, pks[i], sigs[i])).collect());
        let checker = Bip340 { threads: 1 };
        let sums = checker.plain_sums(&items.chunks(locate::SUM_GROUP).collect::<Vec<_>>());
        assert_eq!(sums.iter().filter(|v| !**v).count(), 1, "only item 50's group fails");
        let failed = checker.batch_or_failure(&items).expect("the batch fails");
        assert!(!checker.confirm(&failed, &items, &[50]));
        assert!(checker.confirm(&failed, &items, &[8, 11, 50]));
    }
}

//! Ed25519 verification under [`Rules::Zip215`] and [`Rules::Strict`], single and batch.
//!
//! # Single verification
//!
//! - **Zip215** (= ed25519-zebra 5 `VerificationKey::verify`): `A` and `R` are decoded with
//!   curve25519-dalek's `CompressedEdwardsY::decompress`, which accepts every encoding of a curve
//!   point, including non-canonical `y` (`y ≥ p`) and `x = 0` with the sign bit set; `s` must be
//!   canonical (`s < ℓ`); `k = SHA-512(R_bytes ‖ A_bytes ‖ M) mod ℓ` over the bytes *as given*; the
//!   item is valid iff `[8](R − ([s]B − [k]A))` is the identity.
//! - **Strict** (= ed25519-dalek 3 `VerifyingKey::verify_strict`): `s < ℓ`; `A` and `R` decode;
//!   neither is of small order; the item is valid iff `compress([s]B − [k]A) == R_bytes`. The
//!   comparison is on bytes, so an `R` given in a non-canonical encoding never verifies, and the
//!   equation is cofactorless.
//!
//! # Batch verification
//!
//! **Zip215.** For items `i` with `D_i = R_i + [k_i]A_i − [s_i]B`, single verification accepts
//! iff `[8]D_i = 0`. The batch check draws independent uniform 127-bit `z_i` from the thread's
//! CSPRNG (ChaCha seeded by the OS) and accepts iff `[8](Σ z_i D_i) = 0`, computed as one
//! vartime multiscalar multiplication `[−Σ z_i s_i]B + Σ [z_i]R_i + Σ [z_i k_i]A_i` (Pippenger
//! for large batches). Completeness: if every `[8]D_i = 0` then `[8]Σ z_i D_i = Σ z_i [8]D_i = 0`,
//! so a batch of items that each verify always passes. Soundness: the `[8]D_i` lie in the
//! prime-order subgroup (order ℓ > 2^252); if some `[8]D_j ≠ 0`, then for any fixed values of the
//! other `z_i` at most one residue of `z_j` mod ℓ makes the sum vanish, and `z_j` is uniform over
//! 2^127 values below ℓ, so a batch containing an invalid item passes with probability ≤ 2^-127.
//! (127 rather than 128 bits: a 127-bit coefficient's signed radix-2^8 digits end in its 16th
//! window, so the `R_i` take part in half the window groups of `super::curve25519`'s
//! multiscalar multiplication.) Torsion components cannot cancel because the cofactor 8 kills
//! them before the sum is tested. A batch that fails is searched (`super::locate`) until each
//! item's verdict comes from a passing batch equation or from single verification: by plain sums
//! of eight items confirmed with the failed equation's own coefficients
//! (`locate::locate_confirmed`; on CPUs with IFMA a 1 %-invalid batch then costs under twice
//! an all-valid one).
//!
//! **Two implementations of the same function.** On CPUs with AVX-512 IFMA (`ifma`, a submodule),
//! decoding and the multiscalar multiplications run on our own eight-lane arithmetic
//! (`super::curve25519`: decompression eight points at a time is two thirds of the batch cost
//! with dalek), and a failed batch's plain sums, groups and single checks also run eight at a
//! time there; elsewhere, curve25519-dalek's
//! `decompress`, `vartime_multiscalar_mul` and `vartime_double_scalar_mul_basepoint`. The tests
//! hold both to single verification, which is dalek's.
//!
//! **Strict** is verified item by item (in parallel across cores), never by a batch equation;
//! on CPUs with IFMA eight items per vector (`verify_strict_ifma`), elsewhere with dalek.
//! The cofactorless batch equation `Σ z_i D_i = 0` is unsound for this rule: if `D_i` is a
//! non-zero torsion point (a small-order component in `A` or `R` that the small-order checks do
//! not catch when the point also has a prime-order part), `z_i D_i = 0` whenever `z_i` is a
//! multiple of the torsion order, which happens with probability up to 1/2; torsion components of
//! several items can also cancel each other. Making the batch exact would need a torsion-freeness
//! test of every `A` and `R` (`[ℓ]P = 0`), which costs as much as single verification. The
//! cofactored batch is no shortcut either: it accepts items whose `D_i` is a non-zero torsion
//! point, which `verify_strict` rejects.

#[cfg(target_arch = "x86_64")]
mod ifma;

use super::locate::{self, Checker};
use crate::sigverify::Rules;
use curve25519_dalek::constants::ED25519_BASEPOINT_POINT;
use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::{IsIdentity, VartimeMultiscalarMul};
#[cfg(target_arch = "x86_64")]
pub(super) use ifma::{verify_strict_ifma, verify_zip215_ifma};
use rand::RngExt;
use sha2::{Digest, Sha512};

/// `k = SHA-512(R_bytes ‖ A_bytes ‖ M) mod ℓ`.
fn challenge(r_bytes: &[u8], a_bytes: &[u8; 32], msg: &[u8]) -> Scalar {
    let mut h = Sha512::new();
    h.update(r_bytes);
    h.update(a_bytes);
    h.update(msg);
    let wide: [u8; 64] = h.finalize().into();
    Scalar::from_bytes_mod_order_wide(&wide)
}

fn split_sig(sig: &[u8; 64]) -> ([u8; 32], [u8; 32]) {
    let mut r = [0u8; 32];
    let mut s = [0u8; 32];
    r.copy_from_slice(&sig[..32]);
    s.copy_from_slice(&sig[32..]);
    (r, s)
}

/// Single verification under `rules` (the reference function of this module).
pub fn verify_one(rules: Rules, pubkey: &[u8; 32], msg: &[u8], sig: &[u8; 64]) -> bool {
    match rules {
        Rules::Zip215 => prepare(pubkey, msg, sig).is_some_and(|p| p.check_one()),
        Rules::Strict => verify_strict(pubkey, msg, sig),
    }
}

fn verify_strict(pubkey: &[u8; 32], msg: &[u8], sig: &[u8; 64]) -> bool {
    let (r_bytes, s_bytes) = split_sig(sig);
    let Some(s) = Option::<Scalar>::from(Scalar::from_canonical_bytes(s_bytes)) else {
        return false;
    };
    let Some(a) = CompressedEdwardsY(*pubkey).decompress() else {
        return false;
    };
    let Some(r) = CompressedEdwardsY(r_bytes).decompress() else {
        return false;
    };
    if r.is_small_order() || a.is_small_order() {
        return false;
    }
    let k = challenge(&r_bytes, pubkey, msg);
    let expected_r = EdwardsPoint::vartime_double_scalar_mul_basepoint(&k, &-a, &s).compress();
    expected_r.as_bytes() == &r_bytes
}

/// A Zip215 item with its points decoded and its challenge computed.
#[derive(Debug, Clone, Copy)]
pub(super) struct Prepared {
    a: EdwardsPoint,
    r: EdwardsPoint,
    s: Scalar,
    k: Scalar,
}

/// Decodes a Zip215 item; `None` when it is invalid by encoding (undecodable `A` or `R`, `s ≥ ℓ`).
pub(super) fn prepare(pubkey: &[u8; 32], msg: &[u8], sig: &[u8; 64]) -> Option<Prepared> {
    let (r_bytes, s_bytes) = split_sig(sig);
    let s = Option::<Scalar>::from(Scalar::from_canonical_bytes(s_bytes))?;
    let a = CompressedEdwardsY(*pubkey).decompress()?;
    let r = CompressedEdwardsY(r_bytes).decompress()?;
    let k = challenge(&r_bytes, pubkey, msg);
    Some(Prepared { a, r, s, k })
}

impl Prepared {
    /// `[8](R − ([s]B − [k]A)) == 0`.
    fn check_one(&self) -> bool {
        let r_prime = EdwardsPoint::vartime_double_scalar_mul_basepoint(&self.k, &-self.a, &self.s);
        (self.r - r_prime).mul_by_cofactor().is_identity()
    }
}

/// The Zip215 batch equation over prepared items (see the module docs).
pub(super) struct Zip215;

impl Zip215 {
    /// `Σ [z_i](R_i + [k_i]A_i − [s_i]B)` over `items` with fresh 127-bit `z_i`, and the `z_i`.
    fn batch_sum(&self, items: &[Prepared]) -> (EdwardsPoint, Vec<Scalar>) {
        let mut rng = rand::rng();
        let mut b_coeff = Scalar::ZERO;
        let mut zs = Vec::with_capacity(items.len());
        let mut scalars = Vec::with_capacity(2 * items.len() + 1);
        scalars.push(Scalar::ZERO); // replaced by b_coeff below
        let mut points = Vec::with_capacity(2 * items.len() + 1);
        points.push(ED25519_BASEPOINT_POINT);
        for it in items {
            let z = Scalar::from(rng.random::<u128>() >> 1);
            b_coeff -= z * it.s;
            scalars.push(z);
            points.push(it.r);
            scalars.push(z * it.k);
            points.push(it.a);
            zs.push(z);
        }
        scalars[0] = b_coeff;
        (EdwardsPoint::vartime_multiscalar_mul(&scalars, &points), zs)
    }
}

impl Checker for Zip215 {
    type Item = Prepared;

    fn check_batch(&self, items: &[Prepared]) -> bool {
        self.batch_sum(items).0.mul_by_cofactor().is_identity()
    }

    fn check_one(&self, item: &Prepared) -> bool {
        item.check_one()
    }
}

/// The confirmed search of [`locate`] with dalek: plain sums `Σ R_i + Σ [k_i]A_i − [Σ s_i]B`
/// (the `R_i` added, one multiscalar multiplication for the rest), and the confirmation
/// subtracts the terms of the items found invalid from the failed sum.
impl locate::Confirming for Zip215 {
    type Failed = (EdwardsPoint, Vec<Scalar>);

    fn batch_or_failure(&self, items: &[Prepared]) -> Option<Self::Failed> {
        Some(self.batch_sum(items)).filter(|(sum, _)| !sum.mul_by_cofactor().is_identity())
    }

    fn plain_sums(&self, sets: &[&[Prepared]]) -> Vec<bool> {
        sets.iter()
            .map(|items| {
                let r_sum: EdwardsPoint = items.iter().map(|it| it.r).sum();
                let s_sum: Scalar = items.iter().map(|it| it.s).sum();
                let scalars = std::iter::once(-s_sum).chain(items.iter().map(|it| it.k));
                let points = std::iter::once(ED25519_BASEPOINT_POINT).chain(items.iter().map(|it| it.a));
                (r_sum + EdwardsPoint::vartime_multiscalar_mul(scalars, points)).mul_by_cofactor().is_identity()
            })
            .collect()
    }

    fn confirm(&self, (sum, z): &Self::Failed, items: &[Prepared], invalid: &[usize]) -> bool {
        let mut b_coeff = Scalar::ZERO;
        let mut scalars = Vec::with_capacity(2 * invalid.len() + 1);
        let mut points = Vec::with_capacity(2 * invalid.len() + 1);
        for &i in invalid {
            let (Some(it), Some(&z)) = (items.get(i), z.get(i)) else {
                return false;
            };
            b_coeff += z * it.s;
            scalars.push(-z);
            points.push(it.r);
            scalars.push(-(z * it.k));
            points.push(it.a);
        }
        scalars.push(b_coeff);
        points.push(ED25519_BASEPOINT_POINT);
        (sum + EdwardsPoint::vartime_multiscalar_mul(&scalars, &points)).mul_by_cofactor().is_identity()
    }
}

/// Verifies the items `indices` of `batch` under `rules`; one verdict per index, in order.
pub(super) fn verify_indices(batch: &crate::sigverify::Batch, indices: &[usize], rules: Rules) -> Vec<bool> {
    let pks = batch.pubkeys();
    let sigs = batch.signatures();
    match rules {
        Rules::Strict => indices.iter().map(|&i| verify_strict(&pks[i], batch.message(i), &sigs[i])).collect(),
        Rules::Zip215 => {
            let decoded = indices.iter().map(|&i| prepare(&pks[i], batch.message(i), &sigs[i])).collect();
            locate::verdicts(decoded, |items| locate::locate_confirmed(&Zip215, items))
        }
    }
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "x86_64")]
    use super::ifma::{Decoded, Ifma};
    use super::*;
    use crate::sigverify::{Batch, Scheme};
    use curve25519_dalek::constants::EIGHT_TORSION;
    use locate::Confirming;

    /// Signatures made here (valid, with torsion in `A` or `R`, or mutated in one byte).
    fn corpus(n: usize) -> Batch {
        let mut rng = rand::rng();
        let mut batch = Batch::new();
        for i in 0..n {
            let a_secret = Scalar::from_bytes_mod_order(rng.random());
            let nonce = Scalar::from_bytes_mod_order(rng.random());
            let mut a = EdwardsPoint::mul_base(&a_secret);
            let mut r = EdwardsPoint::mul_base(&nonce);
            if i % 7 == 3 {
                a += EIGHT_TORSION[i % 8];
            }
            if i % 11 == 5 {
                r += EIGHT_TORSION[(i / 3) % 8];
            }
            let (a_bytes, r_bytes) = (a.compress().to_bytes(), r.compress().to_bytes());
            let msg: [u8; 20] = rng.random();
            let k = challenge(&r_bytes, &a_bytes, &msg);
            // s chosen so that R = [s]B − [k]A' for A' = A minus its torsion part.
            let s = nonce + k * a_secret;
            let mut sig = [0u8; 64];
            sig[..32].copy_from_slice(&r_bytes);
            sig[32..].copy_from_slice(&s.to_bytes());
            let mut pk = a_bytes;
            match i % 13 {
                1 => sig[rng.random_range(0..64)] ^= 1 << rng.random_range(0..8),
                2 => pk[rng.random_range(0..32)] ^= 1 << rng.random_range(0..8),
                _ => {}
            }
            if batch.push(Scheme::Ed25519, &pk, &msg, &sig).is_err() {
                unreachable!("well-formed lengths");
            }
        }
        batch
    }

    /// Valid items, except: items 8 and 11 (one plain-sum group) whose errors cancel,
    /// `D_8 = [d]B = −D_11`, and item 50, plainly invalid. The plain sums cannot see the pair;
    /// the confirmation must, and every verdict must equal single verification's.
    #[test]
    fn cancelling_errors_are_found() {
        let mut rng = rand::rng();
        let d = Scalar::from(rng.random::<u64>() | 1);
        let mut batch = Batch::new();
        for i in 0..100 {
            let a = Scalar::from_bytes_mod_order(rng.random());
            let r = Scalar::from_bytes_mod_order(rng.random());
            let (a_bytes, r_bytes) =
                (EdwardsPoint::mul_base(&a).compress().to_bytes(), EdwardsPoint::mul_base(&r).compress().to_bytes());
            let msg: [u8; 16] = rng.random();
            let k = challenge(&r_bytes, &a_bytes, &msg);
            // D = R + [k]A − [s]B = [r + k·a − s]B.
            let s = match i {
                8 => r + k * a - d,
                11 => r + k * a + d,
                50 => r + k * a + Scalar::ONE,
                _ => r + k * a,
            };
            let mut sig = [0u8; 64];
            sig[..32].copy_from_slice(&r_bytes);
            sig[32..].copy_from_slice(&s.to_bytes());
            if batch.push(Scheme::Ed25519, &a_bytes, &msg, &sig).is_err() {
                unreachable!("well-formed lengths");
            }
        }
        let want: Vec<bool> = (0..100).map(|i| ![8, 11, 50].contains(&i)).collect();
        let (pks, sigs) = (batch.pubkeys(), batch.signatures());
        let single: Vec<bool> =
            (0..100).map(|i| verify_one(Rules::Zip215, &pks[i], batch.message(i), &sigs[i])).collect();
        assert_eq!(single, want);
        let indices: Vec<usize> = (0..100).collect();
        #[cfg(target_arch = "x86_64")]
        if let Some(cpu) = super::super::ifma_or_skip("ed25519 cancelling_errors_are_found (IFMA part)") {
            for threads in [1, 2] {
                assert_eq!(verify_zip215_ifma(cpu, &batch, &indices, threads), Some(want.clone()), "threads {threads}");
            }
            // The plain sum of the pair's group vanishes: the confirmation is what catches it.
            let checker = Ifma::new(1).expect("the basepoint decodes");
            let items: Vec<Decoded> = checker.decode(&batch, &indices).into_iter().flatten().collect();
            let sums = checker.plain_sums(&items.chunks(locate::SUM_GROUP).collect::<Vec<_>>());
            assert_eq!(sums.iter().filter(|v| !**v).count(), 1, "only item 50's group fails");
            let failed = checker.batch_or_failure(&items).expect("the batch fails");
            assert!(!checker.confirm(&failed, &items, &[50]));
            assert!(checker.confirm(&failed, &items, &[8, 11, 50]));
        }
        // The same with dalek's arithmetic: the confirmed search, its parts, and the group search.
        assert_eq!(verify_indices(&batch, &indices, Rules::Zip215), want);
        let items: Vec<Prepared> =
            indices.iter().filter_map(|&i| prepare(&pks[i], batch.message(i), &sigs[i])).collect();
        let sums = Zip215.plain_sums(&items.chunks(locate::SUM_GROUP).collect::<Vec<_>>());
        assert_eq!(sums.iter().filter(|v| !**v).count(), 1, "only item 50's group fails");
        let failed = Zip215.batch_or_failure(&items).expect("the batch fails");
        assert!(!Zip215.confirm(&failed, &items, &[50]));
        assert!(Zip215.confirm(&failed, &items, &[8, 11, 50]));
        assert_eq!(locate::locate(&Zip215, &items), want);
    }

    #[test]
    fn ifma_and_portable_batches_agree_with_single_verification() {
        let batch = corpus(700);
        let indices: Vec<usize> = (0..batch.len()).collect();
        let (pks, sigs) = (batch.pubkeys(), batch.signatures());
        let single: Vec<bool> =
            indices.iter().map(|&i| verify_one(Rules::Zip215, &pks[i], batch.message(i), &sigs[i])).collect();
        let portable = locate::verdicts(
            indices.iter().map(|&i| prepare(&pks[i], batch.message(i), &sigs[i])).collect(),
            |items| locate::locate(&Zip215, items),
        );
        assert_eq!(portable, single);
        assert_eq!(verify_indices(&batch, &indices, Rules::Zip215), single, "portable, confirmed search");
        assert!(single.iter().filter(|v| !**v).count() > 50);
        assert!(single.iter().filter(|v| **v).count() > 400);
        #[cfg(target_arch = "x86_64")]
        if let Some(cpu) = super::super::ifma_or_skip("ed25519 ifma_and_portable_batches_agree (IFMA part)") {
            for threads in [1, 2, 3] {
                assert_eq!(
                    verify_zip215_ifma(cpu, &batch, &indices, threads),
                    Some(single.clone()),
                    "threads {threads}"
                );
            }
            let strict: Vec<bool> =
                indices.iter().map(|&i| verify_one(Rules::Strict, &pks[i], batch.message(i), &sigs[i])).collect();
            assert!(strict.iter().filter(|v| **v).count() > 300 && strict != single);
            for threads in [1, 2] {
                assert_eq!(
                    verify_strict_ifma(cpu, &batch, &indices, threads),
                    Some(strict.clone()),
                    "strict, threads {threads}"
                );
            }
            // Every item decided by the single checks after a failed batch.
            let checker = Ifma::new(2).expect("the basepoint decodes");
            let decoded = checker.decode(&batch, &indices);
            let want: Vec<bool> = decoded.iter().zip(&single).filter(|(d, _)| d.is_some()).map(|(_, v)| *v).collect();
            let items: Vec<Decoded> = decoded.into_iter().flatten().collect();
            let refs: Vec<&Decoded> = items.iter().collect();
            assert_eq!(checker.check_each(&refs), want);
        }
    }
}

//! Eight plain sums at once, one set per lane: for each set of items, whether
//!
//! `[8] Σ_j (R_j + [k_j]A_j + [n_j]B) = 0`, computed as `[8](Σ_j R_j + Σ_j [k_j]A_j + [Σ_j n_j]B)`,
//!
//! the Zip215 batch equation with every coefficient 1 (`n_j = −s_j`). A set of valid items
//! always passes; a set with invalid items fails unless their errors `D_j = R_j + [k_j]A_j −
//! [s_j]B` cancel after the cofactor, which a signer can arrange (two items with `D_2 = −D_1`).
//! So a passing sum proves nothing alone: [`super::super::locate`] uses these sums to find the
//! invalid items cheaply and then confirms the result with the failed batch equation's random
//! coefficients.
//!
//! Why: after a batch fails, every item has to sit in a passing check (or be verified alone),
//! and with coefficient 1 the `R_j` cost one addition each instead of a 127-bit multiplication.
//!
//! Straus's method per lane ([`super::table`]): a table of `0..=16` multiples of each item's `A`
//! (and the shared one of `B`), 250 doublings shared by every scalar of the lane, one lookup per
//! radix-2^5 digit.

use super::decode::Point;
use super::point::Extended;
use super::single::{is_identity, niels};
use super::table::{self, DIGITS, WORDS};
use crate::sigverify::cpu::IfmaToken;

/// One item of a set: decoded `A` and `R`, and `k` as little-endian bytes.
#[derive(Clone, Copy)]
pub(crate) struct Member<'a> {
    pub(crate) a: &'a Point,
    pub(crate) r: &'a Point,
    pub(crate) k: [u8; 32],
}

/// A set: its items and `n = −Σ s_j mod ℓ` (little-endian).
pub(crate) struct SumSet<'a> {
    pub(crate) members: Vec<Member<'a>>,
    pub(crate) neg_s: [u8; 32],
}

/// For each set, in order, whether its plain sum vanishes after the cofactor (see the module
/// docs).
pub(crate) fn sums_vanish(_cpu: IfmaToken, sets: &[SumSet]) -> Vec<bool> {
    let mut out = Vec::with_capacity(sets.len());
    for chunk in sets.chunks(8) {
        // SAFETY: the token proves this CPU has AVX-512F/DQ/IFMA, everything `sums8` is
        // compiled for.
        let v = unsafe { sums8(chunk) };
        out.extend_from_slice(&v[..chunk.len()]);
    }
    out
}

/// Up to eight sets, set `l` in lane `l`. Lanes past the sets, and members past a set's end,
/// are the identity with scalar 0.
#[target_feature(enable = "avx512f,avx512ifma,avx512dq")]
fn sums8(sets: &[SumSet]) -> [bool; 8] {
    let len = sets.iter().map(|s| s.members.len()).max().unwrap_or(0);
    let member = |l: usize, j: usize| sets.get(l).and_then(|s| s.members.get(j));
    let mut digits: Vec<[[i16; DIGITS]; 8]> = vec![[[0; DIGITS]; 8]; len];
    for (j, d) in digits.iter_mut().enumerate() {
        for (l, lane) in d.iter_mut().enumerate() {
            if let Some(m) = member(l, j) {
                table::digits(&m.k, lane);
            }
        }
    }
    let mut n_digits = [[0i16; DIGITS]; 8];
    for (set, lane) in sets.iter().zip(n_digits.iter_mut()) {
        table::digits(&set.neg_s, lane);
    }
    let b_table = table::basepoint();
    let mut tables = table::take_scratch(len);
    for (j, t) in tables.chunks_exact_mut(WORDS).enumerate() {
        table::store(t, &core::array::from_fn(|l| member(l, j).map_or(&Point::IDENTITY, |m| m.a)));
    }
    let mut acc = Extended::identity();
    for w in (0..DIGITS).rev() {
        if w + 1 < DIGITS {
            acc = acc.double_k(table::C);
        }
        for (t, d) in tables.chunks_exact(WORDS).zip(&digits) {
            acc = acc.add_projective_niels(&table::lookup(t, d, w));
        }
        acc = acc.add_projective_niels(&table::lookup(b_table, &n_digits, w));
    }
    table::put_scratch(tables);
    for j in 0..len {
        let r = core::array::from_fn(|l| member(l, j).map_or(&Point::IDENTITY, |m| m.r));
        acc = acc.add_niels(&niels(&r));
    }
    let acc = acc.double_k(3);
    is_identity(&acc.x, &acc.y, &acc.z)
}

#[cfg(test)]
mod tests {
    use super::super::decode::decode_many;
    use super::*;
    use curve25519_dalek::constants::EIGHT_TORSION;
    use curve25519_dalek::{EdwardsPoint, Scalar};
    use rand::RngExt;

    /// Sets of 0 to 11 items, valid (with torsion), invalid, or invalid in cancelling pairs,
    /// against the same sum computed with dalek.
    #[test]
    fn agrees_with_dalek() {
        let Some(cpu) = crate::sigverify::cpu::ifma_or_skip("curve25519::sums agrees_with_dalek") else {
            return;
        };
        let mut rng = rand::rng();
        // Per set: its items (A, R, k, s) and whether its plain sum vanishes.
        type Item = (EdwardsPoint, EdwardsPoint, Scalar, Scalar);
        let mut cases: Vec<(Vec<Item>, bool)> = Vec::new();
        for i in 0..21usize {
            let len = i % 12;
            let mut items = Vec::new();
            for j in 0..len {
                let a = EdwardsPoint::mul_base(&Scalar::from(rng.random::<u64>())) + EIGHT_TORSION[(i + j) % 8];
                let k = Scalar::from_bytes_mod_order(rng.random());
                let s = Scalar::from_bytes_mod_order(rng.random());
                let valid = EdwardsPoint::mul_base(&s) - k * a + EIGHT_TORSION[j % 8];
                items.push((a, valid, k, s));
            }
            // Case 1 of 3: one invalid item; case 2 of 3: a cancelling pair (when there are two).
            if len > 0 && i % 3 == 1 {
                items[len / 2].1 += EdwardsPoint::mul_base(&Scalar::from(rng.random::<u64>() | 1));
            }
            if len > 1 && i % 3 == 2 {
                let e = EdwardsPoint::mul_base(&Scalar::from(rng.random::<u64>() | 1));
                items[0].1 += e;
                items[len - 1].1 -= e;
            }
            let sum: EdwardsPoint = items.iter().map(|(a, r, k, s)| r + k * a - EdwardsPoint::mul_base(s)).sum();
            cases.push((items, sum.mul_by_cofactor() == EdwardsPoint::default()));
        }
        let decoded: Vec<Vec<(Point, Point, Scalar, Scalar)>> = cases
            .iter()
            .map(|(items, _)| {
                items
                    .iter()
                    .map(|(a, r, k, s)| {
                        let d = decode_many(cpu, &[a.compress().to_bytes(), r.compress().to_bytes()]);
                        (d[0].expect("A decodes"), d[1].expect("R decodes"), *k, *s)
                    })
                    .collect()
            })
            .collect();
        let sets: Vec<SumSet> = decoded
            .iter()
            .map(|items| SumSet {
                members: items.iter().map(|(a, r, k, _)| Member { a, r, k: k.to_bytes() }).collect(),
                neg_s: (-items.iter().map(|it| it.3).sum::<Scalar>()).to_bytes(),
            })
            .collect();
        let want: Vec<bool> = cases.iter().map(|c| c.1).collect();
        assert_eq!(sums_vanish(cpu, &sets), want);
        assert!(want.iter().filter(|v| **v).count() >= 10, "valid sets and cancelling pairs");
        assert!(want.iter().filter(|v| !**v).count() >= 5);
    }
}

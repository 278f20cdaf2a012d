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
//! Straus's method per lane with signed radix-2^5 digits: a table of `0..=16` multiples of each
//! item's `A` (and of `B`), 252 doublings shared by every scalar of the lane, one table lookup per
//! digit. The tables are stored row-wise, each lane's entries contiguous, in the slot layout of
//! [`super::msm`]'s buckets: a lookup loads the eight lanes' entries as rows and transposes them
//! into limb vectors, instead of selecting among every entry with lane masks (which read all
//! nine entries of a radix-16 table and cost a third of the time here).

use super::decode::Point;
use super::msm::{load_buckets, signed_digits, store_buckets, windows, SLOT};
use super::point::{Extended, ProjectiveNiels};
use super::single::{extended, is_identity, niels};
use core::arch::x86_64::*;

/// Window width of the per-lane tables.
const C: usize = 5;
/// Table entries per lane: `0..=2^(C−1)` times the point.
const ENTRIES: usize = (1 << (C - 1)) + 1;
/// Digits of a scalar below 2^253.
const DIGITS: usize = (253usize + 1).div_ceil(C);

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

thread_local! {
    /// The tables, reused across calls on this thread (~200 KiB for eight sets of eight).
    static TABLES: core::cell::RefCell<Vec<u64>> = const { core::cell::RefCell::new(Vec::new()) };
}

/// For each set, in order, whether its plain sum vanishes after the cofactor (see the module
/// docs).
pub(crate) fn sums_vanish(sets: &[SumSet], basepoint: &Point) -> Vec<bool> {
    debug_assert_eq!(windows(253, C), DIGITS);
    let mut out = Vec::with_capacity(sets.len());
    let mut tables = TABLES.with(|t| core::mem::take(&mut *t.borrow_mut()));
    for chunk in sets.chunks(8) {
        // SAFETY: callers reach this module only after `super::available()` confirmed
        // AVX-512F/DQ/IFMA, everything `sums8` is compiled for.
        let v = unsafe { sums8(chunk, basepoint, &mut tables) };
        out.extend_from_slice(&v[..chunk.len()]);
    }
    TABLES.with(|t| *t.borrow_mut() = tables);
    out
}

/// The slot of entry `e` of table `j`, lane `l`.
fn slot(j: usize, l: usize, e: usize) -> usize {
    ((j * 8 + l) * ENTRIES + e) * SLOT
}

/// Writes `[0..=16]·P` per lane (`P` affine, given by `points`) as table `j`.
#[inline]
#[target_feature(enable = "avx512f,avx512ifma,avx512dq")]
fn store_table(tables: &mut [u64], j: usize, points: &[&Point; 8]) {
    let p = niels(points);
    let row = |pn: ProjectiveNiels| Extended { x: pn.y_plus_x, y: pn.y_minus_x, z: pn.z, t: pn.t2d };
    let offsets = |e: usize| core::array::from_fn(|l| slot(j, l, e));
    store_buckets(tables, &offsets(0), &row(ProjectiveNiels::identity()));
    let mut acc = extended(&p);
    store_buckets(tables, &offsets(1), &row(acc.projective_niels()));
    for e in 2..ENTRIES {
        acc = acc.add_niels(&p);
        store_buckets(tables, &offsets(e), &row(acc.projective_niels()));
    }
}

/// Entry `|d_l|` of table `j` per lane, negated where `d_l < 0`.
#[inline]
#[target_feature(enable = "avx512f,avx512ifma,avx512dq")]
fn lookup(tables: &[u64], j: usize, digits: &[[i16; DIGITS]; 8], w: usize) -> ProjectiveNiels {
    let offsets = core::array::from_fn(|l| slot(j, l, usize::from(digits[l][w].unsigned_abs())));
    let mut neg: __mmask8 = 0;
    for (l, d) in digits.iter().enumerate() {
        neg |= u8::from(d[w] < 0) << l;
    }
    let e = load_buckets(tables, &offsets);
    ProjectiveNiels { y_plus_x: e.x, y_minus_x: e.y, z: e.z, t2d: e.t }.conditional_negate(neg)
}

/// Up to eight sets, set `l` in lane `l`. Lanes past the sets, and members past a set's end,
/// are the identity with scalar 0.
#[target_feature(enable = "avx512f,avx512ifma,avx512dq")]
fn sums8(sets: &[SumSet], basepoint: &Point, tables: &mut Vec<u64>) -> [bool; 8] {
    let len = sets.iter().map(|s| s.members.len()).max().unwrap_or(0);
    let member = |l: usize, j: usize| sets.get(l).and_then(|s| s.members.get(j));
    // Tables 0..len for the members' A, table len for B; digits likewise.
    tables.resize(slot(len + 1, 0, 0), 0);
    let mut digits: Vec<[[i16; DIGITS]; 8]> = vec![[[0; DIGITS]; 8]; len + 1];
    for (j, d) in digits.iter_mut().enumerate().take(len) {
        store_table(tables, j, &core::array::from_fn(|l| member(l, j).map_or(&Point::IDENTITY, |m| m.a)));
        for (l, lane) in d.iter_mut().enumerate() {
            if let Some(m) = member(l, j) {
                signed_digits(&m.k, 253, C, lane);
            }
        }
    }
    store_table(tables, len, &[basepoint; 8]);
    for (set, lane) in sets.iter().zip(digits[len].iter_mut()) {
        signed_digits(&set.neg_s, 253, C, lane);
    }
    let mut acc = Extended::identity();
    for w in (0..DIGITS).rev() {
        if w + 1 < DIGITS {
            acc = acc.double_k(C);
        }
        for (j, d) in digits.iter().enumerate() {
            acc = acc.add_projective_niels(&lookup(tables, j, d, w));
        }
    }
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
    use curve25519_dalek::constants::{ED25519_BASEPOINT_COMPRESSED, EIGHT_TORSION};
    use curve25519_dalek::{EdwardsPoint, Scalar};
    use rand::RngExt;

    /// Sets of 0 to 11 items, valid (with torsion), invalid, or invalid in cancelling pairs,
    /// against the same sum computed with dalek.
    #[test]
    fn agrees_with_dalek() {
        if !super::super::available() {
            return;
        }
        let mut rng = rand::rng();
        let basepoint = decode_many(&[ED25519_BASEPOINT_COMPRESSED.to_bytes()])[0].expect("B decodes");
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
                        let d = decode_many(&[a.compress().to_bytes(), r.compress().to_bytes()]);
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
        assert_eq!(sums_vanish(&sets, &basepoint), want);
        assert!(want.iter().filter(|v| **v).count() >= 10, "valid sets and cancelling pairs");
        assert!(want.iter().filter(|v| !**v).count() >= 5);
    }
}

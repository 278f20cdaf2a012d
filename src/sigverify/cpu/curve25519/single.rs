//! Eight single verifications at once, one item per lane, `n = −s`:
//!
//! - [`Equation::Cofactored`]: `[8](R + [k]A + [n]B) = 0`, the Zip215 single equation, used once
//!   a batch has failed to decide the items of the failing groups;
//! - [`Equation::Strict`]: `R + [k]A + [n]B = 0` and neither `A` nor `R` of small order
//!   (`[8]P ≠ 0`), the equation of `verify_strict` once the caller has checked that `R` was
//!   canonically encoded (then `compress([s]B − [k]A) = R_bytes` iff `[s]B − [k]A = R`).
//!
//! Straus's method per lane ([`super::table`]): a table of `0..=16` multiples of the lane's `A`
//! (and the shared one of `B`), 250 doublings shared by both scalars, one lookup per signed
//! radix-2^5 digit (these are public values: verification is variable-time throughout). `R` is
//! added at the end, then the cofactor. Same formulas as [`super::point`], so
//! the verdicts equal dalek's single verification; the tests check both outcomes, torsion
//! included.

use super::decode::Point;
use super::field::{canonical, Fe};
use super::point::{Extended, Niels};
use super::table::{self, DIGITS};
use crate::sigverify::cpu::IfmaToken;

/// One item: decoded `A` and `R`, `k` and `n = −s mod ℓ` as little-endian bytes.
#[derive(Clone, Copy)]
pub(crate) struct Single<'a> {
    pub(crate) a: &'a Point,
    pub(crate) r: &'a Point,
    pub(crate) k: [u8; 32],
    pub(crate) neg_s: [u8; 32],
}

/// Which single equation [`check_each`] decides (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Equation {
    Cofactored,
    Strict,
}

/// One verdict per item, in order.
pub(crate) fn check_each(_cpu: IfmaToken, items: &[Single], equation: Equation) -> Vec<bool> {
    let mut out = Vec::with_capacity(items.len());
    for chunk in items.chunks(8) {
        // SAFETY: the token proves this CPU has AVX-512F/DQ/IFMA, everything `check8` is
        // compiled for.
        let v = unsafe { check8(chunk, equation) };
        out.extend_from_slice(&v[..chunk.len()]);
    }
    out
}

/// The niels coordinates of eight points (lane `j` = `points[j]`).
#[inline]
#[target_feature(enable = "avx512f,avx512ifma,avx512dq")]
pub(super) fn niels(points: &[&Point; 8]) -> Niels {
    let coord = |c: usize| Fe::load(&core::array::from_fn(|j| points[j].limbs(c)));
    Niels { y_plus_x: coord(0), y_minus_x: coord(1), xy2d: coord(2) }
}

/// Extended coordinates of affine points given in niels form:
/// `(X : Y : Z : T) = (4x : 4y : 4 : 4xy)` from `2x = (y+x) − (y−x)` and `2y = (y+x) + (y−x)`.
#[inline]
#[target_feature(enable = "avx512f,avx512ifma,avx512dq")]
pub(super) fn extended(p: &Niels) -> Extended {
    let two_x = p.y_plus_x.sub(&p.y_minus_x);
    let two_y = p.y_plus_x.add(&p.y_minus_x);
    Extended { x: two_x.add(&two_x), y: two_y.add(&two_y), z: Fe::splat(&[4, 0, 0, 0, 0]), t: two_x.mul(&two_y) }
}

/// Per lane, whether `(X : Y : Z)` is the identity (`X = 0`, `Y = Z`).
#[inline]
#[target_feature(enable = "avx512f,avx512ifma,avx512dq")]
pub(super) fn is_identity(x: &Fe, y: &Fe, z: &Fe) -> [bool; 8] {
    let (x, y, z) = (x.store(), y.store(), z.store());
    core::array::from_fn(|j| canonical(&x[j]) == [0; 4] && canonical(&y[j]) == canonical(&z[j]))
}

#[target_feature(enable = "avx512f,avx512ifma,avx512dq")]
fn check8(items: &[Single], equation: Equation) -> [bool; 8] {
    // Missing lanes repeat item 0; their verdicts are dropped.
    let item = |j: usize| items.get(j).unwrap_or(&items[0]);
    let mut k_digits = [[0i16; DIGITS]; 8];
    let mut n_digits = [[0i16; DIGITS]; 8];
    for j in 0..8 {
        table::digits(&item(j).k, &mut k_digits[j]);
        table::digits(&item(j).neg_s, &mut n_digits[j]);
    }
    let a = niels(&core::array::from_fn(|j| item(j).a));
    let b_table = table::basepoint();
    let mut a_table = table::take_scratch(1);
    table::store(&mut a_table, &core::array::from_fn(|j| item(j).a));
    let mut acc = Extended::identity();
    for w in (0..DIGITS).rev() {
        if w + 1 < DIGITS {
            acc = acc.double_k(table::C);
        }
        acc = acc.add_projective_niels(&table::lookup(&a_table, &k_digits, w));
        acc = acc.add_projective_niels(&table::lookup(b_table, &n_digits, w));
    }
    table::put_scratch(a_table);
    let r = niels(&core::array::from_fn(|j| item(j).r));
    let acc = acc.add_niels(&r);
    match equation {
        Equation::Cofactored => {
            let acc = acc.double_k(3);
            is_identity(&acc.x, &acc.y, &acc.z)
        }
        Equation::Strict => {
            let sum_zero = is_identity(&acc.x, &acc.y, &acc.z);
            let a8 = extended(&a).double_k(3);
            let a_small = is_identity(&a8.x, &a8.y, &a8.z);
            let r8 = extended(&r).double_k(3);
            let r_small = is_identity(&r8.x, &r8.y, &r8.z);
            core::array::from_fn(|j| sum_zero[j] && !a_small[j] && !r_small[j])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::decode::decode_many;
    use super::*;
    use curve25519_dalek::constants::EIGHT_TORSION;
    use curve25519_dalek::{EdwardsPoint, Scalar};
    use rand::RngExt;

    #[test]
    fn agrees_with_dalek_on_valid_invalid_and_torsion_items() {
        let Some(cpu) = crate::sigverify::cpu::ifma_or_skip("curve25519::single agrees_with_dalek") else {
            return;
        };
        let mut rng = rand::rng();
        let mut cases = Vec::new();
        for i in 0..61 {
            let a = EdwardsPoint::mul_base(&Scalar::from(rng.random::<u64>())) + EIGHT_TORSION[i % 8];
            let k = Scalar::from_bytes_mod_order(rng.random());
            let s = Scalar::from_bytes_mod_order(rng.random());
            // Valid (with a torsion component that the cofactor removes) or a random R.
            let r = match i % 3 {
                0 => EdwardsPoint::mul_base(&s) - k * a + EIGHT_TORSION[(i / 3) % 8],
                1 => EdwardsPoint::mul_base(&s) - k * a,
                _ => EdwardsPoint::mul_base(&Scalar::from(rng.random::<u64>())),
            };
            let want = (r + k * a - EdwardsPoint::mul_base(&s)).mul_by_cofactor() == EdwardsPoint::default();
            cases.push((a.compress().to_bytes(), r.compress().to_bytes(), k, s, want));
        }
        let points: Vec<(Point, Point)> = cases
            .iter()
            .map(|(a, r, ..)| {
                let d = decode_many(cpu, &[*a, *r]);
                (d[0].expect("A decodes"), d[1].expect("R decodes"))
            })
            .collect();
        let items: Vec<Single> = cases
            .iter()
            .zip(&points)
            .map(|((_, _, k, s, _), (a, r))| Single { a, r, k: k.to_bytes(), neg_s: (-s).to_bytes() })
            .collect();
        let got = check_each(cpu, &items, Equation::Cofactored);
        let want: Vec<bool> = cases.iter().map(|c| c.4).collect();
        assert_eq!(got, want);
        assert!(want.iter().filter(|v| **v).count() > 30);
    }
}

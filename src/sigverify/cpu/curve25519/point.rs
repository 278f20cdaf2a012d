//! Eight edwards25519 points at once, in the coordinates and with the formulas of
//! curve25519-dalek (Hisil–Wong–Carter–Dawson extended coordinates for `−x² + y² = 1 + d x² y²`),
//! so that every sum equals dalek's. The formulas are complete on the whole curve group,
//! torsion points and the identity included, which ZIP-215 needs.

use super::field::{constant, Fe, Limbs};
use core::arch::x86_64::__mmask8;

/// `2d`, little-endian.
const D2_BYTES: [u8; 32] = [
    0x59, 0xf1, 0xb2, 0x26, 0x94, 0x9b, 0xd6, 0xeb, 0x56, 0xb1, 0x83, 0x82, 0x9a, 0x14, 0xe0, 0x00, 0x30, 0xd1, 0xf3,
    0xee, 0xf2, 0x80, 0x8e, 0x19, 0xe7, 0xfc, 0xdf, 0x56, 0xdc, 0xd9, 0x06, 0x24,
];

pub(super) fn d2() -> Limbs {
    constant(&D2_BYTES)
}

/// Eight points `(X : Y : Z : T)` with `x = X/Z`, `y = Y/Z`, `xy = T/Z`.
#[derive(Clone, Copy)]
pub(super) struct Extended {
    pub(super) x: Fe,
    pub(super) y: Fe,
    pub(super) z: Fe,
    pub(super) t: Fe,
}

/// Eight affine points as `(y + x, y − x, 2d·x·y)`, the second operand of a mixed addition.
#[derive(Clone, Copy)]
pub(super) struct Niels {
    pub(super) y_plus_x: Fe,
    pub(super) y_minus_x: Fe,
    pub(super) xy2d: Fe,
}

/// `(X : Y : Z : T)` as `(Y + X, Y − X, Z, 2d·T)`, the second operand of a full addition.
#[derive(Clone, Copy)]
pub(super) struct ProjectiveNiels {
    pub(super) y_plus_x: Fe,
    pub(super) y_minus_x: Fe,
    pub(super) z: Fe,
    pub(super) t2d: Fe,
}

impl ProjectiveNiels {
    /// The identity `(1, 1, 1, 0)`.
    #[inline]
    #[target_feature(enable = "avx512f,avx512ifma,avx512dq")]
    pub(super) fn identity() -> ProjectiveNiels {
        let one = Fe::splat(&[1, 0, 0, 0, 0]);
        ProjectiveNiels { y_plus_x: one, y_minus_x: one, z: one, t2d: Fe::zero() }
    }

    /// The negated points in the lanes of `mask`.
    #[inline]
    #[target_feature(enable = "avx512f,avx512ifma,avx512dq")]
    pub(super) fn conditional_negate(&self, mask: __mmask8) -> ProjectiveNiels {
        ProjectiveNiels {
            y_plus_x: self.y_plus_x.select(&self.y_minus_x, mask),
            y_minus_x: self.y_minus_x.select(&self.y_plus_x, mask),
            z: self.z,
            t2d: self.t2d.select(&self.t2d.neg(), mask),
        }
    }
}

/// `((X : T), (Y : Z))`, the result of an addition or doubling before the final products.
struct Completed {
    x: Fe,
    y: Fe,
    z: Fe,
    t: Fe,
}

impl Completed {
    #[inline]
    #[target_feature(enable = "avx512f,avx512ifma,avx512dq")]
    fn to_extended(&self) -> Extended {
        Extended { x: self.x.mul(&self.t), y: self.y.mul(&self.z), z: self.z.mul(&self.t), t: self.x.mul(&self.y) }
    }
}

impl Niels {
    /// The negated points in the lanes of `mask`: `−(x, y) = (−x, y)` swaps `y ± x` and negates
    /// `2dxy`. `neg_xy2d` is `−xy2d`, computed once by the caller.
    #[inline]
    #[target_feature(enable = "avx512f,avx512ifma,avx512dq")]
    pub(super) fn conditional_negate(&self, neg_xy2d: &Fe, mask: __mmask8) -> Niels {
        Niels {
            y_plus_x: self.y_plus_x.select(&self.y_minus_x, mask),
            y_minus_x: self.y_minus_x.select(&self.y_plus_x, mask),
            xy2d: self.xy2d.select(neg_xy2d, mask),
        }
    }
}

impl Extended {
    #[inline]
    #[target_feature(enable = "avx512f,avx512ifma,avx512dq")]
    pub(super) fn identity() -> Extended {
        let one = Fe::splat(&[1, 0, 0, 0, 0]);
        Extended { x: Fe::zero(), y: one, z: one, t: Fe::zero() }
    }

    #[inline]
    #[target_feature(enable = "avx512f,avx512ifma,avx512dq")]
    pub(super) fn projective_niels(&self) -> ProjectiveNiels {
        ProjectiveNiels {
            y_plus_x: self.y.add(&self.x),
            y_minus_x: self.y.sub(&self.x),
            z: self.z,
            t2d: self.t.mul(&Fe::splat(&d2())),
        }
    }

    /// `self + q` for affine `q` (7 multiplications).
    #[inline]
    #[target_feature(enable = "avx512f,avx512ifma,avx512dq")]
    pub(super) fn add_niels(&self, q: &Niels) -> Extended {
        let pp = self.y.add(&self.x).mul(&q.y_plus_x);
        let mm = self.y.sub(&self.x).mul(&q.y_minus_x);
        let txy2d = self.t.mul(&q.xy2d);
        let z2 = self.z.add(&self.z);
        Completed { x: pp.sub(&mm), y: pp.add(&mm), z: z2.add(&txy2d), t: z2.sub(&txy2d) }.to_extended()
    }

    /// `self + q` (9 multiplications).
    #[inline]
    #[target_feature(enable = "avx512f,avx512ifma,avx512dq")]
    pub(super) fn add(&self, q: &Extended) -> Extended {
        self.add_projective_niels(&q.projective_niels())
    }

    /// `self + q` (8 multiplications).
    #[inline]
    #[target_feature(enable = "avx512f,avx512ifma,avx512dq")]
    pub(super) fn add_projective_niels(&self, q: &ProjectiveNiels) -> Extended {
        let pp = self.y.add(&self.x).mul(&q.y_plus_x);
        let mm = self.y.sub(&self.x).mul(&q.y_minus_x);
        let tt2d = self.t.mul(&q.t2d);
        let zz = self.z.mul(&q.z);
        let zz2 = zz.add(&zz);
        Completed { x: pp.sub(&mm), y: pp.add(&mm), z: zz2.add(&tt2d), t: zz2.sub(&tt2d) }.to_extended()
    }

    /// `2·self` before the final products (4 squarings; 4 multiplications more make it
    /// extended); reads `X`, `Y`, `Z` only (not `T`).
    #[inline]
    #[target_feature(enable = "avx512f,avx512ifma,avx512dq")]
    fn double_completed(&self) -> Completed {
        let xx = self.x.square();
        let yy = self.y.square();
        let zz = self.z.square();
        let zz2 = zz.add(&zz);
        let x_plus_y_sq = self.x.add(&self.y).square();
        let yy_plus_xx = yy.add(&xx);
        let yy_minus_xx = yy.sub(&xx);
        Completed { x: x_plus_y_sq.sub(&yy_plus_xx), y: yy_plus_xx, z: yy_minus_xx, t: zz2.sub(&yy_minus_xx) }
    }

    /// `2^k·self`. Doubling does not read `T`, so the doublings before the last leave it out
    /// (three multiplications each instead of four).
    #[inline]
    #[target_feature(enable = "avx512f,avx512ifma,avx512dq")]
    pub(super) fn double_k(&self, k: usize) -> Extended {
        if k == 0 {
            return *self;
        }
        let mut r = self.double_completed();
        for _ in 1..k {
            // (X : Y : Z) of the completed point; `T` is left as it was (never read here).
            let p = Extended { x: r.x.mul(&r.t), y: r.y.mul(&r.z), z: r.z.mul(&r.t), t: self.t };
            r = p.double_completed();
        }
        r.to_extended()
    }

    /// The affine niels form of points with `Z = 1` (as [`Extended::from_affine`] makes them),
    /// and `−2dxy`.
    #[inline]
    #[target_feature(enable = "avx512f,avx512ifma,avx512dq")]
    pub(super) fn affine_niels(x: &Fe, y: &Fe) -> (Niels, Fe) {
        let xy2d = x.mul(y).mul(&Fe::splat(&d2()));
        (Niels { y_plus_x: y.add(x), y_minus_x: y.sub(x), xy2d }, xy2d.neg())
    }
}

//! Point decompression for a whole batch, eight encodings at a time: curve25519-dalek's
//! `CompressedEdwardsY::decompress`, the decoding ZIP-215 prescribes.
//!
//! The encoding is `y` (255 bits, little-endian; values `≥ p` are accepted and reduced) and the
//! sign of `x` in the top bit. With `u = y² − 1` and `v = d·y² + 1` (never 0: `−1/d` is not a
//! square), `x² = u/v`; the candidate `r = u·v³·(u·v⁷)^((p−5)/8)` is checked with `v·r²`:
//! `= u` means `r` is a root, `= −u` means `r·√−1` is, `= −u·√−1` means there is none (then
//! dalek still multiplies by `√−1` and reports failure). The non-negative (even) root is taken
//! and negated when the sign bit is set, so `x = 0` with the sign bit set decodes to `x = 0`, as
//! dalek and ZIP-215 accept. The exponentiation runs in the eight-lane arithmetic of
//! [`super::field`]; the comparisons and the choice of root, on canonical values per element.
//! The tests compare every verdict and every decoded point with dalek's.

use super::field::{canonical, constant, limbs, pow_p58_many, words, Fe, Limbs, P_WORDS};
use super::point::Extended;
use crate::sigverify::cpu::IfmaToken;

/// `d`, little-endian.
const D_BYTES: [u8; 32] = [
    0xa3, 0x78, 0x59, 0x13, 0xca, 0x4d, 0xeb, 0x75, 0xab, 0xd8, 0x41, 0x41, 0x4d, 0x0a, 0x70, 0x00, 0x98, 0xe8, 0x79,
    0x77, 0x79, 0x40, 0xc7, 0x8c, 0x73, 0xfe, 0x6f, 0x2b, 0xee, 0x6c, 0x03, 0x52,
];

/// `√−1 = 2^((p−1)/4)`, little-endian.
const SQRT_M1_BYTES: [u8; 32] = [
    0xb0, 0xa0, 0x0e, 0x4a, 0x27, 0x1b, 0xee, 0xc4, 0x78, 0xe4, 0x2f, 0xad, 0x06, 0x18, 0x43, 0x2f, 0xa7, 0xd7, 0xfb,
    0x3d, 0x99, 0x00, 0x4d, 0x2b, 0x0b, 0xdf, 0xc1, 0x4f, 0x80, 0x24, 0x83, 0x2b,
];

/// A decoded point as the multiscalar multiplication reads it: `y + x`, `y − x`, `2dxy` and
/// `−2dxy`, five limbs each; and whether its encoding was the canonical one (`y < p`, and not
/// `x = 0` with the sign bit set).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Point {
    l: [u64; 20],
    canonical: bool,
}

impl Point {
    /// The identity: `y + x = y − x = 1`, `2dxy = −2dxy = 0` (a canonical encoding).
    pub(super) const IDENTITY: Point =
        Point { l: [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], canonical: true };

    pub(super) fn limbs(&self, i: usize) -> Limbs {
        let mut l = [0u64; 5];
        l.copy_from_slice(&self.l[5 * i..5 * i + 5]);
        l
    }

    /// Whether the encoding this point was decoded from is the one `compress` gives.
    pub(crate) fn canonical_encoding(&self) -> bool {
        self.canonical
    }
}

/// The canonical encoding of the point with canonical coordinates `(x, y)`.
fn encode(x: &[u64; 4], y: &[u64; 4]) -> [u8; 32] {
    let mut b = [0u8; 32];
    for (i, w) in y.iter().enumerate() {
        b[8 * i..8 * i + 8].copy_from_slice(&w.to_le_bytes());
    }
    b[31] |= ((x[0] & 1) as u8) << 7;
    b
}

/// `p − w` mod `p` for canonical `w`.
fn negate(w: &[u64; 4]) -> [u64; 4] {
    if *w == [0; 4] {
        return *w;
    }
    super::super::words::sub(&P_WORDS, w).0
}

/// Decodes every encoding, in order; `None` where dalek's `decompress` fails.
pub(crate) fn decode_many(_cpu: IfmaToken, encodings: &[[u8; 32]]) -> Vec<Option<Point>> {
    // SAFETY: the token proves this CPU has AVX-512F/DQ/IFMA, everything `decode_features` is
    // compiled for.
    unsafe { decode_features(encodings) }
}

/// [`decode_many`] for callers already compiled for the features ([`super::table`]).
#[target_feature(enable = "avx512f,avx512ifma,avx512dq")]
pub(super) fn decode_features(encodings: &[[u8; 32]]) -> Vec<Option<Point>> {
    let mut out = Vec::with_capacity(encodings.len());
    for group in encodings.chunks(8 * CHAINS) {
        decode_group(group, &mut out);
    }
    out
}

/// Vectors of eight decoded together: independent exponentiations in lockstep.
const CHAINS: usize = 4;

/// The exponentiation `r = u·v³·(u·v⁷)^((p−5)/8)` of up to `8·CHAINS` encodings' `y` limbs,
/// returning `(u, v·r², r, r·√−1, −u·√−1)` per vector.
#[target_feature(enable = "avx512f,avx512ifma,avx512dq")]
fn candidates(y: &[Fe; CHAINS]) -> [[Fe; 5]; CHAINS] {
    let one = Fe::splat(&[1, 0, 0, 0, 0]);
    let d = Fe::splat(&constant(&D_BYTES));
    let i = Fe::splat(&constant(&SQRT_M1_BYTES));
    let mut u = *y;
    let mut v = *y;
    let mut v3 = *y;
    let mut uv7 = *y;
    for c in 0..CHAINS {
        let yy = y[c].square();
        u[c] = yy.sub(&one);
        v[c] = yy.mul(&d).add(&one);
        v3[c] = v[c].square().mul(&v[c]);
        uv7[c] = u[c].mul(&v3[c].square().mul(&v[c]));
    }
    let pow = pow_p58_many(&uv7);
    let mut out = [[Fe::zero(); 5]; CHAINS];
    for c in 0..CHAINS {
        let r = u[c].mul(&v3[c]).mul(&pow[c]);
        out[c] = [u[c], v[c].mul(&r.square()), r, r.mul(&i), u[c].neg().mul(&i)];
    }
    out
}

/// Decodes up to `8·CHAINS` encodings (missing lanes compute on `y = 0` and are dropped),
/// pushing the results to `out`; also returns the canonical affine `(x, y)` of each lane, for
/// the tests.
#[target_feature(enable = "avx512f,avx512ifma,avx512dq")]
fn decode_group(group: &[[u8; 32]], out: &mut Vec<Option<Point>>) -> Vec<([u64; 4], [u64; 4])> {
    let mut y_l = [[[0u64; 5]; 8]; CHAINS];
    for (j, enc) in group.iter().enumerate() {
        let mut w = words(enc);
        w[3] &= (1 << 63) - 1;
        y_l[j / 8][j % 8] = limbs(&w);
    }
    let mut y = [Fe::zero(); CHAINS];
    for c in 0..CHAINS {
        y[c] = Fe::load(&y_l[c]);
    }
    let cand = candidates(&y);
    let mut affine = Vec::with_capacity(group.len());
    for c in 0..CHAINS.min(group.len().div_ceil(8)) {
        let lanes = &group[8 * c..group.len().min(8 * c + 8)];
        let [u, check, r, r_i, neg_u_i] = cand[c].map(|f| f.store());
        let mut valid = [false; 8];
        let mut canonical_enc = [false; 8];
        let mut x_l = [[0u64; 5]; 8];
        for (j, enc) in lanes.iter().enumerate() {
            let (cu, cc) = (canonical(&u[j]), canonical(&check[j]));
            let correct = cc == cu;
            let flipped = cc == negate(&cu);
            let flipped_i = cc == canonical(&neg_u_i[j]);
            let mut root = canonical(if flipped || flipped_i { &r_i[j] } else { &r[j] });
            if root[0] & 1 == 1 {
                root = negate(&root);
            }
            valid[j] = correct || flipped;
            let x = if enc[31] >> 7 == 1 { negate(&root) } else { root };
            x_l[j] = limbs(&x);
            let y = canonical(&y_l[c][j]);
            canonical_enc[j] = encode(&x, &y) == *enc;
            affine.push((x, y));
        }
        let (niels, neg_xy2d) = Extended::affine_niels(&Fe::load(&x_l), &y[c]);
        let coords = [niels.y_plus_x.store(), niels.y_minus_x.store(), niels.xy2d.store(), neg_xy2d.store()];
        for (j, ok) in valid.iter().enumerate().take(lanes.len()) {
            out.push(ok.then(|| {
                let mut l = [0u64; 20];
                for (k, coord) in coords.iter().enumerate() {
                    l[5 * k..5 * k + 5].copy_from_slice(&coord[j]);
                }
                Point { l, canonical: canonical_enc[j] }
            }));
        }
    }
    affine
}

#[cfg(test)]
mod tests {
    use super::*;
    use curve25519_dalek::edwards::CompressedEdwardsY;
    use rand::RngExt;

    /// dalek's verdict and canonical re-encoding.
    fn reference(enc: &[u8; 32]) -> Option<[u8; 32]> {
        CompressedEdwardsY(*enc).decompress().map(|p| p.compress().to_bytes())
    }

    /// Adversarial encodings: small y, y near and above p, both signs, the identity, torsion.
    fn edge_cases() -> Vec<[u8; 32]> {
        let mut v = Vec::new();
        let p = {
            let mut b = [0u8; 32];
            for (i, w) in P_WORDS.iter().enumerate() {
                b[8 * i..8 * i + 8].copy_from_slice(&w.to_le_bytes());
            }
            b
        };
        for k in 0u8..20 {
            for sign in [0u8, 0x80] {
                let mut small = [0u8; 32];
                small[0] = k;
                small[31] |= sign;
                v.push(small);
                // p + k (non-canonical y for k < 19) and p − k.
                let mut above = p;
                above[0] = above[0].wrapping_add(k);
                above[31] |= sign;
                v.push(above);
                let mut below = p;
                below[0] = below[0].wrapping_sub(k);
                below[31] |= sign;
                v.push(below);
            }
        }
        v.push([0xff; 32]);
        v.push([0x7f; 32]);
        v
    }

    fn check(_cpu: IfmaToken, encs: &[[u8; 32]]) -> usize {
        let mut valid = 0;
        for group in encs.chunks(8 * CHAINS) {
            let mut out = Vec::new();
            // SAFETY: the token proves this CPU has AVX-512F/DQ/IFMA.
            let affine = unsafe { decode_group(group, &mut out) };
            for (j, enc) in group.iter().enumerate() {
                let want = reference(enc);
                assert_eq!(out[j].is_some(), want.is_some(), "{enc:02x?}");
                if let Some(w) = want {
                    valid += 1;
                    assert_eq!(encode(&affine[j].0, &affine[j].1), w, "{enc:02x?}");
                    assert_eq!(out[j].map(|p| p.canonical_encoding()), Some(w == *enc), "{enc:02x?}");
                }
            }
        }
        valid
    }

    #[test]
    fn agrees_with_dalek_on_random_points_and_edge_cases() {
        let Some(cpu) = crate::sigverify::cpu::ifma_or_skip("curve25519::decode agrees_with_dalek") else {
            return;
        };
        let mut rng = rand::rng();
        let mut encs: Vec<[u8; 32]> = (0..2000).map(|_| rng.random()).collect();
        // Encodings of real points, both canonical and with the other sign.
        for _ in 0..500 {
            let p = curve25519_dalek::EdwardsPoint::mul_base(&curve25519_dalek::Scalar::from(rng.random::<u64>()));
            let mut e = p.compress().to_bytes();
            encs.push(e);
            e[31] ^= 0x80;
            encs.push(e);
        }
        for t in curve25519_dalek::constants::EIGHT_TORSION {
            encs.push(t.compress().to_bytes());
        }
        encs.extend(edge_cases());
        let valid = check(cpu, &encs);
        assert!(valid > 1500 && valid < encs.len() - 800, "{valid} of {}", encs.len());
        let via_api = decode_many(cpu, &encs);
        assert_eq!(via_api.iter().filter(|p| p.is_some()).count(), valid);
    }
}

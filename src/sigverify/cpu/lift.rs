//! BIP-340 `lift_x` for many x-coordinates at once: the decoding of public keys and of `r`.
//!
//! `lift_x(x)` is the secp256k1 point with x-coordinate `x` and even `y`, defined iff `x < p` and
//! `α = x³ + 7` is a square mod `p`. Since `p ≡ 3 (mod 4)`, the candidate root is
//! `ρ = α^((p+1)/4)`; `α` is a square iff `ρ² = α`, and then `y = ρ` or `p − ρ`, whichever is even.
//!
//! The exponentiation (253 squarings and 13 multiplications, libsecp256k1's addition chain) is
//! most of the cost of decoding a batch: two lifts per signature, as much as the rest of the
//! batch equation together. On CPUs with AVX-512 IFMA it runs on 16 elements at once (two
//! vectors of eight lanes, each lane one field element in five 52-bit limbs, multiplied with
//! `VPMADD52LUQ`/`VPMADD52HUQ`); elsewhere, and for the final checks, per element with k256.
//! Both paths compute the same function: the tests compare them, and k256's `decompact`, with
//! libsecp256k1's x-only key parse on random, boundary (`x ≥ p`, `x = 0`, `x = p − 1`) and non-square inputs. Everything here is
//! variable time in the *validity* of an input only; all inputs are public.

use k256::elliptic_curve::point::DecompactPoint;
use k256::elliptic_curve::sec1::{FromSec1Point, Sec1Point};
use k256::{AffinePoint, FieldBytes, Secp256k1};

/// `p = 2^256 − 2^32 − 977`, big-endian.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
const P_BYTES: [u8; 32] = {
    let mut b = [0xffu8; 32];
    b[27] = 0xfe;
    b[28] = 0xff;
    b[29] = 0xff;
    b[30] = 0xfc;
    b[31] = 0x2f;
    b
};

/// The reference: k256's `lift_x` of one x-coordinate (32 big-endian bytes).
pub(super) fn lift_one(x: &[u8]) -> Option<AffinePoint> {
    let bytes = FieldBytes::try_from(x).ok()?;
    Option::from(AffinePoint::decompact(&bytes))
}

/// `lift_x` of every element of `xs`, in order: on our IFMA arithmetic when given the token,
/// with k256 otherwise.
pub(super) fn lift_many(xs: &[[u8; 32]], cpu: Option<super::IfmaToken>) -> Vec<Option<AffinePoint>> {
    #[cfg(target_arch = "x86_64")]
    if let Some(cpu) = cpu {
        return ifma::lift_many(cpu, xs);
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = cpu;
    xs.iter().map(|x| lift_one(x)).collect()
}

/// The point `(x, y)` from canonical big-endian coordinates, checked to be on the curve.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
fn from_coordinates(x: &[u8; 32], y: &[u8; 32]) -> Option<AffinePoint> {
    let enc = Sec1Point::<Secp256k1>::from_affine_coordinates(&(*x).into(), &(*y).into(), false);
    Option::from(AffinePoint::from_sec1_point(&enc))
}

/// A field element as four little-endian 64-bit words, fully reduced mod `p`.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
type Canonical = [u64; 4];

/// `p` as little-endian words.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
const P_WORDS: Canonical = [0xFFFF_FFFE_FFFF_FC2F, u64::MAX, u64::MAX, u64::MAX];

/// Big-endian bytes of a canonical element.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
fn to_bytes(w: &Canonical) -> [u8; 32] {
    let mut b = [0u8; 32];
    for (i, word) in w.iter().enumerate() {
        b[32 - 8 * (i + 1)..32 - 8 * i].copy_from_slice(&word.to_be_bytes());
    }
    b
}

/// `a − b` for `a ≥ b` (four little-endian words).
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
fn sub(a: &Canonical, b: &Canonical) -> Canonical {
    super::words::sub(a, b).0
}

/// `p − w` for canonical `w ≠ 0`.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
fn negate(w: &Canonical) -> Canonical {
    sub(&P_WORDS, w)
}

#[cfg(target_arch = "x86_64")]
mod ifma {
    //! The eight-lane AVX-512 IFMA field arithmetic mod `p` behind [`super::lift_many`].
    //!
    //! An element is five limbs `l0..l4` of 52 bits in lanes of `__m512i` vectors, value
    //! `Σ l_i 2^(52 i)`. Invariant between operations: `l0..l3 < 2^52`, `l4 ≤ 2^48` (so the value
    //! is below `2^256 + 2^48·2^208`, not necessarily below `p`), which keeps every limb a valid
    //! IFMA input (the instructions read the low 52 bits of each lane). Reduction uses
    //! `2^256 ≡ c = 2^32 + 977` and `2^260 ≡ 16c (mod p)`.

    use super::super::words::limbs52 as limbs;
    use super::super::IfmaToken;
    use super::{from_coordinates, negate, sub, to_bytes, Canonical, P_BYTES, P_WORDS};
    use core::arch::x86_64::*;
    use k256::AffinePoint;

    const M52: u64 = (1 << 52) - 1;
    const M48: u64 = (1 << 48) - 1;
    /// `2^256 mod p`.
    const C: u64 = 0x1_0000_03D1;
    /// `2^260 mod p`.
    const K: u64 = C << 4;
    /// Vectors processed together (independent dependency chains for the out-of-order core).
    const V: usize = 2;
    /// Elements per group.
    const LANES: usize = 8 * V;

    /// `V` vectors of eight field elements each.
    #[derive(Clone, Copy)]
    struct Fe([[__m512i; 5]; V]);

    pub(super) fn lift_many(_cpu: IfmaToken, xs: &[[u8; 32]]) -> Vec<Option<AffinePoint>> {
        let mut out = Vec::with_capacity(xs.len());
        for group in xs.chunks(LANES) {
            // SAFETY: the token proves this CPU has AVX-512F, DQ and IFMA, which is everything
            // `lift_group` is compiled for.
            out.extend(unsafe { lift_group(group) });
        }
        out
    }

    /// Little-endian 64-bit words of 32 big-endian bytes.
    fn words(x: &[u8; 32]) -> [u64; 4] {
        let mut w = [0u64; 4];
        for (i, word) in w.iter_mut().enumerate() {
            let mut b = [0u8; 8];
            b.copy_from_slice(&x[32 - 8 * (i + 1)..32 - 8 * i]);
            *word = u64::from_be_bytes(b);
        }
        w
    }

    /// The fully reduced value of limbs satisfying the invariant.
    fn canonical(l: &[u64; 5]) -> Canonical {
        let mut w = [
            l[0] | (l[1] << 52),
            (l[1] >> 12) | (l[2] << 40),
            (l[2] >> 24) | (l[3] << 28),
            (l[3] >> 36) | (l[4] << 16),
        ];
        // Bits at and above 2^256 (at most 1 by the invariant) fold in as `c`.
        let mut carry = u128::from(l[4] >> 48) * u128::from(C);
        for word in w.iter_mut() {
            let s = u128::from(*word) + carry;
            *word = s as u64;
            carry = s >> 64;
        }
        if carry != 0 {
            // Wrapped past 2^256 (only when the value was within c of it): fold once more.
            let s = u128::from(w[0]) + u128::from(C);
            w[0] = s as u64;
            let mut c = s >> 64;
            for word in w.iter_mut().skip(1) {
                let s = u128::from(*word) + c;
                *word = s as u64;
                c = s >> 64;
            }
        }
        // Now below 2^256 < 2p: one conditional subtraction.
        let ge_p = w.iter().rev().zip(P_WORDS.iter().rev()).find(|(a, b)| a != b).is_none_or(|(a, b)| a > b);
        if ge_p {
            w = sub(&w, &P_WORDS);
        }
        w
    }

    #[inline]
    #[target_feature(enable = "avx512f,avx512ifma,avx512dq")]
    fn splat(x: u64) -> __m512i {
        _mm512_set1_epi64(x as i64)
    }

    /// Carries limb `i` into limb `i + 1`.
    #[inline]
    #[target_feature(enable = "avx512f,avx512ifma,avx512dq")]
    fn carry(t: &mut [__m512i], i: usize, m52: __m512i) {
        t[i + 1] = _mm512_add_epi64(t[i + 1], _mm512_srli_epi64::<52>(t[i]));
        t[i] = _mm512_and_si512(t[i], m52);
    }

    /// Reduces eleven product columns (each below 2^57) to an element satisfying the invariant.
    #[inline]
    #[target_feature(enable = "avx512f,avx512ifma,avx512dq")]
    fn reduce(mut t: [[__m512i; 11]; V]) -> Fe {
        let (m52, m48, k, c) = (splat(M52), splat(M48), splat(K), splat(C));
        let mut out = [[_mm512_setzero_si512(); 5]; V];
        for v in 0..V {
            let t = &mut t[v];
            // Every column below 2^52; t[10] takes the carry out of t[9] (below 2^6).
            for i in 0..10 {
                carry(t, i, m52);
            }
            // Fold columns 5..=10: 2^(52(5+i)) ≡ 16c · 2^(52 i). All inputs are below 2^52.
            let mut r = [t[0], t[1], t[2], t[3], t[4], _mm512_setzero_si512()];
            for i in 0..6 {
                r[i] = _mm512_madd52lo_epu64(r[i], t[5 + i], k);
                if i < 5 {
                    r[i + 1] = _mm512_madd52hi_epu64(r[i + 1], t[5 + i], k);
                }
            }
            // (t[10]·16c < 2^43, so its high half is zero and column 6 never forms.)
            for i in 0..5 {
                carry(&mut r, i, m52);
            }
            // r[5] < 2^44: fold it the same way.
            let r5 = r[5];
            r[0] = _mm512_madd52lo_epu64(r[0], r5, k);
            r[1] = _mm512_madd52hi_epu64(r[1], r5, k);
            for i in 0..4 {
                carry(&mut r, i, m52);
            }
            // Bits at and above 2^256 (r[4] < 2^53, so fewer than 2^5 of them) fold in as c.
            let top = _mm512_srli_epi64::<48>(r[4]);
            r[4] = _mm512_and_si512(r[4], m48);
            r[0] = _mm512_add_epi64(r[0], _mm512_mullo_epi64(top, c));
            for i in 0..4 {
                carry(&mut r, i, m52);
            }
            out[v] = [r[0], r[1], r[2], r[3], r[4]];
        }
        Fe(out)
    }

    #[inline]
    #[target_feature(enable = "avx512f,avx512ifma,avx512dq")]
    fn mul(a: &Fe, b: &Fe) -> Fe {
        let z = _mm512_setzero_si512();
        let mut t = [[z; 11]; V];
        for v in 0..V {
            let (a, b, t) = (&a.0[v], &b.0[v], &mut t[v]);
            for i in 0..5 {
                for j in 0..5 {
                    t[i + j] = _mm512_madd52lo_epu64(t[i + j], a[i], b[j]);
                    t[i + j + 1] = _mm512_madd52hi_epu64(t[i + j + 1], a[i], b[j]);
                }
            }
        }
        reduce(t)
    }

    #[inline]
    #[target_feature(enable = "avx512f,avx512ifma,avx512dq")]
    fn square(a: &Fe) -> Fe {
        let z = _mm512_setzero_si512();
        let mut t = [[z; 11]; V];
        for v in 0..V {
            let (a, t) = (&a.0[v], &mut t[v]);
            // Cross products once, doubled; then the squares on the diagonal.
            for i in 0..5 {
                for j in i + 1..5 {
                    t[i + j] = _mm512_madd52lo_epu64(t[i + j], a[i], a[j]);
                    t[i + j + 1] = _mm512_madd52hi_epu64(t[i + j + 1], a[i], a[j]);
                }
            }
            for x in t.iter_mut() {
                *x = _mm512_add_epi64(*x, *x);
            }
            for i in 0..5 {
                t[2 * i] = _mm512_madd52lo_epu64(t[2 * i], a[i], a[i]);
                t[2 * i + 1] = _mm512_madd52hi_epu64(t[2 * i + 1], a[i], a[i]);
            }
        }
        reduce(t)
    }

    /// `a^(2^n)`.
    #[inline]
    #[target_feature(enable = "avx512f,avx512ifma,avx512dq")]
    fn pow2k(a: &Fe, n: usize) -> Fe {
        let mut r = *a;
        for _ in 0..n {
            r = square(&r);
        }
        r
    }

    /// `a^((p+1)/4)` (libsecp256k1's and k256's addition chain: blocks of 2, 22 and 223 ones).
    #[target_feature(enable = "avx512f,avx512ifma,avx512dq")]
    fn sqrt_candidate(a: &Fe) -> Fe {
        let x2 = mul(&square(a), a);
        let x3 = mul(&square(&x2), a);
        let x6 = mul(&pow2k(&x3, 3), &x3);
        let x9 = mul(&pow2k(&x6, 3), &x3);
        let x11 = mul(&pow2k(&x9, 2), &x2);
        let x22 = mul(&pow2k(&x11, 11), &x11);
        let x44 = mul(&pow2k(&x22, 22), &x22);
        let x88 = mul(&pow2k(&x44, 44), &x44);
        let x176 = mul(&pow2k(&x88, 88), &x88);
        let x220 = mul(&pow2k(&x176, 44), &x44);
        let x223 = mul(&pow2k(&x220, 3), &x3);
        let t = mul(&pow2k(&x223, 23), &x22);
        let t = mul(&pow2k(&t, 6), &x2);
        pow2k(&t, 2)
    }

    #[target_feature(enable = "avx512f,avx512ifma,avx512dq")]
    fn load(l: &[[u64; 5]; LANES]) -> Fe {
        let z = _mm512_setzero_si512();
        let mut out = [[z; 5]; V];
        for (v, vec) in out.iter_mut().enumerate() {
            for (i, limb) in vec.iter_mut().enumerate() {
                let e = |j: usize| l[8 * v + j][i] as i64;
                *limb = _mm512_set_epi64(e(7), e(6), e(5), e(4), e(3), e(2), e(1), e(0));
            }
        }
        Fe(out)
    }

    #[target_feature(enable = "avx512f,avx512ifma,avx512dq")]
    fn store(a: &Fe) -> [[u64; 5]; LANES] {
        let mut out = [[0u64; 5]; LANES];
        for (v, vec) in a.0.iter().enumerate() {
            for (i, limb) in vec.iter().enumerate() {
                let mut lanes = [0u64; 8];
                // SAFETY: `lanes` is 64 writable bytes, the size of one vector; unaligned
                // stores are allowed.
                unsafe { _mm512_storeu_si512(lanes.as_mut_ptr().cast(), *limb) };
                for (j, x) in lanes.iter().enumerate() {
                    out[8 * v + j][i] = *x;
                }
            }
        }
        out
    }

    /// Lifts up to [`LANES`] x-coordinates.
    #[target_feature(enable = "avx512f,avx512ifma,avx512dq")]
    fn lift_group(xs: &[[u8; 32]]) -> Vec<Option<AffinePoint>> {
        // Lanes without a (valid) input compute on x = 1 and are ignored.
        let mut in_range = [false; LANES];
        let mut l = [[1u64, 0, 0, 0, 0]; LANES];
        for (j, x) in xs.iter().enumerate() {
            if *x < P_BYTES {
                in_range[j] = true;
                l[j] = limbs(&words(x));
            }
        }
        let x = load(&l);
        let mut alpha = mul(&square(&x), &x);
        let (m52, seven) = (splat(M52), splat(7));
        for v in 0..V {
            let a = &mut alpha.0[v];
            a[0] = _mm512_add_epi64(a[0], seven);
            for i in 0..4 {
                carry(a, i, m52);
            }
        }
        let rho = sqrt_candidate(&alpha);
        let rho_sq = square(&rho);
        let (alpha, rho, rho_sq) = (store(&alpha), store(&rho), store(&rho_sq));
        xs.iter()
            .enumerate()
            .map(|(j, x)| {
                if !in_range[j] || canonical(&rho_sq[j]) != canonical(&alpha[j]) {
                    return None;
                }
                let r = canonical(&rho[j]);
                let y = if r[0] & 1 == 1 { negate(&r) } else { r };
                from_coordinates(x, &to_bytes(&y))
            })
            .collect()
    }

    #[cfg(test)]
    #[test]
    fn canonical_reduces_values_at_and_above_p() {
        // p itself, p + 1 and 2^256 - 1 (written with l4 at its 48-bit bound).
        let p = limbs(&P_WORDS);
        assert_eq!(canonical(&p), [0; 4]);
        let mut p1 = p;
        p1[0] += 1;
        assert_eq!(canonical(&p1), [1, 0, 0, 0]);
        let max = limbs(&[u64::MAX; 4]);
        assert_eq!(canonical(&max), [C - 1, 0, 0, 0]);
        // 2^256 exactly: l4 = 2^48.
        assert_eq!(canonical(&[0, 0, 0, 0, 1 << 48]), [C, 0, 0, 0]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::RngExt;

    /// libsecp256k1's lift (x-only key parse, then the even-y point): independent of both
    /// our paths.
    fn reference(xs: &[[u8; 32]]) -> Vec<Option<AffinePoint>> {
        use secp256k1::{Parity, PublicKey, XOnlyPublicKey};
        xs.iter()
            .map(|x| {
                let k = XOnlyPublicKey::from_byte_array(*x).ok()?;
                let u = PublicKey::from_x_only_public_key(k, Parity::Even).serialize_uncompressed();
                let (x, y) = (u[1..33].try_into().unwrap(), u[33..65].try_into().unwrap());
                Some(from_coordinates(&x, &y).expect("libsecp256k1's point is on the curve"))
            })
            .collect()
    }

    #[test]
    fn agrees_with_libsecp256k1_on_random_boundary_and_invalid_inputs() {
        let mut rng = rand::rng();
        let mut xs: Vec<[u8; 32]> = (0..997).map(|_| rng.random()).collect();
        // Boundaries: 0, 1, p - 1, p, p + 1, 2^256 - 1, and the x of the generator.
        let mut pm1 = P_BYTES;
        pm1[31] -= 1;
        let mut pp1 = P_BYTES;
        pp1[31] += 1;
        let mut one = [0u8; 32];
        one[31] = 1;
        let g = hex_x("79BE667EF9DCBBAC55A06295CE870B07029BFCDB2DCE28D959F2815B16F81798");
        xs.extend([[0u8; 32], one, pm1, P_BYTES, pp1, [0xff; 32], g]);
        let want = reference(&xs);
        assert_eq!(lift_many(&xs, None), want, "k256 path");
        assert_eq!(xs.iter().map(|x| lift_one(x)).collect::<Vec<_>>(), want, "lift_one");
        if let Some(cpu) = super::super::ifma_or_skip("lift agrees_with_libsecp256k1 (IFMA part)") {
            assert_eq!(lift_many(&xs, Some(cpu)), want, "IFMA path");
        }
        // Both valid and invalid inputs occurred (about half of random x lift).
        let valid = want.iter().filter(|p| p.is_some()).count();
        assert!(valid > 300 && valid < xs.len() - 300, "{valid}");
        assert!(want[want.len() - 1].is_some());
    }

    #[test]
    fn every_group_size_and_position() {
        let mut rng = rand::rng();
        let Some(cpu) = super::super::ifma_or_skip("lift every_group_size_and_position") else {
            return;
        };
        for n in 0..40 {
            let xs: Vec<[u8; 32]> = (0..n).map(|_| rng.random()).collect();
            assert_eq!(lift_many(&xs, Some(cpu)), reference(&xs), "n = {n}");
        }
    }

    fn hex_x(s: &str) -> [u8; 32] {
        let mut out = [0u8; 32];
        for (i, b) in out.iter_mut().enumerate() {
            *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap_or(0);
        }
        out
    }
}

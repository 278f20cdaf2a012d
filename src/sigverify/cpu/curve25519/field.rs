//! Eight field elements mod `p = 2^255 − 19` at once, in AVX-512 IFMA lanes.
//!
//! An element is five limbs `l0..l4` of 52 bits, one `__m512i` per limb, lane `j` of every limb
//! belonging to element `j`; its value is `Σ l_i 2^(52 i)`. The arithmetic is carried out modulo
//! `2p = 2^256 − 38`, which is congruent modulo `p`; [`canonical`] finishes the reduction. Between
//! operations every element satisfies the invariant `l0..l3 < 2^52`, `l4 ≤ 2^48` (a value below
//! `2^256 + 2^208`), which keeps every limb a valid input of `VPMADD52LUQ`/`VPMADD52HUQ` (they
//! read the low 52 bits of each lane). Products reduce with `2^256 ≡ 38` and `2^260 ≡ 608`.
//!
//! Every function here requires AVX-512F/DQ/IFMA: it is called only from `#[target_feature]`
//! code reached through a [`crate::sigverify::cpu::IfmaToken`] (see [`super`]).

use core::arch::x86_64::*;

const M52: u64 = (1 << 52) - 1;
const M48: u64 = (1 << 48) - 1;
/// `2^256 mod 2p`.
const C: u64 = 38;
/// `2^260 mod 2p`.
const K: u64 = C << 4;

/// `p` as little-endian 64-bit words.
pub(super) const P_WORDS: [u64; 4] = [0xFFFF_FFFF_FFFF_FFED, u64::MAX, u64::MAX, 0x7FFF_FFFF_FFFF_FFFF];

/// Eight field elements.
#[derive(Clone, Copy)]
pub(super) struct Fe(pub(super) [__m512i; 5]);

/// Limbs of one element (the invariant holds).
pub(super) type Limbs = [u64; 5];

#[inline]
#[target_feature(enable = "avx512f,avx512ifma,avx512dq")]
pub(super) fn splat(x: u64) -> __m512i {
    _mm512_set1_epi64(x as i64)
}

/// Carries limb `i` into limb `i + 1`.
#[inline]
#[target_feature(enable = "avx512f,avx512ifma,avx512dq")]
fn carry(t: &mut [__m512i], i: usize) {
    t[i + 1] = _mm512_add_epi64(t[i + 1], _mm512_srli_epi64::<52>(t[i]));
    t[i] = _mm512_and_si512(t[i], splat(M52));
}

/// Restores the invariant for limbs below 2^62 (top limb below 2^62 as well).
#[inline]
#[target_feature(enable = "avx512f,avx512ifma,avx512dq")]
fn normalize(mut t: [__m512i; 5]) -> Fe {
    for i in 0..4 {
        carry(&mut t, i);
    }
    // Bits at and above 2^256 fold in as 38 (fewer than 2^14 of them: the product is < 2^52).
    let top = _mm512_srli_epi64::<48>(t[4]);
    t[4] = _mm512_and_si512(t[4], splat(M48));
    t[0] = _mm512_madd52lo_epu64(t[0], top, splat(C));
    for i in 0..4 {
        carry(&mut t, i);
    }
    Fe(t)
}

impl Fe {
    #[inline]
    #[target_feature(enable = "avx512f,avx512ifma,avx512dq")]
    pub(super) fn zero() -> Fe {
        Fe([_mm512_setzero_si512(); 5])
    }

    /// The same element in every lane.
    #[inline]
    #[target_feature(enable = "avx512f,avx512ifma,avx512dq")]
    pub(super) fn splat(l: &Limbs) -> Fe {
        Fe([splat(l[0]), splat(l[1]), splat(l[2]), splat(l[3]), splat(l[4])])
    }

    /// Lane `j` = `l[j]`.
    #[inline]
    #[target_feature(enable = "avx512f,avx512ifma,avx512dq")]
    pub(super) fn load(l: &[Limbs; 8]) -> Fe {
        let mut out = [_mm512_setzero_si512(); 5];
        for (i, limb) in out.iter_mut().enumerate() {
            let e = |j: usize| l[j][i] as i64;
            *limb = _mm512_set_epi64(e(7), e(6), e(5), e(4), e(3), e(2), e(1), e(0));
        }
        Fe(out)
    }

    /// The limbs of every lane.
    #[inline]
    #[target_feature(enable = "avx512f,avx512ifma,avx512dq")]
    pub(super) fn store(&self) -> [Limbs; 8] {
        let mut out = [[0u64; 5]; 8];
        for (i, limb) in self.0.iter().enumerate() {
            let mut lanes = [0u64; 8];
            // SAFETY: `lanes` is 64 writable bytes, the size of one vector; unaligned stores are
            // allowed.
            unsafe { _mm512_storeu_si512(lanes.as_mut_ptr().cast(), *limb) };
            for (j, x) in lanes.iter().enumerate() {
                out[j][i] = *x;
            }
        }
        out
    }

    #[inline]
    #[target_feature(enable = "avx512f,avx512ifma,avx512dq")]
    pub(super) fn add(&self, b: &Fe) -> Fe {
        let mut t = self.0;
        for (x, y) in t.iter_mut().zip(b.0.iter()) {
            *x = _mm512_add_epi64(*x, *y);
        }
        normalize(t)
    }

    /// `self − b`, computed as `self + 8p − b` with `8p` spread so that every limb exceeds the
    /// corresponding limb of any `b` under the invariant.
    #[inline]
    #[target_feature(enable = "avx512f,avx512ifma,avx512dq")]
    pub(super) fn sub(&self, b: &Fe) -> Fe {
        // 4·(2^256 − 38) = Σ s_i 2^(52 i) with s0 = 2^53 − 152, s1..s3 = 2^53 − 2, s4 = 2^50 − 2.
        const S: [u64; 5] = [(1 << 53) - 4 * C, (1 << 53) - 2, (1 << 53) - 2, (1 << 53) - 2, (1 << 50) - 2];
        let mut t = self.0;
        for i in 0..5 {
            t[i] = _mm512_sub_epi64(_mm512_add_epi64(t[i], splat(S[i])), b.0[i]);
        }
        normalize(t)
    }

    #[inline]
    #[target_feature(enable = "avx512f,avx512ifma,avx512dq")]
    pub(super) fn neg(&self) -> Fe {
        Fe::zero().sub(self)
    }

    /// Lanes of `b` where `mask` is set, of `self` elsewhere.
    #[inline]
    #[target_feature(enable = "avx512f,avx512ifma,avx512dq")]
    pub(super) fn select(&self, b: &Fe, mask: __mmask8) -> Fe {
        let mut t = self.0;
        for (x, y) in t.iter_mut().zip(b.0.iter()) {
            *x = _mm512_mask_blend_epi64(mask, *x, *y);
        }
        Fe(t)
    }

    #[inline]
    #[target_feature(enable = "avx512f,avx512ifma,avx512dq")]
    pub(super) fn mul(&self, b: &Fe) -> Fe {
        // Low and high halves accumulate separately: dependency chains of at most five
        // multiply-adds per column instead of ten.
        let z = _mm512_setzero_si512();
        let (mut lo, mut hi) = ([z; 11], [z; 11]);
        let (a, b) = (&self.0, &b.0);
        for i in 0..5 {
            for j in 0..5 {
                lo[i + j] = _mm512_madd52lo_epu64(lo[i + j], a[i], b[j]);
                hi[i + j + 1] = _mm512_madd52hi_epu64(hi[i + j + 1], a[i], b[j]);
            }
        }
        let mut t = [z; 11];
        for k in 0..11 {
            t[k] = _mm512_add_epi64(lo[k], hi[k]);
        }
        reduce(t)
    }

    #[inline]
    #[target_feature(enable = "avx512f,avx512ifma,avx512dq")]
    pub(super) fn square(&self) -> Fe {
        let z = _mm512_setzero_si512();
        let (mut lo, mut hi) = ([z; 11], [z; 11]);
        let a = &self.0;
        // Cross products once, doubled; then the squares on the diagonal.
        for i in 0..5 {
            for j in i + 1..5 {
                lo[i + j] = _mm512_madd52lo_epu64(lo[i + j], a[i], a[j]);
                hi[i + j + 1] = _mm512_madd52hi_epu64(hi[i + j + 1], a[i], a[j]);
            }
        }
        let (mut dlo, mut dhi) = ([z; 11], [z; 11]);
        for i in 0..5 {
            dlo[2 * i] = _mm512_madd52lo_epu64(z, a[i], a[i]);
            dhi[2 * i + 1] = _mm512_madd52hi_epu64(z, a[i], a[i]);
        }
        let mut t = [z; 11];
        for k in 0..11 {
            let cross = _mm512_add_epi64(lo[k], hi[k]);
            t[k] = _mm512_add_epi64(_mm512_add_epi64(cross, cross), _mm512_add_epi64(dlo[k], dhi[k]));
        }
        reduce(t)
    }

    #[cfg(test)]
    /// `self^(p − 2)`, the inverse of a non-zero element (0 maps to 0).
    #[target_feature(enable = "avx512f,avx512ifma,avx512dq")]
    pub(super) fn invert(&self) -> Fe {
        let ([t19], [t3]) = pow22501_many(&[*self]);
        pow2k_many(&[t19], 5)[0].mul(&t3)
    }
}

/// `N` independent vectors in lockstep: their dependency chains overlap in the out-of-order
/// core, where one chain alone would wait on each multiplication's latency.
#[inline]
#[target_feature(enable = "avx512f,avx512ifma,avx512dq")]
fn mul_many<const N: usize>(a: &[Fe; N], b: &[Fe; N]) -> [Fe; N] {
    let mut out = *a;
    for i in 0..N {
        out[i] = a[i].mul(&b[i]);
    }
    out
}

/// `a^(2^n)` for `N` vectors in lockstep.
#[inline]
#[target_feature(enable = "avx512f,avx512ifma,avx512dq")]
fn pow2k_many<const N: usize>(a: &[Fe; N], n: usize) -> [Fe; N] {
    let mut out = *a;
    for _ in 0..n {
        for x in out.iter_mut() {
            *x = x.square();
        }
    }
    out
}

/// [`Fe::pow22501`] of `N` vectors in lockstep.
#[target_feature(enable = "avx512f,avx512ifma,avx512dq")]
fn pow22501_many<const N: usize>(x: &[Fe; N]) -> ([Fe; N], [Fe; N]) {
    let t0 = pow2k_many(x, 1);
    let t1 = pow2k_many(&t0, 2);
    let t2 = mul_many(x, &t1);
    let t3 = mul_many(&t0, &t2);
    let t4 = pow2k_many(&t3, 1);
    let t5 = mul_many(&t2, &t4);
    let t7 = mul_many(&pow2k_many(&t5, 5), &t5);
    let t9 = mul_many(&pow2k_many(&t7, 10), &t7);
    let t11 = mul_many(&pow2k_many(&t9, 20), &t9);
    let t13 = mul_many(&pow2k_many(&t11, 10), &t7);
    let t15 = mul_many(&pow2k_many(&t13, 50), &t13);
    let t17 = mul_many(&pow2k_many(&t15, 100), &t15);
    let t19 = mul_many(&pow2k_many(&t17, 50), &t13);
    (t19, t3)
}

/// [`Fe::pow_p58`] of `N` vectors in lockstep.
#[target_feature(enable = "avx512f,avx512ifma,avx512dq")]
pub(super) fn pow_p58_many<const N: usize>(x: &[Fe; N]) -> [Fe; N] {
    let (t19, _) = pow22501_many(x);
    mul_many(x, &pow2k_many(&t19, 2))
}

/// Reduces eleven product columns (each below 2^57, the top one below 2^47) to an element
/// satisfying the invariant.
///
/// Column `j ≥ 5` is split into its low 52 bits and the rest, and both fold down with
/// `2^(52·5) ≡ 608` in one step (no carry chain across the columns first): every sum stays below
/// 2^63, and one [`normalize`] finishes.
#[inline]
#[target_feature(enable = "avx512f,avx512ifma,avx512dq")]
fn reduce(t: [__m512i; 11]) -> Fe {
    let m52 = splat(M52);
    let k = splat(K);
    let lo = |j: usize| _mm512_and_si512(t[j], m52);
    let hi = |j: usize| _mm512_srli_epi64::<52>(t[j]);
    let times_k = |x: __m512i| _mm512_mullo_epi64(x, k);
    // t10·2^520 ≡ 608·t10·2^260: fold 608·t10 (below 2^57) as a sixth high column.
    let t10k = times_k(t[10]);
    let (c5lo, c5hi) = (_mm512_and_si512(t10k, m52), _mm512_srli_epi64::<52>(t10k));
    let mut r = [t[0], t[1], t[2], t[3], t[4]];
    // lo_j·2^(52j) → r[j−5]; hi_j·2^(52(j+1)) → r[j−4] (j + 1 = 10 folds twice).
    for j in 5..10 {
        r[j - 5] = _mm512_add_epi64(r[j - 5], times_k(lo(j)));
    }
    for j in 5..9 {
        r[j - 4] = _mm512_add_epi64(r[j - 4], times_k(hi(j)));
    }
    r[0] = _mm512_add_epi64(r[0], times_k(_mm512_add_epi64(times_k(hi(9)), c5lo)));
    r[1] = _mm512_add_epi64(r[1], times_k(c5hi));
    normalize(r)
}

/// Little-endian 64-bit words of 32 little-endian bytes.
pub(super) fn words(b: &[u8; 32]) -> [u64; 4] {
    let mut w = [0u64; 4];
    for (i, word) in w.iter_mut().enumerate() {
        let mut x = [0u8; 8];
        x.copy_from_slice(&b[8 * i..8 * i + 8]);
        *word = u64::from_le_bytes(x);
    }
    w
}

/// Five 52-bit limbs of a value below 2^256 (the invariant holds).
pub(super) use super::super::words::limbs52 as limbs;
use super::super::words::sub as sub_words;

/// The value of `l` reduced into `[0, p)`, as little-endian words.
pub(super) fn canonical(l: &Limbs) -> [u64; 4] {
    let mut w =
        [l[0] | (l[1] << 52), (l[1] >> 12) | (l[2] << 40), (l[2] >> 24) | (l[3] << 28), (l[3] >> 36) | (l[4] << 16)];
    // Bits at and above 2^256 (at most one, by the invariant) fold in as 38.
    let mut carry = (l[4] >> 48) * C;
    while carry != 0 {
        let mut c = u128::from(carry);
        for word in w.iter_mut() {
            let s = u128::from(*word) + c;
            *word = s as u64;
            c = s >> 64;
        }
        carry = (c as u64) * C;
    }
    // Below 2^256 < 4p: at most three subtractions of p.
    for _ in 0..3 {
        let (d, borrow) = sub_words(&w, &P_WORDS);
        if !borrow {
            w = d;
        }
    }
    w
}

/// Canonical little-endian bytes of `l`.
#[cfg(test)]
pub(super) fn to_bytes(l: &Limbs) -> [u8; 32] {
    let w = canonical(l);
    let mut b = [0u8; 32];
    for (i, word) in w.iter().enumerate() {
        b[8 * i..8 * i + 8].copy_from_slice(&word.to_le_bytes());
    }
    b
}

/// Limbs of a constant given as little-endian bytes (below 2^256).
pub(super) fn constant(b: &[u8; 32]) -> Limbs {
    limbs(&words(b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sigverify::cpu::IfmaToken;
    use num_like::*;

    /// Minimal big-integer helpers for the tests (values below 2^512 as eight words).
    mod num_like {
        pub fn mulmod(a: &[u64; 4], b: &[u64; 4]) -> [u64; 4] {
            // Schoolbook product then reduction by 2^255 ≡ 19, done on u128 columns.
            let mut t = [0u128; 8];
            for i in 0..4 {
                let mut carry = 0u128;
                for j in 0..4 {
                    let s = t[i + j] + u128::from(a[i]) * u128::from(b[j]) + carry;
                    t[i + j] = s & u128::from(u64::MAX);
                    carry = s >> 64;
                }
                t[i + 4] += carry;
            }
            // value = lo + 2^256 hi ≡ lo + 38 hi.
            let mut w = [0u64; 4];
            let mut c = 0u128;
            for i in 0..4 {
                let s = t[i] + 38 * t[i + 4] + c;
                w[i] = s as u64;
                c = s >> 64;
            }
            let mut c = c * 38;
            while c != 0 {
                let mut k = c;
                for word in w.iter_mut() {
                    let s = u128::from(*word) + k;
                    *word = s as u64;
                    k = s >> 64;
                }
                c = k * 38;
            }
            super::canonical(&super::limbs(&w))
        }
    }

    fn random_limbs(rng: &mut impl rand::Rng) -> Limbs {
        // Anything under the invariant, including values ≥ p and the top limb at 2^48.
        let mut l: Limbs = [0; 5];
        for x in l.iter_mut().take(4) {
            *x = rng.next_u64() & M52;
        }
        l[4] = match rng.next_u32() % 4 {
            0 => 1 << 48,
            1 => M48,
            _ => rng.next_u64() & M48,
        };
        l
    }

    fn run(_cpu: IfmaToken, f: impl Fn(&Fe, &Fe) -> Fe, g: impl Fn(&[u64; 4], &[u64; 4]) -> [u64; 4]) {
        let mut rng = rand::rng();
        for _ in 0..200 {
            let a: [Limbs; 8] = core::array::from_fn(|_| random_limbs(&mut rng));
            let b: [Limbs; 8] = core::array::from_fn(|_| random_limbs(&mut rng));
            // SAFETY: the token proves this CPU has AVX-512F/DQ/IFMA.
            let got = unsafe { f(&Fe::load(&a), &Fe::load(&b)).store() };
            for j in 0..8 {
                for x in got[j].iter().take(4) {
                    assert!(*x <= M52);
                }
                assert!(got[j][4] <= 1 << 48);
                assert_eq!(canonical(&got[j]), g(&canonical(&a[j]), &canonical(&b[j])));
            }
        }
    }

    fn addmod(a: &[u64; 4], b: &[u64; 4]) -> [u64; 4] {
        let mut w = [0u64; 4];
        let mut c = 0u128;
        for i in 0..4 {
            let s = u128::from(a[i]) + u128::from(b[i]) + c;
            w[i] = s as u64;
            c = s >> 64;
        }
        canonical(&limbs(&w))
    }

    fn submod(a: &[u64; 4], b: &[u64; 4]) -> [u64; 4] {
        let (nb, _) = sub_words(&P_WORDS, b);
        addmod(a, &canonical(&limbs(&nb)))
    }

    #[test]
    fn arithmetic_matches_big_integers() {
        let Some(cpu) = crate::sigverify::cpu::ifma_or_skip("curve25519::field arithmetic_matches_big_integers") else {
            return;
        };
        // SAFETY (for every call below): the token proves this CPU has AVX-512F/DQ/IFMA.
        run(cpu, |a, b| unsafe { a.mul(b) }, mulmod);
        run(cpu, |a, _| unsafe { a.square() }, |a, _| mulmod(a, a));
        run(cpu, |a, b| unsafe { a.add(b) }, addmod);
        run(cpu, |a, b| unsafe { a.sub(b) }, submod);
        run(cpu, |a, _| unsafe { a.neg() }, |a, _| submod(&[0; 4], a));
        run(cpu, |a, _| unsafe { a.invert().mul(a) }, |a, _| if *a == [0; 4] { [0; 4] } else { [1, 0, 0, 0] });
    }

    #[test]
    fn canonical_reduces_every_representation() {
        let p = limbs(&P_WORDS);
        assert_eq!(canonical(&p), [0; 4]);
        let mut p1 = p;
        p1[0] += 1;
        assert_eq!(canonical(&p1), [1, 0, 0, 0]);
        // 2^256 − 1 ≡ 37 and 2^256 ≡ 38 (mod p), plus the top limb at its bound.
        assert_eq!(canonical(&limbs(&[u64::MAX; 4])), [37, 0, 0, 0]);
        assert_eq!(canonical(&[0, 0, 0, 0, 1 << 48]), [38, 0, 0, 0]);
        // (2^208 − 1) + 2^256 ≡ 2^208 + 37.
        assert_eq!(canonical(&[M52, M52, M52, M52, 1 << 48]), [37, 0, 0, 1 << 16]);
    }
}

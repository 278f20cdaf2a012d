//! What every x86 backend precomputes from a key: the AES round keys (`AESKEYGENASSIST`) and the
//! GHASH key powers `H^1..H^MAX_POWERS` in the byte-reflected form the vector code multiplies in.
//!
//! # GHASH representation
//!
//! Blocks are byte-reversed (`PSHUFB`) on load so that the GCM bit order becomes an ordinary
//! little-endian polynomial with reflected coefficients. In that form the 4-multiplication
//! schoolbook product followed by the two-step folding reduction by `0xc2...01` ([`mul`]) computes
//! `a * b * x^-1`; storing every key power premultiplied by `x` (`H' = H * x`, [`shl1`]) cancels
//! the `x^-1`, so `mul(X, H'^k) = X * H^k` and `mul(H'^i, H'^j) = H'^(i+j)`. This is the scheme of
//! the Linux kernel's `aes-gcm-avx10` (E. Biggers), rewritten here with intrinsics.

use crate::cipher::kernel::AesKey;
use core::arch::x86_64::*;

/// How many key powers are kept: a GHASH run of up to this many blocks needs one reduction.
pub(crate) const MAX_POWERS: usize = 40;

/// Round keys and key powers of one key. `NR` = 10 (AES-128) or 14 (AES-256).
#[derive(Clone)]
#[repr(C, align(64))]
pub(crate) struct KeySchedule {
    /// Round keys 0..=NR (unused entries are zero).
    pub(crate) rk: [__m128i; 15],
    /// `pows[i] = H'^(MAX_POWERS - i)` for `i < MAX_POWERS`, then 3 zero entries so a 4-lane load
    /// that starts at any power stays inside the array (it multiplies zero padding blocks).
    pub(crate) pows: [__m128i; MAX_POWERS + 3],
    /// The reduction constant `0xc2000000000000000000000000000001`.
    pub(crate) poly: __m128i,
    /// The byte-reversal shuffle mask.
    pub(crate) bswap: __m128i,
}

impl Drop for KeySchedule {
    fn drop(&mut self) {
        // Best effort key erasure: volatile writes are not elided.
        let zero = [0u8; 16];
        for r in self.rk.iter_mut().chain(self.pows.iter_mut()) {
            // SAFETY: `r` is a valid, aligned, exclusively borrowed `__m128i` (16 plain bytes).
            unsafe { core::ptr::write_volatile(r as *mut __m128i as *mut [u8; 16], zero) };
        }
    }
}

// SAFETY: plain bytes; no interior mutability.
unsafe impl Send for KeySchedule {}
// SAFETY: plain bytes; shared references only read.
unsafe impl Sync for KeySchedule {}

macro_rules! assist256 {
    ($rk:ident, $i:expr, $rcon:expr) => {{
        let t = _mm_shuffle_epi32::<0xff>(_mm_aeskeygenassist_si128::<$rcon>($rk[$i - 1]));
        $rk[$i] = _mm_xor_si128(spread($rk[$i - 2]), t);
    }};
    ($rk:ident, $i:expr, $rcon:expr, odd) => {{
        assist256!($rk, $i, $rcon);
        let t = _mm_shuffle_epi32::<0xaa>(_mm_aeskeygenassist_si128::<0>($rk[$i]));
        $rk[$i + 1] = _mm_xor_si128(spread($rk[$i - 1]), t);
    }};
}

macro_rules! assist128 {
    ($rk:ident, $i:expr, $rcon:expr) => {{
        let t = _mm_shuffle_epi32::<0xff>(_mm_aeskeygenassist_si128::<$rcon>($rk[$i - 1]));
        $rk[$i] = _mm_xor_si128(spread($rk[$i - 1]), t);
    }};
}

/// `k ^ (k << 32) ^ (k << 64) ^ (k << 96)` (the word-wise prefix XOR of the key schedule).
#[inline(always)]
unsafe fn spread(k: __m128i) -> __m128i {
    // SAFETY: SSE2 is part of x86_64.
    unsafe {
        let k = _mm_xor_si128(k, _mm_slli_si128::<4>(k));
        let k = _mm_xor_si128(k, _mm_slli_si128::<4>(k));
        _mm_xor_si128(k, _mm_slli_si128::<4>(k))
    }
}

/// GHASH product in the reflected representation: `a * b * x^-1` (see module docs).
#[inline(always)]
pub(crate) unsafe fn mul(a: __m128i, b: __m128i, poly: __m128i) -> __m128i {
    // SAFETY: the caller guarantees PCLMULQDQ.
    unsafe {
        let lo = _mm_clmulepi64_si128::<0x00>(a, b);
        let mi = _mm_xor_si128(_mm_clmulepi64_si128::<0x01>(a, b), _mm_clmulepi64_si128::<0x10>(a, b));
        let hi = _mm_clmulepi64_si128::<0x11>(a, b);
        let t = _mm_clmulepi64_si128::<0x01>(poly, lo);
        let mi = _mm_xor_si128(_mm_xor_si128(mi, t), _mm_shuffle_epi32::<0x4e>(lo));
        let t = _mm_clmulepi64_si128::<0x01>(poly, mi);
        _mm_xor_si128(_mm_xor_si128(hi, t), _mm_shuffle_epi32::<0x4e>(mi))
    }
}

/// `h * x` modulo the reflected GCM polynomial: a 128-bit left shift, folding the carry with
/// `0xc2...01`. Constant time.
pub(crate) fn shl1(h: u128) -> u128 {
    let carry = (h >> 127).wrapping_neg();
    (h << 1) ^ (carry & 0xc200_0000_0000_0000_0000_0000_0000_0001)
}

/// Expands `key` (AES-128 or AES-256, by its variant) and derives the GHASH key powers.
///
/// # Safety
/// The CPU must support AES-NI, PCLMULQDQ, SSSE3 and SSE4.1.
#[target_feature(enable = "aes,pclmulqdq,ssse3,sse4.1")]
pub(crate) unsafe fn expand(key: AesKey<'_>) -> KeySchedule {
    let mut rk = [_mm_setzero_si128(); 15];
    // SAFETY: each load reads 16 bytes inside the key array, whose length its variant fixes
    // (32 bytes for K256, 16 for K128).
    unsafe {
        if let AesKey::K256(key) = key {
            rk[0] = _mm_loadu_si128(key.as_ptr().cast());
            rk[1] = _mm_loadu_si128(key.as_ptr().add(16).cast());
            assist256!(rk, 2, 0x01, odd);
            assist256!(rk, 4, 0x02, odd);
            assist256!(rk, 6, 0x04, odd);
            assist256!(rk, 8, 0x08, odd);
            assist256!(rk, 10, 0x10, odd);
            assist256!(rk, 12, 0x20, odd);
            assist256!(rk, 14, 0x40);
        } else {
            rk[0] = _mm_loadu_si128(key.bytes().as_ptr().cast());
            assist128!(rk, 1, 0x01);
            assist128!(rk, 2, 0x02);
            assist128!(rk, 3, 0x04);
            assist128!(rk, 4, 0x08);
            assist128!(rk, 5, 0x10);
            assist128!(rk, 6, 0x20);
            assist128!(rk, 7, 0x40);
            assist128!(rk, 8, 0x80);
            assist128!(rk, 9, 0x1b);
            assist128!(rk, 10, 0x36);
        }
    }
    let nr = key.rounds();
    // H = AES_K(0^128)
    let mut h = _mm_xor_si128(_mm_setzero_si128(), rk[0]);
    for k in &rk[1..nr] {
        h = _mm_aesenc_si128(h, *k);
    }
    h = _mm_aesenclast_si128(h, rk[nr]);
    let mut hb = [0u8; 16];
    // SAFETY: `hb` has 16 writable bytes.
    unsafe { _mm_storeu_si128(hb.as_mut_ptr().cast(), h) };
    // Byte-reflect (big-endian read) and premultiply by x.
    let h1 = shl1(u128::from_be_bytes(hb));
    let h1 = _mm_set_epi64x((h1 >> 64) as i64, h1 as i64);
    let poly = _mm_set_epi64x(0xc200_0000_0000_0000_u64 as i64, 1);
    let mut pows = [_mm_setzero_si128(); MAX_POWERS + 3];
    let mut p = h1;
    for i in (0..MAX_POWERS).rev() {
        pows[i] = p;
        // SAFETY: PCLMULQDQ is enabled on this function.
        p = unsafe { mul(p, h1, poly) };
    }
    let bswap = _mm_set_epi8(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    KeySchedule { rk, pows, poly, bswap }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shl1_folds_the_carry() {
        assert_eq!(shl1(1), 2);
        assert_eq!(shl1(1 << 127), 0xc200_0000_0000_0000_0000_0000_0000_0001);
        assert_eq!(shl1((1 << 127) | 1), 0xc200_0000_0000_0000_0000_0000_0000_0003);
    }

    #[test]
    fn round_keys_match_fips197() {
        if !super::super::missing("aes,pclmulqdq,ssse3,sse4.1").is_empty() {
            return;
        }
        // FIPS-197 appendix A.3: AES-256 key expansion, last round key w[56..60].
        let key: Vec<u8> = (0..32)
            .map(|i| {
                [
                    0x60u8, 0x3d, 0xeb, 0x10, 0x15, 0xca, 0x71, 0xbe, 0x2b, 0x73, 0xae, 0xf0, 0x85, 0x7d, 0x77, 0x81,
                    0x1f, 0x35, 0x2c, 0x07, 0x3b, 0x61, 0x08, 0xd7, 0x2d, 0x98, 0x10, 0xa3, 0x09, 0x14, 0xdf, 0xf4,
                ][i]
            })
            .collect();
        let key: [u8; 32] = key.try_into().expect("32 bytes");
        // SAFETY: the features were checked above.
        let ks = unsafe { expand(AesKey::K256(&key)) };
        let mut last = [0u8; 16];
        // SAFETY: 16 writable bytes.
        unsafe { _mm_storeu_si128(last.as_mut_ptr().cast(), ks.rk[14]) };
        assert_eq!(
            last,
            [0xfe, 0x48, 0x90, 0xd1, 0xe6, 0x18, 0x8d, 0x0b, 0x04, 0x6d, 0xf3, 0x44, 0x70, 0x6c, 0x63, 0x1e]
        );
    }
}

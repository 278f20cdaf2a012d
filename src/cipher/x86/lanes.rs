//! One vector of 1, 2 or 4 AES blocks (`__m128i`, `__m256i`, `__m512i`) behind one trait, so the
//! GCM algorithm in [`super::gcm`] is written once and monomorphised per register width.
//!
//! Every method is `#[inline(always)]` and carries no `target_feature` of its own: it is meant to
//! be inlined into a `#[target_feature]` entry point of the backend that owns the width
//! (`aesni.rs`, `vaes256.rs`, `vaes512.rs`), where the intrinsics inline too. Calling a method
//! from anywhere else is undefined behaviour on a CPU without the instructions, hence `unsafe`.

#![allow(clippy::missing_safety_doc)]

use core::arch::x86_64::*;

/// A vector of `BLOCKS` 128-bit lanes; lane `j` holds block `j` of 16 consecutive bytes in memory.
pub(crate) trait Lanes: Copy {
    /// Blocks per vector.
    const BLOCKS: usize;
    /// All-zero vector.
    unsafe fn zero() -> Self;
    /// Unaligned load of `16 * BLOCKS` bytes.
    unsafe fn load(p: *const u8) -> Self;
    /// Unaligned store of `16 * BLOCKS` bytes.
    unsafe fn store(self, p: *mut u8);
    /// `b` in every lane.
    unsafe fn splat(b: __m128i) -> Self;
    /// `b` in lane 0, zero elsewhere.
    unsafe fn lane0(b: __m128i) -> Self;
    /// Lane `j` holds the 32-bit integer `j` in its low dword, zero elsewhere.
    unsafe fn lane_index() -> Self;
    /// Bitwise XOR.
    unsafe fn xor(self, o: Self) -> Self;
    /// Three-way XOR.
    #[inline(always)]
    unsafe fn xor3(self, a: Self, b: Self) -> Self {
        // SAFETY: forwarded from the caller's guarantee of the CPU features.
        unsafe { self.xor(a).xor(b) }
    }
    /// One AES encryption round per lane.
    unsafe fn aesenc(self, k: Self) -> Self;
    /// The last AES encryption round per lane.
    unsafe fn aesenclast(self, k: Self) -> Self;
    /// Carry-less multiply of one 64-bit half of each lane of `self` by one of `o` (`PCLMULQDQ`
    /// immediate: bit 0 picks the half of `self`, bit 4 the half of `o`).
    unsafe fn clmul<const IMM: i32>(self, o: Self) -> Self;
    /// Swap the two 64-bit halves of each lane.
    unsafe fn swap_halves(self) -> Self;
    /// Byte shuffle of each lane by `mask` (`PSHUFB`).
    unsafe fn shuffle(self, mask: Self) -> Self;
    /// 32-bit lane-wise addition (wraps).
    unsafe fn add32(self, o: Self) -> Self;
    /// XOR of all lanes.
    unsafe fn fold(self) -> __m128i;
}

impl Lanes for __m128i {
    const BLOCKS: usize = 1;
    #[inline(always)]
    unsafe fn zero() -> Self {
        // SAFETY: SSE2 is part of x86_64.
        unsafe { _mm_setzero_si128() }
    }
    #[inline(always)]
    unsafe fn load(p: *const u8) -> Self {
        // SAFETY: the caller guarantees 16 readable bytes at `p`.
        unsafe { _mm_loadu_si128(p.cast()) }
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut u8) {
        // SAFETY: the caller guarantees 16 writable bytes at `p`.
        unsafe { _mm_storeu_si128(p.cast(), self) }
    }
    #[inline(always)]
    unsafe fn splat(b: __m128i) -> Self {
        b
    }
    #[inline(always)]
    unsafe fn lane0(b: __m128i) -> Self {
        b
    }
    #[inline(always)]
    unsafe fn lane_index() -> Self {
        // SAFETY: SSE2 is part of x86_64.
        unsafe { _mm_setzero_si128() }
    }
    #[inline(always)]
    unsafe fn xor(self, o: Self) -> Self {
        // SAFETY: SSE2 is part of x86_64.
        unsafe { _mm_xor_si128(self, o) }
    }
    #[inline(always)]
    unsafe fn aesenc(self, k: Self) -> Self {
        // SAFETY: the caller guarantees AES-NI.
        unsafe { _mm_aesenc_si128(self, k) }
    }
    #[inline(always)]
    unsafe fn aesenclast(self, k: Self) -> Self {
        // SAFETY: the caller guarantees AES-NI.
        unsafe { _mm_aesenclast_si128(self, k) }
    }
    #[inline(always)]
    unsafe fn clmul<const IMM: i32>(self, o: Self) -> Self {
        // SAFETY: the caller guarantees PCLMULQDQ.
        unsafe { _mm_clmulepi64_si128::<IMM>(self, o) }
    }
    #[inline(always)]
    unsafe fn swap_halves(self) -> Self {
        // SAFETY: SSE2 is part of x86_64.
        unsafe { _mm_shuffle_epi32::<0x4e>(self) }
    }
    #[inline(always)]
    unsafe fn shuffle(self, mask: Self) -> Self {
        // SAFETY: the caller guarantees SSSE3.
        unsafe { _mm_shuffle_epi8(self, mask) }
    }
    #[inline(always)]
    unsafe fn add32(self, o: Self) -> Self {
        // SAFETY: SSE2 is part of x86_64.
        unsafe { _mm_add_epi32(self, o) }
    }
    #[inline(always)]
    unsafe fn fold(self) -> __m128i {
        self
    }
}

impl Lanes for __m256i {
    const BLOCKS: usize = 2;
    #[inline(always)]
    unsafe fn zero() -> Self {
        // SAFETY: the caller guarantees AVX.
        unsafe { _mm256_setzero_si256() }
    }
    #[inline(always)]
    unsafe fn load(p: *const u8) -> Self {
        // SAFETY: the caller guarantees AVX and 32 readable bytes at `p`.
        unsafe { _mm256_loadu_si256(p.cast()) }
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut u8) {
        // SAFETY: the caller guarantees AVX and 32 writable bytes at `p`.
        unsafe { _mm256_storeu_si256(p.cast(), self) }
    }
    #[inline(always)]
    unsafe fn splat(b: __m128i) -> Self {
        // SAFETY: the caller guarantees AVX2.
        unsafe { _mm256_broadcastsi128_si256(b) }
    }
    #[inline(always)]
    unsafe fn lane0(b: __m128i) -> Self {
        // SAFETY: the caller guarantees AVX.
        unsafe { _mm256_zextsi128_si256(b) }
    }
    #[inline(always)]
    unsafe fn lane_index() -> Self {
        // SAFETY: the caller guarantees AVX.
        unsafe { _mm256_set_epi32(0, 0, 0, 1, 0, 0, 0, 0) }
    }
    #[inline(always)]
    unsafe fn xor(self, o: Self) -> Self {
        // SAFETY: the caller guarantees AVX2.
        unsafe { _mm256_xor_si256(self, o) }
    }
    #[inline(always)]
    unsafe fn aesenc(self, k: Self) -> Self {
        // SAFETY: the caller guarantees VAES.
        unsafe { _mm256_aesenc_epi128(self, k) }
    }
    #[inline(always)]
    unsafe fn aesenclast(self, k: Self) -> Self {
        // SAFETY: the caller guarantees VAES.
        unsafe { _mm256_aesenclast_epi128(self, k) }
    }
    #[inline(always)]
    unsafe fn clmul<const IMM: i32>(self, o: Self) -> Self {
        // SAFETY: the caller guarantees VPCLMULQDQ.
        unsafe { _mm256_clmulepi64_epi128::<IMM>(self, o) }
    }
    #[inline(always)]
    unsafe fn swap_halves(self) -> Self {
        // SAFETY: the caller guarantees AVX2.
        unsafe { _mm256_shuffle_epi32::<0x4e>(self) }
    }
    #[inline(always)]
    unsafe fn shuffle(self, mask: Self) -> Self {
        // SAFETY: the caller guarantees AVX2.
        unsafe { _mm256_shuffle_epi8(self, mask) }
    }
    #[inline(always)]
    unsafe fn add32(self, o: Self) -> Self {
        // SAFETY: the caller guarantees AVX2.
        unsafe { _mm256_add_epi32(self, o) }
    }
    #[inline(always)]
    unsafe fn fold(self) -> __m128i {
        // SAFETY: the caller guarantees AVX2.
        unsafe { _mm_xor_si128(_mm256_castsi256_si128(self), _mm256_extracti128_si256::<1>(self)) }
    }
}

impl Lanes for __m512i {
    const BLOCKS: usize = 4;
    #[inline(always)]
    unsafe fn zero() -> Self {
        // SAFETY: the caller guarantees AVX-512F.
        unsafe { _mm512_setzero_si512() }
    }
    #[inline(always)]
    unsafe fn load(p: *const u8) -> Self {
        // SAFETY: the caller guarantees AVX-512F and 64 readable bytes at `p`.
        unsafe { _mm512_loadu_si512(p.cast()) }
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut u8) {
        // SAFETY: the caller guarantees AVX-512F and 64 writable bytes at `p`.
        unsafe { _mm512_storeu_si512(p.cast(), self) }
    }
    #[inline(always)]
    unsafe fn splat(b: __m128i) -> Self {
        // SAFETY: the caller guarantees AVX-512F.
        unsafe { _mm512_broadcast_i32x4(b) }
    }
    #[inline(always)]
    unsafe fn lane0(b: __m128i) -> Self {
        // SAFETY: the caller guarantees AVX-512F.
        unsafe { _mm512_zextsi128_si512(b) }
    }
    #[inline(always)]
    unsafe fn lane_index() -> Self {
        // SAFETY: the caller guarantees AVX-512F.
        unsafe { _mm512_set_epi32(0, 0, 0, 3, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 0) }
    }
    #[inline(always)]
    unsafe fn xor(self, o: Self) -> Self {
        // SAFETY: the caller guarantees AVX-512F.
        unsafe { _mm512_xor_si512(self, o) }
    }
    #[inline(always)]
    unsafe fn xor3(self, a: Self, b: Self) -> Self {
        // SAFETY: the caller guarantees AVX-512F (VPTERNLOGD 0x96 = a ^ b ^ c).
        unsafe { _mm512_ternarylogic_epi32::<0x96>(self, a, b) }
    }
    #[inline(always)]
    unsafe fn aesenc(self, k: Self) -> Self {
        // SAFETY: the caller guarantees VAES and AVX-512F.
        unsafe { _mm512_aesenc_epi128(self, k) }
    }
    #[inline(always)]
    unsafe fn aesenclast(self, k: Self) -> Self {
        // SAFETY: the caller guarantees VAES and AVX-512F.
        unsafe { _mm512_aesenclast_epi128(self, k) }
    }
    #[inline(always)]
    unsafe fn clmul<const IMM: i32>(self, o: Self) -> Self {
        // SAFETY: the caller guarantees VPCLMULQDQ and AVX-512F.
        unsafe { _mm512_clmulepi64_epi128::<IMM>(self, o) }
    }
    #[inline(always)]
    unsafe fn swap_halves(self) -> Self {
        // SAFETY: the caller guarantees AVX-512F.
        unsafe { _mm512_shuffle_epi32::<0x4e>(self) }
    }
    #[inline(always)]
    unsafe fn shuffle(self, mask: Self) -> Self {
        // SAFETY: the caller guarantees AVX-512BW.
        unsafe { _mm512_shuffle_epi8(self, mask) }
    }
    #[inline(always)]
    unsafe fn add32(self, o: Self) -> Self {
        // SAFETY: the caller guarantees AVX-512F.
        unsafe { _mm512_add_epi32(self, o) }
    }
    #[inline(always)]
    unsafe fn fold(self) -> __m128i {
        // SAFETY: the caller guarantees AVX-512F.
        unsafe {
            let h = _mm256_xor_si256(_mm512_castsi512_si256(self), _mm512_extracti64x4_epi64::<1>(self));
            _mm_xor_si128(_mm256_castsi256_si128(h), _mm256_extracti128_si256::<1>(h))
        }
    }
}

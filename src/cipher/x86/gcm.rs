//! AES-GCM written once over [`Lanes`]: `V` is the register (1, 2 or 4 blocks), `NV` how many
//! registers of counters are in flight per iteration (a *chunk* is `NV * V::BLOCKS` blocks) and
//! `NR` the number of AES rounds.
//!
//! # The main loop
//!
//! Seal encrypts chunk `c` while hashing the ciphertext of chunk `c - 1` (already in the buffer):
//! the GHASH multiplications of register `g` sit between AES rounds `g` and `g + 1`, the reduction
//! after round `NV + 1`, so the carry-less multiplier and the AES unit work side by side. Open
//! hashes the ciphertext of the chunk it is decrypting (loaded before it is overwritten). A whole
//! chunk is hashed with one reduction: block `j` of a run of `k` blocks is multiplied by `H^(k-j)`
//! (precomputed in [`KeySchedule::pows`]) and the unreduced products summed.
//!
//! Lengths below one chunk (and the tail after the last whole chunk) go through a zero-padded
//! stack buffer, so no load or store ever leaves the caller's slice.
//!
//! Every function here is `#[inline(always)]` and must be called from a `#[target_feature]`
//! function that enables the instructions `V` uses; that is the whole safety contract.

use super::keys::{KeySchedule, MAX_POWERS};
use super::lanes::Lanes;
use core::arch::x86_64::*;

/// Bytes in the stack buffer used for tails: up to 32 chunk blocks (the largest chunk), the
/// length block and padding to a whole 4-block register.
const TAIL_BYTES: usize = 16 * (32 + 4);

/// Per-call state: round keys and constants broadcast to `V`.
pub(crate) struct Ctx<V: Lanes> {
    rk: [V; 15],
    poly: V,
    bswap: V,
}

#[inline(always)]
pub(crate) unsafe fn ctx<V: Lanes>(ks: &KeySchedule) -> Ctx<V> {
    // SAFETY: forwarded from the caller's guarantee of the CPU features.
    unsafe {
        let mut rk = [V::zero(); 15];
        for (d, s) in rk.iter_mut().zip(ks.rk.iter()) {
            *d = V::splat(*s);
        }
        Ctx { rk, poly: V::splat(ks.poly), bswap: V::splat(ks.bswap) }
    }
}

/// `acc` (GCM byte order) to the reflected form.
#[inline(always)]
pub(crate) unsafe fn acc_in(acc: &[u8; 16], ks: &KeySchedule) -> __m128i {
    // SAFETY: 16 readable bytes; SSSE3 guaranteed by the caller.
    unsafe { _mm_shuffle_epi8(_mm_loadu_si128(acc.as_ptr().cast()), ks.bswap) }
}

/// The reflected form back to GCM byte order.
#[inline(always)]
pub(crate) unsafe fn acc_out(x: __m128i, acc: &mut [u8; 16], ks: &KeySchedule) {
    // SAFETY: 16 writable bytes; SSSE3 guaranteed by the caller.
    unsafe { _mm_storeu_si128(acc.as_mut_ptr().cast(), _mm_shuffle_epi8(x, ks.bswap)) }
}

#[inline(always)]
unsafe fn mul_acc<V: Lanes>(d: V, p: V, lo: &mut V, mi: &mut V, hi: &mut V) {
    // SAFETY: forwarded from the caller's guarantee of the CPU features.
    unsafe {
        *lo = lo.xor(d.clmul::<0x00>(p));
        *mi = mi.xor3(d.clmul::<0x01>(p), d.clmul::<0x10>(p));
        *hi = hi.xor(d.clmul::<0x11>(p));
    }
}

/// Reduces lane-wise (see `keys` module docs) and folds the lanes into one block.
#[inline(always)]
unsafe fn reduce<V: Lanes>(lo: V, mi: V, hi: V, poly: V) -> __m128i {
    // SAFETY: forwarded from the caller's guarantee of the CPU features.
    unsafe {
        let t = poly.clmul::<0x01>(lo);
        let mi = mi.xor3(t, lo.swap_halves());
        let t = poly.clmul::<0x01>(mi);
        hi.xor3(t, mi.swap_halves()).fold()
    }
}

/// `(acc ^ b_0)·H^k ^ b_1·H^(k-1) ^ … ^ b_(k-1)·H` over the `k <= MAX_POWERS` blocks at `p`.
/// Reads `ceil(k / V::BLOCKS)` whole registers; blocks past `k` must be readable and zero.
#[inline(always)]
pub(crate) unsafe fn ghash_run<V: Lanes>(
    c: &Ctx<V>,
    ks: &KeySchedule,
    acc: __m128i,
    p: *const u8,
    k: usize,
) -> __m128i {
    debug_assert!(k <= MAX_POWERS);
    // SAFETY: the caller guarantees the reads at `p`; power loads stay inside `pows` (3 zero
    // entries follow H^1, and at most V::BLOCKS - 1 <= 3 lanes past the last block are read).
    unsafe {
        let base = ks.pows.as_ptr().add(MAX_POWERS - k).cast::<u8>();
        let (mut lo, mut mi, mut hi) = (V::zero(), V::zero(), V::zero());
        let regs = k.div_ceil(V::BLOCKS);
        let mut d = V::load(p).shuffle(c.bswap).xor(V::lane0(acc));
        for r in 0..regs {
            if r > 0 {
                d = V::load(p.add(16 * V::BLOCKS * r)).shuffle(c.bswap);
            }
            mul_acc(d, V::load(base.add(16 * V::BLOCKS * r)), &mut lo, &mut mi, &mut hi);
        }
        reduce(lo, mi, hi, c.poly)
    }
}

/// GHASH of `data`, its last partial block zero-padded.
#[inline(always)]
pub(crate) unsafe fn ghash<V: Lanes, const NV: usize>(
    c: &Ctx<V>,
    ks: &KeySchedule,
    mut acc: __m128i,
    data: &[u8],
) -> __m128i {
    let chunk = 16 * NV * V::BLOCKS;
    let mut chunks = data.chunks_exact(chunk);
    for ch in &mut chunks {
        // SAFETY: `ch` holds exactly NV whole registers.
        acc = unsafe { ghash_run(c, ks, acc, ch.as_ptr(), NV * V::BLOCKS) };
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut tmp = [0u8; TAIL_BYTES];
        tmp[..rest.len()].copy_from_slice(rest);
        // SAFETY: `tmp` is zero past `rest` and long enough for the rounded-up register count.
        acc = unsafe { ghash_run(c, ks, acc, tmp.as_ptr(), rest.len().div_ceil(16)) };
    }
    acc
}

/// Counter block `ctr` of `nonce` in reflected form, in every lane, plus the lane index.
#[inline(always)]
unsafe fn counters<V: Lanes>(c: &Ctx<V>, nonce: &[u8; 12], ctr: u32) -> V {
    let mut b = [0u8; 16];
    b[..12].copy_from_slice(nonce);
    b[12..].copy_from_slice(&ctr.to_be_bytes());
    // SAFETY: 16 readable bytes; features from the caller.
    unsafe { V::splat(_mm_loadu_si128(b.as_ptr().cast())).shuffle(c.bswap).add32(V::lane_index()) }
}

/// A chunk function: [`chunk`] instantiated behind a `#[target_feature]`, `#[inline(never)]`
/// wrapper by each backend. With `chunk` inlined straight into the loop, LLVM's scheduler ran out
/// of registers and serialised the AES chains one register after another (seen with objdump:
/// 14 dependent `vaesenc` per register, GHASH hoisted in front). Compiled apart, the round keys
/// come from memory and rounds and GHASH stay interleaved; thin LTO may inline the wrapper back,
/// and in the release build checked (2026-11-21) the loop stayed interleaved: 8 `vaesenc zmm`
/// per round with the `vpclmulqdq zmm` of the previous chunk between rounds.
pub(crate) type ChunkFn<V, const NV: usize> = unsafe fn(&Ctx<V>, &[V; NV], &mut V, V, *mut u8, *const u8, &mut __m128i);

/// `NV` registers of keystream for counters `*ctr ..`, advancing `*ctr`; XORs it into `NV`
/// registers at `io` (loads them first). With `GHASH`, hashes the `NV` registers at `prev`
/// between the rounds (`prev` may equal `io`: it is read before `io` is written).
#[inline(always)]
pub(crate) unsafe fn chunk<V: Lanes, const NV: usize, const NR: usize, const GHASH: bool>(
    c: &Ctx<V>,
    pw: &[V; NV],
    ctr: &mut V,
    inc: V,
    io: *mut u8,
    prev: *const u8,
    acc: &mut __m128i,
) {
    // SAFETY: the caller guarantees NV readable/writable registers at `io` (and readable at
    // `prev` with GHASH) and the CPU features.
    unsafe {
        let mut s = [V::zero(); NV];
        for x in s.iter_mut() {
            *x = ctr.shuffle(c.bswap).xor(c.rk[0]);
            *ctr = ctr.add32(inc);
        }
        let (mut lo, mut mi, mut hi) = (V::zero(), V::zero(), V::zero());
        for r in 1..NR {
            for x in s.iter_mut() {
                *x = x.aesenc(c.rk[r]);
            }
            if GHASH && r <= NV {
                let g = r - 1;
                let mut d = V::load(prev.add(16 * V::BLOCKS * g)).shuffle(c.bswap);
                if g == 0 {
                    d = d.xor(V::lane0(*acc));
                }
                mul_acc(d, pw[g], &mut lo, &mut mi, &mut hi);
            }
            if GHASH && r == NV + 1 {
                *acc = reduce(lo, mi, hi, c.poly);
            }
        }
        for (i, x) in s.iter().enumerate() {
            let p = io.add(16 * V::BLOCKS * i);
            x.aesenclast(c.rk[NR]).xor(V::load(p)).store(p);
        }
    }
}

/// XORs keystream for `M` registers into `buf` (which holds at least `M` registers).
#[inline(always)]
unsafe fn keystream<V: Lanes, const M: usize, const NR: usize>(c: &Ctx<V>, ctr: V, inc: V, buf: *mut u8) {
    // SAFETY: forwarded; `pw`/`prev` are unused without GHASH.
    unsafe {
        let pw = [V::zero(); M];
        let mut ctr = ctr;
        let mut a = _mm_setzero_si128();
        chunk::<V, M, NR, false>(c, &pw, &mut ctr, inc, buf, buf, &mut a);
    }
}

/// Encrypts (or decrypts: CTR is its own inverse) the `< 1 chunk` tail `buf` in `tmp`, sizing
/// the keystream batch to the tail.
#[inline(always)]
unsafe fn tail_ctr<V: Lanes, const NV: usize, const NR: usize>(
    c: &Ctx<V>,
    ctr: V,
    inc: V,
    tmp: &mut [u8; TAIL_BYTES],
    len: usize,
) {
    let regs = len.div_ceil(16 * V::BLOCKS);
    let p = tmp.as_mut_ptr();
    // SAFETY: `tmp` holds 36 blocks >= NV * V::BLOCKS + 4 (NV * BLOCKS <= 32), so every batch fits.
    unsafe {
        match regs {
            0 => {}
            1 => keystream::<V, 1, NR>(c, ctr, inc, p),
            2 => keystream::<V, 2, NR>(c, ctr, inc, p),
            3 | 4 if NV >= 4 => keystream::<V, 4, NR>(c, ctr, inc, p),
            _ => keystream::<V, NV, NR>(c, ctr, inc, p),
        }
    }
}

/// How far ahead of the chunk being processed [`prefetch_ahead`] asks for the buffer's lines.
///
/// A buffer larger than the caches streams from memory, and with two threads memory sets the
/// pace. On this Zen 5 guest, two threads sealing 64 MiB in place had a median of 27 GB/s with
/// the hardware prefetchers alone and 35–37 GB/s with software prefetches 8 KiB ahead (4 KiB and
/// 16 KiB: the same within noise). One thread: ~20.5 GB/s either way, and small buffers are
/// unchanged. Figures: `docs/benchmarks.md`, "Cipher".
pub(crate) const PREFETCH_AHEAD: usize = 8 << 10;

/// Prefetches the `bytes` bytes `PREFETCH_AHEAD` past offset `at` of the `len`-byte buffer at
/// `p`, if they lie inside it.
#[inline(always)]
unsafe fn prefetch_ahead(len: usize, p: *const u8, at: usize, bytes: usize) {
    if at + PREFETCH_AHEAD + bytes <= len {
        for l in (0..bytes).step_by(64) {
            // SAFETY: the address is inside the buffer (checked above); a prefetch is only a hint
            // and never faults anyway.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(p.add(at + PREFETCH_AHEAD + l).cast()) };
        }
    }
}

/// Sealing (`OPEN = false`) or opening of `buf` with counters from `ctr`, absorbing the
/// ciphertext into `acc`, then `lens` if given.
#[inline(always)]
#[allow(clippy::too_many_arguments)] // one call site per backend; a struct would only rename them
pub(crate) unsafe fn crypt<V: Lanes, const NV: usize, const NR: usize, const OPEN: bool>(
    c: &Ctx<V>,
    ks: &KeySchedule,
    nonce: &[u8; 12],
    ctr: u32,
    mut acc: __m128i,
    buf: &mut [u8],
    lens: Option<&[u8; 16]>,
    plain_chunk: ChunkFn<V, NV>,
    ghash_chunk: ChunkFn<V, NV>,
) -> __m128i {
    let n = NV * V::BLOCKS;
    let chunk_bytes = 16 * n;
    let chunks = buf.len() / chunk_bytes;
    // SAFETY: every pointer below stays inside `buf` (whole chunks) or `tmp`; features are the
    // caller's guarantee.
    unsafe {
        let mut pw = [V::zero(); NV];
        let base = ks.pows.as_ptr().add(MAX_POWERS - n).cast::<u8>();
        for (g, p) in pw.iter_mut().enumerate() {
            *p = V::load(base.add(16 * V::BLOCKS * g));
        }
        let inc = V::splat(_mm_set_epi32(0, 0, 0, V::BLOCKS as i32));
        let mut ctrv = counters::<V>(c, nonce, ctr);
        let p = buf.as_mut_ptr();
        if OPEN {
            for i in 0..chunks {
                let io = p.add(i * chunk_bytes);
                prefetch_ahead(buf.len(), p, i * chunk_bytes, chunk_bytes);
                ghash_chunk(c, &pw, &mut ctrv, inc, io, io, &mut acc);
            }
        } else if chunks > 0 {
            plain_chunk(c, &pw, &mut ctrv, inc, p, p, &mut acc);
            for i in 1..chunks {
                let io = p.add(i * chunk_bytes);
                prefetch_ahead(buf.len(), p, i * chunk_bytes, chunk_bytes);
                ghash_chunk(c, &pw, &mut ctrv, inc, io, io.sub(chunk_bytes), &mut acc);
            }
            acc = ghash_run(c, ks, acc, p.add((chunks - 1) * chunk_bytes), n);
        }
        let done = chunks * chunk_bytes;
        let rest = buf.len() - done;
        if rest == 0 && lens.is_none() {
            return acc;
        }
        let mut tmp = [0u8; TAIL_BYTES];
        tmp[..rest].copy_from_slice(&buf[done..]);
        let mut k = rest.div_ceil(16);
        if OPEN {
            if let Some(l) = lens {
                tmp[16 * k..16 * k + 16].copy_from_slice(l);
                k += 1;
            }
            if k > 0 {
                acc = ghash_run(c, ks, acc, tmp.as_ptr(), k);
            }
            tail_ctr::<V, NV, NR>(c, ctrv, inc, &mut tmp, rest);
            buf[done..].copy_from_slice(&tmp[..rest]);
        } else {
            tail_ctr::<V, NV, NR>(c, ctrv, inc, &mut tmp, rest);
            buf[done..].copy_from_slice(&tmp[..rest]);
            tmp[rest..].fill(0);
            if let Some(l) = lens {
                tmp[16 * k..16 * k + 16].copy_from_slice(l);
                k += 1;
            }
            if k > 0 {
                acc = ghash_run(c, ks, acc, tmp.as_ptr(), k);
            }
        }
        acc
    }
}

/// `acc · H^m` (square and multiply over the precomputed `H'`; `m` is public).
#[inline(always)]
pub(crate) unsafe fn mul_h_pow(ks: &KeySchedule, mut acc: __m128i, mut m: u64) -> __m128i {
    // SAFETY: PCLMULQDQ guaranteed by the caller.
    unsafe {
        let mut base = ks.pows[MAX_POWERS - 1];
        while m > 0 {
            if m & 1 == 1 {
                acc = super::keys::mul(acc, base, ks.poly);
            }
            m >>= 1;
            if m > 0 {
                base = super::keys::mul(base, base, ks.poly);
            }
        }
        acc
    }
}

/// AES encryption of one block.
#[inline(always)]
pub(crate) unsafe fn encrypt_block<const NR: usize>(ks: &KeySchedule, block: &mut [u8; 16]) {
    // SAFETY: 16 bytes in/out; AES-NI guaranteed by the caller.
    unsafe {
        let mut s = _mm_xor_si128(_mm_loadu_si128(block.as_ptr().cast()), ks.rk[0]);
        for k in &ks.rk[1..NR] {
            s = _mm_aesenc_si128(s, *k);
        }
        _mm_storeu_si128(block.as_mut_ptr().cast(), _mm_aesenclast_si128(s, ks.rk[NR]));
    }
}

//! Variable-time multiscalar multiplication `Σ [k_i] P_i` on edwards25519 for batch
//! verification: Pippenger's bucket method with signed digits, eight windows at once.
//!
//! Each scalar is cut into signed `c`-bit digits (`|digit| ≤ 2^(c−1)`). The eight lanes of a
//! vector hold eight *consecutive windows* of the same point: one mixed addition adds `P_i` to
//! bucket `|digit_w|` of window `w` (negated where the digit is negative) for all eight windows,
//! so lanes never contend for a bucket, and the point is the same in every lane (broadcast). Each
//! lane's buckets are contiguous 192-byte slots (bucket 0 takes the zero digits and is never
//! read): the eight slots of an addition are loaded as rows and turned into limb vectors by
//! three 8×8 transposes, and written back the same way, which costs about a third of what
//! 20 gathers and 20 scatters do on this CPU. The buckets of each group of eight windows are
//! then summed in the usual running-sum order, eight windows in parallel, and the window sums
//! are combined with `c` doublings between them.
//!
//! A scalar of `bits` bits has `⌈(bits + 1)/c⌉` windows (the top one absorbs the last carry):
//! the batch coefficients `z_i` are 127-bit, so their points take part in half as many window
//! groups as the 253-bit ones. The window width is chosen per call from a cost model (additions
//! per point and group, plus `2^c` additions per group to sum the buckets).

use super::decode::Point;
use super::field::{canonical, Fe, Limbs};
use super::point::{Extended, Niels};
use crate::sigverify::cpu::IfmaToken;
use core::arch::x86_64::*;

/// A term of the sum: a decoded point and its scalar (32 little-endian bytes, any value below
/// 2^256: bit 255 may be set).
#[derive(Clone, Copy)]
pub(crate) struct Term<'a> {
    pub(crate) point: &'a Point,
    pub(crate) scalar: [u8; 32],
}

/// The bit length of a little-endian scalar.
fn bit_length(k: &[u8; 32]) -> u32 {
    k.iter().rposition(|&b| b != 0).map_or(0, |i| 8 * i as u32 + (8 - k[i].leading_zeros()))
}

/// Words per bucket: four coordinates of five limbs, padded to three 64-byte rows.
pub(super) const SLOT: usize = 24;

pub(super) fn windows(bits: u32, c: usize) -> usize {
    (bits as usize + 1).div_ceil(c)
}

/// The window width minimising the cost model for scalars of `bits` bits.
fn window_bits(bits: &[u32]) -> usize {
    // The cost model over a histogram of the bit lengths: a division per term and candidate
    // width costs ~70 µs for a batch of 1024, as much as computing all the digits.
    let mut count = [0usize; 257];
    for &b in bits {
        count[(b as usize).min(256)] += 1;
    }
    let max_bits = count.iter().rposition(|&n| n > 0).unwrap_or(1).max(1) as u32;
    let cost = |c: usize| {
        let adds: usize =
            count.iter().enumerate().filter(|(_, &n)| n > 0).map(|(b, &n)| n * windows(b as u32, c).div_ceil(8)).sum();
        adds + windows(max_bits, c).div_ceil(8) * (1 << c)
    };
    (4..=8).min_by_key(|&c| cost(c)).unwrap_or(8)
}

/// Signed radix-2^c digits of `k < 2^bits`, least significant first, into `out`: every digit's
/// magnitude is at most `2^(c−1)` (the multiscalar multiplication indexes buckets with it).
pub(super) fn signed_digits(k: &[u8; 32], bits: u32, c: usize, out: &mut [i16]) {
    assert!(bits >= bit_length(k) && (4..=8).contains(&c), "scalar longer than {bits} bits or window {c}");
    let half = 1i64 << (c - 1);
    let w_count = windows(bits, c);
    assert!(w_count <= out.len(), "{w_count} windows do not fit");
    // Two zero limbs above the scalar: the top window of a 256-bit scalar starts at bit 256 when
    // c divides 256 (c = 4, 8), and reads the limb above its own.
    let mut limbs = [0u64; 6];
    for (i, l) in limbs.iter_mut().take(4).enumerate() {
        let mut b = [0u8; 8];
        b.copy_from_slice(&k[8 * i..8 * i + 8]);
        *l = u64::from_le_bytes(b);
    }
    let mask = (1u64 << c) - 1;
    let mut carry = 0i64;
    for (w, d) in out.iter_mut().enumerate().take(w_count) {
        let pos = w * c;
        let (limb, shift) = (pos / 64, pos % 64);
        // `limbs[4] = limbs[5] = 0` cover windows that run past bit 255 (`pos ≤ 256`, so
        // `limb + 1 ≤ 5`); `(x << 1) << (63 − shift)` is `x << (64 − shift)` without the
        // undefined shift by 64.
        let word = (limbs[limb] >> shift) | ((limbs[limb + 1] << 1) << (63 - shift));
        let v = (word & mask) as i64 + carry;
        // Branch-free: the digits of random scalars are above half the window half the time.
        // The last window holds at most c − 1 bits of `k` (`w_count = ⌈(bits + 1)/c⌉`), so
        // v ≤ 2^(c−1) − 1 + 1 = 2^(c−1) there: no carry out.
        carry = i64::from(v > half) & i64::from(w + 1 < w_count);
        *d = (v - (carry << c)) as i16;
    }
    for d in out.iter_mut().skip(w_count) {
        *d = 0;
    }
}

thread_local! {
    /// Scratch memory reused across calls on this thread: fresh large allocations are
    /// page-faulted in on every call, and page faults of two threads serialize in the kernel.
    static SCRATCH: core::cell::RefCell<(Vec<i16>, Vec<u64>)> = const { core::cell::RefCell::new((Vec::new(), Vec::new())) };
}

/// The window sums `S_w = Σ_i digit_w(k_i) P_i` of one multiscalar multiplication, so that
/// `Σ [k_i] P_i = Σ_w 2^(c w) S_w`.
pub(crate) struct WindowSums {
    c: usize,
    sums: Vec<[Limbs; 4]>,
}

/// The window sums of `Σ [k_i] P_i`, on this thread.
#[cfg(test)]
pub(crate) fn window_sums(cpu: IfmaToken, terms: &[Term]) -> WindowSums {
    window_sums_threads(cpu, terms, 1)
}

/// Below this many terms a multiscalar multiplication stays on one thread.
const PARALLEL_MIN: usize = 256;

/// The window sums of `Σ [k_i] P_i`, the window groups divided among up to `threads` threads.
///
/// Each thread runs the bucket method over every point for its window groups (balanced by
/// their additions: the 127-bit coefficients leave the upper groups with half the points), so
/// the cost per point stays that of one thread; splitting the points instead would give each
/// thread its own bucket sums and window combination, which do not shrink with the points.
pub(crate) fn window_sums_threads(_cpu: IfmaToken, terms: &[Term], threads: usize) -> WindowSums {
    let threads = if terms.len() < PARALLEL_MIN { 1 } else { threads.max(1) };
    let scratch = SCRATCH.with(|s| core::mem::take(&mut s.borrow_mut().0));
    let plan = Plan::new(terms, threads, scratch);
    let groups = plan.groups;
    let work = |g: usize| plan.term_groups.iter().filter(|&&n| usize::from(n) > g).count() + (1 << plan.c);
    let mut parts: Vec<Vec<usize>> = vec![Vec::new(); threads.clamp(1, groups.max(1))];
    if threads < 2 {
        parts = vec![(0..groups).collect()];
    } else {
        // Largest first, each to the least loaded thread.
        let mut order: Vec<usize> = (0..groups).collect();
        order.sort_by_key(|&g| std::cmp::Reverse(work(g)));
        let mut load = vec![0usize; parts.len()];
        for g in order {
            let t = (0..parts.len()).min_by_key(|&t| load[t]).unwrap_or(0);
            load[t] += work(g);
            parts[t].push(g);
        }
    }
    let done = super::super::on_threads(parts, threads, |part| {
        // SAFETY: the token proves this CPU has AVX-512F/DQ/IFMA, everything `group_sums` is
        // compiled for (all threads run on the same CPU).
        part.into_iter().map(|g| (g, unsafe { group_sums(&plan, terms, g) })).collect::<Vec<_>>()
    });
    let mut sums = vec![[[0u64; 5]; 4]; 8 * groups];
    for (g, s) in done.into_iter().flatten() {
        sums[8 * g..8 * g + 8].copy_from_slice(&s);
    }
    let c = plan.c;
    SCRATCH.with(|s| s.borrow_mut().0 = plan.digits);
    WindowSums { c, sums }
}

/// The digits of every scalar and the window layout of one multiscalar multiplication.
struct Plan {
    c: usize,
    /// How many window groups each scalar takes part in (the lower ones).
    term_groups: Vec<u8>,
    /// Window groups of eight.
    groups: usize,
    /// Digits per scalar (`8 · groups`), scalar `i` at `digits[i · stride..]`.
    stride: usize,
    digits: Vec<i16>,
}

impl Plan {
    /// The plan for `terms`, its digits computed on up to `threads` threads into `digits`
    /// (resized; scratch memory of the calling thread).
    fn new(terms: &[Term], threads: usize, mut digits: Vec<i16>) -> Plan {
        let bits: Vec<u32> = terms.iter().map(|t| bit_length(&t.scalar)).collect();
        let c = window_bits(&bits);
        let max_bits = bits.iter().copied().max().unwrap_or(0);
        let groups = if terms.is_empty() { 0 } else { windows(max_bits, c).div_ceil(8) };
        // At most ⌈(256 + 1)/4/8⌉ = 9 groups: fits a byte.
        let term_groups: Vec<u8> = bits.iter().map(|&b| windows(b, c).div_ceil(8) as u8).collect();
        let stride = 8 * groups;
        digits.resize(terms.len() * stride, 0);
        if stride > 0 {
            let per = terms.len().div_ceil(threads.max(1)).max(PARALLEL_MIN / 2);
            let parts: Vec<(&[Term], &[u32], &mut [i16])> = terms
                .chunks(per)
                .zip(bits.chunks(per))
                .zip(digits.chunks_mut(per * stride))
                .map(|((t, b), d)| (t, b, d))
                .collect();
            super::super::on_threads(parts, threads, |(t, b, d)| {
                for ((t, &b), d) in t.iter().zip(b).zip(d.chunks_mut(stride)) {
                    signed_digits(&t.scalar, b, c, d);
                }
            });
        }
        Plan { c, term_groups, groups, stride, digits }
    }
}

/// The sums of window group `g` (windows `8g..8g+8`), one per lane.
#[target_feature(enable = "avx512f,avx512ifma,avx512dq")]
fn group_sums(plan: &Plan, terms: &[Term], g: usize) -> [[Limbs; 4]; 8] {
    let buckets = (1usize << (plan.c - 1)) + 1;
    let mut store = SCRATCH.with(|s| core::mem::take(&mut s.borrow_mut().1));
    store.resize(buckets * SLOT * 8, 0);
    reset(&mut store);
    for (i, t) in terms.iter().enumerate() {
        if usize::from(plan.term_groups[i]) > g {
            let at = i * plan.stride + 8 * g;
            accumulate(&mut store, buckets, t.point, &plan.digits[at..at + 8]);
        }
    }
    let sums = sum_buckets(&store, buckets);
    SCRATCH.with(|s| s.borrow_mut().1 = store);
    sums
}

/// Whether `[8] Σ [k_i] P_i` is the identity: the ZIP-215 batch equation.
#[cfg(test)]
pub(crate) fn cofactor_sum_is_identity(cpu: IfmaToken, terms: &[Term]) -> bool {
    cofactor_identity_each(cpu, &[window_sums(cpu, terms)]).first().copied().unwrap_or(false)
}

/// For each set of window sums, whether `[8] Σ_w 2^(c w) S_w` is the identity.
///
/// Combining the windows takes about 253 doublings in one dependency chain, whatever `c`: for
/// the small sets a failed batch is searched with, that chain is most of the cost. Up to eight
/// sets of the same shape share it here, one per lane.
pub(crate) fn cofactor_identity_each(_cpu: IfmaToken, sets: &[WindowSums]) -> Vec<bool> {
    let mut out = Vec::with_capacity(sets.len());
    let mut start = 0;
    while start < sets.len() {
        let shape = |s: &WindowSums| (s.c, s.sums.len());
        let mut end = start + 1;
        while end < sets.len() && end - start < 8 && shape(&sets[end]) == shape(&sets[start]) {
            end += 1;
        }
        // SAFETY: the token proves this CPU has AVX-512F/DQ/IFMA, everything `combine8` is
        // compiled for.
        let (v, _) = unsafe { combine8(&sets[start..end]) };
        out.extend_from_slice(&v[..end - start]);
        start = end;
    }
    out
}

/// Whether `[8] Σ_w 2^(c w) S_w` is the identity, and the sum, for up to eight sets of the same
/// shape (lane `l` = set `l`; missing lanes repeat set 0).
#[target_feature(enable = "avx512f,avx512ifma,avx512dq")]
fn combine8(sets: &[WindowSums]) -> ([bool; 8], [[Limbs; 4]; 8]) {
    let set = |l: usize| sets.get(l).unwrap_or(&sets[0]);
    let c = sets[0].c;
    let mut acc = Extended::identity();
    for w in (0..sets[0].sums.len()).rev() {
        let coord = |k: usize| Fe::load(&core::array::from_fn(|l| set(l).sums[w][k]));
        acc = acc.double_k(c).add(&Extended { x: coord(0), y: coord(1), z: coord(2), t: coord(3) });
    }
    let (sx, sy, sz, st) = (acc.x.store(), acc.y.store(), acc.z.store(), acc.t.store());
    let acc = acc.double_k(3);
    // The same test as `single::is_identity`, written out: calling that here made a 1 %-invalid
    // Ed25519 batch 4–7 % slower (criterion, three and four runs), through inlining elsewhere.
    let (x, y, z) = (acc.x.store(), acc.y.store(), acc.z.store());
    (
        core::array::from_fn(|l| canonical(&x[l]) == [0; 4] && canonical(&y[l]) == canonical(&z[l])),
        core::array::from_fn(|l| [sx[l], sy[l], sz[l], st[l]]),
    )
}

/// A sum `Σ [k_i] P_i` kept as a point (extended coordinates), for [`cofactor_total_is_identity`].
pub(crate) struct Total([Limbs; 4]);

/// Whether `[8] Σ_w 2^(c w) S_w` is the identity, and that sum.
pub(crate) fn cofactor_identity_with_total(_cpu: IfmaToken, set: &WindowSums) -> (bool, Total) {
    // SAFETY: the token proves this CPU has AVX-512F/DQ/IFMA, everything `combine8` is
    // compiled for.
    let (holds, totals) = unsafe { combine8(core::slice::from_ref(set)) };
    (holds[0], Total(totals[0]))
}

/// Whether `[8](total + Σ_sets Σ_w 2^(c w) S_w)` is the identity (sets of any shape, one Horner
/// chain each, in lane 0).
pub(crate) fn cofactor_total_is_identity(_cpu: IfmaToken, total: &Total, sets: &[&WindowSums]) -> bool {
    // SAFETY: the token proves this CPU has AVX-512F/DQ/IFMA, everything `total_is_identity`
    // is compiled for.
    unsafe { total_is_identity(total, sets) }
}

#[target_feature(enable = "avx512f,avx512ifma,avx512dq")]
fn total_is_identity(total: &Total, sets: &[&WindowSums]) -> bool {
    let mut sum = splat_point(&total.0);
    for set in sets {
        let mut acc = Extended::identity();
        for s in set.sums.iter().rev() {
            acc = acc.double_k(set.c).add(&splat_point(s));
        }
        sum = sum.add(&acc);
    }
    let acc = sum.double_k(3);
    let (x, y, z) = (acc.x.store(), acc.y.store(), acc.z.store());
    canonical(&x[0]) == [0; 4] && canonical(&y[0]) == canonical(&z[0])
}

/// The canonical encoding of `Σ [k_i] P_i` (for the tests).
#[cfg(test)]
pub(crate) fn sum_compressed(cpu: IfmaToken, terms: &[Term]) -> [u8; 32] {
    let ws = window_sums(cpu, terms);
    // SAFETY: the token proves this CPU has AVX-512F/DQ/IFMA.
    let (x, y) = unsafe {
        let mut acc = Extended::identity();
        for s in ws.sums.iter().rev() {
            acc = acc.double_k(ws.c).add(&splat_point(s));
        }
        let zinv = acc.z.invert();
        (acc.x.mul(&zinv).store()[0], acc.y.mul(&zinv).store()[0])
    };
    let mut b = super::field::to_bytes(&y);
    b[31] |= ((canonical(&x)[0] & 1) as u8) << 7;
    b
}

#[inline]
#[target_feature(enable = "avx512f,avx512ifma,avx512dq")]
fn splat_point(s: &[Limbs; 4]) -> Extended {
    Extended { x: Fe::splat(&s[0]), y: Fe::splat(&s[1]), z: Fe::splat(&s[2]), t: Fe::splat(&s[3]) }
}

/// Sets every bucket to the identity `(0 : 1 : 1 : 0)`.
fn reset(store: &mut [u64]) {
    for slot in store.chunks_mut(SLOT) {
        slot.fill(0);
        // Limb 0 of Y and of Z.
        slot[5] = 1;
        slot[10] = 1;
    }
}

/// Transposes an 8×8 matrix of 64-bit words held as eight row vectors.
#[inline]
#[target_feature(enable = "avx512f,avx512ifma,avx512dq")]
fn transpose8(r: [__m512i; 8]) -> [__m512i; 8] {
    let t: [__m512i; 8] = core::array::from_fn(|i| {
        let (a, b) = (r[i & !1], r[i | 1]);
        if i % 2 == 0 {
            _mm512_unpacklo_epi64(a, b)
        } else {
            _mm512_unpackhi_epi64(a, b)
        }
    });
    // t0 = (r0[0] r1[0] r0[2] r1[2] r0[4] r1[4] r0[6] r1[6]), t1 the odd columns, and so on.
    let quads_lo = _mm512_set_epi64(13, 12, 5, 4, 9, 8, 1, 0);
    let quads_hi = _mm512_set_epi64(15, 14, 7, 6, 11, 10, 3, 2);
    let q = |x: __m512i, y: __m512i, idx: __m512i| _mm512_permutex2var_epi64(x, idx, y);
    // s0 = columns 0 and 4 of rows 0..4, s1 = columns 2 and 6, s2 = 1 and 5, s3 = 3 and 7;
    // s4..s7 the same for rows 4..8.
    let s = [
        q(t[0], t[2], quads_lo),
        q(t[0], t[2], quads_hi),
        q(t[1], t[3], quads_lo),
        q(t[1], t[3], quads_hi),
        q(t[4], t[6], quads_lo),
        q(t[4], t[6], quads_hi),
        q(t[5], t[7], quads_lo),
        q(t[5], t[7], quads_hi),
    ];
    let lo = _mm512_set_epi64(11, 10, 9, 8, 3, 2, 1, 0);
    let hi = _mm512_set_epi64(15, 14, 13, 12, 7, 6, 5, 4);
    [
        q(s[0], s[4], lo),
        q(s[2], s[6], lo),
        q(s[1], s[5], lo),
        q(s[3], s[7], lo),
        q(s[0], s[4], hi),
        q(s[2], s[6], hi),
        q(s[1], s[5], hi),
        q(s[3], s[7], hi),
    ]
}

/// The buckets at `offsets[l]` (one per lane) as eight points: lane `l` of limb `k` is word
/// `k` of lane `l`'s slot. Slots are rows; three 8×8 transposes make them limb vectors.
#[inline]
#[target_feature(enable = "avx512f,avx512ifma,avx512dq")]
pub(super) fn load_slots(store: &[u64], offsets: &[usize; 8]) -> Extended {
    let mut limbs = [_mm512_setzero_si512(); SLOT];
    for block in 0..SLOT / 8 {
        let rows: [__m512i; 8] = core::array::from_fn(|l| {
            let at = offsets[l] + 8 * block;
            // SAFETY: the slice is 8 words (bounds-checked); unaligned loads are allowed.
            unsafe { _mm512_loadu_si512(store[at..at + 8].as_ptr().cast()) }
        });
        limbs[8 * block..8 * block + 8].copy_from_slice(&transpose8(rows));
    }
    let fe = |c: usize| Fe([limbs[5 * c], limbs[5 * c + 1], limbs[5 * c + 2], limbs[5 * c + 3], limbs[5 * c + 4]]);
    Extended { x: fe(0), y: fe(1), z: fe(2), t: fe(3) }
}

/// Writes lane `l` of `p` to the slot at `offsets[l]` (the inverse of [`load_slots`]).
#[inline]
#[target_feature(enable = "avx512f,avx512ifma,avx512dq")]
pub(super) fn store_slots(store: &mut [u64], offsets: &[usize; 8], p: &Extended) {
    let mut limbs = [_mm512_setzero_si512(); SLOT];
    for (c, coord) in [p.x, p.y, p.z, p.t].iter().enumerate() {
        limbs[5 * c..5 * c + 5].copy_from_slice(&coord.0);
    }
    for block in 0..SLOT / 8 {
        let cols: [__m512i; 8] = core::array::from_fn(|k| limbs[8 * block + k]);
        for (l, row) in transpose8(cols).iter().enumerate() {
            let at = offsets[l] + 8 * block;
            // SAFETY: the slice is 8 words (bounds-checked); unaligned stores are allowed.
            unsafe { _mm512_storeu_si512(store[at..at + 8].as_mut_ptr().cast(), *row) };
        }
    }
}

/// Adds `±p` to bucket `|d[l]|` of window lane `l`, for the eight lanes (`buckets` per lane).
#[inline]
#[target_feature(enable = "avx512f,avx512ifma,avx512dq")]
fn accumulate(store: &mut [u64], buckets: usize, p: &Point, d: &[i16]) {
    // Lane l's bucket b is the slot at (l·buckets + b)·SLOT; |d| < buckets (`signed_digits`),
    // and the slices in `load_slots`/`store_slots` are bounds-checked regardless.
    let offsets: [usize; 8] = core::array::from_fn(|l| (l * buckets + usize::from(d[l].unsigned_abs())) * SLOT);
    let mut neg: __mmask8 = 0;
    for (l, x) in d.iter().enumerate().take(8) {
        neg |= u8::from(*x < 0) << l;
    }
    let bucket = load_slots(store, &offsets);
    let q = Niels { y_plus_x: Fe::splat(&p.limbs(0)), y_minus_x: Fe::splat(&p.limbs(1)), xy2d: Fe::splat(&p.limbs(2)) };
    let q = q.conditional_negate(&Fe::splat(&p.limbs(3)), neg);
    store_slots(store, &offsets, &bucket.add_niels(&q));
}

/// `Σ_b b·B_b` for the eight windows of the group in `store`, per lane.
#[target_feature(enable = "avx512f,avx512ifma,avx512dq")]
fn sum_buckets(store: &[u64], buckets: usize) -> [[Limbs; 4]; 8] {
    let bucket = |b: usize| load_slots(store, &core::array::from_fn(|l| (l * buckets + b) * SLOT));
    // Running sums from the top bucket down (buckets ≥ 9: c ≥ 4).
    let mut running = bucket(buckets - 1);
    let mut total = running;
    for b in (1..buckets - 1).rev() {
        running = running.add(&bucket(b));
        total = total.add(&running);
    }
    let (x, y, z, t) = (total.x.store(), total.y.store(), total.z.store(), total.t.store());
    core::array::from_fn(|l| [x[l], y[l], z[l], t[l]])
}

#[cfg(test)]
mod tests;

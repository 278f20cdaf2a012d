//! Per-lane tables of small multiples for Straus's method ([`super::single`], [`super::sums`]).
//!
//! A table holds `[0..=16]·P_l` for eight points `P_l`, one per lane, as [`ProjectiveNiels`];
//! a scalar is cut into signed radix-2^5 digits (`|d| ≤ 16`, [`DIGITS`] of them below 2^253),
//! and a lookup returns entry `|d_l|` per lane, negated where `d_l < 0`. The entries are stored
//! row-wise, each lane's entries contiguous, in the slot layout of [`super::msm`]'s buckets: a
//! lookup loads the eight lanes' entries as rows and transposes them into limb vectors. The
//! alternative, selecting among every entry with lane masks, reads the whole table per lookup;
//! with radix-16 tables it took a third of the time of the plain sums.

use super::decode::Point;
use super::msm::{load_slots, signed_digits, store_slots, windows, SLOT};
use super::point::{Extended, ProjectiveNiels};
use super::single::{extended, niels};
use core::arch::x86_64::__mmask8;

/// Window width: bits per digit, so doublings per digit in Straus's method.
pub(super) const C: usize = 5;
/// Entries per lane: `0..=2^(C−1)` times the point.
const ENTRIES: usize = (1 << (C - 1)) + 1;
/// Digits of a scalar below 2^253.
pub(super) const DIGITS: usize = (253usize + 1).div_ceil(C);
/// Words of one table.
pub(super) const WORDS: usize = 8 * ENTRIES * SLOT;

/// Signed digits of a scalar below 2^253 (little-endian bytes), least significant first.
pub(super) fn digits(k: &[u8; 32], out: &mut [i16; DIGITS]) {
    debug_assert_eq!(windows(253, C), DIGITS);
    signed_digits(k, 253, C, out);
}

/// The slot of entry `e`, lane `l`.
fn slot(l: usize, e: usize) -> usize {
    (l * ENTRIES + e) * SLOT
}

/// Writes the table of `points` (affine, one per lane) into `table` (at least [`WORDS`] long).
#[target_feature(enable = "avx512f,avx512ifma,avx512dq")]
pub(super) fn store(table: &mut [u64], points: &[&Point; 8]) {
    let p = niels(points);
    let row = |pn: ProjectiveNiels| Extended { x: pn.y_plus_x, y: pn.y_minus_x, z: pn.z, t: pn.t2d };
    let offsets = |e: usize| core::array::from_fn(|l| slot(l, e));
    store_slots(table, &offsets(0), &row(ProjectiveNiels::identity()));
    let mut acc = extended(&p);
    store_slots(table, &offsets(1), &row(acc.projective_niels()));
    for e in 2..ENTRIES {
        acc = acc.add_niels(&p);
        store_slots(table, &offsets(e), &row(acc.projective_niels()));
    }
}

/// Entry `|d_l|` per lane of `table`, negated where `d_l < 0`, for `d_l = digits[l][w]`.
#[inline]
#[target_feature(enable = "avx512f,avx512ifma,avx512dq")]
pub(super) fn lookup(table: &[u64], digits: &[[i16; DIGITS]; 8], w: usize) -> ProjectiveNiels {
    let offsets = core::array::from_fn(|l| slot(l, usize::from(digits[l][w].unsigned_abs())));
    let mut neg: __mmask8 = 0;
    for (l, d) in digits.iter().enumerate() {
        neg |= u8::from(d[w] < 0) << l;
    }
    let e = load_slots(table, &offsets);
    ProjectiveNiels { y_plus_x: e.x, y_minus_x: e.y, z: e.z, t2d: e.t }.conditional_negate(neg)
}

/// The table of the base point `B` in every lane, built once per process.
#[target_feature(enable = "avx512f,avx512ifma,avx512dq")]
pub(super) fn basepoint() -> &'static [u64] {
    static TABLE: std::sync::OnceLock<Vec<u64>> = std::sync::OnceLock::new();
    if let Some(t) = TABLE.get() {
        return t;
    }
    let encoding = curve25519_dalek::constants::ED25519_BASEPOINT_COMPRESSED.to_bytes();
    let b = super::decode::decode_features(&[encoding]).pop().flatten().expect("the base point decodes");
    let mut t = vec![0; WORDS];
    store(&mut t, &[&b; 8]);
    TABLE.get_or_init(|| t)
}

thread_local! {
    /// Table memory reused across calls on this thread (~200 KiB for eight sets of eight items):
    /// fresh allocations of that size are page-faulted in on every call.
    static SCRATCH: core::cell::RefCell<Vec<u64>> = const { core::cell::RefCell::new(Vec::new()) };
}

/// This thread's scratch memory, sized for `tables` tables; hand it back with [`put_scratch`].
pub(super) fn take_scratch(tables: usize) -> Vec<u64> {
    let mut scratch = SCRATCH.with(|s| core::mem::take(&mut *s.borrow_mut()));
    scratch.resize(tables * WORDS, 0);
    scratch
}

/// Returns scratch memory taken with [`take_scratch`], for the next call on this thread.
pub(super) fn put_scratch(scratch: Vec<u64>) {
    SCRATCH.with(|s| *s.borrow_mut() = scratch);
}

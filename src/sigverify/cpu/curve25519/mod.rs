//! Our own edwards25519 arithmetic for Zip215 batch verification on CPUs with AVX-512 IFMA:
//! point decompression ([`decode`]), the multiscalar multiplication ([`msm`]), single equations
//! ([`single`]) and plain sums of small sets ([`sums`]), eight lanes at a time.
//!
//! Why not curve25519-dalek: its decompression runs one element at a time (one field
//! exponentiation per point, two points per signature: two thirds of a batch's time), and its
//! point type has no public constructor from coordinates, so points decoded elsewhere cannot be
//! fed to its multiscalar multiplication. Both computations here follow dalek's formulas and are
//! tested against dalek on random, torsion and adversarial inputs; single verification and
//! CPUs without IFMA keep using dalek.
//!
//! # Safety
//!
//! Every function compiled with `#[target_feature(enable = "avx512f,avx512ifma,avx512dq")]` is
//! private to this module tree; the entry points re-exported below are safe and take a
//! [`IfmaToken`](super::IfmaToken), which only CPU feature detection constructs, so their `unsafe` calls into
//! that code are sound by type. The field, point and table functions are called only from
//! such `#[target_feature]` code (or from tests holding a token).

mod decode;
mod field;
mod msm;
mod point;
mod single;
mod sums;
mod table;

pub(crate) use decode::{decode_many, Point};
pub(crate) use msm::{
    cofactor_identity_each, cofactor_identity_with_total, cofactor_total_is_identity, window_sums_threads, Term, Total,
    WindowSums,
};
pub(crate) use single::{check_each, Equation, Single};
pub(crate) use sums::{sums_vanish, Member, SumSet};

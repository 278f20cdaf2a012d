//! Ed25519 on our eight-lane IFMA arithmetic ([`super::super::curve25519`]): decoding eight
//! points at a time, the Zip215 batch equation and its confirmed search, and the single
//! equations of both rules, eight items per vector. The same functions as the dalek path in
//! [`super`]; the tests there hold both to single verification.

use super::super::curve25519;
use super::super::locate::{self, Checker};
use super::super::IfmaToken;
use super::{challenge, split_sig};
use curve25519_dalek::scalar::Scalar;
use rand::RngExt;

/// An item decoded by our eight-lane arithmetic ([`super::super::curve25519`]): `A` and `R` in the form
/// its multiscalar multiplication reads, `s` (canonical) and the challenge `k`.
pub(super) struct Decoded {
    a: curve25519::Point,
    r: curve25519::Point,
    s: Scalar,
    k: Scalar,
}

/// Items per part of [`Ifma::decode`]: 64 points, two lockstep groups of 32 (small parts keep
/// the threads' last parts even).
const DECODE_PART: usize = 32;

/// Ed25519 on [`super::super::curve25519`] with up to `threads` threads: decoding, the Zip215 batch
/// equation (as a [`Checker`]) and the single equations of both rules. Holds the
/// [`IfmaToken`] its arithmetic needs, so it exists only on CPUs with AVX-512 IFMA.
pub(super) struct Ifma {
    cpu: IfmaToken,
    basepoint: curve25519::Point,
    threads: usize,
}

impl Ifma {
    /// The verifier on up to `threads` threads; `None` unless this CPU has AVX-512F/DQ/IFMA
    /// (whatever [`super::super::NO_IFMA_ENV`] says: the tests use this).
    #[cfg(test)]
    pub(super) fn new(threads: usize) -> Option<Ifma> {
        Ifma::with(IfmaToken::hardware()?, threads)
    }

    /// The verifier on up to `threads` threads (`None` only if the base point failed to
    /// decode, which it does not).
    fn with(cpu: IfmaToken, threads: usize) -> Option<Ifma> {
        // Decoded once per process (a decoding call costs a whole group of 32 lanes).
        static BASEPOINT: std::sync::OnceLock<Option<curve25519::Point>> = std::sync::OnceLock::new();
        let basepoint = (*BASEPOINT.get_or_init(|| {
            let b = curve25519_dalek::constants::ED25519_BASEPOINT_COMPRESSED.to_bytes();
            curve25519::decode_many(cpu, &[b]).pop().flatten()
        }))?;
        Some(Ifma { cpu, basepoint, threads: threads.max(1) })
    }

    /// The verifier for `items` items on up to `threads` threads (no more than
    /// [`super::super::threads_used`]).
    fn for_items(cpu: IfmaToken, items: usize, threads: usize) -> Option<Ifma> {
        Ifma::with(cpu, super::super::threads_used(items, threads))
    }

    /// [`super::super::on_parts`] on this verifier's threads.
    fn split<'s, I: Sync, R: Send>(&self, items: &'s [I], unit: usize, f: impl Fn(&'s [I]) -> Vec<R> + Sync) -> Vec<R> {
        super::super::on_parts(items, self.threads, unit, f)
    }

    /// Decodes the Zip215 items `indices` of `batch` on the threads; `None` for an item invalid
    /// by encoding.
    ///
    /// The output is allocated once and filled in place, in parts of [`DECODE_PART`] items that
    /// the threads claim one at a time (a thread slowed by the host takes fewer parts); each
    /// part's temporaries stay small enough to be reused from the allocator's free lists rather
    /// than page-faulted in anew on every call.
    pub(super) fn decode(&self, batch: &crate::sigverify::Batch, indices: &[usize]) -> Vec<Option<Decoded>> {
        let mut out: Vec<Option<Decoded>> = Vec::with_capacity(indices.len());
        out.resize_with(indices.len(), || None);
        let parts: Vec<(&[usize], &mut [Option<Decoded>])> =
            indices.chunks(DECODE_PART).zip(out.chunks_mut(DECODE_PART)).collect();
        super::super::on_threads(parts, self.threads, |(idx, dst)| self.decode_into(batch, idx, dst));
        out
    }

    /// [`Ifma::decode`] of the items `indices` into `dst` on this thread (all points of the part
    /// in lockstep groups).
    fn decode_into(&self, batch: &crate::sigverify::Batch, indices: &[usize], dst: &mut [Option<Decoded>]) {
        let (pks, sigs) = (batch.pubkeys(), batch.signatures());
        let mut encodings = Vec::with_capacity(2 * indices.len());
        for &i in indices {
            encodings.push(pks[i]);
            encodings.push(split_sig(&sigs[i]).0);
        }
        let points = curve25519::decode_many(self.cpu, &encodings);
        for ((&i, ar), out) in indices.iter().zip(points.chunks(2)).zip(dst) {
            *out = Ifma::decoded(batch, i, ar[0], ar[1]);
        }
    }

    /// Item `i` of `batch` given its decoded `A` and `R`: `None` if either failed to decode or
    /// `s ≥ ℓ`; otherwise with its challenge hashed.
    fn decoded(
        batch: &crate::sigverify::Batch,
        i: usize,
        a: Option<curve25519::Point>,
        r: Option<curve25519::Point>,
    ) -> Option<Decoded> {
        let (r_bytes, s_bytes) = split_sig(&batch.signatures()[i]);
        let s = Option::<Scalar>::from(Scalar::from_canonical_bytes(s_bytes))?;
        let (a, r) = (a?, r?);
        let k = challenge(&r_bytes, &batch.pubkeys()[i], batch.message(i));
        Some(Decoded { a, r, s, k })
    }

    /// The terms `[z_i]R_i` and `[z_i k_i]A_i` of the batch equation over `items` with fresh
    /// 127-bit `z_i`, their share `−Σ z_i s_i` of `B`'s coefficient, and the `z_i`.
    fn terms<'a>(&self, items: &'a [Decoded]) -> (Vec<curve25519::Term<'a>>, Scalar, Vec<Scalar>) {
        use curve25519::Term;
        let mut rng = rand::rng();
        let mut b_coeff = Scalar::ZERO;
        let mut terms = Vec::with_capacity(2 * items.len());
        let mut zs = Vec::with_capacity(items.len());
        for it in items {
            let z = Scalar::from(rng.random::<u128>() >> 1);
            b_coeff -= z * it.s;
            terms.push(Term { point: &it.r, scalar: z.to_bytes() });
            terms.push(Term { point: &it.a, scalar: (z * it.k).to_bytes() });
            zs.push(z);
        }
        (terms, b_coeff, zs)
    }

    /// The batch equation's multiscalar multiplication over `items` (fresh `z_i`), on the
    /// threads, with the `z_i`.
    fn batch_sum(&self, items: &[Decoded]) -> (curve25519::WindowSums, Vec<Scalar>) {
        let parts = self.split(items, super::super::MIN_CHUNK, |part| vec![self.terms(part)]);
        let mut all = vec![self.base_term(parts.iter().map(|p| p.1).sum())];
        let mut zs = Vec::with_capacity(items.len());
        for (terms, _, z) in parts {
            all.extend(terms);
            zs.extend(z);
        }
        (curve25519::window_sums_threads(self.cpu, &all, self.threads), zs)
    }

    fn base_term(&self, b_coeff: Scalar) -> curve25519::Term<'_> {
        curve25519::Term { point: &self.basepoint, scalar: b_coeff.to_bytes() }
    }

    /// The single equation `equation` of each item, eight per vector, on the threads.
    fn check_each_equation(&self, items: &[&Decoded], equation: curve25519::Equation) -> Vec<bool> {
        use curve25519::{check_each, Single};
        self.split(items, 8, |part| {
            let singles: Vec<Single> = part
                .iter()
                .map(|it| Single { a: &it.a, r: &it.r, k: it.k.to_bytes(), neg_s: (-it.s).to_bytes() })
                .collect();
            check_each(self.cpu, &singles, equation)
        })
    }
}

impl Checker for Ifma {
    type Item = Decoded;

    fn check_batch(&self, items: &[Decoded]) -> bool {
        self.check_batches(&[items]).first().copied().unwrap_or(false)
    }

    fn check_batches(&self, sets: &[&[Decoded]]) -> Vec<bool> {
        use curve25519::{cofactor_identity_each, window_sums_threads};
        // One large set divides its work among the threads; many small sets go to the threads
        // whole.
        let sums = if sets.len() == 1 {
            vec![self.batch_sum(sets[0]).0]
        } else {
            self.split(sets, 1, |part| {
                part.iter()
                    .map(|items| {
                        let (terms, b_coeff, _) = self.terms(items);
                        let mut all = vec![self.base_term(b_coeff)];
                        all.extend(terms);
                        window_sums_threads(self.cpu, &all, 1)
                    })
                    .collect()
            })
        };
        cofactor_identity_each(self.cpu, &sums)
    }

    fn check_one(&self, item: &Decoded) -> bool {
        self.check_each(&[item]).first().copied().unwrap_or(false)
    }

    fn check_each(&self, items: &[&Decoded]) -> Vec<bool> {
        self.check_each_equation(items, curve25519::Equation::Cofactored)
    }
}

/// A failed batch equation: its coefficients `z_i` and its multiscalar multiplication.
pub(super) struct Failed {
    z: Vec<Scalar>,
    total: curve25519::Total,
}

/// The confirmed search of [`locate`] on our arithmetic: plain sums eight groups per vector
/// ([`curve25519::sums_vanish`]); the confirmation subtracts the terms of the items found
/// invalid, `Σ_{i∈V} [−z_i]R_i + [−z_i k_i]A_i + [z_i s_i]B`, from the failed sum.
impl locate::Confirming for Ifma {
    type Failed = Failed;

    fn batch_or_failure(&self, items: &[Decoded]) -> Option<Failed> {
        let (sums, z) = self.batch_sum(items);
        let (holds, total) = curve25519::cofactor_identity_with_total(self.cpu, &sums);
        (!holds).then_some(Failed { z, total })
    }

    fn plain_sums(&self, sets: &[&[Decoded]]) -> Vec<bool> {
        use curve25519::{sums_vanish, Member, SumSet};
        self.split(sets, 8, |part| {
            let sets: Vec<SumSet> = part
                .iter()
                .map(|items| SumSet {
                    members: items.iter().map(|it| Member { a: &it.a, r: &it.r, k: it.k.to_bytes() }).collect(),
                    neg_s: (-items.iter().map(|it| it.s).sum::<Scalar>()).to_bytes(),
                })
                .collect();
            sums_vanish(self.cpu, &sets)
        })
    }

    fn confirm(&self, failed: &Failed, items: &[Decoded], invalid: &[usize]) -> bool {
        use curve25519::{cofactor_total_is_identity, window_sums_threads, Term};
        let mut b_coeff = Scalar::ZERO;
        let mut terms = Vec::with_capacity(2 * invalid.len() + 1);
        for &i in invalid {
            let (Some(it), Some(&z)) = (items.get(i), failed.z.get(i)) else {
                return false;
            };
            b_coeff += z * it.s;
            terms.push(Term { point: &it.r, scalar: (-z).to_bytes() });
            terms.push(Term { point: &it.a, scalar: (-(z * it.k)).to_bytes() });
        }
        terms.push(self.base_term(b_coeff));
        cofactor_total_is_identity(self.cpu, &failed.total, &[&window_sums_threads(self.cpu, &terms, 1)])
    }
}

/// Zip215 verdicts for the items `indices` of `batch` with our eight-lane arithmetic, one slice
/// using up to `threads` threads (decoding and hashing by items, the batch equation by window
/// groups, a failed batch's plain sums by sets of eight); `None` only if the base point failed
/// to decode (it does not).
pub(crate) fn verify_zip215_ifma(
    cpu: IfmaToken,
    batch: &crate::sigverify::Batch,
    indices: &[usize],
    threads: usize,
) -> Option<Vec<bool>> {
    let checker = Ifma::for_items(cpu, indices.len(), threads)?;
    Some(locate::verdicts(checker.decode(batch, indices), |items| locate::locate_confirmed(&checker, items)))
}

/// Strict verdicts for the items `indices` of `batch` with our eight-lane arithmetic, item by
/// item but eight per vector, on up to `threads` threads; `None` only if the base point failed
/// to decode (it does not). Same function as [`super::verify_strict`]: `A` and `R` decode as dalek decodes them, `s < ℓ`, `R`
/// was canonically encoded (so the byte comparison of `compress([s]B − [k]A)` with `R_bytes`
/// becomes the point equation), neither point has small order.
pub(crate) fn verify_strict_ifma(
    cpu: IfmaToken,
    batch: &crate::sigverify::Batch,
    indices: &[usize],
    threads: usize,
) -> Option<Vec<bool>> {
    let checker = Ifma::for_items(cpu, indices.len(), threads)?;
    let decoded: Vec<Option<Decoded>> =
        checker.decode(batch, indices).into_iter().map(|d| d.filter(|d| d.r.canonical_encoding())).collect();
    let items: Vec<&Decoded> = decoded.iter().flatten().collect();
    let mut found = checker.check_each_equation(&items, curve25519::Equation::Strict).into_iter();
    Some(decoded.iter().map(|d| d.is_some() && found.next().unwrap_or(false)).collect())
}

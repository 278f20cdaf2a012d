//! Variable-time multiscalar multiplication on secp256k1 for batch verification: Pippenger's
//! bucket method with signed digits over affine inputs (mixed additions), falling back to k256's
//! interleaved wNAF (`lincomb_vartime`) for few points. Variable time is fine here: every input
//! of verification is public.

use k256::elliptic_curve::ops::LinearCombination;
use k256::{AffinePoint, ProjectivePoint, Scalar};

/// Below this many points, k256's interleaved wNAF is faster than buckets.
const PIPPENGER_MIN: usize = 48;

/// `Σ [k_i] P_i`.
pub(crate) fn multiscalar_mul(terms: &[(AffinePoint, Scalar)]) -> ProjectivePoint {
    if terms.len() < PIPPENGER_MIN {
        let pairs: Vec<(ProjectivePoint, Scalar)> =
            terms.iter().map(|(p, k)| (ProjectivePoint::from(*p), *k)).collect();
        return ProjectivePoint::lincomb_vartime(pairs.as_slice());
    }
    pippenger(terms)
}

/// Window width in bits for `n` points: about log2(n) − 2 (cost model: per point one mixed
/// addition per window, plus 2^c bucket additions per window).
fn window_bits(n: usize) -> usize {
    let log = usize::BITS as usize - n.leading_zeros() as usize;
    log.saturating_sub(3).clamp(4, 14)
}

/// Little-endian 64-bit limbs of a scalar.
fn limbs(k: &Scalar) -> [u64; 4] {
    let be = k.to_bytes();
    let mut out = [0u64; 4];
    for (i, limb) in out.iter_mut().enumerate() {
        let mut w = [0u8; 8];
        w.copy_from_slice(&be[32 - 8 * (i + 1)..32 - 8 * i]);
        *limb = u64::from_be_bytes(w);
    }
    out
}

/// Signed radix-2^c digits of `k` (in `[-2^(c-1), 2^(c-1)]`), least significant first.
fn signed_digits(k: &[u64; 4], c: usize, windows: usize, out: &mut Vec<i32>) {
    let mask = (1u64 << c) - 1;
    let half = 1i64 << (c - 1);
    let mut carry = 0i64;
    for w in 0..windows {
        let bit = w * c;
        let limb = bit / 64;
        let shift = bit % 64;
        let mut v = if limb < 4 { k[limb] >> shift } else { 0 };
        if shift + c > 64 && limb + 1 < 4 {
            v |= k[limb + 1] << (64 - shift);
        }
        let d = (v & mask) as i64 + carry;
        if d >= half {
            out.push((d - (1i64 << c)) as i32);
            carry = 1;
        } else {
            out.push(d as i32);
            carry = 0;
        }
    }
}

fn pippenger(terms: &[(AffinePoint, Scalar)]) -> ProjectivePoint {
    let c = window_bits(terms.len());
    // 256-bit scalars plus a final carry.
    let windows = 256 / c + 1;
    let mut digits = Vec::with_capacity(terms.len() * windows);
    for (_, k) in terms {
        signed_digits(&limbs(k), c, windows, &mut digits);
    }
    let neg: Vec<AffinePoint> = terms.iter().map(|(p, _)| -*p).collect();
    let mut buckets = vec![ProjectivePoint::IDENTITY; 1 << (c - 1)];
    let mut acc = ProjectivePoint::IDENTITY;
    for w in (0..windows).rev() {
        for _ in 0..c {
            acc = acc.double();
        }
        buckets.fill(ProjectivePoint::IDENTITY);
        let mut any = false;
        for (j, (p, _)) in terms.iter().enumerate() {
            let d = digits[j * windows + w];
            if d > 0 {
                buckets[(d - 1) as usize] += p;
                any = true;
            } else if d < 0 {
                buckets[(-d - 1) as usize] += &neg[j];
                any = true;
            }
        }
        if !any {
            continue;
        }
        // Σ (b+1)·bucket[b] by running sums, highest bucket first.
        let mut running = ProjectivePoint::IDENTITY;
        let mut total = ProjectivePoint::IDENTITY;
        for b in buckets.iter().rev() {
            running += b;
            total += running;
        }
        acc += total;
    }
    acc
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(terms: &[(AffinePoint, Scalar)]) -> ProjectivePoint {
        terms.iter().fold(ProjectivePoint::IDENTITY, |acc, (p, k)| acc + ProjectivePoint::from(*p) * k)
    }

    fn sample(n: usize, seed: u64) -> Vec<(AffinePoint, Scalar)> {
        let mut x = seed;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        (0..n)
            .map(|i| {
                let p = ProjectivePoint::mul_by_generator_vartime(&Scalar::from(next())).to_affine();
                let k = match i % 4 {
                    0 => Scalar::from(u128::from(next()) << 64 | u128::from(next())),
                    1 => -Scalar::from(next()),
                    2 => Scalar::ZERO,
                    _ => Scalar::from(next()) * Scalar::from(next()) * Scalar::from(next()) * Scalar::from(next()),
                };
                (p, k)
            })
            .collect()
    }

    #[test]
    fn digits_recompose() {
        for c in 4..=14 {
            let k = limbs(&(-Scalar::from(12345u64)));
            let windows = 256 / c + 1;
            let mut d = Vec::new();
            signed_digits(&k, c, windows, &mut d);
            let mut acc = Scalar::ZERO;
            for (w, &di) in d.iter().enumerate().rev() {
                let _ = w;
                acc *= Scalar::from(1u64 << c);
                acc += if di < 0 { -Scalar::from((-di) as u64) } else { Scalar::from(di as u64) };
            }
            assert_eq!(acc, -Scalar::from(12345u64), "c={c}");
        }
    }

    #[test]
    fn matches_naive_sum() {
        for n in [0, 1, 5, 47, 48, 100, 300] {
            let t = sample(n, 0x9e37_79b9_7f4a_7c15 ^ n as u64);
            assert_eq!(multiscalar_mul(&t), naive(&t), "n={n}");
            assert_eq!(pippenger(&t), naive(&t), "pippenger n={n}");
        }
    }
}

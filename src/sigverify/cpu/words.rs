//! 256-bit integers as four little-endian 64-bit words: the helpers the eight-lane field code of
//! both curves ([`super::lift`] for secp256k1, [`super::curve25519`] for edwards25519) shares to
//! move values in and out of its 52-bit limbs.

/// `a − b`, with the borrow out (`true` when `a < b`; the words are then `a − b + 2^256`).
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
pub(super) fn sub(a: &[u64; 4], b: &[u64; 4]) -> ([u64; 4], bool) {
    let mut out = [0u64; 4];
    let mut borrow = false;
    for i in 0..4 {
        let (d, b1) = a[i].overflowing_sub(b[i]);
        let (d, b2) = d.overflowing_sub(u64::from(borrow));
        out[i] = d;
        borrow = b1 || b2;
    }
    (out, borrow)
}

/// Five 52-bit limbs (the last one 48 bits) of a value below 2^256.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
pub(super) fn limbs52(w: &[u64; 4]) -> [u64; 5] {
    const M52: u64 = (1 << 52) - 1;
    [
        w[0] & M52,
        ((w[0] >> 52) | (w[1] << 12)) & M52,
        ((w[1] >> 40) | (w[2] << 24)) & M52,
        ((w[2] >> 28) | (w[3] << 36)) & M52,
        w[3] >> 16,
    ]
}

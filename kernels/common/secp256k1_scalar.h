/* secp256k1_scalar.h: integers modulo the group order
 * n = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141.
 * BIP-340 needs only: s < n (else invalid) and e = (256-bit big-endian hash) mod n, which is at
 * most one subtraction because 2n > 2^256. Scalars are little-endian u64[4]. */
#ifndef PARTHENON_SECP256K1_SCALAR_H
#define PARTHENON_SECP256K1_SCALAR_H
#include "portable.h"

#define SECP_N0 ((u64)0xBFD25E8CD0364141ULL)
#define SECP_N1 ((u64)0xBAAEDCE6AF48A03BULL)
#define SECP_N2 ((u64)0xFFFFFFFFFFFFFFFEULL)
#define SECP_N3 ((u64)0xFFFFFFFFFFFFFFFFULL)

DEVICE_FN void ss_from_be_bytes(u64 r[4], const u8 b[32]) {
  for (int i = 0; i < 4; i++) {
    u64 x = 0;
    for (int j = 0; j < 8; j++) x = (x << 8) | (u64)b[8 * (3 - i) + j];
    r[i] = x;
  }
}

DEVICE_FN int ss_ge_n(const u64 a[4]) {
  if (a[3] != SECP_N3) return a[3] > SECP_N3;
  if (a[2] != SECP_N2) return a[2] > SECP_N2;
  if (a[1] != SECP_N1) return a[1] > SECP_N1;
  return a[0] >= SECP_N0;
}

/* a mod n for any 256-bit a. */
DEVICE_FN void ss_reduce_once(u64 a[4]) {
  if (!ss_ge_n(a)) return;
  u64 n[4] = {SECP_N0, SECP_N1, SECP_N2, SECP_N3};
  u64 borrow = 0;
  for (int i = 0; i < 4; i++) {
    u64 t = a[i] - n[i];
    u64 b1 = a[i] < n[i] ? 1 : 0;
    u64 t2 = t - borrow;
    u64 b2 = t < borrow ? 1 : 0;
    a[i] = t2;
    borrow = b1 | b2;
  }
}

/* Nibble w (4 bits, w = 0 the least significant) of a little-endian scalar of four 64-bit limbs:
 * bits 4w .. 4w + 3, w from 0 to 63. */
DEVICE_FN int ss_nibble(const u64 a[4], int w) { return (int)((a[w >> 4] >> ((w & 15) * 4)) & 15); }


/* ---- GLV decomposition: k == r1 + r2 * lambda (mod n) with |r1|, |r2| < 2^128 ----
 * lambda is a cube root of unity mod n with [lambda](x, y) = (beta x, y). The lattice basis
 * (a1, b1) = (0x3086d221a7d46bcde86c90e49284eb15, -0xe4437ed6010e88286f547fa90abfe4c3),
 * (a2, b2) = (0x114ca50f7a8e2f3f657c1108d9d44cfd8, a1) satisfies a_i + b_i lambda == 0 (mod n);
 * c1 = round(k b2 / n) and c2 = round(-k b1 / n) are computed as round(k g_i / 2^384), and
 * r1 = k - c1 a1 - c2 a2, r2 = -c1 b1 - c2 b2 are small integers, so they are exact when computed
 * modulo 2^256 in two's complement (constants derived and the bounds checked
 * against 20,000 random scalars with exact integer arithmetic when this was written). */

/* Low 256 bits of a * b. */
DEVICE_FN void ss_mul_lo(u64 r[4], const u64 a[4], const u64 b[4]) {
  u64 out[4] = {0, 0, 0, 0};
  for (int i = 0; i < 4; i++) {
    u64 carry = 0;
    for (int j = 0; i + j < 4; j++) {
      u64 lo = a[i] * b[j];
      u64 hi = MULHI64(a[i], b[j]);
      u64 t = out[i + j] + lo;
      hi += (t < lo) ? 1 : 0;
      u64 t2 = t + carry;
      hi += (t2 < t) ? 1 : 0;
      out[i + j] = t2;
      carry = hi;
    }
  }
  for (int i = 0; i < 4; i++) r[i] = out[i];
}

/* r = a - b modulo 2^256. */
DEVICE_FN void ss_sub_wrap(u64 r[4], const u64 a[4], const u64 b[4]) {
  u64 borrow = 0;
  for (int i = 0; i < 4; i++) {
    u64 t = a[i] - b[i];
    u64 b1 = a[i] < b[i] ? 1 : 0;
    u64 t2 = t - borrow;
    u64 b2 = t < borrow ? 1 : 0;
    r[i] = t2;
    borrow = b1 | b2;
  }
}

/* round(k * g / 2^384) for 256-bit k and g. */
DEVICE_FN void ss_mul_shift384(u64 r[4], const u64 k[4], const u64 g[4]) {
  u64 t[8];
  for (int i = 0; i < 8; i++) t[i] = 0;
  for (int i = 0; i < 4; i++) {
    u64 carry = 0;
    for (int j = 0; j < 4; j++) {
      u64 lo = k[i] * g[j];
      u64 hi = MULHI64(k[i], g[j]);
      u64 s = t[i + j] + lo;
      hi += (s < lo) ? 1 : 0;
      u64 s2 = s + carry;
      hi += (s2 < s) ? 1 : 0;
      t[i + j] = s2;
      carry = hi;
    }
    t[i + 4] = carry;
  }
  u64 round = t[5] >> 63;
  r[0] = t[6] + round;
  r[1] = t[7] + ((r[0] < round) ? 1 : 0);
  r[2] = 0;
  r[3] = 0;
}

/* Splits k (< n) into (|r1|, neg1) and (|r2|, neg2), magnitudes < 2^128. */
DEVICE_FN void ss_split_lambda(u64 r1[4], int *neg1, u64 r2[4], int *neg2, const u64 k[4]) {
  const u64 g1[4] = {0xe893209a45dbb031ULL, 0x3daa8a1471e8ca7fULL, 0xe86c90e49284eb15ULL, 0x3086d221a7d46bcdULL};
  const u64 g2[4] = {0x1571b4ae8ac47f71ULL, 0x221208ac9df506c6ULL, 0x6f547fa90abfe4c4ULL, 0xe4437ed6010e8828ULL};
  const u64 a1[4] = {0xe86c90e49284eb15ULL, 0x3086d221a7d46bcdULL, 0, 0};
  const u64 mb1[4] = {0x6f547fa90abfe4c3ULL, 0xe4437ed6010e8828ULL, 0, 0}; /* -b1 */
  const u64 a2[4] = {0x57c1108d9d44cfd8ULL, 0x14ca50f7a8e2f3f6ULL, 1, 0};
  u64 c1[4], c2[4], t1[4], t2[4], x[4];
  ss_mul_shift384(c1, k, g1);
  ss_mul_shift384(c2, k, g2);
  /* r1 = k - c1 a1 - c2 a2 */
  ss_mul_lo(t1, c1, a1);
  ss_mul_lo(t2, c2, a2);
  ss_sub_wrap(x, k, t1);
  ss_sub_wrap(r1, x, t2);
  /* r2 = c1 (-b1) - c2 a1   (b2 = a1) */
  ss_mul_lo(t1, c1, mb1);
  ss_mul_lo(t2, c2, a1);
  ss_sub_wrap(r2, t1, t2);
  const u64 zero[4] = {0, 0, 0, 0};
  *neg1 = (int)(r1[3] >> 63);
  if (*neg1) ss_sub_wrap(r1, zero, r1);
  *neg2 = (int)(r2[3] >> 63);
  if (*neg2) ss_sub_wrap(r2, zero, r2);
}

#endif

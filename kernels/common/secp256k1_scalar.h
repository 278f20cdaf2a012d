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

/* Bit i (0 = least significant) of a little-endian scalar. */
DEVICE_FN int ss_nibble(const u64 a[4], int w) { return (int)((a[w >> 4] >> ((w & 15) * 4)) & 15); }

#endif

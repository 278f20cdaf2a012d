/* sc25519.h: scalars modulo L = 2^252 + 27742317777372353535851937790883648493, the order of the
 * edwards25519 base point. Only what verification needs: the canonical check S < L and the
 * reduction of a 512-bit SHA-512 digest (little-endian) modulo L.
 */
#ifndef PARTHENON_SC25519_H
#define PARTHENON_SC25519_H
#include "portable.h"

#define SC_L0 ((u64)0x5812631a5cf5d3edULL)
#define SC_L1 ((u64)0x14def9dea2f79cd6ULL)
#define SC_L2 ((u64)0)
#define SC_L3 ((u64)0x1000000000000000ULL)

DEVICE_FN void sc25519_load(u64 w[4], const u8 b[32]) {
  for (int i = 0; i < 4; i++) {
    u64 x = 0;
    for (int j = 7; j >= 0; j--) x = (x << 8) | (u64)b[8 * i + j];
    w[i] = x;
  }
}

/* a >= L for a little-endian 4-limb value. */
DEVICE_FN int sc25519_ge_l(const u64 a[4]) {
  if (a[3] != SC_L3) return a[3] > SC_L3;
  if (a[2] != SC_L2) return a[2] > SC_L2;
  if (a[1] != SC_L1) return a[1] > SC_L1;
  return a[0] >= SC_L0;
}

DEVICE_FN void sc25519_sub_l(u64 a[4]) {
  u64 l[4] = {SC_L0, SC_L1, SC_L2, SC_L3};
  u64 borrow = 0;
  for (int i = 0; i < 4; i++) {
    u64 t = a[i] - l[i];
    u64 b1 = a[i] < l[i] ? 1 : 0;
    u64 t2 = t - borrow;
    u64 b2 = t < borrow ? 1 : 0;
    a[i] = t2;
    borrow = b1 | b2;
  }
}

/* 1 when the 32 little-endian bytes encode an integer < L (the canonical-S check). */
DEVICE_FN int sc25519_is_canonical(const u8 s[32]) {
  u64 w[4];
  sc25519_load(w, s);
  return !sc25519_ge_l(w);
}

/* out = (64 little-endian bytes) mod L, as 32 little-endian bytes. Bit-serial Horner: r < L is
 * kept throughout, 2r + 1 < 2^254 fits in four limbs, and one conditional subtraction restores
 * r < L after each bit. */
DEVICE_FN void sc25519_reduce512(u8 out[32], const u8 h[64]) {
  u64 r[4] = {0, 0, 0, 0};
  for (int i = 511; i >= 0; i--) {
    u64 bit = (h[i >> 3] >> (i & 7)) & 1;
    r[3] = (r[3] << 1) | (r[2] >> 63);
    r[2] = (r[2] << 1) | (r[1] >> 63);
    r[1] = (r[1] << 1) | (r[0] >> 63);
    r[0] = (r[0] << 1) | bit;
    if (sc25519_ge_l(r)) sc25519_sub_l(r);
  }
  for (int i = 0; i < 4; i++)
    for (int j = 0; j < 8; j++) out[8 * i + j] = (u8)(r[i] >> (8 * j));
}

#endif

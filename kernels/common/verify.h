/* verify.h: per-signature hashing and verification, shared by the CUDA and OpenCL entries.
 *
 * Layout (the host's Batch copied as is): schemes u8[n] (SCHEME_*), pubkeys u8[32 n],
 * signatures u8[64 n], messages u8[] (flat), offsets u64[n + 1] (message i is
 * messages[offsets[i] - offsets[0] .. offsets[i + 1] - offsets[0]], so a sub-range of a batch can
 * be launched without rewriting offsets). The hash pass writes one 32-byte challenge per item;
 * the verify pass writes one verdict byte per item: 1 valid, 0 invalid. It reads the fixed-base
 * tables of B and G (base_tables.h) that the base_tables kernel wrote once per device.
 *
 * Rules (identical to the CPU backend, see src/sigverify):
 *  - Ed25519 ZIP-215 (ed25519-zebra): A and R decoded permissively (non-canonical y accepted,
 *    sign bit honoured even for x = 0); S < L required; k = SHA-512(R_bytes || A_bytes || M) mod L
 *    over the bytes as given; valid iff [8]([S]B - [k]A - R) is the identity.
 *  - Ed25519 strict (ed25519-dalek verify_strict): A and R decoded as above and neither of small
 *    order; S < L; valid iff encode([S]B - [k]A) equals the given R bytes (so R must be canonical).
 *  - BIP-340 (libsecp256k1 schnorrsig_verify): P = lift_x(pk) (pk < p, on the curve); r < p;
 *    s < n; e = tagged_hash("BIP0340/challenge", r || pk || m) mod n; R = [s]G - [e]P; valid iff
 *    R is finite, y(R) even and x(R) = r.
 */
#ifndef PARTHENON_VERIFY_H
#define PARTHENON_VERIFY_H
#include "portable.h"
#include "fe25519.h"
#include "ge25519.h"
#include "sc25519.h"
#include "sha512.h"
#include "sha256.h"
#include "secp256k1_field.h"
#include "secp256k1_scalar.h"
#include "secp256k1_group.h"
#include "base_tables.h"

DEVICE_FN void copy_from_global(u8 *dst, GLOBAL const u8 *src, int n) {
  for (int i = 0; i < n; i++) dst[i] = src[i];
}

/* The challenge of item i: k mod L (little-endian) for Ed25519, the raw tagged hash (big-endian)
 * for BIP-340. */
DEVICE_FN void challenge_one(u64 i, GLOBAL const u8 *schemes, GLOBAL const u8 *pubkeys, GLOBAL const u8 *sigs,
                             GLOBAL const u8 *msgs, GLOBAL const u64 *offsets, GLOBAL u8 *out) {
  u8 rb[32], pk[32];
  copy_from_global(rb, sigs + 64 * i, 32);
  copy_from_global(pk, pubkeys + 32 * i, 32);
  u64 base = offsets[0];
  GLOBAL const u8 *m = msgs + (offsets[i] - base);
  u64 len = offsets[i + 1] - offsets[i];
  if (schemes[i] == SCHEME_ED25519) {
    sha512_ctx c;
    u8 h[64], k[32];
    sha512_init(&c);
    sha512_update(&c, rb, 32);
    sha512_update(&c, pk, 32);
    sha512_update_global(&c, m, len);
    sha512_final(&c, h);
    sc25519_reduce512(k, h);
    for (int j = 0; j < 32; j++) out[32 * i + j] = k[j];
  } else {
    sha256_ctx c;
    u8 h[32];
    sha256_init_bip340_challenge(&c);
    sha256_update(&c, rb, 32);
    sha256_update(&c, pk, 32);
    sha256_update_global(&c, m, len);
    sha256_final(&c, h);
    for (int j = 0; j < 32; j++) out[32 * i + j] = h[j];
  }
}

DEVICE_FN int ed25519_verify_one(u32 rules, const u8 pk[32], const u8 sig[64], const u8 k[32],
                                 GLOBAL const ge25519_cached *btab) {
  const u8 *rb = sig;
  const u8 *sb = sig + 32;
  if (!sc25519_is_canonical(sb)) return 0;
  ge25519 A, R, negA, Rp;
  if (!ge25519_decompress(&A, pk)) return 0;
  if (!ge25519_decompress(&R, rb)) return 0;
  if (rules == RULES_STRICT) {
    if (ge25519_is_small_order(&R) || ge25519_is_small_order(&A)) return 0;
  }
  ge25519_neg(&negA, &A);
  ge25519_scalarmult_vartime(&Rp, k, &negA); /* R' = [S]B - [k]A */
  ge25519_add_base_vartime(&Rp, sb, btab);
  if (rules == RULES_STRICT) {
    u8 enc[32];
    ge25519_compress(enc, &Rp);
    u8 diff = 0;
    for (int j = 0; j < 32; j++) diff |= (u8)(enc[j] ^ rb[j]);
    return diff == 0;
  }
  ge25519_cached rc;
  ge25519 d;
  ge25519_to_cached(&rc, &R);
  ge25519_sub_cached(&d, &Rp, &rc);
  ge25519_double(&d, &d);
  ge25519_double(&d, &d);
  ge25519_double(&d, &d);
  return ge25519_is_identity(&d);
}

DEVICE_FN int bip340_verify_one(const u8 pk[32], const u8 sig[64], const u8 ehash[32], GLOBAL const gej_secp *gtab) {
  fe_secp px, rx;
  if (!fs_from_be_bytes(&px, pk)) return 0;
  if (!fs_from_be_bytes(&rx, sig)) return 0;
  u64 s[4], e[4];
  ss_from_be_bytes(s, sig + 32);
  if (ss_ge_n(s)) return 0;
  ss_from_be_bytes(e, ehash);
  ss_reduce_once(e);
  gej_secp P, negP, R;
  if (!gej_lift_x(&P, &px)) return 0;
  gej_neg(&negP, &P);
  gej_scalarmult_vartime(&R, e, &negP); /* R = [s]G - [e]P */
  gej_add_g_vartime(&R, s, gtab);
  if (gej_is_infinity(&R)) return 0;
  fe_secp zi, zi2, zi3, x, y;
  fs_inv(&zi, &R.Z);
  fs_sq(&zi2, &zi);
  fs_mul(&zi3, &zi2, &zi);
  fs_mul(&x, &R.X, &zi2);
  fs_mul(&y, &R.Y, &zi3);
  if (fs_is_odd(&y)) return 0;
  return fs_eq(&x, &rx);
}

DEVICE_FN void verify_item(u64 i, u32 rules, GLOBAL const u8 *schemes, GLOBAL const u8 *pubkeys, GLOBAL const u8 *sigs,
                           GLOBAL const u8 *challenges, GLOBAL u8 *verdicts, GLOBAL const ge25519_cached *btab,
                           GLOBAL const gej_secp *gtab) {
  u8 pk[32], sig[64], k[32];
  copy_from_global(pk, pubkeys + 32 * i, 32);
  copy_from_global(sig, sigs + 64 * i, 64);
  copy_from_global(k, challenges + 32 * i, 32);
  int ok;
  if (schemes[i] == SCHEME_ED25519) {
    ok = ed25519_verify_one(rules, pk, sig, k, btab);
  } else if (schemes[i] == SCHEME_BIP340) {
    ok = bip340_verify_one(pk, sig, k, gtab);
  } else {
    ok = 0;
  }
  verdicts[i] = (u8)(ok ? 1 : 0);
}

#endif

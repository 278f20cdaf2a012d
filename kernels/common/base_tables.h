/* base_tables.h: fixed-base tables for B (edwards25519) and G (secp256k1) in device memory.
 *
 * A scalar v < 2^256 is cut into 33 signed radix-256 digits (recode_signed256: d[i] in
 * [-128, 128), d[32] in {0, 1}), so v = sum d[w] 256^w and
 *
 *   [v]B = sum_w sign(d[w]) * T[w][|d[w]| - 1],   T[w][j - 1] = [j * 256^w] B,  j = 1..128.
 *
 * The entries already carry their power of 256, so the fixed-base half of a double-scalar
 * multiplication needs no doublings and at most 33 additions, and it is added to the variable
 * half's Straus result at the end. Against the per-thread radix-16 tables this replaces 64
 * additions (and 7 more to build the table) by 33, and takes the base table (1.3 KiB on
 * edwards25519, 768 B on secp256k1) out of every thread's private memory.
 *
 * The tables (33 x 128 entries: 660 KiB for B as ge25519_cached, 396 KiB for G as gej_secp)
 * are computed once per device by the `base_tables` kernel, one thread per (curve, window), with
 * the same group law as verification, and then only read. Entries stay projective (no
 * inversion): the complete edwards25519 addition and the Jacobian addition take any Z.
 */
#ifndef PARTHENON_BASE_TABLES_H
#define PARTHENON_BASE_TABLES_H
#include "ge25519.h"
#include "secp256k1_group.h"

#define BASE_WINDOWS 33
#define BASE_ENTRIES 128
/* Threads of the base_tables kernel: one per window of each curve. */
#define BASE_TABLE_THREADS (2 * BASE_WINDOWS)

/* Signed radix-256 digits of a little-endian 32-byte value (see the header comment). */
DEVICE_FN void recode_signed256(int d[BASE_WINDOWS], const u8 v[32]) {
  for (int i = 0; i < 32; i++) d[i] = v[i];
  d[32] = 0;
  for (int i = 0; i < 32; i++) {
    int carry = (d[i] + 128) >> 8;
    d[i] -= carry << 8;
    d[i + 1] += carry;
  }
}

/* Window w of B's table: T[w][j - 1] = [j * 256^w] B. */
DEVICE_FN void ed25519_base_table_window(GLOBAL ge25519_cached *tab, int w) {
  ge25519 p, acc;
  ge25519_cached c;
  ge25519_basepoint(&p);
  for (int i = 0; i < 8 * w; i++) ge25519_double(&p, &p);
  ge25519_to_cached(&c, &p);
  tab[w * BASE_ENTRIES] = c;
  acc = p;
  for (int j = 1; j < BASE_ENTRIES; j++) {
    ge25519_add_cached(&acc, &acc, &c);
    ge25519_cached e;
    ge25519_to_cached(&e, &acc);
    tab[w * BASE_ENTRIES + j] = e;
  }
}

/* Window w of G's table: T[w][j - 1] = [j * 256^w] G. */
DEVICE_FN void secp256k1_g_table_window(GLOBAL gej_secp *tab, int w) {
  gej_secp p, acc;
  gej_generator(&p);
  for (int i = 0; i < 8 * w; i++) gej_double(&p, &p);
  tab[w * BASE_ENTRIES] = p;
  acc = p;
  for (int j = 1; j < BASE_ENTRIES; j++) {
    gej_add(&acc, &acc, &p);
    tab[w * BASE_ENTRIES + j] = acc;
  }
}

/* The base_tables kernel's work for thread t (t < BASE_TABLE_THREADS). */
DEVICE_FN void base_tables_thread(u64 t, GLOBAL ge25519_cached *btab, GLOBAL gej_secp *gtab) {
  if (t < BASE_WINDOWS) {
    ed25519_base_table_window(btab, (int)t);
  } else if (t < BASE_TABLE_THREADS) {
    secp256k1_g_table_window(gtab, (int)(t - BASE_WINDOWS));
  }
}

/* r += [b]B for a little-endian b < 2^256, from B's table. */
DEVICE_FN void ge25519_add_base_vartime(ge25519 *r, const u8 b[32], GLOBAL const ge25519_cached *btab) {
  int d[BASE_WINDOWS];
  recode_signed256(d, b);
  for (int w = 0; w < BASE_WINDOWS; w++) {
    int x = d[w];
    if (x == 0) continue;
    ge25519_cached e = btab[w * BASE_ENTRIES + (x > 0 ? x : -x) - 1];
    if (x > 0) {
      ge25519_add_cached(r, r, &e);
    } else {
      ge25519_sub_cached(r, r, &e);
    }
  }
}

/* r += [b]G for a little-endian 4-limb b < 2^256, from G's table. */
DEVICE_FN void gej_add_g_vartime(gej_secp *r, const u64 b[4], GLOBAL const gej_secp *gtab) {
  u8 bytes[32];
  for (int i = 0; i < 32; i++) bytes[i] = (u8)(b[i / 8] >> (8 * (i % 8)));
  int d[BASE_WINDOWS];
  recode_signed256(d, bytes);
  for (int w = 0; w < BASE_WINDOWS; w++) {
    int x = d[w];
    if (x == 0) continue;
    gej_secp e = gtab[w * BASE_ENTRIES + (x > 0 ? x : -x) - 1];
    if (x < 0) gej_neg(&e, &e);
    gej_add(r, r, &e);
  }
}

#endif

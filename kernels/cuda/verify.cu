/* CUDA entry (compiled at run time by NVRTC): thin wrappers over kernels/common/verify.h, one
 * thread per signature. */
#include "common/verify.h"

KERNEL void sig_challenge(u64 n, const u8 *schemes, const u8 *pubkeys, const u8 *sigs, const u8 *msgs,
                          const u64 *offsets, u8 *challenges) {
  u64 i = THREAD_ID;
  if (i < n) challenge_one(i, schemes, pubkeys, sigs, msgs, offsets, challenges);
}

KERNEL void sig_verify(u64 n, u32 rules, const u8 *schemes, const u8 *pubkeys, const u8 *sigs,
                       const u8 *challenges, u8 *verdicts, const ge25519_cached *btab, const gej_secp *gtab) {
  u64 i = THREAD_ID;
  if (i < n) verify_item(i, rules, schemes, pubkeys, sigs, challenges, verdicts, btab, gtab);
}

/* Once per device, BASE_TABLE_THREADS threads: the fixed-base tables of B and G. */
KERNEL void base_tables(ge25519_cached *btab, gej_secp *gtab) { base_tables_thread(THREAD_ID, btab, gtab); }

/* The sizes the host allocates the tables with: entry bytes of B's and G's tables, windows,
 * entries per window. */
KERNEL void base_table_layout(u64 *out) {
  if (THREAD_ID == 0) {
    out[0] = sizeof(ge25519_cached);
    out[1] = sizeof(gej_secp);
    out[2] = BASE_WINDOWS;
    out[3] = BASE_ENTRIES;
  }
}

/* OpenCL entry: thin wrappers over kernels/common/verify.h (one work-item per signature). */
#include "common/verify.h"

__kernel void sig_challenge(ulong n, __global const uchar *schemes, __global const uchar *pubkeys,
                            __global const uchar *sigs, __global const uchar *msgs, __global const ulong *offsets,
                            __global uchar *challenges) {
  ulong i = THREAD_ID;
  if (i < n) challenge_one(i, schemes, pubkeys, sigs, msgs, offsets, challenges);
}

__kernel void sig_verify(ulong n, uint rules, __global const uchar *schemes, __global const uchar *pubkeys,
                         __global const uchar *sigs, __global const uchar *challenges, __global uchar *verdicts,
                         __global const ge25519_cached *btab, __global const gej_secp *gtab) {
  ulong i = THREAD_ID;
  if (i < n) verify_item(i, rules, schemes, pubkeys, sigs, challenges, verdicts, btab, gtab);
}

/* Once per device, BASE_TABLE_THREADS work-items: the fixed-base tables of B and G. */
__kernel void base_tables(__global ge25519_cached *btab, __global gej_secp *gtab) {
  base_tables_thread(THREAD_ID, btab, gtab);
}

/* The sizes the host allocates the tables with: entry bytes of B's and G's tables, windows,
 * entries per window. */
__kernel void base_table_layout(__global ulong *out) {
  if (THREAD_ID == 0) {
    out[0] = sizeof(ge25519_cached);
    out[1] = sizeof(gej_secp);
    out[2] = BASE_WINDOWS;
    out[3] = BASE_ENTRIES;
  }
}

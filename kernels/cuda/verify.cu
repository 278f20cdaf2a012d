/* CUDA entry (compiled at run time by NVRTC): thin wrappers over kernels/common/verify.h, one
 * thread per signature. */
#include "common/verify.h"

KERNEL void sig_challenge(u64 n, const u8 *schemes, const u8 *pubkeys, const u8 *sigs, const u8 *msgs,
                          const u64 *offsets, u8 *challenges) {
  u64 i = THREAD_ID;
  if (i < n) challenge_one(i, schemes, pubkeys, sigs, msgs, offsets, challenges);
}

KERNEL void sig_verify(u64 n, u32 rules, const u8 *schemes, const u8 *pubkeys, const u8 *sigs,
                       const u8 *challenges, u8 *verdicts) {
  u64 i = THREAD_ID;
  if (i < n) verify_item(i, rules, schemes, pubkeys, sigs, challenges, verdicts);
}

/* Hand-written accessors for what bindgen cannot wrap: the thread-local `rte_errno` and the
 * `rte_pktmbuf_mtod` family, which are macros rather than functions. */
#ifndef PARTHENON_DPDK_SHIM_H
#define PARTHENON_DPDK_SHIM_H
#include <stdint.h>
#include <rte_mbuf.h>

int parthenon_rte_errno(void);
void *parthenon_pktmbuf_mtod(struct rte_mbuf *m);
void *parthenon_pktmbuf_mtod_offset(struct rte_mbuf *m, uint16_t off);
#endif

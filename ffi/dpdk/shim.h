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

/* Transfer datagram path (src/transfer/dpdk): port set-up, frames with external buffers,
 * copying a received packet out. */
#ifndef PARTHENON_DPDK_TRANSFER_SHIM
#define PARTHENON_DPDK_TRANSFER_SHIM
struct rte_mbuf_ext_shared_info;
struct rte_mempool;
int parthenon_port_multi_segs(uint16_t port);
int parthenon_port_setup(uint16_t port, struct rte_mempool *mp, uint16_t nb_desc);
uint32_t parthenon_port_max_rx_pktlen(uint16_t port);
struct rte_mbuf_ext_shared_info *parthenon_shinfo_new(void);
void parthenon_shinfo_free(struct rte_mbuf_ext_shared_info *s);
uint16_t parthenon_shinfo_refcnt(const struct rte_mbuf_ext_shared_info *s);
struct rte_mbuf *parthenon_frame(struct rte_mempool *mp, const void *head, uint16_t head_len,
                                 const void *copy, uint16_t copy_len, const void *ext, uint16_t ext_len,
                                 struct rte_mbuf_ext_shared_info *shinfo);
int32_t parthenon_mbuf_take(struct rte_mbuf *m, void *hdr, uint32_t hdr_len, void *dst, uint32_t cap);
uint16_t parthenon_mbuf_view(const struct rte_mbuf *m, const void **seg0, uint32_t *len0, const void **seg1,
                             uint32_t *len1);
#endif

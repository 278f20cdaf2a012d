#include <rte_errno.h>
#include "shim.h"

int parthenon_rte_errno(void) { return rte_errno; }

void *parthenon_pktmbuf_mtod(struct rte_mbuf *m) { return rte_pktmbuf_mtod(m, void *); }

void *parthenon_pktmbuf_mtod_offset(struct rte_mbuf *m, uint16_t off) {
    return rte_pktmbuf_mtod_offset(m, void *, off);
}

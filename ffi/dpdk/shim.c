#include <rte_errno.h>
#include "shim.h"

int parthenon_rte_errno(void) { return rte_errno; }

void *parthenon_pktmbuf_mtod(struct rte_mbuf *m) { return rte_pktmbuf_mtod(m, void *); }

void *parthenon_pktmbuf_mtod_offset(struct rte_mbuf *m, uint16_t off) {
    return rte_pktmbuf_mtod_offset(m, void *, off);
}

#include <string.h>
#include <rte_ethdev.h>
#include <rte_malloc.h>

int parthenon_port_multi_segs(uint16_t port) {
    struct rte_eth_dev_info info;
    if (rte_eth_dev_info_get(port, &info) != 0) return 0;
    return (info.tx_offload_capa & RTE_ETH_TX_OFFLOAD_MULTI_SEGS) != 0;
}

int parthenon_port_setup(uint16_t port, struct rte_mempool *mp, uint16_t nb_desc) {
    struct rte_eth_conf conf;
    memset(&conf, 0, sizeof(conf));
    /* Frames larger than one mbuf are chains (and zero-copy frames are always a header mbuf
     * chained to the attached payload): ask for multi-segment TX wherever the driver offers it.
     * Where it does not, the link keeps every frame within one mbuf (src/transfer/dpdk). */
    if (parthenon_port_multi_segs(port)) conf.txmode.offloads |= RTE_ETH_TX_OFFLOAD_MULTI_SEGS;
    int rc = rte_eth_dev_configure(port, 1, 1, &conf);
    if (rc < 0) return rc;
    int socket = rte_eth_dev_socket_id(port);
    if (socket < 0) socket = 0;
    rc = rte_eth_rx_queue_setup(port, 0, nb_desc, (unsigned)socket, NULL, mp);
    if (rc < 0) return rc;
    rc = rte_eth_tx_queue_setup(port, 0, nb_desc, (unsigned)socket, NULL);
    if (rc < 0) return rc;
    rc = rte_eth_dev_start(port);
    if (rc < 0) return rc;
    (void)rte_eth_promiscuous_enable(port);
    return 0;
}

uint32_t parthenon_port_max_rx_pktlen(uint16_t port) {
    struct rte_eth_dev_info info;
    if (rte_eth_dev_info_get(port, &info) != 0) return 0;
    return info.max_rx_pktlen;
}

static void parthenon_noop_free(void *addr, void *opaque) {
    (void)addr;
    (void)opaque;
}

struct rte_mbuf_ext_shared_info *parthenon_shinfo_new(void) {
    struct rte_mbuf_ext_shared_info *s = rte_zmalloc("parthenon_shinfo", sizeof(*s), 0);
    if (s == NULL) return NULL;
    s->free_cb = parthenon_noop_free;
    s->fcb_opaque = NULL;
    rte_mbuf_ext_refcnt_set(s, 1);
    return s;
}

void parthenon_shinfo_free(struct rte_mbuf_ext_shared_info *s) { rte_free(s); }

uint16_t parthenon_shinfo_refcnt(const struct rte_mbuf_ext_shared_info *s) { return rte_mbuf_ext_refcnt_read(s); }

/* Appends `len` bytes of `src` to the packet headed by `m`, chaining segments from `mp` as each
 * fills. Returns 0, or -1 when the pool is empty or the chain cannot grow. */
static int parthenon_append_copy(struct rte_mempool *mp, struct rte_mbuf *m, const char *src, uint32_t len) {
    while (len > 0) {
        uint16_t room = rte_pktmbuf_tailroom(rte_pktmbuf_lastseg(m));
        if (room == 0) {
            struct rte_mbuf *x = rte_pktmbuf_alloc(mp);
            if (x == NULL) return -1;
            if (rte_pktmbuf_chain(m, x) != 0) {
                rte_pktmbuf_free(x);
                return -1;
            }
            continue;
        }
        uint16_t n = len < room ? (uint16_t)len : room;
        char *p = rte_pktmbuf_append(m, n);
        if (p == NULL) return -1;
        memcpy(p, src, n);
        src += n;
        len -= n;
    }
    return 0;
}

/* One frame: `head` and `copy` copied into mbufs from `mp` (as many chained segments as they
 * need); when ext_len > 0, one more mbuf attached (not copied) to `ext` is chained behind them,
 * holding one reference on `shinfo`. The attached buffer's IOVA is its address in IOVA-as-VA
 * mode and RTE_BAD_IOVA otherwise, and the memory is not DMA-mapped: callers attach only for
 * software drivers, which read it with the CPU (src/transfer/dpdk).
 * Returns NULL when the pool is empty. */
struct rte_mbuf *parthenon_frame(struct rte_mempool *mp, const void *head, uint16_t head_len,
                                 const void *copy, uint16_t copy_len, const void *ext, uint16_t ext_len,
                                 struct rte_mbuf_ext_shared_info *shinfo) {
    struct rte_mbuf *m = rte_pktmbuf_alloc(mp);
    if (m == NULL) return NULL;
    if (parthenon_append_copy(mp, m, head, head_len) != 0 || parthenon_append_copy(mp, m, copy, copy_len) != 0) {
        rte_pktmbuf_free(m);
        return NULL;
    }
    if (ext_len == 0) return m;
    struct rte_mbuf *x = rte_pktmbuf_alloc(mp);
    if (x == NULL) {
        rte_pktmbuf_free(m);
        return NULL;
    }
    rte_iova_t iova = rte_eal_iova_mode() == RTE_IOVA_VA ? (rte_iova_t)(uintptr_t)ext : RTE_BAD_IOVA;
    rte_mbuf_ext_refcnt_update(shinfo, 1);
    rte_pktmbuf_attach_extbuf(x, (void *)(uintptr_t)ext, iova, ext_len, shinfo);
    x->data_len = ext_len;
    x->pkt_len = ext_len;
    if (rte_pktmbuf_chain(m, x) != 0) {
        rte_pktmbuf_free(x);
        rte_pktmbuf_free(m);
        return NULL;
    }
    return m;
}

/* Copies the first hdr_len bytes of the packet into hdr and the rest into dst, then frees the
 * mbuf. Returns the length of the rest, or -1 (after freeing) when the packet is shorter than
 * hdr_len or the rest exceeds cap. */
int32_t parthenon_mbuf_take(struct rte_mbuf *m, void *hdr, uint32_t hdr_len, void *dst, uint32_t cap) {
    uint32_t len = rte_pktmbuf_pkt_len(m);
    if (len < hdr_len || len - hdr_len > cap) {
        rte_pktmbuf_free(m);
        return -1;
    }
    uint32_t pos = 0;
    for (struct rte_mbuf *s = m; s != NULL; s = s->next) {
        const char *src = rte_pktmbuf_mtod(s, const char *);
        uint32_t n = s->data_len;
        uint32_t i = 0;
        if (pos < hdr_len) {
            uint32_t h = hdr_len - pos < n ? hdr_len - pos : n;
            memcpy((char *)hdr + pos, src, h);
            i = h;
        }
        if (i < n) memcpy((char *)dst + (pos + i - hdr_len), src + i, n - i);
        pos += n;
    }
    rte_pktmbuf_free(m);
    return (int32_t)(len - hdr_len);
}

/* The first two segments of a received packet, without copying: their data pointers and lengths
 * (seg1 NULL/0 when there is one segment). Returns the number of segments. */
uint16_t parthenon_mbuf_view(const struct rte_mbuf *m, const void **seg0, uint32_t *len0, const void **seg1,
                             uint32_t *len1) {
    *seg0 = rte_pktmbuf_mtod(m, const void *);
    *len0 = m->data_len;
    const struct rte_mbuf *n = m->next;
    *seg1 = n != NULL ? rte_pktmbuf_mtod(n, const void *) : NULL;
    *len1 = n != NULL ? n->data_len : 0;
    return m->nb_segs;
}

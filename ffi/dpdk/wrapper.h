/* The DPDK surface parthenon binds with bindgen (see build.rs). Keep it to what the transfer
 * backend and the detection probe use: EAL, ethdev, mempool/mbuf, errno. */
#include <rte_config.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_lcore.h>
#include <rte_ethdev.h>
#include <rte_ether.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>
#include <rte_malloc.h>
#include <rte_bus_vdev.h>
#include "shim.h"

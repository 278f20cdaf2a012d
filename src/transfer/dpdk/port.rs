//! The process-wide DPDK resources a link stands on: the one mbuf pool, the ports configured
//! once each, and the claims that give each port queue to one live link at a time (see the
//! parent module's docs for why a queue must not be shared).

use crate::dpdk::{self, sys};
use crate::engine::Backend;
use crate::transfer::Error;
use std::collections::HashSet;
use std::sync::{Mutex, OnceLock};

/// Descriptors per RX and TX queue asked of the driver (a `net_ring` port's rings hold 1024
/// frames whatever is asked).
pub(super) const RING_FRAMES: u16 = 1024;

struct Pool(*mut sys::rte_mempool);
// SAFETY: a DPDK mempool is safe to use from any thread (lockless per-lcore caches, or the
// ring with multi-producer/consumer sync for non-EAL threads).
unsafe impl Send for Pool {}
// SAFETY: as above; the pointer itself is never mutated after creation.
unsafe impl Sync for Pool {}

static POOL: OnceLock<Result<Pool, String>> = OnceLock::new();
static READY_PORTS: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
/// Queues held by live links (module docs).
static CLAIMED: Mutex<Vec<(u16, Queue)>> = Mutex::new(Vec::new());

/// One direction of a port's single queue pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Queue {
    Tx,
    Rx,
}

/// The TX queue of `tx` and the RX queue of `rx`, held by one link until it is dropped (module
/// docs).
#[derive(Debug)]
pub(super) struct Claim {
    tx: u16,
    rx: u16,
}

impl Claim {
    pub(super) fn take(tx: u16, rx: u16) -> Result<Claim, Error> {
        let mut held = CLAIMED.lock().unwrap_or_else(|p| p.into_inner());
        for (port, q) in [(tx, Queue::Tx), (rx, Queue::Rx)] {
            if held.contains(&(port, q)) {
                let dir = if q == Queue::Tx { "TX" } else { "RX" };
                return Err(unavailable(format!(
                    "DPDK port {port}: its {dir} queue is held by another live link (one link per queue)"
                )));
            }
        }
        held.extend([(tx, Queue::Tx), (rx, Queue::Rx)]);
        Ok(Claim { tx, rx })
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        let mut held = CLAIMED.lock().unwrap_or_else(|p| p.into_inner());
        held.retain(|&c| c != (self.tx, Queue::Tx) && c != (self.rx, Queue::Rx));
    }
}

pub(super) fn unavailable(reason: String) -> Error {
    Error::Unavailable { backend: Backend::Dpdk, reason }
}

pub(super) fn pool() -> Result<*mut sys::rte_mempool, Error> {
    let p = POOL.get_or_init(|| {
        let name = c"parthenon_frames";
        // SAFETY: the EAL is initialised (checked by the caller via Eal::get); the name is a
        // valid C string; the pool lives for the rest of the process.
        let mp = unsafe {
            sys::rte_pktmbuf_pool_create(
                name.as_ptr(),
                32767,
                256,
                0,
                sys::RTE_MBUF_DEFAULT_BUF_SIZE as u16,
                sys::rte_socket_id() as i32,
            )
        };
        if mp.is_null() {
            Err(format!("rte_pktmbuf_pool_create: {}", dpdk::strerror(dpdk::errno())))
        } else {
            Ok(Pool(mp))
        }
    });
    match p {
        Ok(p) => Ok(p.0),
        Err(e) => Err(unavailable(e.clone())),
    }
}

pub(super) fn setup_port(port: u16, mp: *mut sys::rte_mempool) -> Result<(), Error> {
    let mut ready = READY_PORTS.lock().map_err(|_| unavailable("port table poisoned".into()))?;
    let set = ready.get_or_insert_with(HashSet::new);
    if set.contains(&port) {
        return Ok(());
    }
    // SAFETY: EAL initialised; `mp` is a valid mempool; the port is configured once (guarded
    // by READY_PORTS).
    let rc = unsafe { sys::parthenon_port_setup(port, mp, RING_FRAMES) };
    if rc < 0 {
        return Err(unavailable(format!("setting up DPDK port {port}: {}", dpdk::strerror(-rc))));
    }
    set.insert(port);
    Ok(())
}

//! The DPDK link (feature `dpdk`): the datagram protocol ([`super::datagram`]) over a DPDK
//! ethdev port, bypassing the kernel's network stack.
//!
//! - Frames travel as Ethernet frames with EtherType 0x88B5 (IEEE local experimental),
//!   destination broadcast (the link is point-to-point: a `net_ring` pair in one process, or a
//!   veth pair through `net_af_packet`); other EtherTypes are ignored.
//! - **TX without copying the block.** A frame is two chained mbufs: a small one holding the
//!   Ethernet and frame headers (copied), and one *attached* to the payload as an external buffer
//!   (`rte_pktmbuf_attach_extbuf`) — the block's memory itself, not a copy. Every attached mbuf
//!   holds a reference on one shared-info refcount owned by the link; [`Link::release`] returns
//!   only when all of them are freed (after the driver sent, or the peer consumed, the frame), so
//!   the caller may free the block afterwards — the same ownership rule as every backend.
//!   Payloads under [`EXT_MIN`] bytes are copied (cheaper than a second mbuf).
//! - TX frames are queued and sent in bursts of up to 32; a burst the driver cannot take within
//!   [`TX_STALL`] is dropped (and repaired by the protocol's resends).
//! - RX polls the port (`rte_eth_rx_burst`), yielding the CPU between empty polls.
//!
//! The EAL must have been started ([`crate::dpdk::Eal::init`]); ports are configured once per
//! process with one RX and one TX queue by [`DpdkLink::new`].

use super::datagram::Link;
use crate::dpdk::{self, sys, Eal};
use crate::engine::Backend;
use crate::transfer::Error;
use std::collections::{HashSet, VecDeque};
use std::io;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// EtherType of parthenon frames.
pub const ETHER_TYPE: u16 = 0x88B5;
/// Payloads at least this long are attached as external buffers instead of copied.
pub const EXT_MIN: usize = 1024;
/// How long a TX burst may wait for the driver before its frames are dropped.
pub const TX_STALL: Duration = Duration::from_millis(100);
const ETH_LEN: usize = 14;
const BURST: usize = 32;

struct Pool(*mut sys::rte_mempool);
// SAFETY: a DPDK mempool is safe to use from any thread (lockless per-lcore caches, or the
// ring with multi-producer/consumer sync for non-EAL threads).
unsafe impl Send for Pool {}
// SAFETY: as above; the pointer itself is never mutated after creation.
unsafe impl Sync for Pool {}

static POOL: OnceLock<Result<Pool, String>> = OnceLock::new();
static READY_PORTS: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

fn unavailable(reason: String) -> Error {
    Error::Unavailable { backend: Backend::Dpdk, reason }
}

fn pool() -> Result<*mut sys::rte_mempool, Error> {
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

fn setup_port(port: u16, mp: *mut sys::rte_mempool) -> Result<(), Error> {
    let mut ready = READY_PORTS.lock().map_err(|_| unavailable("port table poisoned".into()))?;
    let set = ready.get_or_insert_with(HashSet::new);
    if set.contains(&port) {
        return Ok(());
    }
    // SAFETY: EAL initialised; `mp` is a valid mempool; the port is configured once (guarded
    // by READY_PORTS).
    let rc = unsafe { sys::parthenon_port_setup(port, mp, 1024) };
    if rc < 0 {
        return Err(unavailable(format!("setting up DPDK port {port}: {}", dpdk::strerror(-rc))));
    }
    set.insert(port);
    Ok(())
}

/// Counters of one link.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct LinkStats {
    /// Frames whose payload was attached as an external buffer (not copied).
    pub ext_frames: u64,
    /// Frames sent entirely copied.
    pub copied_frames: u64,
    /// Frames dropped because the driver would not take them.
    pub tx_dropped: u64,
    /// Frames received.
    pub rx_frames: u64,
}

/// A datagram [`Link`] over DPDK ports: sends on `tx_port`, receives on `rx_port`.
#[derive(Debug)]
pub struct DpdkLink {
    tx_port: u16,
    rx_port: u16,
    pool: *mut sys::rte_mempool,
    shinfo: *mut sys::rte_mbuf_ext_shared_info,
    eth: [u8; ETH_LEN],
    max_frame: usize,
    txq: Vec<*mut sys::rte_mbuf>,
    rxq: VecDeque<*mut sys::rte_mbuf>,
    stats: LinkStats,
}

// SAFETY: the raw pointers are a mempool (thread-safe), a shared-info block whose refcount is
// atomic and which only this link frees, and mbufs owned exclusively by this link until handed
// to the driver. A link is used by one thread at a time (`&mut self`).
unsafe impl Send for DpdkLink {}

impl DpdkLink {
    /// A link sending on `tx_port` and receiving on `rx_port` (the same port for a NIC or an
    /// `af_packet` interface; two `net_ring` ports for an in-process pair).
    pub fn new(tx_port: u16, rx_port: u16) -> Result<DpdkLink, Error> {
        let eal = Eal::get().ok_or_else(|| unavailable("DPDK EAL not started".into()))?;
        let mp = pool()?;
        let info = eal.port(tx_port).map_err(|e| unavailable(e.to_string()))?;
        eal.port(rx_port).map_err(|e| unavailable(e.to_string()))?;
        setup_port(tx_port, mp)?;
        setup_port(rx_port, mp)?;
        // SAFETY: plain allocation through the EAL.
        let shinfo = unsafe { sys::parthenon_shinfo_new() };
        if shinfo.is_null() {
            return Err(unavailable("rte_zmalloc(shared info) failed".into()));
        }
        // SAFETY: ports are valid (checked above).
        let max_rx = unsafe { sys::parthenon_port_max_rx_pktlen(rx_port) }
            .min(unsafe { sys::parthenon_port_max_rx_pktlen(tx_port) }) as usize;
        let max_frame = max_rx.min(65_000).saturating_sub(ETH_LEN);
        let mut eth = [0u8; ETH_LEN];
        eth[..6].copy_from_slice(&[0xff; 6]);
        eth[6..12].copy_from_slice(&info.mac);
        eth[12..14].copy_from_slice(&ETHER_TYPE.to_be_bytes());
        Ok(DpdkLink {
            tx_port,
            rx_port,
            pool: mp,
            shinfo,
            eth,
            max_frame,
            txq: Vec::new(),
            rxq: VecDeque::new(),
            stats: LinkStats::default(),
        })
    }

    /// Counters so far.
    pub fn stats(&self) -> LinkStats {
        self.stats
    }

    fn flush(&mut self) {
        let mut sent = 0usize;
        let start = Instant::now();
        while sent < self.txq.len() {
            let left = &mut self.txq[sent..];
            // SAFETY: the port is started; `left` holds valid mbufs this link owns; the driver
            // takes ownership of the first `n` it returns.
            let n = unsafe { sys::rte_eth_tx_burst(self.tx_port, 0, left.as_mut_ptr(), left.len() as u16) };
            sent += n as usize;
            if n == 0 {
                if start.elapsed() > TX_STALL {
                    for &m in &self.txq[sent..] {
                        // SAFETY: not taken by the driver, still ours.
                        unsafe { sys::rte_pktmbuf_free(m) };
                        self.stats.tx_dropped += 1;
                    }
                    break;
                }
                std::thread::yield_now();
            }
        }
        self.txq.clear();
    }

    fn refs(&self) -> u16 {
        // SAFETY: shinfo is valid until drop.
        unsafe { sys::parthenon_shinfo_refcnt(self.shinfo) }
    }
}

impl Link for DpdkLink {
    fn max_frame(&self) -> usize {
        self.max_frame
    }

    fn send(&mut self, parts: &[&[u8]]) -> io::Result<()> {
        let head = parts.first().copied().unwrap_or(&[]);
        let body: &[u8] = parts.get(1).copied().unwrap_or(&[]);
        if head.len() + body.len() > self.max_frame || parts.len() > 2 {
            return Err(io::Error::from_raw_os_error(libc::EMSGSIZE));
        }
        let mut h = Vec::with_capacity(ETH_LEN + head.len());
        h.extend_from_slice(&self.eth);
        h.extend_from_slice(head);
        let (copy, ext): (&[u8], &[u8]) = if body.len() >= EXT_MIN { (&[], body) } else { (body, &[]) };
        // SAFETY: all pointers are valid for their lengths during the call; `ext` is attached,
        // not copied, and stays valid until `release` has seen every attached mbuf freed (the
        // Link contract obliges the caller to keep it alive until then).
        let m = unsafe {
            sys::parthenon_frame(
                self.pool,
                h.as_ptr().cast(),
                h.len() as u16,
                copy.as_ptr().cast(),
                copy.len() as u16,
                ext.as_ptr().cast(),
                ext.len() as u16,
                self.shinfo,
            )
        };
        if m.is_null() {
            // Pool exhausted: push out what is queued and try once more.
            self.flush();
            return Err(io::Error::from_raw_os_error(libc::ENOBUFS));
        }
        if ext.is_empty() {
            self.stats.copied_frames += 1;
        } else {
            self.stats.ext_frames += 1;
        }
        self.txq.push(m);
        if self.txq.len() >= BURST {
            self.flush();
        }
        Ok(())
    }

    fn recv(&mut self, buf: &mut [u8], timeout: Duration) -> io::Result<Option<usize>> {
        self.flush();
        let deadline = Instant::now() + timeout;
        loop {
            while let Some(m) = self.rxq.pop_front() {
                let mut eth = [0u8; ETH_LEN];
                // SAFETY: `m` is a received mbuf we own; the shim copies into `eth` (14 bytes)
                // and `buf` (at most buf.len()) and frees it.
                let n = unsafe {
                    sys::parthenon_mbuf_take(
                        m,
                        eth.as_mut_ptr().cast(),
                        ETH_LEN as u32,
                        buf.as_mut_ptr().cast(),
                        buf.len() as u32,
                    )
                };
                if n < 0 || eth[12..14] != ETHER_TYPE.to_be_bytes() {
                    continue;
                }
                self.stats.rx_frames += 1;
                return Ok(Some(n as usize));
            }
            let mut pkts = [std::ptr::null_mut::<sys::rte_mbuf>(); BURST];
            // SAFETY: the port is started; `pkts` has room for BURST pointers.
            let n = unsafe { sys::rte_eth_rx_burst(self.rx_port, 0, pkts.as_mut_ptr(), BURST as u16) };
            if n > 0 {
                self.rxq.extend(&pkts[..n as usize]);
                continue;
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            std::thread::yield_now();
        }
    }

    fn release(&mut self) -> io::Result<()> {
        self.flush();
        let start = Instant::now();
        let mut warned = false;
        // Our own reference is 1; anything above is an attached mbuf still in flight.
        while self.refs() > 1 {
            if !warned && start.elapsed() > Duration::from_secs(2) {
                tracing::warn!(refs = self.refs() - 1, "DPDK frames still reference block memory; waiting");
                warned = true;
            }
            std::thread::yield_now();
        }
        Ok(())
    }

    fn peer(&self) -> String {
        format!("dpdk:port{}->port{}", self.tx_port, self.rx_port)
    }
}

impl Drop for DpdkLink {
    fn drop(&mut self) {
        let _ = self.release();
        for m in self.rxq.drain(..) {
            // SAFETY: received mbufs we own.
            unsafe { sys::rte_pktmbuf_free(m) };
        }
        // SAFETY: no attached mbuf remains (release waited), so nothing references shinfo.
        unsafe { sys::parthenon_shinfo_free(self.shinfo) };
    }
}

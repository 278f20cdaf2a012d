//! The DPDK link (feature `dpdk`): the datagram protocol ([`super::datagram`]) over a DPDK
//! ethdev port, bypassing the kernel's network stack.
//!
//! - Frames travel as Ethernet frames with EtherType 0x88B5 (IEEE local experimental),
//!   destination broadcast (the link is point-to-point: a `net_ring` pair in one process, or a
//!   veth pair through `net_af_packet`); other EtherTypes are ignored.
//! - **TX without copying the block, on software ports.** A block data frame sent with
//!   [`Link::send_lent`] is two chained mbufs: a small one holding the Ethernet and frame headers
//!   (copied), and one *attached* to the payload as an external buffer
//!   (`rte_pktmbuf_attach_extbuf`) — the block's memory itself, not a copy. The memory is neither
//!   registered with DPDK nor DMA-mapped, so this is done only when the TX port's driver reads
//!   packets with the CPU ([`TxMode::ZeroCopy`]: `net_ring`, `net_af_packet`, `net_null`,
//!   `net_tap`, `net_pcap`, [`software_driver`]); on any other port (a NIC, which would DMA from
//!   an unmapped address) every frame is copied into mbufs ([`TxMode::Copy`]). The mode is
//!   chosen per link by [`DpdkLink::new`], logged, and reported by [`DpdkLink::tx_mode`] and
//!   [`DpdkLink::describe`]; [`DpdkLink::with_tx_mode`] asks for one (zero-copy on a hardware
//!   port is an error, not a silent downgrade). Everything sent with [`Link::send`] — control
//!   frames, the descriptor, MTU probes — is copied whatever the mode, so a buffer the caller
//!   frees at once (an ABORT's reason) is never referenced. Payloads under [`EXT_MIN`] bytes are
//!   copied too (cheaper than a second mbuf). A frame larger than one mbuf is a chain, which
//!   the port is configured to send (`MULTI_SEGS`) wherever its driver offers it; on a hardware
//!   port whose driver does not, frames are cut to fit one mbuf (2 KiB with the Ethernet
//!   header), and MTU discovery never probes past that.
//! - **Release, per send.** Every attached mbuf holds a reference on the shared-info refcount of
//!   the send it belongs to: the link takes a fresh shared info whenever a send ends with frames
//!   still out, so one send's frames never count against another's. A frame can stay in a
//!   `net_ring` peer's ring for as long as nobody polls it (a resend that arrived after the block
//!   was complete, while the receiver does something else). [`Link::retire`] ends a send: when
//!   none of its frames is out it hands the memory back at once; otherwise the link keeps the
//!   memory with its shared info in a *quarantine* and returns without waiting, and frees each
//!   entry (memory and shared info) once its own count is back to the link's reference —
//!   checked on every later `retire` and `release` and on drop. A link dropped with entries still
//!   referenced leaks them (logged) rather than free them under the frames
//!   ([`DpdkLink::quarantined`] counts them). [`Link::release`] waits for the current send's
//!   frames, at most [`RELEASE_TIMEOUT`] ([`DpdkLink::set_release_timeout`]); past the deadline it
//!   returns `TimedOut`, and the memory stays referenced (the caller then leaks it). A link
//!   dropped with frames of the current send still out leaks that shared info too.
//! - TX frames are queued and sent in bursts of up to 32, pushed out when 32 are queued, before
//!   the link receives, releases or retires, and on [`Link::flush`]; a burst the driver cannot
//!   take within [`TX_STALL`] is dropped (and repaired by the protocol's resends). So is a
//!   frame for which the mbuf pool stays empty after the queue was pushed out (as `UdpLink`
//!   treats `ENOBUFS`): counted in [`LinkStats::tx_dropped`], not an error.
//! - **RX without copying the frame.** [`Link::recv_frame`] lends the received mbuf: the
//!   receiver checks the payload where it lies (for a `net_ring` pair, in the sender's block) and
//!   copies it once, into its place in the block; the mbuf is freed when the frame is dropped, on
//!   whichever thread checked it. Packets split other than (headers | payload) are copied out.
//! - A receive returns by its timeout whatever arrives: frames it drops (another EtherType — the
//!   port is promiscuous — or too long for [`Link::recv`]'s buffer, counted in
//!   [`LinkStats::rx_discarded`]) are timed too, one clock read per 32 of them.
//! - Waiting spins for 2 µs, then naps, so a waiting side leaves the core to the side it waits
//!   for when both share a machine's cores: an empty RX ring 10–100 µs; a full TX ring about
//!   the time half a ring of the frame being sent takes at 16 GB/s, 10 µs–1 ms.
//!
//! The EAL must have been started ([`crate::dpdk::Eal::init`]); ports are configured once per
//! process with one RX and one TX queue by [`DpdkLink::new`]. DPDK's burst functions must not
//! run on one queue from two threads at once, so each queue belongs to one link at a time: a
//! link claims the TX queue of its TX port and the RX queue of its RX port until it is dropped,
//! and opening a link on a queue a live link holds is an error naming the port (a `net_ring`
//! pair, TX 0 / RX 1 and TX 1 / RX 0, shares no queue).

mod frames;
mod port;

use super::datagram::frame::FRAME_HEADER;
use super::datagram::{LentMemory, Link, RxFrame};
use crate::dpdk::{sys, Eal};
use crate::transfer::Error;
use frames::{back_off, copy_out, MbufFrame};
use port::{pool, setup_port, unavailable, Claim, RING_FRAMES};
use std::collections::VecDeque;
use std::io;
use std::mem::ManuallyDrop;
use std::sync::atomic::{fence, Ordering};
use std::time::{Duration, Instant};

/// EtherType of parthenon frames.
pub const ETHER_TYPE: u16 = 0x88B5;
/// Payloads at least this long are attached as external buffers instead of copied.
pub const EXT_MIN: usize = 1024;
/// How long a TX burst may wait for the driver before its frames are dropped.
pub const TX_STALL: Duration = Duration::from_millis(100);
/// How long [`Link::release`] waits for attached frames to be freed (module docs).
pub const RELEASE_TIMEOUT: Duration = Duration::from_secs(5);
/// Drivers that read TX packets with the CPU, so an mbuf may point at memory that is not
/// DMA-mapped: the ports zero-copy TX is used on.
pub const SOFTWARE_DRIVERS: [&str; 5] = ["net_ring", "net_af_packet", "net_null", "net_tap", "net_pcap"];

/// Whether a port of `driver` reads TX packets with the CPU ([`SOFTWARE_DRIVERS`]).
pub fn software_driver(driver: &str) -> bool {
    SOFTWARE_DRIVERS.contains(&driver)
}

/// How a link sends block payloads (module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxMode {
    /// Payloads of [`Link::send_lent`] attached as external buffers (software ports only).
    ZeroCopy,
    /// Every frame copied into mbufs.
    Copy,
}

impl std::fmt::Display for TxMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TxMode::ZeroCopy => "zero-copy",
            TxMode::Copy => "copy",
        })
    }
}

const ETH_LEN: usize = 14;
const BURST: usize = 32;

/// Counters of one link.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct LinkStats {
    /// Frames whose payload was attached as an external buffer (not copied).
    pub ext_frames: u64,
    /// Frames sent entirely copied.
    pub copied_frames: u64,
    /// Frames dropped because the driver would not take them.
    pub tx_dropped: u64,
    /// Frames received (of our EtherType).
    pub rx_frames: u64,
    /// Received frames dropped: of another EtherType, or too long for the buffer given to
    /// [`Link::recv`].
    pub rx_discarded: u64,
}

/// The memory of an ended send whose frames are still out, and the shared info they reference
/// (module docs). Dropping one leaks the memory: only [`DpdkLink::prune`] frees it, after the
/// count says no frame references it.
#[derive(Debug)]
struct Quarantined {
    shinfo: *mut sys::rte_mbuf_ext_shared_info,
    memory: ManuallyDrop<LentMemory>,
}

/// A datagram [`Link`] over DPDK ports: sends on `tx_port`, receives on `rx_port`.
#[derive(Debug)]
pub struct DpdkLink {
    tx_port: u16,
    rx_port: u16,
    pool: *mut sys::rte_mempool,
    /// The shared info of the current send's attached frames (module docs); null when none
    /// could be allocated (frames are then copied).
    shinfo: *mut sys::rte_mbuf_ext_shared_info,
    /// Ended sends whose frames are still out, oldest first.
    quarantine: Vec<Quarantined>,
    eth: [u8; ETH_LEN],
    max_frame: usize,
    txq: Vec<*mut sys::rte_mbuf>,
    /// Frame bytes of each queued mbuf.
    txq_len: Vec<usize>,
    rxq: VecDeque<*mut sys::rte_mbuf>,
    stats: LinkStats,
    tx_mode: TxMode,
    /// The TX port's driver.
    driver: String,
    release_timeout: Duration,
    /// The queues this link uses; given back after `drop` ran (the last field).
    _claim: Claim,
}

// SAFETY: the raw pointers are a mempool (thread-safe), shared-info blocks whose refcounts are
// atomic and which only this link frees, and mbufs owned exclusively by this link until handed
// to the driver; quarantined memory is `Send`. A link is used by one thread at a time
// (`&mut self`).
unsafe impl Send for DpdkLink {}

impl DpdkLink {
    /// A link sending on `tx_port` and receiving on `rx_port` (the same port for a NIC or an
    /// `af_packet` interface; two `net_ring` ports for an in-process pair), zero-copy on a
    /// software port and copying otherwise (module docs). An error when a live link holds the TX
    /// queue of `tx_port` or the RX queue of `rx_port` (module docs).
    pub fn new(tx_port: u16, rx_port: u16) -> Result<DpdkLink, Error> {
        Self::open(tx_port, rx_port, None)
    }

    /// [`DpdkLink::new`] with the TX mode asked for: [`TxMode::ZeroCopy`] on a port whose
    /// driver is not a [`software_driver`] is an error.
    pub fn with_tx_mode(tx_port: u16, rx_port: u16, mode: TxMode) -> Result<DpdkLink, Error> {
        Self::open(tx_port, rx_port, Some(mode))
    }

    fn open(tx_port: u16, rx_port: u16, mode: Option<TxMode>) -> Result<DpdkLink, Error> {
        let eal = Eal::get().ok_or_else(|| unavailable("DPDK EAL not started".into()))?;
        let claim = Claim::take(tx_port, rx_port)?;
        let mp = pool()?;
        let info = eal.port(tx_port).map_err(|e| unavailable(e.to_string()))?;
        let software = software_driver(&info.driver);
        let tx_mode = match mode {
            Some(TxMode::ZeroCopy) if !software => {
                return Err(unavailable(format!(
                    "zero-copy TX on port {tx_port}: driver {} is not a software driver ({}), and block memory is not DMA-mapped",
                    info.driver,
                    SOFTWARE_DRIVERS.join(", ")
                )))
            }
            Some(m) => m,
            None if software => TxMode::ZeroCopy,
            None => TxMode::Copy,
        };
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
        // A hardware port whose driver cannot send mbuf chains gets frames that fit one mbuf
        // (copy mode: Ethernet header, frame header and payload in one segment).
        // SAFETY: the port is valid (checked above).
        let chains = software || unsafe { sys::parthenon_port_multi_segs(tx_port) } != 0;
        let one_mbuf = sys::RTE_MBUF_DEFAULT_DATAROOM as usize;
        let max_frame = max_rx.min(if chains { 65_000 } else { one_mbuf }).saturating_sub(ETH_LEN);
        let mut eth = [0u8; ETH_LEN];
        eth[..6].copy_from_slice(&[0xff; 6]);
        eth[6..12].copy_from_slice(&info.mac);
        eth[12..14].copy_from_slice(&ETHER_TYPE.to_be_bytes());
        Ok(DpdkLink {
            tx_port,
            rx_port,
            pool: mp,
            shinfo,
            quarantine: Vec::new(),
            eth,
            max_frame,
            txq: Vec::new(),
            txq_len: Vec::new(),
            rxq: VecDeque::new(),
            stats: LinkStats::default(),
            tx_mode,
            driver: info.driver,
            release_timeout: RELEASE_TIMEOUT,
            _claim: claim,
        })
        .inspect(|l| tracing::info!(link = %l.describe(), "DPDK link"))
    }

    /// Counters so far.
    pub fn stats(&self) -> LinkStats {
        self.stats
    }

    /// How block payloads are sent (module docs).
    pub fn tx_mode(&self) -> TxMode {
        self.tx_mode
    }

    /// The ports, the TX driver and the TX mode, e.g.
    /// `dpdk port 0 (net_ring) -> port 1, zero-copy TX`.
    pub fn describe(&self) -> String {
        format!("dpdk port {} ({}) -> port {}, {} TX", self.tx_port, self.driver, self.rx_port, self.tx_mode)
    }

    /// How long [`Link::release`] waits (default [`RELEASE_TIMEOUT`]).
    pub fn set_release_timeout(&mut self, timeout: Duration) {
        self.release_timeout = timeout;
    }

    /// Hands the queued frames to the driver (module docs).
    fn push_out(&mut self) {
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
                // The ring is full: nap for about the time the peer needs to take half of it
                // (frames like the next one, at 16 GB/s, faster than any receiver here). The
                // other half keeps the peer busy meanwhile, and a long send wakes about twice
                // per ring's worth of frames, not once per burst: a sender that woke every
                // 30 µs took the core from the receiver 5,000 times a second.
                if start.elapsed() < Duration::from_micros(2) {
                    std::hint::spin_loop();
                } else {
                    let half_ring = (RING_FRAMES as usize / 2) * self.txq_len[sent];
                    let nap = Duration::from_nanos(half_ring as u64 / 16);
                    std::thread::sleep(nap.clamp(Duration::from_micros(10), Duration::from_millis(1)));
                }
            }
        }
        self.txq.clear();
        self.txq_len.clear();
    }

    /// The next received mbuf of ours (EtherType checked), waiting at most `timeout` from
    /// `*waiting`, which is set when this first has to wait or discard: a frame already received
    /// costs no clock read (four per frame were 2 % of a 64 MiB `net_ring` receive).
    fn next_mbuf(&mut self, timeout: Duration, waiting: &mut Option<Instant>) -> Option<*mut sys::rte_mbuf> {
        self.push_out();
        loop {
            while let Some(m) = self.rxq.pop_front() {
                // SAFETY: `m` is a received mbuf we own; the first segment holds at least the
                // Ethernet header or the packet is dropped.
                let ours = unsafe {
                    let (mut p0, mut l0, mut p1, mut l1) = (std::ptr::null(), 0u32, std::ptr::null(), 0u32);
                    sys::parthenon_mbuf_view(m, &mut p0, &mut l0, &mut p1, &mut l1);
                    l0 as usize >= ETH_LEN
                        && std::slice::from_raw_parts(p0.cast::<u8>().add(12), 2) == ETHER_TYPE.to_be_bytes()
                };
                if !ours {
                    // SAFETY: ours to free.
                    unsafe { sys::rte_pktmbuf_free(m) };
                    if self.discarded(timeout, waiting) {
                        return None;
                    }
                    continue;
                }
                self.stats.rx_frames += 1;
                return Some(m);
            }
            let mut pkts = [std::ptr::null_mut::<sys::rte_mbuf>(); BURST];
            // SAFETY: the port is started; `pkts` has room for BURST pointers.
            let n = unsafe { sys::rte_eth_rx_burst(self.rx_port, 0, pkts.as_mut_ptr(), BURST as u16) };
            if n > 0 {
                self.rxq.extend(&pkts[..n as usize]);
                continue;
            }
            let start = *waiting.get_or_insert_with(Instant::now);
            if start.elapsed() >= timeout {
                return None;
            }
            back_off(start);
        }
    }

    /// Counts a received frame just dropped; every [`BURST`] of them, tells whether `timeout`
    /// from `*waiting` (set here if unset) has passed, so that a flood of frames the link drops
    /// cannot keep a receive from returning (one clock read per burst of them).
    fn discarded(&mut self, timeout: Duration, waiting: &mut Option<Instant>) -> bool {
        self.stats.rx_discarded += 1;
        if !self.stats.rx_discarded.is_multiple_of(BURST as u64) {
            return false;
        }
        waiting.get_or_insert_with(Instant::now).elapsed() >= timeout
    }

    /// Queues one frame of `parts` (header, payload), attaching the payload when `attach` and it
    /// is at least [`EXT_MIN`] bytes, else copying it. Both callers guarantee what attaching
    /// needs: `attach` is set only by [`Link::send_lent`], whose caller keeps the payload alive.
    fn send_parts(&mut self, parts: &[&[u8]], attach: bool) -> io::Result<()> {
        let head = parts.first().copied().unwrap_or(&[]);
        let body: &[u8] = parts.get(1).copied().unwrap_or(&[]);
        if head.len() + body.len() > self.max_frame || parts.len() > 2 || head.len() > FRAME_HEADER {
            return Err(io::Error::from_raw_os_error(libc::EMSGSIZE));
        }
        let mut hb = [0u8; ETH_LEN + FRAME_HEADER];
        hb[..ETH_LEN].copy_from_slice(&self.eth);
        hb[ETH_LEN..ETH_LEN + head.len()].copy_from_slice(head);
        let h = &hb[..ETH_LEN + head.len()];
        let attach = attach && body.len() >= EXT_MIN && !self.shinfo.is_null();
        let (copy, ext): (&[u8], &[u8]) = if attach { (&[], body) } else { (body, &[]) };
        let (pool, shinfo) = (self.pool, self.shinfo);
        let frame = || {
            // SAFETY: all pointers are valid for their lengths during the call; `copy` and `h` are
            // copied; `ext` (empty unless `attach`, which only `send_lent` sets, with a live
            // shinfo) is attached and stays valid until `release` or `retire` has seen every
            // mbuf attached on this shinfo freed, or while the quarantine holds it, or forever
            // (the `send_lent` contract). Lengths fit u16: the frame is at most max_frame < 65 536.
            unsafe {
                sys::parthenon_frame(
                    pool,
                    h.as_ptr().cast(),
                    h.len() as u16,
                    copy.as_ptr().cast(),
                    copy.len() as u16,
                    ext.as_ptr().cast(),
                    ext.len() as u16,
                    shinfo,
                )
            }
        };
        let mut m = frame();
        if m.is_null() {
            // Pool exhausted: push out what is queued (the driver frees what it sent) and try
            // once more.
            self.push_out();
            m = frame();
        }
        if m.is_null() {
            // Still none: the frame is lost, as on a full socket buffer; resends repair it.
            self.stats.tx_dropped += 1;
            return Ok(());
        }
        if ext.is_empty() {
            self.stats.copied_frames += 1;
        } else {
            self.stats.ext_frames += 1;
        }
        self.txq.push(m);
        self.txq_len.push(h.len() + copy.len() + ext.len());
        if self.txq.len() >= BURST {
            self.push_out();
        }
        Ok(())
    }

    /// Attached frames of the current send still out (0 without a shared info).
    fn refs(&self) -> u16 {
        out_on(self.shinfo)
    }

    /// Ended sends whose frames are still out: their memory is kept until they are freed
    /// (module docs).
    pub fn quarantined(&self) -> usize {
        self.quarantine.len()
    }

    /// Frees the quarantined sends none of whose frames is out any more.
    fn prune(&mut self) {
        self.quarantine.retain_mut(|q| {
            if out_on(q.shinfo) > 0 {
                return true;
            }
            // SAFETY: no mbuf references the shared info or the memory any more (`out_on` saw
            // the count at the link's own reference, and fenced); both are freed once, as the
            // entry leaves the list.
            unsafe {
                sys::parthenon_shinfo_free(q.shinfo);
                ManuallyDrop::drop(&mut q.memory);
            }
            false
        });
    }
}

/// Attached frames still out on `shinfo` (0 for null): its count less the link's reference.
/// A 0 is fenced, so the frames' last reads of the memory happen before the caller frees it.
fn out_on(shinfo: *mut sys::rte_mbuf_ext_shared_info) -> u16 {
    if shinfo.is_null() {
        return 0;
    }
    // SAFETY: a non-null shinfo of a link is valid until the link frees it.
    let out = unsafe { sys::parthenon_shinfo_refcnt(shinfo) }.saturating_sub(1);
    if out == 0 {
        // Pairs with the release of the decrement of whoever freed the last frame.
        fence(Ordering::Acquire);
    }
    out
}

impl Link for DpdkLink {
    fn max_frame(&self) -> usize {
        self.max_frame
    }

    fn send(&mut self, parts: &[&[u8]]) -> io::Result<()> {
        self.send_parts(parts, false)
    }

    unsafe fn send_lent(&mut self, parts: &[&[u8]]) -> io::Result<()> {
        if self.shinfo.is_null() && self.tx_mode == TxMode::ZeroCopy {
            // None after the last retire: try again (still none, the frame is copied).
            // SAFETY: plain allocation through the EAL.
            self.shinfo = unsafe { sys::parthenon_shinfo_new() };
        }
        let attach = self.tx_mode == TxMode::ZeroCopy;
        self.send_parts(parts, attach)
    }

    fn lends(&self) -> bool {
        self.tx_mode == TxMode::ZeroCopy
    }

    fn flush(&mut self) -> io::Result<()> {
        self.push_out();
        Ok(())
    }

    fn recv(&mut self, buf: &mut [u8], timeout: Duration) -> io::Result<Option<usize>> {
        let mut waiting = None;
        loop {
            let Some(m) = self.next_mbuf(timeout, &mut waiting) else { return Ok(None) };
            if let Some(n) = copy_out(m, buf) {
                return Ok(Some(n));
            }
            if self.discarded(timeout, &mut waiting) {
                return Ok(None);
            }
        }
    }

    fn recv_frame(&mut self, timeout: Duration) -> io::Result<Option<RxFrame>> {
        let Some(m) = self.next_mbuf(timeout, &mut None) else { return Ok(None) };
        let (mut p0, mut l0, mut p1, mut l1) = (std::ptr::null(), 0u32, std::ptr::null(), 0u32);
        // SAFETY: `m` is a received mbuf we own.
        let segs = unsafe { sys::parthenon_mbuf_view(m, &mut p0, &mut l0, &mut p1, &mut l1) };
        let (l0, l1) = (l0 as usize, l1 as usize);
        let head_end = ETH_LEN + FRAME_HEADER;
        // (headers | payload) in two segments, or the whole frame in one: lend it as it lies.
        let lent = if segs == 1 && l0 >= head_end {
            // SAFETY: inside the first segment (l0 bytes).
            Some(unsafe { (p0.cast::<u8>().add(ETH_LEN), p0.cast::<u8>().add(head_end), l0 - head_end) })
        } else if segs == 2 && l0 == head_end {
            // SAFETY: both pointers are segment data of `m`.
            Some(unsafe { (p0.cast::<u8>().add(ETH_LEN), p1.cast::<u8>(), l1) })
        } else {
            None
        };
        match lent {
            Some((head, payload, payload_len)) => {
                Ok(Some(RxFrame::lent(Box::new(MbufFrame { m, head, payload, payload_len }))))
            }
            None => {
                // Any other split (a NIC's scattered RX, a runt): copy it out.
                let mut v = vec![0u8; self.max_frame.max(1 << 16)];
                let n = copy_out(m, &mut v).unwrap_or(0);
                v.truncate(n);
                v.shrink_to_fit();
                Ok(Some(RxFrame::owned(v)))
            }
        }
    }

    fn release(&mut self) -> io::Result<()> {
        self.push_out();
        self.prune();
        let start = Instant::now();
        let mut warned = false;
        while self.refs() > 0 {
            let waited = start.elapsed();
            if waited >= self.release_timeout {
                let refs = self.refs();
                tracing::error!(refs, link = %self.describe(), "DPDK frames still reference lent memory past the release deadline");
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("{refs} DPDK frames still reference lent memory after {:?}", self.release_timeout),
                ));
            }
            if !warned && waited > Duration::from_secs(2) {
                tracing::warn!(refs = self.refs(), "DPDK frames still reference block memory; waiting");
                warned = true;
            }
            back_off(start);
        }
        Ok(())
    }

    fn retire(&mut self, memory: LentMemory) -> Option<LentMemory> {
        // Until it is returned or quarantined, a panic leaks the memory rather than free it.
        let memory = ManuallyDrop::new(memory);
        self.push_out();
        self.prune();
        let out = self.refs();
        if out == 0 {
            return Some(ManuallyDrop::into_inner(memory));
        }
        tracing::debug!(out, link = %self.describe(), "frames of an ended send still out: keeping its memory until they are freed");
        self.quarantine.push(Quarantined { shinfo: self.shinfo, memory });
        // The next send counts on a shared info of its own (null: its frames are copied until
        // `send_lent` can allocate one).
        // SAFETY: plain allocation through the EAL.
        self.shinfo = unsafe { sys::parthenon_shinfo_new() };
        None
    }

    fn peer(&self) -> String {
        format!("dpdk:port{}->port{}", self.tx_port, self.rx_port)
    }
}

impl Drop for DpdkLink {
    fn drop(&mut self) {
        let released = self.release().is_ok();
        for m in self.rxq.drain(..) {
            // SAFETY: received mbufs we own.
            unsafe { sys::rte_pktmbuf_free(m) };
        }
        if released && !self.shinfo.is_null() {
            // SAFETY: no attached mbuf remains (release saw the count back at our own
            // reference), so nothing references shinfo.
            unsafe { sys::parthenon_shinfo_free(self.shinfo) };
        } else if !released {
            // Mbufs still out will drop their reference on it when freed: leave it allocated.
            tracing::error!(link = %self.describe(), "dropping a DPDK link with frames still out: its shared info is leaked");
        }
        self.prune();
        if !self.quarantine.is_empty() {
            // Entries leak their memory and shared info when dropped (`Quarantined`).
            tracing::error!(sends = self.quarantine.len(), link = %self.describe(), "dropping a DPDK link with frames of ended sends still out: their memory is leaked");
        }
    }
}

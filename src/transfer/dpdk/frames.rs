//! Received frames of the DPDK link ([`super`]): an mbuf lent out as a frame, a frame copied out
//! of an mbuf, and how a polling side waits.

use super::{sys, ETH_LEN};
use crate::transfer::datagram::frame::FRAME_HEADER;
use crate::transfer::datagram::LentFrame;
use std::time::{Duration, Instant};

/// Waits a little, longer the longer it has waited since `start`: spins for 2 µs, then naps for
/// an eighth of the wait so far, between 10 and 100 µs. It never yields in a loop: a polling
/// thread that yields keeps running whenever its core is otherwise idle, and on a machine with
/// as many busy threads as cores (sender, receiver and its helper on two cores) that takes a
/// third of the CPU from the threads doing the work. A nap costs a wake-up, but adds at most
/// 100 µs of latency to what it waits for.
pub(super) fn back_off(start: Instant) {
    let waited = start.elapsed();
    if waited < Duration::from_micros(2) {
        std::hint::spin_loop();
    } else {
        std::thread::sleep((waited / 8).clamp(Duration::from_micros(10), Duration::from_micros(100)));
    }
}

/// Copies the frame after the Ethernet header of received mbuf `m` into `buf` and frees `m`;
/// the frame's length, or `None` when it is a runt or does not fit.
pub(super) fn copy_out(m: *mut sys::rte_mbuf, buf: &mut [u8]) -> Option<usize> {
    let mut eth = [0u8; ETH_LEN];
    // SAFETY: `m` is a received mbuf the caller owns and hands over; the shim copies into `eth`
    // (ETH_LEN bytes) and `buf` (at most buf.len()) and frees it.
    let n = unsafe {
        sys::parthenon_mbuf_take(m, eth.as_mut_ptr().cast(), ETH_LEN as u32, buf.as_mut_ptr().cast(), buf.len() as u32)
    };
    usize::try_from(n).ok()
}

/// A received mbuf lent out as a frame: header and payload point into its segments.
pub(super) struct MbufFrame {
    pub(super) m: *mut sys::rte_mbuf,
    pub(super) head: *const u8,
    pub(super) payload: *const u8,
    pub(super) payload_len: usize,
}

// SAFETY: the mbuf is owned by this value alone until it is dropped; mbufs and their pools may
// be used and freed from any thread (the pool's ring is multi-producer/multi-consumer, and an
// attached external buffer's refcount is atomic).
unsafe impl Send for MbufFrame {}

impl LentFrame for MbufFrame {
    fn head(&self) -> &[u8] {
        // SAFETY: FRAME_HEADER bytes inside the first segment (checked when lent); the mbuf
        // lives as long as `self`.
        unsafe { std::slice::from_raw_parts(self.head, FRAME_HEADER) }
    }

    fn payload(&self) -> &[u8] {
        if self.payload_len == 0 {
            return &[];
        }
        // SAFETY: `payload_len` bytes of segment data (checked when lent); the mbuf lives as
        // long as `self`.
        unsafe { std::slice::from_raw_parts(self.payload, self.payload_len) }
    }
}

impl Drop for MbufFrame {
    fn drop(&mut self) {
        // SAFETY: ours, freed once.
        unsafe { sys::rte_pktmbuf_free(self.m) };
    }
}

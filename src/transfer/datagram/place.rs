//! Checking and placing data frames, on the receiving thread or shared with helper threads.
//!
//! A data frame is checked — by the BLAKE3 chaining value of its payload at its offset, or by
//! XXH3 for chunks under 16 KiB ([`super::tree`]) — and placed by copying the payload into the
//! block's buffer. That is all the
//! per-byte work a receiver does, so it is what runs in parallel: the receiving thread reads
//! frames off the link and decides, from their checked headers, which ones are new; each new data
//! frame becomes a [`Job`]; helpers — and the receiving thread whenever the link has nothing for
//! it — take jobs, check and place them, and report an [`Outcome`].
//!
//! Ownership rules, which make the shared buffer sound:
//! - The receiving thread alone decides what is in the block. It queues at most one job per frame
//!   index at a time (the index is "in flight" until its outcome is applied), so every byte of
//!   the buffer is written by at most one job at a time.
//! - A job writes its range of the buffer and then reports through the `results` lock; the
//!   receiving thread reads a range (to compare a duplicate) only after it took that job's
//!   outcome from the same lock, which orders the write before the read.
//! - The buffer outlives every job: [`Work`] borrows it, and helpers leave the job loop
//!   ([`Work::help`]) before the call that borrowed it returns (`pool::run` joins them).

use super::frame::FrameHeader;
use super::link::RxFrame;
use super::tree::{self, Cv};
use std::collections::VecDeque;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// One data frame to check and place.
#[derive(Debug)]
pub(super) struct Job {
    /// Frame index (≥ 1).
    pub index: u32,
    /// The payload check from its header.
    pub check: u64,
    /// The frame; its payload length was checked against the descriptor.
    pub frame: RxFrame,
}

/// What identifies a checked frame's payload: its chaining value, or its XXH3 for chunks not
/// checked by chaining value. Two checked frames of one index with different identities are a
/// conflicting duplicate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Ident {
    /// BLAKE3 chaining value at the frame's offset.
    Cv(Cv),
    /// XXH3-64 of the payload.
    Sum(u64),
}

/// Checks `payload` of frame `index` against its payload `check`: its identity if it matches.
pub(super) fn check(index: u32, check: u64, payload: &[u8], chunk: usize) -> Option<Ident> {
    if tree::by_cv(chunk as u64) {
        let cv = tree::frame_cv((index as u64 - 1) * chunk as u64, payload, chunk);
        FrameHeader::check_data(check, &cv).then_some(Ident::Cv(cv))
    } else {
        FrameHeader::check_payload(check, payload).then_some(Ident::Sum(check))
    }
}

/// What a job found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Outcome {
    /// Checked and placed; its identity.
    Placed(Ident),
    /// The payload does not match its check: dropped, not placed.
    Corrupt,
}

/// The jobs of one block and the buffer they fill.
pub(super) struct Work<'buf> {
    dest: *mut u8,
    cap: usize,
    chunk: usize,
    jobs: Mutex<VecDeque<Job>>,
    results: Mutex<Vec<(u32, Outcome)>>,
    finished: AtomicBool,
    _buf: PhantomData<&'buf mut [u8]>,
}

// SAFETY: `dest` points into a buffer borrowed mutably for 'buf; jobs write disjoint ranges of
// it (one job per index at a time, module docs), and reads of a range happen only after the
// writing job's outcome passed through the `results` lock. Everything else is behind locks or
// atomic.
unsafe impl Sync for Work<'_> {}
// SAFETY: as above; the raw pointer is only an address into the borrowed buffer.
unsafe impl Send for Work<'_> {}

impl<'buf> Work<'buf> {
    /// Jobs filling `buf` (the payload's room: at least the payload length) with frames of
    /// `chunk` bytes.
    pub fn new(buf: &'buf mut [std::mem::MaybeUninit<u8>], chunk: usize) -> Work<'buf> {
        Work {
            dest: buf.as_mut_ptr().cast(),
            cap: buf.len(),
            chunk,
            jobs: Mutex::new(VecDeque::new()),
            results: Mutex::new(Vec::new()),
            finished: AtomicBool::new(false),
            _buf: PhantomData,
        }
    }

    /// Queues a job. The caller guarantees no other job for its index is queued or running,
    /// and that its payload fits its slot (`(index - 1) * chunk + len <= cap`).
    pub fn push(&self, job: Job) {
        lock(&self.jobs).push_back(job);
    }

    /// Jobs queued and not yet taken.
    pub fn backlog(&self) -> usize {
        lock(&self.jobs).len()
    }

    /// Checks and places one queued job, if any; returns whether it ran one.
    pub fn run_one(&self) -> bool {
        let Some(job) = lock(&self.jobs).pop_front() else { return false };
        let r = self.run(job);
        lock(&self.results).push(r);
        true
    }

    fn run(&self, job: Job) -> (u32, Outcome) {
        let off = (job.index as usize - 1) * self.chunk;
        let p = job.frame.payload();
        let Some(ident) = check(job.index, job.check, p, self.chunk) else {
            return (job.index, Outcome::Corrupt);
        };
        assert!(off + p.len() <= self.cap, "job outside the payload buffer");
        // SAFETY: the range [off, off + len) lies inside the borrowed buffer (asserted), and no
        // other job writes it now, nor does anyone read it until this outcome is taken from
        // `results` (module docs).
        unsafe { copy_streaming(p, self.dest.add(off)) };
        (job.index, Outcome::Placed(ident))
    }

    /// Outcomes reported since the last call.
    pub fn take_results(&self) -> Vec<(u32, Outcome)> {
        std::mem::take(&mut *lock(&self.results))
    }

    /// The placed bytes of frame `index` (`len` of them). Only for an index whose `Placed`
    /// outcome was taken with [`Work::take_results`] and that has no job queued or running.
    pub fn placed(&self, index: u32, len: usize) -> &[u8] {
        let off = (index as usize - 1) * self.chunk;
        assert!(off + len <= self.cap, "range outside the payload buffer");
        // SAFETY: inside the buffer (asserted); written by a job whose outcome the caller took
        // through the `results` lock (happens-before), and not written by anyone now.
        unsafe { std::slice::from_raw_parts(self.dest.add(off), len) }
    }

    /// Tells helpers to leave [`Work::help`]; queued jobs are dropped with `self`.
    pub fn finish(&self) {
        self.finished.store(true, Ordering::Release);
    }

    /// A helper's loop: run jobs until [`Work::finish`]. Spins briefly when there is nothing
    /// to do, then naps, so an idle helper leaves the core to the threads that feed it (on a
    /// machine with as many threads as cores, the sender may be one of them); it never yields
    /// in a loop, which would keep it running on any core not otherwise busy.
    pub fn help(&self) {
        let mut idle_since: Option<Instant> = None;
        while !self.finished.load(Ordering::Acquire) {
            if self.run_one() {
                idle_since = None;
                continue;
            }
            let idle = idle_since.get_or_insert_with(Instant::now).elapsed();
            if idle < Duration::from_micros(10) {
                std::hint::spin_loop();
            } else {
                std::thread::sleep(Duration::from_micros(20));
            }
        }
    }
}

/// Copies `src` to `dst` with non-temporal stores where it can: the payload buffer is written
/// once and read only after the whole block is in, so filling the cache with it (and reading
/// each destination line from memory first, as ordinary stores do) only costs memory bandwidth
/// that the two hashing threads share. Ends with a store fence, so the bytes are visible before
/// the outcome is published.
///
/// # Safety
/// `dst` is valid for writes of `src.len()` bytes and does not overlap `src`.
unsafe fn copy_streaming(src: &[u8], dst: *mut u8) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{__m128i, _mm_loadu_si128, _mm_sfence, _mm_stream_si128};
        let n = src.len();
        let head = dst.align_offset(16).min(n);
        // SAFETY: the caller's contract covers [dst, dst + n); `head` ≤ n.
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), dst, head) };
        let mut i = head;
        while i + 16 <= n {
            // SAFETY: in bounds of both (i + 16 ≤ n); `dst + i` is 16-byte aligned; SSE2 is part
            // of x86_64.
            unsafe {
                let v = _mm_loadu_si128(src.as_ptr().add(i).cast::<__m128i>());
                _mm_stream_si128(dst.add(i).cast::<__m128i>(), v);
            }
            i += 16;
        }
        // SAFETY: the tail [i, n) is in bounds; the fence orders the streaming stores before
        // later stores (the outcome's publication).
        unsafe {
            std::ptr::copy_nonoverlapping(src.as_ptr().add(i), dst.add(i), n - i);
            _mm_sfence();
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    // SAFETY: the caller's contract.
    unsafe {
        std::ptr::copy_nonoverlapping(src.as_ptr(), dst, src.len())
    };
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding these locks cannot leave their plain queues inconsistent.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

//! Many cores on one job.
//!
//! **One large buffer** ([`crypt_message`]): the buffer is cut into pieces at 4 KiB boundaries
//! (at most 2 MiB, at least one per thread) that the threads take from a queue. A piece starting
//! at byte `off` uses counters from `2 + off / 16`, exactly
//! the counters the sequential pass gives those bytes, so the ciphertext is identical. Each
//! thread also hashes each piece's ciphertext from a zero accumulator, giving
//! `S_i = Σ_j c_j · H^(m_i - j)` over its `m_i` blocks. GHASH is linear, so the sequential
//! accumulator is recovered as `acc = acc · H^(m_i) ⊕ S_i` segment by segment (starting from the
//! hash of the associated data); then the length block and the encrypted `J0` give the same tag,
//! bit for bit, as the sequential pass.
//!
//! The calling thread works too; the others are helper threads kept between calls
//! ([`pool`](crate::pool)), so a call does not pay for starting threads. On this 2-core guest,
//! starting and joining one scoped thread took 26 µs (median; past 2 ms at times under load);
//! with kept helpers the two-thread seal ran 5–10 % faster at 64 MiB and 30–60 % faster at
//! 4 MiB than with threads started per call (`docs/benchmarks.md`, "Cipher"). Threads take
//! pieces in order, so both stream through the same few MiB of memory.
//!
//! **Many messages** ([`for_each_group`]): messages are dealt to threads in contiguous groups;
//! each message is sealed or opened whole by one thread.

use super::kernel::{finish, lengths, Block, Kernel};
use crate::pool;
use std::sync::Mutex;

/// Buffers at least this long (2 MiB) are split across threads (when more than one is allowed):
/// two threads' worth of the least a thread gets (1 MiB).
pub const PARALLEL_MIN: usize = 2 * SEGMENT_MIN;
/// Each thread gets at least this much (splitting a 1 MiB buffer over two threads started per
/// call measured slower than one thread on this machine, so a second thread joins at 2 MiB).
const SEGMENT_MIN: usize = 1 << 20;

/// How many threads a buffer of `len` bytes is sealed or opened on when up to `threads` are
/// allowed: one below [`PARALLEL_MIN`], else one per 1 MiB up to `threads`.
pub fn threads_for(len: usize, threads: usize) -> usize {
    if len < PARALLEL_MIN {
        1
    } else {
        threads.min(len / SEGMENT_MIN).max(1)
    }
}
/// Segment boundaries fall on multiples of this (a whole number of blocks).
const SEGMENT_ALIGN: usize = 4096;
/// Largest piece a thread takes from the queue at a time.
const PIECE: usize = 2 << 20;

/// Seals (`open = false`) or opens `buf` on up to `threads` threads; returns the tag (computed
/// over the ciphertext in both cases).
///
/// The buffer is cut into pieces of [`PIECE`] bytes that the threads take from a shared queue,
/// so a thread slowed down by other work on its core takes fewer pieces instead of holding
/// everyone up.
pub(crate) fn crypt_message(
    k: &dyn Kernel,
    open: bool,
    nonce: &[u8; 12],
    aad: &[u8],
    buf: &mut [u8],
    threads: usize,
) -> Block {
    let len = buf.len();
    let t = threads_for(len, threads);
    if t == 1 {
        return if open { k.open_message(nonce, aad, buf) } else { k.seal_message(nonce, aad, buf) };
    }
    let mut acc = [0u8; 16];
    if !aad.is_empty() {
        k.ghash(&mut acc, aad);
    }
    let piece = len.div_ceil(t).next_multiple_of(SEGMENT_ALIGN).min(PIECE);
    let queue = Mutex::new(buf.chunks_mut(piece).enumerate());
    let partials = Mutex::new(vec![[0u8; 16]; len.div_ceil(piece)]);
    let worker = || {
        let mut done = Vec::new();
        loop {
            // A poisoned lock means another worker panicked; `pool::run` re-raises that panic.
            let next = match queue.lock() {
                Ok(mut q) => q.next(),
                Err(_) => None,
            };
            let Some((i, segment)) = next else { break };
            // Counter of the piece's first block; wrapping as GCM's inc32 (the message limit
            // keeps it below 2^32 anyway).
            let ctr = 2u32.wrapping_add(((i * piece) / 16) as u32);
            let mut part = [0u8; 16];
            k.crypt(open, nonce, ctr, &mut part, segment, None);
            done.push((i, part));
        }
        let mut p = partials.lock().unwrap_or_else(|e| e.into_inner());
        for (i, part) in done {
            p[i] = part;
        }
    };
    pool::run(t - 1, &worker);
    let partials = partials.into_inner().unwrap_or_else(|e| e.into_inner());
    for (i, part) in partials.iter().enumerate() {
        let blocks = (len - i * piece).min(piece).div_ceil(16);
        k.mul_h_pow(&mut acc, blocks as u64);
        for (a, p) in acc.iter_mut().zip(part) {
            *a ^= p;
        }
    }
    k.ghash(&mut acc, &lengths(aad.len(), len));
    finish(k, nonce, acc)
}

/// Runs `f` over `items` in up to `threads` contiguous groups, taken from a shared queue by the
/// calling thread and by up to `threads - 1` scoped threads (fewer when the system refuses one:
/// every group is still processed, see [`pool::spawn_scoped`]).
pub(crate) fn for_each_group<T: Send>(items: &mut [T], threads: usize, f: impl Fn(usize, &mut T) + Sync) {
    let t = threads.clamp(1, items.len().max(1));
    if t == 1 {
        items.iter_mut().enumerate().for_each(|(i, x)| f(i, x));
        return;
    }
    let per = items.len().div_ceil(t);
    let groups = Mutex::new(items.chunks_mut(per).enumerate());
    let work = || loop {
        // A poisoned lock means another thread panicked in `f`; the scope re-raises that panic.
        let Some((g, group)) = groups.lock().unwrap_or_else(|p| p.into_inner()).next() else { break };
        group.iter_mut().enumerate().for_each(|(i, x)| f(g * per + i, x));
    };
    std::thread::scope(|s| {
        for _ in 1..t {
            if !pool::spawn_scoped(s, work) {
                break;
            }
        }
        work();
    });
}

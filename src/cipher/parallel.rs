//! Many cores on one job.
//!
//! **One large buffer** ([`crypt_message`]): the buffer is cut into one segment per thread at
//! 4 KiB boundaries. Segment `i` starting at byte `off` uses counters from `2 + off / 16`, exactly
//! the counters the sequential pass gives those bytes, so the ciphertext is identical. Each
//! thread also hashes its segment's ciphertext from a zero accumulator, giving
//! `S_i = Σ_j c_j · H^(m_i - j)` over its `m_i` blocks. GHASH is linear, so the sequential
//! accumulator is recovered as `acc = acc · H^(m_i) ⊕ S_i` segment by segment (starting from the
//! hash of the associated data); then the length block and the encrypted `J0` give the same tag,
//! bit for bit, as the sequential pass.
//!
//! **Many messages** ([`for_each_group`]): messages are dealt to threads in contiguous groups;
//! each message is sealed or opened whole by one thread.

use super::kernel::{finish, lengths, Block, Kernel};

/// Buffers at least this long may be split across threads.
pub const PARALLEL_MIN: usize = 1 << 20;
/// No segment is shorter than this (thread start-up would dominate).
const SEGMENT_MIN: usize = 256 << 10;
/// Segment boundaries fall on multiples of this (a whole number of blocks).
const SEGMENT_ALIGN: usize = 4096;

/// Seals (`open = false`) or opens `buf` on up to `threads` threads; returns the tag (computed
/// over the ciphertext in both cases).
pub(crate) fn crypt_message(
    k: &dyn Kernel,
    open: bool,
    nonce: &[u8; 12],
    aad: &[u8],
    buf: &mut [u8],
    threads: usize,
) -> Block {
    let len = buf.len();
    let t = threads.min(len / SEGMENT_MIN).max(1);
    if t == 1 {
        return if open { k.open_message(nonce, aad, buf) } else { k.seal_message(nonce, aad, buf) };
    }
    let mut acc = [0u8; 16];
    if !aad.is_empty() {
        k.ghash(&mut acc, aad);
    }
    let seg = len.div_ceil(t).next_multiple_of(SEGMENT_ALIGN);
    let mut partials = vec![[0u8; 16]; len.div_ceil(seg)];
    std::thread::scope(|s| {
        let mut work = buf.chunks_mut(seg).zip(partials.iter_mut()).enumerate();
        let first = work.next();
        for (i, (segment, part)) in work {
            // Counter of the segment's first block; wrapping as GCM's inc32 (the message limit
            // keeps it below 2^32 anyway).
            let ctr = 2u32.wrapping_add(((i * seg) / 16) as u32);
            s.spawn(move || k.crypt(open, nonce, ctr, part, segment, None));
        }
        if let Some((_, (segment, part))) = first {
            k.crypt(open, nonce, 2, part, segment, None);
        }
    });
    for (i, part) in partials.iter().enumerate() {
        let blocks = (len - i * seg).min(seg).div_ceil(16);
        k.mul_h_pow(&mut acc, blocks as u64);
        for (a, p) in acc.iter_mut().zip(part) {
            *a ^= p;
        }
    }
    k.ghash(&mut acc, &lengths(aad.len(), len));
    finish(k, nonce, acc)
}

/// Runs `f` over `items` in up to `threads` contiguous groups, one scoped thread per group (the
/// first on the calling thread).
pub(crate) fn for_each_group<T: Send>(items: &mut [T], threads: usize, f: impl Fn(usize, &mut T) + Sync) {
    let t = threads.clamp(1, items.len().max(1));
    if t == 1 {
        items.iter_mut().enumerate().for_each(|(i, x)| f(i, x));
        return;
    }
    let per = items.len().div_ceil(t);
    let f = &f;
    std::thread::scope(|s| {
        let mut groups = items.chunks_mut(per).enumerate();
        let first = groups.next();
        for (g, group) in groups {
            s.spawn(move || group.iter_mut().enumerate().for_each(|(i, x)| f(g * per + i, x)));
        }
        if let Some((_, group)) = first {
            group.iter_mut().enumerate().for_each(|(i, x)| f(i, x));
        }
    });
}

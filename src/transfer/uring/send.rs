//! The send side: a block's bytes on the registered socket, in linked rounds of [`SLOTS`] chunks.

use super::ring::{reap, ud, ud_slot, Ring, FILE_SLOT, KIND_READ, KIND_SEND, SOCK_SLOT};
use super::{CHUNK, SLOTS};
use crate::engine::Backend;
use crate::transfer::{BlockId, Error};
use io_uring::{opcode, squeue, types};
use std::time::Duration;

/// Where a send's bytes come from.
pub(super) enum Source<'a> {
    /// Bytes already in memory (the block's mapping, or the caller's slice).
    Memory(&'a [u8]),
    /// The sealed file, read into the registered slots first.
    File { fd: i32, len: u64 },
}

/// Sends all of `src` on fixed file 0, in rounds of up to [`SLOTS`] chunks. With `link` (where
/// [`Ring::links_sends`]) the sends of a round form one linked chain, so the stream keeps their
/// order; a short or failed send cancels the rest of the chain, which is resubmitted from the
/// first byte not sent. Without it (a kernel before 5.12, where a short send may not cancel what
/// is linked after it) one send is submitted per wait, each from the first byte not sent. After
/// every wait, a chunk that went short while a later one sent bytes fails the call (the stream
/// is out of order; no resubmission can mend it). Every notification is awaited before
/// returning (see the module docs on ownership).
///
/// `zc` asks for `SEND_ZC` from memory (`Source::Memory`; a `Source::File` always goes by
/// `SEND_ZC` from the registered slots). The kernel charges such a send to `RLIMIT_MEMLOCK`
/// unless the process is exempt (`crate::detect::memlock_charged`), and refuses it with `ENOMEM`
/// past the limit, before it sends anything (a send that moved bytes reports them instead of an
/// error): the rest of the call then goes by plain `SEND`, from the first byte not sent, and the
/// returned method says so.
///
/// `limit` is the socket's write timeout: a round in which no send completes for that long is
/// cancelled and the call fails with `TimedOut` (module docs, "Timeouts").
pub(super) fn send_all(
    r: &mut Ring,
    src: Source<'_>,
    zc: bool,
    link: bool,
    id: BlockId,
    limit: Option<Duration>,
) -> Result<String, Error> {
    let mut zc = zc;
    let mut refused = false;
    let total = match &src {
        Source::Memory(m) => m.len() as u64,
        Source::File { len, .. } => *len,
    };
    let fixed = matches!(src, Source::File { .. });
    let sock = types::Fixed(SOCK_SLOT);
    let chain = if link { "linked" } else { "sequential" };
    let mut method = match (fixed, zc) {
        (true, _) => format!("io_uring READ_FIXED + {chain} SEND_ZC (registered buffers, registered socket)"),
        (false, true) => format!("io_uring {chain} SEND_ZC from the block mapping (registered socket)"),
        (false, false) => format!("io_uring {chain} SEND (registered socket)"),
    };
    if !link {
        method.push_str(UNLINKED);
    }
    let io_err = |what: &str, e: std::io::Error| Error::io(format!("io_uring {what}"), Some(id), e);
    if let Source::File { fd, .. } = src {
        // Read by its slot in the ring's table, never by descriptor number (module docs, "Rings").
        r.bind_file(fd).map_err(|e| io_err("register block file", e))?;
    }
    let mut off = 0u64;
    while off < total {
        let mut round: Vec<(u64, usize)> = Vec::new(); // (file/memory offset, len); slot = index
        while round.len() < SLOTS && off < total {
            let n = ((total - off) as usize).min(CHUNK);
            round.push((off, n));
            off += n as u64;
        }
        // Base pointer of each chunk.
        let mut bases: Vec<*const u8> = Vec::with_capacity(round.len());
        if let Source::File { .. } = src {
            if !r.registered {
                return Err(Error::Unavailable {
                    backend: Backend::IoUring,
                    reason: "registered buffers missing".into(),
                });
            }
            let ptrs: Vec<*mut u8> = (0..round.len()).map(|slot| r.slot_ptr(slot)).collect();
            let gen = r.next_gen();
            for (slot, &(o, n)) in round.iter().enumerate() {
                let e = opcode::ReadFixed::new(types::Fixed(FILE_SLOT), ptrs[slot], n as u32, slot as u16)
                    .offset(o)
                    .build()
                    .user_data(ud(gen, slot, KIND_READ));
                r.push(&e).map_err(|e| io_err("submit", e))?;
            }
            let mut bad = None;
            reap(r, gen, KIND_READ, 0..round.len(), id, None, |data, res| {
                let (_, n) = round[ud_slot(data)];
                if res < 0 {
                    bad.get_or_insert(std::io::Error::from_raw_os_error(-res));
                } else if res as usize != n {
                    bad.get_or_insert(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "short read of sealed block",
                    ));
                }
            })?;
            if let Some(e) = bad {
                return Err(io_err("READ_FIXED", e));
            }
            bases.extend(ptrs.into_iter().map(|p| p as *const u8));
        } else if let Source::Memory(m) = src {
            bases.extend(round.iter().map(|&(o, _)| m[o as usize..].as_ptr()));
        }
        // Linked sends (one at a time without `link`), resubmitted from the first unsent byte
        // until the round is out.
        let mut sent = vec![0usize; round.len()];
        let mut first = 0usize;
        while first < round.len() {
            let end = if link { round.len() } else { first + 1 };
            let last = end - 1;
            let gen = r.next_gen();
            for slot in first..end {
                let n = round[slot].1 - sent[slot];
                // SAFETY (pointer arithmetic): sent[slot] < chunk length, inside the chunk.
                let p = bases[slot].wrapping_add(sent[slot]);
                let mut e = if zc || fixed {
                    let mut op = opcode::SendZc::new(sock, p, n as u32).flags(libc::MSG_WAITALL);
                    if fixed {
                        op = op.buf_index(Some(slot as u16));
                    }
                    op.build()
                } else {
                    opcode::Send::new(sock, p, n as u32).flags(libc::MSG_WAITALL).build()
                };
                if slot != last {
                    e = e.flags(squeue::Flags::IO_LINK);
                }
                r.push(&e.user_data(ud(gen, slot, KIND_SEND))).map_err(|e| io_err("submit", e))?;
            }
            let mut hard = None;
            let mut charged = false;
            reap(r, gen, KIND_SEND, first..end, id, limit, |data, res| {
                let slot = ud_slot(data);
                if res > 0 {
                    sent[slot] += res as usize;
                } else if res == -libc::ENOMEM && zc && !fixed {
                    charged = true;
                } else if res < 0 && res != -libc::ECANCELED {
                    hard.get_or_insert(std::io::Error::from_raw_os_error(-res));
                } else if res == 0 {
                    hard.get_or_insert(std::io::Error::new(
                        std::io::ErrorKind::WriteZero,
                        "peer accepts no more bytes",
                    ));
                }
            })?;
            if let Some(e) = hard {
                return Err(io_err("send", e));
            }
            let lens: Vec<usize> = round.iter().map(|&(_, n)| n).collect();
            if let Some((short, later)) = out_of_order(&sent, &lens) {
                return Err(io_err(
                    "send",
                    std::io::Error::other(format!(
                        "chunk {short} of a round sent {} of {} bytes while chunk {later} after it sent {}: the \
                         stream is out of order (a kernel whose short linked SEND does not cancel the sends \
                         linked after it: commit 0031275d119e missing)",
                        sent[short], lens[short], sent[later]
                    )),
                ));
            }
            if charged {
                zc = false;
                refused = true;
            }
            first = (first..round.len()).find(|&s| sent[s] < round[s].1).unwrap_or(round.len());
        }
    }
    if refused {
        return Ok(format!(
            "{method}; SEND_ZC refused with ENOMEM (its pages are charged to RLIMIT_MEMLOCK): \
             plain SEND from the first byte not sent"
        ));
    }
    Ok(method)
}

/// The suffix of a method whose sends went one per wait ([`Ring::links_sends`]).
const UNLINKED: &str = "; one send per wait: the kernel lacks IORING_FEAT_NATIVE_WORKERS (before 5.12), where \
     a short SEND may not cancel the sends linked after it";

/// The first chunk of a round that is short (`sent[s] < lens[s]`) while a chunk after it has
/// sent bytes, and that later chunk: the stream then holds the later bytes before the short
/// chunk's rest, and no resubmission can put them back in order. Linked sends cancel what
/// follows a short one, and unlinked ones are submitted one at a time, so this happens only on
/// a kernel that ran linked sends past a short one.
fn out_of_order(sent: &[usize], lens: &[usize]) -> Option<(usize, usize)> {
    let short = sent.iter().zip(lens).position(|(s, n)| s < n)?;
    let later = (short + 1..sent.len()).find(|&t| sent[t] > 0)?;
    Some((short, later))
}

#[cfg(test)]
mod tests {
    use super::out_of_order;

    #[test]
    fn a_short_chunk_before_one_that_sent_is_out_of_order() {
        let lens = [10, 10, 10, 4];
        // In order: whole chunks, then a short one, then nothing sent.
        assert_eq!(out_of_order(&[10, 10, 10, 4], &lens), None);
        assert_eq!(out_of_order(&[10, 3, 0, 0], &lens), None);
        assert_eq!(out_of_order(&[0, 0, 0, 0], &lens), None);
        assert_eq!(out_of_order(&[10, 10, 10, 0], &lens), None);
        // A short (or unsent) chunk followed by one that sent.
        assert_eq!(out_of_order(&[10, 3, 10, 0], &lens), Some((1, 2)));
        assert_eq!(out_of_order(&[0, 0, 0, 4], &lens), Some((0, 3)));
        assert_eq!(out_of_order(&[10, 9, 0, 1], &lens), Some((1, 3)));
    }
}

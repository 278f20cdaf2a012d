//! The sending side of the datagram protocol: discover the frame size, cut the payload into
//! frames, send them all, then answer NACKs until the receiver confirms (DONE) or refuses
//! (ABORT). See [`super`] for the protocol.
//!
//! Every data frame's payload check is the BLAKE3 chaining value of its payload when frames
//! carry 16 KiB or more, else its XXH3 ([`super::tree`]). Computing the values is one BLAKE3 pass
//! over the payload, split over
//! [`DatagramConfig::hash_threads`] threads; a block sent from the store
//! ([`DatagramSender::send_sealed`]) keeps them with its [`SealedBlock`] handle, so sending the
//! same block again (to the next peer, or after a failure) reads none of its bytes: the frames
//! attach the mapped file, and the sender's per-byte work is zero.
//!
//! # Memory lent to the link
//! A zero-copy link ([`Link::lends`], e.g. DPDK on a software port) references a data frame's
//! payload until the frame is freed: a frame the peer has not read yet (a resend that arrived
//! after the block was complete) can stay out long after the send ended. So the sender lends
//! only memory it owns and can give away: a compressed payload, its own mapping of a sealed
//! block's file (a few kept per sender, [`MAPS_KEPT`]), or a copy of a borrowed body in its
//! reused scratch buffer. When a send ends, whatever its outcome, that memory is handed to the
//! link ([`Link::retire`]), which gives it back at once when no frame references it (the scratch
//! buffer is then reused) and otherwise keeps it until none does: frames still out neither fail
//! a confirmed send nor delay it. A panic unwinding out of a send after its first lent frame
//! still hands the memory to the link, and leaks what the link gives back: while unwinding,
//! nothing vouches that the link is done with it. Control frames and the descriptor are always
//! sent copied.
//!
//! # Answering NACKs
//! A NACK lists (start, len) ranges of missing frames. The sender reads at most
//! [`NACK_RANGES`] of them, clips them to the block and merges overlaps, so one NACK resends
//! each frame at most once. All NACKs of a block together may make it resend at most
//! `max_rounds` × (frames in the block) frames, and the whole send ends by
//! [`DatagramConfig::block_timeout`] (checked every 32 frames also while it sends
//! many in a row). Beyond either bound the send fails with [`Error::Timeout`] naming the block.
//!
//! # Silence
//! After its first pass, a sender that hears nothing from the receiver for `resend_timeout`
//! nudges it (the descriptor and the last frame, which make a receiver NACK what it misses, or
//! confirm again a block it has), and gives up after `max_rounds` such rounds in a row
//! ([`Error::Timeout`] naming the block, "no acknowledgement"): a receiver that is gone costs
//! about `max_rounds` × `resend_timeout`, not `block_timeout`. Hearing from the receiver is a NACK
//! that asks for a frame of the block, or a PROGRESS of the block that reports more frames in
//! than the last one (at most `count` of them); frames that are garbage, ask for nothing or
//! report nothing new do not hold the sender. A receiver sends PROGRESS every `resend_timeout`
//! while it places frames without NACKing (a backlog of frames to check on a loaded machine
//! outlasts the silence limit), and once every frame is in, before it checks the digest and
//! stores the block. From that last one on, the receiver reads nothing until it confirms (the
//! store's write and fsync of a large block can take seconds), so silence no longer ends the
//! send: DONE, ABORT or `block_timeout` does. Nudges go on, so a lost DONE is repeated: the
//! descriptor alone, at intervals doubling up to 32 × `resend_timeout`, since a busy receiver
//! reads none of them until it is done. A send without a deadline (`block_timeout` too long to
//! add to the clock) keeps the silence limit and its nudges, so no send waits forever. A
//! receiver that says nothing of its progress (a PROGRESS lost, or a peer that never sends one:
//! older receivers, or an unknown kind being ignored) leaves the silence limit in force.
//! Each send of a block is an *attempt* with a number of its own (fresh per send, never 0, in
//! every frame's header), and the receiver's NACK, PROGRESS and ABORT carry the number of the
//! send they answer. A send reads only those of its own attempt, so late answers to an earlier
//! send of the same block — an ABORT from a receive that gave up on it, a PROGRESS of every
//! frame, NACKs — neither fail a retry nor hold it. A DONE ends any send of its block, whatever
//! its attempt: it says, truthfully, that the receiver holds the block.

use super::compress;
use super::frame::{Codec, Descriptor, FrameHeader, Kind, DESCRIPTOR_LEN, FRAME_HEADER};
use super::link::{LentMemory, Link};
use super::mtu::MtuCache;
use super::session::{send_frame, DatagramConfig, DatagramReport, MIN_FRAME, NACK_RANGES};
use super::tree::{self, FrameCvs};
use crate::transfer::store::SealedBlock;
use crate::transfer::wire::BlockHeader;
use crate::transfer::{BlockId, Error, HEADER_LEN};
use memmap2::Mmap;
use std::borrow::Cow;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Sealed blocks whose mapping a sender keeps for lending to a zero-copy link.
pub const MAPS_KEPT: usize = 4;

/// Frames a sender sends between two checks of its deadline while it sends many in a row (the
/// first pass, a NACK's resends): one clock read per burst, and a link that makes each burst
/// wait (a full DPDK ring) cannot hold the send for more than a burst past `block_timeout`.
const DEADLINE_EVERY: u32 = 32;

/// A sealed block's file as mapped by a sender, keyed by block, device and inode.
type KeptMap = ((BlockId, u64, u64), Arc<Mmap>);

/// One block on its way out.
struct Outgoing<'a> {
    id: BlockId,
    /// The header when the caller knows it (a sealed block); else it is made here.
    header: Option<BlockHeader>,
    body: &'a [u8],
    payload: &'a [u8],
    /// Whether data frames go out with [`Link::send_lent`] (the payload is the sender's own).
    lent: bool,
    codec: Codec,
    /// Where the payload's frame CVs are kept between sends, if anywhere.
    cache: Option<&'a SealedBlock>,
}

/// Where a payload is sent from.
enum Source<'a> {
    /// The caller's memory: sent copied.
    Borrowed(&'a [u8]),
    /// The sender's own buffer (a compressed payload, or the scratch copy of a borrowed body).
    Owned(Vec<u8>),
    /// A sealed block's file as mapped by this sender (the body after the header).
    Mapped(Arc<Mmap>),
}

impl Source<'_> {
    /// The memory as handed to a link when a send ends ([`Link::retire`]); `None` for the
    /// caller's memory, which is never lent.
    fn into_lent(self) -> Option<LentMemory> {
        match self {
            Source::Borrowed(_) => None,
            Source::Owned(v) => Some(Box::new(v)),
            Source::Mapped(m) => Some(Box::new(m)),
        }
    }

    fn bytes(&self) -> &[u8] {
        match self {
            Source::Borrowed(b) => b,
            Source::Owned(v) => v,
            Source::Mapped(m) => m.get(HEADER_LEN..).unwrap_or(&[]),
        }
    }
}

/// A payload's memory while frames sent from it may reference it, with the link they went out
/// on. [`Lending::finish`] ends a send: lent memory is handed to the link ([`Link::retire`]),
/// which gives it back once no frame references it (then a scratch or compressed buffer is kept
/// for the next send) or keeps it until then; memory not lent is freed or kept at once.
/// Dropped without `finish` — a panic unwinding from anywhere between the first lent frame and
/// the end of the send — it still hands lent memory to the link, and leaks what the link gives
/// back rather than free it: during a panic nothing vouches that the link is done with it.
struct Lending<'l, 's> {
    link: &'l mut dyn Link,
    /// `None` once finished.
    source: Option<Source<'s>>,
    /// Whether data frames were sent from `source` with [`Link::send_lent`].
    lent: bool,
}

impl Lending<'_, '_> {
    /// Ends the send (see the type): `Err` only when a link that lent nothing fails to release.
    fn finish(mut self, id: BlockId, scratch: &Mutex<Vec<u8>>) -> std::io::Result<()> {
        let keep = |v: Vec<u8>| {
            let mut s = scratch.lock().unwrap_or_else(|p| p.into_inner());
            if v.capacity() > s.capacity() {
                *s = v;
            }
        };
        if !self.lent {
            let released = self.link.release();
            if let Some(Source::Owned(v)) = self.source.take() {
                keep(v);
            }
            return released;
        }
        let Some(memory) = self.source.take().and_then(Source::into_lent) else { return Ok(()) };
        match self.link.retire(memory).map(|m| m.downcast::<Vec<u8>>()) {
            Some(Ok(v)) => keep(*v),
            Some(Err(_mapping)) => {}
            None => tracing::debug!(block = %id, "frames of the block are still out: the link keeps their memory"),
        }
        Ok(())
    }
}

impl Drop for Lending<'_, '_> {
    fn drop(&mut self) {
        if !self.lent {
            // Nothing of it was lent: the link references none of it.
            return;
        }
        let Some(memory) = self.source.take().and_then(Source::into_lent) else { return };
        if let Some(m) = self.link.retire(memory) {
            if std::thread::panicking() {
                tracing::error!("a send unwound with frames lent: leaking their memory");
                std::mem::forget(m);
            }
        }
    }
}

/// Sends blocks over a [`Link`].
#[derive(Debug, Default)]
pub struct DatagramSender {
    /// Session settings.
    pub config: DatagramConfig,
    /// Frame sizes per peer.
    pub mtu: MtuCache,
    /// Room a borrowed body is copied to before it is lent to a zero-copy link; reused.
    scratch: Mutex<Vec<u8>>,
    /// Mappings of recently sent sealed blocks (block, device, inode), most recent first.
    maps: Mutex<Vec<KeptMap>>,
}

impl DatagramSender {
    /// A sender with `config`.
    pub fn new(config: DatagramConfig) -> Self {
        DatagramSender { config, ..Default::default() }
    }

    /// Sends `body` as block `id` and returns once the receiver confirmed it verified the block.
    /// `body` itself is never lent to a link: a zero-copy link gets a copy, which the link keeps
    /// for as long as its frames reference it (module docs). The digest comes from the frames' chaining values (one BLAKE3 pass for both).
    pub fn send_block(&self, link: &mut dyn Link, id: BlockId, body: &[u8]) -> Result<DatagramReport, Error> {
        self.send_with_header(link, id, None, body, None, None)
    }

    /// Sends a sealed block from a [`crate::transfer::BlockStore`] straight from a read-only
    /// mapping, with the digest the store already verified (no re-hash); the mapping and the
    /// frame CVs are kept after its first send (with `block`, or for a zero-copy link with this
    /// sender, [`MAPS_KEPT`]). Same contract as [`DatagramSender::send_block`].
    pub fn send_sealed(&self, link: &mut dyn Link, block: &SealedBlock) -> Result<DatagramReport, Error> {
        let header = Some(*block.header());
        let short = || Error::CorruptStore {
            block: block.id(),
            path: block.path().display().to_string(),
            reason: "mapping shorter than a header".into(),
        };
        if link.lends() {
            let map = self.mapping(block)?;
            let body = map.get(HEADER_LEN..).ok_or_else(short)?;
            return self.send_with_header(link, block.id(), header, body, Some(Arc::clone(&map)), Some(block));
        }
        let map = block.mapped()?;
        let body = map.get(HEADER_LEN..).ok_or_else(short)?;
        self.send_with_header(link, block.id(), header, body, None, Some(block))
    }

    /// This sender's mapping of `block`'s file, kept for the next sends.
    fn mapping(&self, block: &SealedBlock) -> Result<Arc<Mmap>, Error> {
        use std::os::unix::fs::MetadataExt;
        let md = block.file().metadata().map_err(|e| Error::io("stat block", Some(block.id()), e))?;
        let key = (block.id(), md.dev(), md.ino());
        let mut maps = self.maps.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(i) = maps.iter().position(|(k, _)| *k == key) {
            let e = maps.remove(i);
            let m = Arc::clone(&e.1);
            maps.insert(0, e);
            return Ok(m);
        }
        let m = Arc::new(block.map()?);
        maps.insert(0, (key, Arc::clone(&m)));
        maps.truncate(MAPS_KEPT);
        Ok(m)
    }

    fn send_with_header(
        &self,
        link: &mut dyn Link,
        id: BlockId,
        header: Option<BlockHeader>,
        body: &[u8],
        mapped: Option<Arc<Mmap>>,
        cache: Option<&SealedBlock>,
    ) -> Result<DatagramReport, Error> {
        let (payload, codec) = compress::encode(body, self.config.compression);
        // Kept CVs are of the body; a compressed payload has its own.
        let cache = cache.filter(|_| codec == Codec::None);
        let lends = link.lends();
        let source = match payload {
            Cow::Owned(v) => Source::Owned(v),
            Cow::Borrowed(b) => match mapped {
                Some(m) if lends => Source::Mapped(m),
                _ if lends && !b.is_empty() => {
                    let mut s = std::mem::take(&mut *self.scratch.lock().unwrap_or_else(|p| p.into_inner()));
                    s.clear();
                    s.extend_from_slice(b);
                    Source::Owned(s)
                }
                _ => Source::Borrowed(b),
            },
        };
        let lent = lends && !matches!(source, Source::Borrowed(_));
        let mut lending = Lending { link, source: Some(source), lent };
        let r = {
            let Lending { link, source, .. } = &mut lending;
            let payload = source.as_ref().map_or(&[][..], Source::bytes);
            self.send_inner(&mut **link, Outgoing { id, header, body, payload, lent, codec, cache })
        };
        let released = lending.finish(id, &self.scratch).map_err(|e| Error::io("release link buffers", Some(id), e));
        let report = r?;
        released?;
        Ok(report)
    }

    fn send_inner(&self, link: &mut dyn Link, out: Outgoing<'_>) -> Result<DatagramReport, Error> {
        let Outgoing { id, header, body, payload, lent, codec, cache } = out;
        let started = Instant::now();
        // None: no deadline (a `block_timeout` too long to add to the clock, e.g. Duration::MAX).
        let deadline = started.checked_add(self.config.block_timeout);
        let body_len = body.len() as u64;
        let cfg = &self.config;
        let frame = self.mtu.discover(link, cfg).map_err(|e| e.for_block(id))?;
        // MTU discovery found at least MIN_FRAME, which leaves payload room.
        let chunk = tree::chunk_for_frame(frame, FRAME_HEADER).unwrap_or(MIN_FRAME - FRAME_HEADER);
        let by_cv = tree::by_cv(chunk as u64);
        let data_frames = payload.len().div_ceil(chunk);
        let count = u32::try_from(data_frames + 1).map_err(|_| Error::Oversized {
            block: id,
            length: body_len,
            max: (u32::MAX as u64 - 1) * chunk as u64,
        })?;
        // Frames checked by XXH3 need no CVs.
        let cvs: Arc<FrameCvs> = match cache {
            _ if !by_cv => Arc::new(FrameCvs { chunk, cvs: Vec::new() }),
            Some(b) => b.frame_cvs(payload, chunk, cfg.hash_threads),
            None => Arc::new(FrameCvs { chunk, cvs: tree::frame_cvs(payload, chunk, cfg.hash_threads) }),
        };
        let header = header.unwrap_or_else(|| match codec {
            // The payload is the body: its digest is the root of the frame CVs.
            Codec::None if by_cv => {
                BlockHeader { id, length: body_len, digest: tree::payload_hash(body, &cvs.cvs).into() }
            }
            _ => BlockHeader::for_body(id, body),
        });
        let desc: [u8; DESCRIPTOR_LEN] =
            Descriptor { header, payload_len: payload.len() as u64, chunk: chunk as u32, codec }.encode();
        let io = |e| Error::io("send frame", Some(id), e);
        let timed_out = |resent: u64, all_in: bool| Error::Timeout {
            block: Some(id),
            what: format!(
                "not confirmed within {:?} (block_timeout; {resent} frames resent{})",
                cfg.block_timeout,
                if all_in { "; the receiver had said every frame was in" } else { "" }
            ),
        };
        let overdue = || deadline.is_some_and(|d| Instant::now() >= d);
        let attempt = fresh_attempt();
        let send = |link: &mut dyn Link, i: u32| -> std::io::Result<()> {
            let h = FrameHeader { kind: Kind::Data, block: id, index: i, count, payload_len: 0, attempt };
            if i == 0 {
                return send_frame(link, h, &desc);
            }
            let k = i as usize - 1;
            let p = &payload[k * chunk..((k + 1) * chunk).min(payload.len())];
            let head = match cvs.cvs.get(k) {
                Some(cv) => h.encode_data(p.len(), cv),
                None => h.encode(p),
            };
            if lent {
                // SAFETY: `payload` is the sender's own memory (`Source::Owned` or `Mapped`),
                // held by a `Lending` (`send_with_header`) that hands it to the link's `retire`
                // when the send ends, and frees only what `retire` hands back (and nothing
                // while a panic unwinds); the header is copied by every link.
                unsafe { link.send_lent(&[&head, p]) }
            } else {
                link.send(&[&head, p])
            }
        };
        for i in 0..count {
            if i % DEADLINE_EVERY == DEADLINE_EVERY - 1 && overdue() {
                return Err(timed_out(0, false));
            }
            send(link, i).map_err(io)?;
        }
        let mut buf = vec![0u8; link.max_frame().max(MIN_FRAME)];
        let budget = u64::from(cfg.max_rounds.max(1)) * u64::from(count);
        let mut ranges = [(0u32, 0u32); NACK_RANGES];
        let mut resent = 0u64;
        let mut nack_resent = 0u64;
        let mut idle_rounds = 0u32;
        // Frames in, as the receiver last reported (PROGRESS): `count` once it has them all.
        let mut reported = 0u32;
        // When the receiver was last heard usefully (a NACK asking for frames, a PROGRESS of
        // more frames), or last nudged.
        let mut quiet_since = Instant::now();
        // How long a silence lasts before a nudge: `resend_timeout`, doubled after each nudge to
        // a receiver that has every frame when the send has a deadline (up to 32 x): it is busy
        // checking and storing the block.
        let mut pause = cfg.resend_timeout;
        loop {
            let now = Instant::now();
            let left = match deadline {
                None => Duration::MAX,
                Some(d) => match d.checked_duration_since(now).filter(|l| !l.is_zero()) {
                    Some(left) => left,
                    None => return Err(timed_out(resent, reported == count)),
                },
            };
            let wait = pause.saturating_sub(now.duration_since(quiet_since)).min(left);
            let got = if wait.is_zero() {
                None
            } else {
                link.recv(&mut buf, wait).map_err(|e| Error::io("receive control", Some(id), e))?
            };
            let Some(n) = got else {
                if quiet_since.elapsed() < pause {
                    continue;
                }
                idle_rounds = idle_rounds.saturating_add(1);
                // A receiver that has every frame is checking and storing the block, reading
                // nothing meanwhile: only DONE, ABORT or the deadline end the send then, unless
                // there is no deadline (module docs).
                let checking = reported == count && deadline.is_some();
                if idle_rounds > cfg.max_rounds && !checking {
                    return Err(Error::Timeout {
                        block: Some(id),
                        what: format!("no acknowledgement after {idle_rounds} rounds"),
                    });
                }
                // Nudge the receiver: the descriptor and the last frame make it NACK the rest. One
                // that has every frame needs only the descriptor to confirm again (a lost DONE),
                // and hears it less and less often while it is busy.
                send(link, 0).map_err(io)?;
                resent += 1;
                if checking {
                    pause = pause.saturating_mul(2).min(cfg.resend_timeout.saturating_mul(32));
                } else if count > 1 {
                    send(link, count - 1).map_err(io)?;
                    resent += 1;
                }
                quiet_since = Instant::now();
                continue;
            };
            let Ok((h, p)) = FrameHeader::decode(&buf[..n]) else { continue };
            // Only this send's answers count; a DONE of the block from any send ends it (module
            // docs).
            if h.block != id || (h.attempt != attempt && h.kind != Kind::Done) {
                continue;
            }
            match h.kind {
                Kind::Done => {
                    return Ok(DatagramReport {
                        id,
                        frame_size: FRAME_HEADER + chunk,
                        frames: count,
                        resent,
                        codec,
                        raw_bytes: body_len,
                        payload_bytes: payload.len() as u64,
                    })
                }
                Kind::Abort => {
                    return Err(Error::RefusedByPeer { block: id, reason: String::from_utf8_lossy(p).into_owned() })
                }
                Kind::Nack => {
                    let asked = nack_ranges(p, count, &mut ranges);
                    let n: u64 = asked.iter().map(|&(s, e)| u64::from(e - s)).sum();
                    if n == 0 {
                        continue;
                    }
                    if nack_resent + n > budget {
                        return Err(Error::Timeout {
                            block: Some(id),
                            what: format!(
                                "the receiver asked for more than {budget} resends ({} rounds x {count} frames; {nack_resent} resent)",
                                cfg.max_rounds
                            ),
                        });
                    }
                    let mut k = 0u32;
                    for &(s, e) in asked {
                        for i in s..e {
                            k += 1;
                            if k.is_multiple_of(DEADLINE_EVERY) && overdue() {
                                return Err(timed_out(resent + u64::from(k - 1), reported == count));
                            }
                            send(link, i).map_err(io)?;
                        }
                    }
                    nack_resent += n;
                    resent += n;
                    idle_rounds = 0;
                    pause = cfg.resend_timeout;
                    quiet_since = Instant::now();
                }
                Kind::Progress => {
                    // Only news counts: more frames in than last reported, of this block.
                    if h.count != count || h.index > count || h.index <= reported {
                        continue;
                    }
                    reported = h.index;
                    idle_rounds = 0;
                    quiet_since = Instant::now();
                }
                _ => {}
            }
        }
    }
}

/// A number for one send (module docs), never 0: a hash of a per-process count of sends, the
/// process id and the clock, so two sends (in this process, or a restarted one) share a number
/// with a chance of about 2^-32.
fn fresh_attempt() -> u32 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static SENDS: AtomicU64 = AtomicU64::new(0);
    let n = SENDS.fetch_add(1, Ordering::Relaxed);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let mut h = blake3::Hasher::new();
    h.update(&n.to_le_bytes());
    h.update(&std::process::id().to_le_bytes());
    h.update(&now.to_le_bytes());
    let b = h.finalize();
    let a = u32::from_le_bytes([b.as_bytes()[0], b.as_bytes()[1], b.as_bytes()[2], b.as_bytes()[3]]);
    a.max(1)
}

/// The frames a NACK payload asks for, as sorted, disjoint `[start, end)` ranges within
/// `0..count`, written to `out`: at most [`NACK_RANGES`] ranges are read (the rest of a longer
/// payload is ignored), and overlapping or touching ranges are merged, so each frame appears
/// once.
fn nack_ranges<'o>(p: &[u8], count: u32, out: &'o mut [(u32, u32); NACK_RANGES]) -> &'o [(u32, u32)] {
    let mut n = 0;
    for r in p.chunks_exact(8).take(NACK_RANGES) {
        let start = u32::from_le_bytes([r[0], r[1], r[2], r[3]]);
        let len = u32::from_le_bytes([r[4], r[5], r[6], r[7]]);
        let end = start.saturating_add(len).min(count);
        if start < end {
            out[n] = (start, end);
            n += 1;
        }
    }
    out[..n].sort_unstable();
    let mut merged = 0usize;
    for k in 0..n {
        let (s, e) = out[k];
        match merged.checked_sub(1).map(|m| &mut out[m]) {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => {
                out[merged] = (s, e);
                merged += 1;
            }
        }
    }
    &out[..merged]
}

#[cfg(test)]
mod tests;

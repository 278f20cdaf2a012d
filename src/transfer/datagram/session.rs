//! The datagram protocol: send a block as frames, reassemble, ask again for what is missing.
//! See [`super`] for the rules.

use super::compress::{self, Compression};
use super::frame::{Codec, Descriptor, FrameHeader, Kind, DESCRIPTOR_LEN, FRAME_HEADER};
use super::link::Link;
use crate::transfer::wire::{BlockHeader, Digest};
use crate::transfer::{BlockId, Error, Expect};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Smallest frame the protocol uses (and the first MTU probe): fits a descriptor and a NACK.
pub const MIN_FRAME: usize = 512;
/// NACK payloads stay within the smallest frame: 54 (start, len) ranges.
const NACK_RANGES: usize = (MIN_FRAME - FRAME_HEADER) / 8;
/// Padding of MTU probes (the largest frame any link here carries is 65 507 bytes).
static PROBE_PAD: [u8; 65_536] = [0; 65_536];
/// Most frames a receiver buffers before the descriptor arrives.
const MAX_PENDING: usize = 1 << 16;

/// Timeouts and policies of a datagram session.
#[derive(Debug, Clone, Copy)]
pub struct DatagramConfig {
    /// How long a side waits for the other before asking again (NACK / descriptor resend).
    pub resend_timeout: Duration,
    /// Resend rounds before giving up on a block.
    pub max_rounds: u32,
    /// Compression policy of the sender.
    pub compression: Compression,
    /// How long one MTU probe waits for its answer.
    pub probe_timeout: Duration,
    /// How long a receiver waits for the first frame of a block.
    pub idle_timeout: Duration,
}

impl Default for DatagramConfig {
    fn default() -> Self {
        DatagramConfig {
            resend_timeout: Duration::from_millis(20),
            max_rounds: 50,
            compression: Compression::Auto,
            probe_timeout: Duration::from_millis(10),
            idle_timeout: Duration::from_secs(10),
        }
    }
}

/// What one datagram send did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DatagramReport {
    /// The block.
    pub id: BlockId,
    /// Frame size used (from MTU discovery).
    pub frame_size: usize,
    /// Frames in the block (descriptor included).
    pub frames: u32,
    /// Frames sent again after NACKs or timeouts.
    pub resent: u64,
    /// Payload codec.
    pub codec: Codec,
    /// Body bytes.
    pub raw_bytes: u64,
    /// Payload bytes after compression.
    pub payload_bytes: u64,
}

/// One block on its way out (keeps `send_inner`'s signature small).
struct Outgoing<'a> {
    header: BlockHeader,
    payload: &'a [u8],
    codec: Codec,
    desc: &'a mut [u8; DESCRIPTOR_LEN],
}

/// Largest working frame per peer, found by [`MtuCache::discover`].
#[derive(Debug, Default)]
pub struct MtuCache {
    map: Mutex<HashMap<String, usize>>,
}

fn send_frame(link: &mut dyn Link, h: FrameHeader, payload: &[u8]) -> std::io::Result<()> {
    let head = h.encode(payload);
    link.send(&[&head, payload])
}

fn control(kind: Kind, block: BlockId, index: u32, count: u32) -> FrameHeader {
    FrameHeader { kind, block, index, count, payload_len: 0 }
}

impl MtuCache {
    /// The cached frame size for `peer`, if discovered.
    pub fn get(&self, peer: &str) -> Option<usize> {
        self.map.lock().ok().and_then(|m| m.get(peer).copied())
    }

    /// Forgets `peer` (e.g. after a route change), so the next send discovers again.
    pub fn forget(&self, peer: &str) {
        if let Ok(mut m) = self.map.lock() {
            m.remove(peer);
        }
    }

    /// The cached frame size for the link's peer, or a binary search for the largest frame that
    /// gets through (the peer's receiver answers probes), cached.
    pub fn discover(&self, link: &mut dyn Link, cfg: &DatagramConfig) -> Result<usize, Error> {
        let peer = link.peer();
        if let Some(m) = self.get(&peer) {
            return Ok(m);
        }
        let max = link.max_frame();
        let mut buf = vec![0u8; max.max(MIN_FRAME)];
        let mut probe = |size: usize| -> Result<bool, Error> {
            // Static padding: a zero-copy link may reference it after `send` returns.
            let pad = &PROBE_PAD[..size - FRAME_HEADER];
            for _ in 0..2 {
                let h =
                    FrameHeader { kind: Kind::Probe, block: BlockId(0), index: size as u32, count: 0, payload_len: 0 };
                match send_frame(link, h, pad) {
                    Ok(()) => {}
                    Err(e) if e.raw_os_error() == Some(libc::EMSGSIZE) => return Ok(false),
                    Err(e) => return Err(Error::io("send MTU probe", None, e)),
                }
                let deadline = Instant::now() + cfg.probe_timeout;
                while let Some(left) = deadline.checked_duration_since(Instant::now()) {
                    let Some(n) =
                        link.recv(&mut buf, left).map_err(|e| Error::io("receive MTU probe answer", None, e))?
                    else {
                        break;
                    };
                    if let Ok((h, _)) = FrameHeader::decode(&buf[..n]) {
                        if h.kind == Kind::ProbeAck && h.index as usize == size {
                            return Ok(true);
                        }
                    }
                }
            }
            Ok(false)
        };
        if max < MIN_FRAME || !probe(MIN_FRAME)? {
            return Err(Error::Timeout { what: format!("peer {peer} answers no MTU probe of {MIN_FRAME} bytes") });
        }
        let frame = if probe(max)? {
            max
        } else {
            let (mut lo, mut hi) = (MIN_FRAME, max);
            while hi - lo > 1 {
                let mid = lo + (hi - lo) / 2;
                if probe(mid)? {
                    lo = mid;
                } else {
                    hi = mid;
                }
            }
            lo
        };
        tracing::debug!(%peer, frame, "MTU discovered");
        if let Ok(mut m) = self.map.lock() {
            m.insert(peer, frame);
        }
        Ok(frame)
    }
}

/// Sends blocks over a [`Link`].
#[derive(Debug, Default)]
pub struct DatagramSender {
    /// Session settings.
    pub config: DatagramConfig,
    /// Frame sizes per peer.
    pub mtu: MtuCache,
}

impl DatagramSender {
    /// A sender with `config`.
    pub fn new(config: DatagramConfig) -> Self {
        DatagramSender { config, mtu: MtuCache::default() }
    }

    /// Sends `body` as block `id` and returns once the receiver confirmed it verified the block.
    /// Before returning (also on error) it waits until the link no longer references `body`.
    pub fn send_block(&self, link: &mut dyn Link, id: BlockId, body: &[u8]) -> Result<DatagramReport, Error> {
        self.send_with_header(link, BlockHeader::for_body(id, body), body)
    }

    /// Sends a sealed block from a [`crate::transfer::BlockStore`] straight from its read-only
    /// mapping, with the digest the store already verified (no re-hash). Same contract as
    /// [`DatagramSender::send_block`].
    pub fn send_sealed(
        &self,
        link: &mut dyn Link,
        block: &crate::transfer::SealedBlock,
    ) -> Result<DatagramReport, Error> {
        let map = block.map()?;
        self.send_with_header(link, *block.header(), &map[crate::transfer::HEADER_LEN..])
    }

    fn send_with_header(&self, link: &mut dyn Link, header: BlockHeader, body: &[u8]) -> Result<DatagramReport, Error> {
        let id = header.id;
        let (payload, codec) = compress::encode(body, self.config.compression);
        let mut desc = [0u8; DESCRIPTOR_LEN];
        let r = self.send_inner(link, Outgoing { header, payload: &payload, codec, desc: &mut desc });
        // Frames may reference `payload` (which may be `body`) and `desc` until the link
        // releases them; all are still alive here.
        let released = link.release().map_err(|e| Error::io("release link buffers", Some(id), e));
        let report = r?;
        released?;
        Ok(report)
    }

    fn send_inner(&self, link: &mut dyn Link, out: Outgoing<'_>) -> Result<DatagramReport, Error> {
        let Outgoing { header, payload, codec, desc } = out;
        let id = header.id;
        let body_len = header.length;
        let cfg = &self.config;
        let frame = self.mtu.discover(link, cfg)?;
        let chunk = frame - FRAME_HEADER;
        let data_frames = payload.len().div_ceil(chunk);
        let count = u32::try_from(data_frames + 1).map_err(|_| Error::Oversized {
            block: id,
            length: body_len,
            max: (u32::MAX as u64 - 1) * chunk as u64,
        })?;
        *desc = Descriptor { header, payload_len: payload.len() as u64, chunk: chunk as u32, codec }.encode();
        let desc = &*desc;
        let io = |e| Error::io("send frame", Some(id), e);
        let send = |link: &mut dyn Link, i: u32| -> std::io::Result<()> {
            let h = FrameHeader { kind: Kind::Data, block: id, index: i, count, payload_len: 0 };
            if i == 0 {
                send_frame(link, h, desc)
            } else {
                let s = (i as usize - 1) * chunk;
                send_frame(link, h, &payload[s..(s + chunk).min(payload.len())])
            }
        };
        for i in 0..count {
            send(link, i).map_err(io)?;
        }
        let mut buf = vec![0u8; link.max_frame().max(MIN_FRAME)];
        let mut resent = 0u64;
        let mut idle_rounds = 0u32;
        loop {
            let Some(n) =
                link.recv(&mut buf, cfg.resend_timeout).map_err(|e| Error::io("receive control", Some(id), e))?
            else {
                idle_rounds += 1;
                if idle_rounds > cfg.max_rounds {
                    return Err(Error::Timeout {
                        what: format!("block {id}: no acknowledgement after {idle_rounds} rounds"),
                    });
                }
                // Nudge the receiver: the descriptor and the last frame make it NACK the rest.
                send(link, 0).map_err(io)?;
                if count > 1 {
                    send(link, count - 1).map_err(io)?;
                }
                resent += 2;
                continue;
            };
            let Ok((h, p)) = FrameHeader::decode(&buf[..n]) else { continue };
            if h.block != id {
                continue;
            }
            match h.kind {
                Kind::Done => {
                    return Ok(DatagramReport {
                        id,
                        frame_size: frame,
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
                    idle_rounds = 0;
                    for r in p.chunks_exact(8) {
                        let start = u32::from_le_bytes([r[0], r[1], r[2], r[3]]);
                        let len = u32::from_le_bytes([r[4], r[5], r[6], r[7]]);
                        for i in start..start.saturating_add(len).min(count) {
                            send(link, i).map_err(io)?;
                            resent += 1;
                        }
                    }
                }
                _ => {}
            }
        }
    }
}

/// Receives blocks from a [`Link`]; answers MTU probes while it waits.
#[derive(Debug, Default)]
pub struct DatagramReceiver {
    /// Session settings.
    pub config: DatagramConfig,
    last_done: Option<BlockId>,
}

struct Assembly {
    id: BlockId,
    count: u32,
    desc: Option<Descriptor>,
    payload: Vec<u8>,
    have: Vec<bool>,
    have_n: u32,
    pending: Vec<(u32, Vec<u8>)>,
}

impl Assembly {
    fn expected_len(&self, d: &Descriptor, i: u32) -> usize {
        let chunk = d.chunk as u64;
        if i + 1 < self.count {
            chunk as usize
        } else {
            (d.payload_len - (self.count as u64 - 2) * chunk) as usize
        }
    }

    /// Places data frame `i` (> 0); the descriptor is known.
    fn place(&mut self, i: u32, p: &[u8]) -> Result<(), String> {
        let Some(d) = self.desc else { return Err("no descriptor".into()) };
        let want = self.expected_len(&d, i);
        if p.len() != want {
            return Err(format!("{} payload bytes, expected {want}", p.len()));
        }
        let off = (i as usize - 1) * d.chunk as usize;
        let slot = &mut self.payload[off..off + want];
        if self.have[i as usize] {
            if slot != p {
                return Err("conflicting duplicate (same index, different bytes)".into());
            }
            return Ok(());
        }
        slot.copy_from_slice(p);
        self.have[i as usize] = true;
        self.have_n += 1;
        Ok(())
    }

    fn missing_ranges(&self) -> Vec<(u32, u32)> {
        let mut out = Vec::new();
        let mut i = 0u32;
        while i < self.count && out.len() < NACK_RANGES * 16 {
            if !self.have[i as usize] {
                let s = i;
                while i < self.count && !self.have[i as usize] {
                    i += 1;
                }
                out.push((s, i - s));
            } else {
                i += 1;
            }
        }
        out
    }
}

impl DatagramReceiver {
    /// A receiver with `config`.
    pub fn new(config: DatagramConfig) -> Self {
        DatagramReceiver { config, last_done: None }
    }

    /// Serves the peer while no block is being received: answers MTU probes (a peer discovering
    /// before its first block) and confirms the last block again when its DONE was lost. Returns
    /// after `quiet` without any frame, or when the link is gone.
    pub fn linger(&mut self, link: &mut dyn Link, quiet: Duration) -> Result<(), Error> {
        let mut buf = vec![0u8; link.max_frame().max(MIN_FRAME)];
        loop {
            let n = match link.recv(&mut buf, quiet) {
                Ok(Some(n)) => n,
                Ok(None) => return Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
                Err(e) => return Err(Error::io("receive while lingering", None, e)),
            };
            if let Ok((h, _)) = FrameHeader::decode(&buf[..n]) {
                if h.kind == Kind::Probe {
                    let _ = send_frame(link, control(Kind::ProbeAck, h.block, h.index, 0), &[]);
                } else if h.kind == Kind::Data && self.last_done == Some(h.block) {
                    let _ = send_frame(link, control(Kind::Done, h.block, 0, 0), &[]);
                }
            }
        }
    }

    /// Receives one block: reassembles, asks for missing frames, decodes, checks the digest and
    /// confirms. See [`super`] for what is an error.
    pub fn recv_block(&mut self, link: &mut dyn Link, expect: &Expect) -> Result<(BlockHeader, Vec<u8>), Error> {
        let r = self.recv_inner(link, expect);
        if let Err(e) = &r {
            if let Some(b) = e.block() {
                let reason = e.to_string();
                let _ = send_frame(link, control(Kind::Abort, b, 0, 0), reason.as_bytes());
            }
        }
        r
    }

    fn recv_inner(&mut self, link: &mut dyn Link, expect: &Expect) -> Result<(BlockHeader, Vec<u8>), Error> {
        let cfg = self.config;
        let mut buf = vec![0u8; link.max_frame().max(MIN_FRAME)];
        let mut asm: Option<Assembly> = None;
        let mut corrupt = 0u64;
        let mut rounds = 0u32;
        let mut progress_mark = 0u32;
        let started = Instant::now();
        loop {
            let got = link
                .recv(&mut buf, cfg.resend_timeout)
                .map_err(|e| Error::io("receive frame", asm.as_ref().map(|a| a.id), e))?;
            let Some(n) = got else {
                match &asm {
                    None => {
                        if started.elapsed() > cfg.idle_timeout {
                            return Err(Error::Timeout { what: format!("no block arrived in {:?}", cfg.idle_timeout) });
                        }
                    }
                    Some(a) => {
                        // Progress since the last request resets the count: only stalls give up.
                        if a.have_n > progress_mark {
                            progress_mark = a.have_n;
                            rounds = 0;
                        }
                        rounds += 1;
                        let missing = a.have.iter().filter(|h| !**h).count();
                        if rounds > cfg.max_rounds {
                            return Err(Error::GaveUp {
                                block: a.id,
                                missing,
                                count: a.count,
                                rounds: rounds - 1,
                                corrupt,
                            });
                        }
                        for ranges in a.missing_ranges().chunks(NACK_RANGES) {
                            let p: Vec<u8> = ranges
                                .iter()
                                .flat_map(|(s, l)| s.to_le_bytes().into_iter().chain(l.to_le_bytes()))
                                .collect();
                            send_frame(link, control(Kind::Nack, a.id, 0, ranges.len() as u32), &p)
                                .map_err(|e| Error::io("send NACK", Some(a.id), e))?;
                        }
                    }
                }
                continue;
            };
            let (h, p) = match FrameHeader::decode(&buf[..n]) {
                Ok(x) => x,
                Err(_) => {
                    corrupt += 1;
                    continue;
                }
            };
            match h.kind {
                Kind::Probe => {
                    let _ = send_frame(link, control(Kind::ProbeAck, h.block, h.index, 0), &[]);
                    continue;
                }
                Kind::Data => {}
                _ => continue,
            }
            if self.last_done == Some(h.block) && asm.as_ref().is_none_or(|a| a.id != h.block) {
                // Our DONE was lost: confirm again.
                let _ = send_frame(link, control(Kind::Done, h.block, 0, 0), &[]);
                continue;
            }
            let reject = |reason: String| Error::FrameRejected { block: h.block, index: h.index, reason };
            let a = match &mut asm {
                Some(a) => {
                    if a.id != h.block {
                        return Err(Error::UnexpectedBlock { expected: a.id, got: h.block });
                    }
                    if h.count != a.count {
                        return Err(reject(format!(
                            "frame count {} differs from {} in earlier frames",
                            h.count, a.count
                        )));
                    }
                    a
                }
                None => {
                    if let Some(want) = expect.id {
                        if want != h.block {
                            return Err(Error::UnexpectedBlock { expected: want, got: h.block });
                        }
                    }
                    let max_payload = lz4_flex::block::get_maximum_output_size(expect.max_len as usize) as u64;
                    if h.count == 0 || (h.count as u64 - 1) > max_payload {
                        return Err(reject(format!(
                            "{} frames cannot carry a block of at most {} bytes",
                            h.count, expect.max_len
                        )));
                    }
                    asm.insert(Assembly {
                        id: h.block,
                        count: h.count,
                        desc: None,
                        payload: Vec::new(),
                        have: vec![false; h.count as usize],
                        have_n: 0,
                        pending: Vec::new(),
                    })
                }
            };
            if h.index >= a.count {
                return Err(reject(format!("index {} >= frame count {}", h.index, a.count)));
            }
            if h.index == 0 {
                let d = Descriptor::decode(p).map_err(|r| reject(format!("bad descriptor: {r}")))?;
                if let Some(old) = a.desc {
                    if old != d {
                        return Err(reject("conflicting duplicate descriptor".into()));
                    }
                    continue;
                }
                check_descriptor(&d, a.count, h.block, expect)?;
                a.payload = vec![0u8; d.payload_len as usize];
                a.desc = Some(d);
                a.have[0] = true;
                a.have_n += 1;
                for (i, q) in std::mem::take(&mut a.pending) {
                    a.place(i, &q).map_err(|r| Error::FrameRejected { block: h.block, index: i, reason: r })?;
                }
            } else if a.desc.is_none() {
                if a.pending.len() >= MAX_PENDING {
                    return Err(reject(format!("more than {MAX_PENDING} frames before the descriptor")));
                }
                a.pending.push((h.index, p.to_vec()));
            } else {
                a.place(h.index, p).map_err(reject)?;
            }
            if a.have_n == a.count {
                let Some(a) = asm.take() else { continue };
                let Some(d) = a.desc else { continue };
                let body = compress::decode(a.payload, d.codec, d.header.length as usize).map_err(|r| {
                    Error::FrameRejected { block: a.id, index: 0, reason: format!("payload does not decode: {r}") }
                })?;
                let digest = Digest::of(&body);
                if digest != d.header.digest {
                    return Err(Error::Tampered {
                        block: a.id,
                        expected: d.header.digest.to_hex(),
                        actual: digest.to_hex(),
                    });
                }
                send_frame(link, control(Kind::Done, a.id, 0, 0), &[])
                    .map_err(|e| Error::io("send DONE", Some(a.id), e))?;
                self.last_done = Some(a.id);
                return Ok((d.header, body));
            }
        }
    }
}

fn check_descriptor(d: &Descriptor, count: u32, block: BlockId, expect: &Expect) -> Result<(), Error> {
    let reject = |reason: String| Error::FrameRejected { block, index: 0, reason };
    if d.header.id != block {
        return Err(reject(format!("descriptor names block {}", d.header.id)));
    }
    if d.header.length > expect.max_len {
        return Err(Error::Oversized { block, length: d.header.length, max: expect.max_len });
    }
    let bound = match d.codec {
        Codec::None => d.header.length,
        Codec::Lz4 => lz4_flex::block::get_maximum_output_size(d.header.length as usize) as u64,
    };
    if d.codec == Codec::None && d.payload_len != d.header.length {
        return Err(reject(format!(
            "payload {} bytes but block {} bytes uncompressed",
            d.payload_len, d.header.length
        )));
    }
    if d.payload_len > bound {
        return Err(reject(format!("payload {} bytes exceeds the bound {bound}", d.payload_len)));
    }
    if d.chunk == 0 || (d.chunk as usize) < DESCRIPTOR_LEN {
        return Err(reject(format!("chunk size {} too small", d.chunk)));
    }
    let want = 1 + d.payload_len.div_ceil(d.chunk as u64);
    if want != count as u64 {
        return Err(reject(format!("{count} frames but payload {} / chunk {} needs {want}", d.payload_len, d.chunk)));
    }
    Ok(())
}

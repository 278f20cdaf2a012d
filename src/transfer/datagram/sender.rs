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

use super::compress;
use super::frame::{Codec, Descriptor, FrameHeader, Kind, DESCRIPTOR_LEN, FRAME_HEADER};
use super::link::Link;
use super::mtu::MtuCache;
use super::session::{send_frame, DatagramConfig, DatagramReport, MIN_FRAME};
use super::tree::{self, FrameCvs};
use crate::transfer::store::SealedBlock;
use crate::transfer::wire::BlockHeader;
use crate::transfer::{BlockId, Error};
use std::sync::Arc;

/// One block on its way out.
struct Outgoing<'a> {
    id: BlockId,
    /// The header when the caller knows it (a sealed block); else it is made here.
    header: Option<BlockHeader>,
    body: &'a [u8],
    payload: &'a [u8],
    codec: Codec,
    desc: &'a mut [u8; DESCRIPTOR_LEN],
    /// Where the payload's frame CVs are kept between sends, if anywhere.
    cache: Option<&'a SealedBlock>,
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
    /// The digest comes from the frames' chaining values (one BLAKE3 pass for both).
    pub fn send_block(&self, link: &mut dyn Link, id: BlockId, body: &[u8]) -> Result<DatagramReport, Error> {
        self.send_with_header(link, id, None, body, None)
    }

    /// Sends a sealed block from a [`crate::transfer::BlockStore`] straight from its read-only
    /// mapping, with the digest the store already verified (no re-hash); the mapping and the
    /// frame CVs are kept with `block` after its first send. Same contract as
    /// [`DatagramSender::send_block`].
    pub fn send_sealed(&self, link: &mut dyn Link, block: &SealedBlock) -> Result<DatagramReport, Error> {
        let map = block.mapped()?;
        self.send_with_header(link, block.id(), Some(*block.header()), &map[crate::transfer::HEADER_LEN..], Some(block))
    }

    fn send_with_header(
        &self,
        link: &mut dyn Link,
        id: BlockId,
        header: Option<BlockHeader>,
        body: &[u8],
        cache: Option<&SealedBlock>,
    ) -> Result<DatagramReport, Error> {
        let (payload, codec) = compress::encode(body, self.config.compression);
        // Kept CVs are of the body; a compressed payload has its own.
        let cache = cache.filter(|_| codec == Codec::None);
        let mut desc = [0u8; DESCRIPTOR_LEN];
        let r = self.send_inner(link, Outgoing { id, header, body, payload: &payload, codec, desc: &mut desc, cache });
        // Frames may reference `payload` (which may be `body`) and `desc` until the link
        // releases them; all are still alive here.
        let released = link.release().map_err(|e| Error::io("release link buffers", Some(id), e));
        let report = r?;
        released?;
        Ok(report)
    }

    fn send_inner(&self, link: &mut dyn Link, out: Outgoing<'_>) -> Result<DatagramReport, Error> {
        let Outgoing { id, header, body, payload, codec, desc, cache } = out;
        let body_len = body.len() as u64;
        let cfg = &self.config;
        let frame = self.mtu.discover(link, cfg)?;
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
        *desc = Descriptor { header, payload_len: payload.len() as u64, chunk: chunk as u32, codec }.encode();
        let desc = &*desc;
        let io = |e| Error::io("send frame", Some(id), e);
        let send = |link: &mut dyn Link, i: u32| -> std::io::Result<()> {
            let h = FrameHeader { kind: Kind::Data, block: id, index: i, count, payload_len: 0 };
            if i == 0 {
                return send_frame(link, h, desc);
            }
            let k = i as usize - 1;
            let p = &payload[k * chunk..((k + 1) * chunk).min(payload.len())];
            let head = match cvs.cvs.get(k) {
                Some(cv) => h.encode_data(p.len(), cv),
                None => h.encode(p),
            };
            link.send(&[&head, p])
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

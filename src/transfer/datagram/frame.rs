//! Datagram frames: a 48-byte header and a payload.
//!
//! ```text
//! offset size field
//!      0    4 magic "PDGF"
//!      4    1 version (3)
//!      5    1 kind: 1 DATA, 2 NACK, 3 DONE, 4 PROBE, 5 PROBE_ACK, 6 ABORT, 7 PROGRESS
//!      6    2 reserved, 0
//!      8    8 block id
//!     16    4 index   (DATA: frame index, 0 = the descriptor; PROBE/PROBE_ACK: probed size;
//!                      PROGRESS: frames in so far, the descriptor included)
//!     20    4 count   (DATA, PROGRESS: frames in the block, descriptor included; NACK: indices
//!                      listed)
//!     24    4 payload length
//!     28    4 attempt (DATA: the sender's number for this send of the block; NACK,
//!                      PROGRESS, DONE, ABORT: the attempt they answer; PROBE and
//!                      PROBE_ACK: 0)
//!     32    8 head check: XXH3-64 of bytes 0..32 and 40..48
//!     40    8 payload check (below)
//! ```
//!
//! The payload check is
//! - for DATA frames 1.. (block data) of a block whose chunk is at least 16 KiB
//!   ([`super::tree::by_cv`]): the first 8 bytes of the BLAKE3 chaining value of the payload as
//!   the subtree at offset (index − 1) × chunk ([`super::tree`]);
//! - for every other frame (control frames, the descriptor, data frames of smaller chunks):
//!   XXH3-64 of the payload.
//!
//! The checks catch corruption on the link (a corrupt frame is dropped and asked for again); they
//! are not a security measure — the block's BLAKE3 digest in the descriptor is. For data frames
//! the two share their work: the receiver computes each frame's chaining value once, checks the
//! frame with it, and merges the values into the digest of the whole payload (small frames: see
//! [`super::tree`] for why and what instead). The header is
//! checked on its own, at once ([`FrameHeader::parse`]), so every decision taken from a header
//! (block, index, count, length) rests on checked bytes; a data payload is checked when the
//! chunk size is known ([`FrameHeader::check_data`]); [`FrameHeader::decode`] parses and checks
//! every other frame.

use super::tree::Cv;
use crate::transfer::wire::{BlockHeader, HEADER_LEN};
use crate::transfer::BlockId;

/// Frame header size.
pub const FRAME_HEADER: usize = 48;
/// Descriptor payload size.
pub const DESCRIPTOR_LEN: usize = HEADER_LEN + 8 + 4 + 1;
const MAGIC: [u8; 4] = *b"PDGF";
const VERSION: u8 = 3;

/// What a frame is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    /// Block data; index 0 is the descriptor.
    Data = 1,
    /// Receiver → sender: these indices are missing (payload: u32 LE each).
    Nack = 2,
    /// Receiver → sender: block received, verified and accepted.
    Done = 3,
    /// MTU probe of `index` bytes.
    Probe = 4,
    /// Answer to a probe of `index` bytes.
    ProbeAck = 5,
    /// Receiver → sender: block rejected; payload is the reason (UTF-8).
    Abort = 6,
    /// Receiver → sender: `index` of the block's `count` frames are in, and the receiver is
    /// still at it; `index == count`: every frame is in, and the block is being checked and
    /// accepted (see [`super::sender`] for what the sender makes of it).
    Progress = 7,
}

impl Kind {
    fn from_u8(b: u8) -> Option<Kind> {
        Some(match b {
            1 => Kind::Data,
            2 => Kind::Nack,
            3 => Kind::Done,
            4 => Kind::Probe,
            5 => Kind::ProbeAck,
            6 => Kind::Abort,
            7 => Kind::Progress,
            _ => return None,
        })
    }
}

/// A decoded frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// The kind.
    pub kind: Kind,
    /// The block.
    pub block: BlockId,
    /// See the module docs.
    pub index: u32,
    /// See the module docs.
    pub count: u32,
    /// Payload bytes following the header.
    pub payload_len: u32,
    /// The send this frame belongs to: a sender numbers each send of a block afresh (never
    /// 0), and the receiver's control frames carry the number of the send they answer, so a
    /// sender can tell them from late answers to an earlier send of the same block
    /// ([`super::sender`]).
    pub attempt: u32,
}

fn xxh3(parts: &[&[u8]]) -> u64 {
    let mut h = twox_hash::XxHash3_64::new();
    for p in parts {
        std::hash::Hasher::write(&mut h, p);
    }
    std::hash::Hasher::finish(&h)
}

fn cv_check(cv: &Cv) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&cv[..8]);
    u64::from_le_bytes(b)
}

impl FrameHeader {
    /// Whether this is a block data frame (DATA, index ≥ 1), whose payload check depends on the
    /// block's chunk size.
    pub fn is_block_data(&self) -> bool {
        self.kind == Kind::Data && self.index > 0
    }

    fn head(&self, payload_len: usize, payload_check: u64) -> [u8; FRAME_HEADER] {
        let mut b = [0u8; FRAME_HEADER];
        b[0..4].copy_from_slice(&MAGIC);
        b[4] = VERSION;
        b[5] = self.kind as u8;
        b[8..16].copy_from_slice(&self.block.0.to_le_bytes());
        b[16..20].copy_from_slice(&self.index.to_le_bytes());
        b[20..24].copy_from_slice(&self.count.to_le_bytes());
        b[24..28].copy_from_slice(&(payload_len as u32).to_le_bytes());
        b[28..32].copy_from_slice(&self.attempt.to_le_bytes());
        b[40..48].copy_from_slice(&payload_check.to_le_bytes());
        let c = xxh3(&[&b[..32], &b[40..48]]);
        b[32..40].copy_from_slice(&c.to_le_bytes());
        b
    }

    /// The header bytes of a frame carrying `payload` (which sets `payload_len`) with XXH3 as
    /// its payload check: every frame but the block data frames of chunks checked by chaining
    /// value.
    pub fn encode(&self, payload: &[u8]) -> [u8; FRAME_HEADER] {
        self.head(payload.len(), xxh3(&[payload]))
    }

    /// The header bytes of block data frame `index` (≥ 1) carrying `payload_len` bytes whose
    /// chaining value at the frame's offset is `cv`.
    pub fn encode_data(&self, payload_len: usize, cv: &Cv) -> [u8; FRAME_HEADER] {
        self.head(payload_len, cv_check(cv))
    }

    /// Reads and checks a frame's header (not its payload): the header, the payload check and
    /// the payload, or why it is rejected.
    pub fn parse(frame: &[u8]) -> Result<(FrameHeader, u64, &[u8]), String> {
        if frame.len() < FRAME_HEADER {
            return Err(format!("{} bytes, shorter than a frame header", frame.len()));
        }
        Self::parse_parts(&frame[..FRAME_HEADER], &frame[FRAME_HEADER..])
    }

    /// [`FrameHeader::parse`] for a frame whose header and payload lie apart.
    pub fn parse_parts<'p>(head: &[u8], payload: &'p [u8]) -> Result<(FrameHeader, u64, &'p [u8]), String> {
        if head.len() != FRAME_HEADER {
            return Err(format!("{} bytes, shorter than a frame header", head.len() + payload.len()));
        }
        if head[0..4] != MAGIC {
            return Err("bad magic".into());
        }
        if head[4] != VERSION {
            return Err(format!("unsupported frame version {}", head[4]));
        }
        let u64_at = |o: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&head[o..o + 8]);
            u64::from_le_bytes(b)
        };
        if u64_at(32) != xxh3(&[&head[..32], &head[40..48]]) {
            return Err("header check mismatch".into());
        }
        let kind = Kind::from_u8(head[5]).ok_or_else(|| format!("unknown frame kind {}", head[5]))?;
        let u32_at = |o: usize| u32::from_le_bytes([head[o], head[o + 1], head[o + 2], head[o + 3]]);
        let payload_len = u32_at(24) as usize;
        if payload.len() != payload_len {
            return Err(format!(
                "length {} does not match header ({} + {payload_len})",
                FRAME_HEADER + payload.len(),
                FRAME_HEADER
            ));
        }
        let h = FrameHeader {
            kind,
            block: BlockId(u64_at(8)),
            index: u32_at(16),
            count: u32_at(20),
            payload_len: payload_len as u32,
            attempt: u32_at(28),
        };
        Ok((h, u64_at(40), payload))
    }

    /// Whether a block data frame with payload check `check` (from [`FrameHeader::parse`])
    /// carries a payload whose chaining value at the frame's offset is `cv`.
    pub fn check_data(check: u64, cv: &Cv) -> bool {
        cv_check(cv) == check
    }

    /// Whether a payload matches an XXH3 payload check.
    pub fn check_payload(check: u64, payload: &[u8]) -> bool {
        xxh3(&[payload]) == check
    }

    /// Parses and checks a control frame or a descriptor, returning the header and the payload,
    /// or why it is rejected. Block data frames are refused: which check they carry depends on
    /// the chunk size ([`FrameHeader::check_data`], [`FrameHeader::check_payload`]).
    pub fn decode(frame: &[u8]) -> Result<(FrameHeader, &[u8]), String> {
        let (h, check, payload) = Self::parse(frame)?;
        if h.is_block_data() {
            return Err("block data frame: its check depends on the chunk size".into());
        }
        if !Self::check_payload(check, payload) {
            return Err("payload check mismatch".into());
        }
        Ok((h, payload))
    }
}

/// Codec of a block's payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Codec {
    /// Sent as is.
    None,
    /// LZ4 block format (lz4_flex).
    Lz4,
}

/// The content of DATA frame 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Descriptor {
    /// The block header (id, raw length, BLAKE3 digest of the raw body).
    pub header: BlockHeader,
    /// Encoded payload length (after compression).
    pub payload_len: u64,
    /// Bytes per data frame (all but the last).
    pub chunk: u32,
    /// How the payload is encoded.
    pub codec: Codec,
}

impl Descriptor {
    /// Wire bytes.
    pub fn encode(&self) -> [u8; DESCRIPTOR_LEN] {
        let mut b = [0u8; DESCRIPTOR_LEN];
        b[..HEADER_LEN].copy_from_slice(&self.header.encode());
        b[HEADER_LEN..HEADER_LEN + 8].copy_from_slice(&self.payload_len.to_le_bytes());
        b[HEADER_LEN + 8..HEADER_LEN + 12].copy_from_slice(&self.chunk.to_le_bytes());
        b[HEADER_LEN + 12] = match self.codec {
            Codec::None => 0,
            Codec::Lz4 => 1,
        };
        b
    }

    /// Parses a descriptor payload.
    pub fn decode(p: &[u8]) -> Result<Descriptor, String> {
        if p.len() != DESCRIPTOR_LEN {
            return Err(format!("descriptor is {} bytes, expected {DESCRIPTOR_LEN}", p.len()));
        }
        let mut h = [0u8; HEADER_LEN];
        h.copy_from_slice(&p[..HEADER_LEN]);
        let header = BlockHeader::decode(&h).map_err(|e| e.to_string())?;
        let mut l = [0u8; 8];
        l.copy_from_slice(&p[HEADER_LEN..HEADER_LEN + 8]);
        let mut c = [0u8; 4];
        c.copy_from_slice(&p[HEADER_LEN + 8..HEADER_LEN + 12]);
        let codec = match p[HEADER_LEN + 12] {
            0 => Codec::None,
            1 => Codec::Lz4,
            x => return Err(format!("unknown codec {x}")),
        };
        Ok(Descriptor { header, payload_len: u64::from_le_bytes(l), chunk: u32::from_le_bytes(c), codec })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_round_trip_and_corruption() {
        let h = FrameHeader { kind: Kind::Nack, block: BlockId(3), index: 2, count: 9, payload_len: 4, attempt: 77 };
        let mut f = h.encode(b"abcd").to_vec();
        f.extend_from_slice(b"abcd");
        let (d, p) = FrameHeader::decode(&f).unwrap();
        assert_eq!(d, h);
        assert_eq!(p, b"abcd");
        for i in 0..f.len() {
            let mut g = f.clone();
            g[i] ^= 0x40;
            assert!(FrameHeader::decode(&g).is_err(), "byte {i}");
        }
        assert!(FrameHeader::decode(&f[..f.len() - 1]).is_err());
    }

    #[test]
    fn data_frames_are_checked_by_chaining_value() {
        use crate::transfer::datagram::tree::subtree_cv;
        let payload = vec![7u8; 1024];
        let h = FrameHeader { kind: Kind::Data, block: BlockId(3), index: 2, count: 9, payload_len: 1024, attempt: 77 };
        let mut f = h.encode_data(payload.len(), &subtree_cv(1024, &payload)).to_vec();
        f.extend_from_slice(&payload);
        let check = |f: &[u8]| {
            FrameHeader::parse(f).is_ok_and(|(h, c, p)| {
                h.is_block_data() && FrameHeader::check_data(c, &subtree_cv((h.index as u64 - 1) * 1024, p))
            })
        };
        assert!(check(&f));
        assert!(FrameHeader::decode(&f).is_err(), "decode refuses block data");
        for i in 0..f.len() {
            let mut g = f.clone();
            g[i] ^= 0x40;
            assert!(!check(&g), "byte {i}");
        }
    }

    #[test]
    fn descriptor_round_trip() {
        let d = Descriptor {
            header: BlockHeader::for_body(BlockId(1), b"xyz"),
            payload_len: 3,
            chunk: 1400,
            codec: Codec::Lz4,
        };
        assert_eq!(Descriptor::decode(&d.encode()).unwrap(), d);
    }
}

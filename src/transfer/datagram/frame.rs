//! Datagram frames: a 40-byte header and a payload, checksummed together.
//!
//! ```text
//! offset size field
//!      0    4 magic "PDGF"
//!      4    1 version (1)
//!      5    1 kind: 1 DATA, 2 NACK, 3 DONE, 4 PROBE, 5 PROBE_ACK, 6 ABORT
//!      6    2 reserved, 0
//!      8    8 block id
//!     16    4 index   (DATA: frame index, 0 = the descriptor; PROBE/PROBE_ACK: probed size)
//!     20    4 count   (DATA: frames in the block, descriptor included; NACK: indices listed)
//!     24    4 payload length
//!     28    4 reserved, 0
//!     32    8 checksum: XXH3-64 of bytes 0..32 and the payload
//! ```
//!
//! The checksum catches corruption on the link (a corrupt frame is dropped and asked for again);
//! it is not a security measure — the block's BLAKE3 digest in the descriptor is, and it is
//! checked over the whole reassembled block.
//!
//! DATA frame 0 (the descriptor) carries the 64-byte [`BlockHeader`], then the encoded payload
//! length (u64), the chunk size (u32: every data frame but the last carries exactly this many
//! bytes) and the codec (u8: 0 none, 1 lz4).

use crate::transfer::wire::{BlockHeader, HEADER_LEN};
use crate::transfer::BlockId;

/// Frame header size.
pub const FRAME_HEADER: usize = 40;
/// Descriptor payload size.
pub const DESCRIPTOR_LEN: usize = HEADER_LEN + 8 + 4 + 1;
const MAGIC: [u8; 4] = *b"PDGF";
const VERSION: u8 = 1;

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
}

fn checksum(head: &[u8], payload: &[u8]) -> u64 {
    let mut h = twox_hash::XxHash3_64::new();
    std::hash::Hasher::write(&mut h, head);
    std::hash::Hasher::write(&mut h, payload);
    std::hash::Hasher::finish(&h)
}

impl FrameHeader {
    /// The 40 header bytes for this header and `payload` (which sets `payload_len`).
    pub fn encode(&self, payload: &[u8]) -> [u8; FRAME_HEADER] {
        let mut b = [0u8; FRAME_HEADER];
        b[0..4].copy_from_slice(&MAGIC);
        b[4] = VERSION;
        b[5] = self.kind as u8;
        b[8..16].copy_from_slice(&self.block.0.to_le_bytes());
        b[16..20].copy_from_slice(&self.index.to_le_bytes());
        b[20..24].copy_from_slice(&self.count.to_le_bytes());
        b[24..28].copy_from_slice(&(payload.len() as u32).to_le_bytes());
        let c = checksum(&b[..32], payload);
        b[32..40].copy_from_slice(&c.to_le_bytes());
        b
    }

    /// Parses a whole frame, returning the header and the payload, or why it is rejected.
    pub fn decode(frame: &[u8]) -> Result<(FrameHeader, &[u8]), String> {
        if frame.len() < FRAME_HEADER {
            return Err(format!("{} bytes, shorter than a frame header", frame.len()));
        }
        if frame[0..4] != MAGIC {
            return Err("bad magic".into());
        }
        if frame[4] != VERSION {
            return Err(format!("unsupported frame version {}", frame[4]));
        }
        let kind = Kind::from_u8(frame[5]).ok_or_else(|| format!("unknown frame kind {}", frame[5]))?;
        let u32_at = |o: usize| u32::from_le_bytes([frame[o], frame[o + 1], frame[o + 2], frame[o + 3]]);
        let payload_len = u32_at(24) as usize;
        if frame.len() != FRAME_HEADER + payload_len {
            return Err(format!("length {} does not match header ({} + {payload_len})", frame.len(), FRAME_HEADER));
        }
        let payload = &frame[FRAME_HEADER..];
        let mut c = [0u8; 8];
        c.copy_from_slice(&frame[32..40]);
        if u64::from_le_bytes(c) != checksum(&frame[..32], payload) {
            return Err("checksum mismatch".into());
        }
        let mut id = [0u8; 8];
        id.copy_from_slice(&frame[8..16]);
        Ok((
            FrameHeader {
                kind,
                block: BlockId(u64::from_le_bytes(id)),
                index: u32_at(16),
                count: u32_at(20),
                payload_len: payload_len as u32,
            },
            payload,
        ))
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
        let h = FrameHeader { kind: Kind::Data, block: BlockId(3), index: 2, count: 9, payload_len: 4 };
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

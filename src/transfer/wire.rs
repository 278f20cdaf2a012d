//! The block header: 64 bytes, little-endian, versioned.
//!
//! ```text
//! offset size field
//!      0    4 magic "PBLK"
//!      4    1 version (1)
//!      5    1 digest algorithm (1 = BLAKE3-256)
//!      6    2 reserved, must be 0
//!      8    8 block id (u64)
//!     16    8 body length in bytes (u64, at most MAX_BODY_LEN as a receiver reads it)
//!     24   32 digest of the body
//!     56    8 header check: first 8 bytes of BLAKE3(bytes 0..56)
//! ```
//!
//! The header check catches a corrupted header (a flipped length bit would otherwise turn into a
//! truncation or an oversize error blaming the wrong thing); the body digest catches a corrupted
//! or tampered body. Decoding rejects an unknown magic, version, digest algorithm, non-zero
//! reserved bytes and a bad header check, each with its own reason. Version 1 only knows BLAKE3;
//! a later version may add SHA-256 under algorithm 2.

use super::{BlockId, Error};
use std::fmt;

/// Header size in bytes.
pub const HEADER_LEN: usize = 64;
/// The largest body length a receiver accepts, whatever its [`Expect::max_len`] (2^56 bytes,
/// 64 PiB): a header announcing more is [`Error::Oversized`]. The bound keeps a block's size as a
/// file (`HEADER_LEN + length`, an `off_t`) and the worst-case size of its LZ4 encoding (the
/// datagram path) within 64 bits, so a receiver that sets no limit of its own (`max_len`
/// `u64::MAX`) still computes both without overflow.
///
/// [`Expect::max_len`]: super::Expect::max_len
pub const MAX_BODY_LEN: u64 = 1 << 56;
/// The magic bytes.
pub const MAGIC: [u8; 4] = *b"PBLK";
/// The protocol version this build speaks.
pub const VERSION: u8 = 1;
/// Digest algorithm id of BLAKE3-256.
pub const DIGEST_BLAKE3: u8 = 1;

/// A 32-byte BLAKE3 digest.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Digest(pub [u8; 32]);

impl Digest {
    /// BLAKE3 of `data`.
    pub fn of(data: &[u8]) -> Digest {
        Digest(*blake3::hash(data).as_bytes())
    }

    /// Lower-case hex.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({})", self.to_hex())
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl From<blake3::Hash> for Digest {
    fn from(h: blake3::Hash) -> Self {
        Digest(*h.as_bytes())
    }
}

/// A decoded block header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockHeader {
    /// The block.
    pub id: BlockId,
    /// Body length in bytes.
    pub length: u64,
    /// BLAKE3 of the body.
    pub digest: Digest,
}

impl BlockHeader {
    /// The header of `body` as block `id`.
    pub fn for_body(id: BlockId, body: &[u8]) -> BlockHeader {
        BlockHeader { id, length: body.len() as u64, digest: Digest::of(body) }
    }

    /// The 64 wire bytes.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[0..4].copy_from_slice(&MAGIC);
        b[4] = VERSION;
        b[5] = DIGEST_BLAKE3;
        b[8..16].copy_from_slice(&self.id.0.to_le_bytes());
        b[16..24].copy_from_slice(&self.length.to_le_bytes());
        b[24..56].copy_from_slice(&self.digest.0);
        let check = blake3::hash(&b[..56]);
        b[56..64].copy_from_slice(&check.as_bytes()[..8]);
        b
    }

    /// Parses 64 wire bytes; see the module docs for what is rejected.
    pub fn decode(b: &[u8; HEADER_LEN]) -> Result<BlockHeader, Error> {
        let bad = |reason: String| Error::BadHeader { reason };
        if b[0..4] != MAGIC {
            return Err(bad(format!("magic {:02x?} is not \"PBLK\"", &b[0..4])));
        }
        if b[4] != VERSION {
            return Err(bad(format!("unsupported version {} (this build speaks {VERSION})", b[4])));
        }
        if b[5] != DIGEST_BLAKE3 {
            return Err(bad(format!("unknown digest algorithm {} (version 1 knows 1 = BLAKE3)", b[5])));
        }
        if b[6] != 0 || b[7] != 0 {
            return Err(bad("reserved bytes are not zero".into()));
        }
        let check = blake3::hash(&b[..56]);
        if b[56..64] != check.as_bytes()[..8] {
            return Err(bad("header check mismatch (corrupt header)".into()));
        }
        let mut id = [0u8; 8];
        id.copy_from_slice(&b[8..16]);
        let mut len = [0u8; 8];
        len.copy_from_slice(&b[16..24]);
        let mut d = [0u8; 32];
        d.copy_from_slice(&b[24..56]);
        Ok(BlockHeader { id: BlockId(u64::from_le_bytes(id)), length: u64::from_le_bytes(len), digest: Digest(d) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let h = BlockHeader::for_body(BlockId(42), b"hello");
        assert_eq!(BlockHeader::decode(&h.encode()).unwrap(), h);
    }

    #[test]
    fn every_bit_flip_is_rejected() {
        let h = BlockHeader::for_body(BlockId(7), &[1, 2, 3]);
        let good = h.encode();
        for i in 0..HEADER_LEN * 8 {
            let mut b = good;
            b[i / 8] ^= 1 << (i % 8);
            assert!(BlockHeader::decode(&b).is_err(), "bit {i} flip accepted");
        }
    }

    #[test]
    fn reasons_are_specific() {
        let mut b = BlockHeader::for_body(BlockId(1), b"").encode();
        b[4] = 9;
        assert!(BlockHeader::decode(&b).unwrap_err().to_string().contains("unsupported version 9"));
        let mut b = BlockHeader::for_body(BlockId(1), b"").encode();
        b[0] = b'X';
        assert!(BlockHeader::decode(&b).unwrap_err().to_string().contains("magic"));
    }
}

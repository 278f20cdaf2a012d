//! What a receiver knows of a block so far ([`Assembly`]), and the rules a descriptor must
//! satisfy ([`check_descriptor`]). Used by [`super::receiver`].

use super::frame::{Codec, Descriptor, FrameHeader, DESCRIPTOR_LEN};
use super::link::RxFrame;
use super::mtu::MAX_CHUNK;
use super::place::Ident;
use super::session::NACK_RANGES;
use super::tree::{self, Cv};
use crate::transfer::{BlockId, Error};
use std::collections::{BTreeSet, HashMap};

/// The state of one frame index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Slot {
    /// Not received (or dropped as corrupt).
    Empty,
    /// Kept aside until the descriptor arrives.
    Pending,
    /// Queued to be checked and placed.
    InFlight,
    /// Checked and placed.
    Done,
}

pub(super) struct Assembly {
    pub(super) id: BlockId,
    pub(super) count: u32,
    pub(super) desc: Option<Descriptor>,
    /// Per frame index (0 = the descriptor); empty until the descriptor is checked and the
    /// payload's room reserved (`Rx::allocate`): a frame count alone allocates nothing.
    pub(super) slots: Vec<Slot>,
    /// Indices of the frames in `pending`, while `slots` is empty.
    pub(super) kept: BTreeSet<u32>,
    /// Chaining value per data frame (index − 1), valid where the slot is `Done`; empty when
    /// frames are checked by XXH3 ([`tree::by_cv`]).
    pub(super) cvs: Vec<Cv>,
    pub(super) done_n: u32,
    pub(super) in_flight: usize,
    /// Identities of checked duplicates of frames still in flight, compared when their outcome
    /// arrives.
    pub(super) dups: HashMap<u32, Ident>,
    /// Data frames that came before the descriptor: header, payload check, frame.
    pub(super) pending: Vec<(FrameHeader, u64, RxFrame)>,
    /// Payload bytes of `pending`.
    pub(super) pending_bytes: u64,
}

impl Assembly {
    /// Payload bytes of data frame `i`.
    pub(super) fn expected_len(&self, d: &Descriptor, i: u32) -> usize {
        let chunk = d.chunk as u64;
        if i + 1 < self.count {
            chunk as usize
        } else {
            (d.payload_len - (self.count as u64 - 2) * chunk) as usize
        }
    }

    /// Runs of frames not received, for NACKs (at most `NACK_RANGES` × 16 of them).
    pub(super) fn missing_ranges(&self) -> Vec<(u32, u32)> {
        let mut out = Vec::new();
        if self.slots.is_empty() {
            // Before the descriptor: every frame but those kept aside, in the gaps between them.
            let mut next = 0u32;
            for end in self.kept.iter().copied().chain([self.count]) {
                if end > next {
                    out.push((next, end - next));
                    if out.len() >= NACK_RANGES * 16 {
                        break;
                    }
                }
                next = end.saturating_add(1);
            }
            return out;
        }
        let mut i = 0u32;
        let missing = |i: u32| self.slots[i as usize] == Slot::Empty;
        while i < self.count && out.len() < NACK_RANGES * 16 {
            if missing(i) {
                let s = i;
                while i < self.count && missing(i) {
                    i += 1;
                }
                out.push((s, i - s));
            } else {
                i += 1;
            }
        }
        out
    }

    /// Frames not checked and placed yet (before the descriptor: all of them).
    pub(super) fn missing(&self) -> usize {
        if self.slots.is_empty() {
            return self.count as usize;
        }
        self.slots.iter().filter(|s| **s != Slot::Done).count()
    }
}

/// Checks a descriptor against the frame count, the block and the receiver's `limit` (body
/// bytes, at most `MAX_BODY_LEN`).
pub(super) fn check_descriptor(d: &Descriptor, count: u32, block: BlockId, limit: u64) -> Result<(), Error> {
    let reject = |reason: String| Error::FrameRejected { block, index: 0, reason };
    if d.header.id != block {
        return Err(reject(format!("descriptor names block {}", d.header.id)));
    }
    if d.header.length > limit {
        return Err(Error::Oversized { block, length: d.header.length, max: limit });
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
    if !tree::valid_chunk(d.chunk as u64) || (d.chunk as usize) < DESCRIPTOR_LEN || d.chunk as usize > MAX_CHUNK {
        return Err(reject(format!(
            "chunk size {}: under {DESCRIPTOR_LEN} bytes, over the {MAX_CHUNK} a frame carries, or from 16 KiB on not a power of two",
            d.chunk
        )));
    }
    let want = 1 + d.payload_len.div_ceil(d.chunk as u64);
    if want != count as u64 {
        return Err(reject(format!("{count} frames but payload {} / chunk {} needs {want}", d.payload_len, d.chunk)));
    }
    Ok(())
}

//! Hand-made datagram frames, and a receiver fed with them: the hostile peer of the datagram
//! tests.

use parthenon::transfer::datagram::frame::{Codec, Descriptor, FrameHeader, Kind};
use parthenon::transfer::datagram::{tree, DatagramConfig, DatagramReceiver, Impairments, Link, MemLink};
use parthenon::transfer::wire::BlockHeader;
use parthenon::transfer::{BlockId, Error, Expect};
use std::thread;
use std::time::Duration;

/// The settings [`feed`] receives with.
pub fn feed_config() -> DatagramConfig {
    DatagramConfig { resend_timeout: Duration::from_millis(5), max_rounds: 5, ..Default::default() }
}

/// Sends hand-made frames to a receiver and returns its verdict.
pub fn feed(frames: Vec<Vec<u8>>, expect: Expect) -> Error {
    feed_with(frames, expect, feed_config()).0
}

/// [`feed`] with `cfg`; also returns the frames the receiver sent back (header and payload),
/// in order.
pub fn feed_with(frames: Vec<Vec<u8>>, expect: Expect, cfg: DatagramConfig) -> (Error, Vec<(FrameHeader, Vec<u8>)>) {
    let (mut a, mut b) = MemLink::pair(1500, Impairments::default(), Impairments::default());
    let h = thread::spawn(move || DatagramReceiver::new(cfg).recv_block(&mut b, &expect));
    for f in &frames {
        a.send(&[f]).unwrap();
    }
    let r = h.join().unwrap();
    let answers = answers(&mut a);
    drop(a);
    (r.unwrap_err(), answers)
}

/// The frames waiting on `link` (header and payload), in order, until none comes for 20 ms or
/// the peer end is gone and they are read; frames that do not decode are left out.
pub fn answers(link: &mut MemLink) -> Vec<(FrameHeader, Vec<u8>)> {
    let mut buf = vec![0u8; link.max_frame()];
    let mut out = Vec::new();
    while let Ok(Some(n)) = link.recv(&mut buf, Duration::from_millis(20)) {
        if let Ok((h, p)) = FrameHeader::decode(&buf[..n]) {
            out.push((h, p.to_vec()));
        }
    }
    out
}

/// The ABORTs among `answers`: header and reason.
pub fn aborts(answers: &[(FrameHeader, Vec<u8>)]) -> Vec<(FrameHeader, String)> {
    answers
        .iter()
        .filter(|(h, _)| h.kind == Kind::Abort)
        .map(|(h, p)| (*h, String::from_utf8_lossy(p).into_owned()))
        .collect()
}

/// Frame chunk of the hand-made blocks.
pub const CHUNK: usize = 1024;

pub fn frame(kind: Kind, id: u64, index: u32, count: u32, payload: &[u8]) -> Vec<u8> {
    frame_of(kind, id, 1, index, count, payload)
}

/// [`frame`] of send `attempt`: a peer answering a sender echoes the attempt of its frames.
pub fn frame_of(kind: Kind, id: u64, attempt: u32, index: u32, count: u32, payload: &[u8]) -> Vec<u8> {
    let h = FrameHeader { kind, block: BlockId(id), index, count, payload_len: 0, attempt };
    // Chunks under 16 KiB carry XXH3 checks; larger ones their chaining values.
    let mut f = if h.is_block_data() && tree::by_cv(CHUNK as u64) {
        h.encode_data(payload.len(), &tree::subtree_cv((index as u64 - 1) * CHUNK as u64, payload)).to_vec()
    } else {
        h.encode(payload).to_vec()
    };
    f.extend_from_slice(payload);
    f
}

pub fn block_frames(id: u64, body: &[u8], header: BlockHeader) -> Vec<Vec<u8>> {
    block_frames_of(id, 1, body, header)
}

/// [`block_frames`] of send `attempt`.
pub fn block_frames_of(id: u64, attempt: u32, body: &[u8], header: BlockHeader) -> Vec<Vec<u8>> {
    let chunk = CHUNK;
    let count = 1 + body.len().div_ceil(chunk) as u32;
    let d = Descriptor { header, payload_len: body.len() as u64, chunk: chunk as u32, codec: Codec::None };
    let mut v = vec![frame_of(Kind::Data, id, attempt, 0, count, &d.encode())];
    for (i, c) in body.chunks(chunk).enumerate() {
        v.push(frame_of(Kind::Data, id, attempt, i as u32 + 1, count, c));
    }
    v
}

//! Unit tests of the datagram sender: lent memory on panic, and how NACK ranges are read.

use super::*;
use crate::transfer::datagram::Compression;
use crate::transfer::BlockStore;
use std::collections::VecDeque;
use std::time::Duration;

/// A zero-copy link that answers MTU probes itself and panics on the first receive after
/// it was lent a frame, as a bug triggered by peer input would. It records what it was lent
/// and checks, when asked to release, that every lent byte is still there.
#[derive(Default)]
struct PanicsAfterLending {
    answers: VecDeque<Vec<u8>>,
    lent: Vec<(*const u8, Vec<u8>)>,
    released_intact: Option<bool>,
}

// SAFETY: the pointers are only read in `release`, on the thread that owns the link.
unsafe impl Send for PanicsAfterLending {}

impl Link for PanicsAfterLending {
    fn max_frame(&self) -> usize {
        1500
    }
    fn send(&mut self, parts: &[&[u8]]) -> std::io::Result<()> {
        let f = parts.concat();
        if let Ok((h, _)) = FrameHeader::decode(&f) {
            if h.kind == Kind::Probe {
                let ack = FrameHeader { kind: Kind::ProbeAck, payload_len: 0, ..h };
                self.answers.push_back(ack.encode(&[]).to_vec());
            }
        }
        Ok(())
    }
    unsafe fn send_lent(&mut self, parts: &[&[u8]]) -> std::io::Result<()> {
        if let Some(p) = parts.get(1) {
            self.lent.push((p.as_ptr(), p.to_vec()));
        }
        Ok(())
    }
    fn lends(&self) -> bool {
        true
    }
    fn recv(&mut self, buf: &mut [u8], _timeout: Duration) -> std::io::Result<Option<usize>> {
        if let Some(f) = self.answers.pop_front() {
            buf[..f.len()].copy_from_slice(&f);
            return Ok(Some(f.len()));
        }
        assert!(self.lent.is_empty(), "a bug hit while frames are lent");
        Ok(None)
    }
    fn release(&mut self) -> std::io::Result<()> {
        // SAFETY: `send_lent`'s contract keeps every lent byte allocated and unchanged until
        // this returns Ok.
        let intact =
            self.lent.iter().all(|(p, copy)| unsafe { std::slice::from_raw_parts(*p, copy.len()) } == &copy[..]);
        self.released_intact = Some(intact);
        self.lent.clear();
        Ok(())
    }
    fn peer(&self) -> String {
        "panics-after-lending".into()
    }
}

/// A panic after frames were lent (here in the link, as peer input might trigger one
/// anywhere in the send) unwinds through the send: the link releases the frames first,
/// while the memory is intact, and the memory — the sender's mapping of a sealed block —
/// is leaked, not unmapped.
#[test]
fn a_panic_while_frames_are_lent_releases_then_leaks() {
    let dir = std::env::temp_dir().join(format!("parthenon-sender-panic-{}", std::process::id()));
    let store = BlockStore::open(&dir).unwrap();
    let body: Vec<u8> = (0..20_000u32).map(|i| (i * 31) as u8).collect();
    let sealed = store.put(BlockId(3), &body).unwrap();
    let s = DatagramSender::new(DatagramConfig { compression: Compression::Off, ..Default::default() });
    let mut link = PanicsAfterLending::default();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| s.send_sealed(&mut link, &sealed)));
    assert!(r.is_err(), "the link panicked");
    assert_eq!(link.released_intact, Some(true), "released while unwinding, lent memory intact");
    let maps = s.maps.lock().unwrap();
    assert_eq!(Arc::strong_count(&maps[0].1), 2, "the lent mapping is leaked, not unmapped");
    drop(maps);
    let _ = std::fs::remove_dir_all(&dir);
}

fn nack(ranges: &[(u32, u32)]) -> Vec<u8> {
    ranges.iter().flat_map(|(s, l)| s.to_le_bytes().into_iter().chain(l.to_le_bytes())).collect()
}

#[test]
fn nack_ranges_are_capped_clipped_and_merged() {
    assert_eq!(NACK_RANGES, 58, "as the docs say");
    let mut out = [(0, 0); NACK_RANGES];
    // 8182 ranges of the whole u32 space: one range of the block.
    let p = nack(&vec![(0, u32::MAX); 8182]);
    assert_eq!(nack_ranges(&p, 10, &mut out), &[(0, 10)]);
    // Overlapping, touching, out of range and empty ranges.
    let p = nack(&[(5, 3), (1, 2), (2, 2), (9, 100), (20, 1), (7, 0), (4, 1)]);
    assert_eq!(nack_ranges(&p, 12, &mut out), &[(1, 8), (9, 12)]);
    let p = nack(&[(6, 1), (1, 1), (3, 1)]);
    assert_eq!(nack_ranges(&p, 12, &mut out), &[(1, 2), (3, 4), (6, 7)]);
    // Only the first NACK_RANGES ranges count.
    let mut r: Vec<(u32, u32)> = (0..NACK_RANGES as u32).map(|i| (2 * i, 1)).collect();
    r.push((1, 1));
    assert_eq!(nack_ranges(&nack(&r), 1000, &mut out).len(), NACK_RANGES);
    assert!(nack_ranges(&[1, 2, 3], 10, &mut out).is_empty());
}

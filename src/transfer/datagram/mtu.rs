//! MTU discovery: the largest frame that gets through to a peer, found by binary search with
//! probe frames the peer's receiver answers, and cached per peer ([`Link::peer`]).
//!
//! The search starts by confirming [`MIN_FRAME`] (a peer that answers nothing is an error), tries
//! the link's maximum, then halves the interval between the largest frame answered and the
//! smallest not answered. Each probe is sent twice and waits `probe_timeout` for its answer, so
//! a lost probe or answer does not shrink the MTU on its own. A frame refused locally with
//! `EMSGSIZE` counts as not getting through.

use super::frame::{FrameHeader, Kind, FRAME_HEADER};
use super::link::Link;
use super::session::{send_frame, DatagramConfig, MIN_FRAME};
use crate::transfer::{BlockId, Error};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

/// Padding of MTU probes (the largest frame any link here carries is 65 507 bytes).
static PROBE_PAD: [u8; 65_536] = [0; 65_536];

/// Largest working frame per peer, found by [`MtuCache::discover`].
#[derive(Debug, Default)]
pub struct MtuCache {
    map: Mutex<HashMap<String, usize>>,
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

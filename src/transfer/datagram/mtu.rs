//! MTU discovery: the largest frame that gets through to a peer, found by binary search with
//! probe frames the peer's receiver answers, and cached per peer ([`Link::peer`]).
//!
//! The search starts by confirming [`MIN_FRAME`] (a peer that answers nothing is an error, and a
//! link whose maximum frame is smaller is refused without a probe, saying so), tries
//! the link's maximum, then halves the interval between the largest frame answered and the
//! smallest not answered. Each probe is sent twice and waits `probe_timeout` for its answer, so
//! a lost probe or answer does not shrink the MTU on its own. A frame refused locally with
//! `EMSGSIZE` counts as not getting through. The search never goes above [`MAX_PROBE`] (the
//! largest UDP datagram, with room to spare), whatever a link's maximum.

use super::frame::{FrameHeader, Kind, FRAME_HEADER};
use super::link::Link;
use super::session::{send_frame, DatagramConfig, MIN_FRAME};
use crate::transfer::{BlockId, Error};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

/// Padding of MTU probes.
static PROBE_PAD: [u8; 65_536] = [0; 65_536];
/// Largest frame MTU discovery probes (and so the largest frame size it finds).
pub const MAX_PROBE: usize = FRAME_HEADER + PROBE_PAD.len();
/// Largest chunk (payload of a data frame) a sender uses: all the payload room of the largest
/// frame discovery finds, a power of two ([`super::tree::chunk_for_frame`]). A receiver refuses
/// a descriptor with a larger one.
pub const MAX_CHUNK: usize = MAX_PROBE - FRAME_HEADER;
const _: () = assert!(MAX_CHUNK.is_power_of_two());

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
        let max = link.max_frame().min(MAX_PROBE);
        let mut buf = vec![0u8; max.max(MIN_FRAME)];
        let mut probe = |size: usize| -> Result<bool, Error> {
            // MIN_FRAME <= size <= MAX_PROBE: within the padding.
            let pad = PROBE_PAD.get(..size.saturating_sub(FRAME_HEADER)).unwrap_or(&PROBE_PAD);
            for _ in 0..2 {
                let h = FrameHeader {
                    kind: Kind::Probe,
                    block: BlockId(0),
                    index: size as u32,
                    count: 0,
                    payload_len: 0,
                    attempt: 0,
                };
                match send_frame(link, h, pad) {
                    Ok(()) => {}
                    Err(e) if e.raw_os_error() == Some(libc::EMSGSIZE) => return Ok(false),
                    Err(e) => return Err(Error::io("send MTU probe", None, e)),
                }
                // None: a `probe_timeout` too long to add to the clock, i.e. no limit.
                let deadline = Instant::now().checked_add(cfg.probe_timeout);
                loop {
                    let left = match deadline {
                        None => cfg.probe_timeout,
                        Some(d) => match d.checked_duration_since(Instant::now()) {
                            Some(left) => left,
                            None => break,
                        },
                    };
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
        if max < MIN_FRAME {
            // Nothing probed: the link itself is too small for the protocol.
            return Err(Error::io(
                format!("MTU discovery to peer {peer}"),
                None,
                std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    format!("the link carries frames of at most {max} bytes, under the protocol's {MIN_FRAME}"),
                ),
            ));
        }
        if !probe(MIN_FRAME)? {
            return Err(Error::Timeout {
                block: None,
                what: format!("peer {peer} answers no MTU probe of {MIN_FRAME} bytes"),
            });
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transfer::datagram::link::{Impairments, MemLink};
    use crate::transfer::datagram::DatagramReceiver;
    use std::time::Duration;

    #[test]
    fn discovery_is_capped_for_links_larger_than_a_datagram() {
        let (mut a, mut b) = MemLink::pair(100_000, Impairments::default(), Impairments::default());
        let h = std::thread::spawn(move || DatagramReceiver::default().linger(&mut b, Duration::from_millis(300)));
        let cache = MtuCache::default();
        assert_eq!(cache.discover(&mut a, &DatagramConfig::default()).unwrap(), MAX_PROBE);
        h.join().unwrap().unwrap();
        // The largest frame's payload is the largest chunk, which receivers accept.
        assert_eq!(crate::transfer::datagram::tree::chunk_for_frame(MAX_PROBE, FRAME_HEADER), Some(MAX_CHUNK));
    }

    /// A link too small for the protocol's smallest frame fails discovery saying so, without a
    /// probe (the peer, which would answer, hears nothing).
    #[test]
    fn a_link_under_the_smallest_frame_is_refused_unprobed() {
        let (mut a, mut b) = MemLink::pair(MIN_FRAME - 1, Impairments::default(), Impairments::default());
        let e = MtuCache::default().discover(&mut a, &DatagramConfig::default()).unwrap_err();
        let text = e.to_string();
        assert!(
            matches!(&e, Error::Io { block: None, source, .. } if source.kind() == std::io::ErrorKind::InvalidInput)
                && text.contains(&format!("at most {} bytes", MIN_FRAME - 1))
                && !text.contains("answers no"),
            "{text}"
        );
        let mut buf = vec![0u8; MIN_FRAME];
        assert_eq!(b.recv(&mut buf, Duration::from_millis(50)).unwrap(), None, "no probe went out");
    }
}

//! Unit tests of the datagram receive loop: duplicates in flight, frames before the descriptor,
//! and how a receiver waits.

use super::*;
use crate::transfer::datagram::frame::Codec;
use crate::transfer::datagram::link::{Impairments, MemLink};
use crate::transfer::datagram::receiver::Attempt;
use crate::transfer::BlockHeader;

fn data_frame(block: BlockId, index: u32, count: u32, chunk: usize, payload: &[u8]) -> RxFrame {
    let h = FrameHeader { kind: Kind::Data, block, index, count, payload_len: 0, attempt: 1 };
    let mut f = if tree::by_cv(chunk as u64) {
        h.encode_data(payload.len(), &tree::subtree_cv((index as u64 - 1) * chunk as u64, payload)).to_vec()
    } else {
        h.encode(payload).to_vec()
    };
    f.extend_from_slice(payload);
    RxFrame::owned(f)
}

/// An `Rx` holding the descriptor of a 3-frame block (two data frames of `chunk`).
fn rx<'a>(link: &'a mut MemLink, expect: &'a Expect, body: &[u8], chunk: usize, attempt: &'a mut Attempt) -> Rx<'a> {
    let mut rx = Rx::new(link, expect, DatagramConfig::default(), None, None, None, attempt);
    let d = Descriptor {
        header: BlockHeader::for_body(BlockId(5), body),
        payload_len: body.len() as u64,
        chunk: chunk as u32,
        codec: Codec::None,
    };
    let h = FrameHeader { kind: Kind::Data, block: BlockId(5), index: 0, count: 3, payload_len: 0, attempt: 1 };
    let p = d.encode();
    let mut f = h.encode(&p).to_vec();
    f.extend_from_slice(&p);
    let f = RxFrame::owned(f);
    let (h, _) = rx.admit(&f).unwrap().unwrap();
    assert!(rx.descriptor(h, &f).unwrap().is_some());
    rx.allocate().unwrap();
    rx
}

fn feed(rx: &mut Rx<'_>, f: RxFrame, work: &Work<'_>) -> Result<(), Error> {
    let (h, check) = rx.admit(&f)?.expect("a data frame");
    rx.data(h, check, f, work)
}

/// A receiver waiting for its first frame sleeps in the link: it does not spin for the
/// whole idle_timeout once the first resend_timeout has passed.
#[test]
fn waiting_for_the_first_frame_does_not_spin() {
    use nix::sys::resource::{getrusage, UsageWho};
    let (_peer, mut link) = MemLink::pair(1500, Impairments::default(), Impairments::default());
    let expect = Expect { id: Some(BlockId(1)), max_len: 1 << 20 };
    let cfg = DatagramConfig {
        resend_timeout: Duration::from_millis(10),
        idle_timeout: Duration::from_millis(600),
        ..DatagramConfig::default()
    };
    let cpu = || {
        let u = getrusage(UsageWho::RUSAGE_THREAD).expect("getrusage");
        [u.user_time(), u.system_time()]
            .iter()
            .map(|t| Duration::from_secs(t.tv_sec() as u64) + Duration::from_micros(t.tv_usec() as u64))
            .sum::<Duration>()
    };
    let before = cpu();
    let mut attempt = Attempt::default();
    let mut rx = Rx::new(&mut link, &expect, cfg, None, None, None, &mut attempt);
    let e = rx.until_descriptor().expect_err("nothing arrives");
    assert!(matches!(e, Error::Timeout { block: None, .. }), "{e}");
    // A spin burns most of the 600 ms even on a loaded host; sleeping burns ~1 ms.
    let burnt = cpu() - before;
    assert!(burnt < Duration::from_millis(150), "{burnt:?} of CPU while waiting 600 ms");
}

#[test]
fn duplicates_of_a_frame_in_flight() {
    // XXH3-checked frames, and frames checked by chaining value.
    for chunk in [1000usize, 16 * 1024] {
        let body: Vec<u8> = (0..2 * chunk as u32 - 100).map(|i| (i * 7) as u8).collect();
        let (mut a, _b) = MemLink::pair(1 << 16, Impairments::default(), Impairments::default());
        let expect = Expect::default();
        let mut room: Vec<u8> = Vec::with_capacity(body.len());
        let work = Work::new(&mut room.spare_capacity_mut()[..body.len()], chunk);
        let mut attempt = Attempt::default();
        let mut rx = rx(&mut a, &expect, &body, chunk, &mut attempt);

        // Frame 1 queued, not yet checked; an exact copy and a corrupt copy arrive meanwhile.
        feed(&mut rx, data_frame(BlockId(5), 1, 3, chunk, &body[..chunk]), &work).unwrap();
        feed(&mut rx, data_frame(BlockId(5), 1, 3, chunk, &body[..chunk]), &work).unwrap();
        let mut bad = data_frame(BlockId(5), 1, 3, chunk, &body[..chunk]);
        if let Some(v) = bad.owned_bytes_mut() {
            v[crate::transfer::datagram::frame::FRAME_HEADER + 3] ^= 1;
        }
        feed(&mut rx, bad, &work).unwrap();
        assert_eq!(rx.corrupt, 1, "the corrupt copy is dropped ({chunk})");
        while work.run_one() {}
        rx.apply(&work).unwrap();
        assert_eq!(rx.asm.as_ref().map(|a| a.done_n), Some(2), "descriptor and frame 1 ({chunk})");

        // Frame 2 queued; a different frame with a valid check for the same index arrives.
        let mut other = body[chunk..].to_vec();
        other[0] ^= 0xff;
        feed(&mut rx, data_frame(BlockId(5), 2, 3, chunk, &body[chunk..]), &work).unwrap();
        feed(&mut rx, data_frame(BlockId(5), 2, 3, chunk, &other), &work).unwrap();
        while work.run_one() {}
        let e = rx.apply(&work).unwrap_err();
        assert!(matches!(e, Error::FrameRejected { index: 2, .. }) && e.to_string().contains("conflicting"), "{e}");
    }
}

#[test]
fn frames_before_the_descriptor_are_kept_once() {
    let chunk = 1000;
    let body: Vec<u8> = (0..3000u32).map(|i| (i * 13) as u8).collect();
    let (mut a, mut b) = MemLink::pair(1 << 16, Impairments::default(), Impairments::default());
    let bytes = |f: RxFrame| [f.head(), f.payload()].concat();
    for _ in 0..10 {
        a.send(&[&bytes(data_frame(BlockId(5), 1, 4, chunk, &body[..chunk]))]).unwrap();
    }
    let d = Descriptor {
        header: BlockHeader::for_body(BlockId(5), &body),
        payload_len: body.len() as u64,
        chunk: chunk as u32,
        codec: Codec::None,
    };
    let h = FrameHeader { kind: Kind::Data, block: BlockId(5), index: 0, count: 4, payload_len: 0, attempt: 1 };
    let p = d.encode();
    a.send(&[&h.encode(&p), &p]).unwrap();
    let expect = Expect::default();
    let mut attempt = Attempt::default();
    let mut rx = Rx::new(&mut b, &expect, DatagramConfig::default(), None, None, None, &mut attempt);
    rx.until_descriptor().unwrap();
    let asm = rx.asm.as_ref().unwrap();
    assert_eq!((asm.pending.len(), asm.pending_bytes), (1, chunk as u64));
    assert_eq!(asm.kept.iter().copied().collect::<Vec<_>>(), [1]);
    rx.allocate().unwrap();
    let asm = rx.asm.as_ref().unwrap();
    assert_eq!(asm.slots, [Slot::Done, Slot::Pending, Slot::Empty, Slot::Empty]);
    assert_eq!(asm.done_n, 1);
}

/// A first frame's count is a peer's number: up to u32::MAX frames where the receiver's limit
/// allows them, it allocates nothing until the descriptor, and NACK rounds list the gaps
/// between the frames kept aside without visiting every index.
#[test]
fn a_frame_count_allocates_nothing_before_the_descriptor() {
    let (mut a, _b) = MemLink::pair(1 << 16, Impairments::default(), Impairments::default());
    let expect = Expect { id: None, max_len: u64::MAX };
    let cfg = DatagramConfig { max_block_len: u64::MAX, ..DatagramConfig::default() };
    let mut attempt = Attempt::default();
    let mut rx = Rx::new(&mut a, &expect, cfg, None, None, None, &mut attempt);
    let f = data_frame(BlockId(9), 7, u32::MAX, 1000, &[1; 100]);
    rx.admit(&f).unwrap().expect("a data frame");
    let asm = rx.asm.as_mut().unwrap();
    assert_eq!((asm.count, asm.slots.capacity(), asm.cvs.capacity()), (u32::MAX, 0, 0));
    asm.kept.insert(7);
    asm.kept.insert(8);
    asm.kept.insert(20);
    assert_eq!(asm.missing_ranges(), [(0, 7), (9, 11), (21, u32::MAX - 21)]);
    assert_eq!(asm.missing(), u32::MAX as usize);
}

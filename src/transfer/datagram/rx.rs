//! One block being received: the link, the receiver's rules and the assembly so far. Admits
//! frames by their checked headers, waits for the descriptor, asks again for what is missing, and
//! hands new data frames to the checking and placing work ([`super::place`]). The steps and what
//! is an error are in [`super::receiver`].
//!
//! # Time
//! Every deadline runs from a fixed point or from the last *useful* event — the first frame of
//! the block, the descriptor, a new data frame kept aside before the descriptor, a data frame
//! checked and placed, or a NACK round — never from frames that change nothing (corrupt, whether
//! the header or only the payload fails its check, duplicate, of another kind, answered
//! probes). They are checked on every pass of the receive loop, whether a frame arrived or not
//! ([`Rx::tick`]; while frames make progress or wait to be checked, once per [`TICK`] frames, to
//! keep clock reads off the per-frame path):
//! - before any frame of a block: `idle_timeout` from the start of the receive;
//! - `resend_timeout` after the last useful event: a NACK round, or after `max_rounds` rounds
//!   without a new frame, [`Error::GaveUp`];
//! - while useful events keep coming, `resend_timeout` or more after the last PROGRESS, and only
//!   if frames were placed since: a PROGRESS telling the sender how many frames are in (the
//!   sender hears no NACK from a receiver that is busy checking a backlog of frames, and must
//!   not take it for a dead one; [`super::sender`]);
//! - `block_timeout` after the block's first frame, whatever happens: [`Error::Timeout`] (no
//!   deadline when `block_timeout` is too long to add to the clock, e.g. `Duration::MAX`).
//!
//! # Before the descriptor
//! Data frames that arrive before the descriptor are kept aside as copies of their own size,
//! the first copy of each index only; at most [`MAX_PENDING`] frames (more are dropped, as if
//! lost, and asked for again) and at most the largest payload the receiver accepts in payload
//! bytes (more is an error: no sender of an acceptable block sends it). The frame count of the
//! first header is bounded the same way: no acceptable block has more frames than its largest
//! payload in frames of the smallest chunk ([`DESCRIPTOR_LEN`]), plus the descriptor. The
//! largest payload is that of a block of the receiver's limit, the smaller of
//! [`Expect::max_len`] and [`DatagramConfig::max_block_len`] ([`super::receiver`], "Memory").
//! Until the descriptor, the count allocates nothing: frames kept aside are tracked by index, and
//! NACKs list the gaps between them. The per-frame state is allocated once the descriptor is
//! checked and the payload's room reserved ([`Rx::allocate`]).

use super::assembly::{check_descriptor, Assembly, Slot};
use super::frame::{Descriptor, FrameHeader, Kind, DESCRIPTOR_LEN};
use super::link::{Link, RxFrame};
use super::place::{self, Ident, Job, Outcome, Work};
use super::receiver::{no_memory, Attempt, Refusal, MAX_PENDING};
use super::session::{control, send_frame, DatagramConfig, NACK_RANGES};
use super::tree;
use crate::transfer::{BlockId, BlockStore, Error, Expect};
use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Useful frames between two deadline checks while frames make progress (see the module docs).
const TICK: u32 = 64;

/// One block being received: the link, the rules, and the assembly so far.
pub(super) struct Rx<'a> {
    pub(super) link: &'a mut dyn Link,
    expect: &'a Expect,
    cfg: DatagramConfig,
    last_done: Option<BlockId>,
    /// The send the last receive refused (and told its sender so, with the reason), while none
    /// was accepted since: frames of it do not start a receive ([`Rx::admit`]).
    last_refused: Option<&'a Refusal>,
    /// The store a block is received into: a block it holds is refused at its first frame.
    store: Option<&'a BlockStore>,
    pub(super) asm: Option<Assembly>,
    /// The send of the block being received that control frames answer (module docs of
    /// [`super::sender`]): set by every frame of the block until its descriptor is in, and by
    /// every descriptor since (a new send starts with, and nudges with, its descriptor); never
    /// by a frame of another block, so that while a block is assembled it is that block's send.
    /// Kept by the caller, so that the ABORT of a failed receive refuses it ([`super::receiver`]).
    pub(super) attempt: &'a mut Attempt,
    corrupt: u64,
    rounds: u32,
    progress_mark: u32,
    started: Instant,
    /// When the last useful event was seen (by [`Rx::tick`]) or the last NACK round went out.
    heard: Instant,
    /// A useful event happened since the last deadline check.
    useful: bool,
    /// A data frame was queued to be checked since the last deadline check: maybe useful, so
    /// the check may wait for [`TICK`] passes (it is useful only once placed).
    queued: bool,
    /// Loop passes since the last deadline check.
    since_tick: u32,
    /// `block_timeout` after the block's first frame.
    deadline: Option<Instant>,
    /// When the last PROGRESS went out (or the receive started), and the frames it reported.
    told: Instant,
    told_n: u32,
}

impl<'a> Rx<'a> {
    pub(super) fn new(
        link: &'a mut dyn Link,
        expect: &'a Expect,
        cfg: DatagramConfig,
        last_done: Option<BlockId>,
        last_refused: Option<&'a Refusal>,
        store: Option<&'a BlockStore>,
        attempt: &'a mut Attempt,
    ) -> Self {
        let now = Instant::now();
        Rx {
            link,
            expect,
            cfg,
            last_done,
            last_refused,
            store,
            asm: None,
            attempt,
            corrupt: 0,
            rounds: 0,
            progress_mark: 0,
            started: now,
            heard: now,
            useful: false,
            queued: false,
            since_tick: 0,
            deadline: None,
            told: now,
            told_n: 0,
        }
    }

    /// Whether a first frame (header `h`) may start a receive: not a block the store holds, the
    /// expected block, a frame count that fits the largest acceptable block.
    fn may_start(&self, h: &FrameHeader) -> Result<(), Error> {
        if let Some(store) = self.store.filter(|s| s.contains(h.block)) {
            return Err(Error::Duplicate { block: h.block, path: store.path(h.block).display().to_string() });
        }
        if let Some(want) = self.expect.id {
            if want != h.block {
                return Err(Error::UnexpectedBlock { expected: want, got: h.block });
            }
        }
        let max_count = 1 + self.max_payload().div_ceil(DESCRIPTOR_LEN as u64);
        if h.count == 0 || u64::from(h.count) > max_count {
            return Err(Self::reject(
                h.block,
                h.index,
                format!(
                    "{} frames cannot carry a block of at most {} bytes (at most {max_count})",
                    h.count,
                    self.limit()
                ),
            ));
        }
        Ok(())
    }

    /// The largest body the receiver accepts: the caller's limit, at most the configured
    /// in-memory maximum ([`super::receiver`], "Memory").
    fn limit(&self) -> u64 {
        self.expect.limit().min(self.cfg.max_block_len)
    }

    /// The largest payload an acceptable block has (its body, LZ4-encoded at worst).
    fn max_payload(&self) -> u64 {
        // `limit()` is at most MAX_BODY_LEN, whose LZ4 bound fits 64 bits.
        lz4_flex::block::get_maximum_output_size(usize::try_from(self.limit()).unwrap_or(usize::MAX)) as u64
    }

    fn reject(block: BlockId, index: u32, reason: String) -> Error {
        Error::FrameRejected { block, index, reason }
    }

    /// The next frame, waiting until the next NACK round is due, or not at all when `busy`.
    fn next_frame(&mut self, busy: bool) -> Result<Option<RxFrame>, Error> {
        let wait = if busy { Duration::ZERO } else { self.cfg.resend_timeout.saturating_sub(self.heard.elapsed()) };
        let id = self.asm.as_ref().map(|a| a.id);
        self.link.recv_frame(wait).map_err(|e| Error::io("receive frame", id, e))
    }

    /// Checks the deadlines (module docs) once per pass of the receive loop: at once when the
    /// link is `quiet` (no frame this pass) or nothing useful happened or was queued since the
    /// last check, else every [`TICK`] passes. Sends a NACK round when one is due; fails when a
    /// deadline passed.
    fn tick(&mut self, quiet: bool) -> Result<(), Error> {
        self.since_tick += 1;
        if !quiet && (self.useful || self.queued) && self.since_tick < TICK {
            return Ok(());
        }
        self.since_tick = 0;
        self.queued = false;
        let now = Instant::now();
        if std::mem::take(&mut self.useful) {
            self.heard = now;
        }
        let Some(a) = &self.asm else {
            if now.duration_since(self.started) > self.cfg.idle_timeout {
                return Err(Error::Timeout {
                    block: None,
                    what: format!("no block arrived in {:?}", self.cfg.idle_timeout),
                });
            }
            // Nothing to ask for yet: wait a whole resend_timeout again for the first frame
            // (without this, every wait past the first would be zero, a spin until idle_timeout).
            if now.duration_since(self.heard) >= self.cfg.resend_timeout {
                self.heard = now;
            }
            return Ok(());
        };
        if self.deadline.is_some_and(|d| now >= d) {
            return Err(Error::Timeout {
                block: Some(a.id),
                what: format!(
                    "not received within {:?} (block_timeout): {} of {} frames in, {} corrupt frames dropped",
                    self.cfg.block_timeout, a.done_n, a.count, self.corrupt
                ),
            });
        }
        if now.duration_since(self.heard) < self.cfg.resend_timeout {
            // Frames make progress: a resend_timeout or more after the last report, tell the
            // sender how many are in, so that a slow receive is not taken for a dead one.
            if a.done_n > self.told_n && now.duration_since(self.told) >= self.cfg.resend_timeout {
                self.told = now;
                self.told_n = a.done_n;
                send_frame(self.link, control(Kind::Progress, a.id, self.attempt.number, a.done_n, a.count), &[])
                    .map_err(|e| Error::io("send PROGRESS", Some(a.id), e))?;
            }
            return Ok(());
        }
        self.heard = now;
        // Progress since the last request resets the count: only stalls give up.
        if a.done_n > self.progress_mark {
            self.progress_mark = a.done_n;
            self.rounds = 0;
        }
        self.rounds = self.rounds.saturating_add(1);
        if self.rounds > self.cfg.max_rounds {
            return Err(Error::GaveUp {
                block: a.id,
                missing: a.missing(),
                count: a.count,
                rounds: self.rounds - 1,
                corrupt: self.corrupt,
            });
        }
        for ranges in a.missing_ranges().chunks(NACK_RANGES) {
            let p: Vec<u8> =
                ranges.iter().flat_map(|(s, l)| s.to_le_bytes().into_iter().chain(l.to_le_bytes())).collect();
            send_frame(self.link, control(Kind::Nack, a.id, self.attempt.number, 0, ranges.len() as u32), &p)
                .map_err(|e| Error::io("send NACK", Some(a.id), e))?;
        }
        Ok(())
    }

    /// Checks a frame's header and serves what is not block data: `Some` for a DATA frame of
    /// the block being received (its header, payload check and payload length checked).
    fn admit(&mut self, f: &RxFrame) -> Result<Option<(FrameHeader, u64)>, Error> {
        let (h, check, p) = match FrameHeader::parse_parts(f.head(), f.payload()) {
            Ok(x) => x,
            Err(_) => {
                self.corrupt += 1;
                return Ok(None);
            }
        };
        if !h.is_block_data() && !FrameHeader::check_payload(check, p) {
            self.corrupt += 1;
            return Ok(None);
        }
        match h.kind {
            Kind::Probe => {
                let _ = send_frame(self.link, control(Kind::ProbeAck, h.block, h.attempt, h.index, 0), &[]);
                return Ok(None);
            }
            Kind::Data => {}
            _ => return Ok(None),
        }
        if self.last_done == Some(h.block) && self.asm.as_ref().is_none_or(|a| a.id != h.block) {
            // Our DONE was lost: confirm again.
            let _ = send_frame(self.link, control(Kind::Done, h.block, h.attempt, 0, 0), &[]);
            return Ok(None);
        }
        // While another block is being assembled, a frame of the refused send itself is what its
        // sender had queued (a network may deliver it late, behind the next block's first frames):
        // dropped as below, rather than ending that block's receive as an interleaved block.
        let stale = |r: &&Refusal| {
            r.send.block == h.block
                && match &self.asm {
                    None => true,
                    Some(a) => a.id != h.block && h.attempt == r.send.number,
                }
        };
        if let Some(r) = self.last_refused.filter(stale) {
            // What the sender of a refused block had queued, or sent before it heard the ABORT
            // (its nudges repeat the descriptor): not a new block. A descriptor of the refused
            // send is refused again, for the same reason (the first ABORT may have been lost);
            // only one of another send that would now be accepted starts a receive, any other is
            // refused at once. Either way the receive goes on waiting.
            if h.index != 0 {
                return Ok(None);
            }
            if h.attempt == r.send.number {
                let _ = send_frame(self.link, control(Kind::Abort, h.block, h.attempt, 0, 0), r.reason.as_bytes());
                return Ok(None);
            }
            if let Err(e) = self.may_start(&h) {
                let _ = send_frame(self.link, control(Kind::Abort, h.block, h.attempt, 0, 0), e.to_string().as_bytes());
                return Ok(None);
            }
        }
        let reject = |reason: String| Self::reject(h.block, h.index, reason);
        // The send this frame belongs to is the one a refusal of it answers: recorded before
        // any check that can refuse it (an ABORT after a failed receive carries it). A frame of
        // another block than the one being assembled is not: the receive it ends is that
        // block's, whose send the ABORT refuses ([`super::receiver`], step 6).
        if self.asm.as_ref().is_none_or(|a| a.id == h.block && (h.index == 0 || a.desc.is_none())) {
            *self.attempt = Attempt { block: h.block, number: h.attempt };
        }
        let a = match &mut self.asm {
            Some(a) => {
                if a.id != h.block {
                    return Err(Error::UnexpectedBlock { expected: a.id, got: h.block });
                }
                if h.count != a.count {
                    return Err(reject(format!("frame count {} differs from {} in earlier frames", h.count, a.count)));
                }
                a
            }
            None => {
                self.may_start(&h)?;
                self.useful = true;
                // None: no deadline (a `block_timeout` too long to add to the clock).
                self.deadline = Instant::now().checked_add(self.cfg.block_timeout);
                self.asm.insert(Assembly {
                    id: h.block,
                    count: h.count,
                    desc: None,
                    // Allocated with the descriptor (`allocate`): the count is a peer's number.
                    slots: Vec::new(),
                    kept: BTreeSet::new(),
                    cvs: Vec::new(),
                    done_n: 0,
                    in_flight: 0,
                    dups: HashMap::new(),
                    pending: Vec::new(),
                    pending_bytes: 0,
                })
            }
        };
        if h.index >= a.count {
            return Err(reject(format!("index {} >= frame count {}", h.index, a.count)));
        }
        if let Some(d) = &a.desc {
            if h.index > 0 {
                let want = a.expected_len(d, h.index);
                if p.len() != want {
                    return Err(reject(format!("{} payload bytes, expected {want}", p.len())));
                }
            }
        }
        Ok(Some((h, check)))
    }

    /// Handles a descriptor frame; returns it when it is the first.
    fn descriptor(&mut self, h: FrameHeader, f: &RxFrame) -> Result<Option<Descriptor>, Error> {
        let reject = |reason: String| Self::reject(h.block, 0, reason);
        let d = Descriptor::decode(f.payload()).map_err(|r| reject(format!("bad descriptor: {r}")))?;
        let limit = self.limit();
        let Some(a) = &mut self.asm else { return Ok(None) };
        if let Some(old) = a.desc {
            if old != d {
                return Err(reject("conflicting duplicate descriptor".into()));
            }
            return Ok(None);
        }
        check_descriptor(&d, a.count, h.block, limit)?;
        a.desc = Some(d);
        self.useful = true;
        Ok(Some(d))
    }

    /// Once the descriptor is in and the payload's room reserved: the per-frame state (a slot
    /// per frame, those kept aside pending, the descriptor's in; a chaining value per data frame
    /// when frames are checked by them), reserved fallibly (module docs).
    pub(super) fn allocate(&mut self) -> Result<(), Error> {
        let Some(a) = &mut self.asm else { return Ok(()) };
        let Some(d) = a.desc else { return Ok(()) };
        if !a.slots.is_empty() {
            return Ok(());
        }
        let n = a.count as usize;
        a.slots.try_reserve_exact(n).map_err(|e| no_memory(a.id, "the frame slots", n, e))?;
        a.slots.resize(n, Slot::Empty);
        for i in std::mem::take(&mut a.kept) {
            a.slots[i as usize] = Slot::Pending;
        }
        if tree::by_cv(d.chunk as u64) {
            let bytes = (n - 1).saturating_mul(size_of::<tree::Cv>());
            a.cvs.try_reserve_exact(n - 1).map_err(|e| no_memory(a.id, "the frame chaining values", bytes, e))?;
            a.cvs.resize(n - 1, [0u8; 32]);
        }
        a.slots[0] = Slot::Done;
        a.done_n += 1;
        Ok(())
    }

    /// Receives until the descriptor is in, keeping data frames aside (module docs).
    pub(super) fn until_descriptor(&mut self) -> Result<Descriptor, Error> {
        let max_payload = self.max_payload();
        loop {
            let Some(f) = self.next_frame(false)? else {
                self.tick(true)?;
                continue;
            };
            self.tick(false)?;
            let Some((h, check)) = self.admit(&f)? else { continue };
            if h.index == 0 {
                if let Some(d) = self.descriptor(h, &f)? {
                    return Ok(d);
                }
                continue;
            }
            let Some(a) = &mut self.asm else { continue };
            // The first copy of an index is kept; the descriptor decides whether it is good.
            if a.kept.contains(&h.index) || a.pending.len() >= MAX_PENDING {
                continue;
            }
            let bytes = f.payload().len() as u64;
            if a.pending_bytes + bytes > max_payload {
                return Err(Self::reject(
                    h.block,
                    h.index,
                    format!("more than {max_payload} payload bytes before the descriptor"),
                ));
            }
            a.pending_bytes += bytes;
            a.kept.insert(h.index);
            a.pending.push((h, check, f.into_owned()));
            self.useful = true;
        }
    }

    /// Receives the rest of the block, checking and placing data frames through `work` on
    /// `threads` threads (this one included).
    pub(super) fn assemble_on(&mut self, work: &Work<'_>, threads: usize) -> Result<(), Error> {
        if threads <= 1 {
            return self.assemble(work, false);
        }
        let block = self.asm.as_ref().map(|a| a.id);
        let rx = Mutex::new(Some(self));
        let result = Mutex::new(None);
        let role = AtomicUsize::new(0);
        crate::pool::run(threads - 1, &|| {
            if role.fetch_add(1, Ordering::AcqRel) == 0 {
                let mut slot = rx.lock().unwrap_or_else(|p| p.into_inner());
                if let Some(rx) = slot.take() {
                    // Helpers leave when this role ends, also by a panic (which the pool then
                    // re-raises here) rather than waiting forever.
                    let _finish = FinishOnDrop(work);
                    let r = rx.assemble(work, true);
                    *result.lock().unwrap_or_else(|p| p.into_inner()) = Some(r);
                }
            } else {
                work.help();
            }
        });
        let r = result.into_inner().unwrap_or_else(|p| p.into_inner());
        r.unwrap_or_else(|| Err(Error::Timeout { block, what: "the receiving thread did not run".into() }))
    }

    fn assemble(&mut self, work: &Work<'_>, parallel: bool) -> Result<(), Error> {
        let pending = self
            .asm
            .as_mut()
            .map(|a| {
                a.pending_bytes = 0;
                std::mem::take(&mut a.pending)
            })
            .unwrap_or_default();
        for (h, check, f) in pending {
            if let Some(a) = &self.asm {
                let want = a.desc.as_ref().map(|d| a.expected_len(d, h.index));
                if want != Some(f.payload().len()) {
                    let reason = format!("{} payload bytes, expected {}", f.payload().len(), want.unwrap_or(0));
                    return Err(Self::reject(h.block, h.index, reason));
                }
            }
            self.data(h, check, f, work)?;
        }
        loop {
            if !parallel {
                while work.run_one() {}
            }
            self.apply(work)?;
            let Some(a) = &self.asm else { return Ok(()) };
            if a.done_n == a.count {
                return Ok(());
            }
            let busy = a.in_flight > 0;
            match self.next_frame(busy)? {
                Some(f) => {
                    self.tick(false)?;
                    let Some((h, check)) = self.admit(&f)? else { continue };
                    if h.index == 0 {
                        self.descriptor(h, &f)?;
                    } else {
                        self.data(h, check, f, work)?;
                    }
                    // With a backlog, this thread checks frames too, one per frame it reads.
                    if parallel && work.backlog() > 1 {
                        work.run_one();
                    }
                }
                None if busy => {
                    self.tick(false)?;
                    if !work.run_one() {
                        std::hint::spin_loop();
                    }
                }
                None => self.tick(true)?,
            }
        }
    }

    /// A data frame of checked header and length, the descriptor known.
    fn data(&mut self, h: FrameHeader, check: u64, f: RxFrame, work: &Work<'_>) -> Result<(), Error> {
        let Some(a) = &mut self.asm else { return Ok(()) };
        let Some(d) = a.desc else { return Ok(()) };
        let i = h.index;
        let ident = |f: &RxFrame| place::check(i, check, f.payload(), d.chunk as usize);
        let conflict = || Self::reject(h.block, i, "conflicting duplicate (same index, different bytes)".into());
        // No slot: not allocated yet (`allocate`), which no frame comes before.
        let Some(&slot) = a.slots.get(i as usize) else { return Ok(()) };
        match slot {
            Slot::Empty | Slot::Pending => {
                a.slots[i as usize] = Slot::InFlight;
                a.in_flight += 1;
                work.push(Job { index: i, check, frame: f });
                // Useful only once its payload passed its check (`apply`).
                self.queued = true;
            }
            Slot::InFlight => match ident(&f) {
                None => self.corrupt += 1,
                Some(id) => {
                    if a.dups.insert(i, id).is_some_and(|old| old != id) {
                        return Err(conflict());
                    }
                }
            },
            Slot::Done => {
                if work.placed(i, f.payload().len()) != f.payload() {
                    if ident(&f).is_some() {
                        return Err(conflict());
                    }
                    self.corrupt += 1;
                }
            }
        }
        Ok(())
    }

    /// Applies the outcomes of finished jobs.
    fn apply(&mut self, work: &Work<'_>) -> Result<(), Error> {
        let Some(a) = &mut self.asm else { return Ok(()) };
        let mut placed = false;
        for (i, outcome) in work.take_results() {
            a.in_flight -= 1;
            let dup = a.dups.remove(&i);
            match outcome {
                Outcome::Placed(id) => {
                    if dup.is_some_and(|d| d != id) {
                        return Err(Self::reject(
                            a.id,
                            i,
                            "conflicting duplicate (same index, different bytes)".into(),
                        ));
                    }
                    a.slots[i as usize] = Slot::Done;
                    if let Ident::Cv(cv) = id {
                        a.cvs[i as usize - 1] = cv;
                    }
                    a.done_n += 1;
                    placed = true;
                }
                Outcome::Corrupt => {
                    // A checked duplicate may have been seen meanwhile; it was not kept, so the
                    // frame is asked for again like any lost one.
                    a.slots[i as usize] = Slot::Empty;
                    self.corrupt += 1;
                }
            }
        }
        self.useful |= placed;
        Ok(())
    }
}

/// Calls [`Work::finish`] when dropped.
struct FinishOnDrop<'w, 'b>(&'w Work<'b>);

impl Drop for FinishOnDrop<'_, '_> {
    fn drop(&mut self) {
        self.0.finish();
    }
}

#[cfg(test)]
mod tests;

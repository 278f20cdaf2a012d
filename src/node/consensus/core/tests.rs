//! Unit tests of the core against Byzantine inputs (signatures are the host's job: these feed
//! messages with dummy signatures, as if they had verified).

use super::*;

struct NoSign;
impl Sign for NoSign {
    fn sign(&self, _: &[u8]) -> Signature {
        Signature([0; 64])
    }
}

/// Accepts every payload except those starting with `bad`; counts `validate` calls.
#[derive(Default)]
struct App {
    validated: usize,
}
impl Application for App {
    fn propose(&mut self, height: Height) -> Vec<u8> {
        format!("block {height}").into_bytes()
    }
    fn validate(&mut self, _: Height, payload: &[u8]) -> bool {
        self.validated += 1;
        !payload.starts_with(b"bad")
    }
}

fn set(n: usize) -> ValidatorSet {
    ValidatorSet::new((0..n).map(|i| Validator { public_key: [i as u8 + 1; 32], stake: 1 }).collect()).unwrap()
}

fn core(n: usize, me: ValidatorIndex) -> Core {
    Core::new(set(n), me, Box::new(NoSign), Config::default())
}

fn signed<T>(body: T, signer: ValidatorIndex) -> Signed<T> {
    Signed { body, signer, signature: Signature([0; 64]) }
}

fn vote(kind: VoteKind, height: Height, view: View, digest: Digest, signer: ValidatorIndex) -> SignedVote {
    signed(Vote { kind, height, view, digest }, signer)
}

fn view_change(
    height: Height,
    new_view: View,
    last_vote: Option<SignedVote>,
    signer: ValidatorIndex,
    payloads: Vec<Vec<u8>>,
) -> ViewChange {
    ViewChange { signed: signed(ViewChangeBody { height, new_view, prepared: None, last_vote }, signer), payloads }
}

fn deliver(c: &mut Core, app: &mut App, from: ValidatorIndex, message: Message) -> Vec<Effect> {
    c.handle(Input::Message { from, message }, app)
}

fn timeout(c: &mut Core, app: &mut App) -> Vec<Effect> {
    let t = Timer { height: c.height, view: c.view, seq: c.timer_seq, kind: TimerKind::View };
    c.handle(Input::Timeout(t), app)
}

/// A commit certificate for `payload` at `height` (commits of validators 1..=3 of 4).
fn decided(height: Height, payload: &[u8]) -> CommitCert {
    CommitCert { votes: (1..4).map(|s| vote(VoteKind::Commit, height, 0, Digest::of(payload), s)).collect() }
}

fn retained_payload_bytes(c: &Core) -> usize {
    c.payloads.values().map(Vec::len).sum()
}

/// Finding: one signer re-sending view changes that each name (as its own last vote) a new
/// payload made every payload stay in memory until the next height.
#[test]
fn a_signer_holds_at_most_the_payload_its_view_change_names() {
    let mut c = core(4, 0);
    let mut app = App::default();
    let mut last = Digest::default();
    for k in 0..1000u32 {
        let mut p = vec![0u8; 1 << 20];
        p[..4].copy_from_slice(&k.to_le_bytes());
        last = Digest::of(&p);
        let lv = vote(VoteKind::Prepare, 0, 0, last, 1);
        deliver(&mut c, &mut app, 1, Message::ViewChange(view_change(0, 1, Some(lv), 1, vec![p])));
    }
    assert!(retained_payload_bytes(&c) <= 2 << 20, "{} bytes retained", retained_payload_bytes(&c));
    assert!(c.payloads.contains_key(&last), "the payload the stored view change names is kept");
}

#[test]
fn view_change_payloads_above_the_bound_are_not_kept() {
    let config = Config { max_payload_bytes: 1024, ..Config::default() };
    let mut c = Core::new(set(4), 0, Box::new(NoSign), config);
    let mut app = App::default();
    for (signer, len) in [(1, 1025), (2, 1024)] {
        let p = vec![signer as u8; len];
        let lv = vote(VoteKind::Prepare, 0, 0, Digest::of(&p), signer);
        deliver(&mut c, &mut app, signer, Message::ViewChange(view_change(0, 1, Some(lv), signer, vec![p])));
    }
    assert_eq!(retained_payload_bytes(&c), 1024);
    assert_eq!(Config::default().max_payload_bytes, crate::node::ledger::MAX_PAYLOAD_BYTES);
}

/// Finding: a certified block above our height was buffered without checking its payload
/// against the certificate, and a later copy overwrote an earlier one.
#[test]
fn buffered_decided_blocks_match_their_certificate_and_are_never_overwritten() {
    let mut c = core(4, 0);
    let mut app = App::default();
    let genuine = b"block 2".to_vec();
    let garbage = Message::Decided { cert: decided(2, &genuine), payload: b"garbage".to_vec() };
    deliver(&mut c, &mut app, 1, garbage.clone());
    assert!(c.decided_future.is_empty(), "a payload that does not match its certificate is buffered");
    deliver(&mut c, &mut app, 2, Message::Decided { cert: decided(2, &genuine), payload: genuine.clone() });
    deliver(&mut c, &mut app, 1, garbage);
    // Heights 0 and 1 arrive: the buffered block 2 follows, as the genuine one.
    let mut decided_payloads = Vec::new();
    for h in 0..2u64 {
        let p = format!("block {h}").into_bytes();
        for e in deliver(&mut c, &mut app, 2, Message::Decided { cert: decided(h, &p), payload: p.clone() }) {
            if let Effect::Decide { height, payload, .. } = e {
                decided_payloads.push((height, payload));
            }
        }
    }
    assert_eq!(decided_payloads.last(), Some(&(2, genuine)));
    assert_eq!(c.height(), 3);
}

#[test]
fn buffered_decided_blocks_are_bounded_lowest_heights_first() {
    // Room for one 400-byte block (with its certificate) and not two.
    let config = Config { max_buffered_bytes: 1000, max_payload_bytes: 500, ..Config::default() };
    let mut c = Core::new(set(4), 0, Box::new(NoSign), config);
    let mut app = App::default();
    for h in [5, 3, 4] {
        let p = vec![h as u8; 400];
        deliver(&mut c, &mut app, 1, Message::Decided { cert: decided(h, &p), payload: p });
    }
    assert_eq!(c.decided_future.keys().copied().collect::<Vec<_>>(), vec![3]);
    assert!(c.decided_future_bytes <= 1000);
}

/// Moves `c` (validator 0 of 4) into view 1 through a new-view proposal by its leader (1), then
/// times out into view 2.
fn into_view_2_after_a_new_view(c: &mut Core, app: &mut App) {
    let payload = b"block 0 view 1".to_vec();
    let header = signed(ProposalHeader { height: 0, view: 1, digest: Digest::of(&payload) }, 1);
    let justification = (1..4).map(|s| view_change(0, 1, None, s, vec![])).collect();
    deliver(c, app, 1, Message::Proposal { header, payload, justification });
    assert_eq!((c.view(), c.active), (1, true));
    timeout(c, app);
    assert_eq!((c.view(), c.active), (2, false));
}

/// Finding: every copy of a lagging view change was answered, with up to a full proposal each;
/// and the answer could be the proposal of a view already left.
#[test]
fn a_lagging_view_change_is_answered_once_and_with_the_current_view() {
    let mut c = core(4, 0);
    let mut app = App::default();
    into_view_2_after_a_new_view(&mut c, &mut app);
    let lagging = Message::ViewChange(view_change(0, 1, None, 3, vec![]));
    let mut replies = Vec::new();
    for _ in 0..1000 {
        for e in deliver(&mut c, &mut app, 3, lagging.clone()) {
            if let Effect::Send { to, message } = e {
                replies.push((to, message));
            }
        }
    }
    assert_eq!(replies.len(), 1, "{} replies", replies.len());
    match &replies[0] {
        (3, Message::ViewChange(vc)) => assert_eq!(vc.signed.body.new_view, 2),
        other => panic!("answered with {other:?}"),
    }
}

/// Finding: invalid proposals were never recorded, so one leader could make a validator run
/// `validate` for any number of distinct invalid blocks in one view.
#[test]
fn one_leader_gets_one_validation_per_view() {
    // Validator 0 leads view 0 of height 0; validator 1 receives its blocks.
    let mut c = core(4, 1);
    let mut app = App::default();
    let mut evidence = 0;
    for k in 0..100 {
        let payload = format!("bad block {k}").into_bytes();
        let header = signed(ProposalHeader { height: 0, view: 0, digest: Digest::of(&payload) }, 0);
        let effects = deliver(&mut c, &mut app, 0, Message::Proposal { header, payload, justification: vec![] });
        evidence += effects.iter().filter(|e| matches!(e, Effect::Evidence(_))).count();
    }
    assert_eq!(app.validated, 1, "validate ran {} times", app.validated);
    assert_eq!(evidence, 1, "the second block is equivocation, reported once");
    assert!(c.validity.len() <= 1);
}

/// Finding: every distinct future height a signer signed for added an entry that was kept.
/// Messages beyond the next height are dropped (counted), nothing of them is buffered, and all
/// that is kept of them is one height per signer, so a replay reports nothing new.
#[test]
fn far_future_heights_do_not_grow_memory() {
    let mut c = core(4, 0);
    let mut app = App::default();
    let ahead = |effects: Vec<Effect>| effects.iter().filter(|e| matches!(e, Effect::Ahead { peer: 1, .. })).count();
    let mut reported = 0;
    for h in 2..1002 {
        reported +=
            ahead(deliver(&mut c, &mut app, 1, Message::Vote(vote(VoteKind::Prepare, h, 0, Digest([1; 32]), 1))));
    }
    assert_eq!(reported, 1000, "each higher height is reported");
    assert_eq!(c.dropped().out_of_range, 1000);
    assert_eq!(c.future.len(), 0, "nothing beyond the next height is buffered");
    assert!(c.decided_future.is_empty());
    assert_eq!(c.ahead_told, vec![None, Some(1001), None, None], "one height per signer");
    for h in (2..1002).rev() {
        let effects = deliver(&mut c, &mut app, 1, Message::Vote(vote(VoteKind::Prepare, h, 0, Digest([1; 32]), 1)));
        assert_eq!(ahead(effects), 0, "height {h} is not above the one reported");
    }
    assert_eq!(c.future.len(), 0);
    assert_eq!(c.ahead_told, vec![None, Some(1001), None, None]);
}

/// Finding: view changes for views below the current one stayed until the next height.
#[test]
fn view_changes_below_the_current_view_are_dropped() {
    let mut c = core(4, 0);
    let mut app = App::default();
    // Validators 1 and 2 (weak stake) ask for views 1, 2, 3: we follow, one view at a time.
    for v in 1..=3 {
        for signer in [1, 2] {
            deliver(&mut c, &mut app, signer, Message::ViewChange(view_change(0, v, None, signer, vec![])));
        }
        assert_eq!(c.view(), v);
    }
    assert!(c.view_changes.keys().all(|v| *v >= c.view()), "{:?}", c.view_changes.keys().collect::<Vec<_>>());
    assert!(c.view_changes.contains_key(&3));
}

fn view_change_for(effects: &[Effect]) -> Option<View> {
    effects.iter().find_map(|e| match e {
        Effect::Broadcast(Message::ViewChange(vc)) => Some(vc.signed.body.new_view),
        _ => None,
    })
}

/// Finding (3000-seed simulation): view timers ran from a validator's own view change, so `f`
/// validators that got a view ahead left each view just before the others reached it and its
/// proposal arrived, forever. A view that quorum stake has not asked for is now never left on a
/// timeout (the view change is resent), and its timer starts, afresh, when quorum stake has.
#[test]
fn a_view_is_left_on_a_timeout_only_after_it_started() {
    let mut c = core(4, 0);
    let mut app = App::default();
    // View 0 runs from the start: its timeout moves to view 1.
    assert_eq!(view_change_for(&timeout(&mut c, &mut app)), Some(1));
    assert_eq!((c.view(), c.active, c.started), (1, false, false));
    // Alone in view 1: the timer resends the view change and stays.
    for _ in 0..3 {
        let effects = timeout(&mut c, &mut app);
        assert_eq!(view_change_for(&effects), Some(1));
        assert!(effects.iter().any(|e| matches!(e, Effect::SetTimer { .. })));
        assert_eq!(c.view(), 1);
    }
    // Validator 1 asks for view 1: stake 2 of 4 has asked, below the quorum (3).
    let effects = deliver(&mut c, &mut app, 1, Message::ViewChange(view_change(0, 1, None, 1, vec![])));
    assert!(!c.started && !effects.iter().any(|e| matches!(e, Effect::SetTimer { .. })));
    // Validator 2 asks for view 5 (a later view counts; alone it is not weak support): the view
    // starts, with a fresh timer, whose timeout moves on.
    let effects = deliver(&mut c, &mut app, 2, Message::ViewChange(view_change(0, 5, None, 2, vec![])));
    assert_eq!(c.view(), 1);
    assert!(c.started && effects.iter().any(|e| matches!(e, Effect::SetTimer { .. })));
    assert_eq!(view_change_for(&timeout(&mut c, &mut app)), Some(2));
    // Views 2 to 5 were asked for by validators 2 and 0 only: view 2 has not started.
    assert!(!c.started);
}

/// A validator restored inactive (who asked for what is not persisted) sends a view change for
/// its persisted view when it starts, and resends it on its timer instead of moving on, so the
/// others learn where it is.
#[test]
fn a_restored_inactive_validator_resends_its_view_change() {
    let mut c = core(4, 0);
    let mut app = App::default();
    timeout(&mut c, &mut app);
    let state = c.safety_state();
    assert_eq!((state.view, state.active), (1, false));
    let mut r = Core::restore(set(4), 0, Box::new(NoSign), Config::default(), state, 0);
    assert_eq!(view_change_for(&r.handle(Input::Start, &mut app)), Some(1));
    assert!(!r.started);
    assert_eq!(view_change_for(&timeout(&mut r, &mut app)), Some(1));
    assert_eq!(r.view(), 1);
}

/// Validator 0 of four at height 3, its blocks 0..3 decided through validator 2.
fn at_height_3() -> (Core, App) {
    let mut c = core(4, 0);
    let mut app = App::default();
    for h in 0..3u64 {
        let p = format!("block {h}").into_bytes();
        deliver(&mut c, &mut app, 2, Message::Decided { cert: decided(h, &p), payload: p });
    }
    assert_eq!(c.height(), 3);
    (c, app)
}

/// A peer whose messages show it below our height is told our tip once per higher height it
/// shows (and on each view change it asks for), with one remembered height per peer: before,
/// every height a validator signed a message for was remembered until our next height.
#[test]
fn a_lagging_peer_is_told_once_per_height_it_shows() {
    let (mut c, mut app) = at_height_3();
    let told = |effects: &[Effect]| effects.iter().filter(|e| matches!(e, Effect::Behind { peer: 1, .. })).count();
    let prepare = |h: Height| Message::Vote(vote(VoteKind::Prepare, h, 0, Digest::default(), 1));
    assert_eq!(told(&deliver(&mut c, &mut app, 1, prepare(1))), 1);
    assert_eq!(told(&deliver(&mut c, &mut app, 1, prepare(1))), 0, "the same height is told once");
    assert_eq!(told(&deliver(&mut c, &mut app, 1, prepare(2))), 1, "a higher height is told");
    assert_eq!(told(&deliver(&mut c, &mut app, 1, prepare(1))), 0, "a delayed lower height is not");
    assert_eq!(told(&deliver(&mut c, &mut app, 1, prepare(2))), 0);
    let vc = Message::ViewChange(view_change(2, 1, None, 1, Vec::new()));
    assert_eq!(told(&deliver(&mut c, &mut app, 1, vc)), 1, "a lagging view change is always answered");
    assert_eq!(c.behind_told, vec![None, Some(2), None, None], "one height per validator, whatever heights it signs");
}

/// A host that drops messages below our height unverified asks [`Core::lagging`] instead: the
/// same answers, from the same one height per peer, as feeding those messages in.
#[test]
fn lagging_answers_as_a_message_below_our_height_would() {
    let (mut c, mut app) = at_height_3();
    assert_eq!(c.lagging(1, 1), Some(Effect::Behind { peer: 1, height: 1 }));
    assert_eq!(c.lagging(1, 1), None, "the same height is told once");
    assert_eq!(c.lagging(1, 0), None, "a lower one is not");
    assert_eq!(c.lagging(1, 2), Some(Effect::Behind { peer: 1, height: 2 }));
    let prepare = Message::Vote(vote(VoteKind::Prepare, 2, 0, Digest::default(), 1));
    let told = deliver(&mut c, &mut app, 1, prepare);
    assert!(!told.iter().any(|e| matches!(e, Effect::Behind { .. })), "one record with messages fed in");
    assert_eq!(c.lagging(1, 3), None, "not below our height");
    assert_eq!(c.lagging(0, 1), None, "never told to itself");
    assert_eq!(c.behind_told, vec![Some(1), Some(2), None, None]);
}

fn proposals(effects: &[Effect]) -> Vec<(Signed<ProposalHeader>, Vec<ViewChange>)> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Broadcast(Message::Proposal { header, justification, .. }) => {
                Some((*header, justification.clone()))
            }
            _ => None,
        })
        .collect()
}

/// Finding: a leader restarted after its new-view proposal resent it without the
/// justification (not persisted), which every validator refuses, and never sent it again with
/// one. Now it resends nothing at start above view 0, and once view changes of quorum stake for
/// the view arrive it resends the *same* signed header with a justification rebuilt from them
/// (never a second proposal for the view).
#[test]
fn a_restarted_leader_resends_its_new_view_proposal_only_with_a_justification() {
    use crate::node::consensus::rules;
    let leader = set(4).leader(0, 1);
    let others: Vec<ValidatorIndex> = (0..4).filter(|&i| i != leader).collect();
    let mut c = core(4, leader);
    let mut app = App::default();
    timeout(&mut c, &mut app);
    let mut sent = Vec::new();
    for &s in &others[..2] {
        sent.extend(proposals(&deliver(&mut c, &mut app, s, Message::ViewChange(view_change(0, 1, None, s, vec![])))));
    }
    let [(header, justification)] = sent.as_slice() else { panic!("one new-view proposal: {sent:?}") };
    assert_eq!(header.body.view, 1);
    assert!(rules::check_justification(&c.set, &header.body, justification).is_ok());

    let mut r = Core::restore(set(4), leader, Box::new(NoSign), Config::default(), c.safety_state(), 0);
    let started = proposals(&r.handle(Input::Start, &mut app));
    assert!(started.is_empty(), "resent at start without its justification: {started:?}");
    // The other validators' view changes for view 1 arrive again (resent on their timers).
    let mut resent = Vec::new();
    for &s in &others {
        resent.extend(proposals(&deliver(
            &mut r,
            &mut app,
            s,
            Message::ViewChange(view_change(0, 1, None, s, vec![])),
        )));
    }
    let [(again, justification)] = resent.as_slice() else { panic!("one proposal resent: {resent:?}") };
    assert_eq!(again, header, "the same signed header");
    assert!(rules::check_justification(&r.set, &again.body, justification).is_ok());
    // Kept to answer validators that lag in views.
    assert!(matches!(&r.new_view, Some(Message::Proposal { header: h, .. }) if h == header));
}

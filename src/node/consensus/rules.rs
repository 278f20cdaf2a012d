//! The protocol's pure rules: when a certificate is well formed, when a view change is well
//! formed, and which digest a new leader must re-propose ([`choose`]).
//!
//! These functions check structure and stake only; signatures were checked by the host.

use super::types::*;
use std::collections::BTreeMap;

/// Why a certificate or view change is rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    /// A certificate with no votes.
    #[error("certificate is empty")]
    Empty,
    /// Votes of a certificate disagree on kind, height, view or digest.
    #[error("certificate votes disagree")]
    Mixed,
    /// A signer appears twice or is not a validator.
    #[error("signer {0} is duplicated or not a validator")]
    BadSigner(ValidatorIndex),
    /// Not enough stake.
    #[error("certificate stake {have} below required {need}")]
    Stake {
        /// Stake present.
        have: u64,
        /// Stake required.
        need: u64,
    },
    /// Wrong vote kind for this certificate.
    #[error("wrong vote kind")]
    Kind,
    /// A view change that refers to a view not below its new view, or the wrong height.
    #[error("view change refers to height/view outside its scope")]
    Scope,
    /// A last vote signed by someone other than the view change's signer.
    #[error("last vote not signed by the view change's sender")]
    ForeignVote,
    /// A new-view proposal whose digest is not the one [`choose`] picks from its justification.
    #[error("proposal digest is not the one its justification forces")]
    NotChosen,
    /// More items than any valid message of this validator set has.
    #[error("{what}: {got} items, at most {max}")]
    TooMany {
        /// Which list.
        what: &'static str,
        /// Items present.
        got: usize,
        /// Most a valid message has.
        max: usize,
    },
}

fn at_most(what: &'static str, got: usize, max: usize) -> Result<(), RuleError> {
    if got > max {
        return Err(RuleError::TooMany { what, got, max });
    }
    Ok(())
}

/// Checks that `items` name distinct validators (`seen` is all false before and after).
fn distinct<T>(seen: &mut [bool], items: &[T], signer: impl Fn(&T) -> ValidatorIndex) -> Result<(), RuleError> {
    let mut result = Ok(());
    let mut marked = 0;
    for item in items {
        let i = signer(item);
        match seen.get_mut(usize::from(i)) {
            Some(s) if !*s => *s = true,
            _ => {
                result = Err(RuleError::BadSigner(i));
                break;
            }
        }
        marked += 1;
    }
    for item in &items[..marked] {
        if let Some(s) = seen.get_mut(usize::from(signer(item))) {
            *s = false;
        }
    }
    result
}

fn view_change_shape(set: &ValidatorSet, vc: &ViewChange, seen: &mut [bool]) -> Result<(), RuleError> {
    if set.get(vc.signed.signer).is_none() {
        return Err(RuleError::BadSigner(vc.signed.signer));
    }
    if let Some(p) = &vc.signed.body.prepared {
        at_most("prepared certificate", p.votes.len(), set.len())?;
        distinct(seen, &p.votes, |v| v.signer)?;
    }
    // The payloads of its prepared certificate and its last vote.
    at_most("view change payloads", vc.payloads.len(), MAX_VIEW_CHANGE_PAYLOADS)
}

/// Cheap structural bounds of a message, checked *before* its signatures are verified, so a
/// message built to cost many verifications is refused for the price of counting: every list of
/// votes or view changes holds at most one entry per validator (distinct validators, each in
/// the set), a view change carries at most two payloads, and every top-level signer is a
/// validator. (The full rules run in the core.)
pub fn check_shape(set: &ValidatorSet, m: &Message) -> Result<(), RuleError> {
    let n = set.len();
    let signer = |i: ValidatorIndex| set.get(i).map(|_| ()).ok_or(RuleError::BadSigner(i));
    match m {
        Message::Proposal { header, justification, .. } => {
            signer(header.signer)?;
            at_most("justification", justification.len(), n)?;
            let mut seen = vec![false; n];
            distinct(&mut seen, justification, |vc| vc.signed.signer)?;
            justification.iter().try_for_each(|vc| view_change_shape(set, vc, &mut seen))
        }
        Message::Vote(v) => signer(v.signer),
        Message::ViewChange(vc) => view_change_shape(set, vc, &mut vec![false; n]),
        Message::Decided { cert, .. } => {
            if cert.votes.is_empty() {
                return Err(RuleError::Empty);
            }
            at_most("commit certificate", cert.votes.len(), n)?;
            distinct(&mut vec![false; n], &cert.votes, |v| v.signer)
        }
    }
}

/// Checks votes are for one `(kind, height, view, digest)`, from distinct validators, and returns
/// their stake.
fn uniform_stake(set: &ValidatorSet, votes: &[SignedVote]) -> Result<(Vote, u64), RuleError> {
    let first = votes.first().ok_or(RuleError::Empty)?.body;
    let mut seen = vec![false; set.len()];
    let mut stake = 0;
    for v in votes {
        if v.body != first {
            return Err(RuleError::Mixed);
        }
        let slot = seen.get_mut(usize::from(v.signer)).ok_or(RuleError::BadSigner(v.signer))?;
        if *slot {
            return Err(RuleError::BadSigner(v.signer));
        }
        *slot = true;
        stake += set.stake(v.signer);
    }
    Ok((first, stake))
}

/// A prepared certificate: a quorum of prepares for one digest.
pub fn check_prepared(set: &ValidatorSet, cert: &PreparedCert) -> Result<Vote, RuleError> {
    let (vote, stake) = uniform_stake(set, &cert.votes)?;
    if vote.kind != VoteKind::Prepare {
        return Err(RuleError::Kind);
    }
    if stake < set.quorum() {
        return Err(RuleError::Stake { have: stake, need: set.quorum() });
    }
    Ok(vote)
}

/// A commit certificate: a quorum of commits, or prepares from all stake (fast path).
pub fn check_commit(set: &ValidatorSet, cert: &CommitCert) -> Result<Vote, RuleError> {
    let (vote, stake) = uniform_stake(set, &cert.votes)?;
    let need = match vote.kind {
        VoteKind::Commit => set.quorum(),
        VoteKind::Prepare => set.total_stake(),
    };
    if stake < need {
        return Err(RuleError::Stake { have: stake, need });
    }
    Ok(vote)
}

/// A view change's body: its certificate and last vote are at its height, below its new view,
/// and the last vote is the sender's own prepare.
pub fn check_view_change(set: &ValidatorSet, vc: &Signed<ViewChangeBody>) -> Result<(), RuleError> {
    let b = &vc.body;
    if set.get(vc.signer).is_none() {
        return Err(RuleError::BadSigner(vc.signer));
    }
    if let Some(p) = &b.prepared {
        let v = check_prepared(set, p)?;
        if v.height != b.height || v.view >= b.new_view {
            return Err(RuleError::Scope);
        }
    }
    if let Some(lv) = &b.last_vote {
        if lv.signer != vc.signer {
            return Err(RuleError::ForeignVote);
        }
        if lv.body.kind != VoteKind::Prepare {
            return Err(RuleError::Kind);
        }
        if lv.body.height != b.height || lv.body.view >= b.new_view {
            return Err(RuleError::Scope);
        }
    }
    Ok(())
}

/// A proposal's justification. View 0 needs none. Above view 0: view changes for the proposal's
/// `(height, view)` from distinct validators holding quorum stake, each well formed
/// ([`check_view_change`]), and the proposed digest is the one [`choose`] picks from them, if
/// it picks one.
pub fn check_justification(
    set: &ValidatorSet,
    header: &ProposalHeader,
    justification: &[ViewChange],
) -> Result<(), RuleError> {
    if header.view == 0 {
        return Ok(());
    }
    let mut seen = vec![false; set.len()];
    let mut stake = 0;
    for vc in justification {
        let b = &vc.signed.body;
        if b.height != header.height || b.new_view != header.view {
            return Err(RuleError::Scope);
        }
        let signer = vc.signed.signer;
        let slot = seen.get_mut(usize::from(signer)).ok_or(RuleError::BadSigner(signer))?;
        if *slot {
            return Err(RuleError::BadSigner(signer));
        }
        *slot = true;
        check_view_change(set, &vc.signed)?;
        stake += set.stake(signer);
    }
    if stake < set.quorum() {
        return Err(RuleError::Stake { have: stake, need: set.quorum() });
    }
    match choose(set, justification.iter().map(|vc| &vc.signed)) {
        Some(d) if d != header.digest => Err(RuleError::NotChosen),
        _ => Ok(()),
    }
}

/// What the new leader of a view must propose, given the view changes of a quorum.
///
/// Candidates:
/// - every prepared certificate, ranked `(view, 1)`;
/// - every digest `d` whose senders' last votes carry weak support (`≥ f+1` stake) at views
///   `≥ w`, ranked `(w, 0)` for the largest such `w`.
///
/// The highest-ranked candidate wins (ties between digests broken by the digest bytes, which only
/// happens when nothing can have been decided). `None`: no candidate, the leader may propose any
/// valid payload. `docs/consensus.md` proves that a digest decided in an earlier view is always the
/// unique highest candidate of any quorum of view changes.
pub fn choose<'a>(set: &ValidatorSet, vcs: impl IntoIterator<Item = &'a Signed<ViewChangeBody>>) -> Option<Digest> {
    let mut best: Option<((View, u8), Digest)> = None;
    let mut consider = |rank: (View, u8), d: Digest| {
        if best.is_none_or(|(r, bd)| (rank, d) > (r, bd)) {
            best = Some((rank, d));
        }
    };
    let mut votes: BTreeMap<Digest, Vec<(View, u64)>> = BTreeMap::new();
    for vc in vcs {
        if let Some(p) = &vc.body.prepared {
            consider((p.view(), 1), p.digest());
        }
        if let Some(lv) = &vc.body.last_vote {
            votes.entry(lv.body.digest).or_default().push((lv.body.view, set.stake(vc.signer)));
        }
    }
    for (d, mut vs) in votes {
        vs.sort_by_key(|a| std::cmp::Reverse(a.0));
        let mut acc = 0;
        for (view, stake) in vs {
            acc += stake;
            if acc >= set.weak() {
                consider((view, 0), d);
                break;
            }
        }
    }
    best.map(|(_, d)| d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(n: usize) -> ValidatorSet {
        ValidatorSet::new((0..n).map(|i| Validator { public_key: [i as u8; 32], stake: 1 }).collect()).unwrap()
    }
    fn sv(kind: VoteKind, view: View, d: u8, signer: ValidatorIndex) -> SignedVote {
        Signed { body: Vote { kind, height: 5, view, digest: Digest([d; 32]) }, signer, signature: Signature([0; 64]) }
    }
    fn vc(signer: ValidatorIndex, prepared: Option<(View, u8)>, last: Option<(View, u8)>) -> Signed<ViewChangeBody> {
        Signed {
            body: ViewChangeBody {
                height: 5,
                new_view: 9,
                prepared: prepared
                    .map(|(v, d)| PreparedCert { votes: (0..3).map(|s| sv(VoteKind::Prepare, v, d, s)).collect() }),
                last_vote: last.map(|(v, d)| sv(VoteKind::Prepare, v, d, signer)),
            },
            signer,
            signature: Signature([0; 64]),
        }
    }

    #[test]
    fn thresholds() {
        let s = set(4);
        assert_eq!((s.max_faulty(), s.quorum(), s.weak()), (1, 3, 2));
        let s = set(7);
        assert_eq!((s.max_faulty(), s.quorum(), s.weak()), (2, 5, 3));
        let w = ValidatorSet::new(vec![
            Validator { public_key: [1; 32], stake: 5 },
            Validator { public_key: [2; 32], stake: 3 },
            Validator { public_key: [3; 32], stake: 2 },
        ])
        .unwrap();
        assert_eq!((w.max_faulty(), w.quorum(), w.weak()), (3, 7, 4));
        assert!(2 * w.quorum() - w.total_stake() > w.max_faulty());
        assert_eq!(ValidatorSet::new(vec![]), Err(SetError::Empty));
    }

    #[test]
    fn certificates() {
        let s = set(4);
        let ok = PreparedCert { votes: (0..3).map(|i| sv(VoteKind::Prepare, 1, 7, i)).collect() };
        assert!(check_prepared(&s, &ok).is_ok());
        let short = PreparedCert { votes: (0..2).map(|i| sv(VoteKind::Prepare, 1, 7, i)).collect() };
        assert_eq!(check_prepared(&s, &short), Err(RuleError::Stake { have: 2, need: 3 }));
        let dup = PreparedCert { votes: vec![sv(VoteKind::Prepare, 1, 7, 0); 3] };
        assert_eq!(check_prepared(&s, &dup), Err(RuleError::BadSigner(0)));
        let mixed = PreparedCert {
            votes: vec![sv(VoteKind::Prepare, 1, 7, 0), sv(VoteKind::Prepare, 1, 8, 1), sv(VoteKind::Prepare, 1, 7, 2)],
        };
        assert_eq!(check_prepared(&s, &mixed), Err(RuleError::Mixed));
        let fast3 = CommitCert { votes: (0..3).map(|i| sv(VoteKind::Prepare, 1, 7, i)).collect() };
        assert!(check_commit(&s, &fast3).is_err());
        let fast4 = CommitCert { votes: (0..4).map(|i| sv(VoteKind::Prepare, 1, 7, i)).collect() };
        assert!(check_commit(&s, &fast4).is_ok());
        let slow = CommitCert { votes: (1..4).map(|i| sv(VoteKind::Commit, 1, 7, i)).collect() };
        assert!(check_commit(&s, &slow).is_ok());
        let unknown = CommitCert { votes: (1..5).map(|i| sv(VoteKind::Commit, 1, 7, i)).collect() };
        assert_eq!(check_commit(&s, &unknown), Err(RuleError::BadSigner(4)));
    }

    #[test]
    fn choice_prefers_highest_view_and_cert_on_ties() {
        let s = set(4);
        // Nothing known: free choice.
        assert_eq!(choose(&s, &[vc(0, None, None), vc(1, None, None), vc(2, None, None)]), None);
        // A single last vote is not weak support.
        assert_eq!(choose(&s, &[vc(0, None, Some((3, 1))), vc(1, None, None), vc(2, None, None)]), None);
        // Two last votes for digest 1 at views 3 and 4: weak support at view 3.
        let two = [vc(0, None, Some((3, 1))), vc(1, None, Some((4, 1))), vc(2, Some((2, 2)), Some((2, 2)))];
        assert_eq!(choose(&s, &two), Some(Digest([1; 32])));
        // A certificate at the same view as weak support wins the tie.
        let tie = [vc(0, None, Some((3, 1))), vc(1, None, Some((3, 1))), vc(2, Some((3, 2)), Some((3, 2)))];
        assert_eq!(choose(&s, &tie), Some(Digest([2; 32])));
        // A higher certificate wins over lower weak support.
        let hi = [vc(0, None, Some((3, 1))), vc(1, None, Some((3, 1))), vc(2, Some((4, 2)), Some((4, 2)))];
        assert_eq!(choose(&s, &hi), Some(Digest([2; 32])));
    }

    #[test]
    fn shape_bounds_come_before_signatures() {
        let s = set(4);
        let decided = |signers: &[ValidatorIndex]| Message::Decided {
            cert: CommitCert { votes: signers.iter().map(|i| sv(VoteKind::Commit, 1, 7, *i)).collect() },
            payload: vec![],
        };
        assert!(check_shape(&s, &decided(&[0, 1, 2, 3])).is_ok());
        assert_eq!(
            check_shape(&s, &decided(&[0, 1, 2, 3, 4])),
            Err(RuleError::TooMany { what: "commit certificate", got: 5, max: 4 })
        );
        assert_eq!(check_shape(&s, &decided(&[])), Err(RuleError::Empty));
        // At most one vote per validator: a repeated or unknown signer is refused unverified.
        assert_eq!(check_shape(&s, &decided(&[0, 1, 1])), Err(RuleError::BadSigner(1)));
        assert_eq!(check_shape(&s, &decided(&[0, 9])), Err(RuleError::BadSigner(9)));
        let view_change = ViewChange { signed: vc(0, Some((3, 1)), None), payloads: vec![vec![]; 3] };
        assert!(matches!(check_shape(&s, &Message::ViewChange(view_change.clone())), Err(RuleError::TooMany { .. })));
        let ok = ViewChange { payloads: vec![], ..view_change };
        assert!(check_shape(&s, &Message::ViewChange(ok.clone())).is_ok());
        let mut twice = ok.clone();
        if let Some(p) = &mut twice.signed.body.prepared {
            p.votes[2].signer = 0;
        }
        assert_eq!(check_shape(&s, &Message::ViewChange(twice)), Err(RuleError::BadSigner(0)));
        let header = Signed {
            body: ProposalHeader { height: 5, view: 9, digest: Digest([0; 32]) },
            signer: 1,
            signature: Signature([0; 64]),
        };
        let from = |signers: &[ValidatorIndex]| -> Vec<ViewChange> {
            signers
                .iter()
                .map(|i| ViewChange { signed: Signed { signer: *i, ..ok.signed.clone() }, payloads: vec![] })
                .collect()
        };
        let proposal = |justification| Message::Proposal { header, payload: vec![], justification };
        assert!(check_shape(&s, &proposal(from(&[0, 1, 2, 3]))).is_ok());
        assert!(matches!(
            check_shape(&s, &proposal(from(&[0, 1, 2, 3, 0]))),
            Err(RuleError::TooMany { what: "justification", .. })
        ));
        assert_eq!(check_shape(&s, &proposal(from(&[0, 1, 0]))), Err(RuleError::BadSigner(0)));
        assert_eq!(check_shape(&s, &Message::Vote(sv(VoteKind::Prepare, 1, 1, 9))), Err(RuleError::BadSigner(9)));
    }

    #[test]
    fn view_change_scope() {
        let s = set(4);
        assert!(check_view_change(&s, &vc(0, Some((3, 1)), Some((4, 1)))).is_ok());
        let mut bad = vc(0, None, Some((9, 1)));
        assert_eq!(check_view_change(&s, &bad), Err(RuleError::Scope));
        bad.body.last_vote = Some(sv(VoteKind::Prepare, 1, 1, 3));
        assert_eq!(check_view_change(&s, &bad), Err(RuleError::ForeignVote));
    }

    #[test]
    fn a_new_view_proposal_of_the_largest_set_fits_a_frame() {
        use crate::node::ledger::MAX_PAYLOAD_BYTES;
        use crate::node::net::{Frame, MAX_FRAME};
        // One byte of frame tag around the message.
        const TAG: usize = 1;
        const { assert!(TAG + max_proposal_bytes(MAX_VALIDATORS, MAX_PAYLOAD_BYTES) <= MAX_FRAME) };
        const { assert!(TAG + max_proposal_bytes(MAX_VALIDATORS + 1, MAX_PAYLOAD_BYTES) > MAX_FRAME) };
        // The bounds hold for the largest field values.
        let n = 7;
        let vote = |signer| Signed {
            body: Vote { kind: VoteKind::Prepare, height: u64::MAX, view: u64::MAX, digest: Digest([0xff; 32]) },
            signer,
            signature: Signature([0xff; 64]),
        };
        let vc = |signer: ValidatorIndex| ViewChange {
            signed: Signed {
                body: ViewChangeBody {
                    height: u64::MAX,
                    new_view: u64::MAX,
                    prepared: Some(PreparedCert { votes: (0..n as u16).map(|_| vote(u16::MAX)).collect() }),
                    last_vote: Some(vote(u16::MAX)),
                },
                signer,
                signature: Signature([0xff; 64]),
            },
            payloads: vec![],
        };
        assert!(postcard::to_stdvec(&vc(u16::MAX)).unwrap().len() <= max_view_change_bytes(n));
        let header = Signed {
            body: ProposalHeader { height: u64::MAX, view: u64::MAX, digest: Digest([0xff; 32]) },
            signer: u16::MAX,
            signature: Signature([0xff; 64]),
        };
        let m = Message::Proposal { header, payload: vec![1; 1000], justification: (0..n as u16).map(vc).collect() };
        assert!(crate::node::net::encode(&Frame::Consensus(m)).len() - 4 <= TAG + max_proposal_bytes(n, 1000));
        // The set refuses more validators than that, naming the limit.
        let many = |k: usize| {
            let key = |i: usize| {
                let mut key = [0u8; 32];
                key[..8].copy_from_slice(&(i as u64).to_le_bytes());
                key
            };
            (0..k).map(|i| Validator { public_key: key(i), stake: 1 }).collect::<Vec<_>>()
        };
        assert_eq!(ValidatorSet::new(many(MAX_VALIDATORS)).map(|s| s.len()), Ok(MAX_VALIDATORS));
        let e = ValidatorSet::new(many(MAX_VALIDATORS + 1)).unwrap_err();
        assert_eq!(e, SetError::TooMany(MAX_VALIDATORS + 1));
        assert!(e.to_string().contains("at most 587"), "{e}");
    }
}

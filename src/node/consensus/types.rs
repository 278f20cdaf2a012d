//! Identifiers, the validator set with its stake thresholds, and the signed messages of the
//! protocol.
//!
//! # Signing
//!
//! Every message a validator originates is a [`Signed`] body. The bytes a signature covers are
//! [`Signable::signing_bytes`]: a domain tag, the chain id (genesis id), a one-byte kind and the
//! SHA-256 of the body's canonical (postcard) encoding. Payloads (block bytes) are never signed directly: a body names a
//! payload by its [`Digest`] (SHA-256 of the payload), and whoever receives a payload checks that it
//! hashes to the digest it was announced with.
//!
//! The core does not verify signatures: the host verifies every signature a message carries,
//! nested ones included ([`Message::signatures`]), in one batch through the engine, and feeds the
//! core only messages whose signatures all hold. The core checks everything else (signer is a
//! validator, stake thresholds, heights and views, digests).
//!
//! # Decoding
//!
//! Messages arrive from peers, so decoding bounds every vector whose elements take much more
//! memory than their smallest encoding by what a valid message can hold, and refuses a longer
//! one on its announced length, before decoding (or allocating for) any element: a view
//! change's payloads ([`MAX_VIEW_CHANGE_PAYLOADS`]; an empty payload is 1 byte on the wire, 24 in
//! memory), a proposal's justification and a certificate's votes (one per validator,
//! [`MAX_VALIDATORS`]). The remaining vectors (payload bytes) take one byte of memory per byte.

use serde::{Deserialize, Deserializer, Serialize};
use sha2::{Digest as _, Sha256};
use std::fmt;

/// A block height: the index of one consensus instance (first block: 0).
pub type Height = u64;
/// A view (round) inside one height; view 0 is led by the height's first leader.
pub type View = u64;
/// A validator's position in the [`ValidatorSet`].
pub type ValidatorIndex = u16;

/// A SHA-256 digest.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Default)]
pub struct Digest(pub [u8; 32]);

impl Digest {
    /// SHA-256 of `bytes`.
    pub fn of(bytes: &[u8]) -> Digest {
        Digest(Sha256::digest(bytes).into())
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in &self.0[..6] {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// A 64-byte signature (Ed25519 for consensus messages).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Signature(pub [u8; 64]);

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sig:{:02x}{:02x}{:02x}{:02x}", self.0[0], self.0[1], self.0[2], self.0[3])
    }
}

impl Serialize for Signature {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for Signature {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Signature;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("64 signature bytes")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Signature, E> {
                let a: [u8; 64] = v.try_into().map_err(|_| E::invalid_length(v.len(), &self))?;
                Ok(Signature(a))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Signature, A::Error> {
                let mut a = [0u8; 64];
                for (i, b) in a.iter_mut().enumerate() {
                    *b = seq.next_element()?.ok_or_else(|| serde::de::Error::invalid_length(i, &self))?;
                }
                Ok(Signature(a))
            }
        }
        d.deserialize_bytes(V)
    }
}

/// One validator: its Ed25519 public key and its stake.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Validator {
    /// Ed25519 public key that signs its consensus messages.
    pub public_key: [u8; 32],
    /// Voting weight; must be positive.
    pub stake: u64,
}

/// Why a validator set is rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SetError {
    /// No validators.
    #[error("validator set is empty")]
    Empty,
    /// More validators than [`MAX_VALIDATORS`].
    #[error(
        "validator set has {0} validators; at most {max}: a larger set's new-view proposal \
         (a view change per validator, each with a certificate of up to one vote per validator, \
         plus a 24 MiB payload) may not fit a 64 MiB frame",
        max = MAX_VALIDATORS
    )]
    TooMany(usize),
    /// A validator with zero stake.
    #[error("validator {0} has zero stake")]
    ZeroStake(usize),
    /// Total stake overflows u64.
    #[error("total stake overflows u64")]
    Overflow,
    /// Two validators share a key.
    #[error("validators {0} and {1} share a public key")]
    DuplicateKey(usize, usize),
}

/// The validators of the network with their stake, and the thresholds derived from it.
///
/// With total stake `S`, the protocol tolerates Byzantine stake up to `f = ⌊(S−1)/3⌋`
/// ([`ValidatorSet::max_faulty`]). A *quorum* is stake `≥ S − f` (any two quorums overlap in more
/// than `f`, so in at least one honest validator); *weak* support is stake `≥ f + 1` (it contains
/// at least one honest validator); the *fast path* needs all `S`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValidatorSet {
    validators: Vec<Validator>,
    total: u64,
}

impl ValidatorSet {
    /// A set from validators in index order: at least one and at most [`MAX_VALIDATORS`], each
    /// with positive stake and its own key, total stake within `u64`.
    pub fn new(validators: Vec<Validator>) -> Result<ValidatorSet, SetError> {
        if validators.is_empty() {
            return Err(SetError::Empty);
        }
        if validators.len() > MAX_VALIDATORS {
            return Err(SetError::TooMany(validators.len()));
        }
        let mut total = 0u64;
        for (i, v) in validators.iter().enumerate() {
            if v.stake == 0 {
                return Err(SetError::ZeroStake(i));
            }
            total = total.checked_add(v.stake).ok_or(SetError::Overflow)?;
            if let Some(j) = validators[..i].iter().position(|w| w.public_key == v.public_key) {
                return Err(SetError::DuplicateKey(j, i));
            }
        }
        Ok(ValidatorSet { validators, total })
    }

    /// Number of validators.
    pub fn len(&self) -> usize {
        self.validators.len()
    }

    /// Always false (a set is never empty).
    pub fn is_empty(&self) -> bool {
        self.validators.is_empty()
    }

    /// The validators in index order.
    pub fn validators(&self) -> &[Validator] {
        &self.validators
    }

    /// The validator at `i`, if any.
    pub fn get(&self, i: ValidatorIndex) -> Option<&Validator> {
        self.validators.get(usize::from(i))
    }

    /// Stake of validator `i` (0 for an unknown index).
    pub fn stake(&self, i: ValidatorIndex) -> u64 {
        self.get(i).map_or(0, |v| v.stake)
    }

    /// Total stake `S`.
    pub fn total_stake(&self) -> u64 {
        self.total
    }

    /// The Byzantine stake tolerated: `f = ⌊(S−1)/3⌋`.
    pub fn max_faulty(&self) -> u64 {
        (self.total - 1) / 3
    }

    /// Quorum stake `S − f`.
    pub fn quorum(&self) -> u64 {
        self.total - self.max_faulty()
    }

    /// Weak-support stake `f + 1`.
    pub fn weak(&self) -> u64 {
        self.max_faulty() + 1
    }

    /// Sum of the stake of distinct validators in `who`.
    pub fn stake_of(&self, who: impl IntoIterator<Item = ValidatorIndex>) -> u64 {
        let mut seen = vec![false; self.len()];
        let mut sum = 0;
        for i in who {
            if let Some(s) = seen.get_mut(usize::from(i)) {
                if !*s {
                    *s = true;
                    sum += self.stake(i);
                }
            }
        }
        sum
    }

    /// The leader of `(height, view)`: round robin over indices, `(height + view) mod n`.
    pub fn leader(&self, height: Height, view: View) -> ValidatorIndex {
        let n = self.validators.len() as u64;
        (height.wrapping_add(view) % n) as ValidatorIndex
    }
}

/// Something a validator signs.
pub trait Signable: Serialize {
    /// One byte that separates kinds of bodies.
    const KIND: u8;
    /// The bytes the signature covers on chain `chain` (its genesis id):
    /// `"parthenon/consensus/v2" || chain || KIND || SHA-256(postcard(body))`. Naming the chain
    /// keeps a statement (vote, certificate, view change) signed for one chain from being
    /// replayed on another that shares validator keys.
    fn signing_bytes(&self, chain: &Digest) -> Vec<u8> {
        let body = postcard::to_stdvec(self).unwrap_or_default();
        let mut out = Vec::with_capacity(DOMAIN.len() + 65);
        out.extend_from_slice(DOMAIN);
        out.extend_from_slice(&chain.0);
        out.push(Self::KIND);
        out.extend_from_slice(&Sha256::digest(&body));
        out
    }
}

/// Domain separation tag of consensus signatures.
pub const DOMAIN: &[u8] = b"parthenon/consensus/v2";

/// Largest encoding of one [`SignedVote`]: kind (1), height and view (varints, 10 each), digest
/// (32), signer (varint, 3), signature (length byte and 64).
pub const MAX_SIGNED_VOTE_BYTES: usize = 1 + 10 + 10 + 32 + 3 + 1 + 64;

/// Largest encoding of a [`ViewChange`] without payloads (as a justification carries it) in a
/// set of `validators`: signer (varint, 3), signature (65), height and new view (10 each), the
/// prepared certificate (option tag, vector length 10, at most one vote per validator), the last
/// vote (option tag and one vote), the empty payload vector (10).
pub const fn max_view_change_bytes(validators: usize) -> usize {
    3 + 65 + 10 + 10 + 1 + 10 + validators * MAX_SIGNED_VOTE_BYTES + 1 + MAX_SIGNED_VOTE_BYTES + 10
}

/// Largest encoding of a [`Message::Proposal`] with a payload of at most `payload` bytes and a
/// justification of at most one payload-free view change per validator: message tag (1), header
/// (height and view 10 each, digest 32, signer 3, signature 65), payload length (10) and bytes,
/// justification length (10) and view changes ([`max_view_change_bytes`]). It grows with the
/// square of the set's size.
pub const fn max_proposal_bytes(validators: usize, payload: usize) -> usize {
    1 + 10 + 10 + 32 + 3 + 65 + 10 + payload + 10 + validators * max_view_change_bytes(validators)
}

/// Most validators a [`ValidatorSet`] may have: the largest `n` for which a new-view proposal
/// ([`max_proposal_bytes`]) with a largest payload (the ledger's
/// [`MAX_PAYLOAD_BYTES`](crate::node::ledger::MAX_PAYLOAD_BYTES), 24 MiB) fits one network frame
/// ([`MAX_FRAME`](crate::node::net::MAX_FRAME), 64 MiB, with its one-byte frame tag). A larger
/// set could decide nothing after a view change whose justification no longer fits a frame.
/// (Checked by a unit test.)
pub const MAX_VALIDATORS: usize = 587;

/// Most payloads a [`ViewChange`] carries: its prepared certificate's and its last vote's. A
/// longer list does not decode (module docs).
pub const MAX_VIEW_CHANGE_PAYLOADS: usize = 2;

/// Decodes a vector of at most `max` elements (`what`, for the error). Postcard announces a
/// vector's length before its elements: a longer one is refused on that alone, before any
/// element is decoded or allocated for (serde's own `Vec` decoding would push every element the
/// length claims that the input holds). A format that announces no length is refused at the
/// first element past `max`.
fn at_most<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
    max: usize,
    what: &'static str,
) -> Result<Vec<T>, D::Error> {
    struct Bounded<T> {
        max: usize,
        what: &'static str,
        elements: std::marker::PhantomData<T>,
    }
    impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for Bounded<T> {
        type Value = Vec<T>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            write!(f, "at most {} {}", self.max, self.what)
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let n = seq.size_hint().unwrap_or(0);
            if n > self.max {
                return Err(serde::de::Error::invalid_length(n, &self));
            }
            let mut out = Vec::with_capacity(n);
            while let Some(x) = seq.next_element()? {
                if out.len() == self.max {
                    return Err(serde::de::Error::invalid_length(out.len() + 1, &self));
                }
                out.push(x);
            }
            Ok(out)
        }
    }
    d.deserialize_seq(Bounded { max, what, elements: std::marker::PhantomData })
}

/// A list of at most one item per validator ([`MAX_VALIDATORS`]): a certificate's votes, a
/// justification's view changes.
fn at_most_validators<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Vec<T>, D::Error> {
    at_most(d, MAX_VALIDATORS, "entries, one per validator")
}

/// A view change's payloads: at most [`MAX_VIEW_CHANGE_PAYLOADS`].
fn at_most_view_change_payloads<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Vec<u8>>, D::Error> {
    at_most(d, MAX_VIEW_CHANGE_PAYLOADS, "view change payloads")
}

/// A body with its signer and signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signed<T> {
    /// What was signed.
    pub body: T,
    /// Who signed it.
    pub signer: ValidatorIndex,
    /// Signature over `body.signing_bytes()`.
    pub signature: Signature,
}

/// Produces this validator's signatures (Ed25519 signing, deterministic).
pub trait Sign: Send {
    /// Signs `bytes`.
    fn sign(&self, bytes: &[u8]) -> Signature;
}

impl Sign for ed25519_dalek::SigningKey {
    fn sign(&self, bytes: &[u8]) -> Signature {
        use ed25519_dalek::Signer;
        Signature(Signer::sign(self, bytes).to_bytes())
    }
}

/// A leader's proposal of a payload at `(height, view)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProposalHeader {
    /// Height.
    pub height: Height,
    /// View.
    pub view: View,
    /// SHA-256 of the payload.
    pub digest: Digest,
}

impl Signable for ProposalHeader {
    const KIND: u8 = 1;
}

/// The two voting phases.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum VoteKind {
    /// Second phase: "I accept this proposal in this view".
    Prepare,
    /// Third phase: "I saw a quorum of prepares for it".
    Commit,
}

/// A vote for a digest at `(height, view)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vote {
    /// Phase.
    pub kind: VoteKind,
    /// Height.
    pub height: Height,
    /// View.
    pub view: View,
    /// Digest voted for.
    pub digest: Digest,
}

impl Signable for Vote {
    const KIND: u8 = 2;
}

/// A signed vote.
pub type SignedVote = Signed<Vote>;

/// A quorum of prepares for one digest in one view: proof that the digest may have been
/// committed in that view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreparedCert {
    /// The prepares (same height, view, digest; distinct signers); at most [`MAX_VALIDATORS`]
    /// decode.
    #[serde(deserialize_with = "at_most_validators")]
    pub votes: Vec<SignedVote>,
}

impl PreparedCert {
    /// The view of the certificate (of its first vote).
    pub fn view(&self) -> View {
        self.votes.first().map_or(0, |v| v.body.view)
    }
    /// The digest of the certificate.
    pub fn digest(&self) -> Digest {
        self.votes.first().map_or(Digest::default(), |v| v.body.digest)
    }
}

/// Proof that a digest is final at a height: a quorum of commits (slow path) or prepares from
/// all stake (fast path), all for the same `(height, view, digest)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitCert {
    /// The votes; at most [`MAX_VALIDATORS`] decode.
    #[serde(deserialize_with = "at_most_validators")]
    pub votes: Vec<SignedVote>,
}

impl CommitCert {
    /// Largest encoding of a certificate that passes
    /// [`check_commit`](super::rules::check_commit) in a set of `validators` (distinct signers,
    /// so at most one vote each): the vector length (varint, 10) and the votes.
    pub const fn max_encoded_len(validators: usize) -> usize {
        10 + validators * MAX_SIGNED_VOTE_BYTES
    }
    /// The certified vote (the first one's body).
    pub fn vote(&self) -> Option<Vote> {
        self.votes.first().map(|v| v.body)
    }
    /// True when it was formed by the fast path (all prepares).
    pub fn is_fast(&self) -> bool {
        self.vote().is_some_and(|v| v.kind == VoteKind::Prepare)
    }
}

/// "I leave every view below `new_view` at `height`", with what the sender knows that the next
/// leader must respect.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ViewChangeBody {
    /// Height.
    pub height: Height,
    /// The view the sender moves to.
    pub new_view: View,
    /// The sender's highest prepared certificate at this height (view < `new_view`).
    pub prepared: Option<PreparedCert>,
    /// The sender's last prepare at this height (view < `new_view`), signed by the sender.
    pub last_vote: Option<SignedVote>,
}

impl Signable for ViewChangeBody {
    const KIND: u8 = 3;
}

/// A signed view change plus the payloads its certificate and last vote name (unsigned: each is
/// checked against its digest).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ViewChange {
    /// The signed part.
    pub signed: Signed<ViewChangeBody>,
    /// Payloads named by `prepared` and `last_vote`; at most [`MAX_VIEW_CHANGE_PAYLOADS`] decode.
    #[serde(deserialize_with = "at_most_view_change_payloads")]
    pub payloads: Vec<Vec<u8>>,
}

/// Everything validators send each other.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    /// A leader's proposal; for a view above 0 it carries the view changes that justify it
    /// (the new-view message of PBFT).
    Proposal {
        /// The signed header.
        header: Signed<ProposalHeader>,
        /// The payload (hashes to `header.body.digest`).
        payload: Vec<u8>,
        /// View changes from a quorum for `(height, view)`; empty in view 0. At most
        /// [`MAX_VALIDATORS`] decode.
        #[serde(deserialize_with = "at_most_validators")]
        justification: Vec<ViewChange>,
    },
    /// A prepare or commit vote.
    Vote(SignedVote),
    /// A view change.
    ViewChange(ViewChange),
    /// A finalized payload with its certificate (sent to validators that are behind).
    Decided {
        /// The certificate.
        cert: CommitCert,
        /// The payload.
        payload: Vec<u8>,
    },
}

/// One signature a message carries: who, over what, the signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureRef {
    /// The claimed signer.
    pub signer: ValidatorIndex,
    /// The signed bytes.
    pub bytes: Vec<u8>,
    /// The signature.
    pub signature: Signature,
}

fn push_signed<T: Signable>(out: &mut Vec<SignatureRef>, chain: &Digest, s: &Signed<T>) {
    out.push(SignatureRef { signer: s.signer, bytes: s.body.signing_bytes(chain), signature: s.signature });
}

fn push_view_change(out: &mut Vec<SignatureRef>, chain: &Digest, vc: &ViewChange) {
    push_signed(out, chain, &vc.signed);
    if let Some(p) = &vc.signed.body.prepared {
        p.votes.iter().for_each(|v| push_signed(out, chain, v));
    }
    if let Some(v) = &vc.signed.body.last_vote {
        push_signed(out, chain, v);
    }
}

impl Message {
    /// The height the message is about.
    pub fn height(&self) -> Height {
        match self {
            Message::Proposal { header, .. } => header.body.height,
            Message::Vote(v) => v.body.height,
            Message::ViewChange(vc) => vc.signed.body.height,
            Message::Decided { cert, .. } => cert.vote().map_or(0, |v| v.height),
        }
    }

    /// Every signature the message carries, nested ones included, with the bytes each must
    /// cover on chain `chain` (the genesis id, as in [`Config::chain`](super::Config::chain)).
    /// The host verifies all of them (one batch) before the core sees the message.
    pub fn signatures(&self, chain: &Digest) -> Vec<SignatureRef> {
        let mut out = Vec::new();
        match self {
            Message::Proposal { header, justification, .. } => {
                push_signed(&mut out, chain, header);
                justification.iter().for_each(|vc| push_view_change(&mut out, chain, vc));
            }
            Message::Vote(v) => push_signed(&mut out, chain, v),
            Message::ViewChange(vc) => push_view_change(&mut out, chain, vc),
            Message::Decided { cert, .. } => cert.votes.iter().for_each(|v| push_signed(&mut out, chain, v)),
        }
        out
    }

    /// Canonical encoding (postcard).
    pub fn encode(&self) -> Vec<u8> {
        postcard::to_stdvec(self).unwrap_or_default()
    }

    /// Decodes [`Message::encode`]'s output.
    pub fn decode(bytes: &[u8]) -> Result<Message, postcard::Error> {
        postcard::from_bytes(bytes)
    }
}

/// Two conflicting signed statements by one validator: proof of equivocation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Evidence {
    /// Two proposals for the same `(height, view)` with different digests.
    Proposals(Signed<ProposalHeader>, Signed<ProposalHeader>),
    /// Two votes of the same kind for the same `(height, view)` with different digests.
    Votes(SignedVote, SignedVote),
}

impl Evidence {
    /// The equivocating validator.
    pub fn culprit(&self) -> ValidatorIndex {
        match self {
            Evidence::Proposals(a, _) => a.signer,
            Evidence::Votes(a, _) => a.signer,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn varint(mut v: u64, out: &mut Vec<u8>) {
        while v >= 0x80 {
            out.push(v as u8 | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }

    fn vote(signer: ValidatorIndex) -> SignedVote {
        let body = Vote { kind: VoteKind::Prepare, height: 1, view: 0, digest: Digest([7; 32]) };
        Signed { body, signer, signature: Signature([1; 64]) }
    }

    fn view_change(payloads: usize) -> ViewChange {
        let body = ViewChangeBody { height: 1, new_view: 2, prepared: None, last_vote: None };
        ViewChange {
            signed: Signed { body, signer: 0, signature: Signature([2; 64]) },
            payloads: vec![vec![]; payloads],
        }
    }

    /// Refused by a bounded list's length check (postcard keeps no message: a custom error).
    fn refused<T>(r: Result<T, postcard::Error>) -> bool {
        matches!(r, Err(postcard::Error::SerdeDeCustom))
    }

    /// The encoding of `items` as a vector claiming `claimed` elements.
    fn list<T: Serialize>(claimed: u64, items: &[T]) -> Vec<u8> {
        let mut out = Vec::new();
        varint(claimed, &mut out);
        for x in items {
            out.extend(postcard::to_stdvec(x).unwrap());
        }
        out
    }

    /// Finding: every vector of a consensus message decoded in full before the rules counted
    /// it, so a validator's 64 MiB frame of empty view change payloads (1 byte each on the wire,
    /// 24 in memory) decoded to 1.6 GB. A list longer than any valid message holds is now
    /// refused on its announced length (postcard announces it when the input is long enough to
    /// hold that many one-byte elements), before any element is decoded: a claim followed by
    /// bytes that are no element is refused by the bound (`SerdeDeCustom`), not by the first
    /// element's decoding. A claim the input cannot hold is refused at the first element past
    /// the bound, not at the end of the input (`DeserializeUnexpectedEnd`, as the old code did).
    #[test]
    fn lists_longer_than_a_valid_message_holds_are_refused_on_their_length() {
        let garbage = |n: usize| vec![0xffu8; n];
        // A view change's payloads: at most two.
        let empty = postcard::to_stdvec(&view_change(0)).unwrap();
        let payloads = |tail: Vec<u8>| {
            let mut b = empty[..empty.len() - 1].to_vec(); // the payload count is last
            b.extend(tail);
            postcard::from_bytes::<ViewChange>(&b)
        };
        let with = |claimed: u64, present: usize| payloads(list::<Vec<u8>>(claimed, &vec![vec![]; present]));
        assert_eq!(with(2, 2), Ok(view_change(2)));
        assert!(refused(with(3, 3)));
        assert!(refused(with(1_000_000, 1_000_000)));
        let mut unread = list::<Vec<u8>>(1_000_000, &[]);
        unread.extend(garbage(1_000_000));
        assert!(refused(payloads(unread)));
        assert!(refused(with(1_000_000_000, 1000)));
        // Certificates' votes: one per validator at most.
        let votes: Vec<SignedVote> = (0..=MAX_VALIDATORS as u16).map(vote).collect();
        let n = MAX_VALIDATORS as u64;
        let mut unread = list::<SignedVote>(n + 1, &[]);
        unread.extend(garbage(MAX_VALIDATORS + 1));
        let prepared = postcard::from_bytes::<PreparedCert>(&list(n, &votes[..MAX_VALIDATORS]));
        assert_eq!(prepared.map(|c| c.votes.len()), Ok(MAX_VALIDATORS));
        assert!(refused(postcard::from_bytes::<PreparedCert>(&list(n + 1, &votes))));
        assert!(refused(postcard::from_bytes::<PreparedCert>(&unread)));
        let commit = postcard::from_bytes::<CommitCert>(&list(n, &votes[..MAX_VALIDATORS]));
        assert_eq!(commit.map(|c| c.votes.len()), Ok(MAX_VALIDATORS));
        assert!(refused(postcard::from_bytes::<CommitCert>(&list(n + 1, &votes))));
        assert!(refused(postcard::from_bytes::<CommitCert>(&unread)));
        // A proposal's justification: one view change per validator at most.
        let header = Signed {
            body: ProposalHeader { height: 1, view: 2, digest: Digest::of(b"") },
            signer: 0,
            signature: Signature([3; 64]),
        };
        let proposal = Message::Proposal { header, payload: Vec::new(), justification: Vec::new() }.encode();
        let justified = |tail: Vec<u8>| {
            let mut b = proposal[..proposal.len() - 1].to_vec(); // the justification's count is last
            b.extend(tail);
            Message::decode(&b)
        };
        let vcs = vec![view_change(0); MAX_VALIDATORS + 1];
        let full = justified(list(n, &vcs[..MAX_VALIDATORS]));
        assert!(matches!(full, Ok(Message::Proposal { justification, .. }) if justification.len() == MAX_VALIDATORS));
        assert!(refused(justified(list(n + 1, &vcs))));
        let mut unread = list::<ViewChange>(n + 1, &[]);
        unread.extend(garbage(MAX_VALIDATORS + 1));
        assert!(refused(justified(unread)));
        // The encoder's output round-trips.
        let m = Message::ViewChange(view_change(2));
        assert_eq!(Message::decode(&m.encode()), Ok(m));
    }

    /// A format that announces no length (JSON) is refused at the first element past the limit,
    /// and the error names the limit.
    #[test]
    fn a_list_without_an_announced_length_is_refused_past_its_limit() {
        let mut json = serde_json::to_value(view_change(2)).unwrap();
        assert_eq!(serde_json::from_value::<ViewChange>(json.clone()).unwrap(), view_change(2));
        json["payloads"] = serde_json::json!([[], [], []]);
        let e = serde_json::from_value::<ViewChange>(json).unwrap_err().to_string();
        assert!(e.contains("at most 2 view change payloads"), "{e}");
    }
}

//! The authenticated `Hello` that opens every validator-to-validator connection.
//!
//! # Protocol
//!
//! Validator `i` (the *caller*) opens a connection to validator `j` (the *callee*):
//!
//! 1. caller → callee: [`Frame::Hello`] `{ validator: i }`, the connection's first frame;
//! 2. callee → caller: [`Frame::Challenge`] `{ nonce }`, 32 fresh random bytes (the thread RNG,
//!    a CSPRNG seeded from the operating system);
//! 3. caller → callee: [`Frame::HelloProof`] `{ signature }`, the Ed25519 signature by `i`'s
//!    consensus key over [`signing_bytes`]: `HELLO_DOMAIN ‖ chain ‖ i ‖ j ‖ nonce` (chain id =
//!    genesis id, 32 bytes; indices u16 little-endian);
//! 4. the callee verifies it against the public key the validator set gives `i`, through
//!    [`Engine::verify`] like every consensus signature (same batch type, same rules). Only then
//!    is the connection `i`'s: its consensus and `Tip` frames are attributed to `i`;
//! 5. callee → caller: [`Frame::Welcome`]. The caller counts the connection as open only once
//!    it has it, so a caller whose proof is refused (a wrong key, another genesis) knows it,
//!    says so, and calls again later instead of writing into a connection that drops everything.
//!
//! Every field of the signed bytes is there for a reason: the domain tag ([`HELLO_DOMAIN`],
//! distinct from the consensus and transaction domains) keeps a proof from ever being a vote or a
//! transaction signature and the other way round; the chain id keeps a proof for one chain from
//! counting on another that shares keys; the caller index names whom the proof is for; the
//! callee index stops a relay (a validator `j` that `i` calls cannot pass a third validator's
//! challenge on to `i` and `i`'s answer back to that validator: the proof names `j`); the nonce
//! makes every proof fresh, so a recorded one is worthless.
//!
//! # Refusals
//!
//! The callee refuses, and closes the connection, on: an index outside the validator set
//! ([`HandshakeError::UnknownValidator`], answered without a challenge), its own index
//! ([`HandshakeError::OwnIndex`], likewise), a proof that does not verify
//! ([`HandshakeError::BadProof`]), another frame where the proof belongs
//! ([`HandshakeError::UnexpectedFrame`]), and no proof within [`HANDSHAKE_TIMEOUT`]
//! ([`HandshakeError::Timeout`]). The caller gives up (and reconnects later) when the challenge or
//! the welcome does not come within the same timeout, or the callee closes the connection
//! instead of welcoming it ([`HandshakeError::Refused`]).
//!
//! # Scope
//!
//! The handshake authenticates who opened the connection, not each later byte: the connection
//! is plain TCP, so whoever controls the network path can still inject frames after it. That is
//! why consensus messages keep their own signatures; the handshake keeps anyone who merely
//! reaches the port from steering the state a validator keeps per peer: the answers it owes a
//! peer (`Tip` replies to a peer that looks behind, answers to its lagging view changes), the
//! heights peers claim and the fetches those start, and the block-serving slot each validator
//! has of its own ([`crate::node::sync`]).

use crate::node::consensus::{Digest, Sign, Signature, ValidatorIndex, ValidatorSet};
use crate::node::net::{read_frame_within, write_frame, Frame, FrameError, MAX_CLIENT_FRAME};
use crate::sigverify::{Batch, Scheme};
use crate::Engine;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};

/// Domain separation tag of handshake signatures.
pub const HELLO_DOMAIN: &[u8] = b"parthenon/hello/v1";

/// Longest each side waits for the other's handshake frame (the callee for the proof, counted
/// from the `Hello`; the caller for the challenge).
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// A callee's challenge.
pub type Nonce = [u8; 32];

/// Why a handshake failed.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    /// The claimed index is not in the validator set.
    #[error("validator {0} is not in the validator set")]
    UnknownValidator(ValidatorIndex),
    /// The claimed index is the callee's own: a validator never calls itself.
    #[error("validator {0} is this validator")]
    OwnIndex(ValidatorIndex),
    /// The proof does not verify under the claimed validator's key for this chain, caller,
    /// callee and nonce.
    #[error("the proof does not verify under validator {0}'s key")]
    BadProof(ValidatorIndex),
    /// Another frame where a handshake frame belongs.
    #[error("expected {0}, got another frame")]
    UnexpectedFrame(&'static str),
    /// The callee closed the connection instead of welcoming the caller: it refused the proof
    /// (a wrong key, another chain) or the caller's index.
    #[error("the callee closed the connection instead of welcoming us: our proof or index was refused")]
    Refused,
    /// No handshake frame within [`HANDSHAKE_TIMEOUT`].
    #[error("no handshake frame within {HANDSHAKE_TIMEOUT:?}")]
    Timeout,
    /// The connection ended or failed.
    #[error("connection: {0}")]
    Connection(#[from] FrameError),
    /// The blocking task verifying the proof did not finish.
    #[error("verification task failed")]
    Verifier,
}

/// The bytes a caller signs: `HELLO_DOMAIN ‖ chain ‖ caller (u16 LE) ‖ callee (u16 LE) ‖ nonce`.
pub fn signing_bytes(chain: &Digest, caller: ValidatorIndex, callee: ValidatorIndex, nonce: &Nonce) -> Vec<u8> {
    let mut out = Vec::with_capacity(HELLO_DOMAIN.len() + 32 + 2 + 2 + 32);
    out.extend_from_slice(HELLO_DOMAIN);
    out.extend_from_slice(&chain.0);
    out.extend_from_slice(&caller.to_le_bytes());
    out.extend_from_slice(&callee.to_le_bytes());
    out.extend_from_slice(nonce);
    out
}

/// The proof `caller` answers `callee`'s challenge `nonce` with, signed by `key`.
pub fn prove(
    key: &impl Sign,
    chain: &Digest,
    caller: ValidatorIndex,
    callee: ValidatorIndex,
    nonce: &Nonce,
) -> Signature {
    key.sign(&signing_bytes(chain, caller, callee, nonce))
}

/// How a validator checks the `Hello`s it receives.
#[derive(Debug, Clone)]
pub struct Verifier {
    /// Verifies the proof (as every consensus signature).
    pub engine: Engine,
    /// Whose keys prove which index.
    pub set: Arc<ValidatorSet>,
    /// Chain id (genesis id).
    pub chain: Digest,
    /// This validator's index (the callee).
    pub me: ValidatorIndex,
}

impl Verifier {
    /// Whether `caller` may say `Hello` at all: a validator of the set other than this one.
    pub fn admit(&self, caller: ValidatorIndex) -> Result<(), HandshakeError> {
        if caller == self.me {
            return Err(HandshakeError::OwnIndex(caller));
        }
        if self.set.get(caller).is_none() {
            return Err(HandshakeError::UnknownValidator(caller));
        }
        Ok(())
    }

    /// Checks `caller`'s answer to our challenge `nonce`: [`Verifier::admit`], then the signature
    /// under `caller`'s key, verified by the engine. Blocks while the engine verifies.
    pub fn check(&self, caller: ValidatorIndex, nonce: &Nonce, signature: &Signature) -> Result<(), HandshakeError> {
        self.admit(caller)?;
        let key = self.set.get(caller).ok_or(HandshakeError::UnknownValidator(caller))?;
        let mut batch = Batch::new();
        let msg = signing_bytes(&self.chain, caller, self.me, nonce);
        if batch.push(Scheme::Ed25519, &key.public_key, &msg, &signature.0).is_err() {
            return Err(HandshakeError::BadProof(caller));
        }
        match self.engine.verify(&batch).get(0) {
            Some(true) => Ok(()),
            _ => Err(HandshakeError::BadProof(caller)),
        }
    }

    /// The callee's side, once `Hello { validator: caller }` was read from `stream`: admits the
    /// caller, sends a fresh challenge and checks the proof, all within [`HANDSHAKE_TIMEOUT`].
    /// `Ok` names the validator the connection now belongs to.
    pub async fn answer(
        &self,
        stream: &mut (impl AsyncRead + AsyncWrite + Unpin),
        caller: ValidatorIndex,
    ) -> Result<ValidatorIndex, HandshakeError> {
        use rand::RngExt;
        self.admit(caller)?;
        let nonce: Nonce = rand::rng().random();
        let exchange = async {
            write_frame(stream, &Frame::Challenge { nonce }).await.map_err(FrameError::from)?;
            // The caller is not identified yet: a client-sized frame at most.
            match read_frame_within(stream, MAX_CLIENT_FRAME).await? {
                Some(Frame::HelloProof { signature }) => Ok(signature),
                Some(_) => Err(HandshakeError::UnexpectedFrame("HelloProof")),
                None => Err(FrameError::from(std::io::Error::from(std::io::ErrorKind::UnexpectedEof)).into()),
            }
        };
        let signature =
            tokio::time::timeout(HANDSHAKE_TIMEOUT, exchange).await.map_err(|_| HandshakeError::Timeout)??;
        // Verification may run on a device: off the async workers, like block serving.
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.check(caller, &nonce, &signature))
            .await
            .map_err(|_| HandshakeError::Verifier)??;
        write_frame(stream, &Frame::Welcome).await.map_err(FrameError::from)?;
        Ok(caller)
    }
}

/// The caller's side on a fresh connection to `callee`: `Hello` as `caller`, then the proof for
/// the challenge, signed by `key` (the caller's consensus key) for `chain`, then the welcome.
/// The challenge and the welcome must each come within [`HANDSHAKE_TIMEOUT`].
pub async fn call(
    stream: &mut (impl AsyncRead + AsyncWrite + Unpin),
    key: &(impl Sign + Sync),
    chain: &Digest,
    caller: ValidatorIndex,
    callee: ValidatorIndex,
) -> Result<(), HandshakeError> {
    write_frame(stream, &Frame::Hello { validator: caller }).await.map_err(FrameError::from)?;
    let nonce = match tokio::time::timeout(HANDSHAKE_TIMEOUT, read_frame_within(stream, MAX_CLIENT_FRAME)).await {
        Err(_) => return Err(HandshakeError::Timeout),
        Ok(Ok(Some(Frame::Challenge { nonce }))) => nonce,
        Ok(Ok(Some(_))) => return Err(HandshakeError::UnexpectedFrame("Challenge")),
        Ok(Ok(None)) => return Err(FrameError::from(std::io::Error::from(std::io::ErrorKind::UnexpectedEof)).into()),
        Ok(Err(e)) => return Err(e.into()),
    };
    let signature = prove(key, chain, caller, callee, &nonce);
    write_frame(stream, &Frame::HelloProof { signature }).await.map_err(FrameError::from)?;
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, read_frame_within(stream, MAX_CLIENT_FRAME)).await {
        Err(_) => Err(HandshakeError::Timeout),
        Ok(Ok(Some(Frame::Welcome))) => Ok(()),
        Ok(Ok(Some(_))) => Err(HandshakeError::UnexpectedFrame("Welcome")),
        Ok(Ok(None)) => Err(HandshakeError::Refused),
        Ok(Err(FrameError::Io(e))) if e.kind() == std::io::ErrorKind::ConnectionReset => Err(HandshakeError::Refused),
        Ok(Err(e)) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::consensus::Validator;
    use crate::node::net::read_frame;

    fn key(i: u8) -> ed25519_dalek::SigningKey {
        ed25519_dalek::SigningKey::from_bytes(&[i + 1; 32])
    }

    /// Validator 0 of three, on chain `[9; 32]`.
    fn verifier() -> Verifier {
        let set = ValidatorSet::new(
            (0..3).map(|i| Validator { public_key: key(i).verifying_key().to_bytes(), stake: 1 }).collect(),
        )
        .unwrap();
        let engine = Engine::builder()
            .detect_options(crate::detect::DetectOptions { skip_dpdk: true, ..Default::default() })
            .build()
            .unwrap();
        Verifier { engine, set: Arc::new(set), chain: Digest([9; 32]), me: 0 }
    }

    #[test]
    fn an_honest_proof_is_accepted_and_every_altered_one_refused() {
        let v = verifier();
        let (chain, nonce) = (v.chain, [5u8; 32]);
        assert!(v.check(1, &nonce, &prove(&key(1), &chain, 1, 0, &nonce)).is_ok());
        let refused = |caller, sig: Signature| match v.check(caller, &nonce, &sig) {
            Err(HandshakeError::BadProof(c)) => assert_eq!(c, caller),
            other => panic!("{other:?}"),
        };
        // Validator 2's key claiming to be validator 1.
        refused(1, prove(&key(2), &chain, 1, 0, &nonce));
        // A proof for another challenge.
        refused(1, prove(&key(1), &chain, 1, 0, &[6u8; 32]));
        // A proof made for validator 2 (a relay).
        refused(1, prove(&key(1), &chain, 1, 2, &nonce));
        // A proof for another chain.
        refused(1, prove(&key(1), &Digest([8; 32]), 1, 0, &nonce));
        // Validator 1's proof presented as validator 2's.
        refused(2, prove(&key(1), &chain, 1, 0, &nonce));
        // Not a signature at all.
        refused(1, Signature([0; 64]));
    }

    #[test]
    fn unknown_and_own_indices_are_refused() {
        let v = verifier();
        let nonce = [5u8; 32];
        let sig = prove(&key(3), &v.chain, 3, 0, &nonce);
        assert!(matches!(v.check(3, &nonce, &sig), Err(HandshakeError::UnknownValidator(3))));
        assert!(matches!(v.admit(u16::MAX), Err(HandshakeError::UnknownValidator(u16::MAX))));
        let sig = prove(&key(0), &v.chain, 0, 0, &nonce);
        assert!(matches!(v.check(0, &nonce, &sig), Err(HandshakeError::OwnIndex(0))));
    }

    #[test]
    fn signing_bytes_bind_domain_chain_indices_and_nonce() {
        let b = signing_bytes(&Digest([1; 32]), 0x0102, 0x0304, &[7; 32]);
        let mut want = b"parthenon/hello/v1".to_vec();
        want.extend([1; 32]);
        want.extend([2, 1, 4, 3]);
        want.extend([7; 32]);
        assert_eq!(b, want);
        assert!(!b.starts_with(crate::node::consensus::DOMAIN));
    }

    #[tokio::test]
    async fn caller_and_callee_agree_over_a_stream() {
        let v = verifier();
        let (k1, k2) = (key(1), key(2));
        let (mut a, mut b) = tokio::io::duplex(1024);
        let callee = async {
            let Ok(Some(Frame::Hello { validator })) = read_frame(&mut b).await else { panic!("no Hello") };
            v.answer(&mut b, validator).await
        };
        let (caller, callee) = tokio::join!(call(&mut a, &k2, &v.chain, 2, 0), callee);
        assert!(caller.is_ok(), "{caller:?}");
        assert_eq!(callee.unwrap(), 2);

        // The wrong key: the caller sends its proof, the callee refuses it and closes the
        // connection, and the caller learns it was refused.
        let (mut a, mut b) = tokio::io::duplex(1024);
        let chain = v.chain;
        let callee = async move {
            let Ok(Some(Frame::Hello { validator })) = read_frame(&mut b).await else { panic!("no Hello") };
            v.answer(&mut b, validator).await
        };
        let (caller, callee) = tokio::join!(call(&mut a, &k1, &chain, 2, 0), callee);
        assert!(matches!(caller, Err(HandshakeError::Refused)), "{caller:?}");
        assert!(matches!(callee, Err(HandshakeError::BadProof(2))), "{callee:?}");
        let v = verifier();

        // Another frame where the proof belongs.
        let (mut a, mut b) = tokio::io::duplex(1024);
        write_frame(&mut a, &Frame::Tip(3)).await.unwrap();
        assert!(matches!(v.answer(&mut b, 1).await, Err(HandshakeError::UnexpectedFrame(_))));
    }
}

//! [`Batch`]: verification items stored structure-of-arrays, so the same memory can be copied to
//! a device as is.
//!
//! Layout (all arrays indexed by item): `schemes[i]`, `pubkeys[i]` (32 bytes: Ed25519 compressed
//! point `A`, or BIP-340 x-only key), `signatures[i]` (64 bytes: `R ‖ s` or `r ‖ s`), and one flat
//! `messages` buffer where item `i`'s message is `messages[offsets[i]..offsets[i + 1]]`
//! (`offsets` has `len() + 1` entries, `offsets[0] = 0`, non-decreasing).

use super::{Error, Scheme};

/// Public-key length of both schemes.
pub const PUBKEY_LEN: usize = 32;
/// Signature length of both schemes.
pub const SIGNATURE_LEN: usize = 64;

/// A batch of signatures to verify, of either scheme, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    schemes: Vec<Scheme>,
    pubkeys: Vec<[u8; PUBKEY_LEN]>,
    signatures: Vec<[u8; SIGNATURE_LEN]>,
    messages: Vec<u8>,
    offsets: Vec<u64>,
}

impl Default for Batch {
    fn default() -> Self {
        Batch::new()
    }
}

impl Batch {
    /// An empty batch.
    pub fn new() -> Self {
        Batch::with_capacity(0, 0)
    }

    /// An empty batch with room for `items` items and `message_bytes` bytes of messages.
    pub fn with_capacity(items: usize, message_bytes: usize) -> Self {
        let mut offsets = Vec::with_capacity(items + 1);
        offsets.push(0);
        Batch {
            schemes: Vec::with_capacity(items),
            pubkeys: Vec::with_capacity(items),
            signatures: Vec::with_capacity(items),
            messages: Vec::with_capacity(message_bytes),
            offsets,
        }
    }

    /// Appends one item and returns its index. A public key that is not 32 bytes or a signature
    /// that is not 64 bytes is refused (the batch is unchanged) with an error naming the index
    /// the item would have had. Messages may have any length, including zero.
    pub fn push(&mut self, scheme: Scheme, pubkey: &[u8], msg: &[u8], sig: &[u8]) -> Result<usize, Error> {
        let index = self.len();
        let pk: [u8; PUBKEY_LEN] = pubkey.try_into().map_err(|_| Error::WrongLength {
            index,
            scheme,
            field: "pubkey",
            got: pubkey.len(),
            want: PUBKEY_LEN,
        })?;
        let sg: [u8; SIGNATURE_LEN] = sig.try_into().map_err(|_| Error::WrongLength {
            index,
            scheme,
            field: "sig",
            got: sig.len(),
            want: SIGNATURE_LEN,
        })?;
        self.schemes.push(scheme);
        self.pubkeys.push(pk);
        self.signatures.push(sg);
        self.messages.extend_from_slice(msg);
        self.offsets.push(self.messages.len() as u64);
        Ok(index)
    }

    /// Number of items.
    pub fn len(&self) -> usize {
        self.schemes.len()
    }

    /// Whether the batch has no items.
    pub fn is_empty(&self) -> bool {
        self.schemes.is_empty()
    }

    /// Removes every item, keeping the allocations.
    pub fn clear(&mut self) {
        self.schemes.clear();
        self.pubkeys.clear();
        self.signatures.clear();
        self.messages.clear();
        self.offsets.truncate(1);
    }

    /// The scheme of each item.
    pub fn schemes(&self) -> &[Scheme] {
        &self.schemes
    }

    /// The public key of each item.
    pub fn pubkeys(&self) -> &[[u8; PUBKEY_LEN]] {
        &self.pubkeys
    }

    /// The signature of each item.
    pub fn signatures(&self) -> &[[u8; SIGNATURE_LEN]] {
        &self.signatures
    }

    /// All messages, concatenated in item order.
    pub fn messages(&self) -> &[u8] {
        &self.messages
    }

    /// Message offsets into [`Batch::messages`]: `len() + 1` entries, the first 0.
    pub fn message_offsets(&self) -> &[u64] {
        &self.offsets
    }

    /// The message of item `i`. Panics if `i >= len()` (like slice indexing).
    pub fn message(&self, i: usize) -> &[u8] {
        // Offsets are only ever written by `push` from lengths of `messages`, so they are in
        // bounds and non-decreasing.
        let start = self.offsets[i] as usize;
        let end = self.offsets[i + 1] as usize;
        &self.messages[start..end]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_stores_soa_and_offsets() {
        let mut b = Batch::new();
        assert!(b.is_empty());
        assert_eq!(b.message_offsets(), &[0]);
        assert_eq!(b.push(Scheme::Ed25519, &[1; 32], b"abc", &[2; 64]).unwrap(), 0);
        assert_eq!(b.push(Scheme::Bip340, &[3; 32], b"", &[4; 64]).unwrap(), 1);
        assert_eq!(b.push(Scheme::Bip340, &[5; 32], b"xy", &[6; 64]).unwrap(), 2);
        assert_eq!(b.len(), 3);
        assert_eq!(b.message_offsets(), &[0, 3, 3, 5]);
        assert_eq!(b.message(0), b"abc");
        assert_eq!(b.message(1), b"");
        assert_eq!(b.message(2), b"xy");
        assert_eq!(b.schemes(), &[Scheme::Ed25519, Scheme::Bip340, Scheme::Bip340]);
        assert_eq!(b.pubkeys()[2], [5; 32]);
        assert_eq!(b.signatures()[1], [4; 64]);
        b.clear();
        assert!(b.is_empty());
        assert_eq!(b.message_offsets(), &[0]);
        assert!(b.messages().is_empty());
    }

    #[test]
    fn wrong_lengths_name_item_and_field() {
        let mut b = Batch::new();
        b.push(Scheme::Ed25519, &[1; 32], b"m", &[2; 64]).unwrap();
        let e = b.push(Scheme::Ed25519, &[1; 31], b"m", &[2; 64]).unwrap_err();
        assert_eq!(e, Error::WrongLength { index: 1, scheme: Scheme::Ed25519, field: "pubkey", got: 31, want: 32 });
        let e = b.push(Scheme::Bip340, &[1; 32], b"m", &[2; 65]).unwrap_err();
        assert!(e.to_string().contains("item 1: sig is 65 bytes"), "{e}");
        assert_eq!(b.len(), 1);
        assert_eq!(b.message_offsets(), &[0, 1]);
    }
}

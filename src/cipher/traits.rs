//! The RustCrypto `aead` 0.6 traits, so [`Aes256Gcm`] and [`Aes128Gcm`] replace `aes-gcm`'s
//! types in generic code: `KeySizeUser` + `KeyInit` (`new`, `new_from_slice`), `AeadCore`
//! (12-byte nonce, 16-byte postfix tag) and `AeadInOut` (from which `aead` derives `Aead` and the
//! deprecated `AeadInPlace`). Every failure maps to the opaque `aead::Error`.

use super::{Aes128Gcm, Aes256Gcm};
use aead::consts::{U12, U16, U32};
use aead::inout::InOutBuf;
use aead::{AeadCore, AeadInOut, Key, KeyInit, KeySizeUser, Nonce, Tag, TagPosition};

macro_rules! aead_traits {
    ($name:ident, $keysize:ty) => {
        impl KeySizeUser for $name {
            type KeySize = $keysize;
        }

        impl KeyInit for $name {
            fn new(key: &Key<Self>) -> Self {
                $name::new(key)
            }
        }

        impl AeadCore for $name {
            type NonceSize = U12;
            type TagSize = U16;
            const TAG_POSITION: TagPosition = TagPosition::Postfix;
        }

        impl AeadInOut for $name {
            fn encrypt_inout_detached(
                &self,
                nonce: &Nonce<Self>,
                associated_data: &[u8],
                buffer: InOutBuf<'_, '_, u8>,
            ) -> aead::Result<Tag<Self>> {
                let buf = buffer.into_out_with_copied_in();
                self.seal_in_place_detached(nonce.as_ref(), associated_data, buf)
                    .map(Tag::<Self>::from)
                    .map_err(|_| aead::Error)
            }

            fn decrypt_inout_detached(
                &self,
                nonce: &Nonce<Self>,
                associated_data: &[u8],
                buffer: InOutBuf<'_, '_, u8>,
                tag: &Tag<Self>,
            ) -> aead::Result<()> {
                let buf = buffer.into_out_with_copied_in();
                self.open_in_place_detached(nonce.as_ref(), associated_data, buf, tag.as_ref()).map_err(|_| aead::Error)
            }
        }
    };
}

aead_traits!(Aes256Gcm, U32);
aead_traits!(Aes128Gcm, U16);

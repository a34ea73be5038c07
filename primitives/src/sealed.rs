//! Sealed epoch keys: how a seller hands the data keys of one epoch to one buyer on chain
//! without ever putting a secret there in the clear.
//!
//! Each epoch of a stream has an encryption key `k_e` (AES-256-GCM) and a MAC key `k_m`
//! (HMAC-SHA256). The stream's on-chain commitment for the epoch is
//! [`key_commitment`]`(k_e, k_m) = blake2_256(k_e ‖ k_m)` (the keys and the commitment are
//! those of the segment [`envelope`](crate::envelope), re-exported here). For every purchase and paid
//! epoch, the seller seals `k_e ‖ k_m` to the buyer's X25519 key-agreement key with HPKE
//! (RFC 9180, base mode, suite DHKEM(X25519, HKDF-SHA256) / HKDF-SHA256 /
//! ChaCha20-Poly1305) and submits the bytes with `pallet-escrow::deliver_keys`.
//!
//! # Format, version 1 ([`SEALED_KEY_LEN_V1`] = 113 bytes)
//!
//! ```text
//! offset  len  field
//! 0       1    version = 1
//! 1       32   HPKE encapsulated key (ephemeral X25519 public key)
//! 33      80   ChaCha20-Poly1305 ciphertext of k_e ‖ k_m (64 bytes) + tag (16 bytes)
//! ```
//!
//! The HPKE `info` is `"fastdata/sealed-epoch-keys/v1" ‖ SCALE(purchase: u64, epoch: u32)`,
//! so sealed bytes only open for the purchase and epoch they were made for: a seller cannot
//! pass off one epoch's keys as another's, and bytes copied to another purchase do not open.
//! The AEAD associated data is the version byte.
//!
//! [`check_format`] (no_std) is what the runtime checks; [`seal`] and [`open`] (std) are
//! what the seller's daemon and the buyer's SDK call.
//!
//! ```
//! use fastdata_primitives::sealed::{self, EpochKeys};
//! let (buyer_secret, buyer_public) = sealed::generate_x25519_keypair();
//! let keys = EpochKeys::new([1; 32], [2; 32]);
//! let bytes = sealed::seal(&buyer_public, 7, 0, &keys).unwrap();
//! sealed::check_format(&bytes).unwrap();
//! let opened = sealed::open(&buyer_secret, 7, 0, &bytes).unwrap();
//! assert_eq!(opened, keys);
//! assert_eq!(opened.commitment(), sealed::key_commitment(&[1; 32], &[2; 32]));
//! ```

use alloc::vec::Vec;
use codec::Encode;

use crate::{EpochIndex, PurchaseId};

/// Version byte of the current sealed-key format.
pub const SEALED_KEY_VERSION_1: u8 = 1;
/// Length of a data key (`k_e` or `k_m`) in bytes.
pub const DATA_KEY_LEN: usize = 32;
/// Length of the HPKE encapsulated key (an X25519 public key).
pub const ENCAPPED_KEY_LEN: usize = 32;
/// Length of the ChaCha20-Poly1305 tag.
pub const AEAD_TAG_LEN: usize = 16;
/// Length of a version-1 sealed key: version, encapsulated key, `k_e ‖ k_m`, tag.
pub const SEALED_KEY_LEN_V1: usize = 1 + ENCAPPED_KEY_LEN + 2 * DATA_KEY_LEN + AEAD_TAG_LEN;
/// Upper bound the runtime should allow for sealed keys of any version (room for a future
/// post-quantum KEM would need more; raise it with the format).
pub const MAX_SEALED_KEY_LEN: u32 = 256;
/// Domain separation prefix of the HPKE `info`.
pub const SEALED_KEY_INFO_DOMAIN: &[u8] = b"fastdata/sealed-epoch-keys/v1";

#[cfg(feature = "std")]
pub use crate::envelope::{key_commitment, EpochKeys};

/// Why sealed keys could not be made, checked or opened.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum SealError {
    /// The first byte is not a known format version.
    UnsupportedVersion(u8),
    /// The bytes have the wrong length for their version.
    BadLength {
        /// Length the version requires.
        expected: usize,
        /// Length found.
        found: usize,
    },
    /// The recipient's X25519 public key is not usable.
    InvalidPublicKey,
    /// Encryption failed.
    Sealing,
    /// Decryption failed: wrong secret key, tampered bytes, or bytes sealed for another
    /// purchase or epoch.
    Opening,
}

impl core::fmt::Display for SealError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            SealError::UnsupportedVersion(v) => write!(f, "unsupported sealed-key version {v}"),
            SealError::BadLength { expected, found } => {
                write!(f, "sealed key has {found} bytes, expected {expected}")
            }
            SealError::InvalidPublicKey => write!(f, "invalid X25519 public key"),
            SealError::Sealing => write!(f, "sealing failed"),
            SealError::Opening => write!(
                f,
                "sealed key does not open: wrong buyer key, tampered bytes, or sealed for another purchase/epoch"
            ),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for SealError {}

/// Checks that `bytes` look like sealed keys of a known version (version byte and length).
/// This is all the runtime can check; only the buyer can open them.
pub fn check_format(bytes: &[u8]) -> Result<(), SealError> {
    match bytes.first() {
        Some(&SEALED_KEY_VERSION_1) if bytes.len() == SEALED_KEY_LEN_V1 => Ok(()),
        Some(&SEALED_KEY_VERSION_1) => Err(SealError::BadLength {
            expected: SEALED_KEY_LEN_V1,
            found: bytes.len(),
        }),
        Some(&other) => Err(SealError::UnsupportedVersion(other)),
        None => Err(SealError::BadLength {
            expected: SEALED_KEY_LEN_V1,
            found: 0,
        }),
    }
}

/// The HPKE `info` binding sealed keys to `purchase` and `epoch`.
pub fn sealing_info(purchase: PurchaseId, epoch: EpochIndex) -> Vec<u8> {
    let mut info = Vec::with_capacity(SEALED_KEY_INFO_DOMAIN.len() + 12);
    info.extend_from_slice(SEALED_KEY_INFO_DOMAIN);
    (purchase, epoch).encode_to(&mut info);
    info
}

#[cfg(feature = "std")]
mod hpke_impl {
    use super::*;
    use hpke::{
        aead::ChaCha20Poly1305, kdf::HkdfSha256, kem::X25519HkdfSha256, Deserializable,
        Kem as KemTrait, OpModeR, OpModeS, Serializable,
    };
    use rand_core::{CryptoRng, OsRng, RngCore};
    use zeroize::Zeroize;

    use crate::X25519Public;

    type Kem = X25519HkdfSha256;
    type Aead = ChaCha20Poly1305;
    type Kdf = HkdfSha256;

    const AAD_V1: [u8; 1] = [SEALED_KEY_VERSION_1];

    /// Seals `keys` of `epoch` for `purchase` to the buyer's X25519 key `recipient`, with
    /// fresh randomness from the operating system.
    pub fn seal(
        recipient: &X25519Public,
        purchase: PurchaseId,
        epoch: EpochIndex,
        keys: &EpochKeys,
    ) -> Result<Vec<u8>, SealError> {
        seal_with_rng(recipient, purchase, epoch, keys, &mut OsRng)
    }

    /// [`seal`] with a caller-chosen random number generator (for reproducible tests).
    pub fn seal_with_rng<R: CryptoRng + RngCore>(
        recipient: &X25519Public,
        purchase: PurchaseId,
        epoch: EpochIndex,
        keys: &EpochKeys,
        rng: &mut R,
    ) -> Result<Vec<u8>, SealError> {
        let public = <Kem as KemTrait>::PublicKey::from_bytes(recipient)
            .map_err(|_| SealError::InvalidPublicKey)?;
        let mut plaintext = [0u8; 2 * DATA_KEY_LEN];
        plaintext[..DATA_KEY_LEN].copy_from_slice(&keys.k_e);
        plaintext[DATA_KEY_LEN..].copy_from_slice(&keys.k_m);
        let sealed = hpke::single_shot_seal::<Aead, Kdf, Kem, R>(
            &OpModeS::Base,
            &public,
            &sealing_info(purchase, epoch),
            &plaintext,
            &AAD_V1,
            rng,
        );
        plaintext.zeroize();
        let (encapped, ciphertext) = sealed.map_err(|_| SealError::Sealing)?;
        let mut out = Vec::with_capacity(SEALED_KEY_LEN_V1);
        out.push(SEALED_KEY_VERSION_1);
        out.extend_from_slice(&encapped.to_bytes());
        out.extend_from_slice(&ciphertext);
        if out.len() != SEALED_KEY_LEN_V1 {
            return Err(SealError::Sealing);
        }
        Ok(out)
    }

    /// Opens sealed keys of `epoch` for `purchase` with the buyer's X25519 secret key.
    /// Fails with [`SealError::Opening`] on a wrong key, tampered bytes, or bytes sealed for
    /// another purchase or epoch. Check the result against the epoch's on-chain commitment
    /// (`keys.commitment() == commitment`) before using it; if it does not match, dispute the
    /// purchase with `DisputeReason::KeysMismatch`.
    pub fn open(
        secret: &[u8; 32],
        purchase: PurchaseId,
        epoch: EpochIndex,
        sealed: &[u8],
    ) -> Result<EpochKeys, SealError> {
        check_format(sealed)?;
        let secret =
            <Kem as KemTrait>::PrivateKey::from_bytes(secret).map_err(|_| SealError::Opening)?;
        let encapped = <Kem as KemTrait>::EncappedKey::from_bytes(&sealed[1..1 + ENCAPPED_KEY_LEN])
            .map_err(|_| SealError::Opening)?;
        let mut plaintext = hpke::single_shot_open::<Aead, Kdf, Kem>(
            &OpModeR::Base,
            &secret,
            &encapped,
            &sealing_info(purchase, epoch),
            &sealed[1 + ENCAPPED_KEY_LEN..],
            &AAD_V1,
        )
        .map_err(|_| SealError::Opening)?;
        if plaintext.len() != 2 * DATA_KEY_LEN {
            plaintext.zeroize();
            return Err(SealError::Opening);
        }
        let mut keys = EpochKeys::new([0; DATA_KEY_LEN], [0; DATA_KEY_LEN]);
        keys.k_e.copy_from_slice(&plaintext[..DATA_KEY_LEN]);
        keys.k_m.copy_from_slice(&plaintext[DATA_KEY_LEN..]);
        plaintext.zeroize();
        Ok(keys)
    }

    /// The X25519 public key of `secret` (what a buyer registers as its DID's
    /// key-agreement key).
    pub fn x25519_public_key(secret: &[u8; 32]) -> Result<X25519Public, SealError> {
        let secret = <Kem as KemTrait>::PrivateKey::from_bytes(secret)
            .map_err(|_| SealError::InvalidPublicKey)?;
        let mut public = [0u8; 32];
        public.copy_from_slice(&<Kem as KemTrait>::sk_to_pk(&secret).to_bytes());
        Ok(public)
    }

    /// A fresh X25519 key pair `(secret, public)` for key agreement.
    pub fn generate_x25519_keypair() -> ([u8; 32], X25519Public) {
        let (secret, public) = <Kem as KemTrait>::gen_keypair(&mut OsRng);
        let mut s = [0u8; 32];
        s.copy_from_slice(&secret.to_bytes());
        let mut p = [0u8; 32];
        p.copy_from_slice(&public.to_bytes());
        (s, p)
    }
}

#[cfg(feature = "std")]
pub use hpke_impl::{generate_x25519_keypair, open, seal, seal_with_rng, x25519_public_key};

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> EpochKeys {
        EpochKeys::new([0x11; 32], [0x22; 32])
    }

    #[test]
    fn length_constant_is_113() {
        assert_eq!(SEALED_KEY_LEN_V1, 113);
        assert!(SEALED_KEY_LEN_V1 as u32 <= MAX_SEALED_KEY_LEN);
    }

    #[test]
    fn seal_open_roundtrip() {
        let (secret, public) = generate_x25519_keypair();
        let sealed = seal(&public, 42, 3, &keys()).unwrap();
        assert_eq!(sealed.len(), SEALED_KEY_LEN_V1);
        assert_eq!(sealed[0], SEALED_KEY_VERSION_1);
        assert_eq!(check_format(&sealed), Ok(()));
        let opened = open(&secret, 42, 3, &sealed).unwrap();
        assert_eq!(opened, keys());
        assert_eq!(
            opened.commitment(),
            key_commitment(&[0x11; 32], &[0x22; 32])
        );
    }

    #[test]
    fn sealing_is_randomized() {
        let (_, public) = generate_x25519_keypair();
        assert_ne!(
            seal(&public, 1, 0, &keys()).unwrap(),
            seal(&public, 1, 0, &keys()).unwrap()
        );
    }

    #[test]
    fn public_key_derivation_matches_generation() {
        let (secret, public) = generate_x25519_keypair();
        assert_eq!(x25519_public_key(&secret).unwrap(), public);
        let fixed = x25519_public_key(&[9; 32]).unwrap();
        let sealed = seal(&fixed, 1, 1, &keys()).unwrap();
        assert_eq!(open(&[9; 32], 1, 1, &sealed).unwrap(), keys());
    }

    #[test]
    fn wrong_key_fails() {
        let (_, public) = generate_x25519_keypair();
        let (other_secret, _) = generate_x25519_keypair();
        let sealed = seal(&public, 42, 3, &keys()).unwrap();
        assert_eq!(open(&other_secret, 42, 3, &sealed), Err(SealError::Opening));
    }

    #[test]
    fn every_tampered_byte_fails() {
        let (secret, public) = generate_x25519_keypair();
        let sealed = seal(&public, 42, 3, &keys()).unwrap();
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 0x01;
            assert!(
                open(&secret, 42, 3, &bad).is_err(),
                "flipping byte {i} went unnoticed"
            );
        }
        let mut short = sealed.clone();
        short.pop();
        assert!(matches!(
            open(&secret, 42, 3, &short),
            Err(SealError::BadLength { .. })
        ));
    }

    #[test]
    fn bound_to_purchase_and_epoch() {
        let (secret, public) = generate_x25519_keypair();
        let sealed = seal(&public, 42, 3, &keys()).unwrap();
        assert_eq!(open(&secret, 43, 3, &sealed), Err(SealError::Opening));
        assert_eq!(open(&secret, 42, 4, &sealed), Err(SealError::Opening));
        assert_eq!(open(&secret, 3, 42, &sealed), Err(SealError::Opening));
        assert_ne!(sealing_info(42, 3), sealing_info(43, 3));
        assert_ne!(sealing_info(42, 3), sealing_info(42, 4));
    }

    #[test]
    fn format_check() {
        assert_eq!(
            check_format(&[]),
            Err(SealError::BadLength {
                expected: 113,
                found: 0
            })
        );
        assert_eq!(
            check_format(&[2; 113]),
            Err(SealError::UnsupportedVersion(2))
        );
        assert_eq!(
            check_format(&[1; 112]),
            Err(SealError::BadLength {
                expected: 113,
                found: 112
            })
        );
        assert_eq!(
            check_format(&[1; 114]),
            Err(SealError::BadLength {
                expected: 113,
                found: 114
            })
        );
        let mut ok = [0u8; 113];
        ok[0] = 1;
        assert_eq!(check_format(&ok), Ok(()));
    }

    #[test]
    fn commitment_is_blake2_of_concatenation() {
        let mut preimage = [0x11u8; 64];
        preimage[32..].copy_from_slice(&[0x22; 32]);
        assert_eq!(
            key_commitment(&[0x11; 32], &[0x22; 32]),
            sp_core::H256(sp_io::hashing::blake2_256(&preimage))
        );
        assert_ne!(
            key_commitment(&[0x11; 32], &[0x22; 32]),
            key_commitment(&[0x22; 32], &[0x11; 32])
        );
    }

    #[test]
    fn errors_read_well() {
        assert!(SealError::Opening.to_string().contains("wrong buyer key"));
        assert_eq!(
            SealError::UnsupportedVersion(9).to_string(),
            "unsupported sealed-key version 9"
        );
    }
}

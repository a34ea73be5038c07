//! Receipts: the buyer's signed acknowledgement of data received from one operator.
//!
//! As segments arrive, the buyer's client signs a *cumulative* receipt for the operator
//! serving it: "for purchase `p`, I have everything from you up to sequence `s`, `b` bytes
//! in total". The operator serves at most a small window ahead of the last receipt and
//! claims its pay on chain with the latest one (`pallet-escrow::claim`), which accepts a
//! receipt only if it is signed by the purchase's buyer, names the claiming operator, and
//! has a higher nonce and no lower sequence or byte count than the last accepted one.
//!
//! The signed message is the SCALE encoding of `(RECEIPT_DOMAIN, genesis, receipt)`: a
//! length-prefixed domain tag, as for the [`tokens`](crate::tokens), so a receipt signature
//! can never be confused with a transaction or another FAST DATA message, and the chain's
//! genesis hash, so a receipt signed for one network is worthless on another. Buyers sign
//! with their account's sr25519 key.
//!
//! ```
//! use fastdata_primitives::receipt::Receipt;
//! use sp_core::{sr25519, Pair, H256};
//! let buyer = sr25519::Pair::from_seed(&[1; 32]);
//! let genesis = H256::repeat_byte(1);
//! let receipt = Receipt { purchase: 7, operator: [9u8; 32], up_to_sequence: 100, bytes: 25_600, nonce: 3 };
//! let signature = receipt.sign_sr25519(&buyer, &genesis);
//! assert!(receipt.verify_sr25519(&signature, &buyer.public(), &genesis));
//! // The same receipt is worthless on another network.
//! assert!(!receipt.verify_sr25519(&signature, &buyer.public(), &H256::repeat_byte(2)));
//! ```

use alloc::vec::Vec;
use codec::{Decode, DecodeWithMemTracking, Encode, MaxEncodedLen};
use scale_info::TypeInfo;
use sp_core::{sr25519, H256};
use sp_runtime::traits::{IdentifyAccount, Verify};

use crate::{PurchaseId, Sequence};

/// Domain separation prefix of every receipt signature.
pub const RECEIPT_DOMAIN: &[u8] = b"fastdata/receipt/v2";

/// A buyer's cumulative acknowledgement of data served by one operator for one purchase.
#[derive(
    Clone, PartialEq, Eq, Debug, Encode, Decode, DecodeWithMemTracking, MaxEncodedLen, TypeInfo,
)]
pub struct Receipt<AccountId> {
    /// The purchase the data was served for.
    pub purchase: PurchaseId,
    /// The operator that served it (the only account that may claim with this receipt).
    pub operator: AccountId,
    /// The buyer has every segment of the stream up to this sequence number (inclusive).
    pub up_to_sequence: Sequence,
    /// Total bytes received from this operator for this purchase so far.
    pub bytes: u64,
    /// Strictly increasing per (purchase, operator); makes replays detectable.
    pub nonce: u64,
}

impl<AccountId: Encode> Receipt<AccountId> {
    /// The exact bytes the buyer signs on the chain with genesis hash `genesis`:
    /// SCALE(`(RECEIPT_DOMAIN, genesis, receipt)`).
    pub fn signing_payload(&self, genesis: &H256) -> Vec<u8> {
        (RECEIPT_DOMAIN, genesis, self).encode()
    }

    /// `signature` is `signer`'s signature of this receipt on the chain `genesis`, for any
    /// runtime signature type (e.g. `MultiSignature` checked against an `AccountId32`).
    pub fn verify<S: Verify>(
        &self,
        signature: &S,
        signer: &<S::Signer as IdentifyAccount>::AccountId,
        genesis: &H256,
    ) -> bool {
        signature.verify(&self.signing_payload(genesis)[..], signer)
    }

    /// `signature` is an sr25519 signature of this receipt by `signer` on the chain `genesis`.
    pub fn verify_sr25519(
        &self,
        signature: &sr25519::Signature,
        signer: &sr25519::Public,
        genesis: &H256,
    ) -> bool {
        self.verify(signature, signer, genesis)
    }

    /// Signs this receipt with the buyer's sr25519 key for the chain `genesis` (what the
    /// buyer's client does).
    #[cfg(feature = "std")]
    pub fn sign_sr25519(&self, buyer: &sr25519::Pair, genesis: &H256) -> sr25519::Signature {
        use sp_core::Pair;
        buyer.sign(&self.signing_payload(genesis))
    }
}

impl<AccountId> Receipt<AccountId> {
    /// Compares with the previously accepted receipt of the same (purchase, operator):
    /// `Ok(())` if this one may replace it, otherwise why not.
    pub fn supersedes(&self, previous: &Receipt<AccountId>) -> Result<(), ReceiptRejection> {
        if self.nonce <= previous.nonce {
            return Err(ReceiptRejection::Replayed);
        }
        if self.up_to_sequence < previous.up_to_sequence || self.bytes < previous.bytes {
            return Err(ReceiptRejection::Lower);
        }
        if self.up_to_sequence == previous.up_to_sequence && self.bytes == previous.bytes {
            return Err(ReceiptRejection::Stale);
        }
        Ok(())
    }
}

/// Why a receipt does not supersede the last accepted one.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ReceiptRejection {
    /// Its nonce is not higher than the last accepted nonce.
    Replayed,
    /// It acknowledges a lower sequence or fewer bytes than already acknowledged.
    Lower,
    /// It acknowledges nothing new.
    Stale,
}

#[cfg(test)]
mod tests {
    use super::*;
    use sp_core::Pair;
    use sp_runtime::{AccountId32, MultiSignature};

    fn buyer() -> sr25519::Pair {
        sr25519::Pair::from_seed(&[7; 32])
    }

    const G: H256 = H256::repeat_byte(0x47);

    fn receipt() -> Receipt<AccountId32> {
        Receipt {
            purchase: 5,
            operator: AccountId32::new([3; 32]),
            up_to_sequence: 99,
            bytes: 4096,
            nonce: 1,
        }
    }

    #[test]
    fn sign_and_verify() {
        let r = receipt();
        let sig = r.sign_sr25519(&buyer(), &G);
        assert!(r.verify_sr25519(&sig, &buyer().public(), &G));
        // The same signature through the runtime's MultiSignature / AccountId32.
        let multi = MultiSignature::Sr25519(sig);
        let account: AccountId32 = buyer().public().into();
        assert!(r.verify(&multi, &account, &G));
    }

    #[test]
    fn wrong_signer_fails() {
        let r = receipt();
        let sig = r.sign_sr25519(&buyer(), &G);
        let other = sr25519::Pair::from_seed(&[8; 32]);
        assert!(!r.verify_sr25519(&sig, &other.public(), &G));
        let sig_other = r.sign_sr25519(&other, &G);
        assert!(!r.verify_sr25519(&sig_other, &buyer().public(), &G));
    }

    #[test]
    fn every_field_is_signed() {
        let r = receipt();
        let sig = r.sign_sr25519(&buyer(), &G);
        let public = buyer().public();
        let variants = [
            Receipt {
                purchase: 6,
                ..r.clone()
            },
            Receipt {
                operator: AccountId32::new([4; 32]),
                ..r.clone()
            },
            Receipt {
                up_to_sequence: 100,
                ..r.clone()
            },
            Receipt {
                bytes: 4097,
                ..r.clone()
            },
            Receipt {
                nonce: 2,
                ..r.clone()
            },
        ];
        for v in variants {
            assert!(
                !v.verify_sr25519(&sig, &public, &G),
                "{v:?} verified with the original signature"
            );
        }
    }

    #[test]
    fn domain_separated() {
        let r = receipt();
        let payload = r.signing_payload(&G);
        let domain = RECEIPT_DOMAIN.encode();
        assert!(payload.starts_with(&domain));
        assert_eq!(&payload[domain.len()..domain.len() + 32], G.as_bytes());
        assert_eq!(&payload[domain.len() + 32..], &r.encode()[..]);
        // A signature made for an upload token or access request never verifies as a receipt.
        assert_ne!(RECEIPT_DOMAIN, crate::tokens::UPLOAD_TOKEN_DOMAIN);
        assert_ne!(RECEIPT_DOMAIN, crate::tokens::ACCESS_REQUEST_DOMAIN);
        // A signature over the bare SCALE encoding does not verify as a receipt.
        let bare = buyer().sign(&r.encode());
        assert!(!r.verify_sr25519(&bare, &buyer().public(), &G));
    }

    #[test]
    fn bound_to_the_chain() {
        let r = receipt();
        let sig = r.sign_sr25519(&buyer(), &G);
        assert!(r.verify_sr25519(&sig, &buyer().public(), &G));
        let other_chain = H256::repeat_byte(0x48);
        assert!(!r.verify_sr25519(&sig, &buyer().public(), &other_chain));
    }

    #[test]
    fn scale_roundtrip() {
        let r = receipt();
        assert_eq!(
            Receipt::<AccountId32>::decode(&mut &r.encode()[..]).unwrap(),
            r
        );
        assert!(Receipt::<AccountId32>::decode(&mut &r.encode()[..10]).is_err());
        assert_eq!(r.encode().len(), Receipt::<AccountId32>::max_encoded_len());
    }

    #[test]
    fn supersedes_rules() {
        let prev = receipt();
        assert_eq!(
            Receipt {
                nonce: 2,
                bytes: 5000,
                ..prev.clone()
            }
            .supersedes(&prev),
            Ok(())
        );
        assert_eq!(
            Receipt {
                nonce: 2,
                up_to_sequence: 100,
                ..prev.clone()
            }
            .supersedes(&prev),
            Ok(())
        );
        assert_eq!(
            Receipt {
                nonce: 1,
                bytes: 5000,
                ..prev.clone()
            }
            .supersedes(&prev),
            Err(ReceiptRejection::Replayed)
        );
        assert_eq!(
            Receipt {
                nonce: 0,
                bytes: 5000,
                ..prev.clone()
            }
            .supersedes(&prev),
            Err(ReceiptRejection::Replayed)
        );
        assert_eq!(
            Receipt {
                nonce: 2,
                up_to_sequence: 98,
                bytes: 5000,
                ..prev.clone()
            }
            .supersedes(&prev),
            Err(ReceiptRejection::Lower)
        );
        assert_eq!(
            Receipt {
                nonce: 2,
                up_to_sequence: 100,
                bytes: 4095,
                ..prev.clone()
            }
            .supersedes(&prev),
            Err(ReceiptRejection::Lower)
        );
        assert_eq!(
            Receipt {
                nonce: 2,
                ..prev.clone()
            }
            .supersedes(&prev),
            Err(ReceiptRejection::Stale)
        );
        let max = Receipt {
            nonce: u64::MAX,
            up_to_sequence: u64::MAX,
            bytes: u64::MAX,
            ..prev.clone()
        };
        assert_eq!(max.supersedes(&prev), Ok(()));
        assert_eq!(prev.supersedes(&max), Err(ReceiptRejection::Replayed));
    }
}

//! Segment statements: an operator's signed word on the content of a segment it serves.
//!
//! With every segment it serves over HTTP, an operator's daemon sends its signature of
//! `(stream, sequence, digest)`, where `digest` is the blake2-256 hash of the segment's
//! envelope. An honest operator never signs two digests for one `(stream, sequence)`: its
//! store accepts a sequence once and never rewrites it. Two statements by one operator for
//! the same segment with different digests are therefore proof, checkable by the chain
//! alone, that the operator served something other than what it stored
//! (`pallet-operators::report_equivocation` slashes it without arbiters).
//!
//! The signed message is SCALE(`(SEGMENT_STATEMENT_DOMAIN, genesis, statement)`), like
//! [`receipts`](crate::receipt), so a statement is worthless on another network and cannot
//! be confused with any other FAST DATA signature. Operators sign with their account's
//! sr25519 key.
//!
//! ```
//! use fastdata_primitives::custody::SegmentStatement;
//! use sp_core::{sr25519, Pair, H256};
//! let operator = sr25519::Pair::from_seed(&[1; 32]);
//! let genesis = H256::repeat_byte(1);
//! let served = SegmentStatement::of(H256::repeat_byte(7), 42, b"envelope bytes");
//! let signature = served.sign_sr25519(&operator, &genesis);
//! assert!(served.verify_sr25519(&signature, &operator.public(), &genesis));
//! let other = SegmentStatement::of(H256::repeat_byte(7), 42, b"other bytes");
//! assert!(served.conflicts_with(&other));
//! ```

use alloc::vec::Vec;
use codec::{Decode, DecodeWithMemTracking, Encode, MaxEncodedLen};
use scale_info::TypeInfo;
use sp_core::{sr25519, H256};
use sp_runtime::traits::{IdentifyAccount, Verify};

use crate::{Sequence, StreamId};

/// Domain separation prefix of every segment statement signature.
pub const SEGMENT_STATEMENT_DOMAIN: &[u8] = b"fastdata/segment-statement/v1";

/// An operator's statement that segment `sequence` of `stream` is the envelope hashing to
/// `digest`.
#[derive(
    Clone, PartialEq, Eq, Debug, Encode, Decode, DecodeWithMemTracking, MaxEncodedLen, TypeInfo,
)]
pub struct SegmentStatement {
    /// The stream the segment belongs to.
    pub stream: StreamId,
    /// The segment's sequence number.
    pub sequence: Sequence,
    /// blake2-256 of the segment's envelope, as served.
    pub digest: H256,
}

impl SegmentStatement {
    /// The statement for `envelope` served as segment `sequence` of `stream`.
    pub fn of(stream: StreamId, sequence: Sequence, envelope: &[u8]) -> Self {
        Self {
            stream,
            sequence,
            digest: H256(sp_io::hashing::blake2_256(envelope)),
        }
    }

    /// `true` if both statements are about the same segment but name different contents.
    pub fn conflicts_with(&self, other: &Self) -> bool {
        self.stream == other.stream
            && self.sequence == other.sequence
            && self.digest != other.digest
    }

    /// The exact bytes an operator signs on the chain with genesis hash `genesis`:
    /// SCALE(`(SEGMENT_STATEMENT_DOMAIN, genesis, statement)`).
    pub fn signing_payload(&self, genesis: &H256) -> Vec<u8> {
        (SEGMENT_STATEMENT_DOMAIN, genesis, self).encode()
    }

    /// `signature` is `signer`'s signature of this statement on the chain `genesis`, for any
    /// runtime signature type (e.g. `MultiSignature` checked against an `AccountId32`).
    pub fn verify<S: Verify>(
        &self,
        signature: &S,
        signer: &<S::Signer as IdentifyAccount>::AccountId,
        genesis: &H256,
    ) -> bool {
        signature.verify(&self.signing_payload(genesis)[..], signer)
    }

    /// `signature` is an sr25519 signature of this statement by `signer` on `genesis`.
    pub fn verify_sr25519(
        &self,
        signature: &sr25519::Signature,
        signer: &sr25519::Public,
        genesis: &H256,
    ) -> bool {
        self.verify(signature, signer, genesis)
    }

    /// Signs this statement with the operator's sr25519 key for the chain `genesis` (what
    /// the operator's daemon does for every segment it serves).
    #[cfg(feature = "std")]
    pub fn sign_sr25519(&self, operator: &sr25519::Pair, genesis: &H256) -> sr25519::Signature {
        use sp_core::Pair;
        operator.sign(&self.signing_payload(genesis))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sp_core::Pair;
    use sp_runtime::{AccountId32, MultiSignature};

    const G: H256 = H256::repeat_byte(0x47);

    fn operator() -> sr25519::Pair {
        sr25519::Pair::from_seed(&[9; 32])
    }

    #[test]
    fn statements_verify_only_for_their_signer_network_and_content() {
        let op = operator();
        let statement = SegmentStatement::of(H256::repeat_byte(1), 3, b"segment");
        let signature = statement.sign_sr25519(&op, &G);
        assert!(statement.verify_sr25519(&signature, &op.public(), &G));
        // As the runtime checks it: MultiSignature against the AccountId32.
        let multi = MultiSignature::Sr25519(signature);
        assert!(statement.verify(&multi, &AccountId32::from(op.public()), &G));
        assert!(!statement.verify_sr25519(&signature, &op.public(), &H256::repeat_byte(2)));
        let other = sr25519::Pair::from_seed(&[8; 32]);
        assert!(!statement.verify_sr25519(&signature, &other.public(), &G));
        let altered = SegmentStatement::of(H256::repeat_byte(1), 3, b"segmenT");
        assert!(!altered.verify_sr25519(&signature, &op.public(), &G));
        // A receipt-domain signature of the same bytes is no statement.
        let foreign = op.sign(&(crate::receipt::RECEIPT_DOMAIN, &G, &statement).encode());
        assert!(!statement.verify_sr25519(&foreign, &op.public(), &G));
    }

    #[test]
    fn only_different_contents_of_one_segment_conflict() {
        let stream = H256::repeat_byte(1);
        let a = SegmentStatement::of(stream, 3, b"a");
        assert!(a.conflicts_with(&SegmentStatement::of(stream, 3, b"b")));
        assert!(!a.conflicts_with(&a.clone()));
        assert!(!a.conflicts_with(&SegmentStatement::of(stream, 4, b"b")));
        assert!(!a.conflicts_with(&SegmentStatement::of(H256::repeat_byte(2), 3, b"b")));
    }
}

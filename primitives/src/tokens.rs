//! Signed tokens checked off chain by storage operators.
//!
//! Two tokens let the data plane run without a transaction per publish or per read:
//!
//! - [`UploadToken`]: signed by the **seller** of a stream, presented by the seller's
//!   publisher when it connects to an assigned operator's broker. The operator checks the
//!   signature against the seller's sr25519 key and the token against chain state: the
//!   stream exists and is open, the signer owns it, the operator is assigned to it, the epoch
//!   exists (see `pallet_offers::Pallet::check_upload_token`).
//! - [`AccessRequest`]: signed by the **buyer** of a purchase, presented to an operator
//!   before it grants a live subscription or streams a batch. The operator checks the
//!   signature against the buyer's key and the purchase on chain.
//!
//! Both are plain SCALE structs. The signed message is the SCALE encoding of
//! `(domain, genesis, payload)`, where the domain is a fixed, length-prefixed tag per token
//! type ([`UPLOAD_TOKEN_DOMAIN`], [`ACCESS_REQUEST_DOMAIN`]), so a signature made for one kind
//! of token (or for a transaction) never verifies as another, and `genesis` is the chain's
//! genesis hash, so a token signed for one network is refused on every other.
//!
//! Replay protection is the verifier's job, because no transaction records the use of a
//! token: the operator keeps the highest nonce it accepted per signer and context (stream
//! for upload tokens, purchase for access requests) and passes it as `last_nonce` to
//! [`Signed::check`]; a token whose nonce is not strictly greater is rejected as replayed.
//!
//! ```
//! # #[cfg(feature = "std")] {
//! use fastdata_primitives::tokens::{Signed, TokenError, UploadToken};
//! use sp_core::{sr25519, Pair, H256};
//!
//! let seller = sr25519::Pair::from_seed(&[1; 32]);
//! let operator = sp_runtime::AccountId32::new([2; 32]);
//! let token = UploadToken { stream: H256::repeat_byte(7), operator: operator.clone(), epoch: 0, expiry: 100u32, nonce: 1 };
//! let genesis = H256::repeat_byte(1);
//! let signed = Signed::sign(token, &seller, &genesis);
//!
//! // The operator checks signature, addressee, expiry and nonce…
//! assert_eq!(signed.check(&seller.public(), &operator, 50, Some(0), &genesis), Ok(()));
//! // …refuses the same token a second time…
//! assert_eq!(signed.check(&seller.public(), &operator, 50, Some(1), &genesis), Err(TokenError::Replayed));
//! // …and on any other network.
//! assert_eq!(signed.check(&seller.public(), &operator, 50, Some(0), &H256::repeat_byte(2)), Err(TokenError::BadSignature));
//! # }
//! ```

use alloc::vec::Vec;
use codec::{Decode, DecodeWithMemTracking, Encode, MaxEncodedLen};
use scale_info::TypeInfo;
use sp_core::{sr25519, H256};
use sp_runtime::traits::Verify;

use crate::{EpochIndex, PurchaseId, StreamId};

/// Domain tag of [`UploadToken`] signatures.
pub const UPLOAD_TOKEN_DOMAIN: &[u8] = b"fastdata/upload-token/v2";
/// Domain tag of [`AccessRequest`] signatures.
pub const ACCESS_REQUEST_DOMAIN: &[u8] = b"fastdata/access-request/v2";

/// A token payload that is signed under its own domain tag.
pub trait TokenPayload: Encode {
    /// Account type of the operator the token is addressed to.
    type AccountId: PartialEq;
    /// Block number type of the expiry.
    type BlockNumber: PartialOrd + Copy;
    /// The domain tag mixed into the signed message.
    const DOMAIN: &'static [u8];
    /// The operator the token is addressed to.
    fn operator(&self) -> &Self::AccountId;
    /// Last block at which the token is valid.
    fn expiry(&self) -> Self::BlockNumber;
    /// Anti-replay nonce; must grow strictly per signer and context.
    fn nonce(&self) -> u64;
}

/// Permission, signed by a stream's seller, for the seller's publisher to upload segments of
/// `stream` to `operator` during `epoch`, until block `expiry`.
#[derive(
    Clone, PartialEq, Eq, Debug, Encode, Decode, DecodeWithMemTracking, MaxEncodedLen, TypeInfo,
)]
pub struct UploadToken<AccountId, BlockNumber> {
    /// The stream the segments belong to.
    pub stream: StreamId,
    /// The operator that may accept the uploads (one token per assigned operator).
    pub operator: AccountId,
    /// The key epoch the uploaded segments are encrypted under.
    pub epoch: EpochIndex,
    /// Last block (inclusive) at which the token is accepted.
    pub expiry: BlockNumber,
    /// Anti-replay nonce, strictly increasing per stream.
    pub nonce: u64,
}

impl<AccountId: Encode + PartialEq, BlockNumber: Encode + PartialOrd + Copy> TokenPayload
    for UploadToken<AccountId, BlockNumber>
{
    type AccountId = AccountId;
    type BlockNumber = BlockNumber;
    const DOMAIN: &'static [u8] = UPLOAD_TOKEN_DOMAIN;
    fn operator(&self) -> &AccountId {
        &self.operator
    }
    fn expiry(&self) -> BlockNumber {
        self.expiry
    }
    fn nonce(&self) -> u64 {
        self.nonce
    }
}

/// What the chain records of a stream that an upload token must match. The chain
/// (`pallet-offers`) and the operator daemon check tokens against it with the same
/// [`UploadToken::check_target`].
#[derive(Clone, Copy, Debug)]
pub struct UploadTarget<'a, AccountId> {
    /// The stream is open (not closed by its seller).
    pub open: bool,
    /// The operators assigned to it.
    pub operators: &'a [AccountId],
    /// Its current key epoch.
    pub epoch: EpochIndex,
    /// Its oldest epoch whose commitment the chain still holds.
    pub oldest_epoch: EpochIndex,
}

impl<AccountId: PartialEq, BlockNumber> UploadToken<AccountId, BlockNumber> {
    /// Checks the token against its stream's chain facts: the stream is open, the token's
    /// operator is assigned to it, and its epoch is a retained one not after the current one
    /// (uploads for an earlier retained epoch stay possible while publishers switch keys).
    pub fn check_target(&self, target: &UploadTarget<'_, AccountId>) -> Result<(), TokenError> {
        if !target.open {
            return Err(TokenError::StreamClosed);
        }
        if !target.operators.contains(&self.operator) {
            return Err(TokenError::NotAssigned);
        }
        if self.epoch > target.epoch || self.epoch < target.oldest_epoch {
            return Err(TokenError::UnknownEpoch);
        }
        Ok(())
    }
}

/// A buyer's request, signed with the buyer's account key, for `operator` to serve the data of
/// `purchase` (live subscription or batch) until block `expiry`.
#[derive(
    Clone, PartialEq, Eq, Debug, Encode, Decode, DecodeWithMemTracking, MaxEncodedLen, TypeInfo,
)]
pub struct AccessRequest<AccountId, BlockNumber> {
    /// The purchase that pays for the data.
    pub purchase: PurchaseId,
    /// The operator asked to serve it.
    pub operator: AccountId,
    /// Last block (inclusive) at which the request is accepted.
    pub expiry: BlockNumber,
    /// Anti-replay nonce, strictly increasing per purchase.
    pub nonce: u64,
}

impl<AccountId: Encode + PartialEq, BlockNumber: Encode + PartialOrd + Copy> TokenPayload
    for AccessRequest<AccountId, BlockNumber>
{
    type AccountId = AccountId;
    type BlockNumber = BlockNumber;
    const DOMAIN: &'static [u8] = ACCESS_REQUEST_DOMAIN;
    fn operator(&self) -> &AccountId {
        &self.operator
    }
    fn expiry(&self) -> BlockNumber {
        self.expiry
    }
    fn nonce(&self) -> u64 {
        self.nonce
    }
}

/// A payload with its sr25519 signature.
#[derive(
    Clone, PartialEq, Eq, Debug, Encode, Decode, DecodeWithMemTracking, MaxEncodedLen, TypeInfo,
)]
pub struct Signed<Payload> {
    /// What was signed.
    pub payload: Payload,
    /// sr25519 signature over [`signing_message`] of the payload.
    pub signature: sr25519::Signature,
}

/// An upload token with the seller's signature.
pub type SignedUploadToken<AccountId, BlockNumber> = Signed<UploadToken<AccountId, BlockNumber>>;
/// An access request with the buyer's signature.
pub type SignedAccessRequest<AccountId, BlockNumber> =
    Signed<AccessRequest<AccountId, BlockNumber>>;

/// Why a token was refused. Each variant says what the presenter must fix.
#[derive(
    Clone,
    Copy,
    PartialEq,
    Eq,
    Debug,
    Encode,
    Decode,
    DecodeWithMemTracking,
    MaxEncodedLen,
    TypeInfo,
)]
pub enum TokenError {
    /// The signature does not verify against the expected signer (wrong key, tampered field or
    /// a signature made for another domain): sign the exact payload with the right account.
    BadSignature,
    /// The token is addressed to another operator: request one token per operator.
    WrongOperator,
    /// The token expired: sign a fresh one.
    Expired,
    /// The nonce is not greater than the last one accepted: use a new, higher nonce.
    Replayed,
    /// The stream is not registered on chain.
    UnknownStream,
    /// The stream was closed by its seller and accepts no more uploads.
    StreamClosed,
    /// The operator is not (or no longer) assigned to the stream.
    NotAssigned,
    /// The epoch has not been opened on chain yet (or its commitment was pruned).
    UnknownEpoch,
}

/// The message that is signed for `payload` on the chain with genesis hash `genesis`: SCALE
/// encoding of `(domain, genesis, payload)`.
pub fn signing_message<P: TokenPayload>(payload: &P, genesis: &H256) -> Vec<u8> {
    (P::DOMAIN, genesis, payload).encode()
}

impl<Payload> Signed<Payload> {
    /// `true` if the signature verifies against `signer` for this payload under its domain,
    /// on the chain `genesis`.
    pub fn verify(&self, signer: &sr25519::Public, genesis: &H256) -> bool
    where
        Payload: TokenPayload,
    {
        let message = signing_message(&self.payload, genesis);
        self.signature.verify(message.as_slice(), signer)
    }

    /// Full off-chain check of a presented token: signature by `signer`, addressed to
    /// `operator` (the verifier itself), not expired at block `now`, and nonce strictly above
    /// `last_nonce` (the highest nonce the verifier accepted before in this context, if any),
    /// all on the chain with genesis hash `genesis` (a token from another network is a
    /// [`TokenError::BadSignature`]).
    ///
    /// The chain-state facts (stream, assignment, purchase) are checked separately.
    pub fn check(
        &self,
        signer: &sr25519::Public,
        operator: &Payload::AccountId,
        now: Payload::BlockNumber,
        last_nonce: Option<u64>,
        genesis: &H256,
    ) -> Result<(), TokenError>
    where
        Payload: TokenPayload,
    {
        if !self.verify(signer, genesis) {
            return Err(TokenError::BadSignature);
        }
        if self.payload.operator() != operator {
            return Err(TokenError::WrongOperator);
        }
        if now > self.payload.expiry() {
            return Err(TokenError::Expired);
        }
        if last_nonce.is_some_and(|last| self.payload.nonce() <= last) {
            return Err(TokenError::Replayed);
        }
        Ok(())
    }
}

#[cfg(feature = "std")]
impl<Payload> Signed<Payload> {
    /// Signs `payload` with `pair` under the payload's domain for the chain `genesis`
    /// (off-chain helper for the SDK, the seller's publisher and tests).
    pub fn sign(payload: Payload, pair: &sr25519::Pair, genesis: &H256) -> Self
    where
        Payload: TokenPayload,
    {
        use sp_core::Pair as _;
        let signature = pair.sign(&signing_message(&payload, genesis));
        Self { payload, signature }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sp_core::{Pair as _, H256};
    use sp_runtime::AccountId32;

    type Token = UploadToken<AccountId32, u32>;
    type Request = AccessRequest<AccountId32, u32>;

    const G: H256 = H256::repeat_byte(0x47);

    fn seller() -> sr25519::Pair {
        sr25519::Pair::from_seed(&[1; 32])
    }
    fn other() -> sr25519::Pair {
        sr25519::Pair::from_seed(&[9; 32])
    }
    fn operator() -> AccountId32 {
        AccountId32::new([2; 32])
    }
    fn token() -> Token {
        UploadToken {
            stream: H256::repeat_byte(7),
            operator: operator(),
            epoch: 3,
            expiry: 100,
            nonce: 5,
        }
    }
    fn request() -> Request {
        AccessRequest {
            purchase: 42,
            operator: operator(),
            expiry: 100,
            nonce: 5,
        }
    }

    #[test]
    fn valid_upload_token_passes() {
        let signed = Signed::sign(token(), &seller(), &G);
        assert!(signed.verify(&seller().public(), &G));
        assert_eq!(
            signed.check(&seller().public(), &operator(), 100, Some(4), &G),
            Ok(())
        );
        assert_eq!(
            signed.check(&seller().public(), &operator(), 0, None, &G),
            Ok(())
        );
    }

    #[test]
    fn upload_token_from_wrong_signer_is_rejected() {
        let signed = Signed::sign(token(), &other(), &G);
        assert!(!signed.verify(&seller().public(), &G));
        assert_eq!(
            signed.check(&seller().public(), &operator(), 1, None, &G),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn tampered_upload_token_is_rejected() {
        let signed = Signed::sign(token(), &seller(), &G);
        let tamperings: [fn(&mut Token); 5] = [
            |t| t.stream = H256::repeat_byte(8),
            |t| t.operator = AccountId32::new([3; 32]),
            |t| t.epoch += 1,
            |t| t.expiry += 1,
            |t| t.nonce += 1,
        ];
        for tamper in tamperings {
            let mut forged = signed.clone();
            tamper(&mut forged.payload);
            assert!(!forged.verify(&seller().public(), &G));
            assert_eq!(
                forged.check(
                    &seller().public(),
                    &forged.payload.operator.clone(),
                    1,
                    None,
                    &G
                ),
                Err(TokenError::BadSignature)
            );
        }
    }

    #[test]
    fn tokens_are_bound_to_the_chain() {
        let other_chain = H256::repeat_byte(0x48);
        let token = Signed::sign(token(), &seller(), &G);
        assert_eq!(
            token.check(&seller().public(), &operator(), 1, None, &other_chain),
            Err(TokenError::BadSignature)
        );
        let request = Signed::sign(request(), &seller(), &G);
        assert!(request.verify(&seller().public(), &G));
        assert!(!request.verify(&seller().public(), &other_chain));
    }

    #[test]
    fn signature_from_another_domain_is_rejected() {
        let pair = seller();
        let payload = token();
        // Same payload, signed under the access-request domain.
        let wrong_domain = pair.sign(&(ACCESS_REQUEST_DOMAIN, &G, &payload).encode());
        let signed = Signed {
            payload: payload.clone(),
            signature: wrong_domain,
        };
        assert!(!signed.verify(&pair.public(), &G));
        // Signed without any domain tag at all.
        let bare = Signed {
            payload: payload.clone(),
            signature: pair.sign(&payload.encode()),
        };
        assert!(!bare.verify(&pair.public(), &G));
        // The domains differ, so the messages differ.
        assert_ne!(UPLOAD_TOKEN_DOMAIN, ACCESS_REQUEST_DOMAIN);
    }

    #[test]
    fn upload_token_for_another_operator_is_rejected() {
        let signed = Signed::sign(token(), &seller(), &G);
        let me = AccountId32::new([3; 32]);
        assert_eq!(
            signed.check(&seller().public(), &me, 1, None, &G),
            Err(TokenError::WrongOperator)
        );
    }

    #[test]
    fn expired_upload_token_is_rejected() {
        let signed = Signed::sign(token(), &seller(), &G);
        assert_eq!(
            signed.check(&seller().public(), &operator(), 100, None, &G),
            Ok(())
        );
        assert_eq!(
            signed.check(&seller().public(), &operator(), 101, None, &G),
            Err(TokenError::Expired)
        );
    }

    #[test]
    fn replayed_nonce_is_rejected() {
        let signed = Signed::sign(token(), &seller(), &G);
        assert_eq!(
            signed.check(&seller().public(), &operator(), 1, Some(5), &G),
            Err(TokenError::Replayed)
        );
        assert_eq!(
            signed.check(&seller().public(), &operator(), 1, Some(6), &G),
            Err(TokenError::Replayed)
        );
        assert_eq!(
            signed.check(&seller().public(), &operator(), 1, Some(4), &G),
            Ok(())
        );
    }

    #[test]
    fn signed_token_roundtrips_through_scale() {
        let signed = Signed::sign(token(), &seller(), &G);
        let bytes = signed.encode();
        let decoded =
            SignedUploadToken::<AccountId32, u32>::decode(&mut &bytes[..]).expect("valid encoding");
        assert_eq!(decoded, signed);
        assert!(decoded.verify(&seller().public(), &G));
        // Truncated input is an error, not a panic.
        assert!(
            SignedUploadToken::<AccountId32, u32>::decode(&mut &bytes[..bytes.len() - 1]).is_err()
        );
    }

    #[test]
    fn valid_access_request_passes() {
        let buyer = other();
        let signed = Signed::sign(request(), &buyer, &G);
        assert_eq!(
            signed.check(&buyer.public(), &operator(), 99, Some(1), &G),
            Ok(())
        );
    }

    #[test]
    fn access_request_checks_signer_fields_domain_operator_expiry_and_nonce() {
        let buyer = other();
        let signed = Signed::sign(request(), &buyer, &G);
        // Wrong signer.
        assert_eq!(
            signed.check(&seller().public(), &operator(), 1, None, &G),
            Err(TokenError::BadSignature)
        );
        // Tampered purchase.
        let mut forged = signed.clone();
        forged.payload.purchase = 43;
        assert_eq!(
            forged.check(&buyer.public(), &operator(), 1, None, &G),
            Err(TokenError::BadSignature)
        );
        // Wrong domain: an upload-token signature over the same bytes.
        let wrong = Signed {
            payload: request(),
            signature: buyer.sign(&(UPLOAD_TOKEN_DOMAIN, &G, request()).encode()),
        };
        assert_eq!(
            wrong.check(&buyer.public(), &operator(), 1, None, &G),
            Err(TokenError::BadSignature)
        );
        // Operator, expiry, replay.
        assert_eq!(
            signed.check(&buyer.public(), &AccountId32::new([3; 32]), 1, None, &G),
            Err(TokenError::WrongOperator)
        );
        assert_eq!(
            signed.check(&buyer.public(), &operator(), 101, None, &G),
            Err(TokenError::Expired)
        );
        assert_eq!(
            signed.check(&buyer.public(), &operator(), 1, Some(5), &G),
            Err(TokenError::Replayed)
        );
    }

    #[test]
    fn upload_targets_need_an_open_stream_an_assigned_operator_and_a_retained_epoch() {
        let token = |operator: u8, epoch| UploadToken {
            stream: H256::repeat_byte(1),
            operator,
            epoch,
            expiry: 10u32,
            nonce: 1,
        };
        let operators = [7u8, 8];
        let target = UploadTarget {
            open: true,
            operators: &operators,
            epoch: 5,
            oldest_epoch: 3,
        };
        assert_eq!(token(7, 3).check_target(&target), Ok(()));
        assert_eq!(token(8, 5).check_target(&target), Ok(()));
        assert_eq!(
            token(9, 4).check_target(&target),
            Err(TokenError::NotAssigned)
        );
        assert_eq!(
            token(7, 2).check_target(&target),
            Err(TokenError::UnknownEpoch)
        );
        assert_eq!(
            token(7, 6).check_target(&target),
            Err(TokenError::UnknownEpoch)
        );
        let closed = UploadTarget {
            open: false,
            ..target
        };
        assert_eq!(
            token(7, 4).check_target(&closed),
            Err(TokenError::StreamClosed)
        );
    }
}

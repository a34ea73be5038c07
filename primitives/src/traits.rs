//! The interfaces between the marketplace pallets. Each pallet implements one of these
//! and is handed the others as `Config` types in the runtime, so every pallet can be
//! tested with mocks.

use alloc::vec::Vec;
use codec::{Decode, DecodeWithMemTracking, Encode, MaxEncodedLen};
use scale_info::TypeInfo;
use sp_core::H256;
use sp_runtime::{DispatchError, Perbill};

/// Identifier of a data offer.
pub type OfferId = u64;
/// Identifier of a stream: `blake2_256(seller ‖ streamName ‖ timestamp)`.
pub type StreamId = H256;
/// Identifier of a purchase.
pub type PurchaseId = u64;
/// Index of a key epoch of a stream (keys `k_e`, `k_m` rotate per epoch).
pub type EpochIndex = u32;
/// Sequence number of a segment within a stream.
pub type Sequence = u64;
/// A trust score or credibility in fixed point: `SCORE_ONE` is 1.0.
pub type Score = u32;
/// The fixed-point unit of [`Score`].
pub const SCORE_ONE: Score = 1_000_000;
/// An X25519 public key (key agreement).
pub type X25519Public = [u8; 32];

/// Identity facts (implemented by `pallet-did`).
pub trait IdentityProvider<AccountId> {
    /// `who` has an active DID holding at least one valid (unexpired, unrevoked) credential
    /// from a registered issuer.
    fn is_verified(who: &AccountId) -> bool;
    /// The X25519 key-agreement key of `who`'s active DID.
    fn key_agreement_key(who: &AccountId) -> Option<X25519Public>;
    /// Reputation weights `VI` of the issuers of `who`'s valid credentials, one per credential.
    fn credential_weights(who: &AccountId) -> Vec<Perbill>;
}

/// Trust scores (implemented by `pallet-trust`).
pub trait TrustProvider<AccountId> {
    /// The current trust score `TS(who)` (eq. 2 of the paper), in [`Score`] fixed point.
    fn trust_score(who: &AccountId) -> Score;
}

/// Reputation: the trust score and the credibility it is built on (implemented by
/// `pallet-trust`; offers and operators only need the [`TrustProvider`] part).
pub trait Reputation<AccountId>: TrustProvider<AccountId> {
    /// The credibility `Cr(who)` (eq. 1 of the paper), in [`Score`] fixed point.
    fn credibility(who: &AccountId) -> Score;
}

/// A purchase that has been settled, as seen by the trust pallet.
#[derive(
    Clone, PartialEq, Eq, Debug, Encode, Decode, DecodeWithMemTracking, MaxEncodedLen, TypeInfo,
)]
pub struct SettledTrade<AccountId, Balance, BlockNumber> {
    /// The buyer of the purchase.
    pub buyer: AccountId,
    /// The seller of the offer.
    pub seller: AccountId,
    /// What the buyer paid in the end (price minus refunds).
    pub value: Balance,
    /// Block at which the purchase was settled.
    pub settled_at: BlockNumber,
}

/// Settled trades that entitle their two sides to rate each other (implemented by
/// `pallet-escrow`).
pub trait SettledTrades<AccountId, Balance, BlockNumber> {
    /// The settled trade of `purchase`, or `None` if it does not exist or is not settled.
    fn settled_trade(purchase: PurchaseId)
        -> Option<SettledTrade<AccountId, Balance, BlockNumber>>;
}

/// How an offer is paid.
#[derive(
    Clone, PartialEq, Eq, Debug, Encode, Decode, DecodeWithMemTracking, MaxEncodedLen, TypeInfo,
)]
pub enum PaymentMode<BlockNumber> {
    /// A bounded window of recorded data (segments `first..=last`) for a flat price.
    Batch {
        /// First sequence number of the window.
        first: Sequence,
        /// Last sequence number of the window (inclusive).
        last: Sequence,
    },
    /// A live subscription priced per period, paid in advance for N periods.
    Stream {
        /// Length of one period in blocks.
        period: BlockNumber,
    },
}

/// What the escrow pallet needs to know about an offer.
#[derive(
    Clone, PartialEq, Eq, Debug, Encode, Decode, DecodeWithMemTracking, MaxEncodedLen, TypeInfo,
)]
pub struct OfferSummary<AccountId, Balance, BlockNumber> {
    /// The seller.
    pub seller: AccountId,
    /// The stream the offer sells, once registered.
    pub stream: Option<StreamId>,
    /// Payment mode.
    pub mode: PaymentMode<BlockNumber>,
    /// Flat price (batch) or price per period (stream).
    pub price: Balance,
    /// Only verified buyers may purchase.
    pub verified_only: bool,
    /// Discount for verified buyers.
    pub verified_discount: Perbill,
    /// Minimum trust score of the buyer.
    pub min_trust_score: Score,
    /// The offer accepts new purchases (not retired).
    pub active: bool,
}

/// What the escrow pallet and the operator daemons need to know about a stream.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, DecodeWithMemTracking, TypeInfo)]
pub struct StreamSummary<AccountId> {
    /// The seller who owns the stream.
    pub seller: AccountId,
    /// The offer the stream belongs to.
    pub offer: OfferId,
    /// The operators assigned to host the stream.
    pub operators: Vec<AccountId>,
    /// The current key epoch.
    pub epoch: EpochIndex,
    /// The stream is open (not closed by its seller).
    pub open: bool,
}

/// Offers and streams (implemented by `pallet-offers`).
pub trait OfferProvider<AccountId, Balance, BlockNumber> {
    /// The offer `id`.
    fn offer(id: OfferId) -> Option<OfferSummary<AccountId, Balance, BlockNumber>>;
    /// The stream `id`.
    fn stream(id: &StreamId) -> Option<StreamSummary<AccountId>>;
    /// The commitment `H(k_e ‖ k_m)` of `epoch` of stream `id`.
    fn epoch_commitment(id: &StreamId, epoch: EpochIndex) -> Option<H256>;
}

/// How long an offer's buyers still need its stream (implemented by `pallet-escrow`).
pub trait OfferPurchases<BlockNumber> {
    /// The block until which the purchases made of `offer` need its stream hosted: the
    /// latest access end plus the time operators have to claim for it. `None` if the offer
    /// was never bought.
    fn needed_until(offer: OfferId) -> Option<BlockNumber>;
    /// The offer is gone: its record can be dropped.
    fn forget(offer: OfferId);
}

impl<BlockNumber> OfferPurchases<BlockNumber> for () {
    fn needed_until(_offer: OfferId) -> Option<BlockNumber> {
        None
    }
    fn forget(_offer: OfferId) {}
}

/// The storage network (implemented by `pallet-operators`).
pub trait OperatorProvider<AccountId, Balance> {
    /// `who` is a registered, active (not paused, suspended or leaving) operator.
    fn is_active(who: &AccountId) -> bool;
    /// The price per MB served by operator `who`.
    fn price_per_mb(who: &AccountId) -> Option<Balance>;
    /// Requests `replication` distinct active operators for the new `stream`. Fails if
    /// fewer are available now; the draw (at random, weighted by stake and trust) happens a
    /// few blocks later, with randomness that does not exist yet when the request is signed,
    /// so the requester cannot choose the operators. Until then `assigned` is empty. Opens
    /// the stream's hosting account, paid by `payer`.
    fn request_assignment(
        stream: &StreamId,
        replication: u32,
        payer: &AccountId,
    ) -> Result<(), DispatchError>;
    /// The operators currently assigned to `stream` (the assignment lives in
    /// `pallet-operators`, which reassigns when an operator leaves or is suspended); empty
    /// while the assignment is pending.
    fn assigned(stream: &StreamId) -> Vec<AccountId>;
    /// Forgets the assignment (or the pending request) of a closed stream and returns the
    /// rest of its hosting funds.
    fn release(stream: &StreamId);
    /// The attested head of `stream`: the number of segments published so far (sequences
    /// `0..head`), as the lower median of the latest attestations of the operators assigned
    /// to it, an operator that has not attested counting as 0. Monotone while the
    /// assignment is unchanged; 0 for a stream nobody attested.
    fn stream_head(stream: &StreamId) -> Sequence;
    /// The hosting quota (MB) of `stream`, if it has a hosting account, and whether its funds
    /// pay for a period of every replica storing all of it (its operators accept segments).
    fn hosting(stream: &StreamId) -> Option<(u32, bool)>;
    /// The most operators one stream can be assigned (`pallet-operators`' `MaxReplication`):
    /// a `request_assignment` for more replicas fails, so offers must not promise more.
    fn max_replication() -> u32;
}

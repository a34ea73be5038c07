//! Runtime APIs of the market (offers, streams, storage operators) and the types they return.
//!
//! The runtime implements them by calling the public query functions of `pallet-offers`
//! (`Pallet::offers_page`, `offers_by_seller`, `offer_listing`, `stream_view`,
//! `check_upload_token`) and `pallet-operators` (`operator_view`, `operator_views`,
//! `streams_of`). Wallets, the CLI and polkadot.js apps use them to show offers next to the
//! seller's trust score; operator daemons use them to learn their streams and to check upload
//! tokens.
//!
//! The offer terms and operator status types live here too, because the pallets store them
//! and clients decode them: one definition on and off chain.

use alloc::vec::Vec;
use codec::{Codec, Decode, DecodeWithMemTracking, Encode, MaxEncodedLen};
use scale_info::TypeInfo;
use sp_core::H256;
use sp_runtime::Perbill;

use crate::{
    tokens::{SignedUploadToken, TokenError},
    EpochIndex, OfferId, PaymentMode, Score, StreamId,
};

/// Licence under which a buyer may use purchased data.
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
pub enum Licence {
    /// Use inside the buyer's own organisation only.
    InternalUse,
    /// Use in the buyer's commercial products and services.
    Commercial,
    /// A licence text published off chain, identified by its blake2-256 hash.
    Custom(H256),
}

/// The terms of a data offer (the "terms" of the paper's `DataOffer = topic + mode + price +
/// terms`). They apply to purchases made while they are in force; updating them never changes
/// an existing purchase.
#[derive(
    Clone, PartialEq, Eq, Debug, Encode, Decode, DecodeWithMemTracking, MaxEncodedLen, TypeInfo,
)]
pub struct OfferTerms<BlockNumber> {
    /// Licence of the data.
    pub licence: Licence,
    /// The buyer may resell the data.
    pub resale_allowed: bool,
    /// Only buyers with a verified identity may purchase.
    pub verified_only: bool,
    /// Discount on the price for verified buyers.
    pub verified_discount: Perbill,
    /// Minimum trust score (in [`crate::SCORE_ONE`] fixed point) a buyer needs to purchase.
    pub min_trust_score: Score,
    /// How long (in blocks) the operators keep recorded segments available for batch buyers and
    /// late subscribers.
    pub retention: BlockNumber,
    /// Number of storage operators hosting the stream (bounded by the runtime).
    pub replication: u32,
}

/// An offer as listed to buyers, with the seller's current trust score.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, TypeInfo)]
pub struct OfferListing<AccountId, Balance, BlockNumber> {
    /// Offer identifier.
    pub id: OfferId,
    /// The seller.
    pub seller: AccountId,
    /// The seller's trust score `TS` (eq. 2 of the paper) at the queried block.
    pub seller_trust_score: Score,
    /// Topic (what the data is), UTF-8.
    pub topic: Vec<u8>,
    /// Payment mode (batch window or live stream).
    pub mode: PaymentMode<BlockNumber>,
    /// Flat price (batch) or price per period (stream).
    pub price: Balance,
    /// Terms for new purchases.
    pub terms: OfferTerms<BlockNumber>,
    /// The stream the offer sells, once registered.
    pub stream: Option<StreamId>,
    /// Block at which the offer was created.
    pub created_at: BlockNumber,
    /// Block at which the offer was retired, if it was.
    pub retired_at: Option<BlockNumber>,
}

/// One page of offers in id order.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, TypeInfo)]
pub struct OfferPage<AccountId, Balance, BlockNumber> {
    /// The offers of this page.
    pub offers: Vec<OfferListing<AccountId, Balance, BlockNumber>>,
    /// Where the next page starts, or `None` after the last page.
    pub next: Option<OfferId>,
}

/// A stream with its operators and current key epoch.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, TypeInfo)]
pub struct StreamView<AccountId, BlockNumber> {
    /// Stream identifier `blake2_256(seller ‖ name ‖ timestamp)`.
    pub id: StreamId,
    /// The seller who owns the stream.
    pub seller: AccountId,
    /// The offer the stream belongs to.
    pub offer: OfferId,
    /// The stream name chosen by the seller.
    pub name: Vec<u8>,
    /// The operators currently assigned to host the stream.
    pub operators: Vec<AccountId>,
    /// The current key epoch.
    pub epoch: EpochIndex,
    /// The oldest epoch whose commitment is still held (older ones were pruned).
    pub oldest_epoch: EpochIndex,
    /// The commitment `H(k_e ‖ k_m)` of the current epoch.
    pub epoch_commitment: Option<H256>,
    /// Block at which the stream was registered.
    pub created_at: BlockNumber,
    /// Block at which the stream was closed, if it was.
    pub closed_at: Option<BlockNumber>,
    /// Most MB each operator stores for the stream (its hosting quota).
    pub quota_mb: u32,
    /// The stream's hosting funds pay for a period of every replica storing all of the
    /// quota: its operators accept new segments up to the quota.
    pub hosting_funded: bool,
}

/// Life-cycle state of a storage operator.
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
pub enum OperatorStatus<BlockNumber> {
    /// Takes new streams and hosts its assigned ones; must send heartbeats.
    Active,
    /// Paused by the operator: hosts no streams and takes none until it resumes.
    Paused,
    /// Suspended by the runtime (missed heartbeats or stake below the minimum): hosts no
    /// streams until the operator resumes.
    Suspended,
    /// Leaving: hosts no streams; the stake stays held (and slashable) until the block.
    Leaving {
        /// First block at which the stake can be withdrawn.
        unbonding_until: BlockNumber,
    },
}

/// A storage operator as shown to sellers, buyers and other daemons.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, TypeInfo)]
pub struct OperatorView<AccountId, Balance, BlockNumber> {
    /// The operator's account.
    pub account: AccountId,
    /// Stake held.
    pub stake: Balance,
    /// MQTT broker endpoint (`mqtt://` or `mqtts://`).
    pub broker_url: Vec<u8>,
    /// HTTP endpoint (`http://` or `https://`) for batch downloads.
    pub http_url: Vec<u8>,
    /// Price per MB served.
    pub price_per_mb: Balance,
    /// Life-cycle state.
    pub status: OperatorStatus<BlockNumber>,
    /// Block of the last heartbeat.
    pub last_heartbeat: BlockNumber,
    /// Number of streams currently assigned.
    pub streams: u32,
    /// The operator's trust score.
    pub trust_score: Score,
}

sp_api::decl_runtime_apis! {
    /// Offers and streams (`pallet-offers`).
    pub trait OffersApi<AccountId, Balance, BlockNumber>
    where
        AccountId: Codec,
        Balance: Codec,
        BlockNumber: Codec,
    {
        /// At most `limit` offers (the runtime caps it) with id `>= start`, in id order, each
        /// with its seller's trust score; retired offers are included (see `retired_at`).
        fn offers(start: OfferId, limit: u32) -> OfferPage<AccountId, Balance, BlockNumber>;
        /// All offers of `seller`, each with the seller's trust score.
        fn offers_by_seller(seller: AccountId) -> Vec<OfferListing<AccountId, Balance, BlockNumber>>;
        /// The offer `id`.
        fn offer(id: OfferId) -> Option<OfferListing<AccountId, Balance, BlockNumber>>;
        /// The stream `id` with its operators and current epoch.
        fn stream(id: StreamId) -> Option<StreamView<AccountId, BlockNumber>>;
        /// Full check of an upload token presented to `operator` at the current block:
        /// signature by the stream's seller, addressee, expiry, nonce above `last_nonce`, and
        /// the chain facts (stream open, operator assigned, epoch known).
        fn check_upload_token(
            token: SignedUploadToken<AccountId, BlockNumber>,
            operator: AccountId,
            last_nonce: Option<u64>,
        ) -> Result<(), TokenError>;
    }

    /// Storage operators (`pallet-operators`).
    pub trait OperatorsApi<AccountId, Balance, BlockNumber>
    where
        AccountId: Codec,
        Balance: Codec,
        BlockNumber: Codec,
    {
        /// The operator `who`, with its trust score.
        fn operator(who: AccountId) -> Option<OperatorView<AccountId, Balance, BlockNumber>>;
        /// All registered operators (bounded by the runtime's maximum).
        fn operators() -> Vec<OperatorView<AccountId, Balance, BlockNumber>>;
        /// The streams assigned to `who` (what its daemon must host).
        fn streams_of(who: AccountId) -> Vec<StreamId>;
    }
}

/// The stream identifier of the paper: `blake2_256(seller ‖ name ‖ timestamp)`, where `seller`
/// is the SCALE encoding of the seller's account (its 32 bytes for `AccountId32`), `name` the
/// raw bytes of the stream name and `timestamp` the seller-chosen creation time (e.g. Unix
/// milliseconds) as 8 little-endian bytes. Sellers compute it off chain before registering.
pub fn stream_id<AccountId: Encode>(seller: &AccountId, name: &[u8], timestamp: u64) -> StreamId {
    let mut preimage = seller.encode();
    preimage.extend_from_slice(name);
    preimage.extend_from_slice(&timestamp.to_le_bytes());
    StreamId::from(sp_io::hashing::blake2_256(&preimage))
}

//! # Offers pallet
//!
//! Puts IIoT data on the FAST DATA market.
//!
//! ## Overview
//!
//! - **Offers.** A verified seller (see [`Config::Identity`]) [creates](Pallet::create_offer)
//!   a data offer — the paper's `DataOffer = topic + payment mode + price + terms`. The
//!   payment mode is either `Batch { first, last }` (a bounded window of recorded segments for
//!   a flat price) or `Stream { period }` (a live subscription priced per period, bought for N
//!   periods in advance through escrow). The [terms](OfferTerms) carry the licence, whether
//!   resale is allowed, verified-buyers-only, a discount for verified buyers, a minimum buyer
//!   trust score, the retention of recorded data and the replication factor. A deposit is
//!   held per offer (base + per topic byte).
//! - **Updates.** The seller [updates](Pallet::update_offer) the price and terms; they apply
//!   to purchases made afterwards only (escrow records the price and terms of each purchase).
//!   [Retiring](Pallet::retire_offer) an offer stops new purchases; existing ones run to their
//!   end.
//! - **Streams.** The seller [registers the stream](Pallet::register_stream) of an offer:
//!   `streamID = blake2_256(seller ‖ streamName ‖ timestamp)`
//!   ([`fastdata_primitives::api_market::stream_id`]). Registration asks
//!   [`Config::Operators`] for `R` operators (the offer's replication, at most the storage
//!   network's [`max_replication`](fastdata_primitives::OperatorProvider::max_replication),
//!   `pallet-operators`' `MaxReplication`) and records a commitment `H(k_e ‖ k_m)` to the first key
//!   epoch. Keys never touch the chain. The seller [rotates](Pallet::rotate_epoch) epochs with
//!   a new commitment (the oldest ones are pruned beyond [`Config::MaxRetainedEpochs`]) and
//!   [closes](Pallet::close_stream) the stream, which retires the offer. Its operators keep
//!   hosting it until no purchase needs it (the latest access end plus the claim grace, from
//!   [`Config::Purchases`]); then anyone [releases](Pallet::release_stream) them. After
//!   [`Config::RemovalDelay`] from the release the seller [removes](Pallet::remove_offer) the
//!   retired offer and its closed stream and gets every deposit back.
//! - **Upload tokens.** Publishing needs no transaction: the seller signs an
//!   [`UploadToken`](fastdata_primitives::tokens::UploadToken) per operator, which the operator
//!   checks off chain against the facts kept here ([`Pallet::upload_token_facts`],
//!   [`Pallet::check_upload_token`]).
//! - **Queries.** [`Pallet::offers_page`], [`Pallet::offers_by_seller`],
//!   [`Pallet::offer_listing`] (each with the seller's trust score) and
//!   [`Pallet::stream_view`] back the `OffersApi` runtime API.
//!
//! ## Invariants (`try_state`)
//!
//! Held deposits equal the recorded deposits per seller and kind; the by-seller index mirrors
//! the offers; every stream belongs to its offer and stores exactly the commitments of its
//! retained epochs.
#![cfg_attr(not(feature = "std"), no_std)]

extern crate alloc;

pub use pallet::*;

#[cfg(feature = "runtime-benchmarks")]
mod benchmarking;
mod features;
mod impls;
#[cfg(test)]
mod mock;
#[cfg(test)]
mod tests;
pub mod types;
pub mod weights;

pub use types::*;
pub use weights::WeightInfo;

/// Hooks the runtime provides so the benchmarks can set up their worst cases.
#[cfg(feature = "runtime-benchmarks")]
pub trait BenchmarkHelper<AccountId, BlockNumber> {
    /// Makes `who` a verified seller.
    fn verify_seller(who: &AccountId);
    /// Makes at least `replication` operators available for assignment.
    fn prepare_operators(replication: u32);
    /// Records that purchases of `offer` need its stream hosted until `until`.
    fn purchases_need(offer: fastdata_primitives::OfferId, until: BlockNumber);
    /// Draws the operators of registered streams now (they are drawn a few blocks after
    /// registration), so a benchmark can close or release a hosted stream.
    fn draw_operators();
}

// FRAME's expansion of `#[pallet::pallet]`, `#[pallet::storage]` and `#[pallet::error]` calls
// `expect` on values it built itself; the pallet's own logic lives outside this module
// (`features/`, `impls.rs`), where `clippy::expect_used` stays on.
#[allow(clippy::expect_used)]
#[frame_support::pallet]
pub mod pallet {
    use super::*;
    use fastdata_primitives::{
        EpochIndex, IdentityProvider, OfferId, OfferPurchases, OperatorProvider, StreamId,
        TrustProvider,
    };
    use frame_support::{pallet_prelude::*, traits::fungible};
    use frame_system::pallet_prelude::*;
    use sp_core::H256;

    #[pallet::pallet]
    pub struct Pallet<T>(_);

    /// Reasons for which this pallet holds funds.
    #[pallet::composite_enum]
    pub enum HoldReason {
        /// Deposit for a stored offer.
        OfferDeposit,
        /// Deposit for a stored stream and its epoch commitments.
        StreamDeposit,
    }

    #[pallet::config]
    pub trait Config: frame_system::Config {
        /// The currency in which deposits are held.
        type Currency: fungible::Inspect<Self::AccountId>
            + fungible::Mutate<Self::AccountId>
            + fungible::MutateHold<Self::AccountId, Reason = Self::RuntimeHoldReason>;

        /// The overarching hold reason.
        type RuntimeHoldReason: From<HoldReason>;

        /// Identity facts: only verified sellers may list.
        type Identity: IdentityProvider<Self::AccountId>;

        /// Trust scores shown next to each listed offer.
        type Trust: TrustProvider<Self::AccountId>;

        /// The storage network that assigns operators to streams.
        type Operators: OperatorProvider<Self::AccountId, BalanceOf<Self>>;

        /// Base deposit per offer.
        #[pallet::constant]
        type OfferDeposit: Get<BalanceOf<Self>>;

        /// Deposit per byte of topic and stream name.
        #[pallet::constant]
        type ByteDeposit: Get<BalanceOf<Self>>;

        /// Base deposit per stream (covers its record and its operator assignment).
        #[pallet::constant]
        type StreamDeposit: Get<BalanceOf<Self>>;

        /// Deposit per stored epoch commitment.
        #[pallet::constant]
        type EpochDeposit: Get<BalanceOf<Self>>;

        /// Maximum topic length in bytes.
        #[pallet::constant]
        type MaxTopicLen: Get<u32>;

        /// Maximum stream name length in bytes.
        #[pallet::constant]
        type MaxStreamNameLen: Get<u32>;

        /// Maximum number of offers per seller.
        #[pallet::constant]
        type MaxOffersPerSeller: Get<u32>;

        /// Number of epoch commitments kept per stream; older ones are pruned on rotation.
        /// Choose it so a commitment outlives every purchase and dispute of its epoch.
        #[pallet::constant]
        type MaxRetainedEpochs: Get<u32>;

        /// Maximum number of segments in a batch window.
        #[pallet::constant]
        type MaxBatchSegments: Get<u64>;

        /// Minimum period of a stream offer, in blocks.
        #[pallet::constant]
        type MinPeriod: Get<BlockNumberFor<Self>>;

        /// Maximum retention of recorded data, in blocks.
        #[pallet::constant]
        type MaxRetention: Get<BlockNumberFor<Self>>;

        /// How long the purchases of an offer need its stream hosted (`pallet-escrow`).
        type Purchases: OfferPurchases<BlockNumberFor<Self>>;

        /// Blocks a retired offer (and its closed stream) stays on chain before it can be
        /// removed. Choose it longer than any purchase plus its dispute window.
        #[pallet::constant]
        type RemovalDelay: Get<BlockNumberFor<Self>>;

        /// Maximum number of offers returned by one page of [`Pallet::offers_page`].
        #[pallet::constant]
        type MaxPageSize: Get<u32>;

        /// Weights of this pallet's calls.
        type WeightInfo: WeightInfo;

        /// Benchmark setup hooks.
        #[cfg(feature = "runtime-benchmarks")]
        type BenchmarkHelper: BenchmarkHelper<Self::AccountId, BlockNumberFor<Self>>;
    }

    /// The id the next offer gets.
    #[pallet::storage]
    pub type NextOfferId<T: Config> = StorageValue<_, OfferId, ValueQuery>;

    /// Offers by id.
    #[pallet::storage]
    pub type Offers<T: Config> = StorageMap<_, Twox64Concat, OfferId, OfferOf<T>>;

    /// The offers of each seller.
    #[pallet::storage]
    pub type OffersBySeller<T: Config> = StorageMap<
        _,
        Blake2_128Concat,
        T::AccountId,
        BoundedVec<OfferId, T::MaxOffersPerSeller>,
        ValueQuery,
    >;

    /// Streams by id.
    #[pallet::storage]
    pub type Streams<T: Config> = StorageMap<_, Blake2_128Concat, StreamId, StreamOf<T>>;

    /// The commitment `H(k_e ‖ k_m)` of each retained key epoch of each stream.
    #[pallet::storage]
    pub type EpochCommitments<T: Config> =
        StorageDoubleMap<_, Blake2_128Concat, StreamId, Twox64Concat, EpochIndex, H256>;

    #[pallet::event]
    #[pallet::generate_deposit(pub(super) fn deposit_event)]
    pub enum Event<T: Config> {
        /// A seller listed an offer.
        OfferCreated {
            /// The new offer.
            offer: OfferId,
            /// The seller.
            seller: T::AccountId,
            /// The deposit held.
            deposit: BalanceOf<T>,
        },
        /// A seller changed the price or terms of an offer (new values, for new purchases).
        OfferUpdated {
            /// The offer.
            offer: OfferId,
            /// Price now in force.
            price: BalanceOf<T>,
            /// Terms now in force.
            terms: OfferTermsOf<T>,
        },
        /// An offer stopped accepting purchases.
        OfferRetired {
            /// The offer.
            offer: OfferId,
        },
        /// A retired offer and its closed stream were removed; deposits were returned.
        OfferRemoved {
            /// The offer.
            offer: OfferId,
            /// Its stream, if one was registered.
            stream: Option<StreamId>,
            /// Deposits released to the seller.
            refunded: BalanceOf<T>,
        },
        /// A stream was registered; its operators are drawn a few blocks later
        /// (`Operators::StreamAssigned`).
        StreamRegistered {
            /// The stream.
            stream: StreamId,
            /// Its offer.
            offer: OfferId,
            /// The seller.
            seller: T::AccountId,
            /// Commitment to epoch 0.
            commitment: H256,
        },
        /// The seller opened a new key epoch.
        EpochRotated {
            /// The stream.
            stream: StreamId,
            /// The new epoch.
            epoch: EpochIndex,
            /// Its commitment `H(k_e ‖ k_m)`.
            commitment: H256,
        },
        /// A stream was closed: it sells nothing more. Its operators keep hosting it for the
        /// buyers until `serving_until` (then [`Pallet::release_stream`]), or were released
        /// at once if no purchase needs it (`None`).
        StreamClosed {
            /// The stream.
            stream: StreamId,
            /// The block until which the stream's purchases need it hosted.
            serving_until: Option<BlockNumberFor<T>>,
        },
    }

    #[pallet::error]
    pub enum Error<T> {
        /// The seller has no verified identity: obtain a credential from a registered issuer.
        SellerNotVerified,
        /// The topic is empty, not UTF-8, or contains control characters or `+`/`#`.
        InvalidTopic,
        /// The batch window ends before it starts.
        InvalidBatchWindow,
        /// The batch window holds more segments than the runtime allows.
        BatchWindowTooLarge,
        /// The stream period is shorter than the runtime's minimum.
        PeriodTooShort,
        /// The replication factor is zero or above the runtime's maximum.
        InvalidReplication,
        /// The retention is longer than the runtime's maximum.
        RetentionTooLong,
        /// The seller has the maximum number of offers: remove retired ones first.
        TooManyOffers,
        /// No offer with this id.
        UnknownOffer,
        /// Only the seller may do this.
        NotSeller,
        /// The offer is retired.
        OfferRetired,
        /// The update changes nothing.
        NothingToUpdate,
        /// The replication factor cannot change once the stream is registered.
        ReplicationLocked,
        /// The offer already has a stream.
        StreamAlreadyRegistered,
        /// A stream with this id exists: use another name or timestamp.
        StreamIdTaken,
        /// The stream name is empty, not UTF-8, or contains control characters, `/`, `+`, `#`.
        InvalidStreamName,
        /// No stream with this id.
        UnknownStream,
        /// The stream is closed.
        StreamClosed,
        /// Buyers still need the closed stream hosted (see the `serving_until` of
        /// [`Event::StreamClosed`]).
        StillServing,
        /// The stream's operators were already released.
        AlreadyReleased,
        /// The offer's stream is still open: close it first.
        StreamOpen,
        /// The offer is still active: retire it first.
        OfferActive,
        /// The removal delay has not passed yet.
        RemovalTooEarly,
        /// The epoch counter cannot grow further.
        EpochOverflow,
    }

    #[pallet::hooks]
    impl<T: Config> Hooks<BlockNumberFor<T>> for Pallet<T> {
        fn integrity_test() {
            assert!(
                T::Operators::max_replication() > 0,
                "the storage network's MaxReplication must be at least 1"
            );
            assert!(
                T::MaxRetainedEpochs::get() > 0,
                "MaxRetainedEpochs must be at least 1"
            );
            assert!(T::MaxPageSize::get() > 0, "MaxPageSize must be at least 1");
        }

        #[cfg(feature = "try-runtime")]
        fn try_state(_n: BlockNumberFor<T>) -> Result<(), sp_runtime::TryRuntimeError> {
            Self::do_try_state()
        }
    }

    #[pallet::call(weight = <T as Config>::WeightInfo)]
    impl<T: Config> Pallet<T> {
        /// Lists a data offer of the (verified) caller and holds its deposit.
        ///
        /// Emits [`Event::OfferCreated`].
        #[pallet::call_index(0)]
        pub fn create_offer(
            origin: OriginFor<T>,
            topic: TopicOf<T>,
            mode: PaymentModeOf<T>,
            price: BalanceOf<T>,
            terms: OfferTermsOf<T>,
        ) -> DispatchResult {
            let seller = ensure_signed(origin)?;
            Self::do_create_offer(seller, topic, mode, price, terms)
        }

        /// Changes the price and/or terms of the caller's active offer for future purchases;
        /// `None` keeps the current value. The replication factor is fixed once the stream is
        /// registered. Emits [`Event::OfferUpdated`].
        #[pallet::call_index(1)]
        pub fn update_offer(
            origin: OriginFor<T>,
            offer: OfferId,
            price: Option<BalanceOf<T>>,
            terms: Option<OfferTermsOf<T>>,
        ) -> DispatchResult {
            let seller = ensure_signed(origin)?;
            Self::do_update_offer(seller, offer, price, terms)
        }

        /// Stops new purchases of the caller's offer; existing purchases run to their end and
        /// the stream stays open until the seller closes it. Emits [`Event::OfferRetired`].
        #[pallet::call_index(2)]
        pub fn retire_offer(origin: OriginFor<T>, offer: OfferId) -> DispatchResult {
            let seller = ensure_signed(origin)?;
            Self::do_retire_offer(seller, offer)
        }

        /// Registers the stream of the caller's active offer, with id
        /// `blake2_256(seller ‖ name ‖ timestamp)`, requests its operators and records
        /// `commitment = H(k_e ‖ k_m)` for epoch 0. Holds the stream deposit. The operators
        /// are drawn a few blocks later with randomness that does not exist yet, so the name
        /// and timestamp chosen do not choose them; until then the stream sells nothing.
        ///
        /// Emits [`Event::StreamRegistered`].
        #[pallet::call_index(3)]
        pub fn register_stream(
            origin: OriginFor<T>,
            offer: OfferId,
            name: StreamNameOf<T>,
            timestamp: u64,
            commitment: H256,
        ) -> DispatchResult {
            let seller = ensure_signed(origin)?;
            Self::do_register_stream(seller, offer, name, timestamp, commitment)
        }

        /// Opens the next key epoch of the caller's open stream with its commitment
        /// `H(k_e ‖ k_m)`; prunes the oldest commitment beyond the retained maximum.
        ///
        /// Emits [`Event::EpochRotated`].
        #[pallet::call_index(4)]
        pub fn rotate_epoch(
            origin: OriginFor<T>,
            stream: StreamId,
            commitment: H256,
        ) -> DispatchResult {
            let seller = ensure_signed(origin)?;
            Self::do_rotate_epoch(seller, stream, commitment)
        }

        /// Closes the caller's stream and retires its offer: nothing more is sold. Buyers are
        /// served to the end of what they paid for: the operators stay assigned until the
        /// purchases' access and claim time are over ([`Config::Purchases`]), and are released
        /// at once if none needs them. Operators take no new segments for a closed stream, so
        /// its purchases' later periods pay nothing and are refunded. Emits
        /// [`Event::StreamClosed`].
        #[pallet::call_index(5)]
        pub fn close_stream(origin: OriginFor<T>, stream: StreamId) -> DispatchResult {
            let seller = ensure_signed(origin)?;
            Self::do_close_stream(seller, stream)
        }

        /// Removes the caller's retired offer and its closed stream (with all stored epoch
        /// commitments) once [`Config::RemovalDelay`] has passed since the later of retirement
        /// and the release of the stream's operators, and releases every deposit. Emits [`Event::OfferRemoved`].
        #[pallet::call_index(6)]
        #[pallet::weight(T::WeightInfo::remove_offer(T::MaxRetainedEpochs::get()))]
        pub fn remove_offer(origin: OriginFor<T>, offer: OfferId) -> DispatchResultWithPostInfo {
            let seller = ensure_signed(origin)?;
            let epochs = Self::do_remove_offer(seller, offer)?;
            Ok(Some(T::WeightInfo::remove_offer(epochs)).into())
        }

        /// Releases the operators of a closed stream once its buyers no longer need it (see
        /// [`Event::StreamClosed`]). Anyone may call it, an operator to free its slot for
        /// instance. Emits `pallet_operators::Event::StreamReleased`.
        #[pallet::call_index(7)]
        pub fn release_stream(origin: OriginFor<T>, stream: StreamId) -> DispatchResult {
            ensure_signed(origin)?;
            Self::do_release_stream(stream)
        }

        /// Lists an offer and registers its stream in one call: [`Pallet::create_offer`],
        /// then [`Pallet::register_stream`] of the new offer, so a seller onboards in one
        /// transaction. All of it happens or nothing does. Emits [`Event::OfferCreated`] and
        /// [`Event::StreamRegistered`].
        #[pallet::call_index(8)]
        #[pallet::weight(
            T::WeightInfo::create_offer().saturating_add(T::WeightInfo::register_stream())
        )]
        #[allow(clippy::too_many_arguments)]
        pub fn create_offer_with_stream(
            origin: OriginFor<T>,
            topic: TopicOf<T>,
            mode: PaymentModeOf<T>,
            price: BalanceOf<T>,
            terms: OfferTermsOf<T>,
            name: StreamNameOf<T>,
            timestamp: u64,
            commitment: H256,
        ) -> DispatchResult {
            let seller = ensure_signed(origin)?;
            let offer = NextOfferId::<T>::get();
            Self::do_create_offer(seller.clone(), topic, mode, price, terms)?;
            Self::do_register_stream(seller, offer, name, timestamp, commitment)
        }
    }
}

//! # Operators pallet
//!
//! The storage network of FAST DATA: independent operators run an MQTT broker plus the
//! `fastdata-operator` daemon, host sellers' encrypted streams and serve them to buyers whose
//! purchase is on chain.
//!
//! ## Overview
//!
//! - **Registry.** An operator [registers](Pallet::register) with a stake (held from its
//!   account under [`HoldReason::OperatorStake`], at least [`Config::MinStake`]), a broker
//!   endpoint (`mqtt://` / `mqtts://`), an HTTP endpoint (`http://` / `https://`) and a price
//!   per MB served. It can [update](Pallet::update) them, [bond more](Pallet::bond_extra),
//!   [pause](Pallet::pause) and [resume](Pallet::resume), and [leave](Pallet::leave): the
//!   stake stays held (and slashable) for [`Config::UnbondingPeriod`] blocks, then the operator
//!   [withdraws](Pallet::withdraw) it and its record is removed.
//! - **Liveness.** Active operators send a [heartbeat](Pallet::heartbeat) at least every
//!   [`Config::HeartbeatTimeout`] blocks. `on_idle` checks a bounded number of operators per
//!   block (round robin) and suspends the silent ones.
//! - **Slashing.** Anyone [reports](Pallet::report_equivocation) two statements an operator
//!   signed about one segment with different contents
//!   ([`fastdata_primitives::custody`]); the chain checks both signatures and slashes
//!   [`Config::EquivocationSlash`] of the stake, without arbiters. For misbehaviour the chain
//!   cannot check, [`Config::SlashOrigin`] (the arbiters) [slashes](Pallet::slash), citing
//!   an evidence hash. A slash that leaves the stake below the minimum suspends the operator.
//! - **Assignment.** When `pallet-offers` registers a stream it calls
//!   [`OperatorProvider::request_assignment`], which checks that `R` active operators have
//!   room and queues the stream. [`Config::AssignmentDelay`] blocks of the randomness source
//!   later, [`Pallet::draw_pending`] picks `R` distinct active operators at random, weighted
//!   by stake × (1 + trust score, capped at [`Config::MaxTrustBoost`]), and emits
//!   [`Event::StreamAssigned`]. The runtime calls it at the start of every block, before any
//!   transaction (a parachain from `cumulus-pallet-parachain-system`'s
//!   `OnSystemEvent::on_relay_state_proof`, with the relay parent's VRF output), so nobody
//!   can change the candidates' weights once the randomness is known. The trust
//!   score counted is the one computed at the operator's registration, resumption or latest
//!   heartbeat (so at most a heartbeat interval old), which keeps an assignment to one read
//!   of the active set. Neither
//!   seller nor buyer chooses. The assignment lives only here. When an operator pauses,
//!   leaves or is suspended, it keeps its streams until each one's replacement is drawn the
//!   same way, [`Config::AssignmentDelay`] blocks of the randomness source later; an
//!   [`Event::StreamReassigned`] per stream tells the new operator's daemon which replicas
//!   to backfill from.
//!
//! ## Randomness
//!
//! A request records the randomness source's current block number
//! ([`Config::RandomnessClock`]: on a parachain the relay parent's). The draw takes the
//! output the runtime hands to [`Pallet::draw_pending`] only once that number is at least
//! [`Config::AssignmentDelay`] higher, so the output did not exist when the seller signed
//! the registration and grinding stream names or timing the transaction gains nothing. On a
//! parachain the output is the relay chain's BABE VRF output of the relay parent, read from
//! the relay-chain state proof that validators check (as Moonbeam's `pallet-randomness`
//! does). A dev chain, whose mock relay state has no VRF output, uses the parent block's
//! hash, which only the block author could bias. Reassignments wait the same way, so an
//! operator cannot time its pause to hand its streams to a chosen successor.
//!
//! ## Invariants (`try_state`)
//!
//! Held stake equals the recorded stake of every operator; the active set holds exactly the
//! active operators, without duplicates; every stream is assigned only to active operators,
//! without duplicates, and the per-operator stream index mirrors the assignments.
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

/// Log target of this pallet.
pub const LOG_TARGET: &str = "runtime::operators";

/// What the benchmarks need from the runtime.
#[cfg(feature = "runtime-benchmarks")]
pub trait BenchmarkHelper<AccountId, Signature> {
    /// Makes `who`'s trust score ([`Config::Trust`]) as costly to compute as it can be (e.g. a
    /// DID with the most credentials): assigning and reassigning streams computes the score
    /// of every active operator.
    fn make_trusted(who: &AccountId);
    /// An account, distinct per `seed`, that can sign with [`Config::StatementSignature`].
    fn signer(seed: u32) -> AccountId;
    /// `signer`'s signature of `message` (`signer` was returned by [`Self::signer`]).
    fn sign(signer: &AccountId, message: &[u8]) -> Signature;
}

// FRAME's expansion of `#[pallet::pallet]`, `#[pallet::storage]` and `#[pallet::error]` calls
// `expect` on values it built itself; the pallet's own logic lives outside this module
// (`features/`, `impls.rs`), where `clippy::expect_used` stays on.
#[allow(clippy::expect_used)]
#[frame_support::pallet]
pub mod pallet {
    use super::*;
    use fastdata_primitives::custody::SegmentStatement;
    use fastdata_primitives::{Score, Sequence, StreamId, TrustProvider};
    use frame_support::{
        pallet_prelude::*,
        traits::{fungible, OnUnbalanced},
        weights::WeightMeter,
    };
    use frame_system::pallet_prelude::*;
    use sp_core::H256;
    use sp_runtime::{
        traits::{BlockNumberProvider, IdentifyAccount, StaticLookup, Verify},
        Perbill,
    };

    /// Account lookup source of a runtime.
    pub type AccountIdLookupOf<T> = <<T as frame_system::Config>::Lookup as StaticLookup>::Source;

    #[pallet::pallet]
    pub struct Pallet<T>(_);

    /// Reasons for which this pallet holds funds.
    #[pallet::composite_enum]
    pub enum HoldReason {
        /// The stake of a registered storage operator.
        OperatorStake,
        /// Funds a stream's seller set aside to pay its operators for hosting.
        Hosting,
    }

    #[pallet::config]
    pub trait Config: frame_system::Config {
        /// The currency in which stakes are held and slashed.
        type Currency: fungible::Inspect<Self::AccountId>
            + fungible::Mutate<Self::AccountId>
            + fungible::MutateHold<Self::AccountId, Reason = Self::RuntimeHoldReason>
            + fungible::BalancedHold<Self::AccountId>;

        /// The overarching hold reason.
        type RuntimeHoldReason: From<HoldReason>;

        /// Trust scores of operators, used to weight the assignment.
        type Trust: TrustProvider<Self::AccountId>;

        /// The block number of the randomness source that [`Pallet::draw_pending`] is given:
        /// the relay parent's on a parachain (`RelaychainDataProvider`).
        type RandomnessClock: BlockNumberProvider<BlockNumber = BlockNumberFor<Self>>;

        /// Blocks of the randomness source between a stream's assignment request and the
        /// draw: the draw uses an output that became known at least this much later than the
        /// newest one when the request was made.
        #[pallet::constant]
        type AssignmentDelay: Get<BlockNumberFor<Self>>;

        /// Maximum number of streams waiting for their draw. Bounds the work of one
        /// [`Pallet::draw_pending`]; a registration finding the queue full is refused and can
        /// be retried in the next block.
        #[pallet::constant]
        type MaxPendingAssignments: Get<u32>;

        /// Origin that may slash operators (governance).
        type SlashOrigin: EnsureOrigin<Self::RuntimeOrigin>;

        /// Receives slashed stake (e.g. the treasury); `()` burns it.
        type OnSlash: OnUnbalanced<fungible::Credit<Self::AccountId, Self::Currency>>;

        /// Signature of an operator's segment statements (its account key).
        type StatementSignature: Verify<Signer = Self::StatementSigner> + Parameter;

        /// Signer of [`Config::StatementSignature`]; identifies the operator's account.
        type StatementSigner: IdentifyAccount<AccountId = Self::AccountId>;

        /// Share of its stake an operator loses for each proven equivocation.
        #[pallet::constant]
        type EquivocationSlash: Get<Perbill>;

        /// Minimum stake of an active operator. Also pays for the operator's storage.
        #[pallet::constant]
        type MinStake: Get<BalanceOf<Self>>;

        /// Blocks between [`Pallet::leave`] and the earliest [`Pallet::withdraw`]; the stake
        /// stays slashable meanwhile.
        #[pallet::constant]
        type UnbondingPeriod: Get<BlockNumberFor<Self>>;

        /// An active operator without a heartbeat for more than this many blocks is suspended.
        #[pallet::constant]
        type HeartbeatTimeout: Get<BlockNumberFor<Self>>;

        /// Maximum number of registered operators (active or not).
        #[pallet::constant]
        type MaxOperators: Get<u32>;

        /// Maximum number of operators per stream; also the most replicas an offer may ask for
        /// (`pallet-offers` reads it through
        /// [`fastdata_primitives::OperatorProvider::max_replication`]).
        #[pallet::constant]
        type MaxReplication: Get<u32>;

        /// Maximum number of streams one operator hosts; full operators are skipped by the
        /// assignment. Bounds the work of reassigning an operator's streams.
        #[pallet::constant]
        type MaxStreamsPerOperator: Get<u32>;

        /// Maximum length of an endpoint URL in bytes.
        #[pallet::constant]
        type MaxUrlLen: Get<u32>;

        /// Maximum number of operators whose heartbeat `on_idle` checks per block.
        #[pallet::constant]
        type MaxLivenessChecksPerBlock: Get<u32>;

        /// Cap of the trust score counted in the assignment weight
        /// `stake × (SCORE_ONE + min(trust, MaxTrustBoost))`.
        #[pallet::constant]
        type MaxTrustBoost: Get<Score>;

        /// Blocks for which an operator storing one MB of a stream earns
        /// [`Config::HostingPricePerMb`]. An attestation pays for at most one period since
        /// the operator's previous one.
        #[pallet::constant]
        type HostingPeriod: Get<BlockNumberFor<Self>>;

        /// What a stream's seller pays each of its operators per MB stored (at most the
        /// stream's quota) per [`Config::HostingPeriod`].
        #[pallet::constant]
        type HostingPricePerMb: Get<BalanceOf<Self>>;

        /// Largest hosting quota of one stream, in MB.
        #[pallet::constant]
        type MaxQuotaMb: Get<u32>;

        /// Weights of this pallet's calls and hooks.
        type WeightInfo: WeightInfo;

        /// Benchmark setup from the runtime.
        #[cfg(feature = "runtime-benchmarks")]
        type BenchmarkHelper: BenchmarkHelper<Self::AccountId, Self::StatementSignature>;
    }

    /// Registered operators.
    #[pallet::storage]
    pub type Operators<T: Config> =
        StorageMap<_, Blake2_128Concat, T::AccountId, OperatorInfoOf<T>>;

    /// Number of registered operators (at most [`Config::MaxOperators`]).
    #[pallet::storage]
    pub type OperatorCount<T: Config> = StorageValue<_, u32, ValueQuery>;

    /// The active operators with their stake and number of hosted streams: the candidates
    /// for assignment and liveness checks. One compact value, so an assignment reads it once
    /// instead of every operator's record.
    #[pallet::storage]
    pub type ActiveOperators<T: Config> =
        StorageValue<_, BoundedVec<ActiveOperatorOf<T>, T::MaxOperators>, ValueQuery>;

    /// The operators assigned to each stream. Paid for by the stream deposit in
    /// `pallet-offers`, removed when the stream is released.
    #[pallet::storage]
    pub type Assignments<T: Config> = StorageMap<_, Blake2_128Concat, StreamId, AssignmentOf<T>>;

    /// The streams assigned to each operator (reverse index of [`Assignments`]); at most
    /// [`Config::MaxStreamsPerOperator`] per operator, counted in [`ActiveOperators`].
    #[pallet::storage]
    pub type StreamsOf<T: Config> =
        StorageDoubleMap<_, Blake2_128Concat, T::AccountId, Blake2_128Concat, StreamId, ()>;

    /// The latest attestation of each assigned operator for a stream: its head (segments
    /// stored from sequence 0), the bytes it stores and when. Paid for by the stream
    /// deposit in `pallet-offers`, removed when the stream is released.
    #[pallet::storage]
    pub type StreamHeads<T: Config> = StorageMap<
        _,
        Blake2_128Concat,
        StreamId,
        BoundedVec<HeadRecordOf<T>, T::MaxReplication>,
        ValueQuery,
    >;

    /// The hosting quota and funds of each requested or assigned stream. Created with the
    /// request (paid for by the stream deposit in `pallet-offers`), removed with its
    /// remaining funds returned when the stream is released.
    #[pallet::storage]
    pub type Hosting<T: Config> = StorageMap<_, Blake2_128Concat, StreamId, HostingAccountOf<T>>;

    /// Operators that stopped being active (paused, suspended or leaving) while hosting
    /// streams, with the randomness source's block number from which their replacements may
    /// be drawn, oldest first. They stay assigned to their streams until then.
    #[pallet::storage]
    pub type PendingReassignments<T: Config> =
        StorageValue<_, BoundedVec<(T::AccountId, BlockNumberFor<T>), T::MaxOperators>, ValueQuery>;

    /// Streams waiting for their operators to be drawn, oldest first.
    #[pallet::storage]
    pub type PendingAssignments<T: Config> =
        StorageValue<_, BoundedVec<PendingAssignmentOf<T>, T::MaxPendingAssignments>, ValueQuery>;

    /// Streams on which an operator's equivocation was reported, with the block of the
    /// report: an operator is slashed once per stream, so one seller cannot compound slashes
    /// through the segments of one stream. Entries grow only with slashes of a non-zero
    /// amount.
    #[pallet::storage]
    pub type Equivocations<T: Config> =
        StorageMap<_, Blake2_128Concat, (T::AccountId, StreamId), BlockNumberFor<T>>;

    /// Position in [`ActiveOperators`] where the next liveness check starts.
    #[pallet::storage]
    pub type LivenessCursor<T: Config> = StorageValue<_, u32, ValueQuery>;

    #[pallet::event]
    #[pallet::generate_deposit(pub(super) fn deposit_event)]
    pub enum Event<T: Config> {
        /// An operator registered and became active.
        Registered {
            /// The operator.
            operator: T::AccountId,
            /// Stake held.
            stake: BalanceOf<T>,
            /// Broker endpoint.
            broker_url: UrlOf<T>,
            /// HTTP endpoint.
            http_url: UrlOf<T>,
            /// Price per MB served.
            price_per_mb: BalanceOf<T>,
        },
        /// An operator changed its endpoints or price (the new values).
        Updated {
            /// The operator.
            operator: T::AccountId,
            /// Broker endpoint.
            broker_url: UrlOf<T>,
            /// HTTP endpoint.
            http_url: UrlOf<T>,
            /// Price per MB served.
            price_per_mb: BalanceOf<T>,
        },
        /// An operator added stake.
        StakeBonded {
            /// The operator.
            operator: T::AccountId,
            /// Stake added.
            amount: BalanceOf<T>,
            /// Total stake now held.
            stake: BalanceOf<T>,
        },
        /// An operator paused; its streams wait for replacements.
        Paused {
            /// The operator.
            operator: T::AccountId,
        },
        /// A paused or suspended operator became active again.
        Resumed {
            /// The operator.
            operator: T::AccountId,
        },
        /// An operator started leaving; its streams wait for replacements.
        LeaveStarted {
            /// The operator.
            operator: T::AccountId,
            /// First block at which the stake can be withdrawn.
            unbonding_until: BlockNumberFor<T>,
        },
        /// A departed operator withdrew its stake; its record was removed.
        Withdrawn {
            /// The operator.
            operator: T::AccountId,
            /// Stake released.
            stake: BalanceOf<T>,
        },
        /// An operator sent a heartbeat.
        HeartbeatReceived {
            /// The operator.
            operator: T::AccountId,
        },
        /// An operator was suspended; its streams wait for replacements.
        Suspended {
            /// The operator.
            operator: T::AccountId,
            /// Why.
            reason: SuspensionReason,
        },
        /// An operator's stake was slashed.
        Slashed {
            /// The operator.
            operator: T::AccountId,
            /// Amount taken from the stake.
            amount: BalanceOf<T>,
            /// Hash of the evidence (e.g. the conflicting signed commitments).
            evidence: H256,
        },
        /// Two conflicting statements of an operator about one segment were reported; a
        /// [`Event::Slashed`] follows.
        EquivocationReported {
            /// The operator that signed both.
            operator: T::AccountId,
            /// Who reported them.
            reporter: T::AccountId,
            /// The stream of the segment.
            stream: StreamId,
            /// The segment's sequence number.
            sequence: Sequence,
        },
        /// A new stream waits for its operators to be drawn.
        AssignmentRequested {
            /// The stream.
            stream: StreamId,
            /// Number of operators requested.
            replication: u32,
            /// The randomness source's block number from which the draw may happen.
            draw_after: BlockNumberFor<T>,
        },
        /// No active operator had room when a pending stream's operators were drawn; the
        /// stream is not hosted (its seller closes it to recover the deposit).
        AssignmentFailed {
            /// The stream.
            stream: StreamId,
        },
        /// Operators were assigned to a new stream (fewer than requested only if operators
        /// left between the request and the draw).
        StreamAssigned {
            /// The stream.
            stream: StreamId,
            /// The operators hosting it.
            operators: AssignmentOf<T>,
        },
        /// An operator stopped being active while hosting streams: it keeps them until its
        /// replacements are drawn.
        ReassignmentRequested {
            /// The operator.
            operator: T::AccountId,
            /// Number of streams it hosts.
            streams: u32,
            /// The randomness source's block number from which the draw may happen.
            draw_after: BlockNumberFor<T>,
        },
        /// An operator was replaced on a stream. The new operator's daemon must backfill the
        /// stream from `sources`.
        StreamReassigned {
            /// The stream.
            stream: StreamId,
            /// The operator that stopped hosting it.
            from: T::AccountId,
            /// The operator that now hosts it, or `None` if no active operator had room (the
            /// stream runs with one replica less).
            to: Option<T::AccountId>,
            /// Operators still holding the stream's data, to backfill from.
            sources: AssignmentOf<T>,
        },
        /// The assignment of a closed stream was removed.
        StreamReleased {
            /// The stream.
            stream: StreamId,
        },
        /// An operator attested the heads of streams it hosts.
        HeadsAttested {
            /// The operator.
            operator: T::AccountId,
            /// Number of streams attested.
            streams: u32,
        },
        /// A stream in an operator's attestation was skipped: it is no longer assigned to
        /// the operator (released or reassigned since the attestation was signed).
        HeadSkipped {
            /// The operator.
            operator: T::AccountId,
            /// The stream.
            stream: StreamId,
        },
        /// A stream's seller set its hosting quota and/or added funds.
        HostingFunded {
            /// The stream.
            stream: StreamId,
            /// The payer.
            payer: T::AccountId,
            /// The quota now, in MB.
            quota_mb: u32,
            /// Funds added.
            added: BalanceOf<T>,
            /// Funds now on hold for the stream.
            funds: BalanceOf<T>,
        },
        /// An operator was paid for hosting a stream since its previous attestation.
        HostingPaid {
            /// The stream.
            stream: StreamId,
            /// The operator.
            operator: T::AccountId,
            /// Amount moved from the payer's hosting funds to the operator.
            amount: BalanceOf<T>,
            /// Bytes paid for: the lower median of the operators' attested stored bytes,
            /// capped at the quota.
            bytes: u64,
            /// Blocks paid for (at most one hosting period).
            blocks: BlockNumberFor<T>,
        },
        /// A stream's hosting funds ran out: its operators refuse new segments until the
        /// seller adds funds.
        HostingExhausted {
            /// The stream.
            stream: StreamId,
        },
        /// A released stream's remaining hosting funds went back to the payer.
        HostingRefunded {
            /// The stream.
            stream: StreamId,
            /// The payer.
            payer: T::AccountId,
            /// Amount released.
            amount: BalanceOf<T>,
        },
    }

    #[pallet::error]
    pub enum Error<T> {
        /// The account is already a registered operator.
        AlreadyRegistered,
        /// The account is not a registered operator.
        NotRegistered,
        /// The stake is below the minimum stake: bond more.
        StakeTooLow,
        /// The broker endpoint is not a valid `mqtt://` or `mqtts://` URL without user info.
        InvalidBrokerUrl,
        /// The HTTP endpoint is not a valid `http://` or `https://` URL without user info.
        InvalidHttpUrl,
        /// The maximum number of operators is registered.
        TooManyOperators,
        /// The operator is not active.
        NotActive,
        /// The operator is neither paused nor suspended, so there is nothing to resume.
        NotResumable,
        /// The operator is leaving; only `withdraw` is possible.
        OperatorLeaving,
        /// The operator is suspended: resume first.
        OperatorSuspended,
        /// The operator has not called `leave`.
        NotLeaving,
        /// The unbonding period has not passed yet.
        StillUnbonding,
        /// The amount must be greater than zero.
        ZeroAmount,
        /// The update changes nothing.
        NothingToUpdate,
        /// The replication factor is zero or above the maximum.
        InvalidReplication,
        /// The stream already has operators assigned or requested.
        StreamAlreadyAssigned,
        /// Too many streams wait for their operators to be drawn: retry in the next block.
        AssignmentQueueFull,
        /// Fewer active operators with room than the replication factor.
        NotEnoughOperators,
        /// An attestation names no stream.
        NoHeads,
        /// The caller is assigned to none of the streams it attests.
        NotAssigned,
        /// An attested head is lower than the caller's previous attestation for the stream.
        HeadDecreased,
        /// The stream has no hosting account (it is not requested or assigned).
        NoHosting,
        /// Only the stream's payer (its seller) funds its hosting.
        NotPayer,
        /// The quota is above the runtime's maximum.
        QuotaTooLarge,
        /// The operator still hosts streams whose replacements are not drawn yet: retry in a
        /// few blocks.
        StillHosting,
        /// The quota is below the bytes an operator of the stream attests it stores.
        QuotaBelowStored,
        /// The funds do not pay for every replica storing the whole quota for a hosting
        /// period: add funds or lower the quota.
        HostingUnderfunded,
        /// The two statements are not about the same segment, or name the same content.
        NoConflict,
        /// A statement is not signed by the reported operator on this chain.
        BadStatementSignature,
        /// An equivocation of this operator on this stream was already reported.
        AlreadyReported,
        /// The operator has no stake left to slash.
        NothingToSlash,
    }

    #[pallet::hooks]
    impl<T: Config> Hooks<BlockNumberFor<T>> for Pallet<T> {
        fn on_idle(now: BlockNumberFor<T>, remaining_weight: Weight) -> Weight {
            let mut meter = WeightMeter::with_limit(remaining_weight);
            Self::check_liveness(now, &mut meter);
            meter.consumed()
        }

        fn integrity_test() {
            assert!(
                T::MaxReplication::get() > 0,
                "MaxReplication must be at least 1"
            );
            assert!(
                T::MaxOperators::get() > 0,
                "MaxOperators must be at least 1"
            );
            assert!(T::MaxUrlLen::get() >= 16, "MaxUrlLen must fit a URL");
            assert!(
                !T::HostingPeriod::get().is_zero(),
                "HostingPeriod must be at least 1"
            );
            assert!(
                T::MaxPendingAssignments::get() > 0,
                "MaxPendingAssignments must be at least 1"
            );
        }

        #[cfg(feature = "try-runtime")]
        fn try_state(_n: BlockNumberFor<T>) -> Result<(), sp_runtime::TryRuntimeError> {
            Self::do_try_state()
        }
    }

    #[pallet::call(weight = <T as Config>::WeightInfo)]
    impl<T: Config> Pallet<T> {
        /// Registers the caller as an active storage operator, holding `stake` (at least
        /// [`Config::MinStake`]) from its account.
        ///
        /// `broker_url` must be an `mqtt://` or `mqtts://` URL and `http_url` an `http://` or
        /// `https://` URL, both without user info. Emits [`Event::Registered`].
        #[pallet::call_index(0)]
        pub fn register(
            origin: OriginFor<T>,
            stake: BalanceOf<T>,
            broker_url: UrlOf<T>,
            http_url: UrlOf<T>,
            price_per_mb: BalanceOf<T>,
        ) -> DispatchResult {
            let who = ensure_signed(origin)?;
            Self::do_register(who, stake, broker_url, http_url, price_per_mb)
        }

        /// Changes the caller's endpoints and/or price; `None` keeps the current value.
        /// The new price applies to data served from now on. Emits [`Event::Updated`].
        #[pallet::call_index(1)]
        pub fn update(
            origin: OriginFor<T>,
            broker_url: Option<UrlOf<T>>,
            http_url: Option<UrlOf<T>>,
            price_per_mb: Option<BalanceOf<T>>,
        ) -> DispatchResult {
            let who = ensure_signed(origin)?;
            Self::do_update(who, broker_url, http_url, price_per_mb)
        }

        /// Adds `amount` to the caller's held stake (e.g. after a slash, before resuming).
        /// Emits [`Event::StakeBonded`].
        #[pallet::call_index(2)]
        pub fn bond_extra(origin: OriginFor<T>, amount: BalanceOf<T>) -> DispatchResult {
            let who = ensure_signed(origin)?;
            Self::do_bond_extra(who, amount)
        }

        /// Pauses the caller: it takes no new streams, and replacements for its current
        /// streams are drawn a few blocks later (see [`Event::ReassignmentRequested`]). Emits
        /// [`Event::Paused`].
        #[pallet::call_index(3)]
        #[pallet::weight(T::WeightInfo::pause(T::MaxStreamsPerOperator::get()))]
        pub fn pause(origin: OriginFor<T>) -> DispatchResultWithPostInfo {
            let who = ensure_signed(origin)?;
            let moved = Self::do_pause(who)?;
            Ok(Some(T::WeightInfo::pause(moved)).into())
        }

        /// Makes a paused or suspended caller active again (stake must be at least the
        /// minimum); starts a fresh heartbeat window. Emits [`Event::Resumed`].
        #[pallet::call_index(4)]
        pub fn resume(origin: OriginFor<T>) -> DispatchResult {
            let who = ensure_signed(origin)?;
            Self::do_resume(who)
        }

        /// Starts leaving: the caller's streams get replacements drawn a few blocks later and
        /// its stake stays held (and
        /// slashable) for [`Config::UnbondingPeriod`]. Emits [`Event::LeaveStarted`].
        #[pallet::call_index(5)]
        #[pallet::weight(T::WeightInfo::leave(T::MaxStreamsPerOperator::get()))]
        pub fn leave(origin: OriginFor<T>) -> DispatchResultWithPostInfo {
            let who = ensure_signed(origin)?;
            let moved = Self::do_leave(who)?;
            Ok(Some(T::WeightInfo::leave(moved)).into())
        }

        /// After the unbonding period, releases the caller's stake and removes its record.
        /// Emits [`Event::Withdrawn`].
        #[pallet::call_index(6)]
        pub fn withdraw(origin: OriginFor<T>) -> DispatchResult {
            let who = ensure_signed(origin)?;
            Self::do_withdraw(who)
        }

        /// Records that the caller's daemon is alive. Active operators must send one at least
        /// every [`Config::HeartbeatTimeout`] blocks or be suspended; each one also refreshes
        /// the trust score their assignment weight counts. Emits
        /// [`Event::HeartbeatReceived`].
        #[pallet::call_index(7)]
        pub fn heartbeat(origin: OriginFor<T>) -> DispatchResult {
            let who = ensure_signed(origin)?;
            Self::do_heartbeat(who)
        }

        /// Slashes up to `amount` of `operator`'s stake for misbehaviour proven by the
        /// evidence whose hash is `evidence`. Only [`Config::SlashOrigin`]. The slashed funds
        /// go to [`Config::OnSlash`]. If the remaining stake is below the minimum, an active
        /// or paused operator is suspended. Emits [`Event::Slashed`].
        #[pallet::call_index(8)]
        #[pallet::weight(T::WeightInfo::slash(T::MaxStreamsPerOperator::get()))]
        pub fn slash(
            origin: OriginFor<T>,
            operator: AccountIdLookupOf<T>,
            amount: BalanceOf<T>,
            evidence: H256,
        ) -> DispatchResultWithPostInfo {
            T::SlashOrigin::ensure_origin(origin)?;
            let operator = T::Lookup::lookup(operator)?;
            let moved = Self::do_slash(operator, amount, evidence)?;
            Ok(Some(T::WeightInfo::slash(moved)).into())
        }

        /// Attests, for each listed `(stream, head, stored_bytes)` the caller hosts, its
        /// head (the number of segments it stores contiguously from sequence 0, which may
        /// not decrease) and the bytes it stores. The chain's head of a stream is the lower
        /// median of its assigned operators' latest attestations; the escrow pays stream
        /// periods by it and refuses receipts beyond it. Each attestation after the first
        /// pays the caller for hosting since its previous one (see [`Pallet::fund_hosting`]).
        /// A stream no longer assigned to the caller is skipped ([`Event::HeadSkipped`]).
        /// Emits [`Event::HeadsAttested`], and [`Event::HostingPaid`] /
        /// [`Event::HostingExhausted`] per stream paid.
        #[pallet::call_index(9)]
        #[pallet::weight(T::WeightInfo::attest_heads(heads.len() as u32))]
        pub fn attest_heads(
            origin: OriginFor<T>,
            heads: BoundedVec<(StreamId, Sequence, u64), T::MaxStreamsPerOperator>,
        ) -> DispatchResult {
            let who = ensure_signed(origin)?;
            Self::do_attest_heads(who, heads)
        }

        /// Sets the hosting quota of the caller's stream to `quota_mb` MB (at most
        /// [`Config::MaxQuotaMb`]) and adds `amount` to its hosting funds, held from the
        /// caller. Each operator of the stream stores at most the quota and is paid
        /// [`Config::HostingPricePerMb`] per MB it stores (the lower median of the
        /// operators' attested bytes, capped at the quota) per [`Config::HostingPeriod`],
        /// from these funds; when they run out the operators refuse new segments. What is
        /// left returns to the caller when the stream is released. Emits
        /// [`Event::HostingFunded`].
        #[pallet::call_index(10)]
        pub fn fund_hosting(
            origin: OriginFor<T>,
            stream: StreamId,
            quota_mb: u32,
            amount: BalanceOf<T>,
        ) -> DispatchResult {
            let who = ensure_signed(origin)?;
            Self::do_fund_hosting(who, stream, quota_mb, amount)
        }

        /// Reports two statements `operator` signed about the same segment naming different
        /// contents ([`fastdata_primitives::custody`]): proof that it served something other
        /// than what it stored. Anyone may report, once per operator and stream; the chain
        /// checks both signatures and slashes [`Config::EquivocationSlash`] of the operator's
        /// stake (to [`Config::OnSlash`]), suspending it if the rest is below the minimum. A
        /// valid report against an operator holding at least [`Config::MinStake`] costs the
        /// reporter no fee. Emits [`Event::EquivocationReported`] and [`Event::Slashed`].
        #[pallet::call_index(11)]
        #[pallet::weight(T::WeightInfo::report_equivocation(T::MaxStreamsPerOperator::get()))]
        pub fn report_equivocation(
            origin: OriginFor<T>,
            operator: AccountIdLookupOf<T>,
            first: (SegmentStatement, T::StatementSignature),
            second: (SegmentStatement, T::StatementSignature),
        ) -> DispatchResultWithPostInfo {
            let reporter = ensure_signed(origin)?;
            let operator = T::Lookup::lookup(operator)?;
            let (moved, staked) = Self::do_report_equivocation(reporter, operator, first, second)?;
            let pays = if staked { Pays::No } else { Pays::Yes };
            Ok((Some(T::WeightInfo::report_equivocation(moved)), pays).into())
        }
    }
}

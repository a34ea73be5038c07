//! # Escrow pallet
//!
//! Makes a FAST DATA trade fair for its three parties: the buyer pays only for what was
//! delivered, the seller is paid for what it delivered, and the storage operators are paid
//! for the bytes they served (DESIGN.md, "escrow").
//!
//! ## Life of a purchase
//!
//! 1. **Purchase** ([`Pallet::purchase`]). A buyer buys an offer: a batch window (the offer's
//!    `first..=last` segments, `periods = 1`) or `periods` periods of a live stream. The pallet
//!    applies the offer's rules — verified buyers only, verified-buyer discount, minimum trust
//!    score — checks the price against the buyer's `max_price`, holds the price
//!    ([`HoldReason::PurchasePrice`]) and a storage deposit ([`HoldReason::PurchaseDeposit`])
//!    from the buyer, snapshots the buyer's X25519 key-agreement key, and records the
//!    deadlines: keys by `start + KeyDeliveryPeriod`, access until `end` (`start + periods ·
//!    period` for a stream, `start + BatchAccessPeriod` for a batch). The seller must still
//!    be verified ([`Error::SellerNotVerified`]). A purchase made while it was runs on if its
//!    credential later expires or is revoked: the buyer paid for data it is owed, so keys,
//!    claims and settlement go on unchanged (and the buyer may still dispute).
//! 2. **Keys** ([`Pallet::deliver_keys`]). The seller seals `k_e ‖ k_m` of each epoch to the
//!    buyer's key (format: [`fastdata_primitives::sealed`]) and stores the bytes, paying a key
//!    deposit ([`HoldReason::KeyDeposit`]). For a stream the keys of the epoch current at
//!    purchase time activate the purchase, later epochs follow as the seller rotates; for a
//!    batch any epoch with an on-chain commitment activates it. Later epochs that do not come
//!    are a matter for a dispute ([`DisputeReason::KeysMissing`]). **No keys by the deadline**:
//!    anyone may call [`Pallet::refund_missing_keys`], and the pallet does it by itself in
//!    `on_idle`; the buyer gets the whole price back.
//! 3. **Receipts** ([`Pallet::claim`]). As data arrives the buyer signs cumulative receipts
//!    ([`fastdata_primitives::receipt::Receipt`], bound to this chain's genesis hash) for each
//!    operator serving it. An operator assigned to the stream (other than the buyer) claims
//!    with its latest receipt: the receipt must be signed by the buyer for this chain, name
//!    the claiming operator and this purchase, have a higher nonce than the last accepted
//!    one, acknowledge no lower sequence and no fewer bytes, and acknowledge only published
//!    data: `up_to_sequence` below the stream's attested head
//!    ([`OperatorProvider::stream_head`](fastdata_primitives::OperatorProvider::stream_head),
//!    the lower median of the assigned operators' attestations). The operator accrues
//!    `⌊Δbytes · price_per_mb / 10^6⌋` for the bytes not yet priced, at the price per MB it
//!    charged when the purchase was made (an operator assigned later: its current price,
//!    at most the highest agreed one); it is paid at settlement. An operator that has claimed once may keep
//!    claiming for the purchase after being reassigned; claims are accepted while the
//!    purchase is open (also while it awaits keys, at the operator's risk of a refund, and
//!    while disputed).
//! 4. **Settlement** ([`Pallet::settle`]) at the end of each stream period, or of the batch
//!    access period, once the claim grace period has passed; anyone may trigger it and
//!    `on_idle` does it by itself. The last settlement closes the purchase (`Settled`), which
//!    lets buyer and seller rate each other once in the trust pallet
//!    ([`SettledTrades`](fastdata_primitives::SettledTrades)).
//! 5. **Disputes** ([`Pallet::dispute`], [`Pallet::answer_dispute`],
//!    [`Pallet::resolve_dispute`]). Before the purchase is settled, the buyer may dispute it
//!    (e.g. the keys do not match the commitment), posting [`Config::DisputeDeposit`]. The
//!    remainder is frozen — no settlement — until [`Config::DisputeOrigin`] resolves it with
//!    a refund ratio, or [`Config::DisputePeriod`] blocks pass (for a stream, at most until
//!    two blocks before the first period boundary that would not fit in its list of heads,
//!    since nothing settles while disputed). A purchase is disputed at most once. The seller
//!    answers with a hash of its evidence. **Unresolved at the deadline**: if the seller never answered,
//!    the dispute is upheld in full (`r = 100 %`: the operators are paid what they earned,
//!    the rest goes back to the buyer); if it answered, the dispute lapses: the buyer's
//!    deposit goes back and the purchase resumes under the settlement rule, which pays only
//!    for what the buyer acknowledged. Either way a dispute ends, and no side can freeze the
//!    other's money for longer than the dispute period.
//! 6. **Reaping** ([`Pallet::reap`]). `RetentionPeriod` blocks after it closed, the purchase
//!    record, its sealed keys and claims are removed (by anyone, or by `on_idle`) and the
//!    deposits go back. Until then buyers can fetch their keys and both sides can rate.
//!
//! ## Settlement rule
//!
//! A purchase of price `P` has `N` periods (`N = 1` for a batch). Period `i` has the budget
//! `B = ⌊P / N⌋` for `i < N − 1`, and the last period gets everything still held (so rounding
//! dust ends there). Settling period `i`:
//!
//! 1. **Operators.** The cap is `C = ⌊s · B⌋` with `s =` [`Config::StorageShare`]. Each operator
//!    `o` accrued `a_o` since the previous settlement (its claims, priced at its
//!    `price_per_mb` at claim time). With `A = Σ a_o`: if `A ≤ C` each gets `a_o`, otherwise
//!    each gets `⌊a_o · C / A⌋`. Accrual above the cap is forfeited, not carried over. `O` is
//!    the total paid.
//! 2. **Delivered value `D`.** With `u` the highest sequence the buyer acknowledged to any
//!    operator by the settlement. Batch window `first..=last` of `L` segments:
//!    `D = ⌊B · c / L⌋` where `c = min(u, last) − first + 1` (0 if nothing at or after
//!    `first` was acknowledged). Stream period `i`, with `h_i` and `h_{i+1}` the attested
//!    stream heads recorded at its first and last block (`start + i · period` and
//!    `start + (i + 1) · period`): the period's data is the `n = h_{i+1} − h_i` segments
//!    published in it, and `D = ⌊B · a / n⌋` with `a = min(u + 1, h_{i+1}) − h_i` of them
//!    acknowledged (`D = 0` if nothing was published). So a period pays for its own data
//!    only: a receipt claimed after its settlement does not count for it, a burst in one
//!    period pays that period alone, and a seller that stops publishing is paid nothing for
//!    the periods after. `h_0` is the head at purchase: nothing published earlier is paid
//!    for. Heads are recorded by the agenda at each boundary (also while the purchase waits
//!    for keys or is disputed, up to [`MAX_PENDING_BOUNDARIES`] unsettled ones), never
//!    lower than the previous one; a boundary recorded late counts what was published
//!    until then. A stream offer's period must be at least `ClaimGracePeriod / (MAX_PENDING_BOUNDARIES − 2)`
//!    ([`Error::PeriodTooShort`]).
//! 3. **Seller.** Gross `G = max(D − O, 0)`: the operators' pay comes out of the delivered
//!    share, so with `s < 1` the seller keeps at least `D − s · B`. The protocol fee
//!    `F = ⌊f · G⌋` (`f =` [`Config::ProtocolFee`]) goes to [`Config::TreasuryAccount`], the
//!    seller gets `G − F`.
//! 4. **Buyer.** `R = B − O − G = B − max(D, O)` is released back to the buyer.
//!
//! So `O + (G − F) + F + R = B` for every period and the payouts, fees and refunds of a
//! purchase add up to exactly `P`. The rule is computed by the pure functions of [`split`]
//! ([`split::split_period`], [`split::split_upheld`]), tested on their own. A payout the recipient cannot receive (its account would
//! stay below the existential deposit) goes back to the buyer instead
//! ([`Event::PayoutRedirected`]).
//!
//! **Missed key deadline:** nothing can have been settled yet; all of `P` goes back to the
//! buyer. **Dispute upheld** with ratio `r`: of everything still held `H`, the operators are
//! paid as in step 1 with budget `H`; of `X = H − O` the buyer gets `⌊r · X⌋` back, the
//! seller `G = X − ⌊r · X⌋` minus the fee `⌊f · G⌋`, and the purchase is settled; the deposit
//! goes back to the buyer. **Dispute rejected** (`r = 0`): the deposit goes to the treasury
//! and the purchase resumes (overdue periods then settle, one per block).
//!
//! ## Automatic work
//!
//! Every stored purchase has one entry in the [`Agenda`], at the block it is next due (key
//! deadline + 1, the next period boundary of a stream, settlement of its next period, a
//! dispute's deadline, end of retention).
//! `on_idle` walks the agenda from [`AgendaCursor`] to the current block as far as the
//! remaining weight allows, one step of work per entry, so the work per block is bounded;
//! whatever does not fit is done in later blocks, and anyone can always do it earlier by
//! calling the extrinsic (free when it succeeds).
//!
//! ## Invariants (checked by `try_state` and by the property tests)
//!
//! - For every account, the amount on hold for [`HoldReason::PurchasePrice`] equals the sum of
//!   `ledger.held` over its open purchases (so held funds = Σ balances of open purchases).
//! - For every purchase, `held + operators + seller + fees + refunded = price`.
//! - Deposits on hold match the stored purchases, sealed keys and open disputes.
//!
//! [`DisputeReason::KeysMissing`]: fastdata_primitives::escrow::DisputeReason::KeysMissing

#![cfg_attr(not(feature = "std"), no_std)]

extern crate alloc;

mod features;
mod impls;
pub mod split;
pub mod types;
pub mod weights;

#[cfg(feature = "runtime-benchmarks")]
mod benchmarking;
#[cfg(test)]
mod mock;
#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

pub use pallet::*;
pub use types::*;
pub use weights::WeightInfo;

// FRAME's expansion of `#[pallet::pallet]`, `#[pallet::storage]` and `#[pallet::error]` calls
// `expect` on values it built itself; the pallet's own logic lives outside this module
// (`features/`, `impls.rs`), where `clippy::expect_used` stays on.
#[allow(clippy::expect_used)]
#[frame_support::pallet]
pub mod pallet {
    use super::*;
    use fastdata_primitives::{
        escrow::DisputeReason, receipt::Receipt, EpochIndex, IdentityProvider, OfferId,
        OfferProvider, OperatorProvider, PurchaseId, Sequence, TrustProvider,
    };
    use frame_support::{
        pallet_prelude::*,
        traits::{
            fungible::{Inspect, Mutate, MutateHold},
            EnsureOrigin,
        },
    };
    use frame_system::pallet_prelude::*;
    use sp_core::H256;
    use sp_runtime::{
        traits::{IdentifyAccount, Verify},
        Perbill,
    };

    /// The in-code storage version.
    const STORAGE_VERSION: StorageVersion = StorageVersion::new(0);

    #[pallet::pallet]
    #[pallet::storage_version(STORAGE_VERSION)]
    pub struct Pallet<T>(_);

    /// Helpers the benchmarks need from the runtime: accounts that can sign receipts, and
    /// offers, streams and operators in the other pallets.
    #[cfg(feature = "runtime-benchmarks")]
    pub trait BenchmarkHelper<T: Config> {
        /// A buyer account, distinct per `seed`, that can sign receipts with
        /// `T::ReceiptSignature`, has a DID with an X25519 key-agreement key, is verified and
        /// meets the minimum trust score of the offers made by [`Self::offer`].
        fn buyer(seed: u32) -> T::AccountId;
        /// `signer`'s signature of `message` (`signer` was returned by [`Self::buyer`]).
        fn sign(signer: &T::AccountId, message: &[u8]) -> T::ReceiptSignature;
        /// Lists an active offer of `seller` with payment `mode` and `price`, with every
        /// purchase rule enabled (verified buyers only, a discount, a minimum trust score
        /// the benchmark buyers meet), registers its open stream with key commitments for
        /// epochs `0..=epochs`, and registers and assigns `operators` (active, with a price
        /// per MB) with an attested stream head of `u64::MAX`, so that every receipt the
        /// benchmarks sign is within it. Returns the offer id.
        fn offer(
            seller: &T::AccountId,
            mode: fastdata_primitives::PaymentMode<BlockNumberFor<T>>,
            price: BalanceOf<T>,
            epochs: EpochIndex,
            operators: &[T::AccountId],
        ) -> OfferId;
        /// Makes `operator` (one of those given to [`Self::offer`]) an operator assigned to
        /// the stream of `offer`, replacing another one if the assignment is full, as a
        /// reassignment would: purchases outlive assignments, so a purchase can have claims
        /// from more operators than a stream has replicas.
        fn assign(offer: OfferId, operator: &T::AccountId);
    }

    /// Configuration of the escrow pallet.
    #[pallet::config]
    pub trait Config: frame_system::Config {
        /// The currency purchases are paid in; prices and deposits are held with it.
        type Currency: Inspect<Self::AccountId>
            + Mutate<Self::AccountId>
            + MutateHold<Self::AccountId, Reason = Self::RuntimeHoldReason>;

        /// The overarching hold reason.
        type RuntimeHoldReason: From<HoldReason>;

        /// Identity facts: verified buyers and their X25519 key-agreement keys (`pallet-did`).
        type Identity: IdentityProvider<Self::AccountId>;

        /// Trust scores, for the offers' minimum-trust rule (`pallet-trust`).
        type Trust: TrustProvider<Self::AccountId>;

        /// Offers, streams and epoch commitments (`pallet-offers`).
        type Offers: OfferProvider<Self::AccountId, BalanceOf<Self>, BlockNumberFor<Self>>;

        /// Operators: registration, price per MB, stream assignment (`pallet-operators`).
        type Operators: OperatorProvider<Self::AccountId, BalanceOf<Self>>;

        /// Signature of receipts by buyers (e.g. `MultiSignature`, with sr25519 keys).
        type ReceiptSignature: Verify<Signer = Self::ReceiptSigner> + Parameter + MaxEncodedLen;

        /// The public key behind a buyer's account (e.g. `MultiSigner`).
        type ReceiptSigner: IdentifyAccount<AccountId = Self::AccountId>;

        /// The origin that resolves disputes (e.g. a council or arbitration collective; root
        /// in development).
        type DisputeOrigin: EnsureOrigin<Self::RuntimeOrigin>;

        /// The account protocol fees and lost dispute deposits are paid to. It should exist
        /// (hold at least the existential deposit).
        type TreasuryAccount: Get<Self::AccountId>;

        /// Protocol fee: the share of the seller's gross pay that goes to the treasury.
        #[pallet::constant]
        type ProtocolFee: Get<Perbill>;

        /// The most of a period's budget that operators' pay can take.
        #[pallet::constant]
        type StorageShare: Get<Perbill>;

        /// Deposit held from the buyer for a purchase record, returned when it is reaped.
        #[pallet::constant]
        type PurchaseDeposit: Get<BalanceOf<Self>>;

        /// Deposit held from the seller for each sealed key, plus [`Config::KeyDepositPerByte`]
        /// per byte; returned when the purchase is reaped.
        #[pallet::constant]
        type KeyDepositBase: Get<BalanceOf<Self>>;

        /// Deposit per byte of a sealed key.
        #[pallet::constant]
        type KeyDepositPerByte: Get<BalanceOf<Self>>;

        /// Blocks a dispute may stay unresolved; then the rule of the pallet docs ends it.
        #[pallet::constant]
        type DisputePeriod: Get<BlockNumberFor<Self>>;

        /// Deposit held from a buyer who disputes; lost if the dispute is rejected.
        #[pallet::constant]
        type DisputeDeposit: Get<BalanceOf<Self>>;

        /// Blocks after the purchase within which the seller must deliver the first keys.
        #[pallet::constant]
        type KeyDeliveryPeriod: Get<BlockNumberFor<Self>>;

        /// Blocks after the end of a period during which operators may still claim receipts
        /// before the period can be settled.
        #[pallet::constant]
        type ClaimGracePeriod: Get<BlockNumberFor<Self>>;

        /// How long a batch buyer has to download its window.
        #[pallet::constant]
        type BatchAccessPeriod: Get<BlockNumberFor<Self>>;

        /// How long a closed purchase (and its sealed keys) stays on chain before it is reaped.
        #[pallet::constant]
        type RetentionPeriod: Get<BlockNumberFor<Self>>;

        /// Most stream periods in one purchase.
        #[pallet::constant]
        type MaxPeriods: Get<u32>;

        /// Most epochs whose keys can be stored for one purchase.
        #[pallet::constant]
        type MaxEpochsPerPurchase: Get<u32>;

        /// Most operators that can claim for one purchase.
        #[pallet::constant]
        type MaxOperatorsPerPurchase: Get<u32>;

        /// Longest sealed key accepted (at least
        /// [`SEALED_KEY_LEN_V1`](fastdata_primitives::sealed::SEALED_KEY_LEN_V1)).
        #[pallet::constant]
        type MaxSealedKeyLen: Get<u32>;

        /// Weights of the calls, from the benchmarks.
        type WeightInfo: WeightInfo;

        /// Helpers for the benchmarks.
        #[cfg(feature = "runtime-benchmarks")]
        type BenchmarkHelper: BenchmarkHelper<Self>;
    }

    /// Why the pallet holds funds.
    #[pallet::composite_enum]
    pub enum HoldReason {
        /// The price of an open purchase, held from the buyer until it is paid out or
        /// refunded.
        PurchasePrice,
        /// The storage deposit of a purchase record, held from the buyer until it is reaped.
        PurchaseDeposit,
        /// The storage deposit of sealed keys, held from the seller until the purchase is
        /// reaped.
        KeyDeposit,
        /// A buyer's dispute deposit, held until the dispute is resolved.
        DisputeDeposit,
    }

    /// The id the next purchase gets.
    #[pallet::storage]
    pub type NextPurchaseId<T> = StorageValue<_, PurchaseId, ValueQuery>;

    /// Purchases by id: open ones and closed ones within the retention period.
    #[pallet::storage]
    pub type Purchases<T: Config> = StorageMap<_, Twox64Concat, PurchaseId, PurchaseOf<T>>;

    /// Index of stored purchases by buyer.
    #[pallet::storage]
    pub type PurchasesByBuyer<T: Config> = StorageDoubleMap<
        _,
        Blake2_128Concat,
        T::AccountId,
        Twox64Concat,
        PurchaseId,
        (),
        OptionQuery,
    >;

    /// Index of stored purchases by offer.
    #[pallet::storage]
    pub type PurchasesByOffer<T: Config> =
        StorageDoubleMap<_, Twox64Concat, OfferId, Twox64Concat, PurchaseId, (), OptionQuery>;

    /// Per offer, the block until which its purchases need the stream hosted (the latest
    /// access end plus [`Config::ClaimGracePeriod`]); read by `pallet-offers` when the seller
    /// closes the stream, removed with the offer.
    #[pallet::storage]
    pub type OfferNeededUntil<T: Config> =
        StorageMap<_, Twox64Concat, OfferId, BlockNumberFor<T>, OptionQuery>;

    /// Sealed epoch keys by purchase and epoch (see [`fastdata_primitives::sealed`]).
    #[pallet::storage]
    pub type SealedKeys<T: Config> = StorageDoubleMap<
        _,
        Twox64Concat,
        PurchaseId,
        Twox64Concat,
        EpochIndex,
        BoundedVec<u8, T::MaxSealedKeyLen>,
        OptionQuery,
    >;

    /// Operators' claims by purchase and operator: last receipt accepted, accrued and paid pay.
    #[pallet::storage]
    pub type OperatorClaims<T: Config> = StorageDoubleMap<
        _,
        Twox64Concat,
        PurchaseId,
        Blake2_128Concat,
        T::AccountId,
        OperatorClaimOf<T>,
        OptionQuery,
    >;

    /// Purchases due for automatic work (refund, settlement, reaping), by block. Each stored
    /// purchase has at most one entry, at the block recorded in its `scheduled_at`.
    #[pallet::storage]
    pub type Agenda<T: Config> = StorageDoubleMap<
        _,
        Twox64Concat,
        BlockNumberFor<T>,
        Twox64Concat,
        PurchaseId,
        (),
        OptionQuery,
    >;

    /// The first agenda block `on_idle` has not finished; `None` until the agenda is used.
    #[pallet::storage]
    pub type AgendaCursor<T: Config> = StorageValue<_, BlockNumberFor<T>, OptionQuery>;

    /// Events of the escrow pallet.
    #[pallet::event]
    #[pallet::generate_deposit(pub(super) fn deposit_event)]
    pub enum Event<T: Config> {
        /// A buyer bought an offer; the price is held until settlement.
        Purchased {
            /// The new purchase.
            purchase: PurchaseId,
            /// The offer bought.
            offer: OfferId,
            /// The buyer.
            buyer: T::AccountId,
            /// The seller.
            seller: T::AccountId,
            /// Price held (after any verified-buyer discount).
            price: BalanceOf<T>,
            /// Storage deposit held.
            deposit: BalanceOf<T>,
            /// Periods bought (1 for a batch).
            periods: u32,
            /// First block after access.
            access_end: BlockNumberFor<T>,
            /// Last block for the first keys.
            key_deadline: BlockNumberFor<T>,
        },
        /// The seller put the sealed keys of an epoch on chain for a purchase.
        KeysDelivered {
            /// The purchase.
            purchase: PurchaseId,
            /// The epoch.
            epoch: EpochIndex,
            /// Key deposit held from the seller.
            deposit: BalanceOf<T>,
        },
        /// The first keys arrived; the purchase is active.
        PurchaseActivated {
            /// The purchase.
            purchase: PurchaseId,
        },
        /// The key deadline passed without keys; the buyer got the whole price back.
        RefundedForMissingKeys {
            /// The purchase.
            purchase: PurchaseId,
            /// The buyer.
            buyer: T::AccountId,
            /// Amount released to the buyer.
            amount: BalanceOf<T>,
        },
        /// An operator claimed with a receipt; its pay accrued.
        ReceiptClaimed {
            /// The purchase.
            purchase: PurchaseId,
            /// The operator.
            operator: T::AccountId,
            /// Sequence acknowledged by the buyer.
            up_to_sequence: Sequence,
            /// Cumulative bytes acknowledged.
            bytes: u64,
            /// Pay accrued by this claim.
            accrued: BalanceOf<T>,
        },
        /// An operator was paid its accrued pay at settlement.
        OperatorPaid {
            /// The purchase.
            purchase: PurchaseId,
            /// The operator.
            operator: T::AccountId,
            /// Amount paid.
            amount: BalanceOf<T>,
        },
        /// A payout could not be received (account below the existential deposit) and went
        /// back to the buyer.
        PayoutRedirected {
            /// The purchase.
            purchase: PurchaseId,
            /// The intended recipient.
            intended: T::AccountId,
            /// Amount released to the buyer instead.
            amount: BalanceOf<T>,
        },
        /// A period was settled.
        PeriodSettled {
            /// The purchase.
            purchase: PurchaseId,
            /// Index of the period (0-based).
            period: u32,
            /// Paid to operators.
            operators: BalanceOf<T>,
            /// Paid to the seller.
            seller: BalanceOf<T>,
            /// Paid to the treasury.
            fee: BalanceOf<T>,
            /// Released to the buyer.
            refunded: BalanceOf<T>,
        },
        /// The purchase is settled; buyer and seller may rate each other.
        PurchaseSettled {
            /// The purchase.
            purchase: PurchaseId,
            /// What the buyer paid in the end (price minus refunds).
            value: BalanceOf<T>,
        },
        /// The buyer disputed the purchase; its remainder is frozen.
        DisputeOpened {
            /// The purchase.
            purchase: PurchaseId,
            /// Why.
            reason: DisputeReason,
            /// Hash of off-chain evidence.
            evidence: Option<H256>,
            /// Deposit held from the buyer.
            deposit: BalanceOf<T>,
        },
        /// The seller answered a dispute with evidence.
        DisputeAnswered {
            /// The purchase.
            purchase: PurchaseId,
            /// Hash of the seller's off-chain evidence.
            evidence: H256,
        },
        /// A dispute reached its deadline unresolved. Unanswered, it was upheld in full (a
        /// [`Event::DisputeUpheld`] follows); answered, it lapsed: the buyer's deposit went
        /// back and the purchase resumes.
        DisputeLapsed {
            /// The purchase.
            purchase: PurchaseId,
            /// The seller had answered.
            answered: bool,
        },
        /// The dispute origin rejected the dispute; the deposit went to the treasury and the
        /// purchase resumes.
        DisputeRejected {
            /// The purchase.
            purchase: PurchaseId,
            /// Deposit taken from the buyer.
            deposit: BalanceOf<T>,
        },
        /// The dispute origin upheld the dispute and settled the remainder.
        DisputeUpheld {
            /// The purchase.
            purchase: PurchaseId,
            /// Share of the remainder (after operators) refunded to the buyer.
            refund_ratio: Perbill,
            /// Paid to operators.
            operators: BalanceOf<T>,
            /// Paid to the seller.
            seller: BalanceOf<T>,
            /// Paid to the treasury.
            fee: BalanceOf<T>,
            /// Released to the buyer.
            refunded: BalanceOf<T>,
        },
        /// A closed purchase was removed after its retention period; deposits returned.
        PurchaseReaped {
            /// The purchase.
            purchase: PurchaseId,
            /// Storage deposit returned to the buyer.
            buyer_deposit: BalanceOf<T>,
            /// Key deposits returned to the seller.
            key_deposits: BalanceOf<T>,
        },
        /// Automatic work on a purchase failed and was rolled back; it is retried later (or
        /// earlier by the matching extrinsic, which reports the error).
        AutomaticWorkFailed {
            /// The purchase.
            purchase: PurchaseId,
            /// The error.
            error: DispatchError,
            /// Block of the automatic retry.
            retry_at: BlockNumberFor<T>,
        },
    }

    /// Errors of the escrow pallet.
    #[pallet::error]
    pub enum Error<T> {
        /// No offer with this id.
        UnknownOffer,
        /// The offer is retired and accepts no purchases.
        OfferInactive,
        /// Sellers cannot buy their own offers.
        OwnOffer,
        /// The offer has no registered stream yet.
        StreamNotRegistered,
        /// The offer's stream was closed by its seller.
        StreamClosed,
        /// The offer is for verified buyers only; get a credential from a registered issuer.
        BuyerNotVerified,
        /// The seller holds no valid credential any more (expired or revoked): its offers
        /// cannot be bought until it is verified again.
        SellerNotVerified,
        /// The buyer's trust score is below the offer's minimum.
        TrustScoreTooLow,
        /// The buyer's DID has no X25519 key-agreement key to seal keys to; add one first.
        NoKeyAgreementKey,
        /// Batch offers are bought with `periods = 1`; stream offers with 1..=`MaxPeriods`.
        InvalidPeriods,
        /// The offer's terms are unusable (empty window or zero-length period).
        InvalidOffer,
        /// The price overflows the balance type.
        PriceOverflow,
        /// The price is above the buyer's `max_price`.
        PriceAboveMaximum,
        /// A deadline of the purchase overflows the block number type.
        DeadlineOverflow,
        /// Not enough free balance for the price, deposit or key deposit.
        InsufficientBalance,
        /// Purchase ids are exhausted.
        NoMoreIds,
        /// No stored purchase with this id.
        UnknownPurchase,
        /// Only the seller of the purchase may do this.
        NotSeller,
        /// Only the buyer of the purchase may do this.
        NotBuyer,
        /// The purchase is settled or refunded.
        PurchaseClosed,
        /// The key deadline has passed; the purchase can only be refunded.
        KeyDeadlinePassed,
        /// The sealed keys are not in a known format (version byte and length).
        MalformedSealedKey,
        /// Keys of this epoch were already delivered for this purchase.
        EpochAlreadyDelivered,
        /// The epoch precedes the purchase's first epoch.
        EpochNotPurchased,
        /// The stream has no commitment for this epoch (not opened yet).
        UnknownEpoch,
        /// The purchase stores the maximum number of epoch keys.
        TooManyEpochs,
        /// The keys were delivered; there is nothing to refund for missing keys.
        KeysAlreadyDelivered,
        /// The key deadline has not passed yet.
        KeyDeadlineNotPassed,
        /// The purchase waits for its first keys.
        KeysNotDelivered,
        /// The receipt names another operator than the caller.
        ForeignReceipt,
        /// The receipt is not signed by the purchase's buyer.
        InvalidSignature,
        /// A buyer cannot claim operator pay on its own purchase (it would take the seller's
        /// share with receipts it signs itself).
        BuyerIsOperator,
        /// The caller is not assigned to the purchase's stream.
        NotAssignedOperator,
        /// The caller is not a registered operator.
        NotAnOperator,
        /// The maximum number of operators already claimed for this purchase.
        TooManyOperators,
        /// The receipt's nonce is not above the last accepted one.
        ReplayedReceipt,
        /// The receipt acknowledges a lower sequence or fewer bytes than already accepted.
        LowerReceipt,
        /// The receipt acknowledges nothing new.
        StaleReceipt,
        /// The receipt acknowledges a sequence at or beyond the stream's attested head: data
        /// that was not published (or not yet attested by the stream's operators).
        BeyondStreamHead,
        /// The offer's period is too short for the claim grace period: the boundaries before
        /// a period's settlement would not fit in a purchase.
        PeriodTooShort,
        /// The purchase is disputed; it is frozen until the dispute is resolved.
        PurchaseDisputed,
        /// The next period cannot be settled yet (its end plus the claim grace period).
        SettlementNotDue,
        /// The purchase is not disputed.
        NotDisputed,
        /// The purchase was disputed once already.
        AlreadyDisputed,
        /// The seller already answered this dispute.
        AlreadyAnswered,
        /// The dispute's deadline has passed.
        DisputeDeadlinePassed,
        /// The purchase is still open.
        PurchaseOpen,
        /// The retention period of the closed purchase has not passed.
        RetentionNotOver,
        /// No operator hosts the offer's stream: its operators are still being drawn (a few
        /// blocks after registration), or none could be.
        StreamNotHosted,
    }

    #[pallet::hooks]
    impl<T: Config> Hooks<BlockNumberFor<T>> for Pallet<T> {
        fn on_idle(now: BlockNumberFor<T>, remaining_weight: Weight) -> Weight {
            Self::process_agenda(now, remaining_weight)
        }

        fn integrity_test() {
            assert!(
                T::MaxSealedKeyLen::get() as usize
                    >= fastdata_primitives::sealed::SEALED_KEY_LEN_V1,
                "MaxSealedKeyLen must fit a version-1 sealed key"
            );
            assert!(T::MaxPeriods::get() > 0, "MaxPeriods must be positive");
            assert!(
                !T::DisputePeriod::get().is_zero(),
                "DisputePeriod must be positive (the seller needs time to answer)"
            );
            assert!(
                T::MaxEpochsPerPurchase::get() > 0,
                "MaxEpochsPerPurchase must be positive"
            );
            assert!(
                T::MaxOperatorsPerPurchase::get() > 0,
                "MaxOperatorsPerPurchase must be positive"
            );
        }

        #[cfg(feature = "try-runtime")]
        fn try_state(_n: BlockNumberFor<T>) -> Result<(), sp_runtime::TryRuntimeError> {
            Self::do_try_state()
        }
    }

    #[pallet::call(weight = <T as Config>::WeightInfo)]
    impl<T: Config> Pallet<T> {
        /// Buy `offer` for at most `max_price`: a batch offer with `periods = 1`, or
        /// `periods` periods of a stream offer.
        ///
        /// Enforces the offer's rules (verified buyers only, verified discount, minimum trust
        /// score), holds the price and the purchase deposit, and records the purchase with its
        /// key deadline and access period. Emits [`Event::Purchased`].
        #[pallet::call_index(0)]
        pub fn purchase(
            origin: OriginFor<T>,
            offer: OfferId,
            periods: u32,
            max_price: BalanceOf<T>,
        ) -> DispatchResult {
            let buyer = ensure_signed(origin)?;
            Self::do_purchase(buyer, offer, periods, max_price).map(|_| ())
        }

        /// Deliver the keys of `epoch` for `purchase`, sealed to the buyer's key-agreement key
        /// (format: [`fastdata_primitives::sealed`]). Seller only; holds a key deposit. The
        /// first keys activate the purchase. Emits [`Event::KeysDelivered`].
        #[pallet::call_index(1)]
        pub fn deliver_keys(
            origin: OriginFor<T>,
            purchase: PurchaseId,
            epoch: EpochIndex,
            sealed: BoundedVec<u8, T::MaxSealedKeyLen>,
        ) -> DispatchResult {
            let seller = ensure_signed(origin)?;
            Self::do_deliver_keys(seller, purchase, epoch, sealed)
        }

        /// Refund a purchase whose first keys were not delivered by the key deadline. Anyone
        /// may call it; free when it succeeds. Emits [`Event::RefundedForMissingKeys`].
        #[pallet::call_index(2)]
        pub fn refund_missing_keys(
            origin: OriginFor<T>,
            purchase: PurchaseId,
        ) -> DispatchResultWithPostInfo {
            ensure_signed(origin)?;
            Self::do_refund_missing_keys(purchase)?;
            Ok(Pays::No.into())
        }

        /// Claim pay for data served, with the buyer's latest receipt for the caller. The
        /// caller must be the receipt's operator and assigned to the stream. Emits
        /// [`Event::ReceiptClaimed`].
        #[pallet::call_index(3)]
        pub fn claim(
            origin: OriginFor<T>,
            receipt: Receipt<T::AccountId>,
            signature: T::ReceiptSignature,
        ) -> DispatchResult {
            let operator = ensure_signed(origin)?;
            Self::do_claim(operator, receipt, signature)
        }

        /// Settle the next period of `purchase` once it has ended and the claim grace period
        /// has passed (see the settlement rule in the crate docs). Anyone may call it; free
        /// when it succeeds. Emits [`Event::PeriodSettled`], and [`Event::PurchaseSettled`]
        /// after the last period.
        #[pallet::call_index(4)]
        pub fn settle(origin: OriginFor<T>, purchase: PurchaseId) -> DispatchResultWithPostInfo {
            ensure_signed(origin)?;
            Self::do_settle(purchase)?;
            Ok(Pays::No.into())
        }

        /// Dispute an active purchase before it is settled, holding
        /// [`Config::DisputeDeposit`]. Buyer only. Freezes the remainder until the dispute
        /// origin resolves it. Emits [`Event::DisputeOpened`].
        #[pallet::call_index(5)]
        pub fn dispute(
            origin: OriginFor<T>,
            purchase: PurchaseId,
            reason: DisputeReason,
            evidence: Option<H256>,
        ) -> DispatchResult {
            let buyer = ensure_signed(origin)?;
            Self::do_dispute(buyer, purchase, reason, evidence)
        }

        /// As the seller, answer the dispute of `purchase` with the hash of your evidence
        /// before its deadline (once). An answered dispute that nobody resolves lapses at the
        /// deadline instead of being upheld. Emits [`Event::DisputeAnswered`].
        #[pallet::call_index(8)]
        pub fn answer_dispute(
            origin: OriginFor<T>,
            purchase: PurchaseId,
            evidence: H256,
        ) -> DispatchResult {
            let seller = ensure_signed(origin)?;
            Self::do_answer_dispute(seller, purchase, evidence)
        }

        /// Resolve the dispute of `purchase`. [`Config::DisputeOrigin`] only.
        ///
        /// `refund_ratio = 0` rejects it: the deposit goes to the treasury and the purchase
        /// resumes ([`Event::DisputeRejected`]). Otherwise it is upheld: the deposit goes back,
        /// operators are paid their accrued pay, `refund_ratio` of the rest goes back to the
        /// buyer and the rest to the seller minus the fee, and the purchase is settled
        /// ([`Event::DisputeUpheld`]).
        #[pallet::call_index(6)]
        pub fn resolve_dispute(
            origin: OriginFor<T>,
            purchase: PurchaseId,
            refund_ratio: Perbill,
        ) -> DispatchResult {
            T::DisputeOrigin::ensure_origin(origin)?;
            Self::do_resolve_dispute(purchase, refund_ratio)
        }

        /// Remove a closed purchase after [`Config::RetentionPeriod`], with its sealed keys
        /// and claims, returning the deposits. Anyone may call it; free when it succeeds.
        /// Emits [`Event::PurchaseReaped`].
        #[pallet::call_index(7)]
        pub fn reap(origin: OriginFor<T>, purchase: PurchaseId) -> DispatchResultWithPostInfo {
            ensure_signed(origin)?;
            Self::do_reap(purchase)?;
            Ok(Pays::No.into())
        }
    }
}

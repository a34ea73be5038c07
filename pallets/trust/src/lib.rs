//! # Trust pallet
//!
//! Ratings of settled trades and the two scores of the FAST DATA paper: the credibility
//! `Cr(u)` of an account (eq. 1) and its trust score `TS(u)` (eq. 2).
//!
//! ## Ratings
//!
//! When a purchase is settled ([`Config::Trades`], implemented by `pallet-escrow`), its buyer
//! and its seller may each rate the other **once**, within [`Config::RatingPeriod`] blocks of
//! settlement, with a satisfaction `0..=100` and an optional comment hash. No settled trade,
//! no rating: a rating costs a real, fee-paying trade. The rater's
//! [`Config::RatingDeposit`] is held until the rating has left the window and the trade's
//! rating period is over; then anyone can [`Pallet::reap_rating`] it and the deposit goes back.
//! (The deposit also pays for the ratee's per-epoch aggregate, which is removed with the last
//! reaped rating.)
//!
//! ## Credibility, eq. (1)
//!
//! The paper's PeerTrust-style credibility `Cr(u) = Σ_i S(u,i)·Cr(a(u,i)) + TR(u,i)` is made
//! exact, bounded and windowed as follows. Time is cut into epochs of
//! [`Config::EpochLength`] blocks; at block `n` the **window** is the current epoch and the
//! `B − 1` before it (`B =` [`Config::WindowEpochs`]). For each rating `i` of `u` in the window:
//!
//! - `S_i = s_i / 100`, the satisfaction it gives (`s_i ∈ 0..=100`);
//! - `c_i = Cr(a_i)`, the **rater's own credibility** when it rated (kept with the rating);
//! - `τ_i = v_i / (v_i + V)`, the **transaction context** of the trade: `v_i` is what the buyer
//!   paid, `V =` [`Config::ReferenceValue`]; a trade worth `V` has `τ = ½`, dust trades
//!   `τ ≈ 0`, large trades `τ → 1`;
//! - `φ_i = min(1, v_i / V)`, the **value weight**: a trade worth at least `V` counts fully,
//!   a smaller one in proportion. A trade that paid nothing (price 0, or refunded in full)
//!   cannot be rated at all ([`Error::NothingPaid`]).
//!
//! With the prior `C0(u) =` [`Config::BaseCredibility`] if `u` is verified (holds a valid
//! credential, [`Config::Identity`]) and `0` otherwise, prior weight `K =`
//! [`Config::PriorWeight`] and context share `γ =` [`Config::ContextWeight`]:
//!
//! ```text
//!   A(u)  = ( K·C0(u) + Σ_i φ_i·c_i·S_i ) / ( K + Σ_i φ_i·c_i )
//!   TR(u) = γ · ( K·C0(u) + Σ_i c_i·τ_i·S_i ) / ( K + Σ_i c_i·τ_i )
//!   Cr(u) = (1 − γ)·A(u) + TR(u)
//! ```
//!
//! `A` is eq. (1)'s `Σ_i S(u,i)·Cr(a(u,i))`, normalised by the raters' credibility mass and
//! smoothed by the prior, each rating weighed by the value its trade moved (so trust cannot
//! be bought with transaction fees: seeded accounts trading dust add `≈ φ²` — once through
//! the credibility a seller's rating gives them, once through their rating back); `TR` is the transaction-context term: the same satisfactions,
//! weighted by credibility *and* trade value, so doing well on large trades counts more than
//! on dust. Consequences:
//!
//! - `0 ≤ Cr(u) ≤ 1`: both averages mix values in `[0, 1]`.
//! - A rater with `Cr = 0` adds nothing to any numerator or denominator: **ratings from
//!   accounts without credibility move nothing**. Fresh unverified accounts have `Cr = 0`, so
//!   a ring of them trading and rating each other cannot pump anyone's score; credibility
//!   enters the system only through credentials (the prior) and spreads through ratings by
//!   credible accounts.
//! - Without ratings in the window, `Cr(u) = C0(u)`; as ratings leave the window the score
//!   returns towards the prior, so it reflects recent behaviour.
//! - One rating cannot jump a score to the extreme: it competes with the prior weight `K`.
//!
//! ## Trust score, eq. (2)
//!
//! ```text
//!   TS(u) = min(1, Σ_k VI(k,u)) · Cr(u)
//! ```
//!
//! over `u`'s valid credentials `k` with issuer weights `VI(k,u)` ([`Config::Identity`]).
//! The sum saturates at 1 so that `TS ∈ [0, 1]`. Revoking (or expiry of) a credential lowers
//! `TS` in the same block: nothing is cached.
//!
//! ## Fixed point
//!
//! Scores are [`Score`] (`u32`, [`SCORE_ONE`] = 1.0), `τ` and `γ` are [`Perbill`]. Each
//! rating stores `c_i`, `φ_i` and `τ_i`; per epoch the pallet keeps `Σ ⌊φ_i·c_i⌋`,
//! `Σ ⌊φ_i·c_i⌋·s_i`, `Σ ⌊τ_i·c_i⌋`, `Σ ⌊τ_i·c_i⌋·s_i` ([`RatingBucket`]). Then, in `u128`
//! with floor division, `A = ⌊(K·C0 + 10⁴·Σ ⌊φ_i·c_i⌋·s_i) / (K + Σ ⌊φ_i·c_i⌋)⌋` (and likewise for the context average, or
//! `C0` when a denominator is 0), `Cr = ⌊(1−γ)·A⌋ + ⌊γ·A_τ⌋` and `TS = ⌊ΣVI · Cr⌋`, every
//! multiplication by a `Perbill` rounding down. The worked example in the tests pins these
//! numbers.
//!
//! ## Interfaces
//!
//! Other pallets read `TS` through [`fastdata_primitives::TrustProvider`]; users through the
//! `TrustApi` runtime API ([`Pallet::trust_score`], [`Pallet::credibility`],
//! [`Pallet::reputation`], [`Pallet::trust_scores`]) and the view functions.
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

pub use fastdata_primitives::{Score, SCORE_ONE};
pub use types::*;
pub use weights::WeightInfo;

/// What benchmarks need from the runtime: settled trades and verified accounts.
#[cfg(feature = "runtime-benchmarks")]
pub trait BenchmarkHelper<AccountId, Balance, BlockNumber> {
    /// Makes `who` verified (for a worst case, with as many credentials as a DID may hold).
    fn make_verified(who: &AccountId);
    /// Records `trade` as the settled trade of `purchase`.
    fn settle_trade(
        purchase: fastdata_primitives::PurchaseId,
        trade: fastdata_primitives::SettledTrade<AccountId, Balance, BlockNumber>,
    );
}

// FRAME's expansion of `#[pallet::pallet]`, `#[pallet::storage]` and `#[pallet::error]` calls
// `expect` on values it built itself; the pallet's own logic lives outside this module
// (`features/`, `impls.rs`), where `clippy::expect_used` stays on.
#[allow(clippy::expect_used)]
#[frame_support::pallet]
pub mod pallet {
    use super::*;
    use alloc::vec::Vec;
    use fastdata_primitives::{
        api_identity::ReputationInfo, IdentityProvider, PurchaseId, SettledTrades,
    };
    use frame_support::{
        pallet_prelude::*,
        traits::fungible::{Inspect, Mutate, MutateHold},
    };
    use frame_system::pallet_prelude::*;
    use sp_core::H256;
    use sp_runtime::Perbill;

    /// The balance type of the pallet's currency.
    pub type BalanceOf<T> =
        <<T as Config>::Currency as Inspect<<T as frame_system::Config>::AccountId>>::Balance;
    /// A rating as stored.
    pub type RatingRecordOf<T> =
        RatingRecord<<T as frame_system::Config>::AccountId, BalanceOf<T>, BlockNumberFor<T>>;
    /// The in-window rating buckets of an account.
    pub type BucketsOf<T> = BoundedVec<RatingBucket, <T as Config>::WindowEpochs>;

    #[pallet::pallet]
    pub struct Pallet<T>(_);

    /// Configuration of the trust pallet.
    #[pallet::config]
    pub trait Config: frame_system::Config {
        /// The currency rating deposits are held in.
        type Currency: MutateHold<Self::AccountId, Reason = Self::RuntimeHoldReason>
            + Mutate<Self::AccountId>;

        /// The overarching hold reason.
        type RuntimeHoldReason: From<HoldReason>;

        /// Identity facts: verification (the credibility prior) and issuer weights `VI`.
        type Identity: IdentityProvider<Self::AccountId>;

        /// Settled trades (pallet-escrow).
        type Trades: SettledTrades<Self::AccountId, BalanceOf<Self>, BlockNumberFor<Self>>;

        /// Deposit held from a rater until its rating is reaped.
        #[pallet::constant]
        type RatingDeposit: Get<BalanceOf<Self>>;

        /// Length of an epoch in blocks (the granularity of the window).
        #[pallet::constant]
        type EpochLength: Get<BlockNumberFor<Self>>;

        /// Number of epochs in the window `B` (the current one included).
        #[pallet::constant]
        type WindowEpochs: Get<u32>;

        /// Blocks after settlement during which the two sides may rate each other.
        #[pallet::constant]
        type RatingPeriod: Get<BlockNumberFor<Self>>;

        /// Weight `K` of the prior, in [`Score`] units (`SCORE_ONE` = as much as one rating by a
        /// fully credible rater).
        #[pallet::constant]
        type PriorWeight: Get<Score>;

        /// Prior credibility `C0` of a verified account.
        #[pallet::constant]
        type BaseCredibility: Get<Score>;

        /// Share `γ` of the transaction-context term `TR` in the credibility.
        #[pallet::constant]
        type ContextWeight: Get<Perbill>;

        /// Trade value `V` whose context factor is ½ and from which a rating weighs fully.
        #[pallet::constant]
        type ReferenceValue: Get<BalanceOf<Self>>;

        /// Weights of the calls.
        type WeightInfo: WeightInfo;

        /// Sets up settled trades and verified accounts for benchmarks.
        #[cfg(feature = "runtime-benchmarks")]
        type BenchmarkHelper: BenchmarkHelper<
            Self::AccountId,
            BalanceOf<Self>,
            BlockNumberFor<Self>,
        >;
    }

    /// Reasons for which the pallet holds funds.
    #[pallet::composite_enum]
    pub enum HoldReason {
        /// Deposit of a rating, held from the rater.
        #[codec(index = 0)]
        RatingDeposit,
    }

    /// Ratings by purchase and rater.
    #[pallet::storage]
    pub type Ratings<T: Config> = StorageDoubleMap<
        _,
        Twox64Concat,
        PurchaseId,
        Blake2_128Concat,
        T::AccountId,
        RatingRecordOf<T>,
    >;

    /// Per-epoch aggregates of the ratings each account received, oldest first, at most
    /// `WindowEpochs` of them.
    #[pallet::storage]
    pub type RatingWindows<T: Config> =
        StorageMap<_, Blake2_128Concat, T::AccountId, BucketsOf<T>, ValueQuery>;

    /// Events of the trust pallet.
    #[pallet::event]
    #[pallet::generate_deposit(pub(super) fn deposit_event)]
    pub enum Event<T: Config> {
        /// A side of a settled trade rated the other side.
        Rated {
            /// The purchase.
            purchase: PurchaseId,
            /// Who rated.
            rater: T::AccountId,
            /// Who was rated.
            ratee: T::AccountId,
            /// Satisfaction `0..=100`.
            score: u8,
            /// Hash of an off-chain comment.
            comment: Option<H256>,
            /// The rater's credibility `c`.
            rater_credibility: Score,
            /// Value weight `φ` of the trade: the rating weighs `φ · c`.
            value_weight: Perbill,
            /// Context factor `τ` of the trade.
            context: Perbill,
            /// The ratee's credibility after the rating.
            credibility: Score,
            /// Deposit held from the rater.
            deposit: BalanceOf<T>,
        },
        /// An expired rating was removed and its deposit returned to the rater.
        RatingReaped {
            /// The purchase.
            purchase: PurchaseId,
            /// Who had rated (and got the deposit back).
            rater: T::AccountId,
            /// Who was rated.
            ratee: T::AccountId,
            /// Deposit released.
            deposit: BalanceOf<T>,
        },
    }

    /// Errors of the trust pallet.
    #[pallet::error]
    pub enum Error<T> {
        /// The rating is above 100.
        ScoreOutOfRange,
        /// The purchase does not exist or is not settled.
        TradeNotSettled,
        /// The trade paid nothing (a price of 0, or refunded in full): it cannot be rated.
        NothingPaid,
        /// The signer is neither the buyer nor the seller of the purchase.
        NotAParty,
        /// Buyer and seller of the purchase are the same account.
        CannotRateSelf,
        /// The signer already rated this purchase.
        AlreadyRated,
        /// The rating period of the trade is over.
        RatingPeriodOver,
        /// No such rating.
        RatingNotFound,
        /// The rating is still inside the window or its trade's rating period.
        RatingStillActive,
    }

    #[pallet::hooks]
    impl<T: Config> Hooks<BlockNumberFor<T>> for Pallet<T> {
        fn integrity_test() {
            assert!(!T::EpochLength::get().is_zero(), "EpochLength must be > 0");
            assert!(T::WindowEpochs::get() > 0, "WindowEpochs must be > 0");
            assert!(
                T::BaseCredibility::get() <= SCORE_ONE,
                "BaseCredibility must be <= 1"
            );
            assert!(T::PriorWeight::get() > 0, "PriorWeight must be > 0");
        }

        #[cfg(feature = "try-runtime")]
        fn try_state(_n: BlockNumberFor<T>) -> Result<(), sp_runtime::TryRuntimeError> {
            Self::do_try_state()
        }
    }

    #[pallet::call(weight = <T as Config>::WeightInfo)]
    impl<T: Config> Pallet<T> {
        /// Rate the counterparty of settled purchase `purchase` with `score` (`0..=100`) and an
        /// optional comment hash. Allowed once per side, within `RatingPeriod` blocks of
        /// settlement; the weight of the rating is the signer's own credibility.
        ///
        /// Holds `RatingDeposit` from the signer. Emits `Rated`.
        #[pallet::call_index(0)]
        pub fn rate(
            origin: OriginFor<T>,
            purchase: PurchaseId,
            score: u8,
            comment: Option<H256>,
        ) -> DispatchResult {
            let rater = ensure_signed(origin)?;
            Self::do_rate(rater, purchase, score, comment)
        }

        /// Remove the rating `rater` gave on `purchase` once it has left the window and the
        /// trade's rating period is over, returning the deposit to the rater. Anyone may call.
        ///
        /// Emits `RatingReaped`.
        #[pallet::call_index(1)]
        pub fn reap_rating(
            origin: OriginFor<T>,
            purchase: PurchaseId,
            rater: T::AccountId,
        ) -> DispatchResult {
            ensure_signed(origin)?;
            Self::do_reap_rating(purchase, rater)
        }
    }

    #[pallet::view_functions]
    impl<T: Config> Pallet<T> {
        /// Trust score `TS(who)` (eq. 2).
        pub fn trust_score_of(who: T::AccountId) -> Score {
            Self::trust_score(&who)
        }

        /// Credibility `Cr(who)` (eq. 1).
        pub fn credibility_of(who: T::AccountId) -> Score {
            Self::credibility(&who)
        }

        /// Credibility, trust score and their parts.
        pub fn reputation_of(who: T::AccountId) -> ReputationInfo {
            Self::reputation(&who)
        }

        /// Trust scores of several accounts, in order.
        pub fn trust_scores_of(who: Vec<T::AccountId>) -> Vec<Score> {
            Self::trust_scores(who)
        }
    }
}

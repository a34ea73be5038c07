//! Types stored by the trust pallet.

use codec::{Decode, DecodeWithMemTracking, Encode, MaxEncodedLen};
use fastdata_primitives::Score;
use scale_info::TypeInfo;
use sp_core::H256;
use sp_runtime::{Perbill, Saturating};

/// Highest rating a party can give (satisfaction `S = score / MAX_RATING`).
pub const MAX_RATING: u8 = 100;

/// A rating of one side of a settled trade by the other side.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, MaxEncodedLen, TypeInfo)]
pub struct RatingRecord<AccountId, Balance, BlockNumber> {
    /// The rated counterparty.
    pub ratee: AccountId,
    /// Satisfaction `0..=100`.
    pub score: u8,
    /// Hash of an off-chain comment, if any.
    pub comment: Option<H256>,
    /// Block of the rating.
    pub rated_at: BlockNumber,
    /// Epoch of the rating (`rated_at / EpochLength`).
    pub epoch: u32,
    /// Credibility `Cr` of the rater when it rated (`c_i`).
    pub rater_credibility: Score,
    /// Value weight `φ_i = min(1, v / ReferenceValue)` of the trade: the rating weighs
    /// `φ_i · c_i`.
    pub value_weight: Perbill,
    /// Transaction-context factor `τ_i = v / (v + ReferenceValue)` of the trade.
    pub context: Perbill,
    /// Block at which the trade was settled.
    pub settled_at: BlockNumber,
    /// Deposit held from the rater.
    pub deposit: Balance,
}

/// The ratings an account received in one epoch, aggregated. Credibility is computed from
/// the buckets still inside the window, so a rating leaves the window by its bucket leaving.
#[derive(
    Clone,
    Copy,
    PartialEq,
    Eq,
    Debug,
    Default,
    Encode,
    Decode,
    DecodeWithMemTracking,
    MaxEncodedLen,
    TypeInfo,
)]
pub struct RatingBucket {
    /// The epoch.
    pub epoch: u32,
    /// Number of ratings (including those of zero weight).
    pub ratings: u32,
    /// `Σ ⌊φ_i · c_i⌋` — raters' credibility scaled by the value paid.
    pub weight: u64,
    /// `Σ ⌊φ_i · c_i⌋ · s_i` with `s_i` the rating in `0..=100`.
    pub weighted_score: u64,
    /// `Σ ⌊τ_i · c_i⌋` — raters' credibility scaled by the trade context.
    pub context_weight: u64,
    /// `Σ ⌊τ_i · c_i⌋ · s_i`.
    pub context_weighted_score: u64,
}

impl RatingBucket {
    /// An empty bucket for `epoch`.
    pub fn new(epoch: u32) -> Self {
        Self {
            epoch,
            ..Default::default()
        }
    }

    /// Adds a rating `score` (`0..=100`) by a rater of credibility `credibility` on a trade
    /// of value weight `value_weight` and context factor `context`.
    pub fn add(&mut self, score: u8, credibility: Score, value_weight: Perbill, context: Perbill) {
        let score = u64::from(score);
        let weight = u64::from(value_weight.mul_floor(credibility));
        let context_weight = u64::from(context.mul_floor(credibility));
        self.ratings.saturating_inc();
        self.weight.saturating_accrue(weight);
        self.weighted_score
            .saturating_accrue(weight.saturating_mul(score));
        self.context_weight.saturating_accrue(context_weight);
        self.context_weighted_score
            .saturating_accrue(context_weight.saturating_mul(score));
    }

    /// Sums two buckets (the epoch of `self` is kept).
    pub fn merge(mut self, other: &Self) -> Self {
        self.ratings.saturating_accrue(other.ratings);
        self.weight.saturating_accrue(other.weight);
        self.weighted_score.saturating_accrue(other.weighted_score);
        self.context_weight.saturating_accrue(other.context_weight);
        self.context_weighted_score
            .saturating_accrue(other.context_weighted_score);
        self
    }
}

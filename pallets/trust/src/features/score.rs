//! The scores' arithmetic: credibility `Cr(u)` (eq. 1) from the rating window, and the
//! issuer-weight sum of the trust score (eq. 2).

use crate::*;
use frame_support::pallet_prelude::Get;
use frame_system::pallet_prelude::BlockNumberFor;
use sp_runtime::{traits::Saturating, PerThing, Perbill};

/// `SCORE_ONE / 100`: a rating point in [`Score`] units.
const SCORE_PER_POINT: u128 = (SCORE_ONE / MAX_RATING as u32) as u128;

/// `⌊(K·C0 + 10⁴·Σ w·s) / (K + Σ w)⌋`, capped at `SCORE_ONE`; `C0` if the denominator is 0.
fn smoothed_average(prior_weight: Score, prior: Score, weight: u64, weighted_score: u64) -> Score {
    let denominator = u128::from(prior_weight).saturating_add(u128::from(weight));
    if denominator == 0 {
        return prior;
    }
    let numerator = u128::from(prior_weight)
        .saturating_mul(u128::from(prior))
        .saturating_add(SCORE_PER_POINT.saturating_mul(u128::from(weighted_score)));
    let average = numerator / denominator;
    Score::try_from(average).unwrap_or(SCORE_ONE).min(SCORE_ONE)
}

/// `min(1, Σ_k VI_k)`.
pub(crate) fn weight_sum(weights: &[Perbill]) -> Perbill {
    weights
        .iter()
        .fold(Perbill::zero(), |sum, w| sum.saturating_add(*w))
}

impl<T: Config> Pallet<T> {
    /// The sum of `who`'s rating buckets inside the window at block `now`.
    pub fn window_totals(who: &T::AccountId, now: BlockNumberFor<T>) -> RatingBucket {
        let current = Self::epoch_of(now);
        RatingWindows::<T>::get(who)
            .iter()
            .filter(|b| Self::in_window(b.epoch, current))
            .fold(RatingBucket::new(current), |sum, b| sum.merge(b))
    }

    /// `Cr(who)` at block `now` (eq. 1), given whether `who` is verified (the prior).
    pub fn credibility_with(who: &T::AccountId, verified: bool, now: BlockNumberFor<T>) -> Score {
        let prior = if verified {
            T::BaseCredibility::get().min(SCORE_ONE)
        } else {
            0
        };
        let totals = Self::window_totals(who, now);
        let k = T::PriorWeight::get();
        let average = smoothed_average(k, prior, totals.weight, totals.weighted_score);
        let context_average = smoothed_average(
            k,
            prior,
            totals.context_weight,
            totals.context_weighted_score,
        );
        let gamma = T::ContextWeight::get();
        gamma
            .left_from_one()
            .mul_floor(average)
            .saturating_add(gamma.mul_floor(context_average))
            .min(SCORE_ONE)
    }
}

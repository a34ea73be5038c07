//! Credibility (eq. 1), trust score (eq. 2), `TrustProvider`, the `TrustApi` runtime-API
//! functions and the `try_state` invariants.

use crate::*;
use alloc::vec::Vec;
use fastdata_primitives::{
    api_identity::ReputationInfo, IdentityProvider, Reputation, TrustProvider,
};
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
fn weight_sum(weights: &[Perbill]) -> Perbill {
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

    /// Credibility `Cr(who)` now (`TrustApi::credibility`).
    pub fn credibility(who: &T::AccountId) -> Score {
        let now = frame_system::Pallet::<T>::block_number();
        Self::credibility_with(who, T::Identity::is_verified(who), now)
    }

    /// Trust score `TS(who)` now (`TrustApi::trust_score`, eq. 2).
    pub fn trust_score(who: &T::AccountId) -> Score {
        let weights = T::Identity::credential_weights(who);
        if weights.is_empty() {
            // No valid credential: `Σ VI = 0`.
            return 0;
        }
        let now = frame_system::Pallet::<T>::block_number();
        // Holding a valid credential is what "verified" means for the prior.
        weight_sum(&weights).mul_floor(Self::credibility_with(who, true, now))
    }

    /// Trust scores of several accounts, in order (`TrustApi::trust_scores`).
    pub fn trust_scores(who: Vec<T::AccountId>) -> Vec<Score> {
        who.iter().map(Self::trust_score).collect()
    }

    /// Credibility, trust score and their parts (`TrustApi::reputation`).
    pub fn reputation(who: &T::AccountId) -> ReputationInfo {
        let now = frame_system::Pallet::<T>::block_number();
        let weights = T::Identity::credential_weights(who);
        let verified = T::Identity::is_verified(who);
        let credibility = Self::credibility_with(who, verified, now);
        let issuer_weight = weight_sum(&weights);
        ReputationInfo {
            credibility,
            trust_score: if weights.is_empty() {
                0
            } else {
                issuer_weight.mul_floor(credibility)
            },
            issuer_weight,
            verified,
            ratings_in_window: Self::window_totals(who, now).ratings,
        }
    }

    /// Invariants:
    /// - each rater's `RatingDeposit` hold equals the deposits of its stored ratings;
    /// - ratings are at most 100 and never rate the rater itself;
    /// - each account's buckets are at most `WindowEpochs`, strictly increasing by epoch,
    ///   non-empty, and every in-window bucket equals the aggregate of the stored ratings of
    ///   that account and epoch.
    #[cfg(any(feature = "try-runtime", test))]
    pub fn do_try_state() -> Result<(), sp_runtime::TryRuntimeError> {
        use alloc::collections::btree_map::BTreeMap;
        use frame_support::{ensure, traits::fungible::InspectHold};

        let mut held: BTreeMap<T::AccountId, BalanceOf<T>> = BTreeMap::new();
        let mut aggregates: BTreeMap<(T::AccountId, u32), RatingBucket> = BTreeMap::new();
        for (_purchase, rater, rating) in Ratings::<T>::iter() {
            ensure!(rating.score <= MAX_RATING, "rating above 100");
            ensure!(rating.ratee != rater, "rating of oneself");
            let entry = held.entry(rater.clone()).or_default();
            *entry = entry.saturating_add(rating.deposit);
            aggregates
                .entry((rating.ratee.clone(), rating.epoch))
                .or_insert_with(|| RatingBucket::new(rating.epoch))
                .add(
                    rating.score,
                    rating.rater_credibility,
                    rating.value_weight,
                    rating.context,
                );
        }
        for (rater, total) in held.iter() {
            ensure!(
                T::Currency::balance_on_hold(&HoldReason::RatingDeposit.into(), rater) == *total,
                "rating deposits held differ from the recorded deposits"
            );
        }

        let current = Self::epoch_of(frame_system::Pallet::<T>::block_number());
        for ((ratee, epoch), aggregate) in aggregates.iter() {
            if Self::in_window(*epoch, current) {
                ensure!(
                    RatingWindows::<T>::get(ratee)
                        .iter()
                        .any(|b| b == aggregate),
                    "in-window rating missing from its bucket"
                );
            }
        }
        for (ratee, buckets) in RatingWindows::<T>::iter() {
            ensure!(!buckets.is_empty(), "empty rating window stored");
            ensure!(
                buckets.windows(2).all(|pair| pair[0].epoch < pair[1].epoch),
                "rating buckets out of order"
            );
            for bucket in buckets.iter() {
                ensure!(bucket.ratings > 0, "empty rating bucket");
                ensure!(bucket.epoch <= current, "rating bucket in the future");
                if Self::in_window(bucket.epoch, current) {
                    ensure!(
                        aggregates.get(&(ratee.clone(), bucket.epoch)) == Some(bucket),
                        "rating bucket differs from the stored ratings"
                    );
                }
            }
        }
        Ok(())
    }
}

impl<T: Config> TrustProvider<T::AccountId> for Pallet<T> {
    fn trust_score(who: &T::AccountId) -> Score {
        Pallet::<T>::trust_score(who)
    }
}

impl<T: Config> Reputation<T::AccountId> for Pallet<T> {
    fn credibility(who: &T::AccountId) -> Score {
        Pallet::<T>::credibility(who)
    }
}

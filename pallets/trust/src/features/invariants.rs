//! Storage invariants checked by `try_state` (and by every test).

use crate::*;
use alloc::collections::btree_map::BTreeMap;
use frame_support::{ensure, traits::fungible::InspectHold};
use sp_runtime::{Saturating, TryRuntimeError};

impl<T: Config> Pallet<T> {
    /// Invariants:
    /// - each rater's `RatingDeposit` hold equals the deposits of its stored ratings;
    /// - ratings are at most 100 and never rate the rater itself;
    /// - each account's buckets are at most `WindowEpochs`, strictly increasing by epoch,
    ///   non-empty, and every in-window bucket equals the aggregate of the stored ratings of
    ///   that account and epoch.
    pub fn do_try_state() -> Result<(), TryRuntimeError> {
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

//! Rating settled trades and reaping expired ratings.

use crate::*;
use fastdata_primitives::{IdentityProvider, PurchaseId, SettledTrades};
use frame_support::{
    ensure,
    pallet_prelude::*,
    traits::{fungible::MutateHold, tokens::Precision},
};
use frame_system::pallet_prelude::BlockNumberFor;
use sp_core::H256;
use sp_runtime::{
    traits::{One, Zero},
    Perbill, SaturatedConversion, Saturating,
};

impl<T: Config> Pallet<T> {
    /// The epoch of block `n`.
    pub fn epoch_of(n: BlockNumberFor<T>) -> u32 {
        let length = T::EpochLength::get().max(One::one());
        (n / length).saturated_into()
    }

    /// A rating of epoch `epoch` is inside the window at epoch `current`.
    pub fn in_window(epoch: u32, current: u32) -> bool {
        current.saturating_sub(epoch) < T::WindowEpochs::get()
    }

    /// The context factor `τ = v / (v + V)` of a trade worth `value`.
    pub fn context_factor(value: BalanceOf<T>) -> Perbill {
        let value: u128 = value.saturated_into();
        let reference: u128 = T::ReferenceValue::get().saturated_into();
        let total = value.saturating_add(reference);
        if value.is_zero() || total.is_zero() {
            return Perbill::zero();
        }
        Perbill::from_rational(value, total)
    }

    /// The value weight `φ = min(1, v / V)` of a trade worth `value`: a trade worth at least
    /// the reference value counts fully, a smaller one in proportion, a free one not at all.
    pub fn value_weight(value: BalanceOf<T>) -> Perbill {
        let value: u128 = value.saturated_into();
        let reference: u128 = T::ReferenceValue::get().saturated_into();
        if value >= reference {
            return Perbill::one();
        }
        Perbill::from_rational(value, reference)
    }

    /// Records `rater`'s rating of the other party of the settled `purchase`, holding the
    /// rating deposit, and adds it to the ratee's window.
    pub(crate) fn do_rate(
        rater: T::AccountId,
        purchase: PurchaseId,
        score: u8,
        comment: Option<H256>,
    ) -> DispatchResult {
        ensure!(score <= MAX_RATING, Error::<T>::ScoreOutOfRange);
        let trade = T::Trades::settled_trade(purchase).ok_or(Error::<T>::TradeNotSettled)?;
        ensure!(trade.buyer != trade.seller, Error::<T>::CannotRateSelf);
        // A refunded or free trade moved no money: rating it would let ratings be had for
        // transaction fees alone.
        ensure!(!trade.value.is_zero(), Error::<T>::NothingPaid);
        let ratee = if rater == trade.buyer {
            trade.seller
        } else if rater == trade.seller {
            trade.buyer
        } else {
            return Err(Error::<T>::NotAParty.into());
        };
        ensure!(
            !Ratings::<T>::contains_key(purchase, &rater),
            Error::<T>::AlreadyRated
        );
        let now = frame_system::Pallet::<T>::block_number();
        ensure!(
            now.saturating_sub(trade.settled_at) <= T::RatingPeriod::get(),
            Error::<T>::RatingPeriodOver
        );

        let rater_credibility =
            Self::credibility_with(&rater, T::Identity::is_verified(&rater), now);
        let context = Self::context_factor(trade.value);
        let value_weight = Self::value_weight(trade.value);
        let deposit = T::RatingDeposit::get();
        T::Currency::hold(&HoldReason::RatingDeposit.into(), &rater, deposit)?;

        let epoch = Self::epoch_of(now);
        RatingWindows::<T>::mutate(&ratee, |buckets| {
            buckets.retain(|b| Self::in_window(b.epoch, epoch));
            match buckets.last_mut() {
                Some(last) if last.epoch == epoch => {
                    last.add(score, rater_credibility, value_weight, context)
                }
                _ => {
                    let mut bucket = RatingBucket::new(epoch);
                    bucket.add(score, rater_credibility, value_weight, context);
                    if buckets.is_full() && !buckets.is_empty() {
                        // Unreachable: after pruning at most `WindowEpochs − 1` older epochs
                        // remain. Drop the oldest rather than fail.
                        frame_support::defensive!("rating window full after pruning");
                        buckets.remove(0);
                    }
                    buckets.force_push(bucket);
                }
            }
        });
        Ratings::<T>::insert(
            purchase,
            &rater,
            RatingRecord {
                ratee: ratee.clone(),
                score,
                comment,
                rated_at: now,
                epoch,
                rater_credibility,
                value_weight,
                context,
                settled_at: trade.settled_at,
                deposit,
            },
        );

        let credibility = Self::credibility_with(&ratee, T::Identity::is_verified(&ratee), now);
        Self::deposit_event(Event::Rated {
            purchase,
            rater,
            ratee,
            score,
            comment,
            rater_credibility,
            value_weight,
            context,
            credibility,
            deposit,
        });
        Ok(())
    }

    /// Removes `rater`'s rating of `purchase` once it has left the window and the rating
    /// period is over, and returns the deposit.
    pub(crate) fn do_reap_rating(purchase: PurchaseId, rater: T::AccountId) -> DispatchResult {
        let rating = Ratings::<T>::get(purchase, &rater).ok_or(Error::<T>::RatingNotFound)?;
        let now = frame_system::Pallet::<T>::block_number();
        let current = Self::epoch_of(now);
        ensure!(
            !Self::in_window(rating.epoch, current)
                && now.saturating_sub(rating.settled_at) > T::RatingPeriod::get(),
            Error::<T>::RatingStillActive
        );
        if !rating.deposit.is_zero() {
            T::Currency::release(
                &HoldReason::RatingDeposit.into(),
                &rater,
                rating.deposit,
                Precision::BestEffort,
            )?;
        }
        Ratings::<T>::remove(purchase, &rater);
        RatingWindows::<T>::mutate_exists(&rating.ratee, |buckets| {
            if let Some(b) = buckets {
                b.retain(|bucket| Self::in_window(bucket.epoch, current));
                if b.is_empty() {
                    *buckets = None;
                }
            }
        });
        Self::deposit_event(Event::RatingReaped {
            purchase,
            rater,
            ratee: rating.ratee,
            deposit: rating.deposit,
        });
        Ok(())
    }
}

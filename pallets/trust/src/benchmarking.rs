//! Benchmarks of the trust pallet (frame-benchmarking v2), each at its worst case.
#![cfg(feature = "runtime-benchmarks")]

use super::*;
use fastdata_primitives::{PurchaseId, SettledTrade};
use frame_benchmarking::v2::*;
use frame_support::{pallet_prelude::Get, traits::fungible::Mutate, BoundedVec};
use frame_system::{pallet_prelude::BlockNumberFor, RawOrigin};
use sp_core::H256;
use sp_runtime::{
    traits::{Bounded, One},
    Saturating,
};

const SEED: u32 = 0;
const PURCHASE: PurchaseId = 7;

fn funded<T: Config>(name: &'static str) -> T::AccountId {
    let who: T::AccountId = account(name, 0, SEED);
    T::Currency::set_balance(&who, BalanceOf::<T>::max_value() / 1_000_000u32.into());
    who
}

/// Fills `who`'s window with `WindowEpochs` non-empty buckets ending at `last_epoch`.
fn fill_window<T: Config>(who: &T::AccountId, last_epoch: u32) {
    let window = T::WindowEpochs::get();
    let first = last_epoch.saturating_add(1).saturating_sub(window);
    let mut buckets: BucketsOf<T> = BoundedVec::new();
    for epoch in first..=last_epoch {
        let mut bucket = RatingBucket::new(epoch);
        bucket.add(
            80,
            SCORE_ONE / 2,
            sp_runtime::Perbill::one(),
            sp_runtime::Perbill::from_percent(50),
        );
        let _ = buckets.try_push(bucket);
    }
    RatingWindows::<T>::insert(who, buckets);
}

fn set_block<T: Config>(n: BlockNumberFor<T>) {
    frame_system::Pallet::<T>::set_block_number(n);
}

#[benchmarks]
mod benchmarks {
    use super::*;

    /// Worst case: both sides verified, both with a full window; the ratee's oldest bucket
    /// has just left the window, so it is pruned before the new one is pushed.
    #[benchmark]
    fn rate() {
        let buyer = funded::<T>("buyer");
        let seller = funded::<T>("seller");
        T::BenchmarkHelper::make_verified(&buyer);
        T::BenchmarkHelper::make_verified(&seller);
        let epoch_length = T::EpochLength::get();
        let window = T::WindowEpochs::get();
        // Now: first block of epoch `window`.
        let now = epoch_length.saturating_mul(window.into());
        set_block::<T>(now);
        fill_window::<T>(&buyer, window);
        // Buckets of epochs 0..window: epoch 0 is out of the window at epoch `window`.
        fill_window::<T>(&seller, window.saturating_sub(1));
        T::BenchmarkHelper::settle_trade(
            PURCHASE,
            SettledTrade {
                buyer: buyer.clone(),
                seller: seller.clone(),
                value: T::ReferenceValue::get(),
                settled_at: now,
            },
        );

        #[extrinsic_call]
        _(
            RawOrigin::Signed(buyer.clone()),
            PURCHASE,
            100,
            Some(H256::repeat_byte(1)),
        );

        assert!(Ratings::<T>::contains_key(PURCHASE, &buyer));
    }

    /// Worst case: the ratee's window is full — the reaped rating's stale bucket plus
    /// `WindowEpochs − 1` live ones — so the whole window is decoded, pruned and written back.
    #[benchmark]
    fn reap_rating() {
        let buyer = funded::<T>("buyer");
        let seller = funded::<T>("seller");
        T::BenchmarkHelper::settle_trade(
            PURCHASE,
            SettledTrade {
                buyer: buyer.clone(),
                seller: seller.clone(),
                value: T::ReferenceValue::get(),
                settled_at: One::one(),
            },
        );
        set_block::<T>(One::one());
        assert!(Pallet::<T>::do_rate(buyer.clone(), PURCHASE, 90, None).is_ok());
        let window = T::WindowEpochs::get();
        let later = T::EpochLength::get()
            .saturating_mul(window.saturating_add(1).into())
            .saturating_add(T::RatingPeriod::get())
            .saturating_add(One::one());
        set_block::<T>(later);
        let mut buckets = RatingWindows::<T>::get(&seller);
        let current = Pallet::<T>::epoch_of(later);
        for epoch in current.saturating_add(2).saturating_sub(window)..=current {
            let mut bucket = RatingBucket::new(epoch);
            bucket.add(
                80,
                SCORE_ONE / 2,
                sp_runtime::Perbill::one(),
                sp_runtime::Perbill::from_percent(50),
            );
            let _ = buckets.try_push(bucket);
        }
        RatingWindows::<T>::insert(&seller, buckets);
        let caller = funded::<T>("caller");

        #[extrinsic_call]
        _(RawOrigin::Signed(caller), PURCHASE, buyer.clone());

        assert!(!Ratings::<T>::contains_key(PURCHASE, &buyer));
        assert_eq!(
            RatingWindows::<T>::get(&seller).len() as u32,
            window.saturating_sub(1)
        );
    }

    impl_benchmark_test_suite!(
        Pallet,
        crate::mock::ExtBuilder::default().build(),
        crate::mock::Test
    );
}

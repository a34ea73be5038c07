//! Benchmarks of the offers pallet, each in its worst case: maximum topic and name lengths, a
//! seller with the maximum number of offers, the maximum replication, and as many stored epoch
//! commitments as a stream retains.

use super::*;
use crate::Pallet as Offers;
use alloc::vec;
use fastdata_primitives::{OfferId, OperatorProvider, PaymentMode, StreamId};
use frame_benchmarking::v2::*;
use frame_support::{
    pallet_prelude::*,
    traits::fungible::{Inspect, InspectHold, Mutate},
};
use frame_system::RawOrigin;
use sp_core::H256;
use sp_runtime::{
    traits::{One, Saturating, Zero},
    Perbill,
};

/// A verified, funded seller.
fn seller<T: Config>() -> T::AccountId {
    let who: T::AccountId = whitelisted_caller();
    T::BenchmarkHelper::verify_seller(&who);
    let amount = T::Currency::minimum_balance()
        .saturating_add(T::OfferDeposit::get())
        .saturating_add(T::StreamDeposit::get())
        .saturating_add(T::ByteDeposit::get().saturating_mul(1_024u32.into()))
        .saturating_add(T::EpochDeposit::get().saturating_mul(T::MaxRetainedEpochs::get().into()))
        .saturating_mul(T::MaxOffersPerSeller::get().saturating_add(2).into());
    T::Currency::set_balance(&who, amount);
    who
}

fn max_topic<T: Config>() -> TopicOf<T> {
    BoundedVec::truncate_from(vec![b'a'; T::MaxTopicLen::get() as usize])
}

fn max_name<T: Config>() -> StreamNameOf<T> {
    BoundedVec::truncate_from(vec![b'n'; T::MaxStreamNameLen::get() as usize])
}

fn mode<T: Config>() -> PaymentModeOf<T> {
    PaymentMode::Stream {
        period: T::MinPeriod::get().max(One::one()),
    }
}

fn max_terms<T: Config>() -> OfferTermsOf<T> {
    OfferTerms {
        licence: Licence::Custom(H256::repeat_byte(1)),
        resale_allowed: true,
        verified_only: true,
        verified_discount: Perbill::from_percent(5),
        min_trust_score: 1,
        retention: Zero::zero(),
        replication: T::Operators::max_replication(),
    }
}

/// Lists an offer of `who` with maximum topic and replication.
fn offer<T: Config>(who: &T::AccountId) -> OfferId {
    let id = NextOfferId::<T>::get();
    let result = Offers::<T>::do_create_offer(
        who.clone(),
        max_topic::<T>(),
        mode::<T>(),
        10u32.into(),
        max_terms::<T>(),
    );
    assert!(result.is_ok(), "benchmark offer is created");
    id
}

/// Lists an offer of `who` and registers its stream with a maximum-length name.
fn offer_with_stream<T: Config>(who: &T::AccountId) -> (OfferId, StreamId) {
    T::BenchmarkHelper::prepare_operators(T::Operators::max_replication());
    let id = offer::<T>(who);
    let name = max_name::<T>();
    let stream = fastdata_primitives::api_market::stream_id(who, &name, 0);
    let result = Offers::<T>::do_register_stream(who.clone(), id, name, 0, H256::repeat_byte(0));
    assert!(result.is_ok(), "benchmark stream is registered");
    T::BenchmarkHelper::draw_operators();
    (id, stream)
}

#[benchmarks]
mod benchmarks {
    use super::*;

    #[benchmark]
    fn create_offer() {
        let caller = seller::<T>();
        for _ in 1..T::MaxOffersPerSeller::get() {
            offer::<T>(&caller);
        }
        let id = NextOfferId::<T>::get();

        #[extrinsic_call]
        _(
            RawOrigin::Signed(caller.clone()),
            max_topic::<T>(),
            mode::<T>(),
            10u32.into(),
            max_terms::<T>(),
        );

        assert!(pallet::Offers::<T>::contains_key(id));
        assert_eq!(
            OffersBySeller::<T>::get(&caller).len() as u32,
            T::MaxOffersPerSeller::get()
        );
    }

    #[benchmark]
    fn update_offer() {
        let caller = seller::<T>();
        let (id, _) = offer_with_stream::<T>(&caller);
        let mut terms = max_terms::<T>();
        terms.min_trust_score = 2;

        #[extrinsic_call]
        _(
            RawOrigin::Signed(caller),
            id,
            Some(20u32.into()),
            Some(terms),
        );

        assert_eq!(
            pallet::Offers::<T>::get(id).map(|o| o.terms.min_trust_score),
            Some(2)
        );
    }

    #[benchmark]
    fn retire_offer() {
        let caller = seller::<T>();
        let id = offer::<T>(&caller);

        #[extrinsic_call]
        _(RawOrigin::Signed(caller), id);

        assert!(pallet::Offers::<T>::get(id).is_some_and(|o| o.retired_at.is_some()));
    }

    #[benchmark]
    fn register_stream() {
        let caller = seller::<T>();
        T::BenchmarkHelper::prepare_operators(T::Operators::max_replication());
        let id = offer::<T>(&caller);
        let name = max_name::<T>();
        let stream = fastdata_primitives::api_market::stream_id(&caller, &name, 1);

        #[extrinsic_call]
        _(RawOrigin::Signed(caller), id, name, 1, H256::repeat_byte(1));

        assert!(Streams::<T>::contains_key(stream));
    }

    #[benchmark]
    fn rotate_epoch() {
        let caller = seller::<T>();
        let (_, stream) = offer_with_stream::<T>(&caller);
        let held = T::Currency::balance_on_hold(&HoldReason::StreamDeposit.into(), &caller);

        #[extrinsic_call]
        _(
            RawOrigin::Signed(caller.clone()),
            stream,
            H256::repeat_byte(2),
        );

        assert_eq!(Streams::<T>::get(stream).map(|s| s.epoch), Some(1));
        if T::MaxRetainedEpochs::get() > 1 {
            assert_eq!(
                T::Currency::balance_on_hold(&HoldReason::StreamDeposit.into(), &caller),
                held.saturating_add(T::EpochDeposit::get())
            );
        }
    }

    #[benchmark]
    fn close_stream() {
        let caller = seller::<T>();
        let (_, stream) = offer_with_stream::<T>(&caller);

        #[extrinsic_call]
        _(RawOrigin::Signed(caller), stream);

        assert!(Streams::<T>::get(stream).is_some_and(|s| !s.is_open()));
    }

    /// A closed stream whose last purchase no longer needs it: its operators are released.
    #[benchmark]
    fn release_stream() {
        let caller = seller::<T>();
        let (offer, stream) = offer_with_stream::<T>(&caller);
        let now = frame_system::Pallet::<T>::block_number();
        T::BenchmarkHelper::purchases_need(offer, now.saturating_add(One::one()));
        assert!(Offers::<T>::do_close_stream(caller.clone(), stream).is_ok());
        assert!(Streams::<T>::get(stream).is_some_and(|s| s.released_at.is_none()));
        let later = frame_system::Pallet::<T>::block_number().saturating_add(One::one());
        frame_system::Pallet::<T>::set_block_number(later);

        #[extrinsic_call]
        _(RawOrigin::Signed(caller), stream);

        assert!(Streams::<T>::get(stream).is_some_and(|s| s.released_at == Some(later)));
    }

    #[benchmark]
    fn remove_offer(e: Linear<1, { T::MaxRetainedEpochs::get() }>) {
        let caller = seller::<T>();
        let (id, stream) = offer_with_stream::<T>(&caller);
        for epoch in 1..e {
            let result = Offers::<T>::do_rotate_epoch(
                caller.clone(),
                stream,
                H256::repeat_byte(epoch as u8),
            );
            assert!(result.is_ok(), "epoch rotates");
        }
        assert!(Offers::<T>::do_close_stream(caller.clone(), stream).is_ok());
        let later =
            frame_system::Pallet::<T>::block_number().saturating_add(T::RemovalDelay::get());
        frame_system::Pallet::<T>::set_block_number(later);

        #[extrinsic_call]
        _(RawOrigin::Signed(caller.clone()), id);

        assert!(!pallet::Offers::<T>::contains_key(id));
        assert_eq!(
            T::Currency::balance_on_hold(&HoldReason::StreamDeposit.into(), &caller),
            Zero::zero()
        );
    }

    impl_benchmark_test_suite!(
        Offers,
        crate::mock::ExtBuilder::default().build(),
        crate::mock::Test
    );
}

//! Benchmarks of the escrow pallet (frame-benchmarking v2), each call at its worst case:
//! every purchase rule enabled and the most periods; the most operators with accrued pay
//! (over the cap, so the pro-rata path runs); the most sealed keys; payouts to existing
//! accounts (transfers, not the cheaper redirect).

use super::*;
use crate::Pallet as Escrow;
use alloc::vec::Vec;
use fastdata_primitives::{
    escrow::{DisputeReason, PurchaseState},
    receipt::Receipt,
    sealed, OfferId, PaymentMode, PurchaseId,
};
use frame_benchmarking::v2::*;
use frame_support::{
    traits::{fungible::Inspect, fungible::Mutate, EnsureOrigin, Get},
    BoundedVec,
};
use frame_system::{pallet_prelude::BlockNumberFor, RawOrigin};
use sp_runtime::{
    traits::{Bounded, Saturating},
    Perbill,
};

/// A balance unit large enough to be above the existential deposit.
fn unit<T: Config>() -> BalanceOf<T> {
    T::Currency::minimum_balance().max(1u32.into())
}

fn fund<T: Config>(who: &T::AccountId) {
    T::Currency::set_balance(who, unit::<T>().saturating_mul(1_000_000_000u32.into()));
}

fn price<T: Config>() -> BalanceOf<T> {
    unit::<T>().saturating_mul(1_000u32.into())
}

fn set_block<T: Config>(n: BlockNumberFor<T>) {
    frame_system::Pallet::<T>::set_block_number(n);
}

/// A world with a funded seller, treasury and `MaxOperatorsPerPurchase` funded operators,
/// an offer in `mode` with commitments for `MaxEpochsPerPurchase` epochs, and a funded,
/// verified buyer.
struct World<T: Config> {
    seller: T::AccountId,
    buyer: T::AccountId,
    operators: Vec<T::AccountId>,
    offer: OfferId,
}

fn world<T: Config>(mode: PaymentMode<BlockNumberFor<T>>) -> World<T> {
    let seller: T::AccountId = account("seller", 0, 0);
    fund::<T>(&seller);
    fund::<T>(&T::TreasuryAccount::get());
    let operators: Vec<T::AccountId> = (0..T::MaxOperatorsPerPurchase::get())
        .map(|i| account("operator", i, 0))
        .collect();
    operators.iter().for_each(fund::<T>);
    let epochs = T::MaxEpochsPerPurchase::get();
    let offer = T::BenchmarkHelper::offer(&seller, mode, price::<T>(), epochs, &operators);
    let buyer = T::BenchmarkHelper::buyer(0);
    fund::<T>(&buyer);
    World {
        seller,
        buyer,
        operators,
        offer,
    }
}

fn stream_mode<T: Config>() -> PaymentMode<BlockNumberFor<T>> {
    PaymentMode::Stream {
        period: 10u32.into(),
    }
}

fn buy<T: Config>(w: &World<T>, periods: u32) -> Result<PurchaseId, BenchmarkError> {
    let id = NextPurchaseId::<T>::get();
    Escrow::<T>::purchase(
        RawOrigin::Signed(w.buyer.clone()).into(),
        w.offer,
        periods,
        BalanceOf::<T>::max_value(),
    )?;
    Ok(id)
}

/// A valid-looking version-1 sealed key (the runtime only checks the format).
fn sealed_bytes<T: Config>() -> BoundedVec<u8, T::MaxSealedKeyLen> {
    let mut bytes = alloc::vec![0u8; sealed::SEALED_KEY_LEN_V1];
    bytes[0] = sealed::SEALED_KEY_VERSION_1;
    BoundedVec::truncate_from(bytes)
}

fn deliver<T: Config>(w: &World<T>, id: PurchaseId, epoch: u32) -> Result<(), BenchmarkError> {
    Escrow::<T>::deliver_keys(
        RawOrigin::Signed(w.seller.clone()).into(),
        id,
        epoch,
        sealed_bytes::<T>(),
    )?;
    Ok(())
}

fn signed_receipt<T: Config>(
    w: &World<T>,
    id: PurchaseId,
    operator: &T::AccountId,
    bytes: u64,
) -> (Receipt<T::AccountId>, T::ReceiptSignature) {
    let receipt = Receipt {
        purchase: id,
        operator: operator.clone(),
        up_to_sequence: bytes,
        bytes,
        nonce: bytes,
    };
    let genesis = Pallet::<T>::genesis_hash();
    let signature = T::BenchmarkHelper::sign(&w.buyer, &receipt.signing_payload(&genesis));
    (receipt, signature)
}

/// Every operator but the last `skip` claims enough bytes to exceed the storage share, each
/// assigned to the stream just before its first claim (a stream has fewer replicas than a
/// purchase may have operators; the others were reassigned away).
fn claim_all<T: Config>(w: &World<T>, id: PurchaseId, skip: usize) -> Result<(), BenchmarkError> {
    for operator in w
        .operators
        .iter()
        .take(w.operators.len().saturating_sub(skip))
    {
        T::BenchmarkHelper::assign(w.offer, operator);
        let (receipt, signature) = signed_receipt::<T>(w, id, operator, u64::MAX / 2);
        Escrow::<T>::claim(
            RawOrigin::Signed(operator.clone()).into(),
            receipt,
            signature,
        )?;
    }
    Ok(())
}

fn dispute_origin<T: Config>() -> Result<T::RuntimeOrigin, BenchmarkError> {
    T::DisputeOrigin::try_successful_origin().map_err(|_| BenchmarkError::Weightless)
}

#[benchmarks]
mod benchmarks {
    use super::*;

    #[benchmark]
    fn purchase() -> Result<(), BenchmarkError> {
        let w = world::<T>(stream_mode::<T>());
        let periods = T::MaxPeriods::get();

        #[extrinsic_call]
        _(
            RawOrigin::Signed(w.buyer.clone()),
            w.offer,
            periods,
            BalanceOf::<T>::max_value(),
        );

        let p = Purchases::<T>::get(0).ok_or(BenchmarkError::Stop("purchase not stored"))?;
        assert_eq!(p.state, PurchaseState::AwaitingKeys);
        Ok(())
    }

    #[benchmark]
    fn deliver_keys() -> Result<(), BenchmarkError> {
        let w = world::<T>(stream_mode::<T>());
        let id = buy::<T>(&w, 1)?;

        #[extrinsic_call]
        _(
            RawOrigin::Signed(w.seller.clone()),
            id,
            0,
            sealed_bytes::<T>(),
        );

        let p = Purchases::<T>::get(id).ok_or(BenchmarkError::Stop("purchase not stored"))?;
        assert_eq!(p.state, PurchaseState::Active);
        Ok(())
    }

    #[benchmark]
    fn refund_missing_keys() -> Result<(), BenchmarkError> {
        let w = world::<T>(stream_mode::<T>());
        let id = buy::<T>(&w, T::MaxPeriods::get())?;
        claim_all::<T>(&w, id, 0)?;
        let p = Purchases::<T>::get(id).ok_or(BenchmarkError::Stop("purchase not stored"))?;
        set_block::<T>(p.schedule.key_deadline.saturating_add(1u32.into()));

        #[extrinsic_call]
        _(RawOrigin::Signed(w.seller.clone()), id);

        let p = Purchases::<T>::get(id).ok_or(BenchmarkError::Stop("purchase not stored"))?;
        assert_eq!(p.state, PurchaseState::Refunded);
        Ok(())
    }

    #[benchmark]
    fn claim() -> Result<(), BenchmarkError> {
        let w = world::<T>(stream_mode::<T>());
        let id = buy::<T>(&w, 1)?;
        deliver::<T>(&w, id, 0)?;
        // The last free operator slot, after a scan of every assigned operator.
        claim_all::<T>(&w, id, 1)?;
        let operator = w
            .operators
            .last()
            .cloned()
            .ok_or(BenchmarkError::Stop("no operators"))?;
        T::BenchmarkHelper::assign(w.offer, &operator);
        let (receipt, signature) = signed_receipt::<T>(&w, id, &operator, u64::MAX / 2);

        #[extrinsic_call]
        _(RawOrigin::Signed(operator.clone()), receipt, signature);

        assert!(OperatorClaims::<T>::contains_key(id, &operator));
        Ok(())
    }

    #[benchmark]
    fn settle() -> Result<(), BenchmarkError> {
        let w = world::<T>(stream_mode::<T>());
        let id = buy::<T>(&w, 1)?;
        deliver::<T>(&w, id, 0)?;
        claim_all::<T>(&w, id, 0)?;
        let p = Purchases::<T>::get(id).ok_or(BenchmarkError::Stop("purchase not stored"))?;
        set_block::<T>(p.settlement_due(0, T::ClaimGracePeriod::get()));

        #[extrinsic_call]
        _(RawOrigin::Signed(w.seller.clone()), id);

        let p = Purchases::<T>::get(id).ok_or(BenchmarkError::Stop("purchase not stored"))?;
        assert_eq!(p.state, PurchaseState::Settled);
        Ok(())
    }

    #[benchmark]
    fn dispute() -> Result<(), BenchmarkError> {
        let w = world::<T>(stream_mode::<T>());
        let id = buy::<T>(&w, 1)?;
        deliver::<T>(&w, id, 0)?;

        #[extrinsic_call]
        _(
            RawOrigin::Signed(w.buyer.clone()),
            id,
            DisputeReason::KeysMismatch,
            Some(Default::default()),
        );

        let p = Purchases::<T>::get(id).ok_or(BenchmarkError::Stop("purchase not stored"))?;
        assert_eq!(p.state, PurchaseState::Disputed);
        Ok(())
    }

    #[benchmark]
    fn answer_dispute() -> Result<(), BenchmarkError> {
        let w = world::<T>(stream_mode::<T>());
        let id = buy::<T>(&w, 1)?;
        deliver::<T>(&w, id, 0)?;
        Escrow::<T>::dispute(
            RawOrigin::Signed(w.buyer.clone()).into(),
            id,
            DisputeReason::KeysMismatch,
            None,
        )?;

        #[extrinsic_call]
        _(RawOrigin::Signed(w.seller.clone()), id, Default::default());

        let p = Purchases::<T>::get(id).ok_or(BenchmarkError::Stop("purchase not stored"))?;
        assert!(p.dispute.is_some_and(|d| d.answer.is_some()));
        Ok(())
    }

    #[benchmark]
    fn resolve_dispute() -> Result<(), BenchmarkError> {
        let w = world::<T>(stream_mode::<T>());
        let id = buy::<T>(&w, T::MaxPeriods::get())?;
        deliver::<T>(&w, id, 0)?;
        claim_all::<T>(&w, id, 0)?;
        Escrow::<T>::dispute(
            RawOrigin::Signed(w.buyer.clone()).into(),
            id,
            DisputeReason::KeysMismatch,
            None,
        )?;
        let origin = dispute_origin::<T>()?;

        #[extrinsic_call]
        _(origin as T::RuntimeOrigin, id, Perbill::from_percent(50));

        let p = Purchases::<T>::get(id).ok_or(BenchmarkError::Stop("purchase not stored"))?;
        assert_eq!(p.state, PurchaseState::Settled);
        Ok(())
    }

    #[benchmark]
    fn reap() -> Result<(), BenchmarkError> {
        let w = world::<T>(stream_mode::<T>());
        let id = buy::<T>(&w, 1)?;
        for epoch in 0..T::MaxEpochsPerPurchase::get() {
            deliver::<T>(&w, id, epoch)?;
        }
        claim_all::<T>(&w, id, 0)?;
        let p = Purchases::<T>::get(id).ok_or(BenchmarkError::Stop("purchase not stored"))?;
        let due = p.settlement_due(0, T::ClaimGracePeriod::get());
        set_block::<T>(due);
        Escrow::<T>::settle(RawOrigin::Signed(w.seller.clone()).into(), id)?;
        set_block::<T>(due.saturating_add(T::RetentionPeriod::get()));

        #[extrinsic_call]
        _(RawOrigin::Signed(w.seller.clone()), id);

        assert!(!Purchases::<T>::contains_key(id));
        Ok(())
    }

    impl_benchmark_test_suite!(
        Escrow,
        crate::mock::ExtBuilder::default().build(),
        crate::mock::Test
    );
}

//! Benchmarks of the operators pallet, each in its worst case: a full registry, maximum URL
//! lengths, and as many streams as an operator may host when streams must be reassigned.

use super::*;
use crate::Pallet as Operators;
use alloc::vec::Vec;
use codec::Encode;
use fastdata_primitives::{Sequence, StreamId};
use frame_benchmarking::v2::*;
use frame_support::{
    pallet_prelude::*,
    traits::fungible::{Inspect, InspectHold, Mutate},
    weights::WeightMeter,
};
use frame_system::{pallet_prelude::BlockNumberFor, RawOrigin};
use sp_core::H256;
use sp_runtime::traits::{Bounded, Saturating, StaticLookup, Zero};

const SEED: u32 = 0;

/// A funded account.
fn funded<T: Config>(name: &'static str, index: u32) -> T::AccountId {
    let who: T::AccountId = account(name, index, SEED);
    fund::<T>(&who);
    who
}

/// Gives `who` enough for any stake and fee of the benchmarks.
fn fund<T: Config>(who: &T::AccountId) {
    let amount = T::MinStake::get()
        .saturating_mul(1_000u32.into())
        .saturating_add(T::Currency::minimum_balance().saturating_mul(1_000u32.into()));
    T::Currency::set_balance(who, amount);
}

/// A valid URL of maximum length with the given scheme.
fn max_url<T: Config>(scheme: &[u8]) -> UrlOf<T> {
    let len = T::MaxUrlLen::get() as usize;
    let mut url = scheme.to_vec();
    url.resize(len.max(scheme.len() + 1), b'a');
    url.truncate(len);
    url.try_into().unwrap_or_default()
}

/// Registers `who` with the minimum stake and maximum-length URLs.
fn register_operator<T: Config>(who: &T::AccountId) {
    let result = Operators::<T>::do_register(
        who.clone(),
        T::MinStake::get(),
        max_url::<T>(b"mqtts://"),
        max_url::<T>(b"https://"),
        1u32.into(),
    );
    assert!(result.is_ok(), "benchmark operator registers");
}

/// Registers `n` funded operators.
fn operators<T: Config>(n: u32) -> Vec<T::AccountId> {
    (0..n)
        .map(|i| {
            let who = funded::<T>("operator", i);
            register_operator::<T>(&who);
            who
        })
        .collect()
}

fn stream_id(i: u32) -> StreamId {
    H256(sp_io::hashing::blake2_256(
        &(b"benchmark-stream", i).encode(),
    ))
}

/// Gives `who` `s` streams, each shared with the first `MaxReplication - 1` of `others`, by
/// writing the assignment directly.
fn host_streams<T: Config>(who: &T::AccountId, s: u32, others: &[T::AccountId]) {
    let peers = T::MaxReplication::get().saturating_sub(1) as usize;
    let hosts: Vec<T::AccountId> = core::iter::once(who)
        .chain(others.iter().take(peers))
        .cloned()
        .collect();
    for i in 0..s {
        let stream = stream_id(i);
        for operator in hosts.iter() {
            StreamsOf::<T>::insert(operator, stream, ());
        }
        Assignments::<T>::insert(stream, AssignmentOf::<T>::truncate_from(hosts.clone()));
    }
    ActiveOperators::<T>::mutate(|active| {
        for entry in active.iter_mut().filter(|e| hosts.contains(&e.who)) {
            entry.streams = entry.streams.saturating_add(s);
        }
    });
}

/// A full registry: `who` plus `MaxOperators - 1` others, all with the costliest trust
/// scores (reassignment computes them all); `who` hosts `s` streams.
fn full_registry_hosting<T: Config>(s: u32) -> T::AccountId {
    let who = funded::<T>("target", 0);
    full_registry_with::<T>(&who, s);
    who
}

/// [`full_registry_hosting`] with `who` (funded) as the operator hosting `s` streams.
fn full_registry_with<T: Config>(who: &T::AccountId, s: u32) {
    let others = operators::<T>(T::MaxOperators::get().saturating_sub(1));
    others.iter().for_each(T::BenchmarkHelper::make_trusted);
    T::BenchmarkHelper::make_trusted(who);
    register_operator::<T>(who);
    host_streams::<T>(who, s, &others);
}

fn assert_last_event<T: Config>(event: Event<T>) {
    frame_system::Pallet::<T>::assert_last_event(<T as frame_system::Config>::RuntimeEvent::from(
        event,
    ));
}

#[benchmarks]
mod benchmarks {
    use super::*;

    #[benchmark]
    fn register() {
        operators::<T>(T::MaxOperators::get().saturating_sub(1));
        let caller = funded::<T>("caller", 0);
        T::BenchmarkHelper::make_trusted(&caller);
        let stake = T::MinStake::get();
        let broker_url = max_url::<T>(b"mqtts://");
        let http_url = max_url::<T>(b"https://");

        #[extrinsic_call]
        _(
            RawOrigin::Signed(caller.clone()),
            stake,
            broker_url,
            http_url,
            1u32.into(),
        );

        assert_eq!(
            T::Currency::balance_on_hold(&HoldReason::OperatorStake.into(), &caller),
            stake
        );
        assert_eq!(OperatorCount::<T>::get(), T::MaxOperators::get());
    }

    #[benchmark]
    fn update() {
        let caller = funded::<T>("caller", 0);
        register_operator::<T>(&caller);
        let broker_url = max_url::<T>(b"mqtt://");
        let http_url = max_url::<T>(b"http://");

        #[extrinsic_call]
        _(
            RawOrigin::Signed(caller.clone()),
            Some(broker_url.clone()),
            Some(http_url),
            Some(7u32.into()),
        );

        assert_eq!(
            pallet::Operators::<T>::get(&caller).map(|i| i.broker_url),
            Some(broker_url)
        );
    }

    #[benchmark]
    fn bond_extra() {
        let caller = funded::<T>("caller", 0);
        register_operator::<T>(&caller);
        let amount = T::MinStake::get();

        #[extrinsic_call]
        _(RawOrigin::Signed(caller.clone()), amount);

        assert_eq!(
            T::Currency::balance_on_hold(&HoldReason::OperatorStake.into(), &caller),
            T::MinStake::get().saturating_add(amount)
        );
    }

    #[benchmark]
    fn pause(s: Linear<0, { T::MaxStreamsPerOperator::get() }>) {
        let caller = full_registry_hosting::<T>(s);

        #[extrinsic_call]
        _(RawOrigin::Signed(caller.clone()));

        // Its streams wait for their replacements (`reassign`).
        assert_eq!(StreamsOf::<T>::iter_prefix(&caller).count() as u32, s);
        assert_eq!(
            PendingReassignments::<T>::get().len(),
            if s > 0 { 1 } else { 0 }
        );
        assert_last_event::<T>(Event::Paused { operator: caller });
    }

    #[benchmark]
    fn reassign(s: Linear<0, { T::MaxStreamsPerOperator::get() }>) {
        // Drawing the replacements of a paused operator's `s` streams in a full registry.
        let caller = full_registry_hosting::<T>(s);
        assert!(Operators::<T>::do_pause(caller.clone()).is_ok());

        #[block]
        {
            Operators::<T>::reassign_streams_of(&caller, &[7u8; 32]);
        }

        assert_eq!(StreamsOf::<T>::iter_prefix(&caller).count(), 0);
    }

    #[benchmark]
    fn resume() {
        let caller = full_registry_hosting::<T>(0);
        assert!(Operators::<T>::do_pause(caller.clone()).is_ok());

        #[extrinsic_call]
        _(RawOrigin::Signed(caller.clone()));

        assert_last_event::<T>(Event::Resumed { operator: caller });
    }

    #[benchmark]
    fn leave(s: Linear<0, { T::MaxStreamsPerOperator::get() }>) {
        let caller = full_registry_hosting::<T>(s);

        #[extrinsic_call]
        _(RawOrigin::Signed(caller.clone()));

        assert_eq!(StreamsOf::<T>::iter_prefix(&caller).count() as u32, s);
    }

    #[benchmark]
    fn withdraw() {
        let caller = funded::<T>("caller", 0);
        register_operator::<T>(&caller);
        assert!(Operators::<T>::do_leave(caller.clone()).is_ok());
        let later =
            frame_system::Pallet::<T>::block_number().saturating_add(T::UnbondingPeriod::get());
        frame_system::Pallet::<T>::set_block_number(later);

        #[extrinsic_call]
        _(RawOrigin::Signed(caller.clone()));

        assert!(pallet::Operators::<T>::get(&caller).is_none());
    }

    #[benchmark]
    fn heartbeat() {
        // The costliest trust score to refresh, in the largest active set to search.
        let caller = full_registry_hosting::<T>(0);

        #[extrinsic_call]
        _(RawOrigin::Signed(caller.clone()));

        assert_last_event::<T>(Event::HeartbeatReceived { operator: caller });
    }

    #[benchmark]
    fn attest_heads(
        n: Linear<1, { T::MaxStreamsPerOperator::get() }>,
    ) -> Result<(), BenchmarkError> {
        // `n` streams, each with every replica's attestation stored a hosting period ago and
        // a funded hosting account of its own payer: each attestation pays the caller.
        let caller = full_registry_hosting::<T>(n);
        let start = frame_system::Pallet::<T>::block_number();
        let quota_mb = T::MaxQuotaMb::get();
        let stored = u64::from(quota_mb).saturating_mul(fastdata_primitives::escrow::BYTES_PER_MB);
        for i in 0..n {
            let stream = stream_id(i);
            let records: Vec<HeadRecordOf<T>> = Assignments::<T>::get(stream)
                .map(|a| a.into_inner())
                .unwrap_or_default()
                .into_iter()
                .map(|operator| HeadRecord {
                    operator,
                    head: 10,
                    stored_bytes: stored,
                    at: start,
                })
                .collect();
            StreamHeads::<T>::insert(stream, BoundedVec::truncate_from(records));
            let payer = funded::<T>("payer", i);
            let replicas = T::MaxReplication::get();
            Operators::<T>::open_hosting(&stream, &payer, replicas);
            let funds = Operators::<T>::period_cost(&HostingAccount {
                payer: payer.clone(),
                quota_mb,
                funds: Zero::zero(),
                replicas,
            })
            .saturating_mul(2u32.into());
            T::Currency::set_balance(
                &payer,
                funds
                    .saturating_add(T::Currency::minimum_balance())
                    .saturating_mul(2u32.into()),
            );
            Operators::<T>::do_fund_hosting(payer, stream, quota_mb, funds)
                .map_err(|_| BenchmarkError::Stop("hosting funded"))?;
        }
        frame_system::Pallet::<T>::set_block_number(start.saturating_add(T::HostingPeriod::get()));
        let before = T::Currency::balance(&caller);
        let heads: BoundedVec<(StreamId, Sequence, u64), T::MaxStreamsPerOperator> =
            BoundedVec::truncate_from((0..n).map(|i| (stream_id(i), 1_000, stored)).collect());

        #[extrinsic_call]
        _(RawOrigin::Signed(caller.clone()), heads);

        assert!(
            T::Currency::balance(&caller) > before,
            "the caller was paid for hosting"
        );
        assert_last_event::<T>(Event::HeadsAttested {
            operator: caller,
            streams: n,
        });
        Ok(())
    }

    #[benchmark]
    fn fund_hosting() -> Result<(), BenchmarkError> {
        let payer = funded::<T>("payer", 0);
        let stream = stream_id(0);
        let replicas = T::MaxReplication::get();
        Operators::<T>::open_hosting(&stream, &payer, replicas);
        let amount = Operators::<T>::period_cost(&HostingAccount {
            payer: payer.clone(),
            quota_mb: T::MaxQuotaMb::get(),
            funds: Zero::zero(),
            replicas,
        });
        T::Currency::set_balance(
            &payer,
            amount
                .saturating_add(T::Currency::minimum_balance())
                .saturating_mul(2u32.into()),
        );

        #[extrinsic_call]
        _(
            RawOrigin::Signed(payer.clone()),
            stream,
            T::MaxQuotaMb::get(),
            amount,
        );

        assert_eq!(
            T::Currency::balance_on_hold(&HoldReason::Hosting.into(), &payer),
            amount
        );
        Ok(())
    }

    #[benchmark]
    fn slash(s: Linear<0, { T::MaxStreamsPerOperator::get() }>) -> Result<(), BenchmarkError> {
        let origin =
            T::SlashOrigin::try_successful_origin().map_err(|_| BenchmarkError::Weightless)?;
        let target = full_registry_hosting::<T>(s);
        let lookup = T::Lookup::unlookup(target.clone());
        // Slashing everything suspends the operator and reassigns its streams.
        let amount = BalanceOf::<T>::max_value();

        #[extrinsic_call]
        _(
            origin as T::RuntimeOrigin,
            lookup,
            amount,
            H256::repeat_byte(1),
        );

        assert_eq!(
            pallet::Operators::<T>::get(&target).map(|i| i.status),
            Some(OperatorStatus::Suspended)
        );
        Ok(())
    }

    #[benchmark]
    fn report_equivocation(
        s: Linear<0, { T::MaxStreamsPerOperator::get() }>,
    ) -> Result<(), BenchmarkError> {
        // Two valid signatures checked, and a slash that suspends the operator (its stake is
        // the minimum) and reassigns its `s` streams.
        let target = T::BenchmarkHelper::signer(0);
        fund::<T>(&target);
        full_registry_with::<T>(&target, s);
        let reporter = funded::<T>("reporter", 0);
        let genesis = Operators::<T>::genesis_hash();
        let signed = |content: &[u8]| {
            let statement =
                fastdata_primitives::custody::SegmentStatement::of(stream_id(0), 7, content);
            let signature = T::BenchmarkHelper::sign(&target, &statement.signing_payload(&genesis));
            (statement, signature)
        };
        let (first, second) = (signed(b"stored"), signed(b"served"));
        let lookup = T::Lookup::unlookup(target.clone());

        #[extrinsic_call]
        _(RawOrigin::Signed(reporter), lookup, first, second);

        assert!(Equivocations::<T>::contains_key((
            target.clone(),
            stream_id(0)
        )));
        assert_eq!(
            pallet::Operators::<T>::get(&target).map(|i| i.status),
            Some(OperatorStatus::Suspended)
        );
        Ok(())
    }

    #[benchmark]
    fn assign_pending(n: Linear<1, { T::MaxPendingAssignments::get() }>) {
        // A full registry (the draw reads the active set with its cached trust scores) and
        // `n` due streams, each drawing the most operators.
        operators::<T>(T::MaxOperators::get());
        let replication = T::MaxReplication::get().min(T::MaxOperators::get());
        let queue: Vec<PendingAssignmentOf<T>> = (0..n)
            .map(|i| PendingAssignment {
                stream: stream_id(i),
                replication,
                draw_after: Zero::zero(),
            })
            .collect();
        PendingAssignments::<T>::put(BoundedVec::truncate_from(queue));
        let output = frame_system::Pallet::<T>::parent_hash();

        #[block]
        {
            Operators::<T>::draw_due(&output, Zero::zero());
        }

        assert!(PendingAssignments::<T>::get().is_empty());
        assert_eq!(
            Assignments::<T>::get(stream_id(n - 1)).map(|a| a.len() as u32),
            Some(replication)
        );
    }

    #[benchmark]
    fn check_liveness(
        n: Linear<0, { T::MaxLivenessChecksPerBlock::get().min(T::MaxOperators::get()) }>,
    ) {
        operators::<T>(n);
        let now = frame_system::Pallet::<T>::block_number();
        let mut meter = WeightMeter::new();

        #[block]
        {
            Operators::<T>::check_liveness(now, &mut meter);
        }

        assert_eq!(ActiveOperators::<T>::get().len() as u32, n);
    }

    #[benchmark]
    fn suspend_silent(s: Linear<0, { T::MaxStreamsPerOperator::get() }>) {
        let silent = full_registry_hosting::<T>(s);
        // Everyone but `silent` sent a heartbeat recently; `silent` is checked first.
        let now: BlockNumberFor<T> = frame_system::Pallet::<T>::block_number()
            .saturating_add(T::HeartbeatTimeout::get())
            .saturating_add(1u32.into());
        frame_system::Pallet::<T>::set_block_number(now);
        for who in Operators::<T>::active_operators()
            .iter()
            .filter(|w| **w != silent)
        {
            pallet::Operators::<T>::mutate(who, |info| {
                if let Some(info) = info {
                    info.last_heartbeat = now;
                }
            });
        }
        let position = ActiveOperators::<T>::get()
            .iter()
            .position(|e| e.who == silent)
            .unwrap_or(0);
        LivenessCursor::<T>::put(position as u32);
        let mut meter = WeightMeter::new();

        #[block]
        {
            Operators::<T>::check_liveness(now, &mut meter);
        }

        assert_eq!(
            pallet::Operators::<T>::get(&silent).map(|i| i.status),
            Some(OperatorStatus::Suspended)
        );
    }

    impl_benchmark_test_suite!(
        Operators,
        crate::mock::ExtBuilder::default().build(),
        crate::mock::Test
    );
}

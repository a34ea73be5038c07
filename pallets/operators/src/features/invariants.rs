//! Storage invariants checked by `try_state` (and by every test).

use crate::*;
use alloc::collections::{BTreeMap, BTreeSet};
use frame_support::traits::{fungible::InspectHold, Get};
use sp_runtime::{Saturating, TryRuntimeError};

impl<T: Config> Pallet<T> {
    /// Checks the pallet's invariants:
    /// - the stake held from each operator equals its recorded stake;
    /// - [`OperatorCount`] equals the number of records;
    /// - [`ActiveOperators`] holds exactly the active operators, once each, with their
    ///   recorded stake, their number of hosted streams (at most `MaxStreamsPerOperator`) and
    ///   a cached trust score within `MaxTrustBoost`;
    /// - every assignment lists distinct operators, at most `MaxReplication`, each active or
    ///   queued once in [`PendingReassignments`] (which holds only inactive operators), and
    ///   [`StreamsOf`] is its exact reverse index;
    /// - every stream in [`PendingAssignments`] is queued once, unassigned, with a replication
    ///   factor;
    /// - [`StreamHeads`] exist only for assigned streams, one per operator;
    /// - [`Hosting`] exists for every assigned and queued stream (and for streams whose draw
    ///   failed, until released), within the maximum quota, and the funds held from each payer under [`HoldReason::Hosting`] equal the
    ///   sum of its accounts' funds.
    pub fn do_try_state() -> Result<(), TryRuntimeError> {
        let mut count = 0u32;
        for (who, info) in Operators::<T>::iter() {
            count = count.saturating_add(1);
            let held = T::Currency::balance_on_hold(&HoldReason::OperatorStake.into(), &who);
            ensure_state(held == info.stake, "held stake differs from recorded stake")?;
        }
        ensure_state(
            count == OperatorCount::<T>::get(),
            "operator count is wrong",
        )?;

        let active = ActiveOperators::<T>::get();
        let unique: BTreeSet<_> = active.iter().map(|e| &e.who).collect();
        ensure_state(unique.len() == active.len(), "duplicate in the active set")?;
        for entry in active.iter() {
            let info = Operators::<T>::get(&entry.who);
            ensure_state(
                info.as_ref()
                    .is_some_and(|i| i.status == OperatorStatus::Active),
                "inactive operator in the active set",
            )?;
            ensure_state(
                info.is_some_and(|i| i.stake == entry.stake),
                "active-set stake differs from the record",
            )?;
            ensure_state(
                entry.streams <= T::MaxStreamsPerOperator::get(),
                "operator hosts more streams than allowed",
            )?;
            ensure_state(
                entry.trust <= T::MaxTrustBoost::get(),
                "cached trust score above the cap",
            )?;
        }
        let active_records = Operators::<T>::iter_values()
            .filter(|i| i.status == OperatorStatus::Active)
            .count();
        ensure_state(
            active_records == active.len(),
            "active operator missing from active set",
        )?;

        let mut hosted: BTreeMap<T::AccountId, u32> = BTreeMap::new();
        for (stream, assigned) in Assignments::<T>::iter() {
            let unique: BTreeSet<_> = assigned.iter().collect();
            ensure_state(
                unique.len() == assigned.len(),
                "operator assigned twice to a stream",
            )?;
            for who in assigned.iter() {
                ensure_state(
                    StreamsOf::<T>::contains_key(who, stream),
                    "assignment missing from the operator's stream index",
                )?;
                let n = hosted.entry(who.clone()).or_default();
                *n = n.saturating_add(1);
            }
        }
        let mut indexed: BTreeMap<T::AccountId, u32> = BTreeMap::new();
        for (who, stream, ()) in StreamsOf::<T>::iter() {
            ensure_state(
                Assignments::<T>::get(stream).is_some_and(|a| a.contains(&who)),
                "stream index entry without assignment",
            )?;
            let n = indexed.entry(who).or_default();
            *n = n.saturating_add(1);
        }
        ensure_state(
            hosted == indexed,
            "stream index differs from the assignments",
        )?;
        let reassigning = PendingReassignments::<T>::get();
        let queued_operators: BTreeSet<_> = reassigning.iter().map(|(who, _)| who).collect();
        ensure_state(
            queued_operators.len() == reassigning.len(),
            "operator queued twice for reassignment",
        )?;
        for who in queued_operators.iter() {
            ensure_state(
                Operators::<T>::get(*who).is_some_and(|info| info.status != OperatorStatus::Active),
                "active or unknown operator queued for reassignment",
            )?;
        }
        for (who, n) in hosted.iter() {
            ensure_state(
                active.iter().any(|e| e.who == *who && e.streams == *n)
                    || queued_operators.contains(who),
                "stream assigned to an inactive operator not queued for reassignment, or stream count wrong",
            )?;
        }
        ensure_state(
            active
                .iter()
                .all(|e| e.streams == hosted.get(&e.who).copied().unwrap_or(0)),
            "active-set stream count differs from the index",
        )?;
        let pending = PendingAssignments::<T>::get();
        let queued: BTreeSet<_> = pending.iter().map(|p| p.stream).collect();
        ensure_state(queued.len() == pending.len(), "stream queued twice")?;
        for request in pending.iter() {
            ensure_state(
                !Assignments::<T>::contains_key(request.stream),
                "queued stream already assigned",
            )?;
            ensure_state(request.replication > 0, "queued stream without replication")?;
        }
        for (stream, heads) in StreamHeads::<T>::iter() {
            ensure_state(
                Assignments::<T>::contains_key(stream),
                "heads of a stream without assignment",
            )?;
            let attesters: BTreeSet<_> = heads.iter().map(|r| &r.operator).collect();
            ensure_state(
                attesters.len() == heads.len(),
                "two heads of one operator for a stream",
            )?;
        }
        let mut funds: BTreeMap<T::AccountId, BalanceOf<T>> = BTreeMap::new();
        for (_, account) in Hosting::<T>::iter() {
            ensure_state(
                account.quota_mb <= T::MaxQuotaMb::get(),
                "hosting quota above the maximum",
            )?;
            let sum = funds.entry(account.payer).or_default();
            *sum = sum.saturating_add(account.funds);
        }
        ensure_state(
            Assignments::<T>::iter_keys()
                .chain(queued.iter().copied())
                .all(Hosting::<T>::contains_key),
            "assigned or queued stream without hosting account",
        )?;
        for (payer, sum) in funds.iter() {
            ensure_state(
                T::Currency::balance_on_hold(&HoldReason::Hosting.into(), payer) == *sum,
                "held hosting funds differ from the accounts' funds",
            )?;
        }
        Ok(())
    }
}

fn ensure_state(condition: bool, message: &'static str) -> Result<(), TryRuntimeError> {
    if condition {
        Ok(())
    } else {
        Err(TryRuntimeError::Other(message))
    }
}

//! Pause, resume, leave with unbonding, withdraw, heartbeat and suspension.

use crate::*;
use frame_support::{
    pallet_prelude::*,
    traits::{fungible::MutateHold, tokens::Precision},
};
use sp_runtime::traits::Saturating;

impl<T: Config> Pallet<T> {
    /// Pauses the active operator `who`; returns the number of streams to reassign.
    pub(crate) fn do_pause(who: T::AccountId) -> Result<u32, DispatchError> {
        let mut info = Operators::<T>::get(&who).ok_or(Error::<T>::NotRegistered)?;
        ensure!(info.status == OperatorStatus::Active, Error::<T>::NotActive);
        info.status = OperatorStatus::Paused;
        Operators::<T>::insert(&who, info);
        let moved = Self::deactivate(&who);
        Self::deposit_event(Event::Paused { operator: who });
        Ok(moved)
    }

    /// Makes the paused or suspended operator `who` active again.
    pub(crate) fn do_resume(who: T::AccountId) -> DispatchResult {
        Operators::<T>::try_mutate(&who, |maybe| {
            let info = maybe.as_mut().ok_or(Error::<T>::NotRegistered)?;
            ensure!(
                matches!(
                    info.status,
                    OperatorStatus::Paused | OperatorStatus::Suspended
                ),
                Error::<T>::NotResumable
            );
            ensure!(info.stake >= T::MinStake::get(), Error::<T>::StakeTooLow);
            // An operator resuming before its replacements were drawn keeps its streams.
            Self::unqueue_reassignment(&who);
            let streams = StreamsOf::<T>::iter_prefix(&who).count() as u32;
            // Cannot fail: the active set is never larger than the registered count.
            let entry = ActiveOperator {
                who: who.clone(),
                stake: info.stake,
                streams,
                trust: Self::capped_trust(&who),
            };
            ActiveOperators::<T>::try_append(entry).map_err(|_| Error::<T>::TooManyOperators)?;
            info.status = OperatorStatus::Active;
            info.last_heartbeat = frame_system::Pallet::<T>::block_number();
            Self::deposit_event(Event::Resumed {
                operator: who.clone(),
            });
            Ok(())
        })
    }

    /// Starts the departure of `who`; returns the number of streams to reassign.
    pub(crate) fn do_leave(who: T::AccountId) -> Result<u32, DispatchError> {
        let mut info = Operators::<T>::get(&who).ok_or(Error::<T>::NotRegistered)?;
        ensure!(
            !matches!(info.status, OperatorStatus::Leaving { .. }),
            Error::<T>::OperatorLeaving
        );
        let was_active = info.status == OperatorStatus::Active;
        let unbonding_until =
            frame_system::Pallet::<T>::block_number().saturating_add(T::UnbondingPeriod::get());
        info.status = OperatorStatus::Leaving { unbonding_until };
        Operators::<T>::insert(&who, info);
        let moved = if was_active {
            Self::deactivate(&who)
        } else {
            0
        };
        Self::deposit_event(Event::LeaveStarted {
            operator: who,
            unbonding_until,
        });
        Ok(moved)
    }

    /// Releases the stake of the departed operator `who` and removes its record.
    pub(crate) fn do_withdraw(who: T::AccountId) -> DispatchResult {
        let info = Operators::<T>::get(&who).ok_or(Error::<T>::NotRegistered)?;
        let OperatorStatus::Leaving { unbonding_until } = info.status else {
            return Err(Error::<T>::NotLeaving.into());
        };
        ensure!(
            frame_system::Pallet::<T>::block_number() >= unbonding_until,
            Error::<T>::StillUnbonding
        );
        ensure!(
            StreamsOf::<T>::iter_prefix(&who).next().is_none(),
            Error::<T>::StillHosting
        );
        let released = T::Currency::release(
            &HoldReason::OperatorStake.into(),
            &who,
            info.stake,
            Precision::BestEffort,
        )?;
        Operators::<T>::remove(&who);
        // Checked above: its stream index is empty.
        OperatorCount::<T>::mutate(|count| *count = count.saturating_sub(1));
        Self::deposit_event(Event::Withdrawn {
            operator: who,
            stake: released,
        });
        Ok(())
    }

    /// Records a heartbeat of `who` and, if it is active, refreshes the trust score its
    /// assignment weight counts.
    pub(crate) fn do_heartbeat(who: T::AccountId) -> DispatchResult {
        Operators::<T>::try_mutate(&who, |maybe| {
            let info = maybe.as_mut().ok_or(Error::<T>::NotRegistered)?;
            match info.status {
                OperatorStatus::Active => {
                    let trust = Self::capped_trust(&who);
                    ActiveOperators::<T>::mutate(|active| {
                        if let Some(entry) = active.iter_mut().find(|e| e.who == who) {
                            entry.trust = trust;
                        }
                    });
                }
                OperatorStatus::Paused => {}
                OperatorStatus::Suspended => return Err(Error::<T>::OperatorSuspended.into()),
                OperatorStatus::Leaving { .. } => return Err(Error::<T>::OperatorLeaving.into()),
            }
            info.last_heartbeat = frame_system::Pallet::<T>::block_number();
            Self::deposit_event(Event::HeartbeatReceived {
                operator: who.clone(),
            });
            Ok(())
        })
    }

    /// Suspends the active or paused operator `who`; returns the number of streams to
    /// reassign.
    pub(crate) fn suspend(who: &T::AccountId, reason: SuspensionReason) -> u32 {
        let Some(mut info) = Operators::<T>::get(who) else {
            return 0;
        };
        let was_active = match info.status {
            OperatorStatus::Active => true,
            OperatorStatus::Paused => false,
            OperatorStatus::Suspended | OperatorStatus::Leaving { .. } => return 0,
        };
        info.status = OperatorStatus::Suspended;
        Operators::<T>::insert(who, info);
        let moved = if was_active { Self::deactivate(who) } else { 0 };
        Self::deposit_event(Event::Suspended {
            operator: who.clone(),
            reason,
        });
        moved
    }

    /// Removes `who` from the active set and queues the replacement on its streams.
    fn deactivate(who: &T::AccountId) -> u32 {
        ActiveOperators::<T>::mutate(|active| active.retain(|e| e.who != *who));
        Self::queue_reassignment(who)
    }

    /// Records the new stake of the active operator `who` in the active set.
    pub(crate) fn note_stake(who: &T::AccountId, stake: BalanceOf<T>) {
        ActiveOperators::<T>::mutate(|active| {
            if let Some(entry) = active.iter_mut().find(|e| e.who == *who) {
                entry.stake = stake;
            }
        });
    }
}

//! Liveness: `on_idle` suspends active operators whose heartbeats stopped.

use crate::*;
use frame_support::{pallet_prelude::*, weights::WeightMeter};
use frame_system::pallet_prelude::BlockNumberFor;
use sp_runtime::traits::Saturating;

impl<T: Config> Pallet<T> {
    /// Checks up to [`Config::MaxLivenessChecksPerBlock`] active operators, round robin from
    /// [`LivenessCursor`], and suspends those without a heartbeat for more than
    /// [`Config::HeartbeatTimeout`] blocks, as far as `meter` allows.
    pub(crate) fn check_liveness(now: BlockNumberFor<T>, meter: &mut WeightMeter) {
        let base = T::WeightInfo::check_liveness(0);
        if meter.try_consume(base).is_err() {
            return;
        }
        let active = ActiveOperators::<T>::get();
        let len = active.len() as u32;
        if len == 0 {
            return;
        }
        let per_check = T::WeightInfo::check_liveness(1).saturating_sub(base);
        let worst_suspension = T::WeightInfo::suspend_silent(T::MaxStreamsPerOperator::get());
        let timeout = T::HeartbeatTimeout::get();
        let start = LivenessCursor::<T>::get() % len;
        let (mut checked, mut suspended) = (0u32, 0u32);

        for offset in 0..T::MaxLivenessChecksPerBlock::get().min(len) {
            if !meter.can_consume(per_check) {
                break;
            }
            let index = start.saturating_add(offset) % len;
            let Some(who) = active.get(index as usize).map(|entry| &entry.who) else {
                break;
            };
            let silent = Operators::<T>::get(who).is_some_and(|info| {
                info.status == OperatorStatus::Active
                    && now.saturating_sub(info.last_heartbeat) > timeout
            });
            if silent {
                // Leave the operator for a later block if a worst-case suspension does not fit.
                if !meter.can_consume(per_check.saturating_add(worst_suspension)) {
                    break;
                }
                let moved = Self::suspend(who, SuspensionReason::MissedHeartbeats);
                meter.consume(T::WeightInfo::suspend_silent(moved));
                suspended.saturating_inc();
            }
            meter.consume(per_check);
            checked.saturating_inc();
        }

        // Suspended operators left the set, so the unchecked ones moved up by that many.
        let remaining = len.saturating_sub(suspended);
        let next = if remaining == 0 {
            0
        } else {
            start.saturating_add(checked).saturating_sub(suspended) % remaining
        };
        LivenessCursor::<T>::put(next);
    }
}

//! Automatic work: refunds at the key deadline, settlement of due periods and reaping, run
//! from `on_idle` within the block's spare weight.
//!
//! Every stored purchase has at most one [`Agenda`] entry, at the block recorded in its
//! `scheduled_at`. Processing an entry removes it, does whatever is due (one step: a refund,
//! one period's settlement, or reaping) and schedules the next entry. The agenda has no
//! per-block capacity to run out of: the work done per block is bounded by weight, and
//! anything left over stays behind the cursor for the next blocks.

use crate::*;
use fastdata_primitives::{escrow::PurchaseState, PurchaseId};
use frame_support::{
    storage::with_storage_layer,
    traits::Get,
    weights::{Weight, WeightMeter},
};
use frame_system::pallet_prelude::BlockNumberFor;
use sp_runtime::{
    traits::{One, Saturating},
    DispatchError,
};

/// Blocks after which a failed automatic step is tried again (the extrinsics can retry it
/// any time). Failures are not expected: they would mean a hold was changed behind the
/// pallet's back.
pub const RETRY_AFTER: u32 = 100;

impl<T: Config> Pallet<T> {
    /// Makes sure a stored purchase has its agenda entry, at its next due block (at least
    /// the next block). A disputed purchase is due at its dispute's deadline (and a stream's
    /// period boundaries are still recorded).
    pub(crate) fn ensure_scheduled(
        id: PurchaseId,
        purchase: &mut PurchaseOf<T>,
        now: BlockNumberFor<T>,
    ) {
        if purchase.scheduled_at.is_some() {
            return;
        }
        let Some(due) = purchase.next_due(T::ClaimGracePeriod::get(), T::RetentionPeriod::get())
        else {
            return;
        };
        let block = due.max(now.saturating_add(One::one()));
        Agenda::<T>::insert(block, id, ());
        purchase.scheduled_at = Some(block);
        if AgendaCursor::<T>::get().is_none() {
            AgendaCursor::<T>::put(now);
        }
    }

    /// Moves the agenda entry of a stored purchase to its current next due block (after a
    /// change of state that changes what is due next).
    pub(crate) fn reschedule(id: PurchaseId, purchase: &mut PurchaseOf<T>, now: BlockNumberFor<T>) {
        if let Some(at) = purchase.scheduled_at.take() {
            Agenda::<T>::remove(at, id);
        }
        Self::ensure_scheduled(id, purchase, now);
    }

    /// Weight of processing one agenda entry: the heaviest of the work it can do.
    pub fn agenda_entry_weight() -> Weight {
        T::WeightInfo::settle()
            .max(T::WeightInfo::refund_missing_keys())
            .max(T::WeightInfo::reap())
            .max(T::WeightInfo::resolve_dispute())
    }

    /// Walks the agenda from the cursor up to `now` within `limit`, processing due entries.
    /// Returns the weight used.
    pub(crate) fn process_agenda(now: BlockNumberFor<T>, limit: Weight) -> Weight {
        let mut meter = WeightMeter::with_limit(limit);
        let db = T::DbWeight::get();
        // Read and write of the cursor.
        if meter.try_consume(db.reads_writes(1, 1)).is_err() {
            return Weight::zero();
        }
        let Some(start) = AgendaCursor::<T>::get() else {
            return meter.consumed();
        };
        // Finding (and removing) an entry, then the work it is due for.
        let entry_weight = db
            .reads_writes(1, 1)
            .saturating_add(Self::agenda_entry_weight());
        let mut cursor = start;
        'blocks: while cursor <= now {
            // Looking at the block costs a read; only start if one entry could follow.
            if !meter.can_consume(db.reads(1).saturating_add(entry_weight)) {
                break;
            }
            meter.consume(db.reads(1));
            while let Some(id) = Agenda::<T>::iter_key_prefix(cursor).next() {
                if meter.try_consume(entry_weight).is_err() {
                    break 'blocks;
                }
                Agenda::<T>::remove(cursor, id);
                Self::process_entry(id, cursor, now);
            }
            let next = cursor.saturating_add(One::one());
            if next == cursor {
                break;
            }
            cursor = next;
        }
        if cursor != start {
            AgendaCursor::<T>::put(cursor);
        }
        meter.consumed()
    }

    /// Processes the agenda entry of purchase `id` at block `at` (already removed from the
    /// agenda): does what is due, in its own storage layer so that a failure changes
    /// nothing, and schedules the next entry (after a failure: [`RETRY_AFTER`] blocks later).
    pub(crate) fn process_entry(id: PurchaseId, at: BlockNumberFor<T>, now: BlockNumberFor<T>) {
        let Some(mut purchase) = Purchases::<T>::get(id) else {
            return;
        };
        if purchase.scheduled_at != Some(at) {
            return;
        }
        purchase.scheduled_at = None;
        let result = with_storage_layer(|| -> Result<Option<PurchaseOf<T>>, DispatchError> {
            let mut updated = purchase.clone();
            let kept = Self::do_due_work(id, &mut updated, now)?;
            Ok(kept.then_some(updated))
        });
        match result {
            Ok(Some(mut updated)) => {
                Self::ensure_scheduled(id, &mut updated, now);
                Purchases::<T>::insert(id, updated);
            }
            Ok(None) => {}
            Err(error) => {
                log::warn!(target: "runtime::escrow", "automatic work on purchase {id} failed: {error:?}");
                let retry = now.saturating_add(RETRY_AFTER.into());
                Agenda::<T>::insert(retry, id, ());
                purchase.scheduled_at = Some(retry);
                Purchases::<T>::insert(id, purchase);
                Self::deposit_event(Event::AutomaticWorkFailed {
                    purchase: id,
                    error,
                    retry_at: retry,
                });
            }
        }
    }

    /// Records the period boundaries that have come, then does the work `purchase` is due for
    /// at `now`, if any. Returns `false` if the purchase was reaped (removed from storage).
    pub(crate) fn do_due_work(
        id: PurchaseId,
        purchase: &mut PurchaseOf<T>,
        now: BlockNumberFor<T>,
    ) -> Result<bool, DispatchError> {
        if purchase.state.is_open() {
            Self::record_boundaries(purchase, now);
        }
        match purchase.state {
            PurchaseState::AwaitingKeys if now > purchase.schedule.key_deadline => {
                Self::refund_missing_keys_now(id, purchase, now)?;
            }
            PurchaseState::Active
                if now
                    >= purchase.settlement_due(
                        purchase.progress.settled_periods,
                        T::ClaimGracePeriod::get(),
                    ) =>
            {
                Self::settle_next_period(id, purchase, now)?;
            }
            PurchaseState::Disputed
                if purchase.dispute.as_ref().is_some_and(|d| now >= d.deadline) =>
            {
                Self::lapse_dispute(id, purchase, now)?;
            }
            PurchaseState::Settled | PurchaseState::Refunded if now >= Self::reap_due(purchase) => {
                Self::reap_purchase(id, purchase)?;
                return Ok(false);
            }
            _ => {}
        }
        Ok(true)
    }
}

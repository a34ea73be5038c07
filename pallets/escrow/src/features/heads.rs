//! Period boundaries of stream purchases: the attested stream head recorded at each.

use crate::*;
use fastdata_primitives::OperatorProvider;
use frame_system::pallet_prelude::BlockNumberFor;

impl<T: Config> Pallet<T> {
    /// Records the stream head at every period boundary of `purchase` that has come by
    /// `now` and fits in its list. The head is the
    /// attested one now (so a boundary recorded late counts what was published until it was
    /// recorded), never below the previous boundary's.
    pub(crate) fn record_boundaries(purchase: &mut PurchaseOf<T>, now: BlockNumberFor<T>) {
        let mut head = None;
        while let Some((_, at)) = purchase.next_boundary() {
            if at > now {
                break;
            }
            let attested =
                *head.get_or_insert_with(|| T::Operators::stream_head(&purchase.deal.stream));
            let floor = purchase.progress.heads.last().copied().unwrap_or_default();
            if purchase
                .progress
                .heads
                .try_push(attested.max(floor))
                .is_err()
            {
                break;
            }
        }
    }
}

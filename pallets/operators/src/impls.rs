//! Traits this pallet implements for other pallets: [`OperatorProvider`] for
//! `pallet-offers` and `pallet-escrow`.

use crate::*;
use alloc::vec::Vec;
use fastdata_primitives::{OperatorProvider, Sequence, StreamId};
use frame_support::traits::Get;
use sp_runtime::DispatchError;

impl<T: Config> OperatorProvider<T::AccountId, BalanceOf<T>> for Pallet<T> {
    fn is_active(who: &T::AccountId) -> bool {
        Operators::<T>::get(who).is_some_and(|info| info.status == OperatorStatus::Active)
    }

    fn price_per_mb(who: &T::AccountId) -> Option<BalanceOf<T>> {
        Operators::<T>::get(who).map(|info| info.price_per_mb)
    }

    fn request_assignment(
        stream: &StreamId,
        replication: u32,
        payer: &T::AccountId,
    ) -> Result<(), DispatchError> {
        Self::do_request_assignment(stream, replication)?;
        Self::open_hosting(stream, payer, replication);
        Ok(())
    }

    fn assigned(stream: &StreamId) -> Vec<T::AccountId> {
        Assignments::<T>::get(stream)
            .map(|a| a.into_inner())
            .unwrap_or_default()
    }

    fn release(stream: &StreamId) {
        Self::do_release(stream)
    }

    fn stream_head(stream: &StreamId) -> Sequence {
        Self::head_of(stream)
    }

    fn hosting(stream: &StreamId) -> Option<(u32, bool)> {
        Hosting::<T>::get(stream).map(|h| (h.quota_mb, Self::is_funded(&h)))
    }

    fn max_replication() -> u32 {
        T::MaxReplication::get()
    }
}

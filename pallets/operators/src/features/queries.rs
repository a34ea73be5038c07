//! Read-only queries for the runtime APIs (`fastdata_primitives::api_market::OperatorsApi`).

use crate::*;
use alloc::vec::Vec;
use fastdata_primitives::{api_market::OperatorView, StreamId, TrustProvider};
use frame_system::pallet_prelude::BlockNumberFor;

impl<T: Config> Pallet<T> {
    /// The operator `who` as shown to clients, with its trust score.
    pub fn operator_view(
        who: T::AccountId,
    ) -> Option<OperatorView<T::AccountId, BalanceOf<T>, BlockNumberFor<T>>> {
        let info = Operators::<T>::get(&who)?;
        let streams = ActiveOperators::<T>::get()
            .iter()
            .find(|e| e.who == who)
            .map_or(0, |e| e.streams);
        let trust_score = T::Trust::trust_score(&who);
        Some(OperatorView {
            account: who,
            stake: info.stake,
            broker_url: info.broker_url.into_inner(),
            http_url: info.http_url.into_inner(),
            price_per_mb: info.price_per_mb,
            status: info.status,
            last_heartbeat: info.last_heartbeat,
            streams,
            trust_score,
        })
    }

    /// Every registered operator (at most [`Config::MaxOperators`]).
    pub fn operator_views() -> Vec<OperatorView<T::AccountId, BalanceOf<T>, BlockNumberFor<T>>> {
        Operators::<T>::iter_keys()
            .filter_map(Self::operator_view)
            .collect()
    }

    /// The streams assigned to `who`: what its daemon must host.
    pub fn streams_of(who: &T::AccountId) -> Vec<StreamId> {
        StreamsOf::<T>::iter_key_prefix(who).collect()
    }

    /// The accounts of the active operators, in assignment order.
    pub fn active_operators() -> Vec<T::AccountId> {
        ActiveOperators::<T>::get()
            .into_iter()
            .map(|e| e.who)
            .collect()
    }

    /// `true` if `who` is assigned to `stream`.
    pub fn is_assigned(stream: &StreamId, who: &T::AccountId) -> bool {
        StreamsOf::<T>::contains_key(who, stream)
    }
}

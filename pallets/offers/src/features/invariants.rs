//! Storage invariants checked by `try_state` (and by every test).

use crate::*;
use alloc::collections::{BTreeMap, BTreeSet};
use fastdata_primitives::OperatorProvider;
use frame_support::traits::fungible::InspectHold;
use frame_support::traits::Get;
use sp_runtime::{traits::Saturating, TryRuntimeError};

impl<T: Config> Pallet<T> {
    /// Checks the pallet's invariants:
    /// - per seller, the held offer and stream deposits equal the sums of the recorded ones;
    /// - [`OffersBySeller`] lists exactly each seller's offers, and ids are below
    ///   [`NextOfferId`];
    /// - every stream belongs to an offer of the same seller that points back to it, stores
    ///   exactly the commitments of its retained epochs (at most `MaxRetainedEpochs`) and its
    ///   deposit covers them;
    /// - open streams have no operator twice, are not released; a released stream is closed
    ///   before it is released and has no operators.
    pub fn do_try_state() -> Result<(), TryRuntimeError> {
        let mut offer_deposits: BTreeMap<T::AccountId, BalanceOf<T>> = BTreeMap::new();
        let mut stream_deposits: BTreeMap<T::AccountId, BalanceOf<T>> = BTreeMap::new();
        let next = NextOfferId::<T>::get();

        for (id, offer) in Offers::<T>::iter() {
            ensure_state(id < next, "offer id at or above the next id")?;
            ensure_state(
                OffersBySeller::<T>::get(&offer.seller).contains(&id),
                "offer missing from its seller's index",
            )?;
            let sum = offer_deposits.entry(offer.seller.clone()).or_default();
            *sum = sum.saturating_add(offer.deposit);
            if let Some(stream_id) = offer.stream {
                let stream = Streams::<T>::get(stream_id);
                ensure_state(
                    stream.is_some_and(|s| s.offer == id && s.seller == offer.seller),
                    "offer points to a stream that is not its own",
                )?;
            }
        }
        for (seller, ids) in OffersBySeller::<T>::iter() {
            let unique: BTreeSet<_> = ids.iter().collect();
            ensure_state(unique.len() == ids.len(), "offer indexed twice")?;
            for id in ids.iter() {
                ensure_state(
                    Offers::<T>::get(id).is_some_and(|o| o.seller == seller),
                    "seller index lists a foreign or missing offer",
                )?;
            }
        }

        let mut commitments = 0u64;
        for (id, stream) in Streams::<T>::iter() {
            ensure_state(
                Offers::<T>::get(stream.offer).is_some_and(|o| o.stream == Some(id)),
                "stream of an offer that does not point to it",
            )?;
            ensure_state(
                stream.oldest_epoch <= stream.epoch,
                "oldest epoch after current",
            )?;
            match (stream.closed_at, stream.released_at) {
                (None, released) => {
                    ensure_state(released.is_none(), "open stream released")?;
                }
                (Some(closed), Some(released)) => {
                    ensure_state(released >= closed, "stream released before it closed")?;
                    ensure_state(
                        T::Operators::assigned(&id).is_empty(),
                        "released stream still assigned",
                    )?;
                }
                (Some(_), None) => {}
            }
            let retained = stream.retained_epochs();
            ensure_state(
                retained <= T::MaxRetainedEpochs::get(),
                "too many retained epochs",
            )?;
            for epoch in stream.oldest_epoch..=stream.epoch {
                ensure_state(
                    EpochCommitments::<T>::contains_key(id, epoch),
                    "retained epoch without commitment",
                )?;
            }
            commitments = commitments.saturating_add(u64::from(retained));
            let expected = T::StreamDeposit::get()
                .saturating_add(T::EpochDeposit::get().saturating_mul(retained.into()))
                .saturating_add(
                    T::ByteDeposit::get().saturating_mul((stream.name.len() as u32).into()),
                );
            ensure_state(
                stream.deposit == expected,
                "stream deposit does not cover the stream",
            )?;
            let sum = stream_deposits.entry(stream.seller.clone()).or_default();
            *sum = sum.saturating_add(stream.deposit);
            if stream.is_open() {
                let operators = T::Operators::assigned(&id);
                let unique: BTreeSet<_> = operators.iter().collect();
                ensure_state(unique.len() == operators.len(), "operator assigned twice")?;
            }
        }
        ensure_state(
            EpochCommitments::<T>::iter_keys().count() as u64 == commitments,
            "commitment outside the retained epochs of a stream",
        )?;

        let sellers: BTreeSet<T::AccountId> = offer_deposits
            .keys()
            .chain(stream_deposits.keys())
            .cloned()
            .collect();
        for seller in sellers {
            let offers_held =
                T::Currency::balance_on_hold(&HoldReason::OfferDeposit.into(), &seller);
            let streams_held =
                T::Currency::balance_on_hold(&HoldReason::StreamDeposit.into(), &seller);
            ensure_state(
                offers_held == offer_deposits.get(&seller).copied().unwrap_or_default(),
                "held offer deposits differ from recorded",
            )?;
            ensure_state(
                streams_held == stream_deposits.get(&seller).copied().unwrap_or_default(),
                "held stream deposits differ from recorded",
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

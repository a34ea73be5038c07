//! Issuers: registration, weight updates and removal by the issuer origin.

use crate::*;
use alloc::vec::Vec;
use frame_support::{ensure, pallet_prelude::*};
use sp_runtime::Perbill;

impl<T: Config> Pallet<T> {
    pub(crate) fn do_register_issuer(
        issuer: T::AccountId,
        name: Vec<u8>,
        weight: Perbill,
    ) -> DispatchResult {
        ensure!(
            !Issuers::<T>::contains_key(&issuer),
            Error::<T>::IssuerAlreadyRegistered
        );
        ensure!(!name.is_empty(), Error::<T>::EmptyIssuerName);
        let name: BoundedVec<u8, T::MaxIssuerNameLength> =
            name.try_into().map_err(|_| Error::<T>::IssuerNameTooLong)?;
        let count = IssuerCount::<T>::get();
        ensure!(count < T::MaxIssuers::get(), Error::<T>::TooManyIssuers);

        Issuers::<T>::insert(
            &issuer,
            IssuerInfo {
                name,
                weight,
                registered_at: frame_system::Pallet::<T>::block_number(),
            },
        );
        IssuerCount::<T>::put(count.saturating_add(1));
        Self::deposit_event(Event::IssuerRegistered { issuer, weight });
        Ok(())
    }

    pub(crate) fn do_set_issuer_weight(issuer: T::AccountId, weight: Perbill) -> DispatchResult {
        Issuers::<T>::try_mutate(&issuer, |info| -> DispatchResult {
            let info = info.as_mut().ok_or(Error::<T>::UnknownIssuer)?;
            ensure!(info.weight != weight, Error::<T>::IssuerWeightUnchanged);
            info.weight = weight;
            Ok(())
        })?;
        Self::deposit_event(Event::IssuerWeightUpdated { issuer, weight });
        Ok(())
    }

    pub(crate) fn do_remove_issuer(issuer: T::AccountId) -> DispatchResult {
        ensure!(
            Issuers::<T>::contains_key(&issuer),
            Error::<T>::UnknownIssuer
        );
        Issuers::<T>::remove(&issuer);
        IssuerCount::<T>::mutate(|count| *count = count.saturating_sub(1));
        Self::deposit_event(Event::IssuerRemoved { issuer });
        Ok(())
    }
}

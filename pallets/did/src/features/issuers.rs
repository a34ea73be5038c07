//! Issuers: registration, weight updates and removal by the issuer origin.

use crate::*;
use alloc::vec::Vec;
use frame_support::{ensure, pallet_prelude::*};
use sp_runtime::Perbill;

impl<T: Config> Pallet<T> {
    /// Registers `issuer` with `name` and reputation weight `weight`.
    pub(crate) fn do_register_issuer(
        issuer: T::AccountId,
        name: Vec<u8>,
        weight: Perbill,
    ) -> DispatchResult {
        ensure!(!name.is_empty(), Error::<T>::EmptyIssuerName);
        let name: BoundedVec<u8, T::MaxIssuerNameLength> =
            name.try_into().map_err(|_| Error::<T>::IssuerNameTooLong)?;
        Issuers::<T>::try_mutate(|issuers| -> DispatchResult {
            ensure!(
                !issuers.contains_key(&issuer),
                Error::<T>::IssuerAlreadyRegistered
            );
            let info = IssuerInfo {
                name,
                weight,
                registered_at: frame_system::Pallet::<T>::block_number(),
            };
            issuers
                .try_insert(issuer.clone(), info)
                .map_err(|_| Error::<T>::TooManyIssuers)?;
            Ok(())
        })?;
        Self::deposit_event(Event::IssuerRegistered { issuer, weight });
        Ok(())
    }

    /// Changes the reputation weight of the registered `issuer`.
    pub(crate) fn do_set_issuer_weight(issuer: T::AccountId, weight: Perbill) -> DispatchResult {
        Issuers::<T>::try_mutate(|issuers| -> DispatchResult {
            let info = issuers.get_mut(&issuer).ok_or(Error::<T>::UnknownIssuer)?;
            ensure!(info.weight != weight, Error::<T>::IssuerWeightUnchanged);
            info.weight = weight;
            Ok(())
        })?;
        Self::deposit_event(Event::IssuerWeightUpdated { issuer, weight });
        Ok(())
    }

    /// Removes the registered `issuer` (its credentials stop counting as valid).
    pub(crate) fn do_remove_issuer(issuer: T::AccountId) -> DispatchResult {
        Issuers::<T>::try_mutate(|issuers| -> DispatchResult {
            issuers
                .remove(&issuer)
                .map(drop)
                .ok_or(Error::<T>::UnknownIssuer.into())
        })?;
        Self::deposit_event(Event::IssuerRemoved { issuer });
        Ok(())
    }
}

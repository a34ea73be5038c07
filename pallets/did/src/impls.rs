//! Traits this pallet implements for other pallets: [`IdentityProvider`] for
//! `pallet-offers`, `pallet-escrow`, `pallet-trust` and the operator daemons.

use crate::*;
use alloc::vec::Vec;
use fastdata_primitives::{IdentityProvider, X25519Public};
use sp_runtime::Perbill;

impl<T: Config> IdentityProvider<T::AccountId> for Pallet<T> {
    fn is_verified(who: &T::AccountId) -> bool {
        Pallet::<T>::is_verified(who)
    }

    fn key_agreement_key(who: &T::AccountId) -> Option<X25519Public> {
        Pallet::<T>::key_agreement_key(who)
    }

    fn credential_weights(who: &T::AccountId) -> Vec<Perbill> {
        Pallet::<T>::credential_weights(who)
    }
}

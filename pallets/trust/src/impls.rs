//! Traits this pallet implements for other pallets: [`TrustProvider`] for `pallet-offers`,
//! `pallet-escrow` and `pallet-operators`, and [`Reputation`] (score and credibility).

use crate::*;
use fastdata_primitives::{Reputation, TrustProvider};

impl<T: Config> TrustProvider<T::AccountId> for Pallet<T> {
    fn trust_score(who: &T::AccountId) -> Score {
        Pallet::<T>::trust_score(who)
    }
}

impl<T: Config> Reputation<T::AccountId> for Pallet<T> {
    fn credibility(who: &T::AccountId) -> Score {
        Pallet::<T>::credibility(who)
    }
}

//! Read-only functions behind the runtime API
//! [`TrustApi`](fastdata_primitives::api_identity::TrustApi) and the traits in `impls.rs`.

use super::score::weight_sum;
use crate::*;
use alloc::vec::Vec;
use fastdata_primitives::{api_identity::ReputationInfo, IdentityProvider};

impl<T: Config> Pallet<T> {
    /// Credibility `Cr(who)` now (`TrustApi::credibility`).
    pub fn credibility(who: &T::AccountId) -> Score {
        let now = frame_system::Pallet::<T>::block_number();
        Self::credibility_with(who, T::Identity::is_verified(who), now)
    }

    /// Trust score `TS(who)` now (`TrustApi::trust_score`, eq. 2).
    pub fn trust_score(who: &T::AccountId) -> Score {
        let weights = T::Identity::credential_weights(who);
        if weights.is_empty() {
            // No valid credential: `Σ VI = 0`.
            return 0;
        }
        let now = frame_system::Pallet::<T>::block_number();
        // Holding a valid credential is what "verified" means for the prior.
        weight_sum(&weights).mul_floor(Self::credibility_with(who, true, now))
    }

    /// Trust scores of several accounts, in order (`TrustApi::trust_scores`).
    pub fn trust_scores(who: Vec<T::AccountId>) -> Vec<Score> {
        who.iter().map(Self::trust_score).collect()
    }

    /// Credibility, trust score and their parts (`TrustApi::reputation`).
    pub fn reputation(who: &T::AccountId) -> ReputationInfo {
        let now = frame_system::Pallet::<T>::block_number();
        let weights = T::Identity::credential_weights(who);
        let verified = T::Identity::is_verified(who);
        let credibility = Self::credibility_with(who, verified, now);
        let issuer_weight = weight_sum(&weights);
        ReputationInfo {
            credibility,
            trust_score: if weights.is_empty() {
                0
            } else {
                issuer_weight.mul_floor(credibility)
            },
            issuer_weight,
            verified,
            ratings_in_window: Self::window_totals(who, now).ratings,
        }
    }
}

//! Storage invariants checked by `try_state` (and by every test).

use crate::*;
use alloc::{collections::btree_map::BTreeMap, vec::Vec};
use frame_support::{ensure, traits::fungible::InspectHold};
use sp_runtime::{Saturating, TryRuntimeError};

impl<T: Config> Pallet<T> {
    /// Invariants:
    /// - every DID's recorded deposit is what is held from its controller for `DidDeposit`
    ///   and equals the deposit its services require;
    /// - every DID lists exactly the credentials stored under it, as they are (issuer,
    ///   attestation, expiry, revocation);
    /// - credentials exist only under active DIDs;
    /// - each issuer's `CredentialDeposit` hold equals the sum of its credentials' deposits.
    pub fn do_try_state() -> Result<(), TryRuntimeError> {
        for (who, doc) in Dids::<T>::iter() {
            ensure!(
                T::Currency::balance_on_hold(&HoldReason::DidDeposit.into(), &who) == doc.deposit,
                "DID deposit held differs from the recorded deposit"
            );
            ensure!(
                doc.deposit == Self::did_deposit(&doc.services),
                "DID deposit differs from what its services require"
            );
            let mut stored: Vec<CredentialStatusOf<T>> = Credentials::<T>::iter_prefix(&who)
                .map(|(id, c)| CredentialStatus {
                    id,
                    issuer: c.issuer,
                    issued_at: c.issued_at,
                    expires_at: c.expires_at,
                    revoked: c.revoked_at.is_some(),
                })
                .collect();
            let mut listed = doc.credentials.into_inner();
            stored.sort_by_key(|c| c.id);
            listed.sort_by_key(|c| c.id);
            ensure!(
                stored == listed,
                "DID's credential list differs from the stored credentials"
            );
        }

        let mut by_issuer: BTreeMap<T::AccountId, BalanceOf<T>> = BTreeMap::new();
        for (subject, _id, credential) in Credentials::<T>::iter() {
            ensure!(
                Dids::<T>::contains_key(&subject),
                "credential stored under no DID"
            );
            ensure!(
                credential.deposit == Self::credential_deposit(&credential.credential_type),
                "credential deposit differs from what its type requires"
            );
            let entry = by_issuer.entry(credential.issuer.clone()).or_default();
            *entry = entry.saturating_add(credential.deposit);
        }
        for (issuer, total) in by_issuer.iter() {
            ensure!(
                T::Currency::balance_on_hold(&HoldReason::CredentialDeposit.into(), issuer)
                    == *total,
                "credential deposits held differ from the recorded deposits"
            );
        }
        Ok(())
    }
}

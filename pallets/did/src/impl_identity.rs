//! What other pallets and users read: validity of credentials, `IdentityProvider`, the
//! `DidApi` runtime-API functions, and the `try_state` invariants.

use crate::*;
use alloc::vec::Vec;
use fastdata_primitives::{
    api_identity::{CredentialInfo, ServiceInfo},
    IdentityProvider, X25519Public,
};
use frame_system::pallet_prelude::BlockNumberFor;
use sp_runtime::Perbill;

impl<T: Config> Pallet<T> {
    /// The weight `VI` of `credential`'s issuer if the credential is valid at `now`: issuer
    /// among `issuers` (and not re-registered after the attestation), not revoked, not
    /// expired.
    pub fn valid_weight(
        credential: &CredentialStatusOf<T>,
        issuers: &IssuersOf<T>,
        now: BlockNumberFor<T>,
    ) -> Option<Perbill> {
        if !credential.is_live_at(&now) {
            return None;
        }
        issuers
            .get(&credential.issuer)
            .filter(|issuer| issuer.registered_at <= credential.issued_at)
            .map(|issuer| issuer.weight)
    }

    /// Issuer weights of `who`'s valid credentials, one per credential; `None` without an
    /// active DID. Reads the DID document and the issuers, whatever the credentials' number.
    fn weights_of(who: &T::AccountId) -> Option<impl Iterator<Item = Perbill>> {
        let doc = Dids::<T>::get(who)?;
        let issuers = Issuers::<T>::get();
        let now = frame_system::Pallet::<T>::block_number();
        Some(
            doc.credentials
                .into_iter()
                .filter_map(move |c| Self::valid_weight(&c, &issuers, now)),
        )
    }

    /// `who` has an active DID with at least one valid credential (`DidApi::is_verified`).
    pub fn is_verified(who: &T::AccountId) -> bool {
        Self::weights_of(who).is_some_and(|mut weights| weights.next().is_some())
    }

    /// The key-agreement key of `who`'s active DID (`DidApi::key_agreement_key`).
    pub fn key_agreement_key(who: &T::AccountId) -> Option<X25519Public> {
        Dids::<T>::get(who).map(|doc| doc.key_agreement)
    }

    /// Issuer weights of `who`'s valid credentials, one per credential; empty without an
    /// active DID.
    pub fn credential_weights(who: &T::AccountId) -> Vec<Perbill> {
        Self::weights_of(who).map_or_else(Vec::new, Iterator::collect)
    }

    /// The DID document of `who` with all its credentials (`DidApi::did_document`).
    pub fn did_document(who: &T::AccountId) -> Option<DidDocumentInfoOf<T>> {
        let doc = Dids::<T>::get(who)?;
        let now = frame_system::Pallet::<T>::block_number();
        let issuers = Issuers::<T>::get();
        let credentials: Vec<_> = doc
            .credentials
            .iter()
            .filter_map(|status| Some((status, Credentials::<T>::get(who, status.id)?)))
            .map(|(status, c)| {
                let weight = Self::valid_weight(status, &issuers, now);
                let id = status.id;
                CredentialInfo {
                    id,
                    issuer: c.issuer,
                    credential_type: c.credential_type.into_inner(),
                    claim_hash: c.claim_hash,
                    issued_at: c.issued_at,
                    expires_at: c.expires_at,
                    revoked_at: c.revoked_at,
                    valid: weight.is_some(),
                    issuer_weight: weight.unwrap_or_default(),
                }
            })
            .collect();
        Some(DidDocumentInfoOf::<T> {
            controller: who.clone(),
            key_agreement: doc.key_agreement,
            services: doc
                .services
                .into_iter()
                .map(|s| ServiceInfo {
                    id: s.id.into_inner(),
                    service_type: s.service_type.into_inner(),
                    endpoint: s.endpoint.into_inner(),
                })
                .collect(),
            verified: credentials.iter().any(|c| c.valid),
            credentials,
            created_at: doc.created_at,
            updated_at: doc.updated_at,
            deposit: doc.deposit,
        })
    }

    /// Invariants:
    /// - every DID's recorded deposit is what is held from its controller for `DidDeposit`
    ///   and equals the deposit its services require;
    /// - every DID lists exactly the credentials stored under it, as they are (issuer,
    ///   attestation, expiry, revocation);
    /// - credentials exist only under active DIDs;
    /// - each issuer's `CredentialDeposit` hold equals the sum of its credentials' deposits.
    #[cfg(any(feature = "try-runtime", test))]
    pub fn do_try_state() -> Result<(), sp_runtime::TryRuntimeError> {
        use alloc::collections::btree_map::BTreeMap;
        use frame_support::{ensure, traits::fungible::InspectHold};
        use sp_runtime::Saturating;

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

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
    /// registered (and not re-registered after the attestation), not revoked, not expired.
    pub fn valid_weight(credential: &CredentialOf<T>, now: BlockNumberFor<T>) -> Option<Perbill> {
        if !credential.is_live_at(&now) {
            return None;
        }
        Issuers::<T>::get(&credential.issuer)
            .filter(|issuer| issuer.registered_at <= credential.issued_at)
            .map(|issuer| issuer.weight)
    }

    /// `who` has an active DID with at least one valid credential (`DidApi::is_verified`).
    pub fn is_verified(who: &T::AccountId) -> bool {
        if !Dids::<T>::contains_key(who) {
            return false;
        }
        let now = frame_system::Pallet::<T>::block_number();
        Credentials::<T>::iter_prefix_values(who).any(|c| Self::valid_weight(&c, now).is_some())
    }

    /// The key-agreement key of `who`'s active DID (`DidApi::key_agreement_key`).
    pub fn key_agreement_key(who: &T::AccountId) -> Option<X25519Public> {
        Dids::<T>::get(who).map(|doc| doc.key_agreement)
    }

    /// Issuer weights of `who`'s valid credentials, one per credential; empty without an
    /// active DID.
    pub fn credential_weights(who: &T::AccountId) -> Vec<Perbill> {
        if !Dids::<T>::contains_key(who) {
            return Vec::new();
        }
        let now = frame_system::Pallet::<T>::block_number();
        Credentials::<T>::iter_prefix_values(who)
            .filter_map(|c| Self::valid_weight(&c, now))
            .collect()
    }

    /// The DID document of `who` with all its credentials (`DidApi::did_document`).
    pub fn did_document(who: &T::AccountId) -> Option<DidDocumentInfoOf<T>> {
        let doc = Dids::<T>::get(who)?;
        let now = frame_system::Pallet::<T>::block_number();
        let credentials: Vec<_> = Credentials::<T>::iter_prefix(who)
            .map(|(id, c)| {
                let weight = Self::valid_weight(&c, now);
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
    /// - every DID's credential count equals the credentials stored under it, within bounds;
    /// - credentials exist only under active DIDs;
    /// - each issuer's `CredentialDeposit` hold equals the sum of its credentials' deposits;
    /// - `IssuerCount` is the number of issuers, within bounds.
    #[cfg(any(feature = "try-runtime", test))]
    pub fn do_try_state() -> Result<(), sp_runtime::TryRuntimeError> {
        use alloc::collections::btree_map::BTreeMap;
        use frame_support::{ensure, pallet_prelude::Get, traits::fungible::InspectHold};
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
            let stored = Credentials::<T>::iter_prefix(&who).count() as u32;
            ensure!(
                stored == doc.credentials,
                "DID credential count differs from storage"
            );
            ensure!(
                doc.credentials <= T::MaxCredentialsPerDid::get(),
                "DID holds more than MaxCredentialsPerDid credentials"
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

        let issuers = Issuers::<T>::iter().count() as u32;
        ensure!(
            issuers == IssuerCount::<T>::get(),
            "IssuerCount differs from storage"
        );
        ensure!(
            issuers <= T::MaxIssuers::get(),
            "more than MaxIssuers issuers"
        );
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

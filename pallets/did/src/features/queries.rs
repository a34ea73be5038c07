//! Read-only functions: validity of credentials and the reads behind the runtime API
//! [`DidApi`](fastdata_primitives::api_identity::DidApi) and
//! [`IdentityProvider`](fastdata_primitives::IdentityProvider).

use crate::*;
use alloc::vec::Vec;
use fastdata_primitives::{
    api_identity::{CredentialInfo, ServiceInfo},
    X25519Public,
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
}

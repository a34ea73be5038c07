//! Identity: DIDs with an X25519 key-agreement key, issuers and credentials (`pallet-did`).

use fastdata_primitives::{
    api_identity::{DidDocumentInfo, ReputationInfo},
    AccountId, Balance, BlockNumber, Score, X25519Public,
};
use sp_core::H256;
use sp_runtime::Perbill;

use crate::{
    chain::{account32, fastdata, lookup, FastData, Included, RuntimeCall, RuntimeEvent, Unwrap},
    error::Error,
    keystore::Keystore,
};

/// A DID document as the runtime returns it.
pub type DidDocument = DidDocumentInfo<AccountId, Balance, BlockNumber>;

/// A service endpoint of a DID document, as `pallet-did::create_did` takes it (same SCALE
/// layout as `pallet_did::ServiceInput`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Service {
    /// Identifier inside the document, e.g. `broker`.
    pub id: Vec<u8>,
    /// Type, e.g. `MQTTBroker`.
    pub service_type: Vec<u8>,
    /// URL.
    pub endpoint: Vec<u8>,
}

impl Service {
    /// The generated form `Did::create_did` takes.
    fn input(self) -> fastdata::runtime_types::pallet_did::types::ServiceInput {
        fastdata::runtime_types::pallet_did::types::ServiceInput {
            id: self.id,
            service_type: self.service_type,
            endpoint: self.endpoint,
        }
    }
}

impl FastData {
    /// Creates the acting account's DID with a fresh X25519 key-agreement key. The secret is
    /// written to `keystore` (and saved) **before** the transaction is sent, so it cannot be
    /// lost. Returns the public key.
    pub async fn create_did(
        &self,
        keystore: &mut Keystore,
        services: Vec<Service>,
    ) -> Result<X25519Public, Error> {
        let (secret, public) = fastdata_primitives::sealed::generate_x25519_keypair();
        keystore.add_x25519(&self.account().account_id(), &secret);
        keystore.save()?;
        let services = services.into_iter().map(Service::input).collect();
        self.submit(fastdata::tx().did().create_did(public, services))
            .await?;
        Ok(public)
    }

    /// Rotates the DID's key-agreement key to a fresh one (the old secret stays in the
    /// keystore so keys sealed to it still open).
    pub async fn rotate_key_agreement(
        &self,
        keystore: &mut Keystore,
    ) -> Result<X25519Public, Error> {
        let (secret, public) = fastdata_primitives::sealed::generate_x25519_keypair();
        keystore.add_x25519(&self.account().account_id(), &secret);
        keystore.save()?;
        self.submit(fastdata::tx().did().rotate_key_agreement(public))
            .await?;
        Ok(public)
    }

    /// Deactivates the acting account's DID.
    pub async fn deactivate_did(&self) -> Result<Included, Error> {
        self.submit(fastdata::tx().did().deactivate_did()).await
    }

    /// The DID document of `who`.
    pub async fn did_document(&self, who: &AccountId) -> Result<Option<DidDocument>, Error> {
        let api = fastdata::runtime_apis()
            .did_api()
            .did_document(account32(who));
        Ok(self.api(api).await?.unwrap_static())
    }

    /// `who` has an active DID with a valid credential.
    pub async fn is_verified(&self, who: &AccountId) -> Result<bool, Error> {
        self.api(
            fastdata::runtime_apis()
                .did_api()
                .is_verified(account32(who)),
        )
        .await
    }

    /// The X25519 key-agreement key of `who`'s DID.
    pub async fn key_agreement_key(&self, who: &AccountId) -> Result<Option<X25519Public>, Error> {
        let api = fastdata::runtime_apis()
            .did_api()
            .key_agreement_key(account32(who));
        self.api(api).await
    }

    /// Trust score `TS(who)` ([`fastdata_primitives::SCORE_ONE`] = 1.0).
    pub async fn trust_score(&self, who: &AccountId) -> Result<Score, Error> {
        self.api(
            fastdata::runtime_apis()
                .trust_api()
                .trust_score(account32(who)),
        )
        .await
    }

    /// Credibility, trust score and their parts.
    pub async fn reputation(&self, who: &AccountId) -> Result<ReputationInfo, Error> {
        let api = fastdata::runtime_apis()
            .trust_api()
            .reputation(account32(who));
        Ok(self.api(api).await?.unwrap_static())
    }

    /// As a registered issuer, attests a credential of `credential_type` to `subject`'s DID,
    /// committing to the off-chain claim by `claim_hash`, valid until block `expires_at`.
    /// Returns the credential id.
    pub async fn attest_credential(
        &self,
        subject: &AccountId,
        credential_type: &[u8],
        claim_hash: H256,
        expires_at: BlockNumber,
    ) -> Result<H256, Error> {
        let included = self
            .submit(fastdata::tx().did().attest_credential(
                lookup(subject),
                credential_type.to_vec(),
                claim_hash,
                expires_at,
            ))
            .await?;
        included.event("Did::CredentialAttested", |e| match e {
            RuntimeEvent::Did(fastdata::did::Event::CredentialAttested { id, .. }) => Some(*id),
            _ => None,
        })
    }

    /// As the issuer, revokes credential `id` of `subject`.
    pub async fn revoke_credential(
        &self,
        subject: &AccountId,
        id: H256,
    ) -> Result<Included, Error> {
        self.submit(fastdata::tx().did().revoke_credential(lookup(subject), id))
            .await
    }

    /// As holder or issuer, removes credential `id` of `subject`.
    pub async fn remove_credential(
        &self,
        subject: &AccountId,
        id: H256,
    ) -> Result<Included, Error> {
        self.submit(fastdata::tx().did().remove_credential(lookup(subject), id))
            .await
    }

    /// Registers `issuer` with weight `weight` through `Sudo::sudo` (dev chains: the acting
    /// account must be the sudo key; production chains use governance instead).
    pub async fn sudo_register_issuer(
        &self,
        issuer: &AccountId,
        name: &[u8],
        weight: Perbill,
    ) -> Result<Included, Error> {
        let call = RuntimeCall::Did(fastdata::did::Call::register_issuer {
            issuer: lookup(issuer),
            name: name.to_vec(),
            weight: fastdata::runtime_types::sp_arithmetic::per_things::Perbill(
                weight.deconstruct(),
            ),
        });
        self.submit(fastdata::tx().sudo().sudo(call)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use codec::Encode;

    #[test]
    fn lookup_is_multiaddress_id() {
        let who = AccountId::new([3; 32]);
        let mut expected = vec![0u8];
        expected.extend_from_slice(&[3; 32]);
        assert_eq!(lookup(&who).encode(), expected);
    }
}

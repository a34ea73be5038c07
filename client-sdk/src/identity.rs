//! Identity: DIDs with an X25519 key-agreement key, issuers and credentials (`pallet-did`).

use codec::Encode;
use fastdata_primitives::{
    api_identity::{DidDocumentInfo, ReputationInfo},
    AccountId, Balance, BlockNumber, Score, X25519Public,
};
use sp_core::H256;
use sp_runtime::{MultiAddress, Perbill};

use crate::{
    chain::{arg, FastData, Included},
    error::Error,
    keystore::Keystore,
};

/// A DID document as the runtime returns it.
pub type DidDocument = DidDocumentInfo<AccountId, Balance, BlockNumber>;

/// A service endpoint of a DID document, as `pallet-did::create_did` takes it (same SCALE
/// layout as `pallet_did::ServiceInput`).
#[derive(Clone, Debug, PartialEq, Eq, Encode)]
pub struct Service {
    /// Identifier inside the document, e.g. `broker`.
    pub id: Vec<u8>,
    /// Type, e.g. `MQTTBroker`.
    pub service_type: Vec<u8>,
    /// URL.
    pub endpoint: Vec<u8>,
}

/// A call encoded by hand (pallet index, call index, arguments), passed where the runtime
/// expects a `RuntimeCall` (e.g. `Sudo::sudo`).
pub struct RawCall(pub Vec<u8>);

impl Encode for RawCall {
    fn size_hint(&self) -> usize {
        self.0.len()
    }
    fn encode_to<W: codec::Output + ?Sized>(&self, dest: &mut W) {
        dest.write(&self.0);
    }
}

/// The `MultiAddress` form of an account, as calls taking an `AccountIdLookup` want it.
pub fn lookup(who: &AccountId) -> MultiAddress<AccountId, ()> {
    MultiAddress::Id(who.clone())
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
        self.submit("Did", "create_did", (arg(public), arg(services)))
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
        self.submit("Did", "rotate_key_agreement", (arg(public),))
            .await?;
        Ok(public)
    }

    /// Deactivates the acting account's DID.
    pub async fn deactivate_did(&self) -> Result<Included, Error> {
        self.submit("Did", "deactivate_did", ()).await
    }

    /// The DID document of `who`.
    pub async fn did_document(&self, who: &AccountId) -> Result<Option<DidDocument>, Error> {
        self.runtime_api("DidApi_did_document", who).await
    }

    /// `who` has an active DID with a valid credential.
    pub async fn is_verified(&self, who: &AccountId) -> Result<bool, Error> {
        self.runtime_api("DidApi_is_verified", who).await
    }

    /// The X25519 key-agreement key of `who`'s DID.
    pub async fn key_agreement_key(&self, who: &AccountId) -> Result<Option<X25519Public>, Error> {
        self.runtime_api("DidApi_key_agreement_key", who).await
    }

    /// Trust score `TS(who)` ([`fastdata_primitives::SCORE_ONE`] = 1.0).
    pub async fn trust_score(&self, who: &AccountId) -> Result<Score, Error> {
        self.runtime_api("TrustApi_trust_score", who).await
    }

    /// Credibility, trust score and their parts.
    pub async fn reputation(&self, who: &AccountId) -> Result<ReputationInfo, Error> {
        self.runtime_api("TrustApi_reputation", who).await
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
            .submit(
                "Did",
                "attest_credential",
                (
                    arg(lookup(subject)),
                    arg(credential_type.to_vec()),
                    arg(claim_hash),
                    arg(expires_at),
                ),
            )
            .await?;
        let (_subject, _issuer, id): (AccountId, AccountId, H256) =
            included.decode_event("Did", "CredentialAttested")?;
        Ok(id)
    }

    /// As the issuer, revokes credential `id` of `subject`.
    pub async fn revoke_credential(
        &self,
        subject: &AccountId,
        id: H256,
    ) -> Result<Included, Error> {
        self.submit("Did", "revoke_credential", (arg(lookup(subject)), arg(id)))
            .await
    }

    /// As holder or issuer, removes credential `id` of `subject`.
    pub async fn remove_credential(
        &self,
        subject: &AccountId,
        id: H256,
    ) -> Result<Included, Error> {
        self.submit("Did", "remove_credential", (arg(lookup(subject)), arg(id)))
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
        let call = self
            .encode_call(
                "Did",
                "register_issuer",
                (lookup(issuer), name.to_vec(), weight).encode(),
            )
            .await?;
        self.submit("Sudo", "sudo", (arg(RawCall(call)),)).await
    }

    /// Encodes `pallet::call` with SCALE-encoded `args` as a `RuntimeCall`, looking up the
    /// pallet and call indices in the node's metadata.
    pub async fn encode_call(
        &self,
        pallet: &str,
        call: &str,
        args: Vec<u8>,
    ) -> Result<Vec<u8>, Error> {
        let metadata = self.current_block().await?.metadata();
        crate::chain::encode_call(&metadata, pallet, call, &args)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_call_encodes_without_length_prefix() {
        assert_eq!(RawCall(vec![50, 4, 9]).encode(), vec![50, 4, 9]);
    }

    #[test]
    fn service_layout_is_three_byte_vectors() {
        let s = Service {
            id: b"a".to_vec(),
            service_type: b"bc".to_vec(),
            endpoint: b"d".to_vec(),
        };
        assert_eq!(
            s.encode(),
            (b"a".to_vec(), b"bc".to_vec(), b"d".to_vec()).encode()
        );
    }

    #[test]
    fn lookup_is_multiaddress_id() {
        let who = AccountId::new([3; 32]);
        let mut expected = vec![0u8];
        expected.extend_from_slice(&[3; 32]);
        assert_eq!(lookup(&who).encode(), expected);
    }
}

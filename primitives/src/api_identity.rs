//! Runtime APIs of identity and trust: what wallets, listings (polkadot.js apps, the SDK on
//! subxt) and operator daemons ask about an account.
//!
//! `pallet-did` and `pallet-trust` each have a public function per method (same name) that
//! the runtime's `impl_runtime_apis!` calls.

use alloc::vec::Vec;
use codec::{Codec, Decode, Encode};
use scale_info::TypeInfo;
use sp_core::H256;
use sp_runtime::Perbill;

use crate::{Score, X25519Public};

/// A service endpoint of a DID document.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, TypeInfo)]
pub struct ServiceInfo {
    /// Identifier of the service inside the document.
    pub id: Vec<u8>,
    /// Type of the service (e.g. `MQTTBroker`).
    pub service_type: Vec<u8>,
    /// URL of the service.
    pub endpoint: Vec<u8>,
}

/// A credential held by a DID, as shown to users.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, TypeInfo)]
pub struct CredentialInfo<AccountId, BlockNumber> {
    /// Credential identifier (`blake2_256(b"fastdata/credential" ‖ issuer ‖ subject ‖ type)`).
    pub id: H256,
    /// The issuer.
    pub issuer: AccountId,
    /// Credential type, e.g. `KYC`.
    pub credential_type: Vec<u8>,
    /// Hash of the off-chain claim.
    pub claim_hash: H256,
    /// Block of attestation.
    pub issued_at: BlockNumber,
    /// First block at which it is expired.
    pub expires_at: BlockNumber,
    /// Block of revocation, if revoked.
    pub revoked_at: Option<BlockNumber>,
    /// Counts now: issued by a currently registered issuer, not revoked, not expired.
    pub valid: bool,
    /// Reputation weight `VI` of the issuer if the credential is valid, zero otherwise.
    pub issuer_weight: Perbill,
}

/// The DID document `did:fast:<ss58 of controller>` with its credentials.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, TypeInfo)]
pub struct DidDocumentInfo<AccountId, Balance, BlockNumber> {
    /// The controlling account (its sr25519 key is the authentication key). The DID string
    /// is `did:fast:` followed by this account in SS58.
    pub controller: AccountId,
    /// X25519 key-agreement public key.
    pub key_agreement: X25519Public,
    /// Service endpoints.
    pub services: Vec<ServiceInfo>,
    /// Credentials stored for the DID, valid or not.
    pub credentials: Vec<CredentialInfo<AccountId, BlockNumber>>,
    /// Holds at least one valid credential.
    pub verified: bool,
    /// Block of creation.
    pub created_at: BlockNumber,
    /// Block of the last update.
    pub updated_at: BlockNumber,
    /// Deposit held for the document.
    pub deposit: Balance,
}

/// Reputation of an account (pallet-trust).
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, TypeInfo)]
pub struct ReputationInfo {
    /// Credibility `Cr` (eq. 1), [`crate::SCORE_ONE`] = 1.0.
    pub credibility: Score,
    /// Trust score `TS` (eq. 2), [`crate::SCORE_ONE`] = 1.0.
    pub trust_score: Score,
    /// `min(1, Σ_k VI(k,u))` over the account's valid credentials.
    pub issuer_weight: Perbill,
    /// The account holds at least one valid credential.
    pub verified: bool,
    /// Ratings of the account inside the current window (including zero-weight ones).
    pub ratings_in_window: u32,
}

sp_api::decl_runtime_apis! {
    /// Decentralized identifiers (`pallet-did`).
    pub trait DidApi<AccountId, Balance, BlockNumber>
    where
        AccountId: Codec,
        Balance: Codec,
        BlockNumber: Codec,
    {
        /// The DID document of `who`, if `who` has an active DID.
        fn did_document(who: AccountId) -> Option<DidDocumentInfo<AccountId, Balance, BlockNumber>>;
        /// `who` has an active DID with at least one valid credential.
        fn is_verified(who: AccountId) -> bool;
        /// The X25519 key-agreement key of `who`'s active DID.
        fn key_agreement_key(who: AccountId) -> Option<X25519Public>;
    }

    /// Trust scores (`pallet-trust`).
    pub trait TrustApi<AccountId>
    where
        AccountId: Codec,
    {
        /// Trust score `TS(who)` (eq. 2).
        fn trust_score(who: AccountId) -> Score;
        /// Credibility `Cr(who)` (eq. 1).
        fn credibility(who: AccountId) -> Score;
        /// Credibility, trust score and what they are made of.
        fn reputation(who: AccountId) -> ReputationInfo;
        /// Trust scores of several accounts at once (e.g. the sellers of a listing), in order.
        fn trust_scores(who: Vec<AccountId>) -> Vec<Score>;
    }
}

//! Types stored by the DID pallet and the inputs of its calls.

use alloc::vec::Vec;
use codec::{Decode, DecodeWithMemTracking, Encode, MaxEncodedLen};
use fastdata_primitives::X25519Public;
use frame_support::{
    pallet_prelude::Get, BoundedVec, CloneNoBound, DebugNoBound, EqNoBound, PartialEqNoBound,
};
use scale_info::TypeInfo;
use sp_core::H256;
use sp_runtime::{
    traits::{BlakeTwo256, Hash, Saturating},
    Perbill,
};

/// Identifier of a credential: `blake2_256(b"fastdata/credential" ‖ issuer ‖ subject ‖ type)`
/// over the SCALE encodings, see [`credential_id`]. An issuer can hold at most one credential
/// of a given type on a given DID.
pub type CredentialId = H256;

/// Domain separator of [`credential_id`].
pub const CREDENTIAL_ID_DOMAIN: &[u8] = b"fastdata/credential";

/// The identifier of the credential of type `credential_type` that `issuer` attests to
/// `subject`. Off-chain tools compute the same value to refer to a credential.
pub fn credential_id<AccountId: Encode>(
    issuer: &AccountId,
    subject: &AccountId,
    credential_type: &[u8],
) -> CredentialId {
    BlakeTwo256::hash(&(CREDENTIAL_ID_DOMAIN, issuer, subject, credential_type).encode())
}

/// A service endpoint as given to `create_did` and `set_services` (unbounded on input, so an
/// oversized field is rejected with a specific error instead of a decoding failure).
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, DecodeWithMemTracking, TypeInfo)]
pub struct ServiceInput {
    /// Identifier of the service inside the document, e.g. `b"broker"`.
    pub id: Vec<u8>,
    /// Type of the service, e.g. `b"MQTTBroker"` or `b"LinkedDomains"`.
    pub service_type: Vec<u8>,
    /// Where the service is reached, e.g. `b"mqtts://broker.example.com:8883"`.
    pub endpoint: Vec<u8>,
}

/// A service endpoint of a DID document (W3C DID Core `service`), bounded.
#[derive(
    CloneNoBound,
    PartialEqNoBound,
    EqNoBound,
    DebugNoBound,
    Encode,
    Decode,
    DecodeWithMemTracking,
    MaxEncodedLen,
    TypeInfo,
)]
#[scale_info(skip_type_params(MaxLen, MaxUrl))]
#[codec(mel_bound())]
pub struct ServiceEndpoint<MaxLen: Get<u32>, MaxUrl: Get<u32>> {
    /// Identifier of the service, unique inside the document.
    pub id: BoundedVec<u8, MaxLen>,
    /// Type of the service.
    pub service_type: BoundedVec<u8, MaxLen>,
    /// URL of the service.
    pub endpoint: BoundedVec<u8, MaxUrl>,
}

/// What checking a DID needs of one of its credentials, kept in the DID document so that
/// [`fastdata_primitives::IdentityProvider::is_verified`] reads one record per account (the
/// whole credential stays in `Credentials`).
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, MaxEncodedLen, TypeInfo)]
pub struct CredentialStatus<AccountId, BlockNumber> {
    /// The credential's id.
    pub id: CredentialId,
    /// Its issuer.
    pub issuer: AccountId,
    /// Block of attestation.
    pub issued_at: BlockNumber,
    /// First block at which it is expired.
    pub expires_at: BlockNumber,
    /// Revoked by its issuer.
    pub revoked: bool,
}

impl<AccountId, BlockNumber: PartialOrd> CredentialStatus<AccountId, BlockNumber> {
    /// Not revoked and not expired at block `now` (issuer registration is checked by the
    /// pallet).
    pub fn is_live_at(&self, now: &BlockNumber) -> bool {
        !self.revoked && *now < self.expires_at
    }
}

/// The DID document of `did:fast:<ss58 of the controller>`, stored under the controller.
///
/// The authentication key is the controlling sr25519 account itself; the X25519
/// key-agreement key is the one buyers' sealed data keys are encrypted to.
#[derive(
    CloneNoBound, PartialEqNoBound, EqNoBound, DebugNoBound, Encode, Decode, MaxEncodedLen, TypeInfo,
)]
#[scale_info(skip_type_params(MaxServices, MaxLen, MaxUrl, MaxCredentials))]
#[codec(mel_bound(
    AccountId: MaxEncodedLen,
    Balance: MaxEncodedLen,
    BlockNumber: MaxEncodedLen
))]
pub struct DidDocument<
    AccountId: Clone + PartialEq + Eq + core::fmt::Debug,
    Balance: Clone + PartialEq + Eq + core::fmt::Debug,
    BlockNumber: Clone + PartialEq + Eq + core::fmt::Debug,
    MaxServices: Get<u32>,
    MaxLen: Get<u32>,
    MaxUrl: Get<u32>,
    MaxCredentials: Get<u32>,
> {
    /// The X25519 key-agreement public key.
    pub key_agreement: X25519Public,
    /// Service endpoints.
    pub services: BoundedVec<ServiceEndpoint<MaxLen, MaxUrl>, MaxServices>,
    /// The credentials stored for this DID (valid or not), as verification needs them.
    pub credentials: BoundedVec<CredentialStatus<AccountId, BlockNumber>, MaxCredentials>,
    /// Block at which the DID was created.
    pub created_at: BlockNumber,
    /// Block of the last change of keys or services.
    pub updated_at: BlockNumber,
    /// Deposit held from the controller for this document.
    pub deposit: Balance,
}

/// A credential issuer (KYC body, chamber of commerce, certification authority …),
/// registered by governance.
#[derive(
    CloneNoBound, PartialEqNoBound, EqNoBound, DebugNoBound, Encode, Decode, MaxEncodedLen, TypeInfo,
)]
#[scale_info(skip_type_params(MaxName))]
#[codec(mel_bound(BlockNumber: MaxEncodedLen))]
pub struct IssuerInfo<BlockNumber: Clone + PartialEq + Eq + core::fmt::Debug, MaxName: Get<u32>> {
    /// Human-readable name.
    pub name: BoundedVec<u8, MaxName>,
    /// Reputation weight `VI` of the issuer (eq. 2 of the paper).
    pub weight: Perbill,
    /// Block at which the issuer was (last) registered. Credentials it issued before this
    /// block never count, so removing and re-registering an issuer does not revive them.
    pub registered_at: BlockNumber,
}

/// A credential attested by an issuer to a DID.
#[derive(
    CloneNoBound, PartialEqNoBound, EqNoBound, DebugNoBound, Encode, Decode, MaxEncodedLen, TypeInfo,
)]
#[scale_info(skip_type_params(MaxType))]
#[codec(mel_bound(AccountId: MaxEncodedLen, Balance: MaxEncodedLen, BlockNumber: MaxEncodedLen))]
pub struct Credential<
    AccountId: Clone + PartialEq + Eq + core::fmt::Debug,
    Balance: Clone + PartialEq + Eq + core::fmt::Debug,
    BlockNumber: Clone + PartialEq + Eq + core::fmt::Debug,
    MaxType: Get<u32>,
> {
    /// The issuer who attested it (and paid its deposit).
    pub issuer: AccountId,
    /// Credential type, e.g. `b"KYC"` or `b"ISO27001"`.
    pub credential_type: BoundedVec<u8, MaxType>,
    /// Hash of the off-chain claim (the credential document itself never goes on chain).
    pub claim_hash: H256,
    /// Block of attestation.
    pub issued_at: BlockNumber,
    /// First block at which the credential is expired.
    pub expires_at: BlockNumber,
    /// Block of revocation by the issuer, if revoked.
    pub revoked_at: Option<BlockNumber>,
    /// Deposit held from the issuer.
    pub deposit: Balance,
}

/// `base + per_byte × bytes`, saturating.
pub fn linear_deposit<Balance: Saturating + From<u32> + Copy>(
    base: Balance,
    per_byte: Balance,
    bytes: usize,
) -> Balance {
    let bytes = Balance::from(u32::try_from(bytes).unwrap_or(u32::MAX));
    base.saturating_add(per_byte.saturating_mul(bytes))
}

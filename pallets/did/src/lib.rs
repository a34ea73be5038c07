//! # DID pallet
//!
//! Decentralized identifiers for the FAST DATA marketplace: who may sell, who is a verified
//! buyer, and where sealed data keys are sent.
//!
//! ## DIDs
//!
//! Every account may control one DID, `did:fast:<ss58 of the account>`. Its document holds
//!
//! - the **authentication key**: the controlling sr25519 account itself (every call is signed
//!   with it),
//! - an **X25519 key-agreement key**: buyers receive the sealed per-epoch data keys
//!   (`k_e`, `k_m`) encrypted to it, so it is rotated with [`Pallet::rotate_key_agreement`],
//! - up to [`Config::MaxServices`] **service endpoints** (id, type, URL).
//!
//! Creating a DID holds `DidDeposit + ByteDeposit × (encoded size of the services)` from the
//! controller; [`Pallet::set_services`] adjusts the hold to the new size;
//! [`Pallet::deactivate_did`] removes the document and all its credentials and releases every
//! deposit.
//!
//! ## Issuers and credentials
//!
//! Issuers (KYC bodies, chambers of commerce, certification authorities) are registered by
//! [`Config::IssuerOrigin`] with a name and a reputation weight `VI` ([`Perbill`]). An issuer
//! attests a credential to a DID: a type (e.g. `KYC`), the hash of the off-chain claim, and
//! an expiry block; the issuer pays `CredentialDeposit + ByteDeposit × type length`. The issuer
//! can revoke it (it stays visible, marked revoked); the holder or the issuer can remove it,
//! which returns the deposit to the issuer.
//!
//! A credential is **valid** at block `n` when its issuer is registered and was registered
//! at or before the attestation, it is not revoked, and `n < expires_at`. Invalid credentials
//! never count. An account is **verified** when it has an active DID holding at least one
//! valid credential. Other pallets read these facts through
//! [`fastdata_primitives::IdentityProvider`]; users through the `DidApi` runtime API
//! ([`Pallet::did_document`], [`Pallet::is_verified`], [`Pallet::key_agreement_key`]).
//!
//! Issuers are registered by governance and bounded by [`Config::MaxIssuers`], so they carry
//! no deposit (as registrars in `pallet-identity`).
#![cfg_attr(not(feature = "std"), no_std)]

extern crate alloc;

pub use pallet::*;

#[cfg(feature = "runtime-benchmarks")]
mod benchmarking;
mod features;
mod impls;
#[cfg(test)]
mod mock;
#[cfg(test)]
mod tests;
pub mod types;
pub mod weights;

pub use types::*;
pub use weights::WeightInfo;

const LOG_TARGET: &str = "runtime::did";

// FRAME's expansion of `#[pallet::pallet]`, `#[pallet::storage]` and `#[pallet::error]` calls
// `expect` on values it built itself; the pallet's own logic lives outside this module
// (`features/`, `impls.rs`), where `clippy::expect_used` stays on.
#[allow(clippy::expect_used)]
#[frame_support::pallet]
pub mod pallet {
    use super::*;
    use alloc::vec::Vec;
    use fastdata_primitives::{api_identity::DidDocumentInfo, X25519Public};
    use frame_support::{
        pallet_prelude::*,
        traits::fungible::{Inspect, Mutate, MutateHold},
        BoundedBTreeMap,
    };
    use frame_system::pallet_prelude::*;
    use sp_core::H256;
    use sp_runtime::{traits::StaticLookup, Perbill};

    /// The balance type of the pallet's currency.
    pub type BalanceOf<T> =
        <<T as Config>::Currency as Inspect<<T as frame_system::Config>::AccountId>>::Balance;
    /// A DID document as stored.
    pub type DidDocumentOf<T> = DidDocument<
        <T as frame_system::Config>::AccountId,
        BalanceOf<T>,
        BlockNumberFor<T>,
        <T as Config>::MaxServices,
        <T as Config>::MaxServiceFieldLength,
        <T as Config>::MaxServiceUrlLength,
        <T as Config>::MaxCredentialsPerDid,
    >;
    /// What the DID document keeps of a credential.
    pub type CredentialStatusOf<T> =
        CredentialStatus<<T as frame_system::Config>::AccountId, BlockNumberFor<T>>;
    /// The registered issuers, one value (verification reads it once).
    pub type IssuersOf<T> = BoundedBTreeMap<
        <T as frame_system::Config>::AccountId,
        IssuerInfoOf<T>,
        <T as Config>::MaxIssuers,
    >;
    /// A bounded service endpoint.
    pub type ServiceEndpointOf<T> =
        ServiceEndpoint<<T as Config>::MaxServiceFieldLength, <T as Config>::MaxServiceUrlLength>;
    /// The bounded services of a DID document.
    pub type ServicesOf<T> = BoundedVec<ServiceEndpointOf<T>, <T as Config>::MaxServices>;
    /// An issuer as stored.
    pub type IssuerInfoOf<T> = IssuerInfo<BlockNumberFor<T>, <T as Config>::MaxIssuerNameLength>;
    /// A credential as stored.
    pub type CredentialOf<T> = Credential<
        <T as frame_system::Config>::AccountId,
        BalanceOf<T>,
        BlockNumberFor<T>,
        <T as Config>::MaxCredentialTypeLength,
    >;
    /// A DID document as returned by the runtime API.
    pub type DidDocumentInfoOf<T> =
        DidDocumentInfo<<T as frame_system::Config>::AccountId, BalanceOf<T>, BlockNumberFor<T>>;
    /// A credential at genesis: `(issuer, subject, credential type, claim hash, expiry block)`.
    pub type GenesisCredentialOf<T> = (
        <T as frame_system::Config>::AccountId,
        <T as frame_system::Config>::AccountId,
        Vec<u8>,
        H256,
        BlockNumberFor<T>,
    );
    pub(crate) type AccountIdLookupOf<T> =
        <<T as frame_system::Config>::Lookup as StaticLookup>::Source;

    #[pallet::pallet]
    pub struct Pallet<T>(_);

    /// Configuration of the DID pallet.
    #[pallet::config]
    pub trait Config: frame_system::Config {
        /// The currency deposits are held in.
        type Currency: MutateHold<Self::AccountId, Reason = Self::RuntimeHoldReason>
            + Mutate<Self::AccountId>;

        /// The overarching hold reason.
        type RuntimeHoldReason: From<HoldReason>;

        /// Origin that registers, updates and removes issuers (root in dev, governance later).
        type IssuerOrigin: EnsureOrigin<Self::RuntimeOrigin>;

        /// Base deposit for a DID document.
        #[pallet::constant]
        type DidDeposit: Get<BalanceOf<Self>>;

        /// Base deposit for a credential, paid by its issuer.
        #[pallet::constant]
        type CredentialDeposit: Get<BalanceOf<Self>>;

        /// Deposit per byte of service endpoints and credential types.
        #[pallet::constant]
        type ByteDeposit: Get<BalanceOf<Self>>;

        /// Maximum number of service endpoints in a DID document.
        #[pallet::constant]
        type MaxServices: Get<u32>;

        /// Maximum length of a service id and of a service type.
        #[pallet::constant]
        type MaxServiceFieldLength: Get<u32>;

        /// Maximum length of a service URL.
        #[pallet::constant]
        type MaxServiceUrlLength: Get<u32>;

        /// Maximum number of registered issuers.
        #[pallet::constant]
        type MaxIssuers: Get<u32>;

        /// Maximum length of an issuer name.
        #[pallet::constant]
        type MaxIssuerNameLength: Get<u32>;

        /// Maximum length of a credential type.
        #[pallet::constant]
        type MaxCredentialTypeLength: Get<u32>;

        /// Maximum number of credentials stored for one DID (bounds the cost of
        /// [`fastdata_primitives::IdentityProvider::is_verified`] and of deactivation).
        #[pallet::constant]
        type MaxCredentialsPerDid: Get<u32>;

        /// Weights of the calls.
        type WeightInfo: WeightInfo;
    }

    /// Reasons for which the pallet holds funds.
    #[pallet::composite_enum]
    pub enum HoldReason {
        /// Deposit of a DID document, held from its controller.
        #[codec(index = 0)]
        DidDeposit,
        /// Deposit of a credential, held from its issuer.
        #[codec(index = 1)]
        CredentialDeposit,
    }

    /// DID documents by controlling account.
    #[pallet::storage]
    pub type Dids<T: Config> = StorageMap<_, Blake2_128Concat, T::AccountId, DidDocumentOf<T>>;

    /// Registered issuers by account: one bounded value, so checking a DID's credentials
    /// reads it once whatever their number.
    #[pallet::storage]
    pub type Issuers<T: Config> = StorageValue<_, IssuersOf<T>, ValueQuery>;

    /// Credentials by subject (DID controller) and credential id.
    #[pallet::storage]
    pub type Credentials<T: Config> = StorageDoubleMap<
        _,
        Blake2_128Concat,
        T::AccountId,
        Identity,
        CredentialId,
        CredentialOf<T>,
    >;

    /// Issuers, DIDs and credentials present at genesis (e.g. the dev preset's issuer and
    /// verified demo accounts). Deposits are held as if the calls had been made, so the
    /// accounts must be funded by the balances genesis first.
    #[pallet::genesis_config]
    #[derive(frame_support::DefaultNoBound)]
    pub struct GenesisConfig<T: Config> {
        /// `(issuer, name, weight VI)`.
        pub issuers: Vec<(T::AccountId, Vec<u8>, Perbill)>,
        /// `(controller, X25519 key-agreement key)`: DIDs without service endpoints.
        pub dids: Vec<(T::AccountId, X25519Public)>,
        /// `(issuer, subject, credential type, claim hash, expiry block)`.
        pub credentials: Vec<GenesisCredentialOf<T>>,
    }

    #[pallet::genesis_build]
    impl<T: Config> BuildGenesisConfig for GenesisConfig<T> {
        fn build(&self) {
            for (issuer, name, weight) in &self.issuers {
                if let Err(e) =
                    Pallet::<T>::do_register_issuer(issuer.clone(), name.clone(), *weight)
                {
                    panic!("genesis issuer {issuer:?}: {e:?}");
                }
            }
            for (controller, key) in &self.dids {
                if let Err(e) = Pallet::<T>::do_create_did(controller.clone(), *key, Vec::new()) {
                    panic!("genesis DID {controller:?}: {e:?}");
                }
            }
            for (issuer, subject, ctype, claim, expires_at) in &self.credentials {
                if let Err(e) = Pallet::<T>::do_attest_credential(
                    issuer.clone(),
                    subject.clone(),
                    ctype.clone(),
                    *claim,
                    *expires_at,
                ) {
                    panic!("genesis credential {issuer:?} -> {subject:?}: {e:?}");
                }
            }
        }
    }

    /// Events of the DID pallet.
    #[pallet::event]
    #[pallet::generate_deposit(pub(super) fn deposit_event)]
    pub enum Event<T: Config> {
        /// A DID was created.
        DidCreated {
            /// The controller (the DID is `did:fast:<ss58 of it>`).
            did: T::AccountId,
            /// The X25519 key-agreement key.
            key_agreement: X25519Public,
            /// Number of service endpoints.
            services: u32,
            /// Deposit held from the controller.
            deposit: BalanceOf<T>,
        },
        /// The key-agreement key of a DID was rotated.
        KeyAgreementRotated {
            /// The DID.
            did: T::AccountId,
            /// The new X25519 key-agreement key.
            key_agreement: X25519Public,
        },
        /// The service endpoints of a DID were replaced.
        ServicesUpdated {
            /// The DID.
            did: T::AccountId,
            /// New number of service endpoints.
            services: u32,
            /// Deposit now held for the document.
            deposit: BalanceOf<T>,
        },
        /// A DID was deactivated; its document and credentials were removed.
        DidDeactivated {
            /// The DID.
            did: T::AccountId,
            /// Number of credentials removed with it (their deposits went back to the issuers).
            credentials_removed: u32,
            /// Deposit released to the controller.
            deposit_released: BalanceOf<T>,
        },
        /// An issuer was registered.
        IssuerRegistered {
            /// The issuer.
            issuer: T::AccountId,
            /// Its reputation weight `VI`.
            weight: Perbill,
        },
        /// The reputation weight of an issuer was changed.
        IssuerWeightUpdated {
            /// The issuer.
            issuer: T::AccountId,
            /// Its new reputation weight `VI`.
            weight: Perbill,
        },
        /// An issuer was removed; its credentials no longer count.
        IssuerRemoved {
            /// The issuer.
            issuer: T::AccountId,
        },
        /// A credential was attested to a DID.
        CredentialAttested {
            /// The DID holding it.
            subject: T::AccountId,
            /// The issuer.
            issuer: T::AccountId,
            /// Credential id.
            id: CredentialId,
            /// First block at which it is expired.
            expires_at: BlockNumberFor<T>,
            /// Deposit held from the issuer.
            deposit: BalanceOf<T>,
        },
        /// A credential was revoked by its issuer.
        CredentialRevoked {
            /// The DID holding it.
            subject: T::AccountId,
            /// The issuer.
            issuer: T::AccountId,
            /// Credential id.
            id: CredentialId,
        },
        /// A credential was removed by its holder or issuer.
        CredentialRemoved {
            /// The DID that held it.
            subject: T::AccountId,
            /// The issuer, who got the deposit back.
            issuer: T::AccountId,
            /// Credential id.
            id: CredentialId,
            /// Who removed it.
            by: T::AccountId,
        },
    }

    /// Errors of the DID pallet.
    #[pallet::error]
    pub enum Error<T> {
        /// The account already controls an active DID.
        DidAlreadyExists,
        /// The account has no active DID.
        DidNotFound,
        /// The key-agreement key is all zeros (not a usable X25519 public key).
        InvalidKeyAgreementKey,
        /// The new key-agreement key equals the current one.
        KeyAgreementUnchanged,
        /// More service endpoints than `MaxServices`.
        TooManyServices,
        /// A service id or type is longer than `MaxServiceFieldLength`.
        ServiceFieldTooLong,
        /// A service URL is longer than `MaxServiceUrlLength`.
        ServiceUrlTooLong,
        /// A service id, type or URL is empty.
        EmptyServiceField,
        /// Two service endpoints have the same id.
        DuplicateServiceId,
        /// The account is already a registered issuer.
        IssuerAlreadyRegistered,
        /// The account is not a registered issuer.
        UnknownIssuer,
        /// `MaxIssuers` issuers are already registered.
        TooManyIssuers,
        /// The issuer name is empty.
        EmptyIssuerName,
        /// The issuer name is longer than `MaxIssuerNameLength`.
        IssuerNameTooLong,
        /// The issuer's weight is already this value.
        IssuerWeightUnchanged,
        /// An issuer cannot attest credentials to its own DID.
        SelfAttestation,
        /// The credential type is empty.
        EmptyCredentialType,
        /// The credential type is longer than `MaxCredentialTypeLength`.
        CredentialTypeTooLong,
        /// The expiry block is not in the future.
        ExpiryInPast,
        /// The DID already holds `MaxCredentialsPerDid` credentials.
        TooManyCredentials,
        /// The issuer already attested a credential of this type to this DID (remove it first).
        CredentialAlreadyExists,
        /// No such credential on this DID.
        CredentialNotFound,
        /// Only the issuer of a credential can revoke it.
        NotCredentialIssuer,
        /// The credential is already revoked.
        AlreadyRevoked,
        /// Only the holder or the issuer of a credential can remove it.
        NotCredentialHolderOrIssuer,
    }

    #[pallet::hooks]
    impl<T: Config> Hooks<BlockNumberFor<T>> for Pallet<T> {
        fn integrity_test() {
            assert!(
                T::MaxServiceFieldLength::get() > 0,
                "MaxServiceFieldLength must be > 0"
            );
            assert!(
                T::MaxServiceUrlLength::get() > 0,
                "MaxServiceUrlLength must be > 0"
            );
            assert!(
                T::MaxCredentialTypeLength::get() > 0,
                "MaxCredentialTypeLength must be > 0"
            );
            assert!(
                T::MaxIssuerNameLength::get() > 0,
                "MaxIssuerNameLength must be > 0"
            );
            assert!(
                T::MaxCredentialsPerDid::get() > 0,
                "MaxCredentialsPerDid must be > 0"
            );
        }

        #[cfg(feature = "try-runtime")]
        fn try_state(_n: BlockNumberFor<T>) -> Result<(), sp_runtime::TryRuntimeError> {
            Self::do_try_state()
        }
    }

    #[pallet::call(weight = <T as Config>::WeightInfo)]
    impl<T: Config> Pallet<T> {
        /// Create the DID `did:fast:<ss58 of the signer>` with an X25519 key-agreement key and
        /// service endpoints.
        ///
        /// Holds `DidDeposit + ByteDeposit × (encoded size of the services)` from the signer.
        /// Emits `DidCreated`.
        #[pallet::call_index(0)]
        pub fn create_did(
            origin: OriginFor<T>,
            key_agreement: X25519Public,
            services: Vec<ServiceInput>,
        ) -> DispatchResult {
            let who = ensure_signed(origin)?;
            Self::do_create_did(who, key_agreement, services)
        }

        /// Rotate the X25519 key-agreement key of the signer's DID. Keys sealed to the old key
        /// stay readable only with the old private key; sellers seal new epochs to the new one.
        ///
        /// Emits `KeyAgreementRotated`.
        #[pallet::call_index(1)]
        pub fn rotate_key_agreement(
            origin: OriginFor<T>,
            key_agreement: X25519Public,
        ) -> DispatchResult {
            let who = ensure_signed(origin)?;
            Self::do_rotate_key_agreement(who, key_agreement)
        }

        /// Replace the service endpoints of the signer's DID; the deposit follows the new size
        /// (more is held or the surplus released).
        ///
        /// Emits `ServicesUpdated`.
        #[pallet::call_index(2)]
        pub fn set_services(origin: OriginFor<T>, services: Vec<ServiceInput>) -> DispatchResult {
            let who = ensure_signed(origin)?;
            Self::do_set_services(who, services)
        }

        /// Deactivate the signer's DID: remove the document and all credentials it holds,
        /// release the controller's deposit and return each credential deposit to its issuer.
        ///
        /// Emits `DidDeactivated`.
        #[pallet::call_index(3)]
        #[pallet::weight(<T as Config>::WeightInfo::deactivate_did(T::MaxCredentialsPerDid::get()))]
        pub fn deactivate_did(origin: OriginFor<T>) -> DispatchResultWithPostInfo {
            let who = ensure_signed(origin)?;
            let removed = Self::do_deactivate_did(who)?;
            Ok(Some(<T as Config>::WeightInfo::deactivate_did(removed)).into())
        }

        /// Register `issuer` with a human-readable `name` and reputation weight `weight` (`VI`).
        ///
        /// Origin: [`Config::IssuerOrigin`]. Emits `IssuerRegistered`.
        #[pallet::call_index(4)]
        pub fn register_issuer(
            origin: OriginFor<T>,
            issuer: AccountIdLookupOf<T>,
            name: Vec<u8>,
            weight: Perbill,
        ) -> DispatchResult {
            T::IssuerOrigin::ensure_origin(origin)?;
            let issuer = T::Lookup::lookup(issuer)?;
            Self::do_register_issuer(issuer, name, weight)
        }

        /// Change the reputation weight `VI` of a registered issuer; trust scores of the holders
        /// of its credentials change at once.
        ///
        /// Origin: [`Config::IssuerOrigin`]. Emits `IssuerWeightUpdated`.
        #[pallet::call_index(5)]
        pub fn set_issuer_weight(
            origin: OriginFor<T>,
            issuer: AccountIdLookupOf<T>,
            weight: Perbill,
        ) -> DispatchResult {
            T::IssuerOrigin::ensure_origin(origin)?;
            let issuer = T::Lookup::lookup(issuer)?;
            Self::do_set_issuer_weight(issuer, weight)
        }

        /// Remove a registered issuer. Its credentials stop counting at once (also if it is
        /// registered again later); their deposits stay held until the holder or the issuer
        /// removes them.
        ///
        /// Origin: [`Config::IssuerOrigin`]. Emits `IssuerRemoved`.
        #[pallet::call_index(6)]
        pub fn remove_issuer(origin: OriginFor<T>, issuer: AccountIdLookupOf<T>) -> DispatchResult {
            T::IssuerOrigin::ensure_origin(origin)?;
            let issuer = T::Lookup::lookup(issuer)?;
            Self::do_remove_issuer(issuer)
        }

        /// As a registered issuer, attest a credential of `credential_type` to the DID of
        /// `subject`, committing to the off-chain claim by `claim_hash`, valid until
        /// `expires_at` (exclusive).
        ///
        /// Holds `CredentialDeposit + ByteDeposit × type length` from the issuer. Emits
        /// `CredentialAttested`.
        #[pallet::call_index(7)]
        pub fn attest_credential(
            origin: OriginFor<T>,
            subject: AccountIdLookupOf<T>,
            credential_type: Vec<u8>,
            claim_hash: H256,
            expires_at: BlockNumberFor<T>,
        ) -> DispatchResult {
            let issuer = ensure_signed(origin)?;
            let subject = T::Lookup::lookup(subject)?;
            Self::do_attest_credential(issuer, subject, credential_type, claim_hash, expires_at)
        }

        /// As its issuer, revoke credential `id` of `subject`. It stays stored, marked revoked,
        /// and never counts again.
        ///
        /// Emits `CredentialRevoked`.
        #[pallet::call_index(8)]
        pub fn revoke_credential(
            origin: OriginFor<T>,
            subject: AccountIdLookupOf<T>,
            id: CredentialId,
        ) -> DispatchResult {
            let who = ensure_signed(origin)?;
            let subject = T::Lookup::lookup(subject)?;
            Self::do_revoke_credential(who, subject, id)
        }

        /// As its holder or its issuer, remove credential `id` of `subject`; the deposit goes
        /// back to the issuer.
        ///
        /// Emits `CredentialRemoved`.
        #[pallet::call_index(9)]
        pub fn remove_credential(
            origin: OriginFor<T>,
            subject: AccountIdLookupOf<T>,
            id: CredentialId,
        ) -> DispatchResult {
            let who = ensure_signed(origin)?;
            let subject = T::Lookup::lookup(subject)?;
            Self::do_remove_credential(who, subject, id)
        }
    }

    #[pallet::view_functions]
    impl<T: Config> Pallet<T> {
        /// The DID document of `who` with its credentials, if `who` has an active DID.
        pub fn document(who: T::AccountId) -> Option<DidDocumentInfoOf<T>> {
            Self::did_document(&who)
        }

        /// `who` has an active DID with at least one valid credential.
        pub fn verified(who: T::AccountId) -> bool {
            Self::is_verified(&who)
        }
    }
}

//! Benchmarks of the DID pallet (frame-benchmarking v2), each at its worst case.
#![cfg(feature = "runtime-benchmarks")]

use super::*;
use alloc::{vec, vec::Vec};
use frame_benchmarking::v2::*;
use frame_support::{
    pallet_prelude::{DispatchResult, Get},
    traits::{fungible::Mutate, EnsureOrigin},
};
use frame_system::{pallet_prelude::BlockNumberFor, RawOrigin};
use sp_core::H256;
use sp_runtime::{
    traits::{Bounded, StaticLookup},
    Perbill,
};

const SEED: u32 = 0;

fn assert_last_event<T: Config>(event: Event<T>) {
    frame_system::Pallet::<T>::assert_last_event(<T as frame_system::Config>::RuntimeEvent::from(
        event,
    ));
}

fn funded<T: Config>(name: &'static str, index: u32) -> T::AccountId {
    let who: T::AccountId = account(name, index, SEED);
    T::Currency::set_balance(&who, BalanceOf::<T>::max_value() / 1_000_000u32.into());
    who
}

fn lookup<T: Config>(who: &T::AccountId) -> AccountIdLookupOf<T> {
    T::Lookup::unlookup(who.clone())
}

/// `len` bytes starting with the big-endian `index`, padded with `fill`.
fn filled(index: u32, len: u32, fill: u8) -> Vec<u8> {
    let mut bytes = vec![fill; len as usize];
    for (i, b) in index.to_be_bytes().iter().enumerate() {
        if let Some(slot) = bytes.get_mut(i) {
            *slot = *b;
        }
    }
    bytes
}

/// `MaxServices` service endpoints with every field at its maximum length.
fn max_services<T: Config>() -> Vec<ServiceInput> {
    (0..T::MaxServices::get())
        .map(|i| ServiceInput {
            id: filled(i, T::MaxServiceFieldLength::get(), b'i'),
            service_type: filled(i, T::MaxServiceFieldLength::get(), b't'),
            endpoint: filled(i, T::MaxServiceUrlLength::get(), b'u'),
        })
        .collect()
}

fn add_did<T: Config>(who: &T::AccountId) {
    let result = Pallet::<T>::do_create_did(who.clone(), [7u8; 32], max_services::<T>());
    assert!(result.is_ok(), "creating a DID must work");
}

fn add_issuer<T: Config>(index: u32) -> T::AccountId {
    let issuer = funded::<T>("issuer", index);
    let name = filled(index, T::MaxIssuerNameLength::get(), b'n');
    let result = Pallet::<T>::do_register_issuer(issuer.clone(), name, Perbill::from_percent(50));
    assert!(result.is_ok(), "registering an issuer must work");
    issuer
}

/// Registers issuers `from`, `from + 1`, … until `room` places are left in the issuer set
/// (the set at its largest for `room` 0).
fn fill_issuers<T: Config>(from: u32, room: u32) {
    let target = T::MaxIssuers::get().saturating_sub(room);
    let mut next = from;
    while (Issuers::<T>::get().len() as u32) < target {
        add_issuer::<T>(next);
        next += 1;
    }
}

/// Attests credentials `from..MaxCredentialsPerDid` of `issuer` to `subject`.
fn fill_credentials<T: Config>(issuer: &T::AccountId, subject: &T::AccountId, from: u32) {
    for i in from..T::MaxCredentialsPerDid::get() {
        attest::<T>(issuer, subject, i);
    }
}

fn credential_type<T: Config>(index: u32) -> Vec<u8> {
    filled(index, T::MaxCredentialTypeLength::get(), b'c')
}

fn far_expiry<T: Config>() -> BlockNumberFor<T> {
    BlockNumberFor::<T>::max_value()
}

/// Attests credential `index` of `issuer` to `subject` and returns its id.
fn attest<T: Config>(issuer: &T::AccountId, subject: &T::AccountId, index: u32) -> CredentialId {
    let ctype = credential_type::<T>(index);
    let id = credential_id(issuer, subject, &ctype);
    let result = Pallet::<T>::do_attest_credential(
        issuer.clone(),
        subject.clone(),
        ctype,
        H256::repeat_byte(1),
        far_expiry::<T>(),
    );
    assert!(result.is_ok(), "attesting a credential must work");
    id
}

impl<T: Config> Pallet<T> {
    /// Benchmark setup for pallets that read identities (e.g. `pallet-trust`'s
    /// `BenchmarkHelper`): funds `who`, gives it a DID if it has none, and fills the DID with
    /// `MaxCredentialsPerDid` valid credentials from registered issuers (registering up to
    /// `MaxIssuers` issuers of its own), the worst case for `credential_weights`.
    pub fn benchmark_make_verified(who: &T::AccountId) -> DispatchResult {
        T::Currency::set_balance(who, BalanceOf::<T>::max_value() / 1_000_000u32.into());
        if !Dids::<T>::contains_key(who) {
            Self::do_create_did(who.clone(), [7u8; 32], Vec::new())?;
        }
        let existing = Dids::<T>::get(who)
            .map(|d| d.credentials.len() as u32)
            .unwrap_or_default();
        for i in existing..T::MaxCredentialsPerDid::get() {
            let mut issuer: T::AccountId = account("did-bench-issuer", i, SEED);
            let issuers = Issuers::<T>::get();
            if !issuers.contains_key(&issuer) {
                if (issuers.len() as u32) < T::MaxIssuers::get() {
                    T::Currency::set_balance(
                        &issuer,
                        BalanceOf::<T>::max_value() / 1_000_000u32.into(),
                    );
                    Self::do_register_issuer(issuer.clone(), b"bench".to_vec(), Perbill::one())?;
                } else {
                    // Reuse a registered issuer (not `who` itself).
                    issuer = issuers
                        .keys()
                        .find(|i| *i != who)
                        .cloned()
                        .ok_or(Error::<T>::UnknownIssuer)?;
                }
            }
            let ctype = filled(i, T::MaxCredentialTypeLength::get(), b'v');
            Self::do_attest_credential(
                issuer,
                who.clone(),
                ctype,
                H256::repeat_byte(3),
                far_expiry::<T>(),
            )?;
        }
        Ok(())
    }
}

#[benchmarks]
mod benchmarks {
    use super::*;

    #[benchmark]
    fn create_did() {
        let caller = funded::<T>("caller", 0);
        let services = max_services::<T>();

        #[extrinsic_call]
        _(RawOrigin::Signed(caller.clone()), [7u8; 32], services);

        assert!(Dids::<T>::contains_key(&caller));
    }

    #[benchmark]
    fn rotate_key_agreement() {
        let caller = funded::<T>("caller", 0);
        add_did::<T>(&caller);

        #[extrinsic_call]
        _(RawOrigin::Signed(caller.clone()), [9u8; 32]);

        assert_last_event::<T>(Event::KeyAgreementRotated {
            did: caller,
            key_agreement: [9u8; 32],
        });
    }

    #[benchmark]
    fn set_services() {
        let caller = funded::<T>("caller", 0);
        assert!(Pallet::<T>::do_create_did(caller.clone(), [7u8; 32], Vec::new()).is_ok());
        let services = max_services::<T>();
        let count = services.len() as u32;

        #[extrinsic_call]
        _(RawOrigin::Signed(caller.clone()), services);

        let deposit = Dids::<T>::get(&caller)
            .map(|d| d.deposit)
            .unwrap_or_default();
        assert_last_event::<T>(Event::ServicesUpdated {
            did: caller,
            services: count,
            deposit,
        });
    }

    #[benchmark]
    fn deactivate_did(c: Linear<0, { T::MaxCredentialsPerDid::get() }>) {
        let caller = funded::<T>("caller", 0);
        add_did::<T>(&caller);
        let max_issuers = T::MaxIssuers::get().min(c).max(1);
        let issuers: Vec<T::AccountId> = (0..max_issuers).map(add_issuer::<T>).collect();
        for i in 0..c {
            let issuer = &issuers[(i % max_issuers) as usize];
            attest::<T>(issuer, &caller, i);
        }

        #[extrinsic_call]
        _(RawOrigin::Signed(caller.clone()));

        assert!(!Dids::<T>::contains_key(&caller));
        assert_eq!(Credentials::<T>::iter_prefix(&caller).count(), 0);
    }

    #[benchmark]
    fn register_issuer() -> Result<(), BenchmarkError> {
        let origin =
            T::IssuerOrigin::try_successful_origin().map_err(|_| BenchmarkError::Weightless)?;
        fill_issuers::<T>(1, 1);
        let issuer: T::AccountId = account("issuer", 0, SEED);
        let name = filled(0, T::MaxIssuerNameLength::get(), b'n');
        let weight = Perbill::from_percent(70);

        #[extrinsic_call]
        _(
            origin as T::RuntimeOrigin,
            lookup::<T>(&issuer),
            name,
            weight,
        );

        assert_last_event::<T>(Event::IssuerRegistered { issuer, weight });
        Ok(())
    }

    #[benchmark]
    fn set_issuer_weight() -> Result<(), BenchmarkError> {
        let origin =
            T::IssuerOrigin::try_successful_origin().map_err(|_| BenchmarkError::Weightless)?;
        let issuer = add_issuer::<T>(0);
        fill_issuers::<T>(1, 0);
        let weight = Perbill::from_percent(90);

        #[extrinsic_call]
        _(origin as T::RuntimeOrigin, lookup::<T>(&issuer), weight);

        assert_last_event::<T>(Event::IssuerWeightUpdated { issuer, weight });
        Ok(())
    }

    #[benchmark]
    fn remove_issuer() -> Result<(), BenchmarkError> {
        let origin =
            T::IssuerOrigin::try_successful_origin().map_err(|_| BenchmarkError::Weightless)?;
        let issuer = add_issuer::<T>(0);
        fill_issuers::<T>(1, 0);

        #[extrinsic_call]
        _(origin as T::RuntimeOrigin, lookup::<T>(&issuer));

        assert_last_event::<T>(Event::IssuerRemoved { issuer });
        Ok(())
    }

    #[benchmark]
    fn attest_credential() {
        let issuer = add_issuer::<T>(0);
        fill_issuers::<T>(1, 0);
        let subject = funded::<T>("subject", 0);
        add_did::<T>(&subject);
        let existing = T::MaxCredentialsPerDid::get().saturating_sub(1);
        for i in 0..existing {
            attest::<T>(&issuer, &subject, i);
        }
        let ctype = credential_type::<T>(existing);
        let id = credential_id(&issuer, &subject, &ctype);

        #[extrinsic_call]
        _(
            RawOrigin::Signed(issuer.clone()),
            lookup::<T>(&subject),
            ctype,
            H256::repeat_byte(2),
            far_expiry::<T>(),
        );

        assert!(Credentials::<T>::contains_key(&subject, id));
    }

    #[benchmark]
    fn revoke_credential() {
        let issuer = add_issuer::<T>(0);
        let subject = funded::<T>("subject", 0);
        add_did::<T>(&subject);
        // The DID's list full, the revoked credential last.
        fill_credentials::<T>(&issuer, &subject, 1);
        let id = attest::<T>(&issuer, &subject, 0);

        #[extrinsic_call]
        _(RawOrigin::Signed(issuer.clone()), lookup::<T>(&subject), id);

        assert_last_event::<T>(Event::CredentialRevoked {
            subject,
            issuer,
            id,
        });
    }

    #[benchmark]
    fn remove_credential() {
        let issuer = add_issuer::<T>(0);
        let subject = funded::<T>("subject", 0);
        add_did::<T>(&subject);
        fill_credentials::<T>(&issuer, &subject, 1);
        let id = attest::<T>(&issuer, &subject, 0);

        #[extrinsic_call]
        _(
            RawOrigin::Signed(subject.clone()),
            lookup::<T>(&subject),
            id,
        );

        assert!(!Credentials::<T>::contains_key(&subject, id));
    }

    impl_benchmark_test_suite!(
        Pallet,
        crate::mock::ExtBuilder::default().build(),
        crate::mock::Test
    );
}

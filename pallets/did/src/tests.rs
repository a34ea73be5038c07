//! Tests of the DID pallet.

use crate::{mock::*, *};
use fastdata_primitives::IdentityProvider;
use frame_support::{
    assert_noop, assert_ok,
    traits::fungible::{Inspect, InspectHold},
};
use sp_core::H256;
use sp_runtime::{BuildStorage, DispatchError, Perbill, TokenError};

const KEY: [u8; 32] = [7u8; 32];
const KEY2: [u8; 32] = [8u8; 32];
const CLAIM: H256 = H256::repeat_byte(0xC1);

fn svc(id: &str, service_type: &str, endpoint: &str) -> ServiceInput {
    ServiceInput {
        id: id.as_bytes().to_vec(),
        service_type: service_type.as_bytes().to_vec(),
        endpoint: endpoint.as_bytes().to_vec(),
    }
}

/// One broker endpoint: SCALE size 1 + (1+6) + (1+4) + (1+22) = 36 bytes.
fn broker() -> Vec<ServiceInput> {
    vec![svc("broker", "MQTT", "mqtts://b.example:8883")]
}

fn did_held(who: AccountId) -> Balance {
    Balances::balance_on_hold(&HoldReason::DidDeposit.into(), &who)
}

fn credential_held(who: AccountId) -> Balance {
    Balances::balance_on_hold(&HoldReason::CredentialDeposit.into(), &who)
}

fn last_event() -> RuntimeEvent {
    System::events().pop().expect("an event was emitted").event
}

fn create(who: AccountId) {
    assert_ok!(Did::create_did(RuntimeOrigin::signed(who), KEY, broker()));
}

/// Attests a `KYC` credential from `issuer` to `subject`, expiring at `expires_at`.
fn attest(issuer: AccountId, subject: AccountId, ctype: &str, expires_at: u64) -> CredentialId {
    assert_ok!(Did::attest_credential(
        RuntimeOrigin::signed(issuer),
        subject,
        ctype.as_bytes().to_vec(),
        CLAIM,
        expires_at
    ));
    credential_id(&issuer, &subject, ctype.as_bytes())
}

fn issuers() -> ExtBuilder {
    ExtBuilder::default()
        .with_issuer(KYC, Perbill::from_percent(60))
        .with_issuer(CHAMBER, Perbill::from_percent(30))
}

// ---------------------------------------------------------------------------------------------
// DID documents
// ---------------------------------------------------------------------------------------------

#[test]
fn create_did_holds_deposit_and_stores_document() {
    ExtBuilder::default().build_and_execute(|| {
        assert_ok!(Did::create_did(RuntimeOrigin::signed(ALICE), KEY, broker()));

        let deposit = DID_DEPOSIT + 36 * BYTE_DEPOSIT;
        assert_eq!(did_held(ALICE), deposit);
        assert_eq!(Balances::balance(&ALICE), INITIAL_BALANCE - deposit);
        let doc = Dids::<Test>::get(ALICE).expect("stored");
        assert_eq!(doc.key_agreement, KEY);
        assert_eq!(doc.services.len(), 1);
        assert_eq!(
            doc.services[0].endpoint.as_slice(),
            b"mqtts://b.example:8883"
        );
        assert_eq!(
            (doc.created_at, doc.updated_at, doc.credentials.len()),
            (1, 1, 0)
        );
        assert_eq!(doc.deposit, deposit);
        assert_eq!(
            last_event(),
            Event::DidCreated {
                did: ALICE,
                key_agreement: KEY,
                services: 1,
                deposit
            }
            .into()
        );
        assert_eq!(Did::key_agreement_key(&ALICE), Some(KEY));
        assert!(!Did::is_verified(&ALICE));
    });
}

#[test]
fn create_did_without_services_costs_the_base_deposit() {
    ExtBuilder::default().build_and_execute(|| {
        assert_ok!(Did::create_did(RuntimeOrigin::signed(ALICE), KEY, vec![]));
        // An empty bounded vec encodes as one byte (its compact length).
        assert_eq!(did_held(ALICE), DID_DEPOSIT + BYTE_DEPOSIT);
    });
}

#[test]
fn create_did_rejects_bad_input_without_changes() {
    ExtBuilder::default().build_and_execute(|| {
        let long = |n: usize| "x".repeat(n);
        let signed = || RuntimeOrigin::signed(ALICE);
        assert_noop!(
            Did::create_did(signed(), [0u8; 32], broker()),
            Error::<Test>::InvalidKeyAgreementKey
        );
        assert_noop!(
            Did::create_did(
                signed(),
                KEY,
                (0..5).map(|i| svc(&format!("s{i}"), "t", "u")).collect()
            ),
            Error::<Test>::TooManyServices
        );
        assert_noop!(
            Did::create_did(signed(), KEY, vec![svc(&long(17), "t", "u")]),
            Error::<Test>::ServiceFieldTooLong
        );
        assert_noop!(
            Did::create_did(signed(), KEY, vec![svc("id", &long(17), "u")]),
            Error::<Test>::ServiceFieldTooLong
        );
        assert_noop!(
            Did::create_did(signed(), KEY, vec![svc("id", "t", &long(65))]),
            Error::<Test>::ServiceUrlTooLong
        );
        assert_noop!(
            Did::create_did(signed(), KEY, vec![svc("", "t", "u")]),
            Error::<Test>::EmptyServiceField
        );
        assert_noop!(
            Did::create_did(signed(), KEY, vec![svc("id", "t", "")]),
            Error::<Test>::EmptyServiceField
        );
        assert_noop!(
            Did::create_did(
                signed(),
                KEY,
                vec![svc("id", "t", "u"), svc("id", "t2", "u2")]
            ),
            Error::<Test>::DuplicateServiceId
        );
        assert_noop!(
            Did::create_did(RuntimeOrigin::signed(PAUPER), KEY, broker()),
            TokenError::FundsUnavailable
        );
        assert_noop!(
            Did::create_did(RuntimeOrigin::root(), KEY, broker()),
            DispatchError::BadOrigin
        );

        // Maximum sizes are accepted.
        assert_ok!(Did::create_did(
            signed(),
            KEY,
            vec![svc(&long(16), &long(16), &long(64))]
        ));
        assert_noop!(
            Did::create_did(signed(), KEY, broker()),
            Error::<Test>::DidAlreadyExists
        );
    });
}

#[test]
fn rotate_key_agreement_works() {
    ExtBuilder::default().build_and_execute(|| {
        create(ALICE);
        System::set_block_number(5);
        assert_ok!(Did::rotate_key_agreement(
            RuntimeOrigin::signed(ALICE),
            KEY2
        ));
        let doc = Dids::<Test>::get(ALICE).expect("stored");
        assert_eq!(
            (doc.key_agreement, doc.updated_at, doc.created_at),
            (KEY2, 5, 1)
        );
        assert_eq!(Did::key_agreement_key(&ALICE), Some(KEY2));
        assert_eq!(
            <Did as IdentityProvider<_>>::key_agreement_key(&ALICE),
            Some(KEY2)
        );
        assert_eq!(
            last_event(),
            Event::KeyAgreementRotated {
                did: ALICE,
                key_agreement: KEY2
            }
            .into()
        );
    });
}

#[test]
fn rotate_key_agreement_errors() {
    ExtBuilder::default().build_and_execute(|| {
        assert_noop!(
            Did::rotate_key_agreement(RuntimeOrigin::signed(ALICE), KEY2),
            Error::<Test>::DidNotFound
        );
        create(ALICE);
        assert_noop!(
            Did::rotate_key_agreement(RuntimeOrigin::signed(ALICE), KEY),
            Error::<Test>::KeyAgreementUnchanged
        );
        assert_noop!(
            Did::rotate_key_agreement(RuntimeOrigin::signed(ALICE), [0u8; 32]),
            Error::<Test>::InvalidKeyAgreementKey
        );
    });
}

#[test]
fn set_services_adjusts_the_deposit_both_ways() {
    ExtBuilder::default().build_and_execute(|| {
        create(ALICE);
        let small = DID_DEPOSIT + 36;
        assert_eq!(did_held(ALICE), small);

        // Two endpoints: 1 + 35 + (1+4) + (1+4) + (1+9) = 56 bytes.
        let two = vec![
            svc("broker", "MQTT", "mqtts://b.example:8883"),
            svc("http", "HTTP", "https://h"),
        ];
        assert_ok!(Did::set_services(RuntimeOrigin::signed(ALICE), two));
        let big = DID_DEPOSIT + 56;
        assert_eq!(did_held(ALICE), big);
        assert_eq!(Balances::balance(&ALICE), INITIAL_BALANCE - big);
        assert_eq!(
            last_event(),
            Event::ServicesUpdated {
                did: ALICE,
                services: 2,
                deposit: big
            }
            .into()
        );

        assert_ok!(Did::set_services(RuntimeOrigin::signed(ALICE), vec![]));
        assert_eq!(did_held(ALICE), DID_DEPOSIT + 1);
        assert_eq!(Balances::balance(&ALICE), INITIAL_BALANCE - DID_DEPOSIT - 1);
        assert!(Dids::<Test>::get(ALICE)
            .expect("stored")
            .services
            .is_empty());
    });
}

#[test]
fn set_services_errors() {
    ExtBuilder::default().build_and_execute(|| {
        assert_noop!(
            Did::set_services(RuntimeOrigin::signed(ALICE), broker()),
            Error::<Test>::DidNotFound
        );
        create(ALICE);
        assert_noop!(
            Did::set_services(
                RuntimeOrigin::signed(ALICE),
                vec![svc("id", "t", &"u".repeat(65))]
            ),
            Error::<Test>::ServiceUrlTooLong
        );
        assert_noop!(
            Did::set_services(
                RuntimeOrigin::signed(ALICE),
                (0..5).map(|i| svc(&format!("s{i}"), "t", "u")).collect()
            ),
            Error::<Test>::TooManyServices
        );
    });
}

#[test]
fn set_services_fails_when_the_bigger_deposit_cannot_be_held() {
    ExtBuilder::default().build_and_execute(|| {
        assert_ok!(Did::create_did(RuntimeOrigin::signed(ALICE), KEY, vec![]));
        // Leave ALICE with less than the extra deposit (she has INITIAL - 101 free).
        assert_ok!(Balances::transfer_allow_death(
            RuntimeOrigin::signed(ALICE),
            BOB,
            INITIAL_BALANCE - DID_DEPOSIT - 1 - 10
        ));
        assert_noop!(
            Did::set_services(RuntimeOrigin::signed(ALICE), broker()),
            TokenError::FundsUnavailable
        );
    });
}

#[test]
fn deactivate_did_releases_all_deposits_and_removes_credentials() {
    issuers().build_and_execute(|| {
        create(ALICE);
        attest(KYC, ALICE, "KYC", 100);
        attest(CHAMBER, ALICE, "CoC", 100);
        assert!(Did::is_verified(&ALICE));
        assert!(credential_held(KYC) > 0);

        assert_ok!(Did::deactivate_did(RuntimeOrigin::signed(ALICE)));

        assert!(!Dids::<Test>::contains_key(ALICE));
        assert_eq!(Credentials::<Test>::iter_prefix(ALICE).count(), 0);
        assert_eq!(did_held(ALICE), 0);
        assert_eq!(credential_held(KYC), 0);
        assert_eq!(credential_held(CHAMBER), 0);
        assert_eq!(Balances::balance(&ALICE), INITIAL_BALANCE);
        assert_eq!(Balances::balance(&KYC), INITIAL_BALANCE);
        assert_eq!(
            last_event(),
            Event::DidDeactivated {
                did: ALICE,
                credentials_removed: 2,
                deposit_released: DID_DEPOSIT + 36
            }
            .into()
        );
        assert!(!Did::is_verified(&ALICE));
        assert_eq!(Did::key_agreement_key(&ALICE), None);
        assert!(Did::credential_weights(&ALICE).is_empty());

        // The account may create a fresh DID later; old credentials do not come back.
        create(ALICE);
        assert!(!Did::is_verified(&ALICE));
    });
}

#[test]
fn deactivate_did_errors() {
    ExtBuilder::default().build_and_execute(|| {
        assert_noop!(
            Did::deactivate_did(RuntimeOrigin::signed(ALICE)),
            Error::<Test>::DidNotFound
        );
    });
}

#[test]
fn deactivate_did_refunds_weight_for_unused_credential_slots() {
    issuers().build_and_execute(|| {
        create(ALICE);
        attest(KYC, ALICE, "KYC", 100);
        let info = Did::deactivate_did(RuntimeOrigin::signed(ALICE)).expect("works");
        let actual = <() as WeightInfo>::deactivate_did(1);
        assert_eq!(info.actual_weight, Some(actual));
        assert!(actual.ref_time() < <() as WeightInfo>::deactivate_did(4).ref_time());
    });
}

// ---------------------------------------------------------------------------------------------
// Issuers
// ---------------------------------------------------------------------------------------------

#[test]
fn register_update_and_remove_issuer() {
    ExtBuilder::default().build_and_execute(|| {
        System::set_block_number(3);
        assert_ok!(Did::register_issuer(
            RuntimeOrigin::root(),
            KYC,
            b"KYC GmbH".to_vec(),
            Perbill::from_percent(60)
        ));
        let info = Issuers::<Test>::get().get(&KYC).cloned().expect("stored");
        assert_eq!(info.name.as_slice(), b"KYC GmbH");
        assert_eq!(
            (info.weight, info.registered_at),
            (Perbill::from_percent(60), 3)
        );
        assert_eq!(Issuers::<Test>::get().len(), 1);
        assert_eq!(
            last_event(),
            Event::IssuerRegistered {
                issuer: KYC,
                weight: Perbill::from_percent(60)
            }
            .into()
        );

        assert_ok!(Did::set_issuer_weight(
            RuntimeOrigin::root(),
            KYC,
            Perbill::from_percent(80)
        ));
        assert_eq!(
            Issuers::<Test>::get()
                .get(&KYC)
                .cloned()
                .expect("stored")
                .weight,
            Perbill::from_percent(80)
        );
        assert_eq!(
            last_event(),
            Event::IssuerWeightUpdated {
                issuer: KYC,
                weight: Perbill::from_percent(80)
            }
            .into()
        );

        assert_ok!(Did::remove_issuer(RuntimeOrigin::root(), KYC));
        assert!(!Issuers::<Test>::get().contains_key(&KYC));
        assert_eq!(Issuers::<Test>::get().len(), 0);
        assert_eq!(last_event(), Event::IssuerRemoved { issuer: KYC }.into());
    });
}

#[test]
fn issuer_errors() {
    ExtBuilder::default().build_and_execute(|| {
        let w = Perbill::from_percent(50);
        assert_noop!(
            Did::register_issuer(RuntimeOrigin::signed(ALICE), KYC, b"n".to_vec(), w),
            DispatchError::BadOrigin
        );
        assert_noop!(
            Did::register_issuer(RuntimeOrigin::root(), KYC, vec![], w),
            Error::<Test>::EmptyIssuerName
        );
        assert_noop!(
            Did::register_issuer(RuntimeOrigin::root(), KYC, vec![b'n'; 33], w),
            Error::<Test>::IssuerNameTooLong
        );
        assert_noop!(
            Did::set_issuer_weight(RuntimeOrigin::root(), KYC, w),
            Error::<Test>::UnknownIssuer
        );
        assert_noop!(
            Did::remove_issuer(RuntimeOrigin::root(), KYC),
            Error::<Test>::UnknownIssuer
        );
        assert_noop!(
            Did::set_issuer_weight(RuntimeOrigin::signed(KYC), KYC, w),
            DispatchError::BadOrigin
        );
        assert_noop!(
            Did::remove_issuer(RuntimeOrigin::signed(KYC), KYC),
            DispatchError::BadOrigin
        );

        assert_ok!(Did::register_issuer(
            RuntimeOrigin::root(),
            KYC,
            vec![b'n'; 32],
            w
        ));
        assert_noop!(
            Did::register_issuer(RuntimeOrigin::root(), KYC, b"n".to_vec(), w),
            Error::<Test>::IssuerAlreadyRegistered
        );
        assert_noop!(
            Did::set_issuer_weight(RuntimeOrigin::root(), KYC, w),
            Error::<Test>::IssuerWeightUnchanged
        );
        for issuer in [20, 21, 22] {
            assert_ok!(Did::register_issuer(
                RuntimeOrigin::root(),
                issuer,
                b"n".to_vec(),
                w
            ));
        }
        assert_noop!(
            Did::register_issuer(RuntimeOrigin::root(), 23, b"n".to_vec(), w),
            Error::<Test>::TooManyIssuers
        );
    });
}

#[test]
fn removing_an_issuer_invalidates_its_credentials_for_good() {
    issuers().build_and_execute(|| {
        create(ALICE);
        attest(KYC, ALICE, "KYC", 100);
        assert!(Did::is_verified(&ALICE));

        assert_ok!(Did::remove_issuer(RuntimeOrigin::root(), KYC));
        assert!(!Did::is_verified(&ALICE));
        assert!(Did::credential_weights(&ALICE).is_empty());
        // The credential stays stored (and its deposit held) until someone removes it.
        assert_eq!(Credentials::<Test>::iter_prefix(ALICE).count(), 1);

        // Registering the issuer again does not revive what it issued before.
        System::set_block_number(2);
        assert_ok!(Did::register_issuer(
            RuntimeOrigin::root(),
            KYC,
            b"KYC again".to_vec(),
            Perbill::from_percent(60)
        ));
        assert!(!Did::is_verified(&ALICE));
        // A new credential from the re-registered issuer counts.
        attest(KYC, ALICE, "KYC2", 100);
        assert!(Did::is_verified(&ALICE));
        assert_eq!(
            Did::credential_weights(&ALICE),
            vec![Perbill::from_percent(60)]
        );
    });
}

#[test]
fn issuer_weight_changes_show_in_credential_weights() {
    issuers().build_and_execute(|| {
        create(ALICE);
        attest(KYC, ALICE, "KYC", 100);
        assert_eq!(
            Did::credential_weights(&ALICE),
            vec![Perbill::from_percent(60)]
        );
        assert_ok!(Did::set_issuer_weight(
            RuntimeOrigin::root(),
            KYC,
            Perbill::from_percent(20)
        ));
        assert_eq!(
            Did::credential_weights(&ALICE),
            vec![Perbill::from_percent(20)]
        );
    });
}

// ---------------------------------------------------------------------------------------------
// Credentials
// ---------------------------------------------------------------------------------------------

#[test]
fn attest_credential_holds_issuer_deposit_and_verifies_subject() {
    issuers().build_and_execute(|| {
        create(ALICE);
        assert!(!Did::is_verified(&ALICE));
        assert_ok!(Did::attest_credential(
            RuntimeOrigin::signed(KYC),
            ALICE,
            b"KYC".to_vec(),
            CLAIM,
            50
        ));
        let id = credential_id(&KYC, &ALICE, b"KYC");
        let deposit = CREDENTIAL_DEPOSIT + 3 * BYTE_DEPOSIT;
        assert_eq!(credential_held(KYC), deposit);
        assert_eq!(Balances::balance(&KYC), INITIAL_BALANCE - deposit);
        // The holder pays nothing for credentials.
        assert_eq!(did_held(ALICE), DID_DEPOSIT + 36);

        let c = Credentials::<Test>::get(ALICE, id).expect("stored");
        assert_eq!(
            (c.issuer, c.claim_hash, c.issued_at, c.expires_at),
            (KYC, CLAIM, 1, 50)
        );
        assert_eq!((c.revoked_at, c.deposit), (None, deposit));
        assert_eq!(c.credential_type.as_slice(), b"KYC");
        assert_eq!(
            Dids::<Test>::get(ALICE)
                .expect("stored")
                .credentials
                .into_inner(),
            vec![CredentialStatus {
                id,
                issuer: KYC,
                issued_at: 1,
                expires_at: 50,
                revoked: false
            }]
        );
        assert_eq!(
            last_event(),
            Event::CredentialAttested {
                subject: ALICE,
                issuer: KYC,
                id,
                expires_at: 50,
                deposit
            }
            .into()
        );

        assert!(Did::is_verified(&ALICE));
        assert!(<Did as IdentityProvider<_>>::is_verified(&ALICE));
        assert_eq!(
            <Did as IdentityProvider<_>>::credential_weights(&ALICE),
            vec![Perbill::from_percent(60)]
        );
        attest(CHAMBER, ALICE, "CoC", 50);
        let mut weights = Did::credential_weights(&ALICE);
        weights.sort();
        assert_eq!(
            weights,
            vec![Perbill::from_percent(30), Perbill::from_percent(60)]
        );
    });
}

#[test]
fn attest_credential_errors() {
    issuers().build_and_execute(|| {
        let attest_as = |issuer: AccountId, subject: AccountId, ctype: &[u8], expires: u64| {
            Did::attest_credential(
                RuntimeOrigin::signed(issuer),
                subject,
                ctype.to_vec(),
                CLAIM,
                expires,
            )
        };
        create(ALICE);
        create(KYC);
        assert_noop!(
            attest_as(BOB, ALICE, b"KYC", 50),
            Error::<Test>::UnknownIssuer
        );
        assert_noop!(
            attest_as(KYC, KYC, b"KYC", 50),
            Error::<Test>::SelfAttestation
        );
        assert_noop!(attest_as(KYC, BOB, b"KYC", 50), Error::<Test>::DidNotFound);
        assert_noop!(
            attest_as(KYC, ALICE, b"", 50),
            Error::<Test>::EmptyCredentialType
        );
        assert_noop!(
            attest_as(KYC, ALICE, &[b'c'; 17], 50),
            Error::<Test>::CredentialTypeTooLong
        );
        assert_noop!(
            attest_as(KYC, ALICE, b"KYC", 1),
            Error::<Test>::ExpiryInPast
        );
        assert_noop!(
            Did::attest_credential(RuntimeOrigin::root(), ALICE, b"KYC".to_vec(), CLAIM, 50),
            DispatchError::BadOrigin
        );

        assert_ok!(attest_as(KYC, ALICE, &[b'c'; 16], 50));
        assert_noop!(
            attest_as(KYC, ALICE, &[b'c'; 16], 60),
            Error::<Test>::CredentialAlreadyExists
        );
        for t in [b"a", b"b", b"c"] {
            assert_ok!(attest_as(KYC, ALICE, t, 50));
        }
        assert_noop!(
            attest_as(CHAMBER, ALICE, b"d", 50),
            Error::<Test>::TooManyCredentials
        );
    });
}

#[test]
fn attest_credential_fails_when_the_issuer_cannot_pay() {
    ExtBuilder::default()
        .with_issuer(PAUPER, Perbill::from_percent(10))
        .build_and_execute(|| {
            create(ALICE);
            assert_noop!(
                Did::attest_credential(
                    RuntimeOrigin::signed(PAUPER),
                    ALICE,
                    b"KYC".to_vec(),
                    CLAIM,
                    50
                ),
                TokenError::FundsUnavailable
            );
        });
}

#[test]
fn expired_credentials_never_count() {
    issuers().build_and_execute(|| {
        create(ALICE);
        attest(KYC, ALICE, "KYC", 10);
        System::set_block_number(9);
        assert!(Did::is_verified(&ALICE));
        assert_eq!(
            Did::credential_weights(&ALICE),
            vec![Perbill::from_percent(60)]
        );
        System::set_block_number(10);
        assert!(!Did::is_verified(&ALICE));
        assert!(Did::credential_weights(&ALICE).is_empty());
        let doc = Did::did_document(&ALICE).expect("exists");
        assert!(!doc.verified);
        assert!(!doc.credentials[0].valid);
        assert_eq!(doc.credentials[0].issuer_weight, Perbill::zero());
    });
}

#[test]
fn revoke_credential_works() {
    issuers().build_and_execute(|| {
        create(ALICE);
        let id = attest(KYC, ALICE, "KYC", 100);
        System::set_block_number(4);
        assert_ok!(Did::revoke_credential(
            RuntimeOrigin::signed(KYC),
            ALICE,
            id
        ));
        assert_eq!(
            Credentials::<Test>::get(ALICE, id)
                .expect("kept")
                .revoked_at,
            Some(4)
        );
        assert_eq!(
            last_event(),
            Event::CredentialRevoked {
                subject: ALICE,
                issuer: KYC,
                id
            }
            .into()
        );
        assert!(!Did::is_verified(&ALICE));
        assert!(Did::credential_weights(&ALICE).is_empty());
        // The deposit stays held while the revoked credential is stored.
        assert_eq!(credential_held(KYC), CREDENTIAL_DEPOSIT + 3);
    });
}

#[test]
fn revoke_credential_errors() {
    issuers().build_and_execute(|| {
        create(ALICE);
        let id = attest(KYC, ALICE, "KYC", 100);
        assert_noop!(
            Did::revoke_credential(RuntimeOrigin::signed(KYC), ALICE, H256::zero()),
            Error::<Test>::CredentialNotFound
        );
        assert_noop!(
            Did::revoke_credential(RuntimeOrigin::signed(CHAMBER), ALICE, id),
            Error::<Test>::NotCredentialIssuer
        );
        assert_noop!(
            Did::revoke_credential(RuntimeOrigin::signed(ALICE), ALICE, id),
            Error::<Test>::NotCredentialIssuer
        );
        assert_ok!(Did::revoke_credential(
            RuntimeOrigin::signed(KYC),
            ALICE,
            id
        ));
        assert_noop!(
            Did::revoke_credential(RuntimeOrigin::signed(KYC), ALICE, id),
            Error::<Test>::AlreadyRevoked
        );
    });
}

#[test]
fn holder_or_issuer_can_remove_a_credential() {
    issuers().build_and_execute(|| {
        create(ALICE);
        let kyc = attest(KYC, ALICE, "KYC", 100);
        let coc = attest(CHAMBER, ALICE, "CoC", 100);

        // The holder drops one: the issuer gets its deposit back.
        assert_ok!(Did::remove_credential(
            RuntimeOrigin::signed(ALICE),
            ALICE,
            kyc
        ));
        assert!(!Credentials::<Test>::contains_key(ALICE, kyc));
        assert_eq!(credential_held(KYC), 0);
        assert_eq!(Balances::balance(&KYC), INITIAL_BALANCE);
        assert_eq!(
            Dids::<Test>::get(ALICE).expect("stored").credentials.len(),
            1
        );
        assert_eq!(
            last_event(),
            Event::CredentialRemoved {
                subject: ALICE,
                issuer: KYC,
                id: kyc,
                by: ALICE
            }
            .into()
        );

        // The issuer removes the other.
        assert_ok!(Did::remove_credential(
            RuntimeOrigin::signed(CHAMBER),
            ALICE,
            coc
        ));
        assert_eq!(credential_held(CHAMBER), 0);
        assert_eq!(
            Dids::<Test>::get(ALICE).expect("stored").credentials.len(),
            0
        );
        assert!(!Did::is_verified(&ALICE));
        assert_eq!(
            last_event(),
            Event::CredentialRemoved {
                subject: ALICE,
                issuer: CHAMBER,
                id: coc,
                by: CHAMBER
            }
            .into()
        );
    });
}

#[test]
fn remove_credential_errors() {
    issuers().build_and_execute(|| {
        create(ALICE);
        let id = attest(KYC, ALICE, "KYC", 100);
        assert_noop!(
            Did::remove_credential(RuntimeOrigin::signed(ALICE), ALICE, H256::zero()),
            Error::<Test>::CredentialNotFound
        );
        assert_noop!(
            Did::remove_credential(RuntimeOrigin::signed(BOB), ALICE, id),
            Error::<Test>::NotCredentialHolderOrIssuer
        );
        assert_noop!(
            Did::remove_credential(RuntimeOrigin::signed(CHAMBER), ALICE, id),
            Error::<Test>::NotCredentialHolderOrIssuer
        );
    });
}

// ---------------------------------------------------------------------------------------------
// Queries
// ---------------------------------------------------------------------------------------------

#[test]
fn did_document_shows_keys_services_and_credentials() {
    issuers().build_and_execute(|| {
        assert_eq!(Did::did_document(&ALICE), None);
        create(ALICE);
        let kyc = attest(KYC, ALICE, "KYC", 100);
        let coc = attest(CHAMBER, ALICE, "CoC", 100);
        assert_ok!(Did::revoke_credential(
            RuntimeOrigin::signed(CHAMBER),
            ALICE,
            coc
        ));

        let doc = Did::did_document(&ALICE).expect("exists");
        assert_eq!(doc.controller, ALICE);
        assert_eq!(doc.key_agreement, KEY);
        assert_eq!(doc.services.len(), 1);
        assert_eq!(doc.services[0].id, b"broker".to_vec());
        assert_eq!(doc.services[0].service_type, b"MQTT".to_vec());
        assert!(doc.verified);
        assert_eq!(doc.deposit, DID_DEPOSIT + 36);
        assert_eq!(doc.credentials.len(), 2);
        let k = doc
            .credentials
            .iter()
            .find(|c| c.id == kyc)
            .expect("listed");
        assert!(k.valid);
        assert_eq!(
            (k.issuer, k.issuer_weight),
            (KYC, Perbill::from_percent(60))
        );
        assert_eq!(k.credential_type, b"KYC".to_vec());
        let c = doc
            .credentials
            .iter()
            .find(|c| c.id == coc)
            .expect("listed");
        assert!(!c.valid);
        assert_eq!(c.revoked_at, Some(1));

        // The view functions answer the same.
        assert_eq!(Did::document(ALICE), Some(doc));
        assert!(Did::verified(ALICE));
        assert!(!Did::verified(BOB));
    });
}

#[test]
fn credential_ids_are_domain_separated_hashes() {
    use sp_runtime::traits::Hash;
    let expected = sp_runtime::traits::BlakeTwo256::hash_of(&(
        b"fastdata/credential".as_slice(),
        KYC,
        ALICE,
        b"KYC".as_slice(),
    ));
    assert_eq!(credential_id(&KYC, &ALICE, b"KYC"), expected);
    assert_ne!(
        credential_id(&KYC, &ALICE, b"KYC"),
        credential_id(&KYC, &BOB, b"KYC")
    );
    assert_ne!(
        credential_id(&KYC, &ALICE, b"KYC"),
        credential_id(&CHAMBER, &ALICE, b"KYC")
    );
}

#[test]
fn unverified_without_did_even_with_stored_credentials_elsewhere() {
    issuers().build_and_execute(|| {
        // No DID: not verified, no key, no weights.
        assert!(!Did::is_verified(&BOB));
        assert_eq!(Did::key_agreement_key(&BOB), None);
        assert!(Did::credential_weights(&BOB).is_empty());
    });
}

#[test]
fn try_state_detects_a_deposit_mismatch() {
    ExtBuilder::default().build().execute_with(|| {
        create(ALICE);
        assert_ok!(Did::do_try_state());
        Dids::<Test>::mutate(ALICE, |d| {
            if let Some(d) = d {
                d.deposit += 1;
            }
        });
        assert!(Did::do_try_state().is_err());
    });
}

#[test]
fn genesis_registers_issuers_dids_and_credentials_with_deposits() {
    let mut storage = frame_system::GenesisConfig::<Test>::default()
        .build_storage()
        .expect("system genesis");
    pallet_balances::GenesisConfig::<Test> {
        balances: vec![(ALICE, INITIAL_BALANCE), (KYC, INITIAL_BALANCE)],
        ..Default::default()
    }
    .assimilate_storage(&mut storage)
    .expect("balances genesis");
    crate::GenesisConfig::<Test> {
        issuers: vec![(KYC, b"KYC GmbH".to_vec(), Perbill::from_percent(60))],
        dids: vec![(ALICE, KEY)],
        credentials: vec![(KYC, ALICE, b"KYC".to_vec(), CLAIM, 1_000)],
    }
    .assimilate_storage(&mut storage)
    .expect("DID genesis");
    sp_io::TestExternalities::new(storage).execute_with(|| {
        System::set_block_number(1);
        assert!(Did::is_verified(&ALICE));
        assert_eq!(Did::key_agreement_key(&ALICE), Some(KEY));
        assert_eq!(
            Did::credential_weights(&ALICE),
            vec![Perbill::from_percent(60)]
        );
        assert_eq!(Issuers::<Test>::get().len(), 1);
        assert_eq!(did_held(ALICE), DID_DEPOSIT + BYTE_DEPOSIT);
        assert_eq!(credential_held(KYC), CREDENTIAL_DEPOSIT + 3 * BYTE_DEPOSIT);
        assert_ok!(Did::do_try_state());
    });
}

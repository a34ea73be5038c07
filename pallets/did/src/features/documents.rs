//! DID documents: create, rotate the key-agreement key, set services, deactivate.

use crate::*;
use alloc::vec::Vec;
use codec::Encode;
use fastdata_primitives::X25519Public;
use frame_support::{
    ensure,
    pallet_prelude::*,
    traits::{fungible::MutateHold, tokens::Precision},
};
use sp_runtime::{traits::Zero, Saturating};

impl<T: Config> Pallet<T> {
    /// Checks and bounds service endpoints given to a call.
    pub(crate) fn bound_services(services: Vec<ServiceInput>) -> Result<ServicesOf<T>, Error<T>> {
        ensure!(
            services.len() <= T::MaxServices::get() as usize,
            Error::<T>::TooManyServices
        );
        let mut bounded: ServicesOf<T> = BoundedVec::new();
        for service in services {
            ensure!(
                !service.id.is_empty()
                    && !service.service_type.is_empty()
                    && !service.endpoint.is_empty(),
                Error::<T>::EmptyServiceField
            );
            ensure!(
                !bounded
                    .iter()
                    .any(|s| s.id.as_slice() == service.id.as_slice()),
                Error::<T>::DuplicateServiceId
            );
            let endpoint = ServiceEndpoint {
                id: service
                    .id
                    .try_into()
                    .map_err(|_| Error::<T>::ServiceFieldTooLong)?,
                service_type: service
                    .service_type
                    .try_into()
                    .map_err(|_| Error::<T>::ServiceFieldTooLong)?,
                endpoint: service
                    .endpoint
                    .try_into()
                    .map_err(|_| Error::<T>::ServiceUrlTooLong)?,
            };
            bounded
                .try_push(endpoint)
                .map_err(|_| Error::<T>::TooManyServices)?;
        }
        Ok(bounded)
    }

    /// The deposit of a document with `services`.
    pub fn did_deposit(services: &ServicesOf<T>) -> BalanceOf<T> {
        linear_deposit(
            T::DidDeposit::get(),
            T::ByteDeposit::get(),
            services.encoded_size(),
        )
    }

    /// Creates the DID of `who`, holding the deposit for its services.
    pub(crate) fn do_create_did(
        who: T::AccountId,
        key_agreement: X25519Public,
        services: Vec<ServiceInput>,
    ) -> DispatchResult {
        ensure!(!Dids::<T>::contains_key(&who), Error::<T>::DidAlreadyExists);
        ensure!(
            key_agreement != [0u8; 32],
            Error::<T>::InvalidKeyAgreementKey
        );
        let services = Self::bound_services(services)?;
        let deposit = Self::did_deposit(&services);
        T::Currency::hold(&HoldReason::DidDeposit.into(), &who, deposit)?;

        let now = frame_system::Pallet::<T>::block_number();
        let count = services.len() as u32;
        Dids::<T>::insert(
            &who,
            DidDocument {
                key_agreement,
                services,
                credentials: BoundedVec::new(),
                created_at: now,
                updated_at: now,
                deposit,
            },
        );
        Self::deposit_event(Event::DidCreated {
            did: who,
            key_agreement,
            services: count,
            deposit,
        });
        Ok(())
    }

    /// Replaces the key-agreement key of `who`'s DID.
    pub(crate) fn do_rotate_key_agreement(
        who: T::AccountId,
        key_agreement: X25519Public,
    ) -> DispatchResult {
        ensure!(
            key_agreement != [0u8; 32],
            Error::<T>::InvalidKeyAgreementKey
        );
        Dids::<T>::try_mutate(&who, |doc| -> DispatchResult {
            let doc = doc.as_mut().ok_or(Error::<T>::DidNotFound)?;
            ensure!(
                doc.key_agreement != key_agreement,
                Error::<T>::KeyAgreementUnchanged
            );
            doc.key_agreement = key_agreement;
            doc.updated_at = frame_system::Pallet::<T>::block_number();
            Ok(())
        })?;
        Self::deposit_event(Event::KeyAgreementRotated {
            did: who,
            key_agreement,
        });
        Ok(())
    }

    /// Replaces the services of `who`'s DID, holding or releasing the deposit difference.
    pub(crate) fn do_set_services(
        who: T::AccountId,
        services: Vec<ServiceInput>,
    ) -> DispatchResult {
        let mut doc = Dids::<T>::get(&who).ok_or(Error::<T>::DidNotFound)?;
        let services = Self::bound_services(services)?;
        let new_deposit = Self::did_deposit(&services);
        let reason = HoldReason::DidDeposit.into();
        if new_deposit > doc.deposit {
            T::Currency::hold(&reason, &who, new_deposit.saturating_sub(doc.deposit))?;
        } else if new_deposit < doc.deposit {
            T::Currency::release(
                &reason,
                &who,
                doc.deposit.saturating_sub(new_deposit),
                Precision::Exact,
            )?;
        }
        let count = services.len() as u32;
        doc.services = services;
        doc.deposit = new_deposit;
        doc.updated_at = frame_system::Pallet::<T>::block_number();
        Dids::<T>::insert(&who, doc);
        Self::deposit_event(Event::ServicesUpdated {
            did: who,
            services: count,
            deposit: new_deposit,
        });
        Ok(())
    }

    /// Removes the DID of `who` with all its credentials; returns how many credentials were
    /// removed.
    pub(crate) fn do_deactivate_did(who: T::AccountId) -> Result<u32, DispatchError> {
        let doc = Dids::<T>::get(&who).ok_or(Error::<T>::DidNotFound)?;
        let credential_reason = HoldReason::CredentialDeposit.into();
        let mut removed = 0u32;
        for (_id, credential) in Credentials::<T>::drain_prefix(&who) {
            if !credential.deposit.is_zero() {
                T::Currency::release(
                    &credential_reason,
                    &credential.issuer,
                    credential.deposit,
                    Precision::BestEffort,
                )?;
            }
            removed.saturating_inc();
        }
        if removed as usize != doc.credentials.len() {
            log::warn!(
                target: LOG_TARGET,
                "DID had {} credentials recorded but {} stored",
                doc.credentials.len(),
                removed
            );
        }
        if !doc.deposit.is_zero() {
            T::Currency::release(
                &HoldReason::DidDeposit.into(),
                &who,
                doc.deposit,
                Precision::BestEffort,
            )?;
        }
        Dids::<T>::remove(&who);
        Self::deposit_event(Event::DidDeactivated {
            did: who,
            credentials_removed: removed,
            deposit_released: doc.deposit,
        });
        Ok(removed)
    }
}

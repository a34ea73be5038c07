//! Credentials: attestation, revocation and removal.

use crate::*;
use alloc::vec::Vec;
use frame_support::{
    ensure,
    pallet_prelude::*,
    traits::{fungible::MutateHold, tokens::Precision},
};
use frame_system::pallet_prelude::BlockNumberFor;
use sp_core::H256;
use sp_runtime::traits::Zero;

impl<T: Config> Pallet<T> {
    /// The deposit of a credential of type `credential_type`.
    pub fn credential_deposit(credential_type: &[u8]) -> BalanceOf<T> {
        linear_deposit(
            T::CredentialDeposit::get(),
            T::ByteDeposit::get(),
            credential_type.len(),
        )
    }

    /// Stores a credential `issuer` attests to `subject`'s DID, holding its deposit from
    /// the issuer.
    pub(crate) fn do_attest_credential(
        issuer: T::AccountId,
        subject: T::AccountId,
        credential_type: Vec<u8>,
        claim_hash: H256,
        expires_at: BlockNumberFor<T>,
    ) -> DispatchResult {
        ensure!(
            Issuers::<T>::get().contains_key(&issuer),
            Error::<T>::UnknownIssuer
        );
        ensure!(issuer != subject, Error::<T>::SelfAttestation);
        let mut doc = Dids::<T>::get(&subject).ok_or(Error::<T>::DidNotFound)?;
        ensure!(!credential_type.is_empty(), Error::<T>::EmptyCredentialType);
        let now = frame_system::Pallet::<T>::block_number();
        ensure!(expires_at > now, Error::<T>::ExpiryInPast);
        let id = credential_id(&issuer, &subject, &credential_type);
        ensure!(
            !Credentials::<T>::contains_key(&subject, id),
            Error::<T>::CredentialAlreadyExists
        );
        let deposit = Self::credential_deposit(&credential_type);
        let credential_type: BoundedVec<u8, T::MaxCredentialTypeLength> = credential_type
            .try_into()
            .map_err(|_| Error::<T>::CredentialTypeTooLong)?;

        doc.credentials
            .try_push(CredentialStatus {
                id,
                issuer: issuer.clone(),
                issued_at: now,
                expires_at,
                revoked: false,
            })
            .map_err(|_| Error::<T>::TooManyCredentials)?;
        T::Currency::hold(&HoldReason::CredentialDeposit.into(), &issuer, deposit)?;
        Credentials::<T>::insert(
            &subject,
            id,
            Credential {
                issuer: issuer.clone(),
                credential_type,
                claim_hash,
                issued_at: now,
                expires_at,
                revoked_at: None,
                deposit,
            },
        );
        Dids::<T>::insert(&subject, doc);
        Self::deposit_event(Event::CredentialAttested {
            subject,
            issuer,
            id,
            expires_at,
            deposit,
        });
        Ok(())
    }

    /// Marks the credential `id` of `subject` revoked by its issuer `who` (it stays stored).
    pub(crate) fn do_revoke_credential(
        who: T::AccountId,
        subject: T::AccountId,
        id: CredentialId,
    ) -> DispatchResult {
        Credentials::<T>::try_mutate(&subject, id, |credential| -> DispatchResult {
            let credential = credential.as_mut().ok_or(Error::<T>::CredentialNotFound)?;
            ensure!(credential.issuer == who, Error::<T>::NotCredentialIssuer);
            ensure!(credential.revoked_at.is_none(), Error::<T>::AlreadyRevoked);
            credential.revoked_at = Some(frame_system::Pallet::<T>::block_number());
            Ok(())
        })?;
        // A credential is stored only under an active DID, which lists it.
        Dids::<T>::mutate(&subject, |doc| {
            if let Some(status) = doc
                .as_mut()
                .and_then(|doc| doc.credentials.iter_mut().find(|c| c.id == id))
            {
                status.revoked = true;
            }
        });
        Self::deposit_event(Event::CredentialRevoked {
            subject,
            issuer: who,
            id,
        });
        Ok(())
    }

    /// Removes the credential `id` of `subject` at the request of its holder or issuer `who`
    /// and returns its deposit to the issuer.
    pub(crate) fn do_remove_credential(
        who: T::AccountId,
        subject: T::AccountId,
        id: CredentialId,
    ) -> DispatchResult {
        let credential =
            Credentials::<T>::get(&subject, id).ok_or(Error::<T>::CredentialNotFound)?;
        ensure!(
            who == subject || who == credential.issuer,
            Error::<T>::NotCredentialHolderOrIssuer
        );
        if !credential.deposit.is_zero() {
            T::Currency::release(
                &HoldReason::CredentialDeposit.into(),
                &credential.issuer,
                credential.deposit,
                Precision::BestEffort,
            )?;
        }
        Credentials::<T>::remove(&subject, id);
        Dids::<T>::mutate(&subject, |doc| {
            if let Some(doc) = doc {
                doc.credentials.retain(|c| c.id != id);
            }
        });
        Self::deposit_event(Event::CredentialRemoved {
            subject,
            issuer: credential.issuer,
            id,
            by: who,
        });
        Ok(())
    }
}

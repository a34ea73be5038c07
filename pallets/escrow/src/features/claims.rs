//! Claims: operators accrue pay with the buyer's cumulative receipts.

use crate::*;
use fastdata_primitives::{
    escrow::{OperatorClaim, BYTES_PER_MB},
    receipt::{Receipt, ReceiptRejection},
    OperatorProvider,
};
use frame_support::{ensure, traits::Get};
use sp_runtime::{traits::Saturating, DispatchResult};

impl<T: Config> Pallet<T> {
    /// Accepts `receipt` from `operator` if it is the buyer's on this chain, for the caller,
    /// newer than the last one accepted and within the attested stream head; accrues the pay
    /// for the bytes not yet priced at the price agreed at purchase.
    pub(crate) fn do_claim(
        operator: T::AccountId,
        receipt: Receipt<T::AccountId>,
        signature: T::ReceiptSignature,
    ) -> DispatchResult {
        ensure!(receipt.operator == operator, Error::<T>::ForeignReceipt);
        let id = receipt.purchase;
        let mut purchase = Purchases::<T>::get(id).ok_or(Error::<T>::UnknownPurchase)?;
        ensure!(purchase.state.is_open(), Error::<T>::PurchaseClosed);
        ensure!(purchase.deal.buyer != operator, Error::<T>::BuyerIsOperator);
        ensure!(
            receipt.verify(&signature, &purchase.deal.buyer, &Self::genesis_hash()),
            Error::<T>::InvalidSignature
        );
        let current_price =
            T::Operators::price_per_mb(&operator).ok_or(Error::<T>::NotAnOperator)?;
        let price_per_mb = purchase.agreed_price(&operator, current_price);
        ensure!(
            receipt.up_to_sequence < T::Operators::stream_head(&purchase.deal.stream),
            Error::<T>::BeyondStreamHead
        );

        let mut claim = match OperatorClaims::<T>::get(id, &operator) {
            Some(claim) => {
                let previous = Receipt {
                    purchase: id,
                    operator: operator.clone(),
                    up_to_sequence: claim.up_to_sequence,
                    bytes: claim.bytes,
                    nonce: claim.nonce,
                };
                receipt
                    .supersedes(&previous)
                    .map_err(|rejection| match rejection {
                        ReceiptRejection::Replayed => Error::<T>::ReplayedReceipt,
                        ReceiptRejection::Lower => Error::<T>::LowerReceipt,
                        ReceiptRejection::Stale => Error::<T>::StaleReceipt,
                    })?;
                claim
            }
            None => {
                ensure!(
                    T::Operators::assigned(&purchase.deal.stream).contains(&operator),
                    Error::<T>::NotAssignedOperator
                );
                ensure!(
                    purchase.operators.claims < T::MaxOperatorsPerPurchase::get(),
                    Error::<T>::TooManyOperators
                );
                purchase.operators.claims = purchase.operators.claims.saturating_add(1);
                OperatorClaim::default()
            }
        };

        let new_bytes = receipt.bytes.saturating_sub(claim.bytes);
        let accrued = mul_div(
            price_per_mb,
            u128::from(new_bytes),
            u128::from(BYTES_PER_MB),
        );
        claim.accrued = claim.accrued.saturating_add(accrued);
        purchase.operators.accrued = purchase.operators.accrued.saturating_add(accrued);
        if purchase
            .progress
            .delivered_up_to
            .is_none_or(|up_to| receipt.up_to_sequence > up_to)
        {
            purchase.progress.delivered_up_to = Some(receipt.up_to_sequence);
        }
        claim.nonce = receipt.nonce;
        claim.up_to_sequence = receipt.up_to_sequence;
        claim.bytes = receipt.bytes;

        OperatorClaims::<T>::insert(id, &operator, claim);
        Purchases::<T>::insert(id, purchase);
        Self::deposit_event(Event::ReceiptClaimed {
            purchase: id,
            operator,
            up_to_sequence: receipt.up_to_sequence,
            bytes: receipt.bytes,
            accrued,
        });
        Ok(())
    }
}

//! Runtime API of `pallet-escrow`: what buyers, sellers and operators ask about purchases.
//!
//! The runtime implements it by calling the pallet's public functions
//! (`pallet_escrow::Pallet::<Runtime>::{purchases_of_buyer, purchases_of_offer,
//! purchase_view, sealed_key}`).

use alloc::vec::Vec;
use codec::Codec;

use crate::{escrow::PurchaseView, EpochIndex, OfferId, PurchaseId};

sp_api::decl_runtime_apis! {
    /// Queries of purchases held in escrow.
    pub trait EscrowApi<AccountId, Balance, BlockNumber>
    where
        AccountId: Codec,
        Balance: Codec,
        BlockNumber: Codec,
    {
        /// Ids of the purchases made by `buyer` that are still stored (open, or closed
        /// within the retention period), ascending.
        fn purchases_of_buyer(buyer: AccountId) -> Vec<PurchaseId>;
        /// Ids of the stored purchases of `offer`, ascending.
        fn purchases_of_offer(offer: OfferId) -> Vec<PurchaseId>;
        /// A purchase with its access period, delivered epochs, state, settlement schedule
        /// and amounts (delivered, claimed, paid, refunded).
        fn purchase(id: PurchaseId) -> Option<PurchaseView<AccountId, Balance, BlockNumber>>;
        /// The sealed keys of `epoch` for purchase `id` (open them with
        /// `fastdata_primitives::sealed::open`).
        fn sealed_key(id: PurchaseId, epoch: EpochIndex) -> Option<Vec<u8>>;
    }
}

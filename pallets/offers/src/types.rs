//! Stored types of the offers pallet and their small helpers.

use codec::{Decode, Encode, MaxEncodedLen};
use fastdata_primitives::{EpochIndex, OfferId, OfferSummary, PaymentMode, StreamId};
use frame_support::{pallet_prelude::*, traits::fungible};
use frame_system::pallet_prelude::BlockNumberFor;
use scale_info::TypeInfo;

pub use fastdata_primitives::api_market::{Licence, OfferTerms};

use crate::Config;

/// Balance type of the pallet's currency.
pub type BalanceOf<T> =
    <<T as Config>::Currency as fungible::Inspect<<T as frame_system::Config>::AccountId>>::Balance;

/// A bounded offer topic.
pub type TopicOf<T> = BoundedVec<u8, <T as Config>::MaxTopicLen>;

/// A bounded stream name.
pub type StreamNameOf<T> = BoundedVec<u8, <T as Config>::MaxStreamNameLen>;

/// The payment mode of a runtime.
pub type PaymentModeOf<T> = PaymentMode<BlockNumberFor<T>>;

/// The offer terms of a runtime.
pub type OfferTermsOf<T> = OfferTerms<BlockNumberFor<T>>;

/// The offer record of a runtime.
pub type OfferOf<T> = Offer<
    <T as frame_system::Config>::AccountId,
    BalanceOf<T>,
    BlockNumberFor<T>,
    <T as Config>::MaxTopicLen,
>;

/// The stream record of a runtime.
pub type StreamOf<T> = Stream<
    <T as frame_system::Config>::AccountId,
    BalanceOf<T>,
    BlockNumberFor<T>,
    <T as Config>::MaxStreamNameLen,
>;

/// A data offer: `topic + payment mode + price + terms` (the paper's `DataOffer`).
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, MaxEncodedLen, TypeInfo)]
#[scale_info(skip_type_params(MaxTopicLen))]
#[codec(mel_bound(
	AccountId: MaxEncodedLen,
	Balance: MaxEncodedLen,
	BlockNumber: MaxEncodedLen
))]
pub struct Offer<AccountId, Balance, BlockNumber, MaxTopicLen: Get<u32>> {
    /// The seller (a verified identity when the offer was created).
    pub seller: AccountId,
    /// What the data is (UTF-8, no MQTT wildcards).
    pub topic: BoundedVec<u8, MaxTopicLen>,
    /// Batch window or live stream.
    pub mode: PaymentMode<BlockNumber>,
    /// Flat price (batch) or price per period (stream), for new purchases.
    pub price: Balance,
    /// Terms for new purchases.
    pub terms: OfferTerms<BlockNumber>,
    /// The stream the offer sells, once registered.
    pub stream: Option<StreamId>,
    /// Deposit held from the seller for this record.
    pub deposit: Balance,
    /// Block of creation.
    pub created_at: BlockNumber,
    /// Block at which the offer stopped accepting purchases.
    pub retired_at: Option<BlockNumber>,
}

impl<AccountId: Clone, Balance: Clone, BlockNumber: Clone, MaxTopicLen: Get<u32>>
    Offer<AccountId, Balance, BlockNumber, MaxTopicLen>
{
    /// The offer accepts new purchases.
    pub fn is_active(&self) -> bool {
        self.retired_at.is_none()
    }

    /// What the escrow pallet needs to know.
    pub fn summary(&self) -> OfferSummary<AccountId, Balance, BlockNumber> {
        OfferSummary {
            seller: self.seller.clone(),
            stream: self.stream,
            mode: self.mode.clone(),
            price: self.price.clone(),
            verified_only: self.terms.verified_only,
            verified_discount: self.terms.verified_discount,
            min_trust_score: self.terms.min_trust_score,
            active: self.is_active(),
        }
    }
}

/// A registered data stream of an offer.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, MaxEncodedLen, TypeInfo)]
#[scale_info(skip_type_params(MaxNameLen))]
#[codec(mel_bound(
	AccountId: MaxEncodedLen,
	Balance: MaxEncodedLen,
	BlockNumber: MaxEncodedLen
))]
pub struct Stream<AccountId, Balance, BlockNumber, MaxNameLen: Get<u32>> {
    /// The seller who owns the stream.
    pub seller: AccountId,
    /// The offer the stream belongs to.
    pub offer: OfferId,
    /// The name the seller chose (part of the stream id preimage).
    pub name: BoundedVec<u8, MaxNameLen>,
    /// The seller's timestamp (part of the stream id preimage).
    pub timestamp: u64,
    /// The current key epoch.
    pub epoch: EpochIndex,
    /// The oldest epoch whose commitment is still stored.
    pub oldest_epoch: EpochIndex,
    /// Deposit held from the seller for this record and its stored commitments.
    pub deposit: Balance,
    /// Block of registration.
    pub created_at: BlockNumber,
    /// Block at which the seller closed the stream.
    pub closed_at: Option<BlockNumber>,
    /// Block at which its operators were released (after closing, once no purchase needed
    /// them).
    pub released_at: Option<BlockNumber>,
}

impl<AccountId, Balance, BlockNumber, MaxNameLen: Get<u32>>
    Stream<AccountId, Balance, BlockNumber, MaxNameLen>
{
    /// The stream is open (not closed by its seller).
    pub fn is_open(&self) -> bool {
        self.closed_at.is_none()
    }

    /// Number of epoch commitments stored.
    pub fn retained_epochs(&self) -> u32 {
        self.epoch
            .saturating_sub(self.oldest_epoch)
            .saturating_add(1)
    }
}

/// `true` if `bytes` is a valid topic or stream name: non-empty UTF-8 without control
/// characters or the MQTT wildcards `+` and `#`; stream names additionally exclude `/`.
pub fn is_valid_label(bytes: &[u8], allow_slash: bool) -> bool {
    let Ok(text) = core::str::from_utf8(bytes) else {
        return false;
    };
    !text.is_empty()
        && text
            .chars()
            .all(|c| !c.is_control() && c != '+' && c != '#' && (allow_slash || c != '/'))
}

#[cfg(test)]
mod tests {
    use super::is_valid_label;

    #[test]
    fn labels() {
        assert!(is_valid_label(b"factory-1/line-2/temperature", true));
        assert!(is_valid_label("Fabrik Süd/Druck".as_bytes(), true));
        assert!(!is_valid_label(b"", true));
        assert!(!is_valid_label(b"a/+/b", true));
        assert!(!is_valid_label(b"a/#", true));
        assert!(!is_valid_label(b"a\nb", true));
        assert!(!is_valid_label(b"\xff\xfe", true));
        assert!(is_valid_label(b"sensor-7", false));
        assert!(!is_valid_label(b"sensor/7", false));
    }
}

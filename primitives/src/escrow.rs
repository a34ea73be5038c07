//! Types of `pallet-escrow` that off-chain code reads too: the state of a purchase, its
//! money ledger, operator claims and disputes, and the view returned by
//! [`EscrowApi`](crate::api_escrow::EscrowApi).
//!
//! The pallet stores these types as they are, so the operator daemon and the SDK decode
//! chain state and runtime-API answers with the same definitions.

use alloc::vec::Vec;
use codec::{Decode, DecodeWithMemTracking, Encode, MaxEncodedLen};
use scale_info::TypeInfo;
use sp_core::H256;

use crate::{EpochIndex, OfferId, PurchaseId, Sequence, StreamId, X25519Public};

/// Bytes in one megabyte, the unit of an operator's price (`price_per_mb`). Decimal, as
/// metered by brokers: an operator serving `b` bytes at price `p` earns `b · p / 10^6`.
pub const BYTES_PER_MB: u64 = 1_000_000;

/// What a purchase buys, fixed when it is made.
#[derive(
    Clone,
    Copy,
    PartialEq,
    Eq,
    Debug,
    Encode,
    Decode,
    DecodeWithMemTracking,
    MaxEncodedLen,
    TypeInfo,
)]
pub enum PurchaseTerms<BlockNumber> {
    /// A window of recorded data (segments `first..=last`), settled once at the end of the
    /// access period.
    Batch {
        /// First sequence number of the window.
        first: Sequence,
        /// Last sequence number of the window (inclusive).
        last: Sequence,
    },
    /// A live subscription of `periods` consecutive periods of `period` blocks each,
    /// paid in advance and settled period by period.
    Stream {
        /// Length of one period in blocks.
        period: BlockNumber,
        /// Number of periods bought.
        periods: u32,
    },
}

impl<BlockNumber> PurchaseTerms<BlockNumber> {
    /// Number of settlement periods: `periods` for a stream, 1 for a batch.
    pub fn periods(&self) -> u32 {
        match self {
            PurchaseTerms::Batch { .. } => 1,
            PurchaseTerms::Stream { periods, .. } => *periods,
        }
    }

    /// Number of segments in a batch window (`last - first + 1`, in `u128` so that the full
    /// `u64` range cannot overflow); `None` for a stream.
    pub fn batch_len(&self) -> Option<u128> {
        match self {
            PurchaseTerms::Batch { first, last } => Some(
                u128::from(*last)
                    .saturating_sub(u128::from(*first))
                    .saturating_add(1),
            ),
            PurchaseTerms::Stream { .. } => None,
        }
    }
}

/// The life cycle of a purchase.
///
/// ```text
/// AwaitingKeys --keys for the first epoch--> Active --last period settled--> Settled
///      |                                     |   ^
///      | key deadline passed                 |   | dispute rejected
///      v                                     v   |
///   Refunded                              Disputed --dispute upheld--> Settled
/// ```
#[derive(
    Clone,
    Copy,
    PartialEq,
    Eq,
    Debug,
    Encode,
    Decode,
    DecodeWithMemTracking,
    MaxEncodedLen,
    TypeInfo,
)]
pub enum PurchaseState {
    /// Paid; waiting for the seller to seal the keys of the first epoch to the buyer.
    AwaitingKeys,
    /// Keys delivered; data flows, operators claim receipts, periods settle as they end.
    Active,
    /// The buyer disputed; the remaining funds are frozen until the dispute origin decides.
    Disputed,
    /// Every period is settled (or a dispute was upheld); nothing is held any more.
    Settled,
    /// The seller missed the key deadline; the buyer got the whole price back.
    Refunded,
}

impl PurchaseState {
    /// The purchase still holds money (it is neither settled nor refunded).
    pub fn is_open(&self) -> bool {
        matches!(
            self,
            PurchaseState::AwaitingKeys | PurchaseState::Active | PurchaseState::Disputed
        )
    }
}

/// Where the price of a purchase went. `held + operators + seller + fees + refunded` is
/// always the price: money only moves from `held` to one of the other four.
#[derive(
    Clone,
    Copy,
    PartialEq,
    Eq,
    Debug,
    Default,
    Encode,
    Decode,
    DecodeWithMemTracking,
    MaxEncodedLen,
    TypeInfo,
)]
pub struct PurchaseLedger<Balance> {
    /// Still held from the buyer.
    pub held: Balance,
    /// Paid to storage operators for receipted bytes.
    pub operators: Balance,
    /// Paid to the seller (after the protocol fee).
    pub seller: Balance,
    /// Paid to the treasury as protocol fee.
    pub fees: Balance,
    /// Given back to the buyer.
    pub refunded: Balance,
}

/// Why a buyer disputes a purchase.
#[derive(
    Clone,
    Copy,
    PartialEq,
    Eq,
    Debug,
    Encode,
    Decode,
    DecodeWithMemTracking,
    MaxEncodedLen,
    TypeInfo,
)]
pub enum DisputeReason {
    /// The sealed keys do not match the stream's on-chain commitment `H(k_e ‖ k_m)`, or do
    /// not open with the buyer's key.
    KeysMismatch,
    /// Keys of a later epoch the buyer paid for were not delivered.
    KeysMissing,
    /// Data does not decrypt, fails its MAC, or was not served.
    DataNotDelivered,
    /// Anything else; see the evidence.
    Other,
}

/// An open dispute.
#[derive(
    Clone,
    Copy,
    PartialEq,
    Eq,
    Debug,
    Encode,
    Decode,
    DecodeWithMemTracking,
    MaxEncodedLen,
    TypeInfo,
)]
pub struct DisputeInfo<Balance, BlockNumber> {
    /// Why the buyer disputes.
    pub reason: DisputeReason,
    /// Hash of off-chain evidence (e.g. of the opened keys and a failing segment).
    pub evidence: Option<H256>,
    /// Deposit held from the buyer; lost if the dispute is rejected.
    pub deposit: Balance,
    /// Block at which the dispute was opened.
    pub opened_at: BlockNumber,
    /// Unresolved at this block, the dispute ends by the escrow's rule: upheld in full if
    /// the seller never answered, lapsed (the purchase resumes) if it did.
    pub deadline: BlockNumber,
    /// Hash of the seller's off-chain evidence, once it answered.
    pub answer: Option<H256>,
}

/// What an operator has claimed for one purchase: the last accepted receipt and its pay.
#[derive(
    Clone,
    Copy,
    PartialEq,
    Eq,
    Debug,
    Default,
    Encode,
    Decode,
    DecodeWithMemTracking,
    MaxEncodedLen,
    TypeInfo,
)]
pub struct OperatorClaim<Balance> {
    /// Nonce of the last accepted receipt; the next one must be higher.
    pub nonce: u64,
    /// Sequence number up to which the buyer acknowledged data from this operator.
    pub up_to_sequence: Sequence,
    /// Cumulative bytes acknowledged (and priced) so far.
    pub bytes: u64,
    /// Pay accrued in the current period, paid (within the storage share) at its settlement.
    pub accrued: Balance,
    /// Pay received so far.
    pub paid: Balance,
}

/// Access granted by a purchase: blocks and key epochs. Operators serve the buyer during
/// `start..end` (plus the batch download window); the buyer can decrypt `epochs`.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, DecodeWithMemTracking, TypeInfo)]
pub struct AccessPeriod<BlockNumber> {
    /// First block of access (the purchase block).
    pub start: BlockNumber,
    /// First block after access (end of the last period, or of the batch download window).
    pub end: BlockNumber,
    /// The epoch whose keys must arrive by the key deadline (the stream's epoch at purchase
    /// time); `None` for a batch, where any delivered epoch activates the purchase.
    pub first_epoch: Option<EpochIndex>,
    /// Epochs whose sealed keys are on chain for this purchase, ascending.
    pub epochs: Vec<EpochIndex>,
}

/// Everything a user needs to know about one purchase (answer of
/// [`EscrowApi::purchase`](crate::api_escrow::EscrowApi)).
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, DecodeWithMemTracking, TypeInfo)]
pub struct PurchaseView<AccountId, Balance, BlockNumber> {
    /// The purchase id.
    pub id: PurchaseId,
    /// The buyer.
    pub buyer: AccountId,
    /// The seller.
    pub seller: AccountId,
    /// The offer bought.
    pub offer: OfferId,
    /// The stream of the offer.
    pub stream: StreamId,
    /// What was bought.
    pub terms: PurchaseTerms<BlockNumber>,
    /// The buyer's X25519 key the seller seals epoch keys to (snapshot at purchase time).
    pub buyer_key: X25519Public,
    /// Price paid (after the verified-buyer discount).
    pub price: Balance,
    /// Current state.
    pub state: PurchaseState,
    /// Access period and delivered epochs.
    pub access: AccessPeriod<BlockNumber>,
    /// Last block at which the keys of the first epoch may be delivered.
    pub key_deadline: BlockNumber,
    /// Periods settled so far.
    pub settled_periods: u32,
    /// Block from which the next period can be settled, if any is left.
    pub next_settlement: Option<BlockNumber>,
    /// Highest sequence number the buyer acknowledged to any operator.
    pub delivered_up_to: Option<Sequence>,
    /// Streams: the attested stream head at purchase time, the first sequence the purchase
    /// pays for and is served from. `None` for a batch.
    pub start_head: Option<Sequence>,
    /// Streams: the attested heads recorded at the boundaries of the periods not yet
    /// settled, from the start of period `settled_periods` on.
    pub period_heads: Vec<Sequence>,
    /// Where the money went so far.
    pub ledger: PurchaseLedger<Balance>,
    /// Operators' pay accrued in the current period, not yet paid.
    pub accrued: Balance,
    /// Claims of each operator that served the buyer.
    pub operators: Vec<(AccountId, OperatorClaim<Balance>)>,
    /// The open dispute, if any.
    pub dispute: Option<DisputeInfo<Balance, BlockNumber>>,
    /// Block at which the purchase was settled or refunded.
    pub closed_at: Option<BlockNumber>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_and_batch_len() {
        let batch = PurchaseTerms::<u32>::Batch {
            first: 10,
            last: 19,
        };
        assert_eq!(batch.periods(), 1);
        assert_eq!(batch.batch_len(), Some(10));
        let full = PurchaseTerms::<u32>::Batch {
            first: 0,
            last: u64::MAX,
        };
        assert_eq!(full.batch_len(), Some(u128::from(u64::MAX) + 1));
        let stream = PurchaseTerms::<u32>::Stream {
            period: 10,
            periods: 3,
        };
        assert_eq!(stream.periods(), 3);
        assert_eq!(stream.batch_len(), None);
    }

    #[test]
    fn open_states() {
        assert!(PurchaseState::AwaitingKeys.is_open());
        assert!(PurchaseState::Active.is_open());
        assert!(PurchaseState::Disputed.is_open());
        assert!(!PurchaseState::Settled.is_open());
        assert!(!PurchaseState::Refunded.is_open());
    }
}

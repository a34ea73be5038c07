//! Stored types of the escrow pallet and their small helpers.

use codec::{Decode, Encode, MaxEncodedLen};
use fastdata_primitives::{
    escrow::{DisputeInfo, PurchaseLedger, PurchaseState, PurchaseTerms},
    EpochIndex, OfferId, Sequence, StreamId, X25519Public,
};
use frame_support::{
    traits::{fungible, ConstU32},
    BoundedVec,
};
use frame_system::pallet_prelude::BlockNumberFor;
use scale_info::TypeInfo;
use sp_runtime::{
    helpers_128bit::multiply_by_rational_with_rounding,
    traits::{Bounded, One, UniqueSaturatedFrom, UniqueSaturatedInto, Zero},
    Rounding,
};

use crate::{split::Delivered, Config};

/// Balance type of the pallet's currency.
pub type BalanceOf<T> =
    <<T as Config>::Currency as fungible::Inspect<<T as frame_system::Config>::AccountId>>::Balance;

/// Most period-boundary heads a stream purchase keeps before its oldest period is settled
/// (see [`PurchaseProgress::heads`]). A boundary that comes while the list is full (a
/// purchase that waits for keys or is disputed for longer) is recorded when a settlement
/// makes room.
pub const MAX_PENDING_BOUNDARIES: u32 = 16;

/// Most operators whose price per MB a purchase records at purchase time.
pub const MAX_PRICED_OPERATORS: u32 = 8;

/// A purchase as stored, with the types of the runtime.
pub type PurchaseOf<T> =
    Purchase<<T as frame_system::Config>::AccountId, BalanceOf<T>, BlockNumberFor<T>>;

/// An operator claim as stored, with the runtime's balance.
pub type OperatorClaimOf<T> = fastdata_primitives::escrow::OperatorClaim<BalanceOf<T>>;

/// A purchase: who bought what, its deadlines, its progress and where its money went.
///
/// The fields are grouped into parts ([`PurchaseDeal`], [`PurchasePayment`],
/// [`PurchaseSchedule`], [`KeyDelivery`], [`PurchaseProgress`], [`OperatorPay`]); a struct
/// encodes as the concatenation of its fields, so the stored bytes are those of the flat
/// record the parts were cut from.
///
/// Invariant: `ledger.held + ledger.operators + ledger.seller + ledger.fees +
/// ledger.refunded == payment.price`, and `ledger.held` is zero once the purchase is closed.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, MaxEncodedLen, TypeInfo)]
pub struct Purchase<AccountId, Balance, BlockNumber> {
    /// Who bought what from whom, and the buyer key that epoch keys are sealed to.
    pub deal: PurchaseDeal<AccountId, BlockNumber>,
    /// The price and deposit held from the buyer.
    pub payment: PurchasePayment<Balance>,
    /// When access starts and ends, and the deadline of the first keys.
    pub schedule: PurchaseSchedule<BlockNumber>,
    /// Life-cycle state.
    pub state: PurchaseState,
    /// The seller's delivered keys and their deposits.
    pub keys: KeyDelivery<Balance>,
    /// Settled periods, delivery acknowledged by the buyer and the stream heads recorded.
    pub progress: PurchaseProgress,
    /// What the operators are paid: their agreed prices, claims and pay accrued.
    pub operators: OperatorPay<AccountId, Balance>,
    /// Where the price went so far.
    pub ledger: PurchaseLedger<Balance>,
    /// The open dispute, while `state` is `Disputed`.
    pub dispute: Option<DisputeInfo<Balance, BlockNumber>>,
    /// The buyer has disputed it (a purchase can be disputed once).
    pub disputed: bool,
    /// Block at which the purchase was settled or refunded.
    pub closed_at: Option<BlockNumber>,
    /// The agenda block holding this purchase's one live agenda entry, if any.
    pub scheduled_at: Option<BlockNumber>,
}

/// The parties of a purchase and what was bought ([`Purchase::deal`]); fixed at purchase
/// time.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, MaxEncodedLen, TypeInfo)]
pub struct PurchaseDeal<AccountId, BlockNumber> {
    /// The buyer, from whom the price is held.
    pub buyer: AccountId,
    /// The seller of the offer, who delivers keys and is paid the delivered share.
    pub seller: AccountId,
    /// The offer bought.
    pub offer: OfferId,
    /// The offer's stream.
    pub stream: StreamId,
    /// What was bought (batch window or stream periods).
    pub terms: PurchaseTerms<BlockNumber>,
    /// The buyer's X25519 key-agreement key at purchase time; keys are sealed to it.
    pub buyer_key: X25519Public,
}

/// The money held from the buyer at purchase time ([`Purchase::payment`]).
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, MaxEncodedLen, TypeInfo)]
pub struct PurchasePayment<Balance> {
    /// The price held (after the verified-buyer discount).
    pub price: Balance,
    /// Storage deposit held from the buyer until the purchase is reaped.
    pub deposit: Balance,
}

/// The blocks and the epoch that frame a purchase's access ([`Purchase::schedule`]); fixed
/// at purchase time.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, MaxEncodedLen, TypeInfo)]
pub struct PurchaseSchedule<BlockNumber> {
    /// Block of the purchase; access starts here.
    pub start: BlockNumber,
    /// First block after access (end of the last period / of the batch download window).
    pub end: BlockNumber,
    /// Last block at which the keys of the first epoch may be delivered.
    pub key_deadline: BlockNumber,
    /// For streams, the epoch that was current at purchase time: its keys activate the
    /// purchase, and no earlier epoch is sold. `None` for batches.
    pub first_epoch: Option<EpochIndex>,
}

/// The seller's key delivery for a purchase ([`Purchase::keys`]).
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, MaxEncodedLen, TypeInfo)]
pub struct KeyDelivery<Balance> {
    /// Number of epochs whose sealed keys are stored.
    pub epochs: u32,
    /// Total key deposits held from the seller for this purchase's sealed keys.
    pub deposits: Balance,
}

/// How far a purchase was settled and delivered ([`Purchase::progress`]).
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, MaxEncodedLen, TypeInfo)]
pub struct PurchaseProgress {
    /// Number of settled periods.
    pub settled_periods: u32,
    /// Highest sequence number acknowledged by the buyer to any operator.
    pub delivered_up_to: Option<Sequence>,
    /// Streams: the attested stream head at purchase time, the first sequence the purchase
    /// pays for. `None` for a batch.
    pub start_head: Option<Sequence>,
    /// Streams: the attested stream head recorded at each period boundary from the start of
    /// period `settled_periods` on (`heads[i]` at block `schedule.start + (settled_periods +
    /// i) · period`); never decreasing. Empty for a batch.
    pub heads: BoundedVec<Sequence, ConstU32<MAX_PENDING_BOUNDARIES>>,
}

/// The operators' side of a purchase ([`Purchase::operators`]): agreed prices, claims and
/// pay accrued.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, MaxEncodedLen, TypeInfo)]
pub struct OperatorPay<AccountId, Balance> {
    /// The price per MB of each operator assigned at purchase time: what it is paid for
    /// this purchase, whatever it charges later.
    pub prices: BoundedVec<(AccountId, Balance), ConstU32<MAX_PRICED_OPERATORS>>,
    /// Number of operators with a claim record for this purchase.
    pub claims: u32,
    /// Operators' pay accrued since the last settled period (sum of their `accrued`).
    pub accrued: Balance,
}

impl<AccountId, Balance, BlockNumber> Purchase<AccountId, Balance, BlockNumber>
where
    AccountId: PartialEq,
    Balance: sp_runtime::traits::AtLeast32BitUnsigned + Copy,
    BlockNumber: sp_runtime::traits::AtLeast32BitUnsigned + Copy,
{
    /// Number of settlement periods.
    pub fn periods(&self) -> u32 {
        self.deal.terms.periods()
    }

    /// The purchase has settled every period (or a dispute closed it early).
    pub fn all_periods_settled(&self) -> bool {
        self.progress.settled_periods >= self.periods()
    }

    /// Last block of access to period `index` plus one: `start + period · (index + 1)` for a
    /// stream, `end` for a batch. Saturating (only reachable values were checked at purchase).
    pub fn period_end(&self, index: u32) -> BlockNumber {
        match self.deal.terms {
            PurchaseTerms::Batch { .. } => self.schedule.end,
            PurchaseTerms::Stream { period, .. } => {
                let count = BlockNumber::from(index.saturating_add(1));
                self.schedule
                    .start
                    .saturating_add(period.saturating_mul(count))
            }
        }
    }

    /// First block at which period `index` may be settled: its end plus the claim grace.
    pub fn settlement_due(&self, index: u32, grace: BlockNumber) -> BlockNumber {
        self.period_end(index).saturating_add(grace)
    }

    /// The budget of the next period to settle: an equal share `price / periods` of the
    /// price, and for the last period whatever is still held (so rounding dust goes there);
    /// see [`split::period_budget`](crate::split::period_budget).
    pub fn next_period_budget(&self) -> Balance {
        crate::split::period_budget(
            self.payment.price,
            self.periods(),
            self.progress.settled_periods,
            self.ledger.held,
        )
    }

    /// How much of the next period to settle the buyer received. Batch window
    /// `first..=last`: the part of the window covered by `delivered_up_to`. Stream period `k`
    /// with heads `h_k`, `h_{k+1}` at its boundaries: of the `h_{k+1} − h_k` segments
    /// published in it, the `min(delivered_up_to + 1, h_{k+1}) − h_k` the buyer
    /// acknowledged; nothing if nothing was published.
    pub fn delivered(&self) -> Delivered {
        let acknowledged = self
            .progress
            .delivered_up_to
            .map_or(0u128, |u| u128::from(u) + 1);
        match self.deal.terms {
            PurchaseTerms::Batch { first, last } => Delivered {
                covered: acknowledged
                    .min(u128::from(last) + 1)
                    .saturating_sub(u128::from(first)),
                out_of: self.deal.terms.batch_len().unwrap_or(1),
            },
            PurchaseTerms::Stream { .. } => {
                let (Some(from), Some(to)) =
                    (self.progress.heads.first(), self.progress.heads.get(1))
                else {
                    return Delivered {
                        covered: 0,
                        out_of: 0,
                    };
                };
                let (from, to) = (u128::from(*from), u128::from(*to));
                Delivered {
                    covered: acknowledged.min(to).saturating_sub(from),
                    out_of: to.saturating_sub(from),
                }
            }
        }
    }

    /// The share of `budget` the buyer received: `budget` scaled by [`Self::delivered`].
    pub fn delivered_value(&self, budget: Balance) -> Balance {
        self.delivered().value_of(budget)
    }

    /// Streams: the next period boundary to record, `(index, block)`, if any is left and
    /// there is room for it. Boundary `j` is the start of period `j`; boundary 0 (the
    /// purchase) is recorded at purchase time.
    pub fn next_boundary(&self) -> Option<(u32, BlockNumber)> {
        let PurchaseTerms::Stream { period, periods } = self.deal.terms else {
            return None;
        };
        if self.progress.heads.is_full() {
            return None;
        }
        let index = self
            .progress
            .settled_periods
            .saturating_add(self.progress.heads.len() as u32);
        if index > periods || index == 0 {
            return None;
        }
        let at = self
            .schedule
            .start
            .saturating_add(period.saturating_mul(BlockNumber::from(index)));
        Some((index, at))
    }

    /// The price per MB agreed with `operator` at purchase time. An operator assigned later
    /// (a replacement) is paid its current price, never more than the highest agreed one.
    pub fn agreed_price(&self, operator: &AccountId, current: Balance) -> Balance {
        match self
            .operators
            .prices
            .iter()
            .find(|(who, _)| who == operator)
        {
            Some((_, price)) => *price,
            None => {
                let highest = self
                    .operators
                    .prices
                    .iter()
                    .map(|(_, price)| *price)
                    .max()
                    .unwrap_or_else(Zero::zero);
                current.min(highest)
            }
        }
    }

    /// The block at which the agenda should next look at this purchase, given what it is
    /// waiting for (a key deadline, a settlement, the end of retention, and for a stream the
    /// next period boundary to record, a dispute's deadline); `None` if nothing is due.
    pub fn next_due(&self, grace: BlockNumber, retention: BlockNumber) -> Option<BlockNumber> {
        let work = match self.state {
            PurchaseState::AwaitingKeys => {
                Some(self.schedule.key_deadline.saturating_add(One::one()))
            }
            PurchaseState::Active => {
                Some(self.settlement_due(self.progress.settled_periods, grace))
            }
            PurchaseState::Disputed => self.dispute.as_ref().map(|d| d.deadline),
            PurchaseState::Settled | PurchaseState::Refunded => {
                return Some(
                    self.closed_at
                        .unwrap_or(self.schedule.end)
                        .saturating_add(retention),
                )
            }
        };
        let boundary = self.next_boundary().map(|(_, at)| at);
        match (work, boundary) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// `held + operators + seller + fees + refunded`, or `None` on overflow.
    pub fn ledger_total(&self) -> Option<Balance> {
        let l = &self.ledger;
        l.held
            .checked_add(&l.operators)?
            .checked_add(&l.seller)?
            .checked_add(&l.fees)?
            .checked_add(&l.refunded)
    }
}

/// `value · numerator / denominator`, rounded down, computed in 128 bits without
/// intermediate overflow; saturates at the type's maximum, and is zero for a zero
/// denominator.
pub fn mul_div<B>(value: B, numerator: u128, denominator: u128) -> B
where
    B: UniqueSaturatedInto<u128> + UniqueSaturatedFrom<u128> + Bounded + Zero,
{
    if denominator == 0 {
        return B::zero();
    }
    let value: u128 = value.unique_saturated_into();
    match multiply_by_rational_with_rounding(value, numerator, denominator, Rounding::Down) {
        Some(result) => B::unique_saturated_from(result),
        None => B::max_value(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fastdata_primitives::escrow::DisputeReason;

    /// The grouped [`Purchase`] encodes exactly as the flat record it replaced (so stored
    /// purchases need no migration): the concatenation of the 27 fields, in the order they
    /// were declared, and its maximum encoded length is theirs.
    #[test]
    fn purchase_encoding_matches_the_flat_layout() {
        type P = Purchase<u64, u128, u32>;
        let terms = PurchaseTerms::<u32>::Stream {
            period: 600,
            periods: 7,
        };
        let buyer_key: X25519Public = [0x5a; 32];
        let stream = StreamId::repeat_byte(0x22);
        let heads: BoundedVec<Sequence, ConstU32<MAX_PENDING_BOUNDARIES>> =
            BoundedVec::truncate_from(alloc::vec![40, 41, 45]);
        let prices: BoundedVec<(u64, u128), ConstU32<MAX_PRICED_OPERATORS>> =
            BoundedVec::truncate_from(alloc::vec![(71, 7_001), (72, 7_002)]);
        let ledger = PurchaseLedger::<u128> {
            held: 901,
            operators: 902,
            seller: 903,
            fees: 904,
            refunded: 905,
        };
        let dispute = Some(DisputeInfo::<u128, u32> {
            reason: DisputeReason::KeysMissing,
            evidence: Some(StreamId::repeat_byte(0x33)),
            deposit: 777,
            opened_at: 1_200,
            deadline: 1_300,
            answer: None,
        });
        let purchase: P = Purchase {
            deal: PurchaseDeal {
                buyer: 11,
                seller: 12,
                offer: 13,
                stream,
                terms,
                buyer_key,
            },
            payment: PurchasePayment {
                price: 1_000_001,
                deposit: 2_002,
            },
            schedule: PurchaseSchedule {
                start: 100,
                end: 4_300,
                key_deadline: 150,
                first_epoch: Some(9),
            },
            state: PurchaseState::Disputed,
            keys: KeyDelivery {
                epochs: 3,
                deposits: 333,
            },
            progress: PurchaseProgress {
                settled_periods: 2,
                delivered_up_to: Some(44),
                start_head: Some(39),
                heads: heads.clone(),
            },
            operators: OperatorPay {
                prices: prices.clone(),
                claims: 5,
                accrued: 606,
            },
            ledger,
            dispute,
            disputed: true,
            closed_at: Some(4_400),
            scheduled_at: Some(4_500),
        };

        // The flat layout, field by field in its declaration order.
        let mut expected = alloc::vec::Vec::new();
        expected.extend(11u64.encode()); // buyer
        expected.extend(12u64.encode()); // seller
        expected.extend(13u64.encode()); // offer
        expected.extend(stream.encode()); // stream
        expected.extend(terms.encode()); // terms
        expected.extend(buyer_key.encode()); // buyer_key
        expected.extend(1_000_001u128.encode()); // price
        expected.extend(2_002u128.encode()); // deposit
        expected.extend(100u32.encode()); // start
        expected.extend(4_300u32.encode()); // end
        expected.extend(150u32.encode()); // key_deadline
        expected.extend(Some(9u32).encode()); // first_epoch
        expected.extend(PurchaseState::Disputed.encode()); // state
        expected.extend(3u32.encode()); // epochs_delivered
        expected.extend(333u128.encode()); // key_deposits
        expected.extend(2u32.encode()); // settled_periods
        expected.extend(Some(44u64).encode()); // delivered_up_to
        expected.extend(Some(39u64).encode()); // start_head
        expected.extend(heads.encode()); // heads
        expected.extend(prices.encode()); // operator_prices
        expected.extend(5u32.encode()); // operators
        expected.extend(606u128.encode()); // accrued
        expected.extend(ledger.encode()); // ledger
        expected.extend(dispute.encode()); // dispute
        expected.extend(true.encode()); // disputed
        expected.extend(Some(4_400u32).encode()); // closed_at
        expected.extend(Some(4_500u32).encode()); // scheduled_at

        let encoded = purchase.encode();
        assert_eq!(encoded, expected);
        assert_eq!(P::decode(&mut &encoded[..]).expect("decodes"), purchase);

        let flat_max = 3 * u64::max_encoded_len()
            + StreamId::max_encoded_len()
            + PurchaseTerms::<u32>::max_encoded_len()
            + X25519Public::max_encoded_len()
            + 2 * u128::max_encoded_len()
            + 3 * u32::max_encoded_len()
            + Option::<EpochIndex>::max_encoded_len()
            + PurchaseState::max_encoded_len()
            + u32::max_encoded_len()
            + u128::max_encoded_len()
            + u32::max_encoded_len()
            + 2 * Option::<Sequence>::max_encoded_len()
            + BoundedVec::<Sequence, ConstU32<MAX_PENDING_BOUNDARIES>>::max_encoded_len()
            + BoundedVec::<(u64, u128), ConstU32<MAX_PRICED_OPERATORS>>::max_encoded_len()
            + u32::max_encoded_len()
            + u128::max_encoded_len()
            + PurchaseLedger::<u128>::max_encoded_len()
            + Option::<DisputeInfo<u128, u32>>::max_encoded_len()
            + bool::max_encoded_len()
            + 2 * Option::<u32>::max_encoded_len();
        assert_eq!(P::max_encoded_len(), flat_max);
    }

    #[test]
    fn mul_div_edges() {
        assert_eq!(mul_div(100u64, 1, 3), 33);
        assert_eq!(mul_div(100u64, 3, 3), 100);
        assert_eq!(mul_div(100u64, 0, 3), 0);
        assert_eq!(mul_div(100u64, 3, 0), 0);
        assert_eq!(
            mul_div(u64::MAX, u128::from(u64::MAX), u128::from(u64::MAX)),
            u64::MAX
        );
        assert_eq!(
            mul_div(u64::MAX, 2, 1),
            u64::MAX,
            "saturates in the target type"
        );
        assert_eq!(
            mul_div(u128::MAX, u128::MAX, 1),
            u128::MAX,
            "saturates when 128 bits overflow"
        );
        assert_eq!(mul_div(u128::MAX, u128::MAX, u128::MAX), u128::MAX);
        assert_eq!(mul_div(u128::MAX, 1, 2), u128::MAX / 2);
    }
}

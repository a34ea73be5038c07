//! The settlement rule as pure arithmetic on plain numbers: how a period's budget, or what
//! an upheld dispute leaves, is split between the operators, the seller, the treasury and
//! the buyer (crate documentation, "Settlement rule"). No storage and no currency here: the
//! pallet computes a [`Split`] and moves the money (`features/settlement.rs`,
//! `features/disputes.rs`). Every split adds up to what it splits, to the planck.

use crate::types::mul_div;
use alloc::vec::Vec;
use sp_runtime::{traits::AtLeast32BitUnsigned, Perbill};

/// The amounts the rule works on: a runtime's balance, or any unsigned integer in tests.
pub trait Amount: AtLeast32BitUnsigned + Copy {}

impl<B: AtLeast32BitUnsigned + Copy> Amount for B {}

/// How much of what was bought the buyer received: `covered` of `out_of` units (segments of
/// a batch window, or segments published in a stream period). Nothing if `out_of` is 0.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Delivered {
    /// Units the buyer acknowledged.
    pub covered: u128,
    /// Units there were to deliver.
    pub out_of: u128,
}

impl Delivered {
    /// Everything was delivered.
    pub const ALL: Self = Self {
        covered: 1,
        out_of: 1,
    };
    /// Nothing was delivered.
    pub const NONE: Self = Self {
        covered: 0,
        out_of: 1,
    };

    /// The delivered part of `budget`, `⌊budget · covered / out_of⌋` (0 if `out_of` is 0).
    pub fn value_of<B: Amount>(&self, budget: B) -> B {
        mul_div(budget, self.covered, self.out_of)
    }
}

/// Where an amount goes. `operators` is in the order of the accruals given.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct Split<B> {
    /// Each operator's pay, `O = Σ operators`.
    pub operators: Vec<B>,
    /// The seller's share after the fee, `G − F`.
    pub seller: B,
    /// The protocol fee for the treasury, `F = ⌊f · G⌋`.
    pub fee: B,
    /// Released back to the buyer, `R`.
    pub refund: B,
}

impl<B: Amount> Split<B> {
    /// `O`, what the operators take.
    pub fn operators_total(&self) -> B {
        self.operators
            .iter()
            .fold(B::zero(), |sum, share| sum.saturating_add(*share))
    }

    /// `O + (G − F) + F + R`, `None` on overflow.
    pub fn total(&self) -> Option<B> {
        self.operators
            .iter()
            .try_fold(B::zero(), |sum, share| sum.checked_add(share))?
            .checked_add(&self.seller)?
            .checked_add(&self.fee)?
            .checked_add(&self.refund)
    }
}

/// The budget `B` of period `index` (from 0) of `periods`, for a purchase of `price` that
/// still holds `held`: an equal share `⌊price / periods⌋` (at most `held`), and for the last
/// period everything still held, so the rounding remainder goes there.
pub fn period_budget<B: Amount>(price: B, periods: u32, index: u32, held: B) -> B {
    if index.saturating_add(1) >= periods {
        held
    } else {
        (price / B::from(periods.max(1))).min(held)
    }
}

/// The operators' shares of `cap`, one per entry of `accrued` (each operator's accrued pay;
/// `total` is their recorded sum): all of it when `total ≤ cap`, otherwise pro rata
/// `⌊accrued · cap / total⌋`, never more than what is left of `cap`. All zero when `total`
/// is zero.
pub fn operator_shares<B: Amount>(accrued: &[B], total: B, cap: B) -> Vec<B> {
    let mut taken = B::zero();
    accrued
        .iter()
        .map(|accrued| {
            if total.is_zero() || accrued.is_zero() {
                return B::zero();
            }
            let share = if total <= cap {
                *accrued
            } else {
                mul_div(
                    *accrued,
                    cap.unique_saturated_into(),
                    total.unique_saturated_into(),
                )
            };
            let share = share.min(cap.saturating_sub(taken));
            taken = taken.saturating_add(share);
            share
        })
        .collect()
}

/// Splits the budget `B` of one period of which `delivered` reached the buyer:
///
/// 1. the operators get their accrued pay, capped at `C = ⌊storage_share · B⌋`
///    ([`operator_shares`]), `O` in all;
/// 2. of the delivered value `D` the seller's gross is `G = D − O` (0 if `O ≥ D`);
/// 3. the fee is `F = ⌊protocol_fee · G⌋`, the seller gets `G − F`;
/// 4. the buyer gets back `R = B − O − G`.
pub fn split_period<B: Amount>(
    budget: B,
    delivered: Delivered,
    accrued: &[B],
    accrued_total: B,
    storage_share: Perbill,
    protocol_fee: Perbill,
) -> Split<B> {
    let cap = storage_share.mul_floor(budget);
    let operators = operator_shares(accrued, accrued_total, cap);
    let taken = operators
        .iter()
        .fold(B::zero(), |sum, share| sum.saturating_add(*share));
    let gross = delivered.value_of(budget).saturating_sub(taken);
    let fee = protocol_fee.mul_floor(gross);
    Split {
        operators,
        seller: gross.saturating_sub(fee),
        fee,
        refund: budget.saturating_sub(taken).saturating_sub(gross),
    }
}

/// Splits what a purchase still holds, `H`, when its dispute is upheld with `refund_ratio`
/// `r`: the operators as in [`split_period`] with budget `H`, `O` in all; of `X = H − O` the
/// buyer gets `R = ⌊r · X⌋` back and the seller `G = X − R` less the fee `⌊protocol_fee · G⌋`.
pub fn split_upheld<B: Amount>(
    held: B,
    accrued: &[B],
    accrued_total: B,
    storage_share: Perbill,
    refund_ratio: Perbill,
    protocol_fee: Perbill,
) -> Split<B> {
    let cap = storage_share.mul_floor(held);
    let operators = operator_shares(accrued, accrued_total, cap);
    let taken = operators
        .iter()
        .fold(B::zero(), |sum, share| sum.saturating_add(*share));
    let rest = held.saturating_sub(taken);
    let refund = refund_ratio.mul_floor(rest);
    let gross = rest.saturating_sub(refund);
    let fee = protocol_fee.mul_floor(gross);
    Split {
        operators,
        seller: gross.saturating_sub(fee),
        fee,
        refund,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FEE: Perbill = Perbill::from_percent(2);
    const SHARE: Perbill = Perbill::from_percent(20);

    fn split(budget: u64, delivered: Delivered, accrued: &[u64]) -> Split<u64> {
        let total = accrued.iter().sum();
        split_period(budget, delivered, accrued, total, SHARE, FEE)
    }

    fn part(covered: u128, out_of: u128) -> Delivered {
        Delivered { covered, out_of }
    }

    #[test]
    fn all_delivered_pays_operators_seller_and_fee() {
        let s = split(1_000, Delivered::ALL, &[50, 30]);
        assert_eq!(
            s,
            Split {
                operators: vec![50, 30],
                // G = 1000 − 80 = 920, F = ⌊0.02 · 920⌋ = 18.
                seller: 902,
                fee: 18,
                refund: 0,
            }
        );
        assert_eq!(s.total(), Some(1_000));
    }

    #[test]
    fn none_delivered_refunds_all_but_the_operators() {
        let s = split(1_000, Delivered::NONE, &[50, 30]);
        assert_eq!(
            s,
            Split {
                operators: vec![50, 30],
                seller: 0,
                fee: 0,
                refund: 920,
            }
        );
        assert_eq!(s.total(), Some(1_000));
        assert_eq!(
            split(1_000, Delivered::NONE, &[]),
            Split {
                operators: vec![],
                seller: 0,
                fee: 0,
                refund: 1_000,
            }
        );
    }

    #[test]
    fn part_delivered_splits_delivered_and_undelivered() {
        // D = ⌊1000 · 3/4⌋ = 750; G = 750 − 100 = 650; F = 13; R = 1000 − 100 − 650 = 250.
        let s = split(1_000, part(3, 4), &[100]);
        assert_eq!(
            s,
            Split {
                operators: vec![100],
                seller: 637,
                fee: 13,
                refund: 250,
            }
        );
        assert_eq!(s.total(), Some(1_000));
    }

    #[test]
    fn operators_above_the_delivered_value_leave_the_seller_nothing() {
        // D = ⌊1000 · 1/10⌋ = 100 < O = 150: G = 0, R = 1000 − 150 = 850.
        let s = split(1_000, part(1, 10), &[150]);
        assert_eq!(
            s,
            Split {
                operators: vec![150],
                seller: 0,
                fee: 0,
                refund: 850,
            }
        );
    }

    #[test]
    fn operators_above_the_cap_are_scaled_down_pro_rata() {
        // C = ⌊0.2 · 1000⌋ = 200 for accruals 300 + 100 = 400: ⌊300 · 200/400⌋ = 150, 50.
        let s = split(1_000, Delivered::ALL, &[300, 100]);
        assert_eq!(s.operators, vec![150, 50]);
        assert_eq!(s.seller, 784);
        assert_eq!(s.fee, 16);
        assert_eq!(s.refund, 0);
        assert_eq!(s.total(), Some(1_000));
    }

    #[test]
    fn rounding_remainders_go_to_the_buyer_or_the_seller_never_lost() {
        // C = ⌊0.2 · 101⌋ = 20 for accruals 7 + 7 + 7 = 21: ⌊7 · 20/21⌋ = 6 each, O = 18.
        // D = ⌊101 · 1/3⌋ = 33; G = 15; F = ⌊0.02 · 15⌋ = 0; R = 101 − 18 − 15 = 68.
        let s = split(101, part(1, 3), &[7, 7, 7]);
        assert_eq!(
            s,
            Split {
                operators: vec![6, 6, 6],
                seller: 15,
                fee: 0,
                refund: 68,
            }
        );
        assert_eq!(s.total(), Some(101));
        // ⌊0.02 · 99⌋ = 1: the fee rounds down, the seller keeps the remainder.
        let s = split(99, Delivered::ALL, &[]);
        assert_eq!((s.seller, s.fee, s.refund), (98, 1, 0));
        assert_eq!(s.total(), Some(99));
    }

    #[test]
    fn the_last_share_of_the_cap_is_what_is_left() {
        // Pro rata shares round down; each is capped at what is left of the cap.
        assert_eq!(operator_shares(&[1u64, 1, 1], 3, 2), vec![0, 0, 0]);
        assert_eq!(operator_shares(&[2u64, 1], 3, 2), vec![1, 0]);
        assert_eq!(operator_shares(&[5u64, 0, 5], 10, 10), vec![5, 0, 5]);
        assert_eq!(operator_shares(&[5u64, 5], 0, 10), vec![0, 0]);
        assert_eq!(operator_shares::<u64>(&[], 0, 10), Vec::<u64>::new());
    }

    #[test]
    fn zero_budget_splits_into_zeros() {
        let s = split(0, Delivered::ALL, &[10]);
        assert_eq!(
            s,
            Split {
                operators: vec![0],
                seller: 0,
                fee: 0,
                refund: 0,
            }
        );
        assert_eq!(s.total(), Some(0));
        assert_eq!(split(0, Delivered::NONE, &[]).total(), Some(0));
    }

    #[test]
    fn nothing_to_deliver_counts_as_nothing_delivered() {
        assert_eq!(part(0, 0).value_of(1_000u64), 0);
        assert_eq!(part(5, 0).value_of(1_000u64), 0);
        assert_eq!(split(500, part(0, 0), &[]).refund, 500);
    }

    #[test]
    fn period_budgets_add_up_to_the_price() {
        // 100 over 3 periods: 33, 33, and the last gets 34.
        let (price, periods) = (100u64, 3);
        let mut held = price;
        let mut budgets = vec![];
        for index in 0..periods {
            let budget = period_budget(price, periods, index, held);
            held -= budget;
            budgets.push(budget);
        }
        assert_eq!(budgets, vec![33, 33, 34]);
        assert_eq!(held, 0);
        assert_eq!(period_budget(100u64, 1, 0, 100), 100);
        assert_eq!(period_budget(0u64, 3, 0, 0), 0);
        // Never more than is held.
        assert_eq!(period_budget(100u64, 3, 0, 10), 10);
    }

    #[test]
    fn upheld_dispute_splits_what_is_held() {
        // C = ⌊0.2 · 600⌋ = 120 ≥ O = 100; X = 500; R = ⌊0.5 · 500⌋ = 250; G = 250, F = 5.
        let s = split_upheld(600u64, &[100], 100, SHARE, Perbill::from_percent(50), FEE);
        assert_eq!(
            s,
            Split {
                operators: vec![100],
                seller: 245,
                fee: 5,
                refund: 250,
            }
        );
        assert_eq!(s.total(), Some(600));
        // A full refund leaves the seller nothing; rounding of `r · X` goes to the seller.
        let s = split_upheld(600u64, &[], 0, SHARE, Perbill::one(), FEE);
        assert_eq!((s.seller, s.fee, s.refund), (0, 0, 600));
        let s = split_upheld(7u64, &[], 0, SHARE, Perbill::from_percent(50), FEE);
        assert_eq!((s.seller, s.fee, s.refund), (4, 0, 3));
        assert_eq!(s.total(), Some(7));
    }

    #[test]
    fn large_amounts_neither_overflow_nor_lose_plancks() {
        let budget = u128::MAX;
        let s = split_period(
            budget,
            part(2, 3),
            &[u128::MAX / 2, u128::MAX / 2],
            u128::MAX - 1,
            SHARE,
            FEE,
        );
        assert_eq!(s.total(), Some(budget));
        assert!(s.operators_total() <= SHARE.mul_floor(budget));
    }
}

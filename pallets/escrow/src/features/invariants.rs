//! Invariants of the pallet, checked by `try_state` and after every step of the tests.

use crate::*;
use alloc::collections::btree_map::BTreeMap;
use fastdata_primitives::{
    escrow::{PurchaseState, PurchaseTerms},
    PurchaseId,
};
use frame_support::{
    ensure,
    traits::{fungible::InspectHold, Get},
};
use frame_system::pallet_prelude::BlockNumberFor;
use sp_runtime::{
    traits::{Saturating, Zero},
    TryRuntimeError,
};

/// An amount per account.
type Totals<T> = BTreeMap<<T as frame_system::Config>::AccountId, BalanceOf<T>>;

/// What the stored purchases say is on hold, per account, for each [`HoldReason`].
struct Holds<T: Config> {
    /// Price still held by open purchases, per buyer.
    price: Totals<T>,
    /// Purchase deposits, per buyer.
    purchase_deposits: Totals<T>,
    /// Key deposits, per seller.
    key_deposits: Totals<T>,
    /// Deposits of open disputes, per buyer.
    dispute_deposits: Totals<T>,
}

impl<T: Config> Holds<T> {
    /// No holds.
    fn new() -> Self {
        Self {
            price: BTreeMap::new(),
            purchase_deposits: BTreeMap::new(),
            key_deposits: BTreeMap::new(),
            dispute_deposits: BTreeMap::new(),
        }
    }

    /// Adds what `p` holds.
    fn add_purchase(&mut self, p: &PurchaseOf<T>) {
        if p.state.is_open() {
            add::<T>(&mut self.price, &p.deal.buyer, p.ledger.held);
        }
        if let Some(dispute) = &p.dispute {
            add::<T>(&mut self.dispute_deposits, &p.deal.buyer, dispute.deposit);
        }
        add::<T>(
            &mut self.purchase_deposits,
            &p.deal.buyer,
            p.payment.deposit,
        );
        add::<T>(&mut self.key_deposits, &p.deal.seller, p.keys.deposits);
    }
}

/// Adds `amount` to `who`'s total.
fn add<T: Config>(map: &mut Totals<T>, who: &T::AccountId, amount: BalanceOf<T>) {
    let entry = map.entry(who.clone()).or_insert_with(Zero::zero);
    *entry = entry.saturating_add(amount);
}

impl<T: Config> Pallet<T> {
    /// Checks every invariant of the stored state:
    ///
    /// - every purchase's ledger adds up to its price, and closed purchases hold nothing;
    /// - for every account, the funds on hold for each [`HoldReason`] equal what the stored
    ///   purchases say: price still held by open purchases (held funds = Σ balances of open
    ///   purchases), purchase deposits, key deposits, dispute deposits;
    /// - sealed keys, operator claims and index entries match their purchases and bounds;
    /// - an open purchase's offer is hosted at least until its access end (or its dispute's
    ///   deadline) plus the claim grace ([`OfferNeededUntil`]);
    /// - every purchase has exactly one agenda entry, recorded in its `scheduled_at`, not
    ///   behind the cursor.
    pub fn do_try_state() -> Result<(), TryRuntimeError> {
        let next_id = NextPurchaseId::<T>::get();
        let cursor = AgendaCursor::<T>::get();
        let mut holds = Holds::<T>::new();
        for (id, p) in Purchases::<T>::iter() {
            ensure!(id < next_id, "purchase id at or above NextPurchaseId");
            Self::check_ledger_and_state(&p)?;
            Self::check_open_or_closed(&p)?;
            Self::check_heads(&p)?;
            Self::check_keys_and_claims(id, &p)?;
            Self::check_entries(id, &p, cursor)?;
            holds.add_purchase(&p);
        }
        Self::check_no_orphans()?;
        Self::check_holds(&holds)
    }

    /// The ledger adds up to the price, no more periods are settled than bought, the dispute
    /// record matches the state, and each state's own rule holds (nothing moved before the
    /// keys, a refund is whole, a settled purchase settled every period).
    fn check_ledger_and_state(p: &PurchaseOf<T>) -> Result<(), TryRuntimeError> {
        ensure!(
            p.ledger_total() == Some(p.payment.price),
            "ledger does not add up to the price"
        );
        ensure!(
            p.progress.settled_periods <= p.periods(),
            "more periods settled than bought"
        );
        ensure!(
            (p.state == PurchaseState::Disputed) == p.dispute.is_some(),
            "dispute record does not match the state"
        );
        ensure!(
            p.dispute.is_none() || p.disputed,
            "open dispute not marked on its purchase"
        );
        match p.state {
            PurchaseState::AwaitingKeys => {
                ensure!(
                    p.progress.settled_periods == 0,
                    "period settled before keys"
                );
                ensure!(p.ledger.held == p.payment.price, "funds moved before keys");
            }
            PurchaseState::Refunded => {
                ensure!(
                    p.ledger.refunded == p.payment.price,
                    "refunded purchase not fully refunded"
                );
            }
            PurchaseState::Settled => {
                ensure!(
                    p.all_periods_settled(),
                    "settled purchase with unsettled periods"
                );
            }
            PurchaseState::Active | PurchaseState::Disputed => {}
        }
        Ok(())
    }

    /// An open purchase keeps its offer's stream hosted long enough and has no closing
    /// block; a closed one holds nothing, has its closing block and no accrued operator pay.
    fn check_open_or_closed(p: &PurchaseOf<T>) -> Result<(), TryRuntimeError> {
        if p.state.is_open() {
            // Its stream stays hosted while it may need it.
            let grace = T::ClaimGracePeriod::get();
            let needed = p
                .dispute
                .as_ref()
                .map_or(p.schedule.end, |d| d.deadline.max(p.schedule.end))
                .saturating_add(grace);
            ensure!(
                OfferNeededUntil::<T>::get(p.deal.offer).is_some_and(|until| until >= needed),
                "open purchase not covered by its offer's hosting deadline"
            );
            ensure!(p.closed_at.is_none(), "open purchase has a closing block");
        } else {
            ensure!(p.ledger.held.is_zero(), "closed purchase still holds funds");
            ensure!(
                p.closed_at.is_some(),
                "closed purchase without closing block"
            );
            ensure!(
                p.operators.accrued.is_zero(),
                "closed purchase with accrued operator pay"
            );
        }
        Ok(())
    }

    /// A stream purchase has the head of its next period, never decreasing and not below its
    /// start head; a batch purchase has no heads.
    fn check_heads(p: &PurchaseOf<T>) -> Result<(), TryRuntimeError> {
        match p.deal.terms {
            PurchaseTerms::Stream { .. } => {
                ensure!(
                    !p.progress.heads.is_empty(),
                    "stream purchase without the head of its next period"
                );
                ensure!(
                    p.progress.heads.windows(2).all(|w| w[0] <= w[1]),
                    "period heads decrease"
                );
                ensure!(
                    p.progress.start_head.is_some_and(|h| p
                        .progress
                        .heads
                        .first()
                        .is_some_and(|f| h <= *f)),
                    "period heads below the start head"
                );
            }
            PurchaseTerms::Batch { .. } => {
                ensure!(
                    p.progress.heads.is_empty() && p.progress.start_head.is_none(),
                    "batch purchase with stream heads"
                );
            }
        }
        Ok(())
    }

    /// The purchase's counts of sealed keys and operator claims, and its accrued operator
    /// pay, match the stored keys and claims, within their bounds.
    fn check_keys_and_claims(id: PurchaseId, p: &PurchaseOf<T>) -> Result<(), TryRuntimeError> {
        let epochs = SealedKeys::<T>::iter_key_prefix(id).count() as u32;
        ensure!(epochs == p.keys.epochs, "sealed key count mismatch");
        ensure!(
            epochs <= T::MaxEpochsPerPurchase::get(),
            "too many sealed keys"
        );
        let mut operators = 0u32;
        let mut accrued = BalanceOf::<T>::zero();
        for claim in OperatorClaims::<T>::iter_prefix_values(id) {
            operators = operators.saturating_add(1);
            accrued = accrued.saturating_add(claim.accrued);
        }
        ensure!(
            operators == p.operators.claims,
            "operator claim count mismatch"
        );
        ensure!(
            operators <= T::MaxOperatorsPerPurchase::get(),
            "too many operator claims"
        );
        ensure!(
            accrued == p.operators.accrued,
            "accrued operator pay mismatch"
        );
        Ok(())
    }

    /// The purchase is in both indexes and has its agenda entry, not behind `cursor`.
    fn check_entries(
        id: PurchaseId,
        p: &PurchaseOf<T>,
        cursor: Option<BlockNumberFor<T>>,
    ) -> Result<(), TryRuntimeError> {
        ensure!(
            PurchasesByBuyer::<T>::contains_key(&p.deal.buyer, id),
            "missing buyer index entry"
        );
        ensure!(
            PurchasesByOffer::<T>::contains_key(p.deal.offer, id),
            "missing offer index entry"
        );
        let Some(at) = p.scheduled_at else {
            return Err("purchase without agenda entry".into());
        };
        ensure!(
            Agenda::<T>::contains_key(at, id),
            "scheduled purchase missing from the agenda"
        );
        ensure!(
            cursor.is_some_and(|c| at >= c),
            "purchase scheduled behind the agenda cursor"
        );
        Ok(())
    }

    /// Index entries, sealed keys, claims and agenda entries all belong to stored purchases
    /// (and agree with them).
    fn check_no_orphans() -> Result<(), TryRuntimeError> {
        for (buyer, id) in PurchasesByBuyer::<T>::iter_keys() {
            ensure!(
                Purchases::<T>::get(id).is_some_and(|p| p.deal.buyer == buyer),
                "stale buyer index entry"
            );
        }
        for (offer, id) in PurchasesByOffer::<T>::iter_keys() {
            ensure!(
                Purchases::<T>::get(id).is_some_and(|p| p.deal.offer == offer),
                "stale offer index entry"
            );
        }
        for (id, _) in SealedKeys::<T>::iter_keys() {
            ensure!(
                Purchases::<T>::contains_key(id),
                "sealed keys of a removed purchase"
            );
        }
        for (id, _) in OperatorClaims::<T>::iter_keys() {
            ensure!(
                Purchases::<T>::contains_key(id),
                "claims of a removed purchase"
            );
        }
        for (at, id) in Agenda::<T>::iter_keys() {
            ensure!(
                Purchases::<T>::get(id).is_some_and(|p| p.scheduled_at == Some(at)),
                "agenda entry not recorded in its purchase"
            );
        }
        Ok(())
    }

    /// For every account and [`HoldReason`], the funds on hold equal `holds`, and every
    /// account `holds` names exists (or is owed nothing).
    fn check_holds(holds: &Holds<T>) -> Result<(), TryRuntimeError> {
        let checks: [(HoldReason, &Totals<T>, &'static str); 4] = [
            (
                HoldReason::PurchasePrice,
                &holds.price,
                "price on hold differs from open purchases' balances",
            ),
            (
                HoldReason::PurchaseDeposit,
                &holds.purchase_deposits,
                "purchase deposits on hold differ from stored purchases",
            ),
            (
                HoldReason::KeyDeposit,
                &holds.key_deposits,
                "key deposits on hold differ from stored sealed keys",
            ),
            (
                HoldReason::DisputeDeposit,
                &holds.dispute_deposits,
                "dispute deposits on hold differ from open disputes",
            ),
        ];
        for who in frame_system::Account::<T>::iter_keys() {
            for (reason, totals, message) in checks.iter() {
                let expected = totals.get(&who).copied().unwrap_or_else(Zero::zero);
                let on_hold = T::Currency::balance_on_hold(&(*reason).into(), &who);
                ensure!(on_hold == expected, *message);
            }
        }
        for (_, totals, message) in checks.iter() {
            for (who, amount) in totals.iter() {
                ensure!(
                    amount.is_zero() || frame_system::Account::<T>::contains_key(who),
                    *message
                );
            }
        }
        Ok(())
    }
}

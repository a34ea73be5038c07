//! A seller's business as the chain records it: every purchase of each of its offers with
//! its ledger (`EscrowApi_purchases_of_offer`, `EscrowApi_purchase`), totals per offer, and
//! what the seller earned.
//!
//! Everything here is read at the last finalized block; the money of a purchase is always in
//! exactly one place of its [`PurchaseLedger`] (`held + operators + seller + fees + refunded`
//! is the price), so the totals add up to what buyers paid.

use fastdata_primitives::{escrow::PurchaseLedger, AccountId, Balance, OfferId};

use crate::{buyer::Purchase, chain::FastData, error::Error, seller::Offer};

/// Sums of the purchases of one offer (or of several).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SalesTotals {
    /// Number of purchases.
    pub purchases: u32,
    /// What buyers paid in all (after the verified-buyer discount).
    pub paid: Balance,
    /// Periods settled, over all purchases.
    pub settled_periods: u32,
    /// Where the money went, summed over all purchases.
    pub ledger: PurchaseLedger<Balance>,
}

impl SalesTotals {
    /// Adds one purchase.
    pub fn add(&mut self, p: &Purchase) {
        self.purchases = self.purchases.saturating_add(1);
        self.paid = self.paid.saturating_add(p.price);
        self.settled_periods = self.settled_periods.saturating_add(p.settled_periods);
        add_ledger(&mut self.ledger, &p.ledger);
    }

    /// The totals of `purchases`.
    pub fn of<'a>(purchases: impl IntoIterator<Item = &'a Purchase>) -> Self {
        let mut totals = Self::default();
        purchases.into_iter().for_each(|p| totals.add(p));
        totals
    }

    /// Adds other totals (e.g. of another offer).
    pub fn merge(&mut self, other: &SalesTotals) {
        self.purchases = self.purchases.saturating_add(other.purchases);
        self.paid = self.paid.saturating_add(other.paid);
        self.settled_periods = self.settled_periods.saturating_add(other.settled_periods);
        add_ledger(&mut self.ledger, &other.ledger);
    }
}

fn add_ledger(to: &mut PurchaseLedger<Balance>, from: &PurchaseLedger<Balance>) {
    to.held = to.held.saturating_add(from.held);
    to.operators = to.operators.saturating_add(from.operators);
    to.seller = to.seller.saturating_add(from.seller);
    to.fees = to.fees.saturating_add(from.fees);
    to.refunded = to.refunded.saturating_add(from.refunded);
}

/// One offer of a seller with every purchase of it, in purchase id order.
#[derive(Clone, Debug)]
pub struct OfferSales {
    /// The offer.
    pub offer: Offer,
    /// Its purchases.
    pub purchases: Vec<Purchase>,
    /// Their totals.
    pub totals: SalesTotals,
}

impl FastData {
    /// The sales of `seller`: each of its offers (only `only` if given) with its purchases
    /// and their totals, in offer id order. Fails with [`Error::NotFound`] if `only` is not an
    /// offer of `seller`.
    pub async fn sales(
        &self,
        seller: &AccountId,
        only: Option<OfferId>,
    ) -> Result<Vec<OfferSales>, Error> {
        let mut offers = self.offers_by_seller(seller).await?;
        if let Some(id) = only {
            offers.retain(|o| o.id == id);
            if offers.is_empty() {
                return Err(Error::NotFound(format!(
                    "offer {id} is not an offer of {seller}; list yours with `fastdata sales`"
                )));
            }
        }
        offers.sort_by_key(|o| o.id);
        let mut out = Vec::with_capacity(offers.len());
        for offer in offers {
            let mut ids = self.purchases_of_offer(offer.id).await?;
            ids.sort_unstable();
            let mut purchases = Vec::with_capacity(ids.len());
            for id in ids {
                if let Some(p) = self.purchase(id).await? {
                    purchases.push(p);
                }
            }
            let totals = SalesTotals::of(&purchases);
            out.push(OfferSales {
                offer,
                purchases,
                totals,
            });
        }
        Ok(out)
    }

    /// What `seller` has earned from all its sales so far: the sum of the seller shares paid
    /// out at settlement (after the protocol fee), with the totals of every offer.
    pub async fn seller_earnings(&self, seller: &AccountId) -> Result<SalesTotals, Error> {
        let mut all = SalesTotals::default();
        for offer in self.sales(seller, None).await? {
            all.merge(&offer.totals);
        }
        Ok(all)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fastdata_primitives::escrow::{AccessPeriod, PurchaseState, PurchaseTerms};

    fn purchase(price: Balance, settled: u32, ledger: PurchaseLedger<Balance>) -> Purchase {
        Purchase {
            id: 1,
            buyer: AccountId::new([1; 32]),
            seller: AccountId::new([2; 32]),
            offer: 0,
            stream: sp_core::H256::repeat_byte(3),
            terms: PurchaseTerms::Stream {
                period: 10,
                periods: 2,
            },
            buyer_key: [9; 32],
            price,
            state: PurchaseState::Active,
            access: AccessPeriod {
                start: 1,
                end: 21,
                first_epoch: Some(0),
                epochs: vec![0],
            },
            key_deadline: 5,
            settled_periods: settled,
            next_settlement: None,
            delivered_up_to: None,
            start_head: None,
            period_heads: vec![],
            ledger,
            accrued: 0,
            operators: vec![],
            dispute: None,
            closed_at: None,
        }
    }

    #[test]
    fn totals_add_every_ledger_field() {
        let a = purchase(
            100,
            1,
            PurchaseLedger {
                held: 50,
                operators: 5,
                seller: 40,
                fees: 5,
                refunded: 0,
            },
        );
        let b = purchase(
            30,
            0,
            PurchaseLedger {
                refunded: 30,
                ..Default::default()
            },
        );
        let t = SalesTotals::of([&a, &b]);
        assert_eq!(t.purchases, 2);
        assert_eq!(t.paid, 130);
        assert_eq!(t.settled_periods, 1);
        assert_eq!(
            t.ledger,
            PurchaseLedger {
                held: 50,
                operators: 5,
                seller: 40,
                fees: 5,
                refunded: 30,
            }
        );
        let l = t.ledger;
        assert_eq!(
            l.held + l.operators + l.seller + l.fees + l.refunded,
            t.paid
        );
        let mut all = SalesTotals::default();
        all.merge(&t);
        all.merge(&SalesTotals::of([&a]));
        assert_eq!((all.purchases, all.paid, all.ledger.seller), (3, 230, 80));
    }
}

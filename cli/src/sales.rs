//! `fastdata sales` and `fastdata earnings`: a seller's purchases per offer with their
//! ledgers and totals, and what the account earned as seller and as storage operator.
//!
//! Amounts in `--json` output are planck as decimal strings (they exceed what JSON numbers
//! hold exactly); the human output shows FAST.

use fastdata_primitives::{
    escrow::{PurchaseLedger, PurchaseTerms},
    Balance,
};
use fastdata_sdk::{
    buyer::Purchase,
    operator_account::{AccountFunds, OperatorEarnings},
    sales::{OfferSales, SalesTotals},
};
use serde_json::{json, Value};
use sp_core::crypto::Ss58Codec;

use crate::common::{fmt_balance, print, Ctx};

/// Planck as a decimal string.
fn planck(b: Balance) -> Value {
    Value::String(b.to_string())
}

fn ledger_json(l: &PurchaseLedger<Balance>) -> Value {
    json!({
        "held": planck(l.held),
        "operators": planck(l.operators),
        "seller": planck(l.seller),
        "fees": planck(l.fees),
        "refunded": planck(l.refunded),
    })
}

/// One purchase as a sale: buyer, state, price, periods and ledger.
pub(crate) fn sale_json(p: &Purchase) -> Value {
    let periods = match p.terms {
        PurchaseTerms::Batch { .. } => 1,
        PurchaseTerms::Stream { periods, .. } => periods,
    };
    json!({
        "purchase": p.id,
        "buyer": p.buyer.to_ss58check(),
        "state": format!("{:?}", p.state),
        "price": planck(p.price),
        "periods": periods,
        "settled_periods": p.settled_periods,
        "ledger": ledger_json(&p.ledger),
        "accrued_for_operators": planck(p.accrued),
        "closed_at": p.closed_at,
    })
}

/// Totals of sales as `--json` prints them.
pub(crate) fn totals_json(t: &SalesTotals) -> Value {
    json!({
        "purchases": t.purchases,
        "paid": planck(t.paid),
        "settled_periods": t.settled_periods,
        "ledger": ledger_json(&t.ledger),
    })
}

/// The `sales` answer: every offer with its sales and totals, and the totals of all.
pub(crate) fn sales_json(seller: &str, offers: &[OfferSales]) -> Value {
    let mut all = SalesTotals::default();
    let offers: Vec<Value> = offers
        .iter()
        .map(|o| {
            all.merge(&o.totals);
            json!({
                "offer": o.offer.id,
                "topic": String::from_utf8_lossy(&o.offer.topic),
                "price": planck(o.offer.price),
                "retired": o.offer.retired_at.is_some(),
                "sales": o.purchases.iter().map(sale_json).collect::<Vec<_>>(),
                "totals": totals_json(&o.totals),
            })
        })
        .collect();
    json!({"seller": seller, "offers": offers, "totals": totals_json(&all)})
}

fn ledger_text(l: &PurchaseLedger<Balance>) -> String {
    format!(
        "seller {}, operators {}, fees {}, refunded {}, held {}",
        fmt_balance(l.seller),
        fmt_balance(l.operators),
        fmt_balance(l.fees),
        fmt_balance(l.refunded),
        fmt_balance(l.held)
    )
}

/// The `sales` answer as text: a table of sales per offer, with totals.
pub(crate) fn sales_text(offers: &[OfferSales]) -> String {
    if offers.is_empty() {
        return "no offers; list one with `fastdata offer create`".into();
    }
    let mut out = Vec::new();
    let mut all = SalesTotals::default();
    for o in offers {
        all.merge(&o.totals);
        out.push(format!(
            "offer {} {} ({}{})",
            o.offer.id,
            String::from_utf8_lossy(&o.offer.topic),
            fmt_balance(o.offer.price),
            if o.offer.retired_at.is_some() {
                ", retired"
            } else {
                ""
            }
        ));
        if o.purchases.is_empty() {
            out.push("  no sales yet".into());
        }
        for p in &o.purchases {
            let periods = match p.terms {
                PurchaseTerms::Batch { .. } => 1,
                PurchaseTerms::Stream { periods, .. } => periods,
            };
            out.push(format!(
                "  purchase {} by {}: {:?}, paid {}, settled {}/{}; {}",
                p.id,
                p.buyer.to_ss58check(),
                p.state,
                fmt_balance(p.price),
                p.settled_periods,
                periods,
                ledger_text(&p.ledger)
            ));
        }
        out.push(format!(
            "  total: {} purchases, paid {}; {}",
            o.totals.purchases,
            fmt_balance(o.totals.paid),
            ledger_text(&o.totals.ledger)
        ));
    }
    out.push(format!(
        "all offers: {} purchases, paid {}; {}",
        all.purchases,
        fmt_balance(all.paid),
        ledger_text(&all.ledger)
    ));
    out.join("\n")
}

/// `fastdata sales [--offer N]`.
pub(crate) async fn sales(ctx: &Ctx, offer: Option<u64>) -> anyhow::Result<()> {
    let chain = ctx.chain().await?;
    let me = chain.account().account_id();
    let offers = chain.sales(&me, offer).await?;
    let value = sales_json(&me.to_ss58check(), &offers);
    print(ctx, &value, || sales_text(&offers));
    Ok(())
}

fn funds_json(f: &AccountFunds) -> Value {
    json!({
        "free": planck(f.free),
        "reserved": planck(f.reserved),
        "frozen": planck(f.frozen),
        "holds": f.holds.iter().map(|(reason, amount)| json!({"reason": reason, "amount": planck(*amount)})).collect::<Vec<_>>(),
    })
}

/// What `hosting_paid` says: the chain keeps no total of hosting pay.
const HOSTING_PAID: &str = "not in chain state: hosting pay is only recorded in Operators.HostingPaid events; it is part of the free balance";

fn operator_json(stake: Balance, e: &OperatorEarnings) -> Value {
    json!({
        "stake": planck(stake),
        "receipts": {
            "purchases": e.purchases,
            "bytes": e.bytes,
            "accrued": planck(e.accrued),
            "paid": planck(e.paid),
        },
        "hosting_paid": HOSTING_PAID,
    })
}

/// `fastdata earnings`.
pub(crate) async fn earnings(ctx: &Ctx) -> anyhow::Result<()> {
    let chain = ctx.chain().await?;
    let me = chain.account().account_id();
    let seller = chain.seller_earnings(&me).await?;
    let operator = match chain.operator(&me).await? {
        Some(op) => Some((op.stake, chain.operator_earnings(&me).await?)),
        None => None,
    };
    let funds = chain.account_funds(&me).await?;
    let value = json!({
        "account": me.to_ss58check(),
        "seller": {
            "earned": planck(seller.ledger.seller),
            "purchases": seller.purchases,
            "paid_by_buyers": planck(seller.paid),
            "settled_periods": seller.settled_periods,
            "ledger": ledger_json(&seller.ledger),
        },
        "operator": operator.as_ref().map(|(stake, e)| operator_json(*stake, e)),
        "funds": funds_json(&funds),
    });
    print(ctx, &value, || {
        let mut out = vec![format!(
            "as seller: earned {} from {} purchases (buyers paid {}; {})",
            fmt_balance(seller.ledger.seller),
            seller.purchases,
            fmt_balance(seller.paid),
            ledger_text(&seller.ledger)
        )];
        match &operator {
            Some((stake, e)) => out.push(format!(
                "as operator: stake {}; receipts of {} purchases ({} bytes): paid {}, accrued {}; hosting pay is only in Operators.HostingPaid events (it is in the free balance)",
                fmt_balance(*stake),
                e.purchases,
                e.bytes,
                fmt_balance(e.paid),
                fmt_balance(e.accrued)
            )),
            None => out.push("not a storage operator".into()),
        }
        out.push(format!(
            "balance: free {}, held {}, frozen {}",
            fmt_balance(funds.free),
            fmt_balance(funds.reserved),
            fmt_balance(funds.frozen)
        ));
        for (reason, amount) in &funds.holds {
            out.push(format!("  held for {reason}: {}", fmt_balance(*amount)));
        }
        out.join("\n")
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use fastdata_primitives::{
        api_market::{Licence, OfferTerms},
        escrow::{AccessPeriod, PurchaseState},
        AccountId, PaymentMode,
    };
    use fastdata_sdk::seller::Offer;

    fn sale(id: u64, price: Balance, ledger: PurchaseLedger<Balance>) -> Purchase {
        Purchase {
            id,
            buyer: AccountId::new([1; 32]),
            seller: AccountId::new([2; 32]),
            offer: 4,
            stream: sp_core::H256::repeat_byte(3),
            terms: PurchaseTerms::Stream {
                period: 10,
                periods: 3,
            },
            buyer_key: [9; 32],
            price,
            state: PurchaseState::Active,
            access: AccessPeriod {
                start: 1,
                end: 31,
                first_epoch: Some(0),
                epochs: vec![0],
            },
            key_deadline: 5,
            settled_periods: 1,
            next_settlement: Some(21),
            delivered_up_to: None,
            start_head: Some(0),
            period_heads: vec![],
            ledger,
            accrued: 7,
            operators: vec![],
            dispute: None,
            closed_at: None,
        }
    }

    #[test]
    fn sales_json_states_every_amount_in_planck() {
        let big: Balance = u128::from(u64::MAX) * 1000 + 1;
        let a = sale(
            10,
            big,
            PurchaseLedger {
                held: big - 300,
                operators: 100,
                seller: 190,
                fees: 10,
                refunded: 0,
            },
        );
        let b = sale(
            11,
            50,
            PurchaseLedger {
                refunded: 50,
                ..Default::default()
            },
        );
        let offer: Offer = Offer {
            id: 4,
            seller: AccountId::new([2; 32]),
            seller_trust_score: 0,
            topic: b"plant7/press".to_vec(),
            mode: PaymentMode::Stream { period: 10 },
            price: 25,
            terms: OfferTerms {
                licence: Licence::InternalUse,
                resale_allowed: false,
                verified_only: false,
                verified_discount: sp_runtime::Perbill::zero(),
                min_trust_score: 0,
                retention: 100,
                replication: 1,
            },
            stream: None,
            created_at: 1,
            retired_at: None,
        };
        let offers = vec![OfferSales {
            totals: SalesTotals::of([&a, &b]),
            offer,
            purchases: vec![a, b],
        }];
        let v = sales_json("seller", &offers);
        let o = &v["offers"][0];
        assert_eq!(o["offer"], 4);
        assert_eq!(o["sales"][0]["purchase"], 10);
        assert_eq!(o["sales"][0]["price"], big.to_string());
        assert_eq!(o["sales"][0]["state"], "Active");
        assert_eq!(o["sales"][0]["periods"], 3);
        assert_eq!(o["sales"][0]["settled_periods"], 1);
        assert_eq!(o["sales"][0]["ledger"]["seller"], "190");
        assert_eq!(o["sales"][0]["accrued_for_operators"], "7");
        assert_eq!(o["sales"][1]["ledger"]["refunded"], "50");
        assert_eq!(o["totals"]["purchases"], 2);
        assert_eq!(o["totals"]["paid"], (big + 50).to_string());
        assert_eq!(o["totals"]["ledger"]["held"], (big - 300).to_string());
        assert_eq!(v["totals"], o["totals"]);
        let text = sales_text(&offers);
        assert!(text.contains("purchase 11"), "{text}");
        assert!(text.contains("settled 1/3"), "{text}");
        assert!(sales_text(&[]).contains("no offers"));
    }

    #[test]
    fn holds_are_listed_by_reason() {
        let v = funds_json(&AccountFunds {
            free: 5,
            reserved: 3,
            frozen: 0,
            holds: vec![("Operators(OperatorStake)".into(), 3)],
        });
        assert_eq!(v["free"], "5");
        assert_eq!(v["holds"][0]["reason"], "Operators(OperatorStake)");
        assert_eq!(v["holds"][0]["amount"], "3");
        let op = operator_json(
            9,
            &OperatorEarnings {
                purchases: 1,
                bytes: 2,
                accrued: 3,
                paid: 4,
            },
        );
        assert_eq!(op["receipts"]["paid"], "4");
        assert!(op["hosting_paid"]
            .as_str()
            .is_some_and(|s| s.contains("HostingPaid events")));
    }
}

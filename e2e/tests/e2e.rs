//! End to end on a running dev node (`scripts/test` starts one; `FASTDATA_WS` overrides the
//! URL) with real Mosquitto brokers and real `fastdata-operator` processes that register on
//! chain, follow finalized blocks, gate their brokers and claim. Run one at a time
//! (`--test-threads=1`): every test adds operators to the same chain and removes them at the
//! end.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{collections::BTreeSet, time::Duration};

use fastdata_e2e::{
    node_url, publish, reading, receive, seeded_account, settled, Network, Trader, UNIT,
};
use fastdata_primitives::{
    api_market::{Licence, OfferTerms},
    escrow::PurchaseState,
    PaymentMode, SCORE_ONE,
};
use fastdata_sdk::{
    receive::{Receiver, Verifier},
    Error,
};
use sp_runtime::Perbill;

fn terms(replication: u32, verified_only: bool) -> OfferTerms<u32> {
    OfferTerms {
        licence: Licence::InternalUse,
        resale_allowed: false,
        verified_only,
        verified_discount: Perbill::from_percent(10),
        min_trust_score: 0,
        retention: 10_000,
        replication,
    }
}

fn payloads(label: &str, n: u64) -> Vec<Vec<u8>> {
    (0..n).map(|i| reading(label, i)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a running fastdata-node; run by scripts/test"]
async fn stream_purchase_delivered_claimed_settled_and_rated() {
    let dir = tempfile::tempdir().unwrap();
    let net = Network::start(&node_url(), dir.path(), 3, None)
        .await
        .unwrap();
    let alice = net.alice.clone();
    let seller = Trader::onboard(
        &alice,
        seeded_account(None).unwrap(),
        &dir.path().join("s.json"),
        true,
    )
    .await
    .unwrap();
    let buyer = Trader::onboard(
        &alice,
        seeded_account(None).unwrap(),
        &dir.path().join("b.json"),
        true,
    )
    .await
    .unwrap();
    let mut seller = seller;

    // The seller lists a live stream (20-block periods) replicated on all three operators.
    let price = 10 * UNIT;
    let offer = seller
        .chain
        .create_offer(
            "plant7/press/temperature",
            PaymentMode::Stream { period: 20 },
            price,
            terms(3, false),
        )
        .await
        .unwrap();
    let registered = seller
        .chain
        .register_stream(&mut seller.keystore, offer, "press-line-1")
        .await
        .unwrap();
    let mine: BTreeSet<_> = net
        .operators
        .iter()
        .map(|o| o.account.account_id())
        .collect();
    let assigned: BTreeSet<_> = registered.operators.iter().cloned().collect();
    assert_eq!(
        assigned, mine,
        "the chain assigned operators outside this network"
    );
    let stream = registered.stream;

    // Publishing reaches every operator once their followers saw the stream.
    let data = payloads("press-line-1", 40);
    let endpoints = publish(&seller, stream, 0, 0, &data).await.unwrap();
    assert_eq!(endpoints.len(), 3);

    // Without a purchase the operators serve nothing.
    let keys = seller.keystore.epoch_keys(&stream, 0).unwrap();
    let mut stranger = Receiver::new(
        buyer.chain.account().clone(),
        u64::MAX,
        Verifier::new(stream, [(0, keys)].into()),
        endpoints.clone(),
        1_000_000,
        Some(0),
    );
    let mut got = 0;
    let refused = stranger.download(Some(39), |_| {
        got += 1;
        Ok(())
    });
    assert!(matches!(refused.await, Err(Error::NoOperator(_))));
    assert_eq!(got, 0);

    // The buyer pays one period; the seller's key delivery activates the purchase.
    let trust_before = buyer.chain.reputation(&seller.id()).await.unwrap();
    let purchase = buyer.chain.buy(offer, 1, price).await.unwrap();
    let paid = buyer.chain.purchase(purchase).await.unwrap().unwrap().price;
    assert_eq!(
        paid,
        price - Perbill::from_percent(10) * price,
        "verified discount"
    );
    let delivered = seller
        .chain
        .deliver_due_keys(&seller.keystore)
        .await
        .unwrap();
    assert_eq!(delivered.len(), 1, "{delivered:?}");
    buyer
        .chain
        .wait_for_keys(purchase, Duration::from_secs(60))
        .await
        .unwrap();

    // Every segment arrives, verified, in order, byte for byte.
    let (segments, summary) = receive(&buyer, purchase, endpoints, 0, 39).await.unwrap();
    let sequences: Vec<u64> = segments.iter().map(|(s, _)| *s).collect();
    assert_eq!(sequences, (0..40).collect::<Vec<_>>());
    let plain: Vec<Vec<u8>> = segments.into_iter().map(|(_, p)| p).collect();
    assert_eq!(plain, data);
    assert_eq!(summary.rejected, 0);
    assert_eq!(summary.duplicates, 0);

    // The operators claim with the buyer's receipts (they record the acknowledged sequence).
    let claimed = buyer
        .chain
        .wait_for("operator claims", Duration::from_secs(90), || async {
            let p = buyer.chain.purchase(purchase).await?.unwrap();
            Ok((p.delivered_up_to == Some(39)).then_some(p))
        })
        .await
        .unwrap();
    assert_eq!(claimed.state, PurchaseState::Active);

    // Settlement (anyone may trigger it; on_idle does it too) pays per the pallet's rule.
    let settled = settled(&buyer.chain, purchase, Duration::from_secs(240))
        .await
        .unwrap();
    let l = &settled.ledger;
    assert_eq!(l.held, 0);
    assert!(l.operators > 0, "operators were not paid: {l:?}");
    assert!(l.seller > 0 && l.fees > 0, "{l:?}");
    assert_eq!(l.operators + l.seller + l.fees + l.refunded, paid, "{l:?}");
    // Everything was delivered, so nothing comes back; the fee is 2 % of the seller's gross.
    assert_eq!(l.refunded, 0, "{l:?}");
    assert_eq!(
        l.fees,
        Perbill::from_percent(2) * (paid - l.operators),
        "{l:?}"
    );

    // Both rate each other; the seller's rating shows up in its reputation.
    buyer.chain.rate(purchase, 95, None).await.unwrap();
    seller.chain.rate(purchase, 90, None).await.unwrap();
    let trust_after = buyer.chain.reputation(&seller.id()).await.unwrap();
    assert_eq!(
        trust_after.ratings_in_window,
        trust_before.ratings_in_window + 1
    );
    assert!(trust_after.trust_score <= SCORE_ONE);
    let listing = buyer.chain.offer(offer).await.unwrap().unwrap();
    assert_eq!(listing.seller_trust_score, trust_after.trust_score);
    assert!(
        buyer.chain.rate(purchase, 95, None).await.is_err(),
        "rated twice"
    );

    net.stop(true).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a running fastdata-node; run by scripts/test"]
async fn batch_purchase_survives_kill9_of_an_operator() {
    let dir = tempfile::tempdir().unwrap();
    let mut net = Network::start(&node_url(), dir.path(), 3, None)
        .await
        .unwrap();
    let alice = net.alice.clone();
    let mut seller = Trader::onboard(
        &alice,
        seeded_account(None).unwrap(),
        &dir.path().join("s.json"),
        true,
    )
    .await
    .unwrap();
    let verified = Trader::onboard(
        &alice,
        seeded_account(None).unwrap(),
        &dir.path().join("v.json"),
        true,
    )
    .await
    .unwrap();
    let unverified = Trader::onboard(
        &alice,
        seeded_account(None).unwrap(),
        &dir.path().join("u.json"),
        false,
    )
    .await
    .unwrap();

    // A verified-buyers-only batch of 30 recorded segments, on two of the three operators.
    let offer = seller
        .chain
        .create_offer(
            "plant7/press/vibration",
            PaymentMode::Batch { first: 0, last: 29 },
            5 * UNIT,
            terms(2, true),
        )
        .await
        .unwrap();
    let registered = seller
        .chain
        .register_stream(&mut seller.keystore, offer, "press-vib")
        .await
        .unwrap();
    assert_eq!(registered.operators.len(), 2);
    let data = payloads("press-vib", 30);
    let endpoints = publish(&seller, registered.stream, 0, 0, &data)
        .await
        .unwrap();

    // An unverified buyer is refused by the chain, with a message naming the rule.
    let refused = unverified.chain.buy(offer, 1, 5 * UNIT).await.unwrap_err();
    assert!(matches!(refused, Error::Dispatch { .. }), "{refused}");

    let purchase = verified.chain.buy(offer, 1, 5 * UNIT).await.unwrap();
    seller
        .chain
        .deliver_due_keys(&seller.keystore)
        .await
        .unwrap();
    verified
        .chain
        .wait_for_keys(purchase, Duration::from_secs(60))
        .await
        .unwrap();

    // The buyer reads the first half from the first operator, which then dies (kill -9);
    // the rest comes from the replica with no gap and no duplicate.
    let (first, _) = receive(&verified, purchase, vec![endpoints[0].clone()], 0, 14)
        .await
        .unwrap();
    let killed = net
        .operators
        .iter_mut()
        .find(|o| o.account.account_id() == endpoints[0].account)
        .unwrap();
    killed.kill9();
    let (rest, summary) = receive(&verified, purchase, endpoints.clone(), 15, 29)
        .await
        .unwrap();
    assert!(summary.failovers >= 1, "{summary:?}");
    assert_eq!(summary.duplicates, 0);
    let all: Vec<_> = first.into_iter().chain(rest).collect();
    assert_eq!(
        all.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
        (0..30).collect::<Vec<_>>()
    );
    assert_eq!(all.into_iter().map(|(_, p)| p).collect::<Vec<_>>(), data);

    // The killed daemon restarts on its data directory with every segment still there.
    killed.restart().unwrap();
    let (again, _) = tokio::time::timeout(Duration::from_secs(90), async {
        loop {
            match receive(&verified, purchase, vec![endpoints[0].clone()], 0, 29).await {
                Ok(found) => return found,
                Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
            }
        }
    })
    .await
    .expect("the restarted operator serves again");
    assert_eq!(again.into_iter().map(|(_, p)| p).collect::<Vec<_>>(), data);

    net.stop(true).await.unwrap();
}

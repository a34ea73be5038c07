//! Market integrity on the dev chain with a live `fastdata-operator`: a seller that closes its
//! stream mid-purchase leaves its buyer served to the end of what it paid for and refunded
//! for what was never published; a seller stores no more than the hosting it pays for.

use std::time::Duration;

use fastdata_e2e::{settled, UNIT};
use fastdata_primitives::{envelope::OVERHEAD, AccountId, Balance, PaymentMode, StreamId};
use fastdata_sdk::{
    chain::{account_id, fastdata, RuntimeEvent},
    publish::StreamPublisher,
    seller::Hosting,
};
use sp_runtime::Perbill;

use crate::{
    fair_pay::{bought_with_keys, epoch0_publisher},
    marketplace::{list, setup, terms},
};

/// Runtime's claim grace after a period (`ClaimGracePeriod`, 5 periods of 10 blocks).
const GRACE: u32 = 50;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a running fastdata-node; run by scripts/test"]
async fn a_closed_stream_serves_its_buyer_to_the_end_and_refunds_the_unpublished_rest() {
    let (_dir, net, [seller, buyer]) = setup(1, [("s", true), ("b", false)]).await;
    let mut seller = seller;
    let alice = net.alice.clone();

    let price = 2 * UNIT;
    let (offer, registered) = list(
        &mut seller,
        "plant9/press/pressure",
        PaymentMode::Stream { period: 10 },
        price,
        terms(1, false),
        "press-1",
    )
    .await;
    let stream = registered.stream;
    let purchase = bought_with_keys(&seller, &buyer, offer, 3, price).await;
    let view = buyer.chain.purchase(purchase).await.unwrap().unwrap();

    // The seller publishes 12 readings, then closes the stream in the first period.
    let op = &net.operators[0];
    let endpoints = vec![op.endpoint.clone()];
    let mut publisher = epoch0_publisher(&net, &seller, stream).await;
    const PUBLISHED: u64 = 12;
    for i in 0..PUBLISHED {
        publisher
            .publish(&fastdata_e2e::reading("press-1", i))
            .await
            .unwrap();
    }
    publisher.flush(Duration::from_secs(60)).await.unwrap();
    publisher.close(Duration::from_secs(10)).await.unwrap();

    let closed = seller.chain.close_stream(&stream).await.unwrap();
    let (closed_stream, serving_until) = closed
        .event("Offers::StreamClosed", |e| match e {
            RuntimeEvent::Offers(fastdata::offers::Event::StreamClosed {
                stream,
                serving_until,
            }) => Some((*stream, *serving_until)),
            _ => None,
        })
        .expect("StreamClosed emitted");
    assert_eq!(closed_stream, stream);
    assert_eq!(serving_until, Some(view.access.end + GRACE));
    // Not sold any more, still hosted.
    let after = seller.chain.stream(&stream).await.unwrap().unwrap();
    assert!(after.closed_at.is_some());
    assert_eq!(after.operators, vec![op.account.account_id()]);
    let refused = buyer
        .chain
        .buy(offer, 1, price)
        .await
        .unwrap_err()
        .to_string();
    assert!(refused.contains("OfferInactive"), "{refused}");
    let early = buyer.chain.release_stream(&stream).await.unwrap_err();
    assert!(early.to_string().contains("StillServing"), "{early}");

    // After closing, the buyer still gets everything that was published, from the operator.
    let view = buyer.chain.purchase(purchase).await.unwrap().unwrap();
    let mut receiver = buyer
        .chain
        .receiver(&buyer.keystore, &view, endpoints, Some(0), 10_000)
        .await
        .unwrap();
    let mut got = Vec::new();
    receiver
        .download(Some(PUBLISHED - 1), |segment| {
            got.push(segment.header.sequence);
            Ok(())
        })
        .await
        .unwrap();
    assert_eq!(got, (0..PUBLISHED).collect::<Vec<_>>());

    // Settlement: nothing was published after the close, so the later periods are refunded
    // in full; what was published and received is paid.
    let settled = settled(&alice, purchase, Duration::from_secs(240))
        .await
        .unwrap();
    let l = &settled.ledger;
    assert_eq!(settled.settled_periods, 3);
    assert_eq!(l.held, 0, "{l:?}");
    assert_eq!(
        l.operators + l.seller + l.fees + l.refunded,
        settled.price,
        "{l:?}"
    );
    assert!(l.seller > 0, "{l:?}");
    assert!(l.refunded >= price, "at least the last period back: {l:?}");
    // The stream's head at the end of the last period: nothing after the close.
    assert_eq!(settled.period_heads, vec![PUBLISHED]);

    // Now anyone may release the operators.
    buyer.chain.release_stream(&stream).await.unwrap();
    let released = seller.chain.stream(&stream).await.unwrap().unwrap();
    assert!(released.operators.is_empty(), "{:?}", released.operators);

    net.stop(true).await.unwrap();
}

/// `Operators.Hosting(stream)` at the finalized block: its payer, quota (MB) and funds left;
/// `None` once the stream is released.
async fn hosting(
    chain: &fastdata_sdk::FastData,
    stream: &StreamId,
) -> Option<(AccountId, u32, Balance)> {
    let at = chain.current_block().await.unwrap();
    let value = at
        .storage()
        .try_fetch(fastdata::storage().operators().hosting(), (*stream,))
        .await
        .unwrap()?;
    let hosting = value.decode().unwrap();
    Some((account_id(&hosting.payer), hosting.quota_mb, hosting.funds))
}

/// Waits until `operator`'s attestation of `stream` has head `head` and `bytes` stored: its
/// block.
async fn attested(
    chain: &fastdata_sdk::FastData,
    stream: &StreamId,
    operator: &AccountId,
    head: u64,
    bytes: u64,
) -> u32 {
    chain
        .wait_for(
            "the operator's attestation",
            Duration::from_secs(90),
            || async {
                // The latest attestation of each assigned operator (`Operators.StreamHeads`).
                let records = chain.attested_heads(stream).await?;
                Ok(records
                    .into_iter()
                    .find(|r| r.operator == *operator && r.head == head && r.stored_bytes == bytes)
                    .map(|r| r.at))
            },
        )
        .await
        .unwrap()
}

/// The value of the metric line starting with `name` in a Prometheus text exposition.
fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a running fastdata-node; run by scripts/test"]
async fn a_seller_stores_only_what_it_pays_for_and_pays_its_operator_for_hosting() {
    let (_dir, net, [seller]) = setup(1, [("s", true)]).await;
    let mut seller = seller;
    let op = &net.operators[0];
    let me = op.account.account_id();

    // A 1 MB quota funded with 5 units.
    const FUNDS: Balance = 5 * UNIT;
    let offer = seller
        .chain
        .create_offer(
            "plant9/press/hosting",
            PaymentMode::Stream { period: 10 },
            UNIT,
            terms(1, false),
        )
        .await
        .unwrap();
    let stream = seller
        .chain
        .register_stream(
            &mut seller.keystore,
            offer,
            "press-quota",
            Hosting {
                quota_mb: 1,
                funds: FUNDS,
            },
        )
        .await
        .unwrap()
        .stream;
    let view = seller.chain.stream(&stream).await.unwrap().unwrap();
    assert_eq!((view.quota_mb, view.hosting_funded), (1, true));
    // 50 kB readings: 19 envelopes fit in 1 MB, the 20th does not.
    const PAYLOAD: usize = 50_000;
    let envelope = (PAYLOAD + OVERHEAD) as u64;
    let fit = 1_000_000 / envelope;
    assert_eq!(fit, 19);
    let reading = |i: u64| vec![i as u8; PAYLOAD];

    // Five segments; the operator's first attestation starts its hosting clock.
    let mut publisher = epoch0_publisher(&net, &seller, stream).await;
    for i in 0..5 {
        publisher.publish(&reading(i)).await.unwrap();
    }
    publisher.flush(Duration::from_secs(60)).await.unwrap();
    let first_at = attested(&seller.chain, &stream, &me, 5, 5 * envelope).await;

    // Twenty more: the operator stores only the 14 that fit and refuses 6; then one that
    // fills the quota to the byte.
    for i in 5..25 {
        publisher.publish(&reading(i)).await.unwrap();
    }
    let filler = (1_000_000 - fit * envelope) as usize - OVERHEAD;
    publisher.publish(&vec![0xf1; filler]).await.unwrap();
    publisher.flush(Duration::from_secs(60)).await.unwrap();
    publisher.close(Duration::from_secs(10)).await.unwrap();
    let last_at = attested(&seller.chain, &stream, &me, fit, 1_000_000).await;
    let http = fastdata_sdk::http::HttpClient::new();
    let (status, text) = http
        .get(&format!("{}/metrics", op.endpoint.http_url), &[], 1 << 20)
        .await
        .unwrap();
    assert_eq!(status.as_u16(), 200);
    let text = String::from_utf8_lossy(&text);
    assert_eq!(
        metric(
            &text,
            r#"fastdata_operator_segments_refused_total{reason="over_quota"}"#
        ),
        25 - fit
    );

    // Each attestation after the first paid the operator from the seller's funds for the
    // bytes attested before it: between 5 envelopes and the whole quota over the blocks in
    // between.
    let (payer, quota_mb, funds) = hosting(&seller.chain, &stream).await.unwrap();
    assert_eq!((payer, quota_mb), (seller.id(), 1));
    let (price, period) = seller.chain.hosting_price().await.unwrap();
    let cost = |bytes: u64| {
        Perbill::from_rational((last_at - first_at).min(period), period)
            .mul_floor(price * Balance::from(bytes) / 1_000_000)
    };
    let paid = FUNDS - funds;
    assert!(
        paid + 2 >= cost(5 * envelope) && paid <= cost(1_000_000) && paid > 0,
        "paid {paid} for {} blocks",
        last_at - first_at
    );

    // What is stored stays paid for: the quota cannot go below it.
    let lowered = seller
        .chain
        .fund_hosting(&stream, 0, 0)
        .await
        .unwrap_err()
        .to_string();
    assert!(lowered.contains("QuotaBelowStored"), "{lowered}");
    // With the quota used up, the operator refuses the seller's publisher, saying why.
    let keys = seller.keystore.epoch_keys(&stream, 0).unwrap();
    let expiry = net.alice.finalized_number().await.unwrap() + 1_000;
    let refused = seller
        .chain
        .wait_for("the quota refusal", Duration::from_secs(30), || async {
            let attempt = StreamPublisher::connect(
                seller.chain.account(),
                net.alice.genesis(),
                stream,
                0,
                keys.clone(),
                std::slice::from_ref(&op.endpoint),
                expiry,
                26,
            )
            .await;
            Ok(match attempt {
                Ok(publisher) => {
                    publisher.close(Duration::from_secs(5)).await.unwrap();
                    None
                }
                Err(e) => Some(e.to_string()),
            })
        })
        .await
        .unwrap();
    assert!(refused.contains("hosting quota used up"), "{refused}");

    // Releasing the stream returns what is left of the funds.
    seller.chain.close_stream(&stream).await.unwrap();
    let left = hosting(&seller.chain, &stream).await;
    assert!(left.is_none(), "released with the stream: {left:?}");
    net.stop(true).await.unwrap();
}

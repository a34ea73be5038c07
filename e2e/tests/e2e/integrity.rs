//! Market integrity on the dev chain with a live `fastdata-operator`: a seller that closes its
//! stream mid-purchase leaves its buyer served to the end of what it paid for and refunded
//! for what was never published.

use std::time::Duration;

use codec::Decode;
use fastdata_e2e::{settled, UNIT};
use fastdata_primitives::{PaymentMode, StreamId};

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
    let event = closed
        .event("Offers", "StreamClosed")
        .expect("StreamClosed emitted");
    let (closed_stream, serving_until) =
        <(StreamId, Option<u32>)>::decode(&mut &event.fields[..]).unwrap();
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

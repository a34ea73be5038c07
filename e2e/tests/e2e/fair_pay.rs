//! Fair pay against the dev chain, a live `fastdata-operator` and its Mosquitto broker: a
//! live buyer that never sends a receipt gets at most the operator's receipt window and pays
//! nothing; an operator that raises its price after a purchase is paid the agreed one; an
//! honest buyer's period is paid in full.

use std::time::Duration;

use fastdata_e2e::{
    connect_publisher, receive, settled, Network, Trader, OPERATOR_PRICE_PER_MB, UNIT,
};
use fastdata_primitives::{
    escrow::PurchaseState, Balance, OfferId, PaymentMode, PurchaseId, StreamId,
};
use fastdata_sdk::publish::StreamPublisher;
use fastdata_sdk::{chain::fastdata, operator::OperatorClient, FastData};
use rumqttc::{AsyncClient, ConnectReturnCode, Event, Packet, QoS};
use sp_runtime::Perbill;

use crate::marketplace::{list, payloads, setup, terms};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a running fastdata-node; run by scripts/test"]
async fn a_live_freeloader_gets_one_window_and_pays_nothing_and_prices_hold() {
    let (_dir, net, [seller, freeloader, honest]) =
        setup(1, [("s", true), ("f", false), ("h", false)]).await;
    let mut seller = seller;
    let alice = net.alice.clone();
    let genesis = alice.genesis();

    // A live stream (40-block periods) on one operator; two buyers buy one period each
    // before anything is published.
    let price = 5 * UNIT;
    let (offer, registered) = list(
        &mut seller,
        "plant7/mill/vibration",
        PaymentMode::Stream { period: 40 },
        price,
        terms(1, false),
        "mill-1",
    )
    .await;
    let stream = registered.stream;
    let p_free = freeloader.chain.buy(offer, 1, price).await.unwrap();
    let p_honest = honest.chain.buy(offer, 1, price).await.unwrap();
    let delivered = seller
        .chain
        .deliver_due_keys(&seller.keystore)
        .await
        .unwrap();
    assert_eq!(delivered.len(), 2, "{delivered:?}");
    for (buyer, p) in [(&freeloader, p_free), (&honest, p_honest)] {
        buyer
            .chain
            .wait_for_keys(p, Duration::from_secs(60))
            .await
            .unwrap();
    }

    // The operator raises its price a hundredfold after the purchases.
    let op = &net.operators[0];
    let op_chain = FastData::connect(&fastdata_e2e::node_url(), op.account.clone())
        .await
        .unwrap();
    op_chain
        .submit(
            fastdata::tx()
                .operators()
                .update(None, None, Some(OPERATOR_PRICE_PER_MB * 100)),
        )
        .await
        .unwrap();

    // The freeloader takes live broker credentials and subscribes with a raw MQTT client; it
    // will never send a receipt.
    let client = OperatorClient::new(op.endpoint.clone(), genesis);
    let expiry = alice.finalized_number().await.unwrap() + 1_000;
    let creds = alice
        .wait_for("a live session", Duration::from_secs(30), || async {
            Ok(client
                .access_session(freeloader.chain.account(), p_free, expiry)
                .await
                .ok())
        })
        .await
        .unwrap();
    let window = creds
        .receipt_window
        .expect("the operator states its window");
    let mut options = op
        .endpoint
        .broker_address()
        .unwrap()
        .mqtt_options(
            creds
                .client_id
                .clone()
                .expect("the operator binds the login to a client id"),
        )
        .unwrap();
    options.set_credentials(creds.username.clone(), creds.password.clone());
    options.set_keep_alive(Duration::from_secs(5));
    let (mqtt, mut eventloop) = AsyncClient::new(options, 256);
    mqtt.subscribe(creds.topic.clone(), QoS::AtLeastOnce)
        .await
        .unwrap();
    let listener = tokio::spawn(async move {
        let (mut connected, mut received) = (false, 0u64);
        loop {
            match tokio::time::timeout(Duration::from_secs(20), eventloop.poll()).await {
                Ok(Ok(Event::Incoming(Packet::ConnAck(ack)))) => {
                    connected = ack.code == ConnectReturnCode::Success;
                }
                Ok(Ok(Event::Incoming(Packet::Publish(_)))) => received += 1,
                Ok(Ok(_)) => {}
                // Dropped by the broker, or quiet for 20 s: done.
                Ok(Err(_)) => return (connected, received, true),
                Err(_) => return (connected, received, false),
            }
        }
    });
    tokio::time::sleep(Duration::from_secs(2)).await;

    // The seller publishes 3W readings at a sensor's pace (20 per second) during the period.
    let n = 3 * window;
    let data = payloads("mill-1", n);
    let keys = seller.keystore.epoch_keys(&stream, 0).unwrap();
    let endpoints = vec![op.endpoint.clone()];
    let mut publisher = connect_publisher(
        seller.chain.account(),
        genesis,
        stream,
        0,
        keys,
        &endpoints,
        expiry,
        0,
        Duration::from_secs(60),
    )
    .await
    .unwrap();
    for payload in &data {
        publisher.publish(payload).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    publisher.flush(Duration::from_secs(60)).await.unwrap();
    publisher.close(Duration::from_secs(10)).await.unwrap();

    // The freeloader got at most one window of the 3W segments, then was dropped.
    let (connected, received, dropped) = listener.await.unwrap();
    assert!(connected, "the freeloader's credentials were valid");
    assert!(
        (1..=window).contains(&received),
        "received {received} segments without a receipt; the window is {window}"
    );
    assert!(dropped, "a subscriber past its window must be disconnected");

    // The honest buyer receives everything and receipts it; the operator claims.
    let (segments, _) = receive(&honest, p_honest, endpoints, 0, n - 1)
        .await
        .unwrap();
    assert_eq!(segments.len() as u64, n);
    let claimed = alice
        .wait_for("the operator's claim", Duration::from_secs(90), || async {
            let p = alice.purchase(p_honest).await?.unwrap();
            Ok((p.delivered_up_to == Some(n - 1)).then_some(p))
        })
        .await
        .unwrap();
    assert_eq!(claimed.state, PurchaseState::Active);

    // Both settle. The freeloader acknowledged nothing: all of its price comes back and nobody
    // is paid for what it took.
    let free = settled(&alice, p_free, Duration::from_secs(240))
        .await
        .unwrap();
    let l = &free.ledger;
    assert_eq!(
        (l.held, l.operators, l.seller, l.fees, l.refunded),
        (0, 0, 0, 0, free.price),
        "{l:?}"
    );
    assert_eq!(free.period_heads, vec![n]);

    // The honest buyer's period is paid in full, the operator at the price agreed at
    // purchase (not the raised one), the seller the rest minus the 2 % fee.
    let paid = settled(&alice, p_honest, Duration::from_secs(240))
        .await
        .unwrap();
    assert_eq!(paid.period_heads, vec![n]);
    let (operator, claim) = paid.operators.first().expect("one operator claimed");
    assert_eq!(operator, &op.account.account_id());
    let agreed = Balance::from(claim.bytes) * OPERATOR_PRICE_PER_MB / 1_000_000;
    assert_eq!(claim.paid, agreed, "{claim:?}");
    let l = &paid.ledger;
    assert_eq!(l.operators, agreed, "{l:?}");
    assert_eq!(l.refunded, 0, "{l:?}");
    let gross = paid.price - agreed;
    assert_eq!(l.fees, Perbill::from_percent(2) * gross, "{l:?}");
    assert_eq!(l.seller, gross - l.fees, "{l:?}");

    net.stop(true).await.unwrap();
}

/// The runtime's shortest period (10 blocks) and its claim grace (5 periods): a seller that
/// publishes steadily and a buyer that keeps downloading and receipting are settled in full
/// in every one of 3 periods, not paid for one period and refunded two.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a running fastdata-node; run by scripts/test"]
async fn an_honest_stream_of_the_shortest_periods_is_paid_in_full_every_period() {
    let (_dir, net, [seller, buyer]) = setup(1, [("s", true), ("b", false)]).await;
    let mut seller = seller;
    let alice = net.alice.clone();

    let price = 2 * UNIT;
    let (offer, registered) = list(
        &mut seller,
        "plant7/kiln/temperature",
        PaymentMode::Stream { period: 10 },
        price,
        terms(1, false),
        "kiln-1",
    )
    .await;
    let stream = registered.stream;
    let purchase = bought_with_keys(&seller, &buyer, offer, 3, price).await;
    let view = buyer.chain.purchase(purchase).await.unwrap().unwrap();

    // The seller publishes two readings a second until 4 blocks before the access period
    // ends (the buyer must fetch the last ones while its access lasts).
    let endpoints = vec![net.operators[0].endpoint.clone()];
    let mut publisher = epoch0_publisher(&net, &seller, stream).await;
    let end = view.access.end;
    let chain = alice.clone();
    let publishing = tokio::spawn(async move {
        let mut published = 0u64;
        while chain.finalized_number().await.unwrap() + 4 < end {
            publisher
                .publish(&fastdata_e2e::reading("kiln-1", published))
                .await
                .unwrap();
            published += 1;
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        publisher.flush(Duration::from_secs(60)).await.unwrap();
        publisher.close(Duration::from_secs(10)).await.unwrap();
        published
    });

    // The buyer downloads what is there every two seconds with one receiver (receipting
    // it), until the publisher is done.
    let view = buyer.chain.purchase(purchase).await.unwrap().unwrap();
    let mut receiver = buyer
        .chain
        .receiver(&buyer.keystore, &view, endpoints, Some(0), 10_000)
        .await
        .unwrap();
    let mut got: Vec<u64> = Vec::new();
    while !publishing.is_finished() {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let last = got.last().map_or(7, |s| s + 8);
        let _ = receiver
            .download(Some(last), |segment| {
                got.push(segment.header.sequence);
                Ok(())
            })
            .await;
    }
    let published = publishing.await.unwrap();
    receiver
        .download(Some(published - 1), |segment| {
            got.push(segment.header.sequence);
            Ok(())
        })
        .await
        .unwrap();
    assert_eq!(got, (0..published).collect::<Vec<_>>());

    // Every period settles with nothing refunded: each was paid for what was published in it.
    let settled = settled(&alice, purchase, Duration::from_secs(240))
        .await
        .unwrap();
    let l = &settled.ledger;
    assert_eq!(settled.settled_periods, 3);
    assert_eq!(l.held, 0, "{l:?}");
    assert_eq!(l.refunded, 0, "{l:?}");
    assert_eq!(l.operators + l.seller + l.fees, settled.price, "{l:?}");
    assert!(l.seller > 0 && l.fees > 0, "{l:?}");
    assert_eq!(settled.start_head, Some(0));
    assert!(
        settled
            .period_heads
            .last()
            .is_some_and(|h| *h > 0 && *h <= published),
        "{:?} of {published}",
        settled.period_heads
    );

    net.stop(true).await.unwrap();
}

/// `buyer` buys `periods` periods of stream offer `offer` at `price` each; the seller's
/// key-delivery run delivers its one due key and the buyer waits for it.
pub(crate) async fn bought_with_keys(
    seller: &Trader,
    buyer: &Trader,
    offer: OfferId,
    periods: u32,
    price: Balance,
) -> PurchaseId {
    let purchase = buyer
        .chain
        .buy(offer, periods, Balance::from(periods) * price)
        .await
        .unwrap();
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
    purchase
}

/// The seller's publisher of epoch 0 of `stream`, connected to the first operator.
pub(crate) async fn epoch0_publisher(
    net: &Network,
    seller: &Trader,
    stream: StreamId,
) -> StreamPublisher {
    let endpoints = vec![net.operators[0].endpoint.clone()];
    let keys = seller.keystore.epoch_keys(&stream, 0).unwrap();
    let expiry = net.alice.finalized_number().await.unwrap() + 1_000;
    connect_publisher(
        seller.chain.account(),
        net.alice.genesis(),
        stream,
        0,
        keys,
        &endpoints,
        expiry,
        0,
        Duration::from_secs(60),
    )
    .await
    .unwrap()
}

//! Revocation of a connected subscriber when its access period ends, against a live
//! `fastdata-operator` and its real broker: the buyer's raw live subscriber (never asked to
//! reconnect) is disconnected within [`BOUND`] blocks of the end of its stream purchase and
//! receives nothing the seller publishes after that (Mosquitto: the dynsec client deleted;
//! VerneMQ: the session dropped through the broker's HTTP API).

use std::time::Duration;

use fastdata_e2e::{reading, BrokerKind, UNIT};
use fastdata_primitives::PaymentMode;
use fastdata_sdk::operator::OperatorClient;

use crate::{
    fair_pay::{bought_with_keys, epoch0_publisher},
    marketplace::{list, setup_on, terms},
    takeover::{live_credentials, Subscriber},
};

/// Blocks after the end of access within which the subscriber must be gone (the daemon
/// applies a finalized block as it follows the chain, then tells the broker).
const BOUND: u32 = 3;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a running fastdata-node; run by scripts/test"]
async fn an_expired_live_subscriber_is_disconnected_on_mosquitto() {
    expiry_disconnects(BrokerKind::Mosquitto).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a running fastdata-node and the VerneMQ release; run by scripts/test"]
async fn an_expired_live_subscriber_is_disconnected_on_vernemq() {
    expiry_disconnects(BrokerKind::Vernemq).await;
}

async fn expiry_disconnects(kind: BrokerKind) {
    let (_dir, net, [seller, buyer]) = setup_on(kind, 1, [("s", true), ("b", false)]).await;
    let mut seller = seller;
    let alice = net.alice.clone();

    // One 20-block period, published at one reading per second: fewer segments during the
    // access period than the receipt window (32), so only the expiry can cut the subscriber.
    let price = UNIT;
    let (offer, registered) = list(
        &mut seller,
        "plant5/valve/position",
        PaymentMode::Stream { period: 20 },
        price,
        terms(1, false),
        "valve-1",
    )
    .await;
    let stream = registered.stream;
    let purchase = bought_with_keys(&seller, &buyer, offer, 1, price).await;
    let access_end = buyer
        .chain
        .purchase(purchase)
        .await
        .unwrap()
        .unwrap()
        .access
        .end;

    let op = &net.operators[0];
    let client = OperatorClient::new(op.endpoint.clone(), alice.genesis());
    let creds = live_credentials(&alice, &client, &buyer.chain, purchase).await;
    let mut subscriber = Subscriber::start(&op.endpoint, &creds).await;
    let mut publisher = epoch0_publisher(&net, &seller, stream).await;

    // The seller publishes until BOUND + 5 blocks past the end of access; each segment's
    // finalized block at publishing is recorded (segment i has sequence i).
    let mut published_at = Vec::new();
    let mut received = Vec::new();
    let mut ended: Option<(String, u32)> = None;
    loop {
        let now = alice.finalized_number().await.unwrap();
        if now >= access_end + BOUND + 5 {
            break;
        }
        let i = published_at.len() as u64;
        publisher.publish(&reading("valve-1", i)).await.unwrap();
        published_at.push(now);
        let next = tokio::time::Instant::now() + Duration::from_secs(1);
        while ended.is_none() {
            match subscriber.next_segment(next).await {
                Ok(Some(sequence)) => received.push(sequence),
                Ok(None) => break,
                Err(e) => ended = Some((e, alice.finalized_number().await.unwrap())),
            }
        }
        tokio::time::sleep_until(next).await;
    }
    publisher.flush(Duration::from_secs(60)).await.unwrap();
    eprintln!(
        "access ended at block {access_end}; {} segments published, {} received; the \
         subscriber's connection ended: {ended:?}",
        published_at.len(),
        received.len()
    );

    // Served while access lasted, then gone within the bound.
    assert!(received.len() >= 3, "served only {received:?}");
    let (error, at) = ended.expect("an expired subscriber must be disconnected");
    assert!(
        at <= access_end + BOUND,
        "disconnected at block {at} ({error}), access ended at {access_end}"
    );
    // Segments were published after the bound, and none of them reached the subscriber.
    assert!(published_at.iter().any(|b| *b >= access_end + BOUND));
    for sequence in &received {
        let at = published_at[*sequence as usize];
        assert!(
            at < access_end + BOUND,
            "segment {sequence} published at block {at} reached a subscriber whose access ended at {access_end}"
        );
    }

    publisher.close(Duration::from_secs(10)).await.unwrap();
    net.stop(true).await.unwrap();
}

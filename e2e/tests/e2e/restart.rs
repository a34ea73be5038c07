//! The gate's decisions survive restarts of a live `fastdata-operator`: a buyer's raw live
//! subscriber, connected with its minted login, stays connected and served while the daemon is
//! stopped with SIGTERM and started again, then killed with SIGKILL and started again; when
//! its access period ends afterwards it is still disconnected within [`BOUND`] blocks and
//! receives nothing published after that (Mosquitto: the daemon re-learns its dynsec clients;
//! VerneMQ: it reads back the logins and sessions it recorded).

use std::time::Duration;

use fastdata_e2e::{reading, BrokerKind, UNIT};
use fastdata_primitives::PaymentMode;
use fastdata_sdk::operator::OperatorClient;

use crate::{
    fair_pay::{bought_with_keys, epoch0_publisher},
    marketplace::{list, setup_on, terms},
    takeover::{live_credentials, Subscriber},
};

/// Blocks after the end of access within which the subscriber must be gone.
const BOUND: u32 = 3;
/// The access period, in blocks: long enough for both restarts to finish inside it.
const PERIOD: u32 = 40;
/// Seconds between segments: the period's segments stay below the receipt window (32), so
/// only the expiry can cut the subscriber.
const EVERY: Duration = Duration::from_secs(2);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a running fastdata-node; run by scripts/test"]
async fn a_live_subscriber_outlives_operator_restarts_and_is_revoked_on_mosquitto() {
    restarts_then_expiry(BrokerKind::Mosquitto).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a running fastdata-node and the VerneMQ release; run by scripts/test"]
async fn a_live_subscriber_outlives_operator_restarts_and_is_revoked_on_vernemq() {
    restarts_then_expiry(BrokerKind::Vernemq).await;
}

/// Waits until the restarted daemon answers on its HTTP API (it starts serving after it has
/// synchronised its chain view and set up its gate).
async fn serving(client: &OperatorClient) {
    tokio::time::timeout(Duration::from_secs(60), async {
        while client.terms().await.is_err() {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await
    .expect("the restarted operator serves within 60 s");
}

async fn restarts_then_expiry(kind: BrokerKind) {
    let (_dir, mut net, [seller, buyer]) = setup_on(kind, 1, [("s", true), ("b", false)]).await;
    let mut seller = seller;
    let alice = net.alice.clone();

    let price = UNIT;
    let (offer, registered) = list(
        &mut seller,
        "plant6/pump/pressure",
        PaymentMode::Stream { period: PERIOD },
        price,
        terms(1, false),
        "pump-1",
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

    let endpoint = net.operators[0].endpoint.clone();
    let client = OperatorClient::new(endpoint.clone(), alice.genesis());
    let creds = live_credentials(&alice, &client, &buyer.chain, purchase).await;
    let mut subscriber = Subscriber::start(&endpoint, &creds).await;
    let mut publisher = epoch0_publisher(&net, &seller, stream).await;

    // Segment i has sequence i; its finalized block at publishing is recorded.
    let mut published_at = Vec::new();
    let mut received = Vec::new();
    for i in 0..2 {
        publisher.publish(&reading("pump-1", i)).await.unwrap();
        published_at.push(alice.finalized_number().await.unwrap());
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while received.len() < 2 {
        match subscriber.next_segment(deadline).await {
            Ok(Some(sequence)) => received.push(sequence),
            other => panic!("before the restarts: {other:?} after {received:?}"),
        }
    }

    // SIGTERM and start, then SIGKILL and start, on the same data directory.
    net.operators[0].stop();
    net.operators[0].restart().unwrap();
    serving(&client).await;
    net.operators[0].restart().unwrap();
    serving(&client).await;
    let restarted = alice.finalized_number().await.unwrap();
    eprintln!("restarted twice by block {restarted}; access ends at block {access_end}");
    assert!(
        restarted + BOUND + 2 < access_end,
        "the restarts took too long for the access period ({PERIOD} blocks) to test anything"
    );

    // The seller publishes until BOUND + 5 blocks past the end of access.
    let mut ended: Option<(String, u32)> = None;
    loop {
        let now = alice.finalized_number().await.unwrap();
        if now >= access_end + BOUND + 5 {
            break;
        }
        let i = published_at.len() as u64;
        publisher.publish(&reading("pump-1", i)).await.unwrap();
        published_at.push(now);
        let next = tokio::time::Instant::now() + EVERY;
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
        "{} segments published, {} received: {received:?}; the subscriber's connection ended: \
         {ended:?}",
        published_at.len(),
        received.len()
    );

    // Served on the same connection after the restarts...
    let after: Vec<_> = received
        .iter()
        .filter(|s| published_at[**s as usize] > restarted)
        .collect();
    assert!(
        after.len() >= 3,
        "segments published after the restarts were not served: {received:?}"
    );
    // ...then disconnected within the bound, with nothing published past it.
    let (error, at) = ended.expect("an expired subscriber must be disconnected after restarts");
    assert!(
        at <= access_end + BOUND,
        "disconnected at block {at} ({error}), access ended at {access_end}"
    );
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

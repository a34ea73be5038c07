//! One operator's broker layer on a two-node VerneMQ cluster, against the dev chain: the
//! daemon's config lists both nodes (`[broker] hosts`), every node's webhooks call the daemon.
//! The seller publishes to node A (the operator's on-chain broker URL), a buyer's raw live
//! subscriber, logged in with its minted credentials, receives every segment on node B. Node A
//! is killed with SIGKILL and removed from the cluster (`vmq-admin cluster leave`, run on B);
//! the buyer stays connected to B, the seller logs in again through the daemon and publishes
//! through B, the buyer receives every new segment on its one connection, and the daemon's
//! ingest moves to B and stores every segment published before and after the kill (read back
//! over HTTP).

use std::time::Duration;

use fastdata_e2e::{
    connect_publisher, node_url, reading, seeded_account, vernemq::Vernemq, BrokerProcess, Network,
    Trader, UNIT,
};
use fastdata_primitives::{envelope::parse_header, PaymentMode, PurchaseId};
use fastdata_sdk::operator::{OperatorClient, OperatorEndpoint};

use crate::{
    fair_pay::{bought_with_keys, epoch0_publisher},
    marketplace::{list, terms},
    takeover::{live_credentials, Subscriber},
};

/// Segments published through node A, then as many through node B after A is gone: fewer in
/// all than the receipt window (32), so the raw subscriber, which sends no receipts, is owed
/// every one.
const SEGMENTS: u64 = 8;

/// `(client id, node, online)` of every session in the cluster, as `node` lists them.
fn sessions(node: &Vernemq) -> Vec<(String, String, bool)> {
    let table = node
        .admin(&["session", "show", "--client_id", "--node", "--is_online"])
        .unwrap();
    table
        .lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            match cells[..] {
                ["", id, online, node, ""] if !id.contains('\u{1b}') => {
                    Some((id.to_owned(), node.to_owned(), online == "true"))
                }
                _ => None,
            }
        })
        .collect()
}

/// The node the session `client_id` is online on, if it is.
fn online_on(node: &Vernemq, client_id: &str) -> Option<String> {
    sessions(node)
        .into_iter()
        .find(|(id, _, online)| id == client_id && *online)
        .map(|(_, node, _)| node)
}

/// The sequences the operator serves `purchase` over HTTP, once it has `count` of them.
async fn stored(
    net: &Network,
    client: &OperatorClient,
    buyer: &Trader,
    purchase: PurchaseId,
    count: u64,
) -> Vec<u64> {
    let expiry = net.alice.finalized_number().await.unwrap() + 1_000;
    let envelopes = net
        .alice
        .wait_for("the operator's store", Duration::from_secs(60), || async {
            let download = client
                .download(buyer.chain.account(), purchase, expiry, Some(0), None)
                .await?;
            Ok((download.envelopes.len() as u64 >= count).then_some(download.envelopes))
        })
        .await
        .unwrap_or_else(|e| panic!("the operator did not store {count} segments: {e}"));
    envelopes
        .iter()
        .map(|e| parse_header(e).unwrap().sequence)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a running fastdata-node and the VerneMQ release; run by scripts/test"]
async fn a_vernemq_cluster_serves_a_buyer_on_another_node_and_survives_losing_one() {
    let started = std::time::Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let mut net = Network::start_vernemq_cluster(&node_url(), dir.path(), 1, None, 2)
        .await
        .unwrap();
    let mut traders = Vec::new();
    for (name, verified) in [("s", true), ("b", false)] {
        let path = dir.path().join(format!("{name}.json"));
        let account = seeded_account(None).unwrap();
        traders.push(
            Trader::onboard(&net.alice, account, &path, verified)
                .await
                .unwrap(),
        );
    }
    let [mut seller, buyer]: [Trader; 2] = traders.try_into().ok().unwrap();
    let alice = net.alice.clone();
    let genesis = alice.genesis();

    let price = UNIT;
    let (offer, registered) = list(
        &mut seller,
        "plant9/line/vibration",
        PaymentMode::Stream { period: 300 },
        price,
        terms(1, false),
        "line-1",
    )
    .await;
    let stream = registered.stream;
    let purchase = bought_with_keys(&seller, &buyer, offer, 1, price).await;

    let op = &net.operators[0];
    let endpoint = op.endpoint.clone();
    let ingest_id = op.config().unwrap().broker.own_client_id("ingest");
    let BrokerProcess::VernemqCluster(cluster) = &op.broker.process else {
        panic!("not a VerneMQ cluster");
    };
    let (a, b) = (&cluster.nodes[0], &cluster.nodes[1]);
    let (node_a, node_b) = (a.nodename.clone(), b.nodename.clone());
    assert_eq!(endpoint.broker_url, format!("mqtt://127.0.0.1:{}", a.port));
    let on_b = OperatorEndpoint {
        broker_url: format!("mqtt://127.0.0.1:{}", b.port),
        ..endpoint.clone()
    };
    // The daemon's ingest took the first listed node.
    assert_eq!(online_on(b, &ingest_id).as_deref(), Some(node_a.as_str()));

    // The buyer subscribes on node B, with the login the daemon minted.
    let client = OperatorClient::new(endpoint.clone(), genesis);
    let creds = live_credentials(&alice, &client, &buyer.chain, purchase).await;
    let mut subscriber = Subscriber::start(&on_b, &creds).await;
    let buyer_id = creds.client_id.clone().unwrap();
    assert_eq!(online_on(a, &buyer_id).as_deref(), Some(node_b.as_str()));
    // Subscriptions reach the other nodes' routing tables asynchronously: wait until node A
    // routes to the buyer's (both nodes count the daemon's and the buyer's).
    let subscriptions = |node: &Vernemq| node.metric("vernemq_router_subscriptions").unwrap();
    alice
        .wait_for(
            "node A routes to the buyer",
            Duration::from_secs(30),
            || async {
                let (on_a, on_b) = (subscriptions(a), subscriptions(b));
                Ok((on_a == on_b && on_b >= 2.0).then_some(()))
            },
        )
        .await
        .unwrap();

    // The seller publishes to node A; the buyer receives every segment on node B.
    let mut publisher = epoch0_publisher(&net, &seller, stream).await;
    for i in 0..SEGMENTS {
        publisher.publish(&reading("line-1", i)).await.unwrap();
    }
    publisher.flush(Duration::from_secs(60)).await.unwrap();
    let mut received = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while (received.len() as u64) < SEGMENTS {
        match subscriber.next_segment(deadline).await {
            Ok(Some(sequence)) => received.push(sequence),
            other => panic!("through node A: {other:?} after {received:?}"),
        }
    }
    assert_eq!(received, (0..SEGMENTS).collect::<Vec<_>>());
    assert_eq!(
        stored(&net, &client, &buyer, purchase, SEGMENTS).await,
        (0..SEGMENTS).collect::<Vec<_>>()
    );

    // Node A dies and is removed from the cluster; the buyer stays connected to node B.
    let BrokerProcess::VernemqCluster(cluster) = &mut net.operators[0].broker.process else {
        unreachable!()
    };
    cluster.nodes[0].kill9().unwrap();
    let killed = std::time::Instant::now();
    let _ = publisher.close(Duration::from_secs(1)).await;
    cluster.remove_dead(1, 0).unwrap();
    let b = &cluster.nodes[1];
    assert_eq!(b.running_members().unwrap(), vec![node_b.clone()]);
    eprintln!("node A killed and removed in {:?}", killed.elapsed());
    let quiet = tokio::time::Instant::now() + Duration::from_secs(1);
    assert_eq!(subscriber.next_segment(quiet).await, Ok(None));
    assert_eq!(online_on(b, &buyer_id).as_deref(), Some(node_b.as_str()));

    // The seller logs in again through the daemon and publishes through node B.
    let keys = seller.keystore.epoch_keys(&stream, 0).unwrap();
    let expiry = alice.finalized_number().await.unwrap() + 1_000;
    let mut publisher = connect_publisher(
        seller.chain.account(),
        genesis,
        stream,
        0,
        keys,
        std::slice::from_ref(&on_b),
        expiry,
        SEGMENTS,
        Duration::from_secs(60),
    )
    .await
    .unwrap();
    for i in SEGMENTS..2 * SEGMENTS {
        publisher.publish(&reading("line-1", i)).await.unwrap();
    }
    publisher.flush(Duration::from_secs(60)).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while (received.len() as u64) < 2 * SEGMENTS {
        match subscriber.next_segment(deadline).await {
            Ok(Some(sequence)) => received.push(sequence),
            other => panic!("through node B: {other:?} after {received:?}"),
        }
    }
    assert_eq!(received, (0..2 * SEGMENTS).collect::<Vec<_>>());

    // The daemon's ingest moved to node B and stored every segment, before and after.
    assert_eq!(
        stored(&net, &client, &buyer, purchase, 2 * SEGMENTS).await,
        (0..2 * SEGMENTS).collect::<Vec<_>>()
    );
    let BrokerProcess::VernemqCluster(cluster) = &net.operators[0].broker.process else {
        unreachable!()
    };
    assert_eq!(
        online_on(&cluster.nodes[1], &ingest_id).as_deref(),
        Some(node_b.as_str())
    );
    assert!(net.operators[0].running(), "the daemon exited");
    eprintln!(
        "{} segments received on node B, {} stored; {:?} in all",
        received.len(),
        2 * SEGMENTS,
        started.elapsed()
    );

    publisher.close(Duration::from_secs(10)).await.unwrap();
    net.stop(true).await.unwrap();
}

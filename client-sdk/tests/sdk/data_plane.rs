//! The SDK's data plane against real operator daemons (`fastdata-operator`, in process) and
//! real Mosquitto brokers with the dynamic-security plugin, without a chain: the operators'
//! chain view is fed by hand. Seller → brokers → operators → buyer, byte for byte; a forged
//! segment on one replica is rejected and the buyer fails over; a buyer without a purchase
//! gets nothing; live following delivers new segments in order.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use fastdata_operator::{
    chain::{ChainEvent, InMemoryChainView, PurchaseInfo, StreamAssignment},
    config::Config,
    daemon::Daemon,
    receipts::NoChainSubmitter,
};
use fastdata_primitives::{
    envelope::EpochKeys,
    escrow::{AccessPeriod, PurchaseState, PurchaseTerms},
    AccountId, StreamId,
};
use fastdata_sdk::{
    operator::{OperatorClient, OperatorEndpoint},
    publish::StreamPublisher,
    receive::{Receiver, Verifier},
    Account,
};
use fastdata_test_support::mosquitto::Mosquitto;
use sp_core::H256;

const STREAM: StreamId = H256([0x5a; 32]);
/// The genesis hash the operators are configured with; everything is signed for it.
const GENESIS: H256 = H256([0x47; 32]);

fn free_port() -> u16 {
    fastdata_test_support::mosquitto::free_port().unwrap()
}

struct Operator {
    broker: Option<Mosquitto>,
    daemon: Daemon,
    endpoint: OperatorEndpoint,
}

async fn operator(
    dir: &Path,
    seed: u8,
    view: Arc<InMemoryChainView>,
    ahead: u64,
) -> Option<Operator> {
    let broker = Mosquitto::start(&dir.join("broker"), free_port(), "admin-secret").unwrap();
    let config = Config::from_toml(&format!(
        r#"
        [operator]
        suri = "0x{}"
        data_dir = "{}"
        [http]
        listen = "127.0.0.1:0"
        [broker]
        kind = "mosquitto"
        port = {}
        username = "admin"
        password = "admin-secret"
        [serving]
        receipt_window = {ahead}
        [chain]
        genesis = "{GENESIS:?}"
        "#,
        hex::encode([seed; 32]),
        dir.join("op").display(),
        broker.port
    ))
    .unwrap();
    let daemon = Daemon::start(config, view, Arc::new(NoChainSubmitter))
        .await
        .unwrap();
    let endpoint = OperatorEndpoint {
        account: Account::from_seed(&[seed; 32]).account_id(),
        broker_url: format!("mqtt://127.0.0.1:{}", broker.port),
        http_url: format!("http://{}", daemon.http_addr),
    };
    Some(Operator {
        broker: Some(broker),
        daemon,
        endpoint,
    })
}

fn seller() -> Account {
    Account::from_seed(&[1; 32])
}
fn buyer() -> Account {
    Account::from_seed(&[9; 32])
}
fn keys() -> EpochKeys {
    EpochKeys::new([0x31; 32], [0x32; 32])
}

fn view(operators: &[AccountId], last: u64) -> Arc<InMemoryChainView> {
    let view = InMemoryChainView::shared();
    view.apply(ChainEvent::Finalized { number: 10 });
    view.apply(ChainEvent::StreamAssigned(StreamAssignment {
        stream: STREAM,
        seller: seller().account_id(),
        offer: 1,
        epoch: 0,
        operators: operators.to_vec(),
        retention: 0,
        open: true,
        oldest_epoch: 0,
        quota_bytes: u64::MAX,
    }));
    view.apply(ChainEvent::PurchaseUpdated(active_purchase(1, last)));
    view
}

/// The buyer's active batch purchase `id` of segments `0..=last`.
fn active_purchase(id: u64, last: u64) -> PurchaseInfo {
    PurchaseInfo {
        id,
        buyer: buyer().account_id(),
        stream: STREAM,
        offer: 1,
        terms: PurchaseTerms::Batch { first: 0, last },
        access: AccessPeriod {
            start: 0,
            end: 1_000,
            first_epoch: None,
            epochs: vec![0],
        },
        state: PurchaseState::Active,
    }
}

/// The buyer's active stream purchase `id` (live periods, epoch 0 keys delivered).
fn stream_purchase(id: u64) -> PurchaseInfo {
    PurchaseInfo {
        terms: PurchaseTerms::Stream {
            period: 100,
            periods: 10,
        },
        access: AccessPeriod {
            start: 0,
            end: 1_000,
            first_epoch: Some(0),
            epochs: vec![0],
        },
        ..active_purchase(id, 0)
    }
}

fn tmp() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    (dir, path)
}

/// A file of `len` pseudo-random bytes, published in `chunk`-byte segments.
fn input(len: usize) -> Vec<u8> {
    let mut x = 0x1234_5678u32;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

async fn wait_stored(ops: &[&Operator], count: usize) {
    let start = Instant::now();
    loop {
        let all = ops.iter().all(|op| {
            op.daemon
                .node
                .store
                .segments(&STREAM, 0, u64::MAX, usize::MAX)
                .map(|s| s.len() >= count)
                .unwrap_or(false)
        });
        if all {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "operators did not store {count} segments"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seller_to_buyer_byte_for_byte_with_failover_and_tamper_detection() {
    let (_guard, dir) = tmp();
    let a_id = Account::from_seed(&[2; 32]).account_id();
    let b_id = Account::from_seed(&[3; 32]).account_id();
    let data = input(50_000);
    let chunk = 1_000;
    let segments = data.len().div_ceil(chunk) as u64;
    let view = view(&[a_id, b_id], segments - 1);
    let Some(a) = operator(&dir.join("a"), 2, view.clone(), 8).await else {
        return;
    };
    let Some(b) = operator(&dir.join("b"), 3, view.clone(), 8).await else {
        return;
    };

    // A forger with the seller's token but wrong keys gets sequence 0 onto replica A first.
    let mut forger = StreamPublisher::connect(
        &seller(),
        GENESIS,
        STREAM,
        0,
        EpochKeys::new([0x66; 32], [0x67; 32]),
        std::slice::from_ref(&a.endpoint),
        1_000,
        0,
    )
    .await
    .unwrap();
    forger.publish(b"forged").await.unwrap();
    forger.close(Duration::from_secs(10)).await.unwrap();
    wait_stored(&[&a], 1).await;

    // The seller publishes the file to both replicas.
    let mut publisher = StreamPublisher::connect(
        &seller(),
        GENESIS,
        STREAM,
        0,
        keys(),
        &[a.endpoint.clone(), b.endpoint.clone()],
        1_000,
        0,
    )
    .await
    .unwrap();
    for piece in data.chunks(chunk) {
        publisher.publish(piece).await.unwrap();
    }
    publisher.flush(Duration::from_secs(20)).await.unwrap();
    assert_eq!(publisher.acked_up_to(), Some(segments - 1));
    publisher.close(Duration::from_secs(5)).await.unwrap();
    wait_stored(&[&a, &b], segments as usize).await;

    // The buyer tries an unreachable operator, then A (forged segment 0), then B.
    let dead = OperatorEndpoint {
        account: AccountId::new([4; 32]),
        broker_url: "mqtt://127.0.0.1:1".into(),
        http_url: format!("http://127.0.0.1:{}", free_port()),
    };
    let mut receiver = Receiver::new(
        buyer(),
        GENESIS,
        1,
        Verifier::new(STREAM, BTreeMap::from([(0, keys())])),
        vec![dead, a.endpoint.clone(), b.endpoint.clone()],
        1_000,
        Some(0),
    );
    let mut out = Vec::new();
    let summary = receiver
        .download(Some(segments - 1), |segment| {
            out.extend_from_slice(&segment.payload);
            Ok(())
        })
        .await
        .unwrap();
    assert_eq!(out, data, "plaintext differs from the input");
    assert_eq!(summary.segments, segments);
    assert_eq!(summary.up_to, Some(segments - 1));
    assert!(
        summary.rejected >= 1,
        "the forged segment was not rejected: {summary:?}"
    );
    assert!(summary.failovers >= 2, "{summary:?}");

    // B got a final receipt for everything it served, and none for more.
    let (receipt, _) = b
        .daemon
        .node
        .receipts
        .latest(1)
        .unwrap()
        .expect("no receipt reached operator B");
    assert_eq!(receipt.up_to_sequence, segments - 1);
    assert_eq!(receipt.operator, b.endpoint.account);

    a.daemon.shutdown().await;
    b.daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buyer_without_purchase_gets_nothing() {
    let (_guard, dir) = tmp();
    let a_id = Account::from_seed(&[2; 32]).account_id();
    let view = view(&[a_id], 9);
    let Some(a) = operator(&dir.join("a"), 2, view.clone(), 8).await else {
        return;
    };
    let mut publisher = StreamPublisher::connect(
        &seller(),
        GENESIS,
        STREAM,
        0,
        keys(),
        std::slice::from_ref(&a.endpoint),
        1_000,
        0,
    )
    .await
    .unwrap();
    for i in 0..10u8 {
        publisher.publish(&[i; 16]).await.unwrap();
    }
    publisher.close(Duration::from_secs(10)).await.unwrap();
    wait_stored(&[&a], 10).await;

    // Purchase 2 does not exist; the real buyer's purchase 1 signed by someone else fails too.
    let stranger = Account::from_seed(&[7; 32]);
    for (who, purchase) in [(buyer(), 2), (stranger, 1)] {
        let mut receiver = Receiver::new(
            who,
            GENESIS,
            purchase,
            Verifier::new(STREAM, BTreeMap::from([(0, keys())])),
            vec![a.endpoint.clone()],
            1_000,
            Some(0),
        );
        let mut got = 0;
        let err = receiver
            .download(Some(9), |_| {
                got += 1;
                Ok(())
            })
            .await
            .unwrap_err();
        assert_eq!(got, 0);
        let text = err.to_string();
        assert!(
            text.contains("unknown_purchase") || text.contains("bad_signature"),
            "{text}"
        );
    }

    // The real buyer's purchase 1, signed for another chain: the operator refuses the
    // request, and the receiver does not even ask an operator of another chain.
    let other_chain = H256([0x48; 32]);
    let foreign = OperatorClient::new(a.endpoint.clone(), other_chain);
    let refused = foreign
        .download(&buyer(), 1, 1_000, Some(0), Some(9))
        .await
        .unwrap_err()
        .to_string();
    assert!(refused.contains("bad_signature"), "{refused}");
    let mut receiver = Receiver::new(
        buyer(),
        other_chain,
        1,
        Verifier::new(STREAM, BTreeMap::from([(0, keys())])),
        vec![a.endpoint.clone()],
        1_000,
        Some(0),
    );
    let err = receiver.download(Some(9), |_| Ok(())).await.unwrap_err();
    assert!(err.to_string().contains("serves another chain"), "{err}");
    let terms = OperatorClient::new(a.endpoint.clone(), GENESIS)
        .terms()
        .await
        .unwrap()
        .expect("the operator publishes its terms");
    assert_eq!(terms.genesis, GENESIS);
    assert_eq!(terms.receipt_window, 8);

    // Purchase 2 is made, but the operator's view learns of it only 2 s later: a patient
    // receiver asks again meanwhile instead of giving up, then gets every segment.
    let mut patient = Receiver::new(
        buyer(),
        GENESIS,
        2,
        Verifier::new(STREAM, BTreeMap::from([(0, keys())])),
        vec![a.endpoint.clone()],
        1_000,
        Some(0),
    )
    .with_patience(Duration::from_secs(30));
    let later = view.clone();
    let announce = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(2)).await;
        later.apply(ChainEvent::PurchaseUpdated(active_purchase(2, 9)));
    });
    let mut got = Vec::new();
    let summary = patient
        .download(Some(9), |segment| {
            got.push(segment.payload[0]);
            Ok(())
        })
        .await
        .unwrap();
    announce.await.unwrap();
    assert_eq!(got, (0..10).collect::<Vec<u8>>());
    assert_eq!(summary.failovers, 0, "{summary:?}");
    a.daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_follow_delivers_new_segments_in_order() {
    let (_guard, dir) = tmp();
    let a_id = Account::from_seed(&[2; 32]).account_id();
    let view = view(&[a_id], 1_000_000);
    view.apply(ChainEvent::PurchaseUpdated(stream_purchase(1)));
    // W = 8: the follower receipts every 2 segments or it is cut off.
    let Some(a) = operator(&dir.join("a"), 2, view, 8).await else {
        return;
    };
    let mut publisher = StreamPublisher::connect(
        &seller(),
        GENESIS,
        STREAM,
        0,
        keys(),
        std::slice::from_ref(&a.endpoint),
        1_000,
        0,
    )
    .await
    .unwrap();
    for i in 0..5u64 {
        publisher
            .publish(format!("history {i}").as_bytes())
            .await
            .unwrap();
    }
    publisher.flush(Duration::from_secs(10)).await.unwrap();
    wait_stored(&[&a], 5).await;

    let received = Arc::new(Mutex::new(Vec::<(u64, Vec<u8>)>::new()));
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let follower = {
        let received = received.clone();
        let endpoint = a.endpoint.clone();
        tokio::spawn(async move {
            let mut receiver = Receiver::new(
                buyer(),
                GENESIS,
                1,
                Verifier::new(STREAM, BTreeMap::from([(0, keys())])),
                vec![endpoint],
                1_000,
                None,
            );
            receiver
                .follow(
                    |segment| {
                        received
                            .lock()
                            .unwrap()
                            .push((segment.header.sequence, segment.payload));
                        Ok(())
                    },
                    Duration::from_millis(200),
                    async {
                        let _ = stop_rx.await;
                    },
                )
                .await
        })
    };
    // Let the follower catch up and subscribe, then publish live.
    let start = Instant::now();
    while received.lock().unwrap().len() < 5 {
        assert!(start.elapsed() < Duration::from_secs(20), "no history");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    for i in 5..25u64 {
        publisher
            .publish(format!("live {i}").as_bytes())
            .await
            .unwrap();
    }
    publisher.flush(Duration::from_secs(10)).await.unwrap();
    let start = Instant::now();
    while received.lock().unwrap().len() < 25 {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "live segments missing: {:?}",
            received
                .lock()
                .unwrap()
                .iter()
                .map(|r| r.0)
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = stop_tx.send(());
    let summary = follower.await.unwrap().unwrap();
    let got = received.lock().unwrap().clone();
    let seqs: Vec<u64> = got.iter().map(|r| r.0).collect();
    assert_eq!(seqs, (0..25).collect::<Vec<_>>());
    assert_eq!(got[24].1, b"live 24");
    assert_eq!(summary.segments, 25);
    // The final receipt acknowledges everything received.
    let (receipt, _) = a.daemon.node.receipts.latest(1).unwrap().unwrap();
    assert_eq!(receipt.up_to_sequence, 24);
    a.daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_broker_does_not_stall_the_other_replicas() {
    let (_guard, dir) = tmp();
    let a_id = Account::from_seed(&[2; 32]).account_id();
    let b_id = Account::from_seed(&[3; 32]).account_id();
    let view = view(&[a_id, b_id], 19);
    let Some(a) = operator(&dir.join("a"), 2, view.clone(), 64).await else {
        return;
    };
    let Some(mut b) = operator(&dir.join("b"), 3, view.clone(), 64).await else {
        return;
    };
    let mut publisher = StreamPublisher::connect(
        &seller(),
        GENESIS,
        STREAM,
        0,
        keys(),
        &[a.endpoint.clone(), b.endpoint.clone()],
        1_000,
        0,
    )
    .await
    .unwrap();
    drop(b.broker.take()); // B's broker dies.
    tokio::time::sleep(Duration::from_millis(300)).await;
    for i in 0..20u8 {
        publisher.publish(&[i; 100]).await.unwrap();
    }
    let err = publisher.flush(Duration::from_secs(3)).await.unwrap_err();
    assert!(err.to_string().contains(&b.endpoint.http_url), "{err}");
    let status = publisher.status();
    assert_eq!(status[0].acked, 20, "{status:?}");
    assert_eq!(status[0].pending, 0);
    assert!(
        status[1].pending + status[1].skipped as usize > 0,
        "{status:?}"
    );
    wait_stored(&[&a], 20).await;

    let mut receiver = Receiver::new(
        buyer(),
        GENESIS,
        1,
        Verifier::new(STREAM, BTreeMap::from([(0, keys())])),
        vec![b.endpoint.clone(), a.endpoint.clone()],
        1_000,
        Some(0),
    );
    let mut got = Vec::new();
    receiver
        .download(Some(19), |s| {
            got.push(s.payload);
            Ok(())
        })
        .await
        .unwrap();
    assert_eq!(got.len(), 20);
    assert_eq!(got[19], vec![19u8; 100]);
    a.daemon.shutdown().await;
    b.daemon.shutdown().await;
}

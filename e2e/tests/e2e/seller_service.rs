//! The seller service live (`fastdata seller run`, the real binary fed records on standard
//! input) with real operators: it delivers a buyer's keys, publishes every record once in
//! order, rotates on its schedule; a buyer following live gets every sequence exactly once
//! across a killed broker, a `kill -9` of an operator daemon, a rotation and a `kill -9` of
//! the service itself; a buyer who buys after the rotation gets only the newer epochs' keys.

use std::{
    io::Write,
    path::{Path, PathBuf},
    process::{Child, ChildStdin, Command, Stdio},
    sync::{Arc, Mutex},
    time::Duration,
};

use fastdata_e2e::{binary, node_url, reading, seed, Network, Trader, UNIT};
use fastdata_primitives::{EpochIndex, PaymentMode, Sequence, StreamId};
use fastdata_sdk::Account;

use crate::marketplace::{list, terms};

/// One `fastdata seller run` process with its standard input.
struct Service {
    child: Child,
    stdin: ChildStdin,
    log: PathBuf,
}

impl Service {
    fn start(dir: &Path, seller_seed: [u8; 32], keystore: &Path, config: &Path) -> Self {
        let log = dir.join("seller-service.log");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let mut child = Command::new(binary("fastdata").unwrap())
            .arg("--url")
            .arg(node_url())
            .arg("--suri")
            .arg(format!("0x{}", hex::encode(seller_seed)))
            .arg("--keystore")
            .arg(keystore)
            .args(["seller", "run", "--config"])
            .arg(config)
            .env("FASTDATA_LOG", "info")
            .env("NO_COLOR", "1")
            .env_remove("FASTDATA_SURI")
            .env_remove("FASTDATA_ACCOUNT")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        Self { child, stdin, log }
    }

    /// Writes record `i` (a line) and waits `pause`.
    async fn write(&mut self, i: u64, pause: Duration) {
        self.stdin.write_all(&line(i)).unwrap();
        self.stdin.flush().unwrap();
        tokio::time::sleep(pause).await;
    }

    fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The log without ANSI colours.
    fn log_text(&self) -> String {
        let raw = std::fs::read_to_string(&self.log).unwrap_or_default();
        let mut out = String::with_capacity(raw.len());
        let mut chars = raw.chars();
        while let Some(c) = chars.next() {
            if c == '\u{1b}' {
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            } else {
                out.push(c);
            }
        }
        out
    }

    /// Waits until a log line contains every one of `parts`.
    async fn wait_log(&self, parts: &[&str], timeout: Duration) {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if self
                .log_text()
                .lines()
                .any(|l| parts.iter().all(|p| l.contains(p)))
            {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no log line with {parts:?} within {timeout:?}:\n{}",
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Record `i` as written to the service: one line.
fn line(i: u64) -> Vec<u8> {
    let mut l = reading("service", i);
    l.push(b'\n');
    l
}

/// What a buyer received: sequence, epoch, plaintext.
type Received = Arc<Mutex<Vec<(Sequence, EpochIndex, Vec<u8>)>>>;

/// Waits until `got` holds `records` non-empty segments.
async fn wait_records(got: &Received, records: usize, timeout: Duration) {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let (n, seqs) = {
            let got = got.lock().unwrap();
            let n = got.iter().filter(|s| !s.2.is_empty()).count();
            (n, got.iter().map(|s| s.0).collect::<Vec<_>>())
        };
        if n >= records {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{n} of {records} records after {timeout:?}; sequences {seqs:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn epoch_of(chain: &fastdata_sdk::FastData, stream: &StreamId) -> EpochIndex {
    chain.stream(stream).await.unwrap().unwrap().epoch
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a running fastdata-node; run by scripts/test"]
async fn a_live_buyer_gets_every_record_once_across_failures_rotation_and_a_service_crash() {
    let dir = tempfile::tempdir().unwrap();
    let mut net = Network::start(&node_url(), dir.path(), 2, None)
        .await
        .unwrap();
    let seller_seed = seed(None).unwrap();
    let seller_keystore = dir.path().join("s.json");
    let mut seller = Trader::onboard(
        &net.alice,
        Account::from_seed(&seller_seed),
        &seller_keystore,
        true,
    )
    .await
    .unwrap();
    let mut buyers = Vec::new();
    for name in ["b1", "b2"] {
        let path = dir.path().join(format!("{name}.json"));
        let account = Account::from_seed(&seed(None).unwrap());
        buyers.push(
            Trader::onboard(&net.alice, account, &path, false)
                .await
                .unwrap(),
        );
    }
    let (early, late) = (&buyers[0], &buyers[1]);

    // A live stream on both operators; the service rotates its keys 40 blocks after each
    // epoch opened and publishes every record as a segment of its own (max_bytes = 1).
    let price = UNIT;
    let (offer, registered) = list(
        &mut seller,
        "plant3/line/temperature",
        PaymentMode::Stream { period: 20 },
        price,
        terms(2, false),
        "service-1",
    )
    .await;
    let stream = registered.stream;
    assert_eq!(registered.operators.len(), 2);
    let config = dir.path().join("seller.toml");
    std::fs::write(
        &config,
        format!(
            "[[stream]]\nid = \"0x{}\"\nstdin = true\nmax_bytes = 1\nmax_delay_ms = 20\nrotate_every_blocks = 40\n",
            hex::encode(stream.as_bytes())
        ),
    )
    .unwrap();
    // Both daemons know the stream (they learn it from finalized blocks) before it starts.
    let ready = fastdata_e2e::connect_publisher(
        seller.chain.account(),
        seller.chain.genesis(),
        stream,
        0,
        seller.keystore.epoch_keys(&stream, 0).unwrap(),
        &net.endpoints(),
        net.alice.finalized_number().await.unwrap() + 100,
        0,
        Duration::from_secs(60),
    )
    .await
    .unwrap();
    ready.close(Duration::from_secs(5)).await.unwrap();
    let mut service = Service::start(dir.path(), seller_seed, &seller_keystore, &config);

    // The early buyer buys 10 periods; the service delivers its keys (epoch 0).
    let purchase = early.chain.buy(offer, 10, 10 * price).await.unwrap();
    let view = early
        .chain
        .wait_for_keys(purchase, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(view.access.epochs, vec![0]);
    service
        .wait_log(
            &["delivered", &format!("purchase={purchase}"), "epoch=0"],
            Duration::from_secs(10),
        )
        .await;

    // It follows live from sequence 0 on both operators, learning new epochs' keys.
    let got: Received = Arc::default();
    let endpoints = early.chain.stream_endpoints(&stream).await.unwrap();
    // The receiver starts on the stream's first operator.
    let first = net
        .operators
        .iter()
        .position(|o| o.account.account_id() == endpoints[0].account)
        .unwrap();
    let second = 1 - first;
    let mut receiver = early
        .chain
        .receiver(&early.keystore, &view, endpoints.clone(), Some(0), 10_000)
        .await
        .unwrap();
    let keys = receiver.key_updates();
    let forward = {
        let chain = early.chain.clone();
        let keystore = fastdata_sdk::keystore::Keystore::open(early.keystore.path()).unwrap();
        tokio::spawn(async move {
            chain
                .forward_epoch_keys(&keystore, purchase, keys, Duration::from_millis(500))
                .await
        })
    };
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let follower = {
        let got = got.clone();
        tokio::spawn(async move {
            let summary = receiver
                .follow(
                    |s| {
                        got.lock()
                            .unwrap()
                            .push((s.header.sequence, s.header.epoch, s.payload));
                        Ok(())
                    },
                    Duration::from_millis(500),
                    async move {
                        let _ = stop_rx.await;
                    },
                )
                .await;
            (summary, receiver)
        })
    };

    let pause = Duration::from_millis(100);
    let mut written = 0u64;
    for _ in 0..3 {
        service.write(written, pause).await;
        written += 1;
    }
    wait_records(&got, written as usize, Duration::from_secs(60)).await;

    // (a) The broker the buyer follows on dies mid-stream and comes back.
    net.operators[first].kill_broker().unwrap();
    for _ in 0..4 {
        service.write(written, pause).await;
        written += 1;
    }
    net.operators[first].restart_broker().unwrap();
    for _ in 0..3 {
        service.write(written, pause).await;
        written += 1;
    }
    wait_records(&got, written as usize, Duration::from_secs(60)).await;

    // (b) An operator daemon is killed -9 mid-stream, then restarted on its data.
    for _ in 0..2 {
        service.write(written, pause).await;
        written += 1;
    }
    net.operators[second].kill9();
    for _ in 0..4 {
        service.write(written, pause).await;
        written += 1;
    }
    net.operators[second].restart().unwrap();
    for _ in 0..2 {
        service.write(written, pause).await;
        written += 1;
    }
    wait_records(&got, written as usize, Duration::from_secs(60)).await;

    // (c) The schedule rotates to epoch 1 while records keep coming; the service's new
    // publisher seals them under epoch 1 and delivers the early buyer epoch 1's keys.
    let before_rotation = written;
    while epoch_of(&seller.chain, &stream).await == 0 {
        service.write(written, Duration::from_millis(500)).await;
        written += 1;
        assert!(written < 200, "no rotation");
    }
    service
        .wait_log(&["publisher connected", "epoch=1"], Duration::from_secs(30))
        .await;
    service
        .wait_log(
            &["delivered", &format!("purchase={purchase}"), "epoch=1"],
            Duration::from_secs(30),
        )
        .await;
    let rotated_at = written;
    for _ in 0..3 {
        service.write(written, pause).await;
        written += 1;
    }
    wait_records(&got, written as usize, Duration::from_secs(60)).await;
    assert!(rotated_at > before_rotation);

    // (d) The service is killed -9 right after publishing (well within its 3-second
    // marker writes) and restarted: what it writes next reaches the buyer, at new sequences.
    for _ in 0..4 {
        service.write(written, Duration::from_millis(50)).await;
        written += 1;
    }
    wait_records(&got, written as usize, Duration::from_secs(60)).await;
    service.kill9();
    let before_crash = written;
    let last_before_crash = got.lock().unwrap().last().unwrap().0;
    drop(service);
    let mut service = Service::start(dir.path(), seller_seed, &seller_keystore, &config);
    for _ in 0..4 {
        service.write(written, pause).await;
        written += 1;
    }
    wait_records(&got, written as usize, Duration::from_secs(90)).await;

    // The late buyer buys after the rotation: it gets the current epoch's keys and opens the
    // records published from then on.
    let late_purchase = late.chain.buy(offer, 1, price).await.unwrap();
    let late_view = late
        .chain
        .wait_for_keys(late_purchase, Duration::from_secs(60))
        .await
        .unwrap();
    assert!(
        !late_view.access.epochs.is_empty() && late_view.access.epochs.iter().all(|e| *e >= 1),
        "{late_view:?}"
    );
    let late_from = written;
    for _ in 0..3 {
        service.write(written, pause).await;
        written += 1;
    }
    wait_records(&got, written as usize, Duration::from_secs(60)).await;
    let _ = stop_tx.send(());
    let (summary, _receiver) = follower.await.unwrap();
    let summary = summary.unwrap();
    forward.abort();

    // Every sequence exactly once, in order; the records are exactly the lines written, in
    // order; the only empty segments fill what the crashed service had reserved.
    let got = got.lock().unwrap().clone();
    let seqs: Vec<Sequence> = got.iter().map(|s| s.0).collect();
    assert_eq!(seqs, (0..got.len() as u64).collect::<Vec<_>>());
    let records: Vec<Vec<u8>> = got
        .iter()
        .filter(|s| !s.2.is_empty())
        .map(|s| s.2.clone())
        .collect();
    assert_eq!(records, (0..written).map(line).collect::<Vec<_>>());
    let first_after_crash = got
        .iter()
        .find(|s| s.2 == line(before_crash))
        .map(|s| s.0)
        .unwrap();
    for (seq, _, payload) in &got {
        if payload.is_empty() {
            assert!(
                *seq > last_before_crash && *seq < first_after_crash,
                "empty segment {seq} outside the crash gap"
            );
        }
    }
    assert!(first_after_crash > last_before_crash);
    // Epoch 0, then epoch 1 (or later) from the rotation on, never back.
    let epochs: Vec<EpochIndex> = got.iter().map(|s| s.1).collect();
    assert!(epochs.windows(2).all(|w| w[0] <= w[1]), "{epochs:?}");
    let epoch_of_record = |i: u64| got.iter().find(|s| s.2 == line(i)).unwrap().1;
    assert_eq!(epoch_of_record(before_rotation - 1), 0);
    assert!(epoch_of_record(rotated_at) >= 1);
    // A receiver may ride out the broker restart on the same operator (no failover): what
    // counts is every sequence once, checked above.
    assert_eq!(summary.rejected, 0, "{summary:?}");

    // The late buyer opens the keys of the epochs after the rotation (checked against the
    // on-chain commitments: the keys the records after it are sealed under), none before.
    let late_view = late.chain.purchase(late_purchase).await.unwrap().unwrap();
    let late_keys = late
        .chain
        .purchase_keys(&late.keystore, &late_view)
        .await
        .unwrap();
    let late_epoch = got.iter().find(|s| s.2 == line(late_from)).unwrap().1;
    assert!(late_epoch >= 1);
    let seller_keys = fastdata_sdk::keystore::Keystore::open(&seller_keystore).unwrap();
    assert_eq!(
        late_keys.get(&late_epoch).map(|k| k.commitment()),
        seller_keys
            .epoch_keys(&stream, late_epoch)
            .map(|k| k.commitment())
    );
    assert!(late
        .chain
        .sealed_key(late_purchase, 0)
        .await
        .unwrap()
        .is_none());

    // The late buyer downloads what it bought: from the first segment of its epochs at or
    // after the head attested when it bought (which lags the publisher, and may fall on
    // epoch 0 segments it cannot open) to the last record; every one opens.
    let last_seq = got.last().unwrap().0;
    let mut late_receiver = late
        .chain
        .receiver(
            &late.keystore,
            &late_view,
            late.chain.stream_endpoints(&stream).await.unwrap(),
            None,
            10_000,
        )
        .await
        .unwrap();
    let mut late_got = Vec::new();
    let late_summary = late_receiver
        .download(Some(last_seq), |s| {
            late_got.push((s.header.sequence, s.header.epoch, s.payload));
            Ok(())
        })
        .await
        .unwrap();
    assert_eq!(late_summary.rejected, 0, "{late_summary:?}");
    let first_late = late_got.first().unwrap().0;
    assert_eq!(
        late_got,
        got.iter()
            .filter(|s| s.0 >= first_late)
            .cloned()
            .collect::<Vec<_>>()
    );
    assert!(late_got.iter().all(|s| s.1 >= 1), "{late_got:?}");
    assert!(late_got.iter().any(|s| s.2 == line(late_from)));
    assert_eq!(late_got.last().unwrap().0, last_seq);

    drop(service);
    drop(buyers);
    net.stop(true).await.unwrap();
}

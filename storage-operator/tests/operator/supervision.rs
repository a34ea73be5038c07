//! Supervision and the operational metrics, with each dependency broken for real: the broker
//! killed for good (the daemon process exits non-zero naming the task), the broker restarted on
//! the same port (ingest restarts and data flows again), the disk refusing writes (ingest
//! reports the store error and the process exits non-zero), the chain node unreachable (the
//! follower restarts, then fails the daemon), and a live node behind a proxy that goes away
//! (ignored without a node: follower lag, loss and recovery). `/health` is read while it
//! happens; `/metrics` is scraped and parsed.

use std::{
    io::{BufRead, BufReader, Read},
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use crate::common::*;
use codec::Encode;
use fastdata_operator::{
    auth::stream_topic,
    chain::ChainEvent,
    config::FIXTURE_GENESIS,
    daemon::{tasks, Daemon},
    follower::{self, Follower},
    receipts::{Claim, ClaimOutcome, ClaimSubmitter, Receipt},
    store::Store,
    supervisor::Restart,
};
use fastdata_primitives::envelope::{seal, SegmentHeader};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use sp_core::{crypto::Ss58Codec, H256};

/// A `fastdata-operator` process whose output is collected through pipes (not a file: the
/// disk test limits the size of files the process may write). Killed on drop.
struct Operator {
    child: Child,
    output: Arc<Mutex<String>>,
    base: String,
}

fn drain(pipe: impl Read + Send + 'static, output: Arc<Mutex<String>>) {
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            let mut out = output.lock().unwrap();
            out.push_str(&line);
            out.push('\n');
        }
    });
}

impl Operator {
    /// Starts the daemon with `config`; `ignore_xfsz`: through `sh` with SIGXFSZ ignored, so
    /// a write past the file size limit fails with EFBIG instead of killing the process.
    fn spawn(config: &Path, http: u16, ignore_xfsz: bool) -> Self {
        let mut command = if ignore_xfsz {
            let mut command = Command::new("sh");
            command
                .arg("-c")
                .arg("trap '' XFSZ; exec \"$0\" \"$@\"")
                .arg(daemon_binary());
            command
        } else {
            Command::new(daemon_binary())
        };
        let mut child = command
            .arg("--config")
            .arg(config)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the daemon binary starts");
        let output = Arc::new(Mutex::new(String::new()));
        drain(child.stdout.take().unwrap(), output.clone());
        drain(child.stderr.take().unwrap(), output.clone());
        Self {
            child,
            output,
            base: format!("http://127.0.0.1:{http}"),
        }
    }

    fn output(&self) -> String {
        self.output.lock().unwrap().clone()
    }

    fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().unwrap()
    }

    async fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(status) = self.exited() {
                // Let the reader threads take the last lines.
                tokio::time::sleep(Duration::from_millis(200)).await;
                return status;
            }
            assert!(
                start.elapsed() < timeout,
                "the daemon did not exit within {timeout:?}; output:\n{}",
                self.output()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Polls `/health` until `pick` accepts it (panics with the output after `timeout`).
    async fn health_until(
        &mut self,
        timeout: Duration,
        pick: impl Fn(u16, &serde_json::Value) -> bool,
    ) -> (u16, serde_json::Value) {
        let start = Instant::now();
        loop {
            let (status, body) = health(&self.base).await;
            if pick(status, &body) {
                return (status, body);
            }
            if let Some(status) = self.exited() {
                panic!(
                    "the daemon exited ({status}) first; output:\n{}",
                    self.output()
                );
            }
            assert!(
                start.elapsed() < timeout,
                "/health never matched; last {status} {body}; output:\n{}",
                self.output()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    async fn all_running(&mut self) -> serde_json::Value {
        self.health_until(Duration::from_secs(30), |status, _| status == 200)
            .await
            .1
    }

    async fn metrics(&self) -> String {
        get_text(&format!("{}/metrics", self.base)).await.1
    }

    async fn stored(&self) -> f64 {
        metric(
            &self.metrics().await,
            r#"fastdata_operator_segments_in_total{result="stored"}"#,
        )
        .unwrap_or(0.0)
    }

    async fn wait_stored(&self, n: f64) {
        let start = Instant::now();
        while self.stored().await != n {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "stored {} of {n}; output:\n{}",
                self.stored().await,
                self.output()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The parties: seller 1, operator 2 (this daemon), buyer 3.
fn fixture(dir: &Path) -> PathBuf {
    let path = dir.join("chain.toml");
    std::fs::write(
        &path,
        format!(
            "finalized = 10\n\
             [[stream]]\nid = \"0x{stream}\"\nseller = \"{seller}\"\noperators = [\"{me}\"]\n\
             [[purchase]]\nid = 1\nbuyer = \"{buyer}\"\nstream = \"0x{stream}\"\nend = 1000\nepochs = [0]\n",
            stream = hex::encode(STREAM.as_bytes()),
            seller = account(&pair(1)).to_ss58check(),
            buyer = account(&pair(3)).to_ss58check(),
            me = account(&pair(2)).to_ss58check(),
        ),
    )
    .unwrap();
    path
}

/// A config file for the binary: `chain` is the `[chain]` body, `supervision` the
/// `[supervision]` one.
fn config_file(dir: &Path, http: u16, broker_port: u16, chain: &str, supervision: &str) -> PathBuf {
    let path = dir.join("operator.toml");
    std::fs::write(
        &path,
        format!(
            "[operator]\nsuri = \"{suri}\"\ndata_dir = \"{data}\"\n\
             [http]\nlisten = \"127.0.0.1:{http}\"\n\
             [broker]\nkind = \"mosquitto\"\nport = {broker_port}\nusername = \"{ADMIN_USER}\"\npassword = \"{ADMIN_PASSWORD}\"\n\
             [chain]\n{chain}\n\
             [serving]\nahead_segments = 1000\n\
             [supervision]\n{supervision}\n",
            suri = seed_suri(2),
            data = dir.join("data").display(),
        ),
    )
    .unwrap();
    path
}

/// A seller's MQTT publisher with credentials from the daemon's `/v1/broker/session`; its
/// event loop reconnects after errors.
pub(crate) struct Publisher {
    client: AsyncClient,
    connected: Arc<AtomicBool>,
}

impl Publisher {
    /// Connects with the client id the credentials are bound to.
    pub(crate) async fn start(base: &str, broker_port: u16, nonce: u64) -> Self {
        let me = account(&pair(2));
        let (status, creds) = post_json(
            &format!("{base}/v1/broker/session"),
            serde_json::json!({ "upload_token": upload_token(&pair(1), &me, nonce) }),
        )
        .await;
        assert_eq!(status, 200, "{creds}");
        let mut options = MqttOptions::new(
            creds["client_id"].as_str().unwrap(),
            "127.0.0.1",
            broker_port,
        );
        options.set_credentials(
            creds["username"].as_str().unwrap(),
            creds["password"].as_str().unwrap(),
        );
        let (client, mut eventloop) = AsyncClient::new(options, 256);
        let connected = Arc::new(AtomicBool::new(false));
        let flag = connected.clone();
        tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => flag.store(true, Ordering::SeqCst),
                    Ok(_) => {}
                    Err(_) => {
                        flag.store(false, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        });
        let publisher = Self { client, connected };
        assert!(
            wait_until(Duration::from_secs(10), || publisher
                .connected
                .load(Ordering::SeqCst))
            .await,
            "the seller cannot connect to the broker"
        );
        publisher
    }

    pub(crate) async fn publish(&self, payload: Vec<u8>) {
        self.client
            .publish(stream_topic(&STREAM), QoS::AtLeastOnce, false, payload)
            .await
            .unwrap();
    }
}

fn restarting<'a>(health: &'a serde_json::Value, name: &str) -> Option<&'a serde_json::Value> {
    task(health, name).filter(|t| t["state"] == "restarting")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_killed_for_good_fails_the_daemon_naming_the_task() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = Mosquitto::start(&dir.path().join("broker").tap_dir());
    let http = free_port();
    let fixture = fixture(dir.path());
    let config = config_file(
        dir.path(),
        http,
        broker.port,
        &format!("fixture = \"{}\"", fixture.display()),
        "max_restarts = 3\ninitial_backoff_ms = 300\nmax_backoff_ms = 600",
    );
    let mut daemon = Operator::spawn(&config, http, false);
    let up = daemon.all_running().await;
    for name in [
        tasks::HTTP,
        tasks::BROKER_GATE,
        tasks::GATE_SYNC,
        tasks::INGEST,
        tasks::REPLICATION,
        tasks::CLAIMS,
        tasks::RETENTION,
    ] {
        assert_eq!(task(&up, name).unwrap()["state"], "running", "{up}");
    }
    assert_eq!(up["status"], "ok");

    broker.kill();
    // The broker's tasks restart with back-off: /health says so, with the attempt and error.
    let (status, body) = daemon
        .health_until(Duration::from_secs(10), |_, body| {
            restarting(body, tasks::INGEST).is_some()
        })
        .await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["status"], "unavailable");
    let ingest = restarting(&body, tasks::INGEST).unwrap();
    assert!(ingest["attempt"].as_u64().unwrap() >= 1, "{ingest}");
    assert!(
        ingest["last_error"]
            .as_str()
            .unwrap()
            .contains("broker connection"),
        "{ingest}"
    );
    assert_eq!(task(&body, tasks::HTTP).unwrap()["state"], "running");
    let metrics = daemon.metrics().await;
    assert!(
        metric(
            &metrics,
            r#"fastdata_operator_task_restarts_total{task="ingest"}"#
        )
        .unwrap()
            >= 1.0,
        "{metrics}"
    );
    assert_eq!(
        metric(&metrics, r#"fastdata_operator_task_up{task="ingest"}"#),
        Some(0.0),
        "{metrics}"
    );

    // Past the limit the process exits non-zero, naming the task and its last error.
    let status = daemon.wait_exit(Duration::from_secs(30)).await;
    let output = daemon.output();
    assert_eq!(status.code(), Some(1), "{status}; output:\n{output}");
    let named = ["ingest", "broker-gate"].iter().any(|name| {
        output.contains(&format!(
            "fastdata-operator: task {name} failed: failed 4 times in a row"
        ))
    });
    assert!(named, "{output}");
    assert!(output.contains("max_restarts"), "{output}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_restart_on_the_same_port_resumes_ingest() {
    let dir = tempfile::tempdir().unwrap();
    let broker_dir = dir.path().join("broker").tap_dir();
    let mut broker = Mosquitto::start(&broker_dir);
    let port = broker.port;
    let http = free_port();
    let fixture = fixture(dir.path());
    let config = config_file(
        dir.path(),
        http,
        port,
        &format!("fixture = \"{}\"", fixture.display()),
        "max_restarts = 30\ninitial_backoff_ms = 100\nmax_backoff_ms = 1000",
    );
    let mut daemon = Operator::spawn(&config, http, false);
    daemon.all_running().await;
    let seller = Publisher::start(&daemon.base, port, 1).await;
    for sequence in 0..10 {
        seller.publish(segment(sequence)).await;
    }
    daemon.wait_stored(10.0).await;

    broker.kill();
    drop(broker);
    let (_, body) = daemon
        .health_until(Duration::from_secs(10), |status, body| {
            status == 503 && restarting(body, tasks::INGEST).is_some()
        })
        .await;
    assert!(
        restarting(&body, tasks::INGEST).unwrap()["last_error"]
            .as_str()
            .unwrap()
            .contains(&format!("127.0.0.1:{port}")),
        "{body}"
    );

    // The broker comes back on the same port with its dynsec state: every task recovers.
    let broker =
        fastdata_test_support::mosquitto::Mosquitto::start(&broker_dir, port, ADMIN_PASSWORD)
            .expect("mosquitto restarts on the same port");
    let up = daemon.all_running().await;
    let ingest = task(&up, tasks::INGEST).unwrap();
    assert!(ingest["restarts"].as_u64().unwrap() >= 1, "{up}");
    assert!(
        metric(
            &daemon.metrics().await,
            r#"fastdata_operator_task_restarts_total{task="ingest"}"#
        )
        .unwrap()
            >= 1.0
    );

    // Data flows again: a fresh grant through the recovered gate, and ingest stores it.
    let seller = Publisher::start(&daemon.base, broker.port, 2).await;
    for sequence in 10..20 {
        seller.publish(segment(sequence)).await;
    }
    daemon.wait_stored(20.0).await;

    // A clean stop still exits 0.
    let status = Command::new("kill")
        .args(["-TERM", &daemon.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let status = daemon.wait_exit(Duration::from_secs(20)).await;
    assert!(status.success(), "{status}; output:\n{}", daemon.output());
    let store = Store::open(&dir.path().join("data/operator.redb")).unwrap();
    assert_eq!(
        store.sequences(&STREAM, 0, u64::MAX).unwrap(),
        (0..20).collect::<Vec<_>>()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disk_refusing_writes_fails_ingest_loudly() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start(&dir.path().join("broker").tap_dir());
    let http = free_port();
    let fixture = fixture(dir.path());
    let config = config_file(
        dir.path(),
        http,
        broker.port,
        &format!("fixture = \"{}\"", fixture.display()),
        "max_restarts = 3\ninitial_backoff_ms = 200\nmax_backoff_ms = 400",
    );
    let mut daemon = Operator::spawn(&config, http, true);
    daemon.all_running().await;
    let seller = Publisher::start(&daemon.base, broker.port, 1).await;
    for sequence in 0..5 {
        seller.publish(segment(sequence)).await;
    }
    daemon.wait_stored(5.0).await;

    // From now on every write of the daemon's files fails with EFBIG (file size limit 0).
    let limited = Command::new("prlimit")
        .args(["--pid", &daemon.child.id().to_string(), "--fsize=0"])
        .status()
        .expect("prlimit (util-linux) runs");
    assert!(limited.success());
    let publishing = {
        let client = seller.client.clone();
        tokio::spawn(async move {
            for sequence in 5.. {
                let _ = client
                    .publish(
                        stream_topic(&STREAM),
                        QoS::AtLeastOnce,
                        false,
                        segment(sequence),
                    )
                    .await;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };

    // Ingest does not silently store nothing: it reports the store error and restarts…
    let (status, body) = daemon
        .health_until(Duration::from_secs(20), |_, body| {
            restarting(body, tasks::INGEST).is_some()
        })
        .await;
    assert_eq!(status, 503);
    let error = restarting(&body, tasks::INGEST).unwrap()["last_error"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(error.contains("storing segments failed"), "{error}");
    assert_eq!(daemon.stored().await, 5.0);

    // …and past the limit the process exits non-zero, naming ingest and the store error.
    let status = daemon.wait_exit(Duration::from_secs(30)).await;
    publishing.abort();
    let output = daemon.output();
    assert_eq!(status.code(), Some(1), "{status}; output:\n{output}");
    assert!(
        output.contains("fastdata-operator: task ingest failed: failed 4 times in a row"),
        "{output}"
    );
    assert!(output.contains("storing segments failed"), "{output}");
    // Nothing acknowledged was lost and nothing half-written appears.
    let store = Store::open(&dir.path().join("data/operator.redb")).unwrap();
    assert_eq!(
        store.sequences(&STREAM, 0, u64::MAX).unwrap(),
        (0..5).collect::<Vec<_>>()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_chain_restarts_the_follower_then_fails_the_daemon() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start(&dir.path().join("broker").tap_dir());
    let mut config = mosquitto_config(&dir.path().join("op"), broker.port, &seed_suri(2));
    config.supervision.max_restarts = 3;
    config.supervision.initial_backoff_ms = 200;
    config.supervision.max_backoff_ms = 400;
    let view = view_with(vec![]);
    let daemon = Daemon::start(
        config,
        view.clone(),
        Arc::new(fastdata_operator::receipts::NoChainSubmitter),
    )
    .await
    .unwrap();
    let base = format!("http://{}", daemon.http_addr);
    assert!(
        wait_until(Duration::from_secs(20), || daemon.health().iter().all(
            |t| t.state == fastdata_operator::supervisor::TaskState::Running
        ))
        .await
    );

    // The node's RPC endpoint is closed (nothing listens on the port).
    let closed = free_port();
    let chain_follower = Arc::new(
        Follower::new(
            format!("ws://127.0.0.1:{closed}"),
            fastdata_sdk::Account::from_seed(&[2; 32]),
            view,
        )
        .with_metrics(daemon.node.metrics.clone())
        .with_heartbeats(false),
    );
    daemon.supervise(follower::TASK, Restart::OnError, chain_follower.task(None));
    let start = Instant::now();
    let body = loop {
        let (status, body) = health(&base).await;
        if restarting(&body, follower::TASK).is_some() {
            assert_eq!(status, 503, "{body}");
            break body;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "{body}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let follower_state = restarting(&body, follower::TASK).unwrap();
    assert!(
        follower_state["last_error"]
            .as_str()
            .unwrap()
            .contains(&format!("127.0.0.1:{closed}")),
        "{follower_state}"
    );
    assert_eq!(task(&body, tasks::INGEST).unwrap()["state"], "running");

    let metrics = daemon.node.metrics.clone();
    let outcome = tokio::time::timeout(
        Duration::from_secs(30),
        daemon.run_until(std::future::pending()),
    )
    .await
    .expect("the daemon stops once the follower gave up");
    let error = outcome.unwrap_err().to_string();
    assert!(
        error.starts_with("task chain-follower failed: failed 4 times in a row"),
        "{error}"
    );
    assert_eq!(
        metric(
            &metrics.render(),
            r#"fastdata_operator_task_restarts_total{task="chain-follower"}"#
        ),
        Some(3.0)
    );
    // The API stopped with it.
    assert_eq!(health(&base).await.0, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_chain_at_start_exits_non_zero_naming_the_follower() {
    let dir = tempfile::tempdir().unwrap();
    let http = free_port();
    let config = config_file(
        dir.path(),
        http,
        free_port(),
        &format!(
            "url = \"ws://127.0.0.1:{}\"\nheartbeat = false",
            free_port()
        ),
        "max_restarts = 2\ninitial_backoff_ms = 100\nmax_backoff_ms = 200",
    );
    let mut daemon = Operator::spawn(&config, http, false);
    let status = daemon.wait_exit(Duration::from_secs(30)).await;
    let output = daemon.output();
    assert_eq!(status.code(), Some(1), "{status}; output:\n{output}");
    assert!(
        output.contains("task chain-follower: cannot use the node at ws://127.0.0.1:"),
        "{output}"
    );
    assert!(output.contains("after 3 attempts"), "{output}");
}

/// Accepts every claim once `accept` is set; until then the chain is "down".
struct Switch {
    accept: AtomicBool,
}

#[async_trait::async_trait]
impl ClaimSubmitter for Switch {
    async fn submit(&self, claims: &[Claim]) -> Vec<ClaimOutcome> {
        claims
            .iter()
            .map(|_| {
                if self.accept.load(Ordering::SeqCst) {
                    ClaimOutcome::Accepted { accrued: 4_200 }
                } else {
                    ClaimOutcome::Failed("chain down".into())
                }
            })
            .collect()
    }
}

pub(crate) async fn wait_metric(base: &str, key: &str, want: f64) -> String {
    let start = Instant::now();
    loop {
        let text = get_text(&format!("{base}/metrics")).await.1;
        if metric(&text, key) == Some(want) {
            return text;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{key} never became {want}:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_report_refusals_drops_receipts_claims_and_tasks() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start(&dir.path().join("broker").tap_dir());
    let (seller, buyer, operator) = (pair(1), pair(3), pair(2));
    let me = account(&operator);
    let view = view_with(vec![
        ChainEvent::StreamAssigned(assignment(&seller, std::slice::from_ref(&me))),
        ChainEvent::PurchaseUpdated(purchase(1, &buyer, 1_000)),
    ]);
    let switch = Arc::new(Switch {
        accept: AtomicBool::new(false),
    });
    let daemon = Daemon::start(
        mosquitto_config(&dir.path().join("op"), broker.port, &seed_suri(2)),
        view.clone(),
        switch.clone(),
    )
    .await
    .unwrap();
    let base = format!("http://{}", daemon.http_addr);
    let start = Instant::now();
    while health(&base).await.0 != 200 {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{:?}",
            daemon.health()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let text = get_text(&format!("{base}/metrics")).await.1;
    for name in [
        "http",
        "broker-gate",
        "gate-sync",
        "ingest",
        "replication",
        "claims",
        "retention",
    ] {
        assert_eq!(
            metric(
                &text,
                &format!("fastdata_operator_task_up{{task=\"{name}\"}}")
            ),
            Some(1.0),
            "{name}: {text}"
        );
    }

    // Segments: one stored, its duplicate dropped, garbage, another stream's header and a
    // future epoch refused, each under its reason.
    let publisher = Publisher::start(&base, broker.port, 1).await;
    let keys = keys();
    let header = SegmentHeader {
        stream: STREAM,
        epoch: 0,
        sequence: 100,
        timestamp: 1,
    };
    publisher.publish(segment(0)).await;
    publisher.publish(segment(0)).await;
    publisher.publish(b"garbage".to_vec()).await;
    publisher
        .publish(
            seal(
                &keys,
                &SegmentHeader {
                    stream: H256::repeat_byte(8),
                    ..header
                },
                b"x",
            )
            .unwrap(),
        )
        .await;
    publisher
        .publish(seal(&keys, &SegmentHeader { epoch: 3, ..header }, b"x").unwrap())
        .await;
    let text = wait_metric(
        &base,
        r#"fastdata_operator_segments_in_total{result="refused"}"#,
        3.0,
    )
    .await;
    let text = if metric(
        &text,
        r#"fastdata_operator_segments_dropped_total{reason="duplicate"}"#,
    ) == Some(1.0)
    {
        text
    } else {
        wait_metric(
            &base,
            r#"fastdata_operator_segments_dropped_total{reason="duplicate"}"#,
            1.0,
        )
        .await
    };
    for reason in ["malformed", "wrong_stream", "future_epoch"] {
        assert_eq!(
            metric(
                &text,
                &format!("fastdata_operator_segments_refused_total{{reason=\"{reason}\"}}")
            ),
            Some(1.0),
            "{reason}: {text}"
        );
    }
    assert_eq!(
        metric(
            &text,
            r#"fastdata_operator_segments_in_total{result="stored"}"#
        ),
        Some(1.0)
    );

    // Receipts per purchase (only segment 0 is stored: a receipt cannot acknowledge more).
    for nonce in 1..=2u64 {
        let receipt = Receipt {
            purchase: 1,
            operator: me.clone(),
            up_to_sequence: 0,
            bytes: 1_000 * nonce,
            nonce,
        };
        let body = (
            receipt.clone(),
            receipt.sign_sr25519(&buyer, &FIXTURE_GENESIS),
        )
            .encode();
        let (status, text) = fastdata_sdk::http::HttpClient::new()
            .post(&format!("{base}/v1/receipts"), &[], body, 1 << 16)
            .await
            .unwrap();
        assert_eq!(status.as_u16(), 200, "{}", String::from_utf8_lossy(&text));
    }
    wait_metric(
        &base,
        r#"fastdata_operator_purchase_receipts{purchase="1"}"#,
        2.0,
    )
    .await;

    // Claims: pending while the chain is "down", earned (count and planck) once accepted.
    let text = wait_metric(&base, "fastdata_operator_claims_pending", 1.0).await;
    assert_eq!(
        metric(&text, "fastdata_operator_claims_earned_total"),
        Some(0.0)
    );
    switch.accept.store(true, Ordering::SeqCst);
    let text = wait_metric(
        &base,
        "fastdata_operator_claims_earned_planck_total",
        4_200.0,
    )
    .await;
    assert_eq!(
        metric(&text, "fastdata_operator_claims_earned_total"),
        Some(1.0)
    );
    assert_eq!(metric(&text, "fastdata_operator_claims_pending"), Some(0.0));
    assert_eq!(
        metric(
            &text,
            r#"fastdata_operator_claims_total{result="accepted"}"#
        ),
        Some(1.0)
    );

    // The purchase ends: its receipt series goes away.
    view.apply(ChainEvent::PurchaseEnded { purchase: 1 });
    let start = Instant::now();
    while get_text(&format!("{base}/metrics"))
        .await
        .1
        .contains(r#"purchase_receipts{purchase="1"}"#)
    {
        assert!(start.elapsed() < Duration::from_secs(10));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // No follower here: the chain gauges stay at 0, the lag too.
    let text = get_text(&format!("{base}/metrics")).await.1;
    assert_eq!(
        metric(&text, "fastdata_operator_chain_follower_lag_blocks"),
        Some(0.0)
    );
    daemon.shutdown().await;
}

/// A TCP proxy to the node, to take the chain away and bring it back.
struct Proxy {
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    async fn start(port: u16, target: String) -> Self {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap();
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(async move {
            // Dropping the set at the end closes every proxied connection.
            let mut connections = tokio::task::JoinSet::new();
            loop {
                tokio::select! {
                    _ = stopped.wait_for(|s| *s) => return,
                    accepted = listener.accept() => {
                        let Ok((mut inbound, _)) = accepted else { continue };
                        let target = target.clone();
                        connections.spawn(async move {
                            if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                            }
                        });
                    }
                }
            }
        });
        Self { stop, task }
    }

    async fn stop(self) {
        self.stop.send_replace(true);
        let _ = self.task.await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a running node: FASTDATA_WS (default ws://127.0.0.1:9944)"]
async fn live_follower_lag_loss_and_recovery_through_a_proxy() {
    let url = std::env::var("FASTDATA_WS").unwrap_or_else(|_| "ws://127.0.0.1:9944".into());
    let node = url
        .trim_start_matches("ws://")
        .trim_end_matches('/')
        .to_owned();
    let proxy_port = free_port();
    let proxy = Proxy::start(proxy_port, node.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start(&dir.path().join("broker").tap_dir());
    let http = free_port();
    let config = config_file(
        dir.path(),
        http,
        broker.port,
        &format!("url = \"ws://127.0.0.1:{proxy_port}\"\nheartbeat = false"),
        "max_restarts = 4\ninitial_backoff_ms = 500\nmax_backoff_ms = 1000",
    );
    let mut daemon = Operator::spawn(&config, http, false);
    let up = daemon.all_running().await;
    assert_eq!(
        task(&up, follower::TASK).unwrap()["state"],
        "running",
        "{up}"
    );

    // Following: the processed block advances, the head is known, the lag is small.
    let processed =
        |text: &str| metric(text, "fastdata_operator_chain_processed_block").unwrap_or(0.0);
    let first = processed(&daemon.metrics().await);
    let start = Instant::now();
    let text = loop {
        let text = daemon.metrics().await;
        if processed(&text) >= first + 2.0 {
            break text;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "{text}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let head = metric(&text, "fastdata_operator_chain_finalized_head").unwrap();
    let lag = metric(&text, "fastdata_operator_chain_follower_lag_blocks").unwrap();
    assert!(head >= processed(&text), "{text}");
    assert_eq!(lag, head - processed(&text), "{text}");
    assert!(lag <= 3.0, "{text}");

    // The chain goes away: the follower restarts.
    proxy.stop().await;
    let (status, body) = daemon
        .health_until(Duration::from_secs(30), |_, body| {
            restarting(body, follower::TASK).is_some()
        })
        .await;
    assert_eq!(status, 503, "{body}");
    // It comes back before the limit: the follower recovers.
    let proxy = Proxy::start(proxy_port, node).await;
    let up = daemon.all_running().await;
    assert!(
        task(&up, follower::TASK).unwrap()["restarts"]
            .as_u64()
            .unwrap()
            >= 1,
        "{up}"
    );
    assert!(
        metric(
            &daemon.metrics().await,
            r#"fastdata_operator_task_restarts_total{task="chain-follower"}"#
        )
        .unwrap()
            >= 1.0
    );

    // It goes away for good: the daemon exits non-zero, naming the follower.
    proxy.stop().await;
    let status = daemon.wait_exit(Duration::from_secs(60)).await;
    let output = daemon.output();
    assert_eq!(status.code(), Some(1), "{status}; output:\n{output}");
    assert!(
        output.contains("fastdata-operator: task chain-follower failed"),
        "{output}"
    );
}

pub(crate) trait TapDir {
    fn tap_dir(self) -> Self;
}

impl TapDir for PathBuf {
    fn tap_dir(self) -> Self {
        std::fs::create_dir_all(&self).unwrap();
        self
    }
}

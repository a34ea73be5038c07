//! `fastdata-bench operator`: storage-operator benchmarks.
//!
//! - **Authorization decisions** from the in-memory chain view (the daemon's hot path): upload
//!   token admission and access request admission (sr25519 verification plus the durable
//!   nonce update), and the per-message publish and subscribe ACL decisions, each timed call
//!   by call over a view with many streams and purchases.
//! - **Ingest**: a real Mosquitto and a real `fastdata-operator` process on a fixture chain
//!   (no node) hosting the streams; publishers seal segments and publish them with QoS 1
//!   through the SDK's [`StreamPublisher`] as fast as they can; the daemon's `/metrics`
//!   counter of stored segments gives segments persisted per second.
//! - **Memory**: the daemon's `VmRSS` (and peak `VmHWM`) idle with all streams, and after the
//!   ingest run.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{bail, Context};
use fastdata_operator::{
    auth::{public_key, stream_topic, Authorizer, Principal},
    chain::{ChainEvent, ChainView, InMemoryChainView, PurchaseInfo, StreamAssignment},
    metrics::Metrics,
    mosquitto::{free_port, Mosquitto, ADMIN_USER},
    store::Store,
};
use fastdata_primitives::{
    envelope::{seal, EpochKeys, SegmentHeader},
    escrow::{AccessPeriod, PurchaseState, PurchaseTerms},
    tokens::{AccessRequest, Signed, UploadToken},
    AccountId, StreamId,
};
use fastdata_sdk::{operator::OperatorEndpoint, publish::StreamPublisher, Account};
use indicatif::{ProgressBar, ProgressStyle};
use sp_core::{crypto::Ss58Codec, sr25519, Pair, H256};
use sp_io::hashing::blake2_256;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::{machine, results::Row, stats};

/// The genesis hash of the benchmark's fixture chain: the daemon is configured with it and
/// every token and request is signed for it.
const GENESIS: H256 = H256::repeat_byte(0xbe);

/// Settings of the operator benchmark.
#[derive(Clone, Debug)]
pub struct OperatorBench {
    /// Streams hosted by the operator.
    pub streams: u32,
    /// Purchases per stream in the chain view.
    pub purchases_per_stream: u32,
    /// Timed ACL decisions of each kind.
    pub decisions: u32,
    /// Timed token and request admissions of each kind.
    pub admissions: u32,
    /// Concurrent publishers in the ingest run (one stream each).
    pub publishers: u32,
    /// Segments each publisher sends.
    pub segments: u32,
    /// Plaintext bytes per segment.
    pub payload: usize,
    /// The `fastdata-operator` binary.
    pub operator_bin: PathBuf,
    /// Working directory (broker, database, logs).
    pub work: PathBuf,
}

/// A large access window: purchases and tokens stay valid for the whole run.
const FOREVER: u32 = 1_000_000_000;
const FINALIZED: u32 = 10;
const BROKER_PASSWORD: &str = "fastdata-bench-admin";

fn seller_seed(i: u32) -> [u8; 32] {
    blake2_256(format!("bench/operator/seller/{i}").as_bytes())
}

fn seller_pair(i: u32) -> sr25519::Pair {
    sr25519::Pair::from_seed(&seller_seed(i))
}

fn buyer_pair(i: u32) -> sr25519::Pair {
    sr25519::Pair::from_seed(&blake2_256(format!("bench/operator/buyer/{i}").as_bytes()))
}

fn operator_seed() -> [u8; 32] {
    blake2_256(b"bench/operator/operator")
}

fn stream_id(i: u32) -> StreamId {
    H256(blake2_256(format!("bench/operator/stream/{i}").as_bytes()))
}

fn account(pair: &sr25519::Pair) -> AccountId {
    AccountId::from(pair.public())
}

/// The chain state the benchmarks decide from: `streams` streams assigned to `me` (and one
/// other operator), `per_stream` live purchases each, spread over up to 1,000 buyers.
struct ChainState {
    me: AccountId,
    sellers: Vec<sr25519::Pair>,
    buyers: Vec<sr25519::Pair>,
    assignments: Vec<StreamAssignment>,
    purchases: Vec<PurchaseInfo>,
}

impl ChainState {
    fn new(streams: u32, per_stream: u32) -> Self {
        let me = account(&sr25519::Pair::from_seed(&operator_seed()));
        let other = AccountId::new([9; 32]);
        let sellers: Vec<_> = (0..streams).map(seller_pair).collect();
        let total = streams * per_stream;
        let buyers: Vec<_> = (0..total.clamp(1, 1_000)).map(buyer_pair).collect();
        let assignments = (0..streams)
            .map(|s| StreamAssignment {
                stream: stream_id(s),
                seller: account(&sellers[s as usize]),
                offer: u64::from(s),
                epoch: 0,
                operators: vec![me.clone(), other.clone()],
                retention: 0,
                open: true,
                oldest_epoch: 0,
                quota_bytes: u64::MAX,
            })
            .collect();
        let purchases = (0..total)
            .map(|p| PurchaseInfo {
                id: u64::from(p) + 1,
                buyer: account(&buyers[p as usize % buyers.len()]),
                stream: stream_id(p % streams),
                offer: u64::from(p % streams),
                terms: PurchaseTerms::Stream {
                    period: FOREVER,
                    periods: 1,
                },
                access: AccessPeriod {
                    start: 0,
                    end: FOREVER,
                    first_epoch: Some(0),
                    epochs: vec![0],
                },
                state: PurchaseState::Active,
            })
            .collect();
        Self {
            me,
            sellers,
            buyers,
            assignments,
            purchases,
        }
    }

    fn buyer_of(&self, purchase: &PurchaseInfo) -> &sr25519::Pair {
        &self.buyers[(purchase.id - 1) as usize % self.buyers.len()]
    }

    fn events(&self) -> Vec<ChainEvent> {
        let mut events = vec![ChainEvent::Finalized { number: FINALIZED }];
        events.extend(
            self.assignments
                .iter()
                .cloned()
                .map(ChainEvent::StreamAssigned),
        );
        events.extend(
            self.purchases
                .iter()
                .cloned()
                .map(ChainEvent::PurchaseUpdated),
        );
        events
    }

    /// The dev fixture (`[chain] fixture`) describing the same state for a daemon process.
    fn fixture_toml(&self) -> String {
        let me = self.me.to_ss58check();
        let mut out = format!("finalized = {FINALIZED}\n");
        for a in &self.assignments {
            out.push_str(&format!(
                "\n[[stream]]\nid = \"0x{}\"\nseller = \"{}\"\noffer = {}\noperators = [\"{me}\"]\n",
                hex::encode(a.stream.as_bytes()),
                a.seller.to_ss58check(),
                a.offer
            ));
        }
        for p in &self.purchases {
            out.push_str(&format!(
                "\n[[purchase]]\nid = {}\nbuyer = \"{}\"\nstream = \"0x{}\"\noffer = {}\nend = {FOREVER}\nepochs = [0]\n",
                p.id,
                p.buyer.to_ss58check(),
                hex::encode(p.stream.as_bytes()),
                p.offer
            ));
        }
        out
    }
}

fn bar(len: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    if let Ok(style) =
        ProgressStyle::with_template("{msg:>28} [{bar:30}] {pos}/{len} {per_sec} eta {eta}")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(what.to_owned());
    bar
}

fn latency_rows(prefix: &str, samples: &mut [f64], rows: &mut Vec<Row>) -> anyhow::Result<()> {
    let s = stats::summarize(samples).context("no samples")?;
    rows.push(Row::operator(&format!("{prefix}_p50"), s.p50, "us"));
    rows.push(Row::operator(&format!("{prefix}_p99"), s.p99, "us"));
    rows.push(Row::operator(&format!("{prefix}_max"), s.max, "us"));
    rows.push(Row::operator(&format!("{prefix}_mean"), s.mean, "us"));
    rows.push(Row::operator(
        &format!("{prefix}_count"),
        s.count as f64,
        "decisions",
    ));
    Ok(())
}

/// Times `n` calls of `decide(i)`, each call separately, in microseconds; every call must
/// succeed.
fn time_calls<E: std::fmt::Display>(
    n: u32,
    what: &str,
    mut decide: impl FnMut(u32) -> Result<(), E>,
) -> anyhow::Result<Vec<f64>> {
    let progress = bar(u64::from(n), what);
    let mut samples = Vec::with_capacity(n as usize);
    for i in 0..n {
        let start = Instant::now();
        let result = decide(i);
        samples.push(start.elapsed().as_secs_f64() * 1e6);
        if let Err(e) = result {
            progress.abandon();
            bail!("{what}: decision {i} was refused: {e}");
        }
        if i % 1024 == 0 {
            progress.set_position(u64::from(i));
        }
    }
    progress.finish();
    Ok(samples)
}

/// Authorization decision latencies over an in-memory view.
pub fn auth_bench(cfg: &OperatorBench, rows: &mut Vec<Row>) -> anyhow::Result<()> {
    if cfg.streams == 0 || cfg.purchases_per_stream == 0 {
        bail!("--streams and --purchases-per-stream must be at least 1");
    }
    let state = ChainState::new(cfg.streams, cfg.purchases_per_stream);
    let view = InMemoryChainView::shared();
    view.apply_all(state.events());
    let db = cfg.work.join("auth.redb");
    let _ = std::fs::remove_file(&db);
    let store = Arc::new(
        Store::open(&db).with_context(|| format!("cannot open the store {}", db.display()))?,
    );
    let auth = Authorizer::new(
        state.me.clone(),
        GENESIS,
        view.clone(),
        store,
        Arc::new(Metrics::new()),
    );
    let streams = cfg.streams;
    let purchases = state.purchases.len() as u32;

    // Sign everything up front: only the daemon's work is timed.
    let progress = bar(u64::from(cfg.admissions) * 2, "signing tokens and requests");
    let tokens: Vec<_> = (0..cfg.admissions)
        .map(|i| {
            progress.inc(1);
            let s = i % streams;
            Signed::sign(
                UploadToken {
                    stream: stream_id(s),
                    operator: state.me.clone(),
                    epoch: 0,
                    expiry: FOREVER,
                    nonce: u64::from(i / streams) + 1,
                },
                &state.sellers[s as usize],
                &GENESIS,
            )
        })
        .collect();
    let requests: Vec<_> = (0..cfg.admissions)
        .map(|i| {
            progress.inc(1);
            let purchase = &state.purchases[(i % purchases) as usize];
            Signed::sign(
                AccessRequest {
                    purchase: purchase.id,
                    operator: state.me.clone(),
                    expiry: FOREVER,
                    nonce: u64::from(i / purchases) + 1,
                },
                state.buyer_of(purchase),
                &GENESIS,
            )
        })
        .collect();
    progress.finish();

    // The same checks without the durable nonce write: view lookup, expiry, addressee,
    // sr25519 signature.
    let mut samples = time_calls(cfg.admissions, "upload token check (no fsync)", |i| {
        let token = &tokens[i as usize];
        let stream = view
            .stream(&token.payload.stream)
            .ok_or_else(|| "unknown stream".to_owned())?;
        token
            .check(
                &public_key(&stream.seller),
                &state.me,
                view.finalized_block(),
                None,
                &GENESIS,
            )
            .map_err(|e| format!("{e:?}"))
    })?;
    latency_rows("auth_upload_check", &mut samples, rows)?;
    let mut samples = time_calls(cfg.admissions, "access request check (no fsync)", |i| {
        let request = &requests[i as usize];
        let purchase = view
            .purchase(request.payload.purchase)
            .ok_or_else(|| "unknown purchase".to_owned())?;
        request
            .check(
                &public_key(&purchase.buyer),
                &state.me,
                view.finalized_block(),
                None,
                &GENESIS,
            )
            .map_err(|e| format!("{e:?}"))
    })?;
    latency_rows("auth_access_check", &mut samples, rows)?;

    let mut samples = time_calls(cfg.admissions, "upload token admission", |i| {
        auth.admit_upload(&tokens[i as usize]).map(|_| ())
    })?;
    latency_rows("auth_upload_token", &mut samples, rows)?;
    let mut samples = time_calls(cfg.admissions, "access request admission", |i| {
        auth.admit_access(&requests[i as usize]).map(|_| ())
    })?;
    latency_rows("auth_access_request", &mut samples, rows)?;

    let buyers: Vec<(Principal, String)> = state
        .purchases
        .iter()
        .map(|p| {
            (
                Principal::Buyer {
                    purchase: p.id,
                    stream: p.stream,
                    buyer: p.buyer.clone(),
                },
                stream_topic(&p.stream),
            )
        })
        .collect();
    let mut samples = time_calls(cfg.decisions, "subscribe ACL decision", |i| {
        let (principal, topic) = &buyers[(i % purchases) as usize];
        auth.may_subscribe(principal, topic)
    })?;
    latency_rows("auth_subscribe", &mut samples, rows)?;

    let keys = EpochKeys::new([1; 32], [2; 32]);
    let payload = vec![0x5a; cfg.payload];
    let mut sellers = Vec::new();
    for a in &state.assignments {
        let header = SegmentHeader {
            stream: a.stream,
            epoch: 0,
            sequence: 1,
            timestamp: 1,
        };
        let segment = seal(&keys, &header, &payload).context("cannot seal a segment")?;
        let principal = Principal::Seller {
            stream: a.stream,
            seller: a.seller.clone(),
            epoch: 0,
        };
        sellers.push((principal, stream_topic(&a.stream), segment));
    }
    let mut samples = time_calls(cfg.decisions, "publish ACL decision", |i| {
        let (principal, topic, segment) = &sellers[(i % streams) as usize];
        auth.may_publish(principal, topic, Some(segment))
    })?;
    latency_rows("auth_publish", &mut samples, rows)?;
    rows.push(Row::operator("view_streams", f64::from(streams), "streams"));
    rows.push(Row::operator(
        "view_purchases",
        f64::from(purchases),
        "purchases",
    ));
    Ok(())
}

/// A `fastdata-operator` process (SIGTERM, then SIGKILL, on drop).
struct DaemonProcess {
    child: Child,
}

impl DaemonProcess {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn stop(&mut self) {
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for DaemonProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `GET http://addr/metrics` over a plain TCP connection; the body.
pub async fn get_metrics(addr: &str) -> anyhow::Result<String> {
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .with_context(|| format!("cannot reach {addr}"))?;
    stream
        .write_all(format!("GET /metrics HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await?;
    let mut text = String::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_string(&mut text))
        .await
        .context("metrics request timed out")??;
    Ok(text)
}

/// The value of the first sample line `name{labels} value` (or `name value`) in Prometheus
/// text.
pub fn metric_value(text: &str, name_and_labels: &str) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let (key, value) = l.rsplit_once(' ')?;
        (key.trim() == name_and_labels).then(|| value.trim().parse().ok())?
    })
}

/// The daemon's counter of stored segments.
pub const STORED: &str = "fastdata_operator_segments_in_total{result=\"stored\"}";

fn start_daemon(
    cfg: &OperatorBench,
    state: &ChainState,
    broker: &Mosquitto,
    http_port: u16,
) -> anyhow::Result<DaemonProcess> {
    let dir = cfg.work.join("daemon");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let fixture = dir.join("chain.toml");
    std::fs::write(&fixture, state.fixture_toml())?;
    let config = dir.join("operator.toml");
    std::fs::write(
        &config,
        format!(
            "[operator]\nsuri = \"0x{}\"\ndata_dir = \"{}\"\n[http]\nlisten = \"127.0.0.1:{http_port}\"\n\
             [broker]\nkind = \"mosquitto\"\nport = {}\nusername = \"{ADMIN_USER}\"\npassword = \"{BROKER_PASSWORD}\"\n\
             client_id_prefix = \"bench-{http_port}\"\n[chain]\nfixture = \"{}\"\ngenesis = \"{GENESIS:?}\"\n",
            hex::encode(operator_seed()),
            dir.join("data").display(),
            broker.port,
            fixture.display()
        ),
    )?;
    let log = std::fs::File::create(dir.join("operator.log"))?;
    let child = Command::new(&cfg.operator_bin)
        .arg("--config")
        .arg(&config)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .with_context(|| format!("cannot start {}", cfg.operator_bin.display()))?;
    Ok(DaemonProcess { child })
}

/// Ingest throughput through a real broker and daemon, and the daemon's memory.
pub async fn ingest_bench(cfg: &OperatorBench, rows: &mut Vec<Row>) -> anyhow::Result<()> {
    if cfg.publishers == 0 || cfg.segments == 0 {
        bail!("--publishers and --segments must be at least 1");
    }
    if cfg.publishers > cfg.streams {
        bail!("--publishers must not exceed --streams (one stream per publisher)");
    }
    if !cfg.operator_bin.exists() {
        bail!(
            "{} does not exist; build fastdata-operator or pass --operator-bin",
            cfg.operator_bin.display()
        );
    }
    let state = ChainState::new(cfg.streams, cfg.purchases_per_stream);
    let broker = Mosquitto::start(&cfg.work.join("broker"), free_port()?, BROKER_PASSWORD)
        .context("cannot start mosquitto")?;
    let http_port = free_port()?;
    let http = format!("127.0.0.1:{http_port}");
    let mut daemon = start_daemon(cfg, &state, &broker, http_port)?;
    let started = Instant::now();
    loop {
        if get_metrics(&http).await.is_ok() {
            break;
        }
        if let Ok(Some(status)) = daemon.child.try_wait() {
            bail!(
                "fastdata-operator exited ({status}); see {}",
                cfg.work.join("daemon/operator.log").display()
            );
        }
        if started.elapsed() > Duration::from_secs(30) {
            bail!("fastdata-operator does not answer on {http} after 30 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    rows.push(Row::operator(
        "daemon_startup",
        started.elapsed().as_secs_f64(),
        "s",
    ));
    // Let the daemon subscribe to every stream and settle before measuring idle memory.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let pid = daemon.pid();
    let (idle_rss, _) = machine::rss_kib(pid).context("cannot read the daemon's memory")?;
    rows.push(Row::operator("rss_idle", idle_rss as f64 / 1024.0, "MiB"));

    let endpoint = OperatorEndpoint {
        account: state.me.clone(),
        broker_url: format!("mqtt://127.0.0.1:{}", broker.port),
        http_url: format!("http://{http}"),
    };
    let connecting = bar(u64::from(cfg.publishers), "connecting publishers");
    let mut publishers = Vec::new();
    for p in 0..cfg.publishers {
        let seller = Account::from_seed(&seller_seed(p));
        let publisher = StreamPublisher::connect(
            &seller,
            GENESIS,
            stream_id(p),
            0,
            EpochKeys::new([3; 32], [4; 32]),
            std::slice::from_ref(&endpoint),
            FOREVER,
            0,
        )
        .await
        .with_context(|| format!("publisher {p} cannot connect"))?;
        publishers.push(publisher);
        connecting.inc(1);
    }
    connecting.finish();

    let total = u64::from(cfg.publishers) * u64::from(cfg.segments);
    let before = metric_value(&get_metrics(&http).await?, STORED).unwrap_or(0.0);
    let cpu_daemon_before = machine::cpu_seconds(&pid.to_string()).unwrap_or(0.0);
    let cpu_self_before = machine::cpu_seconds("self").unwrap_or(0.0);
    let broker_conf = broker.dir.join("mosquitto.conf");
    let broker_pid = machine::find_pid(&broker_conf.display().to_string());
    let cpu_broker_before = broker_pid
        .and_then(|p| machine::cpu_seconds(&p.to_string()))
        .unwrap_or(0.0);
    let jiffies_before = machine::cpu_jiffies();
    let progress = bar(total, "segments persisted");
    let payload = vec![0xa5u8; cfg.payload];
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for mut publisher in publishers {
        let payload = payload.clone();
        let segments = cfg.segments;
        tasks.push(tokio::spawn(async move {
            for _ in 0..segments {
                publisher.publish(&payload).await?;
            }
            publisher.flush(Duration::from_secs(600)).await?;
            let acked = t0.elapsed();
            publisher.close(Duration::from_secs(10)).await?;
            Ok::<_, fastdata_sdk::Error>(acked)
        }));
    }
    // Poll the daemon's counter until every segment is on disk.
    let cpu_now = || {
        (
            machine::cpu_seconds(&pid.to_string()).unwrap_or(0.0),
            machine::cpu_seconds("self").unwrap_or(0.0),
            broker_pid.and_then(|p| machine::cpu_seconds(&p.to_string())),
            machine::cpu_jiffies(),
        )
    };
    let mut peak_rss = idle_rss;
    // (stored, when, CPU counters then): the last progress seen.
    let mut last = (0.0, t0.elapsed(), cpu_now());
    let mut stalled = false;
    while t0.elapsed() < Duration::from_secs(900) {
        let stored = metric_value(&get_metrics(&http).await?, STORED).unwrap_or(0.0) - before;
        progress.set_position(stored.max(0.0) as u64);
        if let Some((rss, _)) = machine::rss_kib(pid) {
            peak_rss = peak_rss.max(rss);
        }
        if stored > last.0 {
            last = (stored, t0.elapsed(), cpu_now());
        } else if t0.elapsed() - last.1 > Duration::from_secs(30) {
            stalled = true;
            break;
        }
        if stored >= total as f64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    progress.finish();
    let (stored, at, (cpu_daemon_end, cpu_self_end, cpu_broker_end, jiffies_end)) = last;
    let mut acked = Vec::new();
    if stalled || stored < total as f64 {
        eprintln!(
            "ingest stalled: {stored} of {total} segments stored, then no progress for 30 s; \
             see {} and {}",
            cfg.work.join("daemon/operator.log").display(),
            cfg.work.join("broker/mosquitto.log").display()
        );
        for task in &tasks {
            task.abort();
        }
    } else {
        for task in tasks {
            acked.push(
                task.await
                    .context("publisher task failed")?
                    .context("publishing failed")?
                    .as_secs_f64(),
            );
        }
    }
    rows.push(Row::operator(
        "ingest_stalled",
        if stored < total as f64 { 1.0 } else { 0.0 },
        "bool",
    ));
    rows.push(Row::operator("ingest_stored", stored, "segments"));
    let wall = at.as_secs_f64().max(1e-9);
    let cpu_daemon = cpu_daemon_end - cpu_daemon_before;
    let cpu_self = cpu_self_end - cpu_self_before;
    let cpu_broker = cpu_broker_end.map(|c| c - cpu_broker_before);
    let busy = jiffies_before
        .zip(jiffies_end)
        .map(|((b0, t0), (b1, t1))| (b1 - b0) as f64 / (t1 - t0).max(1) as f64);
    let last_ack = acked.iter().copied().fold(0.0, f64::max);
    rows.push(Row::operator("ingest_segments", total as f64, "segments"));
    rows.push(Row::operator(
        "ingest_publishers",
        f64::from(cfg.publishers),
        "publishers",
    ));
    rows.push(Row::operator("ingest_payload", cfg.payload as f64, "bytes"));
    rows.push(Row::operator(
        "ingest_persisted_per_s",
        stored / wall,
        "segments/s",
    ));
    if !acked.is_empty() {
        rows.push(Row::operator(
            "ingest_acked_per_s",
            total as f64 / last_ack.max(1e-9),
            "segments/s",
        ));
    }
    rows.push(Row::operator("ingest_wall", wall, "s"));
    rows.push(Row::operator(
        "ingest_daemon_cpu",
        cpu_daemon / wall,
        "cores",
    ));
    rows.push(Row::operator(
        "ingest_publishers_cpu",
        cpu_self / wall,
        "cores",
    ));
    if let Some(cpu) = cpu_broker {
        rows.push(Row::operator("ingest_broker_cpu", cpu / wall, "cores"));
    }
    if let Some(busy) = busy {
        rows.push(Row::operator(
            "ingest_machine_busy",
            busy * machine::nproc() as f64,
            "cores",
        ));
    }
    if let Some((rss, hwm)) = machine::rss_kib(pid) {
        rows.push(Row::operator(
            "rss_after_ingest",
            rss as f64 / 1024.0,
            "MiB",
        ));
        rows.push(Row::operator(
            "rss_peak",
            hwm.max(peak_rss) as f64 / 1024.0,
            "MiB",
        ));
    }
    daemon.stop();
    drop(broker);
    Ok(())
}

/// Runs every operator benchmark; returns the rows.
pub async fn run(cfg: &OperatorBench) -> anyhow::Result<Vec<Row>> {
    std::fs::create_dir_all(&cfg.work)
        .with_context(|| format!("cannot create {}", cfg.work.display()))?;
    let mut rows = Vec::new();
    println!(
        "authorization decisions ({} streams, {} purchases)",
        cfg.streams,
        cfg.streams * cfg.purchases_per_stream
    );
    auth_bench(cfg, &mut rows)?;
    println!(
        "ingest ({} publishers × {} segments of {} B)",
        cfg.publishers, cfg.segments, cfg.payload
    );
    ingest_bench(cfg, &mut rows).await?;
    Ok(rows)
}

/// Where the benchmark keeps its files under `out`.
pub fn work_dir(out: &Path) -> PathBuf {
    out.join("work")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_values_are_found() {
        let text = "# HELP x\nfastdata_operator_segments_in_total{result=\"refused\"} 2\n\
                    fastdata_operator_segments_in_total{result=\"stored\"} 1234\nup 1\n";
        assert_eq!(metric_value(text, STORED), Some(1234.0));
        assert_eq!(metric_value(text, "up"), Some(1.0));
        assert_eq!(metric_value(text, "down"), None);
    }

    #[test]
    fn fixture_describes_the_view() {
        let state = ChainState::new(3, 2);
        let fixture = fastdata_operator::chain::Fixture::from_toml(&state.fixture_toml()).unwrap();
        let view = InMemoryChainView::new();
        view.apply_all(fixture.events().unwrap());
        assert_eq!(view.streams().len(), 3);
        assert_eq!(view.purchases_of(&stream_id(1)).len(), 2);
        assert_eq!(view.finalized_block(), FINALIZED);
    }
}

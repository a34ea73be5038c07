//! `fastdata-bench operator`: storage-operator benchmarks.
//!
//! - **Authorization decisions** from the in-memory chain view (the daemon's hot path): upload
//!   token admission and access request admission (sr25519 verification plus the durable
//!   nonce update), and the per-message publish and subscribe ACL decisions, each timed call
//!   by call over a view with many streams and purchases.
//! - **Ingest**, per broker ([`Gate`]): a real broker and a real `fastdata-operator` process on
//!   a fixture chain (no node) hosting the streams. Mosquitto is gated by the dynamic-security
//!   plugin (the daemon grants ahead, the broker decides each publish alone); VerneMQ (the
//!   release `scripts/setup` builds, run by `fastdata-e2e`'s runner with the operator's
//!   recommended settings) asks the daemon's webhooks about every publish, and once more with
//!   the daemon letting VerneMQ cache allowed publish answers (`[vernemq] cache_secs`).
//!   Publishers seal segments and publish them with QoS 1 through the SDK's
//!   [`StreamPublisher`] as fast as they can; the daemon's `/metrics` counter of stored
//!   segments gives segments persisted per second. A probe publisher on a stream of its own
//!   times publish → PUBACK round trips one at a time every 5 ms, first with the broker idle,
//!   then beside the flood: on VerneMQ the PUBACK waits for the `auth_on_publish` webhook, so
//!   the difference to the cached run is the gate's cost as VerneMQ sees it. The daemon's
//!   histogram of webhook answer times and VerneMQ's count of webhook requests are read too.
//! - **Memory**: the daemon's `VmRSS` (and peak `VmHWM`) idle with all streams, and after the
//!   ingest run.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use anyhow::{bail, Context};
use fastdata_e2e::vernemq::Vernemq;
use fastdata_operator::{
    auth::{public_key, stream_topic, Authorizer, Principal},
    chain::{ChainEvent, ChainView, InMemoryChainView, PurchaseInfo, StreamAssignment},
    metrics::Metrics,
    store::Store,
};
use fastdata_primitives::{
    envelope::{seal, EpochKeys, SegmentHeader, MAX_ENVELOPE_LEN},
    escrow::{AccessPeriod, PurchaseState, PurchaseTerms},
    tokens::{AccessRequest, Signed, UploadToken},
    AccountId, StreamId,
};
use fastdata_sdk::{
    operator::{OperatorClient, OperatorEndpoint},
    publish::StreamPublisher,
    Account,
};
use fastdata_test_support::mosquitto::{free_port, Mosquitto, ADMIN_USER};
use indicatif::{ProgressBar, ProgressStyle};
use rumqttc::{AsyncClient, ConnectReturnCode, Event, Packet, QoS};
use sp_core::{crypto::Ss58Codec, sr25519, Pair, H256};
use sp_io::hashing::blake2_256;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    sync::{mpsc, oneshot},
};

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
    /// The brokers to run the ingest through, in order.
    pub gates: Vec<Gate>,
    /// Publish → PUBACK round trips timed with the broker idle.
    pub probe_samples: u32,
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

/// The broker and gate of an ingest run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gate {
    /// Mosquitto with the dynamic-security plugin: the daemon grants logins and topics ahead,
    /// the broker decides each publish alone.
    Mosquitto,
    /// VerneMQ with webhooks: the broker asks the daemon about every register, subscribe and
    /// publish; with `cache_secs` > 0 the daemon lets VerneMQ reuse allowed publish answers
    /// that long (`[vernemq] cache_secs`).
    Vernemq {
        /// `[vernemq] cache_secs` of the daemon.
        cache_secs: u32,
    },
}

impl Gate {
    /// The prefix of this gate's metric names (none for Mosquitto, the names of earlier runs).
    pub fn prefix(self) -> &'static str {
        match self {
            Gate::Mosquitto => "",
            Gate::Vernemq { cache_secs: 0 } => "vernemq_",
            Gate::Vernemq { .. } => "vernemq_cached_",
        }
    }

    /// Human-readable.
    pub fn label(self) -> String {
        match self {
            Gate::Mosquitto => "Mosquitto (dynamic security)".into(),
            Gate::Vernemq { cache_secs: 0 } => "VerneMQ (webhooks)".into(),
            Gate::Vernemq { cache_secs } => {
                format!("VerneMQ (webhooks, publish answers cached {cache_secs} s)")
            }
        }
    }
}

/// One publish → PUBACK round trip at a time, every [`PROBE_INTERVAL`], on a stream of its
/// own.
const PROBE_INTERVAL: Duration = Duration::from_millis(5);

/// `vernemq.conf` settings beyond what the e2e runner sets: the operator's recommended ones
/// (`storage-operator/vernemq.conf`), and reads of at most 32 KiB from a client's socket
/// (VerneMQ's own example buffer sizes). VerneMQ 2.1.2's parser (`vmq_parser:parse/4`)
/// compares the whole unparsed buffer, not the next packet, with the session's
/// `max_message_size` (the daemon sets 65,649 + 1,024 bytes for sellers) and answers `more`
/// when it is larger: a publisher whose backlog reaches VerneMQ in one read larger than that
/// gets no further PUBACK until the keep-alive drops the connection (seen here: 45–60 s
/// stalls with the OS default buffers). Bounding the read keeps this run's 256-byte segments
/// clear of it.
const VERNEMQ_SETTINGS: &[(&str, &str)] = &[
    ("max_inflight_messages", "1000"),
    ("max_message_size", "70000"),
    ("listener.tcp.buffer_sizes", "4096,16384,32768"),
];

/// The daemon's histogram of webhook answer times.
const WEBHOOK_SECONDS: &str = "fastdata_operator_webhook_seconds";

/// A running broker of an ingest run.
enum Broker {
    Mosquitto(Mosquitto),
    Vernemq(Vernemq),
}

impl Broker {
    fn port(&self) -> u16 {
        match self {
            Broker::Mosquitto(m) => m.port,
            Broker::Vernemq(v) => v.port,
        }
    }

    /// The broker's process, for its CPU time.
    fn pid(&self) -> Option<u32> {
        match self {
            Broker::Mosquitto(m) => {
                machine::find_pid(&m.dir.join("mosquitto.conf").display().to_string())
            }
            Broker::Vernemq(v) => {
                machine::find_pid_all(&["beam.smp", &v.dir.display().to_string()])
            }
        }
    }

    fn log(&self) -> PathBuf {
        match self {
            Broker::Mosquitto(m) => m.dir.join("mosquitto.log"),
            Broker::Vernemq(v) => v.dir.join("log/console.log"),
        }
    }
}

/// Starts the broker of `gate` under `dir`; the daemon's `[broker]` (and `[vernemq]`)
/// configuration for it.
fn start_broker(gate: Gate, dir: &Path, http_port: u16) -> anyhow::Result<(Broker, String)> {
    match gate {
        Gate::Mosquitto => {
            let broker = Mosquitto::start(&dir.join("broker"), free_port()?, BROKER_PASSWORD)
                .context("cannot start mosquitto")?;
            let section = format!(
                "[broker]\nkind = \"mosquitto\"\nport = {}\nusername = \"{ADMIN_USER}\"\n\
                 password = \"{BROKER_PASSWORD}\"\nclient_id_prefix = \"bench-{http_port}\"\n",
                broker.port
            );
            Ok((Broker::Mosquitto(broker), section))
        }
        Gate::Vernemq { cache_secs } => {
            let webhooks = std::net::SocketAddr::from(([127, 0, 0, 1], free_port()?));
            let broker = Vernemq::start_with(&dir.join("vernemq"), webhooks, VERNEMQ_SETTINGS)
                .context("cannot start VerneMQ")?;
            let mut section = format!(
                "[broker]\nkind = \"vernemq\"\nport = {}\nusername = \"operator\"\n\
                 password = \"{BROKER_PASSWORD}\"\nclient_id_prefix = \"bench-{http_port}\"\n\
                 [vernemq]\nwebhook_listen = \"{webhooks}\"\napi_url = \"{}\"\napi_key = \"{}\"\n",
                broker.port,
                broker.api_url(),
                broker.api_key
            );
            if cache_secs > 0 {
                section.push_str(&format!("cache_secs = {cache_secs}\n"));
            }
            Ok((Broker::Vernemq(broker), section))
        }
    }
}

fn start_daemon(
    cfg: &OperatorBench,
    state: &ChainState,
    dir: &Path,
    broker_section: &str,
    http_port: u16,
) -> anyhow::Result<DaemonProcess> {
    let dir = dir.join("daemon");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let fixture = dir.join("chain.toml");
    std::fs::write(&fixture, state.fixture_toml())?;
    let config = dir.join("operator.toml");
    std::fs::write(
        &config,
        format!(
            "[operator]\nsuri = \"0x{}\"\ndata_dir = \"{}\"\n[http]\nlisten = \"127.0.0.1:{http_port}\"\n\
             {broker_section}[chain]\nfixture = \"{}\"\ngenesis = \"{GENESIS:?}\"\n",
            hex::encode(operator_seed()),
            dir.join("data").display(),
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

/// A seller's publisher that has one segment in flight at a time and times each publish →
/// PUBACK round trip (what a paced seller sees). It logs in like the SDK's publisher: an
/// upload token traded for a login bound to its client id.
struct Probe {
    client: AsyncClient,
    /// When each PUBACK arrived (the event loop's clock).
    acks: mpsc::UnboundedReceiver<Instant>,
    task: tokio::task::JoinHandle<()>,
    topic: String,
    stream: StreamId,
    keys: EpochKeys,
    payload: Vec<u8>,
    sequence: u64,
}

impl Drop for Probe {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Probe {
    async fn connect(
        endpoint: &OperatorEndpoint,
        index: u32,
        payload: usize,
    ) -> anyhow::Result<Self> {
        let seller = Account::from_seed(&seller_seed(index));
        let stream = stream_id(index);
        let credentials = OperatorClient::new(endpoint.clone(), GENESIS)
            .upload_session(&seller, stream, 0, FOREVER)
            .await
            .context("the probe's upload session was refused")?;
        let client_id = credentials.mqtt_client_id(|| credentials.username.clone());
        let mut options = endpoint.broker_address()?.mqtt_options(client_id)?;
        options.set_credentials(credentials.username.clone(), credentials.password.clone());
        options.set_keep_alive(Duration::from_secs(30));
        options.set_max_packet_size(MAX_ENVELOPE_LEN + 1024, MAX_ENVELOPE_LEN + 1024);
        let (client, mut eventloop) = AsyncClient::new(options, 16);
        let (ack_tx, acks) = mpsc::unbounded_channel();
        let (connected_tx, connected) = oneshot::channel::<Result<(), String>>();
        let task = tokio::spawn(async move {
            let mut connected_tx = Some(connected_tx);
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                        if let Some(tx) = connected_tx.take() {
                            let _ = tx.send(if ack.code == ConnectReturnCode::Success {
                                Ok(())
                            } else {
                                Err(format!("{:?}", ack.code))
                            });
                        }
                    }
                    Ok(Event::Incoming(Packet::PubAck(_))) => {
                        let _ = ack_tx.send(Instant::now());
                    }
                    Ok(_) => {}
                    Err(e) => {
                        if let Some(tx) = connected_tx.take() {
                            let _ = tx.send(Err(e.to_string()));
                            return;
                        }
                        tracing::warn!("probe connection: {e}");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
            }
        });
        match tokio::time::timeout(Duration::from_secs(10), connected).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => bail!("the probe cannot connect to the broker: {e}"),
            Ok(Err(_)) => bail!("the probe's connection ended before CONNACK"),
            Err(_) => bail!("no CONNACK for the probe within 10 s"),
        }
        Ok(Self {
            client,
            acks,
            task,
            topic: credentials.topic,
            stream,
            keys: EpochKeys::new([5; 32], [6; 32]),
            payload: vec![0x3c; payload],
            sequence: 0,
        })
    }

    /// Seals the next segment, publishes it and waits for its PUBACK; the time from the
    /// publish call to the PUBACK.
    async fn round_trip(&mut self) -> anyhow::Result<Duration> {
        let header = SegmentHeader {
            stream: self.stream,
            epoch: 0,
            sequence: self.sequence,
            timestamp: 1,
        };
        let sealed = seal(&self.keys, &header, &self.payload).context("cannot seal")?;
        self.sequence += 1;
        let sent = Instant::now();
        self.client
            .publish(self.topic.clone(), QoS::AtLeastOnce, false, sealed)
            .await
            .context("the probe cannot publish")?;
        let acked = tokio::time::timeout(Duration::from_secs(30), self.acks.recv())
            .await
            .context("no PUBACK for the probe within 30 s")?
            .context("the probe's connection ended")?;
        Ok(acked.saturating_duration_since(sent))
    }

    /// Round trips every [`PROBE_INTERVAL`] until `count` are done or `stop` is set; their
    /// times in ms.
    async fn paced(
        &mut self,
        count: Option<u32>,
        stop: &AtomicBool,
        progress: Option<&ProgressBar>,
    ) -> anyhow::Result<Vec<f64>> {
        let mut samples = Vec::new();
        let mut tick = tokio::time::interval(PROBE_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        while count.is_none_or(|n| samples.len() < n as usize) && !stop.load(Ordering::Relaxed) {
            tick.tick().await;
            samples.push(self.round_trip().await?.as_secs_f64() * 1e3);
            if let Some(progress) = progress {
                progress.inc(1);
            }
        }
        Ok(samples)
    }
}

fn puback_rows(
    prefix: &str,
    name: &str,
    samples: &mut [f64],
    rows: &mut Vec<Row>,
) -> anyhow::Result<()> {
    let s = stats::summarize(samples).context("no PUBACK samples")?;
    let p95 = stats::percentile(samples, 95.0).unwrap_or(s.max);
    for (what, value) in [
        ("p50", s.p50),
        ("p95", p95),
        ("p99", s.p99),
        ("max", s.max),
        ("mean", s.mean),
    ] {
        rows.push(Row::operator(
            &format!("{prefix}puback_{name}_{what}"),
            value,
            "ms",
        ));
    }
    rows.push(Row::operator(
        &format!("{prefix}puback_{name}_count"),
        s.count as f64,
        "publishes",
    ));
    Ok(())
}

/// One hook's series of the daemon's webhook histogram.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HookTimes {
    /// (upper bound s, cumulative count), ascending; the last is +Inf.
    pub buckets: Vec<(f64, f64)>,
    /// Sum of the times, s.
    pub sum: f64,
    /// Calls.
    pub count: f64,
}

impl HookTimes {
    /// The series of `hook` in the daemon's Prometheus text, if it has one.
    pub fn parse(text: &str, hook: &str) -> Option<Self> {
        let label = format!("hook=\"{hook}\"");
        let mut times = Self::default();
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let Some(rest) = line.strip_prefix(WEBHOOK_SECONDS) else {
                continue;
            };
            let Some((key, value)) = rest.rsplit_once(' ') else {
                continue;
            };
            if !key.contains(&label) {
                continue;
            }
            let Ok(value) = value.trim().parse::<f64>() else {
                continue;
            };
            if key.starts_with("_sum") {
                times.sum = value;
            } else if key.starts_with("_count") {
                times.count = value;
            } else if let Some(le) = key
                .strip_prefix("_bucket{le=\"")
                .and_then(|k| k.split_once('"'))
                .map(|(le, _)| le)
            {
                let le = if le == "+Inf" {
                    f64::INFINITY
                } else {
                    le.parse().ok()?
                };
                times.buckets.push((le, value));
            }
        }
        times.buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        (!times.buckets.is_empty()).then_some(times)
    }

    /// What was observed after `before`.
    pub fn since(&self, before: &Self) -> Self {
        Self {
            buckets: self
                .buckets
                .iter()
                .map(|(le, n)| {
                    let earlier = before
                        .buckets
                        .iter()
                        .find(|(b, _)| b == le)
                        .map_or(0.0, |(_, m)| *m);
                    (*le, n - earlier)
                })
                .collect(),
            sum: self.sum - before.sum,
            count: self.count - before.count,
        }
    }

    /// The `q`-quantile (0..=1), interpolated linearly within its bucket; `None` without
    /// calls or in the +Inf bucket.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if self.count <= 0.0 {
            return None;
        }
        let rank = q * self.count;
        let mut lower = (0.0, 0.0);
        for &(le, n) in &self.buckets {
            if n >= rank {
                if !le.is_finite() {
                    return None;
                }
                let width = n - lower.1;
                let within = if width > 0.0 {
                    (rank - lower.1) / width
                } else {
                    1.0
                };
                return Some(lower.0 + (le - lower.0) * within);
            }
            lower = (le, n);
        }
        None
    }
}

/// The sum of every sample of metric `name` (any labels) in Prometheus text.
pub fn metric_sum(text: &str, name: &str) -> Option<f64> {
    let values: Vec<f64> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (key, value) = l.rsplit_once(' ')?;
            let metric = key.split('{').next()?.trim();
            (metric == name).then(|| value.trim().parse().ok())?
        })
        .collect();
    (!values.is_empty()).then(|| values.iter().sum())
}

/// VerneMQ's counter of PUBACKs sent.
const VMQ_PUBACKS_SENT: &str = "vernemq_mqtt_puback_sent";

/// VerneMQ's counter of `auth_on_publish` webhook requests (cache misses).
const VMQ_PUBLISH_REQUESTS: &str = "vernemq_webhooks_auth_on_publish_requests";

/// Ingest throughput and publish → PUBACK latency through a real broker and daemon gated by
/// `gate`, and the daemon's memory.
pub async fn ingest_bench(
    cfg: &OperatorBench,
    gate: Gate,
    rows: &mut Vec<Row>,
) -> anyhow::Result<()> {
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
    let prefix = gate.prefix();
    let key = |metric: &str| format!("{prefix}{metric}");
    let dir = cfg.work.join(match gate {
        Gate::Mosquitto => "mosquitto",
        Gate::Vernemq { cache_secs: 0 } => "vernemq",
        Gate::Vernemq { .. } => "vernemq-cached",
    });
    // One more stream than --streams: the probe's.
    let state = ChainState::new(cfg.streams + 1, cfg.purchases_per_stream);
    let http_port = free_port()?;
    let http = format!("127.0.0.1:{http_port}");
    let (broker, section) = start_broker(gate, &dir, http_port)?;
    let vmq_metrics = match &broker {
        Broker::Vernemq(v) => Some(format!("127.0.0.1:{}", v.http_port)),
        Broker::Mosquitto(_) => None,
    };
    let daemon_log = dir.join("daemon/operator.log");
    let mut daemon = start_daemon(cfg, &state, &dir, &section, http_port)?;
    let started = Instant::now();
    loop {
        if get_metrics(&http).await.is_ok() {
            break;
        }
        if let Ok(Some(status)) = daemon.child.try_wait() {
            bail!(
                "fastdata-operator exited ({status}); see {}",
                daemon_log.display()
            );
        }
        if started.elapsed() > Duration::from_secs(30) {
            bail!("fastdata-operator does not answer on {http} after 30 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    rows.push(Row::operator(
        &key("daemon_startup"),
        started.elapsed().as_secs_f64(),
        "s",
    ));
    // Let the daemon subscribe to every stream and settle before measuring idle memory.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let pid = daemon.pid();
    let (idle_rss, _) = machine::rss_kib(pid).context("cannot read the daemon's memory")?;
    rows.push(Row::operator(
        &key("rss_idle"),
        idle_rss as f64 / 1024.0,
        "MiB",
    ));

    let endpoint = OperatorEndpoint {
        account: state.me.clone(),
        broker_url: format!("mqtt://127.0.0.1:{}", broker.port()),
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

    // Publish → PUBACK one at a time with the broker otherwise idle.
    let mut probe = Probe::connect(&endpoint, cfg.streams, cfg.payload).await?;
    let idle = bar(u64::from(cfg.probe_samples), "PUBACK round trips, idle");
    let never = AtomicBool::new(false);
    let mut samples = probe
        .paced(Some(cfg.probe_samples), &never, Some(&idle))
        .await?;
    idle.finish();
    puback_rows(prefix, "idle", &mut samples, rows)?;
    // The probe's segments are stored before the flood starts.
    let probe_idle = samples.len() as f64;
    let settle = Instant::now();
    let mut before = 0.0;
    while settle.elapsed() < Duration::from_secs(30) {
        before = metric_value(&get_metrics(&http).await?, STORED).unwrap_or(0.0);
        if before >= probe_idle {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let total = u64::from(cfg.publishers) * u64::from(cfg.segments);
    let daemon_before = get_metrics(&http).await?;
    let hook_before = HookTimes::parse(&daemon_before, "auth_on_publish");
    let vmq_before = match &vmq_metrics {
        Some(addr) => get_metrics(addr)
            .await
            .ok()
            .and_then(|t| metric_sum(&t, VMQ_PUBLISH_REQUESTS)),
        None => None,
    };
    let cpu_daemon_before = machine::cpu_seconds(&pid.to_string()).unwrap_or(0.0);
    let cpu_self_before = machine::cpu_seconds("self").unwrap_or(0.0);
    let broker_pid = broker.pid();
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
    // The probe keeps timing round trips, now beside the flood, until the publishers are
    // done.
    let stop = Arc::new(AtomicBool::new(false));
    let loaded = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let samples = probe.paced(None, &stop, None).await;
            (probe, samples)
        })
    };
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
    // Progress of either the daemon's store or, with VerneMQ, of the broker's PUBACKs (read
    // once a second): VerneMQ delivers to the daemon's persistent ingest session from one
    // queue process, which can fall far behind while the publishers keep the broker busy.
    let mut active = (0.0, t0.elapsed());
    let mut vmq_checked = Instant::now();
    let mut stalled = false;
    // The probe's segments of the flood phase, once it stopped.
    let mut probe_loaded: Option<(Probe, anyhow::Result<Vec<f64>>)> = None;
    let mut loaded = Some(loaded);
    while t0.elapsed() < Duration::from_secs(900) {
        let stored = metric_value(&get_metrics(&http).await?, STORED).unwrap_or(0.0) - before;
        if tasks.iter().all(|t| t.is_finished()) {
            stop.store(true, Ordering::Relaxed);
            if let Some(task) = loaded.take() {
                probe_loaded = Some(task.await.context("the probe task failed")?);
            }
        }
        let probe_count = match &probe_loaded {
            Some((_, Ok(samples))) => samples.len() as f64,
            _ => 0.0,
        };
        progress.set_position((stored - probe_count).max(0.0) as u64);
        if let Some((rss, _)) = machine::rss_kib(pid) {
            peak_rss = peak_rss.max(rss);
        }
        if stored > last.0 {
            last = (stored, t0.elapsed(), cpu_now());
            active.1 = t0.elapsed();
        }
        if let Some(addr) = vmq_metrics
            .as_ref()
            .filter(|_| vmq_checked.elapsed().as_secs() >= 1)
        {
            vmq_checked = Instant::now();
            let acks = get_metrics(addr)
                .await
                .ok()
                .and_then(|t| metric_sum(&t, VMQ_PUBACKS_SENT))
                .unwrap_or(0.0);
            if acks > active.0 {
                active = (acks, t0.elapsed());
            }
        }
        if t0.elapsed() - active.1 > Duration::from_secs(30) {
            stalled = true;
            break;
        }
        if probe_loaded.is_some() && stored >= total as f64 + probe_count {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    progress.finish();
    let (loaded_samples, probe) = match probe_loaded {
        Some((probe, samples)) => (Some(samples), Some(probe)),
        None => {
            stop.store(true, Ordering::Relaxed);
            (None, None)
        }
    };
    let probe_count = match &loaded_samples {
        Some(Ok(samples)) => samples.len() as f64,
        _ => 0.0,
    };
    let (stored_all, at, (cpu_daemon_end, cpu_self_end, cpu_broker_end, jiffies_end)) = last;
    let stored = (stored_all - probe_count).max(0.0);
    let mut acked = Vec::new();
    if stalled || stored < total as f64 {
        eprintln!(
            "ingest stalled: {stored} of {total} segments stored, then no segment stored (and \
             no PUBACK) for 30 s; \
             see {} and {}",
            daemon_log.display(),
            broker.log().display()
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
    match loaded_samples {
        Some(Ok(mut samples)) if !samples.is_empty() => {
            puback_rows(prefix, "load", &mut samples, rows)?
        }
        Some(Ok(_)) => {}
        Some(Err(e)) => eprintln!("the probe beside the flood failed: {e:#}"),
        None => eprintln!("the probe beside the flood did not finish"),
    }
    drop(probe);
    rows.push(Row::operator(
        &key("ingest_stalled"),
        if stored < total as f64 { 1.0 } else { 0.0 },
        "bool",
    ));
    rows.push(Row::operator(&key("ingest_stored"), stored, "segments"));
    let wall = at.as_secs_f64().max(1e-9);
    let cpu_daemon = cpu_daemon_end - cpu_daemon_before;
    let cpu_self = cpu_self_end - cpu_self_before;
    let cpu_broker = cpu_broker_end.map(|c| c - cpu_broker_before);
    let busy = jiffies_before
        .zip(jiffies_end)
        .map(|((b0, t0), (b1, t1))| (b1 - b0) as f64 / (t1 - t0).max(1) as f64);
    let last_ack = acked.iter().copied().fold(0.0, f64::max);
    rows.push(Row::operator(
        &key("ingest_segments"),
        total as f64,
        "segments",
    ));
    rows.push(Row::operator(
        &key("ingest_publishers"),
        f64::from(cfg.publishers),
        "publishers",
    ));
    rows.push(Row::operator(
        &key("ingest_payload"),
        cfg.payload as f64,
        "bytes",
    ));
    rows.push(Row::operator(
        &key("ingest_persisted_per_s"),
        stored / wall,
        "segments/s",
    ));
    if !acked.is_empty() {
        rows.push(Row::operator(
            &key("ingest_acked_per_s"),
            total as f64 / last_ack.max(1e-9),
            "segments/s",
        ));
    }
    rows.push(Row::operator(&key("ingest_wall"), wall, "s"));
    rows.push(Row::operator(
        &key("ingest_daemon_cpu"),
        cpu_daemon / wall,
        "cores",
    ));
    rows.push(Row::operator(
        &key("ingest_publishers_cpu"),
        cpu_self / wall,
        "cores",
    ));
    if let Some(cpu) = cpu_broker {
        rows.push(Row::operator(
            &key("ingest_broker_cpu"),
            cpu / wall,
            "cores",
        ));
    }
    if let Some(busy) = busy {
        rows.push(Row::operator(
            &key("ingest_machine_busy"),
            busy * machine::nproc() as f64,
            "cores",
        ));
    }
    if let Gate::Vernemq { cache_secs } = gate {
        rows.push(Row::operator(
            &key("cache_secs"),
            f64::from(cache_secs),
            "s",
        ));
        // The daemon's own time per auth_on_publish answer, over the flood and its probe.
        let daemon_after = get_metrics(&http).await?;
        if let Some(after) = HookTimes::parse(&daemon_after, "auth_on_publish") {
            let times = after.since(&hook_before.unwrap_or_default());
            rows.push(Row::operator(
                &key("webhook_publish_count"),
                times.count,
                "calls",
            ));
            if times.count > 0.0 {
                rows.push(Row::operator(
                    &key("webhook_publish_mean"),
                    times.sum / times.count * 1e6,
                    "us",
                ));
            }
            for (what, q) in [("p50", 0.5), ("p99", 0.99)] {
                if let Some(v) = times.quantile(q) {
                    rows.push(Row::operator(
                        &key(&format!("webhook_publish_{what}")),
                        v * 1e6,
                        "us",
                    ));
                }
            }
        }
        // VerneMQ's own count of auth_on_publish calls it made (cache misses).
        if let Some(addr) = &vmq_metrics {
            let after = get_metrics(addr)
                .await
                .ok()
                .and_then(|t| metric_sum(&t, VMQ_PUBLISH_REQUESTS));
            if let Some(calls) = after.zip(vmq_before).map(|(a, b)| a - b) {
                rows.push(Row::operator(
                    &key("vmq_publish_requests"),
                    calls,
                    "requests",
                ));
            }
        }
    }
    if let Some((rss, hwm)) = machine::rss_kib(pid) {
        rows.push(Row::operator(
            &key("rss_after_ingest"),
            rss as f64 / 1024.0,
            "MiB",
        ));
        rows.push(Row::operator(
            &key("rss_peak"),
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
    for &gate in &cfg.gates {
        println!(
            "ingest through {} ({} publishers × {} segments of {} B)",
            gate.label(),
            cfg.publishers,
            cfg.segments,
            cfg.payload
        );
        ingest_bench(cfg, gate, &mut rows).await?;
    }
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
    fn webhook_histograms_are_read_and_differenced() {
        let text = |calls: [u64; 3], sum: f64| {
            format!(
                "# TYPE fastdata_operator_webhook_seconds histogram\n\
                 fastdata_operator_webhook_seconds_sum{{hook=\"auth_on_publish\"}} {sum}\n\
                 fastdata_operator_webhook_seconds_count{{hook=\"auth_on_publish\"}} {}\n\
                 fastdata_operator_webhook_seconds_bucket{{le=\"0.0001\",hook=\"auth_on_publish\"}} {}\n\
                 fastdata_operator_webhook_seconds_bucket{{le=\"0.0002\",hook=\"auth_on_publish\"}} {}\n\
                 fastdata_operator_webhook_seconds_bucket{{le=\"+Inf\",hook=\"auth_on_publish\"}} {}\n\
                 fastdata_operator_webhook_seconds_count{{hook=\"auth_on_register\"}} 7\n\
                 fastdata_operator_webhook_seconds_bucket{{le=\"+Inf\",hook=\"auth_on_register\"}} 7\n",
                calls[2], calls[0], calls[1], calls[2]
            )
        };
        let before = HookTimes::parse(&text([10, 10, 10], 0.001), "auth_on_publish").unwrap();
        let after = HookTimes::parse(&text([10, 110, 110], 0.016), "auth_on_publish").unwrap();
        let times = after.since(&before);
        assert_eq!(times.count, 100.0);
        assert!((times.sum - 0.015).abs() < 1e-12);
        // All 100 new calls took 100–200 µs: the median is interpolated to 150 µs.
        let p50 = times.quantile(0.5).unwrap();
        assert!((p50 - 0.000_15).abs() < 1e-9, "{p50}");
        assert!(times.quantile(1.0).unwrap() <= 0.000_2);
        assert_eq!(HookTimes::default().quantile(0.5), None);
        assert_eq!(
            HookTimes::parse(&text([1, 1, 1], 0.0), "auth_on_subscribe"),
            None
        );
        assert_eq!(HookTimes::parse("up 1\n", "auth_on_publish"), None);
        // Calls slower than the last finite bound have no quantile.
        let slow = HookTimes::parse(&text([0, 0, 5], 5.0), "auth_on_publish").unwrap();
        assert_eq!(slow.quantile(0.5), None);
    }

    #[test]
    fn metric_sums_cover_every_label_set() {
        let text = "# HELP vernemq_webhooks_auth_on_publish_requests x\n\
                    vernemq_webhooks_auth_on_publish_requests{node=\"a\"} 3\n\
                    vernemq_webhooks_auth_on_publish_requests{node=\"b\"} 4\n\
                    vernemq_webhooks_auth_on_publish_requests_x 100\n";
        assert_eq!(metric_sum(text, VMQ_PUBLISH_REQUESTS), Some(7.0));
        assert_eq!(metric_sum(text, "nothing"), None);
    }

    #[test]
    fn gates_name_their_metrics() {
        assert_eq!(Gate::Mosquitto.prefix(), "");
        assert_eq!(Gate::Vernemq { cache_secs: 0 }.prefix(), "vernemq_");
        assert_eq!(Gate::Vernemq { cache_secs: 5 }.prefix(), "vernemq_cached_");
        assert!(Gate::Vernemq { cache_secs: 5 }.label().contains("5 s"));
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

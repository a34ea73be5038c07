//! The seller service: one long-running process that publishes, delivers keys and rotates
//! (`fastdata seller run --config seller.toml`).
//!
//! For every configured stream it
//! - reads records from standard input (one per line) and/or a plant MQTT broker (one per
//!   message) and batches them into segments ([`batch::Batcher`]): flushed when they reach
//!   `max_bytes` or when their oldest record is `max_delay_ms` old, a record never split, one
//!   longer than a segment can carry refused, logged and counted;
//! - publishes the segments with a [`StreamPublisher`] to every assigned operator, and
//!   re-creates the publisher when the stream's epoch or its operators change on chain or its
//!   upload token nears expiry;
//! - opens a new key epoch ([`FastData::rotate_epoch`]) on its schedule and as soon as a
//!   buyer holding the current keys loses access ([`rotation::rotation_due`]), flushing what
//!   is batched under the old epoch first.
//!
//! Next to them one key-delivery task ([`FastData::run_key_delivery`]) seals due keys to
//! every purchase of the seller's streams at each finalized block. Node, broker and operator
//! errors are logged and retried with back-off; the service ends only when its shutdown
//! future resolves, after flushing every batched record and saving the next sequence number.

pub mod batch;
pub mod config;
pub mod metrics;
pub mod rotation;

use std::{
    collections::{HashMap, HashSet, VecDeque},
    io::BufRead,
    ops::Range,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use fastdata_primitives::{
    escrow::PurchaseState, AccountId, BlockNumber, EpochIndex, Sequence, StreamId,
};
use futures_util::{StreamExt, TryStreamExt};
use rumqttc::{AsyncClient, ConnectReturnCode, Event, Packet, QoS};
use tokio::{
    sync::{mpsc, watch, Mutex},
    time::Instant,
};

use crate::{
    chain::FastData,
    error::Error,
    keystore::Keystore,
    operator::{parse_broker_url, OperatorClient, OperatorEndpoint},
    publish::StreamPublisher,
    seller::Delivery,
};
use batch::{Backoff, Batcher, Segment};
use config::{MqttSource, SellerConfig, StreamConfig, StreamSelector};
use metrics::SellerMetrics;
use rotation::{rotation_due, PurchaseAccess};

/// How often a stream task looks at the finalized head.
const CHAIN_TICK: Duration = Duration::from_secs(3);
/// Blocks between two looks at the stream's view and purchases.
const CHECK_EVERY_BLOCKS: BlockNumber = 2;
/// Lifetime of an upload token, in blocks (a day at 6 s).
const TOKEN_BLOCKS: BlockNumber = 14_400;
/// A publisher is re-created this many blocks before its upload token expires.
const TOKEN_RENEW_MARGIN: BlockNumber = 600;
/// Records waiting between a source and its stream task.
const RECORD_QUEUE: usize = 16_384;
/// Most bytes of segments waiting for a publisher; the oldest are dropped beyond.
const MAX_PENDING_BYTES: usize = 64 * 1024 * 1024;
/// How long a publisher being replaced waits for the brokers' acknowledgements.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the service waits for its stream tasks to flush at shutdown.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(60);
/// Purchases read from the node at once.
const PURCHASE_READS_IN_FLIGHT: usize = 16;
/// Sequences reserved at a time: the keystore's next sequence is raised past a sequence
/// before it is used, so a restart after a crash never reuses one.
const RESERVE: u64 = 32;

/// The sequences a run that did not stop cleanly fills with empty segments: from `next` (where
/// the last run marked it was) below `reserved` (the keystore's next sequence), but only above
/// `held`, the highest sequence each operator of the stream is known to hold. The last run may
/// have published past its marker: a lagging replica lacks some of those segments, and an
/// empty one there would give one sequence two contents. It backfills them from its peers.
fn fill_range(next: Sequence, reserved: Sequence, held: &[Option<Sequence>]) -> Range<Sequence> {
    let above = held
        .iter()
        .flatten()
        .max()
        .map_or(0, |h| h.saturating_add(1));
    next.max(above).min(reserved)..reserved
}

/// The next sequence in a stream's marker file, if there is one.
fn read_marker(path: &Path) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Replaces the marker file at `path` with `next`.
fn write_marker(path: &Path, next: u64) -> std::io::Result<()> {
    let tmp = path.with_extension("next-tmp");
    std::fs::write(&tmp, format!("{next}\n"))?;
    std::fs::rename(&tmp, path)
}

/// Resolves when `stop` turns true (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Sleeps `wait`; false if `stop` came first.
async fn pause(wait: Duration, stop: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        _ = stopped(stop) => false,
        _ = tokio::time::sleep(wait) => true,
    }
}

/// The node connection shared by the service's tasks, re-opened when the node stops
/// answering (a restarted node drops its WebSocket connections).
pub struct ChainConn {
    url: String,
    current: Mutex<(u64, FastData)>,
}

impl ChainConn {
    /// Shares `chain`, reconnecting to `url` when needed.
    pub fn new(url: impl Into<String>, chain: FastData) -> Self {
        Self {
            url: url.into(),
            current: Mutex::new((0, chain)),
        }
    }

    /// The current connection and its generation.
    async fn get(&self) -> (u64, FastData) {
        self.current.lock().await.clone()
    }

    /// Replaces the connection of generation `failed` by a new one (once, however many tasks
    /// saw it fail).
    async fn reconnect(&self, failed: u64) {
        let mut current = self.current.lock().await;
        if current.0 != failed {
            return;
        }
        let account = current.1.account().clone();
        match FastData::connect(&self.url, account).await {
            Ok(chain) => {
                tracing::info!(url = %self.url, "reconnected to the node");
                *current = (failed + 1, chain);
            }
            Err(e) => tracing::warn!(url = %self.url, "node still unreachable: {e}"),
        }
    }
}

/// The seller service (see the [module](self) docs).
pub struct SellerService {
    chain: Arc<ChainConn>,
    config: SellerConfig,
    keystore: Keystore,
    delivery_keystore: Keystore,
    metrics: Arc<SellerMetrics>,
}

impl SellerService {
    /// A service acting as `chain`'s account (reconnecting to the node at `url` when it stops
    /// answering), with the seller's keystore opened twice: once for publishing and rotating
    /// (written), once for the key-delivery task (re-read before each pass).
    pub fn new(
        url: impl Into<String>,
        chain: FastData,
        config: SellerConfig,
        keystore: Keystore,
        delivery_keystore: Keystore,
    ) -> Self {
        Self {
            chain: Arc::new(ChainConn::new(url, chain)),
            config,
            keystore,
            delivery_keystore,
            metrics: Arc::new(SellerMetrics::new()),
        }
    }

    /// The service's counters.
    pub fn metrics(&self) -> Arc<SellerMetrics> {
        self.metrics.clone()
    }

    /// Runs until `shutdown` resolves, then flushes and returns. `stdin` is where the stream
    /// configured with `stdin = true` reads its lines (read on a thread of its own). Fails
    /// only on what a restart cannot fix: a metrics address that cannot be bound, a stdin
    /// stream without `stdin`.
    pub async fn run(
        self,
        stdin: Option<Box<dyn BufRead + Send>>,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> Result<(), Error> {
        let Self {
            chain,
            config,
            keystore,
            delivery_keystore,
            metrics,
        } = self;
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut tasks = Vec::new();
        if let Some(addr) = config.metrics {
            let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
                Error::Io(std::io::Error::new(
                    e.kind(),
                    format!("cannot serve metrics on {addr}: {e}"),
                ))
            })?;
            let mut stop = stop_rx.clone();
            let metrics = metrics.clone();
            tasks.push(tokio::spawn(async move {
                if let Err(e) =
                    metrics::serve(listener, metrics, async move { stopped(&mut stop).await }).await
                {
                    tracing::error!("the metrics server failed: {e}");
                }
            }));
        }
        if config.streams.iter().any(|s| s.stdin) && stdin.is_none() {
            return Err(Error::Io(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "a stream reads standard input but none was given",
            )));
        }
        let shutdown = async move {
            shutdown.await;
            tracing::info!("stopping: flushing batched records");
            let _ = stop_tx.send(true);
        };
        tokio::pin!(shutdown);
        let streams = tokio::select! {
            streams = resolve_streams(&chain, &keystore, &config, stop_rx.clone()) => streams,
            _ = &mut shutdown => {
                for task in tasks {
                    let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
                }
                return Ok(());
            }
        };
        let keystore = Arc::new(Mutex::new(keystore));
        let mut stdin = stdin;
        let mut stream_tasks = Vec::new();
        for (stream, cfg) in streams {
            let (tx, rx) = mpsc::channel(RECORD_QUEUE);
            if cfg.stdin {
                if let Some(reader) = stdin.take() {
                    let tx = tx.clone();
                    // A thread of its own: a blocking read must not hold up the runtime's
                    // shutdown.
                    std::thread::spawn(move || match batch::read_lines(reader, &tx) {
                        Ok(()) => tracing::info!(?stream, "standard input closed"),
                        Err(e) => tracing::error!(?stream, "standard input failed: {e}"),
                    });
                }
            }
            if let Some(source) = cfg.mqtt.clone() {
                tasks.push(tokio::spawn(mqtt_source(
                    source,
                    stream,
                    tx.clone(),
                    stop_rx.clone(),
                )));
            }
            drop(tx);
            tracing::info!(
                ?stream,
                max_bytes = cfg.flush.max_bytes,
                max_delay_ms = cfg.flush.max_delay.as_millis() as u64,
                rotate_every_blocks = cfg.rotate_every_blocks,
                "serving stream"
            );
            let task = StreamTask::new(
                chain.clone(),
                chain.get().await,
                stream,
                cfg,
                keystore.clone(),
                metrics.clone(),
            );
            stream_tasks.push(tokio::spawn(task.run(rx, stop_rx.clone())));
        }
        tasks.push(tokio::spawn(deliver_keys(
            chain.clone(),
            delivery_keystore,
            metrics.clone(),
            stop_rx.clone(),
        )));
        shutdown.await;
        let flushed = tokio::time::timeout(SHUTDOWN_TIMEOUT, async {
            for task in stream_tasks {
                let _ = task.await;
            }
        })
        .await;
        if flushed.is_err() {
            tracing::warn!(
                "streams not flushed within {} s; stopping anyway",
                SHUTDOWN_TIMEOUT.as_secs()
            );
        }
        for task in tasks {
            if tokio::time::timeout(Duration::from_secs(5), task)
                .await
                .is_err()
            {
                tracing::warn!("a task did not stop within 5 s");
            }
        }
        Ok(())
    }
}

/// The configured streams, the `keystore` entry expanded to the keystore's streams that the
/// acting account sells and has not closed (waiting for the node if it is down).
async fn resolve_streams(
    conn: &ChainConn,
    keystore: &Keystore,
    config: &SellerConfig,
    mut stop: watch::Receiver<bool>,
) -> Vec<(StreamId, StreamConfig)> {
    let mut out: Vec<(StreamId, StreamConfig)> = config
        .streams
        .iter()
        .filter_map(|s| match s.stream {
            StreamSelector::Id(id) => Some((id, s.clone())),
            StreamSelector::Keystore => None,
        })
        .collect();
    let Some(all) = config
        .streams
        .iter()
        .find(|s| s.stream == StreamSelector::Keystore)
    else {
        return out;
    };
    let me = conn.get().await.1.account().account_id();
    let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
    let mut candidates: Vec<StreamId> = keystore
        .streams()
        .into_iter()
        .filter(|id| out.iter().all(|(configured, _)| configured != id))
        .collect();
    candidates.sort();
    for id in candidates {
        loop {
            let (generation, chain) = conn.get().await;
            match chain.stream(&id).await {
                Ok(Some(view)) if view.seller == me && view.closed_at.is_none() => {
                    out.push((id, all.clone()));
                    break;
                }
                Ok(_) => {
                    tracing::info!(stream = ?id, "keystore stream skipped: not an open stream of this account");
                    break;
                }
                Err(e) => {
                    let wait = backoff.next_wait();
                    tracing::warn!(stream = ?id, "cannot read the stream, retrying in {wait:?}: {e}");
                    if !pause(wait, &mut stop).await {
                        return out;
                    }
                    conn.reconnect(generation).await;
                }
            }
        }
    }
    if out.is_empty() {
        tracing::warn!("the keystore holds no open stream of this account: nothing to publish");
    }
    out
}

/// The key-delivery task: [`FastData::run_key_delivery`], restarted with back-off after
/// node errors.
async fn deliver_keys(
    conn: Arc<ChainConn>,
    mut keystore: Keystore,
    metrics: Arc<SellerMetrics>,
    mut stop: watch::Receiver<bool>,
) {
    let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
    loop {
        let (generation, chain) = conn.get().await;
        let mut stop_pass = stop.clone();
        let report = |d: &Delivery| match &d.result {
            Ok(()) => {
                metrics.keys_delivered.inc();
                tracing::info!(
                    purchase = d.purchase,
                    epoch = d.epoch,
                    "keys of epoch {} delivered to purchase {}",
                    d.epoch,
                    d.purchase
                );
            }
            Err(e) => tracing::warn!(
                purchase = d.purchase,
                epoch = d.epoch,
                "keys of epoch {} not delivered to purchase {}: {e}",
                d.epoch,
                d.purchase
            ),
        };
        let ran = chain
            .run_key_delivery(&mut keystore, report, async move {
                stopped(&mut stop_pass).await
            })
            .await;
        match ran {
            Ok(()) => return,
            Err(e) => {
                let wait = backoff.next_wait();
                tracing::warn!("key delivery interrupted, restarting in {wait:?}: {e}");
                if !pause(wait, &mut stop).await {
                    return;
                }
                conn.reconnect(generation).await;
            }
        }
    }
}

/// Reads one plant broker's messages as records of `stream` until `stop`, reconnecting with
/// back-off.
async fn mqtt_source(
    source: MqttSource,
    stream: StreamId,
    records: mpsc::Sender<Vec<u8>>,
    mut stop: watch::Receiver<bool>,
) {
    let url = source.url.clone();
    let Some(address) = parse_broker_url(&url) else {
        tracing::error!(broker = %url, "not an MQTT broker URL; no records from it");
        return;
    };
    let client_id = source.client_id.clone().unwrap_or_else(|| {
        format!(
            "fastdata-seller-{}-{}",
            std::process::id(),
            hex::encode(&stream.as_bytes()[..4])
        )
    });
    let mut options = match address.mqtt_options(client_id) {
        Ok(options) => options,
        Err(e) => {
            tracing::error!(broker = %url, "no records from the plant broker: {e}");
            return;
        }
    };
    if let Some(username) = &source.username {
        options.set_credentials(
            username.clone(),
            source.password.clone().unwrap_or_default(),
        );
    }
    options.set_keep_alive(Duration::from_secs(30));
    options.set_clean_session(true);
    // Larger than a segment: an oversize message is refused as a record, not as a packet
    // that breaks the connection.
    let max_packet = 4 * fastdata_primitives::envelope::MAX_PAYLOAD_LEN + 1024;
    options.set_max_packet_size(max_packet, max_packet);
    let (client, mut eventloop) = AsyncClient::new(options, 64);
    let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
    loop {
        tokio::select! {
            _ = stopped(&mut stop) => {
                let _ = client.try_disconnect();
                return;
            }
            event = eventloop.poll() => match event {
                Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                    if ack.code == ConnectReturnCode::Success {
                        backoff.reset();
                        tracing::info!(broker = %url, topics = ?source.topics, "connected to the plant broker");
                        for topic in &source.topics {
                            if let Err(e) = client.try_subscribe(topic.clone(), QoS::AtLeastOnce) {
                                tracing::warn!(broker = %url, %topic, "cannot subscribe: {e}");
                            }
                        }
                    } else {
                        tracing::warn!(broker = %url, "the plant broker refused the connection: {:?}", ack.code);
                    }
                }
                Ok(Event::Incoming(Packet::Publish(message))) => {
                    if records.send(batch::message_record(&message.payload)).await.is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    let wait = backoff.next_wait();
                    tracing::warn!(broker = %url, "plant broker connection lost, retrying in {wait:?}: {e}");
                    if !pause(wait, &mut stop).await {
                        return;
                    }
                }
            }
        }
    }
}

/// A connected publisher and what it was made for.
struct Live {
    publisher: StreamPublisher,
    operators: Vec<AccountId>,
    expiry: BlockNumber,
}

/// One stream: batching, publishing, chain watching and rotation.
struct StreamTask {
    conn: Arc<ChainConn>,
    /// The connection as of the last tick, and its generation.
    chain: FastData,
    generation: u64,
    stream: StreamId,
    config: StreamConfig,
    keystore: Arc<Mutex<Keystore>>,
    metrics: Arc<SellerMetrics>,
    batcher: Batcher,
    pending: VecDeque<Segment>,
    pending_bytes: usize,
    live: Option<Live>,
    retry_at: Option<Instant>,
    backoff: Backoff,
    publishers_opened: u64,
    /// The next sequence, once a publisher was opened by this process.
    next: Option<u64>,
    /// The keystore's next sequence: every sequence below it may be in use.
    reserved: u64,
    /// The next sequence last written to [`Self::marker`].
    marked: Option<u64>,
    last_check: Option<BlockNumber>,
    first_seen: HashMap<EpochIndex, BlockNumber>,
    /// Purchases closed without the current epoch's keys: they never get newer keys.
    done: HashSet<u64>,
}

impl StreamTask {
    fn new(
        conn: Arc<ChainConn>,
        chain: (u64, FastData),
        stream: StreamId,
        config: StreamConfig,
        keystore: Arc<Mutex<Keystore>>,
        metrics: Arc<SellerMetrics>,
    ) -> Self {
        Self {
            batcher: Batcher::new(config.flush),
            conn,
            generation: chain.0,
            chain: chain.1,
            stream,
            config,
            keystore,
            metrics,
            pending: VecDeque::new(),
            pending_bytes: 0,
            live: None,
            retry_at: None,
            backoff: Backoff::new(Duration::from_secs(1), Duration::from_secs(60)),
            publishers_opened: 0,
            next: None,
            reserved: 0,
            marked: None,
            last_check: None,
            first_seen: HashMap::new(),
            done: HashSet::new(),
        }
    }

    async fn run(mut self, mut records: mpsc::Receiver<Vec<u8>>, mut stop: watch::Receiver<bool>) {
        self.open_publisher().await;
        let mut open = true;
        let mut tick = tokio::time::interval(CHAIN_TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let deadline = self.batcher.deadline();
            let retry = self
                .retry_at
                .filter(|_| self.live.is_none() && !self.pending.is_empty());
            tokio::select! {
                _ = stopped(&mut stop) => break,
                record = records.recv(), if open => match record {
                    Some(record) => self.record(&record),
                    None => {
                        open = false;
                        tracing::info!(stream = ?self.stream, "every record source closed");
                        self.flush_batch();
                    }
                },
                _ = tokio::time::sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => {
                    if let Some(segment) = self.batcher.take_due(Instant::now()) {
                        self.queue(segment);
                    }
                }
                _ = tokio::time::sleep_until(retry.unwrap_or_else(Instant::now)), if retry.is_some() => {}
                _ = tick.tick() => self.watch_chain().await,
            }
            self.publish_pending().await;
        }
        // Shutdown: what the sources already handed over is published.
        while let Ok(record) = records.try_recv() {
            self.record(&record);
        }
        self.flush_batch();
        self.retry_at = None;
        self.publish_pending().await;
        if !self.pending.is_empty() {
            tracing::warn!(
                stream = ?self.stream,
                segments = self.pending.len(),
                "segments not published at shutdown: no operator reachable"
            );
        }
        self.drop_publisher("shutdown", CLOSE_TIMEOUT).await;
        self.release_reservation().await;
        tracing::info!(stream = ?self.stream, "stream stopped");
    }

    fn record(&mut self, record: &[u8]) {
        self.metrics.records_in.inc();
        match self.batcher.push(record, Instant::now()) {
            Ok(segments) => segments.into_iter().for_each(|s| self.queue(s)),
            Err(oversize) => {
                self.metrics.records_refused.inc();
                tracing::error!(stream = ?self.stream, bytes = oversize.len, "{oversize}");
            }
        }
    }

    fn flush_batch(&mut self) {
        if let Some(segment) = self.batcher.take() {
            self.queue(segment);
        }
    }

    fn queue(&mut self, segment: Segment) {
        self.pending_bytes += segment.payload.len();
        self.pending.push_back(segment);
        while self.pending_bytes > MAX_PENDING_BYTES {
            let Some(dropped) = self.pending.pop_front() else {
                break;
            };
            self.pending_bytes -= dropped.payload.len();
            self.metrics.segments_dropped.inc();
            tracing::error!(
                stream = ?self.stream,
                records = dropped.records,
                bytes = dropped.payload.len(),
                "segment dropped: more than {MAX_PENDING_BYTES} bytes wait for a publisher"
            );
        }
    }

    /// Publishes the waiting segments, connecting a publisher first if needed.
    async fn publish_pending(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        if self.live.is_none() {
            if self.retry_at.is_some_and(|at| at > Instant::now()) {
                return;
            }
            self.open_publisher().await;
        }
        while let Some(sequence) = self.live.as_ref().map(|l| l.publisher.next_sequence()) {
            if self.pending.is_empty() {
                break;
            }
            if sequence >= self.reserved {
                if let Err(e) = self.reserve(sequence).await {
                    tracing::warn!(stream = ?self.stream, "cannot reserve sequences, not publishing yet: {e}");
                    return;
                }
            }
            let (Some(live), Some(segment)) = (self.live.as_mut(), self.pending.front()) else {
                return;
            };
            match live.publisher.publish(&segment.payload).await {
                Ok(sequence) => {
                    self.next = Some(sequence + 1);
                    self.metrics.segments_published.inc();
                    tracing::info!(
                        stream = ?self.stream,
                        epoch = live.publisher.epoch(),
                        sequence,
                        records = segment.records,
                        bytes = segment.payload.len(),
                        "segment published"
                    );
                    self.pending_bytes -= segment.payload.len();
                    self.pending.pop_front();
                }
                Err(e) => {
                    tracing::warn!(stream = ?self.stream, "publishing failed, reconnecting: {e}");
                    self.drop_publisher("publishing failed", CLOSE_TIMEOUT)
                        .await;
                    self.schedule_retry();
                    return;
                }
            }
        }
    }

    fn schedule_retry(&mut self) {
        let wait = self.backoff.next_wait();
        self.retry_at = Some(Instant::now() + wait);
        tracing::info!(stream = ?self.stream, "next publisher attempt in {wait:?}");
    }

    /// Connects a publisher at the stream's current epoch to its current operators.
    async fn open_publisher(&mut self) {
        match self.try_open_publisher().await {
            Ok(live) => {
                if self.publishers_opened > 0 {
                    self.metrics.publisher_restarts.inc();
                }
                self.publishers_opened += 1;
                tracing::info!(
                    stream = ?self.stream,
                    epoch = live.publisher.epoch(),
                    operators = live.operators.len(),
                    next_sequence = live.publisher.next_sequence(),
                    token_expiry = live.expiry,
                    "publisher connected"
                );
                self.live = Some(live);
                self.retry_at = None;
                self.backoff.reset();
            }
            Err(e) => {
                tracing::warn!(stream = ?self.stream, "cannot connect a publisher: {e}");
                self.schedule_retry();
            }
        }
    }

    async fn try_open_publisher(&mut self) -> Result<Live, Error> {
        let stream = self.stream;
        let view = self
            .chain
            .stream(&stream)
            .await?
            .ok_or_else(|| Error::NotFound(format!("no stream {stream:?} on chain")))?;
        if view.closed_at.is_some() {
            return Err(Error::NotFound(format!(
                "stream {stream:?} is closed: nothing more can be published"
            )));
        }
        let (keys, next) = {
            let mut keystore = self.keystore.lock().await;
            if let Err(e) = keystore.reload() {
                tracing::warn!("keystore not re-read: {e}");
            }
            let path = keystore.path().display().to_string();
            let keys = keystore.epoch_keys(&stream, view.epoch).ok_or_else(|| Error::Keystore {
                path: path.clone(),
                detail: format!(
                    "no keys of epoch {} of stream {stream:?}; use the keystore that registered or rotated it",
                    view.epoch
                ),
            })?;
            if view.epoch_commitment != Some(keys.commitment()) {
                return Err(Error::Keystore {
                    path,
                    detail: format!(
                        "the keys of epoch {} do not match the stream's on-chain commitment",
                        view.epoch
                    ),
                });
            }
            let stored = keystore
                .stream(&stream)
                .map(|s| s.next_sequence)
                .unwrap_or(0);
            self.reserved = self.reserved.max(stored);
            // This process continues where it is; a new one where the last one stopped, or
            // after a crash (its marker left behind) from the last sequence it marked, filling
            // what it reserved but may not have used.
            let next = match self.next {
                Some(next) => next,
                None => read_marker(&self.marker_path(&keystore)).map_or(stored, |m| m.min(stored)),
            };
            keystore.record_epoch_start(&stream, view.epoch, next);
            keystore.save()?;
            (keys, next)
        };
        let endpoints = self.chain.stream_endpoints(&stream).await?;
        let crashed = self.next.is_none() && next < self.reserved;
        let start = if crashed {
            let held = self.operator_heads(&view.operators, &endpoints).await?;
            let fill = fill_range(next, self.reserved, &held);
            if fill.start > next {
                tracing::warn!(
                    ?stream,
                    from = next,
                    to = fill.start,
                    "the last run published these sequences (an operator holds them): not filled, lagging replicas backfill them"
                );
            }
            fill.start
        } else {
            next
        };
        let expiry = self
            .chain
            .finalized_number()
            .await?
            .saturating_add(TOKEN_BLOCKS);
        let mut publisher = StreamPublisher::connect(
            self.chain.account(),
            self.chain.genesis(),
            stream,
            view.epoch,
            keys,
            &endpoints,
            expiry,
            start,
        )
        .await?;
        if crashed && start < self.reserved {
            // Empty segments close the gap a crash left: buyers and the chain's head need
            // every sequence, and operators keep a segment they already hold.
            tracing::warn!(
                ?stream,
                from = start,
                to = self.reserved,
                "the last run did not stop cleanly: filling the sequences it reserved with empty segments"
            );
            while publisher.next_sequence() < self.reserved {
                publisher.publish(&[]).await?;
            }
        }
        self.next = Some(publisher.next_sequence());
        let mut operators = view.operators;
        operators.sort();
        Ok(Live {
            publisher,
            operators,
            expiry,
        })
    }

    /// The highest sequence each of `operators` is known to hold (for [`fill_range`]): what it
    /// answers itself ([`OperatorClient::stored_head`]) and at least what it attested on
    /// chain. An operator that cannot be asked is logged and counts with its attestation only.
    async fn operator_heads(
        &self,
        operators: &[AccountId],
        endpoints: &[OperatorEndpoint],
    ) -> Result<Vec<Option<Sequence>>, Error> {
        let stream = self.stream;
        let attested = self.chain.attested_heads(&stream).await?;
        let genesis = self.chain.genesis();
        let asked = futures_util::future::join_all(operators.iter().map(|account| async move {
            let Some(endpoint) = endpoints.iter().find(|e| &e.account == account) else {
                return Err(Error::NotFound(format!(
                    "operator {account} has no registered endpoints"
                )));
            };
            OperatorClient::new(endpoint.clone(), genesis)
                .stored_head(&stream)
                .await
        }))
        .await;
        Ok(operators
            .iter()
            .zip(asked)
            .map(|(account, answer)| {
                let on_chain = attested
                    .iter()
                    .find(|a| &a.operator == account)
                    .and_then(|a| a.head.checked_sub(1));
                match answer {
                    Ok(held) => held.max(on_chain),
                    Err(e) => {
                        tracing::warn!(
                            ?stream,
                            operator = %account,
                            attested_up_to = ?on_chain,
                            "cannot learn what this operator holds; not filling at or below what the others and its attestation report: {e}"
                        );
                        on_chain
                    }
                }
            })
            .collect())
    }

    /// Closes the publisher (waiting a while for acknowledgements) and marks where the next
    /// one continues.
    async fn drop_publisher(&mut self, why: &str, timeout: Duration) {
        let Some(live) = self.live.take() else {
            return;
        };
        if let Err(e) = live.publisher.close(timeout).await {
            // The operators that missed segments backfill them from a replica.
            tracing::warn!(stream = ?self.stream, "closing the publisher ({why}): {e}");
        }
        self.mark().await;
    }

    /// The file marking that this stream's publishing did not stop cleanly, holding the next
    /// sequence as of its last write: next to the keystore, `.<keystore file>.<stream>.next`.
    fn marker_path(&self, keystore: &Keystore) -> PathBuf {
        let name = keystore
            .path()
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        keystore.path().with_file_name(format!(
            ".{name}.{}.next",
            hex::encode(self.stream.as_bytes())
        ))
    }

    /// Writes the next sequence to the marker if it changed.
    async fn mark(&mut self) {
        let Some(next) = self.next.filter(|n| self.marked != Some(*n)) else {
            return;
        };
        let path = self.marker_path(&*self.keystore.lock().await);
        match write_marker(&path, next) {
            Ok(()) => self.marked = Some(next),
            Err(e) => tracing::warn!(stream = ?self.stream, "cannot write {}: {e}", path.display()),
        }
    }

    /// Raises the keystore's next sequence to `sequence + RESERVE` before `sequence` is used,
    /// the marker written first (so a crash after the reservation fills from it).
    async fn reserve(&mut self, sequence: u64) -> Result<(), Error> {
        self.next = Some(sequence);
        self.marked = None;
        self.mark().await;
        if self.marked != Some(sequence) {
            return Err(Error::Io(std::io::Error::other(
                "the sequence marker is not written",
            )));
        }
        let mut keystore = self.keystore.lock().await;
        if let Err(e) = keystore.reload() {
            tracing::warn!("keystore not re-read: {e}");
        }
        let secrets = keystore.stream_mut(&self.stream);
        let reserved = secrets.next_sequence.max(sequence + RESERVE);
        secrets.next_sequence = reserved;
        keystore.save()?;
        self.reserved = reserved;
        Ok(())
    }

    /// At a clean stop: the keystore's next sequence goes back to the first unused one (unless
    /// something else raised it) and the marker is removed.
    async fn release_reservation(&mut self) {
        let Some(next) = self.next else {
            return;
        };
        let mut keystore = self.keystore.lock().await;
        if let Err(e) = keystore.reload() {
            tracing::warn!("keystore not re-read: {e}");
        }
        let secrets = keystore.stream_mut(&self.stream);
        if secrets.next_sequence == self.reserved {
            secrets.next_sequence = next;
        }
        if let Err(e) = keystore.save() {
            tracing::warn!(stream = ?self.stream, "next sequence not saved: {e}");
            return;
        }
        let path = self.marker_path(&keystore);
        if let Err(e) = std::fs::remove_file(&path) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(stream = ?self.stream, "cannot remove {}: {e}", path.display());
            }
        }
    }

    /// At every tick: saves the next sequence; every few blocks, follows the stream's epoch,
    /// operators and purchases and rotates when due.
    async fn watch_chain(&mut self) {
        self.mark().await;
        (self.generation, self.chain) = self.conn.get().await;
        let now = match self.chain.finalized_number().await {
            Ok(now) => now,
            Err(e) => {
                tracing::warn!(stream = ?self.stream, "node unreachable, reconnecting: {e}");
                self.conn.reconnect(self.generation).await;
                return;
            }
        };
        if self
            .last_check
            .is_some_and(|last| now < last.saturating_add(CHECK_EVERY_BLOCKS))
        {
            return;
        }
        match self.check(now).await {
            Ok(()) => self.last_check = Some(now),
            Err(e) => tracing::warn!(stream = ?self.stream, "chain check failed, retrying: {e}"),
        }
    }

    async fn check(&mut self, now: BlockNumber) -> Result<(), Error> {
        let stream = self.stream;
        let view = self
            .chain
            .stream(&stream)
            .await?
            .ok_or_else(|| Error::NotFound(format!("no stream {stream:?} on chain")))?;
        if let Some(live) = &self.live {
            let mut operators = view.operators.clone();
            operators.sort();
            // A restarted daemon or broker drops the publisher's login: only a new upload
            // session gets it back (the operator backfills what it missed from a replica).
            let refused = live.publisher.status().into_iter().find(|s| {
                !s.connected
                    && s.last_error.as_deref().is_some_and(|e| {
                        e.contains("NotAuthorized") || e.contains("BadUserNamePassword")
                    })
            });
            let restart = if live.publisher.epoch() != view.epoch {
                Some(format!(
                    "the stream is at epoch {} (rotated elsewhere), not {}",
                    view.epoch,
                    live.publisher.epoch()
                ))
            } else if operators != live.operators {
                Some(format!(
                    "its operators changed ({} → {})",
                    live.operators.len(),
                    operators.len()
                ))
            } else if let Some(link) = &refused {
                Some(format!("the broker of {} refuses its login", link.operator))
            } else if now.saturating_add(TOKEN_RENEW_MARGIN) >= live.expiry {
                Some(format!("its upload token expires at block {}", live.expiry))
            } else {
                None
            };
            if let Some(why) = restart {
                tracing::info!(?stream, "re-creating the publisher: {why}");
                // A refused link never acknowledges: do not wait for it.
                let timeout = if refused.is_some() {
                    Duration::from_secs(1)
                } else {
                    CLOSE_TIMEOUT
                };
                self.drop_publisher(&why, timeout).await;
                self.open_publisher().await;
            }
        }
        if view.closed_at.is_some() {
            return Ok(());
        }
        let opened_at = {
            let keystore = self.keystore.lock().await;
            keystore
                .epochs(&stream)
                .into_iter()
                .find(|r| r.epoch == view.epoch)
                .and_then(|r| r.opened_at)
        }
        .or((view.epoch == 0).then_some(view.created_at))
        .unwrap_or_else(|| *self.first_seen.entry(view.epoch).or_insert(now));
        let ids: Vec<u64> = self
            .chain
            .purchases_of_offer(view.offer)
            .await?
            .into_iter()
            .filter(|id| !self.done.contains(id))
            .collect();
        let chain = &self.chain;
        let purchases: Vec<_> = futures_util::stream::iter(
            ids.into_iter()
                .map(|id| async move { chain.purchase(id).await }),
        )
        .buffered(PURCHASE_READS_IN_FLIGHT)
        .try_collect()
        .await?;
        let mut accesses = Vec::new();
        for p in purchases.into_iter().flatten() {
            let open = matches!(p.state, PurchaseState::AwaitingKeys | PurchaseState::Active);
            if !open && !p.access.epochs.contains(&view.epoch) {
                self.done.insert(p.id);
                continue;
            }
            accesses.push(PurchaseAccess::from(&p));
        }
        let Some(reason) = rotation_due(
            now,
            view.epoch,
            opened_at,
            self.config.rotate_every_blocks,
            &accesses,
        ) else {
            return Ok(());
        };
        tracing::info!(?stream, epoch = view.epoch, "rotating: {reason}");
        // What is batched goes out under the old epoch.
        self.flush_batch();
        self.publish_pending().await;
        self.drop_publisher("rotation", CLOSE_TIMEOUT).await;
        let epoch = {
            let mut keystore = self.keystore.lock().await;
            if let Err(e) = keystore.reload() {
                tracing::warn!("keystore not re-read: {e}");
            }
            self.chain.rotate_epoch(&mut keystore, &stream).await?
        };
        self.metrics.rotations.inc();
        tracing::info!(?stream, epoch, "rotated to epoch {epoch} because {reason}");
        self.retry_at = None;
        self.backoff.reset();
        self.open_publisher().await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_crash_filler_stays_above_every_operator_head() {
        // Marker at 10, reserved to 42; the up-to-date replica holds 0..=17, the lagging one
        // 0..=12, a third answered nothing (no attestation, not reachable).
        let held = [Some(17), Some(12), None];
        let fill = fill_range(10, 42, &held);
        assert_eq!(fill, 18..42);
        assert!(fill.clone().all(|sequence| sequence > 17));
        // Whatever the order of the answers.
        assert_eq!(fill_range(10, 42, &[None, Some(12), Some(17)]), 18..42);
        // Nothing held above the marker: fill from it.
        assert_eq!(fill_range(10, 42, &[Some(9), Some(3)]), 10..42);
        assert_eq!(fill_range(10, 42, &[None, None]), 10..42);
        assert_eq!(fill_range(0, 32, &[]), 0..32);
        // The last run used everything it reserved: nothing to fill.
        assert!(fill_range(10, 42, &[Some(41)]).is_empty());
        // An operator claiming sequences never reserved: nothing filled, nothing overflows.
        assert_eq!(fill_range(10, 42, &[Some(99)]), 42..42);
        assert_eq!(fill_range(10, 42, &[Some(u64::MAX)]), 42..42);
    }
}

//! Ingest: subscribe to every assigned stream on the local broker and store each segment.
//!
//! # "An acknowledged segment is on disk"
//!
//! The daemon's broker session is persistent (`clean_session = false`, fixed client id) and
//! its subscriptions are QoS 1 with **manual acks**. A received PUBLISH is validated, written
//! in a redb transaction committed with `Durability::Immediate` (fsync), and only then is its
//! PUBACK sent. If the daemon dies between receive and commit, the broker still holds the
//! message as unacknowledged in the daemon's session and redelivers it on reconnect; if it
//! dies after the commit but before the PUBACK, the redelivered copy is a duplicate and is
//! ignored (`(stream, sequence)` is the key). Segments are written in groups (all that arrived
//! while the previous commit ran, up to [`MAX_BATCH`]) so one fsync covers many segments.
//!
//! Invalid segments (not an envelope, oversized, header naming another stream, future epoch,
//! unknown topic, beyond the stream's hosting quota or with its hosting funds exhausted) are
//! acknowledged without being stored — redelivering them would not make
//! them valid — and counted in `segments_in{result="refused"}`.
//!
//! After storing, the highest stored sequence per stream is compared with the new one; a jump
//! asks the replicator to backfill the hole from another operator.
//!
//! The client is the supervised task `ingest` ([`run`]): a lost broker connection or a store
//! error ends the run, and the supervisor restarts it with back-off; nothing unstored is
//! acknowledged, so nothing is lost meanwhile.
//!
//! On a VerneMQ cluster (`broker.hosts`) each run connects to the first node that accepts it,
//! trying them in turn from the one it last connected to ([`BrokerNodes`]), so a node that
//! goes down does not stop ingest. The persistent session is the cluster's and follows the
//! client to another node (while a dead node is still a cluster member, VerneMQ refuses logins
//! until it is back or removed: see the README).

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use fastdata_primitives::tokens::TokenError;
use fastdata_primitives::{Sequence, StreamId};
use rumqttc::{
    AsyncClient, ConnAck, Event, EventLoop, MqttOptions, Packet, Publish, QoS, SubscribeFilter,
    TlsConfiguration, Transport,
};
use tokio::sync::{broadcast, mpsc};

use crate::{
    auth::{parse_stream_topic, stream_topic, Authorizer, Refusal},
    chain::ChainEvent,
    config::BrokerNode,
    metrics::Metrics,
    replication::BackfillRequest,
    store::{Insert, NewSegment, Store},
    supervisor::{TaskContext, TaskError},
};

/// Largest group of segments committed together.
pub const MAX_BATCH: usize = 1024;

/// Most QoS 1 deliveries the broker may have in flight (sent, not yet acknowledged) to one
/// client: the `max_inflight_messages` the brokers are configured with (see `mosquitto.conf`,
/// `vernemq.conf`). It bounds what the daemon holds unacknowledged when the broker keeps to
/// it; liveness does not depend on it (Mosquitto 2.0.11, Debian 12's, overshoots it: its
/// in-flight quota accounting was fixed in 2.0.13).
pub const BROKER_MAX_INFLIGHT: usize = 1000;

/// Capacity of the ingest client's request queue (acks, subscriptions): unbounded in effect
/// (the queue grows as used; its limit is far above anything outstanding).
/// The event loop stops reading while the writer's queue is full, so the writer's acks must
/// never wait for the event loop, or each would wait for the other. The queue holds at most
/// one ack per message received and not yet acknowledged on the wire, which the broker's
/// in-flight window and the writer's queue bound in practice.
const REQUEST_CAPACITY: usize = 1 << 24;

/// The broker nodes the ingest client connects to (`broker.hosts`, or its one host and
/// port), tried in turn. Clones share the node last connected to, so every run of the
/// supervised task starts with it.
#[derive(Clone, Debug)]
pub struct BrokerNodes {
    nodes: Arc<[BrokerNode]>,
    last: Arc<AtomicUsize>,
}

impl BrokerNodes {
    /// The nodes, in the order first tried.
    pub fn new(nodes: Vec<BrokerNode>) -> Self {
        Self {
            nodes: nodes.into(),
            last: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// The order to try them in: from the node last connected to, round the list.
    fn order(&self) -> impl Iterator<Item = (usize, &BrokerNode)> {
        let start = self.last.load(Ordering::Relaxed);
        let n = self.nodes.len();
        (0..n).map(move |i| {
            let index = (start + i) % n;
            (index, &self.nodes[index])
        })
    }

    /// Notes that node `index` accepted the connection.
    fn connected(&self, index: usize) {
        self.last.store(index, Ordering::Relaxed);
    }
}

/// How the ingest client reaches the broker.
#[derive(Clone, Debug)]
pub struct IngestConfig {
    /// Broker nodes.
    pub brokers: BrokerNodes,
    /// Username of the daemon's own broker account.
    pub username: String,
    /// Its password.
    pub password: String,
    /// Fixed client id (the persistent session hangs on it).
    pub client_id: String,
    /// TLS settings to connect over TLS with (`broker.tls`); plain TCP without.
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

/// Validates and stores segments; tracks the highest sequence per stream for gap detection.
pub struct SegmentWriter {
    auth: Arc<Authorizer>,
    store: Arc<Store>,
    metrics: Arc<Metrics>,
    highest: HashMap<StreamId, Sequence>,
    backfill: Option<mpsc::Sender<BackfillRequest>>,
}

impl SegmentWriter {
    /// A writer; gaps are reported to `backfill` if given.
    pub fn new(
        auth: Arc<Authorizer>,
        store: Arc<Store>,
        metrics: Arc<Metrics>,
        backfill: Option<mpsc::Sender<BackfillRequest>>,
    ) -> Self {
        Self {
            auth,
            store,
            metrics,
            highest: HashMap::new(),
            backfill,
        }
    }

    /// Validates one received message: the topic must be a hosted stream's, the payload a
    /// valid envelope of that stream.
    pub fn validate(&self, topic: &str, payload: &[u8]) -> Option<NewSegment> {
        self.check(topic, payload).ok()
    }

    /// [`Self::validate`], with the refusal reason of `segments_refused_total`.
    fn check(&self, topic: &str, payload: &[u8]) -> Result<NewSegment, &'static str> {
        let Some(stream) = parse_stream_topic(topic) else {
            tracing::info!(%topic, "segment refused: not a stream topic");
            return Err("not_stream_topic");
        };
        match self.auth.check_segment(&stream, payload) {
            Ok(header) => Ok(NewSegment {
                stream,
                sequence: header.sequence,
                envelope: payload.to_vec(),
            }),
            Err(refusal) => {
                tracing::info!(%topic, "segment refused: {refusal}");
                Err(match &refusal {
                    Refusal::Segment(fault) => fault.reason(),
                    Refusal::Token(TokenError::UnknownStream) => "unknown_stream",
                    other => other.code(),
                })
            }
        }
    }

    /// Stores a group of messages durably (blocking). Returns `Err` if the store failed; then
    /// nothing may be acknowledged.
    pub fn write(
        &mut self,
        messages: &[(String, Vec<u8>)],
    ) -> Result<(), crate::store::StoreError> {
        let mut segments = Vec::with_capacity(messages.len());
        for (topic, payload) in messages {
            match self.check(topic, payload) {
                Ok(segment) => segments.push(segment),
                Err(reason) => {
                    self.metrics.segment("refused");
                    self.metrics.segment_refused(reason);
                }
            }
        }
        if segments.is_empty() {
            return Ok(());
        }
        let view = self.auth.view();
        let now = view.finalized_block();
        let inserted = self
            .store
            .insert_segments_within(&segments, now, |stream| {
                view.stream(stream).map_or(0, |s| s.quota_bytes)
            })?;
        for (segment, outcome) in segments.iter().zip(inserted) {
            match outcome {
                Insert::New => {}
                Insert::Duplicate => {
                    self.metrics.segment("duplicate");
                    self.metrics.segments_dropped("duplicate", 1);
                    continue;
                }
                Insert::OverQuota => {
                    tracing::info!(
                        stream = ?segment.stream,
                        sequence = segment.sequence,
                        "segment refused: the stream's hosting quota is used up or unfunded"
                    );
                    self.metrics.segment("refused");
                    self.metrics.segment_refused("over_quota");
                    continue;
                }
            }
            self.metrics.segment("stored");
            self.metrics
                .segment_bytes_in
                .inc_by(segment.envelope.len() as u64);
            self.observe(segment.stream, segment.sequence)?;
        }
        Ok(())
    }

    /// Notes that `sequence` of `stream` is stored; asks for a backfill on a forward jump.
    fn observe(
        &mut self,
        stream: StreamId,
        sequence: Sequence,
    ) -> Result<(), crate::store::StoreError> {
        let highest = match self.highest.get(&stream) {
            Some(h) => Some(*h),
            None => {
                // First segment of this stream seen by this process: the highest stored below it.
                let below = if sequence == 0 {
                    Vec::new()
                } else {
                    self.store.sequences(&stream, 0, sequence - 1)?
                };
                below.last().copied()
            }
        };
        match highest {
            Some(h) if sequence > h.saturating_add(1) => {
                let request = BackfillRequest {
                    stream,
                    from: h + 1,
                    to: sequence - 1,
                };
                tracing::info!(?request, "sequence gap, asking for backfill");
                if let Some(tx) = &self.backfill {
                    if tx.try_send(request).is_err() {
                        tracing::warn!("backfill queue full; the gap will be retried on the next assignment sync");
                    }
                }
                self.highest.insert(stream, sequence);
            }
            Some(h) if sequence <= h => {}
            _ => {
                self.highest.insert(stream, sequence);
            }
        }
        Ok(())
    }
}

/// Topics per SUBSCRIBE packet when (re)subscribing to every hosted stream.
const SUBSCRIBE_CHUNK: usize = 256;

/// One run of the ingest client (a supervised task, see [`crate::supervisor`]): connects to
/// the broker, subscribes to every hosted stream, reports itself up once subscribed, and
/// stores what arrives until the daemon stops (`Ok`). A broker connection that fails or
/// drops, or a write the store refuses, ends the run with an error; the supervisor starts a
/// new one after its back-off, and the broker redelivers every unacknowledged segment to the
/// persistent session.
pub async fn run(
    config: IngestConfig,
    writer: SegmentWriter,
    mut chain_events: broadcast::Receiver<ChainEvent>,
    mut ctx: TaskContext,
) -> Result<(), TaskError> {
    let view = writer.auth.view().clone();
    let (client, mut eventloop, ack, node) = tokio::select! {
        _ = ctx.stopped() => return Ok(()),
        connected = connect(&config) => connected?,
    };
    tracing::info!(%node, session_present = ack.session_present, "ingest connected to the broker");

    // Messages go to a blocking writer thread through a bounded channel (back-pressure: when
    // the disk is slow the event loop stops reading and the broker queues). The writer's acks
    // never block (see REQUEST_CAPACITY), so it drains the channel while the loop waits.
    let (tx, rx) = mpsc::channel::<Publish>(4 * MAX_BATCH);
    let mut writer_task = tokio::spawn(write_loop(writer, rx, client.clone()));
    let mut writer_done = false;
    // SUBACKs still awaited from the subscriptions sent at CONNACK.
    let mut awaiting_subacks = subscribe_all(&client, &view);
    if awaiting_subacks == 0 {
        ctx.ready();
    }

    let result = loop {
        tokio::select! {
            _ = ctx.stopped() => break Ok(()),
            joined = &mut writer_task => {
                writer_done = true;
                break Err(match joined {
                    Ok(Err(e)) => e,
                    Ok(Ok(())) => TaskError::transient("the segment writer stopped"),
                    Err(e) => TaskError::transient(format!("the segment writer crashed: {e}")),
                });
            }
            event = chain_events.recv() => match event {
                Ok(ChainEvent::StreamAssigned(a)) => {
                    if let Err(e) = client.subscribe(stream_topic(&a.stream), QoS::AtLeastOnce).await {
                        tracing::warn!("cannot subscribe to stream: {e}");
                    }
                }
                Ok(ChainEvent::StreamUnassigned { stream }) => {
                    if let Err(e) = client.unsubscribe(stream_topic(&stream)).await {
                        tracing::warn!("cannot unsubscribe: {e}");
                    }
                }
                Ok(_) => {}
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(missed = n, "ingest lagged behind chain events; resubscribing");
                    for s in view.streams() {
                        let _ = client.subscribe(stream_topic(&s.stream), QoS::AtLeastOnce).await;
                    }
                }
                Err(broadcast::error::RecvError::Closed) => {
                    break Err(TaskError::transient("the chain view's events ended"));
                }
            },
            polled = eventloop.poll() => match polled {
                Ok(Event::Incoming(Packet::SubAck(_))) if awaiting_subacks > 0 => {
                    awaiting_subacks -= 1;
                    if awaiting_subacks == 0 {
                        ctx.ready();
                    }
                }
                Ok(Event::Incoming(Packet::Publish(publish))) => {
                    // A closed channel means the writer stopped: its error ends the run at
                    // the next turn, and the segment is not acknowledged.
                    let _ = tx.send(publish).await;
                }
                Ok(_) => {}
                Err(e) => break Err(TaskError::transient(format!(
                    "broker connection to {node}: {e}"
                ))),
            },
        }
    };
    drop(tx);
    if !writer_done {
        match writer_task.await {
            Ok(Err(e)) => tracing::warn!("segment writer: {e}"),
            Err(e) => tracing::warn!("segment writer crashed: {e}"),
            Ok(Ok(())) => {}
        }
    }
    if result.is_ok() {
        let _ = client.disconnect().await;
        // Let the DISCONNECT go out.
        let _ = tokio::time::timeout(Duration::from_millis(200), async {
            while eventloop.poll().await.is_ok() {}
        })
        .await;
    }
    result
}

/// The MQTT options of the ingest connection to `node`.
fn options(config: &IngestConfig, node: &BrokerNode) -> MqttOptions {
    let mut options = MqttOptions::new(config.client_id.clone(), node.host.clone(), node.port);
    options.set_credentials(config.username.clone(), config.password.clone());
    if let Some(tls) = &config.tls {
        options.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
            tls.clone(),
        )));
    }
    options.set_clean_session(false);
    options.set_manual_acks(true);
    options.set_keep_alive(Duration::from_secs(30));
    let max = fastdata_primitives::envelope::MAX_ENVELOPE_LEN + 1024;
    options.set_max_packet_size(max, max);
    options
}

/// Connects to the first broker node that accepts the ingest client, trying them in turn from
/// the one last connected to. Returns the client, its connected event loop, the CONNACK and
/// the node; an error naming every node's failure if none accepts.
async fn connect(
    config: &IngestConfig,
) -> Result<(AsyncClient, EventLoop, ConnAck, BrokerNode), TaskError> {
    let mut failures = Vec::new();
    for (index, node) in config.brokers.order() {
        let (client, mut eventloop) = AsyncClient::new(options(config, node), REQUEST_CAPACITY);
        match eventloop.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                config.brokers.connected(index);
                return Ok((client, eventloop, ack, node.clone()));
            }
            Ok(event) => failures.push(format!("{node}: {event:?} before CONNACK")),
            Err(e) => {
                tracing::warn!(%node, "the broker node refuses the ingest connection: {e}");
                failures.push(format!("{node}: {e}"));
            }
        }
    }
    if failures.is_empty() {
        return Err(TaskError::fatal("no broker node configured"));
    }
    Err(TaskError::transient(format!(
        "no broker node accepts the ingest connection ({})",
        failures.join("; ")
    )))
}

/// Subscribes to every hosted stream (in chunks of [`SUBSCRIBE_CHUNK`]); returns the number
/// of SUBACKs to await.
fn subscribe_all(client: &AsyncClient, view: &Arc<dyn crate::chain::ChainView>) -> usize {
    let topics: Vec<SubscribeFilter> = view
        .streams()
        .iter()
        .map(|s| SubscribeFilter::new(stream_topic(&s.stream), QoS::AtLeastOnce))
        .collect();
    let mut sent = 0;
    for chunk in topics.chunks(SUBSCRIBE_CHUNK) {
        match client.try_subscribe_many(chunk.to_vec()) {
            Ok(()) => sent += 1,
            Err(e) => tracing::warn!("cannot subscribe: {e}"),
        }
    }
    sent
}

/// Stores what arrives in groups and acknowledges each group once it is committed. Ends with
/// `Ok` when the channel closes, with an error when the store refuses a group (nothing of it
/// is acknowledged: the broker redelivers it to the next session).
async fn write_loop(
    writer: SegmentWriter,
    mut rx: mpsc::Receiver<Publish>,
    client: AsyncClient,
) -> Result<(), TaskError> {
    let mut writer = Some(writer);
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(p) => batch.push(p),
                Err(_) => break,
            }
        }
        let messages: Vec<(String, Vec<u8>)> = batch
            .iter()
            .map(|p| (p.topic.clone(), p.payload.to_vec()))
            .collect();
        let Some(mut w) = writer.take() else {
            return Ok(());
        };
        let joined = tokio::task::spawn_blocking(move || {
            let result = w.write(&messages);
            (w, result)
        })
        .await;
        match joined {
            Ok((w, Ok(()))) => writer = Some(w),
            Ok((_, Err(e))) => {
                return Err(TaskError::transient(format!(
                    "storing segments failed: {e}"
                )))
            }
            Err(e) => {
                return Err(TaskError::transient(format!(
                    "the segment writer crashed: {e}"
                )))
            }
        }
        for publish in &batch {
            if let Err(e) = client.ack(publish).await {
                tracing::warn!("cannot ack: {e}");
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::tests::fixture;
    use fastdata_primitives::envelope::{seal, EpochKeys, SegmentHeader};
    use sp_core::H256;

    fn envelope(stream: StreamId, sequence: Sequence) -> Vec<u8> {
        let keys = EpochKeys::new([1; 32], [2; 32]);
        seal(
            &keys,
            &SegmentHeader {
                stream,
                epoch: 0,
                sequence,
                timestamp: 0,
            },
            b"payload",
        )
        .unwrap()
    }

    fn node(port: u16) -> BrokerNode {
        BrokerNode {
            host: "127.0.0.1".into(),
            port,
        }
    }

    #[test]
    fn broker_nodes_are_tried_in_turn_from_the_last_one_connected_to() {
        let nodes = BrokerNodes::new(vec![node(1), node(2), node(3)]);
        let order =
            |nodes: &BrokerNodes| nodes.order().map(|(i, n)| (i, n.port)).collect::<Vec<_>>();
        assert_eq!(order(&nodes), [(0, 1), (1, 2), (2, 3)]);
        // Clones (the config of each run) share the last node connected to.
        nodes.clone().connected(2);
        assert_eq!(order(&nodes), [(2, 3), (0, 1), (1, 2)]);
        nodes.connected(1);
        assert_eq!(order(&nodes.clone()), [(1, 2), (2, 3), (0, 1)]);
        let one = BrokerNodes::new(vec![node(7)]);
        assert_eq!(order(&one), [(0, 7)]);
        assert_eq!(order(&BrokerNodes::new(Vec::new())), []);
    }

    /// A port nothing listens on.
    fn closed_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }

    /// A broker stand-in that accepts every connection with a CONNACK and counts them.
    async fn accepting_broker() -> (u16, Arc<AtomicUsize>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut buf = [0u8; 1024];
                    // CONNECT, then CONNACK (session present, accepted); hold the connection.
                    if socket.read(&mut buf).await.unwrap_or(0) > 0 {
                        let _ = socket.write_all(&[0x20, 0x02, 0x01, 0x00]).await;
                        while socket.read(&mut buf).await.unwrap_or(0) > 0 {}
                    }
                });
            }
        });
        (port, accepted)
    }

    fn ingest_config(nodes: Vec<BrokerNode>) -> IngestConfig {
        IngestConfig {
            brokers: BrokerNodes::new(nodes),
            username: "op".into(),
            password: "pw".into(),
            client_id: "op-ingest-test".into(),
            tls: None,
        }
    }

    #[tokio::test]
    async fn ingest_connects_to_the_next_node_when_one_is_down() {
        let (up, accepted) = accepting_broker().await;
        let down = closed_port();
        let config = ingest_config(vec![node(down), node(up)]);
        let (_client, _eventloop, ack, connected) = connect(&config).await.unwrap();
        assert_eq!(connected, node(up));
        assert!(ack.session_present);
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
        // The next run (a clone of the config) starts with the node that accepted.
        let (_client, _eventloop, _, connected) = connect(&config.clone()).await.unwrap();
        assert_eq!(connected, node(up));
        assert_eq!(config.brokers.order().next().unwrap().1, &node(up));

        // No node up: one error naming each.
        let other = closed_port();
        let config = ingest_config(vec![node(down), node(other)]);
        let err = connect(&config).await.err().unwrap().to_string();
        assert!(err.contains(&format!("127.0.0.1:{down}")), "{err}");
        assert!(err.contains(&format!("127.0.0.1:{other}")), "{err}");
        assert!(connect(&ingest_config(Vec::new()))
            .await
            .err()
            .unwrap()
            .is_fatal());
    }

    #[test]
    fn stores_valid_segments_ignores_duplicates_refuses_garbage_and_reports_gaps() {
        let f = fixture();
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(&dir.path().join("db")).unwrap());
        let metrics = Arc::new(Metrics::new());
        let (tx, mut rx) = mpsc::channel(16);
        let mut writer =
            SegmentWriter::new(f.auth.clone(), store.clone(), metrics.clone(), Some(tx));
        let topic = stream_topic(&f.stream);
        let other = H256::repeat_byte(8);
        writer
            .write(&[
                (topic.clone(), envelope(f.stream, 1)),
                (topic.clone(), envelope(f.stream, 2)),
                (topic.clone(), envelope(f.stream, 2)),
                (topic.clone(), b"garbage".to_vec()),
                (topic.clone(), envelope(other, 3)),
                (stream_topic(&other), envelope(other, 3)),
                ("random/topic".into(), envelope(f.stream, 4)),
                (
                    topic.clone(),
                    vec![1u8; fastdata_primitives::envelope::MAX_ENVELOPE_LEN + 1],
                ),
            ])
            .unwrap();
        assert_eq!(store.sequences(&f.stream, 0, 100).unwrap(), vec![1, 2]);
        assert_eq!(store.count(&other).unwrap(), 0);
        let text = metrics.render();
        assert!(
            text.contains(r#"segments_in_total{result="stored"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(r#"segments_in_total{result="duplicate"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"segments_in_total{result="refused"} 5"#),
            "{text}"
        );
        for reason in [
            "malformed",
            "wrong_stream",
            "unknown_stream",
            "not_stream_topic",
            "too_large",
        ] {
            assert!(
                text.contains(&format!(
                    "fastdata_operator_segments_refused_total{{reason=\"{reason}\"}} 1"
                )),
                "{reason}: {text}"
            );
        }
        assert!(
            text.contains(r#"fastdata_operator_segments_dropped_total{reason="duplicate"} 1"#),
            "{text}"
        );
        assert!(rx.try_recv().is_err());

        // A jump from 2 to 6 asks for 3..=5.
        writer
            .write(&[(topic.clone(), envelope(f.stream, 6))])
            .unwrap();
        assert_eq!(
            rx.try_recv().unwrap(),
            BackfillRequest {
                stream: f.stream,
                from: 3,
                to: 5
            }
        );
        // Filling the hole asks for nothing more.
        writer
            .write(&[(topic.clone(), envelope(f.stream, 4))])
            .unwrap();
        assert!(rx.try_recv().is_err());
    }
}

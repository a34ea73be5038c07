//! Publishing: seal segments and publish them to every assigned operator's broker.
//!
//! [`StreamPublisher::connect`] trades a signed upload token for broker credentials at each
//! operator daemon (`POST /v1/broker/session`) and opens one MQTT connection per broker
//! (rumqttc, one event loop task per connection, persistent session). Every segment is sealed
//! once ([`fastdata_primitives::envelope::seal`]) and published with QoS 1 on
//! `fast/<stream hex>/data` to every broker. The publisher tracks PUBACKs per broker:
//! [`StreamPublisher::flush`] waits until every broker acknowledged everything, and
//! [`StreamPublisher::acked_up_to`] is the highest sequence acknowledged by **all** of them, from
//! which a restarted seller resumes (operators store segments by `(stream, sequence)`, so a
//! segment published twice is stored once). After a connection error the event loop reconnects
//! and rumqttc re-sends the unacknowledged publishes.

use std::{
    collections::{BTreeSet, HashMap, VecDeque},
    sync::{Arc, Mutex},
    time::Duration,
};

use fastdata_primitives::{
    envelope::{self, EpochKeys, SegmentHeader},
    BlockNumber, EpochIndex, Sequence, StreamId,
};
use rumqttc::{AsyncClient, ConnectReturnCode, Event, Outgoing, Packet, QoS};
use sp_core::H256;

use crate::{
    account::Account,
    error::Error,
    operator::{OperatorClient, OperatorEndpoint},
};

#[derive(Default)]
struct LinkState {
    queued: VecDeque<Sequence>,
    inflight: HashMap<u16, Sequence>,
    acked: BTreeSet<Sequence>,
    acked_count: u64,
    skipped: u64,
    connected: bool,
    refused: Option<String>,
    last_error: Option<String>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

struct Link {
    endpoint: OperatorEndpoint,
    client: AsyncClient,
    topic: String,
    state: Arc<Mutex<LinkState>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Link {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// How one broker is doing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkStatus {
    /// The operator's HTTP URL.
    pub operator: String,
    /// Connected right now.
    pub connected: bool,
    /// Segments acknowledged by the broker.
    pub acked: u64,
    /// Segments published but not acknowledged yet.
    pub pending: usize,
    /// Segments skipped because the broker's queue was full (its operator backfills them
    /// from another replica).
    pub skipped: u64,
    /// The last connection error, if any.
    pub last_error: Option<String>,
}

/// Seals and publishes the segments of one stream epoch to every assigned broker.
pub struct StreamPublisher {
    stream: StreamId,
    epoch: EpochIndex,
    keys: EpochKeys,
    next_sequence: Sequence,
    first_sequence: Sequence,
    links: Vec<Link>,
}

impl StreamPublisher {
    /// Connects to the brokers of `operators` with upload tokens for `stream`/`epoch` valid
    /// until block `expiry`, signed for the chain with genesis hash `genesis`
    /// ([`FastData::genesis`](crate::FastData::genesis)); the first segment published gets
    /// `next_sequence`. Operators that refuse or cannot be reached are skipped with a warning;
    /// it fails only if none accepts.
    #[allow(clippy::too_many_arguments)]
    pub async fn connect(
        seller: &Account,
        genesis: H256,
        stream: StreamId,
        epoch: EpochIndex,
        keys: EpochKeys,
        operators: &[OperatorEndpoint],
        expiry: BlockNumber,
        next_sequence: Sequence,
    ) -> Result<Self, Error> {
        let mut links = Vec::new();
        let mut errors = Vec::new();
        for endpoint in operators {
            match Self::link(seller, genesis, stream, epoch, endpoint, expiry).await {
                Ok(link) => links.push(link),
                Err(e) => {
                    tracing::warn!(operator = %endpoint.http_url, "not publishing there: {e}");
                    errors.push(e.to_string());
                }
            }
        }
        if links.is_empty() {
            return Err(Error::NoOperator(if errors.is_empty() {
                "the stream has no operators".into()
            } else {
                errors.join("; ")
            }));
        }
        Ok(Self {
            stream,
            epoch,
            keys,
            next_sequence,
            first_sequence: next_sequence,
            links,
        })
    }

    async fn link(
        seller: &Account,
        genesis: H256,
        stream: StreamId,
        epoch: EpochIndex,
        endpoint: &OperatorEndpoint,
        expiry: BlockNumber,
    ) -> Result<Link, Error> {
        let broker = endpoint.broker_address()?;
        let credentials = OperatorClient::new(endpoint.clone(), genesis)
            .upload_session(seller, stream, epoch, expiry)
            .await?;
        // The login is bound to its client id (no other login can take this session over).
        let client_id = credentials.mqtt_client_id(|| credentials.username.clone());
        let mut options = broker.mqtt_options(client_id)?;
        options.set_credentials(credentials.username.clone(), credentials.password.clone());
        options.set_keep_alive(Duration::from_secs(30));
        options.set_clean_session(false);
        options.set_inflight(256);
        options.set_max_packet_size(
            envelope::MAX_ENVELOPE_LEN + 1024,
            envelope::MAX_ENVELOPE_LEN + 1024,
        );
        let (client, mut eventloop) = AsyncClient::new(options, 1024);
        let state = Arc::new(Mutex::new(LinkState::default()));
        let task = {
            let state = state.clone();
            tokio::spawn(async move {
                loop {
                    match eventloop.poll().await {
                        Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                            let mut s = lock(&state);
                            if ack.code == ConnectReturnCode::Success {
                                s.connected = true;
                            } else {
                                s.refused =
                                    Some(format!("broker refused the connection: {:?}", ack.code));
                            }
                        }
                        Ok(Event::Outgoing(Outgoing::Publish(pkid))) => {
                            let mut s = lock(&state);
                            if !s.inflight.contains_key(&pkid) {
                                if let Some(seq) = s.queued.pop_front() {
                                    s.inflight.insert(pkid, seq);
                                }
                            }
                        }
                        Ok(Event::Incoming(Packet::PubAck(ack))) => {
                            let mut s = lock(&state);
                            if let Some(seq) = s.inflight.remove(&ack.pkid) {
                                s.acked.insert(seq);
                                s.acked_count += 1;
                            }
                        }
                        Ok(_) => {}
                        Err(e) => {
                            {
                                let mut s = lock(&state);
                                s.connected = false;
                                s.last_error = Some(e.to_string());
                                if matches!(e, rumqttc::ConnectionError::ConnectionRefused(_)) {
                                    s.refused = Some(e.to_string());
                                }
                            }
                            tokio::time::sleep(Duration::from_millis(500)).await;
                        }
                    }
                }
            })
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            {
                let s = lock(&state);
                if s.connected {
                    break;
                }
                if let Some(refused) = &s.refused {
                    task.abort();
                    return Err(Error::Operator {
                        operator: endpoint.broker_url.clone(),
                        code: None,
                        detail: refused.clone(),
                    });
                }
            }
            if tokio::time::Instant::now() > deadline {
                task.abort();
                return Err(Error::Operator {
                    operator: endpoint.broker_url.clone(),
                    code: None,
                    detail: "no connection to the broker within 10 s".into(),
                });
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(Link {
            endpoint: endpoint.clone(),
            client,
            topic: credentials.topic,
            state,
            task,
        })
    }

    /// The stream.
    pub fn stream(&self) -> StreamId {
        self.stream
    }

    /// The epoch segments are sealed under.
    pub fn epoch(&self) -> EpochIndex {
        self.epoch
    }

    /// The sequence the next segment gets.
    pub fn next_sequence(&self) -> Sequence {
        self.next_sequence
    }

    /// Seals `payload` as the next segment and publishes it to every broker. Returns its
    /// sequence number.
    pub async fn publish(&mut self, payload: &[u8]) -> Result<Sequence, Error> {
        let sequence = self.next_sequence;
        let header = SegmentHeader {
            stream: self.stream,
            epoch: self.epoch,
            sequence,
            timestamp: crate::now_millis(),
        };
        let sealed = envelope::seal(&self.keys, &header, payload)?;
        for link in &self.links {
            lock(&link.state).queued.push_back(sequence);
            let topic = link.topic.clone();
            let queued = match link.client.try_publish(
                topic.clone(),
                QoS::AtLeastOnce,
                false,
                sealed.clone(),
            ) {
                Ok(()) => Ok(()),
                // A slow but connected broker gets back-pressure; one that is down (or stays
                // backed up) must not stall the others: the segment is skipped for it and its
                // operator backfills it from a replica.
                Err(_) if lock(&link.state).connected => tokio::time::timeout(
                    Duration::from_secs(5),
                    link.client
                        .publish(topic, QoS::AtLeastOnce, false, sealed.clone()),
                )
                .await
                .map_err(|_| "broker backed up for 5 s".to_owned())
                .and_then(|r| r.map_err(|e| e.to_string())),
                Err(e) => Err(format!("broker disconnected: {e}")),
            };
            if let Err(e) = queued {
                let mut s = lock(&link.state);
                s.queued.pop_back();
                s.skipped += 1;
                s.last_error = Some(format!("segment {sequence} skipped: {e}"));
            }
        }
        if self.links.iter().all(|l| {
            lock(&l.state)
                .last_error
                .as_deref()
                .is_some_and(|e| e.starts_with(&format!("segment {sequence} ")))
        }) {
            return Err(Error::NoOperator(format!(
                "no broker took segment {sequence}: {}",
                self.status()
                    .iter()
                    .filter_map(|s| s.last_error.clone())
                    .collect::<Vec<_>>()
                    .join("; ")
            )));
        }
        self.next_sequence += 1;
        Ok(sequence)
    }

    /// The highest sequence every broker acknowledged together with all before it (since this
    /// publisher started), if any.
    pub fn acked_up_to(&self) -> Option<Sequence> {
        self.links
            .iter()
            .map(|link| {
                let s = lock(&link.state);
                let mut up_to = None;
                for (expected, seq) in
                    (self.first_sequence..).zip(s.acked.range(self.first_sequence..))
                {
                    if *seq != expected {
                        break;
                    }
                    up_to = Some(*seq);
                }
                up_to
            })
            .min()
            .flatten()
    }

    /// How each broker is doing.
    pub fn status(&self) -> Vec<LinkStatus> {
        self.links
            .iter()
            .map(|link| {
                let s = lock(&link.state);
                LinkStatus {
                    operator: link.endpoint.http_url.clone(),
                    connected: s.connected,
                    acked: s.acked_count,
                    pending: s.queued.len() + s.inflight.len(),
                    skipped: s.skipped,
                    last_error: s.last_error.clone(),
                }
            })
            .collect()
    }

    /// Waits until every broker acknowledged every published segment, for at most `timeout`.
    pub async fn flush(&self, timeout: Duration) -> Result<(), Error> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let status = self.status();
            if status.iter().all(|s| s.pending == 0) {
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                let lagging: Vec<String> = status
                    .iter()
                    .filter(|s| s.pending > 0)
                    .map(|s| {
                        format!(
                            "{} ({} unacknowledged{})",
                            s.operator,
                            s.pending,
                            s.last_error
                                .as_ref()
                                .map(|e| format!(", last error: {e}"))
                                .unwrap_or_default()
                        )
                    })
                    .collect();
                return Err(Error::Timeout(format!(
                    "brokers did not acknowledge everything: {}",
                    lagging.join(", ")
                )));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Flushes and disconnects.
    pub async fn close(self, timeout: Duration) -> Result<(), Error> {
        let flushed = self.flush(timeout).await;
        for link in &self.links {
            let _ = link.client.disconnect().await;
        }
        flushed
    }
}

/// A simulated industrial sensor: one JSON reading per call, with a slow drift and noise.
pub struct SimulatedSensor {
    name: String,
    step: u64,
    state: u64,
}

impl SimulatedSensor {
    /// A sensor named `name` (seeded from the name, so runs are reproducible).
    pub fn new(name: &str) -> Self {
        let state = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        });
        Self {
            name: name.to_owned(),
            step: 0,
            state: state | 1,
        }
    }

    /// The next reading as a JSON line.
    pub fn reading(&mut self) -> Vec<u8> {
        // xorshift64*
        self.state ^= self.state >> 12;
        self.state ^= self.state << 25;
        self.state ^= self.state >> 27;
        let noise =
            (self.state.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 40) as f64 / (1u64 << 24) as f64;
        let t = self.step as f64;
        self.step += 1;
        let temperature = 21.0 + 2.0 * (t / 60.0).sin() + (noise - 0.5) * 0.2;
        let vibration = 0.3 + 0.05 * (t / 7.0).cos() + (noise - 0.5) * 0.02;
        format!(
            "{{\"sensor\":\"{}\",\"n\":{},\"ts\":{},\"temperature_c\":{:.3},\"vibration_g\":{:.4}}}\n",
            self.name,
            self.step - 1,
            crate::now_millis(),
            temperature,
            vibration
        )
        .into_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sensor_readings_are_json_lines() {
        let mut sensor = SimulatedSensor::new("press-7");
        for n in 0..100 {
            let line = sensor.reading();
            assert_eq!(line.last(), Some(&b'\n'));
            let v: serde_json::Value = serde_json::from_slice(&line).unwrap();
            assert_eq!(v["n"], n);
            assert_eq!(v["sensor"], "press-7");
            let t = v["temperature_c"].as_f64().unwrap();
            assert!((18.0..24.0).contains(&t), "{t}");
        }
    }
}

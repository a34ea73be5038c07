//! Fair pay, daemon side, against the adversary for real: a raw MQTT subscriber with a buyer's
//! broker credentials that never receipts (real Mosquitto, dynamic security), receipts beyond
//! what was served or stored, a batch buyer reaching for the live topic, a stream buyer
//! reaching for history it did not buy.

use std::{sync::Arc, time::Duration};

use crate::common::*;
use fastdata_operator::{
    api::{decode_signed_frames, ACCESS_HEADER},
    auth::stream_topic,
    chain::ChainEvent,
    daemon::Daemon,
    receipts::{NoChainSubmitter, Receipt},
    store::NewSegment,
};
use fastdata_primitives::envelope;
use fastdata_sdk::http::HttpClient;
use rumqttc::{
    AsyncClient, ConnectReturnCode, Event, MqttOptions, Packet, QoS, SubscribeReasonCode,
};
use tokio::sync::mpsc;

/// The receipt window of these tests.
const W: u64 = 4;

type Polled = Result<Event, String>;

/// A raw MQTT client whose events (until the first error) go to a channel.
struct Client {
    mqtt: AsyncClient,
    events: mpsc::UnboundedReceiver<Polled>,
}

impl Client {
    fn connect(port: u16, username: &str, password: &str, client_id: &str) -> Self {
        let mut options = MqttOptions::new(client_id, "127.0.0.1", port);
        options.set_credentials(username, password);
        options.set_keep_alive(Duration::from_secs(5));
        let (mqtt, mut eventloop) = AsyncClient::new(options, 64);
        let (tx, events) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            loop {
                let polled = eventloop.poll().await.map_err(|e| e.to_string());
                let failed = polled.is_err();
                if tx.send(polled).is_err() || failed {
                    break;
                }
            }
        });
        Self { mqtt, events }
    }

    /// The next event within `timeout`, `None` after it or once the event loop ended.
    async fn next(&mut self, timeout: Duration) -> Option<Polled> {
        tokio::time::timeout(timeout, self.events.recv())
            .await
            .ok()
            .flatten()
    }

    async fn connected(&mut self) -> bool {
        while let Some(event) = self.next(Duration::from_secs(10)).await {
            match event {
                Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                    return ack.code == ConnectReturnCode::Success
                }
                Err(_) => return false,
                _ => {}
            }
        }
        false
    }

    async fn subscribed(&mut self) -> bool {
        self.mqtt
            .subscribe(stream_topic(&STREAM), QoS::AtLeastOnce)
            .await
            .unwrap();
        while let Some(event) = self.next(Duration::from_secs(10)).await {
            match event {
                Ok(Event::Incoming(Packet::SubAck(ack))) => {
                    return matches!(ack.return_codes[..], [SubscribeReasonCode::Success(_)])
                }
                Err(_) => return false,
                _ => {}
            }
        }
        false
    }

    /// Everything delivered until `quiet` passes without an event or the connection ends:
    /// the sequences received, and whether the broker dropped the connection.
    async fn drain(&mut self, quiet: Duration) -> (Vec<u64>, bool) {
        let mut sequences = Vec::new();
        while let Some(event) = self.next(quiet).await {
            match event {
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    sequences.push(envelope::parse_header(&p.payload).unwrap().sequence)
                }
                Err(_) => return (sequences, true),
                _ => {}
            }
        }
        (sequences, false)
    }
}

fn segments(range: std::ops::RangeInclusive<u64>) -> Vec<NewSegment> {
    range
        .map(|s| NewSegment {
            stream: STREAM,
            sequence: s,
            envelope: segment(s),
        })
        .collect()
}

/// Opens an envelope with the test keys: its plaintext.
fn plaintext(bytes: &[u8]) -> Vec<u8> {
    envelope::open(&keys(), bytes).unwrap().payload
}

/// `GET /v1/purchases/{purchase}/segments`: status and the envelopes served.
async fn download(
    daemon: &Daemon,
    access: String,
    purchase: u64,
    from: u64,
    to: u64,
) -> (u16, Vec<Vec<u8>>) {
    let url = format!(
        "http://{}/v1/purchases/{purchase}/segments?from={from}&to={to}",
        daemon.http_addr
    );
    let (status, body) = HttpClient::new()
        .get(&url, &[(ACCESS_HEADER, access)], 1 << 24)
        .await
        .unwrap();
    let envelopes = if status.is_success() {
        decode_signed_frames(&body)
            .unwrap()
            .into_iter()
            .map(|(envelope, _signature)| envelope.to_vec())
            .collect()
    } else {
        Vec::new()
    };
    (status.as_u16(), envelopes)
}

fn sequences(envelopes: &[Vec<u8>]) -> Vec<u64> {
    envelopes
        .iter()
        .map(|e| envelope::parse_header(e).unwrap().sequence)
        .collect()
}

/// `POST /v1/receipts` of `body`: status and the JSON answer.
async fn post_receipt(daemon: &Daemon, body: Vec<u8>) -> (u16, serde_json::Value) {
    let (status, text) = HttpClient::new()
        .post(
            &format!("http://{}/v1/receipts", daemon.http_addr),
            &[],
            body,
            1 << 16,
        )
        .await
        .unwrap();
    (
        status.as_u16(),
        serde_json::from_slice(&text).unwrap_or(serde_json::Value::Null),
    )
}

fn receipt(purchase: u64, me: &fastdata_primitives::AccountId, up_to: u64, nonce: u64) -> Receipt {
    Receipt {
        purchase,
        operator: me.clone(),
        up_to_sequence: up_to,
        bytes: 100 * (up_to.saturating_add(1)),
        nonce,
    }
}

async fn session(daemon: &Daemon, body: serde_json::Value) -> (u16, serde_json::Value) {
    post_json(
        &format!("http://{}/v1/broker/session", daemon.http_addr),
        body,
    )
    .await
}

/// Username, password and the client id the login is bound to.
fn credentials(body: &serde_json::Value) -> (String, String, String) {
    (
        body["username"].as_str().unwrap().to_owned(),
        body["password"].as_str().unwrap().to_owned(),
        body["client_id"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_subscriber_that_never_receipts_gets_one_window_then_is_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    let broker_dir = dir.path().join("broker");
    std::fs::create_dir_all(&broker_dir).unwrap();
    let broker = Mosquitto::start(&broker_dir);
    let (seller, buyer, operator) = (pair(1), pair(3), pair(2));
    let me = account(&operator);
    // A stream purchase made when the stream head was 0.
    let view = view_with_heads(
        vec![
            ChainEvent::StreamAssigned(assignment(&seller, std::slice::from_ref(&me))),
            ChainEvent::PurchaseUpdated(purchase(1, &buyer, 1_000)),
        ],
        &[(1, 0)],
    );
    let mut config = mosquitto_config(&dir.path().join("op"), broker.port, &seed_suri(2));
    config.serving.receipt_window = W;
    let daemon = Daemon::start(config, view, Arc::new(NoChainSubmitter))
        .await
        .unwrap();

    // The window is published, with the chain signatures must be made for.
    let (status, terms) = get_text(&format!("http://{}/v1/terms", daemon.http_addr)).await;
    let terms: serde_json::Value = serde_json::from_str(&terms).unwrap();
    assert_eq!(status, 200, "{terms}");
    assert_eq!(terms["receipt_window"], W);
    assert_eq!(
        terms["genesis"],
        format!("0x{}", hex::encode(GENESIS.as_bytes()))
    );

    let (status, seller_creds) = session(
        &daemon,
        serde_json::json!({ "upload_token": upload_token(&seller, &me, 1) }),
    )
    .await;
    assert_eq!(status, 200, "{seller_creds}");
    let (user, pass, id) = credentials(&seller_creds);
    let mut publisher = Client::connect(broker.port, &user, &pass, &id);
    assert!(publisher.connected().await);

    // The adversary: the buyer's real broker credentials in a raw MQTT client that never
    // sends a receipt.
    let (status, creds) = session(
        &daemon,
        serde_json::json!({ "access_request": access_request(&buyer, &me, 1, 1) }),
    )
    .await;
    assert_eq!(status, 200, "{creds}");
    assert_eq!(creds["receipt_window"], W);
    let (buyer_user, buyer_pass, buyer_id) = credentials(&creds);
    let mut adversary = Client::connect(broker.port, &buyer_user, &buyer_pass, &buyer_id);
    assert!(adversary.connected().await);
    assert!(adversary.subscribed().await);

    // The seller publishes 3W segments, each stored by the daemon before the next.
    let store = daemon.node.store.clone();
    let publish = |sequence: u64| {
        let mqtt = publisher.mqtt.clone();
        async move {
            mqtt.publish(
                stream_topic(&STREAM),
                QoS::AtLeastOnce,
                false,
                segment(sequence),
            )
            .await
            .unwrap();
        }
    };
    for sequence in 0..3 * W {
        publish(sequence).await;
        assert!(
            wait_until(Duration::from_secs(10), || store.count(&STREAM).unwrap()
                == sequence + 1)
            .await,
            "segment {sequence} not stored"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // It got exactly one window, then nothing, and the broker dropped it.
    let (got, dropped) = adversary.drain(Duration::from_secs(2)).await;
    assert_eq!(got, (0..W).collect::<Vec<_>>(), "received past the window");
    assert!(dropped, "a subscriber past its window must be disconnected");

    // Its credentials no longer get it in, it gets no new ones, and HTTP holds it to the same
    // window.
    let mut again = Client::connect(broker.port, &buyer_user, &buyer_pass, &buyer_id);
    assert!(
        !again.connected().await,
        "cut-off credentials must be refused"
    );
    let (status, body) = session(
        &daemon,
        serde_json::json!({ "access_request": access_request(&buyer, &me, 1, 2) }),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (403, Some("receipt_window")),
        "{body}"
    );
    let (status, served) = download(&daemon, access_request(&buyer, &me, 1, 3), 1, 0, 100).await;
    assert_eq!((status, sequences(&served)), (200, (0..W).collect()));

    // A receipt that catches up gives the same credentials their access back.
    let (status, body) = post_receipt(
        &daemon,
        signed_receipt(&receipt(1, &me, 3 * W - 1, 1), &buyer),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let mut back = None;
    for _ in 0..50 {
        let mut client = Client::connect(broker.port, &buyer_user, &buyer_pass, &buyer_id);
        if client.connected().await {
            back = Some(client);
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut back = back.expect("a caught-up subscriber gets its grant back");
    assert!(back.subscribed().await);
    for sequence in 3 * W..3 * W + 2 {
        publish(sequence).await;
    }
    let mut live = Vec::new();
    while live.len() < 2 {
        match back.next(Duration::from_secs(10)).await {
            Some(Ok(Event::Incoming(Packet::Publish(p)))) => live.push(p.payload.to_vec()),
            Some(Ok(_)) => {}
            other => panic!("live data stopped: {other:?}"),
        }
    }
    assert_eq!(sequences(&live), vec![3 * W, 3 * W + 1]);
    assert_eq!(
        plaintext(&live[0]),
        format!("reading {}", 3 * W).into_bytes()
    );

    let metrics = get_text(&format!("http://{}/metrics", daemon.http_addr))
        .await
        .1;
    for command in ["window_close", "window_open"] {
        assert!(
            metric(
                &metrics,
                &format!(
                    "fastdata_operator_gate_commands_total{{command=\"{command}\",result=\"ok\"}}"
                )
            )
            .is_some_and(|n| n >= 1.0),
            "{command}: {metrics}"
        );
    }
    daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receipts_beyond_what_was_served_or_stored_are_refused_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (seller, buyer, operator) = (pair(1), pair(3), pair(2));
    let me = account(&operator);
    let view = view_with_heads(
        vec![
            ChainEvent::StreamAssigned(assignment(&seller, std::slice::from_ref(&me))),
            ChainEvent::PurchaseUpdated(purchase(1, &buyer, 1_000)),
            ChainEvent::PurchaseUpdated(batch_purchase(2, &buyer, 0, 39)),
        ],
        &[(1, 0)],
    );
    let daemon = Daemon::start(
        vernemq_config(dir.path(), &seed_suri(2), W),
        view,
        Arc::new(NoChainSubmitter),
    )
    .await
    .unwrap();
    daemon
        .node
        .store
        .insert_segments(&segments(0..=39), 10)
        .unwrap();

    // Batch: one window served, 0..=3.
    let (status, served) = download(&daemon, access_request(&buyer, &me, 2, 1), 2, 0, 39).await;
    assert_eq!((status, sequences(&served)), (200, (0..W).collect()));

    // u64::MAX, and a sequence beyond what was served: refused, 422.
    for up_to in [u64::MAX, W] {
        let (status, body) =
            post_receipt(&daemon, signed_receipt(&receipt(2, &me, up_to, 1), &buyer)).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (422, Some("beyond_served")),
            "{up_to}: {body}"
        );
    }
    // Signed for another chain: a bad signature.
    let elsewhere = receipt(2, &me, 1, 1);
    let body = codec::Encode::encode(&(
        elsewhere.clone(),
        elsewhere.sign_sr25519(&buyer, &sp_core::H256::repeat_byte(0x99)),
    ));
    assert_eq!(post_receipt(&daemon, body).await.0, 401);
    // The window did not move: nothing past sequence W - 1.
    let (status, served) = download(&daemon, access_request(&buyer, &me, 2, 2), 2, W, 39).await;
    assert_eq!((status, served.len()), (200, 0));
    assert!(daemon.node.receipts.latest(2).unwrap().is_none());
    // Nonce 1 was not used up: the honest receipt with it is accepted and moves the window.
    let (status, body) =
        post_receipt(&daemon, signed_receipt(&receipt(2, &me, W - 1, 1), &buyer)).await;
    assert_eq!(
        (status, body["up_to_sequence"].as_u64()),
        (200, Some(W - 1))
    );
    let (_, served) = download(&daemon, access_request(&buyer, &me, 2, 3), 2, W, 39).await;
    assert_eq!(sequences(&served), (W..2 * W).collect::<Vec<_>>());
    assert_eq!(plaintext(&served[0]), format!("reading {W}").into_bytes());

    // Stream: not beyond the stored head (39), never u64::MAX.
    for up_to in [40, u64::MAX] {
        let (status, body) =
            post_receipt(&daemon, signed_receipt(&receipt(1, &me, up_to, 1), &buyer)).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (422, Some("beyond_served")),
            "{body}"
        );
    }
    let (_, served) = download(&daemon, access_request(&buyer, &me, 1, 1), 1, 0, 39).await;
    assert_eq!(sequences(&served), (0..W).collect::<Vec<_>>());
    let (status, _) = post_receipt(&daemon, signed_receipt(&receipt(1, &me, 39, 1), &buyer)).await;
    assert_eq!(status, 200);
    daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_buyer_cannot_reach_the_live_topic() {
    let dir = tempfile::tempdir().unwrap();
    let broker_dir = dir.path().join("broker");
    std::fs::create_dir_all(&broker_dir).unwrap();
    let broker = Mosquitto::start(&broker_dir);
    let (seller, buyer, operator) = (pair(1), pair(3), pair(2));
    let me = account(&operator);
    let view = view_with(vec![
        ChainEvent::StreamAssigned(assignment(&seller, std::slice::from_ref(&me))),
        ChainEvent::PurchaseUpdated(batch_purchase(2, &buyer, 5, 9)),
    ]);
    let mut config = mosquitto_config(&dir.path().join("op"), broker.port, &seed_suri(2));
    config.serving.receipt_window = W;
    let daemon = Daemon::start(config, view, Arc::new(NoChainSubmitter))
        .await
        .unwrap();
    daemon
        .node
        .store
        .insert_segments(&segments(0..=19), 10)
        .unwrap();

    // No broker credentials for a batch, and guessed ones do not get onto the broker.
    let (status, body) = session(
        &daemon,
        serde_json::json!({ "access_request": access_request(&buyer, &me, 2, 1) }),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (403, Some("batch_not_live")),
        "{body}"
    );
    let mut intruder = Client::connect(broker.port, "fd-buyer-2", "guess", "intruder");
    assert!(!intruder.connected().await);

    // Over HTTP: its window only (5..=9), a receipt window at a time.
    let (status, served) = download(&daemon, access_request(&buyer, &me, 2, 2), 2, 0, 19).await;
    assert_eq!((status, sequences(&served)), (200, (5..5 + W).collect()));
    assert_eq!(plaintext(&served[0]), b"reading 5");
    let (status, _) = post_receipt(
        &daemon,
        signed_receipt(&receipt(2, &me, 5 + W - 1, 1), &buyer),
    )
    .await;
    assert_eq!(status, 200);
    let (_, served) = download(&daemon, access_request(&buyer, &me, 2, 3), 2, 0, 19).await;
    assert_eq!(sequences(&served), (5..=9).collect::<Vec<_>>());
    daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_buyer_gets_nothing_before_its_start_head() {
    let dir = tempfile::tempdir().unwrap();
    let (seller, buyer, operator) = (pair(1), pair(3), pair(2));
    let me = account(&operator);
    // Bought when the stream head was 20.
    let view = view_with_heads(
        vec![
            ChainEvent::StreamAssigned(assignment(&seller, std::slice::from_ref(&me))),
            ChainEvent::PurchaseUpdated(purchase(1, &buyer, 1_000)),
        ],
        &[(1, 20)],
    );
    let daemon = Daemon::start(
        vernemq_config(dir.path(), &seed_suri(2), W),
        view,
        Arc::new(NoChainSubmitter),
    )
    .await
    .unwrap();
    daemon
        .node
        .store
        .insert_segments(&segments(0..=39), 10)
        .unwrap();

    // History before the purchase is not served, however it is asked for.
    let (status, served) = download(&daemon, access_request(&buyer, &me, 1, 1), 1, 5, 15).await;
    assert_eq!((status, served.len()), (200, 0));
    let (_, served) = download(&daemon, access_request(&buyer, &me, 1, 2), 1, 0, 39).await;
    assert_eq!(sequences(&served), (20..20 + W).collect::<Vec<_>>());
    assert_eq!(plaintext(&served[0]), b"reading 20");
    // Receipts move the window on from there.
    let (status, _) = post_receipt(
        &daemon,
        signed_receipt(&receipt(1, &me, 20 + W - 1, 1), &buyer),
    )
    .await;
    assert_eq!(status, 200);
    let (_, served) = download(&daemon, access_request(&buyer, &me, 1, 3), 1, 0, 39).await;
    assert_eq!(sequences(&served), (20..20 + 2 * W).collect::<Vec<_>>());
    daemon.shutdown().await;
}

//! No session takeover, against the dev chain, a live `fastdata-operator` and its broker (real
//! Mosquitto with dynamic security, and real VerneMQ with webhooks): a buyer holding valid
//! broker credentials connects with every client id it can know of (the operator's ingest and
//! control connections, the seller's publisher, another buyer's subscriber; on VerneMQ every
//! id connected to the broker, as `vmq-admin session show` lists them) while the seller
//! publishes. Every attempt is refused, the operator stores every segment, the other buyer's
//! subscriber receives every one, and nobody is disconnected. Then the other buyer, which
//! never sends a receipt, is revoked once it is a receipt window ahead: it is disconnected
//! (on VerneMQ through its HTTP API) and receives nothing more.

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Duration,
};

use fastdata_e2e::{connect_publisher, BrokerKind, BrokerProcess, UNIT};
use fastdata_primitives::{PaymentMode, PurchaseId};
use fastdata_sdk::{
    http::HttpClient,
    operator::{BrokerCredentials, OperatorClient, OperatorEndpoint},
    FastData,
};
use rumqttc::{AsyncClient, ConnectReturnCode, ConnectionError, Event, MqttOptions, Packet, QoS};
use tokio::sync::mpsc;

use crate::marketplace::{list, payloads, setup_on, terms};

/// Segments the seller publishes during the attack: fewer than the harness's receipt window
/// (32), so the victim's raw subscriber, which sends no receipts, is owed every one.
const SEGMENTS: u64 = 24;
/// The harness's receipt window (`[serving] receipt_window`).
const WINDOW: u64 = 32;

/// Live broker credentials of `buyer` for `purchase` (retried until the operator has seen the
/// purchase in a finalized block).
pub(crate) async fn live_credentials(
    alice: &FastData,
    client: &OperatorClient,
    buyer: &FastData,
    purchase: PurchaseId,
) -> BrokerCredentials {
    let expiry = alice.finalized_number().await.unwrap() + 1_000;
    alice
        .wait_for("a live session", Duration::from_secs(30), || async {
            Ok(client
                .access_session(buyer.account(), purchase, expiry)
                .await
                .ok())
        })
        .await
        .unwrap()
}

fn options(endpoint: &OperatorEndpoint, creds: &BrokerCredentials, client_id: &str) -> MqttOptions {
    let mut options = endpoint
        .broker_address()
        .unwrap()
        .mqtt_options(client_id)
        .unwrap();
    options.set_credentials(creds.username.clone(), creds.password.clone());
    options.set_keep_alive(Duration::from_secs(5));
    options
}

/// Connects once as `client_id` with `creds` and a persistent session (as the reported attack
/// did); `Ok` if the broker accepted the connection, else the broker's or the connection's
/// error. The connection is closed again at once.
async fn try_connect(
    endpoint: &OperatorEndpoint,
    creds: &BrokerCredentials,
    client_id: &str,
) -> Result<(), String> {
    let mut options = options(endpoint, creds, client_id);
    options.set_clean_session(false);
    let (client, mut eventloop) = AsyncClient::new(options, 8);
    let outcome = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                    break if ack.code == ConnectReturnCode::Success {
                        Ok(())
                    } else {
                        Err(format!("{:?}", ack.code))
                    };
                }
                Ok(_) => {}
                Err(ConnectionError::ConnectionRefused(code)) => break Err(format!("{code:?}")),
                Err(e) => break Err(e.to_string()),
            }
        }
    })
    .await
    .unwrap_or_else(|_| Err("no answer within 10 s".into()));
    if outcome.is_ok() {
        let _ = client.disconnect().await;
        // Lets the DISCONNECT go out.
        let _ = tokio::time::timeout(Duration::from_millis(200), eventloop.poll()).await;
    }
    outcome
}

/// What a raw subscriber saw: segments received, and the error that ended its connection.
pub(crate) struct Subscriber {
    mqtt: AsyncClient,
    events: mpsc::UnboundedReceiver<Result<Event, String>>,
}

impl Subscriber {
    pub(crate) async fn start(endpoint: &OperatorEndpoint, creds: &BrokerCredentials) -> Self {
        let client_id = creds.client_id.clone().expect("a bound client id");
        let (mqtt, mut eventloop) = AsyncClient::new(options(endpoint, creds, &client_id), 256);
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
        mqtt.subscribe(creds.topic.clone(), QoS::AtLeastOnce)
            .await
            .unwrap();
        let mut subscriber = Self { mqtt, events };
        let suback = tokio::time::timeout(Duration::from_secs(10), async {
            while let Some(event) = subscriber.events.recv().await {
                match event {
                    Ok(Event::Incoming(Packet::SubAck(ack))) => return Some(ack),
                    Ok(_) => {}
                    Err(e) => panic!("the subscriber's connection failed: {e}"),
                }
            }
            None
        })
        .await
        .ok()
        .flatten()
        .expect("a SUBACK");
        assert!(
            matches!(
                suback.return_codes[..],
                [rumqttc::SubscribeReasonCode::Success(_)]
            ),
            "{suback:?}"
        );
        subscriber
    }

    /// The sequence number of the next segment received before `deadline` (`Ok(None)` if
    /// none), or the error that ended the connection.
    pub(crate) async fn next_segment(
        &mut self,
        deadline: tokio::time::Instant,
    ) -> Result<Option<u64>, String> {
        loop {
            match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Ok(Some(Ok(Event::Incoming(Packet::Publish(publish))))) => {
                    let header = fastdata_primitives::envelope::parse_header(&publish.payload)
                        .map_err(|e| format!("not an envelope: {e:?}"))?;
                    return Ok(Some(header.sequence));
                }
                Ok(Some(Ok(_))) => {}
                Ok(Some(Err(e))) => return Err(e),
                Ok(None) => return Err("event loop ended".into()),
                Err(_) => return Ok(None),
            }
        }
    }

    /// Segments received until `quiet` passes without one, and the connection error, if the
    /// connection ended.
    async fn drain(&mut self, quiet: Duration) -> (u64, Option<String>) {
        let mut received = 0;
        loop {
            match tokio::time::timeout(quiet, self.events.recv()).await {
                Ok(Some(Ok(Event::Incoming(Packet::Publish(_))))) => received += 1,
                Ok(Some(Ok(_))) => {}
                Ok(Some(Err(e))) => return (received, Some(e)),
                Ok(None) => return (received, Some("event loop ended".into())),
                Err(_) => return (received, None),
            }
        }
    }
}

/// The value of the metric line starting with `name` (0 if absent, as for a counter never
/// incremented).
fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(name))
        .and_then(|rest| rest.trim().split(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

/// Client ids connected to a VerneMQ node (`vmq-admin session show --client_id`).
fn vernemq_sessions(broker: &BrokerProcess) -> Vec<String> {
    let BrokerProcess::Vernemq(vernemq) = broker else {
        return Vec::new();
    };
    let table = vernemq.admin(&["session", "show", "--client_id"]).unwrap();
    table
        .lines()
        .filter_map(|line| line.strip_prefix('|'))
        .map(|cell| cell.trim_end_matches('|').trim().to_owned())
        // Skips the header (bold: ANSI escapes around "client_id").
        .filter(|id| !id.is_empty() && !id.contains('\u{1b}') && id != "client_id")
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a running fastdata-node; run by scripts/test"]
async fn a_buyer_login_cannot_take_over_any_other_client_on_mosquitto() {
    takeover_attack(BrokerKind::Mosquitto).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a running fastdata-node and the VerneMQ release; run by scripts/test"]
async fn a_buyer_login_cannot_take_over_any_other_client_on_vernemq() {
    takeover_attack(BrokerKind::Vernemq).await;
}

async fn takeover_attack(kind: BrokerKind) {
    let (_dir, net, [seller, attacker, victim]) =
        setup_on(kind, 1, [("s", true), ("a", false), ("v", false)]).await;
    let mut seller = seller;
    let alice = net.alice.clone();
    let genesis = alice.genesis();

    // A live stream on one operator (no replica to backfill from: a segment the operator
    // misses is lost); the attacker and the victim buy a period each.
    let price = 5 * UNIT;
    let (offer, registered) = list(
        &mut seller,
        "plant3/pump/flow",
        PaymentMode::Stream { period: 60 },
        price,
        terms(1, false),
        "pump-1",
    )
    .await;
    let stream = registered.stream;
    let p_attacker = attacker.chain.buy(offer, 1, price).await.unwrap();
    let p_victim = victim.chain.buy(offer, 1, price).await.unwrap();
    let delivered = seller
        .chain
        .deliver_due_keys(&seller.keystore)
        .await
        .unwrap();
    assert_eq!(delivered.len(), 2, "{delivered:?}");

    let op = &net.operators[0];
    let client = OperatorClient::new(op.endpoint.clone(), genesis);
    let victim_creds = live_credentials(&alice, &client, &victim.chain, p_victim).await;
    let attacker_creds = live_credentials(&alice, &client, &attacker.chain, p_attacker).await;
    let attacker_id = attacker_creds.client_id.clone().expect("a bound client id");
    let victim_id = victim_creds.client_id.clone().expect("a bound client id");
    assert_ne!(attacker_id, victim_id);

    // The attacker's login is valid: with its own id the broker lets it in.
    try_connect(&op.endpoint, &attacker_creds, &attacker_id)
        .await
        .expect("the attacker's own login works");

    // The victim subscribes; the seller connects its publisher.
    let mut subscriber = Subscriber::start(&op.endpoint, &victim_creds).await;
    let keys = seller.keystore.epoch_keys(&stream, 0).unwrap();
    let expiry = alice.finalized_number().await.unwrap() + 1_000;
    let mut publisher = connect_publisher(
        seller.chain.account(),
        genesis,
        stream,
        0,
        keys,
        std::slice::from_ref(&op.endpoint),
        expiry,
        0,
        Duration::from_secs(60),
    )
    .await
    .unwrap();

    // Every id the attacker can know of: the daemon's own connections (the ids they use, and
    // the prefix-only ones a reader of the operator's URL would guess), the seller's publisher
    // (derived from the public stream id) and the other buyer's subscriber.
    let config = op.config().unwrap();
    let prefix = &config.broker.client_id_prefix;
    let mut targets = vec![
        config.broker.own_client_id("ingest"),
        config.broker.own_client_id("control"),
        format!("{prefix}-ingest"),
        format!("{prefix}-control"),
        format!("fd-seller-{}", hex::encode(stream.as_bytes())),
        victim_id.clone(),
    ];
    let connected = vernemq_sessions(&op.broker.process);
    if kind == BrokerKind::Vernemq {
        // The daemon's ingest, the seller's publisher and the victim are connected.
        assert!(connected.len() >= 3, "{connected:?}");
        assert!(connected.contains(&victim_id), "{connected:?}");
        assert!(
            connected.contains(&config.broker.own_client_id("ingest")),
            "{connected:?}"
        );
    }
    // (The attacker's own id is listed too: its persistent session from the check above.)
    for id in connected {
        if !targets.contains(&id) && id != attacker_id {
            targets.push(id);
        }
    }
    let http = HttpClient::new();
    let metrics_url = format!("{}/metrics", op.endpoint.http_url);
    let restarts = |text: &str| {
        [
            r#"fastdata_operator_task_restarts_total{task="ingest"}"#,
            r#"fastdata_operator_task_restarts_total{task="broker-gate"}"#,
        ]
        .map(|name| metric(text, name))
    };
    let (status, before) = http.get(&metrics_url, &[], 1 << 20).await.unwrap();
    assert_eq!(status.as_u16(), 200);
    let restarts_before = restarts(&String::from_utf8_lossy(&before));

    // The attack runs for as long as the seller publishes (at a sensor's pace).
    let publishing = Arc::new(AtomicBool::new(true));
    let attack = {
        let (endpoint, creds, targets, publishing) = (
            op.endpoint.clone(),
            attacker_creds.clone(),
            targets.clone(),
            publishing.clone(),
        );
        tokio::spawn(async move {
            let mut accepted = Vec::new();
            let mut attempts = 0;
            while publishing.load(Ordering::SeqCst) || attempts < 5 * targets.len() {
                for id in &targets {
                    attempts += 1;
                    if try_connect(&endpoint, &creds, id).await.is_ok() {
                        accepted.push(id.clone());
                    }
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            (attempts, accepted)
        })
    };
    for payload in payloads("pump-1", SEGMENTS) {
        publisher.publish(&payload).await.unwrap();
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    publishing.store(false, Ordering::SeqCst);
    let (attempts, accepted) = attack.await.unwrap();
    publisher.flush(Duration::from_secs(60)).await.unwrap();

    // Refused every time.
    eprintln!(
        "{attempts} takeover attempts on {} ids refused while {SEGMENTS} segments were published",
        targets.len()
    );
    assert!(attempts >= 5 * targets.len(), "{attempts} attempts");
    assert!(
        accepted.is_empty(),
        "a buyer login connected as {accepted:?}"
    );

    // Nobody was disconnected: the seller's publisher never lost its connection, the victim
    // received every segment on its one connection, the daemon's connections never restarted.
    let status = publisher.status();
    assert_eq!(status.len(), 1);
    assert!(status[0].connected, "{status:?}");
    assert_eq!(status[0].last_error, None, "the seller was disconnected");
    assert_eq!(status[0].acked, SEGMENTS, "{status:?}");
    let (received, ended) = subscriber.drain(Duration::from_secs(3)).await;
    assert_eq!(ended, None, "the victim was disconnected");
    assert_eq!(received, SEGMENTS, "the victim missed segments");

    // Nothing lost: the operator stored every segment (read back from its store over HTTP).
    let stored = alice
        .wait_for("the operator's store", Duration::from_secs(20), || async {
            let download = client
                .download(attacker.chain.account(), p_attacker, expiry, Some(0), None)
                .await?;
            Ok((download.envelopes.len() as u64 == SEGMENTS).then_some(download))
        })
        .await;
    assert!(
        stored.is_ok(),
        "the operator did not store every segment: {:?}",
        stored.err()
    );
    let (_, after) = http.get(&metrics_url, &[], 1 << 20).await.unwrap();
    let after = String::from_utf8_lossy(&after);
    assert_eq!(
        restarts(&after),
        restarts_before,
        "the daemon's broker connections were restarted"
    );
    assert_eq!(
        metric(
            &after,
            r#"fastdata_operator_segments_in_total{result="stored"}"#
        ),
        SEGMENTS as f64,
        "{after}"
    );

    // Revocation of a connected subscriber: the victim never sends a receipt, so once the
    // stored head is a receipt window past its start the daemon takes its access away and
    // disconnects it (VerneMQ: through the HTTP API). It gets at most W segments in all.
    for payload in payloads("pump-1", 2 * WINDOW)
        .iter()
        .skip(SEGMENTS as usize)
    {
        publisher.publish(payload).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    publisher.flush(Duration::from_secs(60)).await.unwrap();
    let (more, ended) = subscriber.drain(Duration::from_secs(5)).await;
    eprintln!(
        "the revoked subscriber got {} of {} segments, then: {ended:?}",
        received + more,
        2 * WINDOW
    );
    assert!(
        received + more <= WINDOW,
        "the subscriber got {} segments past its window of {WINDOW}",
        received + more
    );
    assert!(ended.is_some(), "a revoked subscriber must be disconnected");

    publisher.close(Duration::from_secs(10)).await.unwrap();
    let _ = subscriber.mqtt.disconnect().await;
    net.stop(true).await.unwrap();
}

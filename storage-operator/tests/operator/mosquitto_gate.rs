//! The Mosquitto backend against a real broker with the dynamic-security plugin: unpaid
//! subscribers are refused, buyers are granted after their purchase appears in the chain
//! view and revoked after a refund, unassigned sellers cannot publish.

use std::{sync::Arc, time::Duration};

use crate::common::*;
use fastdata_operator::{
    auth::stream_topic, chain::ChainEvent, daemon::Daemon, receipts::NoChainSubmitter,
};
use rumqttc::{
    AsyncClient, ConnectReturnCode, Event, MqttOptions, Packet, QoS, SubscribeReasonCode,
};
use sp_core::H256;
use tokio::sync::mpsc;

type Polled = Result<Event, String>;

/// An MQTT client whose events (until the first error) are forwarded to a channel.
pub(crate) struct Client {
    pub(crate) mqtt: AsyncClient,
    events: mpsc::UnboundedReceiver<Polled>,
}

impl Client {
    pub(crate) fn connect(port: u16, username: &str, password: &str, client_id: &str) -> Self {
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

    /// Waits for the first event `pick` accepts (or the first error if `pick` takes errors).
    pub(crate) async fn wait<T>(
        &mut self,
        mut pick: impl FnMut(&Polled) -> Option<T>,
    ) -> Option<T> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let event = tokio::time::timeout_at(deadline, self.events.recv())
                .await
                .ok()??;
            if let Some(found) = pick(&event) {
                return Some(found);
            }
            if event.is_err() {
                return None;
            }
        }
    }

    pub(crate) async fn connected(&mut self) -> bool {
        self.wait(|e| match e {
            Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                Some(ack.code == ConnectReturnCode::Success)
            }
            Err(_) => Some(false),
            _ => None,
        })
        .await
        .unwrap_or(false)
    }

    pub(crate) async fn disconnected(&mut self) -> bool {
        self.wait(|e| e.is_err().then_some(true))
            .await
            .unwrap_or(false)
    }

    pub(crate) async fn suback(&mut self) -> Vec<SubscribeReasonCode> {
        self.wait(|e| match e {
            Ok(Event::Incoming(Packet::SubAck(ack))) => Some(ack.return_codes.clone()),
            _ => None,
        })
        .await
        .unwrap_or_default()
    }

    pub(crate) async fn next_payload(&mut self) -> Option<Vec<u8>> {
        self.wait(|e| match e {
            Ok(Event::Incoming(Packet::Publish(p))) => Some(p.payload.to_vec()),
            _ => None,
        })
        .await
    }
}

pub(crate) async fn session(daemon: &Daemon, body: serde_json::Value) -> (u16, serde_json::Value) {
    post_json(
        &format!("http://{}/v1/broker/session", daemon.http_addr),
        body,
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unpaid_refused_paid_granted_refund_revoked() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start(&dir.path().join("broker").tap_create());
    let (seller, buyer, operator) = (pair(1), pair(3), pair(2));
    let me = account(&operator);
    let view = view_with(vec![ChainEvent::StreamAssigned(assignment(
        &seller,
        std::slice::from_ref(&me),
    ))]);
    let config = mosquitto_config(&dir.path().join("op"), broker.port, &seed_suri(2));
    let daemon = Daemon::start(config, view.clone(), Arc::new(NoChainSubmitter))
        .await
        .unwrap();

    // Unpaid: no credentials from the daemon, and made-up ones do not get onto the broker.
    let (status, body) = session(
        &daemon,
        serde_json::json!({ "access_request": access_request(&buyer, &me, 1, 1) }),
    )
    .await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"], "unknown_purchase");
    let mut intruder = Client::connect(broker.port, "fd-buyer-1", "guess", "intruder");
    assert!(
        !intruder.connected().await,
        "unknown credentials must be refused"
    );

    // The seller gets publish credentials with its upload token.
    let (status, seller_creds) = session(
        &daemon,
        serde_json::json!({ "upload_token": upload_token(&seller, &me, 1) }),
    )
    .await;
    assert_eq!(status, 200, "{seller_creds}");
    assert_eq!(seller_creds["access"], "publish");
    let mut publisher = Client::connect(
        broker.port,
        seller_creds["username"].as_str().unwrap(),
        seller_creds["password"].as_str().unwrap(),
        seller_creds["client_id"].as_str().unwrap(),
    );
    assert!(publisher.connected().await);

    // The purchase lands on chain: the buyer is granted.
    view.apply(ChainEvent::PurchaseUpdated(purchase(1, &buyer, 1_000)));
    let (status, creds) = session(
        &daemon,
        serde_json::json!({ "access_request": access_request(&buyer, &me, 1, 2) }),
    )
    .await;
    assert_eq!(status, 200, "{creds}");
    assert_eq!(creds["username"], "fd-buyer-1");
    assert_eq!(creds["client_id"], "fd-buyer-1");
    assert_eq!(creds["topic"], stream_topic(&STREAM));
    let (user, pass) = (
        creds["username"].as_str().unwrap().to_owned(),
        creds["password"].as_str().unwrap().to_owned(),
    );
    // The login is bound to its client id: any other id is refused.
    let mut elsewhere = Client::connect(broker.port, &user, &pass, "buyer");
    assert!(
        !elsewhere.connected().await,
        "a login must keep its client id"
    );
    let mut subscriber = Client::connect(broker.port, &user, &pass, "fd-buyer-1");
    assert!(subscriber.connected().await);
    subscriber
        .mqtt
        .subscribe(stream_topic(&STREAM), QoS::AtLeastOnce)
        .await
        .unwrap();
    assert!(matches!(
        subscriber.suback().await[..],
        [SubscribeReasonCode::Success(_)]
    ));
    // Other streams stay closed to the buyer.
    subscriber
        .mqtt
        .subscribe(stream_topic(&H256::repeat_byte(8)), QoS::AtLeastOnce)
        .await
        .unwrap();
    assert_eq!(
        subscriber.suback().await,
        vec![SubscribeReasonCode::Failure]
    );
    // A replayed access request is refused.
    let (status, _) = session(
        &daemon,
        serde_json::json!({ "access_request": access_request(&buyer, &me, 1, 2) }),
    )
    .await;
    assert_eq!(status, 403);

    // Data flows seller → broker → buyer, and the daemon stores it.
    let sent = segment(1);
    publisher
        .mqtt
        .publish(stream_topic(&STREAM), QoS::AtLeastOnce, false, sent.clone())
        .await
        .unwrap();
    assert_eq!(subscriber.next_payload().await, Some(sent));
    let store = daemon.node.store.clone();
    assert!(
        wait_until(Duration::from_secs(10), || store.count(&STREAM).unwrap()
            == 1)
        .await
    );
    // The buyer cannot publish into the stream (on a second connection, which takes the
    // subscriber's session over: Mosquitto may drop a client whose publish is denied).
    let mut buyer_publisher = Client::connect(broker.port, &user, &pass, "fd-buyer-1");
    assert!(buyer_publisher.connected().await);
    buyer_publisher
        .mqtt
        .publish(stream_topic(&STREAM), QoS::AtLeastOnce, false, segment(2))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(store.count(&STREAM).unwrap(), 1);
    let mut subscriber = Client::connect(broker.port, &user, &pass, "fd-buyer-1");
    assert!(subscriber.connected().await);

    // Refund: the buyer's client is deleted, its connection dropped, its credentials dead.
    view.apply(ChainEvent::PurchaseRefunded { purchase: 1 });
    assert!(
        subscriber.disconnected().await,
        "a refunded buyer must be disconnected"
    );
    let mut again = Client::connect(broker.port, &user, &pass, "fd-buyer-1");
    assert!(
        !again.connected().await,
        "revoked credentials must be refused"
    );
    let (status, body) = session(
        &daemon,
        serde_json::json!({ "access_request": access_request(&buyer, &me, 1, 3) }),
    )
    .await;
    assert_eq!(status, 403);
    assert_eq!(body["error"], "purchase_not_active");

    // The seller is unaffected.
    publisher
        .mqtt
        .publish(stream_topic(&STREAM), QoS::AtLeastOnce, false, segment(3))
        .await
        .unwrap();
    assert!(
        wait_until(Duration::from_secs(10), || store.count(&STREAM).unwrap()
            == 2)
        .await
    );

    let metrics = fastdata_sdk::http::HttpClient::new()
        .get(
            &format!("http://{}/metrics", daemon.http_addr),
            &[],
            1 << 20,
        )
        .await
        .unwrap()
        .1;
    let metrics = String::from_utf8_lossy(&metrics).to_string();
    assert!(
        metrics.contains(r#"fastdata_operator_segments_in_total{result="stored"} 2"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"fastdata_operator_gate_commands_total{command="revoke",result="ok"}"#),
        "{metrics}"
    );
    daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unassigned_seller_cannot_publish() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start(&dir.path().join("broker").tap_create());
    let (seller, operator, elsewhere) = (pair(1), pair(2), pair(5));
    let me = account(&operator);
    // The stream is assigned to another operator only.
    let view = view_with(vec![ChainEvent::StreamAssigned(assignment(
        &seller,
        &[account(&elsewhere)],
    ))]);
    let config = mosquitto_config(&dir.path().join("op"), broker.port, &seed_suri(2));
    let daemon = Daemon::start(config, view.clone(), Arc::new(NoChainSubmitter))
        .await
        .unwrap();

    let (status, body) = session(
        &daemon,
        serde_json::json!({ "upload_token": upload_token(&seller, &me, 1) }),
    )
    .await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"], "not_assigned");
    // Garbage is refused clearly and the daemon keeps serving.
    let (status, body) =
        session(&daemon, serde_json::json!({ "upload_token": "0xdeadbeef" })).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("malformed")));
    let (status, _) = session(&daemon, serde_json::json!({ "nonsense": true })).await;
    assert_eq!(status, 400);

    // Once assigned, the seller can publish; on another stream's topic nothing is stored.
    view.apply(ChainEvent::StreamAssigned(assignment(
        &seller,
        &[me.clone(), account(&elsewhere)],
    )));
    let (status, creds) = session(
        &daemon,
        serde_json::json!({ "upload_token": upload_token(&seller, &me, 2) }),
    )
    .await;
    assert_eq!(status, 200, "{creds}");
    assert_eq!(creds["access"], "publish", "{creds}");
    let (user, pass, id) = (
        creds["username"].as_str().unwrap().to_owned(),
        creds["password"].as_str().unwrap().to_owned(),
        creds["client_id"].as_str().unwrap().to_owned(),
    );
    let mut publisher = Client::connect(broker.port, &user, &pass, &id);
    assert!(publisher.connected().await);
    publisher
        .mqtt
        .publish(stream_topic(&STREAM), QoS::AtLeastOnce, false, segment(1))
        .await
        .unwrap();
    let store = daemon.node.store.clone();
    assert!(
        wait_until(Duration::from_secs(10), || store.count(&STREAM).unwrap()
            == 1)
        .await
    );
    // Garbage on the right topic passes the broker but is not stored.
    publisher
        .mqtt
        .publish(
            stream_topic(&STREAM),
            QoS::AtLeastOnce,
            false,
            b"garbage".to_vec(),
        )
        .await
        .unwrap();
    // Another stream's topic is denied by the broker (second connection, which takes the
    // publisher's session over: Mosquitto may drop a client whose publish is denied).
    let other = H256::repeat_byte(8);
    let mut stray = Client::connect(broker.port, &user, &pass, &id);
    assert!(stray.connected().await);
    stray
        .mqtt
        .publish(stream_topic(&other), QoS::AtLeastOnce, false, segment(2))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(store.count(&other).unwrap(), 0);
    assert_eq!(store.count(&STREAM).unwrap(), 1);
    let mut publisher = Client::connect(broker.port, &user, &pass, &id);
    assert!(publisher.connected().await);

    // Unassigned: the seller's client is deleted and disconnected; it cannot come back.
    view.apply(ChainEvent::StreamUnassigned { stream: STREAM });
    assert!(
        publisher.disconnected().await,
        "an unassigned seller must be disconnected"
    );
    let mut again = Client::connect(broker.port, &user, &pass, &id);
    assert!(!again.connected().await);
    let (status, _) = session(
        &daemon,
        serde_json::json!({ "upload_token": upload_token(&seller, &me, 3) }),
    )
    .await;
    assert_eq!(status, 404);
    daemon.shutdown().await;
}

trait TapCreate {
    fn tap_create(self) -> Self;
}

impl TapCreate for std::path::PathBuf {
    fn tap_create(self) -> Self {
        std::fs::create_dir_all(&self).unwrap();
        self
    }
}

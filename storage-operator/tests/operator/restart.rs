//! The gate's decisions survive a restart of the daemon on its data directory: a buyer's
//! minted login still gets onto the broker, its session that stayed connected is still
//! disconnected when the purchase is refunded, and the login is refused from then on.
//! VerneMQ against a stand-in for its HTTP API (session list, disconnect); Mosquitto against a
//! real broker.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use crate::{common::*, mosquitto_gate::session, mosquitto_gate::Client};
use axum::{extract::RawQuery, extract::State, routing::get, Json, Router};
use fastdata_operator::{
    auth::stream_topic, chain::ChainEvent, config::Config, daemon::Daemon,
    receipts::NoChainSubmitter,
};
use rumqttc::{QoS, SubscribeReasonCode};
use serde_json::{json, Value};

/// How long a revocation may take to reach the broker.
const BOUND: Duration = Duration::from_secs(5);

/// VerneMQ's management API as the gate uses it: `session/show` lists `online`,
/// `session/disconnect` records the client id.
#[derive(Clone, Default)]
struct FakeApi {
    online: Arc<Mutex<Vec<Value>>>,
    disconnected: Arc<Mutex<Vec<String>>>,
}

impl FakeApi {
    async fn start(&self) -> String {
        let app = Router::new()
            .route(
                "/api/v1/session/show",
                get(|State(api): State<FakeApi>| async move {
                    Json(json!([{ "type": "table", "table": api.online.lock().unwrap().clone() }]))
                }),
            )
            .route(
                "/api/v1/session/disconnect",
                get(
                    |State(api): State<FakeApi>, RawQuery(query): RawQuery| async move {
                        let query = query.unwrap_or_default();
                        if let Some(id) =
                            query.split('&').find_map(|p| p.strip_prefix("client-id="))
                        {
                            api.disconnected.lock().unwrap().push(id.to_owned());
                        }
                        Json(json!({ "type": "text", "text": "Done" }))
                    },
                ),
            )
            .with_state(self.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        url
    }

    fn disconnected(&self) -> Vec<String> {
        self.disconnected.lock().unwrap().clone()
    }
}

async fn hook(daemon: &Daemon, hook: &str, body: Value) -> Value {
    let url = format!(
        "http://{}/vernemq/{hook}",
        daemon.webhook_addr.expect("the VerneMQ backend")
    );
    post_json(&url, body).await.1
}

fn register(creds: &Value) -> Value {
    json!({
        "peer_addr": "127.0.0.1", "peer_port": 1, "mountpoint": "", "clean_session": true,
        "username": creds["username"], "password": creds["password"], "client_id": creds["client_id"],
    })
}

fn subscribe(creds: &Value) -> Value {
    json!({
        "mountpoint": "", "client_id": creds["client_id"], "username": creds["username"],
        "topics": [{ "topic": stream_topic(&STREAM), "qos": 1 }],
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vernemq_logins_and_sessions_survive_a_restart_and_are_revoked() {
    let dir = tempfile::tempdir().unwrap();
    let (seller, buyer, operator) = (pair(1), pair(3), pair(2));
    let me = account(&operator);
    let view = view_with(vec![
        ChainEvent::StreamAssigned(assignment(&seller, std::slice::from_ref(&me))),
        ChainEvent::PurchaseUpdated(purchase(1, &buyer, 1_000)),
    ]);
    let api = FakeApi::default();
    let api_url = api.start().await;
    let config = || {
        let mut config: Config = vernemq_config(dir.path(), &seed_suri(2), 8);
        config.vernemq.api_url = Some(api_url.clone());
        config.vernemq.api_key = Some("key".into());
        config
    };
    let ok = json!({ "result": "ok" });
    let refused = json!({ "result": { "error": "not_allowed" } });

    let daemon = Daemon::start(config(), view.clone(), Arc::new(NoChainSubmitter))
        .await
        .unwrap();
    let mut logins = Vec::new();
    for nonce in 1..=2 {
        let (status, creds) = session(
            &daemon,
            json!({ "access_request": access_request(&buyer, &me, 1, nonce) }),
        )
        .await;
        assert_eq!(status, 200, "{creds}");
        assert_eq!(
            hook(&daemon, "auth_on_register", register(&creds)).await,
            ok
        );
        assert_eq!(
            hook(&daemon, "auth_on_subscribe", subscribe(&creds)).await,
            ok
        );
        logins.push(creds);
    }
    let [stays, left] = <[Value; 2]>::try_from(logins).unwrap();
    daemon.shutdown().await;

    // While the daemon was down the second subscriber left, and a client the gate never
    // admitted is online.
    *api.online.lock().unwrap() = vec![
        json!({ "client_id": stays["client_id"], "mountpoint": "", "user": stays["username"], "is_online": true }),
        json!({ "client_id": left["client_id"], "mountpoint": "", "user": left["username"], "is_online": false }),
        json!({ "client_id": "stranger", "mountpoint": "", "user": "someone", "is_online": true }),
    ];
    let daemon = Daemon::start(config(), view.clone(), Arc::new(NoChainSubmitter))
        .await
        .unwrap();
    // The stranger is disconnected at start; nobody else.
    assert_eq!(api.disconnected(), vec!["stranger".to_owned()]);
    // The connected subscriber is still known (its subscriptions are answered); the one that
    // left is forgotten.
    assert_eq!(
        hook(&daemon, "auth_on_subscribe", subscribe(&stays)).await,
        ok
    );
    assert_eq!(
        hook(&daemon, "auth_on_subscribe", subscribe(&left)).await,
        refused
    );
    // Both minted logins still work.
    assert_eq!(hook(&daemon, "auth_on_register", register(&left)).await, ok);
    hook(
        &daemon,
        "on_client_gone",
        json!({ "mountpoint": "", "client_id": left["client_id"] }),
    )
    .await;
    assert_eq!(
        hook(&daemon, "auth_on_register", register(&stays)).await,
        ok
    );

    // The refund disconnects the session that outlived the restart and kills both logins.
    view.apply(ChainEvent::PurchaseRefunded { purchase: 1 });
    let stays_id = stays["client_id"].as_str().unwrap().to_owned();
    assert!(
        wait_until(BOUND, || api.disconnected().contains(&stays_id)).await,
        "the refunded subscriber was not disconnected: {:?}",
        api.disconnected()
    );
    assert_eq!(
        api.disconnected(),
        vec!["stranger".to_owned(), stays_id],
        "only the refunded session is disconnected (the other one had left)"
    );
    for creds in [&stays, &left] {
        assert_eq!(
            hook(&daemon, "auth_on_register", register(creds)).await,
            refused
        );
    }
    daemon.shutdown().await;

    // Nothing of the refunded purchase is read back at the next start.
    let daemon = Daemon::start(config(), view, Arc::new(NoChainSubmitter))
        .await
        .unwrap();
    for creds in [&stays, &left] {
        assert_eq!(
            hook(&daemon, "auth_on_register", register(creds)).await,
            refused
        );
    }
    daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mosquitto_logins_survive_a_restart_and_are_revoked() {
    let dir = tempfile::tempdir().unwrap();
    let broker_dir = dir.path().join("broker");
    std::fs::create_dir_all(&broker_dir).unwrap();
    let broker = Mosquitto::start(&broker_dir);
    let (seller, buyer, operator) = (pair(1), pair(3), pair(2));
    let me = account(&operator);
    let view = view_with(vec![
        ChainEvent::StreamAssigned(assignment(&seller, std::slice::from_ref(&me))),
        ChainEvent::PurchaseUpdated(purchase(1, &buyer, 1_000)),
    ]);
    let config = || mosquitto_config(&dir.path().join("op"), broker.port, &seed_suri(2));
    let daemon = Daemon::start(config(), view.clone(), Arc::new(NoChainSubmitter))
        .await
        .unwrap();
    let (status, seller_creds) = session(
        &daemon,
        json!({ "upload_token": upload_token(&seller, &me, 1) }),
    )
    .await;
    assert_eq!(status, 200, "{seller_creds}");
    let (status, creds) = session(
        &daemon,
        json!({ "access_request": access_request(&buyer, &me, 1, 1) }),
    )
    .await;
    assert_eq!(status, 200, "{creds}");
    let text = |v: &Value, key: &str| v[key].as_str().unwrap().to_owned();
    let connect = |c: &Value| {
        Client::connect(
            broker.port,
            &text(c, "username"),
            &text(c, "password"),
            &text(c, "client_id"),
        )
    };
    let mut publisher = connect(&seller_creds);
    assert!(publisher.connected().await);
    let mut subscriber = connect(&creds);
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

    daemon.shutdown().await;
    let daemon = Daemon::start(config(), view.clone(), Arc::new(NoChainSubmitter))
        .await
        .unwrap();
    // The subscriber kept its connection and still receives.
    let sent = segment(1);
    publisher
        .mqtt
        .publish(stream_topic(&STREAM), QoS::AtLeastOnce, false, sent.clone())
        .await
        .unwrap();
    assert_eq!(subscriber.next_payload().await, Some(sent));
    // The minted login still gets on (taking its own session over).
    let mut again = connect(&creds);
    assert!(
        again.connected().await,
        "a minted login must survive a restart"
    );
    assert!(subscriber.disconnected().await);
    again
        .mqtt
        .subscribe(stream_topic(&STREAM), QoS::AtLeastOnce)
        .await
        .unwrap();
    assert!(matches!(
        again.suback().await[..],
        [SubscribeReasonCode::Success(_)]
    ));

    // The refund after the restart disconnects it and kills the login.
    let refunded = tokio::time::Instant::now();
    view.apply(ChainEvent::PurchaseRefunded { purchase: 1 });
    assert!(
        again.disconnected().await,
        "a refunded buyer must be disconnected"
    );
    assert!(refunded.elapsed() < BOUND, "{:?}", refunded.elapsed());
    assert!(
        !connect(&creds).connected().await,
        "revoked credentials must be refused"
    );
    daemon.shutdown().await;
}

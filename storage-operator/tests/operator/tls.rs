//! TLS end to end, with a CA and a server certificate generated here (rcgen): the API over
//! HTTPS (trusted with the CA, refused without it), a seller publishing through `mqtts://` to
//! a Mosquitto TLS listener while the daemon's own broker connections use TLS too, a buyer
//! receiving over HTTPS and `mqtts://`, replication from an `https://` peer trusted through
//! `http.ca_cert`, and the checks of the TLS settings at start-up.

use std::{
    collections::BTreeMap,
    path::Path,
    sync::{Arc, Mutex, OnceLock},
    time::{Duration, Instant},
};

use crate::common::*;
use fastdata_operator::{
    chain::{ChainEvent, PurchaseInfo},
    config::Config,
    daemon::Daemon,
    receipts::NoChainSubmitter,
    replication::BackfillRequest,
    store::NewSegment,
};
use fastdata_primitives::escrow::{AccessPeriod, PurchaseState, PurchaseTerms};
use fastdata_sdk::{
    http::{tls_config, HttpClient, CA_CERT_ENV},
    operator::OperatorEndpoint,
    publish::StreamPublisher,
    receive::{Receiver, Verifier},
    Account,
};
use fastdata_test_support::mosquitto::BrokerTls;

/// One PKI for the whole test binary, in a directory that outlives every test, with
/// `FASTDATA_CA_CERT` naming its CA: the SDK's publisher and receiver trust it through the
/// environment, and the environment is the process's, shared by concurrent tests.
fn pki() -> &'static Pki {
    static PKI: OnceLock<Pki> = OnceLock::new();
    PKI.get_or_init(|| {
        let dir = tempfile::Builder::new()
            .prefix("tls-pki-")
            .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
            .unwrap()
            .keep();
        let pki = Pki::generate(&dir);
        std::env::set_var(CA_CERT_ENV, &pki.ca);
        pki
    })
}

/// `[operator]`, `[http]` (on a free port) with `http_extra`, `[broker]` with `broker_extra`.
fn config_text(data_dir: &Path, seed: u8, http_extra: &str, broker: &str) -> String {
    format!(
        r#"
        [operator]
        suri = "{}"
        data_dir = "{}"
        [http]
        listen = "127.0.0.1:0"
        {http_extra}
        [broker]
        {broker}
        [vernemq]
        webhook_listen = "127.0.0.1:0"
        [serving]
        receipt_window = 64
        [claims]
        interval_secs = 1
        batch = 4
        "#,
        seed_suri(seed),
        data_dir.display()
    )
}

fn tls_lines(pki: &Pki) -> String {
    format!(
        "tls_cert = \"{}\"\ntls_key = \"{}\"",
        pki.cert.display(),
        pki.key.display()
    )
}

/// A VerneMQ-kind broker section: the daemon needs no broker to serve its API.
fn no_broker() -> String {
    format!(
        "kind = \"vernemq\"\nport = {}\nusername = \"operator\"\npassword = \"operator-secret\"",
        free_port()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_over_https_trusted_with_the_ca_refused_without() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki();
    let config = Config::from_toml(&config_text(
        &dir.path().join("op"),
        2,
        &tls_lines(pki),
        &no_broker(),
    ))
    .unwrap();
    let daemon = Daemon::start(config, view_with(vec![]), Arc::new(NoChainSubmitter))
        .await
        .unwrap();
    assert!(daemon.https);
    let url = daemon.http_url();
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");

    // With the CA: by IP address and by name, GET and POST.
    let trusting = HttpClient::with_extra_roots(&pki.ca_pem()).unwrap();
    // (`/metrics`: `/health` is 503 here, as no broker runs for ingest.)
    let (status, body) = trusting
        .get(&format!("{url}/metrics"), &[], 1 << 20)
        .await
        .unwrap();
    assert_eq!(status.as_u16(), 200);
    assert!(String::from_utf8_lossy(&body).contains("fastdata_operator_"));
    let by_name = format!("https://localhost:{}/metrics", daemon.http_addr.port());
    let (status, _) = trusting.get(&by_name, &[], 1 << 20).await.unwrap();
    assert_eq!(status.as_u16(), 200);
    let (status, body) = trusting
        .post(
            &format!("{url}/v1/broker/session"),
            &[("content-type", "application/json".into())],
            r#"{"upload_token":"0xdeadbeef"}"#,
            1024,
        )
        .await
        .unwrap();
    assert_eq!(status.as_u16(), 400, "{}", String::from_utf8_lossy(&body));

    // Without the CA (system roots only): a certificate error, and nothing served.
    let stranger = HttpClient::with_tls_config(tls_config(None).unwrap());
    let err = stranger
        .get(&format!("{url}/metrics"), &[], 1 << 20)
        .await
        .unwrap_err();
    assert!(err.contains("certificate"), "{err}");
    // Plain HTTP on the HTTPS port gets no answer either.
    assert!(
        trusting
            .get(
                &format!("http://{}/metrics", daemon.http_addr),
                &[],
                1 << 20
            )
            .await
            .map(|(status, _)| status.as_u16())
            != Ok(200)
    );
    // The server keeps serving after failed handshakes.
    let (status, _) = trusting
        .get(&format!("{url}/metrics"), &[], 1 << 20)
        .await
        .unwrap();
    assert_eq!(status.as_u16(), 200);

    // Graceful shutdown with a pooled keep-alive connection open: prompt, and the port closes.
    let start = Instant::now();
    let addr = daemon.http_addr;
    daemon.shutdown().await;
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    assert!(std::net::TcpStream::connect(addr).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replication_over_https_trusts_http_ca_cert() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki();
    let (seller, a_pair, b_pair) = (pair(1), pair(2), pair(4));
    let operators = [account(&a_pair), account(&b_pair)];
    // Operator A serves HTTPS and holds 0..=9.
    let view_a = view_with(vec![ChainEvent::StreamAssigned(assignment(
        &seller, &operators,
    ))]);
    let a = Daemon::start(
        Config::from_toml(&config_text(
            &dir.path().join("a"),
            2,
            &tls_lines(pki),
            &no_broker(),
        ))
        .unwrap(),
        view_a,
        Arc::new(NoChainSubmitter),
    )
    .await
    .unwrap();
    let envelopes: Vec<NewSegment> = (0..10)
        .map(|sequence| NewSegment {
            stream: STREAM,
            sequence,
            envelope: segment(sequence),
        })
        .collect();
    a.node.store.insert_segments(&envelopes, 10).unwrap();

    // Operator B trusts the CA through `http.ca_cert` and backfills from A's https:// URL.
    let view_b = view_with(vec![
        ChainEvent::StreamAssigned(assignment(&seller, &operators)),
        ChainEvent::HeadAttested {
            stream: STREAM,
            head: 10,
        },
        ChainEvent::OperatorEndpoint {
            operator: account(&a_pair),
            http_url: a.http_url(),
        },
    ]);
    let b = Daemon::start(
        Config::from_toml(&config_text(
            &dir.path().join("b"),
            4,
            &format!("ca_cert = \"{}\"", pki.ca.display()),
            &no_broker(),
        ))
        .unwrap(),
        view_b,
        Arc::new(NoChainSubmitter),
    )
    .await
    .unwrap();
    b.request_backfill(BackfillRequest {
        stream: STREAM,
        from: 0,
        to: 9,
    })
    .await
    .unwrap();
    let store_b = b.node.store.clone();
    assert!(
        wait_until(Duration::from_secs(20), || store_b.count(&STREAM).unwrap()
            == 10)
        .await,
        "B did not replicate from A over HTTPS"
    );
    assert_eq!(
        store_b.segment(&STREAM, 7).unwrap().unwrap().envelope,
        envelopes[7].envelope
    );
    a.shutdown().await;
    b.shutdown().await;
}

/// A live purchase of [`STREAM`] (history and live segments).
fn stream_purchase(buyer: &Account, end: u32) -> PurchaseInfo {
    PurchaseInfo {
        id: 1,
        buyer: buyer.account_id(),
        stream: STREAM,
        offer: 1,
        terms: PurchaseTerms::Stream {
            period: end,
            periods: 1,
        },
        access: AccessPeriod {
            start: 0,
            end,
            first_epoch: None,
            epochs: vec![0],
        },
        state: PurchaseState::Active,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seller_to_buyer_over_mqtts_and_https() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki();
    // The SDK's publisher and receiver trust the CA through FASTDATA_CA_CERT (see `pki`).
    let tls_port = free_port();
    let broker = fastdata_test_support::mosquitto::Mosquitto::start_with_tls(
        &dir.path().join("broker"),
        free_port(),
        ADMIN_PASSWORD,
        Some(&BrokerTls {
            port: tls_port,
            cert: pki.cert.clone(),
            key: pki.key.clone(),
            ca: Some(pki.ca.clone()),
        }),
    )
    .unwrap();
    assert_eq!(broker.tls_port, Some(tls_port));

    let (seller, buyer) = (Account::from_seed(&[1; 32]), Account::from_seed(&[9; 32]));
    let operator = pair(2);
    let view = view_with(vec![
        ChainEvent::StreamAssigned(assignment(&pair(1), &[account(&operator)])),
        ChainEvent::PurchaseUpdated(stream_purchase(&buyer, 1_000)),
    ]);
    // The daemon: API over HTTPS, dynsec control and ingest over TLS to the broker.
    let config = Config::from_toml(&config_text(
        &dir.path().join("op"),
        2,
        &format!("{}\nca_cert = \"{}\"", tls_lines(pki), pki.ca.display()),
        &format!(
            "kind = \"mosquitto\"\nport = {tls_port}\ntls = true\nusername = \"{ADMIN_USER}\"\npassword = \"{ADMIN_PASSWORD}\""
        ),
    ))
    .unwrap();
    let daemon = Daemon::start(config, view, Arc::new(NoChainSubmitter))
        .await
        .unwrap();
    let endpoint = OperatorEndpoint {
        account: account(&operator),
        broker_url: format!("mqtts://127.0.0.1:{tls_port}"),
        http_url: daemon.http_url(),
    };

    // The seller publishes history through mqtts://; the daemon stores it.
    let mut publisher = StreamPublisher::connect(
        &seller,
        GENESIS,
        STREAM,
        0,
        keys(),
        std::slice::from_ref(&endpoint),
        1_000,
        0,
    )
    .await
    .unwrap();
    for i in 0..5u64 {
        publisher
            .publish(format!("history {i}").as_bytes())
            .await
            .unwrap();
    }
    publisher.flush(Duration::from_secs(10)).await.unwrap();
    let store = daemon.node.store.clone();
    assert!(
        wait_until(Duration::from_secs(20), || store.count(&STREAM).unwrap()
            == 5)
        .await
    );

    // The buyer follows: history over HTTPS, then live segments through mqtts://.
    let received = Arc::new(Mutex::new(Vec::<(u64, Vec<u8>)>::new()));
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let follower = {
        let received = received.clone();
        let endpoint = endpoint.clone();
        tokio::spawn(async move {
            let mut receiver = Receiver::new(
                buyer,
                GENESIS,
                1,
                Verifier::new(STREAM, BTreeMap::from([(0, keys())])),
                vec![endpoint],
                1_000,
                None,
            );
            receiver
                .follow(
                    |segment| {
                        received
                            .lock()
                            .unwrap()
                            .push((segment.header.sequence, segment.payload));
                        Ok(())
                    },
                    Duration::from_millis(200),
                    async {
                        let _ = stop_rx.await;
                    },
                )
                .await
        })
    };
    let count = |received: &Mutex<Vec<(u64, Vec<u8>)>>| received.lock().unwrap().len();
    assert!(
        wait_until(Duration::from_secs(20), || count(&received) >= 5).await,
        "no history over HTTPS"
    );
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    for i in 5..15u64 {
        publisher
            .publish(format!("live {i}").as_bytes())
            .await
            .unwrap();
    }
    publisher.flush(Duration::from_secs(10)).await.unwrap();
    assert!(
        wait_until(Duration::from_secs(20), || count(&received) >= 15).await,
        "live segments missing: {:?}",
        received
            .lock()
            .unwrap()
            .iter()
            .map(|r| r.0)
            .collect::<Vec<_>>()
    );
    let _ = stop_tx.send(());
    let summary = follower.await.unwrap().unwrap();
    let got = received.lock().unwrap().clone();
    assert_eq!(
        got.iter().map(|r| r.0).collect::<Vec<_>>(),
        (0..15).collect::<Vec<_>>()
    );
    assert_eq!(got[14].1, b"live 14");
    assert_eq!(summary.segments, 15);
    assert!(
        wait_until(Duration::from_secs(20), || store.count(&STREAM).unwrap()
            == 15)
        .await
    );
    // Receipts reached the daemon over HTTPS.
    assert!(daemon.node.receipts.latest(1).unwrap().is_some());

    publisher.close(Duration::from_secs(5)).await.unwrap();
    daemon.shutdown().await;
}

#[test]
fn tls_settings_are_checked_at_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki();
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "this is not PEM\n").unwrap();
    let broken = dir.path().join("broken.pem");
    std::fs::write(
        &broken,
        "-----BEGIN CERTIFICATE-----\n!!not base64!!\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let missing = dir.path().join("missing.pem");
    let data_dir = dir.path().join("op");
    let with = |http: String| Config::from_toml(&config_text(&data_dir, 2, &http, &no_broker()));
    let error = |http: String| {
        let result = with(http.clone());
        format!(
            "{:#}",
            result.err().unwrap_or_else(|| panic!("accepted: {http}"))
        )
    };
    let cert_key = |cert: &Path, key: &Path| {
        format!(
            "tls_cert = \"{}\"\ntls_key = \"{}\"",
            cert.display(),
            key.display()
        )
    };

    assert!(with(tls_lines(pki)).is_ok());
    assert!(with(format!("ca_cert = \"{}\"", pki.ca.display())).is_ok());
    let cases = [
        // One without the other.
        (
            format!("tls_cert = \"{}\"", pki.cert.display()),
            "tls_cert is set but tls_key is not",
        ),
        (
            format!("tls_key = \"{}\"", pki.key.display()),
            "tls_key is set but tls_cert is not",
        ),
        // Unreadable files: missing, a directory.
        (cert_key(&missing, &pki.key), "cannot read http.tls_cert"),
        (cert_key(&pki.cert, &missing), "cannot read http.tls_key"),
        (cert_key(dir.path(), &pki.key), "cannot read http.tls_cert"),
        // Garbage PEM.
        (cert_key(&garbage, &pki.key), "no PEM CERTIFICATE block"),
        (cert_key(&broken, &pki.key), "malformed PEM"),
        (cert_key(&pki.cert, &garbage), "no usable PEM private key"),
        (cert_key(&pki.key, &pki.key), "no PEM CERTIFICATE block"),
        (cert_key(&pki.cert, &pki.cert), "no usable PEM private key"),
        // A key that is not the certificate's.
        (cert_key(&pki.cert, &pki.ca_key), "with http.tls_key"),
        // Extra CAs.
        (
            format!("ca_cert = \"{}\"", missing.display()),
            "cannot read http.ca_cert",
        ),
        (
            format!("ca_cert = \"{}\"", garbage.display()),
            "no PEM CERTIFICATE block",
        ),
        (
            format!("ca_cert = \"{}\"", broken.display()),
            "malformed PEM",
        ),
    ];
    for (http, expected) in cases {
        let text = error(http.clone());
        assert!(text.contains(expected), "{http}: {text}");
    }
}

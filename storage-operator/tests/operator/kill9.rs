//! Nothing acknowledged is lost: the real `fastdata-operator` binary is killed with SIGKILL
//! in the middle of a stream, its database reopens with every stored segment, and after a
//! restart every segment the seller published is there exactly once. A final SIGTERM shows
//! the graceful shutdown.

use fastdata_sdk::http::HttpClient;
use std::{
    process::{Child, Command, Stdio},
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use crate::common::*;
use fastdata_operator::{
    api::{decode_signed_frames, ACCESS_HEADER},
    auth::stream_topic,
    store::Store,
};
use fastdata_primitives::envelope;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use sp_core::crypto::Ss58Codec;

const TOTAL: u64 = 300;

fn spawn_daemon(config: &std::path::Path, log: &std::path::Path) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    Command::new(daemon_binary())
        .arg("--config")
        .arg(config)
        .env("RUST_LOG", "info")
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .stdin(Stdio::null())
        .spawn()
        .expect("the daemon binary starts")
}

async fn stored_count(http: u16) -> u64 {
    let Ok((_, body)) = HttpClient::new()
        .get(&format!("http://127.0.0.1:{http}/metrics"), &[], 1 << 20)
        .await
    else {
        return 0;
    };
    let text = String::from_utf8_lossy(&body).to_string();
    text.lines()
        .find_map(|l| l.strip_prefix(r#"fastdata_operator_segments_in_total{result="stored"} "#))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_segments_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let broker_dir = dir.path().join("broker");
    std::fs::create_dir_all(&broker_dir).unwrap();
    let broker = Mosquitto::start(&broker_dir);
    let (seller, buyer, operator) = (pair(1), pair(3), pair(2));
    let me = account(&operator);
    let http = free_port();
    let data_dir = dir.path().join("data");
    let fixture = dir.path().join("chain.toml");
    std::fs::write(
        &fixture,
        format!(
            "finalized = 10\n\
             [[stream]]\nid = \"0x{stream}\"\nseller = \"{seller}\"\noperators = [\"{me}\"]\n\
             [[purchase]]\nid = 1\nbuyer = \"{buyer}\"\nstream = \"0x{stream}\"\nend = 1000\nepochs = [0]\n",
            stream = hex::encode(STREAM.as_bytes()),
            seller = account(&seller).to_ss58check(),
            buyer = account(&buyer).to_ss58check(),
            me = me.to_ss58check(),
        ),
    )
    .unwrap();
    let config = dir.path().join("operator.toml");
    std::fs::write(
        &config,
        format!(
            "[operator]\nsuri = \"{suri}\"\ndata_dir = \"{data}\"\n\
             [http]\nlisten = \"127.0.0.1:{http}\"\n\
             [broker]\nkind = \"mosquitto\"\nport = {port}\nusername = \"{ADMIN_USER}\"\npassword = \"{ADMIN_PASSWORD}\"\n\
             [chain]\nfixture = \"{fixture}\"\n\
             [serving]\nreceipt_window = 1000\n",
            suri = seed_suri(2),
            data = data_dir.display(),
            port = broker.port,
            fixture = fixture.display(),
        ),
    )
    .unwrap();
    let log = dir.path().join("operator.log");
    let mut daemon = spawn_daemon(&config, &log);
    wait_for_port(http, Duration::from_secs(30));

    // The seller connects with credentials obtained from its upload token.
    let (status, creds) = post_json(
        &format!("http://127.0.0.1:{http}/v1/broker/session"),
        serde_json::json!({ "upload_token": upload_token(&seller, &me, 1) }),
    )
    .await;
    assert_eq!(status, 200, "{creds}");
    let mut options = MqttOptions::new(
        creds["client_id"].as_str().unwrap(),
        "127.0.0.1",
        broker.port,
    );
    options.set_credentials(
        creds["username"].as_str().unwrap(),
        creds["password"].as_str().unwrap(),
    );
    let (publisher, mut eventloop) = AsyncClient::new(options, 64);
    let acked = Arc::new(AtomicUsize::new(0));
    let counter = acked.clone();
    tokio::spawn(async move {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::PubAck(_))) => {
                    counter.fetch_add(1, Ordering::SeqCst);
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    });
    let topic = stream_topic(&STREAM);

    // First 100 segments, all stored before the kill.
    for sequence in 0..100 {
        publisher
            .publish(&topic, QoS::AtLeastOnce, false, segment(sequence))
            .await
            .unwrap();
    }
    assert!(
        wait_until(Duration::from_secs(30), || acked.load(Ordering::SeqCst)
            == 100)
        .await
    );
    let mut stored = 0;
    for _ in 0..300 {
        stored = stored_count(http).await;
        if stored == 100 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(stored, 100, "the daemon did not store the first segments");

    // Keep publishing at a steady pace and SIGKILL the daemon while it is ingesting.
    let background = {
        let publisher = publisher.clone();
        let topic = topic.clone();
        tokio::spawn(async move {
            for sequence in 100..TOTAL {
                publisher
                    .publish(&topic, QoS::AtLeastOnce, false, segment(sequence))
                    .await
                    .unwrap();
                tokio::time::sleep(Duration::from_millis(3)).await;
            }
        })
    };
    let mut at_kill = 0;
    for _ in 0..600 {
        at_kill = stored_count(http).await;
        if at_kill >= 120 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    daemon.kill().unwrap();
    daemon.wait().unwrap();
    assert!(
        (120..TOTAL).contains(&at_kill),
        "not killed mid-stream ({at_kill} stored)"
    );
    background.await.unwrap();

    // The database opens after the crash and holds a gap-free prefix of the stream, at least
    // everything the daemon reported stored before it died.
    {
        let store = Store::open(&data_dir.join("operator.redb"))
            .expect("the database reopens after kill -9");
        let have = store.sequences(&STREAM, 0, u64::MAX).unwrap();
        assert!(
            have.len() as u64 >= at_kill,
            "lost segments: {} stored, {at_kill} reported",
            have.len()
        );
        assert_eq!(have, (0..have.len() as u64).collect::<Vec<_>>());
    }
    assert!(
        wait_until(Duration::from_secs(30), || acked.load(Ordering::SeqCst)
            == TOTAL as usize)
        .await
    );

    // Restart: the broker redelivers what the dead daemon never acknowledged.
    let daemon = spawn_daemon(&config, &log);
    wait_for_port(http, Duration::from_secs(30));
    let url = format!(
        "http://127.0.0.1:{http}/v1/purchases/1/segments?from=0&to={}",
        TOTAL - 1
    );
    let mut sequences = Vec::new();
    for nonce in 1..=100 {
        let (status, body) = HttpClient::new()
            .get(
                &url,
                &[(ACCESS_HEADER, access_request(&buyer, &me, 1, nonce))],
                1 << 24,
            )
            .await
            .unwrap();
        assert!(
            status.is_success(),
            "{status}: {}",
            String::from_utf8_lossy(&body)
        );
        sequences = decode_signed_frames(&body)
            .unwrap()
            .iter()
            .map(|(f, _)| envelope::parse_header(f).unwrap().sequence)
            .collect();
        if sequences.len() as u64 == TOTAL {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        sequences,
        (0..TOTAL).collect::<Vec<_>>(),
        "every published segment, exactly once, in order"
    );

    // Graceful shutdown on SIGTERM.
    let status = Command::new("kill")
        .args(["-TERM", &daemon.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let mut daemon = daemon;
    let mut exited = None;
    for _ in 0..150 {
        if let Some(status) = daemon.try_wait().unwrap() {
            exited = Some(status);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let exited = exited.unwrap_or_else(|| {
        let _ = daemon.kill();
        panic!(
            "the daemon did not stop on SIGTERM; log: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        )
    });
    assert!(exited.success(), "exit status {exited}");
    let store = Store::open(&data_dir.join("operator.redb")).unwrap();
    assert_eq!(store.count(&STREAM).unwrap(), TOTAL);
}

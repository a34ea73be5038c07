//! Helpers shared by the integration tests: a real Mosquitto with the dynamic-security plugin
//! on a free port, keys, tokens, segments, configs.
#![allow(dead_code)]

use fastdata_sdk::http::HttpClient;
use std::{
    path::Path,
    time::{Duration, Instant},
};

use codec::Encode;
use fastdata_operator::{
    chain::{ChainEvent, InMemoryChainView, PurchaseInfo, StreamAssignment},
    config::Config,
    receipts::Receipt,
};
use fastdata_primitives::{
    envelope::{seal, EpochKeys, SegmentHeader},
    escrow::{AccessPeriod, PurchaseState, PurchaseTerms},
    tokens::{AccessRequest, Signed, UploadToken},
    AccountId, BlockNumber, PurchaseId, Sequence, StreamId,
};
use sp_core::{sr25519, Pair, H256};
use std::sync::Arc;

/// The genesis hash the test daemons check signatures for (no `[chain] genesis` set).
pub const GENESIS: H256 = fastdata_operator::config::FIXTURE_GENESIS;

pub use fastdata_test_support::mosquitto::ADMIN_USER;
pub const ADMIN_PASSWORD: &str = "admin-secret";

pub fn free_port() -> u16 {
    fastdata_test_support::mosquitto::free_port().unwrap()
}

pub fn wait_for_port(port: u16, timeout: Duration) {
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(start.elapsed() < timeout, "nothing listens on port {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A Mosquitto with the dynsec plugin on a free port (killed on drop).
pub struct Mosquitto;

impl Mosquitto {
    /// Starts mosquitto on a free port with the dynsec plugin (scripts/setup installs it).
    #[allow(clippy::new_ret_no_self)]
    pub fn start(dir: &Path) -> fastdata_test_support::mosquitto::Mosquitto {
        fastdata_test_support::mosquitto::Mosquitto::start(dir, free_port(), ADMIN_PASSWORD)
            .expect("mosquitto starts")
    }
}

pub fn pair(seed: u8) -> sr25519::Pair {
    sr25519::Pair::from_seed(&[seed; 32])
}

pub fn account(pair: &sr25519::Pair) -> AccountId {
    AccountId::from(pair.public())
}

pub fn seed_suri(seed: u8) -> String {
    format!("0x{}", hex::encode([seed; 32]))
}

pub const STREAM: StreamId = H256([7; 32]);

pub fn assignment(seller: &sr25519::Pair, operators: &[AccountId]) -> StreamAssignment {
    StreamAssignment {
        stream: STREAM,
        seller: account(seller),
        offer: 1,
        epoch: 0,
        operators: operators.to_vec(),
        retention: 0,
        open: true,
        oldest_epoch: 0,
        quota_bytes: u64::MAX,
    }
}

pub fn purchase(id: PurchaseId, buyer: &sr25519::Pair, end: BlockNumber) -> PurchaseInfo {
    PurchaseInfo {
        id,
        buyer: account(buyer),
        stream: STREAM,
        offer: 1,
        terms: PurchaseTerms::Stream {
            period: end,
            periods: 1,
        },
        access: AccessPeriod {
            start: 0,
            end,
            first_epoch: Some(0),
            epochs: vec![0],
        },
        state: PurchaseState::Active,
    }
}

/// A batch purchase of sequences `first..=last` of [`STREAM`].
pub fn batch_purchase(
    id: PurchaseId,
    buyer: &sr25519::Pair,
    first: Sequence,
    last: Sequence,
) -> PurchaseInfo {
    PurchaseInfo {
        terms: PurchaseTerms::Batch { first, last },
        ..purchase(id, buyer, 1_000)
    }
}

pub fn view_with(events: Vec<ChainEvent>) -> std::sync::Arc<InMemoryChainView> {
    let view = InMemoryChainView::shared();
    view.apply(ChainEvent::Finalized { number: 10 });
    view.apply_all(events);
    view
}

/// [`view_with`] `events`, where purchase `p` starts at sequence `h` for each `(p, h)` of
/// `heads` (what the follower reads from `PurchaseView::start_head`).
pub fn view_with_heads(
    events: Vec<ChainEvent>,
    heads: &[(PurchaseId, Sequence)],
) -> Arc<InMemoryChainView> {
    let view = view_with(events);
    view.set_start_heads(heads.iter().copied());
    view
}

/// SCALE `(receipt, signature)` signed by `buyer` for [`GENESIS`].
pub fn signed_receipt(receipt: &Receipt, buyer: &sr25519::Pair) -> Vec<u8> {
    (receipt.clone(), receipt.sign_sr25519(buyer, &GENESIS)).encode()
}

pub fn upload_token(seller: &sr25519::Pair, operator: &AccountId, nonce: u64) -> String {
    let token = Signed::sign(
        UploadToken {
            stream: STREAM,
            operator: operator.clone(),
            epoch: 0,
            expiry: 1_000u32,
            nonce,
        },
        seller,
        &GENESIS,
    );
    format!("0x{}", hex::encode(token.encode()))
}

pub fn access_request(
    buyer: &sr25519::Pair,
    operator: &AccountId,
    purchase: PurchaseId,
    nonce: u64,
) -> String {
    let request = Signed::sign(
        AccessRequest {
            purchase,
            operator: operator.clone(),
            expiry: 1_000u32,
            nonce,
        },
        buyer,
        &GENESIS,
    );
    format!("0x{}", hex::encode(request.encode()))
}

pub fn keys() -> EpochKeys {
    EpochKeys::new([0x11; 32], [0x22; 32])
}

pub fn segment(sequence: Sequence) -> Vec<u8> {
    let header = SegmentHeader {
        stream: STREAM,
        epoch: 0,
        sequence,
        timestamp: 1_700_000_000_000 + sequence,
    };
    seal(&keys(), &header, format!("reading {sequence}").as_bytes()).unwrap()
}

pub fn mosquitto_config(data_dir: &Path, broker_port: u16, suri: &str) -> Config {
    Config::from_toml(&format!(
        r#"
        [operator]
        suri = "{suri}"
        data_dir = "{}"
        [http]
        listen = "127.0.0.1:0"
        [broker]
        kind = "mosquitto"
        port = {broker_port}
        username = "{ADMIN_USER}"
        password = "{ADMIN_PASSWORD}"
        [serving]
        receipt_window = 8
        [claims]
        interval_secs = 1
        batch = 4
        "#,
        data_dir.display()
    ))
    .unwrap()
}

/// A daemon on [`vernemq_config`] (receipt window 8) in `data_dir`, for the operator with key
/// seed `seed`, following `view`, submitting nothing to a chain.
pub async fn start_vernemq_daemon(
    data_dir: &Path,
    seed: u8,
    view: Arc<InMemoryChainView>,
) -> fastdata_operator::daemon::Daemon {
    fastdata_operator::daemon::Daemon::start(
        vernemq_config(data_dir, &seed_suri(seed), 8),
        view,
        Arc::new(fastdata_operator::receipts::NoChainSubmitter),
    )
    .await
    .unwrap()
}

/// A config for daemons that need no broker (VerneMQ kind: the broker calls us). The ingest
/// client keeps retrying an unused port, which is harmless.
pub fn vernemq_config(data_dir: &Path, suri: &str, ahead: u64) -> Config {
    Config::from_toml(&format!(
        r#"
        [operator]
        suri = "{suri}"
        data_dir = "{}"
        [http]
        listen = "127.0.0.1:0"
        [broker]
        kind = "vernemq"
        port = {}
        username = "operator"
        password = "operator-secret"
        [vernemq]
        webhook_listen = "127.0.0.1:0"
        [serving]
        receipt_window = {ahead}
        "#,
        data_dir.display(),
        free_port()
    ))
    .unwrap()
}

pub async fn post_json(url: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
    let (status, bytes) = HttpClient::new()
        .post(
            url,
            &[("content-type", "application/json".into())],
            body.to_string(),
            1 << 20,
        )
        .await
        .unwrap();
    (
        status.as_u16(),
        serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
    )
}

pub async fn wait_until(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if check() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    check()
}

/// A test PKI in PEM files: a CA, and a server certificate it signed for `localhost` and
/// `127.0.0.1`, with its key.
pub struct Pki {
    pub ca: std::path::PathBuf,
    pub cert: std::path::PathBuf,
    pub key: std::path::PathBuf,
    /// The CA's own key (a key that does not match `cert`).
    pub ca_key: std::path::PathBuf,
}

impl Pki {
    pub fn generate(dir: &Path) -> Self {
        use rcgen::{
            BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
        };
        std::fs::create_dir_all(dir).unwrap();
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "FAST DATA test CA");
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let ca_key_pem = ca_key.serialize_pem();
        let issuer = Issuer::new(ca_params, ca_key);

        let key = KeyPair::generate().unwrap();
        let mut params =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "fastdata test operator");
        let cert = params.signed_by(&key, &issuer).unwrap();

        let pki = Self {
            ca: dir.join("ca.pem"),
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
            ca_key: dir.join("ca-key.pem"),
        };
        std::fs::write(&pki.ca, ca_cert.pem()).unwrap();
        std::fs::write(&pki.cert, cert.pem()).unwrap();
        std::fs::write(&pki.key, key.serialize_pem()).unwrap();
        std::fs::write(&pki.ca_key, ca_key_pem).unwrap();
        pki
    }

    pub fn ca_pem(&self) -> Vec<u8> {
        std::fs::read(&self.ca).unwrap()
    }
}

/// The daemon binary cargo built for this test run.
pub fn daemon_binary() -> std::path::PathBuf {
    if let Some(path) = option_env!("CARGO_BIN_EXE_fastdata-operator") {
        return path.into();
    }
    if let Ok(path) = std::env::var("CARGO_BIN_EXE_fastdata-operator") {
        return path.into();
    }
    // target/<profile>/deps/operator-<hash> → target/<profile>/fastdata-operator
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(|deps| deps.parent()).unwrap();
    let path = profile_dir.join("fastdata-operator");
    assert!(
        path.exists(),
        "daemon binary not found at {}",
        path.display()
    );
    path
}

/// GET `url`: the status and the body as text; status 0 when nothing answers.
pub async fn get_text(url: &str) -> (u16, String) {
    match HttpClient::new().get(url, &[], 1 << 22).await {
        Ok((status, body)) => (status.as_u16(), String::from_utf8_lossy(&body).into_owned()),
        Err(e) => (0, e),
    }
}

/// The value of sample `key` (metric name with its labels, as exposed) in a text exposition.
pub fn metric(text: &str, key: &str) -> Option<f64> {
    text.lines().find_map(|line| {
        line.strip_prefix(key)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

/// `GET <base>/health`: the status and the JSON body (`Null` when nothing answers).
pub async fn health(base: &str) -> (u16, serde_json::Value) {
    let (status, body) = get_text(&format!("{base}/health")).await;
    (
        status,
        serde_json::from_str(&body).unwrap_or(serde_json::Value::Null),
    )
}

/// Task `name` in a `/health` body.
pub fn task<'a>(health: &'a serde_json::Value, name: &str) -> Option<&'a serde_json::Value> {
    health["tasks"]
        .as_array()?
        .iter()
        .find(|t| t["name"] == name)
}

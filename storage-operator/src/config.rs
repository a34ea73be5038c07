//! Configuration: a TOML file, with a few command-line overrides.
//!
//! ```toml
//! [operator]
//! # sr25519 secret of the operator account: a SURI ("//Alice", a mnemonic) or 0x-hex seed.
//! suri = "//Alice"
//! data_dir = "/var/lib/fastdata-operator"
//!
//! [http]
//! listen = "0.0.0.0:8080"
//! # tls_cert = "/etc/fastdata/cert.pem"  # serve HTTPS: certificate chain (PEM), with tls_key
//! # tls_key = "/etc/fastdata/key.pem"    # its private key (PEM: PKCS#8, PKCS#1 or SEC1)
//! # ca_cert = "/etc/fastdata/ca.pem"     # extra CAs (PEM) for outgoing TLS: other operators'
//! #                                      # https:// APIs, VerneMQ's API, the broker (tls = true);
//! #                                      # default: $FASTDATA_CA_CERT; system roots always
//!
//! [broker]
//! kind = "mosquitto"        # or "vernemq"
//! host = "127.0.0.1"        # with tls = true, the name (or IP) its certificate carries
//! port = 1883
//! # hosts = ["10.0.0.1:1883", "10.0.0.2:1883"]  # vernemq cluster: the nodes the daemon's own
//!                           # connections try in turn (instead of host/port), see README
//! # tls = true              # connect over TLS (mqtts), e.g. port 8883
//! username = "admin"        # mosquitto: the dynsec admin; vernemq: the daemon's own account
//! password = "…"
//!
//! [vernemq]                 # only with kind = "vernemq"
//! webhook_listen = "127.0.0.1:8889"
//! # api_url = "http://127.0.0.1:8888"   # to disconnect revoked clients
//! # api_key = "…"
//! # cache_secs = 5          # let VerneMQ reuse an allowed auth_on_publish answer this long
//!                           # (needs api_url; default 0: every publish is asked, see
//!                           # `gate::vernemq`)
//!
//! [chain]
//! url = "ws://127.0.0.1:9944"   # follow this node (or: fixture = "chain.toml" for tests)
//! # genesis = "0x…"             # genesis hash every signature is bound to: read from the
//!                               # node with url (checked if also set); with a fixture, this
//!                               # value or 0x00…00
//! heartbeat = true
//! [chain.register]              # register / update this operator at start-up
//! stake = "200000000000000"     # planck
//! broker_url = "mqtt://203.0.113.7:1883"
//! http_url = "http://203.0.113.7:8080"
//! price_per_mb = "1000000000"
//!
//! [serving]
//! receipt_window = 32       # W: segments a buyer may get past its last receipt, over HTTP
//!                           # and live MQTT alike (old name: ahead_segments)
//!
//! [claims]
//! interval_secs = 60
//! batch = 100               # claims per Utility::force_batch transaction
//!
//! [supervision]             # restarts of the long-running tasks (see `supervisor.rs`)
//! max_restarts = 10         # failures in a row before the daemon exits non-zero
//! initial_backoff_ms = 500  # doubled after each failure …
//! max_backoff_ms = 30000    # … up to this
//! reset_after_secs = 60     # a task up this long starts its count over
//! ```

use std::{net::SocketAddr, path::PathBuf, sync::Arc};

use serde::Deserialize;
use sp_core::H256;

/// Which broker the daemon gates.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum BrokerKind {
    /// Mosquitto with the dynamic-security plugin.
    Mosquitto,
    /// VerneMQ with webhooks.
    Vernemq,
}

/// The whole configuration.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Operator identity and storage.
    pub operator: OperatorSection,
    /// The HTTP API.
    #[serde(default)]
    pub http: HttpSection,
    /// The MQTT broker.
    pub broker: BrokerSection,
    /// VerneMQ specifics.
    #[serde(default)]
    pub vernemq: VernemqSection,
    /// Chain source.
    #[serde(default)]
    pub chain: ChainSection,
    /// Serving limits.
    #[serde(default)]
    pub serving: ServingSection,
    /// Claim submission.
    #[serde(default)]
    pub claims: ClaimsSection,
    /// Restarts of the long-running tasks.
    #[serde(default)]
    pub supervision: SupervisionSection,
}

/// `[operator]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OperatorSection {
    /// SURI or 0x-hex seed of the operator's sr25519 key.
    pub suri: String,
    /// Directory of the database.
    pub data_dir: PathBuf,
}

/// `[http]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSection {
    /// Listen address of the HTTP API.
    pub listen: SocketAddr,
    /// Certificate chain (PEM) to serve the API over HTTPS with; needs `tls_key`.
    #[serde(default)]
    pub tls_cert: Option<PathBuf>,
    /// Private key (PEM) of `tls_cert`.
    #[serde(default)]
    pub tls_key: Option<PathBuf>,
    /// Extra CA certificates (PEM) trusted by the daemon's outgoing TLS connections (other
    /// operators, VerneMQ's API, the broker with `broker.tls`), besides the system's roots.
    /// Without it, `$FASTDATA_CA_CERT` is used if set.
    #[serde(default)]
    pub ca_cert: Option<PathBuf>,
}

impl Default for HttpSection {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 8080)),
            tls_cert: None,
            tls_key: None,
            ca_cert: None,
        }
    }
}

impl HttpSection {
    /// The HTTPS server configuration from `tls_cert` and `tls_key` (files read and checked
    /// now), or `None` for plain HTTP.
    pub fn server_tls(&self) -> anyhow::Result<Option<Arc<rustls::ServerConfig>>> {
        match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => crate::tls::server_config(cert, key).map(Some),
            (None, None) => Ok(None),
            (Some(_), None) => anyhow::bail!("[http] tls_cert is set but tls_key is not; set both"),
            (None, Some(_)) => anyhow::bail!("[http] tls_key is set but tls_cert is not; set both"),
        }
    }

    /// The client configuration of outgoing TLS: system roots plus `ca_cert` (or
    /// `$FASTDATA_CA_CERT`).
    pub fn client_tls(&self) -> anyhow::Result<Arc<rustls::ClientConfig>> {
        crate::tls::client_config(self.ca_cert.as_deref())
    }
}

/// `[broker]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BrokerSection {
    /// Broker kind.
    pub kind: BrokerKind,
    /// Host.
    #[serde(default = "default_host")]
    pub host: String,
    /// Port.
    #[serde(default = "default_port")]
    pub port: u16,
    /// The nodes of a VerneMQ cluster (`"host:port"` each), used instead of `host` and `port`
    /// by the daemon's own connections: ingest tries them in turn, so a node that goes down
    /// does not stop it (see [`Self::nodes`]).
    #[serde(default)]
    pub hosts: Option<Vec<BrokerNode>>,
    /// The daemon's broker username.
    pub username: String,
    /// The daemon's broker password.
    pub password: String,
    /// Client id prefix of the daemon's connections (see [`Self::own_client_id`]).
    #[serde(default = "default_client_prefix")]
    pub client_id_prefix: String,
    /// Connect to the broker over TLS (its certificate must name `host`; trusted CAs as for
    /// `http.ca_cert`).
    #[serde(default)]
    pub tls: bool,
}

impl BrokerSection {
    /// The client id of the daemon's `role` connection (`ingest`, `control`):
    /// `<prefix>-<role>-<tag>`, where the tag (16 hex digits) is derived from the daemon's
    /// broker username and password. It stays the same across restarts (the ingest session is
    /// persistent) and cannot be guessed without the password, so nobody who can read the
    /// prefix (e.g. from the operator's public URL) can connect with it and take the daemon's
    /// session over. The brokers refuse it to buyer and seller logins anyway (they are bound
    /// to their own ids, see `crate::gate`).
    pub fn own_client_id(&self, role: &str) -> String {
        let mut secret = b"fastdata-operator client id\0".to_vec();
        secret.extend_from_slice(self.username.as_bytes());
        secret.push(0);
        secret.extend_from_slice(self.password.as_bytes());
        let tag = <sp_runtime::traits::BlakeTwo256 as sp_runtime::traits::Hash>::hash(&secret);
        format!(
            "{}-{role}-{}",
            self.client_id_prefix,
            hex::encode(&tag.as_bytes()[..8])
        )
    }

    /// The broker nodes the daemon's own connections try, in order: `hosts`, else `host:port`.
    pub fn nodes(&self) -> Vec<BrokerNode> {
        match &self.hosts {
            Some(hosts) => hosts.clone(),
            None => vec![BrokerNode {
                host: self.host.clone(),
                port: self.port,
            }],
        }
    }

    /// Checks `hosts`: only with VerneMQ (a Mosquitto broker is one node), not empty, no node
    /// twice.
    pub fn validate(&self) -> anyhow::Result<()> {
        let Some(hosts) = &self.hosts else {
            return Ok(());
        };
        if self.kind != BrokerKind::Vernemq {
            anyhow::bail!(
                "broker.hosts lists the nodes of a VerneMQ cluster (kind = \"vernemq\"); a \
                 Mosquitto broker is one node: use broker.host and broker.port"
            );
        }
        if hosts.is_empty() {
            anyhow::bail!(
                "broker.hosts is empty: list the cluster's nodes, or drop it to use broker.host \
                 and broker.port"
            );
        }
        for (i, node) in hosts.iter().enumerate() {
            if hosts[..i].contains(node) {
                anyhow::bail!("broker.hosts lists {node} twice");
            }
        }
        Ok(())
    }
}

/// One broker node the daemon connects to: `host:port` (an IPv6 address in brackets).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrokerNode {
    /// Name or IP address (IPv6 without brackets); with `broker.tls`, the name its
    /// certificate carries.
    pub host: String,
    /// MQTT port.
    pub port: u16,
}

impl std::fmt::Display for BrokerNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl std::str::FromStr for BrokerNode {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let bad = |why: &str| format!("broker node {text:?}: {why}");
        if text.contains("://") {
            return Err(bad(
                "write host:port, without a scheme (e.g. \"10.0.0.1:1883\")",
            ));
        }
        let (host, port) = if let Some(rest) = text.strip_prefix('[') {
            let (ip, port) = rest
                .split_once("]:")
                .ok_or_else(|| bad("write an IPv6 address as [address]:port"))?;
            ip.parse::<std::net::Ipv6Addr>()
                .map_err(|_| bad("not an IPv6 address in the brackets"))?;
            (ip, port)
        } else {
            let (host, port) = text
                .rsplit_once(':')
                .ok_or_else(|| bad("no port (write host:port)"))?;
            if host.contains(':') {
                return Err(bad("put an IPv6 address in brackets: [address]:port"));
            }
            if host.is_empty()
                || !host
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
            {
                return Err(bad("not a host name or IP address"));
            }
            (host, port)
        };
        let port = match port.parse::<u16>() {
            Ok(port) if port > 0 => port,
            _ => return Err(bad("the port must be a number from 1 to 65535")),
        };
        Ok(Self {
            host: host.to_owned(),
            port,
        })
    }
}

impl<'de> Deserialize<'de> for BrokerNode {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

fn default_host() -> String {
    "127.0.0.1".into()
}
fn default_port() -> u16 {
    1883
}
fn default_client_prefix() -> String {
    "fastdata-operator".into()
}

/// `[vernemq]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VernemqSection {
    /// Where the webhook endpoint listens (keep it on localhost: webhooks are unauthenticated).
    pub webhook_listen: SocketAddr,
    /// VerneMQ HTTP API base URL, to disconnect revoked clients.
    pub api_url: Option<String>,
    /// VerneMQ API key.
    pub api_key: Option<String>,
    /// Seconds VerneMQ may reuse an allowed `auth_on_publish` answer for the same client,
    /// topic, QoS and retain flag without asking the daemon (`cache-control: max-age`); 0
    /// (default): every publish is asked. See [`crate::gate::vernemq`] for what a cached
    /// answer skips. Needs `api_url` and `api_key`, so revoked publishers are disconnected at
    /// once rather than when the answer expires.
    #[serde(default)]
    pub cache_secs: u32,
}

/// Largest `vernemq.cache_secs`.
pub const MAX_VERNEMQ_CACHE_SECS: u32 = 3600;

impl Default for VernemqSection {
    fn default() -> Self {
        Self {
            webhook_listen: SocketAddr::from(([127, 0, 0, 1], 8889)),
            api_url: None,
            api_key: None,
            cache_secs: 0,
        }
    }
}

impl VernemqSection {
    /// Checks `cache_secs` against the API settings.
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.cache_secs > MAX_VERNEMQ_CACHE_SECS {
            anyhow::bail!("vernemq.cache_secs must be at most {MAX_VERNEMQ_CACHE_SECS}");
        }
        if self.cache_secs > 0 && (self.api_url.is_none() || self.api_key.is_none()) {
            anyhow::bail!(
                "vernemq.cache_secs needs vernemq.api_url and api_key: a cached publish \
                 answer outlives a revocation unless the daemon disconnects the publisher"
            );
        }
        Ok(())
    }
}

/// `[chain]`: a node to follow (`url`), or a fixture file (tests); not both.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChainSection {
    /// WebSocket RPC URL of a FAST DATA node (`ws://` or `wss://`).
    pub url: Option<String>,
    /// A fixture file describing chain state (dev, tests).
    pub fixture: Option<PathBuf>,
    /// Send `Operators::heartbeat` (needed to stay active).
    #[serde(default = "default_true")]
    pub heartbeat: bool,
    /// Register (or update) the operator on chain at start-up.
    pub register: Option<RegisterSection>,
    /// Genesis hash of the chain: every upload token, access request, replica request and
    /// receipt must be signed for it. With `url` the binary reads it from the node (and
    /// refuses to start if this value differs); without, it is this value or
    /// [`FIXTURE_GENESIS`].
    #[serde(default)]
    pub genesis: Option<H256>,
}

/// The genesis hash a daemon without a chain (fixture, tests) binds signatures to when
/// `chain.genesis` is not set.
pub const FIXTURE_GENESIS: H256 = H256::zero();

impl Default for ChainSection {
    fn default() -> Self {
        Self {
            url: None,
            fixture: None,
            heartbeat: true,
            register: None,
            genesis: None,
        }
    }
}

impl ChainSection {
    /// The genesis hash signatures are checked against: `genesis`, or [`FIXTURE_GENESIS`].
    pub fn genesis(&self) -> H256 {
        self.genesis.unwrap_or(FIXTURE_GENESIS)
    }
}

fn default_true() -> bool {
    true
}

/// `[chain.register]`. Amounts are in planck (1 FAST = 10^12 planck), written as strings.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterSection {
    /// Stake to hold.
    pub stake: Amount,
    /// Public `mqtt://` or `mqtts://` URL of the broker.
    pub broker_url: String,
    /// Public `http://` or `https://` URL of this daemon's HTTP API.
    pub http_url: String,
    /// Price per MB served.
    pub price_per_mb: Amount,
}

/// An amount of planck, written as a decimal string (TOML integers stop at 2^63).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Amount(pub u128);

impl<'de> Deserialize<'de> for Amount {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.trim()
            .replace('_', "")
            .parse::<u128>()
            .map(Amount)
            .map_err(|e| {
                serde::de::Error::custom(format!(
                    "amount {text:?} is not a whole number of planck ({e})"
                ))
            })
    }
}

/// `[serving]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServingSection {
    /// The receipt window W: how many segments past its last receipt (or past the start of
    /// its purchase, before any) a buyer may obtain, over HTTP and live MQTT alike. Published
    /// at `GET /v1/terms`. Also read under its old name `ahead_segments`.
    #[serde(default = "default_receipt_window", alias = "ahead_segments")]
    pub receipt_window: u64,
    /// Retention sweep period in seconds.
    #[serde(default = "default_retention_secs")]
    pub retention_sweep_secs: u64,
}

/// The default receipt window W (segments).
pub const DEFAULT_RECEIPT_WINDOW: u64 = 32;

fn default_receipt_window() -> u64 {
    DEFAULT_RECEIPT_WINDOW
}

fn default_retention_secs() -> u64 {
    300
}

impl Default for ServingSection {
    fn default() -> Self {
        Self {
            receipt_window: DEFAULT_RECEIPT_WINDOW,
            retention_sweep_secs: default_retention_secs(),
        }
    }
}

/// `[claims]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClaimsSection {
    /// Seconds between claim rounds.
    pub interval_secs: u64,
    /// Claims per submission: one `Utility::force_batch` transaction each (split further
    /// above [`fastdata_sdk::chain::MAX_BATCH_CALLS`]); a round sends its submissions at once.
    pub batch: usize,
}

impl Default for ClaimsSection {
    fn default() -> Self {
        Self {
            interval_secs: 60,
            batch: fastdata_sdk::chain::MAX_BATCH_CALLS,
        }
    }
}

/// `[supervision]`: how failing tasks are restarted (see [`crate::supervisor::Policy`]).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct SupervisionSection {
    /// Failures in a row of one task after which the daemon exits non-zero (0: the first).
    pub max_restarts: u32,
    /// Back-off before the first restart, in milliseconds; doubled for each further one.
    pub initial_backoff_ms: u64,
    /// Cap of the back-off, in milliseconds.
    pub max_backoff_ms: u64,
    /// A task up this many seconds starts its count of failures over.
    pub reset_after_secs: u64,
}

/// Largest back-off accepted (one hour): larger values are unit mistakes.
pub const MAX_BACKOFF_MS: u64 = 3_600_000;

impl Default for SupervisionSection {
    fn default() -> Self {
        let policy = crate::supervisor::Policy::default();
        Self {
            max_restarts: policy.max_restarts,
            initial_backoff_ms: policy.initial_backoff.as_millis() as u64,
            max_backoff_ms: policy.max_backoff.as_millis() as u64,
            reset_after_secs: policy.reset_after.as_secs(),
        }
    }
}

impl SupervisionSection {
    /// Checks the values: back-offs of 1 ms to one hour, initial not above max, a reset
    /// period of at least a second.
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.initial_backoff_ms == 0 {
            anyhow::bail!("supervision.initial_backoff_ms must be at least 1");
        }
        if self.max_backoff_ms > MAX_BACKOFF_MS {
            anyhow::bail!(
                "supervision.max_backoff_ms = {} is more than one hour ({MAX_BACKOFF_MS}); the value is in milliseconds",
                self.max_backoff_ms
            );
        }
        if self.initial_backoff_ms > self.max_backoff_ms {
            anyhow::bail!(
                "supervision.initial_backoff_ms = {} is above supervision.max_backoff_ms = {}",
                self.initial_backoff_ms,
                self.max_backoff_ms
            );
        }
        if self.reset_after_secs == 0 {
            anyhow::bail!("supervision.reset_after_secs must be at least 1");
        }
        Ok(())
    }

    /// The restart policy.
    pub fn policy(&self) -> crate::supervisor::Policy {
        crate::supervisor::Policy {
            max_restarts: self.max_restarts,
            initial_backoff: std::time::Duration::from_millis(self.initial_backoff_ms),
            max_backoff: std::time::Duration::from_millis(self.max_backoff_ms),
            reset_after: std::time::Duration::from_secs(self.reset_after_secs),
        }
    }
}

impl Config {
    /// Parses a configuration from TOML text.
    pub fn from_toml(text: &str) -> anyhow::Result<Self> {
        let config: Self = toml::from_str(text)?;
        config.validate()?;
        Ok(config)
    }

    /// Reads and parses a configuration file.
    pub fn load(path: &std::path::Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read config {}: {e}", path.display()))?;
        Self::from_toml(&text).map_err(|e| anyhow::anyhow!("bad config {}: {e}", path.display()))
    }

    /// Checks what serde cannot: one chain source, URL schemes, the supervision limits, and
    /// the TLS files (read and parsed).
    pub fn validate(&self) -> anyhow::Result<()> {
        self.supervision.validate()?;
        self.broker.validate()?;
        self.vernemq.validate()?;
        if self.serving.receipt_window == 0 {
            anyhow::bail!("serving.receipt_window must be at least 1 (segments)");
        }
        self.http.server_tls()?;
        if self.http.ca_cert.is_some() {
            self.http.client_tls()?;
        }
        if self.chain.url.is_some() && self.chain.fixture.is_some() {
            anyhow::bail!("[chain] has both url and fixture; keep one");
        }
        if let Some(url) = &self.chain.url {
            if !(url.starts_with("ws://") || url.starts_with("wss://")) {
                anyhow::bail!("chain.url {url:?} must start with ws:// or wss://");
            }
        }
        if let Some(register) = &self.chain.register {
            if self.chain.url.is_none() {
                anyhow::bail!("[chain.register] needs chain.url");
            }
            if !(register.broker_url.starts_with("mqtt://")
                || register.broker_url.starts_with("mqtts://"))
            {
                anyhow::bail!("chain.register.broker_url must start with mqtt:// or mqtts://");
            }
            if !(register.http_url.starts_with("http://")
                || register.http_url.starts_with("https://"))
            {
                anyhow::bail!("chain.register.http_url must start with http:// or https://");
            }
        }
        Ok(())
    }

    /// The operator key from `operator.suri`.
    pub fn operator_pair(&self) -> anyhow::Result<sp_core::sr25519::Pair> {
        use sp_core::Pair;
        sp_core::sr25519::Pair::from_string(&self.operator.suri, None)
            .map_err(|e| anyhow::anyhow!("operator.suri is not a valid sr25519 secret: {e:?}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_client_ids_are_stable_and_need_the_password() {
        let broker = |password: &str| {
            let text = format!(
                "[operator]\nsuri = \"//Alice\"\ndata_dir = \"/tmp/x\"\n[broker]\nkind = \"mosquitto\"\n\
                 username = \"admin\"\npassword = \"{password}\"\nclient_id_prefix = \"op-1\"\n"
            );
            Config::from_toml(&text).unwrap().broker
        };
        let ingest = broker("pw").own_client_id("ingest");
        assert!(ingest.starts_with("op-1-ingest-"), "{ingest}");
        assert_eq!(ingest.len(), "op-1-ingest-".len() + 16);
        assert_eq!(ingest, broker("pw").own_client_id("ingest"));
        assert_ne!(ingest, broker("pw2").own_client_id("ingest"));
        assert_ne!(ingest, broker("pw").own_client_id("control"));
    }

    #[test]
    fn parses_the_documented_example() {
        let text = r#"
            [operator]
            suri = "//Alice"
            data_dir = "/tmp/x"
            [broker]
            kind = "vernemq"
            username = "op"
            password = "pw"
            [vernemq]
            webhook_listen = "127.0.0.1:9999"
            [claims]
            interval_secs = 5
            batch = 2
        "#;
        let config = Config::from_toml(text).unwrap();
        assert_eq!(config.broker.kind, BrokerKind::Vernemq);
        assert_eq!(config.broker.port, 1883);
        assert_eq!(config.serving.receipt_window, DEFAULT_RECEIPT_WINDOW);
        assert_eq!(config.chain.genesis(), FIXTURE_GENESIS);
        assert_eq!(config.claims.batch, 2);
        assert!(config.operator_pair().is_ok());
        assert!(Config::from_toml("[operator]\nsuri = 1").is_err());
        assert!(Config::from_toml(&format!("{text}\n[bogus]\nx = 1")).is_err());
    }

    #[test]
    fn vernemq_publish_cache_is_off_by_default_and_needs_the_api() {
        let base = "[operator]\nsuri = \"//Bob\"\ndata_dir = \"/tmp/x\"\n[broker]\nkind = \"vernemq\"\nusername = \"a\"\npassword = \"b\"\n";
        let config = Config::from_toml(base).unwrap();
        assert_eq!(config.vernemq.cache_secs, 0);
        let api = "webhook_listen = \"127.0.0.1:8889\"\napi_url = \"http://127.0.0.1:8888\"\napi_key = \"k\"\n";
        let config = Config::from_toml(&format!("{base}[vernemq]\n{api}cache_secs = 5\n")).unwrap();
        assert_eq!(config.vernemq.cache_secs, 5);
        for (bad, says) in [
            (
                "webhook_listen = \"127.0.0.1:8889\"\ncache_secs = 5\n".to_owned(),
                "needs vernemq.api_url",
            ),
            (
                "webhook_listen = \"127.0.0.1:8889\"\napi_url = \"http://127.0.0.1:8888\"\ncache_secs = 5\n"
                    .to_owned(),
                "needs vernemq.api_url",
            ),
            (format!("{api}cache_secs = 3601\n"), "at most 3600"),
            (format!("{api}cache_secs = -1\n"), "cache_secs"),
        ] {
            let err = Config::from_toml(&format!("{base}[vernemq]\n{bad}"))
                .unwrap_err()
                .to_string();
            assert!(err.contains(says), "{bad}: {err}");
        }
    }

    #[test]
    fn chain_section_is_checked() {
        let base = "[operator]\nsuri = \"//Bob\"\ndata_dir = \"/tmp/x\"\n[broker]\nkind = \"mosquitto\"\nusername = \"a\"\npassword = \"b\"\n";
        let good = format!(
            "{base}[chain]\nurl = \"ws://127.0.0.1:9944\"\n[chain.register]\nstake = \"200_000_000_000_000\"\nbroker_url = \"mqtt://127.0.0.1:1883\"\nhttp_url = \"http://127.0.0.1:8080\"\nprice_per_mb = \"1000\"\n"
        );
        let config = Config::from_toml(&good).unwrap();
        let register = config.chain.register.unwrap();
        assert_eq!(register.stake, Amount(200_000_000_000_000));
        assert!(config.chain.heartbeat);
        for bad in [
            good.replace("ws://", "http://"),
            good.replace("mqtt://", "tcp://"),
            good.replace("http://127.0.0.1:8080", "ftp://x"),
            good.replace("\"1000\"", "\"-5\""),
            good.replace("\"1000\"", "1000"),
            format!("{base}[chain]\nurl = \"ws://a\"\nfixture = \"c.toml\"\n"),
            format!("{base}[chain.register]\nstake = \"1\"\nbroker_url = \"mqtt://a\"\nhttp_url = \"http://a\"\nprice_per_mb = \"1\"\n"),
        ] {
            assert!(Config::from_toml(&bad).is_err(), "accepted: {bad}");
        }
    }

    #[test]
    fn supervision_section_defaults_and_checks() {
        let base = "[operator]\nsuri = \"//Bob\"\ndata_dir = \"/tmp/x\"\n[broker]\nkind = \"mosquitto\"\nusername = \"a\"\npassword = \"b\"\n";
        let config = Config::from_toml(base).unwrap();
        assert_eq!(
            config.supervision.policy(),
            crate::supervisor::Policy::default()
        );
        let config = Config::from_toml(&format!(
            "{base}[supervision]\nmax_restarts = 3\ninitial_backoff_ms = 100\n"
        ))
        .unwrap();
        let policy = config.supervision.policy();
        assert_eq!(policy.max_restarts, 3);
        assert_eq!(policy.initial_backoff.as_millis(), 100);
        assert_eq!(policy.max_backoff.as_secs(), 30);
        for (bad, says) in [
            (
                "initial_backoff_ms = 0",
                "initial_backoff_ms must be at least 1",
            ),
            (
                "initial_backoff_ms = 5000\nmax_backoff_ms = 1000",
                "is above supervision.max_backoff_ms",
            ),
            ("max_backoff_ms = 86400000", "more than one hour"),
            (
                "reset_after_secs = 0",
                "reset_after_secs must be at least 1",
            ),
            ("max_restarts = -1", "max_restarts"),
            ("restarts = 3", "unknown field"),
        ] {
            let err = Config::from_toml(&format!("{base}[supervision]\n{bad}\n"))
                .unwrap_err()
                .to_string();
            assert!(err.contains(says), "{bad}: {err}");
        }
    }

    #[test]
    fn broker_hosts_list_the_nodes_of_a_vernemq_cluster() {
        let base = |kind: &str| {
            format!(
                "[operator]\nsuri = \"//Bob\"\ndata_dir = \"/tmp/x\"\n[broker]\nkind = \"{kind}\"\n\
                 username = \"a\"\npassword = \"b\"\nhost = \"10.0.0.9\"\nport = 1884\n"
            )
        };
        let node = |host: &str, port| BrokerNode {
            host: host.into(),
            port,
        };
        // Without hosts: the one host and port.
        let config = Config::from_toml(&base("vernemq")).unwrap();
        assert_eq!(config.broker.nodes(), vec![node("10.0.0.9", 1884)]);
        let config = Config::from_toml(&format!(
            "{}hosts = [\"10.0.0.1:1883\", \"vmq-2.example.org:8883\", \"[::1]:1885\"]\n",
            base("vernemq")
        ))
        .unwrap();
        let nodes = config.broker.nodes();
        assert_eq!(
            nodes,
            vec![
                node("10.0.0.1", 1883),
                node("vmq-2.example.org", 8883),
                node("::1", 1885)
            ]
        );
        let shown: Vec<String> = nodes.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            ["10.0.0.1:1883", "vmq-2.example.org:8883", "[::1]:1885"]
        );
        for (hosts, says) in [
            ("[\"10.0.0.1\"]", "no port"),
            ("[\"mqtt://10.0.0.1:1883\"]", "without a scheme"),
            ("[\"10.0.0.1:0\"]", "from 1 to 65535"),
            ("[\"10.0.0.1:70000\"]", "from 1 to 65535"),
            ("[\"10.0.0.1:x\"]", "from 1 to 65535"),
            ("[\":1883\"]", "not a host name"),
            ("[\"a b:1883\"]", "not a host name"),
            ("[\"::1:1883\"]", "in brackets"),
            ("[\"[zz]:1883\"]", "not an IPv6 address"),
            ("[\"[::1]1883\"]", "[address]:port"),
            ("[]", "broker.hosts is empty"),
            ("[\"a:1\", \"b:2\", \"a:1\"]", "lists a:1 twice"),
            ("\"a:1\"", "invalid type"),
        ] {
            let err = Config::from_toml(&format!("{}hosts = {hosts}\n", base("vernemq")))
                .unwrap_err()
                .to_string();
            assert!(err.contains(says), "{hosts}: {err}");
        }
        let err = Config::from_toml(&format!("{}hosts = [\"a:1\"]\n", base("mosquitto")))
            .unwrap_err()
            .to_string();
        assert!(err.contains("Mosquitto broker is one node"), "{err}");
    }

    #[test]
    fn example_file_parses() {
        let config = Config::from_toml(include_str!("../operator.example.toml")).unwrap();
        assert_eq!(config.broker.kind, BrokerKind::Mosquitto);
    }

    #[test]
    fn receipt_window_and_genesis() {
        let base = "[operator]\nsuri = \"//Bob\"\ndata_dir = \"/tmp/x\"\n[broker]\nkind = \"mosquitto\"\nusername = \"a\"\npassword = \"b\"\n";
        // The old name still works; both names at once, or 0, are refused.
        let old = Config::from_toml(&format!("{base}[serving]\nahead_segments = 8\n")).unwrap();
        assert_eq!(old.serving.receipt_window, 8);
        let new = Config::from_toml(&format!("{base}[serving]\nreceipt_window = 4\n")).unwrap();
        assert_eq!(new.serving.receipt_window, 4);
        assert!(Config::from_toml(&format!(
            "{base}[serving]\nreceipt_window = 4\nahead_segments = 8\n"
        ))
        .is_err());
        let err = Config::from_toml(&format!("{base}[serving]\nreceipt_window = 0\n"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("receipt_window must be at least 1"), "{err}");
        let g = format!("0x{}", "ab".repeat(32));
        let config = Config::from_toml(&format!("{base}[chain]\ngenesis = \"{g}\"\n")).unwrap();
        assert_eq!(config.chain.genesis(), H256::repeat_byte(0xab));
        assert!(Config::from_toml(&format!("{base}[chain]\ngenesis = \"0x12\"\n")).is_err());
    }
}

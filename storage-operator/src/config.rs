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
//!
//! [broker]
//! kind = "mosquitto"        # or "vernemq"
//! host = "127.0.0.1"
//! port = 1883
//! username = "admin"        # mosquitto: the dynsec admin; vernemq: the daemon's own account
//! password = "…"
//!
//! [vernemq]                 # only with kind = "vernemq"
//! webhook_listen = "127.0.0.1:8889"
//! # api_url = "http://127.0.0.1:8888"   # to disconnect revoked clients
//! # api_key = "…"
//!
//! [chain]
//! # Until the subxt follower lands, the chain facts come from a fixture file.
//! fixture = "chain.toml"
//!
//! [serving]
//! ahead_segments = 256      # served past the buyer's last receipt
//!
//! [claims]
//! interval_secs = 60
//! batch = 32
//! ```

use std::{net::SocketAddr, path::PathBuf};

use serde::Deserialize;

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
}

impl Default for HttpSection {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 8080)),
        }
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
    /// The daemon's broker username.
    pub username: String,
    /// The daemon's broker password.
    pub password: String,
    /// Client id prefix of the daemon's connections (`<prefix>-ingest`, `<prefix>-control`).
    #[serde(default = "default_client_prefix")]
    pub client_id_prefix: String,
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
}

impl Default for VernemqSection {
    fn default() -> Self {
        Self {
            webhook_listen: SocketAddr::from(([127, 0, 0, 1], 8889)),
            api_url: None,
            api_key: None,
        }
    }
}

/// `[chain]`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChainSection {
    /// A fixture file describing chain state (dev, tests).
    pub fixture: Option<PathBuf>,
}

/// `[serving]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServingSection {
    /// How many segments past the buyer's last receipt may be served.
    pub ahead_segments: u64,
    /// Retention sweep period in seconds.
    #[serde(default = "default_retention_secs")]
    pub retention_sweep_secs: u64,
}

fn default_retention_secs() -> u64 {
    300
}

impl Default for ServingSection {
    fn default() -> Self {
        Self {
            ahead_segments: 256,
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
    /// Claims per submission.
    pub batch: usize,
}

impl Default for ClaimsSection {
    fn default() -> Self {
        Self {
            interval_secs: 60,
            batch: 32,
        }
    }
}

impl Config {
    /// Parses a configuration from TOML text.
    pub fn from_toml(text: &str) -> anyhow::Result<Self> {
        Ok(toml::from_str(text)?)
    }

    /// Reads and parses a configuration file.
    pub fn load(path: &std::path::Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read config {}: {e}", path.display()))?;
        Self::from_toml(&text).map_err(|e| anyhow::anyhow!("bad config {}: {e}", path.display()))
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
        assert_eq!(config.serving.ahead_segments, 256);
        assert_eq!(config.claims.batch, 2);
        assert!(config.operator_pair().is_ok());
        assert!(Config::from_toml("[operator]\nsuri = 1").is_err());
        assert!(Config::from_toml(&format!("{text}\n[bogus]\nx = 1")).is_err());
    }

    #[test]
    fn example_file_parses() {
        let config = Config::from_toml(include_str!("../operator.example.toml")).unwrap();
        assert_eq!(config.broker.kind, BrokerKind::Mosquitto);
        assert_eq!(config.serving.ahead_segments, 256);
    }
}

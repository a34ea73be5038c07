//! The seller service's configuration file (TOML, or JSON when the file name ends in `.json`).
//!
//! ```toml
//! metrics = "127.0.0.1:9616"        # optional: serve GET /metrics here
//!
//! [[stream]]
//! id = "0x3f…"                      # or "keystore": every stream of the keystore
//! stdin = true                      # newline-delimited records on standard input
//! max_bytes = 4096                  # flush a segment at this size …
//! max_delay_ms = 100                # … or when its oldest record is this old
//! rotate_every_blocks = 600         # optional: open a new key epoch this often
//!
//! [stream.mqtt]                     # and/or records from a plant broker
//! url = "mqtt://plant-broker:1883"
//! topics = ["plant7/press/#"]       # each message is one record
//! ```
//!
//! [`SellerConfig::parse`] checks every field and names the one that is wrong.

use std::{net::SocketAddr, path::Path, time::Duration};

use fastdata_primitives::{envelope::MAX_PAYLOAD_LEN, BlockNumber, StreamId};
use serde::Deserialize;

use crate::operator::parse_broker_url;

/// Default largest segment payload: records are batched up to this many bytes.
pub const DEFAULT_MAX_BYTES: usize = 4096;
/// Default longest wait of a record before its segment is published.
pub const DEFAULT_MAX_DELAY: Duration = Duration::from_millis(100);
/// Longest `max_delay_ms` accepted (an hour).
const MAX_DELAY_MS: u64 = 3_600_000;

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read the seller configuration {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML/JSON or has fields of the wrong type or unknown fields.
    #[error("the seller configuration is not valid {format}: {detail}")]
    Syntax {
        /// `TOML` or `JSON`.
        format: &'static str,
        /// The parser's message (with the line and the field).
        detail: String,
    },
    /// A field has a value that cannot work.
    #[error("seller configuration, {field}: {detail}")]
    Field {
        /// The field, e.g. `stream[0].max_bytes`.
        field: String,
        /// What is wrong and how to fix it.
        detail: String,
    },
}

impl ConfigError {
    fn field(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::Field {
            field: field.into(),
            detail: detail.into(),
        }
    }

    /// The field a [`ConfigError::Field`] names.
    pub fn field_name(&self) -> Option<&str> {
        match self {
            Self::Field { field, .. } => Some(field),
            _ => None,
        }
    }
}

/// Which streams an entry configures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamSelector {
    /// One stream.
    Id(StreamId),
    /// Every stream of the keystore the acting account sells and has not closed (streams
    /// configured by id elsewhere in the file keep their own settings).
    Keystore,
}

/// A plant broker whose messages are records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MqttSource {
    /// `mqtt://host[:port]` or `mqtts://host[:port]`.
    pub url: String,
    /// Topic filters subscribed to (QoS 1).
    pub topics: Vec<String>,
    /// MQTT client id (default `fastdata-seller-<pid>-<n>`).
    pub client_id: Option<String>,
    /// Login, if the broker wants one.
    pub username: Option<String>,
    /// Password of `username`.
    pub password: Option<String>,
}

/// When a segment is flushed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlushPolicy {
    /// A segment is published once its records reach this many bytes (a single record
    /// longer than this is a segment of its own).
    pub max_bytes: usize,
    /// A record is published at most this long after it arrived.
    pub max_delay: Duration,
}

impl Default for FlushPolicy {
    fn default() -> Self {
        Self {
            max_bytes: DEFAULT_MAX_BYTES,
            max_delay: DEFAULT_MAX_DELAY,
        }
    }
}

/// One `[[stream]]` entry, checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamConfig {
    /// The stream(s).
    pub stream: StreamSelector,
    /// Records come from standard input, one per line.
    pub stdin: bool,
    /// Records come from a plant broker.
    pub mqtt: Option<MqttSource>,
    /// When segments are flushed.
    pub flush: FlushPolicy,
    /// Open a new key epoch once the current one is this many blocks old.
    pub rotate_every_blocks: Option<BlockNumber>,
}

/// The whole configuration, checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SellerConfig {
    /// The streams served.
    pub streams: Vec<StreamConfig>,
    /// Where `GET /metrics` is served, if anywhere.
    pub metrics: Option<SocketAddr>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    metrics: Option<String>,
    #[serde(default, rename = "stream", alias = "streams")]
    streams: Vec<RawStream>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStream {
    id: Option<String>,
    #[serde(default)]
    stdin: bool,
    mqtt: Option<RawMqtt>,
    max_bytes: Option<u64>,
    max_delay_ms: Option<u64>,
    rotate_every_blocks: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMqtt {
    url: Option<String>,
    #[serde(default)]
    topics: Vec<String>,
    client_id: Option<String>,
    username: Option<String>,
    password: Option<String>,
}

/// Configuration file formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// TOML (the default).
    Toml,
    /// JSON.
    Json,
}

impl Format {
    /// JSON for `*.json`, else TOML.
    pub fn of(path: &Path) -> Self {
        match path.extension().and_then(|e| e.to_str()) {
            Some(ext) if ext.eq_ignore_ascii_case("json") => Self::Json,
            _ => Self::Toml,
        }
    }
}

/// `0x` + 64 hex digits → the stream id.
fn parse_stream_id(text: &str) -> Option<StreamId> {
    let mut raw = [0u8; 32];
    hex::decode_to_slice(text.trim().trim_start_matches("0x"), &mut raw).ok()?;
    Some(StreamId::from(raw))
}

impl SellerConfig {
    /// Reads and checks the file at `path` ([`Format::of`] its name).
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text, Format::of(path))
    }

    /// Parses and checks a configuration.
    pub fn parse(text: &str, format: Format) -> Result<Self, ConfigError> {
        let raw: RawConfig = match format {
            Format::Toml => toml::from_str(text).map_err(|e| ConfigError::Syntax {
                format: "TOML",
                detail: e.to_string(),
            })?,
            Format::Json => serde_json::from_str(text).map_err(|e| ConfigError::Syntax {
                format: "JSON",
                detail: e.to_string(),
            })?,
        };
        let metrics = raw
            .metrics
            .map(|m| {
                m.parse::<SocketAddr>().map_err(|_| {
                    ConfigError::field(
                        "metrics",
                        format!("{m:?} is not a listen address like \"127.0.0.1:9616\""),
                    )
                })
            })
            .transpose()?;
        if raw.streams.is_empty() {
            return Err(ConfigError::field(
                "stream",
                "no stream configured; add a [[stream]] table with id = \"0x…\" (or \"keystore\")",
            ));
        }
        let mut streams: Vec<StreamConfig> = Vec::new();
        let mut stdin_reader: Option<usize> = None;
        for (i, s) in raw.streams.into_iter().enumerate() {
            let at = |field: &str| format!("stream[{i}].{field}");
            let id = s.id.ok_or_else(|| {
                ConfigError::field(
                    at("id"),
                    "missing; give the stream id (0x + 64 hex digits) or \"keystore\"",
                )
            })?;
            let stream = if id.trim() == "keystore" {
                StreamSelector::Keystore
            } else {
                StreamSelector::Id(parse_stream_id(&id).ok_or_else(|| {
                    ConfigError::field(
                        at("id"),
                        format!("{id:?} is not 0x + 64 hex digits nor \"keystore\""),
                    )
                })?)
            };
            if let Some(j) = streams.iter().position(|other| other.stream == stream) {
                return Err(ConfigError::field(
                    at("id"),
                    format!("{id:?} is configured twice (also stream[{j}])"),
                ));
            }
            if s.stdin {
                if let Some(j) = stdin_reader {
                    return Err(ConfigError::field(
                        at("stdin"),
                        format!("only one stream may read standard input (stream[{j}] does)"),
                    ));
                }
                stdin_reader = Some(i);
            }
            let mqtt = s
                .mqtt
                .map(|m| {
                    let field = |f: &str| format!("stream[{i}].mqtt.{f}");
                    let url = m.url.ok_or_else(|| {
                        ConfigError::field(
                            field("url"),
                            "missing; e.g. \"mqtt://plant-broker:1883\"",
                        )
                    })?;
                    if parse_broker_url(&url).is_none() {
                        return Err(ConfigError::field(
                            field("url"),
                            format!("{url:?} is not mqtt://host[:port] or mqtts://host[:port]"),
                        ));
                    }
                    if m.topics.is_empty() {
                        return Err(ConfigError::field(
                            field("topics"),
                            "no topic filter; give at least one, e.g. [\"plant7/#\"]",
                        ));
                    }
                    for (k, topic) in m.topics.iter().enumerate() {
                        if !rumqttc::valid_filter(topic) {
                            return Err(ConfigError::field(
                                format!("stream[{i}].mqtt.topics[{k}]"),
                                format!("{topic:?} is not an MQTT topic filter"),
                            ));
                        }
                    }
                    if m.password.is_some() && m.username.is_none() {
                        return Err(ConfigError::field(
                            field("username"),
                            "missing: a password is given without a username",
                        ));
                    }
                    if m.client_id.as_deref().is_some_and(str::is_empty) {
                        return Err(ConfigError::field(
                            field("client_id"),
                            "empty; leave it out for a generated one",
                        ));
                    }
                    Ok(MqttSource {
                        url,
                        topics: m.topics,
                        client_id: m.client_id,
                        username: m.username,
                        password: m.password,
                    })
                })
                .transpose()?;
            if !s.stdin && mqtt.is_none() {
                return Err(ConfigError::field(
                    format!("stream[{i}]"),
                    "no record source; set stdin = true or add a [stream.mqtt] table",
                ));
            }
            let max_bytes = match s.max_bytes {
                None => DEFAULT_MAX_BYTES,
                Some(n) if (1..=MAX_PAYLOAD_LEN as u64).contains(&n) => n as usize,
                Some(n) => {
                    return Err(ConfigError::field(
                        at("max_bytes"),
                        format!(
                        "{n} is not between 1 and {MAX_PAYLOAD_LEN} (the largest segment payload)"
                    ),
                    ))
                }
            };
            let max_delay = match s.max_delay_ms {
                None => DEFAULT_MAX_DELAY,
                Some(ms) if ms <= MAX_DELAY_MS => Duration::from_millis(ms),
                Some(ms) => {
                    return Err(ConfigError::field(
                        at("max_delay_ms"),
                        format!("{ms} is more than {MAX_DELAY_MS} (an hour)"),
                    ))
                }
            };
            let rotate_every_blocks = match s.rotate_every_blocks {
                None => None,
                Some(n) if (1..=u64::from(BlockNumber::MAX)).contains(&n) => Some(n as BlockNumber),
                Some(n) => {
                    return Err(ConfigError::field(
                        at("rotate_every_blocks"),
                        format!("{n} is not a number of blocks ≥ 1 (leave it out for no schedule)"),
                    ))
                }
            };
            streams.push(StreamConfig {
                stream,
                stdin: s.stdin,
                mqtt,
                flush: FlushPolicy {
                    max_bytes,
                    max_delay,
                },
                rotate_every_blocks,
            });
        }
        Ok(Self { streams, metrics })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "0x1111111111111111111111111111111111111111111111111111111111111111";
    const ID2: &str = "0x2222222222222222222222222222222222222222222222222222222222222222";

    fn field_of(text: &str) -> String {
        match SellerConfig::parse(text, Format::Toml) {
            Ok(c) => panic!("accepted: {c:?}"),
            Err(e) => e
                .field_name()
                .map(str::to_owned)
                .unwrap_or_else(|| format!("syntax: {e}")),
        }
    }

    #[test]
    fn a_full_config_parses_with_defaults() {
        let text = format!(
            r#"
            metrics = "127.0.0.1:9616"
            [[stream]]
            id = "{ID}"
            stdin = true
            rotate_every_blocks = 600
            [[stream]]
            id = "keystore"
            max_bytes = 1000
            max_delay_ms = 0
            [stream.mqtt]
            url = "mqtts://plant:8883"
            topics = ["plant7/#", "plant8/+/temp"]
            username = "u"
            password = "p"
            "#
        );
        let c = SellerConfig::parse(&text, Format::Toml).unwrap();
        assert_eq!(c.metrics, Some("127.0.0.1:9616".parse().unwrap()));
        assert_eq!(c.streams.len(), 2);
        assert!(c.streams[0].stdin);
        assert_eq!(c.streams[0].flush, FlushPolicy::default());
        assert_eq!(c.streams[0].flush.max_delay, Duration::from_millis(100));
        assert_eq!(c.streams[0].rotate_every_blocks, Some(600));
        assert_eq!(c.streams[1].stream, StreamSelector::Keystore);
        assert_eq!(c.streams[1].flush.max_bytes, 1000);
        assert_eq!(c.streams[1].flush.max_delay, Duration::ZERO);
        assert_eq!(c.streams[1].mqtt.as_ref().unwrap().topics.len(), 2);
        assert_eq!(c.streams[1].rotate_every_blocks, None);
    }

    #[test]
    fn json_is_accepted() {
        let text = format!(r#"{{"stream": [{{"id": "{ID}", "stdin": true, "max_bytes": 10}}]}}"#);
        let c = SellerConfig::parse(&text, Format::Json).unwrap();
        assert_eq!(c.streams[0].flush.max_bytes, 10);
        assert_eq!(c.metrics, None);
        assert_eq!(Format::of(Path::new("/etc/x/seller.JSON")), Format::Json);
        assert_eq!(Format::of(Path::new("seller.toml")), Format::Toml);
        assert!(matches!(
            SellerConfig::parse("{", Format::Json),
            Err(ConfigError::Syntax { format: "JSON", .. })
        ));
    }

    #[test]
    fn bad_fields_are_named() {
        let one = |extra: &str| format!("[[stream]]\nid = \"{ID}\"\n{extra}\n");
        assert_eq!(field_of(""), "stream");
        assert_eq!(field_of("[[stream]]\nstdin = true"), "stream[0].id");
        assert_eq!(
            field_of("[[stream]]\nid = \"0x12\"\nstdin = true"),
            "stream[0].id"
        );
        assert_eq!(field_of(&one("")), "stream[0]");
        assert_eq!(
            field_of(&one("stdin = true\nmax_bytes = 0")),
            "stream[0].max_bytes"
        );
        assert_eq!(
            field_of(&one("stdin = true\nmax_bytes = 65537")),
            "stream[0].max_bytes"
        );
        assert_eq!(
            field_of(&one("stdin = true\nmax_delay_ms = 3600001")),
            "stream[0].max_delay_ms"
        );
        assert_eq!(
            field_of(&one("stdin = true\nrotate_every_blocks = 0")),
            "stream[0].rotate_every_blocks"
        );
        assert_eq!(
            field_of(&format!("metrics = \"localhost\"\n{}", one("stdin = true"))),
            "metrics"
        );
        assert_eq!(
            field_of(&one("[stream.mqtt]\nurl = \"http://x\"\ntopics = [\"a\"]")),
            "stream[0].mqtt.url"
        );
        assert_eq!(
            field_of(&one("[stream.mqtt]\ntopics = [\"a\"]")),
            "stream[0].mqtt.url"
        );
        assert_eq!(
            field_of(&one("[stream.mqtt]\nurl = \"mqtt://x\"")),
            "stream[0].mqtt.topics"
        );
        assert_eq!(
            field_of(&one(
                "[stream.mqtt]\nurl = \"mqtt://x\"\ntopics = [\"a\", \"b/#/c\"]"
            )),
            "stream[0].mqtt.topics[1]"
        );
        assert_eq!(
            field_of(&one(
                "[stream.mqtt]\nurl = \"mqtt://x\"\ntopics = [\"a\"]\npassword = \"p\""
            )),
            "stream[0].mqtt.username"
        );
        // Two streams on stdin; a stream twice.
        let two = format!(
            "[[stream]]\nid = \"{ID}\"\nstdin = true\n[[stream]]\nid = \"{ID2}\"\nstdin = true\n"
        );
        assert_eq!(field_of(&two), "stream[1].stdin");
        let twice = format!(
            "[[stream]]\nid = \"{ID}\"\nstdin = true\n[[stream]]\nid = \"{ID}\"\n[stream.mqtt]\nurl = \"mqtt://x\"\ntopics = [\"a\"]\n"
        );
        assert_eq!(field_of(&twice), "stream[1].id");
    }

    #[test]
    fn unknown_fields_and_wrong_types_are_syntax_errors_naming_the_key() {
        let typo = format!("[[stream]]\nid = \"{ID}\"\nstdin = true\nmax_byte = 5\n");
        let e = SellerConfig::parse(&typo, Format::Toml).unwrap_err();
        assert!(e.to_string().contains("max_byte"), "{e}");
        let negative = format!("[[stream]]\nid = \"{ID}\"\nstdin = true\nmax_bytes = -5\n");
        let e = SellerConfig::parse(&negative, Format::Toml).unwrap_err();
        assert!(e.to_string().contains("max_bytes"), "{e}");
    }
}

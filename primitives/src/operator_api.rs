//! The operator daemon's HTTP protocol, written once for the server (`storage-operator`'s
//! `api.rs` routes by these patterns and answers with these types) and its clients (the SDK's
//! `OperatorClient`, the daemon's replicator) that build these paths and parse these answers.
//!
//! | route | who | request → answer |
//! |---|---|---|
//! | `GET` [`HEALTH_PATH`] | anyone | each supervised task's state |
//! | `GET` [`METRICS_PATH`] | Prometheus | text exposition |
//! | `GET` [`TERMS_PATH`] | receivers | → [`Terms`] |
//! | `POST` [`SESSION_PATH`] | seller, buyer | [`SessionRequest`] → [`BrokerCredentials`] |
//! | `GET` [`PURCHASE_SEGMENTS_ROUTE`] ([`purchase_segments_path`]) | buyer | header [`ACCESS_HEADER`] → [`SIGNED_FRAMES_CONTENT_TYPE`], headers [`SERVED_TO_HEADER`], [`WINDOW_END_HEADER`] |
//! | `POST` [`RECEIPTS_PATH`] | buyer | SCALE `(Receipt, Signature)`, raw or `0x`-hex → [`ReceiptAccepted`] |
//! | `GET` [`STREAM_HEAD_ROUTE`] ([`stream_head_path`]) | seller service | → [`StoredHead`] |
//! | `GET` [`REPLICA_SEGMENTS_ROUTE`] ([`replica_segments_path`]) | operators | header [`REPLICA_HEADER`] → [`FRAMES_CONTENT_TYPE`] |
//!
//! Errors are [`ErrorBody`] with a 4xx/5xx status. Tokens and requests travel as `0x`-hex
//! SCALE ([`crate::tokens`]); frames are [`crate::envelope`]'s.

use alloc::{format, string::String};

use serde::{Deserialize, Serialize};

use crate::{PurchaseId, Sequence, StreamId};

/// `GET`: the supervised tasks' states (HTTP 503 unless every task runs).
pub const HEALTH_PATH: &str = "/health";
/// `GET`: Prometheus metrics.
pub const METRICS_PATH: &str = "/metrics";
/// `GET`: the operator's [`Terms`].
pub const TERMS_PATH: &str = "/v1/terms";
/// `POST` a [`SessionRequest`]: broker credentials for a seller's publisher or a buyer's live
/// subscriber.
pub const SESSION_PATH: &str = "/v1/broker/session";
/// `POST` a buyer's signed receipt.
pub const RECEIPTS_PATH: &str = "/v1/receipts";
/// Route pattern (a `{…}` segment is a path parameter) of a purchase's signed segments; paths
/// are built by [`purchase_segments_path`].
pub const PURCHASE_SEGMENTS_ROUTE: &str = "/v1/purchases/{id}/segments";
/// Route pattern of the highest sequence of a stream an operator stores; paths are built by
/// [`stream_head_path`].
pub const STREAM_HEAD_ROUTE: &str = "/v1/streams/{stream}/head";
/// Route pattern of a stream's segments for a peer operator; paths are built by
/// [`replica_segments_path`].
pub const REPLICA_SEGMENTS_ROUTE: &str = "/v1/replica/streams/{stream}/segments";

/// Header carrying a buyer's `0x`-hex SCALE signed access request.
pub const ACCESS_HEADER: &str = "x-fastdata-access";
/// Header carrying an operator's `0x`-hex SCALE signed replica request.
pub const REPLICA_HEADER: &str = "x-fastdata-replica";
/// Answer header: upper bound of the range a download covered.
pub const SERVED_TO_HEADER: &str = "x-fastdata-served-to";
/// Answer header: highest sequence the buyer's current receipt allows.
pub const WINDOW_END_HEADER: &str = "x-fastdata-window-end";
/// Content type of segment frames (replicas).
pub const FRAMES_CONTENT_TYPE: &str = "application/vnd.fastdata.segments";
/// Content type of signed segment frames (buyer downloads).
pub const SIGNED_FRAMES_CONTENT_TYPE: &str = "application/vnd.fastdata.signed-segments";

/// The `?from=&to=` query of the segment routes: an inclusive range of sequences, open where
/// a bound is absent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentRange {
    /// First sequence asked for.
    pub from: Option<Sequence>,
    /// Last sequence asked for.
    pub to: Option<Sequence>,
}

impl SegmentRange {
    /// The query string, with its `?`; empty without bounds.
    pub fn query(&self) -> String {
        match (self.from, self.to) {
            (None, None) => String::new(),
            (Some(from), None) => format!("?from={from}"),
            (None, Some(to)) => format!("?to={to}"),
            (Some(from), Some(to)) => format!("?from={from}&to={to}"),
        }
    }
}

/// A stream id as a path segment: 64 lowercase hex digits, no `0x`.
pub fn stream_segment(stream: &StreamId) -> String {
    format!("{stream:x}")
}

/// The stream id of a path segment: 64 hex digits, with or without `0x`.
pub fn parse_stream_segment(text: &str) -> Option<StreamId> {
    let text = text.strip_prefix("0x").unwrap_or(text);
    if text.len() != 64 {
        return None;
    }
    let mut id = [0u8; 32];
    for (byte, pair) in id.iter_mut().zip(text.as_bytes().chunks_exact(2)) {
        let digit = |c: u8| char::from(c).to_digit(16);
        *byte = u8::try_from(digit(pair[0])? * 16 + digit(pair[1])?).ok()?;
    }
    Some(StreamId::from(id))
}

/// The path of [`PURCHASE_SEGMENTS_ROUTE`] for `purchase` and `range`.
pub fn purchase_segments_path(purchase: PurchaseId, range: SegmentRange) -> String {
    format!("/v1/purchases/{purchase}/segments{}", range.query())
}

/// The path of [`STREAM_HEAD_ROUTE`] for `stream`.
pub fn stream_head_path(stream: &StreamId) -> String {
    format!("/v1/streams/{}/head", stream_segment(stream))
}

/// The path of [`REPLICA_SEGMENTS_ROUTE`] for `stream` and `range`.
pub fn replica_segments_path(stream: &StreamId, range: SegmentRange) -> String {
    format!(
        "/v1/replica/streams/{}/segments{}",
        stream_segment(stream),
        range.query()
    )
}

/// Body of `POST` [`SESSION_PATH`]: exactly one of the two, each `0x`-hex SCALE.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionRequest {
    /// A seller's signed upload token (publish credentials).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upload_token: Option<String>,
    /// A buyer's signed access request (subscribe credentials, stream purchases only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_request: Option<String>,
}

/// Answer of `POST` [`SESSION_PATH`]: the broker login the client connects with.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerCredentials {
    /// MQTT username.
    pub username: String,
    /// MQTT password.
    pub password: String,
    /// The client id the login is bound to: the broker refuses the login with any other id
    /// (so no login can take over another client's session). `None` from operators that do
    /// not state one (before bound logins); see [`Self::mqtt_client_id`].
    #[serde(default)]
    pub client_id: Option<String>,
    /// The topic to publish to (seller) or subscribe to (buyer).
    pub topic: String,
    /// `publish` or `subscribe`.
    pub access: String,
    /// The receipt window W the operator holds a live subscriber to, if it says.
    #[serde(default)]
    pub receipt_window: Option<u64>,
}

impl BrokerCredentials {
    /// The MQTT client id to connect with: the bound [`Self::client_id`], or `fallback` from an
    /// operator that states none.
    pub fn mqtt_client_id(&self, fallback: impl FnOnce() -> String) -> String {
        self.client_id.clone().unwrap_or_else(fallback)
    }
}

/// Answer of `GET` [`TERMS_PATH`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Terms {
    /// The operator's account (SS58).
    pub operator: String,
    /// The genesis hash every signature must be made for, `0x`-hex.
    pub genesis: String,
    /// The receipt window W: segments a buyer may obtain past its last receipt.
    pub receipt_window: u64,
}

/// Answer of `GET` [`STREAM_HEAD_ROUTE`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredHead {
    /// The highest sequence of the stream stored; `None` if none is.
    pub last_sequence: Option<Sequence>,
}

/// Answer of `POST` [`RECEIPTS_PATH`]: the receipt accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceiptAccepted {
    /// The purchase.
    pub purchase: PurchaseId,
    /// The highest sequence acknowledged.
    pub up_to_sequence: Sequence,
    /// The bytes acknowledged.
    pub bytes: u64,
    /// The receipt's nonce.
    pub nonce: u64,
}

/// Body of every error answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// A short machine-readable code (`bad_signature`, `unknown_stream`, …).
    pub error: String,
    /// What the caller must do.
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::{string::ToString, vec::Vec};

    /// `path` (without its query) matches route `pattern`, `{…}` segments matching any
    /// non-empty segment; returns the parameters.
    fn route<'a>(pattern: &str, path: &'a str) -> Option<Vec<&'a str>> {
        let path = path.split('?').next()?;
        let (pattern, path): (Vec<_>, Vec<_>) =
            (pattern.split('/').collect(), path.split('/').collect());
        if pattern.len() != path.len() {
            return None;
        }
        let mut params = Vec::new();
        for (p, s) in pattern.iter().zip(path) {
            if p.starts_with('{') && p.ends_with('}') && !s.is_empty() {
                params.push(s);
            } else if *p != s {
                return None;
            }
        }
        Some(params)
    }

    #[test]
    fn built_paths_match_their_routes() {
        let stream = StreamId::repeat_byte(0xab);
        let hex = "ab".repeat(32);
        let seven = "7".to_string();
        assert_eq!(
            route(
                PURCHASE_SEGMENTS_ROUTE,
                &purchase_segments_path(7, SegmentRange::default())
            ),
            Some(alloc::vec![seven.as_str()])
        );
        assert_eq!(
            route(STREAM_HEAD_ROUTE, &stream_head_path(&stream)),
            Some(alloc::vec![hex.as_str()])
        );
        let replica = replica_segments_path(
            &stream,
            SegmentRange {
                from: Some(0),
                to: Some(9),
            },
        );
        assert_eq!(
            route(REPLICA_SEGMENTS_ROUTE, &replica),
            Some(alloc::vec![hex.as_str()])
        );
        assert_eq!(
            replica,
            format!("/v1/replica/streams/{hex}/segments?from=0&to=9")
        );
        assert_eq!(route(STREAM_HEAD_ROUTE, &replica), None);
        assert_eq!(parse_stream_segment(&hex), Some(stream));
        assert_eq!(parse_stream_segment(&format!("0x{hex}")), Some(stream));
    }

    #[test]
    fn ranges_and_stream_segments_are_exact() {
        let range = |from, to| SegmentRange { from, to };
        assert_eq!(range(None, None).query(), "");
        assert_eq!(range(Some(3), None).query(), "?from=3");
        assert_eq!(range(None, Some(4)).query(), "?to=4");
        assert_eq!(range(Some(3), Some(4)).query(), "?from=3&to=4");
        assert_eq!(
            purchase_segments_path(9, range(Some(1), Some(2))),
            "/v1/purchases/9/segments?from=1&to=2"
        );
        assert_eq!(
            parse_stream_segment(&"AB".repeat(32)),
            Some(StreamId::repeat_byte(0xab))
        );
        assert_eq!(parse_stream_segment(&"ab".repeat(31)), None);
        assert_eq!(parse_stream_segment(&"zz".repeat(32)), None);
        assert_eq!(parse_stream_segment(&format!("+{}", "a".repeat(63))), None);
    }
}

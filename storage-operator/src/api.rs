//! The daemon's HTTP API (axum). Its paths, headers and JSON bodies are defined once in
//! [`fastdata_primitives::operator_api`], where the SDK's client takes them from too.
//!
//! | route | who | what |
//! |---|---|---|
//! | `GET /health` | anyone | `{"status":"ok"|"unavailable","tasks":[{"name","state",…}]}`: each supervised task's state (`starting`, `running`, `restarting` with `attempt` and `last_error`, `failed` with `error`, `stopped`) and `restarts`; HTTP 503 unless every task is running |
//! | `GET /metrics` | Prometheus | text exposition |
//! | `GET /v1/terms` | anyone | `{"operator","genesis","receipt_window"}`: this operator (SS58), the genesis hash every signature must be made for, and the receipt window W |
//! | `POST /v1/broker/session` | seller, buyer | `{"upload_token":"0x…"}` or `{"access_request":"0x…"}` (hex SCALE) → broker credentials `{"username","password","topic","access","receipt_window"}`; stream purchases only, and not while the receipt window is used up |
//! | `GET /v1/purchases/{id}/segments?from=&to=` | buyer | header `x-fastdata-access: 0x…` (hex SCALE signed access request for `id`) → signed segment frames |
//! | `POST /v1/receipts` | buyer | SCALE `(Receipt, Signature)`, raw or `0x`-hex → the accepted receipt |
//! | `GET /v1/replica/streams/{hex}/segments?from=&to=` | operators | header `x-fastdata-replica` → segment frames |
//!
//! Segment frames (`application/vnd.fastdata.segments`, replicas): a sequence of `u32`
//! big-endian length followed by that many bytes of envelope, in increasing sequence order.
//! Signed segment frames (`application/vnd.fastdata.signed-segments`, buyers): the same, each
//! frame followed by this operator's 64-byte sr25519 signature (account key) of
//! [`SegmentStatement::of`]`(stream, sequence, envelope)` for the chain's genesis
//! ([`fastdata_primitives::custody`]). The store never rewrites a sequence, so an honest
//! operator never signs two digests for one segment; a buyer holding two that differ proves
//! an equivocation on chain (`Operators::report_equivocation`). A buyer download covers only what the purchase bought (a batch's `first..=last`; a stream's sequences from
//! its `start_head` on) and stops at most the receipt window W (`serving.receipt_window`) past
//! the buyer's last receipt for the purchase ([`crate::receipts::window_end`], the rule live
//! subscribers are held to as well); the response headers `x-fastdata-served-to` (upper bound
//! of the range sent) and `x-fastdata-window-end` (highest sequence the current receipt
//! allows) tell the client when to post a new receipt. A receipt beyond what was served
//! (batch) or stored (stream) is refused with 422 `beyond_served`.
//!
//! The rules of what a buyer's download and a peer's replica read may cover are
//! [`crate::serving`]'s; the handlers here parse the request, apply them and answer.
//!
//! Errors are JSON `{"error": "<code>", "message": "<what to do>"}` with a 4xx/5xx status.

use std::sync::Arc;

use axum::{
    body::{Body, Bytes},
    extract::{Path, Query, State},
    http::{HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
    Json, Router,
};
use fastdata_primitives::operator_api::{
    parse_stream_segment, BrokerCredentials, ErrorBody, ReceiptAccepted, SegmentRange,
    SessionRequest, StoredHead, Terms, HEALTH_PATH, METRICS_PATH, PURCHASE_SEGMENTS_ROUTE,
    RECEIPTS_PATH, REPLICA_SEGMENTS_ROUTE, SESSION_PATH, STREAM_HEAD_ROUTE, TERMS_PATH,
};
use fastdata_primitives::{
    custody::SegmentStatement, tokens::TokenError, AccountId, PurchaseId, Sequence, StreamId,
};
use serde_json::json;
use sp_core::{sr25519, Pair};

use crate::{
    auth::{decode_hex_scale, AccessRequest, Authorizer, Refusal, UploadToken},
    chain::ChainView,
    gate::{BrokerGate, GateError},
    metrics::Metrics,
    receipts::{ReceiptBook, ReceiptError},
    replication::{SignedReplicaRequest, REPLICA_PAGE},
    serving::{self, BuyerRange},
    store::Store,
    supervisor::{Health, TaskState},
};

/// The protocol's headers and content types (defined with the client's, in primitives).
pub use fastdata_primitives::operator_api::{
    ACCESS_HEADER, FRAMES_CONTENT_TYPE, REPLICA_HEADER, SERVED_TO_HEADER,
    SIGNED_FRAMES_CONTENT_TYPE, WINDOW_END_HEADER,
};
/// Largest JSON or receipt body accepted.
const MAX_SMALL_BODY: usize = 8 * 1024;
/// Segments read from the store per step of a streamed download.
const READ_CHUNK: usize = 256;

/// The download framing lives with the envelope format, shared with the SDK.
pub use fastdata_primitives::envelope::{
    decode_frames, decode_signed_frames, encode_frame, encode_signed_frame,
};

/// Shared state of the HTTP handlers.
pub struct Node {
    /// This operator.
    pub me: AccountId,
    /// This operator's account key: signs a [`SegmentStatement`] for every segment served to a
    /// buyer.
    signer: sr25519::Pair,
    /// Decisions.
    pub auth: Arc<Authorizer>,
    /// Chain facts.
    pub view: Arc<dyn ChainView>,
    /// Storage.
    pub store: Arc<Store>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// The broker gate.
    pub gate: Arc<dyn BrokerGate>,
    /// Receipts.
    pub receipts: Arc<ReceiptBook>,
    /// The supervised tasks' states (`GET /health`).
    pub health: Health,
}

impl Node {
    /// Handler state of the operator with account key `operator`; the receipt window and
    /// genesis hash are `auth`'s.
    pub fn new(
        operator: sr25519::Pair,
        auth: Arc<Authorizer>,
        view: Arc<dyn ChainView>,
        store: Arc<Store>,
        metrics: Arc<Metrics>,
        gate: Arc<dyn BrokerGate>,
        receipts: Arc<ReceiptBook>,
    ) -> Self {
        Self {
            me: AccountId::from(operator.public()),
            signer: operator,
            auth,
            view,
            store,
            metrics,
            gate,
            receipts,
            health: Health::default(),
        }
    }

    /// This operator's signature of segment `sequence` of `stream` served as `envelope`.
    pub fn sign_served(
        &self,
        stream: StreamId,
        sequence: Sequence,
        envelope: &[u8],
    ) -> sr25519::Signature {
        SegmentStatement::of(stream, sequence, envelope)
            .sign_sr25519(&self.signer, &self.auth.genesis())
    }

    /// Reports `health` (the daemon's supervisor's) on `GET /health`.
    pub fn with_health(mut self, health: Health) -> Self {
        self.health = health;
        self
    }
}

/// An HTTP error with a code and a message saying what to do.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    fn internal(message: impl std::fmt::Display) -> Self {
        tracing::error!("internal error: {message}");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            format!("try again later: {message}"),
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(ErrorBody {
                error: self.code.into(),
                message: self.message,
            }),
        )
            .into_response()
    }
}

impl From<Refusal> for ApiError {
    fn from(refusal: Refusal) -> Self {
        let status = match &refusal {
            Refusal::Malformed { .. } => StatusCode::BAD_REQUEST,
            Refusal::Token(TokenError::BadSignature) | Refusal::UnknownCredentials => {
                StatusCode::UNAUTHORIZED
            }
            Refusal::Token(TokenError::UnknownStream | TokenError::NotAssigned)
            | Refusal::UnknownPurchase(_) => StatusCode::NOT_FOUND,
            Refusal::Storage(_) => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::FORBIDDEN,
        };
        Self::new(status, refusal.code(), refusal.to_string())
    }
}

impl From<GateError> for ApiError {
    fn from(e: GateError) -> Self {
        tracing::warn!("broker gate: {e}");
        Self::new(
            StatusCode::BAD_GATEWAY,
            "broker",
            format!("the broker did not take the grant, try again: {e}"),
        )
    }
}

impl From<ReceiptError> for ApiError {
    fn from(e: ReceiptError) -> Self {
        let status = match &e {
            ReceiptError::Malformed(_) => StatusCode::BAD_REQUEST,
            ReceiptError::BadSignature => StatusCode::UNAUTHORIZED,
            ReceiptError::UnknownPurchase(_) => StatusCode::NOT_FOUND,
            ReceiptError::BeyondServed { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ReceiptError::Storage(_) => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::CONFLICT,
        };
        Self::new(status, e.code(), e.to_string())
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(ApiError::internal)
}

/// The API routes.
pub fn router(node: Arc<Node>) -> Router {
    Router::new()
        .route(HEALTH_PATH, get(health))
        .route(METRICS_PATH, get(metrics))
        .route(TERMS_PATH, get(terms))
        .route(SESSION_PATH, post(broker_session))
        .route(PURCHASE_SEGMENTS_ROUTE, get(purchase_segments))
        .route(RECEIPTS_PATH, post(post_receipt))
        .route(STREAM_HEAD_ROUTE, get(stream_head))
        .route(REPLICA_SEGMENTS_ROUTE, get(replica_segments))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_SMALL_BODY))
        .with_state(node)
}

async fn health(State(node): State<Arc<Node>>) -> Response {
    let tasks = node.health.tasks();
    let up = tasks.iter().all(|t| t.state == TaskState::Running);
    let (status, text) = if up {
        (StatusCode::OK, "ok")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
    };
    (status, Json(json!({ "status": text, "tasks": tasks }))).into_response()
}

async fn metrics(State(node): State<Arc<Node>>) -> Response {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        node.metrics.render(),
    )
        .into_response()
}

async fn terms(State(node): State<Arc<Node>>) -> Response {
    Json(Terms {
        operator: sp_core::crypto::Ss58Codec::to_ss58check(&node.me),
        genesis: format!("0x{}", hex::encode(node.auth.genesis().as_bytes())),
        receipt_window: node.auth.receipt_window(),
    })
    .into_response()
}

async fn broker_session(State(node): State<Arc<Node>>, body: Bytes) -> Result<Response, ApiError> {
    let request: SessionRequest = serde_json::from_slice(&body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "malformed",
            format!("expected {{\"upload_token\"}} or {{\"access_request\"}}: {e}"),
        )
    })?;
    let auth = node.auth.clone();
    let principal = match (request.upload_token, request.access_request) {
        (Some(token), None) => {
            let token: UploadToken = decode_hex_scale("upload token", &token)?;
            blocking(move || auth.admit_upload(&token)).await??
        }
        (None, Some(request)) => {
            let request: AccessRequest = decode_hex_scale("access request", &request)?;
            blocking(move || auth.admit_live(&request)).await??.0
        }
        _ => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "malformed",
                "give exactly one of upload_token or access_request",
            ))
        }
    };
    let login = node.gate.grant(&principal).await?;
    // The receipt-window enforcement looks at the new grant at once.
    node.store.notify_changed();
    Ok(Json(BrokerCredentials {
        username: login.username,
        password: login.password,
        client_id: Some(login.client_id),
        topic: login.topic,
        access: login.access.into(),
        receipt_window: Some(node.auth.receipt_window()),
    })
    .into_response())
}

fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> Result<&'a str, ApiError> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "missing_credentials",
                format!("send the {name} header"),
            )
        })
}

async fn purchase_segments(
    State(node): State<Arc<Node>>,
    Path(id): Path<PurchaseId>,
    Query(range): Query<SegmentRange>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let request: AccessRequest =
        decode_hex_scale("access request", header_text(&headers, ACCESS_HEADER)?)?;
    serving::check_request_purchase(&request, id)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "malformed", e.to_string()))?;
    let auth = node.auth.clone();
    let (_, purchase) = blocking(move || auth.admit_access(&request)).await??;

    // What the purchase bought, from its start, at most W past its last receipt.
    let (auth, p) = (node.auth.clone(), purchase.clone());
    let window = blocking(move || auth.window(&p)).await??;
    let (from, to, window_end) = match serving::buyer_range(&purchase, window, &range) {
        BuyerRange::Serve {
            from,
            to,
            window_end,
        } => (from, to, window_end),
        empty => {
            return Ok(frames_response(
                Body::empty(),
                SIGNED_FRAMES_CONTENT_TYPE,
                None,
                empty.window_end(),
            ))
        }
    };

    // Read in chunks and stream them; `x-fastdata-served-to` is the upper bound of the range.
    let stream_id = purchase.stream;
    let state = (node.clone(), purchase, from, to, false);
    let body =
        futures_util::stream::unfold(state, move |(node, purchase, next, to, done)| async move {
            if done || next > to {
                return None;
            }
            let (signer, p) = (node.clone(), purchase.clone());
            let read = tokio::task::spawn_blocking(move || {
                let store = &signer.store;
                let chunk = store.segments(&stream_id, next, to, READ_CHUNK)?;
                let mut out = Vec::new();
                let (mut count, mut highest) = (0u64, None);
                for segment in &chunk {
                    // Signed under the sequence it is stored at.
                    if serving::serves_segment(&p, segment.sequence, &segment.envelope) {
                        let signature =
                            signer.sign_served(stream_id, segment.sequence, &segment.envelope);
                        encode_signed_frame(&mut out, &segment.envelope, &signature.0);
                        count += 1;
                        highest = Some(segment.sequence);
                    }
                }
                // Recorded before it is sent: receipts may acknowledge up to here.
                if let Some(highest) = highest {
                    store.record_served(p.id, highest)?;
                }
                Ok::<_, crate::store::StoreError>((
                    chunk.last().map(|s| s.sequence),
                    chunk.len(),
                    out,
                    count,
                ))
            })
            .await;
            let (last, read_len, out, count) = match read {
                Ok(Ok(read)) => read,
                Ok(Err(e)) => {
                    return Some((
                        Err(std::io::Error::other(e.to_string())),
                        (node, purchase, next, to, true),
                    ))
                }
                Err(e) => {
                    return Some((
                        Err(std::io::Error::other(e.to_string())),
                        (node, purchase, next, to, true),
                    ))
                }
            };
            let last = last?;
            node.metrics.segments_served.inc_by(count);
            node.metrics.bytes_served.inc_by(out.len() as u64);
            let finished = last >= to || read_len < READ_CHUNK;
            let next = last.saturating_add(1);
            Some((
                Ok::<_, std::io::Error>(Bytes::from(out)),
                (node, purchase, next, to, finished),
            ))
        });
    Ok(frames_response(
        Body::from_stream(body),
        SIGNED_FRAMES_CONTENT_TYPE,
        Some(to),
        Some(window_end),
    ))
}

fn frames_response(
    body: Body,
    content_type: &'static str,
    served_to: Option<Sequence>,
    window_end: Option<Sequence>,
) -> Response {
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(
        axum::http::header::CONTENT_TYPE,
        HeaderValue::from_static(content_type),
    );
    if let Some(to) = served_to {
        headers.insert(SERVED_TO_HEADER, HeaderValue::from(to));
    }
    if let Some(end) = window_end {
        headers.insert(WINDOW_END_HEADER, HeaderValue::from(end));
    }
    response
}

async fn post_receipt(State(node): State<Arc<Node>>, body: Bytes) -> Result<Response, ApiError> {
    let bytes = if body.starts_with(b"0x") {
        let text = std::str::from_utf8(&body[2..]).unwrap_or_default().trim();
        hex::decode(text).map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "malformed",
                format!("receipt is not hex: {e}"),
            )
        })?
    } else {
        body.to_vec()
    };
    let book = node.receipts.clone();
    let receipt = blocking(move || book.accept(&bytes)).await??;
    Ok(Json(ReceiptAccepted {
        purchase: receipt.purchase,
        up_to_sequence: receipt.up_to_sequence,
        bytes: receipt.bytes,
        nonce: receipt.nonce,
    })
    .into_response())
}

fn parse_stream_hex(text: &str) -> Result<StreamId, ApiError> {
    parse_stream_segment(text).ok_or_else(|| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "malformed",
            "stream id must be 64 hex digits",
        )
    })
}

/// `GET /v1/streams/{stream}/head`: the highest sequence this operator stores of a stream it
/// hosts, `{"last_sequence": n | null}` (what its head attestations put on chain, current). A
/// seller's service asks every operator after a crash, so that it fills the sequences it had
/// reserved only above what any of them holds.
async fn stream_head(
    State(node): State<Arc<Node>>,
    Path(stream): Path<String>,
) -> Result<Response, ApiError> {
    let stream = parse_stream_hex(&stream)?;
    if node.view.stream(&stream).is_none() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_stream",
            "the stream is not hosted here",
        ));
    }
    let store = node.store.clone();
    let last = blocking(move || store.last_sequence(&stream))
        .await?
        .map_err(ApiError::internal)?;
    Ok(Json(StoredHead {
        last_sequence: last,
    })
    .into_response())
}

async fn replica_segments(
    State(node): State<Arc<Node>>,
    Path(stream): Path<String>,
    Query(range): Query<SegmentRange>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let stream = parse_stream_hex(&stream)?;
    let request: SignedReplicaRequest =
        decode_hex_scale("replica request", header_text(&headers, REPLICA_HEADER)?)?;
    let n = node.clone();
    let result = blocking(move || {
        serving::check_replica(
            n.view.as_ref(),
            &n.store,
            &n.me,
            &n.auth.genesis(),
            &stream,
            &request,
        )
    })
    .await?;
    node.metrics.auth("replica", result.is_ok());
    result?;
    let (from, to) = serving::replica_range(&range);
    let store = node.store.clone();
    let segments = blocking(move || store.segments(&stream, from, to, REPLICA_PAGE))
        .await?
        .map_err(ApiError::internal)?;
    let mut out = Vec::new();
    for segment in &segments {
        encode_frame(&mut out, &segment.envelope);
    }
    Ok(frames_response(
        Body::from(out),
        FRAMES_CONTENT_TYPE,
        segments.last().map(|s| s.sequence),
        None,
    ))
}

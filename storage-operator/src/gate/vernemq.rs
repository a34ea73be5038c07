//! VerneMQ backend: the daemon answers VerneMQ's webhooks from its local view.
//!
//! Configure VerneMQ with `plugins.vmq_webhooks = on` and one webhook per hook pointing at the
//! daemon's webhook listener (see `storage-operator/vernemq.conf`). Every hook is a `POST` with
//! header `vernemq-hook: <name>` and a JSON body; the daemon serves them at
//! `POST /vernemq/<hook name>` (and at `POST /vernemq`, dispatching on the header).
//!
//! Answers, exactly as VerneMQ's webhook documentation specifies them:
//!
//! | hook                      | allowed                                      | refused |
//! |---------------------------|----------------------------------------------|---------|
//! | `auth_on_register(_m5)`   | `{"result":"ok"}` (+ `modifiers` for sellers: `max_message_size`, [`SELLER_MAX_MESSAGE_SIZE`]) | `{"result":{"error":"not_allowed"}}` |
//! | `auth_on_publish(_m5)`    | `{"result":"ok"}` (+ `modifiers: {"retain": false}` if retain was set) | same |
//! | `auth_on_subscribe`       | `{"result":"ok"}`; some topics refused: `{"result":"ok","topics":[{"topic":…,"qos":128}]}` | same |
//! | `auth_on_subscribe_m5`    | `{"result":"ok"}`; some refused: `{"result":"ok","modifiers":{"topics":[{"topic":…,"qos":135}]}}` | same |
//! | `on_client_offline`, `on_client_gone` | `{}` (the daemon forgets the session) | |
//!
//! Garbage (bodies that are not the hook's JSON) gets HTTP 400 with
//! `{"result":{"error":"<reason>"}}`; VerneMQ treats any non-200 answer as a refusal.
//! Publish payloads arrive base64-encoded (VerneMQ's default `base64payload = on`).
//!
//! **Client ids.** `auth_on_register` binds every login to one client id (see
//! [`crate::gate`]): a minted login (`POST /v1/broker/session`) to its username, which
//! [`BrokerLogin::client_id`] states; an `upload`/`access` token login to its
//! principal's id ([`principal_client_id`]: `fd-seller-<stream hex>`, `fd-buyer-<purchase>`).
//! A login with any other id is refused before VerneMQ takes over the session of that id, so
//! no buyer or seller can disconnect another client or the daemon's own connections. Only the
//! daemon's own login (`broker.username`/`password`) chooses its ids freely.
//!
//! **Caching.** VerneMQ (`vmq_webhooks`) keeps an allowed answer of `auth_on_register`,
//! `auth_on_subscribe` or `auth_on_publish` (and their `_m5`) for `max-age` seconds when the
//! endpoint sends `cache-control: max-age=N`, keyed by every hook argument except the payload
//! and the peer port; refusals are never kept. By default no answer carries the header: a
//! refund or an unassignment takes effect at the next hook call.
//! [`VernemqGate::with_publish_cache`] (`[vernemq] cache_secs`) sends it on allowed
//! `auth_on_publish(_m5)` answers only, so a connected seller's publishes on its own topic
//! skip the webhook round trip until the answer expires. Revocations still act at once,
//! because the gate disconnects the publisher through the API (required with the cache) and
//! its next `auth_on_register` is asked. What a cached answer skips, for at most that long, is
//! the per-message part: the segment header checks (size, version, stream, epoch not in the
//! future) and the hosting-quota cut-off for live delivery. Such segments reach only that
//! stream's own subscribers, whose SDK verifies every segment, and the daemon still refuses to
//! store them. `auth_on_register` is never cached: the gate records each session there
//! (without it the session's publishes and subscriptions are refused and it cannot be
//! revoked), and a cached answer would let a single-use token be replayed.
//! `auth_on_subscribe` runs once per session, so caching it would save nothing.
//!
//! **Restarts.** With a store ([`VernemqGate::with_store`]) the gate records every minted
//! login (username, a hash of its password, principal) and every admitted session before it
//! answers, and reads them back at start: minted logins keep working and sessions that stayed
//! connected are still disconnected when their grant ends. [`VernemqGate::sync_sessions`]
//! then compares them with the broker's session list: sessions gone while the daemon was down
//! are forgotten, online clients the gate does not know are disconnected (they log in again
//! through the hooks). Rows go when their grant is revoked; a principal keeps at most
//! [`MAX_LOGINS_PER_PRINCIPAL`] minted logins.

use fastdata_sdk::http::HttpClient;
use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use async_trait::async_trait;
use axum::{
    body::Bytes,
    extract::{Path, State},
    http::{header::CACHE_CONTROL, HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    routing::post,
    Json, Router,
};
use base64::Engine;
use codec::{Decode, Encode};
use fastdata_primitives::{envelope::MAX_ENVELOPE_LEN, AccountId, PurchaseId};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{
    decode_principal, encode_principal, grant_scope, justified, principal_client_id, random_secret,
    BrokerGate, BrokerLogin, GateError, Revocation,
};
use crate::{
    auth::{decode_hex_scale, AccessRequest, Authorizer, Principal, Refusal, UploadToken},
    chain::ChainView,
    metrics::Metrics,
    store::{GateTable, Store, StoreError},
};

/// The `max_message_size` a seller's session gets. VerneMQ 2.1.2 compares the whole unparsed
/// input of a connection with it (`vmq_parser:parse/4`), not the next packet: a limit of one
/// envelope stalls a publisher whose backlog arrives in one larger socket read (no PUBACK until
/// the keep-alive drops it). So it leaves room for a packet plus a socket read
/// (`listener.tcp.buffer_sizes` in `vernemq.conf`); envelopes above
/// [`MAX_ENVELOPE_LEN`] are refused per message by `auth_on_publish`.
pub const SELLER_MAX_MESSAGE_SIZE: usize = 1 << 20;

/// Username with which a seller's publisher connects directly with its upload token.
pub const UPLOAD_USERNAME: &str = "upload";
/// Username with which a buyer's subscriber connects directly with its access request.
pub const ACCESS_USERNAME: &str = "access";
/// Largest webhook body accepted (a publish carries a base64 envelope).
pub const MAX_WEBHOOK_BODY: usize = MAX_ENVELOPE_LEN * 4 / 3 + 64 * 1024;

/// Minted logins kept per principal: minting one more drops its oldest.
pub const MAX_LOGINS_PER_PRINCIPAL: usize = 16;
/// Largest session list read from VerneMQ's API.
const MAX_SESSION_LIST: usize = 64 * 1024 * 1024;
/// Most sessions listed per node (VerneMQ lists 100 by default); a list this long may be cut
/// short, so nothing is forgotten for it.
const SESSION_LIST_LIMIT: usize = 1_000_000;

/// QoS value that refuses one topic of an MQTT 3.1.1 subscription.
const QOS_REFUSED_V3: u8 = 128;
/// Reason code "Not authorized" that refuses one topic of an MQTT 5 subscription.
const QOS_REFUSED_V5: u8 = 135;

/// VerneMQ's HTTP management API, used to disconnect revoked clients.
#[derive(Clone, Debug)]
pub struct VernemqApi {
    /// Base URL, e.g. `http://127.0.0.1:8888`.
    pub base_url: String,
    /// API key (created with `vmq-admin api-key create`).
    pub api_key: String,
}

/// A login minted by [`BrokerGate::grant`].
struct Minted {
    /// blake2-256 of the password (the password itself is never stored).
    secret: [u8; 32],
    principal: Principal,
    /// Order of minting (the oldest logins of a principal go first).
    serial: u64,
}

#[derive(Default)]
struct Sessions {
    /// Minted logins, by username (also the bound client id).
    minted: HashMap<String, Minted>,
    /// Registered clients, by (mountpoint, client id).
    connected: HashMap<(String, String), Principal>,
    /// Serial of the next minted login.
    next_serial: u64,
}

/// Store row of a minted login: (secret hash, serial) ‖ principal.
fn login_row(minted: &Minted) -> Vec<u8> {
    let mut row = (minted.secret, minted.serial).encode();
    row.extend(encode_principal(&minted.principal));
    row
}

fn decode_login(value: &[u8]) -> Option<Minted> {
    let input = &mut &value[..];
    let (secret, serial) = <([u8; 32], u64)>::decode(input).ok()?;
    let principal = decode_principal(input).ok()?;
    input.is_empty().then_some(Minted {
        secret,
        principal,
        serial,
    })
}

/// Store key of a session.
fn session_key(mountpoint: &str, client_id: &str) -> Vec<u8> {
    (mountpoint, client_id).encode()
}

fn decode_session(key: &[u8], value: &[u8]) -> Option<((String, String), Principal)> {
    let id = <(String, String)>::decode(&mut &key[..]).ok()?;
    let input = &mut &value[..];
    let principal = decode_principal(input).ok()?;
    input.is_empty().then_some((id, principal))
}

fn secret_hash(password: &str) -> [u8; 32] {
    use sp_runtime::traits::Hash;
    sp_runtime::traits::BlakeTwo256::hash(password.as_bytes()).0
}

/// The VerneMQ webhook backend.
pub struct VernemqGate {
    auth: Arc<Authorizer>,
    sessions: Mutex<Sessions>,
    operator_username: String,
    operator_password: String,
    base64_payload: bool,
    api: Option<(VernemqApi, HttpClient)>,
    store: Option<Arc<Store>>,
    metrics: Option<Arc<Metrics>>,
    /// `max-age` of allowed `auth_on_publish` answers (0: no `cache-control`).
    publish_cache_secs: u32,
}

#[derive(Deserialize)]
struct RegisterRequest {
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    mountpoint: String,
    client_id: String,
}

#[derive(Deserialize)]
struct PublishRequest {
    #[serde(default)]
    mountpoint: String,
    client_id: String,
    topic: String,
    #[serde(default)]
    payload: Option<String>,
    #[serde(default)]
    retain: bool,
}

#[derive(Deserialize)]
struct TopicQos {
    topic: String,
    qos: u8,
}

#[derive(Deserialize)]
struct SubscribeRequest {
    #[serde(default)]
    mountpoint: String,
    client_id: String,
    topics: Vec<TopicQos>,
}

#[derive(Deserialize)]
struct ClientRequest {
    #[serde(default)]
    mountpoint: String,
    client_id: String,
}

/// `{"result":"ok"}`.
pub fn ok() -> Value {
    json!({ "result": "ok" })
}

/// `{"result":{"error":"not_allowed"}}`.
pub fn not_allowed() -> Value {
    json!({ "result": { "error": "not_allowed" } })
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl VernemqGate {
    /// A gate for `auth`; the daemon's own clients authenticate with the operator credentials.
    pub fn new(
        auth: Arc<Authorizer>,
        operator_username: String,
        operator_password: String,
        api: Option<VernemqApi>,
    ) -> Self {
        Self {
            auth,
            sessions: Mutex::new(Sessions::default()),
            operator_username,
            operator_password,
            base64_payload: true,
            api: api.map(|api| (api, HttpClient::new())),
            store: None,
            metrics: None,
            publish_cache_secs: 0,
        }
    }

    /// Records how long each webhook call took to answer in `metrics`
    /// ([`Metrics::webhook_seconds`]).
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Lets VerneMQ reuse an allowed `auth_on_publish(_m5)` answer for `secs` seconds (0: never,
    /// the default); see the module documentation for what a cached answer skips. Use it only
    /// with the API set, so that revoked publishers are disconnected.
    pub fn with_publish_cache(mut self, secs: u32) -> Self {
        self.publish_cache_secs = secs;
        self
    }

    /// The `cache-control` value to send with the answer `(status, answer)` to `hook`, if any:
    /// only allowed publishes are cached, and only with [`Self::with_publish_cache`].
    pub fn cache_control(&self, hook: &str, status: StatusCode, answer: &Value) -> Option<String> {
        let publish = matches!(hook, "auth_on_publish" | "auth_on_publish_m5");
        let allowed = status == StatusCode::OK && answer.get("result") == Some(&json!("ok"));
        (self.publish_cache_secs > 0 && publish && allowed)
            .then(|| format!("max-age={}", self.publish_cache_secs))
    }

    /// Records the gate's decisions in `store` and reads back those of previous runs (rows
    /// that do not decode are skipped with a warning and deleted).
    pub fn with_store(mut self, store: Arc<Store>) -> Result<Self, StoreError> {
        let logins = store.gate_rows(GateTable::Logins)?;
        let connected = store.gate_rows(GateTable::Sessions)?;
        let sessions = self
            .sessions
            .get_mut()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut corrupt = Vec::new();
        for (key, value) in logins {
            let login = String::from_utf8(key.clone())
                .ok()
                .zip(decode_login(&value));
            match login {
                Some((username, minted)) => {
                    sessions.next_serial =
                        sessions.next_serial.max(minted.serial.saturating_add(1));
                    sessions.minted.insert(username, minted);
                }
                None => {
                    tracing::warn!(key = %hex::encode(&key), "skipping a stored broker login that does not decode");
                    corrupt.push(key);
                }
            }
        }
        store.gate_remove(GateTable::Logins, &corrupt)?;
        corrupt.clear();
        for (key, value) in connected {
            match decode_session(&key, &value) {
                Some((id, principal)) => {
                    sessions.connected.insert(id, principal);
                }
                None => {
                    tracing::warn!(key = %hex::encode(&key), "skipping a stored broker session that does not decode");
                    corrupt.push(key);
                }
            }
        }
        store.gate_remove(GateTable::Sessions, &corrupt)?;
        tracing::info!(
            logins = sessions.minted.len(),
            sessions = sessions.connected.len(),
            "broker gate state of the previous run read back"
        );
        self.store = Some(store);
        Ok(self)
    }

    /// Uses `client` for VerneMQ's API (e.g. one trusting `http.ca_cert`).
    pub fn with_http_client(mut self, client: HttpClient) -> Self {
        if let Some((_, http)) = &mut self.api {
            *http = client;
        }
        self
    }

    /// Payloads arrive as plain strings instead of base64 (`base64payload = off`).
    pub fn with_plain_payloads(mut self) -> Self {
        self.base64_payload = false;
        self
    }

    fn sessions(&self) -> std::sync::MutexGuard<'_, Sessions> {
        self.sessions
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Number of registered clients the gate remembers.
    pub fn connected_clients(&self) -> usize {
        self.sessions().connected.len()
    }

    /// Answers one webhook call: HTTP status and JSON body. Blocking (may commit a nonce).
    pub fn handle(&self, hook: &str, body: &[u8]) -> (StatusCode, Value) {
        let result = match hook {
            "auth_on_register" | "auth_on_register_m5" => parse(body).map(|r| self.on_register(r)),
            "auth_on_publish" | "auth_on_publish_m5" => parse(body).map(|r| self.on_publish(r)),
            "auth_on_subscribe" => parse(body).map(|r| self.on_subscribe(r, false)),
            "auth_on_subscribe_m5" => parse(body).map(|r| self.on_subscribe(r, true)),
            "on_client_offline" | "on_client_gone" => parse(body).map(|r| self.on_client_gone(r)),
            other => {
                tracing::warn!(hook = other, "unknown VerneMQ hook");
                return (
                    StatusCode::NOT_FOUND,
                    json!({ "result": { "error": "unknown hook" } }),
                );
            }
        };
        match result {
            Ok(answer) => (StatusCode::OK, answer),
            Err(detail) => {
                tracing::warn!(hook, "malformed webhook body: {detail}");
                (
                    StatusCode::BAD_REQUEST,
                    json!({ "result": { "error": format!("malformed {hook} body: {detail}") } }),
                )
            }
        }
    }

    /// The principal behind a login and the client id it is bound to (`None`: the daemon's own
    /// login, any id).
    fn admit(&self, request: &RegisterRequest) -> Result<(Principal, Option<String>), Refusal> {
        let username = request
            .username
            .as_deref()
            .ok_or(Refusal::UnknownCredentials)?;
        let password = request.password.as_deref().unwrap_or_default();
        if username == self.operator_username {
            return if constant_time_eq(password.as_bytes(), self.operator_password.as_bytes()) {
                Ok((Principal::Operator, None))
            } else {
                Err(Refusal::UnknownCredentials)
            };
        }
        let principal = match username {
            UPLOAD_USERNAME => {
                let token: UploadToken = decode_hex_scale("upload token", password)?;
                self.auth.admit_upload(&token)?
            }
            ACCESS_USERNAME => {
                let request: AccessRequest = decode_hex_scale("access request", password)?;
                self.auth.admit_live(&request)?.0
            }
            minted => {
                let principal = {
                    let sessions = self.sessions();
                    match sessions.minted.get(minted) {
                        Some(login) if constant_time_eq(&login.secret, &secret_hash(password)) => {
                            login.principal.clone()
                        }
                        _ => return Err(Refusal::UnknownCredentials),
                    }
                };
                self.auth.still_valid(&principal)?;
                return Ok((principal, Some(minted.to_owned())));
            }
        };
        let bound = principal_client_id(&principal);
        Ok((principal, bound))
    }

    fn on_register(&self, request: RegisterRequest) -> Value {
        match self.admit(&request) {
            Ok((principal, Some(bound))) if bound != request.client_id => {
                tracing::warn!(
                    client_id = %request.client_id,
                    bound = %bound,
                    ?principal,
                    "register refused: the login is bound to another client id"
                );
                not_allowed()
            }
            Ok((principal, _)) => {
                let seller = matches!(principal, Principal::Seller { .. });
                let id = (request.mountpoint, request.client_id);
                let known = self.sessions().connected.get(&id) == Some(&principal);
                // Recorded before the broker lets the client in: a session the gate could
                // forget across a restart could not be revoked.
                if !known {
                    if let Some(store) = &self.store {
                        let key = session_key(&id.0, &id.1);
                        let row = encode_principal(&principal);
                        if let Err(e) = store.gate_put(GateTable::Sessions, &key, &row) {
                            tracing::warn!(client_id = %id.1, "register refused: cannot record the session: {e}");
                            return not_allowed();
                        }
                    }
                }
                tracing::info!(client_id = %id.1, ?principal, "client registered");
                self.sessions().connected.insert(id, principal);
                if seller {
                    json!({ "result": "ok", "modifiers": { "max_message_size": SELLER_MAX_MESSAGE_SIZE } })
                } else {
                    ok()
                }
            }
            Err(refusal) => {
                tracing::info!(client_id = %request.client_id, reason = refusal.code(), "register refused: {refusal}");
                not_allowed()
            }
        }
    }

    fn principal_of(&self, mountpoint: &str, client_id: &str) -> Option<Principal> {
        self.sessions()
            .connected
            .get(&(mountpoint.to_owned(), client_id.to_owned()))
            .cloned()
    }

    fn on_publish(&self, request: PublishRequest) -> Value {
        let Some(principal) = self.principal_of(&request.mountpoint, &request.client_id) else {
            tracing::info!(client_id = %request.client_id, "publish from an unknown client refused");
            return not_allowed();
        };
        let payload = match request.payload.as_deref().map(|p| self.decode_payload(p)) {
            Some(Ok(bytes)) => bytes,
            Some(Err(e)) => {
                tracing::info!(client_id = %request.client_id, "publish refused: payload {e}");
                return not_allowed();
            }
            None => {
                tracing::info!(client_id = %request.client_id, "publish refused: no payload in the hook body");
                return not_allowed();
            }
        };
        match self
            .auth
            .may_publish(&principal, &request.topic, Some(&payload))
        {
            Ok(()) if request.retain => json!({ "result": "ok", "modifiers": { "retain": false } }),
            Ok(()) => ok(),
            Err(_) => not_allowed(),
        }
    }

    fn decode_payload(&self, payload: &str) -> Result<Vec<u8>, String> {
        if payload.len() > MAX_WEBHOOK_BODY {
            return Err("too large".into());
        }
        if self.base64_payload {
            base64::engine::general_purpose::STANDARD
                .decode(payload)
                .map_err(|e| format!("not base64: {e}"))
        } else {
            Ok(payload.as_bytes().to_vec())
        }
    }

    fn on_subscribe(&self, request: SubscribeRequest, m5: bool) -> Value {
        let Some(principal) = self.principal_of(&request.mountpoint, &request.client_id) else {
            tracing::info!(client_id = %request.client_id, "subscribe from an unknown client refused");
            return not_allowed();
        };
        if request.topics.is_empty() {
            return not_allowed();
        }
        let decisions: Vec<bool> = request
            .topics
            .iter()
            .map(|t| self.auth.may_subscribe(&principal, &t.topic).is_ok())
            .collect();
        if decisions.iter().all(|allowed| *allowed) {
            return ok();
        }
        if decisions.iter().all(|allowed| !*allowed) {
            return not_allowed();
        }
        let refused = if m5 { QOS_REFUSED_V5 } else { QOS_REFUSED_V3 };
        let topics: Vec<Value> = request
            .topics
            .iter()
            .zip(&decisions)
            .map(|(t, allowed)| json!({ "topic": t.topic, "qos": if *allowed { t.qos } else { refused } }))
            .collect();
        if m5 {
            json!({ "result": "ok", "modifiers": { "topics": topics } })
        } else {
            json!({ "result": "ok", "topics": topics })
        }
    }

    fn on_client_gone(&self, request: ClientRequest) -> Value {
        let removed = self
            .sessions()
            .connected
            .remove(&(request.mountpoint.clone(), request.client_id.clone()));
        if let (Some(_), Some(store)) = (removed, &self.store) {
            let key = session_key(&request.mountpoint, &request.client_id);
            if let Err(e) = store.gate_remove(GateTable::Sessions, &[key]) {
                tracing::warn!(client_id = %request.client_id, "cannot delete the session's record: {e}");
            }
        }
        json!({})
    }

    /// Deletes rows of `table` off the async threads (a failure leaves them to the next
    /// revocation or start, and is logged).
    async fn forget(&self, table: GateTable, keys: Vec<Vec<u8>>) {
        let Some(store) = self.store.clone() else {
            return;
        };
        if keys.is_empty() {
            return;
        }
        let n = keys.len();
        match tokio::task::spawn_blocking(move || store.gate_remove(table, &keys)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(?table, rows = n, "cannot delete gate records: {e}"),
            Err(e) => tracing::warn!(?table, rows = n, "cannot delete gate records: {e}"),
        }
    }

    /// Removes the sessions and minted credentials `matches` selects and disconnects the
    /// sessions through the API, if set.
    async fn drop_sessions(&self, matches: impl Fn(&Principal) -> bool) -> usize {
        let logins: Vec<Vec<u8>> = {
            let mut sessions = self.sessions();
            let names: Vec<String> = sessions
                .minted
                .iter()
                .filter(|(_, login)| matches(&login.principal))
                .map(|(name, _)| name.clone())
                .collect();
            for name in &names {
                sessions.minted.remove(name);
            }
            names.into_iter().map(String::into_bytes).collect()
        };
        self.forget(GateTable::Logins, logins).await;
        self.disconnect(matches).await
    }

    /// Forgets the connected sessions `matches` selects and disconnects them through the
    /// API, if set (minted credentials are kept).
    async fn disconnect(&self, matches: impl Fn(&Principal) -> bool) -> usize {
        let dropped: Vec<(String, String)> = {
            let mut sessions = self.sessions();
            let dropped: Vec<_> = sessions
                .connected
                .iter()
                .filter(|(_, p)| matches(p))
                .map(|(k, _)| k.clone())
                .collect();
            for key in &dropped {
                sessions.connected.remove(key);
            }
            dropped
        };
        let keys = dropped.iter().map(|(m, c)| session_key(m, c)).collect();
        self.forget(GateTable::Sessions, keys).await;
        self.kick(&dropped).await;
        dropped.len()
    }

    /// Disconnects `clients` (mountpoint, client id) through the API, if set.
    async fn kick(&self, clients: &[(String, String)]) {
        if let Some((api, client)) = &self.api {
            for (mountpoint, client_id) in clients {
                let mut url = format!(
                    "{}/api/v1/session/disconnect?client-id={}&--cleanup",
                    api.base_url.trim_end_matches('/'),
                    urlencode(client_id)
                );
                if !mountpoint.is_empty() {
                    url.push_str(&format!("&--mountpoint={}", urlencode(mountpoint)));
                }
                match client
                    .get(&url, &[("authorization", api_auth(api))], 64 * 1024)
                    .await
                {
                    Ok((status, _)) if status.is_success() => {}
                    Ok((status, body)) => {
                        tracing::warn!(%client_id, %status, "VerneMQ disconnect failed: {}", String::from_utf8_lossy(&body))
                    }
                    Err(e) => tracing::warn!(%client_id, "VerneMQ disconnect failed: {e}"),
                }
            }
        }
    }

    /// Aligns the sessions read back from the store with the broker's (call at start, before
    /// the hooks are served): forgets those no longer online, disconnects online clients the
    /// gate does not know (they log in again through the hooks) except the daemon's own.
    /// Returns (forgotten, disconnected); without the API, (0, 0).
    pub async fn sync_sessions(&self) -> Result<(usize, usize), GateError> {
        let Some((api, client)) = &self.api else {
            return Ok((0, 0));
        };
        let url = format!(
            "{}/api/v1/session/show?--client_id&--mountpoint&--user&--is_online&--limit={SESSION_LIST_LIMIT}",
            api.base_url.trim_end_matches('/')
        );
        let (status, body) = client
            .get(&url, &[("authorization", api_auth(api))], MAX_SESSION_LIST)
            .await
            .map_err(|e| GateError::Connection(format!("VerneMQ session list: {e}")))?;
        if !status.is_success() {
            return Err(GateError::Refused {
                command: "session show".into(),
                message: format!("{status}: {}", String::from_utf8_lossy(&body)),
            });
        }
        let (rows, online) = online_sessions(&body)?;
        if rows >= SESSION_LIST_LIMIT {
            return Err(GateError::Refused {
                command: "session show".into(),
                message: format!("{rows} sessions listed, the list may be cut short"),
            });
        }
        let (stale, unknown) = {
            let mut sessions = self.sessions();
            let stale: Vec<(String, String)> = sessions
                .connected
                .keys()
                .filter(|id| !online.contains_key(*id))
                .cloned()
                .collect();
            for id in &stale {
                sessions.connected.remove(id);
            }
            let mut unknown = Vec::new();
            for (id, user) in &online {
                if sessions.connected.contains_key(id) {
                    continue;
                }
                if user.as_deref() == Some(self.operator_username.as_str()) {
                    sessions.connected.insert(id.clone(), Principal::Operator);
                } else {
                    unknown.push(id.clone());
                }
            }
            (stale, unknown)
        };
        let keys = stale.iter().map(|(m, c)| session_key(m, c)).collect();
        self.forget(GateTable::Sessions, keys).await;
        self.kick(&unknown).await;
        tracing::info!(
            online = online.len(),
            forgotten = stale.len(),
            disconnected = unknown.len(),
            "broker sessions compared with the gate's"
        );
        Ok((stale.len(), unknown.len()))
    }

    /// The webhook routes (`POST /vernemq/{hook}` and `POST /vernemq` with the hook header).
    pub fn router(self: Arc<Self>) -> Router {
        Router::new()
            .route("/vernemq", post(hook_by_header))
            .route("/vernemq/{hook}", post(hook_by_path))
            .layer(axum::extract::DefaultBodyLimit::max(MAX_WEBHOOK_BODY))
            .with_state(self)
    }
}

/// The `authorization` header of VerneMQ's API.
fn api_auth(api: &VernemqApi) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{}:", api.api_key))
    )
}

/// Online sessions by (mountpoint, client id), with their usernames.
type OnlineSessions = HashMap<(String, String), Option<String>>;

/// The number of rows and the online sessions of a `session show` answer (clique's JSON: a
/// list of outputs, one `{"type":"table","table":[{"client_id":…,"mountpoint":…,"user":…,
/// "is_online":…},…]}`); rows that do not parse are skipped.
fn online_sessions(body: &[u8]) -> Result<(usize, OnlineSessions), GateError> {
    let answer: Value = serde_json::from_slice(body).map_err(|e| GateError::Refused {
        command: "session show".into(),
        message: format!("unexpected answer: {e}"),
    })?;
    let table = match &answer {
        Value::Array(outputs) => outputs.iter().find_map(|o| o.get("table")),
        other => other.get("table"),
    };
    let Some(rows) = table.and_then(Value::as_array) else {
        return Err(GateError::Refused {
            command: "session show".into(),
            message: "no session table in the answer".into(),
        });
    };
    let mut online = HashMap::new();
    for row in rows {
        let is_online = match row.get("is_online") {
            Some(Value::Bool(b)) => *b,
            Some(Value::String(s)) => s == "true",
            _ => false,
        };
        let Some(client_id) = row.get("client_id").and_then(Value::as_str) else {
            tracing::warn!(%row, "skipping a VerneMQ session without a client id");
            continue;
        };
        if !is_online {
            continue;
        }
        let mountpoint = row
            .get("mountpoint")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let user = row.get("user").and_then(Value::as_str).map(str::to_owned);
        online.insert((mountpoint.to_owned(), client_id.to_owned()), user);
    }
    Ok((rows.len(), online))
}

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, String> {
    serde_json::from_slice(body).map_err(|e| e.to_string())
}

async fn answer(gate: Arc<VernemqGate>, hook: String, body: Bytes) -> Response {
    let started = std::time::Instant::now();
    let handler = gate.clone();
    let name = hook.clone();
    let decided = tokio::task::spawn_blocking(move || {
        let (status, value) = handler.handle(&name, &body);
        let cache = handler.cache_control(&name, status, &value);
        (status, value, cache)
    })
    .await;
    let response = match decided {
        Ok((status, value, cache)) => {
            let mut response = (status, Json(value)).into_response();
            if let Some(value) = cache.and_then(|c| HeaderValue::from_str(&c).ok()) {
                response.headers_mut().insert(CACHE_CONTROL, value);
            }
            response
        }
        Err(e) => {
            tracing::error!("webhook handler failed: {e}");
            (StatusCode::INTERNAL_SERVER_ERROR, Json(not_allowed())).into_response()
        }
    };
    if let Some(metrics) = &gate.metrics {
        metrics.webhook(&hook, started.elapsed().as_secs_f64());
    }
    response
}

async fn hook_by_path(
    State(gate): State<Arc<VernemqGate>>,
    Path(hook): Path<String>,
    body: Bytes,
) -> Response {
    answer(gate, hook, body).await
}

async fn hook_by_header(
    State(gate): State<Arc<VernemqGate>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let hook = headers
        .get("vernemq-hook")
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    answer(gate, hook, body).await
}

#[async_trait]
impl BrokerGate for VernemqGate {
    fn backend(&self) -> &'static str {
        "vernemq"
    }

    async fn grant(&self, principal: &Principal) -> Result<BrokerLogin, GateError> {
        let (topic, access) = grant_scope(principal)?;
        let username = format!("fd-{}", random_secret(8)?);
        let password = random_secret(24)?;
        let (login, evicted) = {
            let mut sessions = self.sessions();
            let login = Minted {
                secret: secret_hash(&password),
                principal: principal.clone(),
                serial: sessions.next_serial,
            };
            sessions.next_serial = sessions.next_serial.saturating_add(1);
            let mut same: Vec<(u64, String)> = sessions
                .minted
                .iter()
                .filter(|(_, m)| &m.principal == principal)
                .map(|(name, m)| (m.serial, name.clone()))
                .collect();
            same.sort_unstable();
            let excess = (same.len() + 1).saturating_sub(MAX_LOGINS_PER_PRINCIPAL);
            let evicted: Vec<String> = same.into_iter().take(excess).map(|(_, n)| n).collect();
            (login, evicted)
        };
        // Recorded before the client gets it, so it keeps working after a restart.
        if let Some(store) = self.store.clone() {
            let (key, row) = (username.clone().into_bytes(), login_row(&login));
            tokio::task::spawn_blocking(move || store.gate_put(GateTable::Logins, &key, &row))
                .await
                .map_err(|e| GateError::Store(e.to_string()))?
                .map_err(|e| GateError::Store(e.to_string()))?;
        }
        {
            let mut sessions = self.sessions();
            for name in &evicted {
                sessions.minted.remove(name);
            }
            sessions.minted.insert(username.clone(), login);
        }
        self.forget(
            GateTable::Logins,
            evicted.into_iter().map(String::into_bytes).collect(),
        )
        .await;
        Ok(BrokerLogin {
            // Bound to the username (checked at `auth_on_register`).
            client_id: username.clone(),
            username,
            password,
            topic,
            access,
        })
    }

    async fn revoke(&self, revocation: Revocation) -> Result<(), GateError> {
        let n = self
            .drop_sessions(|p| match (revocation, p) {
                (Revocation::Purchase(id), Principal::Buyer { purchase, .. }) => *purchase == id,
                (
                    Revocation::Stream(id),
                    Principal::Buyer { stream, .. } | Principal::Seller { stream, .. },
                ) => *stream == id,
                _ => false,
            })
            .await;
        tracing::info!(?revocation, sessions = n, "VerneMQ grants revoked");
        Ok(())
    }

    async fn reconcile(&self, view: &dyn ChainView, me: &AccountId) -> Result<usize, GateError> {
        Ok(self.drop_sessions(|p| !justified(view, me, p)).await)
    }

    fn live_purchases(&self) -> Vec<PurchaseId> {
        let sessions = self.sessions();
        let mut purchases: Vec<PurchaseId> = sessions
            .connected
            .values()
            .filter_map(|p| match p {
                Principal::Buyer { purchase, .. } => Some(*purchase),
                _ => None,
            })
            .collect();
        purchases.sort_unstable();
        purchases.dedup();
        purchases
    }

    /// Closed windows disconnect the purchase's sessions and keep its minted credentials:
    /// logins and subscriptions are refused while the window stays used up (the hooks apply
    /// the same rule), and accepted again once a receipt catches up.
    async fn apply_windows(&self, decisions: &[(PurchaseId, bool)]) -> Result<usize, GateError> {
        let closed: Vec<PurchaseId> = decisions
            .iter()
            .filter(|(_, open)| !open)
            .map(|(p, _)| *p)
            .collect();
        if closed.is_empty() {
            return Ok(0);
        }
        let n = self
            .disconnect(
                |p| matches!(p, Principal::Buyer { purchase, .. } if closed.contains(purchase)),
            )
            .await;
        if n > 0 {
            tracing::info!(
                sessions = n,
                "VerneMQ sessions past their receipt window disconnected"
            );
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    //! Contract tests: request bodies copied from VerneMQ's webhook documentation (with our
    //! topics and credentials filled in), answers pinned byte for byte.
    use super::*;
    use crate::{
        auth::{
            stream_topic,
            tests::{access_request, fixture, upload_token, Fixture},
            to_hex_scale,
        },
        chain::ChainEvent,
    };
    use axum::body::Body;
    use fastdata_primitives::envelope::{seal, EpochKeys, SegmentHeader};
    use tower::ServiceExt;

    fn gate(f: &Fixture) -> Arc<VernemqGate> {
        Arc::new(VernemqGate::new(
            f.auth.clone(),
            "operator".into(),
            "s3cret".into(),
            None,
        ))
    }

    /// The client ids the fixture's seller and buyer (purchase 1) are bound to.
    fn seller_id(f: &Fixture) -> String {
        format!("fd-seller-{}", hex::encode(f.stream.as_bytes()))
    }
    const BUYER: &str = "fd-buyer-1";

    fn call(gate: &VernemqGate, hook: &str, body: Value) -> (StatusCode, Value) {
        gate.handle(hook, body.to_string().as_bytes())
    }

    // The documented answers, as JSON values (key order is not part of the contract).
    fn answer(text: &str) -> Value {
        serde_json::from_str(text).unwrap()
    }
    const OK: &str = r#"{"result":"ok"}"#;
    const NOT_ALLOWED: &str = r#"{"result":{"error":"not_allowed"}}"#;

    fn register_body(username: &str, password: &str, client_id: &str) -> Value {
        json!({
            "peer_addr": "127.0.0.1",
            "peer_port": 8888,
            "username": username,
            "password": password,
            "mountpoint": "",
            "client_id": client_id,
            "clean_session": false
        })
    }

    fn register_m5_body(username: &str, password: &str, client_id: &str) -> Value {
        json!({
            "peer_addr": "127.0.0.1",
            "peer_port": 8888,
            "mountpoint": "",
            "client_id": client_id,
            "username": username,
            "password": password,
            "clean_start": true,
            "properties": {}
        })
    }

    fn segment(f: &Fixture, sequence: u64) -> String {
        let keys = EpochKeys::new([1; 32], [2; 32]);
        let header = SegmentHeader {
            stream: f.stream,
            epoch: 0,
            sequence,
            timestamp: 0,
        };
        base64::engine::general_purpose::STANDARD.encode(seal(&keys, &header, b"21.5").unwrap())
    }

    fn publish_body(f: &Fixture, client_id: &str, topic: &str, payload: &str) -> Value {
        let _ = f;
        json!({
            "username": "upload",
            "client_id": client_id,
            "mountpoint": "",
            "qos": 1,
            "topic": topic,
            "payload": payload,
            "retain": false
        })
    }

    #[test]
    fn seller_register_and_publish_contract() {
        let f = fixture();
        let gate = gate(&f);
        let seller = seller_id(&f);
        let token = to_hex_scale(&upload_token(&f, 1, 20));
        let (status, body) = call(
            &gate,
            "auth_on_register",
            register_body("upload", &token, &seller),
        );
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            body,
            answer(&format!(
                r#"{{"result":"ok","modifiers":{{"max_message_size":{}}}}}"#,
                SELLER_MAX_MESSAGE_SIZE
            ))
        );

        let topic = stream_topic(&f.stream);
        let (_, body) = call(
            &gate,
            "auth_on_publish",
            publish_body(&f, &seller, &topic, &segment(&f, 1)),
        );
        assert_eq!(body, answer(OK));
        // Retained publishes are accepted with retain cleared.
        let mut retained = publish_body(&f, &seller, &topic, &segment(&f, 2));
        retained["retain"] = json!(true);
        assert_eq!(
            call(&gate, "auth_on_publish", retained).1,
            answer(r#"{"result":"ok","modifiers":{"retain":false}}"#)
        );
        // m5 publish body.
        let m5 = json!({
            "username": "upload", "mountpoint": "", "client_id": seller, "qos": 1,
            "topic": topic, "payload": segment(&f, 3), "retain": false, "properties": {}
        });
        assert_eq!(call(&gate, "auth_on_publish_m5", m5).1, answer(OK));

        // Wrong topic, garbage payload, not base64, missing payload.
        let other = stream_topic(&sp_core::H256::repeat_byte(8));
        assert_eq!(
            call(
                &gate,
                "auth_on_publish",
                publish_body(&f, &seller, &other, &segment(&f, 4))
            )
            .1,
            answer(NOT_ALLOWED)
        );
        assert_eq!(
            call(
                &gate,
                "auth_on_publish",
                publish_body(&f, &seller, &topic, "Z2FyYmFnZQ==")
            )
            .1,
            answer(NOT_ALLOWED)
        );
        assert_eq!(
            call(
                &gate,
                "auth_on_publish",
                publish_body(&f, &seller, &topic, "***")
            )
            .1,
            answer(NOT_ALLOWED)
        );
        let mut missing = publish_body(&f, &seller, &topic, "");
        missing.as_object_mut().unwrap().remove("payload");
        assert_eq!(
            call(&gate, "auth_on_publish", missing).1,
            answer(NOT_ALLOWED)
        );
        // Unknown client.
        assert_eq!(
            call(
                &gate,
                "auth_on_publish",
                publish_body(&f, "nobody", &topic, &segment(&f, 5))
            )
            .1,
            answer(NOT_ALLOWED)
        );
        // The seller may not subscribe.
        let sub = json!({"client_id": seller, "mountpoint": "", "username": "upload", "topics": [{"topic": topic, "qos": 1}]});
        assert_eq!(call(&gate, "auth_on_subscribe", sub).1, answer(NOT_ALLOWED));
    }

    #[test]
    fn unassigned_seller_cannot_publish() {
        let f = fixture();
        let gate = gate(&f);
        let seller = seller_id(&f);
        let token = to_hex_scale(&upload_token(&f, 1, 20));
        assert_eq!(
            call(
                &gate,
                "auth_on_register_m5",
                register_m5_body("upload", &token, &seller)
            )
            .1["result"],
            "ok"
        );
        f.view
            .apply(ChainEvent::StreamUnassigned { stream: f.stream });
        let topic = stream_topic(&f.stream);
        assert_eq!(
            call(
                &gate,
                "auth_on_publish",
                publish_body(&f, &seller, &topic, &segment(&f, 1))
            )
            .1,
            answer(NOT_ALLOWED)
        );
        // And a fresh token is refused at register.
        let token = to_hex_scale(&upload_token(&f, 2, 20));
        assert_eq!(
            call(
                &gate,
                "auth_on_register",
                register_body("upload", &token, &seller)
            )
            .1,
            answer(NOT_ALLOWED)
        );
    }

    #[test]
    fn register_refusals() {
        let f = fixture();
        let gate = gate(&f);
        let seller = seller_id(&f);
        let token = to_hex_scale(&upload_token(&f, 1, 20));
        assert_eq!(
            call(
                &gate,
                "auth_on_register",
                register_body("upload", &token, &seller)
            )
            .1["result"],
            "ok"
        );
        // Replayed token.
        assert_eq!(
            call(
                &gate,
                "auth_on_register",
                register_body("upload", &token, &seller)
            )
            .1,
            answer(NOT_ALLOWED)
        );
        // Garbage token, unknown username, wrong operator password, no username.
        assert_eq!(
            call(
                &gate,
                "auth_on_register",
                register_body("upload", "0xdeadbeef", "c")
            )
            .1,
            answer(NOT_ALLOWED)
        );
        assert_eq!(
            call(
                &gate,
                "auth_on_register",
                register_body("mallory", "pw", "d")
            )
            .1,
            answer(NOT_ALLOWED)
        );
        assert_eq!(
            call(
                &gate,
                "auth_on_register",
                register_body("operator", "wrong", "e")
            )
            .1,
            answer(NOT_ALLOWED)
        );
        assert_eq!(
            call(
                &gate,
                "auth_on_register",
                register_body("operator", "s3cret", "e")
            )
            .1,
            answer(OK)
        );
        let anonymous = json!({"peer_addr": "127.0.0.1", "peer_port": 1, "mountpoint": "", "client_id": "x", "clean_session": true});
        assert_eq!(
            call(&gate, "auth_on_register", anonymous).1,
            answer(NOT_ALLOWED)
        );
        assert_eq!(
            call(
                &gate,
                "auth_on_register",
                json!({"username": null, "client_id": "y"})
            )
            .1,
            answer(NOT_ALLOWED)
        );
    }

    #[test]
    fn buyer_subscribe_contract_v3_and_m5() {
        let f = fixture();
        let gate = gate(&f);
        let topic = stream_topic(&f.stream);
        let other = stream_topic(&sp_core::H256::repeat_byte(8));

        // Without a purchase the access request is refused.
        let unpaid = to_hex_scale(&access_request(&f, 99, 1));
        assert_eq!(
            call(
                &gate,
                "auth_on_register",
                register_body("access", &unpaid, "fd-buyer-99")
            )
            .1,
            answer(NOT_ALLOWED)
        );

        let request = to_hex_scale(&access_request(&f, 1, 1));
        assert_eq!(
            call(
                &gate,
                "auth_on_register",
                register_body("access", &request, BUYER)
            )
            .1,
            answer(OK)
        );
        let sub = |topics: Value| json!({"client_id": BUYER, "mountpoint": "", "username": "access", "topics": topics});
        assert_eq!(
            call(
                &gate,
                "auth_on_subscribe",
                sub(json!([{"topic": topic, "qos": 1}]))
            )
            .1,
            answer(OK)
        );
        assert_eq!(
            call(
                &gate,
                "auth_on_subscribe",
                sub(json!([{"topic": topic, "qos": 1}, {"topic": other, "qos": 2}]))
            )
            .1,
            answer(&format!(
                r#"{{"result":"ok","topics":[{{"topic":"{topic}","qos":1}},{{"topic":"{other}","qos":128}}]}}"#
            ))
        );
        assert_eq!(
            call(
                &gate,
                "auth_on_subscribe",
                sub(json!([{"topic": "#", "qos": 0}]))
            )
            .1,
            answer(NOT_ALLOWED)
        );

        let m5 = |topics: Value| json!({"username": "access", "mountpoint": "", "client_id": BUYER, "topics": topics, "properties": {}});
        assert_eq!(
            call(
                &gate,
                "auth_on_subscribe_m5",
                m5(json!([{"topic": topic, "qos": 1}]))
            )
            .1,
            answer(OK)
        );
        assert_eq!(
            call(
                &gate,
                "auth_on_subscribe_m5",
                m5(json!([{"topic": other, "qos": 1}, {"topic": topic, "qos": 0}]))
            )
            .1,
            answer(&format!(
                r#"{{"modifiers":{{"topics":[{{"qos":135,"topic":"{other}"}},{{"qos":0,"topic":"{topic}"}}]}},"result":"ok"}}"#
            ))
        );

        // Buyers cannot publish.
        assert_eq!(
            call(
                &gate,
                "auth_on_publish",
                publish_body(&f, BUYER, &topic, &segment(&f, 1))
            )
            .1,
            answer(NOT_ALLOWED)
        );

        // Refund: the next subscribe is refused.
        f.view.apply(ChainEvent::PurchaseRefunded { purchase: 1 });
        assert_eq!(
            call(
                &gate,
                "auth_on_subscribe",
                sub(json!([{"topic": topic, "qos": 1}]))
            )
            .1,
            answer(NOT_ALLOWED)
        );
    }

    #[test]
    fn client_gone_forgets_the_session() {
        let f = fixture();
        let gate = gate(&f);
        let request = to_hex_scale(&access_request(&f, 1, 1));
        call(
            &gate,
            "auth_on_register",
            register_body("access", &request, BUYER),
        );
        assert_eq!(gate.connected_clients(), 1);
        assert_eq!(
            call(
                &gate,
                "on_client_gone",
                json!({"client_id": BUYER, "mountpoint": ""})
            )
            .1,
            json!({})
        );
        assert_eq!(gate.connected_clients(), 0);
    }

    #[tokio::test]
    async fn minted_credentials_work_until_revoked() {
        let f = fixture();
        let gate = gate(&f);
        let (principal, _) = f.auth.admit_access(&access_request(&f, 1, 1)).unwrap();
        let creds = gate.grant(&principal).await.unwrap();
        assert_eq!(creds.access, "subscribe");
        assert_eq!(
            call(
                &gate,
                "auth_on_register",
                register_body(&creds.username, "wrong", &creds.client_id)
            )
            .1,
            answer(NOT_ALLOWED)
        );
        assert_eq!(
            call(
                &gate,
                "auth_on_register",
                register_body(&creds.username, &creds.password, &creds.client_id)
            )
            .1,
            answer(OK)
        );
        gate.revoke(Revocation::Purchase(1)).await.unwrap();
        assert_eq!(gate.connected_clients(), 0);
        assert_eq!(
            call(
                &gate,
                "auth_on_register",
                register_body(&creds.username, &creds.password, &creds.client_id)
            )
            .1,
            answer(NOT_ALLOWED)
        );
    }

    fn stored_gate(f: &Fixture, store: &Arc<Store>) -> Arc<VernemqGate> {
        Arc::new(
            VernemqGate::new(f.auth.clone(), "operator".into(), "s3cret".into(), None)
                .with_store(store.clone())
                .unwrap(),
        )
    }

    #[tokio::test]
    async fn minted_logins_and_sessions_survive_a_restart_until_revoked() {
        let f = fixture();
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(&dir.path().join("gate.redb")).unwrap());
        let first = stored_gate(&f, &store);
        let (principal, _) = f.auth.admit_access(&access_request(&f, 1, 1)).unwrap();
        let creds = first.grant(&principal).await.unwrap();
        let register = register_body(&creds.username, &creds.password, &creds.client_id);
        assert_eq!(
            call(&first, "auth_on_register", register.clone()).1,
            answer(OK)
        );
        // A second login registers and goes away: nothing of its session is left.
        let other = first.grant(&principal).await.unwrap();
        let gone = register_body(&other.username, &other.password, &other.client_id);
        assert_eq!(call(&first, "auth_on_register", gone).1, answer(OK));
        call(
            &first,
            "on_client_gone",
            json!({"client_id": other.client_id, "mountpoint": ""}),
        );
        // The password is not stored, only its hash.
        let rows = store.gate_rows(GateTable::Logins).unwrap();
        assert_eq!(rows.len(), 2);
        assert!(rows
            .iter()
            .all(|(_, v)| !v.windows(48).any(|w| w == creds.password.as_bytes())));
        // Rows that do not decode are skipped and deleted.
        store
            .gate_put(GateTable::Logins, b"fd-bad", b"\x01")
            .unwrap();
        store.gate_put(GateTable::Sessions, b"\xff", b"").unwrap();
        drop(first);

        let second = stored_gate(&f, &store);
        assert_eq!(second.connected_clients(), 1);
        assert_eq!(store.gate_rows(GateTable::Logins).unwrap().len(), 2);
        assert_eq!(store.gate_rows(GateTable::Sessions).unwrap().len(), 1);
        // The session that stayed connected is known without a new login.
        let topic = stream_topic(&f.stream);
        let sub = json!({"client_id": creds.client_id, "mountpoint": "", "username": creds.username, "topics": [{"topic": topic, "qos": 1}]});
        assert_eq!(
            call(&second, "auth_on_subscribe", sub.clone()).1,
            answer(OK)
        );
        // Both minted logins still work, with their own client ids only.
        assert_eq!(
            call(&second, "auth_on_register", register.clone()).1,
            answer(OK)
        );
        assert_eq!(
            call(
                &second,
                "auth_on_register",
                register_body(&other.username, &other.password, &creds.client_id)
            )
            .1,
            answer(NOT_ALLOWED)
        );
        assert_eq!(
            call(
                &second,
                "auth_on_register",
                register_body(&creds.username, "wrong", &creds.client_id)
            )
            .1,
            answer(NOT_ALLOWED)
        );

        // Revoked after the restart: the session and the logins are gone, on disk too.
        second.revoke(Revocation::Purchase(1)).await.unwrap();
        assert_eq!(second.connected_clients(), 0);
        assert_eq!(
            call(&second, "auth_on_subscribe", sub).1,
            answer(NOT_ALLOWED)
        );
        assert!(store.gate_rows(GateTable::Logins).unwrap().is_empty());
        assert!(store.gate_rows(GateTable::Sessions).unwrap().is_empty());
        drop(second);
        let third = stored_gate(&f, &store);
        assert_eq!(
            call(&third, "auth_on_register", register).1,
            answer(NOT_ALLOWED)
        );
    }

    #[tokio::test]
    async fn a_principal_keeps_its_newest_logins_only() {
        let f = fixture();
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(&dir.path().join("gate.redb")).unwrap());
        let gate = stored_gate(&f, &store);
        let (principal, _) = f.auth.admit_access(&access_request(&f, 1, 1)).unwrap();
        let mut logins = Vec::new();
        for _ in 0..=MAX_LOGINS_PER_PRINCIPAL {
            logins.push(gate.grant(&principal).await.unwrap());
        }
        assert_eq!(
            store.gate_rows(GateTable::Logins).unwrap().len(),
            MAX_LOGINS_PER_PRINCIPAL
        );
        drop(gate);
        // The order survives a restart: the next login evicts the oldest left.
        let gate = stored_gate(&f, &store);
        logins.push(gate.grant(&principal).await.unwrap());
        let admitted: Vec<bool> = logins
            .iter()
            .map(|c| {
                call(
                    &gate,
                    "auth_on_register",
                    register_body(&c.username, &c.password, &c.client_id),
                )
                .1 == answer(OK)
            })
            .collect();
        let mut expected = vec![false, false];
        expected.extend([true; MAX_LOGINS_PER_PRINCIPAL]);
        assert_eq!(admitted, expected);
    }

    #[test]
    fn online_sessions_of_a_session_show_answer() {
        let body = br#"[{"type":"table","table":[
            {"client_id":"a","mountpoint":"","user":"operator","is_online":true},
            {"client_id":"b","mountpoint":"m","user":"fd-1","is_online":"true"},
            {"client_id":"c","mountpoint":"","user":"x","is_online":false},
            {"mountpoint":"","is_online":true}
        ]}]"#;
        let (rows, online) = online_sessions(body).unwrap();
        assert_eq!((rows, online.len()), (4, 2));
        assert_eq!(
            online.get(&(String::new(), "a".into())),
            Some(&Some("operator".into()))
        );
        assert_eq!(
            online.get(&("m".into(), "b".into())),
            Some(&Some("fd-1".into()))
        );
        assert!(online_sessions(b"{}").is_err());
        assert!(online_sessions(b"[]").is_err());
        assert_eq!(
            online_sessions(br#"{"type":"table","table":[]}"#)
                .unwrap()
                .0,
            0
        );
        assert!(online_sessions(b"not json").is_err());
    }

    #[tokio::test]
    async fn no_login_takes_another_client_id() {
        let f = fixture();
        let gate = gate(&f);
        let seller = seller_id(&f);
        // The daemon's ingest and the seller's publisher are connected.
        let ingest = "op-ingest-5eed";
        assert_eq!(
            call(
                &gate,
                "auth_on_register",
                register_body("operator", "s3cret", ingest)
            )
            .1,
            answer(OK)
        );
        let token = to_hex_scale(&upload_token(&f, 1, 20));
        assert_eq!(
            call(
                &gate,
                "auth_on_register",
                register_body("upload", &token, &seller)
            )
            .1["result"],
            "ok"
        );
        // A buyer with valid minted credentials tries every other id: refused each time.
        let (principal, _) = f.auth.admit_access(&access_request(&f, 1, 1)).unwrap();
        let creds = gate.grant(&principal).await.unwrap();
        assert_eq!(creds.client_id, creds.username);
        for id in [
            ingest,
            "op-control-5eed",
            seller.as_str(),
            "fd-buyer-2",
            BUYER,
            "x",
        ] {
            let (status, body) = call(
                &gate,
                "auth_on_register",
                register_body(&creds.username, &creds.password, id),
            );
            assert_eq!(
                (status, body),
                (StatusCode::OK, answer(NOT_ALLOWED)),
                "{id}"
            );
        }
        // The same with a token login (MQTT 5 too): only its principal's id.
        let request = to_hex_scale(&access_request(&f, 1, 2));
        assert_eq!(
            call(
                &gate,
                "auth_on_register_m5",
                register_m5_body("access", &request, ingest)
            )
            .1,
            answer(NOT_ALLOWED)
        );
        assert_eq!(
            call(
                &gate,
                "auth_on_register",
                register_body("access", &request, &seller)
            )
            .1,
            answer(NOT_ALLOWED)
        );
        // Nobody was displaced: the ingest and the publisher keep their sessions.
        assert_eq!(gate.principal_of("", ingest), Some(Principal::Operator));
        assert!(matches!(
            gate.principal_of("", &seller),
            Some(Principal::Seller { .. })
        ));
        assert_eq!(gate.connected_clients(), 2);
        // With its own id the buyer gets in.
        assert_eq!(
            call(
                &gate,
                "auth_on_register",
                register_body(&creds.username, &creds.password, &creds.client_id)
            )
            .1,
            answer(OK)
        );
        assert_eq!(gate.connected_clients(), 3);
    }

    #[tokio::test]
    async fn reconcile_drops_unjustified_sessions() {
        let f = fixture();
        let gate = gate(&f);
        let request = to_hex_scale(&access_request(&f, 1, 1));
        call(
            &gate,
            "auth_on_register",
            register_body("access", &request, BUYER),
        );
        assert_eq!(gate.reconcile(f.view.as_ref(), &f.me).await.unwrap(), 0);
        f.view.apply(ChainEvent::Finalized { number: 60 });
        assert_eq!(gate.reconcile(f.view.as_ref(), &f.me).await.unwrap(), 1);
        assert_eq!(gate.connected_clients(), 0);
    }

    #[tokio::test]
    async fn only_allowed_publishes_are_cacheable_and_hook_times_are_recorded() {
        let f = fixture();
        let metrics = Arc::new(Metrics::new());
        let cached = |secs| {
            Arc::new(
                VernemqGate::new(f.auth.clone(), "operator".into(), "s3cret".into(), None)
                    .with_metrics(metrics.clone())
                    .with_publish_cache(secs),
            )
        };
        let seller = seller_id(&f);
        let topic = stream_topic(&f.stream);
        // (status, cache-control, body) of one webhook call over HTTP.
        let post = |app: Router, hook: &str, body: Value| {
            let request = axum::http::Request::post(format!("/vernemq/{hook}"))
                .header("content-type", "application/json")
                .body(Body::from(body.to_string()))
                .unwrap();
            async move {
                let response = app.oneshot(request).await.unwrap();
                let status = response.status();
                let cache = response
                    .headers()
                    .get(CACHE_CONTROL)
                    .map(|v| v.to_str().unwrap().to_owned());
                let bytes = http_body_util::BodyExt::collect(response.into_body())
                    .await
                    .unwrap()
                    .to_bytes();
                (
                    status,
                    cache,
                    serde_json::from_slice::<Value>(&bytes).unwrap(),
                )
            }
        };

        let gate = cached(5);
        let app = gate.clone().router();
        let token = to_hex_scale(&upload_token(&f, 1, 20));
        let (status, cache, body) = post(
            app.clone(),
            "auth_on_register",
            register_body("upload", &token, &seller),
        )
        .await;
        assert_eq!(
            (status, cache, &body["result"]),
            (StatusCode::OK, None, &json!("ok"))
        );
        let publish = publish_body(&f, &seller, &topic, &segment(&f, 1));
        let (status, cache, body) = post(app.clone(), "auth_on_publish", publish.clone()).await;
        assert_eq!(
            (status, cache.as_deref(), body),
            (StatusCode::OK, Some("max-age=5"), answer(OK))
        );
        let mut m5 = publish.clone();
        m5["properties"] = json!({});
        let (_, cache, _) = post(app.clone(), "auth_on_publish_m5", m5).await;
        assert_eq!(cache.as_deref(), Some("max-age=5"));
        // Refusals, garbage and the other hooks are never cached.
        let (_, cache, body) = post(
            app.clone(),
            "auth_on_publish",
            publish_body(&f, &seller, &topic, "Z2FyYmFnZQ=="),
        )
        .await;
        assert_eq!((cache, body), (None, answer(NOT_ALLOWED)));
        let (status, cache, _) = post(app.clone(), "auth_on_publish", json!({"x": 1})).await;
        assert_eq!((status, cache), (StatusCode::BAD_REQUEST, None));
        let sub = json!({"client_id": seller, "mountpoint": "", "username": "upload", "topics": [{"topic": topic, "qos": 1}]});
        let (_, cache, _) = post(app.clone(), "auth_on_subscribe", sub).await;
        assert_eq!(cache, None);
        let (_, cache, body) = post(
            app.clone(),
            "auth_on_register",
            register_body("operator", "s3cret", "op"),
        )
        .await;
        assert_eq!((cache, body), (None, answer(OK)));

        // Off by default.
        let app = cached(0).router();
        let token = to_hex_scale(&upload_token(&f, 2, 20));
        let (_, cache, body) = post(
            app.clone(),
            "auth_on_register",
            register_body("upload", &token, &seller),
        )
        .await;
        assert_eq!((cache, &body["result"]), (None, &json!("ok")));
        let (_, cache, body) = post(app, "auth_on_publish", publish).await;
        assert_eq!((cache, body), (None, answer(OK)));

        // Every call was timed, by hook.
        let text = metrics.render();
        for (hook, calls) in [
            ("auth_on_register", 3),
            ("auth_on_publish", 4),
            ("auth_on_publish_m5", 1),
            ("auth_on_subscribe", 1),
        ] {
            let line =
                format!("fastdata_operator_webhook_seconds_count{{hook=\"{hook}\"}} {calls}\n");
            assert!(text.contains(&line), "{line}{text}");
        }
    }

    #[tokio::test]
    async fn http_routes_and_garbage() {
        let f = fixture();
        let app = gate(&f).router();
        let post = |uri: &str, hook: Option<&str>, body: &'static str| {
            let mut req = axum::http::Request::post(uri).header("content-type", "application/json");
            if let Some(h) = hook {
                req = req.header("vernemq-hook", h);
            }
            req.body(Body::from(body)).unwrap()
        };
        let read = |resp: Response| async move {
            let status = resp.status();
            let bytes = http_body_util::BodyExt::collect(resp.into_body())
                .await
                .unwrap()
                .to_bytes();
            (status, String::from_utf8(bytes.to_vec()).unwrap())
        };
        let body = r#"{"peer_addr":"127.0.0.1","peer_port":8888,"username":"operator","password":"s3cret","mountpoint":"","client_id":"op","clean_session":false}"#;
        let (status, text) = read(
            app.clone()
                .oneshot(post("/vernemq/auth_on_register", None, body))
                .await
                .unwrap(),
        )
        .await;
        assert_eq!((status, answer(&text)), (StatusCode::OK, answer(OK)));
        let (status, text) = read(
            app.clone()
                .oneshot(post("/vernemq", Some("auth_on_register"), body))
                .await
                .unwrap(),
        )
        .await;
        assert_eq!((status, answer(&text)), (StatusCode::OK, answer(OK)));
        // Garbage JSON, wrong shape, unknown hook.
        let (status, text) = read(
            app.clone()
                .oneshot(post("/vernemq/auth_on_publish", None, "{not json"))
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(
            answer(&text)["result"]["error"]
                .as_str()
                .unwrap()
                .starts_with("malformed auth_on_publish body"),
            "{text}"
        );
        let (status, _) = read(
            app.clone()
                .oneshot(post(
                    "/vernemq/auth_on_subscribe",
                    None,
                    r#"{"topics":"x"}"#,
                ))
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let (status, _) = read(
            app.clone()
                .oneshot(post("/vernemq/format_disk", None, "{}"))
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, _) = read(app.oneshot(post("/vernemq", None, body)).await.unwrap()).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
}

//! Mosquitto backend: the daemon drives the dynamic-security plugin at run time.
//!
//! Mosquitto cannot ask the daemon, so the daemon tells it. It connects as the dynsec admin
//! (the client created by `mosquitto_ctrl dynsec init`) and publishes JSON commands to
//! `$CONTROL/dynamic-security/v1`, reading answers on `$CONTROL/dynamic-security/v1/response`
//! (matched by `correlationData`). Per stream there are two roles:
//!
//! - `fd-pub-<stream hex>`: `publishClientSend` on `fast/<stream hex>/data`;
//! - `fd-sub-<stream hex>`: `subscribeLiteral` and `publishClientReceive` on the same topic;
//!
//! and per admitted principal one client: `fd-seller-<stream hex>` with the publish role, or
//! `fd-buyer-<purchase id>` with the subscribe role, each with a fresh random password handed
//! to the presenter of the token and bound to the client id equal to its username (dynsec's
//! `clientid`: the broker refuses the login with any other id, so it cannot take over another
//! client's session). Revocation deletes the client, which also disconnects it.
//! A buyer whose receipt window is used up ([`BrokerGate::apply_windows`]) loses its subscribe
//! role (`removeClientRole`, so nothing is queued for it either) and is disabled
//! (`disableClient`, which kicks it and refuses its logins); a receipt that catches up gives
//! the role back and enables it (`addClientRole`, `enableClient`): the same credentials work
//! again.
//! The default ACL access is set to deny publishing, receiving and subscribing, so a client
//! has exactly what its roles give it.
//!
//! On start-up [`MosquittoGate::adopt_existing`] takes over the `fd-*` clients a previous run
//! created (the plugin persists them, so their logins keep working across a restart of the
//! daemon and are still revoked when their grant ends), binds them to their client id
//! (`setClientId`, only for clients of versions that did not: the command kicks the client)
//! and learns their receipt-window state (role and `disabled`), so a restart disconnects no
//! client that is still justified; it deletes those the chain view no longer justifies.
//!
//! The control connection is driven by the supervised task [`CONTROL_TASK`]
//! ([`ControlConnection::run`]): a lost connection ends the run and the supervisor reconnects
//! with back-off; meanwhile commands fail at once with [`GateError::Connection`].

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use async_trait::async_trait;
use fastdata_primitives::{AccountId, PurchaseId, StreamId};
use rumqttc::{
    AsyncClient, Event, EventLoop, MqttOptions, Packet, QoS, TlsConfiguration, Transport,
};
use serde_json::{json, Value};
use sp_core::H256;
use tokio::sync::{oneshot, watch};

use super::{
    grant_scope, justified, principal_client_id, random_secret, BrokerGate, BrokerLogin, GateError,
    Revocation,
};
use crate::{
    auth::Principal,
    chain::ChainView,
    metrics::Metrics,
    supervisor::{TaskContext, TaskError},
};

/// The control connection's task name.
pub const CONTROL_TASK: &str = "broker-gate";

/// Topic the plugin reads commands from.
pub const CONTROL_TOPIC: &str = "$CONTROL/dynamic-security/v1";
/// Topic the plugin answers on.
pub const RESPONSE_TOPIC: &str = "$CONTROL/dynamic-security/v1/response";

/// How to reach the broker as the dynsec admin.
#[derive(Clone, Debug)]
pub struct MosquittoConfig {
    /// Broker host.
    pub host: String,
    /// Broker port.
    pub port: u16,
    /// Admin username.
    pub username: String,
    /// Admin password.
    pub password: String,
    /// Client id of the control connection.
    pub client_id: String,
    /// How long to wait for the plugin's answer.
    pub timeout: Duration,
    /// TLS settings to connect over TLS with (`broker.tls`); plain TCP without.
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

type Pending = Arc<Mutex<HashMap<String, oneshot::Sender<Value>>>>;

/// The Mosquitto dynamic-security backend.
pub struct MosquittoGate {
    client: AsyncClient,
    pending: Pending,
    next: AtomicU64,
    granted: Mutex<HashMap<String, Principal>>,
    /// Receipt-window state of buyer clients as last set on the broker (`true`: open); a
    /// client absent here (adopted from a previous run) gets its state set at the first
    /// decision.
    windows: Mutex<HashMap<String, bool>>,
    timeout: Duration,
    metrics: Arc<Metrics>,
    connected: watch::Receiver<bool>,
    target: String,
}

/// The gate's connection to the broker as the dynsec admin: what polls it, restarted by the
/// supervisor.
pub struct ControlConnection {
    eventloop: tokio::sync::Mutex<EventLoop>,
    client: AsyncClient,
    pending: Pending,
    connected: watch::Sender<bool>,
    target: String,
}

impl ControlConnection {
    /// One run: polls the connection (a new run reconnects) until the daemon stops (`Ok`);
    /// up once the response topic is subscribed; a connection error ends the run, failing
    /// the commands waiting for answers.
    pub async fn run(&self, mut ctx: TaskContext) -> Result<(), TaskError> {
        let mut eventloop = self.eventloop.lock().await;
        let result = loop {
            let polled = tokio::select! {
                _ = ctx.stopped() => break Ok(()),
                polled = eventloop.poll() => polled,
            };
            match polled {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    if let Err(e) = self.client.try_subscribe(RESPONSE_TOPIC, QoS::AtLeastOnce) {
                        tracing::warn!("dynsec: cannot subscribe to responses: {e}");
                    }
                }
                Ok(Event::Incoming(Packet::SubAck(_))) => {
                    self.connected.send_replace(true);
                    ctx.ready();
                }
                Ok(Event::Incoming(Packet::Publish(publish)))
                    if publish.topic == RESPONSE_TOPIC =>
                {
                    dispatch(&self.pending, &publish.payload);
                }
                Ok(_) => {}
                Err(e) => {
                    break Err(TaskError::transient(format!(
                        "dynsec control connection to {}: {e}",
                        self.target
                    )))
                }
            }
        };
        self.connected.send_replace(false);
        // Waiting commands fail now rather than at their timeout.
        lock(&self.pending).clear();
        result
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Username of the broker client of `principal`; its login is bound to the same client id.
pub fn client_name(principal: &Principal) -> Option<String> {
    principal_client_id(principal)
}

fn pub_role(stream: &StreamId) -> String {
    format!("fd-pub-{}", hex::encode(stream.as_bytes()))
}

fn sub_role(stream: &StreamId) -> String {
    format!("fd-sub-{}", hex::encode(stream.as_bytes()))
}

fn acl(role: &str, acltype: &str, topic: &str) -> Value {
    json!({ "command": "addRoleACL", "rolename": role, "acltype": acltype, "topic": topic, "priority": 0, "allow": true })
}

/// Commands are sent in order; `must_succeed` marks the ones whose error fails the grant
/// (the others are idempotent set-ups whose "already exists"/"not found" errors are expected).
struct Step {
    command: Value,
    must_succeed: bool,
}

fn step(command: Value, must_succeed: bool) -> Step {
    Step {
        command,
        must_succeed,
    }
}

impl MosquittoGate {
    /// The gate and its control connection (not connected yet: run the connection under the
    /// supervisor, then [`Self::initialize`]).
    pub fn new(
        config: MosquittoConfig,
        metrics: Arc<Metrics>,
    ) -> (Arc<Self>, Arc<ControlConnection>) {
        let mut options =
            MqttOptions::new(config.client_id.clone(), config.host.clone(), config.port);
        options.set_credentials(config.username.clone(), config.password.clone());
        if let Some(tls) = &config.tls {
            options.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
                tls.clone(),
            )));
        }
        options.set_keep_alive(Duration::from_secs(30));
        options.set_clean_session(true);
        options.set_max_packet_size(1024 * 1024, 1024 * 1024);
        let (client, eventloop) = AsyncClient::new(options, 256);
        let pending: Pending = Arc::default();
        let (connected_tx, connected) = watch::channel(false);
        let target = format!("{}:{} as {}", config.host, config.port, config.username);
        let connection = Arc::new(ControlConnection {
            eventloop: tokio::sync::Mutex::new(eventloop),
            client: client.clone(),
            pending: pending.clone(),
            connected: connected_tx,
            target: target.clone(),
        });
        let gate = Arc::new(Self {
            client,
            pending,
            next: AtomicU64::new(1),
            granted: Mutex::new(HashMap::new()),
            windows: Mutex::new(HashMap::new()),
            timeout: config.timeout,
            metrics,
            connected,
            target,
        });
        (gate, connection)
    }

    /// Waits (up to the command timeout) for the control connection and sets the default
    /// ACL access to deny.
    pub async fn initialize(&self) -> Result<(), GateError> {
        let mut connected = self.connected.clone();
        tokio::time::timeout(self.timeout, connected.wait_for(|up| *up))
            .await
            .map_err(|_| GateError::Connection(format!("no connection to {}", self.target)))?
            .map_err(|e| GateError::Connection(e.to_string()))?;
        self.run(vec![step(
            json!({
                "command": "setDefaultACLAccess",
                "acls": [
                    { "acltype": "publishClientSend", "allow": false },
                    { "acltype": "publishClientReceive", "allow": false },
                    { "acltype": "subscribe", "allow": false },
                    { "acltype": "unsubscribe", "allow": true }
                ]
            }),
            true,
        )])
        .await
    }

    /// Sends `commands` in one control message and returns the plugin's answers in order.
    pub async fn command(&self, mut commands: Vec<Value>) -> Result<Vec<Value>, GateError> {
        if !*self.connected.borrow() {
            return Err(GateError::Connection(format!(
                "not connected to {}",
                self.target
            )));
        }
        let mut waiting = Vec::with_capacity(commands.len());
        {
            let mut pending = lock(&self.pending);
            for command in &mut commands {
                let id = format!("fd-{}", self.next.fetch_add(1, Ordering::Relaxed));
                command["correlationData"] = json!(id);
                let (tx, rx) = oneshot::channel();
                pending.insert(id.clone(), tx);
                waiting.push((id, rx));
            }
        }
        let payload = json!({ "commands": commands }).to_string();
        if let Err(e) = self
            .client
            .publish(CONTROL_TOPIC, QoS::AtLeastOnce, false, payload)
            .await
        {
            self.forget(&waiting);
            return Err(GateError::Connection(e.to_string()));
        }
        let mut answers = Vec::with_capacity(waiting.len());
        let deadline = tokio::time::Instant::now() + self.timeout;
        for (id, rx) in waiting.iter_mut() {
            match tokio::time::timeout_at(deadline, rx).await {
                Ok(Ok(answer)) => answers.push(answer),
                Ok(Err(_)) => {
                    self.forget(&waiting);
                    return Err(GateError::Connection(format!(
                        "lost the connection to {}",
                        self.target
                    )));
                }
                Err(_) => {
                    lock(&self.pending).remove(id);
                    self.forget(&waiting);
                    return Err(GateError::Timeout);
                }
            }
        }
        Ok(answers)
    }

    fn forget(&self, waiting: &[(String, oneshot::Receiver<Value>)]) {
        let mut pending = lock(&self.pending);
        for (id, _) in waiting {
            pending.remove(id);
        }
    }

    async fn run(&self, steps: Vec<Step>) -> Result<(), GateError> {
        let must: Vec<bool> = steps.iter().map(|s| s.must_succeed).collect();
        let answers = self
            .command(steps.into_iter().map(|s| s.command).collect())
            .await?;
        for (answer, must_succeed) in answers.iter().zip(must) {
            if let Some(error) = answer.get("error").and_then(Value::as_str) {
                let command = answer
                    .get("command")
                    .and_then(Value::as_str)
                    .unwrap_or("?")
                    .to_owned();
                if must_succeed {
                    return Err(GateError::Refused {
                        command,
                        message: error.to_owned(),
                    });
                }
                tracing::debug!(%command, "dynsec (expected): {error}");
            }
        }
        Ok(())
    }

    async fn delete_clients(&self, names: Vec<String>) -> Result<(), GateError> {
        if names.is_empty() {
            return Ok(());
        }
        let steps = names
            .iter()
            .map(|n| step(json!({ "command": "deleteClient", "username": n }), false))
            .collect();
        let result = self.run(steps).await;
        self.metrics.gate("revoke", result.is_ok());
        let mut granted = lock(&self.granted);
        let mut windows = lock(&self.windows);
        for n in &names {
            granted.remove(n);
            windows.remove(n);
        }
        result
    }

    /// Usernames of every client the plugin knows.
    pub async fn list_clients(&self) -> Result<Vec<String>, GateError> {
        Ok(self
            .list_clients_verbose()
            .await?
            .into_iter()
            .map(|c| c.username)
            .collect())
    }

    /// Every client the plugin knows, with its client id, roles and state (entries that do
    /// not parse are skipped).
    async fn list_clients_verbose(&self) -> Result<Vec<DynsecClient>, GateError> {
        let answers = self
            .command(vec![
                json!({ "command": "listClients", "verbose": true, "count": -1, "offset": 0 }),
            ])
            .await?;
        let clients = answers
            .first()
            .and_then(|a| a.pointer("/data/clients"))
            .and_then(Value::as_array)
            .map(|list| list.iter().filter_map(DynsecClient::parse).collect())
            .unwrap_or_default();
        Ok(clients)
    }

    /// Takes over the `fd-*` clients of a previous run: keeps those the view justifies,
    /// deletes the others. Returns how many were deleted.
    pub async fn adopt_existing(
        &self,
        view: &dyn ChainView,
        me: &AccountId,
    ) -> Result<usize, GateError> {
        let (mut stale, mut unbound) = (Vec::new(), Vec::new());
        for client in self.list_clients_verbose().await? {
            let name = client.username.clone();
            let principal = if let Some(hex_id) = name.strip_prefix("fd-seller-") {
                let mut id = [0u8; 32];
                hex::decode_to_slice(hex_id, &mut id)
                    .ok()
                    .and_then(|()| view.stream(&H256(id)))
                    .map(|s| Principal::Seller {
                        stream: s.stream,
                        seller: s.seller,
                        epoch: s.epoch,
                    })
            } else if let Some(id) = name.strip_prefix("fd-buyer-") {
                id.parse::<PurchaseId>()
                    .ok()
                    .and_then(|id| view.purchase(id))
                    .map(|p| Principal::Buyer {
                        purchase: p.id,
                        stream: p.stream,
                        buyer: p.buyer,
                    })
            } else {
                continue;
            };
            match principal {
                Some(p) if justified(view, me, &p) => {
                    if client.clientid.as_deref() != Some(name.as_str()) {
                        unbound.push(name.clone());
                    }
                    if let Principal::Buyer { stream, .. } = &p {
                        let open = !client.disabled && client.roles.contains(&sub_role(stream));
                        lock(&self.windows).insert(name.clone(), open);
                    }
                    lock(&self.granted).insert(name, p);
                }
                _ => stale.push(name),
            }
        }
        // Clients created before logins were bound to their client id get bound now.
        let bind = unbound
            .iter()
            .map(|n| {
                step(
                    json!({ "command": "setClientId", "username": n, "clientid": n }),
                    true,
                )
            })
            .collect::<Vec<_>>();
        if !bind.is_empty() {
            self.run(bind).await?;
        }
        let n = stale.len();
        self.delete_clients(stale).await?;
        Ok(n)
    }
}

/// A client as `listClients` with `verbose` describes it.
struct DynsecClient {
    username: String,
    clientid: Option<String>,
    roles: Vec<String>,
    disabled: bool,
}

impl DynsecClient {
    /// A verbose entry (an object), or a bare username (a string).
    fn parse(entry: &Value) -> Option<Self> {
        if let Some(username) = entry.as_str() {
            return Some(Self {
                username: username.to_owned(),
                clientid: None,
                roles: Vec::new(),
                disabled: false,
            });
        }
        Some(Self {
            username: entry.get("username")?.as_str()?.to_owned(),
            clientid: entry
                .get("clientid")
                .and_then(Value::as_str)
                .map(str::to_owned),
            roles: entry
                .get("roles")
                .and_then(Value::as_array)
                .map(|roles| {
                    roles
                        .iter()
                        .filter_map(|r| r.get("rolename").and_then(Value::as_str))
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default(),
            disabled: entry
                .get("disabled")
                .and_then(Value::as_bool)
                .unwrap_or(false),
        })
    }
}

fn dispatch(pending: &Pending, payload: &[u8]) {
    let Ok(message) = serde_json::from_slice::<Value>(payload) else {
        tracing::warn!("dynsec: unparseable response");
        return;
    };
    let Some(responses) = message.get("responses").and_then(Value::as_array) else {
        return;
    };
    let mut pending = lock(pending);
    for response in responses {
        if let Some(id) = response.get("correlationData").and_then(Value::as_str) {
            if let Some(tx) = pending.remove(id) {
                let _ = tx.send(response.clone());
            }
        }
    }
}

#[async_trait]
impl BrokerGate for MosquittoGate {
    fn backend(&self) -> &'static str {
        "mosquitto"
    }

    async fn grant(&self, principal: &Principal) -> Result<BrokerLogin, GateError> {
        let (topic, access) = grant_scope(principal)?;
        let username = client_name(principal).ok_or(GateError::NothingToGrant)?;
        let password = random_secret(24)?;
        let (role, acls) = match principal {
            Principal::Seller { stream, .. } => (pub_role(stream), vec!["publishClientSend"]),
            Principal::Buyer { stream, .. } => (
                sub_role(stream),
                vec!["subscribeLiteral", "publishClientReceive"],
            ),
            Principal::Operator => return Err(GateError::NothingToGrant),
        };
        let mut steps = vec![step(
            json!({ "command": "createRole", "rolename": role }),
            false,
        )];
        for acltype in acls {
            steps.push(step(acl(&role, acltype, &topic), false));
        }
        // A new grant replaces the previous client of the same principal (and disconnects it).
        steps.push(step(
            json!({ "command": "deleteClient", "username": username }),
            false,
        ));
        steps.push(step(
            // Bound to its client id: this login cannot take over any other session.
            json!({ "command": "createClient", "username": username, "password": password, "clientid": username }),
            true,
        ));
        steps.push(step(json!({ "command": "addClientRole", "username": username, "rolename": role, "priority": 0 }), true));
        let result = self.run(steps).await;
        self.metrics.gate("grant", result.is_ok());
        result?;
        lock(&self.granted).insert(username.clone(), principal.clone());
        // A fresh client has its role and is enabled; the window enforcement re-checks it.
        lock(&self.windows).insert(username.clone(), true);
        tracing::info!(%username, ?principal, "dynsec client granted");
        Ok(BrokerLogin {
            client_id: username.clone(),
            username,
            password,
            topic,
            access,
        })
    }

    async fn revoke(&self, revocation: Revocation) -> Result<(), GateError> {
        let names: Vec<String> = {
            let granted = lock(&self.granted);
            let mut names: Vec<String> = granted
                .iter()
                .filter(|(_, p)| match (revocation, p) {
                    (Revocation::Purchase(id), Principal::Buyer { purchase, .. }) => {
                        *purchase == id
                    }
                    (
                        Revocation::Stream(id),
                        Principal::Buyer { stream, .. } | Principal::Seller { stream, .. },
                    ) => *stream == id,
                    _ => false,
                })
                .map(|(n, _)| n.clone())
                .collect();
            // Also the deterministic names, in case the grant predates this process.
            match revocation {
                Revocation::Purchase(id) => names.push(format!("fd-buyer-{id}")),
                Revocation::Stream(id) => {
                    names.push(format!("fd-seller-{}", hex::encode(id.as_bytes())))
                }
            }
            names.sort();
            names.dedup();
            names
        };
        tracing::info!(?revocation, clients = names.len(), "dynsec clients revoked");
        self.delete_clients(names).await
    }

    async fn reconcile(&self, view: &dyn ChainView, me: &AccountId) -> Result<usize, GateError> {
        let stale: Vec<String> = lock(&self.granted)
            .iter()
            .filter(|(_, p)| !justified(view, me, p))
            .map(|(n, _)| n.clone())
            .collect();
        let n = stale.len();
        self.delete_clients(stale).await?;
        Ok(n)
    }

    fn live_purchases(&self) -> Vec<PurchaseId> {
        lock(&self.granted)
            .values()
            .filter_map(|p| match p {
                Principal::Buyer { purchase, .. } => Some(*purchase),
                _ => None,
            })
            .collect()
    }

    async fn apply_windows(&self, decisions: &[(PurchaseId, bool)]) -> Result<usize, GateError> {
        let changes: Vec<(String, StreamId, bool)> = {
            let granted = lock(&self.granted);
            let windows = lock(&self.windows);
            decisions
                .iter()
                .filter_map(|(purchase, open)| {
                    let username = format!("fd-buyer-{purchase}");
                    let Some(Principal::Buyer { stream, .. }) = granted.get(&username) else {
                        return None;
                    };
                    (windows.get(&username) != Some(open)).then_some((username, *stream, *open))
                })
                .collect()
        };
        let mut changed = 0;
        for (username, stream, open) in changes {
            let role = sub_role(&stream);
            // Closing: the role goes first, so nothing is queued for the client once it is
            // kicked; opening: the role is back before the client can log in again.
            let steps = if open {
                vec![
                    step(
                        json!({ "command": "addClientRole", "username": username, "rolename": role, "priority": 0 }),
                        false,
                    ),
                    step(
                        json!({ "command": "enableClient", "username": username }),
                        true,
                    ),
                ]
            } else {
                vec![
                    step(
                        json!({ "command": "removeClientRole", "username": username, "rolename": role }),
                        false,
                    ),
                    step(
                        json!({ "command": "disableClient", "username": username }),
                        true,
                    ),
                ]
            };
            let result = self.run(steps).await;
            self.metrics.gate(
                if open { "window_open" } else { "window_close" },
                result.is_ok(),
            );
            match result {
                Ok(()) => {
                    tracing::info!(%username, open, "receipt window applied on the broker");
                    lock(&self.windows).insert(username, open);
                    changed += 1;
                }
                // E.g. the client was deleted meanwhile: tried again at the next decision.
                Err(e @ GateError::Refused { .. }) => {
                    tracing::warn!(%username, open, "receipt window not applied: {e}")
                }
                Err(e) => return Err(e),
            }
        }
        Ok(changed)
    }
}

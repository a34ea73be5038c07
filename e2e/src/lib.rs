//! The whole FAST DATA marketplace on one machine, for the end-to-end tests and the demo: a
//! running node (started by `scripts/test` or `scripts/demo`), [`Network`] of Mosquitto (or
//! VerneMQ, [`vernemq`]) brokers each with its `fastdata-operator` daemon (real processes that
//! register on chain, follow finalized blocks and claim), and sellers and buyers acting
//! through the SDK ([`Trader`]).

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{bail, Context};
pub mod vernemq;

use fastdata_primitives::{
    api_market::OperatorStatus, envelope::EpochKeys, escrow::PurchaseState, AccountId, Balance,
    BlockNumber, EpochIndex, PurchaseId, Sequence, StreamId,
};
use fastdata_sdk::{
    buyer::Purchase, chain::fastdata, keystore::Keystore, operator::OperatorEndpoint,
    publish::StreamPublisher, receive::Summary, Account, FastData,
};
use fastdata_test_support::mosquitto::{free_port, Mosquitto};
use sp_core::H256;
use vernemq::{Vernemq, VernemqCluster};

/// 1 FAST in planck.
pub use fastdata_primitives::UNIT;
/// Stake each operator holds.
pub const OPERATOR_STAKE: Balance = 200 * UNIT;
/// Price per MB each operator asks.
pub const OPERATOR_PRICE_PER_MB: Balance = UNIT / 10;
const BROKER_PASSWORD: &str = "fastdata-e2e-admin";

/// The node URL: `FASTDATA_WS`, or the local default.
pub fn node_url() -> String {
    std::env::var("FASTDATA_WS").unwrap_or_else(|_| fastdata_sdk::DEFAULT_URL.to_string())
}

/// The `fastdata-operator` binary (see [`binary`]).
pub fn operator_binary() -> anyhow::Result<PathBuf> {
    binary("fastdata-operator")
}

/// A binary of this workspace: `$FASTDATA_BIN/<name>`, or next to the running executable (or
/// one level up, for test executables in `deps/`).
pub fn binary(name: &str) -> anyhow::Result<PathBuf> {
    if let Ok(dir) = std::env::var("FASTDATA_BIN") {
        return Ok(PathBuf::from(dir).join(name));
    }
    let exe = std::env::current_exe()?;
    let mut dir = exe.parent().map(Path::to_path_buf);
    while let Some(d) = dir {
        let candidate = d.join(name);
        if candidate.exists() {
            return Ok(candidate);
        }
        dir = d.parent().map(Path::to_path_buf);
    }
    bail!(
        "{name} not found next to {}; set FASTDATA_BIN",
        exe.display()
    )
}

/// Sends `amount` from `from` to `to` unless `to` already has at least `amount`.
pub async fn fund(from: &FastData, to: &AccountId, amount: Balance) -> anyhow::Result<()> {
    if from.free_balance(to).await? < amount {
        from.transfer(to, amount)
            .await
            .with_context(|| format!("funding {to}"))?;
    }
    Ok(())
}

/// Which broker an operator runs beside its daemon.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum BrokerKind {
    /// Mosquitto with the dynamic-security plugin (the daemon pushes grants).
    Mosquitto,
    /// VerneMQ with webhooks (the daemon answers them), the release `scripts/setup` builds.
    Vernemq,
}

/// A running broker.
pub enum BrokerProcess {
    /// Mosquitto.
    Mosquitto(Mosquitto),
    /// VerneMQ.
    Vernemq(Vernemq),
    /// A VerneMQ cluster; the daemon's config lists every node (`[broker] hosts`) and the
    /// operator's on-chain broker URL names the first.
    VernemqCluster(VernemqCluster),
}

/// An operator's broker.
pub struct Broker {
    /// Its MQTT port on 127.0.0.1.
    pub port: u16,
    /// The daemon's broker password (Mosquitto: the dynsec admin's).
    pub admin_password: String,
    /// The process.
    pub process: BrokerProcess,
}

/// One storage operator: a broker (Mosquitto or VerneMQ) and a `fastdata-operator` process.
pub struct OperatorNode {
    /// The operator account.
    pub account: Account,
    /// Its endpoints as registered on chain.
    pub endpoint: OperatorEndpoint,
    /// Its broker.
    pub broker: Broker,
    dir: PathBuf,
    config: PathBuf,
    child: Option<Child>,
}

impl OperatorNode {
    /// Starts an operator with `kind` broker; VerneMQ with `nodes` > 1 is a cluster of that
    /// many nodes.
    fn start(
        dir: &Path,
        seed: [u8; 32],
        url: &str,
        kind: BrokerKind,
        nodes: usize,
    ) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let account = Account::from_seed(&seed);
        let http_port = free_port()?;
        let (broker, broker_section) = match kind {
            BrokerKind::Mosquitto => {
                let mosquitto =
                    Mosquitto::start(&dir.join("broker"), free_port()?, BROKER_PASSWORD)?;
                let section = format!(
                    "[broker]\nkind = \"mosquitto\"\nport = {}\nusername = \"admin\"\n\
                     password = \"{BROKER_PASSWORD}\"\nclient_id_prefix = \"op-{http_port}\"\n",
                    mosquitto.port
                );
                (
                    (mosquitto.port, BrokerProcess::Mosquitto(mosquitto)),
                    section,
                )
            }
            BrokerKind::Vernemq if nodes > 1 => {
                let webhooks = std::net::SocketAddr::from(([127, 0, 0, 1], free_port()?));
                let cluster = VernemqCluster::start(&dir.join("vernemq"), webhooks, nodes)?;
                let hosts: Vec<String> = cluster
                    .nodes
                    .iter()
                    .map(|n| format!("\"127.0.0.1:{}\"", n.port))
                    .collect();
                // The HTTP API acts cluster-wide: the last node's (the tests kill the first).
                let api = cluster.nodes.last().context("an empty cluster")?;
                let section = format!(
                    "[broker]\nkind = \"vernemq\"\nhosts = [{}]\nusername = \"operator\"\n\
                     password = \"{BROKER_PASSWORD}\"\nclient_id_prefix = \"op-{http_port}\"\n[vernemq]\nwebhook_listen = \"{webhooks}\"\n\
                     api_url = \"{}\"\napi_key = \"{}\"\n",
                    hosts.join(", "),
                    api.api_url(),
                    api.api_key
                );
                let port = cluster.nodes[0].port;
                ((port, BrokerProcess::VernemqCluster(cluster)), section)
            }
            BrokerKind::Vernemq => {
                let webhooks = std::net::SocketAddr::from(([127, 0, 0, 1], free_port()?));
                let vernemq = Vernemq::start(&dir.join("vernemq"), webhooks)?;
                let section = format!(
                    "[broker]\nkind = \"vernemq\"\nport = {}\nusername = \"operator\"\n\
                     password = \"{BROKER_PASSWORD}\"\nclient_id_prefix = \"op-{http_port}\"\n[vernemq]\nwebhook_listen = \"{webhooks}\"\n\
                     api_url = \"{}\"\napi_key = \"{}\"\n",
                    vernemq.port,
                    vernemq.api_url(),
                    vernemq.api_key
                );
                ((vernemq.port, BrokerProcess::Vernemq(vernemq)), section)
            }
        };
        let broker = Broker {
            port: broker.0,
            admin_password: BROKER_PASSWORD.to_owned(),
            process: broker.1,
        };
        let endpoint = OperatorEndpoint {
            account: account.account_id(),
            broker_url: format!("mqtt://127.0.0.1:{}", broker.port),
            http_url: format!("http://127.0.0.1:{http_port}"),
        };
        let config = dir.join("operator.toml");
        std::fs::write(
            &config,
            format!(
                r#"[operator]
suri = "0x{seed}"
data_dir = "{data}"
[http]
listen = "127.0.0.1:{http_port}"
{broker_section}[chain]
url = "{url}"
[chain.register]
stake = "{OPERATOR_STAKE}"
broker_url = "{broker_url}"
http_url = "{http_url}"
price_per_mb = "{OPERATOR_PRICE_PER_MB}"
[serving]
receipt_window = 32
[claims]
interval_secs = 2
batch = 16
"#,
                seed = hex::encode(seed),
                data = dir.join("data").display(),
                broker_url = endpoint.broker_url,
                http_url = endpoint.http_url,
            ),
        )?;
        let mut node = Self {
            account,
            endpoint,
            broker,
            dir: dir.to_path_buf(),
            config,
            child: None,
        };
        node.spawn()?;
        Ok(node)
    }

    fn spawn(&mut self) -> anyhow::Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("operator.log"))?;
        let child = Command::new(operator_binary()?)
            .arg("--config")
            .arg(&self.config)
            .env("RUST_LOG", "info,fastdata_operator=debug")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("cannot start fastdata-operator")?;
        self.child = Some(child);
        Ok(())
    }

    /// Kills the daemon with SIGKILL (no shutdown at all).
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the daemon again on the same data directory.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.kill9();
        self.spawn()
    }

    /// The daemon's configuration, as it reads it.
    pub fn config(&self) -> anyhow::Result<fastdata_operator::config::Config> {
        fastdata_operator::config::Config::load(&self.config)
    }

    /// The daemon's log file.
    pub fn log(&self) -> PathBuf {
        self.dir.join("operator.log")
    }

    /// Whether the daemon process is running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    /// Kills the broker (Mosquitto only): clients lose their connections and sessions.
    pub fn kill_broker(&mut self) -> anyhow::Result<()> {
        match &mut self.broker.process {
            BrokerProcess::Mosquitto(mosquitto) => mosquitto.kill(),
            BrokerProcess::Vernemq(_) | BrokerProcess::VernemqCluster(_) => {
                bail!("only a Mosquitto broker is killed and restarted")
            }
        }
        Ok(())
    }

    /// Starts the broker killed by [`Self::kill_broker`] again, on the same port with its
    /// state (the dynsec logins).
    pub fn restart_broker(&mut self) -> anyhow::Result<()> {
        let BrokerProcess::Mosquitto(old) = &mut self.broker.process else {
            bail!("only a Mosquitto broker is killed and restarted");
        };
        old.kill();
        let dir = old.dir.clone();
        self.broker.process = BrokerProcess::Mosquitto(Mosquitto::start(
            &dir,
            self.broker.port,
            &self.broker.admin_password,
        )?);
        Ok(())
    }
}

impl Drop for OperatorNode {
    fn drop(&mut self) {
        self.stop();
    }
}

impl OperatorNode {
    /// Stops the daemon: SIGTERM for a graceful stop, SIGKILL if it lingers past 5 s.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SIGTERM for a graceful stop, then SIGKILL if it lingers.
            let _ = Command::new("kill")
                .arg(child.id().to_string())
                .stderr(Stdio::null())
                .status();
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A 32-byte seed derived from `label` (the same label gives the same account), or a random
/// one when `label` is `None`.
pub fn seed(label: Option<&str>) -> anyhow::Result<[u8; 32]> {
    Ok(match label {
        Some(label) => sp_io::hashing::blake2_256(label.as_bytes()),
        None => Account::generate()?.1,
    })
}

/// The account of [`seed`]`(label)`.
pub fn seeded_account(label: Option<&str>) -> anyhow::Result<Account> {
    Ok(Account::from_seed(&seed(label)?))
}

/// Storage operators for one node.
pub struct Network {
    /// Alice (sudo, dev issuer), who funds everyone.
    pub alice: FastData,
    /// The operators.
    pub operators: Vec<OperatorNode>,
    /// The node's URL.
    url: String,
    /// Fresh operator accounts (no `labels`) leave the operator set when the network is
    /// dropped without [`Self::stop`] (a failed test), so later tests on the same chain are
    /// not assigned operators that are gone.
    leave_on_drop: bool,
}

impl Drop for Network {
    fn drop(&mut self) {
        if self.operators.is_empty() {
            return;
        }
        for op in &mut self.operators {
            op.stop();
        }
        if std::thread::panicking() {
            keep_logs(&self.operators);
        }
        if !self.leave_on_drop {
            return;
        }
        // On a thread with its own runtime and connection: the test's runtime may be the one
        // unwinding.
        let url = self.url.clone();
        let accounts: Vec<Account> = self.operators.iter().map(|o| o.account.clone()).collect();
        let left = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            runtime.block_on(async {
                let alice = FastData::connect(
                    &url,
                    Account::from_suri("//Alice").map_err(|e| e.to_string())?,
                )
                .await
                .map_err(|e| e.to_string())?;
                let failed =
                    tokio::time::timeout(Duration::from_secs(60), leave_all(&alice, &accounts))
                        .await
                        .map_err(|_| "timed out".to_owned())?;
                if failed.is_empty() {
                    Ok(())
                } else {
                    Err(failed.join("; "))
                }
            })
        })
        .join();
        if let Ok(Err(e)) = left {
            eprintln!("operators of a dropped test network did not leave: {e}");
        }
    }
}

/// Copies the operators' logs and configurations (daemon and broker) to
/// `$FASTDATA_HOME/logs/failed-e2e/<pid>-<time>/operator-<i>` when a test fails: its own
/// directory is a temporary one, gone with it.
fn keep_logs(operators: &[OperatorNode]) {
    let home = std::env::var_os("FASTDATA_HOME").unwrap_or_else(|| "/var/tmp/fastdata".into());
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let base = PathBuf::from(home)
        .join("logs/failed-e2e")
        .join(format!("{}-{stamp}", std::process::id()));
    for (i, op) in operators.iter().enumerate() {
        let to = base.join(format!("operator-{i}"));
        let copied = std::fs::create_dir_all(&to).and_then(|()| {
            Command::new("find")
                .arg(".")
                .args([
                    "(", "-name", "*.log*", "-o", "-name", "*.toml", "-o", "-name",
                ])
                .args([
                    "*.conf",
                    ")",
                    "-type",
                    "f",
                    "-exec",
                    "cp",
                    "--parents",
                    "{}",
                ])
                .arg(&to)
                .arg(";")
                .current_dir(&op.dir)
                .status()
        });
        match copied {
            Ok(status) if status.success() => {
                eprintln!("operator {i}'s logs kept in {}", to.display())
            }
            other => eprintln!("operator {i}'s logs not kept: {other:?}"),
        }
    }
}

/// Each of `operators` leaves the operator set on chain; returns the failures.
async fn leave_all(alice: &FastData, operators: &[Account]) -> Vec<String> {
    let mut failed = Vec::new();
    for account in operators {
        let chain = alice.as_account(account.clone());
        // A transaction the stopped daemon sent last (a claim, a heartbeat) may still be in
        // the pool, or be dropped there and leave the nonce the SDK picked invalid: the SDK
        // then reads the nonce again, so try again shortly.
        let mut attempt = 0;
        loop {
            match chain.submit(fastdata::tx().operators().leave()).await {
                Ok(_) => break,
                Err(e) if attempt < 10 && e.to_string().contains("is not valid") => {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_secs(2)).await;
                }
                Err(e) => {
                    failed.push(format!("{}: {e}", account.address()));
                    break;
                }
            }
        }
    }
    failed
}

impl Network {
    /// Starts `count` operators under `dir`, funds their accounts from Alice and waits until
    /// each is registered and active on chain with its endpoints. `labels` names the operator
    /// accounts (stable across runs); `None` makes fresh accounts.
    pub async fn start(
        url: &str,
        dir: &Path,
        count: usize,
        labels: Option<&str>,
    ) -> anyhow::Result<Self> {
        Self::start_on(url, dir, count, labels, BrokerKind::Mosquitto).await
    }

    /// [`Self::start`] with `kind` brokers.
    pub async fn start_on(
        url: &str,
        dir: &Path,
        count: usize,
        labels: Option<&str>,
        kind: BrokerKind,
    ) -> anyhow::Result<Self> {
        Self::start_with(url, dir, count, labels, kind, 1).await
    }

    /// [`Self::start`] with each operator's broker a VerneMQ cluster of `nodes` nodes
    /// ([`BrokerProcess::VernemqCluster`]).
    pub async fn start_vernemq_cluster(
        url: &str,
        dir: &Path,
        count: usize,
        labels: Option<&str>,
        nodes: usize,
    ) -> anyhow::Result<Self> {
        Self::start_with(url, dir, count, labels, BrokerKind::Vernemq, nodes).await
    }

    async fn start_with(
        url: &str,
        dir: &Path,
        count: usize,
        labels: Option<&str>,
        kind: BrokerKind,
        nodes: usize,
    ) -> anyhow::Result<Self> {
        let alice = FastData::connect(url, Account::from_suri("//Alice")?)
            .await
            .context("is fastdata-node running?")?;
        let mut operators = Vec::new();
        for i in 0..count {
            let label = labels.map(|l| format!("{l}/operator/{i}"));
            let seed = seed(label.as_deref())?;
            let account = Account::from_seed(&seed).account_id();
            fund(&alice, &account, OPERATOR_STAKE + 100 * UNIT).await?;
            operators.push(OperatorNode::start(
                &dir.join(format!("operator-{i}")),
                seed,
                url,
                kind,
                nodes,
            )?);
        }
        let network = Self {
            alice,
            operators,
            url: url.to_owned(),
            leave_on_drop: labels.is_none(),
        };
        for op in &network.operators {
            network.wait_active(op).await?;
        }
        Ok(network)
    }

    async fn wait_active(&self, op: &OperatorNode) -> anyhow::Result<()> {
        let who = op.account.account_id();
        let http = op.endpoint.http_url.as_bytes().to_vec();
        self.alice
            .wait_for("operator registration", Duration::from_secs(90), || async {
                Ok(self
                    .alice
                    .operator(&who)
                    .await?
                    .filter(|o| o.status == OperatorStatus::Active && o.http_url == http))
            })
            .await
            .with_context(|| {
                format!(
                    "operator {who} did not become active; see {}",
                    op.log().display()
                )
            })?;
        Ok(())
    }

    /// The endpoints of all operators.
    pub fn endpoints(&self) -> Vec<OperatorEndpoint> {
        self.operators.iter().map(|o| o.endpoint.clone()).collect()
    }

    /// Stops every operator; with `leave`, each then leaves the operator set on chain (after
    /// its daemon stopped, so their transactions cannot race) and no new stream is assigned
    /// to it.
    pub async fn stop(mut self, leave: bool) -> anyhow::Result<()> {
        let mut operators = std::mem::take(&mut self.operators);
        for op in &mut operators {
            op.stop();
        }
        let failed = if leave {
            let accounts: Vec<Account> = operators.iter().map(|o| o.account.clone()).collect();
            leave_all(&self.alice, &accounts).await
        } else {
            Vec::new()
        };
        drop(operators);
        anyhow::ensure!(
            failed.is_empty(),
            "operators did not leave: {}",
            failed.join("; ")
        );
        Ok(())
    }
}

/// A seller or buyer: a connection acting as its account and its keystore.
pub struct Trader {
    /// The chain connection.
    pub chain: FastData,
    /// Its keystore (X25519 key-agreement secret, epoch keys).
    pub keystore: Keystore,
}

impl Trader {
    /// A funded trader with a DID; `verified` has Alice (the dev issuer) attest KYC.
    pub async fn onboard(
        alice: &FastData,
        account: Account,
        keystore: &Path,
        verified: bool,
    ) -> anyhow::Result<Self> {
        fund(alice, &account.account_id(), 1_000 * UNIT).await?;
        let chain = alice.as_account(account);
        let mut keystore = Keystore::open(keystore)?;
        let me = chain.account().account_id();
        if chain.did_document(&me).await?.is_none() {
            chain.create_did(&mut keystore, Vec::new()).await?;
        }
        if verified && !chain.is_verified(&me).await? {
            let expires = alice.finalized_number().await? + 1_000_000;
            alice
                .attest_credential(&me, b"KYC", H256::repeat_byte(1), expires)
                .await?;
        }
        Ok(Self { chain, keystore })
    }

    /// The account id.
    pub fn id(&self) -> AccountId {
        self.chain.account().account_id()
    }
}

/// Publishes `payloads` to the stream's assigned operators as epoch `epoch` from sequence
/// `first` (recorded in the seller's keystore as the epoch's start), waiting (up to 60 s)
/// until the operators know the stream, then until every segment is acknowledged. Returns the
/// operators the stream is assigned to.
pub async fn publish(
    seller: &mut Trader,
    stream: StreamId,
    epoch: EpochIndex,
    first: Sequence,
    payloads: &[Vec<u8>],
) -> anyhow::Result<Vec<OperatorEndpoint>> {
    let keys = seller
        .keystore
        .epoch_keys(&stream, epoch)
        .context("the seller's keystore has no keys for this epoch")?;
    let endpoints = seller.chain.stream_endpoints(&stream).await?;
    let expiry = seller.chain.finalized_number().await? + 10_000;
    seller.keystore.record_epoch_start(&stream, epoch, first);
    seller.keystore.save()?;
    let mut publisher = connect_publisher(
        seller.chain.account(),
        seller.chain.genesis(),
        stream,
        epoch,
        keys,
        &endpoints,
        expiry,
        first,
        Duration::from_secs(60),
    )
    .await?;
    for payload in payloads {
        publisher.publish(payload).await?;
    }
    publisher.flush(Duration::from_secs(60)).await?;
    publisher.close(Duration::from_secs(10)).await?;
    Ok(endpoints)
}

/// Connects a publisher of `stream`/`epoch` from sequence `first` to every one of
/// `endpoints`, with upload tokens signed for the chain `genesis`, retrying (the operators
/// learn of a new stream from finalized blocks) until all accept uploads or `timeout` passes.
#[allow(clippy::too_many_arguments)]
pub async fn connect_publisher(
    seller: &Account,
    genesis: H256,
    stream: StreamId,
    epoch: EpochIndex,
    keys: EpochKeys,
    endpoints: &[OperatorEndpoint],
    expiry: BlockNumber,
    first: Sequence,
    timeout: Duration,
) -> anyhow::Result<StreamPublisher> {
    let deadline = Instant::now() + timeout;
    loop {
        let accepted = match StreamPublisher::connect(
            seller,
            genesis,
            stream,
            epoch,
            keys.clone(),
            endpoints,
            expiry,
            first,
        )
        .await
        {
            Ok(p) if p.status().len() == endpoints.len() => return Ok(p),
            Ok(p) => {
                let n = p.status().len();
                let _ = p.close(Duration::from_secs(1)).await;
                n
            }
            Err(_) => 0,
        };
        if Instant::now() > deadline {
            bail!(
                "only {accepted} of {} operators accept uploads after {timeout:?}",
                endpoints.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Downloads `first..=last` of `purchase` with every delivered epoch's keys (opened and
/// checked against the commitments), through `endpoints` in order. Returns the plaintexts
/// in sequence order and the receiver's summary.
pub async fn receive(
    buyer: &Trader,
    purchase: PurchaseId,
    endpoints: Vec<OperatorEndpoint>,
    first: Sequence,
    last: Sequence,
) -> anyhow::Result<(Vec<(Sequence, Vec<u8>)>, Summary)> {
    let view = buyer
        .chain
        .purchase(purchase)
        .await?
        .context("purchase not on chain")?;
    let mut receiver = buyer
        .chain
        .receiver(&buyer.keystore, &view, endpoints, Some(first), 10_000)
        .await?;
    let mut out = Vec::new();
    let summary = receiver
        .download(Some(last), |segment| {
            out.push((segment.header.sequence, segment.payload));
            Ok(())
        })
        .await?;
    Ok((out, summary))
}

/// A deterministic, recognisable sensor reading for sequence `i` of `stream_label`.
pub fn reading(stream_label: &str, i: u64) -> Vec<u8> {
    let value = 20.0 + ((i as f64) / 7.0).sin() * 5.0;
    format!("{{\"sensor\":\"{stream_label}\",\"seq\":{i},\"celsius\":{value:.3}}}").into_bytes()
}

/// Waits (at most `timeout`) until `purchase` is settled, triggering settlement whenever a
/// period is due (the runtime's `on_idle` may get there first). Returns the settled purchase.
pub async fn settled(
    chain: &FastData,
    purchase: PurchaseId,
    timeout: Duration,
) -> anyhow::Result<Purchase> {
    let settled = chain
        .wait_for("settlement", timeout, || async {
            let p = chain.purchase(purchase).await?.ok_or_else(|| {
                fastdata_sdk::Error::NotFound(format!("purchase {purchase} vanished"))
            })?;
            if p.state == PurchaseState::Settled {
                return Ok(Some(p));
            }
            let now = chain.finalized_number().await?;
            if p.next_settlement.is_some_and(|at| at <= now) {
                // Losing the race to on_idle or another caller is fine.
                let _ = chain.settle(purchase).await;
            }
            Ok(None)
        })
        .await?;
    Ok(settled)
}

/// A `fastdata seller run` child process publishing one stream from its standard input
/// (records are lines written with [`SellerProcess::send`]), delivering keys to every
/// purchase of the seller's streams, serving its counters on a local metrics port.
pub struct SellerProcess {
    child: Option<Child>,
    stdin: Option<std::process::ChildStdin>,
    metrics: std::net::SocketAddr,
    log: PathBuf,
}

impl SellerProcess {
    /// Writes `dir/seller.toml` (the stream `stream` from standard input, with the extra
    /// `[[stream]]` keys `stream_options`, e.g. `"max_delay_ms = 100\n"`) and starts
    /// `fastdata seller run` against `url`, acting as the account of the 32-byte `seed` with
    /// the seller's `keystore`. Its log (`FASTDATA_LOG=info`) goes to `dir/seller.log`.
    pub fn start(
        url: &str,
        seed: [u8; 32],
        keystore: &Path,
        stream: StreamId,
        stream_options: &str,
        dir: &Path,
    ) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let metrics = std::net::SocketAddr::from(([127, 0, 0, 1], free_port()?));
        let config = dir.join("seller.toml");
        std::fs::write(
            &config,
            format!(
                "metrics = \"{metrics}\"\n\n[[stream]]\nid = \"0x{}\"\nstdin = true\n{stream_options}",
                hex::encode(stream.as_bytes())
            ),
        )?;
        let log = dir.join("seller.log");
        let out = std::fs::File::create(&log)?;
        let mut child = Command::new(binary("fastdata")?)
            .arg("--url")
            .arg(url)
            .arg("--keystore")
            .arg(keystore)
            .args(["seller", "run", "--config"])
            .arg(&config)
            .env("FASTDATA_SURI", format!("0x{}", hex::encode(seed)))
            .env_remove("FASTDATA_ACCOUNT")
            .env("FASTDATA_LOG", "info")
            .stdin(Stdio::piped())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .context("cannot start `fastdata seller run`")?;
        let stdin = child.stdin.take();
        Ok(Self {
            child: Some(child),
            stdin,
            metrics,
            log,
        })
    }

    /// Writes one record (a line; `record` must not contain a newline).
    pub fn send(&mut self, record: &[u8]) -> anyhow::Result<()> {
        use std::io::Write;
        let stdin = self
            .stdin
            .as_mut()
            .context("the seller's standard input is closed")?;
        let mut line = Vec::with_capacity(record.len() + 1);
        line.extend_from_slice(record);
        line.push(b'\n');
        stdin
            .write_all(&line)
            .with_context(|| format!("the seller process stopped; see {}", self.log.display()))
    }

    /// Closes its standard input (the service publishes what it batched and keeps running).
    pub fn close_input(&mut self) {
        self.stdin = None;
    }

    /// Its counters (`fastdata_seller_<name>_total` → value) from `GET /metrics`.
    pub fn metrics(&self) -> anyhow::Result<std::collections::HashMap<String, f64>> {
        use std::io::{Read, Write};
        let mut conn = std::net::TcpStream::connect_timeout(&self.metrics, Duration::from_secs(2))?;
        conn.set_read_timeout(Some(Duration::from_secs(5)))?;
        write!(
            conn,
            "GET /metrics HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.metrics
        )?;
        let mut text = String::new();
        conn.read_to_string(&mut text)?;
        Ok(text
            .lines()
            .filter(|l| l.starts_with("fastdata_seller_"))
            .filter_map(|l| {
                let (name, value) = l.split_once(' ')?;
                Some((name.to_owned(), value.trim().parse().ok()?))
            })
            .collect())
    }

    /// The counter `fastdata_seller_<name>_total` (0 when not served yet).
    pub fn counter(&self, name: &str) -> f64 {
        self.metrics()
            .ok()
            .and_then(|m| m.get(&format!("fastdata_seller_{name}_total")).copied())
            .unwrap_or(0.0)
    }

    /// Waits (at most `timeout`) until the counter `name` reaches `value`.
    pub async fn wait_counter(
        &mut self,
        name: &str,
        value: f64,
        timeout: Duration,
    ) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let now = self.counter(name);
            if now >= value {
                return Ok(());
            }
            if !self.running() {
                bail!("the seller process exited; see {}", self.log.display());
            }
            if Instant::now() > deadline {
                bail!(
                    "the seller's {name} is {now}, not {value}, after {timeout:?}; see {}",
                    self.log.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Waits (at most `timeout`) until the service has read `records` records and its count
    /// of published segments has not changed for a second (batches flush within
    /// `max_delay_ms`); returns that count.
    pub async fn wait_published(&mut self, records: u64, timeout: Duration) -> anyhow::Result<u64> {
        let deadline = Instant::now() + timeout;
        self.wait_counter("records_in", records as f64, timeout)
            .await?;
        let mut last = (self.counter("segments_published"), Instant::now());
        loop {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let now = self.counter("segments_published");
            if now != last.0 {
                last = (now, Instant::now());
            } else if last.1.elapsed() >= Duration::from_secs(1) {
                return Ok(now as u64);
            }
            if Instant::now() > deadline {
                bail!(
                    "the seller kept publishing for {timeout:?}; see {}",
                    self.log.display()
                );
            }
        }
    }

    /// Whether the process is running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    /// Its log file.
    pub fn log(&self) -> &Path {
        &self.log
    }

    /// Stops it with SIGTERM (it flushes, closes its publisher and saves the next sequence)
    /// and waits for it to exit, SIGKILL after `timeout`; fails unless it exited with 0.
    pub async fn stop(mut self, timeout: Duration) -> anyhow::Result<()> {
        self.close_input();
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let _ = Command::new("kill")
            .arg(child.id().to_string())
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = child.try_wait()? {
                anyhow::ensure!(
                    status.success(),
                    "the seller process exited with {status}; see {}",
                    self.log.display()
                );
                return Ok(());
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!(
                    "the seller process did not stop within {timeout:?}; see {}",
                    self.log.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for SellerProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

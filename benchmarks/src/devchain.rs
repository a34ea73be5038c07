//! A live dev chain for the `trust` and `scale` modes: a `fastdata-node --dev` of our own
//! (started like `scripts/lib.sh`'s `start_node`, on a throwaway base path) or a node at
//! `--url`; mass submission of pre-signed transactions without watching them, and counting
//! what landed by reading the finalized blocks' events.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{bail, Context};
use fastdata_primitives::{AccountId, Balance, BlockNumber};
use fastdata_sdk::{
    chain::{
        bounded, fastdata, lookup, Payload, RuntimeCall, RuntimeDispatchError, RuntimeEvent, Wait,
        MORTALITY_BLOCKS,
    },
    Account, FastData, FastDataConfig,
};
use futures_util::StreamExt;

/// Evaluates the SDK call `$call` (an expression giving a future of a `Result`) again, up to
/// 5 times with back-off, while it fails transiently ([`crate::chainops::transient`]: the node
/// could not serve a block it had just announced); other errors end it with context `$what`.
macro_rules! again {
    ($what:expr, $call:expr) => {{
        let mut attempt = 0u64;
        loop {
            match $call.await {
                Ok(value) => break Ok::<_, anyhow::Error>(value),
                Err(e) if crate::chainops::transient(&e) && attempt < 5 => {
                    attempt += 1;
                    tracing::debug!("{}: {e}; trying again", $what);
                    tokio::time::sleep(std::time::Duration::from_millis(300 * attempt)).await;
                }
                Err(e) => break Err(anyhow::Error::from(e).context($what)),
            }
        }
    }};
}
pub(crate) use again;

/// The finalized head of `chain` (read again while the node answers transiently).
pub async fn head(chain: &FastData) -> anyhow::Result<BlockNumber> {
    again!("finalized head", chain.finalized_number())
}

/// A dev node this process started; stopped (SIGINT, then SIGKILL) when dropped.
pub struct DevNode {
    child: Child,
    /// Its WebSocket URL.
    pub url: String,
    /// Its log file.
    pub log: PathBuf,
    _base: tempfile::TempDir,
}

impl DevNode {
    /// Starts `fastdata-node --dev --dev-block-time 1000` with RPC on `port` (p2p on
    /// `port + 21000`, as `scripts/lib.sh`) and a throwaway base path; waits for block 2.
    pub async fn start(port: u16, work: &Path) -> anyhow::Result<Self> {
        if !(9991..=9999).contains(&port) {
            bail!("--port must be in 9991..=9999, got {port}");
        }
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            bail!("port {port} is in use (another node running?); pick another --port");
        }
        let bin = fastdata_e2e::binary("fastdata-node")?;
        std::fs::create_dir_all(work)?;
        let base = tempfile::tempdir_in(work)?;
        let log = work.join(format!("node-{port}.log"));
        let out = std::fs::File::create(&log)?;
        let child = Command::new(&bin)
            .args(["--dev", "--dev-block-time", "1000", "--base-path"])
            .arg(base.path())
            .args(["--rpc-port", &port.to_string()])
            .args(["--port", &(u32::from(port) + 21_000).to_string()])
            .args([
                "--rpc-cors",
                "all",
                "--no-prometheus",
                "--no-telemetry",
                "--name",
                "fastdata-bench",
            ])
            .stdout(Stdio::null())
            .stderr(out)
            .spawn()
            .with_context(|| format!("cannot start {}", bin.display()))?;
        let mut node = Self {
            child,
            url: format!("ws://127.0.0.1:{port}"),
            log,
            _base: base,
        };
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = node.child.try_wait() {
                bail!(
                    "fastdata-node exited during start ({status}); see {}",
                    node.log.display()
                );
            }
            let alice = Account::from_suri("//Alice")?;
            if let Ok(chain) = FastData::connect(&node.url, alice).await {
                if chain.finalized_number().await.unwrap_or(0) >= 2 {
                    return Ok(node);
                }
            }
            if started.elapsed() > Duration::from_secs(120) {
                node.stop();
                bail!(
                    "node did not reach block 2 within 120 s; see {}",
                    node.log.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Stops the node: SIGINT, then SIGKILL after 15 s.
    pub fn stop(&mut self) {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        for _ in 0..150 {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for DevNode {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A node to run against: ours (started here) or the one at `url`.
pub async fn node(
    url: Option<&str>,
    port: u16,
    work: &Path,
) -> anyhow::Result<(String, Option<DevNode>)> {
    match url {
        Some(url) => {
            if !(url.starts_with("ws://") || url.starts_with("wss://")) {
                bail!("--url must be a ws:// or wss:// URL, got {url:?}");
            }
            Ok((url.to_owned(), None))
        }
        None => {
            let node = DevNode::start(port, work).await?;
            Ok((node.url.clone(), Some(node)))
        }
    }
}

/// Fresh accounts.
pub fn accounts(n: usize) -> anyhow::Result<Vec<Account>> {
    (0..n)
        .map(|_| Ok(Account::generate()?.0))
        .collect::<anyhow::Result<Vec<_>>>()
}

/// Sends `amount` to each of `to` from `from`, as batch transactions; fails unless all landed.
pub async fn fund(from: &FastData, to: &[AccountId], amount: Balance) -> anyhow::Result<()> {
    let calls: Vec<RuntimeCall> = to
        .iter()
        .map(|who| {
            RuntimeCall::Balances(fastdata::balances::Call::transfer_keep_alive {
                dest: lookup(who),
                value: amount,
            })
        })
        .collect();
    for (i, result) in from
        .submit_batch(&calls, Wait::InBlock)
        .await
        .into_iter()
        .enumerate()
    {
        result.with_context(|| format!("funding account {i}"))?;
    }
    Ok(())
}

/// The finalized block transactions are signed against (their mortality's anchor).
pub struct Signing {
    at: subxt::client::ClientAtBlock<
        FastDataConfig,
        subxt::client::OnlineClientAtBlockImpl<FastDataConfig>,
    >,
}

impl Signing {
    /// Signs against `chain`'s finalized block now.
    pub async fn new(chain: &FastData) -> anyhow::Result<Self> {
        Ok(Self {
            at: again!("finalized block", chain.client().at_current_block())?,
        })
    }

    /// Signs `tx` (a generated payload, `fastdata::tx()…`) as `account` with `nonce`, ready
    /// to submit.
    pub fn sign<P: Payload>(
        &self,
        account: &Account,
        nonce: u64,
        tx: &P,
    ) -> anyhow::Result<Vec<u8>> {
        let (pallet, call) = (tx.pallet_name(), tx.call_name());
        let params = subxt::config::SubstrateExtrinsicParamsBuilder::<FastDataConfig>::new()
            .nonce(nonce)
            .mortal_from_unchecked(
                MORTALITY_BLOCKS,
                self.at.block_number(),
                self.at.block_hash(),
            )
            .build();
        let signed = self
            .at
            .transactions()
            .create_signable_offline(tx, params)
            .with_context(|| format!("cannot build {pallet}::{call}"))?
            .sign(account)
            .with_context(|| format!("cannot sign {pallet}::{call}"))?;
        Ok(signed.into_encoded())
    }
}

/// Hands every transaction of `txs` (encoded, signed) to the node without watching them, up to
/// 64 requests at once. Returns how many the node accepted into its pool and the first refusal.
pub async fn submit_all(
    chain: &FastData,
    txs: Vec<Vec<u8>>,
) -> anyhow::Result<(usize, Option<String>)> {
    let at = again!("finalized block", chain.client().at_current_block())?;
    let transactions = at.transactions();
    let results: Vec<Result<(), String>> = futures_util::stream::iter(txs)
        .map(|bytes| {
            let tx = transactions.from_bytes(bytes);
            async move { tx.submit().await.map(drop).map_err(|e| e.to_string()) }
        })
        .buffer_unordered(64)
        .collect()
        .await;
    let accepted = results.iter().filter(|r| r.is_ok()).count();
    let first_error = results.into_iter().find_map(Result::err);
    Ok((accepted, first_error))
}

/// What landed in one block.
#[derive(Clone, Debug)]
pub struct BlockEvents<T> {
    /// Block number.
    pub number: BlockNumber,
    /// What the watcher picked from each matching event.
    pub matched: Vec<T>,
    /// `System::ExtrinsicFailed` events in the block.
    pub failed: usize,
    /// The dispatch error of the block's first `System::ExtrinsicFailed`.
    pub first_failure: Option<RuntimeDispatchError>,
}

/// Reads the finalized blocks after `after` until `want` events `pick` matches (it maps an
/// event to what the caller keeps of it) plus failed extrinsics were seen or `timeout`
/// passed; returns the blocks read (with their matches) and when the last match was seen.
pub async fn watch_events<T>(
    chain: &FastData,
    after: BlockNumber,
    pick: impl Fn(&RuntimeEvent) -> Option<T>,
    want: usize,
    timeout: Duration,
) -> anyhow::Result<(Vec<BlockEvents<T>>, Option<Instant>)> {
    let started = Instant::now();
    let mut blocks = Vec::new();
    let mut seen = 0usize;
    let mut next = after + 1;
    let mut last_match = None;
    while seen < want && started.elapsed() < timeout {
        let head = head(chain).await?;
        while next <= head && seen < want {
            let block = read_block(chain, next, &pick).await?;
            if !block.matched.is_empty() {
                last_match = Some(Instant::now());
            }
            seen += block.matched.len() + block.failed;
            blocks.push(block);
            next += 1;
        }
        if seen < want {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Ok((blocks, last_match))
}

/// The events of block `number` that `pick` matches (what it keeps of each), with the
/// block's failed extrinsics.
pub async fn read_block<T>(
    chain: &FastData,
    number: BlockNumber,
    pick: &impl Fn(&RuntimeEvent) -> Option<T>,
) -> anyhow::Result<BlockEvents<T>> {
    let mut attempt = 0u64;
    loop {
        let read = async {
            let at = chain.client().at_block(u64::from(number)).await?;
            let events = at.events().fetch().await?;
            let mut block = BlockEvents {
                number,
                matched: Vec::new(),
                failed: 0,
                first_failure: None,
            };
            for event in events.iter() {
                let event = event?.decode_as::<RuntimeEvent>()?;
                if let Some(picked) = pick(&event) {
                    block.matched.push(picked);
                } else if let RuntimeEvent::System(fastdata::system::Event::ExtrinsicFailed {
                    dispatch_error,
                    ..
                }) = event
                {
                    block.failed += 1;
                    if block.first_failure.is_none() {
                        block.first_failure = Some(dispatch_error);
                    }
                }
            }
            Ok::<_, anyhow::Error>(block)
        }
        .await;
        match read {
            Ok(block) => return Ok(block),
            Err(e) if attempt < 5 => {
                attempt += 1;
                tracing::debug!("block {number}: {e:#}; reading again");
                tokio::time::sleep(Duration::from_millis(200 * attempt)).await;
            }
            Err(e) => return Err(e.context(format!("cannot read block {number}"))),
        }
    }
}

/// Registers `operator` (funded) as a storage operator without a daemon, at the e2e stake and
/// price.
pub async fn register_operator(operator: &FastData) -> anyhow::Result<()> {
    operator
        .submit(fastdata::tx().operators().register(
            fastdata_e2e::OPERATOR_STAKE,
            bounded(b"mqtt://127.0.0.1:19599".to_vec()),
            bounded(b"http://127.0.0.1:19598".to_vec()),
            fastdata_e2e::OPERATOR_PRICE_PER_MB,
        ))
        .await
        .context("operator registration")?;
    Ok(())
}

/// Blocks between `from` (exclusive) and the last block of `blocks` holding a match.
pub fn blocks_until_last<T>(from: BlockNumber, blocks: &[BlockEvents<T>]) -> Option<BlockNumber> {
    blocks
        .iter()
        .rev()
        .find(|b| !b.matched.is_empty())
        .map(|b| b.number.saturating_sub(from))
}

/// A progress bar of `len` steps with the current step's message.
pub fn progress(len: u64) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(len);
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "[{elapsed_precise}] {bar:30} {pos}/{len} steps  {msg}",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.enable_steady_tick(Duration::from_millis(250));
    bar
}

/// The command line of this run, as `fastdata-bench …`.
pub fn command_line() -> String {
    std::iter::once("fastdata-bench".to_owned())
        .chain(std::env::args().skip(1))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Ends a live-chain run: on success writes the results and the report and removes the work
/// directory; on failure keeps what was measured, the error in `meta.csv` and the work
/// directory (node log, keystores) for inspection.
pub fn conclude(
    dir: &Path,
    work: &Path,
    rows: &[crate::results::Row],
    mut meta: Vec<crate::results::Meta>,
    result: anyhow::Result<()>,
    report: &Path,
    out: &Path,
) -> anyhow::Result<()> {
    if let Err(e) = result {
        meta.push(crate::results::Meta {
            key: "error".into(),
            value: format!("{e:#}"),
        });
        meta.extend(crate::machine::describe());
        crate::results::write_rows(dir, rows)?;
        crate::results::write_meta(dir, &meta)?;
        return Err(e.context(format!(
            "partial results in {}, logs in {}",
            dir.display(),
            work.display()
        )));
    }
    let _ = std::fs::remove_dir_all(work);
    crate::finish(dir, rows, meta, report, out)
}

/// Runs `body` until it ends or the process is asked to stop (Ctrl-C, SIGTERM).
pub async fn interruptible(
    body: impl std::future::Future<Output = anyhow::Result<()>>,
) -> anyhow::Result<()> {
    tokio::select! {
        result = body => result,
        _ = fastdata_operator::termination_signal() => Err(anyhow::anyhow!("interrupted")),
    }
}

/// `key = value` lines for `meta.csv`.
pub fn meta(pairs: &[(&str, String)]) -> Vec<crate::results::Meta> {
    pairs
        .iter()
        .map(|(key, value)| crate::results::Meta {
            key: (*key).into(),
            value: value.clone(),
        })
        .collect()
}

/// `Operators::attest_heads` of one stream as `operator`: its head and the bytes stored
/// (what hosting pays for).
pub async fn attest_head(
    operator: &FastData,
    stream: fastdata_primitives::StreamId,
    head: u64,
    stored_bytes: u64,
) -> anyhow::Result<()> {
    let heads = fastdata::runtime_types::bounded_collections::bounded_vec::BoundedVec(vec![(
        stream,
        head,
        stored_bytes,
    )]);
    operator
        .submit_finalized(fastdata::tx().operators().attest_heads(heads))
        .await
        .context("head attestation")?;
    Ok(())
}

/// Sends `Operators::heartbeat` as `operator` every 20 s until the task is aborted, so an
/// operator without a daemon stays active through a long run.
pub fn keep_alive(operator: FastData) -> AbortOnDrop {
    AbortOnDrop(tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(20)).await;
            if let Err(e) = operator
                .submit(fastdata::tx().operators().heartbeat())
                .await
            {
                tracing::warn!("operator heartbeat: {e}");
            }
        }
    }))
}

/// A background task, aborted when this is dropped.
pub struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The text of the dispatch error of a `System::ExtrinsicFailed` event (`Pallet::Error`
/// where the metadata names it).
pub async fn describe_failure(chain: &FastData, error: &RuntimeDispatchError) -> String {
    let at = match again!("metadata", chain.client().at_current_block()) {
        Ok(at) => at,
        Err(e) => return format!("dispatch error not decoded ({e:#})"),
    };
    fastdata_sdk::chain::describe_dispatch_error(error, &at.metadata())
}

/// A weight: picoseconds of execution and bytes of proof.
#[derive(Clone, Copy, Debug, Default, codec::Decode, serde::Deserialize)]
pub struct Weight {
    /// Execution time, picoseconds.
    #[codec(compact)]
    #[serde(alias = "refTime")]
    pub ref_time: u64,
    /// Proof size, bytes.
    #[codec(compact)]
    #[serde(alias = "proofSize")]
    pub proof_size: u64,
}

impl From<fastdata::runtime_types::sp_weights::weight_v2::Weight> for Weight {
    fn from(w: fastdata::runtime_types::sp_weights::weight_v2::Weight) -> Self {
        Self {
            ref_time: w.ref_time,
            proof_size: w.proof_size,
        }
    }
}

/// What one transaction weighs in a block and what a block holds of normal transactions.
#[derive(Clone, Copy, Debug)]
pub struct Capacity {
    /// The transaction's weight (its dispatch info plus the base extrinsic weight).
    pub tx: Weight,
    /// The most weight of normal transactions in one block.
    pub block: Weight,
}

impl Capacity {
    /// How many such transactions fit a block by execution time and by proof size.
    pub fn fit(&self) -> (u64, u64) {
        (
            self.block.ref_time / self.tx.ref_time.max(1),
            self.block.proof_size / self.tx.proof_size.max(1),
        )
    }
}

/// The weight of the signed transaction `tx` (`payment_queryInfo` at `url`) and the runtime's
/// normal-class limit (`System::BlockWeights`).
pub async fn capacity(url: &str, chain: &FastData, tx: &[u8]) -> anyhow::Result<Capacity> {
    #[derive(serde::Deserialize)]
    struct Info {
        weight: Weight,
    }
    let at = again!("metadata", chain.client().at_current_block())?;
    let limits = at
        .constants()
        .entry(fastdata::constants().system().block_weights())
        .context("System::BlockWeights")?;
    let rpc = subxt::rpcs::RpcClient::from_insecure_url(url).await?;
    let info: Info = rpc
        .request(
            "payment_queryInfo",
            subxt::rpcs::rpc_params![format!("0x{}", hex::encode(tx))],
        )
        .await
        .context("payment_queryInfo")?;
    let normal = limits.per_class.normal;
    let base = Weight::from(normal.base_extrinsic);
    Ok(Capacity {
        tx: Weight {
            ref_time: info.weight.ref_time.saturating_add(base.ref_time),
            proof_size: info.weight.proof_size.saturating_add(base.proof_size),
        },
        block: Weight::from(normal.max_total.unwrap_or(limits.max_block)),
    })
}

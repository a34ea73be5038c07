//! `fastdata-bench grid`: the FAST DATA paper's experiment grid on a running dev chain.
//!
//! For each operator count a [`Network`] of Mosquitto + `fastdata-operator` daemons registers
//! on chain; for each seller count, fresh sellers onboard concurrently (timed: DID, then offer
//! and stream registration; the issuer's KYC attestation in between is not a seller action
//! and is not timed), one buyer buys every stream and gets the sealed keys, and follows every
//! stream live through the SDK's receiver. Then, for each payload rate:
//!
//! 1. **plaintext baseline**: every seller publishes plain payloads with rumqttc (QoS 1) to
//!    the same brokers, at the rate, for the phase length; plain subscribers measure latency;
//! 2. **FAST DATA**: every seller publishes sealed segments through [`StreamPublisher`] to all
//!    its assigned operators (which persist them), at the same rate and size; the buyer's
//!    receivers open and verify them and measure latency from the publish call;
//! 3. **upload burst**: every seller uploads a fixed number of segments as fast as it can;
//!    upload time and throughput until every operator acknowledged them.
//!
//! Every payload starts with a 16-byte header: cell id, phase, seller, send time (µs).

use std::{
    collections::HashSet,
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use anyhow::{bail, Context};
use fastdata_e2e::{Network, UNIT};
use fastdata_primitives::{
    api_market::{Licence, OfferTerms},
    AccountId, OfferId, PaymentMode, PurchaseId, StreamId,
};
use fastdata_sdk::{
    keystore::Keystore,
    operator::OperatorEndpoint,
    publish::StreamPublisher,
    receive::{Receiver, Verifier, OPERATOR_LAG_PATIENCE},
    Account, FastData,
};
use futures_util::future::join_all;
use indicatif::ProgressBar;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use sp_runtime::Perbill;
use tokio::sync::watch;

use crate::{
    chainops::{self, retry},
    results::Row,
    spec::{self, GridSpec},
    stats,
};

const WARMUP: u8 = 0;
const PACED: u8 = 1;
const BURST: u8 = 2;
const PLAIN_USER: &str = "bench-plain";
const PLAIN_PASSWORD: &str = "bench-plain-secret";

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// The 16-byte header every benchmark payload starts with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tag {
    /// Cell id (changes every rate cell).
    pub cell: u16,
    /// Warm-up, paced or burst.
    pub phase: u8,
    /// Seller index.
    pub seller: u16,
    /// Send time, µs since the Unix epoch.
    pub sent_us: u64,
}

impl Tag {
    /// The tag of a message sent now.
    pub fn now(cell: u16, phase: u8, seller: u16) -> Self {
        Self {
            cell,
            phase,
            seller,
            sent_us: now_us(),
        }
    }

    /// A payload of `size` bytes (at least 16) starting with this tag.
    pub fn payload(&self, size: usize) -> Vec<u8> {
        let mut out = vec![0x2a; size.max(spec::MIN_MESSAGE)];
        out[0..2].copy_from_slice(&self.cell.to_le_bytes());
        out[2] = self.phase;
        out[4..6].copy_from_slice(&self.seller.to_le_bytes());
        out[8..16].copy_from_slice(&self.sent_us.to_le_bytes());
        out
    }

    /// The tag at the start of `payload`.
    pub fn parse(payload: &[u8]) -> Option<Self> {
        if payload.len() < spec::MIN_MESSAGE {
            return None;
        }
        Some(Self {
            cell: u16::from_le_bytes(payload[0..2].try_into().ok()?),
            phase: payload[2],
            seller: u16::from_le_bytes(payload[4..6].try_into().ok()?),
            sent_us: u64::from_le_bytes(payload[8..16].try_into().ok()?),
        })
    }
}

/// What receivers saw in the current cell.
#[derive(Default)]
struct Seen {
    cell: u16,
    fast_warm: HashSet<u16>,
    plain_warm: HashSet<u16>,
    fast: Vec<f64>,
    plain: Vec<f64>,
}

type Recorder = Arc<Mutex<Seen>>;

fn lock(r: &Recorder) -> std::sync::MutexGuard<'_, Seen> {
    r.lock().unwrap_or_else(|p| p.into_inner())
}

fn record(recorder: &Recorder, payload: &[u8], plain: bool) {
    let now = now_us();
    let Some(tag) = Tag::parse(payload) else {
        return;
    };
    let mut seen = lock(recorder);
    if tag.cell != seen.cell {
        return;
    }
    let latency_ms = now.saturating_sub(tag.sent_us) as f64 / 1000.0;
    match (tag.phase, plain) {
        (WARMUP, false) => {
            seen.fast_warm.insert(tag.seller);
        }
        (WARMUP, true) => {
            seen.plain_warm.insert(tag.seller);
        }
        (PACED, false) => seen.fast.push(latency_ms),
        (PACED, true) => seen.plain.push(latency_ms),
        _ => {}
    }
}

/// A seller of one group.
struct Seller {
    index: u16,
    chain: FastData,
    keystore: Keystore,
    offer: OfferId,
    stream: StreamId,
    onboarding: Duration,
}

/// A plain MQTT client with its event loop task.
struct PlainClient {
    client: AsyncClient,
    acked: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for PlainClient {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn plain_client(
    port: u16,
    client_id: String,
    subscribe: Option<(Recorder, usize, usize)>,
) -> anyhow::Result<PlainClient> {
    let mut options = MqttOptions::new(client_id, "127.0.0.1", port);
    options.set_credentials(PLAIN_USER, PLAIN_PASSWORD);
    options.set_keep_alive(Duration::from_secs(30));
    options.set_max_packet_size(1 << 20, 1 << 20);
    options.set_inflight(256);
    let (client, mut eventloop) = AsyncClient::new(options, 1024);
    let (ready_tx, mut ready) = watch::channel(None::<Result<(), String>>);
    let sub_client = client.clone();
    let acked = Arc::new(AtomicU64::new(0));
    let acks = acked.clone();
    let task = tokio::spawn(async move {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    if subscribe.is_some() {
                        let _ = sub_client.try_subscribe("bench/+/data", QoS::AtLeastOnce);
                    } else {
                        let _ = ready_tx.send(Some(Ok(())));
                    }
                }
                Ok(Event::Incoming(Packet::PubAck(_))) => {
                    acks.fetch_add(1, Ordering::Relaxed);
                }
                Ok(Event::Incoming(Packet::SubAck(_))) => {
                    let _ = ready_tx.send(Some(Ok(())));
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    if let Some((recorder, brokers, index)) = &subscribe {
                        // Each seller's messages are measured at one broker only.
                        if let Some(tag) = Tag::parse(&p.payload) {
                            if usize::from(tag.seller) % brokers == *index {
                                record(recorder, &p.payload, true);
                            }
                        }
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    let _ = ready_tx.send(Some(Err(e.to_string())));
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    });
    let plain = PlainClient {
        client,
        acked,
        task,
    };
    let waited = tokio::time::timeout(
        Duration::from_secs(10),
        ready.wait_for(|r| matches!(r, Some(Ok(())))),
    )
    .await
    .map(|r| r.is_ok());
    if waited != Ok(true) {
        bail!(
            "plain MQTT client on port {port} not ready: {:?}",
            ready.borrow().clone()
        );
    }
    Ok(plain)
}

/// Creates the dynsec client the plaintext baseline uses (publish, receive and subscribe on
/// `bench/#`).
fn add_plain_client(port: u16, admin_password: &str) -> anyhow::Result<()> {
    // The operator's gate sets every default ACL access to deny.
    let commands: [&[&str]; 6] = [
        &["createRole", PLAIN_USER],
        &[
            "addRoleACL",
            PLAIN_USER,
            "publishClientReceive",
            "bench/#",
            "allow",
        ],
        &[
            "addRoleACL",
            PLAIN_USER,
            "publishClientSend",
            "bench/#",
            "allow",
        ],
        &[
            "addRoleACL",
            PLAIN_USER,
            "subscribePattern",
            "bench/#",
            "allow",
        ],
        &["createClient", PLAIN_USER, "-p", PLAIN_PASSWORD],
        &["addClientRole", PLAIN_USER, PLAIN_USER],
    ];
    for args in commands {
        let output = std::process::Command::new("mosquitto_ctrl")
            .args(["-h", "127.0.0.1", "-p", &port.to_string()])
            .args([
                "-u",
                fastdata_test_support::mosquitto::ADMIN_USER,
                "-P",
                admin_password,
            ])
            .arg("dynsec")
            .args(args)
            .output()
            .context("cannot run mosquitto_ctrl")?;
        let text = String::from_utf8_lossy(&output.stdout).to_string()
            + &String::from_utf8_lossy(&output.stderr);
        if !output.status.success() && !text.contains("already exists") {
            bail!("mosquitto_ctrl dynsec {}: {text}", args.join(" "));
        }
    }
    Ok(())
}

/// Where to print progress.
pub struct Progress {
    /// One tick per rate cell.
    pub cells: ProgressBar,
}

impl Progress {
    fn step(&self, text: String) {
        self.cells.set_message(text);
    }

    fn note(&self, text: String) {
        if self.cells.is_hidden() {
            println!("{text}");
        } else {
            self.cells.println(text);
        }
    }
}

/// Runs the grid against the node at `url`, keeping files under `work`; appends to `rows`
/// as cells complete (so a failed run keeps what it measured).
pub async fn run(
    spec: &GridSpec,
    url: &str,
    work: &Path,
    progress: &Progress,
    rows: &mut Vec<Row>,
) -> anyhow::Result<()> {
    for &ops in &spec.operators {
        progress.step(format!("starting {ops} operator(s)"));
        let started = Instant::now();
        let dir = work.join(format!("operators-{ops}"));
        let _ = std::fs::remove_dir_all(&dir);
        let net = Network::start(url, &dir, ops as usize, None)
            .await
            .with_context(|| format!("cannot start {ops} operators"))?;
        progress.note(format!(
            "{ops} operator(s) registered in {:.1} s",
            started.elapsed().as_secs_f64()
        ));
        rows.push(Row::grid(
            (0, ops, None, None),
            "operators_startup",
            started.elapsed().as_secs_f64(),
            "s",
        ));
        for op in &net.operators {
            add_plain_client(op.broker.port, &op.broker.admin_password)?;
        }
        let result = run_operators(spec, &net, ops, &dir, progress, rows).await;
        progress.step(format!("stopping {ops} operator(s)"));
        let stopped = net.stop(true).await;
        result?;
        stopped?;
    }
    Ok(())
}

async fn run_operators(
    spec: &GridSpec,
    net: &Network,
    ops: u32,
    dir: &Path,
    progress: &Progress,
    rows: &mut Vec<Row>,
) -> anyhow::Result<()> {
    for &sellers in &spec.sellers {
        let group_dir = dir.join(format!("sellers-{sellers}"));
        std::fs::create_dir_all(&group_dir)?;
        run_group(spec, net, ops, sellers, &group_dir, progress, rows)
            .await
            .with_context(|| format!("{sellers} sellers, {ops} operators"))?;
    }
    Ok(())
}

/// Blocks of access each purchase needs for the whole group, with margin.
fn access_blocks(spec: &GridSpec) -> u32 {
    let per_cell = 2 * spec.duration.as_secs() + 60;
    let total = per_cell * spec.rates.len() as u64 * u64::from(spec.reps) + 300;
    (total * 2).min(u64::from(u32::MAX / 4)) as u32
}

async fn onboard(
    alice: &FastData,
    sellers: u32,
    ops: u32,
    period: u32,
    dir: &Path,
    progress: &Progress,
    rows: &mut Vec<Row>,
) -> anyhow::Result<Vec<Seller>> {
    let accounts: Vec<Account> = (0..sellers)
        .map(|_| Ok(Account::from_seed(&fastdata_e2e::seed(None)?)))
        .collect::<anyhow::Result<_>>()?;
    let ids: Vec<AccountId> = accounts.iter().map(|a| a.account_id()).collect();
    progress.step(format!("funding {sellers} sellers"));
    chainops::fund_all(alice, &ids, 500 * UNIT).await?;

    // Timed: every seller creates its DID at once.
    progress.step(format!("{sellers} sellers create DIDs"));
    let phase1 = Instant::now();
    let dids = join_all(accounts.into_iter().enumerate().map(|(i, account)| {
        let chain = alice.as_account(account);
        let path = dir.join(format!("seller-{i}.json"));
        async move {
            let mut keystore = Keystore::open(&path)?;
            let start = Instant::now();
            create_did(&chain, &mut keystore).await?;
            Ok::<_, anyhow::Error>((chain, keystore, start.elapsed()))
        }
    }))
    .await;
    let phase1 = phase1.elapsed();
    let dids: Vec<_> = dids
        .into_iter()
        .collect::<anyhow::Result<_>>()
        .context("DID creation failed")?;

    // Not timed: the issuer verifies them (KYC is not a seller action).
    progress.step(format!("issuer attests {sellers} sellers"));
    let expires = retry("block number", || alice.finalized_number()).await? + 1_000_000;
    chainops::attest_all(alice, &ids, expires).await?;

    // Timed: every seller lists an offer and registers its stream at once.
    progress.step(format!("{sellers} sellers list offers and streams"));
    let terms = OfferTerms {
        licence: Licence::InternalUse,
        resale_allowed: false,
        verified_only: false,
        verified_discount: Perbill::from_percent(0),
        min_trust_score: 0,
        retention: 0,
        replication: ops,
    };
    let phase2 = Instant::now();
    let listed = join_all(
        dids.into_iter()
            .enumerate()
            .map(|(i, (chain, mut keystore, did))| {
                let terms = terms.clone();
                async move {
                    let start = Instant::now();
                    let offer = create_offer(&chain, i, period, terms).await?;
                    let offer_time = start.elapsed();
                    let stream = register_stream(&chain, &mut keystore, offer, i).await?;
                    let stream_time = start.elapsed() - offer_time;
                    Ok::<_, anyhow::Error>((
                        Seller {
                            index: i as u16,
                            chain,
                            keystore,
                            offer,
                            stream,
                            onboarding: did + start.elapsed(),
                        },
                        did,
                        offer_time,
                        stream_time,
                    ))
                }
            }),
    )
    .await;
    let phase2 = phase2.elapsed();
    let listed: Vec<_> = listed
        .into_iter()
        .collect::<anyhow::Result<_>>()
        .context("offer or stream registration failed")?;

    let cell = (sellers, ops, None, None);
    let secs = |d: &Duration| d.as_secs_f64();
    let mut total: Vec<f64> = listed.iter().map(|(s, ..)| secs(&s.onboarding)).collect();
    let mut did: Vec<f64> = listed.iter().map(|(_, d, ..)| secs(d)).collect();
    let mut offer: Vec<f64> = listed.iter().map(|(_, _, o, _)| secs(o)).collect();
    let mut stream: Vec<f64> = listed.iter().map(|(.., s)| secs(s)).collect();
    for (name, samples) in [
        ("onboard_seller", &mut total),
        ("onboard_did", &mut did),
        ("onboard_offer", &mut offer),
        ("onboard_stream", &mut stream),
    ] {
        let s = stats::summarize(samples).context("no sellers")?;
        rows.push(Row::grid(cell, &format!("{name}_mean"), s.mean, "s"));
        rows.push(Row::grid(cell, &format!("{name}_max"), s.max, "s"));
        rows.push(Row::grid(cell, &format!("{name}_min"), s.min, "s"));
    }
    rows.push(Row::grid(
        cell,
        "onboard_wall",
        phase1.as_secs_f64() + phase2.as_secs_f64(),
        "s",
    ));
    let mean = total.iter().sum::<f64>() / total.len().max(1) as f64;
    progress.note(format!(
        "{sellers} sellers × {ops} operators: onboarding per seller mean {mean:.2} s, max {:.2} s, wall {:.2} s",
        total.iter().copied().fold(0.0, f64::max),
        phase1.as_secs_f64() + phase2.as_secs_f64()
    ));
    Ok(listed.into_iter().map(|(s, ..)| s).collect())
}

/// Submissions of one onboarding step before giving up.
const ATTEMPTS: usize = 6;

/// Creates the DID of `chain`'s account. Under load the node sometimes cannot find the
/// header of the block the transaction is in, and the SDK then reports an error for a
/// transaction that may well be on chain: check, and submit again only if it is not. A
/// transaction dropped from the pool (its mortality ran out while blocks were full) is
/// submitted again too; the time it took counts.
async fn create_did(chain: &FastData, keystore: &mut Keystore) -> anyhow::Result<()> {
    let me = chain.account().account_id();
    for _ in 0..ATTEMPTS {
        match chain.create_did(keystore, Vec::new()).await {
            Ok(_) => return Ok(()),
            Err(e) if chainops::transient(&e) || chainops::dropped(&e) => {
                if retry("DID", || chain.did_document(&me)).await?.is_some() {
                    return Ok(());
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
    bail!("DID of {me} not created after {ATTEMPTS} attempts")
}

/// Lists seller `i`'s offer (see [`create_did`] for the retries).
async fn create_offer(
    chain: &FastData,
    i: usize,
    period: u32,
    terms: OfferTerms<u32>,
) -> anyhow::Result<OfferId> {
    let me = chain.account().account_id();
    for _ in 0..ATTEMPTS {
        match chain
            .create_offer(
                &format!("bench/seller-{i}/sensor"),
                PaymentMode::Stream { period },
                UNIT,
                terms.clone(),
            )
            .await
        {
            Ok(offer) => return Ok(offer),
            Err(e) if chainops::transient(&e) || chainops::dropped(&e) => {
                if let [listing] = retry("offers", || chain.offers_by_seller(&me))
                    .await?
                    .as_slice()
                {
                    return Ok(listing.id);
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
    bail!("offer of {me} not listed after {ATTEMPTS} attempts")
}

/// Registers the stream of seller `i`'s offer (see [`create_did`] for the retries).
async fn register_stream(
    chain: &FastData,
    keystore: &mut Keystore,
    offer: OfferId,
    i: usize,
) -> anyhow::Result<StreamId> {
    for _ in 0..ATTEMPTS {
        match chain
            .register_stream(
                keystore,
                offer,
                &format!("bench-{i}"),
                fastdata_sdk::seller::Hosting::DEMO,
            )
            .await
        {
            Ok(registered) => return Ok(registered.stream),
            Err(e) if chainops::transient(&e) || chainops::dropped(&e) => {
                let listed = retry("offer", || chain.offer(offer)).await?;
                if let Some(stream) = listed.and_then(|o| o.stream) {
                    if keystore.epoch_keys(&stream, 0).is_some() {
                        return Ok(stream);
                    }
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
    bail!("stream of offer {offer} not registered after {ATTEMPTS} attempts")
}

async fn connect_publisher(
    seller: &Seller,
    endpoints: &[OperatorEndpoint],
) -> anyhow::Result<StreamPublisher> {
    let keys = seller
        .keystore
        .epoch_keys(&seller.stream, 0)
        .context("the seller's keystore has no epoch-0 keys")?;
    let expiry = retry("block number", || seller.chain.finalized_number()).await? + 100_000;
    fastdata_e2e::connect_publisher(
        seller.chain.account(),
        seller.chain.genesis(),
        seller.stream,
        0,
        keys,
        endpoints,
        expiry,
        0,
        Duration::from_secs(90),
    )
    .await
    .with_context(|| format!("seller {}", seller.index))
}

#[allow(clippy::too_many_arguments)]
async fn run_group(
    spec: &GridSpec,
    net: &Network,
    ops: u32,
    sellers: u32,
    dir: &Path,
    progress: &Progress,
    rows: &mut Vec<Row>,
) -> anyhow::Result<()> {
    let alice = &net.alice;
    let period = access_blocks(spec);
    let mut group = onboard(alice, sellers, ops, period, dir, progress, rows).await?;

    // The buyer: funded, a DID (for sealed keys), one live purchase of every stream.
    progress.step("buyer purchases every stream".into());
    let buyer_account = Account::from_seed(&fastdata_e2e::seed(None)?);
    chainops::fund_all(
        alice,
        &[buyer_account.account_id()],
        (100 + 10 * u128::from(sellers)) * UNIT,
    )
    .await?;
    let buyer = alice.as_account(buyer_account);
    let mut buyer_keys = Keystore::open(dir.join("buyer.json"))?;
    create_did(&buyer, &mut buyer_keys).await?;
    let offers: Vec<OfferId> = group.iter().map(|s| s.offer).collect();
    chainops::buy_all(&buyer, &offers, 5 * UNIT).await?;
    let buyer_id = buyer.account().account_id();
    let purchase_ids: Vec<PurchaseId> =
        retry("purchases", || buyer.purchases_of_buyer(&buyer_id)).await?;
    progress.step("sellers deliver sealed keys".into());
    // Twice: the second pass delivers what a transient node error made the first one miss.
    for _ in 0..2 {
        let deliveries = join_all(
            group
                .iter()
                .map(|s| retry("key delivery", || s.chain.deliver_due_keys(&s.keystore))),
        )
        .await;
        for delivery in deliveries.into_iter().flatten().flatten() {
            if let Err(e) = delivery.result {
                tracing::warn!("key delivery for purchase {}: {e}", delivery.purchase);
            }
        }
    }
    let purchases = join_all(
        purchase_ids
            .iter()
            .map(|p| retry("keys", || buyer.wait_for_keys(*p, Duration::from_secs(90)))),
    )
    .await
    .into_iter()
    .collect::<anyhow::Result<Vec<_>>>()?;

    // Endpoints of every stream must be this network's operators.
    let ours: HashSet<AccountId> = net.endpoints().into_iter().map(|e| e.account).collect();
    let mut endpoints = Vec::new();
    for s in &group {
        let e = retry("stream endpoints", || s.chain.stream_endpoints(&s.stream)).await?;
        if e.len() != ops as usize || e.iter().any(|e| !ours.contains(&e.account)) {
            bail!(
                "stream of seller {} is assigned to {} operators, not to the {ops} started here; \
                 use a fresh dev chain (operators of earlier runs are still active)",
                s.index,
                e.len()
            );
        }
        endpoints.push(e);
    }

    progress.step("connecting publishers and receivers".into());
    let mut publishers: Vec<Option<StreamPublisher>> = join_all(
        group
            .iter()
            .zip(&endpoints)
            .map(|(s, e)| connect_publisher(s, e)),
    )
    .await
    .into_iter()
    .map(|p| p.map(Some))
    .collect::<anyhow::Result<_>>()?;

    let recorder: Recorder = Arc::new(Mutex::new(Seen::default()));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut followers = Vec::new();
    let restarts = Arc::new(AtomicU64::new(0));
    for purchase in &purchases {
        let index = group
            .iter()
            .position(|s| s.stream == purchase.stream)
            .context("a purchase of an unknown stream")?;
        let keys = retry("purchase keys", || {
            buyer.purchase_keys(&buyer_keys, purchase)
        })
        .await?;
        let expiry = retry("block number", || buyer.finalized_number()).await? + 100_000;
        let (account, genesis, id, stream) = (
            buyer.account().clone(),
            buyer.genesis(),
            purchase.id,
            purchase.stream,
        );
        let operators = endpoints[index].clone();
        let recorder = recorder.clone();
        let restarts = restarts.clone();
        let mut stop = stop_rx.clone();
        followers.push(tokio::spawn(async move {
            // Operators learn of the purchase from finalized blocks (the receiver waits for
            // them), and a receiver gives up when every operator failed it: start it again
            // where it stopped until told to stop.
            let mut first = Some(0);
            loop {
                let mut receiver = Receiver::new(
                    account.clone(),
                    genesis,
                    id,
                    Verifier::new(stream, keys.clone()),
                    operators.clone(),
                    expiry,
                    first,
                )
                .with_patience(OPERATOR_LAG_PATIENCE);
                let recorder = recorder.clone();
                let mut stopped = stop.clone();
                let result = receiver
                    .follow(
                        move |segment| {
                            record(&recorder, &segment.payload, false);
                            Ok(())
                        },
                        Duration::from_secs(5),
                        async move {
                            let _ = stopped.wait_for(|s| *s).await;
                        },
                    )
                    .await;
                if *stop.borrow() {
                    return;
                }
                if let Err(e) = result {
                    tracing::debug!("receiver of purchase {id} stopped: {e}; restarting");
                }
                restarts.fetch_add(1, Ordering::Relaxed);
                first = receiver.next_expected().or(first);
                tokio::select! {
                    _ = stop.wait_for(|s| *s) => return,
                    _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                }
            }
        }));
    }

    // Plain baseline clients: each seller to every broker, one subscriber per broker.
    let brokers: Vec<u16> = net.operators.iter().map(|o| o.broker.port).collect();
    let mut plain_pubs = Vec::new();
    for s in &group {
        let mut links = Vec::new();
        for (b, port) in brokers.iter().enumerate() {
            links.push(
                plain_client(
                    *port,
                    format!("bench-pub-{}-{}-{b}", sellers, s.index),
                    None,
                )
                .await?,
            );
        }
        plain_pubs.push(links);
    }
    let mut plain_subs = Vec::new();
    for (b, port) in brokers.iter().enumerate() {
        plain_subs.push(
            plain_client(
                *port,
                format!("bench-sub-{sellers}-{b}"),
                Some((recorder.clone(), brokers.len(), b)),
            )
            .await?,
        );
    }
    let plain_pubs = Arc::new(plain_pubs);

    let metrics_addrs: Vec<String> = net
        .operators
        .iter()
        .map(|o| o.endpoint.http_url.trim_start_matches("http://").to_owned())
        .collect();
    // FAST DATA segments published in this group: what every operator must have stored.
    let mut published = 0u64;
    let mut cell_id = 0u16;
    let mut outcome = Ok(());
    'cells: for &rate in &spec.rates {
        for rep in 0..spec.reps {
            cell_id += 1;
            let result = run_cell(
                spec,
                (sellers, ops, rate, rep),
                cell_id,
                &group,
                &mut publishers,
                &plain_pubs,
                &recorder,
                &metrics_addrs,
                &mut published,
                progress,
                rows,
            )
            .await;
            progress.cells.inc(1);
            if let Err(e) = result {
                outcome = Err(e.context(format!("rate {}", spec::rate_label(rate))));
                break 'cells;
            }
        }
    }
    rows.push(Row::grid(
        (sellers, ops, None, None),
        "receiver_restarts",
        restarts.load(Ordering::Relaxed) as f64,
        "restarts",
    ));
    let _ = stop_tx.send(true);
    for f in followers {
        let _ = tokio::time::timeout(Duration::from_secs(10), f).await;
    }
    for p in publishers.into_iter().flatten() {
        let _ = p.close(Duration::from_secs(5)).await;
    }
    drop(plain_subs);
    // Close the group's streams: operators host a bounded number, and the next group needs
    // the room. A stream left open only costs room, so a failure is reported, not fatal.
    let closed = join_all(
        group
            .iter()
            .map(|s| retry("closing a stream", || s.chain.close_stream(&s.stream))),
    )
    .await;
    for (s, result) in group.iter().zip(closed) {
        if let Err(e) = result {
            progress.note(format!("seller {}: {e:#}", s.index));
        }
    }
    group.clear();
    outcome
}

/// Ticks every `interval` until `duration` has passed (late ticks are caught up).
struct Pacer {
    ticker: tokio::time::Interval,
    end: tokio::time::Instant,
}

impl Pacer {
    fn new(interval: Duration, duration: Duration) -> Self {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        Self {
            ticker,
            end: tokio::time::Instant::now() + duration,
        }
    }

    /// Waits for the next tick; `false` once the duration is over.
    async fn tick(&mut self) -> bool {
        self.ticker.tick().await;
        tokio::time::Instant::now() < self.end
    }
}

#[allow(clippy::too_many_arguments)]
async fn run_cell(
    spec: &GridSpec,
    (sellers, ops, rate, rep): (u32, u32, u64, u32),
    cell_id: u16,
    group: &[Seller],
    publishers: &mut [Option<StreamPublisher>],
    plain_pubs: &Arc<Vec<Vec<PlainClient>>>,
    recorder: &Recorder,
    metrics_addrs: &[String],
    published: &mut u64,
    progress: &Progress,
    rows: &mut Vec<Row>,
) -> anyhow::Result<()> {
    let label = format!("{sellers} sellers × {ops} ops @ {}", spec::rate_label(rate));
    let (size, interval) = spec::message_plan(rate);
    let duration = spec.duration;
    let cell = (sellers, ops, Some(rate), Some(rep));
    *lock(recorder) = Seen {
        cell: cell_id,
        ..Seen::default()
    };
    let tag = |phase: u8, seller: u16| Tag::now(cell_id, phase, seller);

    // Warm-up: every receiver (plain and FAST DATA) hears from every seller. A receiver that
    // subscribed late catches up when the next warm-up shows it a gap, so repeat until all did.
    progress.step(format!("{label}: warm-up"));
    let warm_start = Instant::now();
    loop {
        let (plain_cold, fast_cold): (Vec<u16>, Vec<u16>) = {
            let seen = lock(recorder);
            (
                group
                    .iter()
                    .map(|s| s.index)
                    .filter(|i| !seen.plain_warm.contains(i))
                    .collect(),
                group
                    .iter()
                    .map(|s| s.index)
                    .filter(|i| !seen.fast_warm.contains(i))
                    .collect(),
            )
        };
        if plain_cold.is_empty() && fast_cold.is_empty() {
            break;
        }
        if warm_start.elapsed() > Duration::from_secs(120) {
            bail!(
                "after 120 s, plaintext receivers miss sellers {plain_cold:?} and FAST DATA \
                 receivers miss sellers {fast_cold:?}"
            );
        }
        for (s, links) in group.iter().zip(plain_pubs.iter()) {
            if plain_cold.contains(&s.index) {
                for link in links {
                    let topic = format!("bench/{}/data", s.index);
                    let payload = tag(WARMUP, s.index).payload(size);
                    link.client
                        .publish(topic, QoS::AtLeastOnce, false, payload)
                        .await?;
                }
            }
        }
        for (s, p) in group.iter().zip(publishers.iter_mut()) {
            if fast_cold.contains(&s.index) {
                let p = p.as_mut().context("publisher lost")?;
                p.publish(&tag(WARMUP, s.index).payload(size)).await?;
                *published += 1;
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // 1. Plaintext baseline.
    progress.step(format!("{label}: plaintext baseline"));
    let tasks: Vec<_> = group
        .iter()
        .enumerate()
        .map(|(k, s)| {
            let index = s.index;
            let pubs = plain_pubs.clone();
            tokio::spawn(async move {
                let topic = format!("bench/{index}/data");
                let mut pacer = Pacer::new(interval, duration);
                let mut sent = 0u64;
                while pacer.tick().await {
                    let payload = Tag::now(cell_id, PACED, index).payload(size);
                    for link in &pubs[k] {
                        link.client
                            .publish(topic.clone(), QoS::AtLeastOnce, false, payload.clone())
                            .await?;
                    }
                    sent += 1;
                }
                Ok::<_, anyhow::Error>(sent)
            })
        })
        .collect();
    let mut plain_sent = 0;
    for t in tasks {
        plain_sent += t.await.context("plain publisher task failed")??;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;

    // 2. FAST DATA, same rate and size.
    progress.step(format!("{label}: FAST DATA"));
    let tasks: Vec<_> = group
        .iter()
        .zip(publishers.iter_mut())
        .map(|(s, p)| {
            let index = s.index;
            let mut publisher = p.take();
            tokio::spawn(async move {
                let result = async {
                    let p = publisher.as_mut().context("publisher lost")?;
                    let mut pacer = Pacer::new(interval, duration);
                    let mut sent = 0u64;
                    while pacer.tick().await {
                        let payload = Tag::now(cell_id, PACED, index).payload(size);
                        p.publish(&payload).await?;
                        sent += 1;
                    }
                    Ok::<_, anyhow::Error>(sent)
                }
                .await;
                (publisher, result)
            })
        })
        .collect();
    let mut fast_sent = 0;
    for (slot, t) in publishers.iter_mut().zip(tasks) {
        let (publisher, result) = t.await.context("publisher task failed")?;
        *slot = publisher;
        fast_sent += result?;
    }
    *published += fast_sent;
    for p in publishers.iter().flatten() {
        p.flush(Duration::from_secs(60)).await?;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (mut fast, mut plain) = {
        let mut seen = lock(recorder);
        (
            std::mem::take(&mut seen.fast),
            std::mem::take(&mut seen.plain),
        )
    };
    let fast_received = fast.len();
    let plain_received = plain.len();

    // 3. Upload bursts: plaintext first, then FAST DATA (until persisted by every operator).
    progress.step(format!("{label}: plaintext upload burst"));
    let n = spec::burst_messages(size, spec.burst_cap);
    let plain_start = Instant::now();
    let tasks: Vec<_> = group
        .iter()
        .enumerate()
        .map(|(k, s)| {
            let index = s.index;
            let pubs = plain_pubs.clone();
            tokio::spawn(async move {
                let topic = format!("bench/{index}/data");
                let targets: Vec<u64> = pubs[k]
                    .iter()
                    .map(|l| l.acked.load(Ordering::Relaxed) + u64::from(n))
                    .collect();
                for _ in 0..n {
                    let payload = Tag::now(cell_id, BURST, index).payload(size);
                    for link in &pubs[k] {
                        link.client
                            .publish(topic.clone(), QoS::AtLeastOnce, false, payload.clone())
                            .await?;
                    }
                }
                let deadline = Instant::now() + Duration::from_secs(300);
                while !pubs[k]
                    .iter()
                    .zip(&targets)
                    .all(|(l, t)| l.acked.load(Ordering::Relaxed) >= *t)
                {
                    if Instant::now() > deadline {
                        bail!("plain burst of seller {index} not acknowledged within 300 s");
                    }
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                Ok::<_, anyhow::Error>(plain_start.elapsed())
            })
        })
        .collect();
    let mut plain_wall: f64 = 0.0;
    for t in tasks {
        plain_wall = plain_wall.max(t.await.context("plain burst task failed")??.as_secs_f64());
    }

    progress.step(format!("{label}: FAST DATA upload burst"));
    let stored_before = stored_counts(metrics_addrs).await?;
    let start = Instant::now();
    let tasks: Vec<_> = group
        .iter()
        .zip(publishers.iter_mut())
        .map(|(s, p)| {
            let index = s.index;
            let mut publisher = p.take();
            tokio::spawn(async move {
                let result = async {
                    let p = publisher.as_mut().context("publisher lost")?;
                    let begin = Instant::now();
                    for _ in 0..n {
                        let payload = Tag::now(cell_id, BURST, index).payload(size);
                        p.publish(&payload).await?;
                    }
                    p.flush(Duration::from_secs(300)).await?;
                    Ok::<_, anyhow::Error>((begin.elapsed(), start.elapsed()))
                }
                .await;
                (publisher, result)
            })
        })
        .collect();
    let mut per_seller = Vec::new();
    let mut wall: f64 = 0.0;
    for (slot, t) in publishers.iter_mut().zip(tasks) {
        let (publisher, result) = t.await.context("publisher task failed")?;
        *slot = publisher;
        let (own, since_start) = result?;
        per_seller.push(own.as_secs_f64());
        wall = wall.max(since_start.as_secs_f64());
    }
    let total_msgs = f64::from(n) * group.len() as f64;
    *published += u64::from(n) * group.len() as u64;
    // Every operator stores every segment (replication = operators).
    let persist_deadline = Instant::now() + Duration::from_secs(300);
    let missing = loop {
        let stored = stored_counts(metrics_addrs).await?;
        let missing = stored
            .iter()
            .zip(&stored_before)
            .map(|(now, before)| (total_msgs - (now - before)).max(0.0))
            .fold(0.0, f64::max);
        if missing == 0.0 || Instant::now() > persist_deadline {
            break missing;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let persisted_wall = start.elapsed().as_secs_f64();
    let skipped: u64 = publishers
        .iter()
        .flatten()
        .flat_map(|p| p.status())
        .map(|s| s.skipped)
        .sum();
    let mut seller_rates: Vec<f64> = per_seller
        .iter()
        .map(|t| f64::from(n) / t.max(1e-9))
        .collect();
    let times = stats::summarize(&mut per_seller).context("no sellers")?;
    let rates = stats::summarize(&mut seller_rates).context("no sellers")?;

    let d = duration.as_secs_f64();
    rows.push(Row::grid(cell, "message_size", size as f64, "bytes"));
    rows.push(Row::grid(
        cell,
        "message_interval",
        interval.as_secs_f64() * 1e3,
        "ms",
    ));
    rows.push(Row::grid(cell, "plain_sent", plain_sent as f64, "msgs"));
    rows.push(Row::grid(
        cell,
        "plain_received",
        plain_received as f64,
        "msgs",
    ));
    rows.push(Row::grid(
        cell,
        "plain_msgs_per_s",
        plain_received as f64 / d,
        "msgs/s",
    ));
    rows.push(Row::grid(cell, "fast_sent", fast_sent as f64, "msgs"));
    rows.push(Row::grid(
        cell,
        "fast_received",
        fast_received as f64,
        "msgs",
    ));
    rows.push(Row::grid(
        cell,
        "fast_msgs_per_s",
        fast_received as f64 / d,
        "msgs/s",
    ));
    let fast_s = stats::summarize(&mut fast);
    let plain_s = stats::summarize(&mut plain);
    if let Some(s) = &plain_s {
        rows.push(Row::grid(cell, "plain_latency_p50", s.p50, "ms"));
        rows.push(Row::grid(cell, "plain_latency_p99", s.p99, "ms"));
        rows.push(Row::grid(cell, "plain_latency_max", s.max, "ms"));
    }
    if let Some(s) = &fast_s {
        rows.push(Row::grid(cell, "fast_latency_p50", s.p50, "ms"));
        rows.push(Row::grid(cell, "fast_latency_p99", s.p99, "ms"));
        rows.push(Row::grid(cell, "fast_latency_max", s.max, "ms"));
    }
    if let (Some(f), Some(p)) = (&fast_s, &plain_s) {
        rows.push(Row::grid(
            cell,
            "overhead_latency_p50",
            overhead_pct(f.p50, p.p50),
            "%",
        ));
        rows.push(Row::grid(
            cell,
            "overhead_latency_p99",
            overhead_pct(f.p99, p.p99),
            "%",
        ));
    }
    rows.push(Row::grid(
        cell,
        "upload_msgs_per_seller",
        f64::from(n),
        "msgs",
    ));
    rows.push(Row::grid(cell, "upload_time", wall, "s"));
    rows.push(Row::grid(cell, "upload_time_seller_mean", times.mean, "s"));
    rows.push(Row::grid(cell, "upload_time_seller_max", times.max, "s"));
    rows.push(Row::grid(
        cell,
        "upload_msgs_per_s",
        total_msgs / wall.max(1e-9),
        "msgs/s",
    ));
    rows.push(Row::grid(cell, "plain_upload_time", plain_wall, "s"));
    let plain_rate = total_msgs / plain_wall.max(1e-9);
    let persisted_rate = (total_msgs - missing) / persisted_wall.max(1e-9);
    rows.push(Row::grid(
        cell,
        "plain_upload_msgs_per_s",
        plain_rate,
        "msgs/s",
    ));
    rows.push(Row::grid(cell, "fast_persisted_time", persisted_wall, "s"));
    rows.push(Row::grid(
        cell,
        "fast_persisted_msgs_per_s",
        persisted_rate,
        "msgs/s",
    ));
    rows.push(Row::grid(cell, "fast_not_persisted", missing, "msgs"));
    rows.push(Row::grid(cell, "fast_skipped", skipped as f64, "msgs"));
    rows.push(Row::grid(
        cell,
        "overhead_throughput",
        overhead_pct(plain_rate, persisted_rate),
        "%",
    ));
    rows.push(Row::grid(
        cell,
        "upload_msgs_per_s_seller_mean",
        rates.mean,
        "msgs/s",
    ));
    progress.note(format!(
        "{label}: latency p50/p99 FAST {} / plain {} ms; delivered {fast_received}/{fast_sent} (plain {plain_received}/{plain_sent}); upload {:.0} msgs/s",
        fast_s.map(|s| format!("{:.2}/{:.2}", s.p50, s.p99)).unwrap_or("-".into()),
        plain_s.map(|s| format!("{:.2}/{:.2}", s.p50, s.p99)).unwrap_or("-".into()),
        total_msgs / wall.max(1e-9)
    ));
    Ok(())
}

/// The `segments_in{result="stored"}` counter of each operator daemon at `host:port`.
async fn stored_counts(addrs: &[String]) -> anyhow::Result<Vec<f64>> {
    let mut out = Vec::new();
    for addr in addrs {
        let text = crate::operator::get_metrics(addr).await?;
        out.push(crate::operator::metric_value(&text, crate::operator::STORED).unwrap_or(0.0));
    }
    Ok(out)
}

/// How much longer (in percent) `fast` takes than `plain`: for latencies directly, for
/// throughputs pass `(plain rate, fast rate)` (time per message is the inverse).
pub fn overhead_pct(fast: f64, plain: f64) -> f64 {
    if plain <= 0.0 {
        return 0.0;
    }
    (fast - plain) / plain * 100.0
}

/// Where the grid keeps its brokers, databases and keystores under the run directory.
pub fn work_dir(run: &Path) -> PathBuf {
    run.join("work")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_round_trip_and_short_payloads_are_ignored() {
        let tag = Tag {
            cell: 7,
            phase: PACED,
            seller: 99,
            sent_us: 1_700_000_000_123_456,
        };
        let payload = tag.payload(1_000);
        assert_eq!(payload.len(), 1_000);
        assert_eq!(Tag::parse(&payload), Some(tag));
        assert_eq!(tag.payload(3).len(), spec::MIN_MESSAGE);
        assert_eq!(Tag::parse(&payload[..15]), None);
    }

    #[test]
    fn recorder_keeps_only_the_current_cell() {
        let recorder: Recorder = Arc::new(Mutex::new(Seen {
            cell: 2,
            ..Seen::default()
        }));
        let old = Tag {
            cell: 1,
            phase: PACED,
            seller: 0,
            sent_us: now_us(),
        };
        let cur = Tag {
            cell: 2,
            phase: PACED,
            seller: 0,
            sent_us: now_us(),
        };
        let warm = Tag {
            cell: 2,
            phase: WARMUP,
            seller: 3,
            sent_us: now_us(),
        };
        record(&recorder, &old.payload(16), false);
        record(&recorder, &cur.payload(16), false);
        record(&recorder, &cur.payload(16), true);
        record(&recorder, &warm.payload(16), false);
        let seen = lock(&recorder);
        assert_eq!(seen.fast.len(), 1);
        assert_eq!(seen.plain.len(), 1);
        assert!(seen.fast_warm.contains(&3));
        assert!(seen.plain_warm.is_empty());
    }

    #[test]
    fn overhead() {
        assert!((overhead_pct(11.0, 10.0) - 10.0).abs() < 1e-9);
        assert_eq!(overhead_pct(5.0, 0.0), 0.0);
        assert!(overhead_pct(9.0, 10.0) < 0.0);
    }
}

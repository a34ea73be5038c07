//! `fastdata-bench scale` (issue 19): the chain path at scale on a live dev chain.
//!
//! For each size n (default 10, 100 and 1,000) n fresh buyers (funded, with DIDs) buy one
//! period of a stream of its own:
//!
//! - **Purchases per block**: every buyer's purchase is signed beforehand and all are handed
//!   to the node at once (no waiting between them); the finalized blocks' `Escrow::Purchased`
//!   events give how many landed per block and how many blocks and seconds all took.
//! - **Key delivery**: epoch 0 sealed to every buyer and sent with [`FastData::submit_batch`]
//!   (`Utility::force_batch` transactions of up to 100 `deliver_keys` calls, all in flight
//!   at once); then, after an epoch rotation, one pass of the seller's key-delivery service
//!   ([`FastData::deliver_due_keys`], which also reads every purchase) delivers epoch 1.
//! - **Claim round**: one operator (registered without a daemon; it attested the stream head)
//!   claims every buyer's receipt: the storage operator's own `claim_calls` sent with
//!   [`FastData::submit_batch`] (batches of up to 100, all in flight), as the daemon's
//!   `ChainClaimSubmitter` does; blocks and seconds until all are in.
//!
//! Then **onboarding** of `--sellers` (default 100) fresh sellers, each phase for all sellers at
//! once: DIDs; the issuer's attestations (one batch); offers; streams (each needs its offer's
//! id, so it follows the offer). Blocks count from the finalized block when a phase started to
//! the block holding its last transaction (1 = the next block).

use std::{
    collections::HashMap,
    fmt::Write as _,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::{bail, Context};
use fastdata_e2e::UNIT;
use fastdata_operator::{claims::claim_calls, receipts::Claim};
use fastdata_primitives::{
    api_market::{stream_id, Licence, OfferTerms},
    envelope::EpochKeys,
    receipt::Receipt,
    AccountId, BlockNumber, OfferId, PaymentMode, PurchaseId,
};
use fastdata_sdk::{
    chain::{account_id, bounded, fastdata, lookup, Payload, RuntimeCall, RuntimeEvent, Wait},
    keystore::Keystore,
    seller::Hosting,
    Account, FastData,
};
use indicatif::ProgressBar;
use sp_core::{Pair, H256};
use sp_runtime::Perbill;
use subxt::utils::Static;

use crate::{
    devchain::{self, BlockEvents},
    plot::{self, Series},
    report::Run,
    results::{meta_value, Row},
};

/// Issue 19: most blocks for 1,000 key deliveries and for a 1,000-purchase claim round.
pub const TARGET_BLOCKS: f64 = 5.0;
/// Issue 19: most blocks for 100 sellers to onboard.
pub const TARGET_ONBOARD_BLOCKS: f64 = 2.0;
/// The stream head the operator attests; receipts acknowledge every segment below it.
const HEAD: u64 = 10;
/// How long one phase may take before the run gives up on it.
const PHASE_TIMEOUT: Duration = Duration::from_secs(600);

/// What to run.
pub struct ScaleBench {
    /// Node URL.
    pub url: String,
    /// Purchase counts, ascending.
    pub sizes: Vec<usize>,
    /// Sellers to onboard (0: none).
    pub sellers: usize,
    /// Where the seller's keystore goes.
    pub work: PathBuf,
}

fn terms() -> OfferTerms<BlockNumber> {
    OfferTerms {
        licence: Licence::InternalUse,
        resale_allowed: false,
        verified_only: false,
        verified_discount: Perbill::zero(),
        min_trust_score: 0,
        retention: 1_000,
        replication: 1,
    }
}

fn row(size: usize, metric: &str, value: f64, unit: &str) -> Row {
    Row {
        experiment: "scale".into(),
        sellers: Some(size as u32),
        operators: None,
        rate: None,
        rep: None,
        metric: metric.into(),
        value,
        unit: unit.into(),
    }
}

/// Blocks (from `b0`) and seconds (from `t0`) until the `want`-th event `pick` matches, the
/// blocks read (with what `pick` kept of each match), and whether all arrived.
struct Phase<T> {
    blocks: Option<BlockNumber>,
    seconds: f64,
    read: Vec<BlockEvents<T>>,
    seen: usize,
    failed: usize,
}

async fn phase<T>(
    chain: &FastData,
    b0: BlockNumber,
    t0: Instant,
    pick: impl Fn(&RuntimeEvent) -> Option<T>,
    want: usize,
) -> anyhow::Result<Phase<T>> {
    let (read, last) = devchain::watch_events(chain, b0, pick, want, PHASE_TIMEOUT).await?;
    let seen = read.iter().map(|b| b.matched.len()).sum();
    let failed = read.iter().map(|b| b.failed).sum();
    Ok(Phase {
        blocks: devchain::blocks_until_last(b0, &read),
        seconds: last.map_or(f64::NAN, |t| t.duration_since(t0).as_secs_f64()),
        read,
        seen,
        failed,
    })
}

/// Signs one transaction `tx(i, account)` per account (each at its `nonce`), all against
/// one block.
async fn sign_all<P, F>(
    chain: &FastData,
    accounts: &[Account],
    nonce: u64,
    mut tx: F,
) -> anyhow::Result<Vec<Vec<u8>>>
where
    P: Payload,
    F: FnMut(usize, &Account) -> anyhow::Result<P>,
{
    let signing = devchain::Signing::new(chain).await?;
    accounts
        .iter()
        .enumerate()
        .map(|(i, account)| signing.sign(account, nonce, &tx(i, account)?))
        .collect()
}

/// Any `Did::DidCreated`.
fn did_created(event: &RuntimeEvent) -> Option<()> {
    matches!(
        event,
        RuntimeEvent::Did(fastdata::did::Event::DidCreated { .. })
    )
    .then_some(())
}

/// The purchase and buyer of an `Escrow::Purchased`.
fn purchased(event: &RuntimeEvent) -> Option<(PurchaseId, AccountId)> {
    match event {
        RuntimeEvent::Escrow(fastdata::escrow::Event::Purchased {
            purchase, buyer, ..
        }) => Some((*purchase, account_id(buyer))),
        _ => None,
    }
}

/// Any `Escrow::KeysDelivered`.
fn keys_delivered(event: &RuntimeEvent) -> Option<()> {
    matches!(
        event,
        RuntimeEvent::Escrow(fastdata::escrow::Event::KeysDelivered { .. })
    )
    .then_some(())
}

/// The offer and seller of an `Offers::OfferCreated`.
fn offer_created(event: &RuntimeEvent) -> Option<(OfferId, AccountId)> {
    match event {
        RuntimeEvent::Offers(fastdata::offers::Event::OfferCreated { offer, seller, .. }) => {
            Some((*offer, account_id(seller)))
        }
        _ => None,
    }
}

/// The seller of an `Offers::StreamRegistered`.
fn stream_registered(event: &RuntimeEvent) -> Option<AccountId> {
    match event {
        RuntimeEvent::Offers(fastdata::offers::Event::StreamRegistered { seller, .. }) => {
            Some(account_id(seller))
        }
        _ => None,
    }
}

async fn submit(chain: &FastData, what: &str, txs: Vec<Vec<u8>>) -> anyhow::Result<()> {
    let n = txs.len();
    let (accepted, refused) = devchain::submit_all(chain, txs).await?;
    if accepted < n {
        bail!(
            "{what}: the node took {accepted} of {n} transactions; first refusal: {}",
            refused.unwrap_or_default()
        );
    }
    Ok(())
}

/// Fresh accounts with DIDs (X25519 keys generated here), funded by `alice`, with their DIDs'
/// key-agreement keys.
async fn with_dids(
    alice: &FastData,
    n: usize,
    amount: u128,
) -> anyhow::Result<Vec<(Account, [u8; 32])>> {
    let accounts = devchain::accounts(n)?;
    let ids: Vec<AccountId> = accounts.iter().map(Account::account_id).collect();
    devchain::fund(alice, &ids, amount).await?;
    let keys: Vec<[u8; 32]> = (0..n)
        .map(|_| fastdata_primitives::sealed::generate_x25519_keypair().1)
        .collect();
    let b0 = devchain::head(alice).await?;
    let txs = sign_all(alice, &accounts, 0, |i, _| {
        Ok(fastdata::tx().did().create_did(keys[i], Vec::new()))
    })
    .await?;
    submit(alice, "DIDs", txs).await?;
    let done = phase(alice, b0, Instant::now(), did_created, n).await?;
    if done.seen < n {
        bail!("only {} of {n} DIDs created", done.seen);
    }
    Ok(accounts.into_iter().zip(keys).collect())
}

/// Runs the benchmark, appending rows to `rows`.
pub async fn run(cfg: &ScaleBench, bar: &ProgressBar, rows: &mut Vec<Row>) -> anyhow::Result<()> {
    let alice = FastData::connect(&cfg.url, Account::from_suri("//Alice")?).await?;
    std::fs::create_dir_all(&cfg.work)?;

    bar.set_message("seller, operator and stream");
    let operator = alice.as_account(Account::generate()?.0);
    let op_id = operator.account().account_id();
    let seller = alice.as_account(Account::generate()?.0);
    let seller_id = seller.account().account_id();
    devchain::fund(&alice, &[op_id.clone(), seller_id.clone()], 10_000 * UNIT).await?;
    devchain::register_operator(&operator).await?;
    let heartbeats = devchain::keep_alive(operator.clone());
    rounds(cfg, &alice, &operator, &seller, bar, rows).await?;
    drop(heartbeats);
    if cfg.sellers > 0 {
        onboard(&alice, cfg.sellers, true, bar, rows).await?;
        onboard(&alice, cfg.sellers, false, bar, rows).await?;
    }
    Ok(())
}

/// The seller's stream and the purchase, key and claim rounds of every size.
async fn rounds(
    cfg: &ScaleBench,
    alice: &FastData,
    operator: &FastData,
    seller: &FastData,
    bar: &ProgressBar,
    rows: &mut Vec<Row>,
) -> anyhow::Result<()> {
    let op_id = operator.account().account_id();
    let seller_id = seller.account().account_id();
    let mut keystore = Keystore::open(cfg.work.join("seller.json"))?;
    seller.create_did(&mut keystore, Vec::new()).await?;
    let expires = devchain::head(alice).await? + 1_000_000;
    alice
        .attest_credential(&seller_id, b"KYC", H256::repeat_byte(1), expires)
        .await?;
    bar.inc(1);

    let genesis = alice.genesis();
    for &n in &cfg.sizes {
        // A stream of its own per size (long periods: nothing settles meanwhile), its head
        // attested by the operator.
        bar.set_message(format!("{n} buyers: stream, funding and DIDs"));
        let offer = seller
            .create_offer(
                &format!("bench/scale/{n}"),
                PaymentMode::Stream { period: 1_000 },
                UNIT,
                terms(),
            )
            .await?;
        let stream = seller
            .register_stream(
                &mut keystore,
                offer,
                &format!("bench-scale-{n}"),
                Hosting::DEMO,
            )
            .await?;
        if !stream.operators.contains(&op_id) {
            bail!(
                "the stream is hosted by other operators than the bench's; use a fresh dev chain"
            );
        }
        devchain::attest_head(operator, stream.stream, HEAD, HEAD * 1_024).await?;
        let buyers = with_dids(alice, n, 20 * UNIT).await?;

        // Purchases: all signed, then all handed over at once.
        bar.set_message(format!("{n} purchases"));
        let accounts: Vec<Account> = buyers.iter().map(|(a, _)| a.clone()).collect();
        let txs = sign_all(alice, &accounts, 1, |_, _| {
            Ok(fastdata::tx().escrow().purchase(offer, 1, 2 * UNIT))
        })
        .await?;
        if let Some(tx) = txs.first() {
            let capacity = devchain::capacity(&cfg.url, alice, tx).await?;
            let (by_time, by_proof) = capacity.fit();
            rows.push(row(
                n,
                "purchase_ref_time_ms",
                capacity.tx.ref_time as f64 / 1e9,
                "ms",
            ));
            rows.push(row(
                n,
                "purchase_proof_kb",
                capacity.tx.proof_size as f64 / 1e3,
                "KB",
            ));
            rows.push(row(
                n,
                "block_ref_time_ms",
                capacity.block.ref_time as f64 / 1e9,
                "ms",
            ));
            rows.push(row(
                n,
                "block_proof_kb",
                capacity.block.proof_size as f64 / 1e3,
                "KB",
            ));
            rows.push(row(n, "purchase_fit_by_time", by_time as f64, "purchases"));
            rows.push(row(
                n,
                "purchase_fit_by_proof",
                by_proof as f64,
                "purchases",
            ));
        }
        let b0 = devchain::head(alice).await?;
        let t0 = Instant::now();
        submit(alice, "purchases", txs).await?;
        let bought = phase(alice, b0, t0, purchased, n).await?;
        let per_block: Vec<usize> = bought
            .read
            .iter()
            .map(|b| b.matched.len())
            .filter(|c| *c > 0)
            .collect();
        rows.push(row(n, "purchase_landed", bought.seen as f64, "purchases"));
        rows.push(row(
            n,
            "purchase_failed",
            bought.failed as f64,
            "extrinsics",
        ));
        if let Some(b) = bought.blocks {
            rows.push(row(n, "purchase_blocks", f64::from(b), "blocks"));
        }
        rows.push(row(n, "purchase_seconds", bought.seconds, "s"));
        rows.push(row(
            n,
            "purchase_max_per_block",
            per_block.iter().copied().max().unwrap_or(0) as f64,
            "purchases",
        ));
        for (i, b) in bought.read.iter().enumerate() {
            let mut r = row(n, "purchase_per_block", b.matched.len() as f64, "purchases");
            r.rep = Some(i as u32);
            rows.push(r);
        }
        if bought.seen < n {
            bail!("{n} purchases: only {} landed", bought.seen);
        }
        let mut purchase_of: HashMap<AccountId, PurchaseId> = HashMap::new();
        for (id, buyer) in bought.read.iter().flat_map(|b| &b.matched) {
            purchase_of.insert(buyer.clone(), *id);
        }
        bar.inc(1);

        // Keys of epoch 0: sealed to each buyer and sent with `submit_batch`.
        bar.set_message(format!("{n} key deliveries"));
        let epoch0 = keystore
            .epoch_keys(&stream.stream, 0)
            .context("epoch-0 keys missing from the seller's keystore")?;
        let mut calls = Vec::with_capacity(n);
        for (buyer, key) in &buyers {
            let id = *purchase_of
                .get(&buyer.account_id())
                .context("a buyer's purchase is missing")?;
            let sealed = fastdata_primitives::sealed::seal(key, id, 0, &epoch0)
                .map_err(|e| anyhow::anyhow!("cannot seal keys: {e:?}"))?;
            calls.push(RuntimeCall::Escrow(fastdata::escrow::Call::deliver_keys {
                purchase: id,
                epoch: 0,
                sealed: bounded(sealed),
            }));
        }
        let b0 = devchain::head(alice).await?;
        let t0 = Instant::now();
        let results = seller.submit_batch(&calls, Wait::InBlock).await;
        let seconds = t0.elapsed().as_secs_f64();
        batch_rows(rows, n, "keys", &results, b0, seconds);
        bar.inc(1);

        // Keys of epoch 1: one pass of the seller's key-delivery service (reads every
        // purchase of the offer, seals, sends batches, waits for finality).
        bar.set_message(format!("{n} key deliveries by the service"));
        devchain::again!(
            "epoch rotation",
            seller.rotate_epoch(&mut keystore, &stream.stream)
        )?;
        let b0 = devchain::head(alice).await?;
        let t0 = Instant::now();
        let delivered = devchain::again!("key-delivery pass", seller.deliver_due_keys(&keystore))?;
        let pass = t0.elapsed().as_secs_f64();
        let ok = delivered.iter().filter(|d| d.result.is_ok()).count();
        let keys = phase(alice, b0, t0, keys_delivered, ok).await?;
        let first = keys
            .read
            .iter()
            .find(|b| !b.matched.is_empty())
            .map(|b| b.number);
        rows.push(row(n, "service_delivered", ok as f64, "purchases"));
        if let (Some(last), Some(first)) = (keys.blocks, first) {
            rows.push(row(n, "service_blocks", f64::from(last), "blocks"));
            // From the block before the first delivery to the last one.
            rows.push(row(
                n,
                "service_batch_blocks",
                f64::from((b0 + last).saturating_sub(first) + 1),
                "blocks",
            ));
        }
        rows.push(row(n, "service_seconds", pass, "s"));
        if let Some(bad) = delivered.iter().find(|d| d.result.is_err()) {
            tracing::warn!(
                "key delivery to purchase {} failed: {:?}",
                bad.purchase,
                bad.result
            );
        }
        bar.inc(1);

        // Claim round: every buyer's receipt for all segments, claimed by the operator.
        bar.set_message(format!("{n} claims"));
        let claims: Vec<Claim> = buyers
            .iter()
            .filter_map(|(buyer, _)| {
                let id = *purchase_of.get(&buyer.account_id())?;
                let receipt = Receipt {
                    purchase: id,
                    operator: op_id.clone(),
                    up_to_sequence: HEAD - 1,
                    bytes: HEAD * 1_024,
                    nonce: 1,
                };
                let signature = buyer.pair().sign(&receipt.signing_payload(&genesis));
                Some(Claim { receipt, signature })
            })
            .collect();
        let calls: Vec<RuntimeCall> = claim_calls(&claims);
        let b0 = devchain::head(alice).await?;
        let t0 = Instant::now();
        let results = operator.submit_batch(&calls, Wait::InBlock).await;
        let seconds = t0.elapsed().as_secs_f64();
        batch_rows(rows, n, "claims", &results, b0, seconds);
        bar.inc(1);
    }
    Ok(())
}

/// Rows of a `submit_batch` of `n` calls started at block `b0`: calls accepted, batch
/// transactions, blocks until the last one, seconds.
fn batch_rows(
    rows: &mut Vec<Row>,
    n: usize,
    what: &str,
    results: &[Result<fastdata_sdk::chain::Included, fastdata_sdk::Error>],
    b0: BlockNumber,
    seconds: f64,
) {
    let ok: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    let txs: std::collections::HashSet<_> = ok.iter().map(|i| i.extrinsic_hash).collect();
    rows.push(row(
        n,
        &format!("{what}_accepted"),
        ok.len() as f64,
        "calls",
    ));
    rows.push(row(
        n,
        &format!("{what}_transactions"),
        txs.len() as f64,
        "transactions",
    ));
    if let Some(last) = ok.iter().map(|i| i.block_number).max() {
        rows.push(row(
            n,
            &format!("{what}_blocks"),
            f64::from(last.saturating_sub(b0)),
            "blocks",
        ));
    }
    rows.push(row(n, &format!("{what}_seconds"), seconds, "s"));
    if let Some(Err(e)) = results.iter().find(|r| r.is_err()) {
        tracing::warn!("{what}: a call failed: {e}");
    }
}

/// Onboards `n` fresh sellers, each phase for all at once.
async fn onboard(
    alice: &FastData,
    n: usize,
    one_tx: bool,
    bar: &ProgressBar,
    rows: &mut Vec<Row>,
) -> anyhow::Result<()> {
    // Metric prefix: `onboard1` lists offer and stream in one transaction, `onboard` in two.
    let p = if one_tx { "onboard1" } else { "onboard" };
    bar.set_message(format!("onboarding {n} sellers: DIDs"));
    let sellers = devchain::accounts(n)?;
    let ids: Vec<AccountId> = sellers.iter().map(Account::account_id).collect();
    devchain::fund(alice, &ids, 100 * UNIT).await?;
    let started = Instant::now();
    let first = devchain::head(alice).await?;

    let txs = sign_all(alice, &sellers, 0, |_, _| {
        let (_secret, public) = fastdata_primitives::sealed::generate_x25519_keypair();
        Ok(fastdata::tx().did().create_did(public, Vec::new()))
    })
    .await?;
    let b0 = devchain::head(alice).await?;
    let t0 = Instant::now();
    submit(alice, "seller DIDs", txs).await?;
    let dids = phase(alice, b0, t0, did_created, n).await?;
    record(rows, n, &format!("{p}_did"), &dids);

    bar.set_message(format!("onboarding {n} sellers: attestations"));
    let expires = devchain::head(alice).await? + 1_000_000;
    let calls: Vec<RuntimeCall> = ids
        .iter()
        .map(|who| {
            RuntimeCall::Did(fastdata::did::Call::attest_credential {
                subject: lookup(who),
                credential_type: b"KYC".to_vec(),
                claim_hash: H256::repeat_byte(1),
                expires_at: expires,
            })
        })
        .collect();
    let b0 = devchain::head(alice).await?;
    let t0 = Instant::now();
    let attested = alice.submit_batch(&calls, Wait::InBlock).await;
    let ok: Vec<_> = attested.iter().filter_map(|r| r.as_ref().ok()).collect();
    rows.push(row(
        n,
        &format!("{p}_attest_ok"),
        ok.len() as f64,
        "credentials",
    ));
    if let Some(last) = ok.iter().map(|i| i.block_number).max() {
        rows.push(row(
            n,
            &format!("{p}_attest_blocks"),
            f64::from(last.saturating_sub(b0)),
            "blocks",
        ));
    }
    rows.push(row(
        n,
        &format!("{p}_attest_seconds"),
        t0.elapsed().as_secs_f64(),
        "s",
    ));
    if ok.len() < n {
        bail!("only {} of {n} attestations landed", ok.len());
    }
    if one_tx {
        return list_in_one(alice, &sellers, started, first, bar, rows).await;
    }

    bar.set_message(format!("onboarding {n} sellers: offers and streams"));
    // Offers signed beforehand (a seller's next nonce is known); streams need the offers' ids.
    let txs = sign_all(alice, &sellers, 1, |i, _| {
        Ok(fastdata::tx().offers().create_offer(
            bounded(format!("bench/onboard/{i}").into_bytes()),
            Static(PaymentMode::<BlockNumber>::Stream { period: 100 }),
            UNIT,
            Static(terms()),
        ))
    })
    .await?;
    let after_attest = devchain::head(alice).await?;
    let t_attest = Instant::now();
    let t0 = t_attest;
    submit(alice, "offers", txs).await?;
    let offers = phase(alice, after_attest, t0, offer_created, n).await?;
    record(rows, n, "onboard_offer", &offers);
    let mut offer_of: HashMap<AccountId, OfferId> = HashMap::new();
    for (offer, seller) in offers.read.iter().flat_map(|b| &b.matched) {
        offer_of.insert(seller.clone(), *offer);
    }
    // Streams; those the runtime refuses (a full assignment queue) are sent again.
    let b_streams = devchain::head(alice).await?;
    let t_streams = Instant::now();
    let timestamp = fastdata_sdk::now_millis();
    let nonces: HashMap<AccountId, u64> = ids.iter().map(|id| (id.clone(), 2)).collect();
    let mut missing: Vec<usize> = (0..n).collect();
    let mut registered = std::collections::HashSet::new();
    let mut last_block = None;
    let mut round = 0u32;
    while !missing.is_empty() && round < 10 {
        round += 1;
        let subset: Vec<Account> = missing.iter().map(|&i| sellers[i].clone()).collect();
        let mut txs = Vec::with_capacity(subset.len());
        let signing = devchain::Signing::new(alice).await?;
        for (&i, seller) in missing.iter().zip(&subset) {
            let offer = *offer_of
                .get(&seller.account_id())
                .context("a seller's offer is missing")?;
            let nonce = match nonces.get(&seller.account_id()) {
                Some(n) if round == 1 => *n,
                _ => alice.as_account(seller.clone()).pool_nonce().await?,
            };
            let commitment = EpochKeys::generate()?.commitment();
            let name = format!("bench-onboard-{i}").into_bytes();
            // As `FastData::register_stream`: the stream and its hosting funds in one
            // `Utility::batch_all`.
            let stream = stream_id(&seller.account_id(), &name, timestamp);
            let hosting = Hosting::DEMO;
            let calls = vec![
                RuntimeCall::Offers(fastdata::offers::Call::register_stream {
                    offer,
                    name: bounded(name),
                    timestamp,
                    commitment,
                }),
                hosting.call(&stream),
            ];
            let tx = fastdata::tx().utility().batch_all(calls);
            txs.push(signing.sign(seller, nonce, &tx)?);
        }
        let b0 = devchain::head(alice).await?;
        submit(alice, "streams", txs).await?;
        let streams = phase(alice, b0, t_streams, stream_registered, subset.len()).await?;
        if round == 1 {
            rows.push(row(
                n,
                "onboard_stream_first_round",
                streams.seen as f64,
                "streams",
            ));
            let mut refused = row(
                n,
                "onboard_stream_refused",
                streams.failed as f64,
                "streams",
            );
            if let Some(error) = streams.read.iter().find_map(|b| b.first_failure.as_ref()) {
                refused.unit = devchain::describe_failure(alice, error).await;
            }
            rows.push(refused);
        }
        for seller in streams.read.iter().flat_map(|b| &b.matched) {
            registered.insert(seller.clone());
        }
        if let Some(b) = streams.read.iter().rev().find(|b| !b.matched.is_empty()) {
            last_block = Some(b.number);
        }
        missing.retain(|&i| !registered.contains(&sellers[i].account_id()));
        if streams.seen + streams.failed < subset.len() {
            break;
        }
    }
    rows.push(row(n, "onboard_stream_rounds", f64::from(round), "rounds"));
    rows.push(row(
        n,
        "onboard_stream_landed",
        registered.len() as f64,
        "streams",
    ));
    if let Some(last) = last_block {
        rows.push(row(
            n,
            "onboard_stream_blocks",
            f64::from(last.saturating_sub(b_streams)),
            "blocks",
        ));
    }
    rows.push(row(
        n,
        "onboard_stream_seconds",
        t_streams.elapsed().as_secs_f64(),
        "s",
    ));
    if let Some(last) = last_block {
        rows.push(row(
            n,
            "onboard_after_attest_blocks",
            f64::from(last.saturating_sub(after_attest)),
            "blocks",
        ));
        rows.push(row(
            n,
            "onboard_total_blocks",
            f64::from(last.saturating_sub(first)),
            "blocks",
        ));
    }
    rows.push(row(
        n,
        "onboard_after_attest_seconds",
        t_attest.elapsed().as_secs_f64(),
        "s",
    ));
    rows.push(row(
        n,
        "onboard_total_seconds",
        started.elapsed().as_secs_f64(),
        "s",
    ));
    bar.inc(1);
    if !missing.is_empty() {
        bail!("{} of {n} streams were never registered", missing.len());
    }
    Ok(())
}

/// Every seller lists its offer with its stream and the stream's hosting funds in one
/// transaction (`Utility::batch_all` of `Offers::create_offer_with_stream` and
/// `Operators::fund_hosting`, as `FastData::list_stream`), signed before the attestation
/// landed and sent after it.
async fn list_in_one(
    alice: &FastData,
    sellers: &[Account],
    started: Instant,
    first: BlockNumber,
    bar: &ProgressBar,
    rows: &mut Vec<Row>,
) -> anyhow::Result<()> {
    let n = sellers.len();
    bar.set_message(format!(
        "onboarding {n} sellers: offer and stream in one transaction"
    ));
    let timestamp = fastdata_sdk::now_millis();
    let hosting = Hosting::DEMO;
    let signing = devchain::Signing::new(alice).await?;
    let mut txs = Vec::with_capacity(n);
    for (i, seller) in sellers.iter().enumerate() {
        let name = format!("bench-onboard1-{i}").into_bytes();
        let stream = stream_id(&seller.account_id(), &name, timestamp);
        let calls = vec![
            RuntimeCall::Offers(fastdata::offers::Call::create_offer_with_stream {
                topic: bounded(format!("bench/onboard1/{i}").into_bytes()),
                mode: Static(PaymentMode::<BlockNumber>::Stream { period: 100 }),
                price: UNIT,
                terms: Static(terms()),
                name: bounded(name),
                timestamp,
                commitment: EpochKeys::generate()?.commitment(),
            }),
            hosting.call(&stream),
        ];
        let tx = fastdata::tx().utility().batch_all(calls);
        txs.push(signing.sign(seller, 1, &tx)?);
    }
    let after_attest = devchain::head(alice).await?;
    let t0 = Instant::now();
    submit(alice, "listings", txs).await?;
    let listed = phase(alice, after_attest, t0, stream_registered, n).await?;
    record(rows, n, "onboard1_listing", &listed);
    if let Some(error) = listed.read.iter().find_map(|b| b.first_failure.as_ref()) {
        let mut refused = row(n, "onboard1_refused", listed.failed as f64, "listings");
        refused.unit = devchain::describe_failure(alice, error).await;
        rows.push(refused);
    }
    if let Some(last) = listed.read.iter().rev().find(|b| !b.matched.is_empty()) {
        rows.push(row(
            n,
            "onboard1_after_attest_blocks",
            f64::from(last.number.saturating_sub(after_attest)),
            "blocks",
        ));
        rows.push(row(
            n,
            "onboard1_total_blocks",
            f64::from(last.number.saturating_sub(first)),
            "blocks",
        ));
    }
    rows.push(row(n, "onboard1_after_attest_seconds", listed.seconds, "s"));
    rows.push(row(
        n,
        "onboard1_total_seconds",
        started.elapsed().as_secs_f64(),
        "s",
    ));
    bar.inc(1);
    if listed.seen < n {
        bail!("only {} of {n} sellers listed", listed.seen);
    }
    Ok(())
}

fn record<T>(rows: &mut Vec<Row>, n: usize, what: &str, p: &Phase<T>) {
    rows.push(row(
        n,
        &format!("{what}_landed"),
        p.seen as f64,
        "transactions",
    ));
    if let Some(b) = p.blocks {
        rows.push(row(n, &format!("{what}_blocks"), f64::from(b), "blocks"));
    }
    rows.push(row(n, &format!("{what}_seconds"), p.seconds, "s"));
}

/// Steps of the progress bar: setup, four per size, two onboardings.
pub fn steps(cfg: &ScaleBench) -> u64 {
    1 + 4 * cfg.sizes.len() as u64 + 2 * u64::from(cfg.sellers > 0)
}

fn value(run: &Run, size: u32, name: &str) -> Option<f64> {
    run.table
        .rows
        .iter()
        .find(|r| {
            r.experiment == "scale"
                && r.sellers == Some(size)
                && r.metric == name
                && r.rep.is_none()
        })
        .map(|r| r.value)
        .filter(|v| v.is_finite())
}

fn fmt(v: Option<f64>, digits: usize) -> String {
    v.map(|v| format!("{v:.digits$}"))
        .unwrap_or_else(|| "–".into())
}

fn verdict(ok: Option<bool>) -> &'static str {
    match ok {
        Some(true) => "met",
        Some(false) => "**missed**",
        None => "not measured",
    }
}

/// The report section of a scale run, with its figures drawn into `<run>/plots`.
pub fn section(out: &mut String, run: &Run, report: &Path) -> anyhow::Result<()> {
    let name = run
        .dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let m = |k: &str| meta_value(&run.meta, k).unwrap_or("?").to_owned();
    let sizes: Vec<u32> = {
        let mut s: Vec<u32> = run
            .table
            .rows
            .iter()
            .filter(|r| r.experiment == "scale" && r.metric.starts_with("purchase_"))
            .filter_map(|r| r.sellers)
            .collect();
        s.sort_unstable();
        s.dedup();
        s
    };
    let _ = writeln!(
        out,
        "## The chain path at scale (`fastdata-bench scale`, run `{name}`, issue 19)\n\n\
         Command: `{}`. A dev node of its own (`fastdata-node --dev --dev-block-time 1000`, \
         blocks sealed and finalized every second). Per size n: a stream offer of its own; n \
         fresh buyers (funded, DIDs) each buy one period, all purchases signed first and then \
         handed to the node at once. **Keys**: epoch 0 sealed to every buyer and sent with \
         `FastData::submit_batch` (`Utility::force_batch` of ≤ 100 `deliver_keys`, all batches \
         in flight). **Key service**: after an epoch rotation, one pass of the seller's \
         key-delivery service (`deliver_due_keys`: reads every purchase of the offer, seals, \
         sends the same batches, waits for finality) delivers epoch 1 to all n. **Claims**: one \
         operator (registered without a daemon, stream head attested) claims every buyer's \
         receipt with the storage operator's `claim_calls` through `submit_batch` (≤ 100 per \
         batch, all in flight), as its `ChainClaimSubmitter` does. Blocks count from the \
         finalized head when the step started to the block holding its last transaction (1 = \
         the next block); for the service pass also from the block before its first delivery \
         (its batches on chain, without its reads). Seconds are wall time until the step \
         returned (purchases: until the last was seen finalized).\n",
        m("command")
    );
    out.push_str(
        "| purchases | purchases landed | purchase blocks | purchase s | max purchases in a block | keys delivered | key txs | key blocks | key s | service: delivered | service blocks (batches only) | service s | claims accepted | claim txs | claim blocks | claim s | ≤ 5 blocks (keys, claims) |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for &n in &sizes {
        let v = |k: &str| value(run, n, k);
        let check = if n == 1_000 {
            let keys = v("keys_blocks").map(|b| b <= TARGET_BLOCKS);
            let claims = v("claims_blocks").map(|b| b <= TARGET_BLOCKS);
            format!("keys {}, claims {}", verdict(keys), verdict(claims))
        } else {
            "(target is for 1,000)".into()
        };
        let _ = writeln!(
            out,
            "| {n} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} ({}) | {} | {} | {} | {} | {} | {check} |",
            fmt(v("purchase_landed"), 0),
            fmt(v("purchase_blocks"), 0),
            fmt(v("purchase_seconds"), 1),
            fmt(v("purchase_max_per_block"), 0),
            fmt(v("keys_accepted"), 0),
            fmt(v("keys_transactions"), 0),
            fmt(v("keys_blocks"), 0),
            fmt(v("keys_seconds"), 1),
            fmt(v("service_delivered"), 0),
            fmt(v("service_blocks"), 0),
            fmt(v("service_batch_blocks"), 0),
            fmt(v("service_seconds"), 1),
            fmt(v("claims_accepted"), 0),
            fmt(v("claims_transactions"), 0),
            fmt(v("claims_blocks"), 0),
            fmt(v("claims_seconds"), 1),
        );
    }
    // Purchases per block of the largest size, and what the runtime's weights allow.
    if let Some(&n) = sizes.last() {
        let v = |k: &str| value(run, n, k);
        let _ = writeln!(
            out,
            "\nA purchase weighs {} ms of execution and {} KB of proof (`payment_queryInfo` plus \
             the base extrinsic weight); a block holds {} ms and {} KB of normal transactions \
             (`System::BlockWeights`), so at most {} purchases fit a block by execution time \
             and {} by proof size: **{} purchases per block** at the runtime's block weight; \
             measured at most {} in one block.",
            fmt(v("purchase_ref_time_ms"), 3),
            fmt(v("purchase_proof_kb"), 1),
            fmt(v("block_ref_time_ms"), 0),
            fmt(v("block_proof_kb"), 0),
            fmt(v("purchase_fit_by_time"), 0),
            fmt(v("purchase_fit_by_proof"), 0),
            fmt(
                v("purchase_fit_by_time")
                    .zip(v("purchase_fit_by_proof"))
                    .map(|(a, b)| a.min(b)),
                0
            ),
            fmt(v("purchase_max_per_block"), 0),
        );
        let per_block: Vec<String> = run
            .table
            .rows
            .iter()
            .filter(|r| r.sellers == Some(n) && r.metric == "purchase_per_block")
            .map(|r| format!("{:.0}", r.value))
            .collect();
        let _ = writeln!(
            out,
            "\nPurchases per block after handing {n} to the node at once (blocks in order from \
             the one after submission): {}.\n",
            per_block.join(", ")
        );
    }
    let sellers_in = |prefix: &str| {
        let mut s: Vec<u32> = run
            .table
            .rows
            .iter()
            .filter(|r| r.metric.starts_with(prefix))
            .filter_map(|r| r.sellers)
            .collect();
        s.dedup();
        s
    };
    for n in sellers_in("onboard1_") {
        let v = |k: &str| value(run, n, k);
        let refused = run
            .table
            .rows
            .iter()
            .find(|r| r.sellers == Some(n) && r.metric == "onboard1_refused")
            .map(|r| format!(" ({:.0} refused: `{}`)", r.value, r.unit))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "### Onboarding {n} sellers at once, offer and stream in one transaction\n\n\
             Each seller: its DID; the issuer's attestation; then one `Utility::batch_all` of \
             `Offers::create_offer_with_stream` and `Operators::fund_hosting` (as \
             `FastData::list_stream`), signed beforehand and sent once the attestation is in.\n\n\
             | phase | landed | blocks | seconds |\n|---|---|---|---|\n\
             | DIDs (one `create_did` per seller, all at once) | {} | {} | {} |\n\
             | issuer's attestations (one `force_batch` of {n}) | {} | {} | {} |\n\
             | **offer + stream (+ hosting) after the attestation, one transaction per seller** | {}{refused} | **{}** | **{}** |\n\
             | DID to last stream | | {} | {} |\n\n\
             Target: {n} sellers onboard (offer and stream, after the issuer's attestation) \
             within 2 blocks: {}.\n",
            fmt(v("onboard1_did_landed"), 0),
            fmt(v("onboard1_did_blocks"), 0),
            fmt(v("onboard1_did_seconds"), 1),
            fmt(v("onboard1_attest_ok"), 0),
            fmt(v("onboard1_attest_blocks"), 0),
            fmt(v("onboard1_attest_seconds"), 1),
            fmt(v("onboard1_listing_landed"), 0),
            fmt(v("onboard1_after_attest_blocks"), 0),
            fmt(v("onboard1_after_attest_seconds"), 1),
            fmt(v("onboard1_total_blocks"), 0),
            fmt(v("onboard1_total_seconds"), 1),
            verdict(v("onboard1_after_attest_blocks").map(|b| b <= TARGET_ONBOARD_BLOCKS)),
        );
    }
    let onboard = sellers_in("onboard_");
    for n in onboard {
        let v = |k: &str| value(run, n, k);
        let _ = writeln!(
            out,
            "### Onboarding {n} sellers at once, offer then stream\n\n\
             | phase | landed | blocks | seconds |\n|---|---|---|---|\n\
             | DIDs (one `create_did` per seller, all at once) | {} | {} | {} |\n\
             | issuer's attestations (one `force_batch` of {n}) | {} | {} | {} |\n\
             | offers (one per seller, all at once) | {} | {} | {} |\n\
             | streams (each after its offer's id is known; refused ones sent again) | {} | {} | {} |\n\
             | **offer + stream after the attestation** | | **{}** | **{}** |\n\
             | DID to last stream | | {} | {} |\n\n\
             In the first round {} streams landed and {} were refused{}; all were on chain \
             after {} round(s).\n\n\
             Target: {n} sellers onboard within 2 blocks: {}. An offer's id comes from its \
             `OfferCreated` event and the stream names it, so a seller's offer and stream take \
             two blocks at least, and the DID must exist before the issuer can attest.\n",
            fmt(v("onboard_did_landed"), 0),
            fmt(v("onboard_did_blocks"), 0),
            fmt(v("onboard_did_seconds"), 1),
            fmt(v("onboard_attest_ok"), 0),
            fmt(v("onboard_attest_blocks"), 0),
            fmt(v("onboard_attest_seconds"), 1),
            fmt(v("onboard_offer_landed"), 0),
            fmt(v("onboard_offer_blocks"), 0),
            fmt(v("onboard_offer_seconds"), 1),
            fmt(v("onboard_stream_landed"), 0),
            fmt(v("onboard_stream_blocks"), 0),
            fmt(v("onboard_stream_seconds"), 1),
            fmt(v("onboard_after_attest_blocks"), 0),
            fmt(v("onboard_after_attest_seconds"), 1),
            fmt(v("onboard_total_blocks"), 0),
            fmt(v("onboard_total_seconds"), 1),
            fmt(v("onboard_stream_first_round"), 0),
            fmt(v("onboard_stream_refused"), 0),
            run.table
                .rows
                .iter()
                .find(|r| r.sellers == Some(n) && r.metric == "onboard_stream_refused")
                .filter(|r| r.value > 0.0)
                .map(|r| format!(" (`{}`)", r.unit))
                .unwrap_or_default(),
            fmt(v("onboard_stream_rounds"), 0),
            verdict(v("onboard_after_attest_blocks").map(|b| b <= TARGET_ONBOARD_BLOCKS)),
        );
    }

    let plots = run.dir.join("plots");
    std::fs::create_dir_all(&plots)?;
    let line = |label: &str, metric: &str| Series {
        name: label.into(),
        points: sizes
            .iter()
            .filter_map(|&n| value(run, n, metric).map(|v| (f64::from(n), v)))
            .collect(),
    };
    let blocks = plots.join("scale_blocks.svg");
    plot::line_chart(
        &blocks,
        "Blocks until done vs purchases of one stream",
        "purchases",
        "blocks",
        &[
            line("all purchases in", "purchase_blocks"),
            line("every key delivered (submit_batch)", "keys_blocks"),
            line("key-delivery service pass", "service_blocks"),
            line("claim round", "claims_blocks"),
            Series {
                name: "target ≤ 5 blocks (keys, claims at 1,000)".into(),
                points: sizes
                    .iter()
                    .map(|&n| (f64::from(n), TARGET_BLOCKS))
                    .collect(),
            },
        ],
        false,
    )?;
    let seconds = plots.join("scale_seconds.svg");
    plot::line_chart(
        &seconds,
        "Seconds until done vs purchases of one stream",
        "purchases",
        "seconds",
        &[
            line("all purchases in", "purchase_seconds"),
            line("every key delivered (submit_batch)", "keys_seconds"),
            line("key-delivery service pass", "service_seconds"),
            line("claim round", "claims_seconds"),
        ],
        false,
    )?;
    out.push('\n');
    for p in [blocks, seconds] {
        if p.exists() {
            let stem = p
                .file_stem()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let _ = writeln!(out, "![{stem}]({})\n", crate::report::link(report, &p));
        }
    }
    Ok(())
}

/// `fastdata-bench scale` options.
#[derive(clap::Args, Debug)]
pub struct ScaleArgs {
    /// Node WebSocket URL of a fresh dev chain; without it a dev node of its own is started
    /// on --port and stopped at the end.
    #[arg(long)]
    pub url: Option<String>,
    /// RPC port of the dev node started here (9991–9999; p2p on port + 21000).
    #[arg(long, default_value_t = 9992)]
    pub port: u16,
    /// Purchase counts (comma-separated), e.g. 10,100 for a quick run.
    #[arg(long, default_value = "10,100,1000")]
    pub sizes: String,
    /// Sellers to onboard at once (0: skip onboarding).
    #[arg(long, default_value_t = 100)]
    pub sellers: usize,
    /// Directory under which the run directory is created.
    #[arg(long, default_value = crate::default_out())]
    pub out: PathBuf,
    /// Also write the report here.
    #[arg(long, default_value = crate::default_report())]
    pub report: PathBuf,
}

/// Runs `fastdata-bench scale`.
pub async fn command(args: ScaleArgs) -> anyhow::Result<()> {
    let mut sizes: Vec<usize> = crate::spec::parse_counts("--sizes", &args.sizes, 5_000)?
        .into_iter()
        .map(|n| n as usize)
        .collect();
    sizes.sort_unstable();
    sizes.dedup();
    if args.sellers > 1_000 {
        bail!("--sellers must be 0..=1000");
    }
    let (dir, started) = crate::run_dir(&args.out, "scale")?;
    let work = dir.join("work");
    let t0 = Instant::now();
    let mut cfg = ScaleBench {
        url: String::new(),
        sizes,
        sellers: args.sellers,
        work: work.join("keystores"),
    };
    let bar = devchain::progress(steps(&cfg));
    let mut rows = Vec::new();
    let result = devchain::interruptible(async {
        bar.set_message("starting the dev node");
        let (url, node) = devchain::node(args.url.as_deref(), args.port, &work).await?;
        cfg.url = url;
        let result = run(&cfg, &bar, &mut rows).await;
        drop(node);
        result
    })
    .await;
    bar.finish_and_clear();
    let mut meta = crate::run_meta("scale", started, t0, 1);
    meta.extend(devchain::meta(&[
        ("command", devchain::command_line()),
        ("url", cfg.url.clone()),
        ("sizes", args.sizes.clone()),
        ("sellers", args.sellers.to_string()),
    ]));
    devchain::conclude(&dir, &work, &rows, meta, result, &args.report, &args.out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::{self, Meta};

    #[test]
    fn section_from_csv() {
        let dir = tempfile::tempdir().unwrap();
        let run_dir = dir.path().join("scale-x");
        std::fs::create_dir_all(&run_dir).unwrap();
        let mut rows = Vec::new();
        for n in [10, 1_000] {
            rows.push(row(n, "purchase_blocks", 1.0, "blocks"));
            rows.push(row(n, "keys_blocks", 2.0, "blocks"));
            rows.push(row(n, "claims_blocks", 7.0, "blocks"));
        }
        rows.push(row(100, "onboard1_after_attest_blocks", 1.0, "blocks"));
        results::write_rows(&run_dir, &rows).unwrap();
        let meta = Meta {
            key: "mode".into(),
            value: "scale".into(),
        };
        results::write_meta(&run_dir, &[meta]).unwrap();
        let output = dir.path().join("REPORT.md");
        crate::report::generate(std::slice::from_ref(&run_dir), &output).unwrap();
        let text = std::fs::read_to_string(&output).unwrap();
        assert!(text.contains("keys met, claims **missed**"), "{text}");
        assert!(
            text.contains("Onboarding 100 sellers at once, offer and stream"),
            "{text}"
        );
        assert!(run_dir.join("plots/scale_blocks.svg").exists());
    }

    #[test]
    fn cli_checks_its_inputs() {
        use clap::Parser;
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            args: ScaleArgs,
        }
        assert!(Cli::try_parse_from(["x", "--sizes", "10,100"]).is_ok());
        assert!(Cli::try_parse_from(["x", "--port", "port"]).is_err());
    }
}

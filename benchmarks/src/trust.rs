//! `fastdata-bench trust` (issue 18): the trust score a seller gains per unit actually paid to
//! it, for honest and for colluding traders, on a live dev chain.
//!
//! Four scenarios run side by side, each with its own seller and its own stream (hosted by one
//! operator account registered here without a daemon, which attests the stream head and claims
//! with the buyers' receipts as a daemon would):
//!
//! - `honest`: N distinct verified buyers buy one 10-block period of the seller's stream at the
//!   list price; keys are delivered (the seller's key-delivery pass) and opened by every buyer;
//!   the operator attests 10 published segments and claims the buyers' receipts for all of
//!   them; the period settles (paid in full) and each buyer rates the seller 100.
//! - `sybil_free`: the seller funds K fresh accounts that buy its offer at price 0; after
//!   settlement seller and sybils rate each other 100.
//! - `sybil_refunded`: the same with a priced offer whose data nobody acknowledges, so the
//!   whole price is refunded at settlement.
//! - `pair_free`: two verified accounts sell to each other at price 0 and rate each other.
//!
//! Reported per scenario: score before and after (and after each rating), units paid to the
//! seller, value of the trades, transaction fees spent by the scenario's accounts, ratings
//! accepted, and score gained per unit paid.

use std::{
    collections::HashMap,
    fmt::Write as _,
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{bail, Context};
use fastdata_e2e::UNIT;
use fastdata_operator::{claims::claim_calls, receipts::Claim};
use fastdata_primitives::{
    api_market::{Licence, OfferTerms},
    receipt::Receipt,
    AccountId, Balance, BlockNumber, OfferId, PaymentMode, PurchaseId, Score, StreamId, SCORE_ONE,
};
use fastdata_sdk::{
    chain::{account_id, fastdata, RuntimeEvent, Wait},
    keystore::Keystore,
    Account, FastData,
};
use indicatif::ProgressBar;
use sp_core::Pair;
use sp_runtime::Perbill;

use crate::{
    devchain,
    plot::{self, Series},
    report::Run,
    results::{meta_value, Row},
};

/// Blocks per stream period of every offer (the runtime's shortest).
const PERIOD: BlockNumber = 10;
/// Segments the operator attests as published in the honest period (all acknowledged).
const SEGMENTS: u64 = 10;
/// The scenarios, in report order.
pub const SCENARIOS: [&str; 4] = ["honest", "sybil_free", "sybil_refunded", "pair_free"];
/// Issue 18: a seller with seeded accounts gains less than this.
pub const TARGET_COLLUDING_GAIN: f64 = 0.01;

/// What to run.
pub struct TrustBench {
    /// Node URL.
    pub url: String,
    /// Verified buyers of the honest seller.
    pub honest_buyers: usize,
    /// Seeded accounts of each colluding seller.
    pub sybils: usize,
    /// List price of the honest offer (planck).
    pub price: Balance,
    /// Where keystores go.
    pub work: PathBuf,
}

/// A trader: a connection acting as its account, and its keystore.
struct Party {
    chain: FastData,
    keystore: Keystore,
}

impl Party {
    fn id(&self) -> AccountId {
        self.chain.account().account_id()
    }
}

/// One scenario's seller, buyers, offers and purchases.
struct Scenario {
    name: &'static str,
    seller: Party,
    buyers: Vec<Party>,
    /// (offer, stream, list price) per listing of the seller (buyers alternate between them
    /// in `pair_free`, where the buyer sells back).
    listing: Option<(OfferId, StreamId, Balance)>,
    /// The purchases: (buyer index or `None` for the seller buying back, purchase).
    purchases: Vec<(Option<usize>, PurchaseId)>,
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

fn units(planck: Balance) -> f64 {
    planck as f64 / UNIT as f64
}

fn score(s: Score) -> f64 {
    f64::from(s) / f64::from(SCORE_ONE)
}

/// Lists a stream offer of `seller` at `price` and registers its stream; checks that
/// `operator` hosts it.
async fn list(
    seller: &mut Party,
    topic: &str,
    price: Balance,
    operator: &AccountId,
) -> anyhow::Result<(OfferId, StreamId)> {
    let offer = devchain::again!(
        format!("offer {topic}"),
        seller.chain.create_offer(
            topic,
            PaymentMode::Stream { period: PERIOD },
            price,
            terms()
        )
    )?;
    let stream = seller
        .chain
        .register_stream(
            &mut seller.keystore,
            offer,
            &topic.replace('/', "-"),
            fastdata_sdk::seller::Hosting::DEMO,
        )
        .await
        .with_context(|| format!("stream of {topic}"))?;
    if !stream.operators.contains(operator) {
        bail!(
            "stream {topic} is hosted by other operators than the bench's; run on a fresh dev \
             chain (without --url, or a node without registered operators)"
        );
    }
    Ok((offer, stream.stream))
}

/// Runs the benchmark, appending rows to `rows`.
pub async fn run(cfg: &TrustBench, bar: &ProgressBar, rows: &mut Vec<Row>) -> anyhow::Result<()> {
    let alice = FastData::connect(&cfg.url, Account::from_suri("//Alice")?).await?;
    let first_block = devchain::head(&alice).await?;
    std::fs::create_dir_all(&cfg.work)?;
    let keystore = |name: &str| Keystore::open(cfg.work.join(format!("{name}.json")));

    bar.set_message("accounts, DIDs and credentials");
    // Operator (no daemon), four sellers, the pair's partner, honest buyers; sybils are funded
    // by their seller.
    let operator = alice.as_account(Account::generate()?.0);
    let op_id = operator.account().account_id();
    let mut sellers = Vec::new();
    for name in ["honest", "sybil_free", "sybil_refunded", "pair_a", "pair_b"] {
        sellers.push(Party {
            chain: alice.as_account(Account::generate()?.0),
            keystore: keystore(&format!("seller-{name}"))?,
        });
    }
    let mut honest_buyers = Vec::new();
    for (i, account) in devchain::accounts(cfg.honest_buyers)?
        .into_iter()
        .enumerate()
    {
        honest_buyers.push(Party {
            chain: alice.as_account(account),
            keystore: keystore(&format!("buyer-{i}"))?,
        });
    }
    let sybil_money = 50 * UNIT + cfg.price;
    let mut funded: Vec<AccountId> = sellers.iter().map(Party::id).collect();
    funded.extend(honest_buyers.iter().map(Party::id));
    funded.push(op_id.clone());
    devchain::fund(
        &alice,
        &funded,
        1_000 * UNIT + sybil_money * cfg.sybils as u128,
    )
    .await?;
    devchain::register_operator(&operator).await?;
    let _heartbeats = devchain::keep_alive(operator.clone());

    let mut sybils: [Vec<Party>; 2] = [Vec::new(), Vec::new()];
    for (r, (ring, seller)) in sybils.iter_mut().zip(&sellers[1..3]).enumerate() {
        let accounts = devchain::accounts(cfg.sybils)?;
        let ids: Vec<AccountId> = accounts.iter().map(Account::account_id).collect();
        devchain::fund(&seller.chain, &ids, sybil_money).await?;
        for (i, account) in accounts.into_iter().enumerate() {
            ring.push(Party {
                chain: seller.chain.as_account(account),
                keystore: keystore(&format!("sybil-{r}-{i}"))?,
            });
        }
    }
    // Every trader's DID at once.
    let dids = sellers
        .iter_mut()
        .chain(honest_buyers.iter_mut())
        .chain(sybils.iter_mut().flatten())
        .map(|p| async move {
            devchain::again!("DID", p.chain.create_did(&mut p.keystore, Vec::new()))
        });
    futures_util::future::try_join_all(dids).await?;
    // Sellers, the pair and the honest buyers are verified; sybils are not.
    let mut verified: Vec<AccountId> = sellers.iter().map(Party::id).collect();
    verified.extend(honest_buyers.iter().map(Party::id));
    let expires = devchain::head(&alice).await? + 1_000_000;
    crate::chainops::attest_all(&alice, &verified, expires).await?;
    bar.inc(1);

    // Listings.
    bar.set_message("offers and streams");
    let [honest, free, refunded, pair_a, pair_b]: [Party; 5] = sellers
        .try_into()
        .map_err(|_| anyhow::anyhow!("five sellers"))?;
    let [free_ring, refunded_ring] = sybils;
    let mut scenarios = vec![
        Scenario {
            name: "honest",
            seller: honest,
            buyers: honest_buyers,
            listing: None,
            purchases: Vec::new(),
        },
        Scenario {
            name: "sybil_free",
            seller: free,
            buyers: free_ring,
            listing: None,
            purchases: Vec::new(),
        },
        Scenario {
            name: "sybil_refunded",
            seller: refunded,
            buyers: refunded_ring,
            listing: None,
            purchases: Vec::new(),
        },
        Scenario {
            name: "pair_free",
            seller: pair_a,
            buyers: vec![pair_b],
            listing: None,
            purchases: Vec::new(),
        },
    ];
    let prices = [cfg.price, 0, cfg.price, 0];
    let listings = scenarios.iter_mut().zip(prices).map(|(s, price)| {
        let op_id = op_id.clone();
        async move {
            let topic = format!("bench/trust/{}", s.name);
            let (offer, stream) = list(&mut s.seller, &topic, price, &op_id).await?;
            s.listing = Some((offer, stream, price));
            Ok::<_, anyhow::Error>(())
        }
    });
    futures_util::future::try_join_all(listings).await?;
    // The pair's partner lists too, at price 0, and the seller buys back from it.
    let back = {
        let pair = &mut scenarios[3];
        let partner = &mut pair.buyers[0];
        list(partner, "bench/trust/pair_back", 0, &op_id).await?.0
    };
    bar.inc(1);

    let mut before = HashMap::new();
    for s in &scenarios {
        before.insert(
            s.name,
            devchain::again!("score", alice.trust_score(&s.seller.id()))?,
        );
    }

    // Purchases, all at once.
    bar.set_message("purchases");
    let mut buys = Vec::new();
    for (si, s) in scenarios.iter().enumerate() {
        let Some((offer, _, price)) = s.listing else {
            continue;
        };
        for (bi, b) in s.buyers.iter().enumerate() {
            let chain = b.chain.clone();
            buys.push(async move {
                let id = devchain::again!(
                    format!("purchase of offer {offer}"),
                    chain.buy(offer, 1, price)
                )?;
                Ok::<_, anyhow::Error>((si, Some(bi), id))
            });
        }
    }
    let back_buy = {
        let chain = scenarios[3].seller.chain.clone();
        async move {
            let id = devchain::again!("buy-back", chain.buy(back, 1, 0))?;
            Ok::<_, anyhow::Error>((3, None, id))
        }
    };
    let (bought, back_bought) = tokio::join!(futures_util::future::try_join_all(buys), back_buy);
    for (si, bi, id) in bought?.into_iter().chain([back_bought?]) {
        scenarios[si].purchases.push((bi, id));
    }
    // The operator stores SEGMENTS segments of the honest stream after the purchases: the
    // period's published data.
    let honest_stream = scenarios[0]
        .listing
        .map(|(_, stream, _)| stream)
        .context("honest listing")?;
    devchain::attest_head(&operator, honest_stream, SEGMENTS, SEGMENTS * 1_024).await?;
    bar.inc(1);

    // Keys: every seller's key-delivery pass; honest buyers open theirs.
    bar.set_message("keys");
    let mut deliveries = Vec::new();
    for s in &scenarios {
        deliveries.push(&s.seller);
    }
    if let Some(partner) = scenarios[3].buyers.first() {
        deliveries.push(partner);
    }
    let deliveries = deliveries.into_iter().map(|p| async move {
        devchain::again!("key delivery", p.chain.deliver_due_keys(&p.keystore))
    });
    for (i, delivered) in futures_util::future::join_all(deliveries)
        .await
        .into_iter()
        .enumerate()
    {
        let delivered = delivered.with_context(|| format!("key delivery pass {i}"))?;
        if let Some(failed) = delivered.iter().find(|d| d.result.is_err()) {
            bail!(
                "key delivery to purchase {} failed: {:?}",
                failed.purchase,
                failed.result
            );
        }
    }
    let mut opened = 0usize;
    for &(bi, id) in &scenarios[0].purchases {
        let Some(b) = bi.and_then(|bi| scenarios[0].buyers.get(bi)) else {
            continue;
        };
        let view = devchain::again!("keys", b.chain.wait_for_keys(id, Duration::from_secs(60)))?;
        devchain::again!(
            format!("keys of purchase {id}"),
            b.chain.open_keys(&b.keystore, &view, 0)
        )?;
        opened += 1;
    }
    rows.push(metric("honest.keys_opened", opened as f64, "purchases"));

    // The honest buyers acknowledge every segment to the operator, which claims them.
    bar.set_message("receipts and claims");
    let genesis = alice.genesis();
    let claims: Vec<Claim> = scenarios[0]
        .purchases
        .iter()
        .filter_map(|&(bi, id)| {
            let buyer = scenarios[0].buyers.get(bi?)?;
            let receipt = Receipt {
                purchase: id,
                operator: op_id.clone(),
                up_to_sequence: SEGMENTS - 1,
                bytes: SEGMENTS * 1_024,
                nonce: 1,
            };
            let signature = buyer
                .chain
                .account()
                .pair()
                .sign(&receipt.signing_payload(&genesis));
            Some(Claim { receipt, signature })
        })
        .collect();
    let claimed = operator
        .submit_batch(&claim_calls(&claims), Wait::InBlock)
        .await;
    let accepted = claimed.iter().filter(|r| r.is_ok()).count();
    if let Some(Err(e)) = claimed.iter().find(|r| r.is_err()) {
        tracing::warn!("a claim was refused: {e}");
    }
    rows.push(metric("honest.claims_accepted", accepted as f64, "claims"));
    bar.inc(1);

    // Settlement: the period plus the claim grace (about a minute at 1 s blocks).
    bar.set_message("waiting for settlement (period + claim grace)");
    let all: Vec<PurchaseId> = scenarios
        .iter()
        .flat_map(|s| s.purchases.iter().map(|(_, id)| *id))
        .collect();
    let reader = &alice;
    let settled = all.iter().map(|id| async move {
        devchain::again!(
            "settlement",
            fastdata_e2e::settled(reader, *id, Duration::from_secs(600))
        )
    });
    futures_util::future::try_join_all(settled).await?;
    bar.inc(1);

    // Ratings, one after another per scenario (the scenarios side by side), reading the
    // seller's score after each.
    bar.set_message("ratings");
    let rated = scenarios.iter().map(|s| rate_all(s, &alice));
    let steps = futures_util::future::try_join_all(rated).await?;
    bar.inc(1);

    // Outcomes.
    let last_block = devchain::head(&alice).await?;
    bar.set_message("fees");
    let fees = fees_by_account(&alice, first_block, last_block).await?;
    for (s, steps) in scenarios.iter().zip(steps) {
        let mut paid = 0u128;
        let mut value = 0u128;
        let mut refused = Vec::new();
        for (_, id) in &s.purchases {
            let view = devchain::again!("purchase", alice.purchase(*id))?
                .with_context(|| format!("purchase {id} vanished"))?;
            // Paid to this scenario's seller (in the pair, the buy-back pays the partner).
            if view.seller == s.seller.id() {
                paid += view.ledger.seller;
                value += view.price.saturating_sub(view.ledger.refunded);
            }
        }
        let accounts: Vec<AccountId> = std::iter::once(s.seller.id())
            .chain(s.buyers.iter().map(Party::id))
            .collect();
        let spent: Balance = accounts.iter().filter_map(|a| fees.get(a)).sum();
        let start = before.get(s.name).copied().unwrap_or_default();
        let end = devchain::again!("score", alice.trust_score(&s.seller.id()))?;
        let gain = score(end) - score(start);
        let n = s.name;
        rows.push(metric(
            &format!("{n}.trades"),
            s.purchases.len() as f64,
            "purchases",
        ));
        rows.push(metric(
            &format!("{n}.price"),
            units(s.listing.map_or(0, |l| l.2)),
            "FAST",
        ));
        rows.push(metric(&format!("{n}.paid_to_seller"), units(paid), "FAST"));
        rows.push(metric(&format!("{n}.trade_value"), units(value), "FAST"));
        rows.push(metric(&format!("{n}.fees"), units(spent), "FAST"));
        rows.push(metric(&format!("{n}.score_before"), score(start), "score"));
        rows.push(metric(&format!("{n}.score_after"), score(end), "score"));
        rows.push(metric(&format!("{n}.score_gain"), gain, "score"));
        if paid > 0 {
            rows.push(metric(
                &format!("{n}.gain_per_unit_paid"),
                gain / units(paid),
                "score/FAST",
            ));
        }
        let mut ok = 0;
        for (i, step) in steps.iter().enumerate() {
            if step.accepted {
                ok += 1;
            } else if let Some(e) = &step.error {
                refused.push(e.clone());
            }
            let mut row = metric(&format!("{n}.step_score"), score(step.score), "score");
            row.rep = Some(i as u32);
            rows.push(row);
        }
        rows.push(metric(
            &format!("{n}.ratings_attempted"),
            steps.len() as f64,
            "ratings",
        ));
        rows.push(metric(
            &format!("{n}.ratings_accepted"),
            f64::from(ok),
            "ratings",
        ));
        if let Some(e) = refused.first() {
            tracing::info!("{n}: rating refused: {e}");
            rows.push(Row {
                unit: short_error(e),
                ..metric(&format!("{n}.refusal"), refused.len() as f64, "")
            });
        }
    }
    Ok(())
}

/// `Pallet::Error` out of a dispatch error's text (the docs dropped), for the report.
fn short_error(text: &str) -> String {
    text.split_whitespace()
        .find(|w| w.contains("::") && !w.starts_with("Trust::rate"))
        .map(|w| {
            w.trim_matches(|c: char| !c.is_alphanumeric() && c != ':')
                .trim_end_matches(':')
                .to_owned()
        })
        .unwrap_or_else(|| text.chars().take(60).collect())
}

/// One rating and the seller's score after it.
struct Step {
    accepted: bool,
    error: Option<String>,
    score: Score,
}

/// Every rating of scenario `s`, one after another: each buyer rates the seller 100; in the
/// colluding scenarios the seller rates each buyer 100 first.
async fn rate_all(s: &Scenario, reader: &FastData) -> anyhow::Result<Vec<Step>> {
    let seller_id = s.seller.id();
    let mut steps = Vec::new();
    let colluding = s.name != "honest";
    for &(bi, id) in &s.purchases {
        let mut raters: Vec<&FastData> = Vec::new();
        match bi.and_then(|bi| s.buyers.get(bi)) {
            Some(buyer) => {
                if colluding {
                    raters.push(&s.seller.chain);
                }
                raters.push(&buyer.chain);
            }
            // The pair's buy-back: seller and partner rate each other on it too.
            None => {
                raters.push(&s.seller.chain);
                raters.extend(s.buyers.first().map(|b| &b.chain));
            }
        }
        for rater in raters {
            let result = devchain::again!("rating", rater.rate(id, 100, None));
            steps.push(Step {
                accepted: result.is_ok(),
                error: result.err().map(|e| format!("{e:#}")),
                score: devchain::again!("score", reader.trust_score(&seller_id))?,
            });
        }
    }
    Ok(steps)
}

/// Transaction fees paid per account in blocks `from..=to`.
async fn fees_by_account(
    chain: &FastData,
    from: BlockNumber,
    to: BlockNumber,
) -> anyhow::Result<HashMap<AccountId, Balance>> {
    let mut fees: HashMap<AccountId, Balance> = HashMap::new();
    let fee_paid = |event: &RuntimeEvent| match event {
        RuntimeEvent::TransactionPayment(
            fastdata::transaction_payment::Event::TransactionFeePaid {
                who,
                actual_fee,
                tip,
            },
        ) => Some((account_id(who), actual_fee.saturating_add(*tip))),
        _ => None,
    };
    for n in from..=to {
        let block = devchain::read_block(chain, n, &fee_paid).await?;
        for (payer, paid) in block.matched {
            *fees.entry(payer).or_default() += paid;
        }
    }
    Ok(fees)
}

fn metric(name: &str, value: f64, unit: &str) -> Row {
    Row {
        experiment: "trust".into(),
        sellers: None,
        operators: None,
        rate: None,
        rep: None,
        metric: name.into(),
        value,
        unit: unit.into(),
    }
}

fn value(run: &Run, name: &str) -> Option<f64> {
    run.table
        .rows
        .iter()
        .find(|r| r.experiment == "trust" && r.metric == name && r.rep.is_none())
        .map(|r| r.value)
}

fn fmt(v: Option<f64>, digits: usize) -> String {
    v.map(|v| format!("{v:.digits$}"))
        .unwrap_or_else(|| "–".into())
}

/// The report section of a trust run, with its figure drawn into `<run>/plots`.
pub fn section(out: &mut String, run: &Run, report: &Path) -> anyhow::Result<()> {
    let name = run
        .dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let m = |k: &str| meta_value(&run.meta, k).unwrap_or("?").to_owned();
    let _ = writeln!(
        out,
        "## Trust per unit paid (`fastdata-bench trust`, run `{name}`, issue 18)\n\n\
         Command: `{}`. A fresh dev chain; one operator account (no daemon) hosts every stream, \
         attests the honest stream's 10 published segments and claims the buyers' receipts. \
         Stream offers of one {PERIOD}-block period. Honest: {} verified buyers at {} FAST \
         each, keys delivered and opened, every segment acknowledged, settled, each buyer rates \
         the seller 100. Sybils: {} fresh unverified accounts funded by the seller buy at \
         price 0 (`sybil_free`) or at {} FAST with nothing acknowledged, so all is refunded \
         (`sybil_refunded`); seller and sybils rate each other 100. Pair: two verified \
         accounts buy from each other at price 0 and rate each other. Fees are the \
         transaction fees (`TransactionFeePaid`) of the scenario's accounts over the whole \
         run (DIDs, funding, listings, purchases, keys, ratings); deposits come back and are \
         not counted. Scores are `TrustApi::trust_score` (0–1).\n",
        m("command"),
        m("honest_buyers"),
        m("price_units"),
        m("sybils"),
        m("price_units"),
    );
    out.push_str(
        "| scenario | trades | list price FAST | paid to seller FAST | trade value FAST | fees FAST | ratings accepted | score before | score after | gain | gain per FAST paid | refused with | target | verdict |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for s in SCENARIOS {
        let v = |k: &str| value(run, &format!("{s}.{k}"));
        let gain = v("score_gain");
        let (target, ok) = match s {
            "honest" => ("gains with paid trade", gain.map(|g| g > 0.0)),
            "pair_free" => ("gain 0", gain.map(|g| g.abs() < 1e-9)),
            _ => ("gain < 0.01", gain.map(|g| g < TARGET_COLLUDING_GAIN)),
        };
        let refusal = run
            .table
            .rows
            .iter()
            .find(|r| r.experiment == "trust" && r.metric == format!("{s}.refusal"))
            .map(|r| format!("`{}` ×{:.0}", r.unit, r.value))
            .unwrap_or_else(|| "–".into());
        let _ = writeln!(
            out,
            "| {s} | {} | {} | {} | {} | {} | {}/{} | {} | {} | {} | {} | {refusal} | {target} | {} |",
            fmt(v("trades"), 0),
            fmt(v("price"), 2),
            fmt(v("paid_to_seller"), 4),
            fmt(v("trade_value"), 4),
            fmt(v("fees"), 4),
            fmt(v("ratings_accepted"), 0),
            fmt(v("ratings_attempted"), 0),
            fmt(v("score_before"), 4),
            fmt(v("score_after"), 4),
            fmt(gain.map(|g| g + 0.0), 4),
            v("gain_per_unit_paid")
                .map(|g| format!("{g:.5}"))
                .unwrap_or_else(|| "– (nothing paid)".into()),
            match ok {
                Some(true) => "met",
                Some(false) => "**missed**",
                None => "not measured",
            },
        );
    }
    let _ = writeln!(
        out,
        "\nHonest buyers opened their keys: {} of {}; operator claims accepted: {}.\n",
        fmt(value(run, "honest.keys_opened"), 0),
        m("honest_buyers"),
        fmt(value(run, "honest.claims_accepted"), 0),
    );
    // Score after each rating, per scenario.
    let series: Vec<Series> = SCENARIOS
        .iter()
        .map(|s| Series {
            name: (*s).into(),
            points: std::iter::once((0.0, value(run, &format!("{s}.score_before"))))
                .chain(
                    run.table
                        .rows
                        .iter()
                        .filter(|r| r.metric == format!("{s}.step_score"))
                        .filter_map(|r| r.rep.map(|i| (f64::from(i) + 1.0, Some(r.value)))),
                )
                .filter_map(|(x, y)| y.map(|y| (x, y)))
                .collect(),
        })
        .collect();
    let plots = run.dir.join("plots");
    std::fs::create_dir_all(&plots)?;
    let path = plots.join("trust_score_vs_ratings.svg");
    plot::line_chart(
        &path,
        "Seller's trust score after each rating",
        "ratings submitted (accepted or refused)",
        "trust score",
        &series,
        false,
    )?;
    let bars: Vec<Series> = SCENARIOS
        .iter()
        .map(|s| Series {
            name: format!("{s}: score gain vs FAST paid to the seller"),
            points: [(0.0, 0.0)]
                .into_iter()
                .chain(
                    value(run, &format!("{s}.paid_to_seller"))
                        .zip(value(run, &format!("{s}.score_gain"))),
                )
                .collect(),
        })
        .collect();
    let gain_path = plots.join("trust_gain_vs_paid.svg");
    plot::line_chart(
        &gain_path,
        "Score gained against units paid to the seller",
        "FAST paid to the seller",
        "score gain",
        &bars,
        false,
    )?;
    for p in [path, gain_path] {
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

/// `fastdata-bench trust` options.
#[derive(clap::Args, Debug)]
pub struct TrustArgs {
    /// Node WebSocket URL of a fresh dev chain; without it a dev node of its own is started
    /// on --port and stopped at the end.
    #[arg(long)]
    pub url: Option<String>,
    /// RPC port of the dev node started here (9991–9999; p2p on port + 21000).
    #[arg(long, default_value_t = 9991)]
    pub port: u16,
    /// Verified buyers of the honest seller.
    #[arg(long, default_value_t = 10)]
    pub buyers: usize,
    /// Seeded accounts of each colluding seller.
    #[arg(long, default_value_t = 20)]
    pub sybils: usize,
    /// List price of the honest (and the refunded) offer, whole FAST.
    #[arg(long, default_value_t = 10)]
    pub price: u32,
    /// Directory under which the run directory is created.
    #[arg(long, default_value = crate::default_out())]
    pub out: PathBuf,
    /// Also write the report here.
    #[arg(long, default_value = crate::default_report())]
    pub report: PathBuf,
}

/// Runs `fastdata-bench trust`.
pub async fn command(args: TrustArgs) -> anyhow::Result<()> {
    if args.buyers == 0 || args.buyers > 100 || args.sybils == 0 || args.sybils > 100 {
        bail!("--buyers and --sybils must be 1..=100");
    }
    if args.price == 0 {
        bail!("--price must be at least 1 FAST");
    }
    let (dir, started) = crate::run_dir(&args.out, "trust")?;
    let work = dir.join("work");
    let t0 = std::time::Instant::now();
    let bar = devchain::progress(7);
    let mut rows = Vec::new();
    let mut url = String::new();
    let result = devchain::interruptible(async {
        bar.set_message("starting the dev node");
        let (node_url, node) = devchain::node(args.url.as_deref(), args.port, &work).await?;
        url = node_url;
        let cfg = TrustBench {
            url: url.clone(),
            honest_buyers: args.buyers,
            sybils: args.sybils,
            price: Balance::from(args.price) * UNIT,
            work: work.join("keystores"),
        };
        let result = run(&cfg, &bar, &mut rows).await;
        drop(node);
        result
    })
    .await;
    bar.finish_and_clear();
    let mut meta = crate::run_meta("trust", started, t0, 1);
    meta.extend(devchain::meta(&[
        ("command", devchain::command_line()),
        ("url", url),
        ("honest_buyers", args.buyers.to_string()),
        ("sybils", args.sybils.to_string()),
        ("price_units", args.price.to_string()),
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
        let run_dir = dir.path().join("trust-x");
        std::fs::create_dir_all(&run_dir).unwrap();
        let mut rows = vec![
            metric("honest.paid_to_seller", 98.0, "FAST"),
            metric("honest.score_before", 0.5, "score"),
            metric("honest.score_gain", 0.4, "score"),
            metric("honest.gain_per_unit_paid", 0.004, "score/FAST"),
            metric("sybil_free.score_gain", 0.0, "score"),
            metric("pair_free.score_gain", 0.0, "score"),
            Row {
                unit: "Trust::NothingPaid".into(),
                ..metric("sybil_free.refusal", 40.0, "")
            },
        ];
        let mut step = metric("honest.step_score", 0.65, "score");
        step.rep = Some(0);
        rows.push(step);
        results::write_rows(&run_dir, &rows).unwrap();
        let meta = Meta {
            key: "mode".into(),
            value: "trust".into(),
        };
        results::write_meta(&run_dir, &[meta]).unwrap();
        let output = dir.path().join("REPORT.md");
        crate::report::generate(std::slice::from_ref(&run_dir), &output).unwrap();
        let text = std::fs::read_to_string(&output).unwrap();
        assert!(text.contains("| honest |"), "{text}");
        assert!(text.contains("`Trust::NothingPaid` ×40"), "{text}");
        assert!(text.contains("0.00400"), "{text}");
        assert!(run_dir.join("plots/trust_score_vs_ratings.svg").exists());
    }
}

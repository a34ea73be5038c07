//! `fastdata-demo`: one trade through the whole marketplace against a running node. Three
//! storage operators (Mosquitto, or VerneMQ with `--broker vernemq`, + `fastdata-operator`)
//! register; an issuer verifies a seller;
//! the seller publishes a recorded batch, then runs its service (`fastdata seller run`, a child
//! process) that delivers the keys and publishes the live stream from sensor readings fed to
//! its standard input; a buyer buys the batch and a live period, receives and verifies every
//! segment, operators claim, the live purchase settles,
//! both sides rate each other, and the listing shows the new trust score. Prints balances
//! before and after. Accounts are stable across runs (re-running works on a kept chain).

use std::{path::PathBuf, time::Duration};

use anyhow::Context;
use clap::Parser;
use fastdata_e2e::{
    publish, reading, receive, seed, settled, BrokerKind, Network, SellerProcess, Trader, UNIT,
};
use fastdata_primitives::{
    api_market::{Licence, OfferTerms},
    AccountId, Balance, PaymentMode, SCORE_ONE,
};
use fastdata_sdk::Account;
use sp_runtime::Perbill;

/// Runs the FAST DATA demo trade against a node.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Cli {
    /// Node WebSocket URL.
    #[arg(long, default_value = fastdata_sdk::DEFAULT_URL)]
    url: String,
    /// Working directory (brokers, operator databases, keystores, logs).
    #[arg(long, default_value = "/var/tmp/fastdata/demo")]
    dir: PathBuf,
    /// Segments the seller publishes to the batch, and sensor readings it feeds to the live
    /// stream.
    #[arg(long, default_value_t = 30)]
    segments: u64,
    /// Keep the operators running after the trade until Ctrl-C.
    #[arg(long)]
    stay: bool,
    /// Stop after delivery: no settlement wait and no ratings (slow chains, e.g. a
    /// parachain on zombienet).
    #[arg(long)]
    no_settle: bool,
    /// The operators' broker: Mosquitto (dynamic-security plugin) or VerneMQ (webhooks; the
    /// release `scripts/setup` builds).
    #[arg(long, value_enum, default_value_t = BrokerKind::Mosquitto)]
    broker: BrokerKind,
}

fn fast(planck: Balance) -> String {
    format!("{:.4} FAST", planck as f64 / UNIT as f64)
}

fn score(s: u32) -> String {
    format!("{:.3}", s as f64 / SCORE_ONE as f64)
}

fn step(text: &str) {
    println!("\n▶ {text}");
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
    let cli = Cli::parse();
    tokio::select! {
        result = run(cli) => match result {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("demo failed: {e:#}");
                std::process::ExitCode::FAILURE
            }
        },
        _ = tokio::signal::ctrl_c() => {
            eprintln!("interrupted; operators stopped");
            std::process::ExitCode::from(130)
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    std::fs::create_dir_all(&cli.dir)?;
    let broker = match cli.broker {
        BrokerKind::Mosquitto => "Mosquitto",
        BrokerKind::Vernemq => "VerneMQ",
    };
    step(&format!(
        "starting three storage operators ({broker} + fastdata-operator each)"
    ));
    let net = Network::start_on(&cli.url, &cli.dir, 3, Some("demo"), cli.broker).await?;
    for op in &net.operators {
        println!(
            "  {}  {}  {}",
            op.account.address(),
            op.endpoint.broker_url,
            op.endpoint.http_url
        );
    }
    let alice = net.alice.clone();

    step("onboarding: DIDs for seller and buyer; the dev issuer (Alice) attests KYC");
    let seller_seed = seed(Some("demo/seller"))?;
    let mut seller = Trader::onboard(
        &alice,
        Account::from_seed(&seller_seed),
        &cli.dir.join("seller.json"),
        true,
    )
    .await?;
    let buyer = Trader::onboard(
        &alice,
        Account::from_seed(&seed(Some("demo/buyer"))?),
        &cli.dir.join("buyer.json"),
        true,
    )
    .await?;
    let parties: Vec<(&str, AccountId)> = [("seller", seller.id()), ("buyer", buyer.id())]
        .into_iter()
        .chain(net.operators.iter().enumerate().map(|(i, o)| {
            (
                ["operator 0", "operator 1", "operator 2"][i],
                o.account.account_id(),
            )
        }))
        .collect();
    let mut before = Vec::new();
    for (_, who) in &parties {
        before.push(alice.free_balance(who).await?);
    }
    println!(
        "  seller {} (verified), buyer {} (verified)",
        seller.chain.account().did(),
        buyer.chain.account().did()
    );

    let terms = OfferTerms {
        licence: Licence::InternalUse,
        resale_allowed: false,
        verified_only: true,
        verified_discount: Perbill::from_percent(10),
        min_trust_score: 0,
        retention: 10_000,
        replication: 3,
    };
    let n = cli.segments.max(1);
    let run_id = fastdata_sdk::now_millis();

    step("seller lists a recorded batch and a live stream; the chain assigns operators");
    let batch_offer = seller
        .chain
        .create_offer(
            "plant7/press/temperature (batch)",
            PaymentMode::Batch {
                first: 0,
                last: n - 1,
            },
            5 * UNIT,
            terms.clone(),
        )
        .await?;
    let live_offer = seller
        .chain
        .create_offer(
            "plant7/press/temperature (live)",
            PaymentMode::Stream { period: 30 },
            10 * UNIT,
            terms,
        )
        .await?;
    let batch_stream = seller
        .chain
        .register_stream(
            &mut seller.keystore,
            batch_offer,
            &format!("press-batch-{run_id}"),
            fastdata_sdk::seller::Hosting::DEMO,
        )
        .await?;
    let live_stream = seller
        .chain
        .register_stream(
            &mut seller.keystore,
            live_offer,
            &format!("press-live-{run_id}"),
            fastdata_sdk::seller::Hosting::DEMO,
        )
        .await?;
    println!(
        "  offers #{batch_offer} (batch) and #{live_offer} (live), {} operators each",
        live_stream.operators.len()
    );

    step(&format!(
        "seller publishes {n} encrypted sensor readings to the recorded (batch) stream"
    ));
    let batch_data: Vec<Vec<u8>> = (0..n).map(|i| reading("press-batch", i)).collect();
    let live_data: Vec<Vec<u8>> = (0..n).map(|i| reading("press-live", i)).collect();
    let batch_endpoints = publish(&mut seller, batch_stream.stream, 0, 0, &batch_data).await?;

    step("seller starts its service: `fastdata seller run` (live stream from stdin, key delivery)");
    let mut service = SellerProcess::start(
        &cli.url,
        seller_seed,
        &cli.dir.join("seller.json"),
        live_stream.stream,
        "max_delay_ms = 100\n",
        &cli.dir.join("seller-service"),
    )?;
    println!("  log {}", service.log().display());

    step("buyer buys both; the seller process delivers the keys sealed to the buyer's X25519 key");
    let batch_purchase = buyer.chain.buy(batch_offer, 1, 5 * UNIT).await?;
    let live_purchase = buyer.chain.buy(live_offer, 1, 10 * UNIT).await?;
    for p in [batch_purchase, live_purchase] {
        buyer
            .chain
            .wait_for_keys(p, Duration::from_secs(60))
            .await?;
    }
    service
        .wait_counter("keys_delivered", 2.0, Duration::from_secs(30))
        .await?;
    println!(
        "  purchases #{batch_purchase} and #{live_purchase}; {} key deliveries by the seller process",
        service.counter("keys_delivered")
    );

    // A live purchase pays for what is published during its periods, from the stream's
    // head at purchase time on.
    step(&format!(
        "a sensor writes {n} readings (10 a second) to the seller process during the buyer's period"
    ));
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    for record in &live_data {
        tick.tick().await;
        service.send(record)?;
    }
    service.close_input();
    let live_segments = service.wait_published(n, Duration::from_secs(60)).await?;
    anyhow::ensure!(live_segments > 0, "the seller process published nothing");
    // SIGTERM: the service stops cleanly (exit status 0).
    service.stop(Duration::from_secs(70)).await?;
    println!(
        "  {n} records published in {live_segments} segments; the seller process stopped cleanly"
    );
    let live_endpoints = seller.chain.stream_endpoints(&live_stream.stream).await?;

    step("buyer downloads, decrypts and verifies every segment (receipts go to the operators)");
    let (segments, summary) = receive(&buyer, batch_purchase, batch_endpoints, 0, n - 1).await?;
    let ok = segments.len() as u64 == n
        && segments
            .iter()
            .zip(batch_data.iter())
            .enumerate()
            .all(|(i, ((s, p), d))| *s == i as u64 && p == d);
    anyhow::ensure!(
        ok,
        "batch: received data differs from what the seller published"
    );
    println!(
        "  batch: {n} segments, byte-for-byte equal, {} rejected, {} duplicates",
        summary.rejected, summary.duplicates
    );
    // The live segments carry the records (one line each) in order, batched by the service.
    let (segments, summary) =
        receive(&buyer, live_purchase, live_endpoints, 0, live_segments - 1).await?;
    let sent: Vec<u8> = live_data
        .iter()
        .flat_map(|r| r.iter().copied().chain([b'\n']))
        .collect();
    let received: Vec<u8> = segments.iter().flat_map(|(_, p)| p.clone()).collect();
    let in_order = segments
        .iter()
        .enumerate()
        .all(|(i, (s, _))| *s == i as u64);
    anyhow::ensure!(
        segments.len() as u64 == live_segments && in_order && received == sent,
        "live: received records differ from what the sensor wrote to the seller process"
    );
    println!(
        "  live: {n} records in {live_segments} segments, byte-for-byte equal, {} rejected, {} duplicates",
        summary.rejected, summary.duplicates
    );

    if !cli.no_settle {
        step("operators claim with the buyer's receipts; the live period settles (≈80 blocks)");
        let settled = settled(&buyer.chain, live_purchase, Duration::from_secs(300)).await?;
        let l = &settled.ledger;
        println!(
            "  price {} → operators {}, seller {}, protocol fee {}, refunded {}",
            fast(settled.price),
            fast(l.operators),
            fast(l.seller),
            fast(l.fees),
            fast(l.refunded)
        );

        step("buyer and seller rate each other");
        let trust_before = buyer.chain.trust_score(&seller.id()).await?;
        buyer.chain.rate(live_purchase, 95, None).await?;
        seller.chain.rate(live_purchase, 90, None).await?;
        let listing = buyer
            .chain
            .offer(live_offer)
            .await?
            .context("offer vanished")?;
        println!(
            "  seller trust score {} → {} (listing shows {})",
            score(trust_before),
            score(buyer.chain.trust_score(&seller.id()).await?),
            score(listing.seller_trust_score)
        );
    }

    println!("\nBalances (free)        before            after");
    for ((name, who), b) in parties.iter().zip(before) {
        let a = alice.free_balance(who).await?;
        println!("  {name:<12} {:>18} {:>18}", fast(b), fast(a));
    }
    println!("\nDemo trade complete. Logs: {}", cli.dir.display());
    if cli.stay {
        println!("Operators keep running; Ctrl-C stops them.");
        std::future::pending::<()>().await;
    }
    net.stop(false).await
}

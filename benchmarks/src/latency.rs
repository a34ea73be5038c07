//! `fastdata-bench latency` (issue 21): the latency from a record written to the seller
//! process's standard input to the buyer holding it decrypted, on a live dev chain.
//!
//! `fastdata-e2e`'s `Network` starts `--operators` real operators (Mosquitto +
//! `fastdata-operator`, registered on chain); a verified seller lists a live stream, a verified
//! buyer buys it and follows it through the SDK's receiver (MQTT subscription, HTTP catch-up,
//! every segment verified and decrypted). The seller runs `fastdata seller run` as a child
//! process with the stream on standard input and the default flush policy (4,096 bytes or
//! 100 ms); it delivers the purchase's keys itself. For each rate the bench writes records
//! to that stdin for `--duration` seconds, each carrying its send time (µs since the Unix
//! epoch); the buyer splits every opened segment into its records, and a record's latency is
//! its receive time minus its send time (one machine, one clock).

use std::{
    collections::{BTreeMap, HashSet},
    fmt::Write as _,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use anyhow::{bail, Context};
use fastdata_e2e::{Network, SellerProcess, Trader, UNIT};
use fastdata_primitives::{
    api_market::{Licence, OfferTerms},
    BlockNumber, PaymentMode,
};
use fastdata_sdk::{
    receive::{Receiver, Verifier, OPERATOR_LAG_PATIENCE},
    Account,
};
use indicatif::ProgressBar;
use sp_runtime::Perbill;
use tokio::sync::watch;

use crate::{
    devchain,
    plot::{self, Series},
    report::Run,
    results::{meta_value, Row},
    stats,
};

/// Blocks per period of the live offer (10 minutes at 1 s blocks).
const PERIOD: BlockNumber = 600;
/// The first word of every record.
const MAGIC: &str = "fastdata-latency";
/// Pseudo-rate of the warm-up records (not measured).
const WARMUP: u64 = 0;
/// How long after a phase its late records are waited for.
const DRAIN: Duration = Duration::from_secs(10);

/// What to run.
pub struct LatencyBench {
    /// Node URL.
    pub url: String,
    /// Operators hosting the stream.
    pub operators: usize,
    /// Records per second, one phase each.
    pub rates: Vec<u64>,
    /// Length of each phase.
    pub duration: Duration,
    /// Bytes per record (newline excluded).
    pub record_bytes: usize,
    /// Brokers, operator databases, keystores, the seller's log.
    pub work: PathBuf,
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// Record `index` of phase `rate`, sent at `sent_us`, padded to `bytes`.
fn record(rate: u64, index: u64, sent_us: u64, bytes: usize) -> Vec<u8> {
    let mut text = format!("{MAGIC} {rate} {index} {sent_us} ");
    while text.len() < bytes {
        text.push('.');
    }
    text.into_bytes()
}

/// `(rate, index, sent_us)` of a record.
fn parse(record: &[u8]) -> Option<(u64, u64, u64)> {
    let text = std::str::from_utf8(record).ok()?;
    let mut words = text.split_whitespace();
    if words.next()? != MAGIC {
        return None;
    }
    let mut number = || words.next()?.parse::<u64>().ok();
    Some((number()?, number()?, number()?))
}

/// What the buyer received, per phase (rate).
#[derive(Default)]
struct Seen {
    /// Latency (ms) of each distinct record.
    latency: BTreeMap<u64, Vec<f64>>,
    /// Distinct records.
    records: HashSet<(u64, u64)>,
    /// Segments that carried records of the phase.
    segments: BTreeMap<u64, u64>,
}

type Recorder = Arc<Mutex<Seen>>;

fn lock(r: &Recorder) -> std::sync::MutexGuard<'_, Seen> {
    r.lock().unwrap_or_else(|p| p.into_inner())
}

/// Records the records of one opened segment.
fn segment(recorder: &Recorder, payload: &[u8]) {
    let now = now_us();
    let mut seen = lock(recorder);
    let mut phases = HashSet::new();
    for line in payload.split(|b| *b == b'\n') {
        let Some((rate, index, sent)) = parse(line) else {
            continue;
        };
        if seen.records.insert((rate, index)) {
            let ms = now.saturating_sub(sent) as f64 / 1000.0;
            seen.latency.entry(rate).or_default().push(ms);
        }
        phases.insert(rate);
    }
    for rate in phases {
        *seen.segments.entry(rate).or_default() += 1;
    }
}

fn received(recorder: &Recorder, rate: u64) -> usize {
    lock(recorder).latency.get(&rate).map_or(0, Vec::len)
}

fn metric(rate: Option<u64>, operators: usize, name: &str, value: f64, unit: &str) -> Row {
    Row {
        experiment: "latency".into(),
        sellers: Some(1),
        operators: Some(operators as u32),
        rate,
        rep: None,
        metric: name.into(),
        value,
        unit: unit.into(),
    }
}

/// Runs the benchmark, appending rows to `rows`.
pub async fn run(cfg: &LatencyBench, bar: &ProgressBar, rows: &mut Vec<Row>) -> anyhow::Result<()> {
    bar.set_message(format!("starting {} operator(s)", cfg.operators));
    let net = Network::start(&cfg.url, &cfg.work, cfg.operators, None).await?;
    let alice = net.alice.clone();
    bar.inc(1);

    bar.set_message("seller and buyer: DIDs, KYC, offer, stream, purchase");
    let seller_seed = fastdata_e2e::seed(None)?;
    let seller_keystore = cfg.work.join("seller.json");
    let mut seller = Trader::onboard(
        &alice,
        Account::from_seed(&seller_seed),
        &seller_keystore,
        true,
    )
    .await?;
    let buyer = Trader::onboard(
        &alice,
        Account::from_seed(&fastdata_e2e::seed(None)?),
        &cfg.work.join("buyer.json"),
        true,
    )
    .await?;
    let terms = OfferTerms {
        licence: Licence::InternalUse,
        resale_allowed: false,
        verified_only: true,
        verified_discount: Perbill::zero(),
        min_trust_score: 0,
        retention: 10_000,
        replication: cfg.operators as u32,
    };
    let offer = seller
        .chain
        .create_offer(
            "bench/latency",
            PaymentMode::Stream { period: PERIOD },
            UNIT,
            terms,
        )
        .await?;
    let stream = seller
        .chain
        .register_stream(
            &mut seller.keystore,
            offer,
            "bench-latency",
            fastdata_sdk::seller::Hosting::DEMO,
        )
        .await?;
    let mut service = SellerProcess::start(
        &cfg.url,
        seller_seed,
        &seller_keystore,
        stream.stream,
        "",
        &cfg.work.join("seller"),
    )?;
    // Enough periods for the whole run, so that no rotation (access ending) falls into it.
    let run_secs = (cfg.duration + DRAIN).as_secs() * cfg.rates.len() as u64 + 300;
    let periods = run_secs.div_ceil(u64::from(PERIOD)).max(1) as u32;
    let purchase = buyer
        .chain
        .buy(offer, periods, UNIT * u128::from(periods))
        .await?;
    let view = buyer
        .chain
        .wait_for_keys(purchase, Duration::from_secs(90))
        .await
        .with_context(|| {
            format!(
                "keys from the seller process; see {}",
                service.log().display()
            )
        })?;
    let keys = buyer.chain.purchase_keys(&buyer.keystore, &view).await?;
    let endpoints = buyer.chain.stream_endpoints(&stream.stream).await?;
    let expiry = buyer.chain.finalized_number().await? + 100_000;
    bar.inc(1);

    // The buyer follows the stream until told to stop, restarting where it stopped.
    let recorder: Recorder = Arc::default();
    let (stop_tx, stop_rx) = watch::channel(false);
    let follower = {
        let (account, genesis, stream) = (
            buyer.chain.account().clone(),
            buyer.chain.genesis(),
            stream.stream,
        );
        let recorder = recorder.clone();
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            let mut first = Some(0);
            loop {
                let mut receiver = Receiver::new(
                    account.clone(),
                    genesis,
                    purchase,
                    Verifier::new(stream, keys.clone()),
                    endpoints.clone(),
                    expiry,
                    first,
                )
                .with_patience(OPERATOR_LAG_PATIENCE);
                let recorder = recorder.clone();
                let mut stopped = stop.clone();
                let result = receiver
                    .follow(
                        move |s| {
                            segment(&recorder, &s.payload);
                            Ok(())
                        },
                        Duration::from_secs(1),
                        async move {
                            let _ = stopped.wait_for(|s| *s).await;
                        },
                    )
                    .await;
                if *stop.borrow() {
                    return;
                }
                if let Err(e) = result {
                    tracing::debug!("receiver stopped: {e}; restarting");
                }
                first = receiver.next_expected().or(first);
                tokio::select! {
                    _ = stop.wait_for(|s| *s) => return,
                    _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                }
            }
        })
    };

    // Warm-up: a record every 200 ms until the buyer has one (publisher connected, buyer
    // subscribed).
    bar.set_message("warm-up: until the buyer receives from the seller process");
    let started = tokio::time::Instant::now();
    let mut index = 0;
    while received(&recorder, WARMUP) == 0 {
        if started.elapsed() > Duration::from_secs(120) {
            bail!(
                "the buyer received nothing within 120 s; see {}",
                service.log().display()
            );
        }
        service.send(&record(WARMUP, index, now_us(), cfg.record_bytes))?;
        index += 1;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    bar.inc(1);

    for &rate in &cfg.rates {
        bar.set_message(format!("{rate} records/s for {} s", cfg.duration.as_secs()));
        let count = rate * cfg.duration.as_secs();
        let interval = Duration::from_secs_f64(1.0 / rate as f64);
        let start = tokio::time::Instant::now();
        for i in 0..count {
            tokio::time::sleep_until(start + interval.mul_f64(i as f64)).await;
            service.send(&record(rate, i, now_us(), cfg.record_bytes))?;
        }
        let sent_for = start.elapsed();
        let drained = tokio::time::Instant::now();
        while received(&recorder, rate) < count as usize && drained.elapsed() < DRAIN {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let (mut latency, segments) = {
            let seen = lock(&recorder);
            (
                seen.latency.get(&rate).cloned().unwrap_or_default(),
                seen.segments.get(&rate).copied().unwrap_or(0),
            )
        };
        let got = latency.len();
        let op = cfg.operators;
        let r = Some(rate);
        rows.push(metric(r, op, "records_sent", count as f64, "records"));
        rows.push(metric(r, op, "records_received", got as f64, "records"));
        rows.push(metric(r, op, "segments", segments as f64, "segments"));
        rows.push(metric(
            r,
            op,
            "send_rate",
            count as f64 / sent_for.as_secs_f64().max(1e-9),
            "records/s",
        ));
        if let Some(s) = stats::summarize(&mut latency) {
            let p90 = stats::percentile(&latency, 90.0).unwrap_or(s.p99);
            for (name, value) in [
                ("latency_p50", s.p50),
                ("latency_p90", p90),
                ("latency_p99", s.p99),
                ("latency_max", s.max),
                ("latency_mean", s.mean),
                ("latency_min", s.min),
            ] {
                rows.push(metric(r, op, name, value, "ms"));
            }
        }
        eprintln!(
            "{rate} records/s: received {got}/{count} in {segments} segments; p50 {} ms",
            rows.iter()
                .rfind(|row| row.metric == "latency_p50" && row.rate == r)
                .map_or("–".into(), |row| format!("{:.1}", row.value))
        );
        bar.inc(1);
    }

    let counters = service.metrics().unwrap_or_default();
    for (name, unit) in [
        ("records_in", "records"),
        ("segments_published", "segments"),
        ("segments_dropped", "segments"),
        ("keys_delivered", "keys"),
        ("publisher_restarts", "restarts"),
    ] {
        if let Some(v) = counters.get(&format!("fastdata_seller_{name}_total")) {
            rows.push(metric(
                None,
                cfg.operators,
                &format!("seller.{name}"),
                *v,
                unit,
            ));
        }
    }
    let _ = stop_tx.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(15), follower).await;
    service.stop(Duration::from_secs(70)).await?;
    net.stop(false).await
}

/// The rows of `name` of a latency run, by rate.
fn by_rate(run: &Run, name: &str) -> BTreeMap<u64, f64> {
    run.table
        .rows
        .iter()
        .filter(|r| r.experiment == "latency" && r.metric == name)
        .filter_map(|r| Some((r.rate?, r.value)))
        .collect()
}

/// The report section of a latency run, with its figure drawn into `<run>/plots`.
pub fn section(out: &mut String, run: &Run, report: &Path) -> anyhow::Result<()> {
    let name = run
        .dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let m = |k: &str| meta_value(&run.meta, k).unwrap_or("?").to_owned();
    let _ = writeln!(
        out,
        "## Record-to-buyer latency through the seller process (`fastdata-bench latency`, run `{name}`, issue 21)\n\n\
         Command: `{}`. A dev chain (1 s blocks), {} operator(s) (Mosquitto + `fastdata-operator`), \
         one verified seller running `fastdata seller run` (a child process; the stream on \
         standard input; default flush: 4,096 bytes or 100 ms; it delivers the keys), one verified \
         buyer following the stream live through the SDK's receiver (every segment verified and \
         decrypted). Records of {} bytes, each carrying its send time, written to the seller's \
         stdin at a steady rate for {} s per rate; latency = the buyer's clock when the segment \
         holding the record is opened − the send time (same machine). Percentiles are \
         nearest-rank.\n",
        m("command"),
        m("operators"),
        m("record_bytes"),
        m("duration_s"),
    );
    out.push_str(
        "| records/s | received/sent | segments | records per segment | p50 ms | p90 ms | p99 ms | max ms |\n\
         |---|---|---|---|---|---|---|---|\n",
    );
    let sent = by_rate(run, "records_sent");
    let got = by_rate(run, "records_received");
    let segments = by_rate(run, "segments");
    let cols: Vec<BTreeMap<u64, f64>> =
        ["latency_p50", "latency_p90", "latency_p99", "latency_max"]
            .iter()
            .map(|k| by_rate(run, k))
            .collect();
    let f = |v: Option<&f64>, digits: usize| {
        v.map(|v| format!("{v:.digits$}"))
            .unwrap_or_else(|| "–".into())
    };
    for (rate, s) in &sent {
        let g = got.get(rate);
        let per = g
            .zip(segments.get(rate))
            .filter(|(_, n)| **n > 0.0)
            .map(|(g, n)| g / n);
        let _ = writeln!(
            out,
            "| {rate} | {}/{} | {} | {} | {} | {} | {} | {} |",
            f(g, 0),
            f(Some(s), 0),
            f(segments.get(rate), 0),
            f(per.as_ref(), 1),
            f(cols[0].get(rate), 1),
            f(cols[1].get(rate), 1),
            f(cols[2].get(rate), 1),
            f(cols[3].get(rate), 1),
        );
    }
    let seller = |k: &str| {
        run.table
            .rows
            .iter()
            .find(|r| r.experiment == "latency" && r.metric == format!("seller.{k}"))
            .map(|r| format!("{:.0}", r.value))
            .unwrap_or_else(|| "–".into())
    };
    let _ = writeln!(
        out,
        "\nSeller process counters at the end (warm-up included): records in {}, segments \
         published {}, dropped {}, keys delivered {}, publisher restarts {}.\n",
        seller("records_in"),
        seller("segments_published"),
        seller("segments_dropped"),
        seller("keys_delivered"),
        seller("publisher_restarts"),
    );
    let series: Vec<Series> = ["p50", "p90", "p99", "max"]
        .iter()
        .zip(&cols)
        .map(|(label, col)| Series {
            name: (*label).into(),
            points: col.iter().map(|(r, v)| (*r as f64, *v)).collect(),
        })
        .collect();
    let plots = run.dir.join("plots");
    std::fs::create_dir_all(&plots)?;
    let path = plots.join("latency_vs_record_rate.svg");
    plot::log_x_chart(
        &path,
        "Record written to the seller process → buyer has it decrypted",
        "records per second (one stream)",
        "latency, ms",
        &series,
        "rec/s",
    )?;
    if path.exists() {
        let _ = writeln!(
            out,
            "![latency_vs_record_rate]({})\n",
            crate::report::link(report, &path)
        );
    }
    Ok(())
}

/// `fastdata-bench latency` options.
#[derive(clap::Args, Debug)]
pub struct LatencyArgs {
    /// Node WebSocket URL of a dev chain; without it a dev node of its own is started on
    /// --port and stopped at the end.
    #[arg(long)]
    pub url: Option<String>,
    /// RPC port of the dev node started here (9991–9999; p2p on port + 21000).
    #[arg(long, default_value_t = 9993)]
    pub port: u16,
    /// Operators hosting the stream (each a Mosquitto and a fastdata-operator).
    #[arg(long, default_value_t = 1)]
    pub operators: usize,
    /// Records per second of each phase (comma-separated).
    #[arg(long, default_value = "1,10,100")]
    pub rates: String,
    /// Seconds each phase writes records.
    #[arg(long, default_value_t = 30)]
    pub duration: u64,
    /// Bytes per record (a line; at least 64).
    #[arg(long, default_value_t = 100)]
    pub record_bytes: usize,
    /// Directory under which the run directory is created.
    #[arg(long, default_value = crate::default_out())]
    pub out: PathBuf,
    /// Also write the report here.
    #[arg(long, default_value = crate::default_report())]
    pub report: PathBuf,
}

/// Runs `fastdata-bench latency`.
pub async fn command(args: LatencyArgs) -> anyhow::Result<()> {
    let rates: Vec<u64> = crate::spec::parse_counts("--rates", &args.rates, 1_000)?
        .into_iter()
        .map(u64::from)
        .collect();
    if args.duration == 0 || args.duration > 3_600 {
        bail!("--duration must be 1..=3600 seconds");
    }
    if args.operators == 0 || args.operators > 5 {
        bail!("--operators must be 1..=5");
    }
    if !(64..=4_096).contains(&args.record_bytes) {
        bail!("--record-bytes must be 64..=4096");
    }
    let (dir, started) = crate::run_dir(&args.out, "latency")?;
    let work = dir.join("work");
    let t0 = std::time::Instant::now();
    let bar = devchain::progress(3 + rates.len() as u64);
    let mut rows = Vec::new();
    let mut url = String::new();
    let result = devchain::interruptible(async {
        bar.set_message("starting the dev node");
        let (node_url, node) = devchain::node(args.url.as_deref(), args.port, &work).await?;
        url = node_url;
        let cfg = LatencyBench {
            url: url.clone(),
            operators: args.operators,
            rates: rates.clone(),
            duration: Duration::from_secs(args.duration),
            record_bytes: args.record_bytes,
            work: work.clone(),
        };
        let result = run(&cfg, &bar, &mut rows).await;
        drop(node);
        result
    })
    .await;
    bar.finish_and_clear();
    let mut meta = crate::run_meta("latency", started, t0, 1);
    meta.extend(devchain::meta(&[
        ("command", devchain::command_line()),
        ("url", url),
        ("operators", args.operators.to_string()),
        ("duration_s", args.duration.to_string()),
        ("record_bytes", args.record_bytes.to_string()),
    ]));
    devchain::conclude(&dir, &work, &rows, meta, result, &args.report, &args.out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::{self, Meta};

    #[test]
    fn records_round_trip_and_are_padded() {
        let r = record(10, 7, 1_234_567, 100);
        assert_eq!(r.len(), 100);
        assert_eq!(parse(&r), Some((10, 7, 1_234_567)));
        assert_eq!(parse(b"something else 1 2 3"), None);
        assert_eq!(parse(b""), None);
    }

    #[test]
    fn a_segment_of_several_records_counts_each_once() {
        let recorder: Recorder = Arc::default();
        let mut payload = Vec::new();
        for i in 0..3 {
            payload.extend(record(10, i, now_us(), 80));
            payload.push(b'\n');
        }
        segment(&recorder, &payload);
        segment(&recorder, &payload);
        assert_eq!(received(&recorder, 10), 3);
        assert_eq!(lock(&recorder).segments.get(&10), Some(&2));
    }

    #[test]
    fn section_from_csv() {
        let dir = tempfile::tempdir().unwrap();
        let run_dir = dir.path().join("latency-x");
        std::fs::create_dir_all(&run_dir).unwrap();
        let mut rows = Vec::new();
        for (rate, p50) in [(1, 104.0), (10, 103.0), (100, 60.0)] {
            rows.push(metric(
                Some(rate),
                1,
                "records_sent",
                rate as f64 * 30.0,
                "records",
            ));
            rows.push(metric(
                Some(rate),
                1,
                "records_received",
                rate as f64 * 30.0,
                "records",
            ));
            rows.push(metric(Some(rate), 1, "segments", 30.0, "segments"));
            rows.push(metric(Some(rate), 1, "latency_p50", p50, "ms"));
            rows.push(metric(Some(rate), 1, "latency_p99", p50 + 20.0, "ms"));
        }
        rows.push(metric(None, 1, "seller.keys_delivered", 1.0, "keys"));
        results::write_rows(&run_dir, &rows).unwrap();
        let meta = Meta {
            key: "mode".into(),
            value: "latency".into(),
        };
        results::write_meta(&run_dir, &[meta]).unwrap();
        let output = dir.path().join("REPORT.md");
        crate::report::generate(std::slice::from_ref(&run_dir), &output).unwrap();
        let text = std::fs::read_to_string(&output).unwrap();
        assert!(
            text.contains("| 100 | 3000/3000 | 30 | 100.0 | 60.0 | – | 80.0 | – |"),
            "{text}"
        );
        assert!(text.contains("keys delivered 1,"), "{text}");
        assert!(run_dir.join("plots/latency_vs_record_rate.svg").exists());
    }
}

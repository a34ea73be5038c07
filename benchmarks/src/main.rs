//! `fastdata-bench`: FAST DATA benchmarks.
//!
//! - `fastdata-bench operator`: storage-operator decision latency, ingest throughput and
//!   publish → PUBACK latency through Mosquitto and VerneMQ, memory.
//! - `fastdata-bench grid --quick|--full --url ws://…`: the paper's experiment grid on a dev
//!   chain (onboarding runtime, upload throughput, end-to-end latency, overhead vs plaintext).
//! - `fastdata-bench trust`: trust score gained per unit paid, honest vs colluding (issue 18).
//! - `fastdata-bench scale`: keys, claims, purchases per block and onboarding at scale (issue 19).
//! - `fastdata-bench latency`: record written to `fastdata seller run` → buyer has it decrypted,
//!   at 1, 10 and 100 records/s (issue 21).
//! - `fastdata-bench report DIR…`: plots and `REPORT.md` from the CSV files of runs.
//!
//! Every run writes `results.csv` and `meta.csv` into `<out>/<mode>-<UTC timestamp>/`.

mod chainops;
mod devchain;
mod grid;
mod latency;
mod machine;
mod operator;
mod plot;
mod report;
mod results;
mod scale;
mod spec;
mod stats;
mod trust;

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use results::Meta;

/// FAST DATA benchmarks.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Storage-operator benchmarks: authorization decisions, ingest, memory.
    Operator(OperatorArgs),
    /// The paper's experiment grid against a running dev node.
    Grid(GridArgs),
    /// Trust score gained per unit paid, honest vs colluding traders, on a dev chain.
    Trust(trust::TrustArgs),
    /// Key delivery, claim rounds, purchases per block and onboarding at scale on a dev chain.
    Scale(scale::ScaleArgs),
    /// Latency from a record written to the seller process to the buyer, on a dev chain.
    Latency(latency::LatencyArgs),
    /// Regenerates plots and the report from run directories.
    Report(ReportArgs),
}

#[derive(Args, Debug)]
struct OperatorArgs {
    /// Directory under which the run directory is created.
    #[arg(long, default_value = default_out())]
    out: PathBuf,
    /// Streams hosted by the operator.
    #[arg(long, default_value_t = 100)]
    streams: u32,
    /// Live purchases per stream in the chain view.
    #[arg(long, default_value_t = 50)]
    purchases_per_stream: u32,
    /// Timed publish and subscribe ACL decisions (each kind).
    #[arg(long, default_value_t = 200_000)]
    decisions: u32,
    /// Timed upload-token and access-request admissions (each kind; each one is a durable
    /// nonce write).
    #[arg(long, default_value_t = 2_000)]
    admissions: u32,
    /// Concurrent publishers in the ingest run (one stream each, at most --streams).
    #[arg(long, default_value_t = 100)]
    publishers: u32,
    /// Segments per publisher in the ingest run.
    #[arg(long, default_value_t = 1_000)]
    segments: u32,
    /// Plaintext bytes per segment.
    #[arg(long, default_value_t = 256)]
    payload: usize,
    /// The brokers to run the ingest through: Mosquitto (dynamic security), VerneMQ
    /// (webhooks, `$FASTDATA_VERNEMQ`), or both.
    #[arg(long, value_enum, default_value_t = BrokerChoice::Both)]
    broker: BrokerChoice,
    /// `[vernemq] cache_secs` of a second VerneMQ run in which the daemon lets VerneMQ cache
    /// allowed publish answers (0: no such run).
    #[arg(long, default_value_t = 5)]
    vernemq_cache_secs: u32,
    /// Publish → PUBACK round trips timed one at a time with the broker idle, per broker.
    #[arg(long, default_value_t = 1_000)]
    probe_samples: u32,
    /// The fastdata-operator binary (default: $FASTDATA_BIN/fastdata-operator or next to
    /// this executable).
    #[arg(long)]
    operator_bin: Option<PathBuf>,
    /// Also write the report here.
    #[arg(long, default_value = default_report())]
    report: PathBuf,
}

/// `fastdata-bench operator --broker`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum BrokerChoice {
    Mosquitto,
    Vernemq,
    Both,
}

impl BrokerChoice {
    /// The ingest runs, in order.
    fn gates(self, cache_secs: u32) -> Vec<operator::Gate> {
        let mut gates = Vec::new();
        if self != BrokerChoice::Vernemq {
            gates.push(operator::Gate::Mosquitto);
        }
        if self != BrokerChoice::Mosquitto {
            gates.push(operator::Gate::Vernemq { cache_secs: 0 });
            if cache_secs > 0 {
                gates.push(operator::Gate::Vernemq { cache_secs });
            }
        }
        gates
    }
}

#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("mode").required(true).args(["quick", "full"])))]
struct GridArgs {
    /// Small grid: 20 sellers, 1 and 3 operators, 100 B/s and 10 KB/s, 8 s phases.
    #[arg(long)]
    quick: bool,
    /// The paper's grid: 20–100 sellers, 1/3/5 operators, 100 B/s … 1 MB/s, 20 s phases.
    #[arg(long)]
    full: bool,
    /// Node WebSocket URL.
    #[arg(long, default_value = "ws://127.0.0.1:9950")]
    url: String,
    /// Directory under which the run directory is created.
    #[arg(long, default_value = default_out())]
    out: PathBuf,
    /// Overrides the seller counts (comma-separated, e.g. 20,40).
    #[arg(long)]
    sellers: Option<String>,
    /// Overrides the operator counts (comma-separated, e.g. 1,3).
    #[arg(long)]
    operators: Option<String>,
    /// Overrides the payload rates (comma-separated, e.g. 100B,10KB,1MB).
    #[arg(long)]
    rates: Option<String>,
    /// Overrides the length of each paced phase, seconds.
    #[arg(long)]
    duration: Option<u64>,
    /// Repetitions of each rate cell.
    #[arg(long, default_value_t = 1)]
    reps: u32,
    /// The fastdata-operator binary (default: $FASTDATA_BIN/fastdata-operator or next to
    /// this executable).
    #[arg(long)]
    operator_bin: Option<PathBuf>,
    /// Also write the report here (with the newest operator run found under --out).
    #[arg(long, default_value = default_report())]
    report: PathBuf,
}

#[derive(Args, Debug)]
struct ReportArgs {
    /// Run directories (each with results.csv and meta.csv).
    #[arg(required = true)]
    dirs: Vec<PathBuf>,
    /// Where to write the report.
    #[arg(long, default_value = default_report())]
    output: PathBuf,
}

fn default_out() -> &'static str {
    concat!(env!("CARGO_MANIFEST_DIR"), "/results")
}

fn default_report() -> &'static str {
    concat!(env!("CARGO_MANIFEST_DIR"), "/REPORT.md")
}

/// `YYYYMMDDTHHMMSSZ` of `secs` since the Unix epoch (UTC).
fn timestamp(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}{month:02}{day:02}T{:02}{:02}{:02}Z",
        rem / 3_600,
        rem % 3_600 / 60,
        rem % 60
    )
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn run_dir(out: &Path, mode: &str) -> anyhow::Result<(PathBuf, String)> {
    let started = timestamp(now_secs());
    let dir = out.join(format!("{mode}-{started}"));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok((dir, started))
}

fn operator_bin(explicit: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    match explicit {
        Some(path) if path.is_file() => Ok(path),
        Some(path) => bail!("--operator-bin {} is not a file", path.display()),
        None => fastdata_e2e::operator_binary(),
    }
}

/// The newest run directory under `out` whose name starts with one of `prefixes`.
fn newest_run(out: &Path, prefixes: &[&str]) -> Option<PathBuf> {
    let mut dirs: Vec<(String, PathBuf)> = std::fs::read_dir(out)
        .ok()?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join(results::RESULTS_CSV).exists())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let stamp = prefixes
                .iter()
                .find_map(|p| name.strip_prefix(&format!("{p}-")).map(str::to_owned))?;
            Some((stamp, e.path()))
        })
        .collect();
    dirs.sort();
    dirs.pop().map(|(_, p)| p)
}

fn finish(
    dir: &Path,
    rows: &[results::Row],
    mut meta: Vec<Meta>,
    report: &Path,
    out: &Path,
) -> anyhow::Result<()> {
    meta.extend(machine::describe());
    results::write_rows(dir, rows)?;
    results::write_meta(dir, &meta)?;
    let mut runs = Vec::new();
    runs.extend(newest_run(out, &["operator"]));
    runs.extend(newest_run(out, &["quick", "full", "custom"]));
    runs.extend(newest_run(out, &["trust"]));
    runs.extend(newest_run(out, &["scale"]));
    runs.extend(newest_run(out, &["latency"]));
    if !runs.iter().any(|r| r == dir) {
        runs.push(dir.to_path_buf());
    }
    report::generate(&runs, report)?;
    println!("results: {}\nreport:  {}", dir.display(), report.display());
    Ok(())
}

async fn operator(args: OperatorArgs) -> anyhow::Result<()> {
    if args.payload == 0 || args.payload > fastdata_primitives::envelope::MAX_PAYLOAD_LEN {
        bail!(
            "--payload must be 1..={} bytes",
            fastdata_primitives::envelope::MAX_PAYLOAD_LEN
        );
    }
    if args.decisions == 0 || args.admissions == 0 || args.probe_samples == 0 {
        bail!("--decisions, --admissions and --probe-samples must be at least 1");
    }
    if args.vernemq_cache_secs > fastdata_operator::config::MAX_VERNEMQ_CACHE_SECS {
        bail!(
            "--vernemq-cache-secs must be at most {}",
            fastdata_operator::config::MAX_VERNEMQ_CACHE_SECS
        );
    }
    if args.broker != BrokerChoice::Mosquitto {
        fastdata_e2e::vernemq::release()
            .context("--broker vernemq needs the VerneMQ release (or pass --broker mosquitto)")?;
    }
    let (dir, started) = run_dir(&args.out, "operator")?;
    let cfg = operator::OperatorBench {
        streams: args.streams,
        purchases_per_stream: args.purchases_per_stream,
        decisions: args.decisions,
        admissions: args.admissions,
        publishers: args.publishers,
        segments: args.segments,
        payload: args.payload,
        gates: args.broker.gates(args.vernemq_cache_secs),
        probe_samples: args.probe_samples,
        operator_bin: operator_bin(args.operator_bin)?,
        work: operator::work_dir(&dir),
    };
    let t0 = Instant::now();
    let rows = operator::run(&cfg).await?;
    let meta = run_meta("operator", started, t0, 1);
    // Keep the broker's and the daemon's logs of a stalled ingest for inspection.
    let stalled = rows
        .iter()
        .any(|r| r.metric.ends_with("ingest_stalled") && r.value > 0.0);
    if !stalled {
        let _ = std::fs::remove_dir_all(&cfg.work);
    }
    finish(&dir, &rows, meta, &args.report, &args.out)
}

/// The facts every run records first: mode, start, wall time so far and repetitions.
fn run_meta(mode: &str, started: String, t0: Instant, reps: u32) -> Vec<Meta> {
    [
        ("mode", mode.to_owned()),
        ("started", started),
        ("wall_s", format!("{:.0}", t0.elapsed().as_secs_f64())),
        ("reps", reps.to_string()),
    ]
    .into_iter()
    .map(|(key, value)| Meta {
        key: key.into(),
        value,
    })
    .collect()
}

async fn grid(args: GridArgs) -> anyhow::Result<()> {
    let mut spec = if args.full {
        spec::GridSpec::full()
    } else {
        spec::GridSpec::quick()
    };
    let mut mode = if args.full { "full" } else { "quick" };
    if let Some(s) = &args.sellers {
        spec.sellers = spec::parse_counts("--sellers", s, 1_000)?;
        mode = "custom";
    }
    if let Some(o) = &args.operators {
        spec.operators = spec::parse_counts("--operators", o, 16)?;
        mode = "custom";
    }
    if let Some(r) = &args.rates {
        spec.rates = spec::parse_rates(r)?;
        mode = "custom";
    }
    if let Some(d) = args.duration {
        if d == 0 || d > 3_600 {
            bail!("--duration must be 1..=3600 seconds");
        }
        spec.duration = Duration::from_secs(d);
        mode = "custom";
    }
    if args.reps == 0 || args.reps > 100 {
        bail!("--reps must be 1..=100");
    }
    spec.reps = args.reps;
    if !(args.url.starts_with("ws://") || args.url.starts_with("wss://")) {
        bail!("--url must be a ws:// or wss:// URL, got {:?}", args.url);
    }
    // The e2e network starts the daemon it finds through FASTDATA_BIN.
    let bin = operator_bin(args.operator_bin)?;
    if let Some(parent) = bin.parent() {
        std::env::set_var("FASTDATA_BIN", parent);
    }
    let (dir, started) = run_dir(&args.out, mode)?;
    let bar = ProgressBar::new(spec.cells());
    if let Ok(style) =
        ProgressStyle::with_template("[{elapsed_precise}] {bar:30} {pos}/{len} cells  {msg}")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.enable_steady_tick(Duration::from_millis(250));
    let progress = grid::Progress { cells: bar };
    let t0 = Instant::now();
    let mut rows = Vec::new();
    // Ctrl-C or SIGTERM ends the run like an error: what was measured is kept.
    let work = grid::work_dir(&dir);
    let result = tokio::select! {
        result = grid::run(&spec, &args.url, &work, &progress, &mut rows) => result,
        _ = fastdata_operator::termination_signal() => Err(anyhow::anyhow!("interrupted")),
    };
    progress.cells.finish_and_clear();
    let mut meta = run_meta(mode, started, t0, spec.reps);
    meta.extend([
        Meta {
            key: "duration_s".into(),
            value: spec.duration.as_secs().to_string(),
        },
        Meta {
            key: "url".into(),
            value: args.url.clone(),
        },
    ]);
    if let Err(e) = &result {
        // Keep what was measured, and say why the run stopped; the work directory (logs)
        // stays for inspection.
        meta.push(Meta {
            key: "error".into(),
            value: format!("{e:#}"),
        });
        meta.extend(machine::describe());
        results::write_rows(&dir, &rows)?;
        results::write_meta(&dir, &meta)?;
        return result.with_context(|| format!("partial results in {}", dir.display()));
    }
    let _ = std::fs::remove_dir_all(grid::work_dir(&dir));
    finish(&dir, &rows, meta, &args.report, &args.out)
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "error".into()),
        )
        .init();
    let cli = Cli::parse();
    let profile = machine::profile();
    if !matches!(cli.command, Command::Report(_)) && profile != "production" {
        eprintln!(
            "fastdata-bench: built with the `{profile}` profile; measurements belong to \
             `cargo build --profile production` (FASTDATA_BIN=$FASTDATA_TARGET/production)"
        );
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("fastdata-bench: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Operator(args) => operator(args).await,
            Command::Grid(args) => grid(args).await,
            Command::Trust(args) => trust::command(args).await,
            Command::Scale(args) => scale::command(args).await,
            Command::Latency(args) => latency::command(args).await,
            Command::Report(args) => report::generate(&args.dirs, &args.output).map(|()| {
                println!("report: {}", args.output.display());
            }),
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fastdata-bench: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_timestamps() {
        assert_eq!(timestamp(0), "19700101T000000Z");
        assert_eq!(timestamp(951_782_400), "20000229T000000Z");
        assert_eq!(timestamp(1_795_608_354), "20261125T120554Z");
    }

    #[test]
    fn cli_checks_its_inputs() {
        assert!(Cli::try_parse_from(["fastdata-bench", "grid"]).is_err());
        assert!(Cli::try_parse_from(["fastdata-bench", "grid", "--quick", "--full"]).is_err());
        assert!(Cli::try_parse_from(["fastdata-bench", "grid", "--quick"]).is_ok());
        assert!(Cli::try_parse_from(["fastdata-bench", "operator", "--streams", "x"]).is_err());
        assert!(Cli::try_parse_from(["fastdata-bench", "operator", "--broker", "kafka"]).is_err());
        let Ok(Cli {
            command: Command::Operator(args),
        }) = Cli::try_parse_from(["fastdata-bench", "operator"])
        else {
            panic!("operator takes no required arguments");
        };
        assert_eq!(args.broker, BrokerChoice::Both);
        assert_eq!(
            args.broker.gates(args.vernemq_cache_secs),
            vec![
                operator::Gate::Mosquitto,
                operator::Gate::Vernemq { cache_secs: 0 },
                operator::Gate::Vernemq { cache_secs: 5 }
            ]
        );
        assert_eq!(
            BrokerChoice::Vernemq.gates(0),
            vec![operator::Gate::Vernemq { cache_secs: 0 }]
        );
        assert_eq!(
            BrokerChoice::Mosquitto.gates(5),
            vec![operator::Gate::Mosquitto]
        );
        assert!(Cli::try_parse_from(["fastdata-bench", "report"]).is_err());
    }
}

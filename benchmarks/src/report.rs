//! `REPORT.md`: the measurements of an operator run and a grid run as tables, beside the
//! paper's numbers and the DESIGN.md targets, with the figures.

use std::{
    fmt::Write as _,
    path::{Path, PathBuf},
};

use anyhow::Context;

use crate::{
    plot,
    results::{self, meta_value, Meta, Row},
    spec::rate_label,
};

/// The paper's prototype throughput range, msgs/s.
pub const PAPER_THROUGHPUT: (f64, f64) = (162.0, 306.0);
/// The paper's total runtime range for 20–100 sellers, s.
pub const PAPER_RUNTIME: (f64, f64) = (0.55, 3.5);
/// DESIGN.md: authorization decision p99, µs.
pub const TARGET_DECISION_P99_US: f64 = 1_000.0;
/// DESIGN.md: segments/s through broker and persistence on 2 cores.
pub const TARGET_SEGMENTS_PER_S: f64 = 30_000.0;
/// DESIGN.md: end-to-end p99, ms.
pub const TARGET_E2E_P99_MS: f64 = 50.0;
/// DESIGN.md: overhead vs plaintext, %.
pub const TARGET_OVERHEAD_PCT: f64 = 10.0;
/// DESIGN.md: operator RSS with 100 streams, MB (10^6 bytes).
pub const TARGET_RSS_MB: f64 = 100.0;
/// DESIGN.md: 100 sellers onboard within 2 block times (1 s blocks on the dev chain), s.
pub const TARGET_ONBOARD_S: f64 = 2.0;

/// Rows of one run with lookups.
pub struct Table {
    /// The rows.
    pub rows: Vec<Row>,
}

impl Table {
    fn sorted<T: Ord + Copy>(&self, f: impl Fn(&Row) -> Option<T>) -> Vec<T> {
        let mut v: Vec<T> = self
            .rows
            .iter()
            .filter(|r| r.experiment == "grid")
            .filter_map(f)
            .collect();
        v.sort();
        v.dedup();
        v
    }

    /// Operator counts in the grid.
    pub fn operators(&self) -> Vec<u32> {
        self.sorted(|r| r.operators.filter(|o| *o > 0))
    }

    /// Seller counts in the grid.
    pub fn sellers(&self) -> Vec<u32> {
        self.sorted(|r| r.sellers.filter(|s| *s > 0))
    }

    /// Payload rates in the grid.
    pub fn rates(&self) -> Vec<u64> {
        self.sorted(|r| r.rate)
    }

    /// Mean over repetitions of `metric` in grid cell (`sellers`, `operators`, `rate`).
    pub fn mean(
        &self,
        sellers: u32,
        operators: u32,
        rate: Option<u64>,
        metric: &str,
    ) -> Option<f64> {
        let values: Vec<f64> = self
            .rows
            .iter()
            .filter(|r| {
                r.experiment == "grid"
                    && r.sellers == Some(sellers)
                    && r.operators == Some(operators)
                    && r.rate == rate
                    && r.metric == metric
            })
            .map(|r| r.value)
            .collect();
        (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
    }

    /// An operator-benchmark value.
    pub fn op(&self, metric: &str) -> Option<f64> {
        self.rows
            .iter()
            .find(|r| r.experiment == "operator" && r.metric == metric)
            .map(|r| r.value)
    }

    /// Repetitions in the grid.
    pub fn reps(&self) -> u32 {
        self.sorted(|r| r.rep).len() as u32
    }
}

fn f(v: Option<f64>, digits: usize) -> String {
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

/// A run directory loaded for the report.
pub struct Run {
    /// Where it is.
    pub dir: PathBuf,
    /// Its rows.
    pub table: Table,
    /// Its description.
    pub meta: Vec<Meta>,
}

impl Run {
    /// Loads `dir/results.csv` and `dir/meta.csv`.
    pub fn load(dir: &Path) -> anyhow::Result<Self> {
        Ok(Self {
            dir: dir.to_path_buf(),
            table: Table {
                rows: results::read_rows(dir)?,
            },
            meta: results::read_meta(dir)?,
        })
    }

    fn kind(&self) -> &str {
        meta_value(&self.meta, "mode").unwrap_or("unknown")
    }
}

/// `to` relative to the directory of `from` (for links in the report).
pub fn link(from: &Path, to: &Path) -> String {
    let base = from.parent().unwrap_or(Path::new("."));
    let rel = match (base.canonicalize(), to.canonicalize()) {
        (Ok(b), Ok(t)) => t.strip_prefix(&b).map(Path::to_path_buf).unwrap_or(t),
        _ => to.to_path_buf(),
    };
    rel.display().to_string()
}

fn machine_section(out: &mut String, runs: &[Run]) {
    out.push_str("## Machine, build and runs\n\n| run | mode | CPU | nproc | memory | profile | repetitions | started (UTC) | wall time | load avg at end |\n|---|---|---|---|---|---|---|---|---|---|\n");
    for run in runs {
        let m = |k: &str| meta_value(&run.meta, k).unwrap_or("?").to_owned();
        let _ = writeln!(
            out,
            "| `{}` | {} | {} | {} | {} MiB | {} | {} | {} | {} s | {} |",
            run.dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            run.kind(),
            m("cpu_model"),
            m("nproc"),
            m("mem_total_mib"),
            m("profile"),
            m("reps"),
            m("started"),
            m("wall_s"),
            m("loadavg_at_end"),
        );
    }
    out.push('\n');
}

fn operator_section(out: &mut String, run: &Run, report: &Path) -> anyhow::Result<()> {
    let t = &run.table;
    let _ = writeln!(
        out,
        "## Storage operator (`fastdata-bench operator`, run `{}`)\n",
        run.dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    );
    let stalled = t.op("ingest_stalled") == Some(1.0);
    let _ = writeln!(
        out,
        "In-memory chain view of {} streams and {} purchases; each decision timed on its own \
         (µs). Admissions verify an sr25519 signature and record the nonce in the daemon's redb \
         store in a durable (fsync) transaction; the ACL decisions are the per-message checks.\n",
        f(t.op("view_streams"), 0),
        f(t.op("view_purchases"), 0)
    );
    out.push_str("| decision | count | p50 µs | p99 µs | max µs | target p99 | verdict |\n|---|---|---|---|---|---|---|\n");
    for (key, name) in [
        (
            "auth_upload_check",
            "upload token check (view + signature, no nonce write)",
        ),
        (
            "auth_access_check",
            "access request check (view + signature, no nonce write)",
        ),
        (
            "auth_upload_token",
            "upload token admission (with durable nonce)",
        ),
        (
            "auth_access_request",
            "access request admission (with durable nonce)",
        ),
        ("auth_subscribe", "subscribe ACL"),
        ("auth_publish", "publish ACL (with segment header check)"),
    ] {
        let p99 = t.op(&format!("{key}_p99"));
        let _ = writeln!(
            out,
            "| {name} | {} | {} | {} | {} | < 1,000 µs | {} |",
            f(t.op(&format!("{key}_count")), 0),
            f(t.op(&format!("{key}_p50")), 1),
            f(p99, 1),
            f(t.op(&format!("{key}_max")), 1),
            verdict(p99.map(|v| v < TARGET_DECISION_P99_US)),
        );
    }
    let persisted = t.op("ingest_persisted_per_s");
    let rss = |k: &str| t.op(k).map(|mib| mib * 1.048_576);
    let _ =
        writeln!(
        out,
        "\nIngest: {} publishers (SDK `StreamPublisher`, QoS 1) × {} segments of {} B plaintext \
         into one Mosquitto and one `fastdata-operator` process (fixture chain), until the \
         daemon's `segments_in{{result=\"stored\"}}` counter reached the total.\n",
        f(t.op("ingest_publishers"), 0),
        f(t.op("ingest_segments").zip(t.op("ingest_publishers")).map(|(s, p)| s / p), 0),
        f(t.op("ingest_payload"), 0),
    );
    out.push_str("| metric | measured | target | verdict |\n|---|---|---|---|\n");
    let _ = writeln!(
        out,
        "| segments persisted/s | {} | ≥ 30,000 | {} |",
        f(persisted, 0),
        if stalled {
            "**missed** (stalled)"
        } else {
            verdict(persisted.map(|v| v >= TARGET_SEGMENTS_PER_S))
        }
    );
    let _ = writeln!(
        out,
        "| segments acknowledged by the broker/s | {} | | |",
        f(t.op("ingest_acked_per_s"), 0)
    );
    let _ = writeln!(
        out,
        "| daemon CPU during ingest | {} cores | | |",
        f(t.op("ingest_daemon_cpu"), 2)
    );
    let _ = writeln!(
        out,
        "| publishers' CPU (bench process) | {} cores | | |",
        f(t.op("ingest_publishers_cpu"), 2)
    );
    let _ = writeln!(
        out,
        "| Mosquitto CPU | {} cores | | |",
        f(t.op("ingest_broker_cpu"), 2)
    );
    let _ = writeln!(
        out,
        "| whole machine busy (all processes, other users included) | {} cores | | |",
        f(t.op("ingest_machine_busy"), 2)
    );
    for (key, name) in [
        ("rss_idle", "daemon RSS, idle with all streams"),
        ("rss_after_ingest", "daemon RSS after ingest"),
        ("rss_peak", "daemon peak RSS (VmHWM)"),
    ] {
        let v = rss(key);
        let _ = writeln!(
            out,
            "| {name} | {} MB | < 100 MB | {} |",
            f(v, 1),
            verdict(v.map(|v| v < TARGET_RSS_MB))
        );
    }
    if stalled {
        let _ = writeln!(
            out,
            "\n**The daemon's ingest stalled** after {} of {} segments: no segment was stored for \
             30 s (the persisted rate above is up to the last progress). See the notes.",
            f(t.op("ingest_stored"), 0),
            f(t.op("ingest_segments"), 0)
        );
    }
    if let Some(p) = persisted {
        if p < TARGET_SEGMENTS_PER_S {
            let _ = writeln!(
                out,
                "\nIngest misses the target by {:.1}× ({:.0} of 30,000 segments/s).",
                TARGET_SEGMENTS_PER_S / p,
                p
            );
        }
    }
    out.push('\n');
    brokers_section(out, run, report)
}

/// The ingest runs of an operator run: (metric prefix, name), those measured.
fn broker_runs(t: &Table) -> Vec<(&'static str, String)> {
    [
        ("", "Mosquitto".to_owned()),
        ("vernemq_", "VerneMQ".to_owned()),
        (
            "vernemq_cached_",
            format!(
                "VerneMQ, publish answers cached {} s",
                f(t.op("vernemq_cached_cache_secs"), 0)
            ),
        ),
    ]
    .into_iter()
    .filter(|(prefix, _)| t.op(&format!("{prefix}ingest_persisted_per_s")).is_some())
    .collect()
}

/// Mosquitto beside VerneMQ: throughput, publish → PUBACK latency, the webhook's cost.
fn brokers_section(out: &mut String, run: &Run, report: &Path) -> anyhow::Result<()> {
    let t = &run.table;
    let runs = broker_runs(t);
    if !runs.iter().any(|(prefix, _)| prefix.starts_with("vernemq")) {
        return Ok(());
    }
    out.push_str("### The gate on each broker: Mosquitto and VerneMQ\n\n");
    out.push_str(
        "The same ingest, one fresh broker and daemon each. Mosquitto: the daemon grants logins \
         and topics ahead through the dynamic-security plugin and the broker decides each publish \
         alone. VerneMQ 2.1.2 (the settings of `storage-operator/vernemq.conf`, and socket reads of \
         at most 32 KiB: `listener.tcp.buffer_sizes`, see `VERNEMQ_SETTINGS` in \
         `benchmarks/src/operator.rs`): the broker asks the daemon's webhooks at every register, \
         subscribe and publish, and acknowledges a QoS 1 publish after `auth_on_publish` \
         answered; it stores every QoS 1 message for the daemon's persistent ingest session in \
         its LevelDB message store before delivering it. Cached: the daemon adds \
         `cache-control: max-age` to allowed `auth_on_publish` answers (`[vernemq] cache_secs`), \
         so VerneMQ asks once per publisher and expiry; no other hook is cached (see \
         `storage-operator/src/gate/vernemq.rs` for why and what a cached answer skips). A probe \
         publisher on a stream of its own (same login path as the SDK) times publish → PUBACK \
         one segment at a time every 5 ms: idle, then beside the flood until the publishers \
         are done.\n\n",
    );
    out.push_str("| broker | segments persisted/s | acknowledged/s | daemon CPU | broker CPU | publishers CPU | machine busy | daemon peak RSS |\n|---|---|---|---|---|---|---|---|\n");
    for (prefix, name) in &runs {
        let m = |k: &str| t.op(&format!("{prefix}{k}"));
        let stalled = if m("ingest_stalled") == Some(1.0) {
            " (**stalled**)"
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "| {name} | {}{stalled} | {} | {} | {} | {} | {} | {} MB |",
            f(m("ingest_persisted_per_s"), 0),
            f(m("ingest_acked_per_s"), 0),
            f(m("ingest_daemon_cpu"), 2),
            f(m("ingest_broker_cpu"), 2),
            f(m("ingest_publishers_cpu"), 2),
            f(m("ingest_machine_busy"), 2),
            f(m("rss_peak").map(|mib| mib * 1.048_576), 1),
        );
    }
    out.push_str("\nPublish → PUBACK, ms (nearest rank):\n\n| broker | idle p50 | idle p95 | idle p99 | beside the flood p50 | p95 | p99 | max | round trips idle / beside |\n|---|---|---|---|---|---|---|---|---|\n");
    for (prefix, name) in &runs {
        let m = |k: &str| t.op(&format!("{prefix}puback_{k}"));
        let _ = writeln!(
            out,
            "| {name} | {} | {} | {} | {} | {} | {} | {} | {} / {} |",
            f(m("idle_p50"), 3),
            f(m("idle_p95"), 3),
            f(m("idle_p99"), 3),
            f(m("load_p50"), 2),
            f(m("load_p95"), 2),
            f(m("load_p99"), 2),
            f(m("load_max"), 2),
            f(m("idle_count"), 0),
            f(m("load_count"), 0),
        );
    }
    out.push_str("\nThe webhook during the flood: VerneMQ's count of `auth_on_publish` requests it sent (its cache misses) and the daemon's time to answer one (`fastdata_operator_webhook_seconds`, from the request to the answer; percentiles interpolated within its ×1.5 buckets):\n\n| broker | segments | webhook requests | per segment | daemon answer mean µs | p50 µs | p99 µs |\n|---|---|---|---|---|---|---|\n");
    for (prefix, name) in runs.iter().filter(|(p, _)| p.starts_with("vernemq")) {
        let m = |k: &str| t.op(&format!("{prefix}{k}"));
        let requests = m("vmq_publish_requests");
        // The probe's round trips beside the flood went through the same hook.
        let segments = m("ingest_segments").map(|s| s + m("puback_load_count").unwrap_or(0.0));
        let _ = writeln!(
            out,
            "| {name} | {} | {} | {} | {} | {} | {} |",
            f(segments, 0),
            f(requests, 0),
            f(requests.zip(segments).map(|(r, s)| r / s.max(1.0)), 3),
            f(m("webhook_publish_mean"), 1),
            f(m("webhook_publish_p50"), 1),
            f(m("webhook_publish_p99"), 1),
        );
    }
    let idle = |prefix: &str| t.op(&format!("{prefix}puback_idle_p50"));
    if let (Some(asked), Some(cached)) = (idle("vernemq_"), idle("vernemq_cached_")) {
        let _ = writeln!(
            out,
            "\nThe `auth_on_publish` round trip as VerneMQ sees it (idle p50, asked − cached): \
             {:.3} ms.",
            asked - cached
        );
    }
    let figures = crate::plot::puback_figures(t, &runs, &run.dir)?;
    if !figures.is_empty() {
        out.push('\n');
        for fig in figures {
            let name = fig
                .file_stem()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let _ = writeln!(out, "![{name}]({})\n", link(report, &fig));
        }
    }
    out.push('\n');
    Ok(())
}

fn grid_section(out: &mut String, run: &Run, report: &Path) -> anyhow::Result<()> {
    let t = &run.table;
    if let Some(error) = meta_value(&run.meta, "error") {
        let _ = writeln!(
            out,
            "## Experiment grid run `{}` stopped early\n\n> {error}\n\nIts cells measured before \
             the stop follow.\n",
            run.dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        );
    }
    let ops = t.operators();
    let sellers = t.sellers();
    let rates = t.rates();
    let _ = writeln!(
        out,
        "## Experiment grid (`fastdata-bench grid`, {} mode)\n\nSellers {:?}, operators {:?}, \
         rates {}; paced phases of {} s; {} repetition(s).\n",
        run.kind(),
        sellers,
        ops,
        rates
            .iter()
            .map(|r| rate_label(*r))
            .collect::<Vec<_>>()
            .join(", "),
        meta_value(&run.meta, "duration_s").unwrap_or("?"),
        t.reps().max(1),
    );

    out.push_str(
        "### Onboarding runtime per seller (DID + offer + stream, all sellers at once)\n\n",
    );
    let _ = writeln!(
        out,
        "Paper: total runtime {}–{} s for 20–100 sellers. DESIGN.md: 100 sellers onboard within 2 \
         block times (2 s at 1 s blocks). Every transaction waits for finality.\n",
        PAPER_RUNTIME.0, PAPER_RUNTIME.1
    );
    out.push_str("| sellers | operators | mean s | min s | max s | DID mean s | offer mean s | stream mean s | wall s | ≤ 2 block times |\n|---|---|---|---|---|---|---|---|---|---|\n");
    for &s in &sellers {
        for &i in &ops {
            let m = |k: &str| t.mean(s, i, None, k);
            let wall = m("onboard_wall");
            let _ = writeln!(
                out,
                "| {s} | {i} | {} | {} | {} | {} | {} | {} | {} | {} |",
                f(m("onboard_seller_mean"), 2),
                f(m("onboard_seller_min"), 2),
                f(m("onboard_seller_max"), 2),
                f(m("onboard_did_mean"), 2),
                f(m("onboard_offer_mean"), 2),
                f(m("onboard_stream_mean"), 2),
                f(wall, 2),
                if s == 100 {
                    verdict(wall.map(|w| w <= TARGET_ONBOARD_S))
                } else {
                    "(target is for 100)"
                }
            );
        }
    }

    out.push_str("\n### Upload throughput (every seller uploads at once, as fast as it can, to all its operators)\n\n");
    let _ = writeln!(
        out,
        "Paper: {}–{} msgs/s. A message counts once however many operators it goes to; the \
         upload ends when every operator's broker acknowledged every message (QoS 1); \
         \"persisted\" waits until every operator daemon stored every segment (its \
         `segments_in{{result=\"stored\"}}` counter). The plaintext burst sends the same \
         messages unencrypted with rumqttc to the same brokers (QoS 1, until acknowledged). \
         Throughput overhead = how much longer FAST DATA takes per message, persisted, than \
         plaintext acknowledged (DESIGN.md: ≤ 10 %).\n",
        PAPER_THROUGHPUT.0, PAPER_THROUGHPUT.1
    );
    out.push_str("| sellers | operators | rate | message B | msgs per seller | upload s | msgs/s (all, acked by brokers) | msgs/s per seller | persisted by every operator, msgs/s | plaintext msgs/s | throughput overhead | ≤ 10 % | vs paper's best |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    for &s in &sellers {
        for &i in &ops {
            for &r in &rates {
                let m = |k: &str| t.mean(s, i, Some(r), k);
                let tput = m("upload_msgs_per_s");
                let over = m("overhead_throughput");
                let _ = writeln!(
                    out,
                    "| {s} | {i} | {} | {} | {} | {} | {} | {} | {} | {} | {} % | {} | {} |",
                    rate_label(r),
                    f(m("message_size"), 0),
                    f(m("upload_msgs_per_seller"), 0),
                    f(m("upload_time"), 2),
                    f(tput, 0),
                    f(m("upload_msgs_per_s_seller_mean"), 0),
                    f(m("fast_persisted_msgs_per_s"), 0),
                    f(m("plain_upload_msgs_per_s"), 0),
                    f(over, 0),
                    verdict(over.map(|v| v <= TARGET_OVERHEAD_PCT)),
                    tput.map(|v| format!("{:.1}×", v / PAPER_THROUGHPUT.1))
                        .unwrap_or("–".into()),
                );
            }
        }
    }

    out.push_str("\n### End-to-end latency and overhead vs plaintext MQTT (same brokers, rate and size, same run)\n\n");
    let _ = writeln!(
        out,
        "FAST DATA: `StreamPublisher::publish` (seal, MAC) → every assigned broker (operators \
         persist) → the buyer's SDK receiver (open, verify). Plaintext: rumqttc publish → same \
         brokers → plain subscriber. Latency from the publish call to the verified delivery. \
         DESIGN.md: p99 < {TARGET_E2E_P99_MS} ms. At these paced rates the latencies are \
         sub-millisecond to a few ms, so the latency overhead in percent is large while the \
         absolute difference is small; the ≤ {TARGET_OVERHEAD_PCT} % target is judged on \
         throughput above.\n"
    );
    out.push_str("| sellers | operators | rate | FAST p50 ms | FAST p99 ms | plain p50 ms | plain p99 ms | latency overhead p50 | latency overhead p99 | delivered FAST | delivered plain | p99 < 50 ms |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    for &s in &sellers {
        for &i in &ops {
            for &r in &rates {
                let m = |k: &str| t.mean(s, i, Some(r), k);
                let p99 = m("fast_latency_p99");
                let _ = writeln!(
                    out,
                    "| {s} | {i} | {} | {} | {} | {} | {} | {} % | {} % | {}/{} | {}/{} | {} |",
                    rate_label(r),
                    f(m("fast_latency_p50"), 2),
                    f(p99, 2),
                    f(m("plain_latency_p50"), 2),
                    f(m("plain_latency_p99"), 2),
                    f(m("overhead_latency_p50"), 0),
                    f(m("overhead_latency_p99"), 0),
                    f(m("fast_received"), 0),
                    f(m("fast_sent"), 0),
                    f(m("plain_received"), 0),
                    f(m("plain_sent"), 0),
                    verdict(p99.map(|v| v < TARGET_E2E_P99_MS)),
                );
            }
        }
    }

    let figures = plot::grid_figures(t, &run.dir)?;
    if !figures.is_empty() {
        out.push_str("\n### Figures\n\n");
        for fig in figures {
            let name = fig
                .file_stem()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let _ = writeln!(out, "![{name}]({})\n", link(report, &fig));
        }
    }
    Ok(())
}

/// Writes the report of `runs` (each a run directory) to `output`, drawing the figures into
/// the grid runs' `plots/`.
pub fn generate(dirs: &[PathBuf], output: &Path) -> anyhow::Result<()> {
    let mut runs = Vec::new();
    for dir in dirs {
        runs.push(
            Run::load(dir).with_context(|| format!("cannot load the run in {}", dir.display()))?,
        );
    }
    let mut out = String::from(
        "# FAST DATA benchmarks\n\nGenerated by `fastdata-bench report` from the CSV files of the runs below \
         (regenerate with `fastdata-bench report <run dir>…`). Every number is measured by the run; \
         none is typed in. Runtime weights of the pallets are in `weights/REPORT.md`.\n\n",
    );
    machine_section(&mut out, &runs);
    for run in &runs {
        if run.kind() == "operator" {
            operator_section(&mut out, run, output)?;
        } else if run.kind() == "trust" {
            crate::trust::section(&mut out, run, output)?;
        } else if run.kind() == "scale" {
            crate::scale::section(&mut out, run, output)?;
        } else if run.kind() == "latency" {
            crate::latency::section(&mut out, run, output)?;
        } else {
            grid_section(&mut out, run, output)?;
        }
    }
    for run in &runs {
        let notes = run.dir.join("notes.md");
        if let Ok(text) = std::fs::read_to_string(&notes) {
            out.push_str(&text);
            out.push('\n');
        }
    }
    out.push_str(METHOD);
    std::fs::write(output, out).with_context(|| format!("cannot write {}", output.display()))?;
    Ok(())
}

const METHOD: &str = "## Method\n\n\
- `fastdata-bench operator`: decisions are timed one by one with `Instant` around the daemon's own \
  `Authorizer` calls; tokens and requests are signed before timing. Ingest uses the released \
  `fastdata-operator` binary with a fixture chain (no node), its Mosquitto with the dynamic-security \
  plugin (and, per run, VerneMQ with webhooks), and the SDK publisher; memory is `VmRSS`/`VmHWM` of \
  that process. Publish → PUBACK is timed by a probe publisher from the publish call to the PUBACK \
  in its MQTT event loop.\n\
- `fastdata-bench grid`: a dev node (`--dev --dev-block-time 1000`), `fastdata-e2e`'s `Network` \
  (Mosquitto + `fastdata-operator` per operator, registered on chain). Sellers and the buyer are fresh \
  accounts funded before timing; the issuer's KYC attestations are batched between the two timed \
  onboarding steps. Payload rates become messages of `rate / 10` bytes (16 B to 32 KiB) at the interval \
  that gives the rate. Each payload carries its send time; latency is measured on the same clock.\n\
- Percentiles are nearest-rank over all samples of a cell.\n";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_from_csv() {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path().join("quick-x");
        std::fs::create_dir_all(&run).unwrap();
        let mut rows = Vec::new();
        for (s, i) in [(20, 1), (20, 3)] {
            rows.push(Row::grid(
                (s, i, None, None),
                "onboard_seller_mean",
                2.5,
                "s",
            ));
            for r in [100, 10_000] {
                rows.push(Row::grid(
                    (s, i, Some(r), Some(0)),
                    "upload_msgs_per_s",
                    900.0,
                    "msgs/s",
                ));
                rows.push(Row::grid(
                    (s, i, Some(r), Some(0)),
                    "fast_latency_p99",
                    60.0,
                    "ms",
                ));
                rows.push(Row::grid(
                    (s, i, Some(r), Some(0)),
                    "overhead_latency_p99",
                    5.0,
                    "%",
                ));
            }
        }
        results::write_rows(&run, &rows).unwrap();
        results::write_meta(
            &run,
            &[Meta {
                key: "mode".into(),
                value: "quick".into(),
            }],
        )
        .unwrap();
        let table = Run::load(&run).unwrap().table;
        assert_eq!(table.operators(), vec![1, 3]);
        assert_eq!(table.rates(), vec![100, 10_000]);
        assert_eq!(
            table.mean(20, 3, Some(100), "upload_msgs_per_s"),
            Some(900.0)
        );
        let output = dir.path().join("REPORT.md");
        generate(std::slice::from_ref(&run), &output).unwrap();
        let text = std::fs::read_to_string(&output).unwrap();
        assert!(text.contains("| 20 | 3 | 10 KB/s |"), "{text}");
        assert!(text.contains("**missed**"));
        assert!(run.join("plots/runtime_vs_sellers.svg").exists());
    }

    #[test]
    fn operator_report_compares_the_brokers() {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path().join("operator-x");
        std::fs::create_dir_all(&run).unwrap();
        let mut rows = Vec::new();
        for (prefix, rate, idle) in [
            ("", 60_000.0, 0.2),
            ("vernemq_", 9_000.0, 0.9),
            ("vernemq_cached_", 20_000.0, 0.4),
        ] {
            rows.push(Row::operator(
                &format!("{prefix}ingest_persisted_per_s"),
                rate,
                "segments/s",
            ));
            rows.push(Row::operator(
                &format!("{prefix}ingest_segments"),
                1000.0,
                "segments",
            ));
            for (q, factor) in [("p50", 1.0), ("p95", 2.0), ("p99", 3.0)] {
                rows.push(Row::operator(
                    &format!("{prefix}puback_idle_{q}"),
                    idle * factor,
                    "ms",
                ));
                rows.push(Row::operator(
                    &format!("{prefix}puback_load_{q}"),
                    10.0 * idle * factor,
                    "ms",
                ));
            }
        }
        rows.push(Row::operator("vernemq_cached_cache_secs", 5.0, "s"));
        rows.push(Row::operator(
            "vernemq_vmq_publish_requests",
            1000.0,
            "requests",
        ));
        rows.push(Row::operator("vernemq_webhook_publish_mean", 120.0, "us"));
        results::write_rows(&run, &rows).unwrap();
        results::write_meta(
            &run,
            &[Meta {
                key: "mode".into(),
                value: "operator".into(),
            }],
        )
        .unwrap();
        let output = dir.path().join("REPORT.md");
        generate(std::slice::from_ref(&run), &output).unwrap();
        let text = std::fs::read_to_string(&output).unwrap();
        assert!(text.contains("| VerneMQ | 9000 |"), "{text}");
        assert!(
            text.contains("| VerneMQ, publish answers cached 5 s | 20000 |"),
            "{text}"
        );
        assert!(
            text.contains("| VerneMQ | 1000 | 1000 | 1.000 | 120.0 |"),
            "{text}"
        );
        assert!(text.contains("asked − cached): 0.500 ms"), "{text}");
        assert!(run.join("plots/puback_idle_by_broker.svg").exists());
        assert!(run.join("plots/puback_load_by_broker.svg").exists());
    }
}

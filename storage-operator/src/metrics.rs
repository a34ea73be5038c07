//! Prometheus metrics, served as text on `GET /metrics` (OpenMetrics; every name starts with
//! `fastdata_operator_`). `grafana/fastdata-operator.json` is a dashboard of them.

use fastdata_primitives::PurchaseId;
use prometheus_client::{
    encoding::text::encode,
    metrics::{
        counter::Counter,
        family::Family,
        gauge::Gauge,
        histogram::{exponential_buckets, Histogram},
    },
    registry::Registry,
};

type Labels = Vec<(&'static str, &'static str)>;
type OwnedLabels = Vec<(&'static str, String)>;
/// A histogram per label set.
type Histograms = Family<Labels, Histogram, fn() -> Histogram>;

/// Buckets of [`Metrics::webhook_seconds`]: 10 µs × 1.5ⁿ, up to about 0.57 s.
fn webhook_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.000_01, 1.5, 28))
}

/// The VerneMQ hooks the daemon answers, as metric labels (anything else: `unknown`).
const WEBHOOK_HOOKS: &[&str] = &[
    "auth_on_register",
    "auth_on_register_m5",
    "auth_on_publish",
    "auth_on_publish_m5",
    "auth_on_subscribe",
    "auth_on_subscribe_m5",
    "on_client_offline",
    "on_client_gone",
];

fn gauge_value(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// All counters of the daemon.
pub struct Metrics {
    registry: Registry,
    /// Segments received from the broker, by result (`stored`, `duplicate`, `refused`).
    pub segments_in: Family<Labels, Counter>,
    /// Envelope bytes stored.
    pub segment_bytes_in: Counter,
    /// Segments stored from another operator by backfill.
    pub segments_backfilled: Counter,
    /// Segments pruned by retention.
    pub segments_pruned: Counter,
    /// Envelope bytes served to buyers over HTTP.
    pub bytes_served: Counter,
    /// Segments served to buyers over HTTP.
    pub segments_served: Counter,
    /// Authorization decisions, by action and result.
    pub auth_decisions: Family<Labels, Counter>,
    /// Receipts received from buyers, by result.
    pub receipts: Family<Labels, Counter>,
    /// Claims submitted to the escrow pallet, by result (`accepted`, `rejected`, `failed`).
    pub claims: Family<Labels, Counter>,
    /// Broker gate commands (grants, revocations), by result.
    pub gate_commands: Family<Labels, Counter>,
    /// Streams currently hosted.
    pub streams: Gauge,
    /// Segments refused by validation, by reason (`not_stream_topic`, `malformed`,
    /// `too_large`, `wrong_stream`, `unknown_stream`, `future_epoch`, …).
    pub segments_refused: Family<Labels, Counter>,
    /// Valid segments not stored, by reason (`duplicate`: already stored; `peer_invalid`: a
    /// backfill page that failed validation; `above_head`: a backfilled segment at or above
    /// the stream's attested head).
    pub segments_dropped: Family<Labels, Counter>,
    /// The node's finalized head, as last seen by the chain follower.
    pub chain_finalized_head: Gauge,
    /// The last finalized block the chain follower applied to the view.
    pub chain_processed_block: Gauge,
    /// `chain_finalized_head − chain_processed_block`.
    pub chain_follower_lag: Gauge,
    /// Purchases with a receipt newer than the last one accepted on chain (after the last
    /// claim round).
    pub claims_pending: Gauge,
    /// Claims accepted on chain.
    pub claims_earned: Counter,
    /// Pay accrued by accepted claims, in planck.
    pub claims_earned_planck: Counter,
    /// Receipts accepted since start, per open purchase (dropped when the purchase ends).
    pub purchase_receipts: Family<OwnedLabels, Gauge>,
    /// Restarts of a supervised task, by task.
    pub task_restarts: Family<Labels, Counter>,
    /// 1 while a supervised task is up, by task.
    pub task_up: Family<Labels, Gauge>,
    /// Time the daemon took to answer a VerneMQ webhook call, by hook (from the request to
    /// the answer, the decision and any store write included).
    pub webhook_seconds: Histograms,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh registry with every metric registered.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("fastdata_operator");
        let segments_in = Family::<Labels, Counter>::default();
        let segment_bytes_in = Counter::default();
        let segments_backfilled = Counter::default();
        let segments_pruned = Counter::default();
        let bytes_served = Counter::default();
        let segments_served = Counter::default();
        let auth_decisions = Family::<Labels, Counter>::default();
        let receipts = Family::<Labels, Counter>::default();
        let claims = Family::<Labels, Counter>::default();
        let gate_commands = Family::<Labels, Counter>::default();
        let streams = Gauge::default();
        let segments_refused = Family::<Labels, Counter>::default();
        let segments_dropped = Family::<Labels, Counter>::default();
        let chain_finalized_head = Gauge::default();
        let chain_processed_block = Gauge::default();
        let chain_follower_lag = Gauge::default();
        let claims_pending = Gauge::default();
        let claims_earned = Counter::default();
        let claims_earned_planck = Counter::default();
        let purchase_receipts = Family::<OwnedLabels, Gauge>::default();
        let task_restarts = Family::<Labels, Counter>::default();
        let task_up = Family::<Labels, Gauge>::default();
        let webhook_seconds: Histograms = Family::new_with_constructor(webhook_histogram);
        registry.register(
            "segments_in",
            "Segments received from the broker",
            segments_in.clone(),
        );
        registry.register(
            "segment_bytes_in",
            "Envelope bytes stored",
            segment_bytes_in.clone(),
        );
        registry.register(
            "segments_backfilled",
            "Segments stored from another operator",
            segments_backfilled.clone(),
        );
        registry.register(
            "segments_pruned",
            "Segments removed by retention",
            segments_pruned.clone(),
        );
        registry.register(
            "bytes_served",
            "Envelope bytes served over HTTP",
            bytes_served.clone(),
        );
        registry.register(
            "segments_served",
            "Segments served over HTTP",
            segments_served.clone(),
        );
        registry.register(
            "auth_decisions",
            "Authorization decisions",
            auth_decisions.clone(),
        );
        registry.register("receipts", "Buyer receipts received", receipts.clone());
        registry.register("claims", "Claims submitted to escrow", claims.clone());
        registry.register(
            "gate_commands",
            "Broker gate commands",
            gate_commands.clone(),
        );
        registry.register("streams", "Streams hosted", streams.clone());
        registry.register(
            "segments_refused",
            "Segments refused by validation, by reason",
            segments_refused.clone(),
        );
        registry.register(
            "segments_dropped",
            "Valid segments not stored, by reason",
            segments_dropped.clone(),
        );
        registry.register(
            "chain_finalized_head",
            "Finalized head of the node, as last seen",
            chain_finalized_head.clone(),
        );
        registry.register(
            "chain_processed_block",
            "Last finalized block applied to the chain view",
            chain_processed_block.clone(),
        );
        registry.register(
            "chain_follower_lag_blocks",
            "Finalized head minus the last block applied",
            chain_follower_lag.clone(),
        );
        registry.register(
            "claims_pending",
            "Purchases with a receipt not yet accepted on chain",
            claims_pending.clone(),
        );
        registry.register(
            "claims_earned",
            "Claims accepted on chain",
            claims_earned.clone(),
        );
        registry.register(
            "claims_earned_planck",
            "Pay accrued by accepted claims, in planck",
            claims_earned_planck.clone(),
        );
        registry.register(
            "purchase_receipts",
            "Receipts accepted since start, per open purchase",
            purchase_receipts.clone(),
        );
        registry.register(
            "task_restarts",
            "Restarts of a supervised task",
            task_restarts.clone(),
        );
        registry.register(
            "task_up",
            "1 while a supervised task is up",
            task_up.clone(),
        );
        registry.register(
            "webhook_seconds",
            "Time to answer a VerneMQ webhook call, by hook",
            webhook_seconds.clone(),
        );
        Self {
            registry,
            segments_in,
            segment_bytes_in,
            segments_backfilled,
            segments_pruned,
            bytes_served,
            segments_served,
            auth_decisions,
            receipts,
            claims,
            gate_commands,
            streams,
            segments_refused,
            segments_dropped,
            chain_finalized_head,
            chain_processed_block,
            chain_follower_lag,
            claims_pending,
            claims_earned,
            claims_earned_planck,
            purchase_receipts,
            task_restarts,
            task_up,
            webhook_seconds,
        }
    }

    /// Counts one authorization decision.
    pub fn auth(&self, action: &'static str, allowed: bool) {
        let result = if allowed { "allowed" } else { "refused" };
        self.auth_decisions
            .get_or_create(&vec![("action", action), ("result", result)])
            .inc();
    }

    /// Counts one incoming segment.
    pub fn segment(&self, result: &'static str) {
        self.segments_in
            .get_or_create(&vec![("result", result)])
            .inc();
    }

    /// Counts one receipt.
    pub fn receipt(&self, result: &'static str) {
        self.receipts.get_or_create(&vec![("result", result)]).inc();
    }

    /// Counts one claim result.
    pub fn claim(&self, result: &'static str) {
        self.claims.get_or_create(&vec![("result", result)]).inc();
    }

    /// Counts one gate command.
    pub fn gate(&self, command: &'static str, ok: bool) {
        let result = if ok { "ok" } else { "error" };
        self.gate_commands
            .get_or_create(&vec![("command", command), ("result", result)])
            .inc();
    }

    /// Counts one segment refused by validation.
    pub fn segment_refused(&self, reason: &'static str) {
        self.segments_refused
            .get_or_create(&vec![("reason", reason)])
            .inc();
    }

    /// Counts `n` valid segments not stored.
    pub fn segments_dropped(&self, reason: &'static str, n: u64) {
        if n > 0 {
            self.segments_dropped
                .get_or_create(&vec![("reason", reason)])
                .inc_by(n);
        }
    }

    /// The node's finalized head is (at least) `number`.
    pub fn chain_head(&self, number: u64) {
        self.chain_finalized_head.set(gauge_value(number));
        self.update_lag();
    }

    /// The chain follower applied finalized block `number`.
    pub fn chain_processed(&self, number: u64) {
        let number = gauge_value(number);
        self.chain_processed_block.set(number);
        if self.chain_finalized_head.get() < number {
            self.chain_finalized_head.set(number);
        }
        self.update_lag();
    }

    fn update_lag(&self) {
        let lag = self.chain_finalized_head.get() - self.chain_processed_block.get();
        self.chain_follower_lag.set(lag.max(0));
    }

    /// Counts one claim accepted on chain that accrued `planck`.
    pub fn claim_earned(&self, planck: u128) {
        self.claims_earned.inc();
        self.claims_earned_planck
            .inc_by(u64::try_from(planck).unwrap_or(u64::MAX));
    }

    /// Counts one receipt accepted for `purchase`.
    pub fn purchase_receipt(&self, purchase: PurchaseId) {
        self.purchase_receipts
            .get_or_create(&vec![("purchase", purchase.to_string())])
            .inc();
    }

    /// Forgets `purchase` (ended or refunded).
    pub fn purchase_closed(&self, purchase: PurchaseId) {
        self.purchase_receipts
            .remove(&vec![("purchase", purchase.to_string())]);
    }

    /// Counts one restart of `task`.
    pub fn task_restart(&self, task: &'static str) {
        self.task_restarts
            .get_or_create(&vec![("task", task)])
            .inc();
    }

    /// Marks `task` up or down.
    pub fn task_up(&self, task: &'static str, up: bool) {
        self.task_up
            .get_or_create(&vec![("task", task)])
            .set(i64::from(up));
    }

    /// Records that answering one call of VerneMQ's `hook` took `seconds`.
    pub fn webhook(&self, hook: &str, seconds: f64) {
        let hook = WEBHOOK_HOOKS
            .iter()
            .find(|h| **h == hook)
            .copied()
            .unwrap_or("unknown");
        self.webhook_seconds
            .get_or_create(&vec![("hook", hook)])
            .observe(seconds);
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters() {
        let m = Metrics::new();
        m.auth("publish", true);
        m.auth("publish", false);
        m.segment("stored");
        m.bytes_served.inc_by(10);
        let text = m.render();
        assert!(
            text.contains(
                "fastdata_operator_auth_decisions_total{action=\"publish\",result=\"refused\"} 1"
            ),
            "{text}"
        );
        assert!(
            text.contains("fastdata_operator_bytes_served_total 10"),
            "{text}"
        );
        assert!(
            text.contains("fastdata_operator_segments_in_total{result=\"stored\"} 1"),
            "{text}"
        );
    }

    #[test]
    fn webhook_times_are_histograms_by_hook() {
        let m = Metrics::new();
        m.webhook("auth_on_publish", 0.000_2);
        m.webhook("auth_on_publish", 0.003);
        m.webhook("format_disk", 0.1);
        let text = m.render();
        let series = "fastdata_operator_webhook_seconds";
        assert!(
            text.contains(&format!("{series}_count{{hook=\"auth_on_publish\"}} 2\n")),
            "{text}"
        );
        assert!(
            text.contains(&format!("{series}_count{{hook=\"unknown\"}} 1\n")),
            "{text}"
        );
        // (upper bound, cumulative count) of the auth_on_publish buckets.
        let buckets: Vec<(f64, u64)> = text
            .lines()
            .filter_map(|l| l.strip_prefix(&format!("{series}_bucket{{le=\"")))
            .filter_map(|l| l.split_once("\",hook=\"auth_on_publish\"} "))
            .map(|(le, n)| (le.parse().unwrap_or(f64::INFINITY), n.parse().unwrap()))
            .collect();
        assert_eq!(buckets.len(), 29, "{text}");
        // 200 µs is within the bucket ending at 10 µs × 1.5⁸ ≈ 256 µs, 3 ms is not.
        let count_at = |seconds: f64| {
            buckets
                .iter()
                .find(|(le, _)| *le >= seconds)
                .map(|(_, n)| *n)
        };
        assert_eq!(count_at(0.000_256), Some(1));
        assert_eq!(count_at(0.000_17), Some(0));
        assert_eq!(count_at(f64::INFINITY), Some(2));
    }

    #[test]
    fn follower_lag_is_head_minus_processed() {
        let m = Metrics::new();
        m.chain_processed(90);
        m.chain_head(100);
        let text = m.render();
        assert!(
            text.contains("fastdata_operator_chain_follower_lag_blocks 10\n"),
            "{text}"
        );
        assert!(
            text.contains("fastdata_operator_chain_finalized_head 100\n"),
            "{text}"
        );
        // A block newer than the last probe raises the head; the lag never goes negative.
        m.chain_processed(105);
        let text = m.render();
        assert!(
            text.contains("fastdata_operator_chain_finalized_head 105\n"),
            "{text}"
        );
        assert!(
            text.contains("fastdata_operator_chain_follower_lag_blocks 0\n"),
            "{text}"
        );
    }

    #[test]
    fn purchase_series_go_away_when_the_purchase_ends() {
        let m = Metrics::new();
        m.purchase_receipt(7);
        m.purchase_receipt(7);
        m.claim_earned(u128::MAX);
        let text = m.render();
        assert!(
            text.contains("fastdata_operator_purchase_receipts{purchase=\"7\"} 2"),
            "{text}"
        );
        assert!(
            text.contains(&format!(
                "fastdata_operator_claims_earned_planck_total {}",
                u64::MAX
            )),
            "{text}"
        );
        m.purchase_closed(7);
        assert!(!m.render().contains("purchase=\"7\""));
    }

    #[test]
    fn the_grafana_dashboard_charts_the_operational_metrics() {
        let dashboard: serde_json::Value =
            serde_json::from_str(include_str!("../grafana/fastdata-operator.json")).unwrap();
        let exprs: Vec<String> = dashboard["panels"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|p| p["targets"].as_array().unwrap().iter())
            .map(|t| t["expr"].as_str().unwrap().to_owned())
            .collect();
        let m = Metrics::new();
        m.segment_refused("malformed");
        m.segments_dropped("duplicate", 1);
        m.purchase_receipt(1);
        m.task_restart("ingest");
        m.task_up("ingest", true);
        let text = m.render();
        for name in [
            "fastdata_operator_chain_follower_lag_blocks",
            "fastdata_operator_chain_finalized_head",
            "fastdata_operator_chain_processed_block",
            "fastdata_operator_segments_refused_total",
            "fastdata_operator_segments_dropped_total",
            "fastdata_operator_claims_pending",
            "fastdata_operator_claims_earned_total",
            "fastdata_operator_claims_earned_planck_total",
            "fastdata_operator_purchase_receipts",
            "fastdata_operator_task_restarts_total",
            "fastdata_operator_task_up",
        ] {
            assert!(
                exprs.iter().any(|e| e.contains(name)),
                "no panel for {name}"
            );
            assert!(
                text.contains(&format!("\n{name}")),
                "not exposed: {name}\n{text}"
            );
        }
        assert_eq!(dashboard["templating"]["list"][0]["type"], "datasource");
    }
}

//! Prometheus metrics, served as text on `GET /metrics`.

use prometheus_client::{
    encoding::text::encode,
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::Registry,
};

type Labels = Vec<(&'static str, &'static str)>;

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
}

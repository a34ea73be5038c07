//! The seller service's counters, served as Prometheus text on `GET /metrics` (every name
//! starts with `fastdata_seller_`), like the operator daemon's.

use std::sync::Arc;

use axum::{extract::State, response::IntoResponse, routing::get, Router};
use prometheus_client::{encoding::text::encode, metrics::counter::Counter, registry::Registry};

/// All counters of the seller service.
pub struct SellerMetrics {
    registry: Registry,
    /// Records read from the sources.
    pub records_in: Counter,
    /// Records refused because no segment can hold them.
    pub records_refused: Counter,
    /// Segments published to the operators' brokers.
    pub segments_published: Counter,
    /// Segments dropped because the queue waiting for a publisher was full.
    pub segments_dropped: Counter,
    /// Epoch keys delivered to buyers.
    pub keys_delivered: Counter,
    /// Key epochs opened.
    pub rotations: Counter,
    /// Publishers re-created (new epoch, new operators, renewed upload token, errors).
    pub publisher_restarts: Counter,
}

impl Default for SellerMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl SellerMetrics {
    /// A fresh registry with every counter registered.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("fastdata_seller");
        let metrics = Self {
            records_in: Counter::default(),
            records_refused: Counter::default(),
            segments_published: Counter::default(),
            segments_dropped: Counter::default(),
            keys_delivered: Counter::default(),
            rotations: Counter::default(),
            publisher_restarts: Counter::default(),
            registry: Registry::default(),
        };
        for (name, help, counter) in [
            (
                "records_in",
                "Records read from the sources",
                &metrics.records_in,
            ),
            (
                "records_refused",
                "Records refused: longer than a segment can carry",
                &metrics.records_refused,
            ),
            (
                "segments_published",
                "Segments published to the operators' brokers",
                &metrics.segments_published,
            ),
            (
                "segments_dropped",
                "Segments dropped: the queue waiting for a publisher was full",
                &metrics.segments_dropped,
            ),
            (
                "keys_delivered",
                "Epoch keys delivered to buyers",
                &metrics.keys_delivered,
            ),
            ("rotations", "Key epochs opened", &metrics.rotations),
            (
                "publisher_restarts",
                "Publishers re-created (epoch, operators, token renewal, errors)",
                &metrics.publisher_restarts,
            ),
        ] {
            registry.register(name, help, counter.clone());
        }
        Self {
            registry,
            ..metrics
        }
    }

    /// The OpenMetrics text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

async fn render_metrics(State(metrics): State<Arc<SellerMetrics>>) -> impl IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        metrics.render(),
    )
}

/// Serves `GET /metrics` on `listener` until `stop` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    metrics: Arc<SellerMetrics>,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "serving /metrics");
    }
    let router = Router::new()
        .route("/metrics", get(render_metrics))
        .with_state(metrics);
    axum::serve(listener, router)
        .with_graceful_shutdown(stop)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_counter() {
        let m = SellerMetrics::new();
        m.records_in.inc_by(3);
        m.rotations.inc();
        let text = m.render();
        for name in [
            "records_in",
            "records_refused",
            "segments_published",
            "segments_dropped",
            "keys_delivered",
            "rotations",
            "publisher_restarts",
        ] {
            assert!(
                text.contains(&format!("fastdata_seller_{name}_total")),
                "{name}: {text}"
            );
        }
        assert!(
            text.contains("fastdata_seller_records_in_total 3"),
            "{text}"
        );
        assert!(text.contains("fastdata_seller_rotations_total 1"), "{text}");
    }
}

//! The marketplace's trades against real VerneMQ brokers (`e2e/src/vernemq.rs`), each gated by
//! its operator daemon's webhooks: the same tests as `marketplace.rs` runs on Mosquitto. The
//! takeover attack and the revocation of a connected subscriber run on VerneMQ in
//! `takeover.rs`.

use fastdata_e2e::BrokerKind;

use crate::marketplace::{batch_trade_with_kill9, refusals_refunds_and_dispute, stream_trade};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a running fastdata-node and the VerneMQ release; run by scripts/test"]
async fn stream_purchase_on_vernemq_delivered_claimed_settled_and_rated() {
    stream_trade(BrokerKind::Vernemq).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a running fastdata-node and the VerneMQ release; run by scripts/test"]
async fn batch_purchase_on_vernemq_survives_kill9_of_an_operator() {
    batch_trade_with_kill9(BrokerKind::Vernemq).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a running fastdata-node and the VerneMQ release; run by scripts/test"]
async fn forged_and_replayed_refused_on_vernemq_missing_keys_refunded_dispute_revokes() {
    refusals_refunds_and_dispute(BrokerKind::Vernemq).await;
}

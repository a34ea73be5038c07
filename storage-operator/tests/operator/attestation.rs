//! Stream heads under a real daemon and a real Mosquitto: the seller publishes over MQTT, the
//! daemon's head attester (wired as the binary wires it) attests what it stored to a chain
//! faked behind [`OperatorCalls`] with the pallet's rules, and claims beyond the chain's head
//! (the lower median of the assigned operators' attestations) wait until it covers them.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use crate::{
    common::*,
    supervision::{wait_metric, Publisher, TapDir},
};
use codec::Encode;
use fastdata_operator::{
    attestation::{start_attestation, ATTEST_EVERY_BLOCKS, ATTEST_TASK},
    chain::ChainEvent,
    claims::{ChainClaimSubmitter, OperatorCalls},
    config::FIXTURE_GENESIS,
    daemon::Daemon,
    receipts::{Claim, Receipt},
};
use fastdata_primitives::{Balance, BlockNumber, PurchaseId, Sequence, StreamId};
use fastdata_sdk::Error;

/// The chain as far as one operator's calls go: its attestations (refused if lower or for
/// a stream it does not host), a co-assigned operator's head set by the test, claims refused
/// beyond the lower median head.
#[derive(Default)]
struct FakeChain {
    state: Mutex<ChainState>,
}

#[derive(Default)]
struct ChainState {
    mine: BTreeMap<StreamId, Sequence>,
    other: Sequence,
    attestations: Vec<Vec<(StreamId, Sequence)>>,
    /// `(purchase, nonce, up_to, accepted)` per claim sent.
    claims: Vec<(PurchaseId, u64, Sequence, bool)>,
}

impl FakeChain {
    fn lock(&self) -> std::sync::MutexGuard<'_, ChainState> {
        self.state.lock().unwrap()
    }
    fn attestations(&self) -> Vec<Vec<(StreamId, Sequence)>> {
        self.lock().attestations.clone()
    }
    fn claims(&self) -> Vec<(PurchaseId, u64, Sequence, bool)> {
        self.lock().claims.clone()
    }
}

#[async_trait::async_trait]
impl OperatorCalls for FakeChain {
    async fn claim_batch(&self, claims: &[Claim]) -> Vec<Result<Balance, Error>> {
        let mut state = self.lock();
        let mine = state.mine.get(&STREAM).copied().unwrap_or(0);
        // Two operators: the lower median is the lower head.
        let head = mine.min(state.other);
        let mut results = Vec::new();
        for claim in claims {
            let accepted = claim.receipt.up_to_sequence < head;
            state.claims.push((
                claim.receipt.purchase,
                claim.receipt.nonce,
                claim.receipt.up_to_sequence,
                accepted,
            ));
            results.push(if accepted {
                Ok(1_000)
            } else {
                Err(Error::Dispatch {
                    error: "Escrow::claim failed with Module error: Escrow::BeyondStreamHead"
                        .into(),
                })
            });
        }
        results
    }

    async fn attest_heads(&self, heads: &[(StreamId, Sequence, u64)]) -> Result<(), Error> {
        // As on chain: streams it does not host are skipped, a lower head fails the call.
        let heads: Vec<(StreamId, Sequence)> = heads
            .iter()
            .filter(|(s, _, _)| *s == STREAM)
            .map(|(s, h, _)| (*s, *h))
            .collect();
        let mut state = self.lock();
        if heads.is_empty() {
            return Err(Error::Dispatch {
                error: "Operators::attest_heads failed with Operators::NotAssigned".into(),
            });
        }
        if heads.iter().any(|(stream, head)| {
            state
                .mine
                .get(stream)
                .is_some_and(|previous| head < previous)
        }) {
            return Err(Error::Dispatch {
                error: "Operators::attest_heads failed with Operators::HeadDecreased".into(),
            });
        }
        state.mine.extend(heads.iter().copied());
        state.attestations.push(heads);
        Ok(())
    }

    async fn attested_heads(
        &self,
        streams: &[StreamId],
    ) -> Result<Vec<(StreamId, Sequence, u64, BlockNumber)>, Error> {
        let state = self.lock();
        Ok(streams
            .iter()
            .filter_map(|s| state.mine.get(s).map(|h| (*s, *h, 0, 0)))
            .collect())
    }
}

async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < Duration::from_secs(20), "never: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn post_receipt(base: &str, receipt: &Receipt, buyer: &sp_core::sr25519::Pair) {
    let body = (
        receipt.clone(),
        receipt.sign_sr25519(buyer, &FIXTURE_GENESIS),
    )
        .encode();
    let (status, text) = fastdata_sdk::http::HttpClient::new()
        .post(&format!("{base}/v1/receipts"), &[], body, 1 << 16)
        .await
        .unwrap();
    assert_eq!(status.as_u16(), 200, "{}", String::from_utf8_lossy(&text));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn published_heads_are_attested_and_claims_wait_for_the_chain_head() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start(&dir.path().join("broker").tap_dir());
    let (seller, buyer, operator) = (pair(1), pair(3), pair(2));
    let me = account(&operator);
    let view = view_with(vec![
        ChainEvent::StreamAssigned(assignment(&seller, std::slice::from_ref(&me))),
        ChainEvent::PurchaseUpdated(purchase(1, &buyer, 1_000)),
    ]);
    let chain = Arc::new(FakeChain::default());
    let claims = Arc::new(ChainClaimSubmitter::with_calls(chain.clone()));
    let daemon = Daemon::start(
        mosquitto_config(&dir.path().join("op"), broker.port, &seed_suri(2)),
        view.clone(),
        claims.clone(),
    )
    .await
    .unwrap();
    // What the binary does with `[chain] url`.
    let attester = start_attestation(&daemon, &claims, ATTEST_EVERY_BLOCKS);
    let base = format!("http://{}", daemon.http_addr);
    let start = Instant::now();
    while health(&base).await.0 != 200 {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{:?}",
            daemon.health()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    wait_metric(
        &base,
        &format!("fastdata_operator_task_up{{task=\"{ATTEST_TASK}\"}}"),
        1.0,
    )
    .await;

    // The seller publishes 6 segments; at the next block the daemon attests head 6.
    let publisher = Publisher::start(&base, broker.port, 1).await;
    for sequence in 0..6 {
        publisher.publish(segment(sequence)).await;
    }
    wait_metric(
        &base,
        r#"fastdata_operator_segments_in_total{result="stored"}"#,
        6.0,
    )
    .await;
    view.apply(ChainEvent::Finalized { number: 11 });
    eventually("head 6 attested", || {
        chain.attestations() == vec![vec![(STREAM, 6)]]
    })
    .await;

    // Blocks go by, nothing new is stored: nothing more is sent.
    for number in 12..=30 {
        view.apply(ChainEvent::Finalized { number });
    }
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(chain.attestations(), vec![vec![(STREAM, 6)]]);

    // The buyer receipts 0..=5. The co-assigned operator has not attested: the chain's head
    // is 0, the claim is refused as beyond it, kept and sent again each round.
    let receipt = Receipt {
        purchase: 1,
        operator: me.clone(),
        up_to_sequence: 5,
        bytes: 600,
        nonce: 1,
    };
    post_receipt(&base, &receipt, &buyer).await;
    eventually("the claim refused twice", || {
        chain.claims().iter().filter(|c| !c.3).count() >= 2
    })
    .await;
    let text = wait_metric(&base, "fastdata_operator_claims_pending", 1.0).await;
    assert_eq!(
        metric(&text, "fastdata_operator_claims_earned_total"),
        Some(0.0)
    );

    // The other operator attests 6 too: the same receipt is accepted.
    chain.lock().other = 6;
    let text = wait_metric(&base, "fastdata_operator_claims_earned_total", 1.0).await;
    assert_eq!(metric(&text, "fastdata_operator_claims_pending"), Some(0.0));
    let sent = chain.claims();
    assert!(
        sent.iter().all(|c| (c.0, c.1, c.2) == (1, 1, 5)),
        "{sent:?}"
    );
    assert!(sent.last().unwrap().3, "{sent:?}");
    assert_eq!(sent.iter().filter(|c| c.3).count(), 1, "{sent:?}");

    // Three more segments and a receipt for them: the claim round attests head 9 first
    // (before its 5 blocks are up), so the claim is accepted on its first try.
    chain.lock().other = 9;
    for sequence in 6..9 {
        publisher.publish(segment(sequence)).await;
    }
    wait_metric(
        &base,
        r#"fastdata_operator_segments_in_total{result="stored"}"#,
        9.0,
    )
    .await;
    let claims_before = chain.claims().len();
    post_receipt(
        &base,
        &Receipt {
            up_to_sequence: 8,
            bytes: 900,
            nonce: 2,
            ..receipt
        },
        &buyer,
    )
    .await;
    wait_metric(&base, "fastdata_operator_claims_earned_total", 2.0).await;
    assert_eq!(
        chain.claims()[claims_before..],
        [(1, 2, 8, true)],
        "{:?}",
        chain.claims()
    );
    assert_eq!(
        chain.attestations(),
        vec![vec![(STREAM, 6)], vec![(STREAM, 9)]]
    );
    // The attester's own rounds find nothing new.
    for number in 31..=45 {
        view.apply(ChainEvent::Finalized { number });
    }
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(chain.attestations().len(), 2);
    assert_eq!(attester.accepted(&STREAM).await, Some(9));
    daemon.shutdown().await;
}

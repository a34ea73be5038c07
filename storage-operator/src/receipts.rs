//! Receipts and claims: how the operator gets paid.
//!
//! Buyers post cumulative receipts ([`Receipt`], signed with the buyer's sr25519 key for the
//! chain's genesis hash) to `POST /v1/receipts`. The daemon keeps the latest valid one per
//! purchase in redb (it is what the escrow pallet pays for) and uses it to bound what the buyer
//! gets, by one rule ([`window_end`]) on the HTTP path and for live subscribers alike: at most
//! the receipt window W (`serving.receipt_window`) past the receipted sequence. A
//! [`ClaimSubmitter`] sends the receipts not yet claimed to the chain in batches, every
//! `claims.interval_secs`.
//!
//! A receipt cannot acknowledge more than reality ([`ReceiptError::BeyondServed`]): for a
//! batch purchase not beyond the highest sequence this daemon served it over HTTP, for a stream
//! purchase not beyond the highest sequence this daemon stored (what its broker could have
//! delivered live). `u64::MAX` is always refused. A refused receipt changes nothing.
//!
//! Wire form of a posted receipt: SCALE of `(Receipt<AccountId32>, sr25519::Signature)`, raw
//! (`application/octet-stream`) or as `0x`-hex text.

use std::{sync::Arc, time::Duration};

use async_trait::async_trait;
use codec::Encode;
use fastdata_primitives::{
    escrow::{PurchaseState, PurchaseTerms},
    receipt::{self, ReceiptRejection},
    AccountId, Balance, PurchaseId, Sequence,
};
use sp_core::{sr25519, H256};

use crate::{
    auth::{decode_scale, public_key, Refusal},
    chain::ChainView,
    config::FIXTURE_GENESIS,
    metrics::Metrics,
    store::{Store, StoreError},
    supervisor::{TaskContext, TaskError},
};

/// A buyer's receipt as this daemon handles it.
pub type Receipt = receipt::Receipt<AccountId>;
/// A receipt with the buyer's signature (the wire and storage form).
pub type SignedReceipt = (Receipt, sr25519::Signature);

/// The receipt-window rule, the one both the HTTP path and the live-subscriber gate apply:
/// the highest sequence a buyer may obtain. `start` is the first sequence its purchase pays
/// for, `acknowledged` the `up_to_sequence` of its last accepted receipt (if any), `window`
/// the receipt window W (at least 1): the buyer may get the W sequences after the last one it
/// acknowledged, or the first W of its purchase before any receipt.
///
/// ```
/// use fastdata_operator::receipts::window_end;
/// assert_eq!(window_end(0, None, 8), 7);        // no receipt: 0..=7
/// assert_eq!(window_end(0, Some(7), 8), 15);    // receipt up to 7: 8..=15
/// assert_eq!(window_end(100, Some(3), 8), 107); // an old receipt does not move the start back
/// ```
pub fn window_end(start: Sequence, acknowledged: Option<Sequence>, window: u64) -> Sequence {
    let next = acknowledged
        .map_or(start, |up_to| up_to.saturating_add(1))
        .max(start);
    next.saturating_add(window.max(1) - 1)
}

/// A live subscriber may keep its grant while the next segment the stream would deliver is
/// inside its window: `stored_last` is the highest sequence this daemon stored of the stream
/// (the broker delivered at most that far), `window_end` the result of [`window_end`]. Once
/// the stored head reaches the window's end, the subscriber got its whole window unpaid and
/// is cut off until a receipt moves the window.
pub fn live_window_open(stored_last: Option<Sequence>, window_end: Sequence) -> bool {
    stored_last.is_none_or(|last| last < window_end)
}

/// The `up_to_sequence` of the last receipt stored for `purchase` (undecodable bytes count
/// as none).
pub fn acknowledged(store: &Store, purchase: PurchaseId) -> Result<Option<Sequence>, StoreError> {
    Ok(store
        .receipt(purchase)?
        .and_then(|bytes| decode_scale::<SignedReceipt>("stored receipt", &bytes).ok())
        .map(|(receipt, _)| receipt.up_to_sequence))
}

/// Why a receipt was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReceiptError {
    /// Not a SCALE `(Receipt, Signature)`.
    #[error("{0}")]
    Malformed(Refusal),
    /// The purchase is unknown here.
    #[error("unknown purchase {0}")]
    UnknownPurchase(PurchaseId),
    /// The purchase is settled or refunded; nothing can be claimed any more.
    #[error("purchase {0} is closed")]
    PurchaseClosed(PurchaseId),
    /// The receipt names another operator.
    #[error("receipt is addressed to another operator")]
    WrongOperator,
    /// Not signed by the purchase's buyer.
    #[error("bad signature: sign the receipt with the buyer account of the purchase")]
    BadSignature,
    /// Acknowledges sequences this daemon never served (HTTP) or stored (live): a receipt
    /// cannot exceed reality.
    #[error("{}", beyond_message(*.up_to, *.limit))]
    BeyondServed {
        /// The receipt's `up_to_sequence`.
        up_to: Sequence,
        /// The highest sequence it may acknowledge here, if any.
        limit: Option<Sequence>,
    },
    /// Does not supersede the stored receipt.
    #[error(
        "receipt does not supersede the last one: {0:?} (use a higher nonce and cumulative counts)"
    )]
    NotNewer(ReceiptRejection),
    /// Local storage failed.
    #[error("storage failure: {0}")]
    Storage(String),
}

impl ReceiptError {
    /// Short reason for metrics.
    pub fn code(&self) -> &'static str {
        match self {
            ReceiptError::Malformed(_) => "malformed",
            ReceiptError::UnknownPurchase(_) => "unknown_purchase",
            ReceiptError::PurchaseClosed(_) => "purchase_closed",
            ReceiptError::WrongOperator => "wrong_operator",
            ReceiptError::BadSignature => "bad_signature",
            ReceiptError::BeyondServed { .. } => "beyond_served",
            ReceiptError::NotNewer(ReceiptRejection::Replayed) => "replayed",
            ReceiptError::NotNewer(_) => "not_newer",
            ReceiptError::Storage(_) => "storage",
        }
    }
}

fn beyond_message(up_to: Sequence, limit: Option<Sequence>) -> String {
    match limit {
        Some(limit) => format!(
            "receipt up to sequence {up_to} is beyond what this operator served or stored (up to {limit}); acknowledge only data you received"
        ),
        None => format!(
            "receipt up to sequence {up_to}: this operator has served nothing to the purchase yet"
        ),
    }
}

impl From<StoreError> for ReceiptError {
    fn from(e: StoreError) -> Self {
        ReceiptError::Storage(e.to_string())
    }
}

/// The latest receipts, per purchase.
pub struct ReceiptBook {
    me: AccountId,
    genesis: H256,
    view: Arc<dyn ChainView>,
    store: Arc<Store>,
    metrics: Arc<Metrics>,
}

impl ReceiptBook {
    /// A book for operator `me`, checking signatures for [`FIXTURE_GENESIS`] until
    /// [`Self::with_genesis`].
    pub fn new(
        me: AccountId,
        view: Arc<dyn ChainView>,
        store: Arc<Store>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            me,
            genesis: FIXTURE_GENESIS,
            view,
            store,
            metrics,
        }
    }

    /// Checks receipt signatures for the chain with genesis hash `genesis`.
    pub fn with_genesis(mut self, genesis: H256) -> Self {
        self.genesis = genesis;
        self
    }

    /// Checks and stores a posted receipt (blocking: one durable write).
    pub fn accept(&self, bytes: &[u8]) -> Result<Receipt, ReceiptError> {
        let result = self.check_and_store(bytes);
        match &result {
            Ok(r) => {
                self.metrics.receipt("accepted");
                self.metrics.purchase_receipt(r.purchase);
                tracing::debug!(
                    purchase = r.purchase,
                    up_to = r.up_to_sequence,
                    bytes = r.bytes,
                    "receipt accepted"
                );
            }
            Err(e) => {
                self.metrics.receipt(e.code());
                tracing::info!(reason = e.code(), "receipt refused: {e}");
            }
        }
        result
    }

    fn check_and_store(&self, bytes: &[u8]) -> Result<Receipt, ReceiptError> {
        let (receipt, signature): SignedReceipt =
            decode_scale("receipt", bytes).map_err(ReceiptError::Malformed)?;
        let purchase = self
            .view
            .purchase(receipt.purchase)
            .ok_or(ReceiptError::UnknownPurchase(receipt.purchase))?;
        if matches!(
            purchase.state,
            PurchaseState::Settled | PurchaseState::Refunded
        ) {
            return Err(ReceiptError::PurchaseClosed(purchase.id));
        }
        if receipt.operator != self.me {
            return Err(ReceiptError::WrongOperator);
        }
        if !receipt.verify_sr25519(&signature, &public_key(&purchase.buyer), &self.genesis) {
            return Err(ReceiptError::BadSignature);
        }
        // Not beyond reality: what was served over HTTP (batch), or stored (stream: what the
        // broker could have delivered live, which includes anything served over HTTP).
        let limit = match purchase.terms {
            PurchaseTerms::Batch { .. } => self.store.served(purchase.id)?,
            PurchaseTerms::Stream { .. } => self.store.last_sequence(&purchase.stream)?,
        };
        if receipt.up_to_sequence == Sequence::MAX
            || limit.is_none_or(|limit| receipt.up_to_sequence > limit)
        {
            return Err(ReceiptError::BeyondServed {
                up_to: receipt.up_to_sequence,
                limit,
            });
        }
        self.store.update_receipt(receipt.purchase, |stored| {
            if let Some(stored) = stored {
                // Stored bytes were validated when written; undecodable ones are replaced.
                if let Ok((previous, _)) = decode_scale::<SignedReceipt>("stored receipt", stored) {
                    receipt
                        .supersedes(&previous)
                        .map_err(ReceiptError::NotNewer)?;
                }
            }
            Ok::<_, ReceiptError>((receipt.clone(), signature).encode())
        })??;
        Ok(receipt)
    }

    /// The latest receipt of `purchase`.
    pub fn latest(&self, purchase: PurchaseId) -> Result<Option<SignedReceipt>, StoreError> {
        Ok(self
            .store
            .receipt(purchase)?
            .and_then(|bytes| decode_scale("stored receipt", &bytes).ok()))
    }

    /// Receipts newer than what was last claimed, oldest purchase first.
    pub fn unclaimed(&self) -> Result<Vec<Claim>, StoreError> {
        let mut claims = Vec::new();
        for (purchase, bytes) in self.store.receipts()? {
            let Ok((receipt, signature)) = decode_scale::<SignedReceipt>("stored receipt", &bytes)
            else {
                continue;
            };
            if self
                .store
                .claimed(purchase)?
                .is_none_or(|claimed| claimed < receipt.nonce)
            {
                claims.push(Claim { receipt, signature });
            }
        }
        Ok(claims)
    }
}

/// A claim: the latest receipt of one purchase, to be sent to `pallet-escrow`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claim {
    /// The receipt (its `purchase`, `operator`, `up_to_sequence`, `bytes`, `nonce`).
    pub receipt: Receipt,
    /// The buyer's signature.
    pub signature: sr25519::Signature,
}

/// What the chain said about one claim.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClaimOutcome {
    /// Included and accepted; do not send this receipt again. `accrued`: the pay it accrued
    /// (planck, from the `ReceiptClaimed` event).
    Accepted {
        /// Planck accrued by the claim.
        accrued: Balance,
    },
    /// The runtime refused it for good (stale, replayed, purchase closed); do not retry.
    Rejected(String),
    /// Not decided (no connection, transaction dropped); retry later.
    Failed(String),
}

/// Sends claims to the escrow pallet. The subxt implementation
/// ([`crate::claims::ChainClaimSubmitter`]) signs one `Escrow::claim(receipt, signature)`
/// per claim with the operator key, batched into `Utility::force_batch` transactions, and
/// reports an outcome per claim, in order.
#[async_trait]
pub trait ClaimSubmitter: Send + Sync + 'static {
    /// Submits `claims`; returns one outcome per claim, in the same order.
    async fn submit(&self, claims: &[Claim]) -> Vec<ClaimOutcome>;
}

/// The submitter used while no chain connection exists: keeps every claim pending.
pub struct NoChainSubmitter;

#[async_trait]
impl ClaimSubmitter for NoChainSubmitter {
    async fn submit(&self, claims: &[Claim]) -> Vec<ClaimOutcome> {
        claims
            .iter()
            .map(|_| ClaimOutcome::Failed("no chain connection configured".into()))
            .collect()
    }
}

/// Result counts of one claim round.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClaimRound {
    /// Accepted claims.
    pub accepted: usize,
    /// Rejected claims.
    pub rejected: usize,
    /// Failed claims (retried next round).
    pub failed: usize,
}

/// Submissions of one claim round in flight at once.
pub const SUBMISSIONS_IN_FLIGHT: usize = 16;

/// Submits every unclaimed receipt, `batch` claims per call, up to
/// [`SUBMISSIONS_IN_FLIGHT`] calls at once (the chain submitter makes each one transaction, so
/// a round of any size lands within a few blocks). Afterwards `claims_pending` is the number
/// of claims still undecided.
pub async fn claim_round(
    book: &ReceiptBook,
    submitter: &dyn ClaimSubmitter,
    batch: usize,
) -> Result<ClaimRound, StoreError> {
    use futures_util::StreamExt;
    let mut round = ClaimRound::default();
    let claims = book.unclaimed()?;
    let chunks: Vec<&[Claim]> = claims.chunks(batch.max(1)).collect();
    // Collected first: a stream over a closure would not be `Send` for the daemon's task.
    let submissions: Vec<_> = chunks.iter().map(|chunk| submitter.submit(chunk)).collect();
    let submitted: Vec<Vec<ClaimOutcome>> = futures_util::stream::iter(submissions)
        .buffered(SUBMISSIONS_IN_FLIGHT)
        .collect()
        .await;
    for (chunk, outcomes) in chunks.into_iter().zip(submitted) {
        for (i, claim) in chunk.iter().enumerate() {
            let outcome = outcomes
                .get(i)
                .cloned()
                .unwrap_or_else(|| ClaimOutcome::Failed("submitter returned no outcome".into()));
            match outcome {
                ClaimOutcome::Accepted { accrued } => {
                    book.store
                        .set_claimed(claim.receipt.purchase, claim.receipt.nonce)?;
                    book.metrics.claim("accepted");
                    book.metrics.claim_earned(accrued);
                    round.accepted += 1;
                }
                ClaimOutcome::Rejected(reason) => {
                    tracing::warn!(
                        purchase = claim.receipt.purchase,
                        "claim rejected for good: {reason}"
                    );
                    book.store
                        .set_claimed(claim.receipt.purchase, claim.receipt.nonce)?;
                    book.metrics.claim("rejected");
                    round.rejected += 1;
                }
                ClaimOutcome::Failed(reason) => {
                    tracing::debug!(
                        purchase = claim.receipt.purchase,
                        "claim not decided, will retry: {reason}"
                    );
                    book.metrics.claim("failed");
                    round.failed += 1;
                }
            }
        }
    }
    book.metrics
        .claims_pending
        .set(i64::try_from(round.failed).unwrap_or(i64::MAX));
    Ok(round)
}

/// Runs claim rounds every `interval` until the daemon stops, and one last round then (the
/// supervised task `claims`). A round the store fails ends the run with the error.
pub async fn run_claims(
    book: Arc<ReceiptBook>,
    submitter: Arc<dyn ClaimSubmitter>,
    interval: Duration,
    batch: usize,
    mut ctx: TaskContext,
) -> Result<(), TaskError> {
    ctx.ready();
    loop {
        let stop = tokio::select! {
            _ = tokio::time::sleep(interval) => false,
            _ = ctx.stopped() => true,
        };
        match claim_round(&book, submitter.as_ref(), batch).await {
            Ok(round) if round != ClaimRound::default() => tracing::info!(?round, "claim round"),
            Ok(_) => {}
            Err(e) if stop => tracing::error!("last claim round failed: {e}"),
            Err(e) => return Err(TaskError::transient(format!("claim round failed: {e}"))),
        }
        if stop || ctx.stopping() {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        auth::tests::{fixture, pair},
        chain::ChainEvent,
    };
    use std::sync::Mutex;

    use crate::{auth::tests::GENESIS, store::NewSegment};

    /// A book whose store holds segments 0..=`stored` of the fixture's stream.
    fn book_with(f: &crate::auth::tests::Fixture, stored: u64) -> (tempfile::TempDir, ReceiptBook) {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(&dir.path().join("db")).unwrap());
        let segments: Vec<NewSegment> = (0..=stored)
            .map(|sequence| NewSegment {
                stream: f.stream,
                sequence,
                envelope: vec![1],
            })
            .collect();
        store.insert_segments(&segments, 1).unwrap();
        (
            dir,
            ReceiptBook::new(
                f.me.clone(),
                f.view.clone(),
                store,
                Arc::new(Metrics::new()),
            )
            .with_genesis(GENESIS),
        )
    }

    fn book(f: &crate::auth::tests::Fixture) -> (tempfile::TempDir, ReceiptBook) {
        book_with(f, 40)
    }

    fn receipt(f: &crate::auth::tests::Fixture, up_to: u64, bytes: u64, nonce: u64) -> Receipt {
        Receipt {
            purchase: 1,
            operator: f.me.clone(),
            up_to_sequence: up_to,
            bytes,
            nonce,
        }
    }

    fn signed(f: &crate::auth::tests::Fixture, up_to: u64, bytes: u64, nonce: u64) -> Vec<u8> {
        let receipt = receipt(f, up_to, bytes, nonce);
        let signature = receipt.sign_sr25519(&f.buyer, &GENESIS);
        (receipt, signature).encode()
    }

    #[test]
    fn window_rule() {
        assert_eq!(window_end(0, None, 8), 7);
        assert_eq!(window_end(0, Some(7), 8), 15);
        assert_eq!(window_end(100, None, 1), 100);
        assert_eq!(window_end(100, Some(3), 8), 107);
        assert_eq!(window_end(0, Some(u64::MAX - 1), 8), u64::MAX);
        assert_eq!(window_end(5, None, 0), 5, "a window of 0 counts as 1");
        // Live: open while the stored head is short of the window's end.
        assert!(live_window_open(None, 7));
        assert!(live_window_open(Some(6), 7));
        assert!(!live_window_open(Some(7), 7));
        assert!(!live_window_open(Some(100), 7));
    }

    #[test]
    fn receipts_cannot_exceed_reality() {
        let f = fixture();
        let (_d, book) = book_with(&f, 9);
        // Stream purchase: not beyond the stored head (9), never u64::MAX.
        assert_eq!(
            book.accept(&signed(&f, 10, 1, 1)),
            Err(ReceiptError::BeyondServed {
                up_to: 10,
                limit: Some(9)
            })
        );
        assert_eq!(
            book.accept(&signed(&f, u64::MAX, 1, 1)).unwrap_err().code(),
            "beyond_served"
        );
        // Nothing changed: no receipt stored, and nonce 1 is still usable.
        assert!(book.latest(1).unwrap().is_none());
        assert_eq!(book.accept(&signed(&f, 9, 1, 1)).unwrap().up_to_sequence, 9);
        assert_eq!(
            book.accept(&signed(&f, u64::MAX, 2, 2)).unwrap_err().code(),
            "beyond_served"
        );
        assert_eq!(book.latest(1).unwrap().unwrap().0.nonce, 1);

        // Batch purchase: not beyond what was served over HTTP.
        let mut batch = f.view.purchase(1).unwrap();
        batch.id = 2;
        batch.terms = PurchaseTerms::Batch { first: 0, last: 30 };
        f.view.apply(ChainEvent::PurchaseUpdated(batch));
        let for_batch = |up_to, nonce| {
            let r = Receipt {
                purchase: 2,
                ..receipt(&f, up_to, 1, nonce)
            };
            (r.clone(), r.sign_sr25519(&f.buyer, &GENESIS)).encode()
        };
        assert_eq!(
            book.accept(&for_batch(0, 1)),
            Err(ReceiptError::BeyondServed {
                up_to: 0,
                limit: None
            })
        );
        book.store.record_served(2, 4).unwrap();
        assert!(matches!(
            book.accept(&for_batch(5, 1)),
            Err(ReceiptError::BeyondServed { limit: Some(4), .. })
        ));
        assert_eq!(book.accept(&for_batch(4, 1)).unwrap().up_to_sequence, 4);
    }

    #[test]
    fn receipts_are_bound_to_the_chain() {
        let f = fixture();
        let (_d, book) = book(&f);
        let r = receipt(&f, 3, 1, 1);
        let other_chain = (
            r.clone(),
            r.sign_sr25519(&f.buyer, &H256::repeat_byte(0x99)),
        )
            .encode();
        assert_eq!(book.accept(&other_chain), Err(ReceiptError::BadSignature));
        assert!(book.accept(&signed(&f, 3, 1, 1)).is_ok());
    }

    #[test]
    fn keeps_the_latest_valid_receipt() {
        let f = fixture();
        let (_d, book) = book(&f);
        assert_eq!(
            book.accept(&signed(&f, 10, 1000, 1))
                .unwrap()
                .up_to_sequence,
            10
        );
        assert_eq!(
            book.accept(&signed(&f, 10, 1000, 1)),
            Err(ReceiptError::NotNewer(ReceiptRejection::Replayed))
        );
        assert_eq!(
            book.accept(&signed(&f, 9, 2000, 2)),
            Err(ReceiptError::NotNewer(ReceiptRejection::Lower))
        );
        assert_eq!(
            book.accept(&signed(&f, 10, 1000, 3)),
            Err(ReceiptError::NotNewer(ReceiptRejection::Stale))
        );
        assert!(book.accept(&signed(&f, 20, 2000, 4)).is_ok());
        assert_eq!(book.latest(1).unwrap().unwrap().0.up_to_sequence, 20);
    }

    #[test]
    fn refuses_bad_receipts() {
        let f = fixture();
        let (_d, book) = book(&f);
        assert!(matches!(
            book.accept(b"garbage"),
            Err(ReceiptError::Malformed(_))
        ));
        let mut trailing = signed(&f, 1, 1, 1);
        trailing.push(0);
        assert!(matches!(
            book.accept(&trailing),
            Err(ReceiptError::Malformed(_))
        ));
        // Signed by someone else.
        let receipt = Receipt {
            purchase: 1,
            operator: f.me.clone(),
            up_to_sequence: 1,
            bytes: 1,
            nonce: 1,
        };
        let forged = (receipt.clone(), receipt.sign_sr25519(&pair(99), &GENESIS)).encode();
        assert_eq!(book.accept(&forged), Err(ReceiptError::BadSignature));
        // For another operator, for an unknown purchase.
        let other = Receipt {
            operator: AccountId::new([9; 32]),
            ..receipt.clone()
        };
        assert_eq!(
            book.accept(&(other.clone(), other.sign_sr25519(&f.buyer, &GENESIS)).encode()),
            Err(ReceiptError::WrongOperator)
        );
        let unknown = Receipt {
            purchase: 5,
            ..receipt.clone()
        };
        assert_eq!(
            book.accept(&(unknown.clone(), unknown.sign_sr25519(&f.buyer, &GENESIS)).encode()),
            Err(ReceiptError::UnknownPurchase(5))
        );
        // Closed purchase.
        f.view.apply(ChainEvent::PurchaseEnded { purchase: 1 });
        assert_eq!(
            book.accept(&signed(&f, 1, 1, 1)),
            Err(ReceiptError::PurchaseClosed(1))
        );
        assert!(book.latest(1).unwrap().is_none());
    }

    struct Scripted {
        outcomes: Mutex<Vec<Vec<ClaimOutcome>>>,
        seen: Mutex<Vec<Vec<u64>>>,
    }

    #[async_trait]
    impl ClaimSubmitter for Scripted {
        async fn submit(&self, claims: &[Claim]) -> Vec<ClaimOutcome> {
            self.seen
                .lock()
                .unwrap()
                .push(claims.iter().map(|c| c.receipt.nonce).collect());
            let mut outcomes = self.outcomes.lock().unwrap();
            if outcomes.is_empty() {
                vec![]
            } else {
                outcomes.remove(0)
            }
        }
    }

    #[tokio::test]
    async fn claims_are_batched_and_retried_until_decided() {
        let f = fixture();
        let (_d, book) = book(&f);
        book.accept(&signed(&f, 10, 1000, 1)).unwrap();
        let submitter = Scripted {
            outcomes: Mutex::new(vec![
                vec![ClaimOutcome::Failed("node down".into())],
                vec![ClaimOutcome::Accepted { accrued: 1_500 }],
            ]),
            seen: Mutex::new(vec![]),
        };
        assert_eq!(
            claim_round(&book, &submitter, 8).await.unwrap(),
            ClaimRound {
                failed: 1,
                ..Default::default()
            }
        );
        let text = book.metrics.render();
        assert!(
            text.contains("fastdata_operator_claims_pending 1\n"),
            "{text}"
        );
        assert!(
            text.contains("fastdata_operator_claims_earned_total 0\n"),
            "{text}"
        );
        assert_eq!(
            claim_round(&book, &submitter, 8).await.unwrap(),
            ClaimRound {
                accepted: 1,
                ..Default::default()
            }
        );
        let text = book.metrics.render();
        assert!(
            text.contains("fastdata_operator_claims_pending 0\n"),
            "{text}"
        );
        assert!(
            text.contains("fastdata_operator_claims_earned_total 1\n"),
            "{text}"
        );
        assert!(
            text.contains("fastdata_operator_claims_earned_planck_total 1500\n"),
            "{text}"
        );
        assert!(
            text.contains("fastdata_operator_purchase_receipts{purchase=\"1\"} 1\n"),
            "{text}"
        );
        // Nothing new: nothing submitted.
        assert_eq!(
            claim_round(&book, &submitter, 8).await.unwrap(),
            ClaimRound::default()
        );
        // A newer receipt is claimed again; a missing outcome counts as failed.
        book.accept(&signed(&f, 20, 2000, 2)).unwrap();
        assert_eq!(
            claim_round(&book, &submitter, 8).await.unwrap(),
            ClaimRound {
                failed: 1,
                ..Default::default()
            }
        );
        assert_eq!(
            *submitter.seen.lock().unwrap(),
            vec![vec![1], vec![1], vec![2]]
        );
        // NoChainSubmitter keeps everything pending.
        assert_eq!(
            claim_round(&book, &NoChainSubmitter, 8)
                .await
                .unwrap()
                .failed,
            1
        );
    }
}

//! Claims on chain: the transactions and reads the daemon makes as the operator account
//! ([`OperatorCalls`], [`NodeCalls`]) and the claim rounds ([`ChainClaimSubmitter`]: batches of
//! `Escrow::claim`, each checked against the attested head first).

use std::sync::Arc;

use fastdata_primitives::{Balance, BlockNumber, Sequence, StreamId};
use fastdata_sdk::{
    chain::{fastdata, Included, RuntimeCall, RuntimeEvent, Wait, MAX_BATCH_CALLS},
    subxt::utils::Static,
    Account, Error, FastData,
};
use tokio::sync::Mutex;

use crate::{
    attestation::HeadAttester,
    receipts::{Claim, ClaimOutcome, ClaimSubmitter},
};

/// The transactions and reads the daemon makes as the operator account: the seam under
/// [`ChainClaimSubmitter`] and [`HeadAttester`] (tests fake it).
#[async_trait::async_trait]
pub trait OperatorCalls: Send + Sync + 'static {
    /// One `Escrow::claim(receipt, signature)` per claim, as one `Utility::force_batch`
    /// transaction (`claims` holds at most [`MAX_BATCH_CALLS`]); returns per claim, in order,
    /// the pay it accrued (planck) or its error: [`Error::Dispatch`] when the runtime refused
    /// that claim, another error when the transaction did not happen.
    async fn claim_batch(&self, claims: &[Claim]) -> Vec<Result<Balance, Error>>;
    /// `Operators::attest_heads(heads)`: `(stream, head, stored bytes)` triples.
    async fn attest_heads(&self, heads: &[(StreamId, Sequence, u64)]) -> Result<(), Error>;
    /// This operator's latest heads of `streams` accepted on chain with the stored bytes and
    /// the block of that attestation (streams it never attested are left out).
    async fn attested_heads(
        &self,
        streams: &[StreamId],
    ) -> Result<Vec<(StreamId, Sequence, u64, BlockNumber)>, Error>;
}

/// [`OperatorCalls`] to a node, signed by the operator: one connection, opened on first use
/// and reopened after a failure that is not a dispatch error. Transactions wait for
/// finalization (the daemon acts on finalized state only); several may be in flight at once
/// (the SDK picks their nonces).
pub struct NodeCalls {
    url: String,
    account: Account,
    chain: Mutex<Option<FastData>>,
}

impl NodeCalls {
    /// Calls as `account` through the node at `url`.
    pub fn new(url: impl Into<String>, account: Account) -> Self {
        Self {
            url: url.into(),
            account,
            chain: Mutex::new(None),
        }
    }

    async fn connection(&self) -> Result<FastData, Error> {
        let mut guard = self.chain.lock().await;
        if let Some(chain) = guard.as_ref() {
            return Ok(chain.clone());
        }
        let chain = FastData::connect(&self.url, self.account.clone()).await?;
        *guard = Some(chain.clone());
        Ok(chain)
    }

    /// Forgets the connection after a failure the node did not decide.
    async fn checked<T>(&self, result: Result<T, Error>) -> Result<T, Error> {
        if matches!(&result, Err(e) if !matches!(e, Error::Dispatch { .. })) {
            *self.chain.lock().await = None;
        }
        result
    }
}

#[async_trait::async_trait]
impl OperatorCalls for NodeCalls {
    async fn claim_batch(&self, claims: &[Claim]) -> Vec<Result<Balance, Error>> {
        let chain = match self.connection().await {
            Ok(chain) => chain,
            Err(e) => {
                let text = e.to_string();
                return claims
                    .iter()
                    .map(|_| Err(Error::Chain(text.clone())))
                    .collect();
            }
        };
        let results = claim_results(
            chain
                .submit_batch(&claim_calls(claims), Wait::Finalized)
                .await,
        );
        if results
            .iter()
            .any(|r| matches!(r, Err(e) if !matches!(e, Error::Dispatch { .. })))
        {
            *self.chain.lock().await = None;
        }
        results
    }

    async fn attest_heads(&self, heads: &[(StreamId, Sequence, u64)]) -> Result<(), Error> {
        let chain = self.connection().await?;
        let heads =
            fastdata::runtime_types::bounded_collections::bounded_vec::BoundedVec(heads.to_vec());
        let result = chain
            .submit_finalized(fastdata::tx().operators().attest_heads(heads))
            .await;
        self.checked(result).await.map(drop)
    }

    async fn attested_heads(
        &self,
        streams: &[StreamId],
    ) -> Result<Vec<(StreamId, Sequence, u64, BlockNumber)>, Error> {
        let chain = self.connection().await?;
        let me = self.account.account_id();
        let mut heads = Vec::new();
        for stream in streams {
            let attested = match chain.attested_heads(stream).await {
                Ok(attested) => attested,
                Err(e) => return self.checked(Err(e)).await,
            };
            if let Some(mine) = attested.into_iter().find(|a| a.operator == me) {
                heads.push((*stream, mine.head, mine.stored_bytes, mine.at));
            }
        }
        Ok(heads)
    }
}

/// Submits claims signed by the operator as `Utility::force_batch` transactions of at most
/// [`MAX_BATCH_CALLS`] `Escrow::claim` calls, all in flight at once (each waits for
/// finalization), so a round of any size takes a few blocks. With an attester
/// ([`Self::attest_first`]) each submission first attests the stream heads that grew, so the
/// claims it sends are within them.
///
/// A claim the chain refuses as `BeyondStreamHead` (its receipt reaches past the stream's
/// attested head, e.g. while co-assigned operators have not attested yet) stays pending and
/// is sent again next round; other refusals are final.
pub struct ChainClaimSubmitter {
    calls: Arc<dyn OperatorCalls>,
    attester: std::sync::OnceLock<Arc<HeadAttester>>,
    max_per_batch: usize,
}

impl ChainClaimSubmitter {
    /// Claims as `account` through the node at `url`.
    pub fn new(url: impl Into<String>, account: Account) -> Self {
        Self::with_calls(Arc::new(NodeCalls::new(url, account)))
    }

    /// Claims through `calls`.
    pub fn with_calls(calls: Arc<dyn OperatorCalls>) -> Self {
        Self {
            calls,
            attester: std::sync::OnceLock::new(),
            max_per_batch: MAX_BATCH_CALLS,
        }
    }

    /// At most `n` claims per transaction (at least 1, at most [`MAX_BATCH_CALLS`]).
    pub fn with_max_per_batch(mut self, n: usize) -> Self {
        self.max_per_batch = n.clamp(1, MAX_BATCH_CALLS);
        self
    }

    /// The calls it makes (to share its connection with a [`HeadAttester`]).
    pub fn calls(&self) -> Arc<dyn OperatorCalls> {
        self.calls.clone()
    }

    /// Runs an attestation round of `attester` before each batch of claims (set once; the
    /// store it reads exists only once the daemon started).
    pub fn attest_first(&self, attester: Arc<HeadAttester>) {
        if self.attester.set(attester).is_err() {
            tracing::warn!("claims already attest with another attester; keeping it");
        }
    }
}

/// The outcome of one claim from the chain's answer.
pub fn claim_outcome(result: Result<Balance, Error>) -> ClaimOutcome {
    match result {
        Ok(accrued) => ClaimOutcome::Accepted { accrued },
        Err(Error::Dispatch { error }) if error.contains(BEYOND_STREAM_HEAD) => {
            ClaimOutcome::Failed(format!(
                "receipt beyond the stream's attested head, retried next round: {error}"
            ))
        }
        Err(Error::Dispatch { error }) => ClaimOutcome::Rejected(error),
        Err(e) => ClaimOutcome::Failed(e.to_string()),
    }
}

/// The escrow error of a claim beyond the stream's attested head.
pub const BEYOND_STREAM_HEAD: &str = "BeyondStreamHead";

#[async_trait::async_trait]
impl ClaimSubmitter for ChainClaimSubmitter {
    async fn submit(&self, claims: &[Claim]) -> Vec<ClaimOutcome> {
        if let Some(attester) = self.attester.get() {
            match attester.round().await {
                Ok(round) if round.calls > 0 => {
                    tracing::info!(?round, "heads attested before claims")
                }
                Ok(_) => {}
                Err(e) => tracing::warn!("head attestation before claims failed: {e}"),
            }
        }
        let chunks = claims.chunks(self.max_per_batch).map(|chunk| async move {
            let mut results = self.calls.claim_batch(chunk).await;
            // One outcome per claim, whatever the calls returned.
            results.truncate(chunk.len());
            while results.len() < chunk.len() {
                results.push(Err(Error::Chain("no outcome for this claim".into())));
            }
            results
        });
        futures_util::future::join_all(chunks)
            .await
            .into_iter()
            .flatten()
            .map(claim_outcome)
            .collect()
    }
}

/// The `Escrow::claim` call of each claim, for [`FastData::submit_batch`].
pub fn claim_calls(claims: &[Claim]) -> Vec<RuntimeCall> {
    claims
        .iter()
        .map(|claim| {
            let signature = sp_runtime::MultiSignature::Sr25519(claim.signature);
            RuntimeCall::Escrow(fastdata::escrow::Call::claim {
                receipt: Static(claim.receipt.clone()),
                signature: Static(signature),
            })
        })
        .collect()
}

/// The pay each claim of a batch accrued, from each call's result
/// ([`FastData::submit_batch`]: the call's own events, or its error).
pub fn claim_results(items: Vec<Result<Included, Error>>) -> Vec<Result<Balance, Error>> {
    items
        .into_iter()
        .map(|item| item.map(|included| accrued(&included)))
        .collect()
}

/// The pay accrued by a claim, from its `Escrow::ReceiptClaimed` event; 0 if the event is
/// missing.
fn accrued(included: &Included) -> Balance {
    match included.event("Escrow::ReceiptClaimed", |e| match e {
        RuntimeEvent::Escrow(fastdata::escrow::Event::ReceiptClaimed { accrued, .. }) => {
            Some(*accrued)
        }
        _ => None,
    }) {
        Ok(accrued) => accrued,
        Err(e) => {
            tracing::warn!("claim accepted, accrued pay unknown: {e}");
            0
        }
    }
}

//! Many transactions of one account at once: consecutive nonces submitted without waiting,
//! then every one awaited until finalized (what funding, attestation and purchases for many
//! sellers need; [`FastData::submit`] waits for each transaction in turn).

use anyhow::{bail, Context};
use fastdata_primitives::{AccountId, Balance, BlockNumber, OfferId};
use fastdata_sdk::{
    chain::{fastdata, lookup},
    Account, FastData, FastDataConfig,
};
use sp_core::H256;
use subxt::tx::Payload;

/// A node answer that says nothing about the request: subxt could not use a block it was just
/// told about (under load the node sometimes cannot find the block header of a new block).
pub fn transient(error: &impl std::fmt::Display) -> bool {
    let text = error.to_string();
    text.contains("cannot find the block header") || text.contains("OnlineClientAtBlock")
}

/// A transaction the pool dropped without including it: its mortality ran out while it waited
/// (blocks fill up), or it was replaced; submitting it again is the answer.
pub fn dropped(error: &impl std::fmt::Display) -> bool {
    let text = error.to_string();
    text.contains("marked as invalid")
        || text.contains("is not valid")
        || text.contains("Dropped")
        || text.contains("Usurped")
}

/// Runs the chain read `call` again (up to 6 times, backing off) while it fails transiently.
pub async fn retry<T, F, Fut>(what: &str, mut call: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, fastdata_sdk::Error>>,
{
    let mut attempt = 0u64;
    loop {
        match call().await {
            Ok(value) => return Ok(value),
            Err(e) if transient(&e) && attempt < 5 => {
                attempt += 1;
                tracing::debug!("{what}: {e}; retrying");
                tokio::time::sleep(std::time::Duration::from_millis(300 * attempt)).await;
            }
            Err(e) => return Err(anyhow::Error::from(e).context(what.to_owned())),
        }
    }
}

/// Submits `calls` signed by `chain`'s account with consecutive nonces, then waits until each
/// is finalized and succeeded.
pub async fn submit_many<C: Payload>(
    chain: &FastData,
    what: &str,
    calls: &[C],
) -> anyhow::Result<()> {
    if calls.is_empty() {
        return Ok(());
    }
    let signer = chain.account();
    let id = <Account as subxt::tx::Signer<FastDataConfig>>::account_id(signer);
    let mut attempt = 0u64;
    let (mut txs, mut nonce) = loop {
        let prepared = async {
            let at = chain.client().at_current_block().await?;
            let txs = at.transactions();
            let nonce = txs.account_nonce(&id).await?;
            Ok::<_, anyhow::Error>((txs, nonce))
        }
        .await;
        match prepared {
            Ok(ready) => break ready,
            Err(e) if transient(&e) && attempt < 5 => {
                attempt += 1;
                tokio::time::sleep(std::time::Duration::from_millis(300 * attempt)).await;
            }
            Err(e) => return Err(e.context(format!("{what}: cannot read the account nonce"))),
        }
    };
    let mut pending = Vec::with_capacity(calls.len());
    for call in calls {
        let params = subxt::config::SubstrateExtrinsicParamsBuilder::<FastDataConfig>::new()
            .nonce(nonce)
            .build();
        pending.push(
            txs.sign_and_submit_then_watch(call, signer, params)
                .await
                .with_context(|| format!("{what}: transaction with nonce {nonce} not submitted"))?,
        );
        nonce += 1;
    }
    let results = futures_util::future::join_all(pending.into_iter().map(|progress| async move {
        let in_block = progress.wait_for_finalized().await?;
        Ok::<_, anyhow::Error>(in_block.wait_for_success().await)
    }))
    .await;
    for (i, result) in results.into_iter().enumerate() {
        match result.with_context(|| format!("{what}: transaction {i} was not finalized"))? {
            Ok(_) => {}
            Err(subxt::error::TransactionEventsError::ExtrinsicFailed(e)) => {
                bail!("{what}: transaction {i} failed: {e}")
            }
            // Finalized, but its events could not be fetched (the node answers some of many
            // concurrent look-ups with "cannot find the block header"): the callers check
            // the effects on chain instead.
            Err(e) => tracing::debug!("{what}: events of transaction {i} not checked: {e}"),
        }
    }
    Ok(())
}

/// Sends `amount` to each of `to` from `chain`'s account.
pub async fn fund_all(chain: &FastData, to: &[AccountId], amount: Balance) -> anyhow::Result<()> {
    let calls: Vec<_> = to
        .iter()
        .map(|who| {
            fastdata::tx()
                .balances()
                .transfer_keep_alive(lookup(who), amount)
        })
        .collect();
    submit_many(chain, "funding", &calls).await?;
    for who in to {
        if retry("balance", || chain.free_balance(who)).await? < amount {
            bail!("funding: {who} did not receive its funds");
        }
    }
    Ok(())
}

/// As a registered issuer (`chain`'s account), attests KYC to each DID of `subjects`.
pub async fn attest_all(
    issuer: &FastData,
    subjects: &[AccountId],
    expires: BlockNumber,
) -> anyhow::Result<()> {
    let calls: Vec<_> = subjects
        .iter()
        .map(|who| {
            fastdata::tx().did().attest_credential(
                lookup(who),
                b"KYC".to_vec(),
                H256::repeat_byte(1),
                expires,
            )
        })
        .collect();
    submit_many(issuer, "KYC attestations", &calls).await?;
    for who in subjects {
        if !retry("verification", || issuer.is_verified(who)).await? {
            bail!("KYC attestation: {who} is not verified");
        }
    }
    Ok(())
}

/// Buys one period of each of `offers` for at most `max_price` each.
pub async fn buy_all(
    buyer: &FastData,
    offers: &[OfferId],
    max_price: Balance,
) -> anyhow::Result<()> {
    let calls: Vec<_> = offers
        .iter()
        .map(|offer| fastdata::tx().escrow().purchase(*offer, 1, max_price))
        .collect();
    submit_many(buyer, "purchases", &calls).await?;
    let me = buyer.account().account_id();
    let bought = retry("purchases", || buyer.purchases_of_buyer(&me)).await?;
    if bought.len() < offers.len() {
        bail!(
            "purchases: {} of {} offers bought",
            bought.len(),
            offers.len()
        );
    }
    Ok(())
}

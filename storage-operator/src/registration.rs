//! The operator on chain: registers it, or brings its endpoints and price in line with the
//! configuration, or resumes it ([`ensure_registered`], run by the follower on connecting).

use fastdata_primitives::{api_market::OperatorStatus, Balance};
use fastdata_sdk::{
    chain::{bounded, fastdata},
    Error, FastData,
};

/// What the operator registers on chain (`Operators::register`, or `update` when it differs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Registration {
    /// Stake to hold, in planck.
    pub stake: Balance,
    /// `mqtt://` or `mqtts://` URL buyers and sellers connect to.
    pub broker_url: String,
    /// `http://` or `https://` URL of this daemon's API.
    pub http_url: String,
    /// Price per MB served, in planck.
    pub price_per_mb: Balance,
}

/// Registers the operator, or brings its endpoints and price in line with `registration`, or
/// resumes it when it is paused or suspended.
pub async fn ensure_registered(chain: &FastData, registration: &Registration) -> Result<(), Error> {
    let me = chain.account().account_id();
    let current = chain.operator(&me).await?;
    let broker = registration.broker_url.as_bytes().to_vec();
    let http = registration.http_url.as_bytes().to_vec();
    match current {
        None => {
            chain
                .submit_finalized(fastdata::tx().operators().register(
                    registration.stake,
                    bounded(broker),
                    bounded(http),
                    registration.price_per_mb,
                ))
                .await?;
            tracing::info!(operator = %me, "registered as a storage operator");
        }
        Some(view) => {
            if view.broker_url != broker
                || view.http_url != http
                || view.price_per_mb != registration.price_per_mb
            {
                chain
                    .submit_finalized(fastdata::tx().operators().update(
                        Some(bounded(broker)),
                        Some(bounded(http)),
                        Some(registration.price_per_mb),
                    ))
                    .await?;
                tracing::info!(operator = %me, "updated endpoints and price on chain");
            }
            match view.status {
                OperatorStatus::Active => {}
                OperatorStatus::Paused | OperatorStatus::Suspended => {
                    chain
                        .submit_finalized(fastdata::tx().operators().resume())
                        .await?;
                    tracing::info!(operator = %me, "resumed");
                }
                OperatorStatus::Leaving { unbonding_until } => {
                    return Err(Error::Chain(format!(
                        "operator {me} is leaving (unbonding until block {unbonding_until}); \
                         withdraw and register again"
                    )))
                }
            }
        }
    }
    Ok(())
}

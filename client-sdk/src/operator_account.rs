//! A storage operator's own account: its on-chain record and pending reassignment, its
//! life-cycle calls (`Operators::register`, `pause`, `resume`, `leave`, `withdraw`,
//! `bond_extra`), what it earned from buyers' receipts, and its balance with the holds on it.
//!
//! Hosting pay (`Operators::HostingPaid`) is only recorded in events: the chain keeps no
//! running total per operator, so [`OperatorEarnings`] does not include it; it shows in the
//! operator's free balance ([`AccountFunds`]).

use fastdata_primitives::{AccountId, Balance, BlockNumber, StreamId};

use crate::{
    chain::{account32, account_id, bounded, fastdata, FastData, Included},
    error::Error,
    operator::Operator,
};

/// An operator's record with what the runtime APIs and storage add to it.
#[derive(Clone, Debug)]
pub struct OperatorStatusReport {
    /// The record (`OperatorsApi_operator`): stake, status, endpoints, price, last heartbeat,
    /// number of streams and trust score.
    pub operator: Operator,
    /// The streams assigned to it (`OperatorsApi_streams_of`).
    pub streams: Vec<StreamId>,
    /// The relay block from which replacements for its streams are drawn, if it stopped
    /// being active while hosting and they are not drawn yet
    /// (`Operators::PendingReassignments`).
    pub pending_reassignment: Option<BlockNumber>,
}

/// What an operator earned from buyers' receipts, over every purchase it served.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OperatorEarnings {
    /// Purchases with a claim of this operator.
    pub purchases: u32,
    /// Bytes the buyers acknowledged.
    pub bytes: u64,
    /// Accrued in the purchases' current periods, paid at their settlement.
    pub accrued: Balance,
    /// Paid so far.
    pub paid: Balance,
}

/// An account's balance and what is held from it, by hold reason.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AccountFunds {
    /// Free balance.
    pub free: Balance,
    /// Held or reserved in all (the sum of the holds plus any reserve).
    pub reserved: Balance,
    /// Frozen (cannot go below).
    pub frozen: Balance,
    /// Each hold: the runtime's reason (e.g. `Operators(OperatorStake)`) and the amount.
    pub holds: Vec<(String, Balance)>,
}

impl FastData {
    /// The operator `who` with its streams and pending reassignment; `None` if it is not
    /// registered.
    pub async fn operator_status(
        &self,
        who: &AccountId,
    ) -> Result<Option<OperatorStatusReport>, Error> {
        let Some(operator) = self.operator(who).await? else {
            return Ok(None);
        };
        let streams = self
            .api(
                fastdata::runtime_apis()
                    .operators_api()
                    .streams_of(account32(who)),
            )
            .await?;
        let pending_reassignment = self
            .pending_reassignments()
            .await?
            .into_iter()
            .find(|(account, _)| account == who)
            .map(|(_, at)| at);
        Ok(Some(OperatorStatusReport {
            operator,
            streams,
            pending_reassignment,
        }))
    }

    /// Operators whose streams wait to be reassigned, each with the relay block from which
    /// the replacements are drawn (`Operators::PendingReassignments`).
    pub async fn pending_reassignments(&self) -> Result<Vec<(AccountId, BlockNumber)>, Error> {
        let at = self.current_block().await?;
        let address = fastdata::storage().operators().pending_reassignments();
        let value = at
            .storage()
            .try_fetch(address, ())
            .await
            .map_err(|e| Error::Chain(format!("Operators.PendingReassignments: {e}")))?;
        let Some(value) = value else {
            return Ok(Vec::new());
        };
        let pending = value.decode().map_err(|e| Error::Decode {
            what: "Operators.PendingReassignments",
            detail: e.to_string(),
        })?;
        Ok(pending
            .0
            .into_iter()
            .map(|(who, at)| (account_id(&who), at))
            .collect())
    }

    /// What `who` earned as an operator from receipts, summed over the claims of every
    /// purchase of every offer on chain (there is no index by operator, so this reads them
    /// all).
    pub async fn operator_earnings(&self, who: &AccountId) -> Result<OperatorEarnings, Error> {
        let mut earnings = OperatorEarnings::default();
        for offer in self.all_offers().await? {
            for id in self.purchases_of_offer(offer.id).await? {
                let Some(purchase) = self.purchase(id).await? else {
                    continue;
                };
                for (account, claim) in &purchase.operators {
                    if account == who {
                        earnings.purchases = earnings.purchases.saturating_add(1);
                        earnings.bytes = earnings.bytes.saturating_add(claim.bytes);
                        earnings.accrued = earnings.accrued.saturating_add(claim.accrued);
                        earnings.paid = earnings.paid.saturating_add(claim.paid);
                    }
                }
            }
        }
        Ok(earnings)
    }

    /// The balance of `who` with every hold on it, at the last finalized block.
    pub async fn account_funds(&self, who: &AccountId) -> Result<AccountFunds, Error> {
        let at = self.current_block().await?;
        let id = account32(who);
        let storage = fastdata::storage();
        let mut funds = AccountFunds::default();
        let account = at
            .storage()
            .try_fetch(storage.system().account(), (id,))
            .await
            .map_err(|e| Error::Chain(format!("System.Account of {who}: {e}")))?;
        if let Some(account) = account {
            let data = account
                .decode()
                .map_err(|e| Error::Decode {
                    what: "account info",
                    detail: e.to_string(),
                })?
                .data;
            funds.free = data.free;
            funds.reserved = data.reserved;
            funds.frozen = data.frozen;
        }
        let holds = at
            .storage()
            .try_fetch(storage.balances().holds(), (id,))
            .await
            .map_err(|e| Error::Chain(format!("Balances.Holds of {who}: {e}")))?;
        if let Some(holds) = holds {
            let holds = holds.decode().map_err(|e| Error::Decode {
                what: "Balances.Holds",
                detail: e.to_string(),
            })?;
            funds.holds = holds
                .0
                .into_iter()
                .map(|h| (format!("{:?}", h.id), h.amount))
                .collect();
        }
        Ok(funds)
    }

    /// Registers the acting account as a storage operator holding `stake`, serving at
    /// `broker_url` (`mqtt://`/`mqtts://`) and `http_url` (`http://`/`https://`) for
    /// `price_per_mb` per MB served. Waits for finality.
    pub async fn register_operator(
        &self,
        stake: Balance,
        broker_url: &str,
        http_url: &str,
        price_per_mb: Balance,
    ) -> Result<Included, Error> {
        self.submit_finalized(fastdata::tx().operators().register(
            stake,
            bounded(broker_url.as_bytes()),
            bounded(http_url.as_bytes()),
            price_per_mb,
        ))
        .await
    }

    /// Pauses the acting operator: it takes no new streams, and replacements for its streams
    /// are drawn a few blocks later unless it resumes first. Waits for finality.
    pub async fn pause_operator(&self) -> Result<Included, Error> {
        self.submit_finalized(fastdata::tx().operators().pause())
            .await
    }

    /// Resumes the acting operator (paused or suspended; its stake must meet the minimum).
    /// Waits for finality.
    pub async fn resume_operator(&self) -> Result<Included, Error> {
        self.submit_finalized(fastdata::tx().operators().resume())
            .await
    }

    /// Starts the acting operator's exit: its streams are reassigned and its stake stays held
    /// until the unbonding period ends. Waits for finality.
    pub async fn leave_operators(&self) -> Result<Included, Error> {
        self.submit_finalized(fastdata::tx().operators().leave())
            .await
    }

    /// Releases the acting operator's stake after `leave` and the unbonding period, and
    /// removes its record. Waits for finality.
    pub async fn withdraw_stake(&self) -> Result<Included, Error> {
        self.submit_finalized(fastdata::tx().operators().withdraw())
            .await
    }

    /// Adds `amount` to the acting operator's held stake. Waits for finality.
    pub async fn bond_extra(&self, amount: Balance) -> Result<Included, Error> {
        self.submit_finalized(fastdata::tx().operators().bond_extra(amount))
            .await
    }
}

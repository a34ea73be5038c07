//! The connection to a FAST DATA node and the account acting through it.
//!
//! Transactions are submitted by pallet and call name with their arguments SCALE-encoded by
//! the runtime's own types from `fastdata-primitives` (wrapped in [`Static`]); every
//! transaction waits for finalization (in `--dev` mode transactions go Ready → Finalized).
//! The nonce is read at the last finalized block, so an account's transactions from one
//! process are submitted one at a time ([`FastData::submit`] holds a per-account lock until
//! finalization): two in flight would be signed with the same nonce, and one would be dropped.
//! Runtime APIs (`OffersApi`, `EscrowApi`, `DidApi`, `TrustApi`, `OperatorsApi`) are called
//! by name and their answers decoded into the same types.

use codec::{Decode, Encode};
use fastdata_primitives::BlockNumber;
use sp_core::H256;
use subxt::{ext::scale_encode::EncodeAsFields, utils::Static};

use crate::{account::Account, error::Error, Client};

/// One lock per account that submits transactions from this process.
fn submission_lock(
    account: &fastdata_primitives::AccountId,
) -> std::sync::Arc<tokio::sync::Mutex<()>> {
    use std::{
        collections::HashMap,
        sync::{Arc, Mutex, OnceLock},
    };
    static LOCKS: OnceLock<
        Mutex<HashMap<fastdata_primitives::AccountId, Arc<tokio::sync::Mutex<()>>>>,
    > = OnceLock::new();
    let mut locks = LOCKS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    locks.entry(account.clone()).or_default().clone()
}

/// An event emitted by a transaction: pallet, name and SCALE-encoded fields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawEvent {
    /// Pallet name, e.g. `Escrow`.
    pub pallet: String,
    /// Event name, e.g. `Purchased`.
    pub name: String,
    /// SCALE encoding of the event's fields, in declaration order.
    pub fields: Vec<u8>,
}

/// A finalized, successful transaction.
#[derive(Clone, Debug)]
pub struct Included {
    /// Hash of the extrinsic.
    pub extrinsic_hash: [u8; 32],
    /// Its events.
    pub events: Vec<RawEvent>,
}

impl Included {
    /// The first event `pallet::name`.
    pub fn event(&self, pallet: &str, name: &str) -> Option<&RawEvent> {
        self.events
            .iter()
            .find(|e| e.pallet == pallet && e.name == name)
    }

    /// Decodes the leading fields of the first event `pallet::name` as `T` (a tuple of the
    /// first fields, or a single first field).
    pub fn decode_event<T: Decode>(&self, pallet: &str, name: &str) -> Result<T, Error> {
        let event = self.event(pallet, name).ok_or_else(|| Error::Decode {
            what: "event",
            detail: format!("no {pallet}::{name} event in the transaction's events"),
        })?;
        T::decode(&mut &event.fields[..]).map_err(|e| Error::Decode {
            what: "event",
            detail: format!("{pallet}::{name}: {e}"),
        })
    }
}

/// A node connection with an acting account.
#[derive(Clone)]
pub struct FastData {
    client: Client,
    account: Account,
}

impl FastData {
    /// Connects to `url` and acts as `account`.
    pub async fn connect(url: &str, account: Account) -> Result<Self, Error> {
        let client = crate::connect(url).await.map_err(|e| {
            Error::Chain(format!(
                "cannot connect to {url}: {e}; is fastdata-node running (scripts/demo)?"
            ))
        })?;
        Ok(Self { client, account })
    }

    /// Uses an existing client.
    pub fn new(client: Client, account: Account) -> Self {
        Self { client, account }
    }

    /// The same connection acting as another account.
    pub fn as_account(&self, account: Account) -> Self {
        Self {
            client: self.client.clone(),
            account,
        }
    }

    /// The subxt client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The acting account.
    pub fn account(&self) -> &Account {
        &self.account
    }

    /// The genesis hash of the connected chain, which every off-chain signature (upload
    /// tokens, access requests, receipts) is bound to.
    pub fn genesis(&self) -> H256 {
        H256(self.client.genesis_hash().0)
    }

    /// The number of the last finalized block.
    pub async fn finalized_number(&self) -> Result<BlockNumber, Error> {
        let at = self.client.at_current_block().await?;
        Ok(at.block_number() as BlockNumber)
    }

    /// Signs `pallet::call(data)` as the acting account, submits it and waits until it is
    /// finalized. A failed dispatch is an [`Error::Dispatch`] naming the pallet error. The
    /// account's other transactions from this process wait meanwhile (see the module docs).
    pub async fn submit<CallData: EncodeAsFields>(
        &self,
        pallet: &str,
        call: &str,
        data: CallData,
    ) -> Result<Included, Error> {
        let lock = submission_lock(&self.account.account_id());
        let _turn = lock.lock().await;
        let tx = subxt::dynamic::tx(pallet, call, data);
        let progress = self
            .client
            .at_current_block()
            .await?
            .transactions()
            .sign_and_submit_then_watch_default(&tx, &self.account)
            .await
            .map_err(|e| Error::Chain(format!("{pallet}::{call} not submitted: {e}")))?;
        let events = progress.wait_for_finalized_success().await.map_err(|e| {
            use subxt::error::TransactionFinalizedSuccessError as E;
            use subxt::error::{DispatchError, TransactionEventsError};
            match e {
                E::SuccessError(TransactionEventsError::ExtrinsicFailed(failure)) => {
                    let mut text = failure.to_string();
                    if let DispatchError::Module(module) = &failure {
                        if let Ok(details) = module.details() {
                            let docs = details.variant.docs.join(" ");
                            if !docs.is_empty() {
                                text = format!("{text}: {docs}");
                            }
                        }
                    }
                    Error::Dispatch {
                        error: format!("{pallet}::{call} failed with {text}"),
                    }
                }
                other => Error::Chain(format!("{pallet}::{call}: {other}")),
            }
        })?;
        let mut out = Vec::new();
        for event in events.iter() {
            let event = event?;
            out.push(RawEvent {
                pallet: event.pallet_name().to_owned(),
                name: event.event_name().to_owned(),
                fields: event.field_bytes().to_vec(),
            });
        }
        Ok(Included {
            extrinsic_hash: events.extrinsic_hash().0,
            events: out,
        })
    }

    /// Calls runtime API `method` (e.g. `OffersApi_offers`) with SCALE-encoded `args` at the
    /// last finalized block and decodes the answer as `R`.
    pub async fn runtime_api<R: Decode>(
        &self,
        method: &str,
        args: impl Encode,
    ) -> Result<R, Error> {
        let at = self.client.at_current_block().await?;
        runtime_api_at(&at, method, args).await
    }

    /// Sends `amount` planck to `to` (`Balances::transfer_keep_alive`).
    pub async fn transfer(
        &self,
        to: &fastdata_primitives::AccountId,
        amount: fastdata_primitives::Balance,
    ) -> Result<Included, Error> {
        self.submit(
            "Balances",
            "transfer_keep_alive",
            (
                arg(crate::identity::lookup(to)),
                arg(codec::Compact(amount)),
            ),
        )
        .await
    }

    /// The free balance of `who` at the last finalized block (0 for an unknown account).
    pub async fn free_balance(
        &self,
        who: &fastdata_primitives::AccountId,
    ) -> Result<fastdata_primitives::Balance, Error> {
        let at = self.client.at_current_block().await?;
        let address = crate::runtime::fastdata::storage().system().account();
        let info = at
            .storage()
            .try_fetch(address, (subxt::utils::AccountId32(*who.as_ref()),))
            .await
            .map_err(|e| Error::Chain(format!("System.Account of {who}: {e}")))?;
        match info {
            Some(info) => Ok(info
                .decode()
                .map_err(|e| Error::Decode {
                    what: "account info",
                    detail: e.to_string(),
                })?
                .data
                .free),
            None => Ok(0),
        }
    }

    /// Reads raw storage at the last finalized block (`None` if absent).
    pub async fn storage_raw(&self, key: Vec<u8>) -> Result<Option<Vec<u8>>, Error> {
        let at = self.client.at_current_block().await?;
        match at.storage().fetch_raw(key).await {
            Ok(value) => Ok(Some(value)),
            Err(subxt::error::StorageError::NoValueFound) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Waits until `check` returns `Some`, checking at every new finalized block (polled every
    /// `poll`), for at most `timeout`.
    pub async fn wait_for<T, F, Fut>(
        &self,
        what: &str,
        timeout: std::time::Duration,
        mut check: F,
    ) -> Result<T, Error>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<Option<T>, Error>>,
    {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut last_block = None;
        loop {
            let now = self.finalized_number().await?;
            if last_block != Some(now) {
                last_block = Some(now);
                if let Some(found) = check().await? {
                    return Ok(found);
                }
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(Error::Timeout(format!(
                    "{what} (waited {}s)",
                    timeout.as_secs()
                )));
            }
            tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        }
    }
}

/// The chain as of one block.
pub type AtBlock = subxt::client::ClientAtBlock<
    crate::FastDataConfig,
    subxt::client::OnlineClientAtBlockImpl<crate::FastDataConfig>,
>;

/// Calls runtime API `method` (e.g. `OperatorsApi_streams_of`) with SCALE-encoded `args` at
/// block `at` and decodes the whole answer as `R`.
pub async fn runtime_api_at<R: Decode>(
    at: &AtBlock,
    method: &str,
    args: impl Encode,
) -> Result<R, Error> {
    let bytes = at
        .runtime_apis()
        .call_raw(method, Some(&args.encode()))
        .await
        .map_err(|e| Error::Chain(format!("runtime API {method}: {e}")))?;
    codec::DecodeAll::decode_all(&mut &bytes[..]).map_err(|e| Error::Decode {
        what: "runtime API answer",
        detail: format!("{method}: {e}"),
    })
}

/// Wraps a SCALE-encodable value as a transaction argument.
pub fn arg<T: Encode>(value: T) -> Static<T> {
    Static(value)
}

/// The storage key of a double map entry with hashers `blake2_128_concat` (first key) and
/// `twox_64_concat` (second key).
pub fn double_map_key(
    pallet: &str,
    item: &str,
    k1_blake2_128_concat: &[u8],
    k2_twox_64_concat: &[u8],
) -> Vec<u8> {
    use sp_io::hashing::{blake2_128, twox_128, twox_64};
    let mut key = twox_128(pallet.as_bytes()).to_vec();
    key.extend_from_slice(&twox_128(item.as_bytes()));
    key.extend_from_slice(&blake2_128(k1_blake2_128_concat));
    key.extend_from_slice(k1_blake2_128_concat);
    key.extend_from_slice(&twox_64(k2_twox_64_concat));
    key.extend_from_slice(k2_twox_64_concat);
    key
}

/// Every call the SDK submits: pallet, call, argument names in order. `tests/sdk/metadata.rs`
/// checks them against `metadata/fastdata.scale`, so a runtime change that breaks the SDK fails
/// a test instead of a user's transaction.
pub const CALLS: &[(&str, &str, &[&str])] = &[
    ("Did", "create_did", &["key_agreement", "services"]),
    ("Did", "rotate_key_agreement", &["key_agreement"]),
    ("Did", "deactivate_did", &[]),
    ("Did", "register_issuer", &["issuer", "name", "weight"]),
    (
        "Did",
        "attest_credential",
        &["subject", "credential_type", "claim_hash", "expires_at"],
    ),
    ("Did", "revoke_credential", &["subject", "id"]),
    ("Did", "remove_credential", &["subject", "id"]),
    ("Sudo", "sudo", &["call"]),
    ("Balances", "transfer_keep_alive", &["dest", "value"]),
    (
        "Offers",
        "create_offer",
        &["topic", "mode", "price", "terms"],
    ),
    ("Offers", "retire_offer", &["offer"]),
    (
        "Offers",
        "register_stream",
        &["offer", "name", "timestamp", "commitment"],
    ),
    ("Offers", "rotate_epoch", &["stream", "commitment"]),
    ("Offers", "close_stream", &["stream"]),
    ("Offers", "release_stream", &["stream"]),
    ("Escrow", "purchase", &["offer", "periods", "max_price"]),
    ("Escrow", "resolve_dispute", &["purchase", "refund_ratio"]),
    ("Escrow", "deliver_keys", &["purchase", "epoch", "sealed"]),
    ("Escrow", "refund_missing_keys", &["purchase"]),
    ("Escrow", "settle", &["purchase"]),
    ("Escrow", "dispute", &["purchase", "reason", "evidence"]),
    ("Escrow", "answer_dispute", &["purchase", "evidence"]),
    ("Escrow", "claim", &["receipt", "signature"]),
    (
        "Operators",
        "register",
        &["stake", "broker_url", "http_url", "price_per_mb"],
    ),
    (
        "Operators",
        "update",
        &["broker_url", "http_url", "price_per_mb"],
    ),
    ("Operators", "resume", &[]),
    ("Operators", "heartbeat", &[]),
    ("Operators", "attest_heads", &["heads"]),
    ("Trust", "rate", &["purchase", "score", "comment"]),
];

/// Every event the SDK decodes: pallet, event, the leading fields it reads.
pub const EVENTS: &[(&str, &str, &[&str])] = &[
    ("Did", "CredentialAttested", &["subject", "issuer", "id"]),
    ("Offers", "OfferCreated", &["offer"]),
    ("Offers", "StreamRegistered", &["stream", "offer", "seller"]),
    ("Offers", "EpochRotated", &["stream", "epoch"]),
    ("Escrow", "Purchased", &["purchase"]),
];

/// Every runtime API method the SDK calls: trait, method.
pub const RUNTIME_APIS: &[(&str, &str)] = &[
    ("DidApi", "did_document"),
    ("DidApi", "is_verified"),
    ("DidApi", "key_agreement_key"),
    ("TrustApi", "trust_score"),
    ("TrustApi", "reputation"),
    ("OffersApi", "offers"),
    ("OffersApi", "offers_by_seller"),
    ("OffersApi", "offer"),
    ("OffersApi", "stream"),
    ("OperatorsApi", "operator"),
    ("OperatorsApi", "operators"),
    ("OperatorsApi", "streams_of"),
    ("EscrowApi", "purchases_of_buyer"),
    ("EscrowApi", "purchases_of_offer"),
    ("EscrowApi", "purchase"),
    ("EscrowApi", "sealed_key"),
];

/// Storage items the SDK reads raw: pallet, item.
pub const STORAGE: &[(&str, &str)] = &[("Offers", "EpochCommitments"), ("System", "Account")];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_decode_leading_fields() {
        let included = Included {
            extrinsic_hash: [0; 32],
            events: vec![RawEvent {
                pallet: "Escrow".into(),
                name: "Purchased".into(),
                fields: (7u64, 3u64, [1u8; 32]).encode(),
            }],
        };
        let id: u64 = included.decode_event("Escrow", "Purchased").unwrap();
        assert_eq!(id, 7);
        let (id, offer): (u64, u64) = included.decode_event("Escrow", "Purchased").unwrap();
        assert_eq!((id, offer), (7, 3));
        assert!(included
            .decode_event::<u64>("Escrow", "KeysDelivered")
            .is_err());
    }

    #[test]
    fn storage_key_layout() {
        let key = double_map_key("Offers", "EpochCommitments", &[7; 32], &5u32.encode());
        assert_eq!(key.len(), 16 + 16 + 16 + 32 + 8 + 4);
        assert_eq!(&key[..16], &sp_io::hashing::twox_128(b"Offers"));
        assert_eq!(&key[key.len() - 4..], &5u32.to_le_bytes());
    }
}

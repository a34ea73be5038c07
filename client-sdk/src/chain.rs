//! The connection to a FAST DATA node and the account acting through it.
//!
//! Every call, event, storage item and runtime API is reached through the code subxt
//! generates from the runtime's metadata ([`crate::runtime::fastdata`]): transactions are
//! the generated payloads (`fastdata::tx()…`), a transaction's events are the generated
//! [`RuntimeEvent`] enum, and runtime APIs (`fastdata::apis()…`) answer in the runtime's own
//! `fastdata-primitives` types. A renamed call, event, field or runtime API is a compile
//! error here, not a failed transaction. Reads are made at the last finalized block.
//!
//! **Pipelined submission.** One account can have many transactions in flight from one
//! process: each is signed with the larger of the node's pool-aware next nonce
//! (`system_accountNextIndex`: the account's nonce plus its transactions ready in the pool)
//! and a per-account local counter (nonces this process handed out that the pool may not show
//! yet). A per-account lock is held only while the nonce is chosen and the transaction signed
//! and handed to the node, never while it waits for inclusion. A transaction the pool drops or
//! declares invalid (a nonce gap left by a dropped one, a nonce another process used) resets
//! the counter, so the account's next transaction reads the nonce from the node again, and is
//! an [`Error::Chain`] saying so; nothing is resubmitted behind the caller's back.
//!
//! **When a call returns.** [`FastData::submit`] returns once its transaction is in a block
//! with its events ([`Wait::InBlock`]): a best block, or a finalized one if the node reports
//! finalization first or within [`FINALITY_GRACE`] after (`fastdata-node --dev` seals and
//! finalizes each block at once; a relay-backed collator reports the best block a few blocks
//! before finality). [`Included::finalized`] tells which. Reads at the finalized block may
//! not show the effects of a transaction that is not finalized yet:
//! [`FastData::submit_finalized`] waits for finality, as the daemons (the operator's
//! follower, claims and attestations, the seller's key-delivery service) do, so they act on
//! finalized state only.
//!
//! **Batches.** [`FastData::submit_batch`] sends many calls as `Utility::force_batch`
//! transactions of at most [`MAX_BATCH_CALLS`] calls each, signed in order and then all in
//! flight at once, and reports each call's own events or error ([`batch_results`]): one
//! failing call does not stop the others.

use fastdata_primitives::BlockNumber;
use sp_core::H256;
use subxt::{ext::scale_encode::EncodeAsType, utils::Static};

pub use crate::runtime::{fastdata, RuntimeCall, RuntimeEvent};
use crate::{account::Account, error::Error, Client, FastDataConfig};
pub use subxt::{runtime_apis::Payload as ApiPayload, transactions::Payload};

/// The generated form of the runtime's `DispatchError` (e.g. in `Utility::ItemFailed`).
pub type RuntimeDispatchError = fastdata::DispatchError;

/// Most calls in one `Utility::force_batch` transaction. A batch weighs the sum of its calls:
/// 100 `Escrow::deliver_keys` (about 1 ms of weight each) or `Escrow::claim` (about 0.6 ms)
/// take under a tenth of a block's 1.5 s of normal dispatch weight and about 30 KB, so a batch
/// always fits a block beside other traffic, and several batches fit one block.
pub const MAX_BATCH_CALLS: usize = 100;

/// Blocks a transaction stays valid after the finalized block it was signed at. One stuck
/// behind a nonce gap is dropped by the pool after this and reported (resetting the nonce).
pub const MORTALITY_BLOCKS: u64 = 64;

/// How long a transaction seen in a best block waits for its finalization to be reported
/// before [`Wait::InBlock`] returns it unfinalized. `fastdata-node --dev` finalizes each block
/// as it seals it, so its transactions return finalized (and reads at the finalized block see
/// them); on a relay-backed collator, where finality comes blocks later, a call returns this
/// much after its best block.
pub const FINALITY_GRACE: std::time::Duration = std::time::Duration::from_millis(200);

/// The node's legacy RPC methods (for `system_accountNextIndex`).
type Rpc = subxt::rpcs::LegacyRpcMethods<subxt::config::RpcConfigFor<FastDataConfig>>;

/// Per account (and chain) submitting from this process: the next nonce it handed out, if
/// known. Locked only while a nonce is chosen and its transaction signed and handed over.
type NonceSlot = std::sync::Arc<tokio::sync::Mutex<Option<u64>>>;

/// The nonce slot of `account` on the chain with genesis `genesis`.
fn nonce_slot(genesis: H256, account: &fastdata_primitives::AccountId) -> NonceSlot {
    use std::{
        collections::HashMap,
        sync::{Mutex, OnceLock},
    };
    type Slots = Mutex<HashMap<(H256, fastdata_primitives::AccountId), NonceSlot>>;
    static SLOTS: OnceLock<Slots> = OnceLock::new();
    let mut slots = SLOTS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    slots.entry((genesis, account.clone())).or_default().clone()
}

/// The nonce for an account's next transaction: the node's pool-aware next nonce, or the
/// local counter when it is ahead (transactions handed to the node that its pool does not
/// count yet).
pub fn next_nonce(pool: u64, local: Option<u64>) -> u64 {
    local.map_or(pool, |local| local.max(pool))
}

/// How long a submission waits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Wait {
    /// Until the transaction is in a block with its events: a best block, or a finalized one
    /// if the node reports finality first.
    #[default]
    InBlock,
    /// Until its block is finalized.
    Finalized,
}

/// A successful transaction in a block (or one call of a batch transaction, with that call's
/// own events).
#[derive(Clone, Debug)]
pub struct Included {
    /// Hash of the extrinsic.
    pub extrinsic_hash: [u8; 32],
    /// Hash of the block it is in.
    pub block_hash: [u8; 32],
    /// Number of that block.
    pub block_number: BlockNumber,
    /// The nonce it was signed with.
    pub nonce: u64,
    /// Whether the block was known finalized when the call returned (else it was the node's
    /// best block, which a reorganisation could still retract).
    pub finalized: bool,
    /// Its events.
    pub events: Vec<RuntimeEvent>,
}

impl Included {
    /// The first of its events that `pick` maps to a value.
    pub fn find<T>(&self, pick: impl FnMut(&RuntimeEvent) -> Option<T>) -> Option<T> {
        self.events.iter().find_map(pick)
    }

    /// [`Self::find`], or an error naming the `expected` event when none matches.
    pub fn event<T>(
        &self,
        expected: &str,
        pick: impl FnMut(&RuntimeEvent) -> Option<T>,
    ) -> Result<T, Error> {
        self.find(pick).ok_or_else(|| Error::Decode {
            what: "event",
            detail: format!("no {expected} event in the transaction's events"),
        })
    }
}

/// Answers of the generated code that wrap the runtime's own types in [`Static`], unwrapped.
pub trait Unwrap {
    /// The runtime's own type.
    type Inner;
    /// Takes the runtime's own value out.
    fn unwrap_static(self) -> Self::Inner;
}

impl<T> Unwrap for Static<T> {
    type Inner = T;
    fn unwrap_static(self) -> T {
        self.0
    }
}

impl<T> Unwrap for Option<Static<T>> {
    type Inner = Option<T>;
    fn unwrap_static(self) -> Option<T> {
        self.map(|s| s.0)
    }
}

impl<T> Unwrap for Vec<Static<T>> {
    type Inner = Vec<T>;
    fn unwrap_static(self) -> Vec<T> {
        self.into_iter().map(|s| s.0).collect()
    }
}

/// An account as the generated code takes it.
pub fn account32(who: &fastdata_primitives::AccountId) -> subxt::utils::AccountId32 {
    subxt::utils::AccountId32(*who.as_ref())
}

/// An account from the generated code as the runtime's own type.
pub fn account_id(who: &subxt::utils::AccountId32) -> fastdata_primitives::AccountId {
    fastdata_primitives::AccountId::new(who.0)
}

/// The `MultiAddress` form of an account, as calls taking an `AccountIdLookup` want it.
pub fn lookup(
    who: &fastdata_primitives::AccountId,
) -> subxt::utils::MultiAddress<subxt::utils::AccountId32, ()> {
    subxt::utils::MultiAddress::Id(account32(who))
}

/// A byte string as a generated `BoundedVec<u8, _>` argument.
pub fn bounded(
    bytes: impl Into<Vec<u8>>,
) -> fastdata::runtime_types::bounded_collections::bounded_vec::BoundedVec<u8> {
    fastdata::runtime_types::bounded_collections::bounded_vec::BoundedVec(bytes.into())
}

/// Splits the events of a `Utility::force_batch` transaction of `calls` calls by call, in
/// order: the events a call emitted before its `Utility::ItemCompleted` (the first call's
/// include the fee withdrawal before it), or the text of its `Utility::ItemFailed` error
/// (`describe` renders the error). A call the events say nothing about (they ended early)
/// fails with a note saying so.
pub fn batch_items(
    events: &[RuntimeEvent],
    calls: usize,
    describe: impl Fn(&RuntimeDispatchError) -> String,
) -> Vec<Result<Vec<RuntimeEvent>, String>> {
    use fastdata::utility::Event as U;
    let mut items = Vec::with_capacity(calls);
    let mut current = Vec::new();
    for event in events {
        if items.len() == calls {
            break;
        }
        match event {
            RuntimeEvent::Utility(U::ItemCompleted) => items.push(Ok(std::mem::take(&mut current))),
            RuntimeEvent::Utility(U::ItemFailed { error }) => {
                current.clear();
                items.push(Err(describe(error)));
            }
            RuntimeEvent::Utility(
                U::BatchCompleted | U::BatchCompletedWithErrors | U::BatchInterrupted { .. },
            ) => break,
            _ => current.push(event.clone()),
        }
    }
    while items.len() < calls {
        items.push(Err("no outcome for this call in the batch's events".into()));
    }
    items
}

/// The result of each of `calls` from their `Utility::force_batch` transaction `batch`
/// ([`batch_items`]): the batch transaction with the call's own events, or the call's
/// [`Error::Dispatch`] (`names` gives each call's `Pallet::call`, `describe` renders an error).
pub fn batch_results(
    batch: &Included,
    names: &[String],
    describe: impl Fn(&RuntimeDispatchError) -> String,
) -> Vec<Result<Included, Error>> {
    let items = batch_items(&batch.events, names.len(), describe);
    names
        .iter()
        .zip(items)
        .map(|(name, item)| match item {
            Ok(events) => Ok(Included {
                extrinsic_hash: batch.extrinsic_hash,
                block_hash: batch.block_hash,
                block_number: batch.block_number,
                nonce: batch.nonce,
                finalized: batch.finalized,
                events,
            }),
            Err(text) => Err(Error::Dispatch {
                error: format!("{name} failed with {text}"),
            }),
        })
        .collect()
}

/// The text of a failed dispatch: `Pallet::Error` with its docs where the metadata has them.
fn dispatch_text(failure: &subxt::error::DispatchError) -> String {
    let mut text = failure.to_string();
    if let subxt::error::DispatchError::Module(module) = failure {
        if let Ok(details) = module.details() {
            let docs = details.variant.docs.join(" ");
            if !docs.is_empty() {
                text = format!("{text}: {docs}");
            }
        }
    }
    text
}

/// The type id of the runtime's `DispatchError` in `metadata`.
fn dispatch_error_type(metadata: &subxt::metadata::Metadata) -> Option<u32> {
    metadata
        .types()
        .types
        .iter()
        .find_map(|t| (t.ty.path.segments == ["sp_runtime", "DispatchError"]).then_some(t.id))
}

/// The text of a dispatch error reported in an event (e.g. `Utility::ItemFailed`): the
/// `Pallet::Error` with its docs, as `metadata` names it.
pub fn describe_dispatch_error(
    error: &RuntimeDispatchError,
    metadata: &subxt::metadata::ArcMetadata,
) -> String {
    let Some(ty) = dispatch_error_type(metadata) else {
        return format!("{error:?}");
    };
    match error.encode_as_type(ty, metadata.types()) {
        Ok(bytes) => match subxt::error::DispatchError::decode_from(&bytes[..], metadata.clone()) {
            Ok(failure) => dispatch_text(&failure),
            Err(_) => format!("{error:?}"),
        },
        Err(_) => format!("{error:?}"),
    }
}

/// `Pallet::call` of a runtime call, by its pallet and call index in `metadata`.
pub fn call_name(call: &RuntimeCall, metadata: &subxt::metadata::Metadata) -> String {
    let bytes = call
        .encode_as_type(metadata.outer_enums().call_enum_ty(), metadata.types())
        .unwrap_or_default();
    let (Some(&pallet), Some(&index)) = (bytes.first(), bytes.get(1)) else {
        return "a call".into();
    };
    match metadata.pallet_by_call_index(pallet) {
        Some(p) => match p.call_variant_by_index(index) {
            Some(v) => format!("{}::{}", p.name(), v.name),
            None => format!("{}::call #{index}", p.name()),
        },
        None => format!("pallet #{pallet} call #{index}"),
    }
}

/// A transaction handed to the node, not yet in a block.
struct Pending {
    /// `Pallet::call`, for messages.
    what: String,
    /// The nonce it was signed with.
    nonce: u64,
    /// Its account's nonce slot.
    slot: NonceSlot,
    /// Its status reports.
    progress: subxt::tx::TransactionProgress<
        FastDataConfig,
        subxt::client::OnlineClientAtBlockImpl<FastDataConfig>,
    >,
}

/// The result of each of `calls` calls whose batch transaction was not included.
fn not_included(calls: usize, error: &Error) -> Vec<Result<Included, Error>> {
    (0..calls)
        .map(|_| {
            Err(Error::Chain(format!(
                "its batch transaction was not included: {error}"
            )))
        })
        .collect()
}

/// A node connection with an acting account.
#[derive(Clone)]
pub struct FastData {
    client: Client,
    rpc: Rpc,
    account: Account,
}

impl FastData {
    /// Connects to `url` and acts as `account`.
    pub async fn connect(url: &str, account: Account) -> Result<Self, Error> {
        let cannot_connect = |e: &dyn std::fmt::Display| {
            Error::Chain(format!(
                "cannot connect to {url}: {e}; is fastdata-node running (scripts/demo)?"
            ))
        };
        let rpc = subxt::rpcs::RpcClient::from_insecure_url(url)
            .await
            .map_err(|e| cannot_connect(&e))?;
        let client = Client::from_rpc_client(rpc.clone())
            .await
            .map_err(|e| cannot_connect(&e))?;
        Ok(Self::new(client, rpc, account))
    }

    /// Uses an existing client and the RPC connection it was built on (see [`Self::connect`]).
    pub fn new(client: Client, rpc: subxt::rpcs::RpcClient, account: Account) -> Self {
        Self {
            client,
            rpc: Rpc::new(rpc),
            account,
        }
    }

    /// The same connection acting as another account.
    pub fn as_account(&self, account: Account) -> Self {
        Self {
            client: self.client.clone(),
            rpc: self.rpc.clone(),
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
        let at = self.current_block().await?;
        Ok(at.block_number() as BlockNumber)
    }

    /// The acting account's next nonce as the node's pool sees it: its nonce at the best
    /// block plus its transactions ready in the pool.
    pub async fn pool_nonce(&self) -> Result<u64, Error> {
        let id = subxt::utils::AccountId32(*self.account.account_id().as_ref());
        self.rpc
            .system_account_next_index(&id)
            .await
            .map_err(|e| Error::Chain(format!("system_accountNextIndex: {e}")))
    }

    /// Signs `tx` (a generated payload, `fastdata::tx()…`) as the acting account, submits it
    /// and waits until it is in a block ([`Wait::InBlock`]; see the module docs). A failed
    /// dispatch is an [`Error::Dispatch`] naming the pallet error. Other transactions of the
    /// account from this process are not held up meanwhile.
    pub async fn submit<P: Payload>(&self, tx: P) -> Result<Included, Error> {
        self.submit_with(tx, Wait::InBlock).await
    }

    /// [`Self::submit`], waiting until the transaction's block is finalized.
    pub async fn submit_finalized<P: Payload>(&self, tx: P) -> Result<Included, Error> {
        self.submit_with(tx, Wait::Finalized).await
    }

    /// [`Self::submit`], waiting as `wait` says.
    pub async fn submit_with<P: Payload>(&self, tx: P, wait: Wait) -> Result<Included, Error> {
        let pending = self.send(&tx).await?;
        self.watch(pending, wait).await
    }

    /// Signs `tx` with the account's next nonce (see the module docs) and hands it to the
    /// node, holding the account's nonce lock only meanwhile.
    async fn send<P: Payload>(&self, tx: &P) -> Result<Pending, Error> {
        let what = format!("{}::{}", tx.pallet_name(), tx.call_name());
        // Signed against the finalized block: its hash anchors the mortality.
        let at = self.current_block().await?;
        let slot = nonce_slot(self.genesis(), &self.account.account_id());
        let mut local = slot.lock().await;
        let nonce = next_nonce(self.pool_nonce().await?, *local);
        let params = subxt::config::SubstrateExtrinsicParamsBuilder::<FastDataConfig>::new()
            .nonce(nonce)
            .mortal_from_unchecked(MORTALITY_BLOCKS, at.block_number(), at.block_hash())
            .build();
        let submitted = async {
            at.transactions()
                .create_signable_offline(tx, params)?
                .sign(&self.account)?
                .submit_and_watch()
                .await
        }
        .await;
        match submitted {
            Ok(progress) => {
                *local = Some(nonce + 1);
                drop(local);
                Ok(Pending {
                    what,
                    nonce,
                    slot,
                    progress,
                })
            }
            Err(e) => {
                *local = None;
                Err(Error::Chain(format!(
                    "{what} (nonce {nonce}) not submitted: {e}"
                )))
            }
        }
    }

    /// The client at the latest finalized block. Under load the node sometimes names a new
    /// finalized block before it serves that block's header (seen with 20 transactions of one
    /// account in flight); such a read is repeated a few times, each time at the then latest
    /// finalized block.
    pub async fn current_block(&self) -> Result<AtBlock, Error> {
        let mut attempt = 0u64;
        loop {
            match self.client.at_current_block().await {
                Err(subxt::error::OnlineClientAtBlockError::BlockHeaderNotFound { block_hash })
                    if attempt < 8 =>
                {
                    attempt += 1;
                    tracing::debug!("finalized block {block_hash:?} not served yet; retrying");
                    tokio::time::sleep(std::time::Duration::from_millis(100 * attempt)).await;
                }
                result => return Ok(result?),
            }
        }
    }

    /// Follows a transaction handed to the node until it is in a block as `wait` says. One
    /// the pool drops or declares invalid resets the account's nonce counter.
    async fn watch(&self, pending: Pending, wait: Wait) -> Result<Included, Error> {
        use subxt::tx::TransactionStatus as S;
        let Pending {
            what,
            nonce,
            slot,
            mut progress,
        } = pending;
        // Its inclusion in a best block, returned unless finality follows within the grace.
        let mut best: Option<Included> = None;
        loop {
            let next = match best.take() {
                None => progress.next().await,
                Some(included) => {
                    match tokio::time::timeout(FINALITY_GRACE, progress.next()).await {
                        Ok(next) => {
                            best = Some(included);
                            next
                        }
                        Err(_) => return Ok(included),
                    }
                }
            };
            let failure = match next {
                Some(Ok(S::InBestBlock(in_block))) if wait == Wait::InBlock => {
                    match self.included(&in_block, &what, nonce, false).await {
                        Ok(included) => best = Some(included),
                        Err(e @ Error::Dispatch { .. }) => return Err(e),
                        // Read again at finalization.
                        Err(e) => tracing::debug!("{what}: events in a best block: {e}"),
                    }
                    continue;
                }
                Some(Ok(S::InFinalizedBlock(in_block))) => {
                    if let Some(mut included) = best.take() {
                        if included.block_hash == in_block.block_hash().0 {
                            included.finalized = true;
                            return Ok(included);
                        }
                    }
                    return self.included_finalized(&in_block, &what, nonce).await;
                }
                Some(Ok(S::NoLongerInBestBlock)) => {
                    best = None;
                    continue;
                }
                Some(Ok(S::Invalid { message })) => format!("is not valid: {message}"),
                Some(Ok(S::Dropped { message })) => format!("was Dropped by the pool: {message}"),
                Some(Ok(S::Error { message })) => format!("failed in the pool: {message}"),
                Some(Ok(_)) => continue,
                Some(Err(e)) => format!("lost track: {e}"),
                None => "lost track: the node ended its status reports".into(),
            };
            if let Some(included) = best {
                return Ok(included);
            }
            // A gap or a stale nonce: the account's next transaction reads it from the node.
            *slot.lock().await = None;
            return Err(Error::Chain(format!(
                "{what} (nonce {nonce}) {failure}; not resubmitted (the account's next \
                 transaction reads its nonce from the node again)"
            )));
        }
    }

    /// [`Self::included`] for a finalized block, read again a few times while the node
    /// cannot serve it yet (under load it sometimes cannot find a new block's header).
    async fn included_finalized(
        &self,
        in_block: &subxt::tx::TransactionInBlock<
            FastDataConfig,
            subxt::client::OnlineClientAtBlockImpl<FastDataConfig>,
        >,
        what: &str,
        nonce: u64,
    ) -> Result<Included, Error> {
        let mut attempt = 0u64;
        loop {
            match self.included(in_block, what, nonce, true).await {
                // Up to about 9 s in all: under load with many transactions in flight, a
                // finalized block's header was once not served for more than 2.5 s.
                Err(e) if !matches!(e, Error::Dispatch { .. }) && attempt < 8 => {
                    attempt += 1;
                    tracing::debug!("{what}: events not readable yet ({e}); retrying");
                    tokio::time::sleep(std::time::Duration::from_millis(250 * attempt)).await;
                }
                result => return result,
            }
        }
    }

    /// The outcome of a transaction in `in_block`: its events, or the dispatch error.
    async fn included(
        &self,
        in_block: &subxt::tx::TransactionInBlock<
            FastDataConfig,
            subxt::client::OnlineClientAtBlockImpl<FastDataConfig>,
        >,
        what: &str,
        nonce: u64,
        finalized: bool,
    ) -> Result<Included, Error> {
        let at = in_block.at().await?;
        let events = in_block.wait_for_success().await.map_err(|e| match e {
            subxt::error::TransactionEventsError::ExtrinsicFailed(failure) => Error::Dispatch {
                error: format!("{what} failed with {}", dispatch_text(&failure)),
            },
            other => Error::Chain(format!("{what}: {other}")),
        })?;
        let mut out = Vec::new();
        for event in events.iter() {
            out.push(event?.decode_as::<RuntimeEvent>()?);
        }
        Ok(Included {
            extrinsic_hash: events.extrinsic_hash().0,
            block_hash: in_block.block_hash().0,
            block_number: at.block_number() as BlockNumber,
            nonce,
            finalized,
            events: out,
        })
    }

    /// Submits `calls` as `Utility::force_batch` transactions of at most [`MAX_BATCH_CALLS`]
    /// calls each, signed in order (so they apply in order) and then all in flight at once,
    /// waiting as `wait` says. Returns one result per call, in order: its batch transaction
    /// with the call's own events ([`batch_results`]), or the call's error
    /// ([`Error::Dispatch`] naming the pallet error). A batch transaction that was not
    /// included fails each of its calls with an [`Error::Chain`].
    pub async fn submit_batch(
        &self,
        calls: &[RuntimeCall],
        wait: Wait,
    ) -> Vec<Result<Included, Error>> {
        if calls.is_empty() {
            return Vec::new();
        }
        let metadata = match self.current_block().await {
            Ok(at) => at.metadata(),
            Err(e) => return not_included(calls.len(), &e),
        };
        let mut sent = Vec::new();
        for chunk in calls.chunks(MAX_BATCH_CALLS) {
            let tx = fastdata::tx().utility().force_batch(chunk.to_vec());
            sent.push((chunk, self.send(&tx).await));
        }
        let watched = sent.into_iter().map(|(chunk, pending)| {
            let metadata = &metadata;
            async move {
                let batch = match pending {
                    Ok(pending) => self.watch(pending, wait).await,
                    Err(e) => Err(e),
                };
                match batch {
                    Ok(batch) => {
                        let names: Vec<String> =
                            chunk.iter().map(|c| call_name(c, metadata)).collect();
                        batch_results(&batch, &names, |error| {
                            describe_dispatch_error(error, metadata)
                        })
                    }
                    Err(e) => not_included(chunk.len(), &e),
                }
            }
        });
        futures_util::future::join_all(watched)
            .await
            .into_iter()
            .flatten()
            .collect()
    }

    /// Submits `calls` as one `Utility::batch_all` transaction: all of them apply, in order,
    /// or none does (the error names the failing call's pallet error). Returns when it is
    /// included as `wait` says, with the events of every call.
    pub async fn submit_all(&self, calls: &[RuntimeCall], wait: Wait) -> Result<Included, Error> {
        let tx = fastdata::tx().utility().batch_all(calls.to_vec());
        self.submit_with(tx, wait).await
    }

    /// Calls a runtime API (a generated payload, `fastdata::apis()…`) at the last finalized
    /// block.
    pub async fn api<P: ApiPayload>(&self, call: P) -> Result<P::ReturnType, Error> {
        let at = self.current_block().await?;
        api_at(&at, call).await
    }

    /// Sends `amount` planck to `to` (`Balances::transfer_keep_alive`).
    pub async fn transfer(
        &self,
        to: &fastdata_primitives::AccountId,
        amount: fastdata_primitives::Balance,
    ) -> Result<Included, Error> {
        self.submit(
            fastdata::tx()
                .balances()
                .transfer_keep_alive(lookup(to), amount),
        )
        .await
    }

    /// The free balance of `who` at the last finalized block (0 for an unknown account).
    pub async fn free_balance(
        &self,
        who: &fastdata_primitives::AccountId,
    ) -> Result<fastdata_primitives::Balance, Error> {
        let at = self.current_block().await?;
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

/// Calls a runtime API (a generated payload, `fastdata::apis()…`) at block `at`.
pub async fn api_at<P: ApiPayload>(at: &AtBlock, call: P) -> Result<P::ReturnType, Error> {
    let what = format!("{}_{}", call.trait_name(), call.method_name());
    at.runtime_apis()
        .call(call)
        .await
        .map_err(|e| Error::Chain(format!("runtime API {what}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use fastdata::{escrow::Event as E, utility::Event as U};

    fn purchased(purchase: u64) -> RuntimeEvent {
        RuntimeEvent::Escrow(E::KeysDelivered {
            purchase,
            epoch: 0,
            deposit: 1,
        })
    }

    #[test]
    fn events_are_found_by_their_generated_variant() {
        let included = Included {
            extrinsic_hash: [0; 32],
            block_hash: [0; 32],
            block_number: 1,
            nonce: 0,
            finalized: true,
            events: vec![RuntimeEvent::Utility(U::ItemCompleted), purchased(7)],
        };
        let delivered = |e: &RuntimeEvent| match e {
            RuntimeEvent::Escrow(E::KeysDelivered { purchase, .. }) => Some(*purchase),
            _ => None,
        };
        assert_eq!(
            included.event("Escrow::KeysDelivered", delivered).unwrap(),
            7
        );
        let refunded = |e: &RuntimeEvent| match e {
            RuntimeEvent::Escrow(E::RefundedForMissingKeys { purchase, .. }) => Some(*purchase),
            _ => None,
        };
        let missing = included
            .event("Escrow::RefundedForMissingKeys", refunded)
            .unwrap_err();
        assert!(
            missing
                .to_string()
                .contains("no Escrow::RefundedForMissingKeys event"),
            "{missing}"
        );
    }

    #[test]
    fn nonces_come_from_the_pool_unless_this_process_is_ahead() {
        assert_eq!(next_nonce(5, None), 5);
        // Handed out 5..=7 that the pool does not count yet.
        assert_eq!(next_nonce(5, Some(8)), 8);
        // Another process (or a block) moved the account on.
        assert_eq!(next_nonce(9, Some(8)), 9);
    }

    #[test]
    fn batch_events_split_by_call() {
        let describe = |error: &RuntimeDispatchError| format!("error {error:?}");
        let failed = RuntimeDispatchError::BadOrigin;
        let events = vec![
            purchased(1),
            purchased(10),
            RuntimeEvent::Utility(U::ItemCompleted),
            RuntimeEvent::Utility(U::ItemFailed {
                error: failed.clone(),
            }),
            purchased(11),
            purchased(12),
            RuntimeEvent::Utility(U::ItemCompleted),
            RuntimeEvent::Utility(U::BatchCompletedWithErrors),
            purchased(99),
        ];
        let ids = |events: &[RuntimeEvent]| -> Vec<u64> {
            events
                .iter()
                .filter_map(|e| match e {
                    RuntimeEvent::Escrow(E::KeysDelivered { purchase, .. }) => Some(*purchase),
                    _ => None,
                })
                .collect()
        };
        let items = batch_items(&events, 3, describe);
        assert_eq!(items.len(), 3);
        assert_eq!(ids(items[0].as_ref().unwrap()), [1, 10]);
        assert_eq!(items[1].as_ref().unwrap_err(), "error BadOrigin");
        assert_eq!(ids(items[2].as_ref().unwrap()), [11, 12]);
        // Events that end early leave the rest of the calls without an outcome.
        let short = batch_items(&events[..3], 2, describe);
        assert!(short[0].is_ok());
        assert!(short[1].as_ref().unwrap_err().contains("no outcome"));
        // Nothing after the batch's end is a call's event.
        let all_ok = vec![
            RuntimeEvent::Utility(U::ItemCompleted),
            RuntimeEvent::Utility(U::BatchCompleted),
            purchased(5),
        ];
        let items = batch_items(&all_ok, 1, describe);
        assert_eq!(items.len(), 1);
        assert!(items[0].as_ref().unwrap().is_empty());
    }
}

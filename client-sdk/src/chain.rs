//! The connection to a FAST DATA node and the account acting through it.
//!
//! Transactions are submitted by pallet and call name with their arguments SCALE-encoded by
//! the runtime's own types from `fastdata-primitives` (wrapped in [`Static`]). Runtime APIs
//! (`OffersApi`, `EscrowApi`, `DidApi`, `TrustApi`, `OperatorsApi`) are called by name and
//! their answers decoded into the same types; reads are made at the last finalized block.
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

use codec::{Decode, Encode};
use fastdata_primitives::BlockNumber;
use sp_core::H256;
use subxt::{ext::scale_encode::EncodeAsFields, utils::Static};

use crate::{account::Account, error::Error, identity::RawCall, Client, FastDataConfig};

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

/// One call of a batch: pallet, call and its SCALE-encoded arguments (as
/// [`FastData::encode_call`] takes them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatchCall {
    /// Pallet name, e.g. `Escrow`.
    pub pallet: String,
    /// Call name, e.g. `deliver_keys`.
    pub call: String,
    /// The SCALE encoding of its arguments, in order.
    pub args: Vec<u8>,
}

impl BatchCall {
    /// `pallet::call` with the arguments `args` (a tuple, encoded field after field).
    pub fn new(pallet: &str, call: &str, args: impl Encode) -> Self {
        Self {
            pallet: pallet.into(),
            call: call.into(),
            args: args.encode(),
        }
    }
}

/// Splits the events of a `Utility::force_batch` transaction of `calls` calls by call, in
/// order: the events a call emitted before its `Utility::ItemCompleted` (the first call's
/// include the fee withdrawal before it), or the text of its `Utility::ItemFailed` error
/// (`describe` renders the SCALE-encoded `DispatchError`). A call the events say nothing about
/// (they ended early) fails with a note saying so.
pub fn batch_items(
    events: &[RawEvent],
    calls: usize,
    describe: impl Fn(&[u8]) -> String,
) -> Vec<Result<Vec<RawEvent>, String>> {
    let mut items = Vec::with_capacity(calls);
    let mut current = Vec::new();
    for event in events {
        if items.len() == calls {
            break;
        }
        match (event.pallet.as_str(), event.name.as_str()) {
            ("Utility", "ItemCompleted") => items.push(Ok(std::mem::take(&mut current))),
            ("Utility", "ItemFailed") => {
                current.clear();
                items.push(Err(describe(&event.fields)));
            }
            ("Utility", "BatchCompleted" | "BatchCompletedWithErrors" | "BatchInterrupted") => {
                break
            }
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
/// [`Error::Dispatch`] (`describe` renders the SCALE-encoded `DispatchError`).
pub fn batch_results(
    batch: &Included,
    calls: &[BatchCall],
    describe: impl Fn(&[u8]) -> String,
) -> Vec<Result<Included, Error>> {
    let items = batch_items(&batch.events, calls.len(), describe);
    calls
        .iter()
        .zip(items)
        .map(|(call, item)| match item {
            Ok(events) => Ok(Included {
                extrinsic_hash: batch.extrinsic_hash,
                block_hash: batch.block_hash,
                block_number: batch.block_number,
                nonce: batch.nonce,
                finalized: batch.finalized,
                events,
            }),
            Err(text) => Err(Error::Dispatch {
                error: format!("{}::{} failed with {text}", call.pallet, call.call),
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

/// The text of a SCALE-encoded `DispatchError` (e.g. of `Utility::ItemFailed`).
fn describe_dispatch_error(bytes: &[u8], metadata: &subxt::metadata::ArcMetadata) -> String {
    match subxt::error::DispatchError::decode_from(bytes, metadata.clone()) {
        Ok(failure) => dispatch_text(&failure),
        Err(e) => format!("undecodable dispatch error 0x{} ({e})", hex::encode(bytes)),
    }
}

/// Encodes `pallet::call` with SCALE-encoded `args` as a `RuntimeCall` of the runtime
/// described by `metadata` (pallet index, call index, arguments).
pub fn encode_call(
    metadata: &subxt::metadata::Metadata,
    pallet: &str,
    call: &str,
    args: &[u8],
) -> Result<Vec<u8>, Error> {
    let p = metadata
        .pallet_by_name(pallet)
        .ok_or_else(|| Error::NotFound(format!("the runtime has no pallet {pallet}")))?;
    let c = p
        .call_variant_by_name(call)
        .ok_or_else(|| Error::NotFound(format!("pallet {pallet} has no call {call}")))?;
    let mut out = vec![p.call_index(), c.index];
    out.extend_from_slice(args);
    Ok(out)
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

    /// Signs `pallet::call(data)` as the acting account, submits it and waits until it is in
    /// a block ([`Wait::InBlock`]; see the module docs). A failed dispatch is an
    /// [`Error::Dispatch`] naming the pallet error. Other transactions of the account from
    /// this process are not held up meanwhile.
    pub async fn submit<CallData: EncodeAsFields>(
        &self,
        pallet: &str,
        call: &str,
        data: CallData,
    ) -> Result<Included, Error> {
        self.submit_with(pallet, call, data, Wait::InBlock).await
    }

    /// [`Self::submit`], waiting until the transaction is finalized.
    pub async fn submit_finalized<CallData: EncodeAsFields>(
        &self,
        pallet: &str,
        call: &str,
        data: CallData,
    ) -> Result<Included, Error> {
        self.submit_with(pallet, call, data, Wait::Finalized).await
    }

    /// [`Self::submit`], waiting as `wait` says.
    pub async fn submit_with<CallData: EncodeAsFields>(
        &self,
        pallet: &str,
        call: &str,
        data: CallData,
        wait: Wait,
    ) -> Result<Included, Error> {
        let pending = self.send(pallet, call, data).await?;
        self.watch(pending, wait).await
    }

    /// Signs `pallet::call(data)` with the account's next nonce (see the module docs) and
    /// hands it to the node, holding the account's nonce lock only meanwhile.
    async fn send<CallData: EncodeAsFields>(
        &self,
        pallet: &str,
        call: &str,
        data: CallData,
    ) -> Result<Pending, Error> {
        let what = format!("{pallet}::{call}");
        let tx = subxt::dynamic::tx(pallet, call, data);
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
                .create_signable_offline(&tx, params)?
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
            let event = event?;
            out.push(RawEvent {
                pallet: event.pallet_name().to_owned(),
                name: event.event_name().to_owned(),
                fields: event.field_bytes().to_vec(),
            });
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
        calls: &[BatchCall],
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
            let encoded = chunk
                .iter()
                .map(|c| encode_call(&metadata, &c.pallet, &c.call, &c.args).map(RawCall))
                .collect::<Result<Vec<_>, _>>();
            let pending = match encoded {
                Ok(encoded) => self.send("Utility", "force_batch", (arg(encoded),)).await,
                Err(e) => Err(e),
            };
            sent.push((chunk, pending));
        }
        let watched = sent.into_iter().map(|(chunk, pending)| {
            let metadata = &metadata;
            async move {
                let batch = match pending {
                    Ok(pending) => self.watch(pending, wait).await,
                    Err(e) => Err(e),
                };
                match batch {
                    Ok(batch) => batch_results(&batch, chunk, |bytes| {
                        describe_dispatch_error(bytes, metadata)
                    }),
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
    pub async fn submit_all(&self, calls: &[BatchCall], wait: Wait) -> Result<Included, Error> {
        let metadata = self.current_block().await?.metadata();
        let encoded = calls
            .iter()
            .map(|c| encode_call(&metadata, &c.pallet, &c.call, &c.args).map(RawCall))
            .collect::<Result<Vec<_>, _>>()?;
        let pending = self.send("Utility", "batch_all", (arg(encoded),)).await?;
        self.watch(pending, wait).await
    }

    /// Calls runtime API `method` (e.g. `OffersApi_offers`) with SCALE-encoded `args` at the
    /// last finalized block and decodes the answer as `R`.
    pub async fn runtime_api<R: Decode>(
        &self,
        method: &str,
        args: impl Encode,
    ) -> Result<R, Error> {
        let at = self.current_block().await?;
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

    /// Reads raw storage at the last finalized block (`None` if absent).
    pub async fn storage_raw(&self, key: Vec<u8>) -> Result<Option<Vec<u8>>, Error> {
        let at = self.current_block().await?;
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
    ("Utility", "force_batch", &["calls"]),
    ("Utility", "batch_all", &["calls"]),
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
    (
        "Offers",
        "create_offer_with_stream",
        &[
            "topic",
            "mode",
            "price",
            "terms",
            "name",
            "timestamp",
            "commitment",
        ],
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
    ("Operators", "pause", &[]),
    ("Operators", "leave", &[]),
    ("Operators", "withdraw", &[]),
    ("Operators", "bond_extra", &["amount"]),
    ("Operators", "heartbeat", &[]),
    ("Operators", "attest_heads", &["heads"]),
    (
        "Operators",
        "fund_hosting",
        &["stream", "quota_mb", "amount"],
    ),
    (
        "Operators",
        "report_equivocation",
        &["operator", "first", "second"],
    ),
    ("Trust", "rate", &["purchase", "score", "comment"]),
];

/// Every event the SDK decodes: pallet, event, the leading fields it reads.
pub const EVENTS: &[(&str, &str, &[&str])] = &[
    ("Did", "CredentialAttested", &["subject", "issuer", "id"]),
    ("Offers", "OfferCreated", &["offer"]),
    ("Offers", "StreamRegistered", &["stream", "offer", "seller"]),
    ("Offers", "EpochRotated", &["stream", "epoch"]),
    ("Escrow", "Purchased", &["purchase"]),
    (
        "Escrow",
        "ReceiptClaimed",
        &["purchase", "operator", "up_to_sequence", "bytes", "accrued"],
    ),
    ("Utility", "ItemCompleted", &[]),
    ("Utility", "ItemFailed", &["error"]),
    ("Utility", "BatchCompleted", &[]),
    ("Utility", "BatchCompletedWithErrors", &[]),
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

    fn event(pallet: &str, name: &str, fields: Vec<u8>) -> RawEvent {
        RawEvent {
            pallet: pallet.into(),
            name: name.into(),
            fields,
        }
    }

    #[test]
    fn events_decode_leading_fields() {
        let included = Included {
            extrinsic_hash: [0; 32],
            block_hash: [0; 32],
            block_number: 1,
            nonce: 0,
            finalized: true,
            events: vec![event(
                "Escrow",
                "Purchased",
                (7u64, 3u64, [1u8; 32]).encode(),
            )],
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
    fn nonces_come_from_the_pool_unless_this_process_is_ahead() {
        assert_eq!(next_nonce(5, None), 5);
        // Handed out 5..=7 that the pool does not count yet.
        assert_eq!(next_nonce(5, Some(8)), 8);
        // Another process (or a block) moved the account on.
        assert_eq!(next_nonce(9, Some(8)), 9);
    }

    #[test]
    fn batch_events_split_by_call() {
        let describe = |bytes: &[u8]| format!("error {}", hex::encode(bytes));
        let events = vec![
            event("Balances", "Withdraw", vec![1]),
            event("Escrow", "KeysDelivered", vec![10]),
            event("Utility", "ItemCompleted", vec![]),
            event("Utility", "ItemFailed", vec![3, 4]),
            event("Escrow", "KeysDelivered", vec![11]),
            event("Escrow", "PurchaseActivated", vec![11]),
            event("Utility", "ItemCompleted", vec![]),
            event("Utility", "BatchCompletedWithErrors", vec![]),
            event("TransactionPayment", "TransactionFeePaid", vec![]),
            event("System", "ExtrinsicSuccess", vec![]),
        ];
        let items = batch_items(&events, 3, describe);
        assert_eq!(items.len(), 3);
        let first = items[0].as_ref().unwrap();
        assert_eq!(first.len(), 2, "the fee withdrawal and the call's event");
        assert_eq!(first[1].fields, vec![10]);
        assert_eq!(items[1], Err("error 0304".into()));
        let third = items[2].as_ref().unwrap();
        assert_eq!(
            third.iter().map(|e| e.name.as_str()).collect::<Vec<_>>(),
            ["KeysDelivered", "PurchaseActivated"]
        );
        // Events that end early leave the rest of the calls without an outcome.
        let short = batch_items(&events[..3], 2, |_| String::new());
        assert!(short[0].is_ok());
        assert!(short[1].as_ref().unwrap_err().contains("no outcome"));
        // Nothing after the batch's end is a call's event.
        let all_ok = vec![
            event("Utility", "ItemCompleted", vec![]),
            event("Utility", "BatchCompleted", vec![]),
            event("System", "ExtrinsicSuccess", vec![]),
        ];
        assert_eq!(batch_items(&all_ok, 1, |_| String::new()), vec![Ok(vec![])]);
    }

    #[test]
    fn storage_key_layout() {
        let key = double_map_key("Offers", "EpochCommitments", &[7; 32], &5u32.encode());
        assert_eq!(key.len(), 16 + 16 + 16 + 32 + 8 + 4);
        assert_eq!(&key[..16], &sp_io::hashing::twox_128(b"Offers"));
        assert_eq!(&key[key.len() - 4..], &5u32.to_le_bytes());
    }
}

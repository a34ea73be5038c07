//! Durable storage in one redb database: segments, anti-replay nonces, receipts, claims and
//! the broker gate's decisions.
//!
//! # Durability
//!
//! Every write is a redb write transaction committed with [`Durability::Immediate`]: when
//! `commit()` returns, the data and the new root are fsync'ed, and a crash at any point (kill
//! -9, power loss) leaves either the old or the new state, never a mix. The ingest path acks a
//! QoS 1 message to the broker only after the transaction holding it committed (see
//! `ingest.rs`), so an acknowledged segment is on disk; an unacknowledged one is redelivered by
//! the broker from the daemon's persistent session.
//!
//! # Layout
//!
//! | table      | key                                  | value                              |
//! |------------|--------------------------------------|------------------------------------|
//! | `segments` | stream (32) ‖ sequence (u64 BE)      | stored-at block (u32 BE) ‖ envelope |
//! | `nonces`   | context bytes (kind ‖ signer ‖ …)    | last accepted nonce                |
//! | `receipts` | purchase id                          | SCALE `(Receipt, Signature)`        |
//! | `claimed`  | purchase id                          | nonce of the last receipt claimed   |
//! | `served`   | purchase id                          | highest sequence served over HTTP   |
//! | `gate_logins` | minted broker username            | encoded by the gate ([`GateTable`]) |
//! | `gate_sessions` | gate-encoded session key         | encoded by the gate                 |
//! | `handovers` | block (u32 BE) ‖ stream (32) ‖ from (32) ‖ to (32) | `()`                    |
//!
//! Big-endian sequence numbers make the byte order of keys the order of `(stream, sequence)`,
//! so a range read is one B-tree scan.
//!
//! Every committed segment or receipt write wakes [`Store::changed`] (the receipt-window
//! enforcement of live subscribers waits on it).

use std::path::Path;

use fastdata_primitives::{AccountId, BlockNumber, PurchaseId, Sequence, StreamId};
use redb::{Database, Durability, ReadableTable, ReadableTableMetadata, TableDefinition};

use crate::chain::{Handover, MAX_HANDOVERS_PER_STREAM};

const SEGMENTS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("segments");
const NONCES: TableDefinition<&[u8], u64> = TableDefinition::new("nonces");
const RECEIPTS: TableDefinition<u64, &[u8]> = TableDefinition::new("receipts");
const CLAIMED: TableDefinition<u64, u64> = TableDefinition::new("claimed");
const SERVED: TableDefinition<u64, u64> = TableDefinition::new("served");
/// Envelope bytes stored per stream (the hosting quota counts them).
const STREAM_BYTES: TableDefinition<&[u8], u64> = TableDefinition::new("stream_bytes");
/// Per stream, one past the highest sequence ever deleted (retention or release). Those
/// sequences are never stored again: the operator signs what it serves, and must never
/// serve two contents for one segment (a seller re-uploading a deleted sequence with other
/// bytes would otherwise make an honest operator equivocate).
const DELETED_BELOW: TableDefinition<&[u8], u64> = TableDefinition::new("deleted_below");
/// Broker logins the gate minted (VerneMQ), so they keep working after a restart.
const GATE_LOGINS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("gate_logins");
/// Broker sessions the gate admitted (VerneMQ), so they are still revoked after a restart.
const GATE_SESSIONS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("gate_sessions");
/// Streams handed over to or from this operator (the chain says so only in block events),
/// oldest first, so a restart still knows whom to backfill from and whom to serve.
const HANDOVERS: TableDefinition<&[u8], ()> = TableDefinition::new("handovers");

/// Most handovers stored; the oldest go first (they are pruned after the keep period anyway).
pub const MAX_STORED_HANDOVERS: usize = 4096;

const HANDOVER_KEY_LEN: usize = 4 + 32 + 32 + 32;

fn handover_key(h: &Handover) -> [u8; HANDOVER_KEY_LEN] {
    let mut key = [0u8; HANDOVER_KEY_LEN];
    key[..4].copy_from_slice(&h.at.to_be_bytes());
    key[4..36].copy_from_slice(h.stream.as_bytes());
    key[36..68].copy_from_slice(h.from.as_ref());
    key[68..].copy_from_slice(h.to.as_ref());
    key
}

fn handover_of(key: &[u8]) -> Option<Handover> {
    let key: &[u8; HANDOVER_KEY_LEN] = key.try_into().ok()?;
    let (at, rest) = key.split_at(4);
    let (stream, rest) = rest.split_at(32);
    let (from, to) = rest.split_at(32);
    Some(Handover {
        stream: StreamId::from(<[u8; 32]>::try_from(stream).ok()?),
        from: AccountId::new(from.try_into().ok()?),
        to: AccountId::new(to.try_into().ok()?),
        at: BlockNumber::from_be_bytes(at.try_into().ok()?),
    })
}

/// A row of a [`GateTable`]: key and value.
pub type GateRow = (Vec<u8>, Vec<u8>);

/// A table of the broker gate's decisions; keys and values are the gate's own encoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GateTable {
    /// Minted logins, by username.
    Logins,
    /// Admitted sessions, by mountpoint and client id.
    Sessions,
}

impl GateTable {
    fn definition(self) -> TableDefinition<'static, &'static [u8], &'static [u8]> {
        match self {
            Self::Logins => GATE_LOGINS,
            Self::Sessions => GATE_SESSIONS,
        }
    }
}

/// A storage failure (disk full, I/O error, corruption). The operation changed nothing.
#[derive(Debug, thiserror::Error)]
#[error("storage error: {0}")]
pub struct StoreError(Box<redb::Error>);

macro_rules! redb_from {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self {
                Self(Box::new(e.into()))
            }
        }
    )*};
}
redb_from!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

/// A segment to store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewSegment {
    /// Its stream.
    pub stream: StreamId,
    /// Its sequence number.
    pub sequence: Sequence,
    /// The whole envelope, as received.
    pub envelope: Vec<u8>,
}

/// A stored segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredSegment {
    /// Its sequence number.
    pub sequence: Sequence,
    /// Finalized block when it was stored (for retention).
    pub stored_at: BlockNumber,
    /// The envelope.
    pub envelope: Vec<u8>,
}

fn segment_key(stream: &StreamId, sequence: Sequence) -> [u8; 40] {
    let mut key = [0u8; 40];
    key[..32].copy_from_slice(stream.as_bytes());
    key[32..].copy_from_slice(&sequence.to_be_bytes());
    key
}

fn sequence_of(key: &[u8]) -> Sequence {
    let mut seq = [0u8; 8];
    if key.len() == 40 {
        seq.copy_from_slice(&key[32..]);
    }
    Sequence::from_be_bytes(seq)
}

fn split_value(value: &[u8]) -> (BlockNumber, &[u8]) {
    if value.len() < 4 {
        return (0, &[]);
    }
    let mut at = [0u8; 4];
    at.copy_from_slice(&value[..4]);
    (BlockNumber::from_be_bytes(at), &value[4..])
}

/// Memory redb may use to cache pages. Its default (1 GiB) lets the cache, and the daemon's
/// memory, grow with the data stored; segments are written once and read a few times, so a
/// small cache serves them as well.
pub const CACHE_BYTES: usize = 32 * 1024 * 1024;

/// What [`Store::insert_segments_within`] did with one segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Insert {
    /// Stored.
    New,
    /// Already stored; left as it was.
    Duplicate,
    /// Not stored: its stream's quota is used up.
    OverQuota,
}

/// The daemon's database.
pub struct Store {
    db: Database,
    changed: tokio::sync::Notify,
}

impl Store {
    /// Opens (or creates) the database at `path` and its tables.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let db = Database::builder()
            .set_cache_size(CACHE_BYTES)
            .create(path)?;
        let txn = db.begin_write()?;
        {
            txn.open_table(SEGMENTS)?;
            txn.open_table(NONCES)?;
            txn.open_table(RECEIPTS)?;
            txn.open_table(CLAIMED)?;
            txn.open_table(SERVED)?;
            txn.open_table(DELETED_BELOW)?;
            txn.open_table(GATE_LOGINS)?;
            txn.open_table(GATE_SESSIONS)?;
            txn.open_table(HANDOVERS)?;
            let mut bytes = txn.open_table(STREAM_BYTES)?;
            if bytes.is_empty()? {
                // A database from before the byte counts: count what it stores.
                let segments = txn.open_table(SEGMENTS)?;
                let mut totals: std::collections::BTreeMap<Vec<u8>, u64> = Default::default();
                for entry in segments.iter()? {
                    let (key, value) = entry?;
                    let stream = key.value().get(..32).unwrap_or_default().to_vec();
                    let len = split_value(value.value()).1.len() as u64;
                    *totals.entry(stream).or_default() += len;
                }
                for (stream, total) in totals {
                    bytes.insert(stream.as_slice(), total)?;
                }
            }
        }
        txn.commit()?;
        Ok(Self {
            db,
            changed: tokio::sync::Notify::new(),
        })
    }

    /// Woken (one stored permit, so no wake-up is lost) after segments or a receipt were
    /// committed, and by [`Self::notify_changed`].
    pub fn changed(&self) -> &tokio::sync::Notify {
        &self.changed
    }

    /// Wakes the waiter of [`Self::changed`] (e.g. after a new broker grant).
    pub fn notify_changed(&self) {
        self.changed.notify_one();
    }

    fn write(&self) -> Result<redb::WriteTransaction, StoreError> {
        let mut txn = self.db.begin_write()?;
        txn.set_durability(Durability::Immediate);
        Ok(txn)
    }

    /// Stores `segments` in one durable transaction; a segment whose `(stream, sequence)` is
    /// already stored, or was stored and deleted, is left as it is (duplicates are ignored,
    /// never overwritten). Returns, per segment, whether it was new. When this returns `Ok`,
    /// the segments are on disk.
    pub fn insert_segments(
        &self,
        segments: &[NewSegment],
        now: BlockNumber,
    ) -> Result<Vec<bool>, StoreError> {
        let outcomes = self.insert_segments_within(segments, now, |_| u64::MAX)?;
        Ok(outcomes.into_iter().map(|o| o == Insert::New).collect())
    }

    /// [`Self::insert_segments`] within each stream's quota: a new segment that would take
    /// its stream's stored bytes beyond `quota(stream)` is not stored ([`Insert::OverQuota`]).
    pub fn insert_segments_within(
        &self,
        segments: &[NewSegment],
        now: BlockNumber,
        quota: impl Fn(&StreamId) -> u64,
    ) -> Result<Vec<Insert>, StoreError> {
        let txn = self.write()?;
        let mut outcomes = Vec::with_capacity(segments.len());
        {
            let mut table = txn.open_table(SEGMENTS)?;
            let mut bytes = txn.open_table(STREAM_BYTES)?;
            let deleted = txn.open_table(DELETED_BELOW)?;
            let mut value = Vec::new();
            for segment in segments {
                let key = segment_key(&segment.stream, segment.sequence);
                let deleted_below = deleted
                    .get(segment.stream.as_bytes())?
                    .map_or(0, |v| v.value());
                if segment.sequence < deleted_below || table.get(key.as_slice())?.is_some() {
                    outcomes.push(Insert::Duplicate);
                    continue;
                }
                let stream = segment.stream.as_bytes();
                let stored = bytes.get(stream)?.map_or(0, |v| v.value());
                let total = stored.saturating_add(segment.envelope.len() as u64);
                if total > quota(&segment.stream) {
                    outcomes.push(Insert::OverQuota);
                    continue;
                }
                value.clear();
                value.extend_from_slice(&now.to_be_bytes());
                value.extend_from_slice(&segment.envelope);
                table.insert(key.as_slice(), value.as_slice())?;
                bytes.insert(stream, total)?;
                outcomes.push(Insert::New);
            }
        }
        txn.commit()?;
        if outcomes.contains(&Insert::New) {
            self.notify_changed();
        }
        Ok(outcomes)
    }

    /// Envelope bytes of `stream` stored.
    pub fn stored_bytes(&self, stream: &StreamId) -> Result<u64, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(STREAM_BYTES)?;
        Ok(table.get(stream.as_bytes())?.map_or(0, |v| v.value()))
    }

    /// The segment `(stream, sequence)`, if stored.
    pub fn segment(
        &self,
        stream: &StreamId,
        sequence: Sequence,
    ) -> Result<Option<StoredSegment>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(SEGMENTS)?;
        let key = segment_key(stream, sequence);
        Ok(table.get(key.as_slice())?.map(|value| {
            let (stored_at, envelope) = split_value(value.value());
            StoredSegment {
                sequence,
                stored_at,
                envelope: envelope.to_vec(),
            }
        }))
    }

    /// Stored segments of `stream` with `from <= sequence <= to`, in order, at most `limit`.
    pub fn segments(
        &self,
        stream: &StreamId,
        from: Sequence,
        to: Sequence,
        limit: usize,
    ) -> Result<Vec<StoredSegment>, StoreError> {
        if from > to || limit == 0 {
            return Ok(Vec::new());
        }
        let txn = self.db.begin_read()?;
        let table = txn.open_table(SEGMENTS)?;
        let start = segment_key(stream, from);
        let end = segment_key(stream, to);
        let mut out = Vec::new();
        for entry in table.range::<&[u8]>(start.as_slice()..=end.as_slice())? {
            let (key, value) = entry?;
            let (stored_at, envelope) = split_value(value.value());
            out.push(StoredSegment {
                sequence: sequence_of(key.value()),
                stored_at,
                envelope: envelope.to_vec(),
            });
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }

    /// The stored sequence numbers of `stream` in `from..=to` (for gap detection).
    pub fn sequences(
        &self,
        stream: &StreamId,
        from: Sequence,
        to: Sequence,
    ) -> Result<Vec<Sequence>, StoreError> {
        if from > to {
            return Ok(Vec::new());
        }
        let txn = self.db.begin_read()?;
        let table = txn.open_table(SEGMENTS)?;
        let start = segment_key(stream, from);
        let end = segment_key(stream, to);
        let mut out = Vec::new();
        for entry in table.range::<&[u8]>(start.as_slice()..=end.as_slice())? {
            let (key, _) = entry?;
            out.push(sequence_of(key.value()));
        }
        Ok(out)
    }

    /// The lowest stored sequence of `stream`.
    pub fn first_sequence(&self, stream: &StreamId) -> Result<Option<Sequence>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(SEGMENTS)?;
        let start = segment_key(stream, 0);
        let end = segment_key(stream, Sequence::MAX);
        let first = table
            .range::<&[u8]>(start.as_slice()..=end.as_slice())?
            .next();
        match first {
            Some(entry) => Ok(Some(sequence_of(entry?.0.value()))),
            None => Ok(None),
        }
    }

    /// The highest stored sequence of `stream`.
    pub fn last_sequence(&self, stream: &StreamId) -> Result<Option<Sequence>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(SEGMENTS)?;
        let start = segment_key(stream, 0);
        let end = segment_key(stream, Sequence::MAX);
        let last = table
            .range::<&[u8]>(start.as_slice()..=end.as_slice())?
            .next_back();
        match last {
            Some(entry) => Ok(Some(sequence_of(entry?.0.value()))),
            None => Ok(None),
        }
    }

    /// Number of stored segments of `stream`.
    pub fn count(&self, stream: &StreamId) -> Result<u64, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(SEGMENTS)?;
        let start = segment_key(stream, 0);
        let end = segment_key(stream, Sequence::MAX);
        let mut n = 0;
        for entry in table.range::<&[u8]>(start.as_slice()..=end.as_slice())? {
            entry?;
            n += 1;
        }
        Ok(n)
    }

    /// Deletes the segments of `stream` stored before block `before` (retention). Returns how
    /// many were deleted.
    pub fn prune(&self, stream: &StreamId, before: BlockNumber) -> Result<u64, StoreError> {
        self.remove_segments(stream, |stored_at| stored_at < before)
    }

    /// Deletes every segment of `stream` (one this operator no longer hosts) and its byte
    /// count. Returns how many segments were deleted.
    pub fn drop_stream(&self, stream: &StreamId) -> Result<u64, StoreError> {
        self.remove_segments(stream, |_| true)
    }

    /// The streams this store holds segments of.
    pub fn stored_streams(&self) -> Result<Vec<StreamId>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(STREAM_BYTES)?;
        let mut streams = Vec::new();
        for entry in table.iter()? {
            let key = entry?.0;
            if let Ok(bytes) = <[u8; 32]>::try_from(key.value()) {
                streams.push(StreamId::from(bytes));
            }
        }
        Ok(streams)
    }

    /// Deletes the segments of `stream` whose storage block satisfies `expired`, keeping its
    /// byte count; a stream left without segments loses its count.
    fn remove_segments(
        &self,
        stream: &StreamId,
        expired: impl Fn(BlockNumber) -> bool,
    ) -> Result<u64, StoreError> {
        let txn = self.write()?;
        let mut removed = 0;
        {
            let mut table = txn.open_table(SEGMENTS)?;
            let start = segment_key(stream, 0);
            let end = segment_key(stream, Sequence::MAX);
            let mut keys = Vec::new();
            let (mut freed, mut kept) = (0u64, 0u64);
            let mut highest = None;
            for entry in table.range::<&[u8]>(start.as_slice()..=end.as_slice())? {
                let (key, value) = entry?;
                let (stored_at, envelope) = split_value(value.value());
                if expired(stored_at) {
                    highest = Some(sequence_of(key.value()));
                    keys.push(key.value().to_vec());
                    freed = freed.saturating_add(envelope.len() as u64);
                } else {
                    kept += 1;
                }
            }
            if let Some(highest) = highest {
                let mut deleted = txn.open_table(DELETED_BELOW)?;
                let below = deleted.get(stream.as_bytes())?.map_or(0, |v| v.value());
                deleted.insert(stream.as_bytes(), below.max(highest.saturating_add(1)))?;
            }
            for key in keys {
                table.remove(key.as_slice())?;
                removed += 1;
            }
            let mut bytes = txn.open_table(STREAM_BYTES)?;
            if kept == 0 {
                bytes.remove(stream.as_bytes())?;
            } else if freed > 0 {
                let stored = bytes.get(stream.as_bytes())?.map_or(0, |v| v.value());
                bytes.insert(stream.as_bytes(), stored.saturating_sub(freed))?;
            }
        }
        txn.commit()?;
        Ok(removed)
    }

    /// Runs `check` with the last nonce accepted in `context` and, if it returns `Ok(nonce)`,
    /// durably records `nonce` as the new last one — all in one write transaction, so two
    /// concurrent presentations of the same token cannot both pass.
    pub fn with_nonce<E>(
        &self,
        context: &[u8],
        check: impl FnOnce(Option<u64>) -> Result<u64, E>,
    ) -> Result<Result<(), E>, StoreError> {
        let txn = self.write()?;
        let outcome = {
            let mut table = txn.open_table(NONCES)?;
            let last = table.get(context)?.map(|v| v.value());
            match check(last) {
                Ok(nonce) => {
                    table.insert(context, nonce)?;
                    Ok(())
                }
                Err(e) => Err(e),
            }
        };
        if outcome.is_ok() {
            txn.commit()?;
        } else {
            txn.abort()?;
        }
        Ok(outcome)
    }

    /// The last nonce accepted in `context`.
    pub fn last_nonce(&self, context: &[u8]) -> Result<Option<u64>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(NONCES)?;
        Ok(table.get(context)?.map(|v| v.value()))
    }

    /// Runs `update` with the stored receipt bytes of `purchase`; if it returns new bytes, they
    /// replace the stored ones durably (one transaction).
    pub fn update_receipt<E>(
        &self,
        purchase: PurchaseId,
        update: impl FnOnce(Option<&[u8]>) -> Result<Vec<u8>, E>,
    ) -> Result<Result<(), E>, StoreError> {
        let txn = self.write()?;
        let outcome = {
            let mut table = txn.open_table(RECEIPTS)?;
            let current = table.get(purchase)?.map(|v| v.value().to_vec());
            match update(current.as_deref()) {
                Ok(bytes) => {
                    table.insert(purchase, bytes.as_slice())?;
                    Ok(())
                }
                Err(e) => Err(e),
            }
        };
        if outcome.is_ok() {
            txn.commit()?;
            self.notify_changed();
        } else {
            txn.abort()?;
        }
        Ok(outcome)
    }

    /// The stored receipt bytes of `purchase`.
    pub fn receipt(&self, purchase: PurchaseId) -> Result<Option<Vec<u8>>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(RECEIPTS)?;
        Ok(table.get(purchase)?.map(|v| v.value().to_vec()))
    }

    /// Every stored receipt, by purchase.
    pub fn receipts(&self) -> Result<Vec<(PurchaseId, Vec<u8>)>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(RECEIPTS)?;
        let mut out = Vec::new();
        for entry in table.iter()? {
            let (k, v) = entry?;
            out.push((k.value(), v.value().to_vec()));
        }
        Ok(out)
    }

    /// Nonce of the last receipt of `purchase` accepted on chain.
    pub fn claimed(&self, purchase: PurchaseId) -> Result<Option<u64>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(CLAIMED)?;
        Ok(table.get(purchase)?.map(|v| v.value()))
    }

    /// Records that the receipt of `purchase` with `nonce` was accepted on chain.
    pub fn set_claimed(&self, purchase: PurchaseId, nonce: u64) -> Result<(), StoreError> {
        let txn = self.write()?;
        {
            let mut table = txn.open_table(CLAIMED)?;
            let current = table.get(purchase)?.map(|v| v.value());
            if current.is_none_or(|c| c < nonce) {
                table.insert(purchase, nonce)?;
            }
        }
        txn.commit()?;
        Ok(())
    }

    /// Records durably that sequences up to `sequence` were served to `purchase` over HTTP
    /// (the highest such sequence is kept).
    pub fn record_served(
        &self,
        purchase: PurchaseId,
        sequence: Sequence,
    ) -> Result<(), StoreError> {
        let txn = self.write()?;
        {
            let mut table = txn.open_table(SERVED)?;
            let current = table.get(purchase)?.map(|v| v.value());
            if current.is_none_or(|c| c < sequence) {
                table.insert(purchase, sequence)?;
            }
        }
        txn.commit()?;
        Ok(())
    }

    /// The highest sequence served to `purchase` over HTTP.
    pub fn served(&self, purchase: PurchaseId) -> Result<Option<Sequence>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(SERVED)?;
        Ok(table.get(purchase)?.map(|v| v.value()))
    }

    /// Durably stores the gate's row `key` (replacing one with the same key).
    pub fn gate_put(&self, table: GateTable, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        let txn = self.write()?;
        txn.open_table(table.definition())?.insert(key, value)?;
        txn.commit()?;
        Ok(())
    }

    /// Durably deletes the gate's rows `keys` (absent ones are ignored).
    pub fn gate_remove(&self, table: GateTable, keys: &[Vec<u8>]) -> Result<(), StoreError> {
        if keys.is_empty() {
            return Ok(());
        }
        let txn = self.write()?;
        {
            let mut rows = txn.open_table(table.definition())?;
            for key in keys {
                rows.remove(key.as_slice())?;
            }
        }
        txn.commit()?;
        Ok(())
    }

    /// Durably records `handover` (once), keeping the latest [`MAX_HANDOVERS_PER_STREAM`]
    /// of its stream and [`MAX_STORED_HANDOVERS`] in all.
    pub fn record_handover(&self, handover: &Handover) -> Result<(), StoreError> {
        let txn = self.write()?;
        {
            let mut table = txn.open_table(HANDOVERS)?;
            table.insert(handover_key(handover).as_slice(), ())?;
            let mut same_stream = Vec::new();
            let mut all = Vec::new();
            for entry in table.iter()? {
                let key = entry?.0.value().to_vec();
                if handover_of(&key).is_some_and(|h| h.stream == handover.stream) {
                    same_stream.push(key.clone());
                }
                all.push(key);
            }
            // Keys sort by block: the first ones are the oldest.
            let excess = same_stream.len().saturating_sub(MAX_HANDOVERS_PER_STREAM);
            let mut evicted: Vec<Vec<u8>> = same_stream.into_iter().take(excess).collect();
            all.retain(|k| !evicted.contains(k));
            let excess = all.len().saturating_sub(MAX_STORED_HANDOVERS);
            evicted.extend(all.into_iter().take(excess));
            for key in evicted {
                table.remove(key.as_slice())?;
            }
        }
        txn.commit()?;
        Ok(())
    }

    /// Every stored handover, oldest first (rows that do not decode are skipped).
    pub fn handovers(&self) -> Result<Vec<Handover>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(HANDOVERS)?;
        let mut out = Vec::new();
        for entry in table.iter()? {
            if let Some(handover) = handover_of(entry?.0.value()) {
                out.push(handover);
            }
        }
        Ok(out)
    }

    /// Deletes the handovers made before block `before` (past the keep period). Returns how
    /// many were deleted.
    pub fn prune_handovers(&self, before: BlockNumber) -> Result<u64, StoreError> {
        let txn = self.write()?;
        let mut removed = 0;
        {
            let mut table = txn.open_table(HANDOVERS)?;
            let end = before.to_be_bytes();
            let mut keys = Vec::new();
            for entry in table.range::<&[u8]>(..end.as_slice())? {
                keys.push(entry?.0.value().to_vec());
            }
            for key in keys {
                table.remove(key.as_slice())?;
                removed += 1;
            }
        }
        txn.commit()?;
        Ok(removed)
    }

    /// Every row of the gate's `table`, in key order.
    pub fn gate_rows(&self, table: GateTable) -> Result<Vec<GateRow>, StoreError> {
        let txn = self.db.begin_read()?;
        let rows = txn.open_table(table.definition())?;
        let mut out = Vec::new();
        for entry in rows.iter()? {
            let (k, v) = entry?;
            out.push((k.value().to_vec(), v.value().to_vec()));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sp_core::H256;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db.redb")).unwrap();
        (dir, store)
    }

    fn seg(stream: u8, sequence: Sequence, body: &[u8]) -> NewSegment {
        NewSegment {
            stream: H256::repeat_byte(stream),
            sequence,
            envelope: body.to_vec(),
        }
    }

    #[test]
    fn segments_beyond_a_streams_quota_are_not_stored_and_pruning_frees_quota() {
        let (dir, store) = store();
        let s = H256::repeat_byte(1);
        let quota = |stream: &StreamId| if *stream == s { 5 } else { u64::MAX };
        assert_eq!(
            store
                .insert_segments_within(
                    &[
                        seg(1, 0, b"abc"),
                        seg(1, 1, b"def"),
                        seg(1, 2, b"gh"),
                        seg(2, 0, b"zzzz")
                    ],
                    5,
                    quota
                )
                .unwrap(),
            vec![Insert::New, Insert::OverQuota, Insert::New, Insert::New]
        );
        assert_eq!(store.stored_bytes(&s).unwrap(), 5);
        assert!(store.segment(&s, 1).unwrap().is_none());
        assert_eq!(
            store
                .insert_segments_within(&[seg(1, 0, b"abc"), seg(1, 3, b"x")], 6, quota)
                .unwrap(),
            vec![Insert::Duplicate, Insert::OverQuota]
        );
        // Retention frees the pruned bytes.
        assert_eq!(store.prune(&s, 6).unwrap(), 2);
        assert_eq!(store.stored_bytes(&s).unwrap(), 0);
        assert_eq!(
            store
                .insert_segments_within(&[seg(1, 3, b"x")], 7, quota)
                .unwrap(),
            vec![Insert::New]
        );
        assert_eq!(store.stored_bytes(&H256::repeat_byte(2)).unwrap(), 4);
        // The counts survive a restart.
        drop(store);
        let store = Store::open(&dir.path().join("db.redb")).unwrap();
        assert_eq!(store.stored_bytes(&s).unwrap(), 1);
        assert_eq!(store.stored_bytes(&H256::repeat_byte(2)).unwrap(), 4);
    }

    #[test]
    fn duplicates_are_ignored_and_never_overwrite() {
        let (_dir, store) = store();
        let s = H256::repeat_byte(1);
        assert_eq!(
            store
                .insert_segments(&[seg(1, 1, b"a"), seg(1, 2, b"b")], 5)
                .unwrap(),
            vec![true, true]
        );
        assert_eq!(
            store
                .insert_segments(&[seg(1, 2, b"X"), seg(1, 3, b"c")], 6)
                .unwrap(),
            vec![false, true]
        );
        assert_eq!(store.segment(&s, 2).unwrap().unwrap().envelope, b"b");
        assert_eq!(store.segment(&s, 2).unwrap().unwrap().stored_at, 5);
        assert_eq!(store.count(&s).unwrap(), 3);
        // Duplicates inside one batch too.
        assert_eq!(
            store
                .insert_segments(&[seg(1, 9, b"x"), seg(1, 9, b"y")], 6)
                .unwrap(),
            vec![true, false]
        );
    }

    #[test]
    fn ranges_are_ordered_and_per_stream() {
        let (_dir, store) = store();
        let segs: Vec<_> = [5u64, 1, 300, 256, 2]
            .iter()
            .map(|s| seg(1, *s, &s.to_le_bytes()))
            .collect();
        store.insert_segments(&segs, 1).unwrap();
        store.insert_segments(&[seg(2, 3, b"other")], 1).unwrap();
        let s = H256::repeat_byte(1);
        let got: Vec<_> = store
            .segments(&s, 0, u64::MAX, 100)
            .unwrap()
            .iter()
            .map(|x| x.sequence)
            .collect();
        assert_eq!(got, vec![1, 2, 5, 256, 300]);
        let got: Vec<_> = store
            .segments(&s, 2, 256, 2)
            .unwrap()
            .iter()
            .map(|x| x.sequence)
            .collect();
        assert_eq!(got, vec![2, 5]);
        assert_eq!(store.sequences(&s, 3, 299).unwrap(), vec![5, 256]);
        assert_eq!(store.last_sequence(&s).unwrap(), Some(300));
        assert_eq!(store.last_sequence(&H256::repeat_byte(2)).unwrap(), Some(3));
        assert_eq!(store.last_sequence(&H256::repeat_byte(3)).unwrap(), None);
        assert!(store.segments(&s, 10, 1, 10).unwrap().is_empty());
    }

    #[test]
    fn served_keeps_the_highest_and_writes_wake_the_waiter() {
        let (_dir, store) = store();
        assert_eq!(store.served(1).unwrap(), None);
        store.record_served(1, 7).unwrap();
        store.record_served(1, 3).unwrap();
        assert_eq!(store.served(1).unwrap(), Some(7));
        assert_eq!(store.served(2).unwrap(), None);
        // A committed segment leaves a permit for the next waiter.
        let waited = store.changed().notified();
        store.insert_segments(&[seg(1, 1, b"a")], 1).unwrap();
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap()
            .block_on(async {
                tokio::time::timeout(std::time::Duration::from_secs(1), waited)
                    .await
                    .expect("woken")
            });
    }

    #[test]
    fn retention_prunes_old_segments_only() {
        let (_dir, store) = store();
        store
            .insert_segments(&[seg(1, 1, b"a"), seg(1, 2, b"b")], 10)
            .unwrap();
        store.insert_segments(&[seg(1, 3, b"c")], 20).unwrap();
        store.insert_segments(&[seg(2, 1, b"z")], 1).unwrap();
        assert_eq!(store.prune(&H256::repeat_byte(1), 15).unwrap(), 2);
        assert_eq!(
            store.sequences(&H256::repeat_byte(1), 0, 10).unwrap(),
            vec![3]
        );
        assert_eq!(store.count(&H256::repeat_byte(2)).unwrap(), 1);
    }

    #[test]
    fn a_dropped_stream_loses_its_segments_and_byte_count_only() {
        let (_dir, store) = store();
        let (one, two) = (H256::repeat_byte(1), H256::repeat_byte(2));
        store
            .insert_segments(&[seg(1, 1, b"ab"), seg(1, 2, b"c")], 1)
            .unwrap();
        store.insert_segments(&[seg(2, 1, b"zz")], 1).unwrap();
        let mut stored = store.stored_streams().unwrap();
        stored.sort();
        assert_eq!(stored, vec![one, two]);
        assert_eq!(store.drop_stream(&one).unwrap(), 2);
        assert_eq!(store.count(&one).unwrap(), 0);
        assert_eq!(store.stored_bytes(&one).unwrap(), 0);
        assert_eq!(store.stored_streams().unwrap(), vec![two]);
        assert_eq!(store.stored_bytes(&two).unwrap(), 2);
        assert_eq!(store.segment(&two, 1).unwrap().unwrap().envelope, b"zz");
    }

    #[test]
    fn deleted_sequences_are_never_stored_again_even_with_other_bytes() {
        let (dir, store) = store();
        let s = H256::repeat_byte(1);
        store
            .insert_segments(&[seg(1, 0, b"a"), seg(1, 1, b"b")], 10)
            .unwrap();
        store.insert_segments(&[seg(1, 2, b"c")], 20).unwrap();
        assert_eq!(store.prune(&s, 15).unwrap(), 2);
        // A seller re-uploading a pruned sequence with other bytes: refused as a duplicate,
        // so the operator can never serve (and sign) two contents for it.
        assert_eq!(
            store
                .insert_segments(&[seg(1, 1, b"forged"), seg(1, 3, b"d")], 21)
                .unwrap(),
            vec![false, true]
        );
        assert!(store.segment(&s, 1).unwrap().is_none());
        assert_eq!(store.drop_stream(&s).unwrap(), 2);
        // It survives a restart and a dropped stream.
        drop(store);
        let store = Store::open(&dir.path().join("db.redb")).unwrap();
        assert_eq!(
            store
                .insert_segments(&[seg(1, 3, b"other"), seg(1, 4, b"e")], 22)
                .unwrap(),
            vec![false, true]
        );
        assert_eq!(store.sequences(&s, 0, 10).unwrap(), vec![4]);
    }

    #[test]
    fn nonces_are_checked_and_persisted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.redb");
        {
            let store = Store::open(&path).unwrap();
            let accept = |n: u64| {
                move |last: Option<u64>| {
                    if last.is_some_and(|l| n <= l) {
                        Err("replayed")
                    } else {
                        Ok(n)
                    }
                }
            };
            assert_eq!(store.with_nonce(b"ctx", accept(5)).unwrap(), Ok(()));
            assert_eq!(
                store.with_nonce(b"ctx", accept(5)).unwrap(),
                Err("replayed")
            );
            assert_eq!(
                store.with_nonce(b"ctx", accept(4)).unwrap(),
                Err("replayed")
            );
            assert_eq!(store.with_nonce(b"other", accept(1)).unwrap(), Ok(()));
        }
        let store = Store::open(&path).unwrap();
        assert_eq!(store.last_nonce(b"ctx").unwrap(), Some(5));
    }

    #[test]
    fn receipts_and_claims_roundtrip() {
        let (_dir, store) = store();
        assert_eq!(
            store
                .update_receipt(1, |cur| {
                    assert!(cur.is_none());
                    Ok::<_, ()>(vec![1])
                })
                .unwrap(),
            Ok(())
        );
        assert_eq!(
            store
                .update_receipt(1, |_| Err::<Vec<u8>, _>("no"))
                .unwrap(),
            Err("no")
        );
        assert_eq!(store.receipt(1).unwrap(), Some(vec![1]));
        assert_eq!(store.receipts().unwrap(), vec![(1, vec![1])]);
        store.set_claimed(1, 4).unwrap();
        store.set_claimed(1, 3).unwrap();
        assert_eq!(store.claimed(1).unwrap(), Some(4));
    }

    #[test]
    fn handovers_persist_are_bounded_and_pruned_by_block() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.redb");
        let handover = |stream: u8, to: u8, at: BlockNumber| Handover {
            stream: H256::repeat_byte(stream),
            from: AccountId::new([1; 32]),
            to: AccountId::new([to; 32]),
            at,
        };
        {
            let store = Store::open(&path).unwrap();
            store.record_handover(&handover(7, 2, 300)).unwrap();
            store.record_handover(&handover(8, 3, 100)).unwrap();
            store.record_handover(&handover(7, 2, 300)).unwrap();
        }
        let store = Store::open(&path).unwrap();
        // Oldest first, once each, after a restart.
        assert_eq!(
            store.handovers().unwrap(),
            vec![handover(8, 3, 100), handover(7, 2, 300)]
        );
        // A stream keeps its latest handovers only.
        for at in 0..MAX_HANDOVERS_PER_STREAM as BlockNumber + 2 {
            store.record_handover(&handover(9, 4, 1000 + at)).unwrap();
        }
        let nine: Vec<BlockNumber> = store
            .handovers()
            .unwrap()
            .into_iter()
            .filter(|h| h.stream == H256::repeat_byte(9))
            .map(|h| h.at)
            .collect();
        assert_eq!(
            nine,
            (1002..1000 + MAX_HANDOVERS_PER_STREAM as BlockNumber + 2).collect::<Vec<_>>()
        );
        // Pruning removes those made before the block given, not at it.
        assert_eq!(store.prune_handovers(300).unwrap(), 1);
        assert_eq!(store.handovers().unwrap()[0], handover(7, 2, 300));
        assert_eq!(
            store.prune_handovers(BlockNumber::MAX).unwrap(),
            1 + MAX_HANDOVERS_PER_STREAM as u64
        );
        assert!(store.handovers().unwrap().is_empty());
    }

    #[test]
    fn gate_rows_persist_and_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.redb");
        {
            let store = Store::open(&path).unwrap();
            store.gate_put(GateTable::Logins, b"a", b"1").unwrap();
            store.gate_put(GateTable::Logins, b"b", b"2").unwrap();
            store.gate_put(GateTable::Logins, b"a", b"3").unwrap();
            store.gate_put(GateTable::Sessions, b"s", b"4").unwrap();
        }
        let store = Store::open(&path).unwrap();
        assert_eq!(
            store.gate_rows(GateTable::Logins).unwrap(),
            vec![
                (b"a".to_vec(), b"3".to_vec()),
                (b"b".to_vec(), b"2".to_vec())
            ]
        );
        store
            .gate_remove(GateTable::Logins, &[b"a".to_vec(), b"z".to_vec()])
            .unwrap();
        assert_eq!(
            store.gate_rows(GateTable::Logins).unwrap(),
            vec![(b"b".to_vec(), b"2".to_vec())]
        );
        assert_eq!(
            store.gate_rows(GateTable::Sessions).unwrap(),
            vec![(b"s".to_vec(), b"4".to_vec())]
        );
    }
}

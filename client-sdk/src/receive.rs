//! Receiving: verified plaintext in sequence order, from any replica.
//!
//! - [`Verifier`] opens envelopes with the purchase's epoch keys (AES-GCM tag over header and
//!   ciphertext, then σ_d) and checks that the header names the purchased stream.
//! - [`Reorderer`] turns segments arriving in any order, possibly twice, into a gap-free,
//!   duplicate-free sequence.
//! - [`Receiver::download`] fetches a range over the operators' HTTP API and fails over to the
//!   next operator when one is unreachable, refuses, has a gap, or serves a segment that does
//!   not verify or does not carry the operator's valid signature
//!   ([`OperatorClient::download`]). [`Receiver::with_statements`] keeps the operators' signed
//!   statements of the segments accepted, the evidence of an equivocation.
//! - [`Receiver::follow`] catches up over HTTP, then subscribes to the live topic on an
//!   operator's broker (credentials from `POST /v1/broker/session`), fills gaps over HTTP and
//!   fails over to another replica when the broker connection drops.
//!
//! Receipts: operators serve a buyer at most a receipt window of W segments beyond its last
//! receipt, and cut off a live subscriber whose receipts fall more than W behind the stream
//! head; the chain pays each period only for receipted data. Both paths therefore post a
//! cumulative receipt to every operator that served data at least every max(1, W/4) segments
//! received from it and at most [`RECEIPT_INTERVAL`] after the first unreceipted one
//! ([`ReceiptCadence`]), after every HTTP chunk, when leaving an operator, and when done. A
//! receipt to an operator never acknowledges more than it served or than was delivered in
//! order.

use std::{
    collections::{BTreeMap, HashMap},
    time::{Duration, Instant},
};

use fastdata_primitives::{
    envelope::{self, EpochKeys, OpenedSegment},
    BlockNumber, EpochIndex, PurchaseId, Sequence, StreamId,
};
use rumqttc::{AsyncClient, ConnectReturnCode, Event, Packet, QoS};
use sp_core::H256;
use tokio::sync::mpsc;

use crate::{
    account::Account,
    chain::FastData,
    error::Error,
    keystore::Keystore,
    operator::{OperatorClient, OperatorEndpoint, RefusedFrame, ServedStatement},
};

/// Opens and checks envelopes of one stream.
pub struct Verifier {
    stream: StreamId,
    keys: BTreeMap<EpochIndex, EpochKeys>,
}

impl Verifier {
    /// A verifier for `stream` with the (commitment-checked) keys of the purchased epochs.
    pub fn new(stream: StreamId, keys: BTreeMap<EpochIndex, EpochKeys>) -> Self {
        Self { stream, keys }
    }

    /// Adds the keys of another epoch.
    pub fn add_epoch(&mut self, epoch: EpochIndex, keys: EpochKeys) {
        self.keys.insert(epoch, keys);
    }

    /// The epochs it can open.
    pub fn epochs(&self) -> Vec<EpochIndex> {
        self.keys.keys().copied().collect()
    }

    /// Opens `bytes`: known epoch, right stream, GCM tag and σ_d valid.
    pub fn open(&self, bytes: &[u8]) -> Result<OpenedSegment, Error> {
        let header = envelope::parse_header(bytes)?;
        if header.stream != self.stream {
            return Err(Error::Segment(format!(
                "segment {} belongs to another stream",
                header.sequence
            )));
        }
        let keys = self.keys.get(&header.epoch).ok_or_else(|| {
            Error::Segment(format!(
                "segment {} is sealed under epoch {} whose keys this purchase does not hold",
                header.sequence, header.epoch
            ))
        })?;
        envelope::open(keys, bytes)
            .map_err(|e| Error::Segment(format!("segment {}: {e}", header.sequence)))
    }
}

/// Turns segments in any order, with duplicates, into an in-order sequence without gaps.
#[derive(Default)]
pub struct Reorderer {
    next: Option<Sequence>,
    pending: BTreeMap<Sequence, OpenedSegment>,
    duplicates: u64,
}

/// Most segments held back waiting for a gap to close.
pub const MAX_PENDING: usize = 65_536;

impl Reorderer {
    /// Starts at `first` (or at the first segment seen, if `None`).
    pub fn new(first: Option<Sequence>) -> Self {
        Self {
            next: first,
            ..Self::default()
        }
    }

    /// The sequence expected next.
    pub fn next_expected(&self) -> Option<Sequence> {
        self.next
    }

    /// The highest sequence handed out, if any.
    pub fn delivered_up_to(&self) -> Option<Sequence> {
        self.next.and_then(|n| n.checked_sub(1))
    }

    /// Segments held back behind a gap.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// The first missing sequence if segments are held back behind it.
    pub fn gap(&self) -> Option<Sequence> {
        if self.pending.is_empty() {
            None
        } else {
            self.next
        }
    }

    /// Duplicates dropped so far.
    pub fn duplicates(&self) -> u64 {
        self.duplicates
    }

    /// Takes a segment; returns the segments now ready, in order.
    pub fn push(&mut self, segment: OpenedSegment) -> Vec<OpenedSegment> {
        let seq = segment.header.sequence;
        let next = *self.next.get_or_insert(seq);
        if seq < next || self.pending.contains_key(&seq) {
            self.duplicates += 1;
            return Vec::new();
        }
        if self.pending.len() >= MAX_PENDING && seq != next {
            // Too far ahead of a gap; it will be fetched again once the gap closes.
            return Vec::new();
        }
        self.pending.insert(seq, segment);
        let mut ready = Vec::new();
        let mut cursor = next;
        while let Some(segment) = self.pending.remove(&cursor) {
            ready.push(segment);
            cursor += 1;
        }
        self.next = Some(cursor);
        ready
    }
}

/// Counters of a receive run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Verified segments handed out.
    pub segments: u64,
    /// Their plaintext bytes.
    pub bytes: u64,
    /// Duplicates dropped.
    pub duplicates: u64,
    /// Segments refused (tampered, unknown epoch, other stream, bad operator signature).
    pub rejected: u64,
    /// Of [`Self::rejected`], segments downloaded without the serving operator's valid
    /// signature.
    pub bad_signatures: u64,
    /// Fail-overs to another operator.
    pub failovers: u64,
    /// The last sequence handed out.
    pub up_to: Option<Sequence>,
}

/// Segments between receipts to an operator while the receiver knows no receipt window.
/// It must be at most W/4 for the smallest receipt window W operators publish (32 segments),
/// so that a receiver is never cut off; [`Receiver::with_receipt_window`] sets a known W.
pub const DEFAULT_RECEIPT_EVERY: u64 = 8;
const _: () = assert!(DEFAULT_RECEIPT_EVERY >= 1 && DEFAULT_RECEIPT_EVERY <= 32 / 4);

/// Longest time data received from an operator stays unreceipted while data flows.
pub const RECEIPT_INTERVAL: Duration = Duration::from_secs(2);

/// First pause before a refused receipt is tried again; it doubles with every failure up to
/// [`RECEIPT_RETRY_MAX`].
const RECEIPT_RETRY: Duration = Duration::from_millis(250);
/// First pause after a receipt was refused as beyond what the operator stored: a live segment
/// can reach the subscriber a moment before the operator's own copy is stored.
const RECEIPT_RETRY_UNSTORED: Duration = Duration::from_millis(20);
/// Pause before asking again for a live session refused while the receipt window is used up
/// (the receipts posted meanwhile move it).
const WINDOW_RETRY: Duration = Duration::from_millis(100);
/// Live sessions refused in a row for a used-up window before it counts as a failure.
const WINDOW_RETRIES: u32 = 50;
/// Longest pause between attempts to deliver a receipt.
const RECEIPT_RETRY_MAX: Duration = Duration::from_secs(30);

/// When a receipt to one operator is due: once `max(1, W/4)` segments arrived from it since
/// its last receipt, or `interval` after the first of them, whichever comes first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReceiptCadence {
    every: u64,
    interval: Duration,
    unreceipted: u64,
    since: Option<Instant>,
    retry_at: Option<Instant>,
    failures: u32,
}

impl ReceiptCadence {
    /// The cadence for an operator with receipt window `window` (segments), receipting data
    /// at most `interval` after it arrived.
    pub fn new(window: u64, interval: Duration) -> Self {
        Self {
            every: (window / 4).max(1),
            interval,
            unreceipted: 0,
            since: None,
            retry_at: None,
            failures: 0,
        }
    }

    /// The cadence before any receipt window is known ([`DEFAULT_RECEIPT_EVERY`],
    /// [`RECEIPT_INTERVAL`]).
    pub fn default_cadence() -> Self {
        Self::new(DEFAULT_RECEIPT_EVERY * 4, RECEIPT_INTERVAL)
    }

    /// Segments between receipts.
    pub fn every(&self) -> u64 {
        self.every
    }

    /// Segments received since the last receipt.
    pub fn unreceipted(&self) -> u64 {
        self.unreceipted
    }

    /// Uses the receipt window `window` the operator published.
    pub fn set_window(&mut self, window: u64) {
        self.every = (window / 4).max(1);
    }

    /// Learns a (possibly smaller) receipt window: the cadence only ever gets faster.
    pub fn narrow(&mut self, window: u64) {
        self.every = self.every.min((window / 4).max(1));
    }

    /// `segments` more arrived at `now`.
    pub fn received(&mut self, segments: u64, now: Instant) {
        if segments == 0 {
            return;
        }
        self.unreceipted = self.unreceipted.saturating_add(segments);
        self.since.get_or_insert(now);
    }

    /// A receipt is due at `now`.
    pub fn due(&self, now: Instant) -> bool {
        if self.unreceipted == 0 || self.retry_at.is_some_and(|at| now < at) {
            return false;
        }
        self.unreceipted >= self.every
            || self
                .since
                .is_some_and(|since| now.saturating_duration_since(since) >= self.interval)
    }

    /// A receipt covering everything received was accepted (or nothing new was left to
    /// acknowledge).
    pub fn sent(&mut self) {
        self.unreceipted = 0;
        self.since = None;
        self.retry_at = None;
        self.failures = 0;
    }

    /// A receipt was refused or not delivered at `now`: try again after a pause that doubles
    /// with each failure in a row.
    pub fn failed(&mut self, now: Instant) {
        self.failed_after(now, RECEIPT_RETRY);
    }

    /// As [`ReceiptCadence::failed`], starting from a pause of `first`.
    pub fn failed_after(&mut self, now: Instant, first: Duration) {
        let pause = first
            .saturating_mul(1u32 << self.failures.min(16))
            .min(RECEIPT_RETRY_MAX);
        self.failures = self.failures.saturating_add(1);
        self.retry_at = Some(now + pause);
    }
}

/// Receives the data of one purchase from the stream's operators.
pub struct Receiver {
    buyer: Account,
    purchase: PurchaseId,
    verifier: Verifier,
    operators: Vec<OperatorClient>,
    expiry: BlockNumber,
    current: usize,
    bytes_from: HashMap<usize, u64>,
    /// Highest verified sequence received from each operator.
    seen_from: HashMap<usize, Sequence>,
    cadence: Vec<ReceiptCadence>,
    /// Operators whose terms were read (or that publish none).
    terms_read: Vec<bool>,
    receipted: HashMap<usize, (Sequence, u64)>,
    reorder: Reorderer,
    summary: Summary,
    last_error: Option<String>,
    patience: Duration,
    behind_since: Option<tokio::time::Instant>,
    /// Signed statements of accepted downloaded segments, when kept.
    statements: Option<Vec<ServedStatement>>,
    /// Keys of epochs delivered after the receiver was made ([`Receiver::key_updates`]).
    key_updates: Option<mpsc::UnboundedReceiver<(EpochIndex, EpochKeys)>>,
    /// Segments of a newer epoch than any held, waiting for its keys, with the operator
    /// that served each.
    held: Vec<(usize, Vec<u8>)>,
}

/// Silence on a live subscription after which the operators are asked over HTTP.
const LIVE_QUIET: Duration = Duration::from_secs(5);

/// Most segments held while the keys of their epoch are awaited; later ones are fetched again
/// over HTTP once the keys came.
const MAX_HELD: usize = 4_096;

/// How long [`BuyerChain::receiver`](crate::buyer::BuyerChain::receiver) waits for operators
/// that do not yet know an active purchase (their chain views trail finality by a block or
/// two).
pub const OPERATOR_LAG_PATIENCE: Duration = Duration::from_secs(30);

/// Pause before asking again an operator that is behind the chain.
const BEHIND_RETRY: Duration = Duration::from_millis(500);

impl Receiver {
    /// A receiver for `purchase` as `buyer`, trying `operators` in order; access requests and
    /// receipts are signed for the chain with genesis hash `genesis`
    /// ([`FastData::genesis`](crate::FastData::genesis)) and requests are valid until block
    /// `expiry`. `first` is the first sequence wanted (`None`: from the start of the
    /// purchase's entitlement).
    pub fn new(
        buyer: Account,
        genesis: H256,
        purchase: PurchaseId,
        verifier: Verifier,
        operators: Vec<OperatorEndpoint>,
        expiry: BlockNumber,
        first: Option<Sequence>,
    ) -> Self {
        let cadence = vec![ReceiptCadence::default_cadence(); operators.len()];
        let terms_read = vec![false; operators.len()];
        Self {
            buyer,
            purchase,
            verifier,
            operators: operators
                .into_iter()
                .map(|endpoint| OperatorClient::new(endpoint, genesis))
                .collect(),
            expiry,
            current: 0,
            bytes_from: HashMap::new(),
            seen_from: HashMap::new(),
            cadence,
            terms_read,
            receipted: HashMap::new(),
            reorder: Reorderer::new(first),
            summary: Summary::default(),
            last_error: None,
            patience: Duration::ZERO,
            behind_since: None,
            statements: None,
            key_updates: None,
            held: Vec::new(),
        }
    }

    /// A sender for the keys of epochs delivered to the purchase after the receiver was made
    /// (a seller's rotation), e.g. fed by
    /// [`FastData::forward_epoch_keys`](crate::FastData::forward_epoch_keys). From then on, a
    /// segment of a newer epoch than any held is kept until its keys come, instead of counting
    /// as a segment that does not verify: a live buyer follows the stream across rotations.
    pub fn key_updates(&mut self) -> mpsc::UnboundedSender<(EpochIndex, EpochKeys)> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.key_updates = Some(rx);
        tx
    }

    /// Adds the keys that came on [`Self::key_updates`] and opens the segments held for them.
    fn take_new_keys(
        &mut self,
        sink: &mut impl FnMut(OpenedSegment) -> Result<(), Error>,
    ) -> Result<(), Error> {
        let mut added = false;
        while let Some(Ok((epoch, keys))) = self.key_updates.as_mut().map(|rx| rx.try_recv()) {
            self.verifier.add_epoch(epoch, keys);
            added = true;
        }
        if !added {
            return Ok(());
        }
        for (from, bytes) in std::mem::take(&mut self.held) {
            match self.accept_from(from, &bytes, None, sink) {
                Ok(_) | Err(Error::Segment(_) | Error::Envelope(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Keeps the operator's signed statement of every segment downloaded over HTTP that
    /// verified ([`Self::take_statements`]), including duplicates served by other operators:
    /// the evidence for `Operators::report_equivocation`. About 140 bytes per segment until
    /// taken; live (MQTT) segments carry none.
    pub fn with_statements(mut self) -> Self {
        self.statements = Some(Vec::new());
        self
    }

    /// The statements kept since the last call ([`Self::with_statements`]; empty without it).
    pub fn take_statements(&mut self) -> Vec<ServedStatement> {
        self.statements
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    /// Waits up to `patience` for operators that refuse because they do not yet know the
    /// purchase as active ([`Error::is_operator_behind`]) instead of counting the refusal as a
    /// failure. Only for purchases known active on chain; the default is not to wait.
    pub fn with_patience(mut self, patience: Duration) -> Self {
        self.patience = patience;
        self
    }

    /// Receipts go out every max(1, `window`/4) segments to every operator, until an
    /// operator publishes its own window W at `GET /v1/terms`, which the receiver reads before
    /// the first request to it (until then: every [`DEFAULT_RECEIPT_EVERY`]).
    pub fn with_receipt_window(mut self, window: u64) -> Self {
        for cadence in &mut self.cadence {
            cadence.set_window(window);
        }
        self
    }

    /// Reads the terms of operator `index` once: its receipt window sets the cadence, and an
    /// operator of another chain is an error (it would refuse every signature).
    async fn read_terms(&mut self, index: usize) -> Result<(), Error> {
        if self.terms_read.get(index) != Some(&false) {
            return Ok(());
        }
        let Some(op) = self.operators.get(index) else {
            return Ok(());
        };
        match op.terms().await {
            Ok(Some(terms)) => {
                if terms.genesis != op.genesis() {
                    return Err(Error::Operator {
                        operator: op.endpoint().http_url.clone(),
                        code: Some("wrong_chain".into()),
                        detail: format!(
                            "serves another chain (genesis {:?}; this client signs for {:?})",
                            terms.genesis,
                            op.genesis()
                        ),
                    });
                }
                if let Some(cadence) = self.cadence.get_mut(index) {
                    cadence.set_window(terms.receipt_window);
                }
                self.terms_read[index] = true;
            }
            // An older daemon: keep the default cadence.
            Ok(None) => self.terms_read[index] = true,
            // Unreachable: the request that follows reports it.
            Err(e) => tracing::debug!("terms not read: {e}"),
        }
        Ok(())
    }

    /// The receipt cadence towards each operator, in the order given to [`Receiver::new`].
    pub fn receipt_cadence(&self) -> &[ReceiptCadence] {
        &self.cadence
    }

    /// On a refusal by an operator behind the chain, while patience lasts: moves to the next
    /// operator after a pause and returns `true`.
    async fn wait_if_behind(&mut self, error: &Error) -> bool {
        if !error.is_operator_behind() {
            return false;
        }
        let since = *self
            .behind_since
            .get_or_insert_with(tokio::time::Instant::now);
        if since.elapsed() >= self.patience {
            return false;
        }
        tracing::debug!("operator is behind the chain, asking again: {error}");
        self.last_error = Some(error.to_string());
        if !self.operators.is_empty() {
            self.current = (self.current + 1) % self.operators.len();
        }
        tokio::time::sleep(BEHIND_RETRY).await;
        true
    }

    /// Counters so far.
    pub fn summary(&self) -> Summary {
        Summary {
            duplicates: self.reorder.duplicates(),
            up_to: self.reorder.delivered_up_to(),
            ..self.summary.clone()
        }
    }

    /// The sequence expected next.
    pub fn next_expected(&self) -> Option<Sequence> {
        self.reorder.next_expected()
    }

    fn failover(&mut self, why: String) {
        tracing::warn!(
            operator = %self.operators.get(self.current).map(|o| o.endpoint().http_url.clone()).unwrap_or_default(),
            "failing over: {why}"
        );
        self.last_error = Some(why);
        self.summary.failovers += 1;
        if !self.operators.is_empty() {
            self.current = (self.current + 1) % self.operators.len();
        }
    }

    /// Verifies a segment and hands out whatever is now in order; `statement` is the serving
    /// operator's (already checked) signed statement of it, if it came with one.
    fn accept(
        &mut self,
        envelope_bytes: &[u8],
        statement: Option<&ServedStatement>,
        sink: &mut impl FnMut(OpenedSegment) -> Result<(), Error>,
    ) -> Result<bool, Error> {
        self.accept_from(self.current, envelope_bytes, statement, sink)
    }

    /// [`Self::accept`] of a segment operator `from` served.
    fn accept_from(
        &mut self,
        from: usize,
        envelope_bytes: &[u8],
        statement: Option<&ServedStatement>,
        sink: &mut impl FnMut(OpenedSegment) -> Result<(), Error>,
    ) -> Result<bool, Error> {
        // A header that does not parse is left to the verifier, which refuses it.
        if let Ok(header) = envelope::parse_header(envelope_bytes) {
            let epochs = self.verifier.epochs();
            // A rotation just before the purchase leaves segments of the previous epoch after
            // it (live, the publisher switches a little late): not bought, not openable,
            // skipped.
            if epochs.first().is_some_and(|first| header.epoch < *first) {
                return Ok(false);
            }
            // A later epoch whose keys may still arrive is held until they do.
            if self.key_updates.is_some() && epochs.last().is_some_and(|held| header.epoch > *held)
            {
                if self.held.len() < MAX_HELD {
                    self.held.push((from, envelope_bytes.to_vec()));
                }
                return Ok(false);
            }
        }
        let segment = match self.verifier.open(envelope_bytes) {
            Ok(segment) => segment,
            Err(e) => {
                self.summary.rejected += 1;
                return Err(e);
            }
        };
        if let (Some(kept), Some(statement)) = (self.statements.as_mut(), statement) {
            kept.push(statement.clone());
        }
        *self.bytes_from.entry(from).or_default() += envelope_bytes.len() as u64;
        let seen = self.seen_from.entry(from).or_default();
        *seen = (*seen).max(segment.header.sequence);
        if let Some(cadence) = self.cadence.get_mut(from) {
            cadence.received(1, Instant::now());
        }
        let ready = self.reorder.push(segment);
        let progressed = !ready.is_empty();
        for segment in ready {
            self.summary.segments += 1;
            self.summary.bytes += segment.payload.len() as u64;
            sink(segment)?;
        }
        Ok(progressed)
    }

    /// Posts a cumulative receipt to operator `index` for what it served and was delivered in
    /// order, unless it would acknowledge nothing new.
    async fn receipt_to(&mut self, index: usize) {
        let (Some(delivered), Some(seen)) =
            (self.reorder.delivered_up_to(), self.seen_from.get(&index))
        else {
            return;
        };
        let up_to = delivered.min(*seen);
        let bytes = self.bytes_from.get(&index).copied().unwrap_or(0);
        let (Some(op), Some(cadence)) = (self.operators.get(index), self.cadence.get_mut(index))
        else {
            return;
        };
        if bytes == 0 || self.receipted.get(&index) == Some(&(up_to, bytes)) {
            cadence.sent();
            return;
        }
        match op
            .post_receipt(&self.buyer, self.purchase, up_to, bytes)
            .await
        {
            Ok(_) => {
                self.receipted.insert(index, (up_to, bytes));
                cadence.sent();
            }
            Err(e) => {
                tracing::info!(operator = %op.endpoint().http_url, "receipt not accepted: {e}");
                if e.is_operator_code("beyond_served") {
                    cadence.failed_after(Instant::now(), RECEIPT_RETRY_UNSTORED);
                } else {
                    cadence.failed(Instant::now());
                }
            }
        }
    }

    /// Posts the receipts that are due ([`ReceiptCadence::due`]).
    async fn receipts_due(&mut self) {
        let now = Instant::now();
        for index in 0..self.cadence.len() {
            if self.cadence[index].due(now) {
                self.receipt_to(index).await;
            }
        }
    }

    /// Posts a final receipt to every operator with unreceipted data.
    async fn final_receipts(&mut self) {
        for index in 0..self.cadence.len() {
            if self.cadence[index].unreceipted() > 0 {
                self.receipt_to(index).await;
            }
        }
    }

    /// Learns the receipt window of operator `index` from a download answer: the window ends
    /// W segments past the last receipt it accepted.
    fn learn_window(&mut self, index: usize, window_end: Option<Sequence>) {
        if let (Some(end), Some((up_to, _)), Some(cadence)) = (
            window_end,
            self.receipted.get(&index),
            self.cadence.get_mut(index),
        ) {
            if end > *up_to {
                cadence.narrow(end - up_to);
            }
        }
    }

    /// Downloads up to `last` (inclusive; `None`: whatever the operators have) over HTTP,
    /// handing verified segments in order to `sink`, with receipts as described in the
    /// [module docs](self) and a final one to every operator that served data. Fails over
    /// between operators; fails when every operator failed twice in a row without progress.
    pub async fn download(
        &mut self,
        last: Option<Sequence>,
        mut sink: impl FnMut(OpenedSegment) -> Result<(), Error>,
    ) -> Result<Summary, Error> {
        let result = self.download_inner(last, &mut sink).await;
        self.final_receipts().await;
        result
    }

    async fn download_inner(
        &mut self,
        last: Option<Sequence>,
        sink: &mut impl FnMut(OpenedSegment) -> Result<(), Error>,
    ) -> Result<Summary, Error> {
        if self.operators.is_empty() {
            return Err(Error::NoOperator("the stream has no operators".into()));
        }
        let mut fruitless = 0usize;
        // Operators that answered "nothing more" in a row (for open-ended downloads).
        let mut exhausted = 0usize;
        loop {
            self.take_new_keys(sink)?;
            if let (Some(next), Some(last)) = (self.reorder.next_expected(), last) {
                if next > last {
                    return Ok(self.summary());
                }
            }
            if fruitless >= 2 * self.operators.len() {
                return Err(Error::NoOperator(
                    self.last_error
                        .clone()
                        .unwrap_or_else(|| "no operator has the missing segments".into()),
                ));
            }
            if last.is_none() && exhausted >= self.operators.len() {
                return Ok(self.summary());
            }
            if let Err(e) = self.read_terms(self.current).await {
                fruitless += 1;
                self.failover(e.to_string());
                continue;
            }
            let op = self.operators[self.current].clone();
            let from = self.reorder.next_expected();
            let download = match op
                .download(&self.buyer, self.purchase, self.expiry, from, last)
                .await
            {
                Ok(d) => d,
                Err(e) => {
                    if !self.wait_if_behind(&e).await {
                        fruitless += 1;
                        self.failover(e.to_string());
                    }
                    continue;
                }
            };
            self.behind_since = None;
            self.learn_window(self.current, download.window_end);
            let mut progressed = false;
            let mut bad = None;
            for (index, envelope_bytes) in download.envelopes.iter().enumerate() {
                match self.accept(envelope_bytes, download.statements.get(index), sink) {
                    Ok(p) => progressed |= p,
                    Err(Error::Segment(e)) => {
                        bad = Some(e);
                        break;
                    }
                    Err(Error::Envelope(e)) => {
                        bad = Some(e_to_string(e));
                        break;
                    }
                    Err(e) => return Err(e),
                }
                self.receipts_due().await;
            }
            // A frame without the operator's valid signature is refused like a corrupt
            // segment: not accepted, so never receipted, and the operator is left.
            if let (None, Some(refused)) = (&bad, &download.refused) {
                self.summary.rejected += 1;
                if matches!(refused, RefusedFrame::BadSignature { .. }) {
                    self.summary.bad_signatures += 1;
                }
                bad = Some(refused.to_string());
            }
            if progressed {
                fruitless = 0;
                exhausted = 0;
                // The operator's window moves only with receipts: acknowledge the whole chunk.
                self.receipt_to(self.current).await;
            }
            if let Some(why) = bad {
                fruitless += 1;
                self.failover(format!("served a segment that does not verify: {why}"));
                continue;
            }
            if !progressed {
                fruitless += 1;
                exhausted += 1;
                if last.is_none() && download.envelopes.is_empty() && self.reorder.gap().is_none() {
                    // This operator has nothing newer; ask the others before concluding.
                    self.current = (self.current + 1) % self.operators.len();
                } else {
                    self.failover(format!(
                        "no progress at sequence {:?}",
                        self.reorder.next_expected()
                    ));
                }
            }
        }
    }

    /// Follows the stream live until `stop` resolves: catches up over HTTP, subscribes to an
    /// operator's broker, fills gaps over HTTP, and fails over when the broker drops.
    /// Receipts follow [`ReceiptCadence`], with data left unreceipted at most `receipt_every`
    /// (capped at [`RECEIPT_INTERVAL`]), and a final one to every operator when it stops.
    pub async fn follow(
        &mut self,
        mut sink: impl FnMut(OpenedSegment) -> Result<(), Error>,
        receipt_every: Duration,
        stop: impl std::future::Future<Output = ()>,
    ) -> Result<Summary, Error> {
        let interval = receipt_every.clamp(Duration::from_millis(10), RECEIPT_INTERVAL);
        for cadence in &mut self.cadence {
            cadence.interval = interval;
        }
        let result = self.follow_inner(&mut sink, interval, stop).await;
        self.final_receipts().await;
        result
    }

    async fn follow_inner(
        &mut self,
        sink: &mut impl FnMut(OpenedSegment) -> Result<(), Error>,
        interval: Duration,
        stop: impl std::future::Future<Output = ()>,
    ) -> Result<Summary, Error> {
        tokio::pin!(stop);
        let mut fruitless = 0usize;
        let mut window_refusals = 0u32;
        loop {
            if fruitless >= 2 * self.operators.len().max(1) {
                return Err(Error::NoOperator(
                    self.last_error.clone().unwrap_or_default(),
                ));
            }
            // Catch up over HTTP from whoever has the data (after a cut-off by an operator
            // whose receipt window was used up, too).
            let before = self.reorder.next_expected();
            match self.download_inner(None, sink).await {
                Ok(_) => {}
                Err(Error::NoOperator(e)) => self.last_error = Some(e),
                Err(e) => return Err(e),
            }
            if self.reorder.next_expected() != before {
                fruitless = 0;
            }
            if self.operators.is_empty() {
                return Err(Error::NoOperator("the stream has no operators".into()));
            }
            // The operator grants a live session only while the receipts leave room in the
            // window: acknowledge everything received from it first.
            self.receipt_to(self.current).await;
            let op = self.operators[self.current].clone();
            let credentials = match op
                .access_session(&self.buyer, self.purchase, self.expiry)
                .await
            {
                Ok(c) => c,
                Err(e)
                    if e.is_operator_code("receipt_window") && window_refusals < WINDOW_RETRIES =>
                {
                    window_refusals += 1;
                    tracing::debug!("receipt window used up, receipting and asking again: {e}");
                    tokio::select! {
                        _ = &mut stop => return Ok(self.summary()),
                        _ = tokio::time::sleep(WINDOW_RETRY) => {}
                    }
                    continue;
                }
                Err(e) => {
                    window_refusals = 0;
                    if !self.wait_if_behind(&e).await {
                        fruitless += 1;
                        self.failover(e.to_string());
                    }
                    continue;
                }
            };
            self.behind_since = None;
            window_refusals = 0;
            if let (Some(window), Some(cadence)) = (
                credentials.receipt_window,
                self.cadence.get_mut(self.current),
            ) {
                cadence.set_window(window);
            }
            let client_id = credentials
                .mqtt_client_id(|| format!("{}-{}", credentials.username, crate::fresh_nonce()));
            let mut options = match op
                .endpoint()
                .broker_address()
                .and_then(|broker| broker.mqtt_options(client_id))
            {
                Ok(options) => options,
                Err(e) => {
                    fruitless += 1;
                    self.failover(e.to_string());
                    continue;
                }
            };
            options.set_credentials(credentials.username.clone(), credentials.password.clone());
            options.set_keep_alive(Duration::from_secs(15));
            options.set_max_packet_size(
                envelope::MAX_ENVELOPE_LEN + 1024,
                envelope::MAX_ENVELOPE_LEN + 1024,
            );
            let (client, mut eventloop) = AsyncClient::new(options, 256);
            // Checks the time-based part of the cadence and the gap timer.
            let mut ticker = tokio::time::interval((interval / 4).max(Duration::from_millis(10)));
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut gap_since: Option<tokio::time::Instant> = None;
            let mut quiet_since = tokio::time::Instant::now();
            let outcome: Result<(), String> = loop {
                tokio::select! {
                    _ = &mut stop => {
                        let _ = client.disconnect().await;
                        return Ok(self.summary());
                    }
                    _ = ticker.tick() => {
                        self.take_new_keys(sink)?;
                        // Nothing live for a while: segments may have reached only the HTTP
                        // side (a publisher that lost this broker), so look there too.
                        if quiet_since.elapsed() > LIVE_QUIET {
                            self.catch_up_live(sink).await?;
                            quiet_since = tokio::time::Instant::now();
                        }
                        self.receipts_due().await;
                        if let Some(since) = gap_since {
                            if since.elapsed() > Duration::from_secs(2) {
                                break Err(format!("gap at sequence {:?}", self.reorder.gap()));
                            }
                        }
                    }
                    polled = eventloop.poll() => match polled {
                        Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                            if ack.code != ConnectReturnCode::Success {
                                break Err(format!("broker refused: {:?}", ack.code));
                            }
                            if let Err(e) = client.try_subscribe(credentials.topic.clone(), QoS::AtLeastOnce) {
                                break Err(e.to_string());
                            }
                        }
                        // What was published between the catch-up and the subscription
                        // arrives neither live nor, without a later segment, as a gap.
                        Ok(Event::Incoming(Packet::SubAck(_))) => {
                            self.catch_up_live(sink).await?;
                            quiet_since = tokio::time::Instant::now();
                        }
                        Ok(Event::Incoming(Packet::Publish(publish))) => {
                            match self.accept(&publish.payload, None, sink) {
                                Ok(_) => {
                                    fruitless = 0;
                                    quiet_since = tokio::time::Instant::now();
                                    gap_since = match (self.reorder.gap(), gap_since) {
                                        (None, _) => None,
                                        (Some(_), None) => Some(tokio::time::Instant::now()),
                                        (Some(_), since) => since,
                                    };
                                    self.receipts_due().await;
                                }
                                Err(Error::Segment(e)) => break Err(format!("live segment does not verify: {e}")),
                                Err(Error::Envelope(e)) => break Err(format!("live segment is not an envelope: {e}")),
                                Err(e) => return Err(e),
                            }
                        }
                        Ok(_) => {}
                        Err(e) => break Err(e.to_string()),
                    }
                }
            };
            let _ = client.disconnect().await;
            // Acknowledge what the operator being left served before moving on.
            self.receipt_to(self.current).await;
            if let Err(why) = outcome {
                fruitless += 1;
                self.failover(why);
            }
        }
    }
}

impl FastData {
    /// Sends the keys of every epoch delivered to purchase `id` (opened with `keystore` and
    /// checked against the commitments) to `keys` ([`Receiver::key_updates`]), looking every
    /// `every`, until the purchase is no longer open or the receiver is gone. Keys that
    /// cannot be opened are logged and tried again at the next look.
    pub async fn forward_epoch_keys(
        &self,
        keystore: &Keystore,
        id: PurchaseId,
        keys: mpsc::UnboundedSender<(EpochIndex, EpochKeys)>,
        every: Duration,
    ) -> Result<(), Error> {
        let mut sent = std::collections::BTreeSet::new();
        loop {
            let purchase = self
                .purchase(id)
                .await?
                .ok_or_else(|| Error::NotFound(format!("no purchase {id}")))?;
            let open = |epoch| self.open_keys(keystore, &purchase, epoch);
            if !forward_new_keys(&purchase.access.epochs, &mut sent, &keys, open).await {
                return Ok(());
            }
            if !matches!(
                purchase.state,
                fastdata_primitives::escrow::PurchaseState::AwaitingKeys
                    | fastdata_primitives::escrow::PurchaseState::Active
            ) {
                return Ok(());
            }
            tokio::select! {
                _ = keys.closed() => return Ok(()),
                _ = tokio::time::sleep(every) => {}
            }
        }
    }
}

/// One look of [`FastData::forward_epoch_keys`]: sends the keys of `epochs` not yet `sent`,
/// opened by `open`, in epoch order. At a key that cannot be opened it logs and stops, so
/// that key comes again at the next look before any newer one (a receiver keeps a segment
/// waiting for keys only if its epoch is newer than all it holds). False once the receiver
/// is gone.
async fn forward_new_keys<F, Fut>(
    epochs: &[EpochIndex],
    sent: &mut std::collections::BTreeSet<EpochIndex>,
    keys: &mpsc::UnboundedSender<(EpochIndex, EpochKeys)>,
    mut open: F,
) -> bool
where
    F: FnMut(EpochIndex) -> Fut,
    Fut: std::future::Future<Output = Result<EpochKeys, Error>>,
{
    let mut epochs = epochs.to_vec();
    epochs.sort_unstable();
    for epoch in epochs {
        if sent.contains(&epoch) {
            continue;
        }
        match open(epoch).await {
            Ok(opened) => {
                if keys.send((epoch, opened)).is_err() {
                    return false;
                }
                sent.insert(epoch);
            }
            Err(e) => {
                tracing::warn!(
                    epoch,
                    "keys of epoch {epoch} not opened yet, trying again: {e}"
                );
                break;
            }
        }
    }
    true
}

impl Receiver {
    /// While following live: downloads over HTTP whatever the operators have beyond what was
    /// received, staying on the live operator.
    async fn catch_up_live(
        &mut self,
        sink: &mut impl FnMut(OpenedSegment) -> Result<(), Error>,
    ) -> Result<(), Error> {
        let live = self.current;
        let result = self.download_inner(None, sink).await;
        self.current = live;
        match result {
            Ok(_) | Err(Error::NoOperator(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

fn e_to_string(e: impl std::fmt::Display) -> String {
    e.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use fastdata_primitives::envelope::{seal, SegmentHeader};
    use sp_core::H256;

    const STREAM: StreamId = H256([7; 32]);

    fn keys() -> EpochKeys {
        EpochKeys::new([1; 32], [2; 32])
    }

    fn sealed(seq: Sequence, epoch: EpochIndex) -> Vec<u8> {
        let header = SegmentHeader {
            stream: STREAM,
            epoch,
            sequence: seq,
            timestamp: 1,
        };
        seal(&keys(), &header, format!("d{seq}").as_bytes()).unwrap()
    }

    fn verifier() -> Verifier {
        Verifier::new(STREAM, BTreeMap::from([(0, keys())]))
    }

    #[test]
    fn reorders_and_drops_duplicates() {
        let v = verifier();
        let mut r = Reorderer::new(Some(10));
        let mut out = Vec::new();
        for seq in [12, 10, 10, 11, 14, 13, 12, 9, 15] {
            out.extend(r.push(v.open(&sealed(seq, 0)).unwrap()));
        }
        let seqs: Vec<_> = out.iter().map(|s| s.header.sequence).collect();
        assert_eq!(seqs, vec![10, 11, 12, 13, 14, 15]);
        assert_eq!(r.duplicates(), 3);
        assert_eq!(r.next_expected(), Some(16));
        assert_eq!(r.gap(), None);
    }

    #[test]
    fn holds_back_behind_a_gap() {
        let v = verifier();
        let mut r = Reorderer::new(None);
        assert_eq!(r.push(v.open(&sealed(5, 0)).unwrap()).len(), 1);
        assert!(r.push(v.open(&sealed(7, 0)).unwrap()).is_empty());
        assert_eq!(r.gap(), Some(6));
        assert_eq!(r.pending(), 1);
        let ready = r.push(v.open(&sealed(6, 0)).unwrap());
        assert_eq!(ready.len(), 2);
        assert_eq!(r.delivered_up_to(), Some(7));
    }

    #[test]
    fn receipt_cadence_every_quarter_window_or_interval() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        // W = 32: a receipt every 8 segments, or 2 s after the first unreceipted one.
        let mut c = ReceiptCadence::new(32, RECEIPT_INTERVAL);
        assert_eq!(c.every(), 8);
        assert!(!c.due(t0), "nothing received, nothing due");
        c.received(7, t0);
        assert!(!c.due(at(1_999)));
        c.received(1, at(100));
        assert!(c.due(at(100)), "8 segments make a receipt due at once");
        c.sent();
        assert_eq!(c.unreceipted(), 0);
        assert!(!c.due(at(10_000)), "nothing new since the receipt");
        // One segment alone is receipted 2 s after it arrived, not before.
        c.received(1, at(3_000));
        c.received(1, at(4_500));
        assert!(!c.due(at(4_999)));
        assert!(c.due(at(5_000)));
        // A refused receipt is retried after 250 ms, then 500 ms, …
        c.failed(at(5_000));
        assert!(!c.due(at(5_249)));
        assert!(c.due(at(5_250)));
        c.failed(at(5_250));
        assert!(!c.due(at(5_749)));
        assert!(c.due(at(5_750)));
        // …capped at 30 s however often it failed.
        for _ in 0..40 {
            c.failed(at(6_000));
        }
        assert!(!c.due(at(35_999)));
        assert!(c.due(at(36_000)));
        c.sent();
        assert!(!c.due(at(36_000)));
    }

    #[test]
    fn receipt_cadence_follows_the_window() {
        for (window, every) in [(0, 1), (1, 1), (3, 1), (4, 1), (8, 2), (32, 8), (256, 64)] {
            assert_eq!(
                ReceiptCadence::new(window, RECEIPT_INTERVAL).every(),
                every,
                "W = {window}"
            );
        }
        // The default keeps within a quarter of the smallest window operators publish.
        let default = ReceiptCadence::default_cadence();
        assert_eq!(default.every(), DEFAULT_RECEIPT_EVERY);
        // A published window replaces the default; an observed smaller one narrows it.
        let mut c = ReceiptCadence::default_cadence();
        c.set_window(256);
        assert_eq!(c.every(), 64);
        c.narrow(16);
        assert_eq!(c.every(), 4);
        c.narrow(1_000);
        assert_eq!(c.every(), 4);
        // Receipting at this cadence, a receiver never holds more than max(1, W/4)
        // unreceipted segments.
        for window in [1u64, 2, 5, 32, 100] {
            let mut c = ReceiptCadence::new(window, RECEIPT_INTERVAL);
            let mut most = 0;
            for _ in 0..1_000 {
                c.received(1, t0());
                most = most.max(c.unreceipted());
                if c.due(t0()) {
                    c.sent();
                }
            }
            assert_eq!(most, (window / 4).max(1), "W = {window}");
        }
    }

    fn t0() -> Instant {
        static T0: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
        *T0.get_or_init(Instant::now)
    }

    #[test]
    fn verifier_rejects_tampering_foreign_streams_and_unpaid_epochs() {
        let v = verifier();
        let good = sealed(1, 0);
        assert_eq!(v.open(&good).unwrap().payload, b"d1");
        let mut tampered = good.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert!(v.open(&tampered).is_err());
        assert!(v
            .open(&sealed(2, 1))
            .unwrap_err()
            .to_string()
            .contains("epoch 1"));
        let other = Verifier::new(H256([8; 32]), BTreeMap::from([(0, keys())]));
        assert!(other
            .open(&good)
            .unwrap_err()
            .to_string()
            .contains("another stream"));
        assert!(v.open(b"garbage").is_err());
    }

    #[tokio::test]
    async fn keys_that_cannot_be_opened_yet_are_forwarded_at_a_later_look() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let mut sent = std::collections::BTreeSet::new();
        let mut attempts = Vec::new();
        // First look: epoch 1's sealed key is not readable yet.
        let open = |epoch, readable: bool, attempts: &mut Vec<EpochIndex>| {
            attempts.push(epoch);
            let result = match epoch == 1 && !readable {
                true => Err(Error::NotFound("no keys of epoch 1 on chain yet".into())),
                false => Ok(keys()),
            };
            async move { result }
        };
        assert!(
            forward_new_keys(&[2, 0, 1], &mut sent, &tx, |e| open(
                e,
                false,
                &mut attempts
            ))
            .await
        );
        let mut got = Vec::new();
        while let Ok((epoch, _)) = rx.try_recv() {
            got.push(epoch);
        }
        // Epoch 0 went; epoch 1 failed and epoch 2 waits behind it.
        assert_eq!(got, vec![0]);
        assert!(
            forward_new_keys(&[2, 0, 1], &mut sent, &tx, |e| open(e, true, &mut attempts)).await
        );
        while let Ok((epoch, _)) = rx.try_recv() {
            got.push(epoch);
        }
        assert_eq!(got, vec![0, 1, 2]);
        // Nothing is opened or sent twice.
        assert!(
            forward_new_keys(&[2, 0, 1], &mut sent, &tx, |e| open(e, true, &mut attempts)).await
        );
        assert!(rx.try_recv().is_err());
        assert_eq!(attempts, vec![0, 1, 1, 2]);
        // A gone receiver ends the forwarding.
        drop(rx);
        let mut fresh = std::collections::BTreeSet::new();
        assert!(!forward_new_keys(&[0], &mut fresh, &tx, |_| async { Ok(keys()) }).await);
    }
}

//! Receiving: verified plaintext in sequence order, from any replica.
//!
//! - [`Verifier`] opens envelopes with the purchase's epoch keys (AES-GCM tag over header and
//!   ciphertext, then σ_d) and checks that the header names the purchased stream.
//! - [`Reorderer`] turns segments arriving in any order, possibly twice, into a gap-free,
//!   duplicate-free sequence.
//! - [`Receiver::download`] fetches a range over the operators' HTTP API, posting a cumulative
//!   receipt after every chunk (operators serve only a window ahead of the last receipt),
//!   and fails over to the next operator when one is unreachable, refuses, has a gap, or
//!   serves a segment that does not verify.
//! - [`Receiver::follow`] catches up over HTTP, then subscribes to the live topic on an
//!   operator's broker (credentials from `POST /v1/broker/session`), fills gaps over HTTP and
//!   fails over to another replica when the broker connection drops.

use std::{
    collections::{BTreeMap, HashMap},
    time::Duration,
};

use fastdata_primitives::{
    envelope::{self, EpochKeys, OpenedSegment},
    BlockNumber, EpochIndex, PurchaseId, Sequence, StreamId,
};
use rumqttc::{AsyncClient, ConnectReturnCode, Event, Packet, QoS};

use crate::{
    account::Account,
    error::Error,
    operator::{OperatorClient, OperatorEndpoint},
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
    /// Segments refused (tampered, unknown epoch, other stream).
    pub rejected: u64,
    /// Fail-overs to another operator.
    pub failovers: u64,
    /// The last sequence handed out.
    pub up_to: Option<Sequence>,
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
    receipted: HashMap<usize, (Sequence, u64)>,
    reorder: Reorderer,
    summary: Summary,
    last_error: Option<String>,
    patience: Duration,
    behind_since: Option<tokio::time::Instant>,
}

/// How long [`BuyerChain::receiver`](crate::buyer::BuyerChain::receiver) waits for operators
/// that do not yet know an active purchase (their chain views trail finality by a block or
/// two).
pub const OPERATOR_LAG_PATIENCE: Duration = Duration::from_secs(30);

/// Pause before asking again an operator that is behind the chain.
const BEHIND_RETRY: Duration = Duration::from_millis(500);

impl Receiver {
    /// A receiver for `purchase` as `buyer`, trying `operators` in order; access requests are
    /// valid until block `expiry`. `first` is the first sequence wanted (`None`: from the
    /// start of the purchase's entitlement).
    pub fn new(
        buyer: Account,
        purchase: PurchaseId,
        verifier: Verifier,
        operators: Vec<OperatorEndpoint>,
        expiry: BlockNumber,
        first: Option<Sequence>,
    ) -> Self {
        Self {
            buyer,
            purchase,
            verifier,
            operators: operators.into_iter().map(OperatorClient::new).collect(),
            expiry,
            current: 0,
            bytes_from: HashMap::new(),
            receipted: HashMap::new(),
            reorder: Reorderer::new(first),
            summary: Summary::default(),
            last_error: None,
            patience: Duration::ZERO,
            behind_since: None,
        }
    }

    /// Waits up to `patience` for operators that refuse because they do not yet know the
    /// purchase as active ([`Error::is_operator_behind`]) instead of counting the refusal as a
    /// failure. Only for purchases known active on chain; the default is not to wait.
    pub fn with_patience(mut self, patience: Duration) -> Self {
        self.patience = patience;
        self
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

    fn accept(
        &mut self,
        envelope_bytes: &[u8],
        sink: &mut impl FnMut(OpenedSegment) -> Result<(), Error>,
    ) -> Result<bool, Error> {
        let segment = match self.verifier.open(envelope_bytes) {
            Ok(segment) => segment,
            Err(e) => {
                self.summary.rejected += 1;
                return Err(e);
            }
        };
        *self.bytes_from.entry(self.current).or_default() += envelope_bytes.len() as u64;
        let ready = self.reorder.push(segment);
        let progressed = !ready.is_empty();
        for segment in ready {
            self.summary.segments += 1;
            self.summary.bytes += segment.payload.len() as u64;
            sink(segment)?;
        }
        Ok(progressed)
    }

    async fn receipt(&mut self) {
        let Some(up_to) = self.reorder.delivered_up_to() else {
            return;
        };
        let bytes = self.bytes_from.get(&self.current).copied().unwrap_or(0);
        if bytes == 0 || self.receipted.get(&self.current) == Some(&(up_to, bytes)) {
            return;
        }
        if let Some(op) = self.operators.get(self.current) {
            match op
                .post_receipt(&self.buyer, self.purchase, up_to, bytes)
                .await
            {
                Ok(_) => {
                    self.receipted.insert(self.current, (up_to, bytes));
                }
                Err(e) => tracing::info!("receipt not accepted: {e}"),
            }
        }
    }

    /// Downloads up to `last` (inclusive; `None`: whatever the operators have) over HTTP,
    /// handing verified segments in order to `sink`. Fails over between operators; fails when
    /// every operator failed twice in a row without progress.
    pub async fn download(
        &mut self,
        last: Option<Sequence>,
        mut sink: impl FnMut(OpenedSegment) -> Result<(), Error>,
    ) -> Result<Summary, Error> {
        if self.operators.is_empty() {
            return Err(Error::NoOperator("the stream has no operators".into()));
        }
        let mut fruitless = 0usize;
        // Operators that answered "nothing more" in a row (for open-ended downloads).
        let mut exhausted = 0usize;
        loop {
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
            let mut progressed = false;
            let mut bad = None;
            for envelope_bytes in &download.envelopes {
                match self.accept(envelope_bytes, &mut sink) {
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
            }
            if progressed {
                fruitless = 0;
                exhausted = 0;
                self.receipt().await;
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
    /// operator's broker, fills gaps over HTTP, and fails over when the broker drops. Posts a
    /// receipt every `receipt_every`.
    pub async fn follow(
        &mut self,
        mut sink: impl FnMut(OpenedSegment) -> Result<(), Error>,
        receipt_every: Duration,
        stop: impl std::future::Future<Output = ()>,
    ) -> Result<Summary, Error> {
        tokio::pin!(stop);
        let mut fruitless = 0usize;
        loop {
            if fruitless >= 2 * self.operators.len().max(1) {
                return Err(Error::NoOperator(
                    self.last_error.clone().unwrap_or_default(),
                ));
            }
            // Catch up over HTTP from whoever has the data.
            match self.download(None, &mut sink).await {
                Ok(_) => {}
                Err(Error::NoOperator(e)) => self.last_error = Some(e),
                Err(e) => return Err(e),
            }
            let op = self.operators[self.current].clone();
            let credentials = match op
                .access_session(&self.buyer, self.purchase, self.expiry)
                .await
            {
                Ok(c) => c,
                Err(e) => {
                    if !self.wait_if_behind(&e).await {
                        fruitless += 1;
                        self.failover(e.to_string());
                    }
                    continue;
                }
            };
            self.behind_since = None;
            let client_id = format!("{}-{}", credentials.username, crate::fresh_nonce());
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
            let mut ticker = tokio::time::interval(receipt_every);
            let mut gap_since: Option<tokio::time::Instant> = None;
            let outcome: Result<(), String> = loop {
                tokio::select! {
                    _ = &mut stop => {
                        let _ = client.disconnect().await;
                        self.receipt().await;
                        return Ok(self.summary());
                    }
                    _ = ticker.tick() => {
                        self.receipt().await;
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
                        Ok(Event::Incoming(Packet::Publish(publish))) => {
                            match self.accept(&publish.payload, &mut sink) {
                                Ok(_) => {
                                    fruitless = 0;
                                    gap_since = match (self.reorder.gap(), gap_since) {
                                        (None, _) => None,
                                        (Some(_), None) => Some(tokio::time::Instant::now()),
                                        (Some(_), since) => since,
                                    };
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
            if let Err(why) = outcome {
                fruitless += 1;
                self.failover(why);
            }
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
}

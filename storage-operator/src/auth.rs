//! Authorization decisions: who may upload, subscribe, download, from the local chain view.
//!
//! Every decision here is made from [`ChainView`] (memory) and the nonce table (local disk);
//! there is no network call on this path. Both broker backends and the HTTP API call the same
//! functions, so a rule is written once.
//!
//! - A **seller** presents a [`SignedUploadToken`]: the stream must be hosted here, open, with
//!   this operator among its assigned ones, the token's epoch must exist, the signature must be
//!   the stream seller's, the token addressed to this operator, unexpired at the last finalized
//!   block, and its nonce above the last one accepted for (stream, seller).
//! - A **buyer** presents a [`SignedAccessRequest`]: the purchase must be known, active, inside
//!   its access period, of a stream hosted here; signature by the buyer, addressed here,
//!   unexpired, nonce above the last accepted for the purchase.
//! - Every signature is checked for the genesis hash of the chain the daemon follows, so a
//!   token signed for another network is a bad signature here.
//! - **A purchase grants exactly what it bought** ([`Authorizer::entitlement_start`]): a batch
//!   its window `first..=last` over HTTP and no live topic; a stream the data from its
//!   `start_head` (the stream head when it was bought) on.
//! - **Bounded free data**: past its last receipt a buyer gets at most the receipt window W,
//!   by the one rule [`crate::receipts::window_end`] for HTTP and live subscribers alike; a
//!   live subscriber whose window is used up is refused ([`Refusal::ReceiptWindowExhausted`])
//!   until a receipt moves it.
//! - Nonces are recorded durably in the same transaction as the check (replays are refused
//!   across restarts).

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use codec::{Decode, Encode};
use fastdata_primitives::{
    envelope::{self, SegmentHeader},
    escrow::PurchaseState,
    tokens::{SignedAccessRequest, SignedUploadToken, TokenError, UploadTarget},
    AccountId, BlockNumber, EpochIndex, PurchaseId, Sequence, StreamId,
};
use sp_core::{sr25519, H256};

use crate::{
    chain::{ChainView, PurchaseInfo},
    config::DEFAULT_RECEIPT_WINDOW,
    metrics::Metrics,
    receipts::{acknowledged, live_window_open, window_end},
    store::Store,
};

/// Segments read per step while looking for a purchase's first entitled sequence.
const SCAN_CHUNK: usize = 256;
/// Most segments one call reads while looking for a purchase's first entitled sequence; the
/// next call goes on from where it stopped.
const SCAN_LIMIT: usize = 2 * SCAN_CHUNK;
/// Most purchases whose scan is kept in memory (then the cache restarts).
const MAX_CACHED_STARTS: usize = 100_000;

/// How far the search for a stream purchase's first entitled sequence got on this replica.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum StartScan {
    /// The first stored segment of a covered epoch, with nothing missing before it.
    Found(Sequence),
    /// Every sequence below `next` (from the start head on) is stored and of an epoch the
    /// purchase does not cover.
    Before(Sequence),
}

/// An upload token as the daemon receives it.
pub type UploadToken = SignedUploadToken<AccountId, BlockNumber>;
/// An access request as the daemon receives it.
pub type AccessRequest = SignedAccessRequest<AccountId, BlockNumber>;

/// Largest encoded token or request accepted (they are ~150 bytes).
pub const MAX_TOKEN_BYTES: usize = 1024;

/// The MQTT topic of a stream: `fast/<64 lowercase hex digits>/data`.
pub fn stream_topic(stream: &StreamId) -> String {
    format!("fast/{}/data", hex::encode(stream.as_bytes()))
}

/// The stream of a topic of the form [`stream_topic`], or `None`.
pub fn parse_stream_topic(topic: &str) -> Option<StreamId> {
    let hex_id = topic.strip_prefix("fast/")?.strip_suffix("/data")?;
    if hex_id.len() != 64 || hex_id.bytes().any(|b| b.is_ascii_uppercase()) {
        return None;
    }
    let mut id = [0u8; 32];
    hex::decode_to_slice(hex_id, &mut id).ok()?;
    Some(H256(id))
}

/// Decodes a SCALE value from hex (with or without `0x`), refusing oversized input and
/// trailing bytes.
pub fn decode_hex_scale<T: Decode>(what: &'static str, text: &str) -> Result<T, Refusal> {
    let text = text.trim();
    let text = text.strip_prefix("0x").unwrap_or(text);
    if text.len() > 2 * MAX_TOKEN_BYTES {
        return Err(Refusal::Malformed {
            what,
            detail: "too long".into(),
        });
    }
    let bytes = hex::decode(text).map_err(|e| Refusal::Malformed {
        what,
        detail: format!("not hex: {e}"),
    })?;
    decode_scale(what, &bytes)
}

/// Decodes a SCALE value from bytes, refusing oversized input and trailing bytes.
pub fn decode_scale<T: Decode>(what: &'static str, bytes: &[u8]) -> Result<T, Refusal> {
    if bytes.len() > MAX_TOKEN_BYTES {
        return Err(Refusal::Malformed {
            what,
            detail: "too long".into(),
        });
    }
    codec::DecodeAll::decode_all(&mut &bytes[..]).map_err(|e| Refusal::Malformed {
        what,
        detail: format!("bad SCALE encoding: {e}"),
    })
}

/// Who a broker client or HTTP caller is, once admitted.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Principal {
    /// The publisher of a stream's seller.
    Seller {
        /// The stream it may publish to.
        stream: StreamId,
        /// The seller account.
        seller: AccountId,
        /// The epoch of the presented token.
        epoch: EpochIndex,
    },
    /// A buyer's subscriber.
    Buyer {
        /// The purchase that pays.
        purchase: PurchaseId,
        /// The stream bought.
        stream: StreamId,
        /// The buyer account.
        buyer: AccountId,
    },
    /// The daemon's own broker client (ingest, control).
    Operator,
}

/// Why something was refused. The message says what the caller must fix.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
pub enum Refusal {
    /// Input that does not parse.
    #[error("malformed {what}: {detail}")]
    Malformed {
        /// What was being parsed.
        what: &'static str,
        /// Why it failed.
        detail: String,
    },
    /// A token or request failed its checks.
    #[error("{}", token_message(.0))]
    Token(TokenError),
    /// The purchase is not known to this operator.
    #[error("unknown purchase {0}: wait until it is finalized, or ask an operator assigned to its stream")]
    UnknownPurchase(PurchaseId),
    /// The purchase is not active.
    #[error("purchase {purchase} is {state:?}; only active purchases are served")]
    PurchaseNotActive {
        /// The purchase.
        purchase: PurchaseId,
        /// Its state.
        state: PurchaseState,
    },
    /// Now is outside the purchase's access period.
    #[error("block {now} is outside the access period {start}..{end} of the purchase")]
    OutsideAccessPeriod {
        /// Finalized block.
        now: BlockNumber,
        /// First block of access.
        start: BlockNumber,
        /// First block after access.
        end: BlockNumber,
    },
    /// The topic is not the one the principal may use.
    #[error("topic {0:?} is not allowed; use fast/<stream id hex>/data of your own stream")]
    WrongTopic(String),
    /// The principal may not do this at all.
    #[error("{0} is not permitted for this client")]
    NotPermitted(&'static str),
    /// A batch purchase has no live topic.
    #[error("purchase {0} is a batch: it is served over HTTP only (GET /v1/purchases/{0}/segments), with no live subscription")]
    BatchNotLive(PurchaseId),
    /// The live subscriber used up its receipt window.
    #[error("receipt window used up: this operator stored up to sequence {stored}, your receipts allow up to {window_end}; post a receipt (POST /v1/receipts) up to at least {needed} to receive live data again")]
    ReceiptWindowExhausted {
        /// The purchase.
        purchase: PurchaseId,
        /// Highest sequence the current receipt allows.
        window_end: Sequence,
        /// Highest sequence stored here.
        stored: Sequence,
        /// Smallest `up_to_sequence` that opens the window again.
        needed: Sequence,
    },
    /// A segment failed validation.
    #[error("segment refused: {0}")]
    Segment(SegmentFault),
    /// The credentials are unknown.
    #[error("unknown credentials: present an upload token or access request")]
    UnknownCredentials,
    /// Local storage failed; try again.
    #[error("storage failure, try again later: {0}")]
    Storage(String),
    /// The stream's hosting quota is used up here, or its hosting funds are exhausted.
    #[error("hosting quota used up: this operator stores {stored} of the {quota} bytes of the stream that its seller's hosting pays for; raise the quota or add funds (`fastdata stream fund-hosting`)")]
    QuotaExhausted {
        /// Bytes of the stream stored here.
        stored: u64,
        /// Bytes the stream may store (0 while its hosting funds are exhausted).
        quota: u64,
    },
}

/// Why a segment failed validation.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
pub enum SegmentFault {
    /// Not a well-formed envelope, or over the size limit.
    #[error("{0}")]
    Envelope(envelope::EnvelopeError),
    /// The header names another stream than the topic's.
    #[error("header names stream 0x{}, published on another stream's topic", hex::encode(.0.as_bytes()))]
    WrongStream(StreamId),
    /// The header's epoch is not open on chain yet.
    #[error("epoch {epoch} is not open on chain (current {current})")]
    FutureEpoch {
        /// The segment's epoch.
        epoch: EpochIndex,
        /// The stream's current epoch.
        current: EpochIndex,
    },
}

impl SegmentFault {
    /// Short reason for metrics (`segments_refused_total{reason}`).
    pub fn reason(&self) -> &'static str {
        match self {
            SegmentFault::Envelope(envelope::EnvelopeError::TooLong) => "too_large",
            SegmentFault::Envelope(_) => "malformed",
            SegmentFault::WrongStream(_) => "wrong_stream",
            SegmentFault::FutureEpoch { .. } => "future_epoch",
        }
    }
}

fn token_message(e: &TokenError) -> &'static str {
    match e {
        TokenError::BadSignature => "bad signature: sign the exact payload with the right account",
        TokenError::WrongOperator => "addressed to another operator: request one per operator",
        TokenError::Expired => "expired: sign a fresh one",
        TokenError::Replayed => "replayed: use a new, higher nonce",
        TokenError::UnknownStream => "unknown stream: this operator does not host it",
        TokenError::StreamClosed => "stream closed: it accepts no more uploads",
        TokenError::NotAssigned => "this operator is not assigned to the stream",
        TokenError::UnknownEpoch => "unknown epoch: open it on chain first",
    }
}

impl Refusal {
    /// A short machine-readable reason, for metrics and logs.
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::Malformed { .. } => "malformed",
            Refusal::Token(TokenError::BadSignature) => "bad_signature",
            Refusal::Token(TokenError::WrongOperator) => "wrong_operator",
            Refusal::Token(TokenError::Expired) => "expired",
            Refusal::Token(TokenError::Replayed) => "replayed",
            Refusal::Token(_) => "not_assigned",
            Refusal::UnknownPurchase(_) => "unknown_purchase",
            Refusal::PurchaseNotActive { .. } => "purchase_not_active",
            Refusal::OutsideAccessPeriod { .. } => "outside_access_period",
            Refusal::WrongTopic(_) => "wrong_topic",
            Refusal::NotPermitted(_) => "not_permitted",
            Refusal::BatchNotLive(_) => "batch_not_live",
            Refusal::ReceiptWindowExhausted { .. } => "receipt_window",
            Refusal::Segment(_) => "bad_segment",
            Refusal::UnknownCredentials => "unknown_credentials",
            Refusal::Storage(_) => "storage",
            Refusal::QuotaExhausted { .. } => "quota_exhausted",
        }
    }
}

/// The sr25519 key of an account (accounts are sr25519 public keys).
pub fn public_key(account: &AccountId) -> sr25519::Public {
    let raw: &[u8; 32] = account.as_ref();
    sr25519::Public::from_raw(*raw)
}

/// Makes every authorization decision of the daemon.
pub struct Authorizer {
    me: AccountId,
    genesis: H256,
    window: u64,
    view: Arc<dyn ChainView>,
    store: Arc<Store>,
    metrics: Arc<Metrics>,
    /// Progress of [`Self::entitlement_start`] per stream purchase.
    scanned_start: Mutex<HashMap<PurchaseId, StartScan>>,
}

impl Authorizer {
    /// An authorizer for operator `me` on the chain with genesis hash `genesis`, with the
    /// default receipt window.
    pub fn new(
        me: AccountId,
        genesis: H256,
        view: Arc<dyn ChainView>,
        store: Arc<Store>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            me,
            genesis,
            window: DEFAULT_RECEIPT_WINDOW,
            view,
            store,
            metrics,
            scanned_start: Mutex::new(HashMap::new()),
        }
    }

    /// Uses the receipt window `window` (W, at least 1).
    pub fn with_receipt_window(mut self, window: u64) -> Self {
        self.window = window.max(1);
        self
    }

    /// This operator's account.
    pub fn me(&self) -> &AccountId {
        &self.me
    }

    /// The genesis hash signatures are checked for.
    pub fn genesis(&self) -> H256 {
        self.genesis
    }

    /// The receipt window W.
    pub fn receipt_window(&self) -> u64 {
        self.window
    }

    /// The chain view decisions are made from.
    pub fn view(&self) -> &Arc<dyn ChainView> {
        &self.view
    }

    fn record<T>(&self, action: &'static str, result: Result<T, Refusal>) -> Result<T, Refusal> {
        self.metrics.auth(action, result.is_ok());
        if let Err(refusal) = &result {
            tracing::info!(action, reason = refusal.code(), "refused: {refusal}");
        }
        result
    }

    /// Admits a seller's publisher with its upload token (consumes the token's nonce).
    pub fn admit_upload(&self, token: &UploadToken) -> Result<Principal, Refusal> {
        let result = self.check_upload(token);
        self.record("upload_token", result)
    }

    fn check_upload(&self, token: &UploadToken) -> Result<Principal, Refusal> {
        let payload = &token.payload;
        let stream = self
            .view
            .stream(&payload.stream)
            .ok_or(Refusal::Token(TokenError::UnknownStream))?;
        // The chain's rule (`pallet-offers` checks the same), then this operator's own.
        payload
            .check_target(&UploadTarget {
                open: stream.open,
                operators: &stream.operators,
                epoch: stream.epoch,
                oldest_epoch: stream.oldest_epoch,
            })
            .map_err(Refusal::Token)?;
        let stored = self
            .store
            .stored_bytes(&stream.stream)
            .map_err(|e| Refusal::Storage(e.to_string()))?;
        if stored >= stream.quota_bytes {
            return Err(Refusal::QuotaExhausted {
                stored,
                quota: stream.quota_bytes,
            });
        }
        let seller = public_key(&stream.seller);
        let now = self.view.finalized_block();
        let mut context = b"upload".to_vec();
        context.extend_from_slice(stream.stream.as_bytes());
        context.extend_from_slice(stream.seller.as_ref());
        self.store
            .with_nonce(&context, |last| {
                token
                    .check(&seller, &self.me, now, last, &self.genesis)
                    .map(|()| payload.nonce)
            })
            .map_err(|e| Refusal::Storage(e.to_string()))?
            .map_err(Refusal::Token)?;
        Ok(Principal::Seller {
            stream: stream.stream,
            seller: stream.seller,
            epoch: payload.epoch,
        })
    }

    /// Admits a buyer with its access request (consumes the request's nonce).
    pub fn admit_access(
        &self,
        request: &AccessRequest,
    ) -> Result<(Principal, PurchaseInfo), Refusal> {
        let result = self.check_access(request);
        self.record("access_request", result)
    }

    fn check_access(&self, request: &AccessRequest) -> Result<(Principal, PurchaseInfo), Refusal> {
        let purchase = self.usable_purchase(request.payload.purchase)?;
        let buyer = public_key(&purchase.buyer);
        let now = self.view.finalized_block();
        let mut context = b"access".to_vec();
        context.extend_from_slice(&purchase.id.to_be_bytes());
        self.store
            .with_nonce(&context, |last| {
                request
                    .check(&buyer, &self.me, now, last, &self.genesis)
                    .map(|()| request.payload.nonce)
            })
            .map_err(|e| Refusal::Storage(e.to_string()))?
            .map_err(Refusal::Token)?;
        let principal = Principal::Buyer {
            purchase: purchase.id,
            stream: purchase.stream,
            buyer: purchase.buyer.clone(),
        };
        Ok((principal, purchase))
    }

    /// Admits a buyer's live subscriber (`POST /v1/broker/session`, VerneMQ `access` logins):
    /// [`Self::admit_access`], then [`Self::live_allowed`].
    pub fn admit_live(
        &self,
        request: &AccessRequest,
    ) -> Result<(Principal, PurchaseInfo), Refusal> {
        let result = self
            .check_access(request)
            .and_then(|(principal, purchase)| {
                self.live_allowed(&purchase)?;
                Ok((principal, purchase))
            });
        self.record("live_access", result)
    }

    /// The first sequence `purchase` pays for and may be served: a batch's `first`; for a
    /// stream, the first stored segment from its `start_head` (the stream head attested when
    /// it was bought; 0 if the view does not state it) on that is sealed under an epoch it
    /// has keys for. The attested head lags the publisher, and a rotation just before the
    /// purchase leaves segments of the previous epoch after it: the buyer neither holds nor
    /// paid for their keys, so serving starts past them, but only past segments this replica
    /// holds: with one missing before the first covered segment, serving starts at the start
    /// head. `None` while there is no such segment.
    ///
    /// One call reads at most [`SCAN_LIMIT`] segments, without holding the cache's lock;
    /// the next call goes on from there (`None` until the scan is done).
    pub fn entitlement_start(&self, purchase: &PurchaseInfo) -> Result<Option<Sequence>, Refusal> {
        if let Some((first, _)) = purchase.sequence_window() {
            return Ok(Some(first));
        }
        let start_head = self.view.start_head(purchase.id).unwrap_or(0);
        let cached = self.cached_scan(purchase.id);
        let mut from = match cached {
            Some(StartScan::Found(start)) => return Ok(Some(start)),
            Some(StartScan::Before(next)) => next,
            None => start_head,
        };
        let mut read = 0;
        while read < SCAN_LIMIT {
            let chunk = self
                .store
                .segments(&purchase.stream, from, Sequence::MAX, SCAN_CHUNK)
                .map_err(|e| Refusal::Storage(e.to_string()))?;
            read += chunk.len();
            let Some(last) = chunk.last().map(|s| s.sequence) else {
                break;
            };
            for segment in &chunk {
                if segment.sequence != from {
                    // A hole: what it hides is unknown, so nothing before it is skipped.
                    return Ok(Some(start_head));
                }
                if envelope::parse_header(&segment.envelope)
                    .is_ok_and(|h| purchase.covers_epoch(h.epoch))
                {
                    self.cache_scan(purchase.id, StartScan::Found(from));
                    return Ok(Some(from));
                }
                from = from.saturating_add(1);
            }
            if last == Sequence::MAX {
                break;
            }
        }
        if cached != Some(StartScan::Before(from)) {
            self.cache_scan(purchase.id, StartScan::Before(from));
        }
        Ok(None)
    }

    fn cached_scan(&self, purchase: PurchaseId) -> Option<StartScan> {
        self.scanned_start
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(&purchase)
            .copied()
    }

    fn cache_scan(&self, purchase: PurchaseId, scan: StartScan) {
        let mut cache = self
            .scanned_start
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if cache.len() >= MAX_CACHED_STARTS && !cache.contains_key(&purchase) {
            cache.clear();
        }
        cache.insert(purchase, scan);
    }

    /// `(start, window end)` of `purchase`: its [`Self::entitlement_start`] and the highest
    /// sequence its last receipt lets it obtain ([`window_end`]); `None` while its start is
    /// unknown.
    pub fn window(&self, purchase: &PurchaseInfo) -> Result<Option<(Sequence, Sequence)>, Refusal> {
        let Some(start) = self.entitlement_start(purchase)? else {
            return Ok(None);
        };
        let acked =
            acknowledged(&self.store, purchase.id).map_err(|e| Refusal::Storage(e.to_string()))?;
        Ok(Some((start, window_end(start, acked, self.window))))
    }

    /// `purchase` may hold a live subscription now: it is a stream purchase (a batch has no
    /// live topic) and its receipt window is not used up ([`live_window_open`] against the
    /// head this daemon stores).
    pub fn live_allowed(&self, purchase: &PurchaseInfo) -> Result<(), Refusal> {
        if purchase.sequence_window().is_some() {
            return Err(Refusal::BatchNotLive(purchase.id));
        }
        let Some((_, end)) = self.window(purchase)? else {
            return Ok(());
        };
        let stored = self
            .store
            .last_sequence(&purchase.stream)
            .map_err(|e| Refusal::Storage(e.to_string()))?;
        match stored {
            Some(stored) if !live_window_open(Some(stored), end) => {
                Err(Refusal::ReceiptWindowExhausted {
                    purchase: purchase.id,
                    window_end: end,
                    stored,
                    // The window must end past the stored head: up_to + W > stored.
                    needed: (stored + 1).saturating_sub(self.window),
                })
            }
            _ => Ok(()),
        }
    }

    /// Whether the live grant of `purchase` may stay open under the receipt window (`None`
    /// when local storage failed: keep the grant as it is). A purchase that is not usable at
    /// all is closed here; chain-driven revocation removes it.
    pub fn live_window_decision(&self, purchase: PurchaseId) -> Option<bool> {
        let result = self
            .usable_purchase(purchase)
            .and_then(|p| self.live_allowed(&p));
        match result {
            Ok(()) => Some(true),
            Err(Refusal::Storage(e)) => {
                tracing::warn!(purchase, "receipt window not checked: {e}");
                None
            }
            Err(_) => Some(false),
        }
    }

    /// The purchase, if it entitles its buyer to data from this operator right now.
    pub fn usable_purchase(&self, id: PurchaseId) -> Result<PurchaseInfo, Refusal> {
        let purchase = self.view.purchase(id).ok_or(Refusal::UnknownPurchase(id))?;
        if purchase.state != PurchaseState::Active {
            return Err(Refusal::PurchaseNotActive {
                purchase: id,
                state: purchase.state,
            });
        }
        let now = self.view.finalized_block();
        if now < purchase.access.start || now >= purchase.access.end {
            return Err(Refusal::OutsideAccessPeriod {
                now,
                start: purchase.access.start,
                end: purchase.access.end,
            });
        }
        let stream = self
            .view
            .stream(&purchase.stream)
            .ok_or(Refusal::Token(TokenError::UnknownStream))?;
        if !stream.operators.contains(&self.me) {
            return Err(Refusal::Token(TokenError::NotAssigned));
        }
        Ok(purchase)
    }

    /// `principal` is still entitled to what it was admitted for (stream hosted and open for a
    /// seller; for a buyer's live subscriber, purchase usable, a stream purchase, receipt
    /// window not used up).
    pub fn still_valid(&self, principal: &Principal) -> Result<(), Refusal> {
        match principal {
            Principal::Seller { stream, seller, .. } => {
                let s = self
                    .view
                    .stream(stream)
                    .ok_or(Refusal::Token(TokenError::UnknownStream))?;
                if !s.open {
                    return Err(Refusal::Token(TokenError::StreamClosed));
                }
                if !s.operators.contains(&self.me) {
                    return Err(Refusal::Token(TokenError::NotAssigned));
                }
                if &s.seller != seller {
                    return Err(Refusal::Token(TokenError::BadSignature));
                }
                // Nothing beyond the paid quota reaches live buyers either (checked per
                // message where the broker asks, VerneMQ's `auth_on_publish`).
                let stored = self
                    .store
                    .stored_bytes(stream)
                    .map_err(|e| Refusal::Storage(e.to_string()))?;
                if stored >= s.quota_bytes {
                    return Err(Refusal::QuotaExhausted {
                        stored,
                        quota: s.quota_bytes,
                    });
                }
                Ok(())
            }
            Principal::Buyer { purchase, .. } => {
                let purchase = self.usable_purchase(*purchase)?;
                self.live_allowed(&purchase)
            }
            Principal::Operator => Ok(()),
        }
    }

    /// May `principal` publish `payload` (if known) to `topic`?
    pub fn may_publish(
        &self,
        principal: &Principal,
        topic: &str,
        payload: Option<&[u8]>,
    ) -> Result<(), Refusal> {
        let result = self.check_publish(principal, topic, payload);
        self.record("publish", result)
    }

    fn check_publish(
        &self,
        principal: &Principal,
        topic: &str,
        payload: Option<&[u8]>,
    ) -> Result<(), Refusal> {
        let Principal::Seller { stream, .. } = principal else {
            return Err(Refusal::NotPermitted("publishing"));
        };
        if parse_stream_topic(topic) != Some(*stream) {
            return Err(Refusal::WrongTopic(topic.to_owned()));
        }
        self.still_valid(principal)?;
        if let Some(payload) = payload {
            self.check_segment(stream, payload)?;
        }
        Ok(())
    }

    /// May `principal` subscribe to `topic`?
    pub fn may_subscribe(&self, principal: &Principal, topic: &str) -> Result<(), Refusal> {
        let result = self.check_subscribe(principal, topic);
        self.record("subscribe", result)
    }

    fn check_subscribe(&self, principal: &Principal, topic: &str) -> Result<(), Refusal> {
        match principal {
            Principal::Buyer { stream, .. } => {
                if parse_stream_topic(topic) != Some(*stream) {
                    return Err(Refusal::WrongTopic(topic.to_owned()));
                }
                self.still_valid(principal)
            }
            Principal::Operator => {
                if topic == "fast/+/data" || parse_stream_topic(topic).is_some() {
                    Ok(())
                } else {
                    Err(Refusal::WrongTopic(topic.to_owned()))
                }
            }
            Principal::Seller { .. } => Err(Refusal::NotPermitted("subscribing")),
        }
    }

    /// Validates a segment received on the topic of `stream` without keys: size bounds,
    /// version, header naming the same stream, epoch not in the future.
    pub fn check_segment(
        &self,
        stream: &StreamId,
        payload: &[u8],
    ) -> Result<SegmentHeader, Refusal> {
        let header = envelope::parse_header(payload)
            .map_err(|e| Refusal::Segment(SegmentFault::Envelope(e)))?;
        if &header.stream != stream {
            return Err(Refusal::Segment(SegmentFault::WrongStream(header.stream)));
        }
        let assigned = self
            .view
            .stream(stream)
            .ok_or(Refusal::Token(TokenError::UnknownStream))?;
        if header.epoch > assigned.epoch {
            return Err(Refusal::Segment(SegmentFault::FutureEpoch {
                epoch: header.epoch,
                current: assigned.epoch,
            }));
        }
        Ok(header)
    }
}

/// Encodes a SCALE value as `0x`-hex (what clients put in passwords and headers).
pub fn to_hex_scale<T: Encode>(value: &T) -> String {
    format!("0x{}", hex::encode(value.encode()))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::chain::{
        tests::{account, assignment, live_purchase},
        ChainEvent, InMemoryChainView,
    };
    use fastdata_primitives::{
        envelope::{seal, EpochKeys},
        escrow::PurchaseTerms,
        tokens::{AccessRequest as AccessPayload, Signed, UploadToken as TokenPayload},
    };
    use sp_core::Pair;

    /// The genesis hash the unit tests' chain has.
    pub const GENESIS: H256 = H256::repeat_byte(0x47);

    pub fn pair(byte: u8) -> sr25519::Pair {
        sr25519::Pair::from_seed(&[byte; 32])
    }

    pub fn acct(pair: &sr25519::Pair) -> AccountId {
        AccountId::from(pair.public())
    }

    pub struct Fixture {
        pub view: Arc<InMemoryChainView>,
        pub auth: Arc<Authorizer>,
        pub seller: sr25519::Pair,
        pub buyer: sr25519::Pair,
        pub me: AccountId,
        pub stream: StreamId,
        pub store: Arc<Store>,
        _dir: tempfile::TempDir,
    }

    pub fn upload_token(f: &Fixture, nonce: u64, expiry: BlockNumber) -> UploadToken {
        Signed::sign(
            TokenPayload {
                stream: f.stream,
                operator: f.me.clone(),
                epoch: 0,
                expiry,
                nonce,
            },
            &f.seller,
            &GENESIS,
        )
    }

    pub fn access_request(f: &Fixture, purchase: PurchaseId, nonce: u64) -> AccessRequest {
        Signed::sign(
            AccessPayload {
                purchase,
                operator: f.me.clone(),
                expiry: 100,
                nonce,
            },
            &f.buyer,
            &GENESIS,
        )
    }

    pub fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(&dir.path().join("db.redb")).unwrap());
        let view = InMemoryChainView::shared();
        let seller = pair(1);
        let buyer = pair(3);
        let me = account(2);
        let mut a = assignment(7, 0, &[2, 9]);
        a.seller = acct(&seller);
        view.apply(ChainEvent::Finalized { number: 10 });
        view.apply(ChainEvent::StreamAssigned(a));
        let mut p = live_purchase(1, 0, 7, 50);
        p.buyer = acct(&buyer);
        view.apply(ChainEvent::PurchaseUpdated(p));
        let auth = Arc::new(Authorizer::new(
            me.clone(),
            GENESIS,
            view.clone(),
            store.clone(),
            Arc::new(Metrics::new()),
        ));
        Fixture {
            view,
            auth,
            seller,
            buyer,
            me,
            stream: H256::repeat_byte(7),
            store,
            _dir: dir,
        }
    }

    /// A chain view that also knows the purchases' start heads.
    pub struct WithStartHeads {
        pub inner: Arc<InMemoryChainView>,
        pub heads: Mutex<HashMap<PurchaseId, Sequence>>,
    }

    impl WithStartHeads {
        pub fn new(inner: Arc<InMemoryChainView>, heads: &[(PurchaseId, Sequence)]) -> Arc<Self> {
            Arc::new(Self {
                inner,
                heads: Mutex::new(heads.iter().copied().collect()),
            })
        }
    }

    impl ChainView for WithStartHeads {
        fn finalized_block(&self) -> BlockNumber {
            self.inner.finalized_block()
        }
        fn stream(&self, id: &StreamId) -> Option<crate::chain::StreamAssignment> {
            self.inner.stream(id)
        }
        fn streams(&self) -> Vec<crate::chain::StreamAssignment> {
            self.inner.streams()
        }
        fn purchase(&self, id: PurchaseId) -> Option<PurchaseInfo> {
            self.inner.purchase(id)
        }
        fn purchases_of(&self, stream: &StreamId) -> Vec<PurchaseInfo> {
            self.inner.purchases_of(stream)
        }
        fn operator_endpoint(&self, operator: &AccountId) -> Option<String> {
            self.inner.operator_endpoint(operator)
        }
        fn subscribe(&self) -> tokio::sync::broadcast::Receiver<ChainEvent> {
            self.inner.subscribe()
        }
        fn start_head(&self, purchase: PurchaseId) -> Option<Sequence> {
            self.heads.lock().unwrap().get(&purchase).copied()
        }
    }

    fn authorizer(f: &Fixture, heads: &[(PurchaseId, Sequence)], window: u64) -> Authorizer {
        Authorizer::new(
            f.me.clone(),
            GENESIS,
            WithStartHeads::new(f.view.clone(), heads),
            f.store.clone(),
            Arc::new(Metrics::new()),
        )
        .with_receipt_window(window)
    }

    fn store_segments(f: &Fixture, sequences: std::ops::RangeInclusive<Sequence>) {
        store_epoch_segments(f, 0, sequences);
    }

    fn store_epoch_segments(
        f: &Fixture,
        epoch: EpochIndex,
        sequences: std::ops::RangeInclusive<Sequence>,
    ) {
        let keys = EpochKeys::new([1; 32], [2; 32]);
        let segments: Vec<_> = sequences
            .map(|sequence| crate::store::NewSegment {
                stream: f.stream,
                sequence,
                envelope: seal(
                    &keys,
                    &SegmentHeader {
                        stream: f.stream,
                        epoch,
                        sequence,
                        timestamp: 1,
                    },
                    b"x",
                )
                .unwrap(),
            })
            .collect();
        f.store.insert_segments(&segments, 1).unwrap();
    }

    #[test]
    fn tokens_signed_for_another_chain_are_refused() {
        let f = fixture();
        let payload = TokenPayload {
            stream: f.stream,
            operator: f.me.clone(),
            epoch: 0,
            expiry: 20,
            nonce: 1,
        };
        let elsewhere = Signed::sign(payload.clone(), &f.seller, &H256::repeat_byte(1));
        assert_eq!(
            f.auth.admit_upload(&elsewhere),
            Err(Refusal::Token(TokenError::BadSignature))
        );
        assert!(f
            .auth
            .admit_upload(&Signed::sign(payload, &f.seller, &GENESIS))
            .is_ok());
    }

    #[test]
    fn upload_tokens_for_pruned_or_future_epochs_are_refused_as_on_chain() {
        let f = fixture();
        let mut a = f.view.stream(&f.stream).unwrap();
        (a.epoch, a.oldest_epoch) = (5, 3);
        f.view.apply(ChainEvent::StreamAssigned(a));
        let token = |epoch, nonce| {
            Signed::sign(
                TokenPayload {
                    stream: f.stream,
                    operator: f.me.clone(),
                    epoch,
                    expiry: 20,
                    nonce,
                },
                &f.seller,
                &GENESIS,
            )
        };
        // The chain pruned epochs before 3: their keys may be gone, so no uploads.
        assert_eq!(
            f.auth.admit_upload(&token(2, 1)),
            Err(Refusal::Token(TokenError::UnknownEpoch))
        );
        assert_eq!(
            f.auth.admit_upload(&token(6, 1)),
            Err(Refusal::Token(TokenError::UnknownEpoch))
        );
        assert!(f.auth.admit_upload(&token(3, 1)).is_ok());
        assert!(f.auth.admit_upload(&token(5, 2)).is_ok());
    }

    #[test]
    fn uploads_are_refused_once_the_hosting_quota_is_used_up_or_unfunded() {
        let f = fixture();
        let mut a = f.view.stream(&f.stream).unwrap();
        a.quota_bytes = 10;
        f.view.apply(ChainEvent::StreamAssigned(a.clone()));
        let segment = crate::store::NewSegment {
            stream: f.stream,
            sequence: 0,
            envelope: vec![0; 10],
        };
        assert!(f.auth.admit_upload(&upload_token(&f, 1, 20)).is_ok());
        f.store.insert_segments(&[segment], 10).unwrap();
        let refused = f.auth.admit_upload(&upload_token(&f, 2, 20));
        assert_eq!(
            refused,
            Err(Refusal::QuotaExhausted {
                stored: 10,
                quota: 10
            })
        );
        assert_eq!(refused.unwrap_err().code(), "quota_exhausted");
        // The refusal consumed no nonce: after the seller adds funds and quota, 2 is good.
        a.quota_bytes = 1_000;
        f.view.apply(ChainEvent::StreamAssigned(a.clone()));
        assert!(f.auth.admit_upload(&upload_token(&f, 2, 20)).is_ok());
        // A connected publisher may no longer publish once the quota is used up: the broker
        // forwards nothing more to live buyers.
        let seller = f.auth.admit_upload(&upload_token(&f, 3, 20)).unwrap();
        let topic = crate::auth::stream_topic(&f.stream);
        assert!(f.auth.may_publish(&seller, &topic, None).is_ok());
        a.quota_bytes = 10;
        f.view.apply(ChainEvent::StreamAssigned(a.clone()));
        assert!(matches!(
            f.auth.may_publish(&seller, &topic, None),
            Err(Refusal::QuotaExhausted {
                stored: 10,
                quota: 10
            })
        ));
        // Exhausted funds leave no quota at all.
        a.quota_bytes = 0;
        f.view.apply(ChainEvent::StreamAssigned(a));
        assert!(matches!(
            f.auth.admit_upload(&upload_token(&f, 4, 20)),
            Err(Refusal::QuotaExhausted { quota: 0, .. })
        ));
    }

    #[test]
    fn a_purchase_after_a_rotation_starts_at_its_first_epoch_segment() {
        // The attested head (4) lags the publisher, which kept sealing under epoch 0 until
        // sequence 7: the buyer of epoch 1 on is served from 8, the first it can open.
        let f = fixture();
        store_epoch_segments(&f, 0, 0..=7);
        store_epoch_segments(&f, 1, 8..=12);
        let mut p = f.view.purchase(1).unwrap();
        p.access.first_epoch = Some(1);
        p.access.epochs = vec![1];
        f.view.apply(ChainEvent::PurchaseUpdated(p.clone()));
        let auth = authorizer(&f, &[(1, 4)], 3);
        assert_eq!(auth.entitlement_start(&p), Ok(Some(8)));
        assert_eq!(auth.window(&p), Ok(Some((8, 10))));
        // Before any segment of its epochs is stored there is nothing to serve yet.
        let g = fixture();
        store_epoch_segments(&g, 0, 0..=7);
        let mut q = g.view.purchase(1).unwrap();
        q.access.epochs = vec![1];
        assert_eq!(authorizer(&g, &[(1, 4)], 3).entitlement_start(&q), Ok(None));
        // A replica missing part of the range skips nothing (what the hole hides is
        // unknown): it serves from the start head, and once the hole is filled from the
        // first segment of the purchase's epochs.
        let h = fixture();
        store_epoch_segments(&h, 1, 9..=9);
        let mut r = h.view.purchase(1).unwrap();
        r.access.epochs = vec![1];
        let auth = authorizer(&h, &[(1, 4)], 3);
        assert_eq!(auth.entitlement_start(&r), Ok(Some(4)));
        store_epoch_segments(&h, 0, 4..=6);
        assert_eq!(auth.entitlement_start(&r), Ok(Some(4)));
        store_epoch_segments(&h, 1, 7..=8);
        assert_eq!(auth.entitlement_start(&r), Ok(Some(7)));
    }

    #[test]
    fn the_start_scan_is_bounded_per_call_and_goes_on_from_where_it_stopped() {
        // A seller keeps sealing under epoch 0 long after the buyer's epoch 1 began.
        let f = fixture();
        let old = (SCAN_LIMIT + SCAN_LIMIT / 2) as u64;
        store_epoch_segments(&f, 0, 0..=old - 1);
        let mut p = f.view.purchase(1).unwrap();
        p.access.epochs = vec![1];
        let auth = authorizer(&f, &[(1, 0)], 3);
        assert_eq!(auth.entitlement_start(&p), Ok(None));
        assert_eq!(
            auth.cached_scan(1),
            Some(StartScan::Before(SCAN_LIMIT as u64))
        );
        assert_eq!(auth.entitlement_start(&p), Ok(None));
        assert_eq!(auth.cached_scan(1), Some(StartScan::Before(old)));
        store_epoch_segments(&f, 1, old..=old + 2);
        assert_eq!(auth.entitlement_start(&p), Ok(Some(old)));
        assert_eq!(auth.cached_scan(1), Some(StartScan::Found(old)));
    }

    #[test]
    fn purchases_grant_exactly_what_they_bought() {
        let f = fixture();
        store_segments(&f, 0..=9);
        // A stream purchase starts at its start head, not at the stream's history.
        let stream = f.view.purchase(1).unwrap();
        assert_eq!(
            authorizer(&f, &[(1, 6)], 32).entitlement_start(&stream),
            Ok(Some(6))
        );
        // Without a start head on chain: the first stored segment of its epochs.
        assert_eq!(f.auth.entitlement_start(&stream), Ok(Some(0)));
        // A batch purchase: its window over HTTP, no live topic at all.
        let mut batch = f.view.purchase(1).unwrap();
        batch.id = 2;
        batch.terms = PurchaseTerms::Batch { first: 3, last: 5 };
        f.view.apply(ChainEvent::PurchaseUpdated(batch.clone()));
        assert_eq!(f.auth.entitlement_start(&batch), Ok(Some(3)));
        assert_eq!(
            f.auth.admit_live(&access_request(&f, 2, 1)).unwrap_err(),
            Refusal::BatchNotLive(2)
        );
        let principal = Principal::Buyer {
            purchase: 2,
            stream: f.stream,
            buyer: acct(&f.buyer),
        };
        assert_eq!(
            f.auth.may_subscribe(&principal, &stream_topic(&f.stream)),
            Err(Refusal::BatchNotLive(2))
        );
        assert_eq!(f.auth.live_window_decision(2), Some(false));
    }

    #[test]
    fn live_subscribers_are_held_to_the_receipt_window() {
        let f = fixture();
        let auth = authorizer(&f, &[(1, 10)], 4);
        let principal = auth.admit_live(&access_request(&f, 1, 1)).unwrap().0;
        let topic = stream_topic(&f.stream);
        // Window 10..=13: open while the stored head is below 13.
        store_segments(&f, 0..=12);
        assert!(auth.may_subscribe(&principal, &topic).is_ok());
        assert_eq!(auth.live_window_decision(1), Some(true));
        store_segments(&f, 13..=13);
        assert_eq!(
            auth.may_subscribe(&principal, &topic),
            Err(Refusal::ReceiptWindowExhausted {
                purchase: 1,
                window_end: 13,
                stored: 13,
                needed: 10
            })
        );
        assert_eq!(auth.live_window_decision(1), Some(false));
        assert!(matches!(
            auth.admit_live(&access_request(&f, 1, 2)),
            Err(Refusal::ReceiptWindowExhausted { .. })
        ));
        // A receipt up to 10 moves the window to 11..=14.
        let receipt = crate::receipts::Receipt {
            purchase: 1,
            operator: f.me.clone(),
            up_to_sequence: 10,
            bytes: 1,
            nonce: 1,
        };
        let signed = (receipt.clone(), receipt.sign_sr25519(&f.buyer, &GENESIS)).encode();
        f.store
            .update_receipt(1, |_| Ok::<_, ()>(signed))
            .unwrap()
            .unwrap();
        assert!(auth.may_subscribe(&principal, &topic).is_ok());
        assert_eq!(auth.live_window_decision(1), Some(true));
    }

    #[test]
    fn topics_roundtrip_and_reject_lookalikes() {
        let s = H256::repeat_byte(0xab);
        assert_eq!(parse_stream_topic(&stream_topic(&s)), Some(s));
        assert_eq!(parse_stream_topic(&stream_topic(&s).to_uppercase()), None);
        assert_eq!(
            parse_stream_topic(&format!("fast/{}/data", "AB".repeat(32))),
            None
        );
        assert_eq!(parse_stream_topic("fast/+/data"), None);
        assert_eq!(parse_stream_topic("fast/abcd/data"), None);
        assert_eq!(
            parse_stream_topic(&format!("fast/0x{}/data", "ab".repeat(32))),
            None
        );
        assert_eq!(
            parse_stream_topic(&format!("fast/{}/data/x", "ab".repeat(32))),
            None
        );
    }

    #[test]
    fn seller_with_valid_token_is_admitted_once() {
        let f = fixture();
        let token = upload_token(&f, 1, 20);
        let principal = f.auth.admit_upload(&token).unwrap();
        assert_eq!(
            principal,
            Principal::Seller {
                stream: f.stream,
                seller: acct(&f.seller),
                epoch: 0
            }
        );
        assert_eq!(
            f.auth.admit_upload(&token),
            Err(Refusal::Token(TokenError::Replayed))
        );
        assert!(f.auth.admit_upload(&upload_token(&f, 2, 20)).is_ok());
    }

    #[test]
    fn upload_token_refusals() {
        let f = fixture();
        // Expired (finalized is 10).
        assert_eq!(
            f.auth.admit_upload(&upload_token(&f, 1, 9)),
            Err(Refusal::Token(TokenError::Expired))
        );
        // Signed by someone else.
        let mut forged = upload_token(&f, 1, 20);
        forged.signature = Signed::sign(forged.payload.clone(), &pair(66), &GENESIS).signature;
        assert_eq!(
            f.auth.admit_upload(&forged),
            Err(Refusal::Token(TokenError::BadSignature))
        );
        // Addressed to another operator.
        let other = Signed::sign(
            TokenPayload {
                stream: f.stream,
                operator: account(9),
                epoch: 0,
                expiry: 20,
                nonce: 1,
            },
            &f.seller,
            &GENESIS,
        );
        assert_eq!(
            f.auth.admit_upload(&other),
            Err(Refusal::Token(TokenError::WrongOperator))
        );
        // Future epoch.
        let future = Signed::sign(
            TokenPayload {
                stream: f.stream,
                operator: f.me.clone(),
                epoch: 1,
                expiry: 20,
                nonce: 1,
            },
            &f.seller,
            &GENESIS,
        );
        assert_eq!(
            f.auth.admit_upload(&future),
            Err(Refusal::Token(TokenError::UnknownEpoch))
        );
        // Unknown stream.
        let unknown = Signed::sign(
            TokenPayload {
                stream: H256::repeat_byte(8),
                operator: f.me.clone(),
                epoch: 0,
                expiry: 20,
                nonce: 1,
            },
            &f.seller,
            &GENESIS,
        );
        assert_eq!(
            f.auth.admit_upload(&unknown),
            Err(Refusal::Token(TokenError::UnknownStream))
        );
        // Not assigned to me any more.
        let mut a = f.view.stream(&f.stream).unwrap();
        a.operators = vec![account(9)];
        f.view.apply(ChainEvent::StreamAssigned(a.clone()));
        assert_eq!(
            f.auth.admit_upload(&upload_token(&f, 1, 20)),
            Err(Refusal::Token(TokenError::NotAssigned))
        );
        a.operators = vec![f.me.clone()];
        a.open = false;
        f.view.apply(ChainEvent::StreamAssigned(a));
        assert_eq!(
            f.auth.admit_upload(&upload_token(&f, 1, 20)),
            Err(Refusal::Token(TokenError::StreamClosed))
        );
    }

    #[test]
    fn failed_checks_do_not_consume_nonces() {
        let f = fixture();
        let mut forged = upload_token(&f, 5, 20);
        forged.signature = Signed::sign(forged.payload.clone(), &pair(66), &GENESIS).signature;
        assert!(f.auth.admit_upload(&forged).is_err());
        assert!(f.auth.admit_upload(&upload_token(&f, 5, 20)).is_ok());
    }

    #[test]
    fn buyer_access_decisions() {
        let f = fixture();
        let (principal, purchase) = f.auth.admit_access(&access_request(&f, 1, 1)).unwrap();
        assert_eq!(purchase.id, 1);
        assert!(f
            .auth
            .may_subscribe(&principal, &stream_topic(&f.stream))
            .is_ok());
        assert!(matches!(
            f.auth
                .may_subscribe(&principal, &stream_topic(&H256::repeat_byte(8))),
            Err(Refusal::WrongTopic(_))
        ));
        assert!(matches!(
            f.auth.may_subscribe(&principal, "fast/#"),
            Err(Refusal::WrongTopic(_))
        ));
        assert_eq!(
            f.auth
                .may_publish(&principal, &stream_topic(&f.stream), None),
            Err(Refusal::NotPermitted("publishing"))
        );
        // Replayed request.
        assert_eq!(
            f.auth.admit_access(&access_request(&f, 1, 1)),
            Err(Refusal::Token(TokenError::Replayed))
        );
        // Unknown purchase, wrong signer.
        assert_eq!(
            f.auth.admit_access(&access_request(&f, 2, 2)),
            Err(Refusal::UnknownPurchase(2))
        );
        let mut forged = access_request(&f, 1, 3);
        forged.signature = Signed::sign(forged.payload.clone(), &f.seller, &GENESIS).signature;
        assert_eq!(
            f.auth.admit_access(&forged),
            Err(Refusal::Token(TokenError::BadSignature))
        );
        // Refund revokes at once.
        f.view.apply(ChainEvent::PurchaseRefunded { purchase: 1 });
        assert!(matches!(
            f.auth.may_subscribe(&principal, &stream_topic(&f.stream)),
            Err(Refusal::PurchaseNotActive {
                state: PurchaseState::Refunded,
                ..
            })
        ));
        assert!(matches!(
            f.auth.admit_access(&access_request(&f, 1, 4)),
            Err(Refusal::PurchaseNotActive { .. })
        ));
    }

    #[test]
    fn access_period_is_enforced() {
        let f = fixture();
        let (principal, _) = f.auth.admit_access(&access_request(&f, 1, 1)).unwrap();
        f.view.apply(ChainEvent::Finalized { number: 50 });
        assert!(matches!(
            f.auth.may_subscribe(&principal, &stream_topic(&f.stream)),
            Err(Refusal::OutsideAccessPeriod {
                now: 50,
                start: 0,
                end: 50
            })
        ));
    }

    #[test]
    fn publish_decisions_check_topic_and_segment() {
        let f = fixture();
        let principal = f.auth.admit_upload(&upload_token(&f, 1, 20)).unwrap();
        let keys = EpochKeys::new([1; 32], [2; 32]);
        let header = SegmentHeader {
            stream: f.stream,
            epoch: 0,
            sequence: 1,
            timestamp: 1,
        };
        let good = seal(&keys, &header, b"x").unwrap();
        let topic = stream_topic(&f.stream);
        assert!(f.auth.may_publish(&principal, &topic, Some(&good)).is_ok());
        assert!(f.auth.may_publish(&principal, &topic, None).is_ok());
        // Other stream's topic.
        assert!(matches!(
            f.auth.may_publish(
                &principal,
                &stream_topic(&H256::repeat_byte(8)),
                Some(&good)
            ),
            Err(Refusal::WrongTopic(_))
        ));
        // Garbage, oversized, header of another stream, future epoch.
        assert!(matches!(
            f.auth.may_publish(&principal, &topic, Some(b"garbage")),
            Err(Refusal::Segment(fault)) if fault.reason() == "malformed"
        ));
        let huge = vec![1u8; envelope::MAX_ENVELOPE_LEN + 1];
        assert!(matches!(
            f.auth.may_publish(&principal, &topic, Some(&huge)),
            Err(Refusal::Segment(fault)) if fault.reason() == "too_large"
        ));
        let other = seal(
            &keys,
            &SegmentHeader {
                stream: H256::repeat_byte(8),
                ..header
            },
            b"x",
        )
        .unwrap();
        assert!(matches!(
            f.auth.may_publish(&principal, &topic, Some(&other)),
            Err(Refusal::Segment(SegmentFault::WrongStream(s))) if s == H256::repeat_byte(8)
        ));
        let future = seal(&keys, &SegmentHeader { epoch: 1, ..header }, b"x").unwrap();
        assert!(matches!(
            f.auth.may_publish(&principal, &topic, Some(&future)),
            Err(Refusal::Segment(SegmentFault::FutureEpoch {
                epoch: 1,
                current: 0
            }))
        ));
        // Sellers cannot subscribe; unassigned sellers cannot publish.
        assert_eq!(
            f.auth.may_subscribe(&principal, &topic),
            Err(Refusal::NotPermitted("subscribing"))
        );
        f.view
            .apply(ChainEvent::StreamUnassigned { stream: f.stream });
        assert!(f.auth.may_publish(&principal, &topic, Some(&good)).is_err());
    }

    #[test]
    fn decoding_refuses_garbage() {
        assert!(matches!(
            decode_hex_scale::<UploadToken>("upload token", "zz"),
            Err(Refusal::Malformed { .. })
        ));
        assert!(matches!(
            decode_hex_scale::<UploadToken>("upload token", "0x00"),
            Err(Refusal::Malformed { .. })
        ));
        let long = "00".repeat(MAX_TOKEN_BYTES + 1);
        assert!(matches!(
            decode_hex_scale::<UploadToken>("upload token", &long),
            Err(Refusal::Malformed { .. })
        ));
        let f = fixture();
        let token = upload_token(&f, 1, 20);
        let text = to_hex_scale(&token);
        assert_eq!(
            decode_hex_scale::<UploadToken>("upload token", &text).unwrap(),
            token
        );
        // Trailing bytes are refused.
        assert!(decode_hex_scale::<UploadToken>("upload token", &format!("{text}00")).is_err());
    }
}

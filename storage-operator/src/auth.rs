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
//! - Nonces are recorded durably in the same transaction as the check (replays are refused
//!   across restarts).

use std::sync::Arc;

use codec::{Decode, Encode};
use fastdata_primitives::{
    envelope::{self, SegmentHeader},
    escrow::PurchaseState,
    tokens::{SignedAccessRequest, SignedUploadToken, TokenError},
    AccountId, BlockNumber, EpochIndex, PurchaseId, StreamId,
};
use sp_core::{sr25519, H256};

use crate::{
    chain::{ChainView, PurchaseInfo},
    metrics::Metrics,
    store::Store,
};

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
    /// A segment failed validation.
    #[error("segment refused: {0}")]
    Segment(SegmentFault),
    /// The credentials are unknown.
    #[error("unknown credentials: present an upload token or access request")]
    UnknownCredentials,
    /// Local storage failed; try again.
    #[error("storage failure, try again later: {0}")]
    Storage(String),
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
            Refusal::Segment(_) => "bad_segment",
            Refusal::UnknownCredentials => "unknown_credentials",
            Refusal::Storage(_) => "storage",
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
    view: Arc<dyn ChainView>,
    store: Arc<Store>,
    metrics: Arc<Metrics>,
}

impl Authorizer {
    /// An authorizer for operator `me`.
    pub fn new(
        me: AccountId,
        view: Arc<dyn ChainView>,
        store: Arc<Store>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            me,
            view,
            store,
            metrics,
        }
    }

    /// This operator's account.
    pub fn me(&self) -> &AccountId {
        &self.me
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
        if !stream.open {
            return Err(Refusal::Token(TokenError::StreamClosed));
        }
        if !stream.operators.contains(&self.me) {
            return Err(Refusal::Token(TokenError::NotAssigned));
        }
        if payload.epoch > stream.epoch {
            return Err(Refusal::Token(TokenError::UnknownEpoch));
        }
        let seller = public_key(&stream.seller);
        let now = self.view.finalized_block();
        let mut context = b"upload".to_vec();
        context.extend_from_slice(stream.stream.as_bytes());
        context.extend_from_slice(stream.seller.as_ref());
        self.store
            .with_nonce(&context, |last| {
                token
                    .check(&seller, &self.me, now, last)
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
                    .check(&buyer, &self.me, now, last)
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
    /// seller, purchase usable for a buyer).
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
                Ok(())
            }
            Principal::Buyer { purchase, .. } => self.usable_purchase(*purchase).map(|_| ()),
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
        tokens::{AccessRequest as AccessPayload, Signed, UploadToken as TokenPayload},
    };
    use sp_core::Pair;

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
            view.clone(),
            store,
            Arc::new(Metrics::new()),
        ));
        Fixture {
            view,
            auth,
            seller,
            buyer,
            me,
            stream: H256::repeat_byte(7),
            _dir: dir,
        }
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
        forged.signature = Signed::sign(forged.payload.clone(), &pair(66)).signature;
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
        forged.signature = Signed::sign(forged.payload.clone(), &pair(66)).signature;
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
        forged.signature = Signed::sign(forged.payload.clone(), &f.seller).signature;
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

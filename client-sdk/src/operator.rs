//! Talking to storage operator daemons (`storage-operator`, see its `src/api.rs`). Paths,
//! headers and the JSON bodies are [`fastdata_primitives::operator_api`]'s, the server's own:
//!
//! | request | used by |
//! |---|---|
//! | `GET /v1/terms` → `{"operator","genesis","receipt_window"}` | receivers (receipt window W, chain check) |
//! | `POST /v1/broker/session` `{"upload_token":"0x…"}` / `{"access_request":"0x…"}` → `{"username","password","client_id","topic","access"}` | publisher, live receiver |
//! | `GET /v1/purchases/{id}/segments?from=&to=` with header `x-fastdata-access: 0x…` → signed segment frames | batch receiver |
//! | `POST /v1/receipts` body `0x` + hex SCALE `(Receipt, sr25519 signature)` | receivers |
//! | `GET /v1/streams/{stream hex}/head` → `{"last_sequence": n \| null}` (highest stored) | seller service after a crash |
//!
//! Tokens and requests are SCALE-encoded `fastdata_primitives::tokens::Signed<…>` in hex;
//! signed frames (`application/vnd.fastdata.signed-segments`) are `u32` big-endian length +
//! envelope + the operator's 64-byte sr25519 signature of
//! [`SegmentStatement::of`]`(stream, sequence, envelope)` for the chain's genesis
//! ([`fastdata_primitives::custody`]). [`OperatorClient::download`] checks every signature
//! against the operator's account and keeps the signed statements
//! ([`Download::statements`]): two of them by one operator for one segment with different
//! digests prove an equivocation on chain. Each token and request carries a fresh nonce
//! ([`crate::fresh_nonce`]) since the daemon refuses replays. Tokens, requests and receipts
//! are signed for the genesis hash of the chain the operator serves
//! ([`FastData::genesis`](crate::FastData::genesis)): the daemon refuses anything signed for
//! another network.

use codec::Encode;
use fastdata_primitives::{
    api_market::OperatorView,
    custody::SegmentStatement,
    envelope,
    receipt::Receipt,
    tokens::{AccessRequest, Signed, UploadToken},
    AccountId, Balance, BlockNumber, EpochIndex, PurchaseId, Sequence, StreamId,
};
use hyper::{body::Bytes, Method};
use rumqttc::{MqttOptions, TlsConfiguration, Transport};
use serde::Deserialize;
use sp_core::{sr25519, H256};
use sp_runtime::MultiSignature;

use crate::{
    account::Account,
    chain::{FastData, Included, Unwrap},
    error::Error,
    http::HttpClient,
};

use fastdata_primitives::operator_api::{
    self as api, SegmentRange, SessionRequest, FRAMES_CONTENT_TYPE as UNSIGNED_FRAMES_CONTENT_TYPE,
};
/// The protocol's header, content type and answer names, re-exported for SDK users.
pub use fastdata_primitives::operator_api::{
    BrokerCredentials, ACCESS_HEADER, SIGNED_FRAMES_CONTENT_TYPE,
};
/// Largest batch download body read at once.
pub const MAX_DOWNLOAD: usize = 64 * 1024 * 1024;

/// Where an operator is reached.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OperatorEndpoint {
    /// Its account (the addressee of tokens, requests and receipts).
    pub account: AccountId,
    /// `mqtt://host:port` (or `mqtts://host:port`, TLS) of its broker.
    pub broker_url: String,
    /// `http://host:port` (or `https://host:port`) of its daemon.
    pub http_url: String,
}

impl OperatorEndpoint {
    /// Where the broker listens, from [`broker_url`](Self::broker_url).
    pub fn broker_address(&self) -> Result<BrokerAddress, Error> {
        parse_broker_url(&self.broker_url).ok_or_else(|| Error::Operator {
            operator: self.broker_url.clone(),
            code: None,
            detail: "broker URL is not mqtt://host[:port] or mqtts://host[:port]".into(),
        })
    }
}

/// An MQTT broker's address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrokerAddress {
    /// Host name or IP address (also the name its TLS certificate must carry).
    pub host: String,
    /// Port.
    pub port: u16,
    /// Connect over TLS (`mqtts://`).
    pub tls: bool,
}

impl BrokerAddress {
    /// rumqttc options for a connection as `client_id`; over TLS they trust the system's roots
    /// and the CAs of `$FASTDATA_CA_CERT` ([`crate::http::default_tls_config`]).
    pub fn mqtt_options(&self, client_id: impl Into<String>) -> Result<MqttOptions, Error> {
        let mut options = MqttOptions::new(client_id, self.host.clone(), self.port);
        if self.tls {
            let config = crate::http::default_tls_config().map_err(|detail| Error::Operator {
                operator: format!("mqtts://{}:{}", self.host, self.port),
                code: None,
                detail,
            })?;
            options.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(config)));
        }
        Ok(options)
    }
}

/// `mqtt://host[:port]` (also `tcp://`; port 1883 if absent) or `mqtts://host[:port]` (also
/// `ssl://`; TLS, port 8883 if absent) → its [`BrokerAddress`].
pub fn parse_broker_url(url: &str) -> Option<BrokerAddress> {
    let (rest, tls) = if let Some(rest) = url
        .strip_prefix("mqtt://")
        .or_else(|| url.strip_prefix("tcp://"))
    {
        (rest, false)
    } else {
        let rest = url
            .strip_prefix("mqtts://")
            .or_else(|| url.strip_prefix("ssl://"))?;
        (rest, true)
    };
    let rest = rest.trim_end_matches('/');
    let (host, port) = match rest.rsplit_once(':') {
        Some((host, port)) => (host, port.parse().ok()?),
        None => (rest, if tls { 8883 } else { 1883 }),
    };
    if host.is_empty() {
        return None;
    }
    Some(BrokerAddress {
        host: host.to_owned(),
        port,
        tls,
    })
}

/// What an operator publishes at `GET /v1/terms`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OperatorTerms {
    /// The operator's account (SS58), as it states it.
    pub operator: String,
    /// The genesis hash every signature must be made for.
    pub genesis: H256,
    /// The receipt window W: segments a buyer may obtain past its last receipt.
    pub receipt_window: u64,
}

/// An operator's signed statement about a segment it served: kept as evidence, since two of
/// them by one operator for one segment with different digests
/// ([`SegmentStatement::conflicts_with`]) get it slashed (`Operators::report_equivocation`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServedStatement {
    /// The operator that served and signed.
    pub operator: AccountId,
    /// `(stream, sequence, blake2_256(envelope))` as served.
    pub statement: SegmentStatement,
    /// The operator's signature of `statement` for the chain's genesis (checked).
    pub signature: sr25519::Signature,
}

/// A signed statement as `Operators::report_equivocation` takes it.
pub type StatementEvidence = (SegmentStatement, MultiSignature);

impl ServedStatement {
    /// The statement and signature as the chain takes them.
    pub fn evidence(&self) -> StatementEvidence {
        (
            self.statement.clone(),
            MultiSignature::Sr25519(self.signature),
        )
    }

    /// [`Self::evidence`] as `fastdata operator report-equivocation` takes it: `0x` + hex
    /// SCALE `(SegmentStatement, MultiSignature)`.
    pub fn evidence_hex(&self) -> String {
        hex_scale(&self.evidence())
    }

    /// Checks that [`Self::signature`] is the operator's signature of the statement for the
    /// chain with genesis hash `genesis`: what a statement read from a file must pass before
    /// it counts as evidence.
    pub fn verify(&self, genesis: &H256) -> Result<(), Error> {
        let operator = sr25519::Public::from_raw(*self.operator.as_ref());
        if self
            .statement
            .verify_sr25519(&self.signature, &operator, genesis)
        {
            Ok(())
        } else {
            Err(Error::Evidence(format!(
                "the statement of segment {} of stream {:?} is not signed by {} for this chain",
                self.statement.sequence, self.statement.stream, self.operator
            )))
        }
    }

    /// One line of a statements file (`fastdata receive --statements`): JSON naming the
    /// operator, the segment and its digest, with `evidence` as
    /// `fastdata operator report-equivocation` takes it ([`Self::evidence_hex`]).
    pub fn to_line(&self) -> String {
        use sp_core::crypto::Ss58Codec;
        serde_json::json!({
            "operator": self.operator.to_ss58check(),
            "stream": format!("{:?}", self.statement.stream),
            "sequence": self.statement.sequence,
            "digest": format!("{:?}", self.statement.digest),
            "evidence": self.evidence_hex(),
        })
        .to_string()
    }

    /// Parses a line written by [`Self::to_line`]; the signature is not checked here
    /// ([`Self::verify`] does).
    pub fn from_line(line: &str) -> Result<Self, Error> {
        use codec::DecodeAll;
        use sp_core::crypto::Ss58Codec;
        #[derive(Deserialize)]
        struct Line {
            operator: String,
            evidence: String,
        }
        let bad = |detail: String| Error::Evidence(format!("not a statement line: {detail}"));
        let line: Line = serde_json::from_str(line).map_err(|e| bad(e.to_string()))?;
        let operator = AccountId::from_ss58check(&line.operator)
            .map_err(|e| bad(format!("operator {:?}: {e:?}", line.operator)))?;
        let bytes = hex::decode(line.evidence.trim_start_matches("0x"))
            .map_err(|e| bad(format!("evidence is not hex: {e}")))?;
        let (statement, signature) =
            StatementEvidence::decode_all(&mut &bytes[..]).map_err(|e| {
                bad(format!(
                    "evidence is not (SegmentStatement, MultiSignature): {e}"
                ))
            })?;
        let MultiSignature::Sr25519(signature) = signature else {
            return Err(bad("operators sign with sr25519".into()));
        };
        Ok(Self {
            operator,
            statement,
            signature,
        })
    }
}

/// The equivocations among `statements`: for each operator and stream, the first two
/// statements about one segment with different digests (the chain slashes an operator once
/// per stream, so one pair each is enough). Signatures are not checked here: give it only
/// statements that passed [`ServedStatement::verify`], or a forged first statement hides the
/// real pair.
pub fn equivocations(statements: &[ServedStatement]) -> Vec<(ServedStatement, ServedStatement)> {
    let mut first_seen: std::collections::BTreeMap<
        (&AccountId, StreamId, Sequence),
        &ServedStatement,
    > = Default::default();
    let mut reported = std::collections::BTreeSet::new();
    let mut found = Vec::new();
    for s in statements {
        let key = (&s.operator, s.statement.stream, s.statement.sequence);
        match first_seen.get(&key) {
            None => {
                first_seen.insert(key, s);
            }
            Some(first) if first.statement.conflicts_with(&s.statement) => {
                if reported.insert((&s.operator, s.statement.stream)) {
                    found.push(((*first).clone(), s.clone()));
                }
            }
            Some(_) => {}
        }
    }
    found
}

/// Why a download answer was cut short at a frame: the frame and everything after it were
/// dropped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RefusedFrame {
    /// The frame does not hold an envelope whose header reads.
    NotAnEnvelope(String),
    /// The operator's signature of segment `sequence` does not verify against its account and
    /// this chain: the segment was altered or substituted, or the operator signs with another
    /// key or for another chain.
    BadSignature {
        /// The sequence the frame's header names.
        sequence: Sequence,
    },
}

impl std::fmt::Display for RefusedFrame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NotAnEnvelope(e) => write!(f, "a served frame is not an envelope: {e}"),
            Self::BadSignature { sequence } => write!(
                f,
                "segment {sequence} does not carry the operator's valid signature"
            ),
        }
    }
}

/// One answer of a segment download.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Download {
    /// Envelopes whose operator signature verified, in increasing sequence order.
    pub envelopes: Vec<Vec<u8>>,
    /// The operator's signed statement of each of [`Self::envelopes`], at the same index.
    pub statements: Vec<ServedStatement>,
    /// The first frame refused, if any: [`Self::envelopes`] ends before it, and nothing after
    /// it is kept. Treat it like a segment that does not verify.
    pub refused: Option<RefusedFrame>,
    /// Upper bound of the range the operator sent (`x-fastdata-served-to`).
    pub served_to: Option<Sequence>,
    /// Highest sequence the current receipt allows (`x-fastdata-window-end`).
    pub window_end: Option<Sequence>,
}

fn hex_scale(value: &impl Encode) -> String {
    format!("0x{}", hex::encode(value.encode()))
}

/// An HTTP client for one operator daemon of the chain with genesis hash `genesis`.
#[derive(Clone)]
pub struct OperatorClient {
    http: HttpClient,
    endpoint: OperatorEndpoint,
    genesis: H256,
}

impl OperatorClient {
    /// A client for `endpoint`, signing for the chain with genesis hash `genesis`.
    pub fn new(endpoint: OperatorEndpoint, genesis: H256) -> Self {
        Self {
            http: HttpClient::new(),
            endpoint,
            genesis,
        }
    }

    /// The operator.
    pub fn endpoint(&self) -> &OperatorEndpoint {
        &self.endpoint
    }

    /// The genesis hash everything is signed for.
    pub fn genesis(&self) -> H256 {
        self.genesis
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.endpoint.http_url.trim_end_matches('/'))
    }

    fn refused(&self, status: hyper::StatusCode, body: &[u8]) -> Error {
        let (code, detail) = match serde_json::from_slice::<api::ErrorBody>(body) {
            Ok(e) => {
                let detail = format!("{} ({}): {}", e.error, status.as_u16(), e.message);
                (Some(e.error), detail)
            }
            Err(_) => (
                None,
                format!(
                    "HTTP {}: {}",
                    status.as_u16(),
                    String::from_utf8_lossy(&body[..body.len().min(200)])
                ),
            ),
        };
        Error::Operator {
            operator: self.endpoint.http_url.clone(),
            code,
            detail,
        }
    }

    fn transport(&self, e: String) -> Error {
        Error::Operator {
            operator: self.endpoint.http_url.clone(),
            code: None,
            detail: format!("unreachable: {e}"),
        }
    }

    async fn session(&self, request: &SessionRequest) -> Result<BrokerCredentials, Error> {
        let body = serde_json::to_vec(request).map_err(|e| Error::Operator {
            operator: self.endpoint.http_url.clone(),
            code: None,
            detail: format!("cannot encode the session request: {e}"),
        })?;
        let answer = self
            .http
            .send(
                Method::POST,
                &self.url(api::SESSION_PATH),
                &[("content-type", "application/json".into())],
                Bytes::from(body),
                64 * 1024,
            )
            .await
            .map_err(|e| self.transport(e))?;
        if !answer.status.is_success() {
            return Err(self.refused(answer.status, &answer.body));
        }
        serde_json::from_slice(&answer.body).map_err(|e| Error::Operator {
            operator: self.endpoint.http_url.clone(),
            code: None,
            detail: format!("unexpected session answer: {e}"),
        })
    }

    /// The operator's published terms, or `None` if the daemon predates `GET /v1/terms`.
    pub async fn terms(&self) -> Result<Option<OperatorTerms>, Error> {
        let answer = self
            .http
            .send(
                Method::GET,
                &self.url(api::TERMS_PATH),
                &[],
                Bytes::new(),
                64 * 1024,
            )
            .await
            .map_err(|e| self.transport(e))?;
        if answer.status == hyper::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !answer.status.is_success() {
            return Err(self.refused(answer.status, &answer.body));
        }
        let unexpected = |detail: String| Error::Operator {
            operator: self.endpoint.http_url.clone(),
            code: None,
            detail: format!("unexpected terms: {detail}"),
        };
        let raw: api::Terms =
            serde_json::from_slice(&answer.body).map_err(|e| unexpected(e.to_string()))?;
        let mut genesis = [0u8; 32];
        hex::decode_to_slice(raw.genesis.trim_start_matches("0x"), &mut genesis)
            .map_err(|e| unexpected(format!("genesis {:?}: {e}", raw.genesis)))?;
        Ok(Some(OperatorTerms {
            operator: raw.operator,
            genesis: H256(genesis),
            receipt_window: raw.receipt_window,
        }))
    }

    /// The highest sequence of `stream` the operator stores (`None`: it stores none), from
    /// `GET /v1/streams/{stream hex}/head` → `{"last_sequence": n | null}`. An error when the
    /// operator cannot be asked: unreachable, refusing, or a daemon that predates the route.
    pub async fn stored_head(&self, stream: &StreamId) -> Result<Option<Sequence>, Error> {
        let path = api::stream_head_path(stream);
        let answer = self
            .http
            .send(Method::GET, &self.url(&path), &[], Bytes::new(), 64 * 1024)
            .await
            .map_err(|e| self.transport(e))?;
        if answer.status == hyper::StatusCode::NOT_FOUND && answer.body.is_empty() {
            return Err(Error::Operator {
                operator: self.endpoint.http_url.clone(),
                code: None,
                detail: format!("does not answer GET {path} (its daemon predates it)"),
            });
        }
        if !answer.status.is_success() {
            return Err(self.refused(answer.status, &answer.body));
        }
        let raw: api::StoredHead =
            serde_json::from_slice(&answer.body).map_err(|e| Error::Operator {
                operator: self.endpoint.http_url.clone(),
                code: None,
                detail: format!("unexpected stored head answer: {e}"),
            })?;
        Ok(raw.last_sequence)
    }

    /// Signs an upload token for `stream`/`epoch` valid until `expiry` and trades it for
    /// publish credentials on the operator's broker.
    pub async fn upload_session(
        &self,
        seller: &Account,
        stream: StreamId,
        epoch: EpochIndex,
        expiry: BlockNumber,
    ) -> Result<BrokerCredentials, Error> {
        let token = Signed::sign(
            UploadToken {
                stream,
                operator: self.endpoint.account.clone(),
                epoch,
                expiry,
                nonce: crate::fresh_nonce(),
            },
            seller.pair(),
            &self.genesis,
        );
        self.session(&SessionRequest {
            upload_token: Some(hex_scale(&token)),
            access_request: None,
        })
        .await
    }

    fn access_request(&self, buyer: &Account, purchase: PurchaseId, expiry: BlockNumber) -> String {
        hex_scale(&Signed::sign(
            AccessRequest {
                purchase,
                operator: self.endpoint.account.clone(),
                expiry,
                nonce: crate::fresh_nonce(),
            },
            buyer.pair(),
            &self.genesis,
        ))
    }

    /// Trades a signed access request for subscribe credentials on the operator's broker.
    pub async fn access_session(
        &self,
        buyer: &Account,
        purchase: PurchaseId,
        expiry: BlockNumber,
    ) -> Result<BrokerCredentials, Error> {
        let request = self.access_request(buyer, purchase, expiry);
        self.session(&SessionRequest {
            upload_token: None,
            access_request: Some(request),
        })
        .await
    }

    /// Downloads segments `from..=to` of `purchase` (the operator caps the range by the buyer's
    /// entitlement and its receipt window).
    pub async fn download(
        &self,
        buyer: &Account,
        purchase: PurchaseId,
        expiry: BlockNumber,
        from: Option<Sequence>,
        to: Option<Sequence>,
    ) -> Result<Download, Error> {
        let path = api::purchase_segments_path(purchase, SegmentRange { from, to });
        let answer = self
            .http
            .send(
                Method::GET,
                &self.url(&path),
                &[(ACCESS_HEADER, self.access_request(buyer, purchase, expiry))],
                Bytes::new(),
                MAX_DOWNLOAD,
            )
            .await
            .map_err(|e| self.transport(e))?;
        if !answer.status.is_success() {
            return Err(self.refused(answer.status, &answer.body));
        }
        let header = |name: &str| {
            answer
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<Sequence>().ok())
        };
        let malformed = |detail: String| Error::Operator {
            operator: self.endpoint.http_url.clone(),
            code: None,
            detail,
        };
        let content_type = answer
            .headers
            .get(hyper::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok());
        if content_type == Some(UNSIGNED_FRAMES_CONTENT_TYPE) {
            return Err(malformed(
                "serves unsigned segments; its daemon predates signed downloads and must be \
                 upgraded"
                    .into(),
            ));
        }
        let frames = envelope::decode_signed_frames(&answer.body)
            .map_err(|e| malformed(format!("malformed signed segment frames: {e}")))?;
        let mut download = Download {
            served_to: header(api::SERVED_TO_HEADER),
            window_end: header(api::WINDOW_END_HEADER),
            ..Download::default()
        };
        for (served, signature) in frames {
            match self.check_signed(served, signature) {
                Ok(statement) => {
                    download.envelopes.push(served.to_vec());
                    download.statements.push(statement);
                }
                Err(refused) => {
                    download.refused = Some(refused);
                    break;
                }
            }
        }
        Ok(download)
    }

    /// The operator's statement of a served `envelope` if `signature` is its valid signature
    /// of it for this chain.
    fn check_signed(
        &self,
        envelope: &[u8],
        signature: [u8; envelope::FRAME_SIGNATURE_LEN],
    ) -> Result<ServedStatement, RefusedFrame> {
        let header = envelope::parse_header(envelope)
            .map_err(|e| RefusedFrame::NotAnEnvelope(e.to_string()))?;
        let statement = SegmentStatement::of(header.stream, header.sequence, envelope);
        let signature = sr25519::Signature::from_raw(signature);
        let operator = sr25519::Public::from_raw(*self.endpoint.account.as_ref());
        if !statement.verify_sr25519(&signature, &operator, &self.genesis) {
            return Err(RefusedFrame::BadSignature {
                sequence: header.sequence,
            });
        }
        Ok(ServedStatement {
            operator: self.endpoint.account.clone(),
            statement,
            signature,
        })
    }

    /// Signs and posts a cumulative receipt for data received from this operator.
    pub async fn post_receipt(
        &self,
        buyer: &Account,
        purchase: PurchaseId,
        up_to_sequence: Sequence,
        bytes: u64,
    ) -> Result<Receipt<AccountId>, Error> {
        let receipt = Receipt {
            purchase,
            operator: self.endpoint.account.clone(),
            up_to_sequence,
            bytes,
            nonce: crate::fresh_nonce(),
        };
        let signature = receipt.sign_sr25519(buyer.pair(), &self.genesis);
        let body = format!("0x{}", hex::encode((&receipt, signature).encode()));
        let answer = self
            .http
            .send(
                Method::POST,
                &self.url(api::RECEIPTS_PATH),
                &[("content-type", "text/plain".into())],
                Bytes::from(body),
                64 * 1024,
            )
            .await
            .map_err(|e| self.transport(e))?;
        if !answer.status.is_success() {
            return Err(self.refused(answer.status, &answer.body));
        }
        Ok(receipt)
    }
}

/// One operator's latest attestation of a stream, as `Operators.StreamHeads` stores it
/// (`pallet_operators::HeadRecord`).
#[derive(Clone, Debug, PartialEq, Eq, codec::Encode, codec::Decode)]
pub struct AttestedHead {
    /// The operator that attested.
    pub operator: AccountId,
    /// The segments it stored contiguously from sequence 0.
    pub head: Sequence,
    /// The bytes of the stream it stored.
    pub stored_bytes: u64,
    /// The block of the attestation.
    pub at: BlockNumber,
}

/// The one reader of `Operators.StreamHeads(stream)` (the SDK, the operator daemon's follower
/// and its head attester read it here): each operator's latest attestation of `stream` at
/// block `at`, empty before the first one. The chain's head of the stream is
/// [`fastdata_primitives::heads::chain_head`] of the assigned operators' heads; a daemon
/// backfills below [`fastdata_primitives::heads::attested_backfill_head`] of them all.
pub async fn attested_heads_at(
    at: &crate::chain::AtBlock,
    stream: &StreamId,
) -> Result<Vec<AttestedHead>, Error> {
    let address = crate::chain::fastdata::storage().operators().stream_heads();
    let value = at
        .storage()
        .try_fetch(address, (*stream,))
        .await
        .map_err(|e| Error::Chain(format!("Operators.StreamHeads of {stream:?}: {e}")))?;
    let Some(value) = value else {
        return Ok(Vec::new());
    };
    let records = value.decode().map_err(|e| Error::Decode {
        what: "Operators.StreamHeads",
        detail: e.to_string(),
    })?;
    Ok(records
        .0
        .into_iter()
        .map(|r| AttestedHead {
            operator: crate::chain::account_id(&r.operator),
            head: r.head,
            stored_bytes: r.stored_bytes,
            at: r.at,
        })
        .collect())
}

/// An operator as the runtime lists it.
pub type Operator = OperatorView<AccountId, Balance, BlockNumber>;

impl FastData {
    /// The operator `who`.
    pub async fn operator(&self, who: &AccountId) -> Result<Option<Operator>, Error> {
        let api = crate::chain::fastdata::runtime_apis()
            .operators_api()
            .operator(crate::chain::account32(who));
        Ok(self.api(api).await?.unwrap_static())
    }

    /// Every registered operator.
    pub async fn operators(&self) -> Result<Vec<Operator>, Error> {
        let api = crate::chain::fastdata::runtime_apis()
            .operators_api()
            .operators();
        Ok(self.api(api).await?.unwrap_static())
    }

    /// Reports that `operator` signed two statements about one segment naming different
    /// contents (`Operators::report_equivocation`, e.g. from
    /// [`ServedStatement::evidence`]): the chain checks both and slashes the operator; a valid
    /// report costs no fee. Checked here first (conflict, both signatures for this chain), so
    /// evidence the chain would refuse is not sent.
    pub async fn report_equivocation(
        &self,
        operator: &AccountId,
        first: StatementEvidence,
        second: StatementEvidence,
    ) -> Result<Included, Error> {
        check_equivocation(operator, &first, &second, &self.genesis())?;
        let evidence = |(statement, signature): StatementEvidence| {
            (
                subxt::utils::Static(statement),
                subxt::utils::Static(signature),
            )
        };
        self.submit(
            crate::chain::fastdata::tx()
                .operators()
                .report_equivocation(
                    crate::chain::lookup(operator),
                    evidence(first),
                    evidence(second),
                ),
        )
        .await
    }

    /// The latest head each operator of `stream` attested on chain (`Operators.StreamHeads`)
    /// at the current block, by operator ([`attested_heads_at`]). Empty before the first
    /// attestation.
    pub async fn attested_heads(&self, stream: &StreamId) -> Result<Vec<AttestedHead>, Error> {
        let at = self.current_block().await?;
        attested_heads_at(&at, stream).await
    }

    /// The endpoints of the operators currently assigned to `stream`, in assignment order.
    pub async fn stream_endpoints(
        &self,
        stream: &StreamId,
    ) -> Result<Vec<OperatorEndpoint>, Error> {
        let view = self
            .stream(stream)
            .await?
            .ok_or_else(|| Error::NotFound(format!("no stream {stream:?} on chain")))?;
        let mut out = Vec::new();
        for account in view.operators {
            if let Some(op) = self.operator(&account).await? {
                out.push(OperatorEndpoint {
                    account,
                    broker_url: String::from_utf8_lossy(&op.broker_url).into_owned(),
                    http_url: String::from_utf8_lossy(&op.http_url).into_owned(),
                });
            }
        }
        Ok(out)
    }
}

/// `first` and `second` are `operator`'s valid signatures, for the chain `genesis`, of two
/// statements about one segment naming different contents.
pub fn check_equivocation(
    operator: &AccountId,
    first: &StatementEvidence,
    second: &StatementEvidence,
    genesis: &H256,
) -> Result<(), Error> {
    let ((a, a_signature), (b, b_signature)) = (first, second);
    if !a.conflicts_with(b) {
        return Err(Error::Evidence(format!(
            "the statements do not conflict: an equivocation is two digests for one segment \
             (got segment {} of stream {:?} and segment {} of stream {:?})",
            a.sequence, a.stream, b.sequence, b.stream
        )));
    }
    for (which, statement, signature) in [("first", a, a_signature), ("second", b, b_signature)] {
        if !statement.verify(signature, operator, genesis) {
            return Err(Error::Evidence(format!(
                "the {which} statement is not signed by {operator} for this chain"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use fastdata_primitives::envelope::{seal, EpochKeys, SegmentHeader};
    use sp_core::Pair;

    const GENESIS: H256 = H256([0x47; 32]);

    fn operator() -> sr25519::Pair {
        sr25519::Pair::from_seed(&[2; 32])
    }

    fn sealed(sequence: Sequence) -> Vec<u8> {
        let header = SegmentHeader {
            stream: H256([7; 32]),
            epoch: 0,
            sequence,
            timestamp: 1,
        };
        seal(&EpochKeys::new([1; 32], [2; 32]), &header, b"reading").unwrap()
    }

    fn client_of(operator: &sr25519::Pair) -> OperatorClient {
        OperatorClient::new(
            OperatorEndpoint {
                account: AccountId::from(operator.public()),
                broker_url: "mqtt://127.0.0.1:1883".into(),
                http_url: "http://127.0.0.1:1".into(),
            },
            GENESIS,
        )
    }

    fn signed(operator: &sr25519::Pair, envelope: &[u8], sequence: Sequence) -> [u8; 64] {
        SegmentStatement::of(H256([7; 32]), sequence, envelope)
            .sign_sr25519(operator, &GENESIS)
            .0
    }

    #[test]
    fn served_frames_need_the_operators_signature() {
        let op = operator();
        let client = client_of(&op);
        let envelope = sealed(5);
        let served = client
            .check_signed(&envelope, signed(&op, &envelope, 5))
            .unwrap();
        assert_eq!(served.operator, AccountId::from(op.public()));
        assert_eq!(
            served.statement,
            SegmentStatement::of(H256([7; 32]), 5, &envelope)
        );
        let (statement, signature) = served.evidence();
        assert!(statement.verify(&signature, &served.operator, &GENESIS));

        // A flipped envelope byte, another sequence, another signer, another chain: refused.
        let mut flipped = envelope.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        let bad = RefusedFrame::BadSignature { sequence: 5 };
        assert_eq!(
            client.check_signed(&flipped, signed(&op, &envelope, 5)),
            Err(bad.clone())
        );
        assert_eq!(
            client.check_signed(&envelope, signed(&op, &envelope, 6)),
            Err(bad.clone())
        );
        let other = sr25519::Pair::from_seed(&[3; 32]);
        assert_eq!(
            client.check_signed(&envelope, signed(&other, &envelope, 5)),
            Err(bad.clone())
        );
        let elsewhere = SegmentStatement::of(H256([7; 32]), 5, &envelope)
            .sign_sr25519(&op, &H256::zero())
            .0;
        assert_eq!(client.check_signed(&envelope, elsewhere), Err(bad));
        assert!(matches!(
            client.check_signed(b"garbage", [0; 64]),
            Err(RefusedFrame::NotAnEnvelope(_))
        ));
    }

    #[test]
    fn equivocation_evidence_is_checked_before_it_is_sent() {
        let op = operator();
        let who = AccountId::from(op.public());
        let statement = |sequence, envelope: &[u8]| {
            let statement = SegmentStatement::of(H256([7; 32]), sequence, envelope);
            let signature = MultiSignature::Sr25519(statement.sign_sr25519(&op, &GENESIS));
            (statement, signature)
        };
        let (a, b) = (statement(5, b"one"), statement(5, b"two"));
        check_equivocation(&who, &a, &b, &GENESIS).unwrap();
        // Same contents, or different segments: no equivocation.
        assert!(check_equivocation(&who, &a, &a.clone(), &GENESIS).is_err());
        assert!(check_equivocation(&who, &a, &statement(6, b"two"), &GENESIS).is_err());
        // Another operator's account, another chain, a forged signature: refused.
        let other = AccountId::new([9; 32]);
        assert!(check_equivocation(&other, &a, &b, &GENESIS).is_err());
        assert!(check_equivocation(&who, &a, &b, &H256::zero()).is_err());
        let forged = (b.0.clone(), a.1.clone());
        let err = check_equivocation(&who, &a, &forged, &GENESIS).unwrap_err();
        assert!(err.to_string().contains("second statement"), "{err}");
    }

    #[test]
    fn statement_lines_round_trip_and_equivocations_are_found_once_per_stream() {
        let (op, other) = (operator(), sr25519::Pair::from_seed(&[3; 32]));
        let served = |by: &sr25519::Pair, stream: u8, sequence, envelope: &[u8]| {
            let statement = SegmentStatement::of(H256([stream; 32]), sequence, envelope);
            ServedStatement {
                operator: AccountId::from(by.public()),
                signature: statement.sign_sr25519(by, &GENESIS),
                statement,
            }
        };
        let a = served(&op, 7, 5, b"one");
        let line = a.to_line();
        assert_eq!(ServedStatement::from_line(&line).unwrap(), a);
        // What the line says is what report-equivocation --first takes.
        let value: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(
            value["evidence"],
            format!("0x{}", hex::encode(a.evidence().encode()))
        );
        for bad in [
            "",
            "{}",
            r#"{"operator":"nobody","evidence":"0x00"}"#,
            &line.replace("\"evidence\":\"0x", "\"evidence\":\"0xzz"),
        ] {
            assert!(ServedStatement::from_line(bad).is_err(), "{bad}");
        }

        let statements = vec![
            a.clone(),
            served(&op, 7, 5, b"one"),   // the same again: no conflict
            served(&other, 7, 5, b"x"),  // another operator's other digest: no conflict
            served(&op, 7, 6, b"two"),   // another segment
            served(&op, 7, 5, b"two"),   // conflicts with a
            served(&op, 7, 6, b"three"), // conflicts too, but the stream is already found
            served(&op, 8, 1, b"a"),
            served(&op, 8, 1, b"b"), // another stream: found
        ];
        let found = equivocations(&statements);
        assert_eq!(
            found,
            vec![
                (a.clone(), statements[4].clone()),
                (statements[6].clone(), statements[7].clone())
            ]
        );
        for (first, second) in &found {
            check_equivocation(
                &first.operator,
                &first.evidence(),
                &second.evidence(),
                &GENESIS,
            )
            .unwrap();
        }
    }

    #[test]
    fn statements_from_files_are_verified_for_the_chain() {
        let op = operator();
        let statement = SegmentStatement::of(H256([7; 32]), 5, b"one");
        let good = ServedStatement {
            operator: AccountId::from(op.public()),
            signature: statement.sign_sr25519(&op, &GENESIS),
            statement,
        };
        good.verify(&GENESIS).unwrap();
        assert_eq!(
            good.evidence_hex(),
            format!("0x{}", hex::encode(good.evidence().encode()))
        );
        // Another chain, another signer, another digest under the signature: refused.
        assert!(good.verify(&H256::zero()).is_err());
        let mut other_signer = good.clone();
        other_signer.signature = good
            .statement
            .sign_sr25519(&sr25519::Pair::from_seed(&[3; 32]), &GENESIS);
        assert!(other_signer.verify(&GENESIS).is_err());
        let mut altered = good.clone();
        altered.statement = SegmentStatement::of(H256([7; 32]), 5, b"two");
        let err = altered.verify(&GENESIS).unwrap_err();
        assert!(err.to_string().contains("segment 5"), "{err}");
    }

    /// Answers every request on a local port with `status` and `body`.
    async fn canned_daemon(status: &'static str, body: &'static str) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                let mut request = [0u8; 4096];
                let _ = conn.read(&mut request).await;
                let answer = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = conn.write_all(answer.as_bytes()).await;
            }
        });
        url
    }

    #[tokio::test]
    async fn the_stored_head_is_asked_of_the_daemon() {
        let ask = |url: String| async move {
            let mut client = client_of(&operator());
            client.endpoint.http_url = url;
            client.stored_head(&H256([7; 32])).await
        };
        let url = canned_daemon("200 OK", r#"{"last_sequence":41}"#).await;
        assert_eq!(ask(url).await.unwrap(), Some(41));
        let url = canned_daemon("200 OK", r#"{"last_sequence":null}"#).await;
        assert_eq!(ask(url).await.unwrap(), None);
        // A daemon without the route, one that refuses, a garbled answer: cannot be asked.
        let url = canned_daemon("404 Not Found", "").await;
        let err = ask(url).await.unwrap_err();
        assert!(err.to_string().contains("predates"), "{err}");
        let url = canned_daemon(
            "404 Not Found",
            r#"{"error":"unknown_stream","message":"not hosted here"}"#,
        )
        .await;
        let err = ask(url).await.unwrap_err();
        assert!(err.to_string().contains("unknown_stream"), "{err}");
        let url = canned_daemon("200 OK", r#"{"last_sequence":"x"}"#).await;
        assert!(ask(url).await.is_err());
    }

    #[test]
    fn broker_urls() {
        let at = |host: &str, port, tls| {
            Some(BrokerAddress {
                host: host.into(),
                port,
                tls,
            })
        };
        assert_eq!(
            parse_broker_url("mqtt://127.0.0.1:1884"),
            at("127.0.0.1", 1884, false)
        );
        assert_eq!(
            parse_broker_url("mqtt://broker.example"),
            at("broker.example", 1883, false)
        );
        assert_eq!(parse_broker_url("mqtts://x:8884/"), at("x", 8884, true));
        assert_eq!(parse_broker_url("mqtts://x"), at("x", 8883, true));
        assert_eq!(parse_broker_url("ssl://x:1"), at("x", 1, true));
        assert_eq!(parse_broker_url("mqtt://"), None);
        assert_eq!(parse_broker_url("mqtts://:8883"), None);
        assert_eq!(parse_broker_url("mqtt://h:notaport"), None);
        assert_eq!(parse_broker_url("http://h:1"), None);
    }
}

//! The broker gate: how the daemon's decisions reach the MQTT broker.
//!
//! One trait, [`BrokerGate`], two real backends:
//!
//! - [`vernemq::VernemqGate`] (production, the paper's broker): VerneMQ asks the daemon over
//!   HTTP webhooks (`auth_on_register`, `auth_on_publish`, `auth_on_subscribe` and the `_m5`
//!   variants) and the daemon answers from its local view. Grants are therefore implicit;
//!   revocation drops the daemon's session record (later publishes/subscribes are refused)
//!   and, when VerneMQ's HTTP API is configured, disconnects the client.
//! - [`mosquitto::MosquittoGate`] (dev and CI): Mosquitto cannot ask, so the daemon pushes
//!   state into its dynamic-security plugin over `$CONTROL/dynamic-security/v1`: a client with
//!   a per-stream publish role for an admitted seller, a client with a per-stream subscribe
//!   role for an admitted buyer, deleted (and thereby disconnected) on revocation.
//!
//! **Receipt window.** A buyer's live grant lasts while its receipts keep up: the daemon
//! re-evaluates every live grant whenever a segment or a receipt is stored
//! ([`crate::auth::Authorizer::live_window_decision`], the HTTP path's rule) and calls
//! [`BrokerGate::apply_windows`]. Mosquitto takes the client's subscribe role away and
//! disables the client (which kicks it); VerneMQ drops and disconnects its sessions and
//! refuses its logins and subscriptions. A receipt that catches up gives the same credentials
//! their access back. Batch purchases get no live grant at all.
//!
//! Clients of both backends can get broker credentials the same way: present an upload token
//! or access request to `POST /v1/broker/session` and connect with the returned username,
//! password and client id. With VerneMQ a client may instead connect directly with username
//! `upload` or `access` and the hex-encoded SCALE token as password (the paper's flow), with
//! its principal's client id ([`principal_client_id`]).
//!
//! **No session takeover.** MQTT lets a new connection with a client id in use take that
//! session over (the broker disconnects the old one). So every login is bound to one client
//! id: a minted login to the id in its [`BrokerLogin`] (Mosquitto: the dynsec client's
//! `clientid`; VerneMQ: checked in `auth_on_register`), a token login on VerneMQ to its
//! principal's id. No buyer or seller login can therefore connect as another buyer, a seller's
//! publisher or the daemon's own connections, whose ids additionally carry a tag derived from
//! the daemon's broker secret ([`crate::config::BrokerConfig::own_client_id`]).

pub mod mosquitto;
pub mod sync;
pub mod vernemq;

use async_trait::async_trait;
use fastdata_primitives::{PurchaseId, StreamId};

use crate::{
    auth::{stream_topic, Principal},
    chain::ChainView,
};

/// The broker login minted for an admitted client; the API hands it out as
/// [`fastdata_primitives::operator_api::BrokerCredentials`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrokerLogin {
    /// MQTT username.
    pub username: String,
    /// MQTT password.
    pub password: String,
    /// The MQTT client id the login is bound to: the broker refuses the login with any other
    /// id, so one login cannot take over another client's session.
    pub client_id: String,
    /// The topic the client may publish to (seller) or subscribe to (buyer).
    pub topic: String,
    /// `publish` or `subscribe`.
    pub access: &'static str,
}

/// What to take away.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Revocation {
    /// The buyer grants of a purchase (ended, refunded, out of its access period).
    Purchase(PurchaseId),
    /// Every grant on a stream (closed, or no longer assigned to this operator).
    Stream(StreamId),
}

/// A broker command failed.
#[derive(Debug, thiserror::Error)]
pub enum GateError {
    /// The broker did not answer in time.
    #[error("broker did not answer within the timeout")]
    Timeout,
    /// The broker refused a command.
    #[error("broker refused {command}: {message}")]
    Refused {
        /// The command.
        command: String,
        /// The broker's error text.
        message: String,
    },
    /// The connection to the broker failed.
    #[error("broker connection: {0}")]
    Connection(String),
    /// The principal cannot be granted broker access (e.g. the daemon itself).
    #[error("nothing to grant for this principal")]
    NothingToGrant,
    /// The grant could not be recorded in the daemon's store.
    #[error("cannot record the grant: {0}")]
    Store(String),
}

/// The broker access-control backend.
#[async_trait]
pub trait BrokerGate: Send + Sync + 'static {
    /// Backend name for logs and metrics.
    fn backend(&self) -> &'static str;

    /// Lets an admitted principal onto the broker and returns its credentials.
    async fn grant(&self, principal: &Principal) -> Result<BrokerLogin, GateError>;

    /// Takes grants away (idempotent).
    async fn revoke(&self, revocation: Revocation) -> Result<(), GateError>;

    /// Revokes every grant that `view` no longer justifies (called on each finalized block
    /// and at start-up). Returns how many principals were revoked.
    async fn reconcile(
        &self,
        view: &dyn ChainView,
        me: &fastdata_primitives::AccountId,
    ) -> Result<usize, GateError>;

    /// The purchases whose buyers hold a live grant (or session) here.
    fn live_purchases(&self) -> Vec<PurchaseId>;

    /// Applies receipt-window decisions `(purchase, open)`: a closed window takes the live
    /// grant's access away and disconnects its clients, keeping the credentials; an open one
    /// gives it back. Idempotent. Returns how many grants changed.
    async fn apply_windows(&self, decisions: &[(PurchaseId, bool)]) -> Result<usize, GateError>;
}

/// Topic and access kind of a principal's grant.
pub(crate) fn grant_scope(principal: &Principal) -> Result<(String, &'static str), GateError> {
    match principal {
        Principal::Seller { stream, .. } => Ok((stream_topic(stream), "publish")),
        Principal::Buyer { stream, .. } => Ok((stream_topic(stream), "subscribe")),
        Principal::Operator => Err(GateError::NothingToGrant),
    }
}

/// Whether `principal`'s grant is still justified by the chain view (the same rules as
/// [`crate::auth::Authorizer::still_valid`], without logging or metrics).
pub(crate) fn justified(
    view: &dyn ChainView,
    me: &fastdata_primitives::AccountId,
    principal: &Principal,
) -> bool {
    match principal {
        Principal::Seller { stream, seller, .. } => view
            .stream(stream)
            .is_some_and(|s| s.open && s.operators.contains(me) && &s.seller == seller),
        Principal::Buyer {
            purchase, stream, ..
        } => {
            let now = view.finalized_block();
            view.purchase(*purchase).is_some_and(|p| {
                p.state == fastdata_primitives::escrow::PurchaseState::Active
                    && now >= p.access.start
                    && now < p.access.end
                    && &p.stream == stream
                    // A batch purchase has no live topic.
                    && p.sequence_window().is_none()
            }) && view
                .stream(stream)
                .is_some_and(|s| s.operators.contains(me))
        }
        Principal::Operator => true,
    }
}

/// The client id of `principal`'s broker connection: `fd-seller-<stream hex>` for a seller's
/// publisher, `fd-buyer-<purchase id>` for a buyer's subscriber (also the Mosquitto usernames).
pub fn principal_client_id(principal: &Principal) -> Option<String> {
    match principal {
        Principal::Seller { stream, .. } => {
            Some(format!("fd-seller-{}", hex::encode(stream.as_bytes())))
        }
        Principal::Buyer { purchase, .. } => Some(format!("fd-buyer-{purchase}")),
        Principal::Operator => None,
    }
}

/// How a principal is stored with the gate's decisions (SCALE; `Principal` is not).
#[derive(codec::Encode, codec::Decode)]
enum StoredPrincipal {
    Seller {
        stream: StreamId,
        seller: fastdata_primitives::AccountId,
        epoch: fastdata_primitives::EpochIndex,
    },
    Buyer {
        purchase: PurchaseId,
        stream: StreamId,
        buyer: fastdata_primitives::AccountId,
    },
    Operator,
}

/// SCALE encoding of `principal` (for the store).
pub(crate) fn encode_principal(principal: &Principal) -> Vec<u8> {
    let stored = match principal.clone() {
        Principal::Seller {
            stream,
            seller,
            epoch,
        } => StoredPrincipal::Seller {
            stream,
            seller,
            epoch,
        },
        Principal::Buyer {
            purchase,
            stream,
            buyer,
        } => StoredPrincipal::Buyer {
            purchase,
            stream,
            buyer,
        },
        Principal::Operator => StoredPrincipal::Operator,
    };
    codec::Encode::encode(&stored)
}

/// Decodes a principal stored by [`encode_principal`] from the front of `input`.
pub(crate) fn decode_principal(input: &mut &[u8]) -> Result<Principal, codec::Error> {
    Ok(match <StoredPrincipal as codec::Decode>::decode(input)? {
        StoredPrincipal::Seller {
            stream,
            seller,
            epoch,
        } => Principal::Seller {
            stream,
            seller,
            epoch,
        },
        StoredPrincipal::Buyer {
            purchase,
            stream,
            buyer,
        } => Principal::Buyer {
            purchase,
            stream,
            buyer,
        },
        StoredPrincipal::Operator => Principal::Operator,
    })
}

/// A random credential string of `bytes` random bytes, hex-encoded.
pub(crate) fn random_secret(bytes: usize) -> Result<String, GateError> {
    use rand_core::RngCore;
    let mut buf = vec![0u8; bytes];
    rand_core::OsRng
        .try_fill_bytes(&mut buf)
        .map_err(|e| GateError::Connection(format!("random number generator: {e}")))?;
    Ok(hex::encode(buf))
}

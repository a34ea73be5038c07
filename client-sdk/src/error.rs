//! Errors of the SDK. Each says what went wrong and, where there is one, what to do.

use fastdata_primitives::{envelope::EnvelopeError, sealed::SealError, PurchaseId};

/// An SDK error.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The node could not be reached or answered an RPC with an error.
    #[error("chain: {0}")]
    Chain(String),
    /// A transaction was included but failed; the message names the pallet error.
    #[error("transaction failed: {error}{}", hint_suffix(.error))]
    Dispatch {
        /// `Pallet::Error` name and docs as the node reports it.
        error: String,
    },
    /// A runtime API answer or event did not decode: the SDK and the runtime disagree.
    #[error("cannot decode {what}: {detail} (is the SDK built for this runtime? regenerate metadata with scripts/export-metadata)")]
    Decode {
        /// What was decoded.
        what: &'static str,
        /// The codec error.
        detail: String,
    },
    /// Something expected on chain is not there.
    #[error("{0}")]
    NotFound(String),
    /// A secret or account string is unusable.
    #[error("account: {0}")]
    Account(String),
    /// The local keystore could not be read or written.
    #[error("keystore {path}: {detail}")]
    Keystore {
        /// The keystore file.
        path: String,
        /// What failed.
        detail: String,
    },
    /// Sealed keys do not open with this buyer's key.
    #[error("sealed keys of purchase {purchase} epoch {epoch}: {error}; if they were sealed for you, dispute the purchase (`fastdata dispute {purchase} keys-mismatch`)")]
    Sealed {
        /// The purchase.
        purchase: PurchaseId,
        /// The epoch.
        epoch: u32,
        /// The opening error.
        error: SealError,
    },
    /// Opened keys do not match the epoch's on-chain commitment.
    #[error("keys of purchase {purchase} epoch {epoch} do not match the on-chain commitment: dispute the purchase (`fastdata dispute {purchase} keys-mismatch`)")]
    CommitmentMismatch {
        /// The purchase.
        purchase: PurchaseId,
        /// The epoch.
        epoch: u32,
    },
    /// A segment failed verification.
    #[error("segment rejected: {0}")]
    Segment(String),
    /// An envelope error while sealing.
    #[error("envelope: {0}")]
    Envelope(#[from] EnvelopeError),
    /// A storage operator refused or failed.
    #[error("operator {operator}: {detail}")]
    Operator {
        /// The operator's endpoint.
        operator: String,
        /// The operator's error code (`unknown_purchase`, `replayed`, …) when it answered
        /// with one.
        code: Option<String>,
        /// Its error code and message, or the transport error.
        detail: String,
    },
    /// Evidence against an operator does not hold (and the chain would refuse it).
    #[error("evidence: {0}")]
    Evidence(String),
    /// No operator could serve the request.
    #[error("no operator could serve: {0}")]
    NoOperator(String),
    /// The purchase ended without keys (refunded) or in another unusable state.
    #[error("purchase {purchase}: {detail}")]
    Purchase {
        /// The purchase.
        purchase: PurchaseId,
        /// What is wrong.
        detail: String,
    },
    /// Waiting took longer than allowed.
    #[error("timed out: {0}")]
    Timeout(String),
    /// Local I/O.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

impl From<subxt::Error> for Error {
    fn from(e: subxt::Error) -> Self {
        Error::Chain(e.to_string())
    }
}

macro_rules! chain_error {
    ($($t:ty),*) => {$(
        impl From<$t> for Error {
            fn from(e: $t) -> Self {
                Error::Chain(e.to_string())
            }
        }
    )*};
}
chain_error!(
    subxt::error::OnlineClientError,
    subxt::error::OnlineClientAtBlockError,
    subxt::error::RuntimeApiError,
    subxt::error::ExtrinsicError,
    subxt::error::StorageError,
    subxt::error::BlocksError,
    subxt::error::EventsError
);

/// What to do about a pallet error, by its name.
pub fn hint(error: &str) -> Option<&'static str> {
    const HINTS: &[(&str, &str)] = &[
        // Escrow's SellerNotVerified (a buyer's purchase), told apart by its docs.
        ("no valid credential any more", "the seller's credential expired or was revoked: its offers cannot be bought until it is verified again"),
        ("SellerNotVerified", "ask a registered issuer to attest a credential to your DID (`fastdata issuer attest <your account> KYC`)"),
        ("BuyerNotVerified", "the offer is for verified buyers only: get a credential from a registered issuer"),
        ("DidNotFound", "create a DID first (`fastdata did create`)"),
        ("DidAlreadyExists", "this account already has a DID (`fastdata did show`)"),
        ("NoKeyAgreementKey", "create a DID with an X25519 key first (`fastdata did create`)"),
        ("UnknownIssuer", "only registered issuers may attest; governance registers issuers (`fastdata issuer register` with the sudo account)"),
        ("TrustScoreTooLow", "your trust score is below the offer's minimum"),
        ("PriceAboveMaximum", "raise --max-price to at least the offer's price"),
        ("InsufficientBalance", "fund the account with enough free balance for price and deposits"),
        ("StreamNotRegistered", "the seller has not registered the offer's stream yet"),
        ("StreamNotHosted", "the stream's operators are drawn a few blocks after its registration: retry shortly"),
        ("StreamIdTaken", "use another stream name or timestamp"),
        ("InvalidReplication", "not enough active operators, or the replication factor is out of range"),
        ("KeyDeadlinePassed", "the key deadline passed; the buyer will be refunded"),
        ("EpochAlreadyDelivered", "keys for this epoch were already delivered"),
        ("NotSettled", "ratings are possible only after the purchase is settled"),
        ("AlreadyRated", "each side rates a settled purchase once"),
        ("NothingPaid", "the trade paid nothing (a free offer, or refunded in full): it cannot be rated"),
        ("StillServing", "buyers still need the closed stream: release it after the block named by its StreamClosed event"),
        ("Payment", "the account cannot pay the transaction fee: fund it"),
    ];
    HINTS
        .iter()
        .find(|(name, _)| error.contains(name))
        .map(|(_, hint)| *hint)
}

fn hint_suffix(error: &str) -> String {
    hint(error).map(|h| format!(" — {h}")).unwrap_or_default()
}

/// Result of the SDK.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The operator refused because it does not know the purchase, or not as active. Right
    /// after a purchase or a key delivery its chain view may lag by a block or two, so for a
    /// purchase known active on chain this means "ask again shortly".
    pub fn is_operator_behind(&self) -> bool {
        matches!(
            self,
            Error::Operator { code: Some(code), .. }
                if code == "unknown_purchase" || code == "purchase_not_active"
        )
    }

    /// The operator refused an error code `code` (see the daemon's API docs).
    pub fn is_operator_code(&self, code: &str) -> bool {
        matches!(self, Error::Operator { code: Some(c), .. } if c == code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dispatch_errors_carry_hints() {
        let e = Error::Dispatch {
            error: "Offers::SellerNotVerified".into(),
        };
        let text = e.to_string();
        assert!(text.contains("SellerNotVerified"), "{text}");
        assert!(text.contains("fastdata issuer attest"), "{text}");
        let plain = Error::Dispatch {
            error: "Foo::Bar".into(),
        };
        assert_eq!(plain.to_string(), "transaction failed: Foo::Bar");
    }
}

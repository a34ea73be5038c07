//! Stored types of the operators pallet and their small helpers.

use codec::{Decode, DecodeWithMemTracking, Encode, MaxEncodedLen};
use frame_support::{pallet_prelude::*, traits::fungible};
use frame_system::pallet_prelude::BlockNumberFor;
use scale_info::TypeInfo;

pub use fastdata_primitives::api_market::OperatorStatus;

use crate::Config;
use fastdata_primitives::Score;

/// Balance type of the pallet's currency.
pub type BalanceOf<T> =
    <<T as Config>::Currency as fungible::Inspect<<T as frame_system::Config>::AccountId>>::Balance;

/// A bounded URL as stored and passed to calls.
pub type UrlOf<T> = BoundedVec<u8, <T as Config>::MaxUrlLen>;

/// The operator record of a runtime.
pub type OperatorInfoOf<T> =
    OperatorInfo<BalanceOf<T>, BlockNumberFor<T>, <T as Config>::MaxUrlLen>;

/// The active-set entry of a runtime.
pub type ActiveOperatorOf<T> = ActiveOperator<<T as frame_system::Config>::AccountId, BalanceOf<T>>;

/// The operators assigned to one stream.
pub type AssignmentOf<T> =
    BoundedVec<<T as frame_system::Config>::AccountId, <T as Config>::MaxReplication>;

/// The pending assignment of a runtime.
pub type PendingAssignmentOf<T> = PendingAssignment<BlockNumberFor<T>>;

/// A stream waiting for its operators to be drawn.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, MaxEncodedLen, TypeInfo)]
pub struct PendingAssignment<BlockNumber> {
    /// The stream.
    pub stream: fastdata_primitives::StreamId,
    /// Number of operators requested.
    pub replication: u32,
    /// The draw waits until the randomness source reports this block number or a later one.
    pub draw_after: BlockNumber,
}

/// The latest attestation of one operator for one stream.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, MaxEncodedLen, TypeInfo)]
pub struct HeadRecord<AccountId, BlockNumber> {
    /// The operator.
    pub operator: AccountId,
    /// Segments it stores contiguously from sequence 0.
    pub head: fastdata_primitives::Sequence,
    /// Bytes of the stream it stores.
    pub stored_bytes: u64,
    /// Block of the attestation; hosting is paid from here to the next one.
    pub at: BlockNumber,
}

/// The head records of a runtime.
pub type HeadRecordOf<T> = HeadRecord<<T as frame_system::Config>::AccountId, BlockNumberFor<T>>;

/// What a stream's seller pays its operators for hosting: a quota and the funds that pay
/// for it, held from the payer under [`crate::HoldReason::Hosting`].
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, MaxEncodedLen, TypeInfo)]
pub struct HostingAccount<AccountId, Balance> {
    /// Who pays (the stream's seller).
    pub payer: AccountId,
    /// Most bytes each operator stores for the stream, in MB (10^6 bytes); the daemons
    /// refuse segments beyond it, and hosting is paid for at most this much.
    pub quota_mb: u32,
    /// Funds left on hold to pay the operators.
    pub funds: Balance,
    /// Operators the stream was requested with: a quota must come with funds for all of
    /// them storing all of it for a hosting period.
    pub replicas: u32,
}

/// The hosting account of a runtime.
pub type HostingAccountOf<T> = HostingAccount<<T as frame_system::Config>::AccountId, BalanceOf<T>>;

/// A registered storage operator.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, MaxEncodedLen, TypeInfo)]
#[scale_info(skip_type_params(MaxUrlLen))]
#[codec(mel_bound(Balance: MaxEncodedLen, BlockNumber: MaxEncodedLen))]
pub struct OperatorInfo<Balance, BlockNumber, MaxUrlLen: Get<u32>> {
    /// Stake held from the operator under [`crate::HoldReason::OperatorStake`]. It also pays for
    /// this record and the operator's stream index.
    pub stake: Balance,
    /// MQTT broker endpoint where sellers publish and buyers subscribe (`mqtt://`/`mqtts://`).
    pub broker_url: BoundedVec<u8, MaxUrlLen>,
    /// HTTP endpoint for batch downloads (`http://`/`https://`).
    pub http_url: BoundedVec<u8, MaxUrlLen>,
    /// Price per MB served, charged to buyers through escrow receipts.
    pub price_per_mb: Balance,
    /// Life-cycle state.
    pub status: OperatorStatus<BlockNumber>,
    /// Block of the last heartbeat (or of registration / resumption).
    pub last_heartbeat: BlockNumber,
    /// Block of registration.
    pub registered_at: BlockNumber,
}

/// An active operator as seen by the assignment.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, MaxEncodedLen, TypeInfo)]
pub struct ActiveOperator<AccountId, Balance> {
    /// The operator.
    pub who: AccountId,
    /// Its stake (mirrors [`OperatorInfo::stake`]).
    pub stake: Balance,
    /// Number of streams it hosts (entries of [`crate::StreamsOf`]).
    pub streams: u32,
    /// Its trust score capped at [`crate::Config::MaxTrustBoost`], as of its registration,
    /// resumption or latest heartbeat. Kept here so that an assignment reads one value
    /// instead of computing the score of every active operator.
    pub trust: Score,
}

/// Why an operator was suspended.
#[derive(
    Clone,
    Copy,
    PartialEq,
    Eq,
    Debug,
    Encode,
    Decode,
    DecodeWithMemTracking,
    MaxEncodedLen,
    TypeInfo,
)]
pub enum SuspensionReason {
    /// No heartbeat within the runtime's heartbeat timeout.
    MissedHeartbeats,
    /// A slash left the stake below the minimum.
    StakeBelowMinimum,
}

/// URL schemes an endpoint may use.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Endpoint {
    /// MQTT broker: `mqtt://` or `mqtts://`.
    Broker,
    /// HTTP server: `http://` or `https://`.
    Http,
}

impl Endpoint {
    fn schemes(self) -> &'static [&'static [u8]] {
        match self {
            Endpoint::Broker => &[b"mqtt://", b"mqtts://"],
            Endpoint::Http => &[b"http://", b"https://"],
        }
    }

    /// `true` if `url` is a well-formed endpoint of this kind:
    /// `scheme://host[:port][/path]` with an allowed scheme, a non-empty host of letters,
    /// digits, `.`, `-` (or a bracketed IPv6 literal), an optional port in `1..=65535`, no
    /// user info (`@`), and only visible ASCII characters in the path.
    pub fn is_valid_url(self, url: &[u8]) -> bool {
        let Some(rest) = self
            .schemes()
            .iter()
            .find_map(|scheme| url.strip_prefix(*scheme))
        else {
            return false;
        };
        if !rest.iter().all(|c| c.is_ascii_graphic()) {
            return false;
        }
        let authority_end = rest.iter().position(|&c| c == b'/').unwrap_or(rest.len());
        let (authority, _path) = rest.split_at(authority_end);
        if authority.contains(&b'@') {
            return false;
        }
        let (host, port) = match authority.strip_prefix(b"[") {
            // IPv6 literal: `[hex:hex…]` then an optional port.
            Some(v6) => {
                let Some(close) = v6.iter().position(|&c| c == b']') else {
                    return false;
                };
                let (inner, after) = v6.split_at(close);
                if inner.is_empty() || !inner.iter().all(|c| c.is_ascii_hexdigit() || *c == b':') {
                    return false;
                }
                let after = &after[1..];
                match after {
                    [] => (inner, None),
                    [b':', port @ ..] => (inner, Some(port)),
                    _ => return false,
                }
            }
            None => match authority.iter().position(|&c| c == b':') {
                Some(colon) => (&authority[..colon], Some(&authority[colon + 1..])),
                None => (authority, None),
            },
        };
        let host_ok = !host.is_empty()
            && (authority.starts_with(b"[")
                || host
                    .iter()
                    .all(|c| c.is_ascii_alphanumeric() || *c == b'.' || *c == b'-'));
        host_ok && port.is_none_or(is_valid_port)
    }
}

fn is_valid_port(port: &[u8]) -> bool {
    if port.is_empty() || port.len() > 5 || !port.iter().all(u8::is_ascii_digit) {
        return false;
    }
    let value = port
        .iter()
        .fold(0u32, |acc, d| acc * 10 + u32::from(d - b'0'));
    (1..=65_535).contains(&value)
}

#[cfg(test)]
mod tests {
    use super::Endpoint;

    #[test]
    fn broker_urls() {
        for ok in [
            &b"mqtt://broker.example.com"[..],
            b"mqtts://broker.example.com:8883",
            b"mqtt://10.0.0.1:1883/",
            b"mqtts://[::1]:8883",
            b"mqtt://localhost",
        ] {
            assert!(
                Endpoint::Broker.is_valid_url(ok),
                "{}",
                String::from_utf8_lossy(ok)
            );
        }
        for bad in [
            &b""[..],
            b"mqtt://",
            b"http://broker.example.com",
            b"mqtt:/broker",
            b"mqtt://user:pass@broker",
            b"mqtt://broker:0",
            b"mqtt://broker:65536",
            b"mqtt://broker:88a3",
            b"mqtt://broker:",
            b"mqtt://bro ker",
            b"mqtt://broker/\xff",
            b"mqtt://bro_ker",
            b"mqtt://[::1",
            b"mqtt://[]:1",
            b"mqtt://[::1]x",
            b"MQTT://broker",
        ] {
            assert!(
                !Endpoint::Broker.is_valid_url(bad),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn http_urls() {
        assert!(Endpoint::Http.is_valid_url(b"https://op.example.com/api/v1"));
        assert!(Endpoint::Http.is_valid_url(b"http://127.0.0.1:8080"));
        assert!(!Endpoint::Http.is_valid_url(b"mqtts://op.example.com"));
        assert!(!Endpoint::Http.is_valid_url(b"ftp://op.example.com"));
        assert!(!Endpoint::Http.is_valid_url(b"https://op.example.com/a b"));
    }
}

//! Serving rules: what a buyer's download (`GET /v1/purchases/{id}/segments`) and a peer
//! operator's replica read (`GET /v1/replica/streams/{stream}/segments`) may be served.
//!
//! Plain functions of their inputs (the chain view's facts, the purchase, the requested range,
//! the finalized block) that return what to serve or a typed refusal; [`crate::api`] parses
//! the request, calls them and builds the response. Whether a buyer may be served at all
//! (the access request's signature, expiry and nonce; the purchase active, within its access
//! period, of a stream hosted here) is [`Authorizer::admit_access`]; where its entitlement
//! starts and how far its receipts let it read, [`Authorizer::window`].
//!
//! [`Authorizer::admit_access`]: crate::auth::Authorizer::admit_access
//! [`Authorizer::window`]: crate::auth::Authorizer::window

use fastdata_primitives::{
    envelope, operator_api::SegmentRange, tokens::TokenError, AccountId, PurchaseId, Sequence,
    StreamId,
};
use sp_core::H256;

use crate::{
    auth::{public_key, AccessRequest, Refusal},
    chain::{ChainView, PurchaseInfo, StreamAssignment},
    replication::{ReplicaRequest, SignedReplicaRequest},
    retention::UNHOSTED_KEEP_BLOCKS,
    store::Store,
};

/// The access request presented for a download names another purchase than the one in the
/// path (answered `400 malformed`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the access request is for another purchase")]
pub struct OtherPurchase {
    /// The purchase of the path.
    pub path: PurchaseId,
    /// The purchase the access request is for.
    pub requested: PurchaseId,
}

/// A download of purchase `path` needs an access request for that same purchase.
pub fn check_request_purchase(
    request: &AccessRequest,
    path: PurchaseId,
) -> Result<(), OtherPurchase> {
    let requested = request.payload.purchase;
    if requested == path {
        Ok(())
    } else {
        Err(OtherPurchase { path, requested })
    }
}

/// What a buyer's download covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BuyerRange {
    /// The purchase's start is not known yet (no segment it may be served is stored): an
    /// empty answer, without the served-to and window-end headers.
    NotStarted,
    /// Nothing of the requested range may be served now: an empty answer stating only the
    /// window end.
    Empty {
        /// Highest sequence the buyer's current receipt allows.
        window_end: Sequence,
    },
    /// The sequences `from..=to` (each stored one the purchase covers, [`serves_segment`]).
    Serve {
        /// First sequence.
        from: Sequence,
        /// Last sequence (stated as served-to).
        to: Sequence,
        /// Highest sequence the buyer's current receipt allows.
        window_end: Sequence,
    },
}

impl BuyerRange {
    /// The window end to state, if any.
    pub fn window_end(&self) -> Option<Sequence> {
        match self {
            BuyerRange::NotStarted => None,
            BuyerRange::Empty { window_end } | BuyerRange::Serve { window_end, .. } => {
                Some(*window_end)
            }
        }
    }
}

/// The part of `requested` the buyer of `purchase` is served: from the purchase's start on
/// (and a batch's `first`), up to a batch's `last` and at most the receipt window's end.
/// `window` is `(start, window end)` of the purchase ([`crate::auth::Authorizer::window`]),
/// `None` while its start is unknown. An open bound of `requested` is the purchase's.
pub fn buyer_range(
    purchase: &PurchaseInfo,
    window: Option<(Sequence, Sequence)>,
    requested: &SegmentRange,
) -> BuyerRange {
    let Some((start, window_end)) = window else {
        return BuyerRange::NotStarted;
    };
    let (window_first, window_last) = purchase.sequence_window().unwrap_or((0, Sequence::MAX));
    let from = requested.from.unwrap_or(start).max(start).max(window_first);
    let to = requested
        .to
        .unwrap_or(Sequence::MAX)
        .min(window_last)
        .min(window_end);
    if from > to {
        BuyerRange::Empty { window_end }
    } else {
        BuyerRange::Serve {
            from,
            to,
            window_end,
        }
    }
}

/// Whether the segment stored at `sequence` as `envelope` may be served (and signed) under
/// `purchase`: a well-formed envelope whose header names that same sequence (ingest stores
/// each envelope under its header's sequence; anything else is not served) and an epoch the
/// purchase covers ([`PurchaseInfo::covers_epoch`]). The store never stores a sequence twice,
/// even after deleting it, so an honest operator never signs two envelopes for one sequence.
pub fn serves_segment(purchase: &PurchaseInfo, sequence: Sequence, envelope: &[u8]) -> bool {
    envelope::parse_header(envelope)
        .is_ok_and(|header| purchase.covers_epoch(header.epoch) && header.sequence == sequence)
}

/// The sequences a replica read of `requested` covers: what it asks for, open bounds open
/// (at most [`crate::replication::REPLICA_PAGE`] segments of it are sent).
pub fn replica_range(requested: &SegmentRange) -> (Sequence, Sequence) {
    (
        requested.from.unwrap_or(0),
        requested.to.unwrap_or(Sequence::MAX),
    )
}

/// Whether operator `me` may serve segments of `stream` to the requester of `request`:
/// the request is for `stream`; the requester is another operator assigned to it
/// (`assignment`, this operator's view of the stream, `None` when it does not host it), or
/// the successor of a handover from `me` among `recent_handovers` (the stream's handovers
/// of the last [`UNHOSTED_KEEP_BLOCKS`] blocks, as `(from, to)`): a stream handed over stays
/// readable by its successor for the keep period (it is deleted after that), so the
/// successor can backfill it.
pub fn replica_peer(
    me: &AccountId,
    stream: &StreamId,
    request: &ReplicaRequest,
    assignment: Option<&StreamAssignment>,
    recent_handovers: &[(AccountId, AccountId)],
) -> Result<(), Refusal> {
    if &request.stream != stream {
        return Err(Refusal::Malformed {
            what: "replica request",
            detail: "for another stream".into(),
        });
    }
    let successor = recent_handovers
        .iter()
        .any(|(from, to)| from == me && *to == request.requester);
    let assigned = assignment.is_some_and(|a| a.operators.contains(&request.requester));
    if assignment.is_none() && !successor {
        return Err(Refusal::Token(TokenError::UnknownStream));
    }
    if request.requester == *me || !(assigned || successor) {
        return Err(Refusal::Token(TokenError::NotAssigned));
    }
    Ok(())
}

/// Checks a replica read of `stream` by a peer: [`replica_peer`] against `view` at its
/// finalized block, then the request itself (signed by the requester for chain `genesis`,
/// addressed to `me`, unexpired) and its nonce (above the last one seen from the requester,
/// recorded in `store`).
pub fn check_replica(
    view: &dyn ChainView,
    store: &Store,
    me: &AccountId,
    genesis: &H256,
    stream: &StreamId,
    request: &SignedReplicaRequest,
) -> Result<(), Refusal> {
    let payload = &request.payload;
    let now = view.finalized_block();
    let assignment = view.stream(stream);
    let handovers = view.handovers(stream, now.saturating_sub(UNHOSTED_KEEP_BLOCKS));
    replica_peer(me, stream, payload, assignment.as_ref(), &handovers)?;
    let mut context = b"replica".to_vec();
    context.extend_from_slice(payload.requester.as_ref());
    store
        .with_nonce(&context, |last| {
            request
                .check(&public_key(&payload.requester), me, now, last, genesis)
                .map(|()| payload.nonce)
        })
        .map_err(|e| Refusal::Storage(e.to_string()))?
        .map_err(Refusal::Token)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::{
        tests::{account, assignment, live_purchase},
        ChainEvent, InMemoryChainView,
    };
    use fastdata_primitives::{
        envelope::{seal, EpochKeys, SegmentHeader},
        escrow::PurchaseTerms,
        tokens::{AccessRequest as AccessPayload, Signed},
    };
    use sp_core::{sr25519, Pair};

    const GENESIS: H256 = H256::repeat_byte(0x47);

    fn range(from: Option<Sequence>, to: Option<Sequence>) -> SegmentRange {
        SegmentRange { from, to }
    }

    /// A batch purchase of sequences `first..=last` of stream 7.
    fn batch(first: Sequence, last: Sequence) -> PurchaseInfo {
        let mut purchase = live_purchase(1, 3, 7, 50);
        purchase.terms = PurchaseTerms::Batch { first, last };
        purchase.access.first_epoch = None;
        purchase
    }

    fn envelope(epoch: u32, sequence: Sequence) -> Vec<u8> {
        seal(
            &EpochKeys::new([1; 32], [2; 32]),
            &SegmentHeader {
                stream: H256::repeat_byte(7),
                epoch,
                sequence,
                timestamp: 1,
            },
            b"x",
        )
        .unwrap()
    }

    #[test]
    fn a_download_needs_an_access_request_for_its_own_purchase() {
        let request = |purchase: PurchaseId| -> AccessRequest {
            Signed::sign(
                AccessPayload {
                    purchase,
                    operator: account(2),
                    expiry: 100,
                    nonce: 1,
                },
                &sr25519::Pair::from_seed(&[3; 32]),
                &GENESIS,
            )
        };
        assert_eq!(check_request_purchase(&request(4), 4), Ok(()));
        let refused = check_request_purchase(&request(5), 4).unwrap_err();
        assert_eq!(
            refused,
            OtherPurchase {
                path: 4,
                requested: 5
            }
        );
        assert_eq!(
            refused.to_string(),
            "the access request is for another purchase"
        );
    }

    #[test]
    fn nothing_is_served_before_the_purchase_has_a_start() {
        let purchase = live_purchase(1, 3, 7, 50);
        let answer = buyer_range(&purchase, None, &range(Some(0), Some(10)));
        assert_eq!(answer, BuyerRange::NotStarted);
        assert_eq!(answer.window_end(), None);
    }

    #[test]
    fn a_stream_purchase_is_served_from_its_start_up_to_its_window_end() {
        let purchase = live_purchase(1, 3, 7, 50);
        let window = Some((5, 20));
        // Open bounds: the purchase's own.
        let answer = buyer_range(&purchase, window, &range(None, None));
        assert_eq!(
            answer,
            BuyerRange::Serve {
                from: 5,
                to: 20,
                window_end: 20
            }
        );
        assert_eq!(answer.window_end(), Some(20));
        // Below the start and past the window: cut to both.
        assert_eq!(
            buyer_range(&purchase, window, &range(Some(0), Some(1000))),
            BuyerRange::Serve {
                from: 5,
                to: 20,
                window_end: 20
            }
        );
        // Inside: as asked.
        assert_eq!(
            buyer_range(&purchase, window, &range(Some(7), Some(9))),
            BuyerRange::Serve {
                from: 7,
                to: 9,
                window_end: 20
            }
        );
        // One sequence.
        assert_eq!(
            buyer_range(&purchase, window, &range(Some(20), Some(20))),
            BuyerRange::Serve {
                from: 20,
                to: 20,
                window_end: 20
            }
        );
    }

    #[test]
    fn a_range_outside_what_may_be_served_is_empty_with_the_window_end() {
        let purchase = live_purchase(1, 3, 7, 50);
        let window = Some((5, 20));
        // Past the receipt window.
        let answer = buyer_range(&purchase, window, &range(Some(21), None));
        assert_eq!(answer, BuyerRange::Empty { window_end: 20 });
        assert_eq!(answer.window_end(), Some(20));
        // Before the start.
        assert_eq!(
            buyer_range(&purchase, window, &range(None, Some(4))),
            BuyerRange::Empty { window_end: 20 }
        );
        // Reversed.
        assert_eq!(
            buyer_range(&purchase, window, &range(Some(9), Some(8))),
            BuyerRange::Empty { window_end: 20 }
        );
    }

    #[test]
    fn a_batch_is_served_within_its_window_only() {
        let purchase = batch(10, 30);
        // The receipt window reaches past the batch: its `last` bounds the download.
        assert_eq!(
            buyer_range(&purchase, Some((10, 100)), &range(None, None)),
            BuyerRange::Serve {
                from: 10,
                to: 30,
                window_end: 100
            }
        );
        // A start below `first` (it is the batch's `first` in practice) is raised to it.
        assert_eq!(
            buyer_range(&purchase, Some((0, 100)), &range(Some(2), Some(12))),
            BuyerRange::Serve {
                from: 10,
                to: 12,
                window_end: 100
            }
        );
        // The receipt window ends first.
        assert_eq!(
            buyer_range(&purchase, Some((10, 15)), &range(None, None)),
            BuyerRange::Serve {
                from: 10,
                to: 15,
                window_end: 15
            }
        );
        // Past `last`.
        assert_eq!(
            buyer_range(&purchase, Some((10, 100)), &range(Some(31), None)),
            BuyerRange::Empty { window_end: 100 }
        );
    }

    #[test]
    fn only_covered_segments_stored_at_their_own_sequence_are_served() {
        let live = live_purchase(1, 3, 7, 50);
        assert_eq!(live.access.epochs, vec![0]);
        assert!(serves_segment(&live, 4, &envelope(0, 4)));
        // An epoch whose keys the buyer does not hold.
        assert!(!serves_segment(&live, 4, &envelope(1, 4)));
        // Stored under another sequence than its header's.
        assert!(!serves_segment(&live, 5, &envelope(0, 4)));
        // Not an envelope.
        assert!(!serves_segment(&live, 4, b"not an envelope"));
        assert!(!serves_segment(&live, 4, &[]));
        // A batch covers every epoch of its window.
        let batch = batch(0, 10);
        assert!(serves_segment(&batch, 4, &envelope(1, 4)));
        assert!(!serves_segment(&batch, 5, &envelope(1, 4)));
    }

    #[test]
    fn a_replica_read_asks_for_what_it_names() {
        assert_eq!(replica_range(&range(None, None)), (0, Sequence::MAX));
        assert_eq!(replica_range(&range(Some(3), Some(9))), (3, 9));
        assert_eq!(replica_range(&range(Some(3), None)), (3, Sequence::MAX));
        assert_eq!(replica_range(&range(None, Some(9))), (0, 9));
    }

    fn replica_request(requester: u8, stream: u8, nonce: u64) -> ReplicaRequest {
        ReplicaRequest {
            stream: H256::repeat_byte(stream),
            requester: account(requester),
            operator: account(2),
            expiry: 100,
            nonce,
        }
    }

    #[test]
    fn replicas_go_to_the_other_operators_of_the_stream_and_a_successor() {
        let me = account(2);
        let stream = H256::repeat_byte(7);
        let hosted = assignment(7, 1, &[2, 9]);
        let not_assigned = Err(Refusal::Token(TokenError::NotAssigned));
        let unknown = Err(Refusal::Token(TokenError::UnknownStream));

        // Another operator of the stream.
        assert_eq!(
            replica_peer(&me, &stream, &replica_request(9, 7, 1), Some(&hosted), &[]),
            Ok(())
        );
        // A request for another stream than the path's.
        assert_eq!(
            replica_peer(&me, &stream, &replica_request(9, 8, 1), Some(&hosted), &[]),
            Err(Refusal::Malformed {
                what: "replica request",
                detail: "for another stream".into(),
            })
        );
        // Itself, and an operator not assigned to the stream.
        assert_eq!(
            replica_peer(&me, &stream, &replica_request(2, 7, 1), Some(&hosted), &[]),
            not_assigned
        );
        assert_eq!(
            replica_peer(&me, &stream, &replica_request(5, 7, 1), Some(&hosted), &[]),
            not_assigned
        );
        // A stream not hosted here.
        assert_eq!(
            replica_peer(&me, &stream, &replica_request(9, 7, 1), None, &[]),
            unknown
        );
        // Handed over by this operator to the requester: served although not hosted any
        // more, and although the requester is not (yet) in this view's assignment.
        let handed = [(account(2), account(5))];
        assert_eq!(
            replica_peer(&me, &stream, &replica_request(5, 7, 1), None, &handed),
            Ok(())
        );
        assert_eq!(
            replica_peer(
                &me,
                &stream,
                &replica_request(5, 7, 1),
                Some(&hosted),
                &handed
            ),
            Ok(())
        );
        // Not hosted here, and not this operator's successor: someone else's, or another
        // requester than the successor.
        let other = [(account(4), account(5))];
        assert_eq!(
            replica_peer(&me, &stream, &replica_request(5, 7, 1), None, &other),
            unknown
        );
        assert_eq!(
            replica_peer(&me, &stream, &replica_request(6, 7, 1), None, &handed),
            unknown
        );
        // Hosted, but the requester is neither assigned nor this operator's successor.
        assert_eq!(
            replica_peer(
                &me,
                &stream,
                &replica_request(5, 7, 1),
                Some(&hosted),
                &other
            ),
            not_assigned
        );
    }

    #[test]
    fn a_replica_request_is_checked_against_the_view_and_its_nonce() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db.redb")).unwrap();
        let view = InMemoryChainView::new();
        view.apply(ChainEvent::Finalized { number: 10 });
        let peer = sr25519::Pair::from_seed(&[9; 32]);
        let mut hosted = assignment(7, 1, &[2]);
        hosted.operators.push(AccountId::from(peer.public()));
        view.apply(ChainEvent::StreamAssigned(hosted));
        let (me, stream) = (account(2), H256::repeat_byte(7));
        let signed = |nonce, expiry| {
            Signed::sign(
                ReplicaRequest {
                    stream,
                    requester: AccountId::from(peer.public()),
                    operator: me.clone(),
                    expiry,
                    nonce,
                },
                &peer,
                &GENESIS,
            )
        };
        let check = |request: &SignedReplicaRequest, stream: &StreamId| {
            check_replica(&view, &store, &me, &GENESIS, stream, request)
        };

        assert_eq!(check(&signed(5, 20), &stream), Ok(()));
        // Replayed, and an older nonce.
        assert_eq!(
            check(&signed(5, 20), &stream),
            Err(Refusal::Token(TokenError::Replayed))
        );
        assert_eq!(
            check(&signed(4, 20), &stream),
            Err(Refusal::Token(TokenError::Replayed))
        );
        // Expired (block 10 is past its expiry).
        assert_eq!(
            check(&signed(6, 9), &stream),
            Err(Refusal::Token(TokenError::Expired))
        );
        // Signed for another chain.
        let other_chain = Signed::sign(signed(7, 20).payload, &peer, &H256::repeat_byte(1));
        assert_eq!(
            check(&other_chain, &stream),
            Err(Refusal::Token(TokenError::BadSignature))
        );
        // The path names another stream; not hosted here.
        assert_eq!(
            check(&signed(8, 20), &H256::repeat_byte(8)),
            Err(Refusal::Malformed {
                what: "replica request",
                detail: "for another stream".into(),
            })
        );
        view.apply(ChainEvent::StreamUnassigned { stream });
        assert_eq!(
            check(&signed(9, 20), &stream),
            Err(Refusal::Token(TokenError::UnknownStream))
        );
        // Hosted again, without the requester.
        view.apply(ChainEvent::StreamAssigned(assignment(7, 1, &[2])));
        assert_eq!(
            check(&signed(9, 20), &stream),
            Err(Refusal::Token(TokenError::NotAssigned))
        );
        // Refused requests used up no nonce: 6 (refused as expired) and 9 are still above
        // the last one recorded.
        let mut hosted = assignment(7, 1, &[2]);
        hosted.operators.push(AccountId::from(peer.public()));
        view.apply(ChainEvent::StreamAssigned(hosted));
        assert_eq!(check(&signed(6, 20), &stream), Ok(()));
        assert_eq!(check(&signed(9, 20), &stream), Ok(()));
    }
}

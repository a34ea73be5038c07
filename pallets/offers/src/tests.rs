//! Tests of the offers pallet. Every test ends with the `try_state` invariants.

use crate::{
    mock::*, pallet, EpochCommitments, Error, Event, HoldReason, NextOfferId, OfferTermsOf,
    OffersBySeller, PaymentModeOf, Streams, TopicOf,
};
use fastdata_primitives::{
    tokens::{Signed, TokenError, UploadToken},
    OfferProvider, OfferSummary, OperatorProvider, PaymentMode, StreamId, StreamSummary, SCORE_ONE,
};
use frame_support::{
    assert_noop, assert_ok,
    traits::fungible::{Inspect, InspectHold},
};
use sp_core::H256;
use sp_runtime::{DispatchError, Perbill};

const TOPIC: &str = "plant-7/line-2/temperature";

fn offer_hold(who: &AccountId) -> Balance {
    Balances::balance_on_hold(&HoldReason::OfferDeposit.into(), who)
}

fn stream_hold(who: &AccountId) -> Balance {
    Balances::balance_on_hold(&HoldReason::StreamDeposit.into(), who)
}

fn topic_deposit() -> Balance {
    OFFER_DEPOSIT + BYTE_DEPOSIT * TOPIC.len() as Balance
}

/// Alice lists a stream offer with replication `r`; returns its id.
fn create(r: u32) -> u64 {
    let id = NextOfferId::<Test>::get();
    assert_ok!(Offers::create_offer(
        RuntimeOrigin::signed(alice()),
        topic(TOPIC),
        stream_mode(),
        250,
        terms(r)
    ));
    id
}

/// Alice lists an offer with replication 2 and registers stream "sensor-1" at timestamp 7.
fn create_with_stream() -> (u64, StreamId) {
    let offer = create(2);
    assert_ok!(Offers::register_stream(
        RuntimeOrigin::signed(alice()),
        offer,
        name("sensor-1"),
        7,
        commitment(1)
    ));
    (offer, stream_id_of(&alice(), "sensor-1", 7))
}

fn stream_deposit(name_len: usize) -> Balance {
    STREAM_DEPOSIT + EPOCH_DEPOSIT + BYTE_DEPOSIT * name_len as Balance
}

// ---------------------------------------------------------------- offers

#[test]
fn create_offer_holds_deposit_and_stores_offer() {
    ExtBuilder::default().build_and_execute(|| {
        let id = create(2);
        assert_eq!(id, 0);
        assert_eq!(NextOfferId::<Test>::get(), 1);
        assert_eq!(offer_hold(&alice()), topic_deposit());
        assert_eq!(Balances::balance(&alice()), ENDOWMENT - topic_deposit());
        let offer = pallet::Offers::<Test>::get(0).unwrap();
        assert_eq!(offer.seller, alice());
        assert_eq!(offer.topic, topic(TOPIC));
        assert_eq!(offer.price, 250);
        assert_eq!(offer.terms, terms(2));
        assert_eq!(
            (offer.stream, offer.retired_at, offer.created_at),
            (None, None, 1)
        );
        assert_eq!(OffersBySeller::<Test>::get(alice()).into_inner(), vec![0]);
        System::assert_last_event(
            Event::OfferCreated {
                offer: 0,
                seller: alice(),
                deposit: topic_deposit(),
            }
            .into(),
        );
    });
}

#[test]
fn batch_offers_are_accepted_within_bounds() {
    ExtBuilder::default().build_and_execute(|| {
        assert_ok!(Offers::create_offer(
            RuntimeOrigin::signed(alice()),
            topic("archive/2026-05"),
            PaymentMode::Batch {
                first: 10,
                last: 10 + MAX_BATCH - 1
            },
            5_000,
            terms(1)
        ));
        let summary = <Offers as OfferProvider<_, _, _>>::offer(0).unwrap();
        assert_eq!(
            summary.mode,
            PaymentMode::Batch {
                first: 10,
                last: 10 + MAX_BATCH - 1
            }
        );
    });
}

#[test]
fn unverified_seller_is_refused() {
    ExtBuilder::default().build_and_execute(|| {
        assert_noop!(
            Offers::create_offer(
                RuntimeOrigin::signed(mallory()),
                topic(TOPIC),
                stream_mode(),
                1,
                terms(1)
            ),
            Error::<Test>::SellerNotVerified
        );
        // A seller whose verification lapsed cannot register a stream for an old offer.
        let offer = create(1);
        set_verified(&alice(), false);
        assert_noop!(
            Offers::register_stream(
                RuntimeOrigin::signed(alice()),
                offer,
                name("s"),
                1,
                commitment(1)
            ),
            Error::<Test>::SellerNotVerified
        );
    });
}

#[test]
fn create_offer_validation_errors() {
    ExtBuilder::default().build_and_execute(|| {
        let alice_creates =
            |t: TopicOf<Test>, mode: PaymentModeOf<Test>, terms: OfferTermsOf<Test>| {
                Offers::create_offer(RuntimeOrigin::signed(alice()), t, mode, 1, terms)
            };
        assert_noop!(
            alice_creates(topic(""), stream_mode(), terms(1)),
            Error::<Test>::InvalidTopic
        );
        assert_noop!(
            alice_creates(topic("a/#"), stream_mode(), terms(1)),
            Error::<Test>::InvalidTopic
        );
        assert_noop!(
            alice_creates(topic("a/+/b"), stream_mode(), terms(1)),
            Error::<Test>::InvalidTopic
        );
        assert_noop!(
            alice_creates(
                topic(TOPIC),
                PaymentMode::Batch { first: 5, last: 4 },
                terms(1)
            ),
            Error::<Test>::InvalidBatchWindow
        );
        assert_noop!(
            alice_creates(
                topic(TOPIC),
                PaymentMode::Batch {
                    first: 0,
                    last: MAX_BATCH
                },
                terms(1)
            ),
            Error::<Test>::BatchWindowTooLarge
        );
        assert_noop!(
            alice_creates(
                topic(TOPIC),
                PaymentMode::Stream {
                    period: MIN_PERIOD - 1
                },
                terms(1)
            ),
            Error::<Test>::PeriodTooShort
        );
        assert_noop!(
            alice_creates(topic(TOPIC), stream_mode(), terms(0)),
            Error::<Test>::InvalidReplication
        );
        assert_noop!(
            alice_creates(topic(TOPIC), stream_mode(), terms(MAX_REPLICATION + 1)),
            Error::<Test>::InvalidReplication
        );
        let mut long = terms(1);
        long.retention = MAX_RETENTION + 1;
        assert_noop!(
            alice_creates(topic(TOPIC), stream_mode(), long),
            Error::<Test>::RetentionTooLong
        );
        assert_noop!(
            Offers::create_offer(
                RuntimeOrigin::none(),
                topic(TOPIC),
                stream_mode(),
                1,
                terms(1)
            ),
            DispatchError::BadOrigin
        );
    });
}

#[test]
fn create_offer_is_bounded_per_seller_and_needs_funds() {
    ExtBuilder::default().build_and_execute(|| {
        for _ in 0..MAX_OFFERS {
            create(1);
        }
        assert_noop!(
            Offers::create_offer(
                RuntimeOrigin::signed(alice()),
                topic(TOPIC),
                stream_mode(),
                1,
                terms(1)
            ),
            Error::<Test>::TooManyOffers
        );
        // Bob cannot afford the deposit after spending nearly everything.
        <Balances as frame_support::traits::fungible::Mutate<_>>::set_balance(&bob(), 50);
        assert_noop!(
            Offers::create_offer(
                RuntimeOrigin::signed(bob()),
                topic(TOPIC),
                stream_mode(),
                1,
                terms(1)
            ),
            sp_runtime::TokenError::FundsUnavailable
        );
    });
}

#[test]
fn update_offer_changes_price_and_terms_for_future_purchases() {
    ExtBuilder::default().build_and_execute(|| {
        let id = create(2);
        let mut new_terms = terms(3);
        new_terms.verified_only = true;
        new_terms.min_trust_score = SCORE_ONE / 2;
        new_terms.verified_discount = Perbill::zero();
        assert_ok!(Offers::update_offer(
            RuntimeOrigin::signed(alice()),
            id,
            Some(300),
            Some(new_terms.clone())
        ));
        let summary = <Offers as OfferProvider<_, _, _>>::offer(id).unwrap();
        assert_eq!(
            summary,
            OfferSummary {
                seller: alice(),
                stream: None,
                mode: stream_mode(),
                price: 300,
                verified_only: true,
                verified_discount: Perbill::zero(),
                min_trust_score: SCORE_ONE / 2,
                active: true,
            }
        );
        System::assert_last_event(
            Event::OfferUpdated {
                offer: id,
                price: 300,
                terms: new_terms,
            }
            .into(),
        );
        // Price only.
        assert_ok!(Offers::update_offer(
            RuntimeOrigin::signed(alice()),
            id,
            Some(10),
            None
        ));
        assert_eq!(pallet::Offers::<Test>::get(id).unwrap().price, 10);
        assert_eq!(
            pallet::Offers::<Test>::get(id).unwrap().terms.replication,
            3
        );
    });
}

#[test]
fn update_offer_errors() {
    ExtBuilder::default().build_and_execute(|| {
        let (offer, _) = create_with_stream();
        assert_noop!(
            Offers::update_offer(RuntimeOrigin::signed(alice()), offer, None, None),
            Error::<Test>::NothingToUpdate
        );
        assert_noop!(
            Offers::update_offer(RuntimeOrigin::signed(alice()), 99, Some(1), None),
            Error::<Test>::UnknownOffer
        );
        assert_noop!(
            Offers::update_offer(RuntimeOrigin::signed(bob()), offer, Some(1), None),
            Error::<Test>::NotSeller
        );
        assert_noop!(
            Offers::update_offer(RuntimeOrigin::signed(alice()), offer, None, Some(terms(3))),
            Error::<Test>::ReplicationLocked
        );
        assert_noop!(
            Offers::update_offer(RuntimeOrigin::signed(alice()), offer, None, Some(terms(0))),
            Error::<Test>::InvalidReplication
        );
        // Same replication is fine once the stream exists.
        assert_ok!(Offers::update_offer(
            RuntimeOrigin::signed(alice()),
            offer,
            None,
            Some(terms(2))
        ));
        assert_ok!(Offers::retire_offer(RuntimeOrigin::signed(alice()), offer));
        assert_noop!(
            Offers::update_offer(RuntimeOrigin::signed(alice()), offer, Some(1), None),
            Error::<Test>::OfferRetired
        );
    });
}

#[test]
fn retire_offer_stops_purchases_but_keeps_the_stream() {
    ExtBuilder::default().build_and_execute(|| {
        let (offer, stream) = create_with_stream();
        System::set_block_number(5);
        assert_ok!(Offers::retire_offer(RuntimeOrigin::signed(alice()), offer));
        assert_eq!(
            pallet::Offers::<Test>::get(offer).unwrap().retired_at,
            Some(5)
        );
        assert!(
            !<Offers as OfferProvider<_, _, _>>::offer(offer)
                .unwrap()
                .active
        );
        // Existing purchases run to their end: the stream stays open and hosted.
        let summary = <Offers as OfferProvider<_, _, _>>::stream(&stream).unwrap();
        assert!(summary.open);
        assert_eq!(summary.operators.len(), 2);
        assert_ok!(Offers::rotate_epoch(
            RuntimeOrigin::signed(alice()),
            stream,
            commitment(2)
        ));
        System::assert_has_event(Event::OfferRetired { offer }.into());
    });
}

#[test]
fn retire_offer_errors() {
    ExtBuilder::default().build_and_execute(|| {
        let offer = create(1);
        assert_noop!(
            Offers::retire_offer(RuntimeOrigin::signed(alice()), 9),
            Error::<Test>::UnknownOffer
        );
        assert_noop!(
            Offers::retire_offer(RuntimeOrigin::signed(bob()), offer),
            Error::<Test>::NotSeller
        );
        assert_ok!(Offers::retire_offer(RuntimeOrigin::signed(alice()), offer));
        assert_noop!(
            Offers::retire_offer(RuntimeOrigin::signed(alice()), offer),
            Error::<Test>::OfferRetired
        );
    });
}

// ---------------------------------------------------------------- streams

#[test]
fn register_stream_assigns_operators_and_commits_epoch_zero() {
    ExtBuilder::default().build_and_execute(|| {
        let (offer, stream) = create_with_stream();
        let expected_id = H256(sp_io::hashing::blake2_256(
            &[alice().as_ref() as &[u8], b"sensor-1", &7u64.to_le_bytes()].concat(),
        ));
        assert_eq!(
            stream, expected_id,
            "streamID = blake2_256(seller ‖ name ‖ timestamp)"
        );
        assert_eq!(stream_hold(&alice()), stream_deposit("sensor-1".len()));
        assert_eq!(
            pallet::Offers::<Test>::get(offer).unwrap().stream,
            Some(stream)
        );
        assert_eq!(
            EpochCommitments::<Test>::get(stream, 0),
            Some(commitment(1))
        );
        assert_eq!(
            <Offers as OfferProvider<_, _, _>>::stream(&stream),
            Some(StreamSummary {
                seller: alice(),
                offer,
                operators: vec![operator(0), operator(1)],
                epoch: 0,
                open: true
            })
        );
        assert_eq!(
            <Offers as OfferProvider<_, _, _>>::epoch_commitment(&stream, 0),
            Some(commitment(1))
        );
        System::assert_last_event(
            Event::StreamRegistered {
                stream,
                offer,
                seller: alice(),
                commitment: commitment(1),
            }
            .into(),
        );
    });
}

#[test]
fn register_stream_errors() {
    ExtBuilder::default().build_and_execute(|| {
        let (with_stream, _) = create_with_stream();
        let offer = create(2);
        let register = |who: AccountId, offer: u64, n: &str, ts: u64| {
            Offers::register_stream(
                RuntimeOrigin::signed(who),
                offer,
                name(n),
                ts,
                commitment(1),
            )
        };
        assert_noop!(register(alice(), 99, "s", 1), Error::<Test>::UnknownOffer);
        assert_noop!(register(bob(), offer, "s", 1), Error::<Test>::NotSeller);
        assert_noop!(
            register(alice(), with_stream, "s", 1),
            Error::<Test>::StreamAlreadyRegistered
        );
        assert_noop!(
            register(alice(), offer, "", 1),
            Error::<Test>::InvalidStreamName
        );
        assert_noop!(
            register(alice(), offer, "a/b", 1),
            Error::<Test>::InvalidStreamName
        );
        assert_noop!(
            register(alice(), offer, "sensor-1", 7),
            Error::<Test>::StreamIdTaken
        );
        // Not enough operators: the storage network's error, nothing held.
        set_operator_pool(vec![operator(0)]);
        assert_noop!(
            register(alice(), offer, "s", 1),
            DispatchError::Other("not enough operators")
        );
        set_operator_pool((0..3).map(operator).collect());
        assert_ok!(Offers::retire_offer(RuntimeOrigin::signed(alice()), offer));
        assert_noop!(
            register(alice(), offer, "s", 1),
            Error::<Test>::OfferRetired
        );
    });
}

#[test]
fn rotate_epoch_records_commitments_and_prunes_the_oldest() {
    ExtBuilder::default().build_and_execute(|| {
        let (_, stream) = create_with_stream();
        for epoch in 1..MAX_RETAINED_EPOCHS {
            assert_ok!(Offers::rotate_epoch(
                RuntimeOrigin::signed(alice()),
                stream,
                commitment(epoch as u8 + 1)
            ));
            System::assert_last_event(
                Event::EpochRotated {
                    stream,
                    epoch,
                    commitment: commitment(epoch as u8 + 1),
                }
                .into(),
            );
        }
        let full = stream_deposit(8) + EPOCH_DEPOSIT * (MAX_RETAINED_EPOCHS as Balance - 1);
        assert_eq!(stream_hold(&alice()), full);
        // Beyond the retained maximum: the oldest is pruned, no extra deposit.
        assert_ok!(Offers::rotate_epoch(
            RuntimeOrigin::signed(alice()),
            stream,
            commitment(50)
        ));
        assert_eq!(stream_hold(&alice()), full);
        assert_eq!(EpochCommitments::<Test>::get(stream, 0), None);
        assert_eq!(
            EpochCommitments::<Test>::get(stream, MAX_RETAINED_EPOCHS),
            Some(commitment(50))
        );
        let record = Streams::<Test>::get(stream).unwrap();
        assert_eq!(
            (record.epoch, record.oldest_epoch),
            (MAX_RETAINED_EPOCHS, 1)
        );
        assert_eq!(
            <Offers as OfferProvider<_, _, _>>::stream(&stream)
                .unwrap()
                .epoch,
            MAX_RETAINED_EPOCHS
        );
    });
}

#[test]
fn rotate_epoch_errors() {
    ExtBuilder::default().build_and_execute(|| {
        let (_, stream) = create_with_stream();
        assert_noop!(
            Offers::rotate_epoch(RuntimeOrigin::signed(alice()), H256::zero(), commitment(2)),
            Error::<Test>::UnknownStream
        );
        assert_noop!(
            Offers::rotate_epoch(RuntimeOrigin::signed(bob()), stream, commitment(2)),
            Error::<Test>::NotSeller
        );
        Streams::<Test>::mutate(stream, |s| {
            let s = s.as_mut().unwrap();
            s.epoch = u32::MAX;
            s.oldest_epoch = u32::MAX;
        });
        EpochCommitments::<Test>::remove(stream, 0);
        EpochCommitments::<Test>::insert(stream, u32::MAX, commitment(1));
        assert_noop!(
            Offers::rotate_epoch(RuntimeOrigin::signed(alice()), stream, commitment(2)),
            Error::<Test>::EpochOverflow
        );
        assert_ok!(Offers::close_stream(RuntimeOrigin::signed(alice()), stream));
        assert_noop!(
            Offers::rotate_epoch(RuntimeOrigin::signed(alice()), stream, commitment(2)),
            Error::<Test>::StreamClosed
        );
    });
}

#[test]
fn rotate_epoch_needs_funds_for_the_commitment_deposit() {
    ExtBuilder::default().build_and_execute(|| {
        let (_, stream) = create_with_stream();
        <Balances as frame_support::traits::fungible::Mutate<_>>::set_balance(
            &alice(),
            EPOCH_DEPOSIT - 1,
        );
        assert_noop!(
            Offers::rotate_epoch(RuntimeOrigin::signed(alice()), stream, commitment(2)),
            sp_runtime::TokenError::FundsUnavailable
        );
    });
}

#[test]
fn close_stream_releases_operators_and_retires_the_offer() {
    ExtBuilder::default().build_and_execute(|| {
        let (offer, stream) = create_with_stream();
        System::set_block_number(9);
        assert_ok!(Offers::close_stream(RuntimeOrigin::signed(alice()), stream));
        assert!(MockOperators::assigned(&stream).is_empty());
        let summary = <Offers as OfferProvider<_, _, _>>::stream(&stream).unwrap();
        assert!(!summary.open);
        assert!(summary.operators.is_empty());
        assert_eq!(
            pallet::Offers::<Test>::get(offer).unwrap().retired_at,
            Some(9)
        );
        let events = offer_events();
        assert_eq!(
            &events[events.len() - 2..],
            &[
                Event::OfferRetired { offer },
                Event::StreamClosed {
                    stream,
                    serving_until: None
                }
            ]
        );
        // Commitments stay for buyers and disputes.
        assert_eq!(
            <Offers as OfferProvider<_, _, _>>::epoch_commitment(&stream, 0),
            Some(commitment(1))
        );
        // Deposits stay until removal.
        assert_eq!(stream_hold(&alice()), stream_deposit(8));
        assert_eq!(Streams::<Test>::get(stream).unwrap().released_at, Some(9));
    });
}

#[test]
fn closing_keeps_the_stream_hosted_while_buyers_need_it() {
    ExtBuilder::default().build_and_execute(|| {
        let (offer, stream) = create_with_stream();
        let hosts = MockOperators::assigned(&stream);
        assert!(!hosts.is_empty());
        // A purchase's access and claim time run to block 60.
        purchases_need(offer, 60);
        System::set_block_number(9);
        assert_ok!(Offers::close_stream(RuntimeOrigin::signed(alice()), stream));
        System::assert_last_event(
            Event::StreamClosed {
                stream,
                serving_until: Some(60),
            }
            .into(),
        );
        // Sold no more, still hosted by the same operators.
        let summary = <Offers as OfferProvider<_, _, _>>::stream(&stream).unwrap();
        assert!(!summary.open);
        assert_eq!(summary.operators, hosts);
        assert!(!pallet::Offers::<Test>::get(offer).unwrap().is_active());
        assert_eq!(Streams::<Test>::get(stream).unwrap().released_at, None);

        // Nobody can release it early, and the seller cannot take its deposits.
        System::set_block_number(59);
        assert_noop!(
            Offers::release_stream(RuntimeOrigin::signed(mallory()), stream),
            Error::<Test>::StillServing
        );
        System::set_block_number(59 + REMOVAL_DELAY);
        assert_noop!(
            Offers::remove_offer(RuntimeOrigin::signed(alice()), offer),
            Error::<Test>::StillServing
        );

        // From block 60 anyone releases it; the removal delay runs from the release.
        System::set_block_number(60 + REMOVAL_DELAY);
        assert_ok!(Offers::release_stream(
            RuntimeOrigin::signed(mallory()),
            stream
        ));
        assert!(MockOperators::assigned(&stream).is_empty());
        assert_eq!(
            Streams::<Test>::get(stream).unwrap().released_at,
            Some(60 + REMOVAL_DELAY)
        );
        assert_noop!(
            Offers::release_stream(RuntimeOrigin::signed(mallory()), stream),
            Error::<Test>::AlreadyReleased
        );
        assert_noop!(
            Offers::remove_offer(RuntimeOrigin::signed(alice()), offer),
            Error::<Test>::RemovalTooEarly
        );
        System::set_block_number(60 + 2 * REMOVAL_DELAY);
        assert_ok!(Offers::remove_offer(RuntimeOrigin::signed(alice()), offer));
        assert_eq!(Balances::balance(&alice()), ENDOWMENT);
        // The escrow's record of the offer goes with it.
        assert_eq!(
            <MockPurchases as fastdata_primitives::OfferPurchases<u64>>::needed_until(offer),
            None
        );
    });
}

#[test]
fn release_stream_errors() {
    ExtBuilder::default().build_and_execute(|| {
        let (_, stream) = create_with_stream();
        assert_noop!(
            Offers::release_stream(RuntimeOrigin::signed(mallory()), H256::zero()),
            Error::<Test>::UnknownStream
        );
        assert_noop!(
            Offers::release_stream(RuntimeOrigin::signed(mallory()), stream),
            Error::<Test>::StreamOpen
        );
        assert_noop!(
            Offers::release_stream(RuntimeOrigin::none(), stream),
            DispatchError::BadOrigin
        );
        // Closed with no purchase: released at once.
        assert_ok!(Offers::close_stream(RuntimeOrigin::signed(alice()), stream));
        assert_noop!(
            Offers::release_stream(RuntimeOrigin::signed(mallory()), stream),
            Error::<Test>::AlreadyReleased
        );
    });
}

#[test]
fn close_stream_errors() {
    ExtBuilder::default().build_and_execute(|| {
        let (_, stream) = create_with_stream();
        assert_noop!(
            Offers::close_stream(RuntimeOrigin::signed(alice()), H256::zero()),
            Error::<Test>::UnknownStream
        );
        assert_noop!(
            Offers::close_stream(RuntimeOrigin::signed(bob()), stream),
            Error::<Test>::NotSeller
        );
        assert_ok!(Offers::close_stream(RuntimeOrigin::signed(alice()), stream));
        assert_noop!(
            Offers::close_stream(RuntimeOrigin::signed(alice()), stream),
            Error::<Test>::StreamClosed
        );
    });
}

// ---------------------------------------------------------------- removal

#[test]
fn remove_offer_returns_every_deposit() {
    ExtBuilder::default().build_and_execute(|| {
        let (offer, stream) = create_with_stream();
        for n in 2..=6 {
            assert_ok!(Offers::rotate_epoch(
                RuntimeOrigin::signed(alice()),
                stream,
                commitment(n)
            ));
        }
        System::set_block_number(20);
        assert_ok!(Offers::close_stream(RuntimeOrigin::signed(alice()), stream));
        System::set_block_number(20 + REMOVAL_DELAY);
        let refunded = offer_hold(&alice()) + stream_hold(&alice());
        assert_ok!(Offers::remove_offer(RuntimeOrigin::signed(alice()), offer));
        assert_eq!(offer_hold(&alice()), 0);
        assert_eq!(stream_hold(&alice()), 0);
        assert_eq!(Balances::balance(&alice()), ENDOWMENT);
        assert!(pallet::Offers::<Test>::get(offer).is_none());
        assert!(Streams::<Test>::get(stream).is_none());
        assert_eq!(EpochCommitments::<Test>::iter_prefix(stream).count(), 0);
        assert!(OffersBySeller::<Test>::get(alice()).is_empty());
        assert!(<Offers as OfferProvider<_, _, _>>::stream(&stream).is_none());
        System::assert_last_event(
            Event::OfferRemoved {
                offer,
                stream: Some(stream),
                refunded,
            }
            .into(),
        );
    });
}

#[test]
fn remove_offer_without_stream() {
    ExtBuilder::default().build_and_execute(|| {
        let offer = create(1);
        assert_ok!(Offers::retire_offer(RuntimeOrigin::signed(alice()), offer));
        System::set_block_number(1 + REMOVAL_DELAY);
        assert_ok!(Offers::remove_offer(RuntimeOrigin::signed(alice()), offer));
        assert_eq!(Balances::balance(&alice()), ENDOWMENT);
        System::assert_last_event(
            Event::OfferRemoved {
                offer,
                stream: None,
                refunded: topic_deposit(),
            }
            .into(),
        );
        // Room for a new offer again.
        for _ in 0..MAX_OFFERS {
            create(1);
        }
    });
}

#[test]
fn remove_offer_errors() {
    ExtBuilder::default().build_and_execute(|| {
        let (offer, stream) = create_with_stream();
        assert_noop!(
            Offers::remove_offer(RuntimeOrigin::signed(alice()), 99),
            Error::<Test>::UnknownOffer
        );
        assert_noop!(
            Offers::remove_offer(RuntimeOrigin::signed(bob()), offer),
            Error::<Test>::NotSeller
        );
        assert_noop!(
            Offers::remove_offer(RuntimeOrigin::signed(alice()), offer),
            Error::<Test>::OfferActive
        );
        assert_ok!(Offers::retire_offer(RuntimeOrigin::signed(alice()), offer));
        assert_noop!(
            Offers::remove_offer(RuntimeOrigin::signed(alice()), offer),
            Error::<Test>::StreamOpen
        );
        System::set_block_number(50);
        assert_ok!(Offers::close_stream(RuntimeOrigin::signed(alice()), stream));
        // The delay runs from the later of retirement (1) and closing (50).
        System::set_block_number(49 + REMOVAL_DELAY);
        assert_noop!(
            Offers::remove_offer(RuntimeOrigin::signed(alice()), offer),
            Error::<Test>::RemovalTooEarly
        );
        // A corrupted record pointing to a missing stream is refused, not half-removed.
        let record = Streams::<Test>::take(stream).unwrap();
        assert_noop!(
            Offers::remove_offer(RuntimeOrigin::signed(alice()), offer),
            Error::<Test>::UnknownStream
        );
        Streams::<Test>::insert(stream, record);
        System::set_block_number(50 + REMOVAL_DELAY);
        assert_ok!(Offers::remove_offer(RuntimeOrigin::signed(alice()), offer));
    });
}

// ---------------------------------------------------------------- upload tokens

/// The genesis hash tokens are bound to in the mock chain.
fn genesis() -> H256 {
    fastdata_primitives::genesis_h256(System::block_hash(0).as_ref())
}

fn token(stream: StreamId, op: AccountId, epoch: u32) -> UploadToken<AccountId, u64> {
    UploadToken {
        stream,
        operator: op,
        epoch,
        expiry: 50,
        nonce: 3,
    }
}

#[test]
fn upload_token_is_checked_against_chain_facts() {
    ExtBuilder::default().build_and_execute(|| {
        let (_, stream) = create_with_stream();
        let good = Signed::sign(token(stream, operator(0), 0), &pair(1), &genesis());
        assert_eq!(
            Offers::check_upload_token(&good, &operator(0), Some(2)),
            Ok(())
        );
        assert_eq!(Offers::upload_token_facts(&good.payload), Ok(alice()));

        // Wrong signer: bob signs for alice's stream.
        let forged = Signed::sign(token(stream, operator(0), 0), &pair(2), &genesis());
        assert_eq!(
            Offers::check_upload_token(&forged, &operator(0), None),
            Err(TokenError::BadSignature)
        );
        // Addressed to another (assigned) operator.
        let other = Signed::sign(token(stream, operator(1), 0), &pair(1), &genesis());
        assert_eq!(
            Offers::check_upload_token(&other, &operator(0), None),
            Err(TokenError::WrongOperator)
        );
        // An operator that is not assigned.
        let unassigned = Signed::sign(token(stream, operator(2), 0), &pair(1), &genesis());
        assert_eq!(
            Offers::check_upload_token(&unassigned, &operator(2), None),
            Err(TokenError::NotAssigned)
        );
        // Unknown stream and unknown epoch.
        let unknown = Signed::sign(token(H256::zero(), operator(0), 0), &pair(1), &genesis());
        assert_eq!(
            Offers::check_upload_token(&unknown, &operator(0), None),
            Err(TokenError::UnknownStream)
        );
        let future = Signed::sign(token(stream, operator(0), 1), &pair(1), &genesis());
        assert_eq!(
            Offers::check_upload_token(&future, &operator(0), None),
            Err(TokenError::UnknownEpoch)
        );
        // Signed for another chain.
        let elsewhere = Signed::sign(
            token(stream, operator(0), 0),
            &pair(1),
            &H256::repeat_byte(0xee),
        );
        assert_eq!(
            Offers::check_upload_token(&elsewhere, &operator(0), None),
            Err(TokenError::BadSignature)
        );
        // Replayed nonce.
        assert_eq!(
            Offers::check_upload_token(&good, &operator(0), Some(3)),
            Err(TokenError::Replayed)
        );
        // Expired.
        System::set_block_number(51);
        assert_eq!(
            Offers::check_upload_token(&good, &operator(0), None),
            Err(TokenError::Expired)
        );
        System::set_block_number(2);
        // After rotation the new epoch is accepted; after closing nothing is.
        assert_ok!(Offers::rotate_epoch(
            RuntimeOrigin::signed(alice()),
            stream,
            commitment(2)
        ));
        assert_eq!(
            Offers::check_upload_token(&future, &operator(0), None),
            Ok(())
        );
        assert_ok!(Offers::close_stream(RuntimeOrigin::signed(alice()), stream));
        assert_eq!(
            Offers::check_upload_token(&good, &operator(0), None),
            Err(TokenError::StreamClosed)
        );
    });
}

// ---------------------------------------------------------------- queries

#[test]
fn listings_carry_the_seller_trust_score() {
    ExtBuilder::default().build_and_execute(|| {
        set_trust(&alice(), 700_000);
        set_trust(&bob(), 42);
        let (offer, stream) = create_with_stream();
        assert_ok!(Offers::create_offer(
            RuntimeOrigin::signed(bob()),
            topic("bob/t"),
            stream_mode(),
            9,
            terms(1)
        ));
        let listing = Offers::offer_listing(offer).unwrap();
        assert_eq!(listing.seller_trust_score, 700_000);
        assert_eq!(listing.topic, TOPIC.as_bytes().to_vec());
        assert_eq!(listing.stream, Some(stream));
        assert_eq!(listing.price, 250);
        let bobs = Offers::offers_by_seller(&bob());
        assert_eq!(bobs.len(), 1);
        assert_eq!((bobs[0].id, bobs[0].seller_trust_score), (1, 42));
        assert!(Offers::offers_by_seller(&mallory()).is_empty());
        assert!(Offers::offer_listing(7).is_none());
    });
}

#[test]
fn offers_are_paged_in_id_order() {
    ExtBuilder::default().build_and_execute(|| {
        for _ in 0..MAX_OFFERS {
            create(1);
        }
        for _ in 0..MAX_OFFERS {
            assert_ok!(Offers::create_offer(
                RuntimeOrigin::signed(bob()),
                topic("b"),
                stream_mode(),
                1,
                terms(1)
            ));
        }
        // Remove offer 1 to leave a gap.
        assert_ok!(Offers::retire_offer(RuntimeOrigin::signed(alice()), 1));
        System::set_block_number(1 + REMOVAL_DELAY);
        assert_ok!(Offers::remove_offer(RuntimeOrigin::signed(alice()), 1));

        let first = Offers::offers_page(0, 3);
        assert_eq!(
            first.offers.iter().map(|o| o.id).collect::<Vec<_>>(),
            vec![0, 2, 3]
        );
        assert_eq!(first.next, Some(4));
        let second = Offers::offers_page(4, 100);
        // Capped at MaxPageSize.
        assert_eq!(
            second.offers.iter().map(|o| o.id).collect::<Vec<_>>(),
            vec![4, 5, 6, 7]
        );
        assert_eq!(second.next, None);
        assert!(Offers::offers_page(8, 3).offers.is_empty());
        assert_eq!(Offers::offers_page(0, 100).offers.len(), MAX_PAGE as usize);
    });
}

#[test]
fn stream_view_shows_operators_and_current_epoch() {
    ExtBuilder::default().build_and_execute(|| {
        let (offer, stream) = create_with_stream();
        assert_ok!(Offers::rotate_epoch(
            RuntimeOrigin::signed(alice()),
            stream,
            commitment(9)
        ));
        let view = Offers::stream_view(stream).unwrap();
        assert_eq!(view.id, stream);
        assert_eq!(view.seller, alice());
        assert_eq!(view.offer, offer);
        assert_eq!(view.name, b"sensor-1".to_vec());
        assert_eq!(view.operators, vec![operator(0), operator(1)]);
        assert_eq!(view.epoch, 1);
        assert_eq!(view.epoch_commitment, Some(commitment(9)));
        assert_eq!(view.closed_at, None);
        // The hosting account the (mock) operators pallet reports.
        assert_eq!((view.quota_mb, view.hosting_funded), (16, true));
        assert!(Offers::stream_view(H256::zero()).is_none());
    });
}

#[test]
fn try_state_detects_a_deposit_mismatch() {
    ExtBuilder::default().build().execute_with(|| {
        let (offer, _) = create_with_stream();
        assert_ok!(Offers::do_try_state());
        pallet::Offers::<Test>::mutate(offer, |o| o.as_mut().unwrap().deposit += 1);
        assert!(Offers::do_try_state().is_err());
    });
}

#[test]
fn try_state_detects_a_missing_commitment() {
    ExtBuilder::default().build().execute_with(|| {
        let (_, stream) = create_with_stream();
        EpochCommitments::<Test>::remove(stream, 0);
        assert!(Offers::do_try_state().is_err());
    });
}

#[test]
fn create_offer_with_stream_lists_and_registers_in_one_call_or_not_at_all() {
    ExtBuilder::default().build_and_execute(|| {
        let offer = NextOfferId::<Test>::get();
        assert_ok!(Offers::create_offer_with_stream(
            RuntimeOrigin::signed(alice()),
            topic(TOPIC),
            stream_mode(),
            250,
            terms(2),
            name("sensor-1"),
            7,
            commitment(1)
        ));
        let stream = stream_id_of(&alice(), "sensor-1", 7);
        assert_eq!(
            crate::pallet::Offers::<Test>::get(offer).and_then(|o| o.stream),
            Some(stream)
        );
        System::assert_last_event(
            Event::StreamRegistered {
                stream,
                offer,
                seller: alice(),
                commitment: commitment(1),
            }
            .into(),
        );
        // An invalid stream name undoes the offer too.
        let next = NextOfferId::<Test>::get();
        assert_noop!(
            Offers::create_offer_with_stream(
                RuntimeOrigin::signed(alice()),
                topic(TOPIC),
                stream_mode(),
                250,
                terms(2),
                name("a/b"),
                8,
                commitment(2)
            ),
            Error::<Test>::InvalidStreamName
        );
        assert_eq!(NextOfferId::<Test>::get(), next);
    });
}

//! Tests of the operators pallet. Every test ends with the `try_state` invariants.

use crate::{
    mock::*, pallet, ActiveOperator, ActiveOperators, AssignmentOf, Error, Event, HoldReason,
    OperatorCount, OperatorStatus, PendingAssignments, PendingReassignments, SuspensionReason,
};
use codec::Encode;
use fastdata_primitives::custody::SegmentStatement;
use fastdata_primitives::{OperatorProvider, SCORE_ONE};
use frame_support::{
    assert_noop, assert_ok,
    traits::{
        fungible::{Inspect, InspectHold},
        Get, Hooks,
    },
    weights::Weight,
};
use sp_core::H256;
use sp_runtime::{DispatchError, TokenError};
use std::collections::{BTreeMap, BTreeSet};

fn held(who: AccountId) -> Balance {
    Balances::balance_on_hold(&HoldReason::OperatorStake.into(), &who)
}

fn status(who: AccountId) -> Option<OperatorStatus<u64>> {
    Operators::operator_view(who).map(|v| v.status)
}

/// Draws and records the operators of stream `n` at once (the draw the queue makes).
fn assign(n: u32, replication: u32) -> Vec<AccountId> {
    let chosen =
        Operators::assign_now(&stream(n), replication, mock_randomness()).expect("assignment");
    Operators::open_hosting(&stream(n), &SELLER, replication);
    chosen
}

/// Advances to the block that draws the replacements of operators deactivated now.
fn draw_replacements() {
    run_to_block(System::block_number() + ASSIGNMENT_DELAY + 1);
}

/// The seller paying for the hosting of the test streams.
const SELLER: AccountId = 50;

/// Requests the assignment of stream `n` the way `pallet-offers` does.
fn request(n: u32, replication: u32) -> sp_runtime::DispatchResult {
    <Operators as OperatorProvider<_, _>>::request_assignment(&stream(n), replication, &SELLER)
}

/// Every active operator sends a heartbeat (long tests outlive the heartbeat timeout).
fn heartbeats() {
    for who in Operators::active_operators() {
        assert_ok!(Operators::heartbeat(RuntimeOrigin::signed(who)));
    }
}

fn ten_operators() -> ExtBuilder {
    ExtBuilder::default().operators((1..=10).map(|who| (who, MIN_STAKE)).collect())
}

// ---------------------------------------------------------------- registration

#[test]
fn register_holds_stake_and_activates() {
    ExtBuilder::default().build_and_execute(|| {
        assert_ok!(Operators::register(
            RuntimeOrigin::signed(1),
            150,
            broker(1),
            http(1),
            7
        ));
        assert_eq!(held(1), 150);
        assert_eq!(Balances::balance(&1), ENDOWMENT - 150);
        let info = pallet::Operators::<Test>::get(1).unwrap();
        assert_eq!(info.stake, 150);
        assert_eq!(info.price_per_mb, 7);
        assert_eq!(info.status, OperatorStatus::Active);
        assert_eq!(info.last_heartbeat, 1);
        assert_eq!(Operators::active_operators(), vec![1]);
        assert_eq!(
            ActiveOperators::<Test>::get().into_inner(),
            vec![ActiveOperator {
                who: 1,
                stake: 150,
                streams: 0,
                trust: 0
            }]
        );
        assert_eq!(OperatorCount::<Test>::get(), 1);
        System::assert_last_event(
            Event::Registered {
                operator: 1,
                stake: 150,
                broker_url: broker(1),
                http_url: http(1),
                price_per_mb: 7,
            }
            .into(),
        );
        assert!(<Operators as OperatorProvider<_, _>>::is_active(&1));
        assert_eq!(
            <Operators as OperatorProvider<_, _>>::price_per_mb(&1),
            Some(7)
        );
    });
}

#[test]
fn register_errors() {
    ExtBuilder::default()
        .operators(vec![(1, MIN_STAKE)])
        .build_and_execute(|| {
            assert_noop!(
                Operators::register(RuntimeOrigin::signed(1), MIN_STAKE, broker(1), http(1), 1),
                Error::<Test>::AlreadyRegistered
            );
            assert_noop!(
                Operators::register(
                    RuntimeOrigin::signed(2),
                    MIN_STAKE - 1,
                    broker(2),
                    http(2),
                    1
                ),
                Error::<Test>::StakeTooLow
            );
            assert_noop!(
                Operators::register(RuntimeOrigin::signed(2), MIN_STAKE, http(2), http(2), 1),
                Error::<Test>::InvalidBrokerUrl
            );
            assert_noop!(
                Operators::register(RuntimeOrigin::signed(2), MIN_STAKE, broker(2), broker(2), 1),
                Error::<Test>::InvalidHttpUrl
            );
            assert_noop!(
                Operators::register(
                    RuntimeOrigin::signed(2),
                    MIN_STAKE,
                    url("mqtt://user:secret@host"),
                    http(2),
                    1
                ),
                Error::<Test>::InvalidBrokerUrl
            );
            // More than the free balance.
            assert_noop!(
                Operators::register(
                    RuntimeOrigin::signed(2),
                    ENDOWMENT + 1,
                    broker(2),
                    http(2),
                    1
                ),
                TokenError::FundsUnavailable
            );
            // Unsigned.
            assert_noop!(
                Operators::register(RuntimeOrigin::none(), MIN_STAKE, broker(2), http(2), 1),
                DispatchError::BadOrigin
            );
        });
}

#[test]
fn register_is_bounded_by_max_operators() {
    ExtBuilder::default()
        .operators(
            (1..=MAX_OPERATORS as u64)
                .map(|who| (who, MIN_STAKE))
                .collect(),
        )
        .build_and_execute(|| {
            let who = MAX_OPERATORS as u64 + 1;
            assert_noop!(
                Operators::register(
                    RuntimeOrigin::signed(who),
                    MIN_STAKE,
                    broker(who),
                    http(who),
                    1
                ),
                Error::<Test>::TooManyOperators
            );
        });
}

#[test]
fn update_replaces_given_fields_only() {
    ExtBuilder::default()
        .operators(vec![(1, MIN_STAKE)])
        .build_and_execute(|| {
            assert_ok!(Operators::update(
                RuntimeOrigin::signed(1),
                None,
                None,
                Some(42)
            ));
            let info = pallet::Operators::<Test>::get(1).unwrap();
            assert_eq!(
                (info.price_per_mb, info.broker_url.clone()),
                (42, broker(1))
            );
            let new_broker = url("mqtt://10.0.0.7:1883");
            assert_ok!(Operators::update(
                RuntimeOrigin::signed(1),
                Some(new_broker.clone()),
                None,
                None
            ));
            System::assert_last_event(
                Event::Updated {
                    operator: 1,
                    broker_url: new_broker.clone(),
                    http_url: http(1),
                    price_per_mb: 42,
                }
                .into(),
            );
            assert_eq!(
                pallet::Operators::<Test>::get(1).unwrap().broker_url,
                new_broker
            );
        });
}

#[test]
fn update_errors() {
    ExtBuilder::default()
        .operators(vec![(1, MIN_STAKE)])
        .build_and_execute(|| {
            assert_noop!(
                Operators::update(RuntimeOrigin::signed(1), None, None, None),
                Error::<Test>::NothingToUpdate
            );
            assert_noop!(
                Operators::update(RuntimeOrigin::signed(2), None, None, Some(1)),
                Error::<Test>::NotRegistered
            );
            assert_noop!(
                Operators::update(RuntimeOrigin::signed(1), Some(url("ftp://x")), None, None),
                Error::<Test>::InvalidBrokerUrl
            );
            assert_noop!(
                Operators::update(RuntimeOrigin::signed(1), None, Some(url("mqtt://x")), None),
                Error::<Test>::InvalidHttpUrl
            );
            assert_ok!(Operators::leave(RuntimeOrigin::signed(1)));
            assert_noop!(
                Operators::update(RuntimeOrigin::signed(1), None, None, Some(1)),
                Error::<Test>::OperatorLeaving
            );
        });
}

#[test]
fn bond_extra_adds_to_held_stake() {
    ExtBuilder::default()
        .operators(vec![(1, MIN_STAKE)])
        .build_and_execute(|| {
            assert_ok!(Operators::bond_extra(RuntimeOrigin::signed(1), 50));
            assert_eq!(held(1), MIN_STAKE + 50);
            assert_eq!(
                pallet::Operators::<Test>::get(1).unwrap().stake,
                MIN_STAKE + 50
            );
            System::assert_last_event(
                Event::StakeBonded {
                    operator: 1,
                    amount: 50,
                    stake: MIN_STAKE + 50,
                }
                .into(),
            );
        });
}

#[test]
fn bond_extra_errors() {
    ExtBuilder::default()
        .operators(vec![(1, MIN_STAKE)])
        .build_and_execute(|| {
            assert_noop!(
                Operators::bond_extra(RuntimeOrigin::signed(1), 0),
                Error::<Test>::ZeroAmount
            );
            assert_noop!(
                Operators::bond_extra(RuntimeOrigin::signed(2), 5),
                Error::<Test>::NotRegistered
            );
            assert_noop!(
                Operators::bond_extra(RuntimeOrigin::signed(1), ENDOWMENT),
                TokenError::FundsUnavailable
            );
            assert_ok!(Operators::leave(RuntimeOrigin::signed(1)));
            assert_noop!(
                Operators::bond_extra(RuntimeOrigin::signed(1), 5),
                Error::<Test>::OperatorLeaving
            );
        });
}

// ---------------------------------------------------------------- life cycle

#[test]
fn pause_reassigns_streams_and_resume_reactivates() {
    ten_operators().build_and_execute(|| {
        let first = assign(1, 3);
        let paused = first[0];
        assert_ok!(Operators::pause(RuntimeOrigin::signed(paused)));
        assert_eq!(status(paused), Some(OperatorStatus::Paused));
        assert!(!Operators::active_operators().contains(&paused));
        System::assert_last_event(Event::Paused { operator: paused }.into());
        // It keeps its stream until the replacement is drawn, with randomness that does not
        // exist yet: it cannot time its pause to hand the stream to a chosen operator.
        assert!(operator_events().contains(&Event::ReassignmentRequested {
            operator: paused,
            streams: 1,
            draw_after: 1 + ASSIGNMENT_DELAY,
        }));
        assert_eq!(
            <Operators as OperatorProvider<_, _>>::assigned(&stream(1)),
            first
        );
        draw_replacements();
        assert!(Operators::streams_of(&paused).is_empty());
        let now = <Operators as OperatorProvider<_, _>>::assigned(&stream(1));
        assert_eq!(now.len(), 3);
        assert!(!now.contains(&paused));
        let replacement = *now.iter().find(|a| !first.contains(a)).unwrap();
        let sources: Vec<_> = first.iter().copied().filter(|a| *a != paused).collect();
        assert!(operator_events().contains(&Event::StreamReassigned {
            stream: stream(1),
            from: paused,
            to: Some(replacement),
            sources: sources.try_into().unwrap(),
        }));
        // Paused operators are never picked.
        for n in 2..50 {
            assert!(!assign(n, 5).contains(&paused));
        }

        run_to_block(5);
        assert_ok!(Operators::resume(RuntimeOrigin::signed(paused)));
        assert_eq!(status(paused), Some(OperatorStatus::Active));
        assert_eq!(
            pallet::Operators::<Test>::get(paused)
                .unwrap()
                .last_heartbeat,
            5
        );
        System::assert_last_event(Event::Resumed { operator: paused }.into());
    });
}

#[test]
fn pause_and_resume_errors() {
    ExtBuilder::default()
        .operators(vec![(1, MIN_STAKE)])
        .build_and_execute(|| {
            assert_noop!(
                Operators::pause(RuntimeOrigin::signed(2)),
                Error::<Test>::NotRegistered
            );
            assert_noop!(
                Operators::resume(RuntimeOrigin::signed(2)),
                Error::<Test>::NotRegistered
            );
            assert_noop!(
                Operators::resume(RuntimeOrigin::signed(1)),
                Error::<Test>::NotResumable
            );
            assert_ok!(Operators::pause(RuntimeOrigin::signed(1)));
            assert_noop!(
                Operators::pause(RuntimeOrigin::signed(1)),
                Error::<Test>::NotActive
            );
            // A slash below the minimum stake blocks resumption until the operator bonds more.
            assert_ok!(Operators::slash(
                RuntimeOrigin::root(),
                1,
                1,
                H256::repeat_byte(1)
            ));
            assert_eq!(status(1), Some(OperatorStatus::Suspended));
            assert_noop!(
                Operators::resume(RuntimeOrigin::signed(1)),
                Error::<Test>::StakeTooLow
            );
            assert_ok!(Operators::bond_extra(RuntimeOrigin::signed(1), 1));
            assert_ok!(Operators::resume(RuntimeOrigin::signed(1)));
        });
}

#[test]
fn leave_reassigns_streams_and_withdraw_releases_stake() {
    ten_operators().build_and_execute(|| {
        for n in 0..30 {
            assign(n, 3);
        }
        let leaver = 1;
        let hosted = Operators::streams_of(&leaver);
        assert!(!hosted.is_empty(), "operator 1 hosts some of 30 streams");
        assert_ok!(Operators::leave(RuntimeOrigin::signed(leaver)));
        let until = 1 + UNBONDING;
        assert_eq!(
            status(leaver),
            Some(OperatorStatus::Leaving {
                unbonding_until: until
            })
        );
        System::assert_last_event(
            Event::LeaveStarted {
                operator: leaver,
                unbonding_until: until,
            }
            .into(),
        );
        // Its stake stays while its replacements are not drawn.
        assert_noop!(
            Operators::withdraw(RuntimeOrigin::signed(leaver)),
            Error::<Test>::StillUnbonding
        );
        draw_replacements();
        for s in &hosted {
            let now = <Operators as OperatorProvider<_, _>>::assigned(s);
            assert_eq!(now.len(), 3, "replaced, not dropped");
            assert!(!now.contains(&leaver));
        }
        let reassigned: BTreeSet<_> = operator_events()
            .into_iter()
            .filter_map(|e| match e {
                Event::StreamReassigned {
                    stream,
                    from,
                    to: Some(_),
                    ..
                } if from == leaver => Some(stream),
                _ => None,
            })
            .collect();
        assert_eq!(reassigned, hosted.iter().copied().collect());
        // The stake stays held during unbonding.
        assert_eq!(held(leaver), MIN_STAKE);
        assert_noop!(
            Operators::withdraw(RuntimeOrigin::signed(leaver)),
            Error::<Test>::StillUnbonding
        );
        run_to_block(until);
        assert_ok!(Operators::withdraw(RuntimeOrigin::signed(leaver)));
        assert_eq!(held(leaver), 0);
        assert_eq!(Balances::balance(&leaver), ENDOWMENT);
        assert!(pallet::Operators::<Test>::get(leaver).is_none());
        assert_eq!(OperatorCount::<Test>::get(), 9);
        System::assert_last_event(
            Event::Withdrawn {
                operator: leaver,
                stake: MIN_STAKE,
            }
            .into(),
        );
    });
}

#[test]
fn leave_and_withdraw_errors() {
    ExtBuilder::default()
        .operators(vec![(1, MIN_STAKE)])
        .build_and_execute(|| {
            assert_noop!(
                Operators::leave(RuntimeOrigin::signed(2)),
                Error::<Test>::NotRegistered
            );
            assert_noop!(
                Operators::withdraw(RuntimeOrigin::signed(2)),
                Error::<Test>::NotRegistered
            );
            assert_noop!(
                Operators::withdraw(RuntimeOrigin::signed(1)),
                Error::<Test>::NotLeaving
            );
            assert_ok!(Operators::leave(RuntimeOrigin::signed(1)));
            assert_noop!(
                Operators::leave(RuntimeOrigin::signed(1)),
                Error::<Test>::OperatorLeaving
            );
            assert_noop!(
                Operators::pause(RuntimeOrigin::signed(1)),
                Error::<Test>::NotActive
            );
            assert_noop!(
                Operators::resume(RuntimeOrigin::signed(1)),
                Error::<Test>::NotResumable
            );
            assert_noop!(
                Operators::withdraw(RuntimeOrigin::signed(1)),
                Error::<Test>::StillUnbonding
            );
        });
}

#[test]
fn reassignment_without_room_drops_the_replica_and_says_so() {
    ExtBuilder::default()
        .operators(vec![(1, MIN_STAKE), (2, MIN_STAKE)])
        .build_and_execute(|| {
            assign(1, 2);
            assert_ok!(Operators::leave(RuntimeOrigin::signed(1)));
            draw_replacements();
            assert_eq!(
                <Operators as OperatorProvider<_, _>>::assigned(&stream(1)),
                vec![2]
            );
            assert!(operator_events().contains(&Event::StreamReassigned {
                stream: stream(1),
                from: 1,
                to: None,
                sources: vec![2].try_into().unwrap(),
            }));
        });
}

// ---------------------------------------------------------------- liveness

#[test]
fn heartbeat_records_block() {
    ExtBuilder::default()
        .operators(vec![(1, MIN_STAKE)])
        .build_and_execute(|| {
            run_to_block(7);
            assert_ok!(Operators::heartbeat(RuntimeOrigin::signed(1)));
            assert_eq!(pallet::Operators::<Test>::get(1).unwrap().last_heartbeat, 7);
            System::assert_last_event(Event::HeartbeatReceived { operator: 1 }.into());
        });
}

#[test]
fn heartbeat_errors() {
    ExtBuilder::default()
        .operators(vec![(1, MIN_STAKE), (2, MIN_STAKE)])
        .build_and_execute(|| {
            assert_noop!(
                Operators::heartbeat(RuntimeOrigin::signed(3)),
                Error::<Test>::NotRegistered
            );
            assert_ok!(Operators::slash(
                RuntimeOrigin::root(),
                1,
                MIN_STAKE,
                H256::zero()
            ));
            assert_noop!(
                Operators::heartbeat(RuntimeOrigin::signed(1)),
                Error::<Test>::OperatorSuspended
            );
            assert_ok!(Operators::leave(RuntimeOrigin::signed(2)));
            assert_noop!(
                Operators::heartbeat(RuntimeOrigin::signed(2)),
                Error::<Test>::OperatorLeaving
            );
        });
}

#[test]
fn silent_operators_are_suspended_and_their_streams_reassigned() {
    ten_operators().build_and_execute(|| {
        for n in 0..20 {
            assign(n, 2);
        }
        let silent = 3;
        let hosted = Operators::streams_of(&silent);
        // Everyone else keeps sending heartbeats.
        for block in 2..=(2 + HEARTBEAT_TIMEOUT + 10) {
            run_to_block(block);
            for who in (1..=10).filter(|w| *w != silent) {
                assert_ok!(Operators::heartbeat(RuntimeOrigin::signed(who)));
            }
        }
        assert_eq!(status(silent), Some(OperatorStatus::Suspended));
        assert!(operator_events().contains(&Event::Suspended {
            operator: silent,
            reason: SuspensionReason::MissedHeartbeats
        }));
        for who in (1..=10).filter(|w| *w != silent) {
            assert_eq!(status(who), Some(OperatorStatus::Active));
        }
        assert!(Operators::streams_of(&silent).is_empty());
        for s in hosted {
            let now = <Operators as OperatorProvider<_, _>>::assigned(&s);
            assert_eq!(now.len(), 2);
            assert!(!now.contains(&silent));
        }
        // Suspension ends with resume.
        assert_ok!(Operators::resume(RuntimeOrigin::signed(silent)));
        assert_eq!(status(silent), Some(OperatorStatus::Active));
    });
}

#[test]
fn not_suspended_within_the_timeout() {
    ten_operators().build_and_execute(|| {
        run_to_block(1 + HEARTBEAT_TIMEOUT);
        assert!((1..=10).all(|who| status(who) == Some(OperatorStatus::Active)));
        run_to_block(1 + HEARTBEAT_TIMEOUT + 5);
        assert!((1..=10).all(|who| status(who) == Some(OperatorStatus::Suspended)));
    });
}

#[test]
fn liveness_checks_are_bounded_per_block() {
    ten_operators().build_and_execute(|| {
        System::set_block_number(2 + HEARTBEAT_TIMEOUT);
        Operators::on_idle(System::block_number(), Weight::MAX);
        let suspended = (1..=10)
            .filter(|w| status(*w) == Some(OperatorStatus::Suspended))
            .count();
        assert_eq!(suspended, MAX_LIVENESS_CHECKS as usize);
        Operators::on_idle(System::block_number(), Weight::MAX);
        Operators::on_idle(System::block_number(), Weight::MAX);
        assert!((1..=10).all(|who| status(who) == Some(OperatorStatus::Suspended)));
    });
}

#[test]
fn liveness_checks_respect_the_idle_weight() {
    ten_operators().build_and_execute(|| {
        run_to_block_with_idle_weight(5 + HEARTBEAT_TIMEOUT, Weight::zero());
        assert!((1..=10).all(|who| status(who) == Some(OperatorStatus::Active)));
        assert_eq!(
            Operators::on_idle(System::block_number(), Weight::zero()),
            Weight::zero()
        );
    });
}

// ---------------------------------------------------------------- slashing

#[test]
fn slash_takes_stake_and_burns_it() {
    ExtBuilder::default()
        .operators(vec![(1, 300)])
        .build_and_execute(|| {
            let issuance = Balances::total_issuance();
            let evidence = H256::repeat_byte(9);
            assert_ok!(Operators::slash(RuntimeOrigin::root(), 1, 50, evidence));
            assert_eq!(held(1), 250);
            assert_eq!(pallet::Operators::<Test>::get(1).unwrap().stake, 250);
            assert_eq!(Balances::total_issuance(), issuance - 50);
            assert_eq!(status(1), Some(OperatorStatus::Active));
            System::assert_last_event(
                Event::Slashed {
                    operator: 1,
                    amount: 50,
                    evidence,
                }
                .into(),
            );
            // More than the stake: takes what there is.
            assert_ok!(Operators::slash(RuntimeOrigin::root(), 1, 10_000, evidence));
            assert_eq!(held(1), 0);
            assert!(operator_events().contains(&Event::Slashed {
                operator: 1,
                amount: 250,
                evidence
            }));
            System::assert_last_event(
                Event::Suspended {
                    operator: 1,
                    reason: SuspensionReason::StakeBelowMinimum,
                }
                .into(),
            );
        });
}

#[test]
fn slash_below_minimum_suspends_and_reassigns() {
    ten_operators().build_and_execute(|| {
        for n in 0..20 {
            assign(n, 3);
        }
        let hosted = Operators::streams_of(&4);
        assert_ok!(Operators::slash(RuntimeOrigin::root(), 4, 1, H256::zero()));
        assert_eq!(status(4), Some(OperatorStatus::Suspended));
        draw_replacements();
        for s in hosted {
            assert!(!<Operators as OperatorProvider<_, _>>::assigned(&s).contains(&4));
        }
    });
}

#[test]
fn slashing_a_leaving_operator_reduces_what_it_withdraws() {
    ExtBuilder::default()
        .operators(vec![(1, 300)])
        .build_and_execute(|| {
            assert_ok!(Operators::leave(RuntimeOrigin::signed(1)));
            assert_ok!(Operators::slash(
                RuntimeOrigin::root(),
                1,
                280,
                H256::zero()
            ));
            assert_eq!(
                status(1),
                Some(OperatorStatus::Leaving {
                    unbonding_until: 1 + UNBONDING
                })
            );
            run_to_block(1 + UNBONDING);
            assert_ok!(Operators::withdraw(RuntimeOrigin::signed(1)));
            assert_eq!(Balances::balance(&1), ENDOWMENT - 280);
        });
}

#[test]
fn slash_errors() {
    ExtBuilder::default()
        .operators(vec![(1, MIN_STAKE)])
        .build_and_execute(|| {
            assert_noop!(
                Operators::slash(RuntimeOrigin::signed(1), 1, 1, H256::zero()),
                DispatchError::BadOrigin
            );
            assert_noop!(
                Operators::slash(RuntimeOrigin::root(), 1, 0, H256::zero()),
                Error::<Test>::ZeroAmount
            );
            assert_noop!(
                Operators::slash(RuntimeOrigin::root(), 2, 1, H256::zero()),
                Error::<Test>::NotRegistered
            );
        });
}

// ---------------------------------------------------------------- equivocation

fn statement(stream_n: u32, sequence: u64, content: &[u8]) -> SegmentStatement {
    SegmentStatement::of(stream(stream_n), sequence, content)
}

/// `statement` with `signer`'s signature.
fn signed(
    signer: AccountId,
    statement: SegmentStatement,
) -> (SegmentStatement, sp_runtime::testing::TestSignature) {
    let signature = sign_statement(signer, &statement);
    (statement, signature)
}

fn report(
    reporter: AccountId,
    operator: AccountId,
    first: (SegmentStatement, sp_runtime::testing::TestSignature),
    second: (SegmentStatement, sp_runtime::testing::TestSignature),
) -> frame_support::dispatch::DispatchResultWithPostInfo {
    Operators::report_equivocation(RuntimeOrigin::signed(reporter), operator, first, second)
}

#[test]
fn an_operator_signing_two_contents_for_one_segment_is_slashed_by_anyone() {
    ExtBuilder::default()
        .operators(vec![(1, 1_000)])
        .build_and_execute(|| {
            let issuance = Balances::total_issuance();
            let stored = signed(1, statement(1, 7, b"what the seller published"));
            let served = signed(1, statement(1, 7, b"what a buyer was served"));
            let post = report(42, 1, stored.clone(), served.clone()).unwrap();
            assert_eq!(post.pays_fee, frame_support::dispatch::Pays::No);
            // 10 % of the stake, burned (`OnSlash = ()`).
            assert_eq!(held(1), 900);
            assert_eq!(pallet::Operators::<Test>::get(1).unwrap().stake, 900);
            assert_eq!(Balances::total_issuance(), issuance - 100);
            assert_eq!(status(1), Some(OperatorStatus::Active));
            let evidence = H256(sp_io::hashing::blake2_256(&(&stored, &served).encode()));
            let events = operator_events();
            assert!(events.contains(&Event::EquivocationReported {
                operator: 1,
                reporter: 42,
                stream: stream(1),
                sequence: 7,
            }));
            System::assert_last_event(
                Event::Slashed {
                    operator: 1,
                    amount: 100,
                    evidence,
                }
                .into(),
            );
            // Once per stream, in either order and for any of its segments: a seller cannot
            // compound slashes segment by segment.
            assert_noop!(
                report(43, 1, served.clone(), stored.clone()),
                Error::<Test>::AlreadyReported
            );
            let a = signed(1, statement(1, 8, b"a"));
            let b = signed(1, statement(1, 8, b"b"));
            assert_noop!(report(42, 1, a, b), Error::<Test>::AlreadyReported);
            // Another stream is another offence.
            let a = signed(1, statement(2, 8, b"a"));
            let b = signed(1, statement(2, 8, b"b"));
            assert_ok!(report(42, 1, a, b));
            assert_eq!(held(1), 810);
        });
}

#[test]
fn an_equivocation_below_the_minimum_stake_suspends_and_reassigns() {
    ten_operators().build_and_execute(|| {
        for n in 0..20 {
            assign(n, 3);
        }
        let hosted = Operators::streams_of(&4);
        assert!(!hosted.is_empty());
        let a = signed(4, statement(0, 1, b"a"));
        let b = signed(4, statement(0, 1, b"b"));
        let post = report(42, 4, a, b).unwrap();
        // It held the minimum stake: the report is free.
        assert_eq!(post.pays_fee, frame_support::dispatch::Pays::No);
        assert_eq!(held(4), MIN_STAKE - MIN_STAKE / 10);
        // Below the minimum now: reporting it again (another stream) costs a fee, so an
        // operator cannot self-report dust slashes for free.
        let a = signed(4, statement(1, 1, b"a"));
        let b = signed(4, statement(1, 1, b"b"));
        let post = report(42, 4, a, b).unwrap();
        assert_eq!(post.pays_fee, frame_support::dispatch::Pays::Yes);
        assert_eq!(status(4), Some(OperatorStatus::Suspended));
        draw_replacements();
        for s in hosted {
            assert!(!<Operators as OperatorProvider<_, _>>::assigned(&s).contains(&4));
        }
    });
}

#[test]
fn reports_without_a_checkable_conflict_change_nothing() {
    ExtBuilder::default()
        .operators(vec![(1, 1_000), (2, 1_000)])
        .build_and_execute(|| {
            let a = signed(1, statement(1, 7, b"a"));
            // The same content twice, another sequence, another stream: no conflict.
            assert_noop!(
                report(42, 1, a.clone(), a.clone()),
                Error::<Test>::NoConflict
            );
            let other_sequence = signed(1, statement(1, 8, b"b"));
            assert_noop!(
                report(42, 1, a.clone(), other_sequence),
                Error::<Test>::NoConflict
            );
            let other_stream = signed(1, statement(2, 7, b"b"));
            assert_noop!(
                report(42, 1, a.clone(), other_stream),
                Error::<Test>::NoConflict
            );
            // One statement signed by someone else: nobody can frame operator 1.
            let framed = signed(2, statement(1, 7, b"b"));
            assert_noop!(
                report(42, 1, a.clone(), framed.clone()),
                Error::<Test>::BadStatementSignature
            );
            // A signature for another network.
            let b = statement(1, 7, b"b");
            let foreign =
                sp_runtime::testing::TestSignature(1, b.signing_payload(&H256::repeat_byte(0xee)));
            assert_noop!(
                report(42, 1, a.clone(), (b.clone(), foreign)),
                Error::<Test>::BadStatementSignature
            );
            // Not an operator.
            let c = signed(3, statement(1, 7, b"a"));
            let d = signed(3, statement(1, 7, b"b"));
            assert_noop!(report(42, 3, c, d), Error::<Test>::NotRegistered);
            assert_eq!(held(1), 1_000);
        });
}

#[test]
fn an_operator_slashed_to_nothing_cannot_be_reported_again() {
    ExtBuilder::default()
        .operators(vec![(1, MIN_STAKE)])
        .build_and_execute(|| {
            assert_ok!(Operators::slash(
                RuntimeOrigin::root(),
                1,
                MIN_STAKE,
                H256::zero()
            ));
            let a = signed(1, statement(1, 7, b"a"));
            let b = signed(1, statement(1, 7, b"b"));
            assert_noop!(report(42, 1, a, b), Error::<Test>::NothingToSlash);
            assert!(!crate::Equivocations::<Test>::contains_key((1, stream(1))));
        });
}

// ---------------------------------------------------------------- assignment

#[test]
fn assign_picks_distinct_active_operators_and_records_them() {
    ten_operators().build_and_execute(|| {
        let chosen = assign(1, 5);
        assert_eq!(chosen.len(), 5);
        assert_eq!(chosen.iter().collect::<BTreeSet<_>>().len(), 5);
        assert_eq!(
            <Operators as OperatorProvider<_, _>>::assigned(&stream(1)),
            chosen
        );
        for who in &chosen {
            assert_eq!(Operators::streams_of(who), vec![stream(1)]);
            assert!(Operators::is_assigned(&stream(1), who));
        }
        System::assert_last_event(
            Event::StreamAssigned {
                stream: stream(1),
                operators: chosen.clone().try_into().unwrap(),
            }
            .into(),
        );
    });
}

#[test]
fn assign_errors() {
    ExtBuilder::default()
        .operators(vec![(1, MIN_STAKE), (2, MIN_STAKE)])
        .build_and_execute(|| {
            assert_noop!(request(1, 0), Error::<Test>::InvalidReplication);
            assert_noop!(
                request(1, MAX_REPLICATION + 1),
                Error::<Test>::InvalidReplication
            );
            // The limit `pallet-offers` checks offers' replication against.
            assert_eq!(
                <Operators as OperatorProvider<u64, u64>>::max_replication(),
                MAX_REPLICATION
            );
            assert_noop!(request(1, 3), Error::<Test>::NotEnoughOperators);
            assert_ok!(request(1, 2));
            // Pending or drawn, a stream is requested once.
            assert_noop!(request(1, 1), Error::<Test>::StreamAlreadyAssigned);
            run_to_block(1 + ASSIGNMENT_DELAY + 1);
            assert_eq!(
                <Operators as OperatorProvider<_, _>>::assigned(&stream(1)).len(),
                2
            );
            assert_noop!(request(1, 1), Error::<Test>::StreamAlreadyAssigned);
        });
}

#[test]
fn assignment_never_picks_paused_suspended_or_leaving_operators() {
    ten_operators().build_and_execute(|| {
        assert_ok!(Operators::pause(RuntimeOrigin::signed(1)));
        assert_ok!(Operators::slash(RuntimeOrigin::root(), 2, 1, H256::zero()));
        assert_ok!(Operators::leave(RuntimeOrigin::signed(3)));
        let excluded = [1, 2, 3];
        for n in 0..200 {
            let chosen = assign(n, 5);
            assert_eq!(
                chosen.iter().collect::<BTreeSet<_>>().len(),
                5,
                "no duplicates"
            );
            assert!(chosen.iter().all(|who| !excluded.contains(who)));
        }
        assert_eq!(ActiveOperators::<Test>::get().len(), 7);
    });
}

#[test]
fn assignment_is_reproducible_for_the_same_randomness() {
    let run = |seed: u64| -> Vec<Vec<AccountId>> {
        let mut out = Vec::new();
        ten_operators().build_and_execute(|| {
            set_random_seed(seed);
            out = (0..20).map(|n| assign(n, 3)).collect();
        });
        out
    };
    assert_eq!(run(7), run(7));
    assert_ne!(run(7), run(8));
}

#[test]
fn assignment_spreads_load_in_proportion_to_stake() {
    // Stakes 1:1:1:1:1:2:2:2:4:4 (total weight 19).
    let stakes: Vec<(AccountId, Balance)> = vec![
        (1, 100),
        (2, 100),
        (3, 100),
        (4, 100),
        (5, 100),
        (6, 200),
        (7, 200),
        (8, 200),
        (9, 400),
        (10, 400),
    ];
    ExtBuilder::default()
        .operators(stakes.clone())
        .build_and_execute(|| {
            set_random_seed(2024);
            let streams = 3_800u32;
            let mut load: BTreeMap<AccountId, u32> = BTreeMap::new();
            for n in 0..streams {
                for who in assign(n, 1) {
                    *load.entry(who).or_default() += 1;
                }
            }
            let total_weight: u64 = stakes.iter().map(|(_, s)| s / 100).sum();
            for (who, stake) in stakes {
                let expected = f64::from(streams) * (stake / 100) as f64 / total_weight as f64;
                let got = f64::from(*load.get(&who).unwrap_or(&0));
                // Binomial standard deviation is at most sqrt(expected); allow 4 of them.
                let tolerance = 4.0 * expected.sqrt();
                assert!(
                    (got - expected).abs() <= tolerance,
                    "operator {who}: {got} streams, expected {expected:.0} ± {tolerance:.0}"
                );
            }
        });
}

#[test]
fn assignment_weights_trust() {
    ExtBuilder::default()
        .operators(vec![(1, 100), (2, 100), (3, 100)])
        .build_and_execute(|| {
            set_trust(1, SCORE_ONE); // weight 2 units
            set_trust(2, 100 * SCORE_ONE); // capped at MaxTrustBoost: weight 5 units
                                           // The assignment counts the scores as of the operators' latest heartbeats.
            assert_ok!(Operators::heartbeat(RuntimeOrigin::signed(1)));
            assert_ok!(Operators::heartbeat(RuntimeOrigin::signed(2)));
            set_random_seed(99);
            // Operator 2 expects 5/8 of them: below the per-operator maximum of 1000.
            let streams = 1_400u32;
            let mut load: BTreeMap<AccountId, u32> = BTreeMap::new();
            for n in 0..streams {
                for who in assign(n, 1) {
                    *load.entry(who).or_default() += 1;
                }
            }
            for (who, units) in [(1, 2.0), (2, 5.0), (3, 1.0)] {
                let expected = f64::from(streams) * units / 8.0;
                let got = f64::from(load[&who]);
                assert!(
                    (got - expected).abs() <= 4.0 * expected.sqrt(),
                    "operator {who}: {got} vs {expected}"
                );
            }
        });
}

#[test]
fn heartbeats_refresh_the_trust_the_assignment_counts() {
    ExtBuilder::default()
        .operators(vec![(1, 100), (2, 100)])
        .build_and_execute(|| {
            let cached = |who: AccountId| {
                ActiveOperators::<Test>::get()
                    .iter()
                    .find(|e| e.who == who)
                    .map(|e| e.trust)
            };
            assert_eq!(cached(1), Some(0));
            set_trust(1, 3 * SCORE_ONE);
            set_trust(2, 100 * SCORE_ONE);
            // A new score counts only from the operator's next heartbeat.
            assert_eq!(cached(1), Some(0));
            assert_ok!(Operators::heartbeat(RuntimeOrigin::signed(1)));
            assert_ok!(Operators::heartbeat(RuntimeOrigin::signed(2)));
            assert_eq!(cached(1), Some(3 * SCORE_ONE));
            assert_eq!(cached(2), Some(4 * SCORE_ONE));
            // A paused operator's heartbeat refreshes nothing; resuming computes it afresh.
            assert_ok!(Operators::pause(RuntimeOrigin::signed(1)));
            set_trust(1, SCORE_ONE);
            assert_ok!(Operators::heartbeat(RuntimeOrigin::signed(1)));
            assert_eq!(cached(1), None);
            assert_ok!(Operators::resume(RuntimeOrigin::signed(1)));
            assert_eq!(cached(1), Some(SCORE_ONE));
        });
}

#[test]
fn replicated_assignment_spreads_load_evenly() {
    ten_operators().build_and_execute(|| {
        set_random_seed(5);
        let streams = 1_000u32;
        for n in 0..streams {
            let chosen = assign(n, 3);
            assert_eq!(chosen.iter().collect::<BTreeSet<_>>().len(), 3);
        }
        // Equal stakes: each hosts about 3 * 1000 / 10 = 300.
        for who in 1..=10 {
            let got = Operators::streams_of(&who).len() as f64;
            assert!(
                (got - 300.0).abs() <= 4.0 * 300f64.sqrt(),
                "operator {who} hosts {got}"
            );
        }
    });
}

#[test]
fn full_operators_are_skipped() {
    ExtBuilder::default()
        .operators(vec![(1, MIN_STAKE), (2, MIN_STAKE), (3, MIN_STAKE)])
        .build_and_execute(|| {
            MaxStreamsPerOperator::set(2);
            for n in 0..6 {
                assign(n, 1);
            }
            // Six slots used out of 3 × 2: everyone is full.
            assert!((1..=3).all(|who| Operators::streams_of(&who).len() == 2));
            assert_noop!(request(99, 1), Error::<Test>::NotEnoughOperators);
            // Releasing a stream frees room.
            <Operators as OperatorProvider<_, _>>::release(&stream(0));
            assert_ok!(request(99, 1));
        });
}

#[test]
fn release_forgets_the_assignment() {
    ten_operators().build_and_execute(|| {
        let chosen = assign(1, 3);
        assign(2, 3);
        <Operators as OperatorProvider<_, _>>::release(&stream(1));
        assert!(<Operators as OperatorProvider<_, _>>::assigned(&stream(1)).is_empty());
        for who in chosen {
            assert!(!Operators::streams_of(&who).contains(&stream(1)));
        }
        System::assert_last_event(Event::StreamReleased { stream: stream(1) }.into());
        // Releasing an unknown stream is a no-op.
        <Operators as OperatorProvider<_, _>>::release(&stream(1));
    });
}

// ---------------------------------------------------------------- deferred draw

#[test]
fn the_draw_waits_for_randomness_that_did_not_exist_at_the_request() {
    ten_operators().build_and_execute(|| {
        // Requested in block 1.
        assert_ok!(request(1, 3));
        let draw_after = 1 + ASSIGNMENT_DELAY;
        System::assert_last_event(
            Event::AssignmentRequested {
                stream: stream(1),
                replication: 3,
                draw_after,
            }
            .into(),
        );
        assert!(<Operators as OperatorProvider<_, _>>::assigned(&stream(1)).is_empty());
        // The draw happens at the start of the first block whose randomness (its parent's
        // hash) became known at block `draw_after` or later: block `draw_after + 1`, with the
        // hash of block `draw_after`, which did not exist at the request.
        run_to_block(draw_after);
        assert!(<Operators as OperatorProvider<_, _>>::assigned(&stream(1)).is_empty());
        assert_eq!(PendingAssignments::<Test>::get().len(), 1);
        run_to_block(draw_after + 1);
        let chosen = <Operators as OperatorProvider<_, _>>::assigned(&stream(1));
        assert_eq!(chosen.iter().collect::<BTreeSet<_>>().len(), 3);
        assert!(PendingAssignments::<Test>::get().is_empty());
        for who in &chosen {
            assert_eq!(Operators::streams_of(who), vec![stream(1)]);
        }
        System::assert_last_event(
            Event::StreamAssigned {
                stream: stream(1),
                operators: chosen.try_into().unwrap(),
            }
            .into(),
        );
    });
}

#[test]
fn a_seller_grinding_stream_names_gets_its_operator_no_more_often_than_chance() {
    // Five equal operators, one of them the seller's friend: chance is 1/5 per stream.
    ExtBuilder::default()
        .operators((1..=5).map(|who| (who, MIN_STAKE)).collect())
        .build_and_execute(|| {
            set_random_seed(31);
            let friend: AccountId = 3;
            let rounds = 200u32;
            let (mut predicted_hits, mut hits) = (0u32, 0u32);
            for round in 0..rounds {
                heartbeats();
                // The seller tries names until its simulation of the draw, with everything
                // known when it signs, lands on the friend; it registers that name.
                let name = (0..256u32)
                    .map(|k| sp_core::H256(sp_io::hashing::blake2_256(&(round, k).encode())))
                    .find(|id| {
                        frame_support::storage::with_transaction(|| {
                            sp_runtime::TransactionOutcome::Rollback(Ok::<_, DispatchError>(
                                Operators::assign_now(id, 1, mock_randomness())
                                    .is_ok_and(|chosen| chosen == vec![friend]),
                            ))
                        })
                        .unwrap_or(false)
                    })
                    .expect("some name simulates onto the friend");
                predicted_hits += 1;
                assert_ok!(<Operators as OperatorProvider<_, _>>::request_assignment(
                    &name, 1, &SELLER
                ));
                run_to_block(System::block_number() + ASSIGNMENT_DELAY + 1);
                let chosen = <Operators as OperatorProvider<_, _>>::assigned(&name);
                assert_eq!(chosen.len(), 1, "round {round} drawn");
                if chosen == vec![friend] {
                    hits += 1;
                }
                <Operators as OperatorProvider<_, _>>::release(&name);
            }
            // Drawn at registration (the old rule) the grinding would have won every time.
            assert_eq!(predicted_hits, rounds);
            // Binomial(200, 1/5): mean 40, standard deviation 5.7; allow four of them.
            let (mean, sd) = (40.0, (200.0f64 * 0.2 * 0.8).sqrt());
            assert!(
                (f64::from(hits) - mean).abs() <= 4.0 * sd,
                "friend drawn {hits} times in {rounds}, chance is {mean}"
            );
        });
}

#[test]
fn an_operator_timing_its_pause_hands_its_stream_to_its_friend_no_more_often_than_chance() {
    // Five equal operators: the pausing operator 1 wants its stream to go to its friend 3;
    // four candidates remain, so chance is 1/4.
    ExtBuilder::default()
        .operators((1..=5).map(|who| (who, MIN_STAKE)).collect())
        .build_and_execute(|| {
            set_random_seed(47);
            let (pauser, friend): (AccountId, AccountId) = (1, 3);
            let rounds = 120u32;
            let (mut predicted_hits, mut hits) = (0u32, 0u32);
            for round in 0..rounds {
                let id = sp_core::H256(sp_io::hashing::blake2_256(&(b"pause", round).encode()));
                // The stream is the pauser's alone.
                Operators::open_hosting(&id, &SELLER, 1);
                pallet::Assignments::<Test>::insert(
                    id,
                    AssignmentOf::<Test>::truncate_from(vec![pauser]),
                );
                pallet::StreamsOf::<Test>::insert(pauser, id, ());
                ActiveOperators::<Test>::mutate(|a| {
                    a.iter_mut()
                        .filter(|e| e.who == pauser)
                        .for_each(|e| e.streams += 1)
                });
                // It waits for a block where replacing it at once, with everything known when
                // it signs (the parent hash), would pick its friend, and pauses then.
                loop {
                    heartbeats();
                    let lands = frame_support::storage::with_transaction(|| {
                        assert_ok!(Operators::pause(RuntimeOrigin::signed(pauser)));
                        let seed =
                            sp_io::hashing::blake2_256(&(mock_randomness(), pauser).encode());
                        Operators::reassign_streams_of(&pauser, &seed);
                        sp_runtime::TransactionOutcome::Rollback(Ok::<_, DispatchError>(
                            <Operators as OperatorProvider<_, _>>::assigned(&id) == vec![friend],
                        ))
                    })
                    .unwrap_or(false);
                    if lands {
                        break;
                    }
                    run_to_block(System::block_number() + 1);
                }
                predicted_hits += 1;
                assert_ok!(Operators::pause(RuntimeOrigin::signed(pauser)));
                draw_replacements();
                let chosen = <Operators as OperatorProvider<_, _>>::assigned(&id);
                assert_eq!(chosen.len(), 1, "round {round} reassigned");
                assert_ne!(chosen, vec![pauser]);
                if chosen == vec![friend] {
                    hits += 1;
                }
                <Operators as OperatorProvider<_, _>>::release(&id);
                assert_ok!(Operators::resume(RuntimeOrigin::signed(pauser)));
            }
            // Replaced at once (the old rule), the timing would have won every time.
            assert_eq!(predicted_hits, rounds);
            // Binomial(120, 1/4): mean 30, standard deviation 4.7; allow four of them.
            let (mean, sd) = (30.0, (120.0f64 * 0.25 * 0.75).sqrt());
            assert!(
                (f64::from(hits) - mean).abs() <= 4.0 * sd,
                "friend drawn {hits} times in {rounds}, chance is {mean}"
            );
        });
}

#[test]
fn an_operator_resuming_before_the_draw_keeps_its_streams_and_cannot_withdraw_while_hosting() {
    ten_operators().build_and_execute(|| {
        let ops = assign(1, 2);
        assert_ok!(Operators::pause(RuntimeOrigin::signed(ops[0])));
        assert_ok!(Operators::resume(RuntimeOrigin::signed(ops[0])));
        assert!(PendingReassignments::<Test>::get().is_empty());
        draw_replacements();
        assert_eq!(
            <Operators as OperatorProvider<_, _>>::assigned(&stream(1)),
            ops
        );
        assert_eq!(
            ActiveOperators::<Test>::get()
                .iter()
                .find(|e| e.who == ops[0])
                .map(|e| e.streams),
            Some(1)
        );
        // Leaving: no withdrawal while the replacement is not drawn.
        // (Its draw held back, as when relay blocks leave the randomness out.)
        assert_ok!(Operators::leave(RuntimeOrigin::signed(ops[1])));
        pallet::PendingReassignments::<Test>::mutate(|q| {
            q.iter_mut().for_each(|(_, after)| *after = u64::MAX)
        });
        run_to_block(System::block_number() + UNBONDING);
        assert_noop!(
            Operators::withdraw(RuntimeOrigin::signed(ops[1])),
            Error::<Test>::StillHosting
        );
        pallet::PendingReassignments::<Test>::mutate(|q| {
            q.iter_mut().for_each(|(_, after)| *after = 0)
        });
        draw_replacements();
        assert_ok!(Operators::withdraw(RuntimeOrigin::signed(ops[1])));
    });
}

#[test]
fn a_pending_request_can_be_released_and_the_queue_is_bounded() {
    ten_operators().build_and_execute(|| {
        for n in 0..MAX_PENDING_ASSIGNMENTS {
            assert_ok!(request(n, 1));
        }
        assert_noop!(
            request(MAX_PENDING_ASSIGNMENTS, 1),
            Error::<Test>::AssignmentQueueFull
        );
        <Operators as OperatorProvider<_, _>>::release(&stream(0));
        System::assert_last_event(Event::StreamReleased { stream: stream(0) }.into());
        assert_ok!(request(MAX_PENDING_ASSIGNMENTS, 1));
        run_to_block(ASSIGNMENT_DELAY + 2);
        assert!(PendingAssignments::<Test>::get().is_empty());
        assert!(<Operators as OperatorProvider<_, _>>::assigned(&stream(0)).is_empty());
        for n in 1..=MAX_PENDING_ASSIGNMENTS {
            assert_eq!(
                <Operators as OperatorProvider<_, _>>::assigned(&stream(n)).len(),
                1
            );
        }
        let total: u32 = ActiveOperators::<Test>::get()
            .iter()
            .map(|e| e.streams)
            .sum();
        assert_eq!(total, MAX_PENDING_ASSIGNMENTS);
    });
}

#[test]
fn operators_leaving_before_the_draw_shrink_or_fail_the_assignment() {
    ExtBuilder::default()
        .operators(vec![(1, MIN_STAKE), (2, MIN_STAKE), (3, MIN_STAKE)])
        .build_and_execute(|| {
            assert_ok!(request(1, 3));
            assert_ok!(request(2, 2));
            assert_ok!(Operators::pause(RuntimeOrigin::signed(1)));
            assert_ok!(Operators::leave(RuntimeOrigin::signed(2)));
            run_to_block(ASSIGNMENT_DELAY + 2);
            assert_eq!(
                <Operators as OperatorProvider<_, _>>::assigned(&stream(1)),
                vec![3]
            );
            assert_eq!(
                <Operators as OperatorProvider<_, _>>::assigned(&stream(2)),
                vec![3]
            );
            assert_ok!(request(3, 1));
            assert_ok!(Operators::pause(RuntimeOrigin::signed(3)));
            run_to_block(System::block_number() + ASSIGNMENT_DELAY + 1);
            assert!(<Operators as OperatorProvider<_, _>>::assigned(&stream(3)).is_empty());
            assert!(PendingAssignments::<Test>::get().is_empty());
            assert!(operator_events().contains(&Event::AssignmentFailed { stream: stream(3) }));
        });
}

#[test]
fn a_draw_reports_its_weight_and_draws_nothing_early() {
    use crate::weights::WeightInfo;
    ten_operators().build_and_execute(|| {
        let read = <<Test as frame_system::Config>::DbWeight as Get<
            frame_support::weights::RuntimeDbWeight,
        >>::get()
        .reads(1);
        assert_eq!(Operators::draw_pending(H256::repeat_byte(1), 5), read);
        // Requested at block 1: due from randomness of block 1 + the delay.
        assert_ok!(request(1, 2));
        assert_ok!(request(2, 2));
        assert_eq!(
            Operators::draw_pending(H256::repeat_byte(1), ASSIGNMENT_DELAY),
            read
        );
        assert_eq!(PendingAssignments::<Test>::get().len(), 2);
        assert_eq!(
            Operators::draw_pending(H256::repeat_byte(1), 1 + ASSIGNMENT_DELAY),
            read.saturating_add(<() as WeightInfo>::assign_pending(2))
        );
        assert!(PendingAssignments::<Test>::get().is_empty());
        assert_eq!(
            <Operators as OperatorProvider<_, _>>::assigned(&stream(2)).len(),
            2
        );
    });
}

// ---------------------------------------------------------------- queries

#[test]
fn views_show_operators_with_trust_and_load() {
    ten_operators().build_and_execute(|| {
        set_trust(2, 123);
        let chosen = assign(1, 5);
        let view = Operators::operator_view(2).unwrap();
        assert_eq!(view.account, 2);
        assert_eq!(view.stake, MIN_STAKE);
        assert_eq!(view.broker_url, broker(2).into_inner());
        assert_eq!(view.http_url, http(2).into_inner());
        assert_eq!(view.trust_score, 123);
        assert_eq!(view.streams, u32::from(chosen.contains(&2)));
        assert_eq!(Operators::operator_views().len(), 10);
        assert!(Operators::operator_view(11).is_none());
    });
}

#[test]
fn try_state_detects_a_stake_mismatch() {
    ExtBuilder::default()
        .operators(vec![(1, MIN_STAKE)])
        .build()
        .execute_with(|| {
            assert_ok!(Operators::do_try_state());
            pallet::Operators::<Test>::mutate(1, |info| info.as_mut().unwrap().stake += 1);
            assert!(Operators::do_try_state().is_err());
        });
}

#[test]
fn try_state_detects_assignment_to_an_inactive_operator() {
    ExtBuilder::default()
        .operators(vec![(1, MIN_STAKE), (2, MIN_STAKE)])
        .build()
        .execute_with(|| {
            assign(1, 2);
            ActiveOperators::<Test>::mutate(|a| a.retain(|e| e.who != 2));
            assert!(Operators::do_try_state().is_err());
        });
}

// ---------------------------------------------------------------- stream heads

fn attest(who: AccountId, heads: &[(u32, u64)]) -> frame_support::dispatch::DispatchResult {
    let heads: Vec<_> = heads.iter().map(|(n, h)| (*n, *h, 0)).collect();
    attest_stored(who, &heads)
}

/// Attests `(stream, head, stored bytes)` triples.
fn attest_stored(
    who: AccountId,
    heads: &[(u32, u64, u64)],
) -> frame_support::dispatch::DispatchResult {
    let heads: Vec<_> = heads.iter().map(|(n, h, b)| (stream(*n), *h, *b)).collect();
    Operators::attest_heads(RuntimeOrigin::signed(who), heads.try_into().unwrap())
}

fn head(n: u32) -> u64 {
    <Operators as OperatorProvider<_, _>>::stream_head(&stream(n))
}

#[test]
fn stream_head_is_the_lower_median_of_assigned_attestations() {
    ten_operators().build_and_execute(|| {
        let ops = assign(1, 3);
        assert_eq!(head(1), 0, "nobody attested");
        assert_ok!(attest(ops[0], &[(1, 100)]));
        System::assert_last_event(
            Event::HeadsAttested {
                operator: ops[0],
                streams: 1,
            }
            .into(),
        );
        // Two silent replicas count as 0: one operator alone cannot raise the head.
        assert_eq!(head(1), 0);
        assert_ok!(attest(ops[1], &[(1, 90)]));
        assert_eq!(head(1), 90);
        // A liar far above the others does not move it.
        assert_ok!(attest(ops[2], &[(1, u64::MAX)]));
        assert_eq!(head(1), 100);
        // Nor can one replica drag it down: heads never decrease.
        assert_noop!(attest(ops[0], &[(1, 5)]), Error::<Test>::HeadDecreased);
        assert_eq!(head(1), 100);
    });
}

#[test]
fn attest_heads_errors_change_nothing() {
    ten_operators().build_and_execute(|| {
        let ops = assign(1, 3);
        let outsider = (1..=10).find(|w| !ops.contains(w)).unwrap();
        assert_noop!(attest(outsider, &[(1, 10)]), Error::<Test>::NotAssigned);
        assert_noop!(attest(ops[0], &[(2, 10)]), Error::<Test>::NotAssigned);
        assert_noop!(attest(ops[0], &[]), Error::<Test>::NoHeads);
        assert_noop!(attest(42, &[(1, 10)]), Error::<Test>::NotRegistered);
        // A lower head fails the whole call.
        assert_ok!(attest(ops[0], &[(1, 10)]));
        assert_noop!(
            attest(ops[0], &[(1, 20), (1, 5)]),
            Error::<Test>::HeadDecreased
        );
        assert_eq!(crate::StreamHeads::<Test>::get(stream(1))[0].head, 10);
    });
}

#[test]
fn a_stream_released_under_an_attestation_is_skipped_not_fatal() {
    ten_operators().build_and_execute(|| {
        let ops = assign(1, 1);
        assert_ok!(attest(ops[0], &[(1, 10)]));
        // Stream 2 was released after the daemon read the chain; stream 1 still counts.
        System::reset_events();
        assert_ok!(attest(ops[0], &[(1, 20), (2, 10)]));
        assert_eq!(head(1), 20);
        let events: Vec<_> = System::events().into_iter().map(|r| r.event).collect();
        assert!(events.contains(
            &Event::HeadSkipped {
                operator: ops[0],
                stream: stream(2),
            }
            .into()
        ));
        System::assert_last_event(
            Event::HeadsAttested {
                operator: ops[0],
                streams: 1,
            }
            .into(),
        );
        assert!(crate::StreamHeads::<Test>::get(stream(2)).is_empty());
    });
}

#[test]
fn heads_follow_the_assignment_and_go_with_the_stream() {
    ten_operators().build_and_execute(|| {
        let ops = assign(1, 1);
        assert_ok!(attest(ops[0], &[(1, 50)]));
        assert_eq!(head(1), 50);
        // The replica is replaced: its attestation stops counting.
        assert_ok!(Operators::pause(RuntimeOrigin::signed(ops[0])));
        draw_replacements();
        let replacement = <Operators as OperatorProvider<_, _>>::assigned(&stream(1))[0];
        assert_ne!(replacement, ops[0]);
        assert_eq!(head(1), 0);
        assert_ok!(attest(replacement, &[(1, 40)]));
        assert_eq!(head(1), 40);
        assert_eq!(crate::StreamHeads::<Test>::get(stream(1)).len(), 1);
        // Releasing the stream removes its heads.
        <Operators as OperatorProvider<_, _>>::release(&stream(1));
        assert!(!crate::StreamHeads::<Test>::contains_key(stream(1)));
        assert_eq!(head(1), 0);
    });
}

// ---------------------------------------------------------------- hosting

const MB: u64 = fastdata_primitives::escrow::BYTES_PER_MB;

/// Advances to block `n` with every operator sending heartbeats on the way.
fn advance_to(n: u64) {
    while System::block_number() < n {
        run_to_block((System::block_number() + HEARTBEAT_TIMEOUT / 2).min(n));
        heartbeats();
    }
}

fn hosting_held(who: AccountId) -> Balance {
    Balances::balance_on_hold(&HoldReason::Hosting.into(), &who)
}

#[test]
fn hosting_pays_each_operator_for_the_median_bytes_stored() {
    ten_operators().build_and_execute(|| {
        let ops = assign(1, 3);
        assert_ok!(Operators::fund_hosting(
            RuntimeOrigin::signed(SELLER),
            stream(1),
            10,
            40_000
        ));
        System::assert_last_event(
            Event::HostingFunded {
                stream: stream(1),
                payer: SELLER,
                quota_mb: 10,
                added: 40_000,
                funds: 40_000,
            }
            .into(),
        );
        assert_eq!(hosting_held(SELLER), 40_000);
        let start = System::block_number();
        let balances: Vec<Balance> = ops.iter().map(Balances::free_balance).collect();
        // First attestations start each operator's clock and pay nothing. The third
        // operator claims far more than it could store.
        assert_ok!(attest_stored(ops[0], &[(1, 4, 4 * MB)]));
        assert_ok!(attest_stored(ops[1], &[(1, 5, 5 * MB)]));
        assert_ok!(attest_stored(ops[2], &[(1, 6, 100 * MB)]));
        assert_eq!(hosting_held(SELLER), 40_000);

        // Half a period later: paid for the lower median (5 MB) for 50 blocks.
        advance_to(start + HOSTING_PERIOD / 2);
        assert_ok!(attest_stored(ops[0], &[(1, 8, 8 * MB)]));
        let half = HOSTING_PRICE_PER_MB * 5 / 2;
        System::assert_has_event(
            Event::HostingPaid {
                stream: stream(1),
                operator: ops[0],
                amount: half,
                bytes: 5 * MB,
                blocks: HOSTING_PERIOD / 2,
            }
            .into(),
        );
        assert_eq!(Balances::free_balance(ops[0]), balances[0] + half);
        assert_eq!(hosting_held(SELLER), 40_000 - half);

        // The liar, silent for three periods, is paid for one period of the median
        // (now 8 MB: 5, 8, 100), not for its 100 MB.
        advance_to(start + 3 * HOSTING_PERIOD);
        assert_ok!(attest_stored(ops[2], &[(1, 9, 100 * MB)]));
        let period = HOSTING_PRICE_PER_MB * 8;
        assert_eq!(Balances::free_balance(ops[2]), balances[2] + period);
        assert_eq!(hosting_held(SELLER), 40_000 - half - period);
        // Nothing moved to the operator that did not attest again.
        assert_eq!(Balances::free_balance(ops[1]), balances[1]);
    });
}

#[test]
fn hosting_pay_is_capped_at_the_quota_and_the_funds() {
    ten_operators().build_and_execute(|| {
        let ops = assign(1, 1);
        assert_ok!(Operators::fund_hosting(
            RuntimeOrigin::signed(SELLER),
            stream(1),
            2,
            3_000
        ));
        let before = Balances::free_balance(ops[0]);
        assert_ok!(attest_stored(ops[0], &[(1, 1, 50 * MB)]));
        advance_to(System::block_number() + HOSTING_PERIOD);
        // 50 MB stored, 2 MB paid for.
        assert_ok!(attest_stored(ops[0], &[(1, 2, 50 * MB)]));
        assert_eq!(
            Balances::free_balance(ops[0]),
            before + 2 * HOSTING_PRICE_PER_MB
        );
        advance_to(System::block_number() + HOSTING_PERIOD);
        // Only 1_000 is left of the 2_000 due.
        assert_ok!(attest_stored(ops[0], &[(1, 3, 50 * MB)]));
        System::assert_has_event(Event::HostingExhausted { stream: stream(1) }.into());
        assert_eq!(Balances::free_balance(ops[0]), before + 3_000);
        assert_eq!(hosting_held(SELLER), 0);
        advance_to(System::block_number() + HOSTING_PERIOD);
        assert_ok!(attest_stored(ops[0], &[(1, 4, 50 * MB)]));
        assert_eq!(Balances::free_balance(ops[0]), before + 3_000);
        assert_eq!(
            crate::Hosting::<Test>::get(stream(1)).map(|h| h.funds),
            Some(0)
        );
    });
}

#[test]
fn releasing_a_stream_refunds_its_hosting_funds() {
    ten_operators().build_and_execute(|| {
        let ops = assign(1, 1);
        let seller_before = Balances::free_balance(SELLER);
        assert_ok!(Operators::fund_hosting(
            RuntimeOrigin::signed(SELLER),
            stream(1),
            1,
            5_000
        ));
        assert_ok!(attest_stored(ops[0], &[(1, 1, MB)]));
        advance_to(System::block_number() + HOSTING_PERIOD);
        assert_ok!(attest_stored(ops[0], &[(1, 2, MB)]));
        <Operators as OperatorProvider<_, _>>::release(&stream(1));
        System::assert_has_event(
            Event::HostingRefunded {
                stream: stream(1),
                payer: SELLER,
                amount: 5_000 - HOSTING_PRICE_PER_MB,
            }
            .into(),
        );
        assert_eq!(hosting_held(SELLER), 0);
        assert_eq!(
            Balances::free_balance(SELLER),
            seller_before - HOSTING_PRICE_PER_MB
        );
        assert!(crate::Hosting::<Test>::get(stream(1)).is_none());
        // A pending request's account goes back the same way.
        assert_ok!(request(2, 1));
        assert_ok!(Operators::fund_hosting(
            RuntimeOrigin::signed(SELLER),
            stream(2),
            1,
            1_500
        ));
        <Operators as OperatorProvider<_, _>>::release(&stream(2));
        assert_eq!(hosting_held(SELLER), 0);
        assert!(crate::Hosting::<Test>::get(stream(2)).is_none());
    });
}

#[test]
fn fund_hosting_errors_change_nothing() {
    ten_operators().build_and_execute(|| {
        assign(1, 1);
        assert_noop!(
            Operators::fund_hosting(RuntimeOrigin::signed(7), stream(1), 1, 100),
            Error::<Test>::NotPayer
        );
        assert_noop!(
            Operators::fund_hosting(RuntimeOrigin::signed(SELLER), stream(2), 1, 100),
            Error::<Test>::NoHosting
        );
        assert_noop!(
            Operators::fund_hosting(
                RuntimeOrigin::signed(SELLER),
                stream(1),
                MAX_QUOTA_MB + 1,
                100
            ),
            Error::<Test>::QuotaTooLarge
        );
        assert_noop!(
            Operators::fund_hosting(RuntimeOrigin::signed(SELLER), stream(1), 0, 0),
            Error::<Test>::NothingToUpdate
        );
        assert!(Operators::fund_hosting(
            RuntimeOrigin::signed(SELLER),
            stream(1),
            1,
            ENDOWMENT * 2
        )
        .is_err());
        assert_eq!(hosting_held(SELLER), 0);
        assert_eq!(
            crate::Hosting::<Test>::get(stream(1)).map(|h| h.quota_mb),
            Some(0)
        );
        // A quota needs a period of it paid for (1 MB: 1_000): one planck unlocks nothing.
        assert_noop!(
            Operators::fund_hosting(RuntimeOrigin::signed(SELLER), stream(1), 1, 999),
            Error::<Test>::HostingUnderfunded
        );
        assert_eq!(
            <Operators as OperatorProvider<_, _>>::hosting(&stream(1)),
            Some((0, false))
        );
    });
}

#[test]
fn a_seller_cannot_stop_paying_for_what_is_stored() {
    ten_operators().build_and_execute(|| {
        let ops = assign(1, 1);
        assert_ok!(Operators::fund_hosting(
            RuntimeOrigin::signed(SELLER),
            stream(1),
            10,
            50_000
        ));
        assert_eq!(
            <Operators as OperatorProvider<_, _>>::hosting(&stream(1)),
            Some((10, true))
        );
        assert_ok!(attest_stored(ops[0], &[(1, 10, 6 * MB)]));
        // Lowering the quota to zero just before the next attestation would pay nothing
        // for the 6 MB stored: refused, down to what is stored.
        assert_noop!(
            Operators::fund_hosting(RuntimeOrigin::signed(SELLER), stream(1), 0, 0),
            Error::<Test>::QuotaBelowStored
        );
        assert_noop!(
            Operators::fund_hosting(RuntimeOrigin::signed(SELLER), stream(1), 5, 0),
            Error::<Test>::QuotaBelowStored
        );
        assert_ok!(Operators::fund_hosting(
            RuntimeOrigin::signed(SELLER),
            stream(1),
            6,
            0
        ));
        // Releasing half a period later pays the operator up to the release.
        let before = Balances::free_balance(ops[0]);
        advance_to(System::block_number() + HOSTING_PERIOD / 2);
        <Operators as OperatorProvider<_, _>>::release(&stream(1));
        assert_eq!(
            Balances::free_balance(ops[0]),
            before + 6 * HOSTING_PRICE_PER_MB / 2
        );
        assert_eq!(hosting_held(SELLER), 0);
        System::assert_has_event(
            Event::HostingRefunded {
                stream: stream(1),
                payer: SELLER,
                amount: 50_000 - 6 * HOSTING_PRICE_PER_MB / 2,
            }
            .into(),
        );
    });
}

#[test]
fn try_state_detects_hosting_funds_not_held() {
    ten_operators().build_and_execute(|| {
        assign(1, 1);
        assert_ok!(Operators::fund_hosting(
            RuntimeOrigin::signed(SELLER),
            stream(1),
            1,
            1_000
        ));
        assert_ok!(Operators::do_try_state());
        crate::Hosting::<Test>::mutate(stream(1), |h| h.as_mut().unwrap().funds += 1);
        assert!(Operators::do_try_state().is_err());
        crate::Hosting::<Test>::mutate(stream(1), |h| h.as_mut().unwrap().funds -= 1);
    });
}

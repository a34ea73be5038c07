//! Unit tests: every call's happy path and every error, the settlement rule with worked
//! numbers, automatic work, deposits, queries and arithmetic edges. Every test ends with
//! `do_try_state` (through `build_and_execute`).

use crate::{mock::*, *};
use fastdata_primitives::{
    escrow::{DisputeReason, PurchaseState, PurchaseTerms},
    sealed, OperatorProvider, PaymentMode, PurchaseId, SettledTrades,
};
use frame_support::{
    assert_noop, assert_ok,
    dispatch::Pays,
    traits::{fungible::InspectHold, Get, Hooks},
    weights::Weight,
    BoundedVec,
};
use sp_core::H256;
use sp_runtime::{traits::BadOrigin, DispatchError, MultiSignature, Perbill};

type E = Error<Test>;

fn signed(seed: u8) -> RuntimeOrigin {
    RuntimeOrigin::signed(account(seed))
}

fn purchase_of(id: PurchaseId) -> PurchaseOf<Test> {
    Purchases::<Test>::get(id).expect("purchase exists")
}

fn held(reason: HoldReason, seed: u8) -> Balance {
    Balances::balance_on_hold(&reason.into(), &account(seed))
}

fn buy(buyer: u8, offer: u64, periods: u32) -> PurchaseId {
    let id = NextPurchaseId::<Test>::get();
    assert_ok!(Escrow::purchase(
        signed(buyer),
        offer,
        periods,
        Balance::MAX
    ));
    id
}

/// Delivers the keys of `epoch`, sealed to the purchase's buyer key.
fn deliver(id: PurchaseId, epoch: u32) {
    assert_ok!(Escrow::deliver_keys(
        signed(SELLER),
        id,
        epoch,
        sealed_for(id, epoch)
    ));
}

fn sealed_for(id: PurchaseId, epoch: u32) -> BoundedVec<u8, <Test as Config>::MaxSealedKeyLen> {
    let key = purchase_of(id).deal.buyer_key;
    BoundedVec::truncate_from(sealed::seal(&key, id, epoch, &epoch_keys(epoch)).expect("seals"))
}

/// Segments the seller publishes right after each purchase made by [`active_stream`].
const PUBLISHED: u64 = 1_000;

/// An active stream purchase of `periods` periods by `BUYER`, starting at the stream head
/// 0, after which the seller published [`PUBLISHED`] segments.
fn active_stream(periods: u32) -> PurchaseId {
    let id = buy(BUYER, STREAM_OFFER, periods);
    publish(STREAM, PUBLISHED);
    deliver(id, 0);
    id
}

/// An active batch purchase by `BUYER`.
fn active_batch() -> PurchaseId {
    let id = buy(BUYER, BATCH_OFFER, 1);
    deliver(id, 0);
    id
}

fn claim(id: PurchaseId, op: u8, seq: u64, bytes: u64, nonce: u64) -> sp_runtime::DispatchResult {
    claim_signed_by(BUYER, id, op, seq, bytes, nonce)
}

fn claim_signed_by(
    signer: u8,
    id: PurchaseId,
    op: u8,
    seq: u64,
    bytes: u64,
    nonce: u64,
) -> sp_runtime::DispatchResult {
    let r = receipt(id, op, seq, bytes, nonce);
    Escrow::claim(signed(op), r.clone(), sign(signer, &r))
}

fn settle(id: PurchaseId) {
    let info = Escrow::settle(signed(STRANGER), id).expect("settles");
    assert_eq!(info.pays_fee, Pays::No);
}

fn last_event() -> RuntimeEvent {
    System::events().pop().expect("an event").event
}

// ---------------------------------------------------------------------------------------
// purchase

#[test]
fn purchase_stream_holds_price_and_deposit() {
    ExtBuilder::default().build_and_execute(|| {
        let id = buy(BUYER, STREAM_OFFER, 3);
        assert_eq!(id, 0);
        assert_eq!(NextPurchaseId::<Test>::get(), 1);
        assert_eq!(held(HoldReason::PurchasePrice, BUYER), 3 * PRICE);
        assert_eq!(held(HoldReason::PurchaseDeposit, BUYER), PURCHASE_DEPOSIT);
        assert_eq!(free(BUYER), 100_000 - 3 * PRICE - PURCHASE_DEPOSIT);
        let p = purchase_of(id);
        assert_eq!(p.deal.buyer, account(BUYER));
        assert_eq!(p.deal.seller, account(SELLER));
        assert_eq!(p.deal.stream, STREAM);
        assert_eq!(
            p.deal.terms,
            PurchaseTerms::Stream {
                period: PERIOD,
                periods: 3
            }
        );
        assert_eq!(p.deal.buyer_key, x25519_public(BUYER));
        assert_eq!(
            (p.schedule.start, p.schedule.end, p.schedule.key_deadline),
            (1, 31, 1 + KEY_DELIVERY)
        );
        assert_eq!(p.schedule.first_epoch, Some(0));
        assert_eq!(p.state, PurchaseState::AwaitingKeys);
        assert_eq!(p.ledger.held, 3 * PRICE);
        assert_eq!(p.scheduled_at, Some(1 + KEY_DELIVERY + 1));
        assert_eq!(Escrow::purchases_of_buyer(&account(BUYER)), vec![id]);
        assert_eq!(Escrow::purchases_of_offer(STREAM_OFFER), vec![id]);
        System::assert_last_event(
            Event::Purchased {
                purchase: id,
                offer: STREAM_OFFER,
                buyer: account(BUYER),
                seller: account(SELLER),
                price: 3 * PRICE,
                deposit: PURCHASE_DEPOSIT,
                periods: 3,
                access_end: 31,
                key_deadline: 6,
            }
            .into(),
        );
    });
}

#[test]
fn purchase_batch_records_window_and_download_period() {
    ExtBuilder::default().build_and_execute(|| {
        let id = buy(BUYER, BATCH_OFFER, 1);
        let p = purchase_of(id);
        assert_eq!(
            p.deal.terms,
            PurchaseTerms::Batch {
                first: 100,
                last: 199
            }
        );
        assert_eq!(p.schedule.end, 1 + BATCH_ACCESS);
        assert_eq!(p.schedule.first_epoch, None);
        assert_eq!(p.payment.price, PRICE);
    });
}

#[test]
fn verified_buyers_get_the_discount_and_pass_the_rules() {
    ExtBuilder::default().build_and_execute(|| {
        edit_offer(STREAM_OFFER, |o| {
            o.verified_only = true;
            o.verified_discount = Perbill::from_percent(25);
            o.min_trust_score = 500_000;
        });
        assert_noop!(
            Escrow::purchase(signed(BUYER), STREAM_OFFER, 2, Balance::MAX),
            E::BuyerNotVerified
        );
        with_state(|s| s.verified.insert(account(BUYER)));
        assert_noop!(
            Escrow::purchase(signed(BUYER), STREAM_OFFER, 2, Balance::MAX),
            E::TrustScoreTooLow
        );
        with_state(|s| s.trust.insert(account(BUYER), 500_000));
        // 2 × 1000 − 25 % = 1500; the max price is checked after the discount.
        assert_noop!(
            Escrow::purchase(signed(BUYER), STREAM_OFFER, 2, 1_499),
            E::PriceAboveMaximum
        );
        assert_ok!(Escrow::purchase(signed(BUYER), STREAM_OFFER, 2, 1_500));
        assert_eq!(purchase_of(0).payment.price, 1_500);
    });
}

#[test]
fn a_seller_whose_credential_lapsed_sells_nothing_but_running_purchases_complete() {
    ExtBuilder::default().build_and_execute(|| {
        // Bought while the seller was verified.
        let running = buy(BUYER, STREAM_OFFER, 1);
        // The seller's credential expires (or is revoked).
        with_state(|s| s.verified.remove(&account(SELLER)));
        let (buyer_before, next_id) = (free(BUYER2), NextPurchaseId::<Test>::get());
        assert_noop!(
            Escrow::purchase(signed(BUYER2), STREAM_OFFER, 1, Balance::MAX),
            E::SellerNotVerified
        );
        assert_noop!(
            Escrow::purchase(signed(BUYER2), BATCH_OFFER, 1, Balance::MAX),
            E::SellerNotVerified
        );
        assert_eq!(
            (free(BUYER2), NextPurchaseId::<Test>::get()),
            (buyer_before, next_id)
        );

        // The running purchase goes on: keys are delivered, the operator claims, the period
        // settles and the seller is paid for what was delivered.
        publish(STREAM, PUBLISHED);
        deliver(running, 0);
        assert_eq!(purchase_of(running).state, PurchaseState::Active);
        assert_ok!(claim(running, OP1, PUBLISHED - 1, 1_000_000, 1));
        let seller_before = free(SELLER);
        jump_to(1 + PERIOD + GRACE);
        settle(running);
        System::assert_last_event(
            Event::PurchaseSettled {
                purchase: running,
                value: PRICE,
            }
            .into(),
        );
        let p = purchase_of(running);
        assert_eq!(p.ledger.refunded, 0);
        assert_eq!(free(SELLER), seller_before + p.ledger.seller);
        assert!(p.ledger.seller > 0);

        // Verified again, it sells again.
        with_state(|s| s.verified.insert(account(SELLER)));
        assert_ok!(Escrow::purchase(
            signed(BUYER2),
            STREAM_OFFER,
            1,
            Balance::MAX
        ));
    });
}

#[test]
fn unverified_buyers_pay_the_list_price() {
    ExtBuilder::default().build_and_execute(|| {
        edit_offer(STREAM_OFFER, |o| {
            o.verified_discount = Perbill::from_percent(25)
        });
        assert_ok!(Escrow::purchase(signed(BUYER), STREAM_OFFER, 2, 2_000));
        assert_eq!(purchase_of(0).payment.price, 2_000);
    });
}

#[test]
fn purchase_checks_the_offer() {
    ExtBuilder::default().build_and_execute(|| {
        assert_noop!(
            Escrow::purchase(signed(BUYER), 77, 1, Balance::MAX),
            E::UnknownOffer
        );
        assert_noop!(
            Escrow::purchase(signed(SELLER), STREAM_OFFER, 1, Balance::MAX),
            E::OwnOffer
        );
        edit_offer(STREAM_OFFER, |o| o.active = false);
        assert_noop!(
            Escrow::purchase(signed(BUYER), STREAM_OFFER, 1, Balance::MAX),
            E::OfferInactive
        );
        edit_offer(STREAM_OFFER, |o| {
            o.active = true;
            o.stream = None;
        });
        assert_noop!(
            Escrow::purchase(signed(BUYER), STREAM_OFFER, 1, Balance::MAX),
            E::StreamNotRegistered
        );
        edit_offer(STREAM_OFFER, |o| {
            o.stream = Some(sp_core::H256::repeat_byte(0x01))
        });
        assert_noop!(
            Escrow::purchase(signed(BUYER), STREAM_OFFER, 1, Balance::MAX),
            E::StreamNotRegistered
        );
        edit_offer(STREAM_OFFER, |o| o.stream = Some(STREAM));
        edit_stream(STREAM, |s| s.open = false);
        assert_noop!(
            Escrow::purchase(signed(BUYER), STREAM_OFFER, 1, Balance::MAX),
            E::StreamClosed
        );
        // Registered, but its operators are not drawn yet.
        let operators = with_state(|s| s.streams.get(&STREAM).map(|st| st.operators.clone()));
        edit_stream(STREAM, |s| {
            s.open = true;
            s.operators.clear();
        });
        assert_noop!(
            Escrow::purchase(signed(BUYER), STREAM_OFFER, 1, Balance::MAX),
            E::StreamNotHosted
        );
        edit_stream(STREAM, |s| s.operators = operators.unwrap_or_default());
        assert_ok!(Escrow::purchase(
            signed(BUYER),
            STREAM_OFFER,
            1,
            Balance::MAX
        ));
    });
}

#[test]
fn purchase_needs_a_key_agreement_key() {
    ExtBuilder::default().build_and_execute(|| {
        with_state(|s| s.keys.remove(&account(BUYER)));
        assert_noop!(
            Escrow::purchase(signed(BUYER), STREAM_OFFER, 1, Balance::MAX),
            E::NoKeyAgreementKey
        );
    });
}

#[test]
fn purchase_checks_periods_and_terms() {
    ExtBuilder::default().build_and_execute(|| {
        assert_noop!(
            Escrow::purchase(signed(BUYER), BATCH_OFFER, 2, Balance::MAX),
            E::InvalidPeriods
        );
        assert_noop!(
            Escrow::purchase(signed(BUYER), BATCH_OFFER, 0, Balance::MAX),
            E::InvalidPeriods
        );
        assert_noop!(
            Escrow::purchase(signed(BUYER), STREAM_OFFER, 0, Balance::MAX),
            E::InvalidPeriods
        );
        assert_noop!(
            Escrow::purchase(signed(BUYER), STREAM_OFFER, 13, Balance::MAX),
            E::InvalidPeriods
        );
        assert_ok!(Escrow::purchase(
            signed(BUYER),
            STREAM_OFFER,
            12,
            Balance::MAX
        ));
        edit_offer(BATCH_OFFER, |o| {
            o.mode = PaymentMode::Batch { first: 10, last: 9 }
        });
        assert_noop!(
            Escrow::purchase(signed(BUYER), BATCH_OFFER, 1, Balance::MAX),
            E::InvalidOffer
        );
        edit_offer(STREAM_OFFER, |o| o.mode = PaymentMode::Stream { period: 0 });
        assert_noop!(
            Escrow::purchase(signed(BUYER), STREAM_OFFER, 1, Balance::MAX),
            E::InvalidOffer
        );
    });
}

#[test]
fn purchase_price_and_deadlines_do_not_overflow() {
    ExtBuilder::default().build_and_execute(|| {
        edit_offer(STREAM_OFFER, |o| o.price = Balance::MAX);
        assert_noop!(
            Escrow::purchase(signed(BUYER), STREAM_OFFER, 2, Balance::MAX),
            E::PriceOverflow
        );
        edit_offer(STREAM_OFFER, |o| {
            o.price = PRICE;
            o.mode = PaymentMode::Stream {
                period: BlockNumber::MAX / 2,
            };
        });
        assert_noop!(
            Escrow::purchase(signed(BUYER), STREAM_OFFER, 3, Balance::MAX),
            E::DeadlineOverflow
        );
        // The end fits, but the end of retention after it does not.
        edit_offer(STREAM_OFFER, |o| {
            o.mode = PaymentMode::Stream {
                period: BlockNumber::MAX - 10,
            }
        });
        assert_noop!(
            Escrow::purchase(signed(BUYER), STREAM_OFFER, 1, Balance::MAX),
            E::DeadlineOverflow
        );
        jump_to(BlockNumber::MAX - 2);
        assert_noop!(
            Escrow::purchase(signed(BUYER), BATCH_OFFER, 1, Balance::MAX),
            E::DeadlineOverflow
        );
    });
}

#[test]
fn purchase_needs_the_price_deposit_and_existential_deposit() {
    let exact = PRICE + PURCHASE_DEPOSIT + ED;
    ExtBuilder::default()
        .balance(account(BUYER), exact - 1)
        .build_and_execute(|| {
            assert_noop!(
                Escrow::purchase(signed(BUYER), BATCH_OFFER, 1, Balance::MAX),
                E::InsufficientBalance
            );
        });
    ExtBuilder::default()
        .balance(account(BUYER), exact)
        .build_and_execute(|| {
            assert_ok!(Escrow::purchase(
                signed(BUYER),
                BATCH_OFFER,
                1,
                Balance::MAX
            ));
            assert_eq!(free(BUYER), ED);
        });
}

#[test]
fn many_purchases_due_at_once_are_all_processed() {
    ExtBuilder::default().build_and_execute(|| {
        let ids: Vec<_> = (0..30).map(|_| buy(BUYER, BATCH_OFFER, 1)).collect();
        assert_eq!(Agenda::<Test>::iter_prefix(2 + KEY_DELIVERY).count(), 30);
        run_to_block(2 + KEY_DELIVERY);
        assert!(ids
            .iter()
            .all(|id| purchase_of(*id).state == PurchaseState::Refunded));
        assert_eq!(free(BUYER), 100_000 - 30 * PURCHASE_DEPOSIT);
    });
}

#[test]
fn purchase_ids_do_not_overflow() {
    ExtBuilder::default().build_and_execute(|| {
        NextPurchaseId::<Test>::put(u64::MAX);
        assert_noop!(
            Escrow::purchase(signed(BUYER), BATCH_OFFER, 1, Balance::MAX),
            E::NoMoreIds
        );
    });
}

#[test]
fn purchase_needs_a_signed_origin() {
    ExtBuilder::default().build_and_execute(|| {
        assert_noop!(
            Escrow::purchase(RuntimeOrigin::root(), BATCH_OFFER, 1, Balance::MAX),
            BadOrigin
        );
    });
}

#[test]
fn free_offers_hold_nothing_and_settle_to_nothing() {
    ExtBuilder::default().build_and_execute(|| {
        edit_offer(STREAM_OFFER, |o| o.price = 0);
        let id = active_stream(1);
        assert_eq!(held(HoldReason::PurchasePrice, BUYER), 0);
        jump_to(1 + PERIOD + GRACE);
        settle(id);
        assert_eq!(purchase_of(id).state, PurchaseState::Settled);
    });
}

// ---------------------------------------------------------------------------------------
// keys

#[test]
fn deliver_keys_activates_and_the_buyer_can_open_them() {
    ExtBuilder::default().build_and_execute(|| {
        let id = buy(BUYER, STREAM_OFFER, 2);
        let bytes = sealed_for(id, 0);
        assert_ok!(Escrow::deliver_keys(signed(SELLER), id, 0, bytes.clone()));
        let deposit = KEY_DEPOSIT_BASE + sealed::SEALED_KEY_LEN_V1 as Balance;
        assert_eq!(held(HoldReason::KeyDeposit, SELLER), deposit);
        let p = purchase_of(id);
        assert_eq!(p.state, PurchaseState::Active);
        assert_eq!((p.keys.epochs, p.keys.deposits), (1, deposit));
        System::assert_has_event(
            Event::KeysDelivered {
                purchase: id,
                epoch: 0,
                deposit,
            }
            .into(),
        );
        System::assert_last_event(Event::PurchaseActivated { purchase: id }.into());
        // The agenda entry moves from the key deadline to the first period boundary.
        let due = p.period_end(0);
        assert_ne!(due, p.schedule.key_deadline + 1);
        assert_eq!(p.scheduled_at, Some(due));
        assert!(Agenda::<Test>::contains_key(due, id));
        assert!(!Agenda::<Test>::contains_key(
            p.schedule.key_deadline + 1,
            id
        ));
        // The buyer opens them with its secret and checks them against the commitment.
        let stored = Escrow::sealed_key(id, 0).expect("stored");
        assert_eq!(stored, bytes.into_inner());
        let keys = sealed::open(&x25519_secret(BUYER), id, 0, &stored).expect("opens");
        assert_eq!(keys.commitment(), epoch_keys(0).commitment());
        assert!(sealed::open(&x25519_secret(BUYER2), id, 0, &stored).is_err());
    });
}

#[test]
fn later_epochs_follow_without_changing_the_state() {
    ExtBuilder::default().build_and_execute(|| {
        let id = active_stream(2);
        deliver(id, 1);
        deliver(id, 3);
        let p = purchase_of(id);
        assert_eq!(p.state, PurchaseState::Active);
        assert_eq!(p.keys.epochs, 3);
        assert_eq!(Escrow::delivered_epochs(id), vec![0, 1, 3]);
        System::assert_last_event(
            Event::KeysDelivered {
                purchase: id,
                epoch: 3,
                deposit: 118,
            }
            .into(),
        );
    });
}

#[test]
fn stream_purchases_activate_with_the_current_epoch_only() {
    ExtBuilder::default().build_and_execute(|| {
        edit_stream(STREAM, |s| s.epoch = 1);
        let id = buy(BUYER, STREAM_OFFER, 1);
        assert_noop!(
            Escrow::deliver_keys(signed(SELLER), id, 0, sealed_for(id, 0)),
            E::EpochNotPurchased
        );
        deliver(id, 2);
        assert_eq!(purchase_of(id).state, PurchaseState::AwaitingKeys);
        deliver(id, 1);
        assert_eq!(purchase_of(id).state, PurchaseState::Active);
    });
}

#[test]
fn batch_purchases_activate_with_any_epoch() {
    ExtBuilder::default().build_and_execute(|| {
        let id = buy(BUYER, BATCH_OFFER, 1);
        deliver(id, 2);
        assert_eq!(purchase_of(id).state, PurchaseState::Active);
    });
}

#[test]
fn deliver_keys_errors() {
    ExtBuilder::default().build_and_execute(|| {
        let id = buy(BUYER, STREAM_OFFER, 1);
        let good = sealed_for(id, 0);
        assert_noop!(
            Escrow::deliver_keys(signed(SELLER), 9, 0, good.clone()),
            E::UnknownPurchase
        );
        assert_noop!(
            Escrow::deliver_keys(signed(BUYER), id, 0, good.clone()),
            E::NotSeller
        );
        let wrong_version = BoundedVec::truncate_from(vec![2u8; sealed::SEALED_KEY_LEN_V1]);
        assert_noop!(
            Escrow::deliver_keys(signed(SELLER), id, 0, wrong_version),
            E::MalformedSealedKey
        );
        let short = BoundedVec::truncate_from(vec![1u8; 10]);
        assert_noop!(
            Escrow::deliver_keys(signed(SELLER), id, 0, short),
            E::MalformedSealedKey
        );
        assert_noop!(
            Escrow::deliver_keys(signed(SELLER), id, 9, sealed_for(id, 9)),
            E::UnknownEpoch
        );
        deliver(id, 0);
        assert_noop!(
            Escrow::deliver_keys(signed(SELLER), id, 0, good),
            E::EpochAlreadyDelivered
        );
        with_state(|s| {
            s.commitments
                .insert((STREAM, 4), epoch_keys(4).commitment())
        });
        deliver(id, 1);
        deliver(id, 2);
        deliver(id, 3);
        assert_noop!(
            Escrow::deliver_keys(signed(SELLER), id, 4, sealed_for(id, 4)),
            E::TooManyEpochs
        );
    });
}

#[test]
fn deliver_keys_needs_the_key_deposit() {
    ExtBuilder::default()
        .balance(account(SELLER), 100)
        .build_and_execute(|| {
            let id = buy(BUYER, STREAM_OFFER, 1);
            assert_noop!(
                Escrow::deliver_keys(signed(SELLER), id, 0, sealed_for(id, 0)),
                E::InsufficientBalance
            );
        });
}

#[test]
fn keys_are_accepted_until_the_deadline_inclusive() {
    ExtBuilder::default().build_and_execute(|| {
        let a = buy(BUYER, STREAM_OFFER, 1);
        let b = buy(BUYER, STREAM_OFFER, 1);
        jump_to(1 + KEY_DELIVERY);
        deliver(a, 0);
        jump_to(2 + KEY_DELIVERY);
        assert_noop!(
            Escrow::deliver_keys(signed(SELLER), b, 0, sealed_for(b, 0)),
            E::KeyDeadlinePassed
        );
        // An active purchase still takes later epochs after the first deadline.
        deliver(a, 1);
    });
}

#[test]
fn no_keys_after_the_purchase_is_closed() {
    ExtBuilder::default().build_and_execute(|| {
        let id = buy(BUYER, STREAM_OFFER, 1);
        jump_to(2 + KEY_DELIVERY);
        assert_ok!(Escrow::refund_missing_keys(signed(STRANGER), id));
        assert_noop!(
            Escrow::deliver_keys(signed(SELLER), id, 0, sealed_for(id, 0)),
            E::PurchaseClosed
        );
    });
}

// ---------------------------------------------------------------------------------------
// refunds for missing keys

#[test]
fn missing_keys_refund_everything_and_anyone_may_trigger_it() {
    ExtBuilder::default().build_and_execute(|| {
        let id = buy(BUYER, STREAM_OFFER, 3);
        publish(STREAM, 10);
        assert_ok!(claim(id, OP1, 5, 1_000_000, 1));
        jump_to(2 + KEY_DELIVERY);
        let info = Escrow::refund_missing_keys(signed(STRANGER), id).expect("refunds");
        assert_eq!(info.pays_fee, Pays::No);
        assert_eq!(free(BUYER), 100_000 - PURCHASE_DEPOSIT);
        assert_eq!(held(HoldReason::PurchasePrice, BUYER), 0);
        let p = purchase_of(id);
        assert_eq!(p.state, PurchaseState::Refunded);
        assert_eq!(p.ledger.refunded, 3 * PRICE);
        assert_eq!(p.operators.accrued, 0);
        assert_eq!(
            OperatorClaims::<Test>::get(id, account(OP1))
                .expect("claim")
                .accrued,
            0
        );
        System::assert_last_event(
            Event::RefundedForMissingKeys {
                purchase: id,
                buyer: account(BUYER),
                amount: 3 * PRICE,
            }
            .into(),
        );
        // No trade, no rating.
        assert_eq!(Escrow::settled_trade(id), None);
    });
}

#[test]
fn refund_missing_keys_errors() {
    ExtBuilder::default().build_and_execute(|| {
        assert_noop!(
            Escrow::refund_missing_keys(signed(STRANGER), 5),
            E::UnknownPurchase
        );
        let waiting = buy(BUYER, STREAM_OFFER, 1);
        let active = active_stream(1);
        jump_to(1 + KEY_DELIVERY);
        assert_noop!(
            Escrow::refund_missing_keys(signed(STRANGER), waiting),
            E::KeyDeadlineNotPassed
        );
        jump_to(2 + KEY_DELIVERY);
        assert_noop!(
            Escrow::refund_missing_keys(signed(STRANGER), active),
            E::KeysAlreadyDelivered
        );
        assert_ok!(Escrow::refund_missing_keys(signed(STRANGER), waiting));
        assert_noop!(
            Escrow::refund_missing_keys(signed(STRANGER), waiting),
            E::PurchaseClosed
        );
    });
}

#[test]
fn missing_keys_are_refunded_automatically() {
    ExtBuilder::default().build_and_execute(|| {
        let id = buy(BUYER, STREAM_OFFER, 1);
        run_to_block(1 + KEY_DELIVERY);
        assert_eq!(purchase_of(id).state, PurchaseState::AwaitingKeys);
        run_to_block(2 + KEY_DELIVERY);
        assert_eq!(purchase_of(id).state, PurchaseState::Refunded);
        assert_eq!(free(BUYER), 100_000 - PURCHASE_DEPOSIT);
    });
}

// ---------------------------------------------------------------------------------------
// receipts

#[test]
fn claims_accrue_pay_for_new_bytes() {
    ExtBuilder::default().build_and_execute(|| {
        let id = active_stream(1);
        assert_ok!(claim(id, OP1, 10, 2_500_000, 1));
        System::assert_last_event(
            Event::ReceiptClaimed {
                purchase: id,
                operator: account(OP1),
                up_to_sequence: 10,
                bytes: 2_500_000,
                accrued: 250,
            }
            .into(),
        );
        // Only the bytes not yet priced are paid: 1.5 MB more at 100 per MB.
        assert_ok!(claim(id, OP1, 20, 4_000_000, 7));
        let c = OperatorClaims::<Test>::get(id, account(OP1)).expect("claim");
        assert_eq!(
            (c.nonce, c.up_to_sequence, c.bytes, c.accrued, c.paid),
            (7, 20, 4_000_000, 400, 0)
        );
        // Another operator, another price; a replica behind the first does not move delivery.
        assert_ok!(claim(id, OP2, 15, 1_000_000, 1));
        let p = purchase_of(id);
        assert_eq!(
            (
                p.operators.accrued,
                p.operators.claims,
                p.progress.delivered_up_to
            ),
            (600, 2, Some(20))
        );
        // More sequence, same bytes: accepted, nothing accrued.
        assert_ok!(claim(id, OP2, 16, 1_000_000, 2));
        assert_eq!(purchase_of(id).operators.accrued, 600);
    });
}

#[test]
fn claim_rejects_foreign_receipts() {
    ExtBuilder::default().build_and_execute(|| {
        let id = active_stream(1);
        let r = receipt(id, OP1, 10, 1_000, 1);
        // Named another operator.
        assert_noop!(
            Escrow::claim(signed(OP2), r.clone(), sign(BUYER, &r)),
            E::ForeignReceipt
        );
        // Not signed by the buyer, or tampered.
        assert_noop!(
            Escrow::claim(signed(OP1), r.clone(), sign(BUYER2, &r)),
            E::InvalidSignature
        );
        assert_noop!(
            Escrow::claim(signed(OP1), r.clone(), sign(OP1, &r)),
            E::InvalidSignature
        );
        let inflated = receipt(id, OP1, 10, 1_000_000_000, 1);
        assert_noop!(
            Escrow::claim(signed(OP1), inflated, sign(BUYER, &r)),
            E::InvalidSignature
        );
        // For another purchase.
        let other = buy(BUYER2, STREAM_OFFER, 1);
        let moved = receipt(other, OP1, 10, 1_000, 1);
        assert_noop!(
            Escrow::claim(signed(OP1), moved, sign(BUYER, &r)),
            E::InvalidSignature
        );
        assert_noop!(claim(77, OP1, 10, 1_000, 1), E::UnknownPurchase);
        // Not a registered operator, or not assigned to the stream.
        assert_noop!(claim(id, STRANGER, 10, 1_000, 1), E::NotAnOperator);
        assert_noop!(
            claim(id, OP_UNASSIGNED, 10, 1_000, 1),
            E::NotAssignedOperator
        );
    });
}

#[test]
fn claim_rejects_replayed_lower_and_stale_receipts() {
    ExtBuilder::default().build_and_execute(|| {
        let id = active_stream(1);
        assert_ok!(claim(id, OP1, 10, 1_000, 5));
        assert_noop!(claim(id, OP1, 10, 1_000, 5), E::ReplayedReceipt);
        assert_noop!(claim(id, OP1, 11, 2_000, 4), E::ReplayedReceipt);
        assert_noop!(claim(id, OP1, 9, 2_000, 6), E::LowerReceipt);
        assert_noop!(claim(id, OP1, 11, 999, 6), E::LowerReceipt);
        assert_noop!(claim(id, OP1, 10, 1_000, 6), E::StaleReceipt);
        assert_ok!(claim(id, OP1, 10, 1_001, 6));
    });
}

#[test]
fn buyers_cannot_pay_themselves_as_operators() {
    ExtBuilder::default().build_and_execute(|| {
        // The buyer is also a registered operator assigned to the stream.
        with_state(|s| {
            s.operators.insert(account(BUYER), OP_PRICE);
            s.assigned
                .insert(STREAM, vec![account(BUYER), account(OP1)]);
        });
        let id = active_stream(1);
        assert_noop!(claim(id, BUYER, 10, 1_000_000, 1), E::BuyerIsOperator);
        // Operating for other buyers' purchases is fine.
        let other = buy(BUYER2, STREAM_OFFER, 1);
        assert_ok!(claim_signed_by(BUYER2, other, BUYER, 10, 1_000_000, 1));
    });
}

#[test]
fn claim_limits_operators_per_purchase() {
    ExtBuilder::default().build_and_execute(|| {
        let id = active_stream(1);
        assert_ok!(claim(id, OP1, 1, 1, 1));
        assert_ok!(claim(id, OP2, 1, 1, 1));
        assert_ok!(claim(id, OP3, 1, 1, 1));
        assert_noop!(claim(id, OP4, 1, 1, 1), E::TooManyOperators);
    });
}

#[test]
fn operators_keep_claiming_after_reassignment() {
    ExtBuilder::default().build_and_execute(|| {
        let id = active_stream(1);
        assert_ok!(claim(id, OP1, 1, 1_000, 1));
        with_state(|s| s.assigned.insert(STREAM, vec![account(OP2)]));
        assert_ok!(claim(id, OP1, 2, 2_000, 2));
        assert_noop!(claim(id, OP3, 2, 2_000, 1), E::NotAssignedOperator);
    });
}

#[test]
fn claim_after_close_fails() {
    ExtBuilder::default().build_and_execute(|| {
        let id = active_stream(1);
        jump_to(1 + PERIOD + GRACE);
        settle(id);
        assert_noop!(claim(id, OP1, 1, 1, 1), E::PurchaseClosed);
    });
}

#[test]
fn claim_pay_saturates_and_is_capped() {
    ExtBuilder::default()
        .balance(account(BUYER), Balance::MAX / 2)
        .build_and_execute(|| {
            edit_offer(STREAM_OFFER, |o| o.price = Balance::MAX / 8);
            with_state(|s| {
                s.operators.insert(account(OP1), Balance::MAX);
                s.operators.insert(account(OP2), Balance::MAX);
            });
            let id = active_stream(3);
            assert_ok!(claim(id, OP1, 1, u64::MAX, 1));
            assert_ok!(claim(id, OP2, 1, u64::MAX, 1));
            assert_eq!(purchase_of(id).operators.accrued, Balance::MAX);
            jump_to(1 + PERIOD + GRACE);
            settle(id);
            let p = purchase_of(id);
            let budget = Balance::MAX / 8;
            let cap = StorageShare::get().mul_floor(budget);
            assert!(p.ledger.operators <= cap);
            assert!(p.ledger.operators >= cap - 1);
            assert_eq!(p.ledger_total(), Some(p.payment.price));
        });
}

// ---------------------------------------------------------------------------------------
// settlement

#[test]
fn stream_settles_period_by_period() {
    ExtBuilder::default().build_and_execute(|| {
        let id = active_stream(3);
        let treasury_before = Balances::free_balance(treasury());
        let seller_before = free(SELLER);
        let op1_before = free(OP1);
        let op2_before = free(OP2);

        // Period 0: OP1 served 1 MB (100); the buyer acknowledged data.
        jump_to(5);
        assert_ok!(claim(id, OP1, PUBLISHED - 1, 1_000_000, 1));
        assert_noop!(Escrow::settle(signed(STRANGER), id), E::SettlementNotDue);
        jump_to(1 + PERIOD + GRACE - 1);
        assert_noop!(Escrow::settle(signed(STRANGER), id), E::SettlementNotDue);
        jump_to(1 + PERIOD + GRACE);
        settle(id);
        // B = 1000, cap 200, O = 100, D = 1000, G = 900, F = 90, seller 810, R = 0.
        System::assert_has_event(
            Event::OperatorPaid {
                purchase: id,
                operator: account(OP1),
                amount: 100,
            }
            .into(),
        );
        System::assert_last_event(
            Event::PeriodSettled {
                purchase: id,
                period: 0,
                operators: 100,
                seller: 810,
                fee: 90,
                refunded: 0,
            }
            .into(),
        );

        // Period 1: nothing acknowledged: all of B back to the buyer.
        jump_to(1 + 2 * PERIOD + GRACE);
        settle(id);
        System::assert_last_event(
            Event::PeriodSettled {
                purchase: id,
                period: 1,
                operators: 0,
                seller: 0,
                fee: 0,
                refunded: 1000,
            }
            .into(),
        );

        // Period 2: 100 segments published, all acknowledged; OP2 served 2 MB (400 > cap
        // 200): paid the cap.
        publish(STREAM, 100);
        assert_ok!(claim(id, OP2, PUBLISHED + 99, 2_000_000, 1));
        jump_to(1 + 3 * PERIOD + GRACE);
        settle(id);
        System::assert_has_event(
            Event::PeriodSettled {
                purchase: id,
                period: 2,
                operators: 200,
                seller: 720,
                fee: 80,
                refunded: 0,
            }
            .into(),
        );
        System::assert_last_event(
            Event::PurchaseSettled {
                purchase: id,
                value: 2000,
            }
            .into(),
        );

        let p = purchase_of(id);
        assert_eq!(p.state, PurchaseState::Settled);
        assert_eq!(p.ledger.held, 0);
        assert_eq!(
            (
                p.ledger.operators,
                p.ledger.seller,
                p.ledger.fees,
                p.ledger.refunded
            ),
            (300, 1530, 170, 1000)
        );
        assert_eq!(free(SELLER), seller_before + 1530);
        assert_eq!(Balances::free_balance(treasury()), treasury_before + 170);
        assert_eq!(free(OP1), op1_before + 100);
        assert_eq!(free(OP2), op2_before + 200);
        assert_eq!(free(BUYER), 100_000 - 3 * PRICE - PURCHASE_DEPOSIT + 1000);
        assert_eq!(held(HoldReason::PurchasePrice, BUYER), 0);
        assert_noop!(Escrow::settle(signed(STRANGER), id), E::PurchaseClosed);

        let trade = Escrow::settled_trade(id).expect("settled");
        assert_eq!(trade.buyer, account(BUYER));
        assert_eq!(trade.seller, account(SELLER));
        assert_eq!(trade.value, 2000);
        assert_eq!(trade.settled_at, 1 + 3 * PERIOD + GRACE);
    });
}

#[test]
fn operators_over_the_cap_share_it_pro_rata() {
    ExtBuilder::default().build_and_execute(|| {
        let id = active_stream(1);
        assert_ok!(claim(id, OP1, PUBLISHED - 1, 3_000_000, 1)); // 300
        assert_ok!(claim(id, OP2, 10, 1_500_000, 1)); // 300
        assert_ok!(claim(id, OP3, 10, 500_000, 1)); // 100
        jump_to(1 + PERIOD + GRACE);
        settle(id);
        // A = 700 > cap 200: 300·200/700 = 85, 85, 100·200/700 = 28.
        let paid = |op| {
            OperatorClaims::<Test>::get(id, account(op))
                .expect("claim")
                .paid
        };
        assert_eq!((paid(OP1), paid(OP2), paid(OP3)), (85, 85, 28));
        // O = 198, D = 1000, G = 802, F = 80, seller 722.
        System::assert_last_event(
            Event::PurchaseSettled {
                purchase: id,
                value: PRICE,
            }
            .into(),
        );
        let p = purchase_of(id);
        assert_eq!(
            (
                p.ledger.operators,
                p.ledger.seller,
                p.ledger.fees,
                p.ledger.refunded
            ),
            (198, 722, 80, 0)
        );
    });
}

#[test]
fn batch_pays_the_delivered_fraction() {
    ExtBuilder::default().build_and_execute(|| {
        let id = active_batch();
        // Segments 100..=149 of 100..=199 acknowledged: half delivered.
        assert_ok!(claim(id, OP1, 149, 500_000, 1)); // 50
        assert_noop!(Escrow::settle(signed(STRANGER), id), E::SettlementNotDue);
        jump_to(1 + BATCH_ACCESS + GRACE);
        settle(id);
        // B = 1000, O = 50, D = 500, G = 450, F = 45, seller 405, R = 500.
        System::assert_has_event(
            Event::PeriodSettled {
                purchase: id,
                period: 0,
                operators: 50,
                seller: 405,
                fee: 45,
                refunded: 500,
            }
            .into(),
        );
        assert_eq!(purchase_of(id).state, PurchaseState::Settled);
    });
}

#[test]
fn batch_delivery_below_and_beyond_the_window() {
    ExtBuilder::default().build_and_execute(|| {
        // Below the window: nothing delivered.
        let below = active_batch();
        assert_ok!(claim(below, OP1, 99, 1, 1));
        // Beyond the window: counted up to its last segment.
        let beyond = active_batch();
        assert_ok!(claim(beyond, OP1, BATCH_HEAD - 1, 1, 1));
        jump_to(1 + BATCH_ACCESS + GRACE);
        settle(below);
        System::assert_last_event(
            Event::PurchaseSettled {
                purchase: below,
                value: 0,
            }
            .into(),
        );
        settle(beyond);
        System::assert_last_event(
            Event::PurchaseSettled {
                purchase: beyond,
                value: PRICE,
            }
            .into(),
        );
    });
}

#[test]
fn operators_are_paid_even_beyond_the_delivered_share() {
    ExtBuilder::default().build_and_execute(|| {
        let id = active_batch();
        // 10 % of the window, but OP2 served 1 MB (200 = the cap).
        assert_ok!(claim(id, OP2, 109, 1_000_000, 1));
        jump_to(1 + BATCH_ACCESS + GRACE);
        settle(id);
        // O = 200 > D = 100: G = 0, R = 800.
        System::assert_has_event(
            Event::PeriodSettled {
                purchase: id,
                period: 0,
                operators: 200,
                seller: 0,
                fee: 0,
                refunded: 800,
            }
            .into(),
        );
    });
}

#[test]
fn the_last_period_takes_the_rounding_dust() {
    ExtBuilder::default().build_and_execute(|| {
        with_state(|s| s.verified.insert(account(BUYER)));
        edit_offer(STREAM_OFFER, |o| {
            o.verified_discount = Perbill::from_rational(1u32, 7u32)
        });
        let id = active_stream(3);
        // 3000 − ⌊3000/7⌋ = 2572 = 857 + 857 + 858.
        assert_eq!(purchase_of(id).payment.price, 2572);
        for period in 0..3u64 {
            jump_to(1 + (period + 1) * PERIOD + GRACE);
            settle(id);
        }
        let refunds: Vec<Balance> = System::events()
            .into_iter()
            .filter_map(|r| match r.event {
                RuntimeEvent::Escrow(Event::PeriodSettled { refunded, .. }) => Some(refunded),
                _ => None,
            })
            .collect();
        assert_eq!(refunds, vec![857, 857, 858]);
    });
}

#[test]
fn payouts_the_recipient_cannot_receive_go_back_to_the_buyer() {
    ExtBuilder::default().build_and_execute(|| {
        let id = active_stream(1);
        // OP4 has no account; 10 kB at 200 per MB = 2, below the existential deposit.
        assert_ok!(claim(id, OP4, PUBLISHED - 1, 10_000, 1));
        jump_to(1 + PERIOD + GRACE);
        settle(id);
        System::assert_has_event(
            Event::PayoutRedirected {
                purchase: id,
                intended: account(OP4),
                amount: 2,
            }
            .into(),
        );
        let p = purchase_of(id);
        // O = 2 (redirected), D = 1000, G = 998, F = 99, seller 899.
        assert_eq!(
            (
                p.ledger.operators,
                p.ledger.seller,
                p.ledger.fees,
                p.ledger.refunded
            ),
            (0, 899, 99, 2)
        );
        assert_eq!(Balances::free_balance(account(OP4)), 0);
    });
}

#[test]
fn settle_errors() {
    ExtBuilder::default().build_and_execute(|| {
        assert_noop!(Escrow::settle(signed(STRANGER), 3), E::UnknownPurchase);
        let waiting = buy(BUYER, STREAM_OFFER, 1);
        let disputed = active_stream(1);
        assert_ok!(Escrow::dispute(
            signed(BUYER),
            disputed,
            DisputeReason::KeysMismatch,
            None
        ));
        jump_to(1 + PERIOD + GRACE);
        assert_noop!(
            Escrow::settle(signed(STRANGER), waiting),
            E::KeysNotDelivered
        );
        assert_noop!(
            Escrow::settle(signed(STRANGER), disputed),
            E::PurchaseDisputed
        );
    });
}

#[test]
fn periods_settle_automatically() {
    ExtBuilder::default().build_and_execute(|| {
        let id = active_stream(2);
        // 2 of the 1 000 segments of period 0 acknowledged, 1 MB at 100 per MB.
        assert_ok!(claim(id, OP1, 1, 1_000_000, 1));
        run_to_block(1 + PERIOD + GRACE - 1);
        assert_eq!(purchase_of(id).progress.settled_periods, 0);
        run_to_block(1 + PERIOD + GRACE);
        assert_eq!(purchase_of(id).progress.settled_periods, 1);
        run_to_block(1 + 2 * PERIOD + GRACE);
        let p = purchase_of(id);
        assert_eq!(p.state, PurchaseState::Settled);
        // Period 0: D = 2, O = 100: the buyer gets B − max(D, O) = 900 back; period 1
        // published nothing: all of it back.
        assert_eq!(p.ledger.refunded, 900 + PRICE);
        // Then reaped after the retention period, deposits back.
        run_to_block(1 + 2 * PERIOD + GRACE + RETENTION);
        assert!(Purchases::<Test>::get(id).is_none());
        assert_eq!(held(HoldReason::KeyDeposit, SELLER), 0);
        assert_eq!(held(HoldReason::PurchaseDeposit, BUYER), 0);
    });
}

#[test]
fn manual_and_automatic_settlement_do_not_double_up() {
    ExtBuilder::default().build_and_execute(|| {
        let id = active_stream(2);
        jump_to(1 + PERIOD + GRACE);
        settle(id);
        // The agenda entry of period 0 is now early for period 1: it only reschedules.
        run_to_block(1 + 2 * PERIOD + GRACE - 1);
        assert_eq!(purchase_of(id).progress.settled_periods, 1);
        run_to_block(1 + 2 * PERIOD + GRACE);
        assert_eq!(purchase_of(id).state, PurchaseState::Settled);
    });
}

#[test]
fn overdue_periods_catch_up_one_per_agenda_step() {
    ExtBuilder::default().build_and_execute(|| {
        let id = active_stream(3);
        // Nobody runs on_idle for a long time.
        jump_to(200);
        run_to_block(203);
        assert_eq!(purchase_of(id).state, PurchaseState::Settled);
    });
}

// ---------------------------------------------------------------------------------------
// disputes

#[test]
fn disputes_freeze_the_purchase() {
    ExtBuilder::default().build_and_execute(|| {
        let id = active_stream(2);
        let evidence = Some(sp_core::H256::repeat_byte(9));
        assert_ok!(Escrow::dispute(
            signed(BUYER),
            id,
            DisputeReason::KeysMismatch,
            evidence
        ));
        System::assert_last_event(
            Event::DisputeOpened {
                purchase: id,
                reason: DisputeReason::KeysMismatch,
                evidence,
                deposit: DISPUTE_DEPOSIT,
            }
            .into(),
        );
        assert_eq!(held(HoldReason::DisputeDeposit, BUYER), DISPUTE_DEPOSIT);
        let p = purchase_of(id);
        assert_eq!(p.state, PurchaseState::Disputed);
        let dispute = p.dispute.expect("dispute");
        assert_eq!(dispute.opened_at, 1);
        assert_eq!(dispute.deadline, 1 + DISPUTE_PERIOD);
        assert_eq!(dispute.answer, None);
        // Until its deadline neither manual nor automatic settlement moves it.
        const { assert!(1 + PERIOD + GRACE < DISPUTE_PERIOD) };
        run_to_block(DISPUTE_PERIOD);
        assert_noop!(Escrow::settle(signed(STRANGER), id), E::PurchaseDisputed);
        assert_eq!(purchase_of(id).progress.settled_periods, 0);
        assert_eq!(purchase_of(id).ledger.held, 2 * PRICE);
        // Operators may still record receipts.
        assert_ok!(claim(id, OP1, 1, 1_000_000, 1));
    });
}

#[test]
fn an_unanswered_dispute_is_upheld_in_full_at_its_deadline() {
    ExtBuilder::default().build_and_execute(|| {
        let id = active_stream(1);
        assert_ok!(claim(id, OP1, 1, 1_000_000, 1));
        assert_ok!(Escrow::dispute(
            signed(BUYER),
            id,
            DisputeReason::KeysMismatch,
            None
        ));
        let (buyer_before, seller_before) = (free(BUYER), free(SELLER));
        run_to_block(DISPUTE_PERIOD);
        assert_eq!(purchase_of(id).state, PurchaseState::Disputed);
        // Nobody resolved it and the seller never answered: the rule upholds it in full.
        run_to_block(1 + DISPUTE_PERIOD);
        System::assert_has_event(
            Event::DisputeLapsed {
                purchase: id,
                answered: false,
            }
            .into(),
        );
        System::assert_has_event(
            Event::DisputeUpheld {
                purchase: id,
                refund_ratio: Perbill::one(),
                operators: 100,
                seller: 0,
                fee: 0,
                refunded: 900,
            }
            .into(),
        );
        let p = purchase_of(id);
        assert_eq!(p.state, PurchaseState::Settled);
        assert_eq!(p.dispute, None);
        assert_eq!(held(HoldReason::DisputeDeposit, BUYER), 0);
        assert_eq!(free(BUYER), buyer_before + 900 + DISPUTE_DEPOSIT);
        assert_eq!(free(SELLER), seller_before);
    });
}

#[test]
fn an_answered_dispute_lapses_at_its_deadline_and_settles_by_the_rule() {
    ExtBuilder::default().build_and_execute(|| {
        let id = active_stream(1);
        assert_ok!(claim(id, OP1, PUBLISHED - 1, 1_000_000, 1));
        assert_ok!(Escrow::dispute(
            signed(BUYER),
            id,
            DisputeReason::KeysMismatch,
            None
        ));
        let evidence = sp_core::H256::repeat_byte(7);
        assert_noop!(
            Escrow::answer_dispute(signed(BUYER), id, evidence),
            E::NotSeller
        );
        assert_noop!(
            Escrow::answer_dispute(signed(SELLER), 99, evidence),
            E::UnknownPurchase
        );
        assert_ok!(Escrow::answer_dispute(signed(SELLER), id, evidence));
        System::assert_last_event(
            Event::DisputeAnswered {
                purchase: id,
                evidence,
            }
            .into(),
        );
        assert_eq!(
            purchase_of(id).dispute.and_then(|d| d.answer),
            Some(evidence)
        );
        assert_noop!(
            Escrow::answer_dispute(signed(SELLER), id, evidence),
            E::AlreadyAnswered
        );
        // The stream stays hosted while the dispute may need it.
        assert_eq!(
            OfferNeededUntil::<Test>::get(STREAM_OFFER),
            Some(1 + DISPUTE_PERIOD + GRACE)
        );
        let buyer_before = free(BUYER);
        let seller_before = free(SELLER);
        run_to_block(1 + DISPUTE_PERIOD);
        System::assert_has_event(
            Event::DisputeLapsed {
                purchase: id,
                answered: true,
            }
            .into(),
        );
        assert_eq!(held(HoldReason::DisputeDeposit, BUYER), 0);
        // Disputed once, never again: the seller's pay cannot be frozen period after period.
        assert_noop!(
            Escrow::dispute(signed(BUYER), id, DisputeReason::Other, None),
            E::AlreadyDisputed
        );
        // The overdue period settles by the settlement rule: everything acknowledged, so
        // the seller is paid and nothing is refunded.
        run_to_block(3 + DISPUTE_PERIOD);
        let p = purchase_of(id);
        assert_eq!(p.state, PurchaseState::Settled);
        assert_eq!(p.ledger.refunded, 0);
        assert!(p.ledger.seller > 0);
        assert_eq!(free(SELLER), seller_before + p.ledger.seller);
        assert_eq!(free(BUYER), buyer_before + DISPUTE_DEPOSIT);
    });
}

#[test]
fn anyone_ends_a_dispute_past_its_deadline_with_settle() {
    ExtBuilder::default().build_and_execute(|| {
        let id = active_stream(1);
        assert_ok!(Escrow::dispute(
            signed(BUYER),
            id,
            DisputeReason::KeysMismatch,
            None
        ));
        jump_to(DISPUTE_PERIOD);
        assert_noop!(Escrow::settle(signed(STRANGER), id), E::PurchaseDisputed);
        // No on_idle ran: the stranger's settle applies the rule.
        jump_to(1 + DISPUTE_PERIOD);
        settle(id);
        System::assert_has_event(
            Event::DisputeLapsed {
                purchase: id,
                answered: false,
            }
            .into(),
        );
        let p = purchase_of(id);
        assert_eq!(p.state, PurchaseState::Settled);
        assert_eq!(p.ledger.refunded, PRICE);
    });
}

#[test]
fn a_stream_dispute_ends_while_every_period_boundary_still_fits() {
    ExtBuilder::default().build_and_execute(|| {
        DisputeBlocks::set(10_000);
        let id = active_stream(12);
        jump_to(1 + 3 * PERIOD + 4);
        assert_ok!(Escrow::dispute(
            signed(BUYER),
            id,
            DisputeReason::DataNotDelivered,
            None
        ));
        // Nothing settles while disputed: the 16 heads the purchase can hold run out at the
        // boundary of index 16, so the dispute ends two blocks before it.
        let deadline = purchase_of(id).dispute.expect("dispute").deadline;
        assert_eq!(deadline, 1 + 16 * PERIOD - 2);
        assert_eq!(
            OfferNeededUntil::<Test>::get(STREAM_OFFER),
            Some(deadline.max(1 + 12 * PERIOD) + GRACE)
        );
        // A batch has no boundaries: the full dispute period.
        let batch = active_batch();
        assert_ok!(Escrow::dispute(
            signed(BUYER),
            batch,
            DisputeReason::KeysMismatch,
            None
        ));
        assert_eq!(
            purchase_of(batch).dispute.expect("dispute").deadline,
            1 + 3 * PERIOD + 4 + 10_000
        );
    });
}

#[test]
fn answer_dispute_errors() {
    ExtBuilder::default().build_and_execute(|| {
        let id = active_stream(1);
        let evidence = sp_core::H256::repeat_byte(7);
        assert_noop!(
            Escrow::answer_dispute(signed(SELLER), id, evidence),
            E::NotDisputed
        );
        assert_ok!(Escrow::dispute(
            signed(BUYER),
            id,
            DisputeReason::Other,
            None
        ));
        jump_to(1 + DISPUTE_PERIOD);
        assert_noop!(
            Escrow::answer_dispute(signed(SELLER), id, evidence),
            E::DisputeDeadlinePassed
        );
    });
}

#[test]
fn dispute_errors() {
    ExtBuilder::default().build_and_execute(|| {
        assert_noop!(
            Escrow::dispute(signed(BUYER), 8, DisputeReason::Other, None),
            E::UnknownPurchase
        );
        let waiting = buy(BUYER, STREAM_OFFER, 1);
        assert_noop!(
            Escrow::dispute(signed(BUYER), waiting, DisputeReason::KeysMissing, None),
            E::KeysNotDelivered
        );
        let id = active_stream(1);
        assert_noop!(
            Escrow::dispute(signed(BUYER2), id, DisputeReason::Other, None),
            E::NotBuyer
        );
        assert_ok!(Escrow::dispute(
            signed(BUYER),
            id,
            DisputeReason::Other,
            None
        ));
        assert_noop!(
            Escrow::dispute(signed(BUYER), id, DisputeReason::Other, None),
            E::PurchaseDisputed
        );
        let settled = active_stream(1);
        jump_to(1 + PERIOD + GRACE);
        settle(settled);
        assert_noop!(
            Escrow::dispute(signed(BUYER), settled, DisputeReason::Other, None),
            E::PurchaseClosed
        );
    });
}

#[test]
fn dispute_needs_the_deposit() {
    let balance = PRICE + PURCHASE_DEPOSIT + ED + DISPUTE_DEPOSIT - 1;
    ExtBuilder::default()
        .balance(account(BUYER), balance)
        .build_and_execute(|| {
            let id = active_batch();
            assert_noop!(
                Escrow::dispute(signed(BUYER), id, DisputeReason::Other, None),
                E::InsufficientBalance
            );
        });
}

#[test]
fn upheld_disputes_split_the_remainder() {
    ExtBuilder::default().build_and_execute(|| {
        let id = active_stream(3);
        assert_ok!(claim(id, OP1, 1, 1_000_000, 1)); // 100
        assert_ok!(Escrow::dispute(
            signed(BUYER),
            id,
            DisputeReason::KeysMismatch,
            None
        ));
        let buyer_before = free(BUYER);
        let treasury_before = Balances::free_balance(treasury());
        assert_ok!(Escrow::resolve_dispute(
            RuntimeOrigin::root(),
            id,
            Perbill::from_percent(50)
        ));
        // H = 3000, cap 600, O = 100, X = 2900, R = 1450, G = 1450, F = 145, seller 1305.
        System::assert_has_event(
            Event::DisputeUpheld {
                purchase: id,
                refund_ratio: Perbill::from_percent(50),
                operators: 100,
                seller: 1305,
                fee: 145,
                refunded: 1450,
            }
            .into(),
        );
        System::assert_last_event(
            Event::PurchaseSettled {
                purchase: id,
                value: 1550,
            }
            .into(),
        );
        assert_eq!(free(BUYER), buyer_before + 1450 + DISPUTE_DEPOSIT);
        assert_eq!(Balances::free_balance(treasury()), treasury_before + 145);
        let p = purchase_of(id);
        assert_eq!(p.state, PurchaseState::Settled);
        assert_eq!(p.dispute, None);
        assert_eq!(p.progress.settled_periods, 3);
        assert_eq!(held(HoldReason::DisputeDeposit, BUYER), 0);
        assert!(Escrow::settled_trade(id).is_some());
    });
}

#[test]
fn fully_upheld_disputes_refund_all_but_the_operators() {
    ExtBuilder::default().build_and_execute(|| {
        let id = active_stream(1);
        assert_ok!(claim(id, OP1, 1, 1_000_000, 1));
        assert_ok!(Escrow::dispute(
            signed(BUYER),
            id,
            DisputeReason::KeysMismatch,
            None
        ));
        assert_ok!(Escrow::resolve_dispute(
            RuntimeOrigin::root(),
            id,
            Perbill::one()
        ));
        let p = purchase_of(id);
        assert_eq!(
            (
                p.ledger.operators,
                p.ledger.seller,
                p.ledger.fees,
                p.ledger.refunded
            ),
            (100, 0, 0, 900)
        );
    });
}

#[test]
fn rejected_disputes_cost_the_deposit_and_resume() {
    ExtBuilder::default().build_and_execute(|| {
        let id = active_stream(1);
        assert_ok!(Escrow::dispute(
            signed(BUYER),
            id,
            DisputeReason::Other,
            None
        ));
        // Stays frozen past its settlement block: its one agenda entry waits for the
        // dispute's deadline…
        run_to_block(1 + PERIOD + GRACE + 1);
        assert_eq!(purchase_of(id).scheduled_at, Some(1 + DISPUTE_PERIOD));
        let treasury_before = Balances::free_balance(treasury());
        assert_ok!(Escrow::resolve_dispute(
            RuntimeOrigin::root(),
            id,
            Perbill::zero()
        ));
        System::assert_last_event(
            Event::DisputeRejected {
                purchase: id,
                deposit: DISPUTE_DEPOSIT,
            }
            .into(),
        );
        assert_eq!(
            Balances::free_balance(treasury()),
            treasury_before + DISPUTE_DEPOSIT
        );
        assert_eq!(held(HoldReason::DisputeDeposit, BUYER), 0);
        let p = purchase_of(id);
        assert_eq!(p.state, PurchaseState::Active);
        assert_eq!(p.scheduled_at, Some(System::block_number() + 1));
        // …and the overdue period settles next block.
        run_to_block(System::block_number() + 1);
        assert_eq!(purchase_of(id).state, PurchaseState::Settled);
    });
}

#[test]
fn resolve_dispute_errors() {
    ExtBuilder::default().build_and_execute(|| {
        let id = active_stream(1);
        assert_noop!(
            Escrow::resolve_dispute(signed(STRANGER), id, Perbill::zero()),
            BadOrigin
        );
        assert_noop!(
            Escrow::resolve_dispute(RuntimeOrigin::root(), 9, Perbill::zero()),
            E::UnknownPurchase
        );
        assert_noop!(
            Escrow::resolve_dispute(RuntimeOrigin::root(), id, Perbill::zero()),
            E::NotDisputed
        );
    });
}

// ---------------------------------------------------------------------------------------
// reaping and queries

#[test]
fn reap_returns_deposits_and_clears_storage() {
    ExtBuilder::default().build_and_execute(|| {
        let id = active_stream(1);
        deliver(id, 1);
        assert_ok!(claim(id, OP1, 1, 1_000, 1));
        assert_noop!(Escrow::reap(signed(STRANGER), id), E::PurchaseOpen);
        jump_to(1 + PERIOD + GRACE);
        settle(id);
        assert_noop!(Escrow::reap(signed(STRANGER), id), E::RetentionNotOver);
        jump_to(1 + PERIOD + GRACE + RETENTION);
        let info = Escrow::reap(signed(STRANGER), id).expect("reaps");
        assert_eq!(info.pays_fee, Pays::No);
        System::assert_last_event(
            Event::PurchaseReaped {
                purchase: id,
                buyer_deposit: PURCHASE_DEPOSIT,
                key_deposits: 2 * 118,
            }
            .into(),
        );
        assert!(Purchases::<Test>::get(id).is_none());
        assert_eq!(SealedKeys::<Test>::iter_prefix(id).count(), 0);
        assert_eq!(OperatorClaims::<Test>::iter_prefix(id).count(), 0);
        assert!(Escrow::purchases_of_buyer(&account(BUYER)).is_empty());
        assert!(Escrow::purchases_of_offer(STREAM_OFFER).is_empty());
        assert_eq!(held(HoldReason::KeyDeposit, SELLER), 0);
        assert_eq!(held(HoldReason::PurchaseDeposit, BUYER), 0);
        assert_eq!(Escrow::settled_trade(id), None);
        assert_noop!(Escrow::reap(signed(STRANGER), id), E::UnknownPurchase);
    });
}

#[test]
fn refunded_purchases_are_reaped_too() {
    ExtBuilder::default().build_and_execute(|| {
        let id = buy(BUYER, STREAM_OFFER, 1);
        run_to_block(2 + KEY_DELIVERY + RETENTION);
        assert!(Purchases::<Test>::get(id).is_none());
        assert_eq!(free(BUYER), 100_000);
    });
}

#[test]
fn queries_show_access_progress_and_amounts() {
    ExtBuilder::default().build_and_execute(|| {
        let a = active_stream(2);
        let b = buy(BUYER2, STREAM_OFFER, 1);
        let c = buy(BUYER, BATCH_OFFER, 1);
        deliver(a, 1);
        assert_ok!(claim(a, OP2, 42, 500_000, 3));
        assert_eq!(Escrow::purchases_of_buyer(&account(BUYER)), vec![a, c]);
        assert_eq!(Escrow::purchases_of_buyer(&account(BUYER2)), vec![b]);
        assert_eq!(Escrow::purchases_of_offer(STREAM_OFFER), vec![a, b]);
        assert_eq!(Escrow::purchases_of_offer(BATCH_OFFER), vec![c]);

        let view = Escrow::purchase_view(a).expect("view");
        assert_eq!(view.state, PurchaseState::Active);
        assert_eq!((view.access.start, view.access.end), (1, 21));
        assert_eq!(view.access.first_epoch, Some(0));
        assert_eq!(view.access.epochs, vec![0, 1]);
        assert_eq!(view.next_settlement, Some(1 + PERIOD + GRACE));
        assert_eq!(view.delivered_up_to, Some(42));
        assert_eq!(view.accrued, 100);
        assert_eq!(view.ledger.held, 2 * PRICE);
        assert_eq!(view.operators.len(), 1);
        assert_eq!(view.operators[0].0, account(OP2));
        assert_eq!(view.operators[0].1.bytes, 500_000);
        assert_eq!(Escrow::sealed_key(a, 2), None);
        assert!(Escrow::purchase_view(99).is_none());
    });
}

#[test]
fn settled_trade_only_for_settled_purchases() {
    ExtBuilder::default().build_and_execute(|| {
        let id = active_stream(1);
        assert_eq!(Escrow::settled_trade(id), None);
        assert_eq!(Escrow::settled_trade(42), None);
    });
}

// ---------------------------------------------------------------------------------------
// agenda bounds

#[test]
fn on_idle_work_is_bounded_by_the_weight_given() {
    ExtBuilder::default().build_and_execute(|| {
        let ids: Vec<_> = (0..3).map(|_| buy(BUYER, STREAM_OFFER, 1)).collect();
        let due = 2 + KEY_DELIVERY;
        // Walk the agenda up to the block before the deadline: nothing is due yet.
        run_to_block(due - 1);
        assert_eq!(AgendaCursor::<Test>::get(), Some(due));
        jump_to(due);
        let db: frame_support::weights::RuntimeDbWeight =
            <Test as frame_system::Config>::DbWeight::get();
        // Cursor read/write, agenda block read, entry read/removal, one step of work.
        let one = db
            .reads_writes(3, 2)
            .saturating_add(Escrow::agenda_entry_weight());
        let refunded = |ids: &[PurchaseId]| {
            ids.iter()
                .filter(|id| purchase_of(**id).state == PurchaseState::Refunded)
                .count()
        };
        // No weight: nothing happens.
        assert_eq!(Escrow::on_idle(due, Weight::zero()), Weight::zero());
        assert_eq!(refunded(&ids), 0);
        // Weight for one entry: one refund, the rest stays on the agenda.
        let used = Escrow::on_idle(due, one);
        assert!(used.all_lte(one));
        assert_eq!(refunded(&ids), 1);
        assert_eq!(Agenda::<Test>::iter_prefix(due).count(), 2);
        assert_eq!(AgendaCursor::<Test>::get(), Some(due));
        assert_eq!(Escrow::do_try_state(), Ok(()));
        Escrow::on_idle(due, one);
        assert_eq!(refunded(&ids), 2);
        // The rest in a later block.
        run_to_block(due + 1);
        assert_eq!(refunded(&ids), 3);
    });
}

#[test]
fn a_failing_automatic_step_is_rolled_back_and_reported() {
    ExtBuilder::default().build_and_execute(|| {
        let id = active_stream(1);
        // Break the hold behind the purchase's back: the settlement cannot pay out.
        let reason: RuntimeHoldReason = HoldReason::PurchasePrice.into();
        assert_ok!(<Balances as frame_support::traits::fungible::MutateHold<
            _,
        >>::release(
            &reason,
            &account(BUYER),
            PRICE,
            frame_support::traits::tokens::Precision::Exact
        ));
        let due = 1 + PERIOD + GRACE;
        jump_to(due);
        Escrow::on_idle(due, Weight::MAX);
        let p = purchase_of(id);
        assert_eq!(p.progress.settled_periods, 0);
        assert_eq!(p.scheduled_at, Some(due + 100));
        assert!(System::events().iter().any(|r| matches!(
            r.event,
            RuntimeEvent::Escrow(Event::AutomaticWorkFailed { purchase, retry_at, .. })
                if purchase == id && retry_at == due + 100
        )));
        // Restore the hold so the final invariant check holds.
        assert_ok!(<Balances as frame_support::traits::fungible::MutateHold<
            _,
        >>::hold(&reason, &account(BUYER), PRICE));
        // A manual settle works now; the retry entry later finds it past retention and reaps it.
        settle(id);
        assert_eq!(purchase_of(id).state, PurchaseState::Settled);
        run_to_block(due + 100);
        assert!(Purchases::<Test>::get(id).is_none());
    });
}

#[test]
fn try_state_catches_broken_conservation() {
    ExtBuilder::default().build().execute_with(|| {
        let id = active_stream(1);
        assert_eq!(Escrow::do_try_state(), Ok(()));
        Purchases::<Test>::mutate(id, |p| {
            if let Some(p) = p {
                p.ledger.seller += 1;
            }
        });
        assert!(Escrow::do_try_state().is_err());
        Purchases::<Test>::mutate(id, |p| {
            if let Some(p) = p {
                p.ledger.seller -= 1;
                p.ledger.held -= 1;
                p.ledger.refunded += 1;
            }
        });
        // The ledger adds up but the hold no longer matches it.
        assert!(Escrow::do_try_state().is_err());
    });
}

#[test]
fn integrity_test_passes() {
    ExtBuilder::default().build_and_execute(|| {
        <Escrow as Hooks<BlockNumber>>::integrity_test();
    });
}

#[test]
fn holds_fail_cleanly_without_funds() {
    ExtBuilder::default().build_and_execute(|| {
        // The token error from the balances pallet is reported as our own error.
        assert_eq!(
            Escrow::hold(HoldReason::DisputeDeposit, &account(OP4), 1),
            Err(DispatchError::from(E::InsufficientBalance))
        );
        assert!(Escrow::release(HoldReason::DisputeDeposit, &account(OP1), 1).is_err());
    });
}

#[test]
fn last_event_helper_sees_escrow_events() {
    ExtBuilder::default().build_and_execute(|| {
        let id = buy(BUYER, BATCH_OFFER, 1);
        assert!(matches!(last_event(), RuntimeEvent::Escrow(Event::Purchased { purchase, .. }) if purchase == id));
    });
}

// ---------------------------------------------------------------------------------------
// fair pay: periods paid by what was published and acknowledged in them

/// The `PeriodSettled` events of `id`: `(period, operators, seller, fee, refunded)`.
fn period_settlements(id: PurchaseId) -> Vec<(u32, Balance, Balance, Balance, Balance)> {
    System::events()
        .into_iter()
        .filter_map(|r| match r.event {
            RuntimeEvent::Escrow(Event::PeriodSettled {
                purchase,
                period,
                operators,
                seller,
                fee,
                refunded,
            }) if purchase == id => Some((period, operators, seller, fee, refunded)),
            _ => None,
        })
        .collect()
}

/// Runs blocks up to `until`. In each block the seller publishes `per_block` segments
/// (while `publishing(block)`), then, if `ack(block)` and the purchase is open, `OP1` claims
/// a receipt for everything published so far (100 bytes per segment), then `on_idle` runs.
fn run_stream(
    id: PurchaseId,
    until: BlockNumber,
    per_block: u64,
    publishing: impl Fn(BlockNumber) -> bool,
    ack: impl Fn(BlockNumber) -> bool,
) {
    while System::block_number() < until {
        let block = System::block_number() + 1;
        System::set_block_number(block);
        if publishing(block) {
            publish(STREAM, per_block);
        }
        let head = MockOperators::stream_head(&STREAM);
        let acked = OperatorClaims::<Test>::get(id, account(OP1)).map(|c| c.up_to_sequence);
        let open = purchase_of(id).state.is_open();
        if open && ack(block) && head > 0 && acked != Some(head - 1) {
            assert_ok!(claim(
                id,
                OP1,
                head - 1,
                head * 100,
                u64::from(block as u32)
            ));
        }
        Escrow::on_idle(block, Weight::MAX);
        assert_eq!(Escrow::do_try_state(), Ok(()));
    }
}

/// With the runtime's ratio of claim grace to the shortest period (5 periods), every period
/// of an honest trade pays in full: nothing refunded, the seller gets the budget minus the
/// operators' pay and the fee.
#[test]
fn honest_stream_is_paid_in_full_every_period_with_a_long_grace() {
    ExtBuilder::default().build_and_execute(|| {
        ClaimGraceBlocks::set(5 * PERIOD);
        KeyDeliveryBlocks::set(3 * PERIOD);
        let id = buy(BUYER, STREAM_OFFER, 6);
        // Keys come late, in period 1; nothing was acknowledged before.
        run_stream(id, 15, 10, |_| true, |_| false);
        deliver(id, 0);
        run_stream(id, 1 + 6 * PERIOD + 5 * PERIOD + 1, 10, |_| true, |_| true);
        let p = purchase_of(id);
        assert_eq!(p.state, PurchaseState::Settled);
        let settled = period_settlements(id);
        assert_eq!(settled.len(), 6);
        for (period, operators, seller, fee, refunded) in settled {
            assert_eq!(refunded, 0, "period {period} refunded");
            let gross = seller + fee;
            assert_eq!(operators + gross, PRICE, "period {period} budget");
            assert_eq!(fee, gross / 10, "period {period} fee");
            assert!(
                operators <= PRICE / 5,
                "period {period} operators above the share"
            );
        }
        assert_eq!(p.ledger.refunded, 0);
        assert_eq!(
            p.ledger.operators + p.ledger.seller + p.ledger.fees,
            6 * PRICE
        );
    });
}

#[test]
fn a_seller_who_stops_publishing_is_paid_only_for_what_it_published() {
    ExtBuilder::default().build_and_execute(|| {
        ClaimGraceBlocks::set(5 * PERIOD);
        let id = {
            let id = buy(BUYER, STREAM_OFFER, 3);
            deliver(id, 0);
            id
        };
        // Publishes in period 0 only (blocks 2..=11), the buyer acknowledges everything.
        run_stream(
            id,
            1 + 3 * PERIOD + 5 * PERIOD + 1,
            10,
            |b| b <= 11,
            |_| true,
        );
        let settled = period_settlements(id);
        assert_eq!(settled.len(), 3);
        let (_, operators, seller, fee, refunded) = settled[0];
        assert_eq!((refunded, operators + seller + fee), (0, PRICE));
        // Nothing published in periods 1 and 2: the buyer gets them back.
        for (period, operators, seller, fee, refunded) in &settled[1..] {
            assert_eq!(
                (*operators, *seller, *fee, *refunded),
                (0, 0, 0, PRICE),
                "period {period}"
            );
        }
    });
}

#[test]
fn a_burst_pays_only_the_period_it_was_published_in() {
    ExtBuilder::default().build_and_execute(|| {
        ClaimGraceBlocks::set(5 * PERIOD);
        let id = {
            let id = buy(BUYER, STREAM_OFFER, 3);
            deliver(id, 0);
            id
        };
        // Nothing in periods 0 and 1; a burst of 300 segments in period 2 (block 25); a
        // colluding operator holds every receipt back and claims once, acknowledging all.
        run_stream(
            id,
            3 * PERIOD + 2,
            300,
            |b| b == 25,
            |b| b == 3 * PERIOD + 2,
        );
        run_to_block(1 + 3 * PERIOD + 5 * PERIOD + 1);
        let settled = period_settlements(id);
        assert_eq!(settled.len(), 3);
        // Periods 0 and 1 published nothing: no seller pay. The operator's accrual (3 for
        // 30 kB at 100 per MB) is paid at the next settlement, within the storage share.
        assert_eq!(settled[0], (0, 3, 0, 0, PRICE - 3));
        assert_eq!(settled[1], (1, 0, 0, 0, PRICE));
        let (_, operators, seller, fee, refunded) = settled[2];
        assert_eq!((refunded, operators + seller + fee), (0, PRICE));
        assert_eq!(purchase_of(id).ledger.refunded, 2 * PRICE - 3);
    });
}

#[test]
fn late_receipts_are_not_booked_on_a_later_period() {
    ExtBuilder::default().build_and_execute(|| {
        let id = {
            let id = buy(BUYER, STREAM_OFFER, 2);
            deliver(id, 0);
            id
        };
        // Steady publishing; the operator claims nothing until period 0 is settled (block
        // 11 + GRACE), then acknowledges everything.
        let settle_0 = 1 + PERIOD + GRACE;
        run_stream(
            id,
            1 + 2 * PERIOD + GRACE + 1,
            10,
            |_| true,
            |b| b > settle_0,
        );
        let settled = period_settlements(id);
        assert_eq!(settled.len(), 2);
        // Period 0 had no receipt by its settlement: refunded.
        assert_eq!(settled[0], (0, 0, 0, 0, PRICE));
        // Period 1 is paid for its own data only, in full.
        let (_, operators, seller, fee, refunded) = settled[1];
        assert_eq!((refunded, operators + seller + fee), (0, PRICE));
    });
}

#[test]
fn a_period_pays_the_acknowledged_share_of_what_was_published_in_it() {
    ExtBuilder::default().build_and_execute(|| {
        let id = buy(BUYER, STREAM_OFFER, 1);
        deliver(id, 0);
        assert_eq!(purchase_of(id).progress.start_head, Some(0));
        publish(STREAM, 100);
        // 40 of the 100 segments acknowledged, 1 MB served.
        assert_ok!(claim(id, OP1, 39, 1_000_000, 1));
        run_to_block(1 + PERIOD + GRACE);
        // OP1: 100 per MB. D = 400, O = 100, G = 300, fee 30.
        assert_eq!(period_settlements(id), vec![(0, 100, 270, 30, 600)]);
    });
}

#[test]
fn receipts_beyond_the_attested_head_are_refused_and_change_nothing() {
    ExtBuilder::default().build_and_execute(|| {
        let id = active_stream(1);
        assert_noop!(claim(id, OP1, u64::MAX, 1_000, 1), E::BeyondStreamHead);
        assert_noop!(claim(id, OP1, PUBLISHED, 1_000, 1), E::BeyondStreamHead);
        assert_ok!(claim(id, OP1, PUBLISHED - 1, 1_000, 1));
        assert_eq!(
            purchase_of(id).progress.delivered_up_to,
            Some(PUBLISHED - 1)
        );
        // A forged maximum after a good receipt changes nothing either.
        assert_noop!(claim(id, OP1, u64::MAX, 2_000, 2), E::BeyondStreamHead);
        // Batch: the window is covered by the head, anything above it is refused.
        let batch = active_batch();
        assert_noop!(claim(batch, OP1, BATCH_HEAD, 1_000, 1), E::BeyondStreamHead);
        assert_ok!(claim(batch, OP1, 199, 1_000, 1));
    });
}

#[test]
fn operators_are_paid_the_price_agreed_at_purchase() {
    ExtBuilder::default().build_and_execute(|| {
        let id = active_stream(1);
        publish(STREAM, 10);
        // OP1 raises its price a thousandfold after the purchase.
        with_state(|s| s.operators.insert(account(OP1), OP1_PRICE * 1_000));
        assert_ok!(claim(id, OP1, 9, 1_000_000, 1));
        assert_eq!(purchase_of(id).operators.accrued, OP1_PRICE);
        // A replacement assigned later is paid its own price, at most the highest agreed
        // (OP_PRICE).
        with_state(|s| {
            s.operators.insert(account(OP_UNASSIGNED), OP_PRICE * 50);
            s.assigned
                .insert(STREAM, vec![account(OP1), account(OP_UNASSIGNED)]);
        });
        assert_ok!(claim(id, OP_UNASSIGNED, 9, 1_000_000, 1));
        assert_eq!(
            OperatorClaims::<Test>::get(id, account(OP_UNASSIGNED)).map(|c| c.accrued),
            Some(OP_PRICE)
        );
        // A cheaper replacement keeps its own, lower price.
        let cheap = purchase_of(id).agreed_price(&account(STRANGER), 7);
        assert_eq!(cheap, 7);
    });
}

#[test]
fn receipts_signed_for_another_chain_are_refused() {
    ExtBuilder::default().build_and_execute(|| {
        let id = active_stream(1);
        publish(STREAM, 10);
        let r = receipt(id, OP1, 9, 1_000, 1);
        let elsewhere =
            MultiSignature::Sr25519(r.sign_sr25519(&pair(BUYER), &H256::repeat_byte(1)));
        assert_noop!(
            Escrow::claim(signed(OP1), r.clone(), elsewhere),
            E::InvalidSignature
        );
        assert_ok!(Escrow::claim(signed(OP1), r.clone(), sign(BUYER, &r)));
    });
}

#[test]
fn a_period_too_short_for_the_grace_cannot_be_bought() {
    ExtBuilder::default().build_and_execute(|| {
        ClaimGraceBlocks::set(PERIOD * (MAX_PENDING_BOUNDARIES as u64 - 2) + 1);
        assert_noop!(
            Escrow::purchase(signed(BUYER), STREAM_OFFER, 1, Balance::MAX),
            E::PeriodTooShort
        );
        ClaimGraceBlocks::set(PERIOD * (MAX_PENDING_BOUNDARIES as u64 - 2));
        buy(BUYER, STREAM_OFFER, 1);
    });
}

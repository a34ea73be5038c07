//! Tests of the trust pallet.

use crate::{mock::*, *};
use fastdata_primitives::{PurchaseId, TrustProvider};
use frame_support::{
    assert_noop, assert_ok,
    traits::fungible::{Inspect, InspectHold},
};
use sp_core::H256;
use sp_runtime::{DispatchError, Perbill, TokenError};

const ALICE: AccountId = 1;
const BOB: AccountId = 2;
const SELLER: AccountId = 3;
const FRESH: AccountId = 4;
const PAUPER: AccountId = 99;
const HALF: Score = SCORE_ONE / 2;

fn held(who: AccountId) -> Balance {
    Balances::balance_on_hold(&HoldReason::RatingDeposit.into(), &who)
}

fn last_event() -> RuntimeEvent {
    System::events().pop().expect("an event was emitted").event
}

fn rate(rater: AccountId, purchase: PurchaseId, score: u8) {
    assert_ok!(Trust::rate(
        RuntimeOrigin::signed(rater),
        purchase,
        score,
        None
    ));
}

fn set_block(n: BlockNumber) {
    System::set_block_number(n);
}

/// ALICE and BOB verified by KYC (60 %), SELLER by KYC and the chamber (30 %).
fn verified_cast() {
    verify_with(ALICE, KYC, b"KYC");
    verify_with(BOB, KYC, b"KYC");
    verify_with(SELLER, KYC, b"KYC");
    verify_with(SELLER, CHAMBER, b"CoC");
}

// ---------------------------------------------------------------------------------------------
// The formulas, pinned
// ---------------------------------------------------------------------------------------------

/// Worked example with the mock's parameters: `K = 1.0`, `C0 = 0.5`, `γ = 20 %`,
/// `V = 1000`, epochs of 10 blocks, a window of 3 epochs.
#[test]
fn worked_example_pins_eq_1_and_eq_2() {
    ExtBuilder::default().build_and_execute(|| {
        verified_cast();
        // Verified accounts without ratings sit at the prior: Cr = C0 = 0.5.
        assert_eq!(Trust::credibility(&ALICE), HALF);
        assert_eq!(Trust::credibility(&SELLER), HALF);
        // TS(SELLER) = min(1, 0.6 + 0.3) · 0.5 = 0.45; TS(BOB) = 0.6 · 0.5 = 0.3.
        assert_eq!(Trust::trust_score(&SELLER), 450_000);
        assert_eq!(Trust::trust_score(&BOB), 300_000);
        // Unverified: no prior, no credentials.
        assert_eq!(
            (Trust::credibility(&FRESH), Trust::trust_score(&FRESH)),
            (0, 0)
        );

        // Step 1. ALICE (c = 0.5) bought from BOB for 1000 (τ = 1000/2000 = ½), rates 80.
        //   A    = (1·0.5 + 0.5·0.8)  / (1 + 0.5)  = 0.9 / 1.5   = 0.6
        //   A_τ  = (1·0.5 + 0.25·0.8) / (1 + 0.25) = 0.7 / 1.25  = 0.56
        //   Cr   = 0.8·0.6 + 0.2·0.56 = 0.48 + 0.112 = 0.592
        //   TS   = 0.6 · 0.592 = 0.3552
        MockTrades::settle(1, ALICE, BOB, 1_000, 1);
        rate(ALICE, 1, 80);
        assert_eq!(
            last_event(),
            Event::Rated {
                purchase: 1,
                rater: ALICE,
                ratee: BOB,
                score: 80,
                comment: None,
                rater_credibility: 500_000,
                value_weight: Perbill::one(),
                context: Perbill::from_percent(50),
                credibility: 592_000,
                deposit: RATING_DEPOSIT,
            }
            .into()
        );
        assert_eq!(Trust::credibility(&BOB), 592_000);
        assert_eq!(Trust::trust_score(&BOB), 355_200);

        // Step 2. BOB (c = 0.592) bought from SELLER for 3000 (τ = ¾) and rates 100;
        // ALICE (c = 0.5) bought from SELLER for 1000 (τ = ½) and rates 40.
        //   Σc = 1.092, Σc·S = 0.592 + 0.2 = 0.792
        //   Σcτ = 0.444 + 0.25 = 0.694, Σcτ·S = 0.444 + 0.1 = 0.544
        //   A   = (0.5 + 0.792) / 2.092 = 0.617590…  → 617_590
        //   A_τ = (0.5 + 0.544) / 1.694 = 0.616292…  → 616_292
        //   Cr  = ⌊0.8·617_590⌋ + ⌊0.2·616_292⌋ = 494_072 + 123_258 = 617_330
        //   TS  = ⌊0.9 · 617_330⌋ = 555_597
        MockTrades::settle(2, BOB, SELLER, 3_000, 2);
        MockTrades::settle(3, ALICE, SELLER, 1_000, 2);
        set_block(3);
        assert_ok!(Trust::rate(
            RuntimeOrigin::signed(BOB),
            2,
            100,
            Some(H256::repeat_byte(9))
        ));
        match last_event() {
            RuntimeEvent::Trust(Event::Rated {
                rater_credibility,
                context,
                comment,
                ..
            }) => {
                assert_eq!(rater_credibility, 592_000);
                assert_eq!(context, Perbill::from_percent(75));
                assert_eq!(comment, Some(H256::repeat_byte(9)));
            }
            other => panic!("unexpected event {other:?}"),
        }
        rate(ALICE, 3, 40);
        assert_eq!(Trust::credibility(&SELLER), 617_330);
        assert_eq!(Trust::trust_score(&SELLER), 555_597);

        // A fresh, unverified account (c = 0) bought from SELLER and rates 0: nothing moves.
        MockTrades::settle(4, FRESH, SELLER, 1_000_000, 3);
        rate(FRESH, 4, 0);
        assert_eq!(Trust::credibility(&SELLER), 617_330);
        assert_eq!(Trust::trust_score(&SELLER), 555_597);

        let info = Trust::reputation(&SELLER);
        assert_eq!(
            info,
            fastdata_primitives::api_identity::ReputationInfo {
                credibility: 617_330,
                trust_score: 555_597,
                issuer_weight: Perbill::from_percent(90),
                verified: true,
                ratings_in_window: 3,
            }
        );

        // Step 3. All these ratings are in epoch 0; at block 30 (epoch 3) they leave the
        // window and the scores return to the prior.
        set_block(29);
        assert_eq!(Trust::credibility(&SELLER), 617_330);
        set_block(30);
        assert_eq!(Trust::credibility(&SELLER), HALF);
        assert_eq!(Trust::credibility(&BOB), HALF);
        assert_eq!(Trust::trust_score(&SELLER), 450_000);
        assert_eq!(Trust::reputation(&SELLER).ratings_in_window, 0);
    });
}

#[test]
fn context_factor_is_value_over_value_plus_reference() {
    ExtBuilder::default().build_and_execute(|| {
        assert_eq!(Trust::context_factor(0), Perbill::zero());
        assert_eq!(Trust::context_factor(1_000), Perbill::from_percent(50));
        assert_eq!(Trust::context_factor(3_000), Perbill::from_percent(75));
        assert_eq!(Trust::context_factor(9_000), Perbill::from_percent(90));
        assert_eq!(Trust::context_factor(Balance::MAX), Perbill::one());
    });
}

#[test]
fn large_trades_count_more_than_dust() {
    ExtBuilder::default().build_and_execute(|| {
        verify_with(ALICE, KYC, b"KYC");
        verify_with(BOB, KYC, b"KYC");
        verify_with(SELLER, KYC, b"KYC");
        // Same rater credibility and rating, different trade values.
        MockTrades::settle(1, ALICE, BOB, 1, 1);
        MockTrades::settle(2, ALICE, SELLER, 1_000_000, 1);
        rate(ALICE, 1, 100);
        rate(ALICE, 2, 100);
        let dust = Trust::credibility(&BOB);
        let large = Trust::credibility(&SELLER);
        assert!(large > dust, "{large} should exceed {dust}");
        // dust:  φ = 1/1000, ⌊φ·c⌋ = 500, A = (5e11 + 1e4·50_000)/1_000_500 = 500_249,
        //        ⌊0.8·A⌋ = 400_199; τ = 1/1001, ⌊τ·c⌋ = 499,
        //        A_τ = (5e11 + 1e4·49_900)/1_000_499 = 500_249, ⌊0.2·A_τ⌋ = 100_049
        // large: φ = 1, A = (0.5 + 0.5)/1.5 → 666_666, ⌊0.8·A⌋ = 533_332;
        //        τ = 1e6/1_001_000, ⌊τ·c⌋ = 499_500, A_τ = (5e11 + 4.995e11)/1_499_500 = 666_555
        assert_eq!(dust, 400_199 + 100_049);
        assert_eq!(large, 533_332 + 133_311);
    });
}

// ---------------------------------------------------------------------------------------------
// Rating
// ---------------------------------------------------------------------------------------------

#[test]
fn both_sides_rate_once_and_pay_a_deposit() {
    ExtBuilder::default().build_and_execute(|| {
        MockTrades::settle(1, ALICE, BOB, 500, 1);
        rate(ALICE, 1, 70);
        rate(BOB, 1, 90);
        assert_eq!(held(ALICE), RATING_DEPOSIT);
        assert_eq!(held(BOB), RATING_DEPOSIT);
        assert_eq!(Balances::balance(&ALICE), INITIAL_BALANCE - RATING_DEPOSIT);

        let r = Ratings::<Test>::get(1, ALICE).expect("stored");
        assert_eq!(
            (r.ratee, r.score, r.comment, r.rated_at, r.epoch),
            (BOB, 70, None, 1, 0)
        );
        assert_eq!(
            (r.rater_credibility, r.settled_at, r.deposit),
            (0, 1, RATING_DEPOSIT)
        );
        assert_eq!(r.context, Perbill::from_rational(500u32, 1_500u32));
        assert_eq!(Ratings::<Test>::get(1, BOB).expect("stored").ratee, ALICE);
        assert_eq!(RatingWindows::<Test>::get(BOB).len(), 1);
        assert_eq!(RatingWindows::<Test>::get(BOB)[0].ratings, 1);

        assert_noop!(
            Trust::rate(RuntimeOrigin::signed(ALICE), 1, 10, None),
            Error::<Test>::AlreadyRated
        );
        assert_noop!(
            Trust::rate(RuntimeOrigin::signed(BOB), 1, 10, None),
            Error::<Test>::AlreadyRated
        );
    });
}

#[test]
fn rate_errors() {
    ExtBuilder::default().build_and_execute(|| {
        MockTrades::settle(1, ALICE, BOB, 500, 1);
        MockTrades::settle(2, ALICE, ALICE, 500, 1);
        MockTrades::settle(3, PAUPER, BOB, 500, 1);
        let signed = RuntimeOrigin::signed;
        assert_noop!(
            Trust::rate(signed(ALICE), 1, 101, None),
            Error::<Test>::ScoreOutOfRange
        );
        assert_noop!(
            Trust::rate(signed(ALICE), 9, 50, None),
            Error::<Test>::TradeNotSettled
        );
        assert_noop!(
            Trust::rate(signed(SELLER), 1, 50, None),
            Error::<Test>::NotAParty
        );
        assert_noop!(
            Trust::rate(signed(ALICE), 2, 50, None),
            Error::<Test>::CannotRateSelf
        );
        assert_noop!(
            Trust::rate(signed(PAUPER), 3, 50, None),
            TokenError::FundsUnavailable
        );
        assert_noop!(
            Trust::rate(RuntimeOrigin::root(), 1, 50, None),
            DispatchError::BadOrigin
        );

        set_block(1 + RATING_PERIOD);
        rate(ALICE, 1, 50);
        set_block(2 + RATING_PERIOD);
        assert_noop!(
            Trust::rate(signed(BOB), 1, 50, None),
            Error::<Test>::RatingPeriodOver
        );
        assert_noop!(
            Trust::rate(signed(ALICE), 1, 50, None),
            Error::<Test>::AlreadyRated
        );
    });
}

#[test]
fn unsettled_trades_cannot_be_rated_and_change_nothing() {
    ExtBuilder::default().build_and_execute(|| {
        assert_noop!(
            Trust::rate(RuntimeOrigin::signed(ALICE), 42, 100, None),
            Error::<Test>::TradeNotSettled
        );
        assert_eq!(held(ALICE), 0);
        assert!(!RatingWindows::<Test>::contains_key(BOB));
    });
}

// ---------------------------------------------------------------------------------------------
// Sybil resistance, windows and credentials
// ---------------------------------------------------------------------------------------------

#[test]
fn a_ring_of_fresh_accounts_cannot_pump_a_score() {
    ExtBuilder::default().build_and_execute(|| {
        verify_with(SELLER, KYC, b"KYC");
        let ring: Vec<AccountId> = (11..=15).collect();
        let mut purchase = 100;
        // Every ring member trades with every other, both ways, for large values, and all rate
        // 100; each also buys from SELLER and rates it 0.
        for &a in &ring {
            for &b in &ring {
                if a != b {
                    MockTrades::settle(purchase, a, b, 1_000_000, 1);
                    rate(a, purchase, 100);
                    rate(b, purchase, 100);
                    purchase += 1;
                }
            }
            MockTrades::settle(purchase, a, SELLER, 1_000_000, 1);
            rate(a, purchase, 0);
            purchase += 1;
        }
        for &a in &ring {
            assert_eq!(Trust::credibility(&a), 0);
            assert_eq!(Trust::trust_score(&a), 0);
            assert_eq!(Trust::reputation(&a).ratings_in_window, 8);
        }
        // The verified seller's score did not move either.
        assert_eq!(Trust::credibility(&SELLER), HALF);
        assert_eq!(Trust::trust_score(&SELLER), 300_000);

        // A ring member that later gets a credential starts from the prior: the ring's
        // ratings still weigh nothing.
        verify_with(11, CHAMBER, b"CoC");
        assert_eq!(Trust::credibility(&11), HALF);
        assert_eq!(Trust::trust_score(&11), 150_000);
    });
}

/// The laundering attack: a verified seller seeds fresh accounts, each buys from it, the
/// seller rates each 100 (lending it credibility), then each rates the seller 100. Run with
/// `value` per trade; returns the seller's trust score before and after, and what the
/// trades paid in total.
fn seeded_ring_attack(sybils: u32, value: Balance) -> (Score, Score, Balance) {
    use frame_support::traits::fungible::Mutate;
    verify_with(SELLER, KYC, b"KYC");
    let before = Trust::trust_score(&SELLER);
    for i in 0..sybils {
        let sybil: AccountId = 200 + u64::from(i);
        let purchase = 1_000 + PurchaseId::from(i);
        <Balances as Mutate<_>>::set_balance(&sybil, INITIAL_BALANCE);
        MockTrades::settle(purchase, sybil, SELLER, value, 1);
        if value == 0 {
            assert_noop!(
                Trust::rate(RuntimeOrigin::signed(SELLER), purchase, 100, None),
                Error::<Test>::NothingPaid
            );
            assert_noop!(
                Trust::rate(RuntimeOrigin::signed(sybil), purchase, 100, None),
                Error::<Test>::NothingPaid
            );
        } else {
            rate(SELLER, purchase, 100);
            rate(sybil, purchase, 100);
        }
    }
    let paid = value.saturating_mul(Balance::from(sybils));
    (before, Trust::trust_score(&SELLER), paid)
}

#[test]
fn seeded_accounts_trading_dust_cannot_buy_a_seller_trust() {
    // 20 seeded accounts, each trade paying 1 (a thousandth of the reference value): the
    // seller spends transaction fees and refundable deposits, nothing more.
    ExtBuilder::default().build_and_execute(|| {
        let (before, after, paid) = seeded_ring_attack(20, 1);
        assert_eq!(before, 300_000, "0.6 · 0.5");
        assert_eq!(paid, 20);
        assert!(after >= before);
        assert!(
            after - before < SCORE_ONE / 100,
            "a dust ring gained {} (more than 0.01)",
            after - before
        );
    });
    // The same ring trading nothing cannot rate at all, and nothing is stored or held.
    ExtBuilder::default().build_and_execute(|| {
        let (before, after, _) = seeded_ring_attack(20, 0);
        assert_eq!(after, before);
        assert_eq!(Ratings::<Test>::iter().count(), 0);
        assert_eq!(held(SELLER), 0);
        assert!(!RatingWindows::<Test>::contains_key(SELLER));
    });
    // Control: trades of the reference value each do move the score, by much more. Trust
    // follows money paid, not accounts.
    ExtBuilder::default().build_and_execute(|| {
        let (before, after, paid) = seeded_ring_attack(20, REFERENCE_VALUE);
        assert_eq!(paid, 20 * REFERENCE_VALUE);
        assert!(
            after - before > SCORE_ONE / 10,
            "gained only {}",
            after - before
        );
    });
}

#[test]
fn two_verified_accounts_trading_at_price_zero_gain_nothing() {
    ExtBuilder::default().build_and_execute(|| {
        verify_with(ALICE, KYC, b"KYC");
        verify_with(BOB, KYC, b"KYC");
        let before = (Trust::reputation(&ALICE), Trust::reputation(&BOB));
        for purchase in 1..=10 {
            MockTrades::settle(purchase, ALICE, BOB, 0, 1);
            assert_noop!(
                Trust::rate(RuntimeOrigin::signed(ALICE), purchase, 100, None),
                Error::<Test>::NothingPaid
            );
            assert_noop!(
                Trust::rate(RuntimeOrigin::signed(BOB), purchase, 100, None),
                Error::<Test>::NothingPaid
            );
        }
        assert_eq!((Trust::reputation(&ALICE), Trust::reputation(&BOB)), before);
        assert_eq!((held(ALICE), held(BOB)), (0, 0));
    });
}

#[test]
fn ratings_from_credible_raters_lift_an_unverified_account() {
    ExtBuilder::default().build_and_execute(|| {
        verify_with(ALICE, KYC, b"KYC");
        MockTrades::settle(1, ALICE, FRESH, 1_000, 1);
        rate(ALICE, 1, 100);
        // A = (0 + 0.5)/1.5 = 333_333; A_τ = (0 + 0.25)/1.25 = 200_000;
        // Cr = 266_666 + 40_000.
        assert_eq!(Trust::credibility(&FRESH), 306_666);
        // Still no credential, so no trust score…
        assert_eq!(Trust::trust_score(&FRESH), 0);
        // …but its own ratings now carry weight.
        MockTrades::settle(2, FRESH, BOB, 1_000, 1);
        rate(FRESH, 2, 100);
        assert_eq!(
            Ratings::<Test>::get(2, FRESH)
                .expect("stored")
                .rater_credibility,
            306_666
        );
        assert!(Trust::credibility(&BOB) > 0);
    });
}

#[test]
fn scores_stay_bounded() {
    ExtBuilder::default().build_and_execute(|| {
        verify_with(SELLER, KYC, b"KYC");
        verify_with(BOB, KYC, b"KYC");
        for i in 0..10u64 {
            let rater = 5 + i;
            verify_with(rater, KYC, b"KYC");
            MockTrades::settle(i, rater, SELLER, u128::MAX, 1);
            rate(rater, i, 100);
            MockTrades::settle(100 + i, rater, BOB, u128::MAX, 1);
            rate(rater, 100 + i, 0);
        }
        let high = Trust::credibility(&SELLER);
        assert!(high > 900_000 && high <= SCORE_ONE, "{high}");
        assert!(Trust::trust_score(&SELLER) <= SCORE_ONE);
        let low = Trust::credibility(&BOB);
        assert!(low < 100_000, "{low}");
    });
}

#[test]
fn old_ratings_leave_the_window() {
    ExtBuilder::default().build_and_execute(|| {
        verify_with(ALICE, KYC, b"KYC");
        verify_with(SELLER, KYC, b"KYC");
        // Epoch 0: a bad rating.
        MockTrades::settle(1, ALICE, SELLER, 1_000, 1);
        rate(ALICE, 1, 0);
        let after_bad = Trust::credibility(&SELLER);
        assert!(after_bad < HALF);
        // Epoch 2: a good one; both count.
        set_block(25);
        MockTrades::settle(2, ALICE, SELLER, 1_000, 25);
        rate(ALICE, 2, 100);
        let both = Trust::credibility(&SELLER);
        assert_eq!(Trust::reputation(&SELLER).ratings_in_window, 2);
        // Epoch 3: the bad rating has left the window, only the good one counts.
        set_block(30);
        let only_good = Trust::credibility(&SELLER);
        assert!(
            only_good > both && only_good > HALF,
            "{only_good} vs {both}"
        );
        assert_eq!(Trust::reputation(&SELLER).ratings_in_window, 1);
        // A rating in epoch 3 prunes the stale bucket from storage.
        MockTrades::settle(3, BOB, SELLER, 1_000, 30);
        rate(BOB, 3, 50);
        let epochs: Vec<u32> = RatingWindows::<Test>::get(SELLER)
            .iter()
            .map(|b| b.epoch)
            .collect();
        assert_eq!(epochs, vec![2, 3]);
        // Epoch 6: everything gone, back to the prior.
        set_block(60);
        assert_eq!(Trust::credibility(&SELLER), HALF);
    });
}

#[test]
fn revoking_a_credential_lowers_the_trust_score_at_once() {
    ExtBuilder::default().build_and_execute(|| {
        verified_cast();
        MockTrades::settle(1, ALICE, SELLER, 1_000, 1);
        rate(ALICE, 1, 100);
        let cr = Trust::credibility(&SELLER);
        assert_eq!(
            Trust::trust_score(&SELLER),
            Perbill::from_percent(90).mul_floor(cr)
        );

        let coc = pallet_did::credential_id(&CHAMBER, &SELLER, b"CoC");
        assert_ok!(Did::revoke_credential(
            RuntimeOrigin::signed(CHAMBER),
            SELLER,
            coc
        ));
        assert_eq!(Trust::credibility(&SELLER), cr);
        assert_eq!(
            Trust::trust_score(&SELLER),
            Perbill::from_percent(60).mul_floor(cr)
        );
        assert_eq!(
            <Trust as TrustProvider<_>>::trust_score(&SELLER),
            Trust::trust_score(&SELLER)
        );

        let kyc = pallet_did::credential_id(&KYC, &SELLER, b"KYC");
        assert_ok!(Did::revoke_credential(
            RuntimeOrigin::signed(KYC),
            SELLER,
            kyc
        ));
        assert_eq!(Trust::trust_score(&SELLER), 0);
        // No longer verified: the prior is gone, only the rating remains.
        // A = 0.5 / 1.5 = 333_333, A_τ = 0.25 / 1.25 = 200_000.
        assert_eq!(Trust::credibility(&SELLER), 266_666 + 40_000);
    });
}

#[test]
fn issuer_weight_and_expiry_feed_the_trust_score() {
    ExtBuilder::default().build_and_execute(|| {
        verify_with(SELLER, KYC, b"KYC");
        assert_eq!(Trust::trust_score(&SELLER), 300_000);
        assert_ok!(Did::set_issuer_weight(
            RuntimeOrigin::root(),
            KYC,
            Perbill::from_percent(100)
        ));
        assert_eq!(Trust::trust_score(&SELLER), HALF);
        // The mock's credentials expire at block 1_000_000.
        set_block(1_000_000);
        assert_eq!(Trust::trust_score(&SELLER), 0);
        assert_eq!(Trust::credibility(&SELLER), 0);
    });
}

// ---------------------------------------------------------------------------------------------
// Reaping
// ---------------------------------------------------------------------------------------------

#[test]
fn expired_ratings_are_reaped_and_deposits_returned() {
    ExtBuilder::default().build_and_execute(|| {
        verify_with(ALICE, KYC, b"KYC");
        MockTrades::settle(1, ALICE, SELLER, 1_000, 1);
        rate(ALICE, 1, 100);
        // Still in the window (epoch 0 counts until block 29).
        set_block(29);
        assert_noop!(
            Trust::reap_rating(RuntimeOrigin::signed(BOB), 1, ALICE),
            Error::<Test>::RatingStillActive
        );
        set_block(30);
        assert_ok!(Trust::reap_rating(RuntimeOrigin::signed(BOB), 1, ALICE));
        assert!(!Ratings::<Test>::contains_key(1, ALICE));
        assert!(!RatingWindows::<Test>::contains_key(SELLER));
        assert_eq!(held(ALICE), 0);
        // ALICE paid only her DID deposit (10); the rating deposit is back.
        assert_eq!(Balances::balance(&ALICE), INITIAL_BALANCE - 10);
        assert_eq!(
            last_event(),
            Event::RatingReaped {
                purchase: 1,
                rater: ALICE,
                ratee: SELLER,
                deposit: RATING_DEPOSIT
            }
            .into()
        );
        // The trade cannot be rated again.
        assert_noop!(
            Trust::rate(RuntimeOrigin::signed(ALICE), 1, 100, None),
            Error::<Test>::RatingPeriodOver
        );
        assert_noop!(
            Trust::reap_rating(RuntimeOrigin::signed(BOB), 1, ALICE),
            Error::<Test>::RatingNotFound
        );
        assert_noop!(
            Trust::reap_rating(RuntimeOrigin::root(), 1, ALICE),
            DispatchError::BadOrigin
        );
    });
}

#[test]
fn a_rating_is_kept_while_its_trade_can_still_be_rated() {
    ExtBuilder::default().build_and_execute(|| {
        // Settled at block 25, rated at once in epoch 2; the window moves past epoch 2 at
        // block 50, and the rating period ends after block 45: reapable from block 50.
        MockTrades::settle(1, ALICE, SELLER, 1_000, 25);
        set_block(25);
        rate(ALICE, 1, 100);
        set_block(49);
        assert_noop!(
            Trust::reap_rating(RuntimeOrigin::signed(BOB), 1, ALICE),
            Error::<Test>::RatingStillActive
        );
        set_block(50);
        assert_ok!(Trust::reap_rating(RuntimeOrigin::signed(BOB), 1, ALICE));
    });
}

#[test]
fn reaping_keeps_live_buckets() {
    ExtBuilder::default().build_and_execute(|| {
        MockTrades::settle(1, ALICE, SELLER, 1_000, 1);
        rate(ALICE, 1, 100);
        set_block(30);
        MockTrades::settle(2, BOB, SELLER, 1_000, 30);
        rate(BOB, 2, 100);
        assert_ok!(Trust::reap_rating(RuntimeOrigin::signed(BOB), 1, ALICE));
        let epochs: Vec<u32> = RatingWindows::<Test>::get(SELLER)
            .iter()
            .map(|b| b.epoch)
            .collect();
        assert_eq!(epochs, vec![3]);
    });
}

// ---------------------------------------------------------------------------------------------
// Queries and invariants
// ---------------------------------------------------------------------------------------------

#[test]
fn queries_agree() {
    ExtBuilder::default().build_and_execute(|| {
        verified_cast();
        MockTrades::settle(1, ALICE, SELLER, 1_000, 1);
        rate(ALICE, 1, 90);
        assert_eq!(
            Trust::trust_scores(vec![SELLER, FRESH, BOB]),
            vec![Trust::trust_score(&SELLER), 0, 300_000]
        );
        assert_eq!(Trust::trust_score_of(SELLER), Trust::trust_score(&SELLER));
        assert_eq!(Trust::credibility_of(SELLER), Trust::credibility(&SELLER));
        assert_eq!(Trust::reputation_of(SELLER), Trust::reputation(&SELLER));
        assert_eq!(Trust::trust_scores_of(vec![BOB]), vec![300_000]);
        let fresh = Trust::reputation(&FRESH);
        assert!(!fresh.verified);
        assert_eq!(fresh.issuer_weight, Perbill::zero());
    });
}

#[test]
fn try_state_detects_tampering() {
    ExtBuilder::default().build().execute_with(|| {
        MockTrades::settle(1, ALICE, SELLER, 1_000, 1);
        rate(ALICE, 1, 90);
        assert_ok!(Trust::do_try_state());
        RatingWindows::<Test>::mutate(SELLER, |b| {
            if let Some(bucket) = b.get_mut(0) {
                bucket.weighted_score += 1;
            }
        });
        assert!(Trust::do_try_state().is_err());
    });
}

#[test]
fn try_state_detects_a_deposit_mismatch() {
    ExtBuilder::default().build().execute_with(|| {
        MockTrades::settle(1, ALICE, SELLER, 1_000, 1);
        rate(ALICE, 1, 90);
        Ratings::<Test>::mutate(1, ALICE, |r| {
            if let Some(r) = r {
                r.deposit += 1;
            }
        });
        assert!(Trust::do_try_state().is_err());
    });
}

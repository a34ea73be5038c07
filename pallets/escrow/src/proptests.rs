//! Property tests: random sequences of purchases, key deliveries, claims, settlements,
//! disputes, refunds, reaping and idle blocks, with every invariant checked after every step;
//! random extreme amounts through whole purchases, checking that nothing overflows and
//! that payouts, fees and refunds add up to the price; and random publishing and
//! acknowledgement through stream purchases, checking each period against the per-period
//! rule computed independently; and the settlement rule's pure arithmetic on random amounts,
//! checking that no planck is created or lost.

use crate::{mock::*, *};
use fastdata_primitives::{escrow::DisputeReason, OperatorProvider, PurchaseId};
use frame_support::{traits::Hooks, weights::Weight, BoundedVec};
use proptest::prelude::*;
use sp_runtime::Perbill;

/// One step of a random scenario. Indices pick among the purchases made so far.
#[derive(Clone, Debug)]
enum Action {
    Purchase {
        buyer: usize,
        batch: bool,
        periods: u32,
        max_price: Option<u64>,
    },
    Deliver {
        purchase: usize,
        epoch: u32,
        garbage: bool,
    },
    Claim {
        purchase: usize,
        operator: usize,
        seq: u64,
        bytes: u64,
        nonce: u64,
        forged: bool,
    },
    Settle {
        purchase: usize,
    },
    Refund {
        purchase: usize,
    },
    Dispute {
        purchase: usize,
    },
    Resolve {
        purchase: usize,
        ratio: u32,
    },
    Reap {
        purchase: usize,
    },
    Advance {
        blocks: u64,
        idle: bool,
    },
    Publish {
        segments: u64,
    },
}

const BUYERS: [u8; 3] = [BUYER, BUYER2, STRANGER];
const OPERATORS: [u8; 5] = [OP1, OP2, OP3, OP4, OP_UNASSIGNED];

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        3 => (0..BUYERS.len(), any::<bool>(), 0u32..5, prop::option::weighted(0.2, 0u64..5_000))
            .prop_map(|(buyer, batch, periods, max_price)| Action::Purchase { buyer, batch, periods, max_price }),
        4 => (any::<usize>(), prop_oneof![3 => Just(0u32), 1 => 0u32..6], prop::bool::weighted(0.1))
            .prop_map(|(purchase, epoch, garbage)| Action::Deliver { purchase, epoch, garbage }),
        5 => (
            any::<usize>(),
            0..OPERATORS.len(),
            0u64..400,
            prop_oneof![0u64..20_000, 0u64..5_000_000],
            0u64..6,
            prop::bool::weighted(0.1),
        )
            .prop_map(|(purchase, operator, seq, bytes, nonce, forged)| Action::Claim {
                purchase, operator, seq, bytes, nonce, forged
            }),
        2 => any::<usize>().prop_map(|purchase| Action::Settle { purchase }),
        1 => any::<usize>().prop_map(|purchase| Action::Refund { purchase }),
        2 => any::<usize>().prop_map(|purchase| Action::Dispute { purchase }),
        2 => (any::<usize>(), prop_oneof![Just(0u32), Just(1_000_000_000u32), 0u32..=1_000_000_000])
            .prop_map(|(purchase, ratio)| Action::Resolve { purchase, ratio }),
        1 => any::<usize>().prop_map(|purchase| Action::Reap { purchase }),
        4 => (1u64..6, prop::bool::weighted(0.8)).prop_map(|(blocks, idle)| Action::Advance { blocks, idle }),
        3 => (0u64..200).prop_map(|segments| Action::Publish { segments }),
    ]
}

/// Sum of free and held balances of every account: only the pallets move money, nothing
/// may be created or destroyed.
fn total_of_all_accounts() -> u128 {
    frame_system::Account::<Test>::iter_values()
        .map(|info| u128::from(info.data.free) + u128::from(info.data.reserved))
        .sum()
}

fn pick(ids: &[PurchaseId], index: usize) -> PurchaseId {
    if ids.is_empty() {
        // An id that does not exist: exercises the unknown-purchase paths.
        1_000
    } else {
        ids[index % ids.len()]
    }
}

fn run(action: &Action, ids: &mut Vec<PurchaseId>) {
    let origin = |seed: u8| RuntimeOrigin::signed(account(seed));
    match action.clone() {
        Action::Purchase {
            buyer,
            batch,
            periods,
            max_price,
        } => {
            let offer = if batch { BATCH_OFFER } else { STREAM_OFFER };
            let id = NextPurchaseId::<Test>::get();
            let max = max_price.unwrap_or(u64::MAX);
            if Escrow::purchase(origin(BUYERS[buyer]), offer, periods, max).is_ok() {
                ids.push(id);
            }
        }
        Action::Deliver {
            purchase,
            epoch,
            garbage,
        } => {
            let id = pick(ids, purchase);
            let bytes = match Purchases::<Test>::get(id) {
                Some(p) if !garbage => fastdata_primitives::sealed::seal(
                    &p.deal.buyer_key,
                    id,
                    epoch,
                    &epoch_keys(epoch),
                )
                .unwrap_or_default(),
                _ => vec![7u8; 50],
            };
            let _ =
                Escrow::deliver_keys(origin(SELLER), id, epoch, BoundedVec::truncate_from(bytes));
        }
        Action::Claim {
            purchase,
            operator,
            seq,
            bytes,
            nonce,
            forged,
        } => {
            let id = pick(ids, purchase);
            let op = OPERATORS[operator];
            // Receipts are cumulative: build on the operator's last accepted one.
            let last = OperatorClaims::<Test>::get(id, account(op)).unwrap_or_default();
            let r = receipt(
                id,
                op,
                last.up_to_sequence.saturating_add(seq),
                last.bytes.saturating_add(bytes),
                last.nonce.saturating_add(nonce),
            );
            let signer = match Purchases::<Test>::get(id) {
                Some(p) if !forged => BUYERS
                    .iter()
                    .copied()
                    .find(|b| account(*b) == p.deal.buyer)
                    .unwrap_or(STRANGER),
                _ => OP1,
            };
            let _ = Escrow::claim(origin(op), r.clone(), sign(signer, &r));
        }
        Action::Settle { purchase } => {
            let _ = Escrow::settle(origin(STRANGER), pick(ids, purchase));
        }
        Action::Refund { purchase } => {
            let _ = Escrow::refund_missing_keys(origin(STRANGER), pick(ids, purchase));
        }
        Action::Dispute { purchase } => {
            let id = pick(ids, purchase);
            let buyer = Purchases::<Test>::get(id)
                .map(|p| p.deal.buyer)
                .unwrap_or_else(|| account(BUYER));
            let _ = Escrow::dispute(
                RuntimeOrigin::signed(buyer),
                id,
                DisputeReason::KeysMismatch,
                None,
            );
        }
        Action::Resolve { purchase, ratio } => {
            let _ = Escrow::resolve_dispute(
                RuntimeOrigin::root(),
                pick(ids, purchase),
                Perbill::from_parts(ratio),
            );
        }
        Action::Reap { purchase } => {
            let _ = Escrow::reap(origin(STRANGER), pick(ids, purchase));
        }
        Action::Publish { segments } => publish(STREAM, segments),
        Action::Advance { blocks, idle } => {
            for _ in 0..blocks {
                let next = System::block_number() + 1;
                System::set_block_number(next);
                if idle {
                    Escrow::on_idle(next, Weight::MAX);
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    /// Held funds = Σ balances of open purchases, every ledger adds up to its price, and no
    /// money is created or destroyed, after every step of any sequence of calls.
    #[test]
    fn random_sequences_keep_every_invariant(actions in prop::collection::vec(action(), 1..80)) {
        ExtBuilder::default().build().execute_with(|| {
            let issuance = Balances::total_issuance();
            let total = total_of_all_accounts();
            let mut ids = Vec::new();
            for (step, action) in actions.iter().enumerate() {
                run(action, &mut ids);
                if let Err(e) = Escrow::do_try_state() {
                    panic!("invariant broken after step {step} ({action:?}): {e:?}");
                }
                assert_eq!(Balances::total_issuance(), issuance, "issuance changed at step {step} ({action:?})");
                assert_eq!(total_of_all_accounts(), total, "money created or destroyed at step {step} ({action:?})");
            }
            // Let everything run out: every purchase ends settled, refunded or disputed, and
            // all but the disputed ones are reaped with their deposits returned.
            for _ in 0..200 {
                run(&Action::Advance { blocks: 1, idle: true }, &mut ids);
            }
            assert_eq!(Escrow::do_try_state(), Ok(()));
            for (id, p) in Purchases::<Test>::iter() {
                assert_eq!(
                    p.state,
                    fastdata_primitives::escrow::PurchaseState::Disputed,
                    "purchase {id} neither finished nor disputed"
                );
            }
        });
    }

    /// Extreme prices, operator prices and byte counts through whole purchases: nothing
    /// overflows, operators never get more than the storage share of each period, and
    /// payouts + fees + refunds = price.
    #[test]
    fn extreme_amounts_settle_exactly(
        price in prop_oneof![Just(0u64), 1u64..1_000, 0u64..=u64::MAX / 16],
        periods in 1u32..=4,
        op_prices in prop::collection::vec(prop_oneof![Just(0u64), Just(u64::MAX), any::<u64>()], 3),
        claims in prop::collection::vec((0usize..3, any::<u64>(), any::<u64>()), 0..6),
        batch in any::<bool>(),
    ) {
        ExtBuilder::default().balance(account(BUYER), u64::MAX / 4).build().execute_with(|| {
            let offer = if batch { BATCH_OFFER } else { STREAM_OFFER };
            edit_offer(offer, |o| o.price = price);
            with_state(|s| {
                for (i, op) in [OP1, OP2, OP3].into_iter().enumerate() {
                    s.operators.insert(account(op), op_prices[i]);
                }
            });
            let periods = if batch { 1 } else { periods };
            let id = NextPurchaseId::<Test>::get();
            Escrow::purchase(RuntimeOrigin::signed(account(BUYER)), offer, periods, u64::MAX).expect("buys");
            let p = Purchases::<Test>::get(id).expect("stored");
            let sealed = fastdata_primitives::sealed::seal(&p.deal.buyer_key, id, 0, &epoch_keys(0)).expect("seals");
            Escrow::deliver_keys(RuntimeOrigin::signed(account(SELLER)), id, 0, BoundedVec::truncate_from(sealed))
                .expect("delivers");
            let ops = [OP1, OP2, OP3];
            let mut nonce = [0u64; 3];
            let mut last = [(0u64, 0u64); 3];
            let mut settled = 0;
            for (i, (op, seq, bytes)) in claims.iter().enumerate() {
                nonce[*op] += 1;
                last[*op] = (last[*op].0.max(*seq), last[*op].1.max(*bytes));
                let r = receipt(id, ops[*op], last[*op].0, last[*op].1, nonce[*op]);
                let _ = Escrow::claim(RuntimeOrigin::signed(account(ops[*op])), r.clone(), sign(BUYER, &r));
                // Settle a period every other claim when one is due.
                if i % 2 == 1 && settled < periods {
                    let p = Purchases::<Test>::get(id).expect("stored");
                    let due = p.settlement_due(p.progress.settled_periods, GRACE);
                    System::set_block_number(due.max(System::block_number()));
                    let before = p.ledger;
                    let budget = p.next_period_budget();
                    Escrow::settle(RuntimeOrigin::signed(account(STRANGER)), id).expect("settles");
                    let after = Purchases::<Test>::get(id).expect("stored").ledger;
                    assert!(after.operators - before.operators <= StorageShare::get().mul_floor(budget));
                    assert_eq!(before.held - after.held, budget);
                    settled += 1;
                }
                assert_eq!(Escrow::do_try_state(), Ok(()));
            }
            while settled < periods {
                let p = Purchases::<Test>::get(id).expect("stored");
                System::set_block_number(p.settlement_due(p.progress.settled_periods, GRACE).max(System::block_number()));
                Escrow::settle(RuntimeOrigin::signed(account(STRANGER)), id).expect("settles");
                settled += 1;
                assert_eq!(Escrow::do_try_state(), Ok(()));
            }
            let p = Purchases::<Test>::get(id).expect("stored");
            assert_eq!(p.state, fastdata_primitives::escrow::PurchaseState::Settled);
            let l = p.ledger;
            assert_eq!(l.held, 0);
            assert_eq!(
                u128::from(l.operators) + u128::from(l.seller) + u128::from(l.fees) + u128::from(l.refunded),
                u128::from(price) * u128::from(periods)
            );
        });
    }

    /// Random publishing per block and random receipt lag, with claim grace periods up to
    /// the longest allowed: every settled period pays exactly by the rule, computed here from
    /// the heads published at its boundary blocks and the acknowledged sequence at its
    /// settlement: `D = ⌊B · (min(u + 1, h₁) − h₀) / (h₁ − h₀)⌋`, seller + fee `= D − O`
    /// (at least 0), and the buyer gets the rest of the budget back.
    #[test]
    fn stream_periods_pay_the_acknowledged_share_of_what_was_published(
        periods in 1u32..=4,
        grace in prop_oneof![Just(0u64), 1u64..=PERIOD, Just(PERIOD * 5), Just(PERIOD * 14)],
        published in prop::collection::vec(prop_oneof![2 => Just(0u64), 3 => 1u64..30, 1 => 100u64..500], 220),
        lags in prop::collection::vec(prop::option::weighted(0.7, prop_oneof![Just(0u64), 0u64..40]), 220),
    ) {
        ExtBuilder::default().build().execute_with(|| {
            ClaimGraceBlocks::set(grace);
            publish(STREAM, published[0]);
            let id = NextPurchaseId::<Test>::get();
            Escrow::purchase(RuntimeOrigin::signed(account(BUYER)), STREAM_OFFER, periods, u64::MAX).expect("buys");
            let p = Purchases::<Test>::get(id).expect("stored");
            let sealed = fastdata_primitives::sealed::seal(&p.deal.buyer_key, id, 0, &epoch_keys(0)).expect("seals");
            Escrow::deliver_keys(RuntimeOrigin::signed(account(SELLER)), id, 0, BoundedVec::truncate_from(sealed))
                .expect("delivers");
            let start = p.schedule.start;
            // The attested head after the publishing of each block.
            let mut head_at = std::collections::BTreeMap::new();
            head_at.insert(start, MockOperators::stream_head(&STREAM));
            let (mut nonce, mut acked) = (0u64, None::<u64>);
            let end = start + u64::from(periods) * PERIOD + grace + 2;
            let mut block = start;
            while block < end {
                block += 1;
                System::set_block_number(block);
                let i = usize::try_from(block).unwrap_or(0) % published.len();
                publish(STREAM, published[i]);
                let head = MockOperators::stream_head(&STREAM);
                head_at.insert(block, head);
                let open = Purchases::<Test>::get(id).is_some_and(|p| p.state.is_open());
                if let (true, Some(lag)) = (open, lags[i]) {
                    let up_to = head.saturating_sub(1 + lag);
                    if head > lag && acked.is_none_or(|a| up_to > a) {
                        nonce += 1;
                        let r = receipt(id, OP1, up_to, nonce * 100_000, nonce);
                        Escrow::claim(RuntimeOrigin::signed(account(OP1)), r.clone(), sign(BUYER, &r)).expect("claims");
                        acked = Some(up_to);
                    }
                }
                let before = Purchases::<Test>::get(id).expect("stored");
                Escrow::on_idle(block, Weight::MAX);
                assert_eq!(Escrow::do_try_state(), Ok(()));
                let after = Purchases::<Test>::get(id).expect("stored");
                if after.progress.settled_periods == before.progress.settled_periods {
                    continue;
                }
                let k = before.progress.settled_periods;
                let h0 = head_at[&(start + u64::from(k) * PERIOD)];
                let h1 = head_at[&(start + u64::from(k + 1) * PERIOD)];
                let budget = before.next_period_budget();
                let covered = acked.map_or(0, |u| (u + 1).min(h1)).saturating_sub(h0);
                let delivered = if h1 > h0 {
                    u64::try_from(u128::from(budget) * u128::from(covered) / u128::from(h1 - h0)).unwrap_or(u64::MAX)
                } else {
                    0
                };
                let l0 = before.ledger;
                let l1 = after.ledger;
                let operators = l1.operators - l0.operators;
                let gross = (l1.seller - l0.seller) + (l1.fees - l0.fees);
                assert_eq!(gross, delivered.saturating_sub(operators), "period {k}: h0 {h0} h1 {h1} acked {acked:?}");
                assert_eq!(l1.refunded - l0.refunded, budget - operators - gross, "period {k}");
            }
            let p = Purchases::<Test>::get(id).expect("stored");
            assert_eq!(p.state, fastdata_primitives::escrow::PurchaseState::Settled);
            assert_eq!(p.ledger.held, 0);
        });
    }

    /// The settlement rule as pure arithmetic ([`crate::split`]) on random amounts: each
    /// period's split adds up to its budget to the planck, the budgets add up to the price,
    /// the operators stay within the cap and their accruals, the seller's gross is
    /// `max(D − O, 0)` with the fee `⌊f · G⌋` of it; an upheld dispute's split adds up to what
    /// was held and refunds `⌊r · (H − O)⌋`.
    #[test]
    fn the_settlement_rule_neither_creates_nor_loses_a_planck(
        price in prop_oneof![Just(0u64), 1u64..1_000, any::<u64>()],
        periods in 1u32..=12,
        delivered in prop::collection::vec((any::<u64>(), prop_oneof![Just(0u64), 1u64..100, any::<u64>()]), 12),
        accrued in prop::collection::vec(prop_oneof![Just(0u64), 1u64..1_000, any::<u64>()], 0..6),
        storage_share in 0u32..=1_000_000_000,
        protocol_fee in 0u32..=1_000_000_000,
        refund_ratio in 0u32..=1_000_000_000,
    ) {
        use crate::split::{period_budget, split_period, split_upheld, Delivered};
        let (storage_share, protocol_fee, refund_ratio) = (
            Perbill::from_parts(storage_share),
            Perbill::from_parts(protocol_fee),
            Perbill::from_parts(refund_ratio),
        );
        let total = accrued.iter().fold(0u64, |sum, a| sum.saturating_add(*a));
        let mut held = price;
        for index in 0..periods {
            let budget = period_budget(price, periods, index, held);
            let (covered, out_of) = delivered[index as usize];
            let part = Delivered { covered: u128::from(covered % out_of.saturating_add(1)), out_of: u128::from(out_of) };
            let split = split_period(budget, part, &accrued, total, storage_share, protocol_fee);
            prop_assert_eq!(split.total(), Some(budget));
            let operators = split.operators_total();
            prop_assert!(operators <= storage_share.mul_floor(budget));
            prop_assert_eq!(split.operators.len(), accrued.len());
            for (share, a) in split.operators.iter().zip(&accrued) {
                prop_assert!(share <= a);
            }
            let gross = split.seller + split.fee;
            prop_assert_eq!(gross, part.value_of(budget).saturating_sub(operators));
            prop_assert_eq!(split.fee, protocol_fee.mul_floor(gross));
            held -= budget;
        }
        prop_assert_eq!(held, 0);

        let upheld = split_upheld(price, &accrued, total, storage_share, refund_ratio, protocol_fee);
        prop_assert_eq!(upheld.total(), Some(price));
        let operators = upheld.operators_total();
        prop_assert!(operators <= storage_share.mul_floor(price));
        prop_assert_eq!(upheld.refund, refund_ratio.mul_floor(price - operators));
    }
}

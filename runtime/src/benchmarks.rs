//! Runtime benchmarks: every benchmarked pallet, run through the runtime to produce weights
//! (`scripts/weights`), and [`Helper`], the setup the marketplace pallets' benchmarks need
//! from the other pallets of this runtime.

use alloc::{format, string::String, vec::Vec};
use fastdata_primitives::{
    api_market::{Licence, OfferTerms},
    escrow::{PurchaseLedger, PurchaseState, PurchaseTerms},
    EpochIndex, OfferId, PaymentMode, PurchaseId, SettledTrade, SCORE_ONE,
};
use frame_benchmarking::{BenchmarkBatch, BenchmarkConfig, BenchmarkError, BenchmarkList};
use frame_support::{
    traits::{fungible::Mutate, Get, StorageInfo, StorageInfoTrait, WhitelistedStorageKeys},
    BoundedVec,
};
use sp_core::{crypto::KeyTypeId, sr25519, H256};
use sp_runtime::{
    traits::{IdentifyAccount, Zero},
    DispatchResult, MultiSignature, MultiSigner, Perbill,
};

use crate::{
    AccountId, AllPalletsWithSystem, Arbiters, Balance, Balances, BlockNumber, Did, Escrow, Offers,
    Operators, ParachainSystem, Runtime, RuntimeOrigin, Signature, Sudo, System, Timestamp, Trust,
    Utility, MICROUNIT, UNIT,
};

type SystemBench = frame_system_benchmarking::Pallet<Runtime>;

frame_benchmarking::define_benchmarks!(
    [frame_system, SystemBench]
    [pallet_balances, Balances]
    [pallet_timestamp, Timestamp]
    [pallet_sudo, Sudo]
    [pallet_utility, Utility]
    [pallet_collective, Arbiters]
    [pallet_did, Did]
    [pallet_trust, Trust]
    [pallet_offers, Offers]
    [pallet_operators, Operators]
    [pallet_escrow, Escrow]
);

impl frame_system_benchmarking::Config for Runtime {
    fn setup_set_code_requirements(code: &Vec<u8>) -> Result<(), BenchmarkError> {
        ParachainSystem::initialize_for_set_code_benchmark(code.len() as u32);
        Ok(())
    }

    fn verify_set_code() {
        System::assert_last_event(
            cumulus_pallet_parachain_system::Event::<Runtime>::ValidationFunctionStored.into(),
        );
    }
}

/// The list of benchmarks and the storage info of every pallet.
pub fn metadata(extra: bool) -> (Vec<BenchmarkList>, Vec<StorageInfo>) {
    let mut list = Vec::<BenchmarkList>::new();
    list_benchmarks!(list, extra);
    (list, AllPalletsWithSystem::storage_info())
}

/// Runs the benchmarks selected by `config`.
pub fn dispatch(config: BenchmarkConfig) -> Result<Vec<BenchmarkBatch>, String> {
    let whitelist = AllPalletsWithSystem::whitelisted_storage_keys();
    let mut batches = Vec::<BenchmarkBatch>::new();
    let params = (&config, &whitelist);
    add_benchmarks!(params, batches);
    Ok(batches)
}

/// Key type of the sr25519 keys the benchmarks generate in the benchmark keystore.
const BENCH_KEY: KeyTypeId = KeyTypeId(*b"fdbn");

/// Balance given to every account the helper sets up: plenty for stakes and deposits.
const FUNDS: Balance = 1_000_000_000 * UNIT;

/// Price per MB of the operators registered by [`Helper`].
const OPERATOR_PRICE_PER_MB: Balance = 1_000 * MICROUNIT;

/// Stops the benchmark with the failed setup step (benchmark setup must not fail).
fn check(result: DispatchResult, what: &str) {
    assert!(result.is_ok(), "benchmark setup: {what}: {result:?}");
}

fn signed(who: &AccountId) -> RuntimeOrigin {
    RuntimeOrigin::signed(who.clone())
}

/// Registers `who` as an active operator with the minimum stake (funding it if needed).
fn register_operator(who: &AccountId) {
    if pallet_operators::Operators::<Runtime>::contains_key(who) {
        return;
    }
    if <Balances as frame_support::traits::fungible::Inspect<AccountId>>::balance(who) < FUNDS {
        Balances::set_balance(who, FUNDS);
    }
    let url = |scheme: &str| BoundedVec::truncate_from(format!("{scheme}://bench.invalid").into());
    check(
        Operators::register(
            signed(who),
            <Runtime as pallet_operators::Config>::MinStake::get(),
            url("mqtts"),
            url("https"),
            OPERATOR_PRICE_PER_MB,
        ),
        "register an operator",
    );
}

/// Benchmark setup of the marketplace pallets against this runtime's real pallets: DIDs and
/// credentials through `pallet-did`, operators through `pallet-operators`, offers and streams
/// through `pallet-offers`, balances through `pallet-balances`, and sr25519 keys generated in
/// the benchmark keystore.
pub struct Helper;

impl pallet_trust::BenchmarkHelper<AccountId, Balance, BlockNumber> for Helper {
    fn make_verified(who: &AccountId) {
        check(
            Did::benchmark_make_verified(who),
            "make an account verified",
        );
    }

    /// Stores a settled purchase `purchase` in the escrow pallet (what
    /// `SettledTrades::settled_trade` of `pallet-escrow` reads).
    fn settle_trade(purchase: PurchaseId, trade: SettledTrade<AccountId, Balance, BlockNumber>) {
        let record = pallet_escrow::Purchase {
            deal: pallet_escrow::PurchaseDeal {
                buyer: trade.buyer,
                seller: trade.seller,
                offer: 0,
                stream: H256::zero(),
                terms: PurchaseTerms::Batch { first: 0, last: 0 },
                buyer_key: [0u8; 32],
            },
            payment: pallet_escrow::PurchasePayment {
                price: trade.value,
                deposit: Zero::zero(),
            },
            schedule: pallet_escrow::PurchaseSchedule {
                start: trade.settled_at,
                end: trade.settled_at,
                key_deadline: trade.settled_at,
                first_epoch: None,
            },
            state: PurchaseState::Settled,
            keys: pallet_escrow::KeyDelivery {
                epochs: 0,
                deposits: Zero::zero(),
            },
            progress: pallet_escrow::PurchaseProgress {
                settled_periods: 1,
                delivered_up_to: None,
                start_head: None,
                heads: BoundedVec::new(),
            },
            operators: pallet_escrow::OperatorPay {
                prices: BoundedVec::new(),
                claims: 0,
                accrued: Zero::zero(),
            },
            ledger: PurchaseLedger {
                seller: trade.value,
                ..Default::default()
            },
            dispute: None,
            disputed: false,
            closed_at: Some(trade.settled_at),
            scheduled_at: None,
        };
        pallet_escrow::Purchases::<Runtime>::insert(purchase, record);
    }
}

impl pallet_offers::BenchmarkHelper<AccountId, BlockNumber> for Helper {
    fn purchases_need(offer: fastdata_primitives::OfferId, until: BlockNumber) {
        pallet_escrow::OfferNeededUntil::<Runtime>::insert(offer, until);
    }

    fn verify_seller(who: &AccountId) {
        check(Did::benchmark_make_verified(who), "verify the seller");
    }

    fn draw_operators() {
        pallet_operators::Pallet::<Runtime>::benchmark_draw_pending();
    }

    /// Fills the operator registry (`MaxOperators`, the worst case of an assignment), each
    /// operator verified with the most credentials, so every candidate's trust score is read
    /// in full.
    fn prepare_operators(replication: u32) {
        let max: u32 = <Runtime as pallet_operators::Config>::MaxOperators::get();
        for i in 0..max.max(replication) {
            let who: AccountId = frame_benchmarking::account("bench-operator", i, 0);
            if pallet_operators::OperatorCount::<Runtime>::get() >= max {
                break;
            }
            check(Did::benchmark_make_verified(&who), "verify an operator");
            register_operator(&who);
        }
    }
}

/// The account of an sr25519 key generated in the benchmark keystore from `suri`.
fn bench_signer(suri: &str) -> AccountId {
    let public = sp_io::crypto::sr25519_generate(BENCH_KEY, Some(suri.as_bytes().to_vec()));
    MultiSigner::from(public).into_account()
}

/// `signer`'s signature of `message` with its key in the benchmark keystore (a zero
/// signature, which fails verification, if the key is not there).
fn bench_sign(signer: &AccountId, message: &[u8]) -> Signature {
    let public = sr25519::Public::from_raw(*AsRef::<[u8; 32]>::as_ref(signer));
    let signature = sp_io::crypto::sr25519_sign(BENCH_KEY, &public, message);
    MultiSignature::Sr25519(signature.unwrap_or_else(|| sr25519::Signature::from_raw([0; 64])))
}

impl pallet_operators::BenchmarkHelper<AccountId, Signature> for Helper {
    fn make_trusted(who: &AccountId) {
        check(Did::benchmark_make_verified(who), "verify an operator");
    }

    fn signer(seed: u32) -> AccountId {
        bench_signer(&format!("//fastdata-bench-operator-{seed}"))
    }

    fn sign(signer: &AccountId, message: &[u8]) -> Signature {
        bench_sign(signer, message)
    }
}

impl pallet_escrow::BenchmarkHelper<Runtime> for Helper {
    fn buyer(seed: u32) -> AccountId {
        let who = bench_signer(&format!("//fastdata-bench-buyer-{seed}"));
        Balances::set_balance(&who, FUNDS);
        if !pallet_did::Dids::<Runtime>::contains_key(&who) {
            let key_agreement = sp_io::hashing::blake2_256(&seed.to_le_bytes());
            check(
                Did::create_did(signed(&who), key_agreement, Vec::new()),
                "create the buyer's DID",
            );
        }
        check(Did::benchmark_make_verified(&who), "verify the buyer");
        // A full rating window (all good ratings by fully credible raters): the score stays
        // well above the offers' minimum, and computing it reads every bucket.
        let window: u32 = <Runtime as pallet_trust::Config>::WindowEpochs::get();
        let buckets = (0..window)
            .map(|epoch| {
                let mut bucket = pallet_trust::RatingBucket::new(epoch);
                bucket.add(100, SCORE_ONE, Perbill::one(), Perbill::from_percent(50));
                bucket
            })
            .collect::<Vec<_>>();
        pallet_trust::RatingWindows::<Runtime>::insert(&who, BoundedVec::truncate_from(buckets));
        who
    }

    fn sign(signer: &AccountId, message: &[u8]) -> Signature {
        bench_sign(signer, message)
    }

    /// Lists the offer through `pallet-offers` (seller verified, stream registered and its
    /// operators drawn by `pallet-operators`) and stores the commitments of epochs
    /// `1..=epochs` directly, so the stream stays at epoch 0 as purchases expect.
    fn offer(
        seller: &AccountId,
        mode: PaymentMode<BlockNumber>,
        price: Balance,
        epochs: EpochIndex,
        operators: &[AccountId],
    ) -> OfferId {
        check(Did::benchmark_make_verified(seller), "verify the seller");
        operators.iter().for_each(register_operator);
        let max_replication: u32 = <Runtime as pallet_operators::Config>::MaxReplication::get();
        let terms = OfferTerms {
            licence: Licence::Commercial,
            resale_allowed: false,
            verified_only: true,
            verified_discount: Perbill::from_percent(10),
            min_trust_score: 1,
            retention: Zero::zero(),
            replication: (operators.len() as u32).clamp(1, max_replication),
        };
        let id = pallet_offers::NextOfferId::<Runtime>::get();
        let topic = BoundedVec::truncate_from(format!("bench/offer-{id}").into_bytes());
        check(
            Offers::create_offer(signed(seller), topic, mode, price, terms),
            "create the offer",
        );
        let name = BoundedVec::truncate_from(format!("bench-stream-{id}").into_bytes());
        check(
            Offers::register_stream(signed(seller), id, name, 0, H256::repeat_byte(0)),
            "register the stream",
        );
        pallet_operators::Pallet::<Runtime>::benchmark_draw_pending();
        if let Some(stream) = pallet_offers::Offers::<Runtime>::get(id).and_then(|o| o.stream) {
            let assigned = pallet_operators::Assignments::<Runtime>::get(stream)
                .map(|a| a.into_inner())
                .unwrap_or_default();
            let heads = assigned
                .into_iter()
                .map(|who| max_head(&who))
                .collect::<Vec<_>>();
            pallet_operators::StreamHeads::<Runtime>::insert(
                stream,
                BoundedVec::truncate_from(heads),
            );
            for epoch in 1..=epochs {
                let commitment = H256(sp_io::hashing::blake2_256(&epoch.to_le_bytes()));
                pallet_offers::EpochCommitments::<Runtime>::insert(stream, epoch, commitment);
            }
        }
        id
    }

    /// Adds `operator` at the end of the stream's assignment, dropping the first assigned
    /// operator if the assignment is full (as a reassignment would).
    fn assign(offer: OfferId, operator: &AccountId) {
        let Some(stream) = pallet_offers::Offers::<Runtime>::get(offer).and_then(|o| o.stream)
        else {
            return;
        };
        pallet_operators::Assignments::<Runtime>::mutate(stream, |maybe| {
            let assigned = maybe.get_or_insert_with(BoundedVec::new);
            if assigned.contains(operator) {
                return;
            }
            if assigned.try_push(operator.clone()).is_err() {
                let dropped = assigned.remove(0);
                pallet_operators::StreamsOf::<Runtime>::remove(&dropped, stream);
                let _ = assigned.try_push(operator.clone());
            }
            pallet_operators::StreamsOf::<Runtime>::insert(operator, stream, ());
        });
        pallet_operators::StreamHeads::<Runtime>::mutate(stream, |heads| {
            heads.retain(|r| r.operator != *operator);
            if heads.try_push(max_head(operator)).is_err() {
                heads.remove(0);
                let _ = heads.try_push(max_head(operator));
            }
        });
    }
}

/// An attestation by `operator` of every segment of a stream.
fn max_head(operator: &AccountId) -> pallet_operators::HeadRecord<AccountId, BlockNumber> {
    pallet_operators::HeadRecord {
        operator: operator.clone(),
        head: u64::MAX,
        stored_bytes: 0,
        at: 0,
    }
}

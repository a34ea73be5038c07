//! End to end on a running dev node (`scripts/test` starts one; `FASTDATA_WS` overrides the
//! URL): DIDs, an issuer's credential, an offer, a stream, a purchase, sealed keys delivered
//! by the seller's key-delivery pass and opened by the buyer against the on-chain
//! commitment, an epoch rotation, a dispute; and the keys never appear in clear in chain
//! storage or in any event. Pipelined submission: many transactions of one account in flight
//! at once land with consecutive nonces within a few blocks; the keys of many purchases go in
//! one batch transaction, a bad delivery among them failing alone.

use std::time::Duration;

use fastdata_primitives::{
    api_market::{Licence, OfferTerms},
    escrow::{DisputeReason, PurchaseState},
    BlockNumber, OfferId, PaymentMode,
};
use fastdata_sdk::{
    chain::{bounded, fastdata, Included, RuntimeCall, RuntimeEvent, Wait},
    keystore::Keystore,
    seller::RegisteredStream,
    subxt::rpcs::{rpc_params, RpcClient},
    Account, Error, FastData,
};
use futures_util::{stream::FuturesUnordered, TryStreamExt};
use sp_core::H256;
use sp_runtime::Perbill;

use fastdata_sdk::primitives::UNIT;

fn url() -> String {
    std::env::var("FASTDATA_WS").unwrap_or_else(|_| fastdata_sdk::DEFAULT_URL.to_string())
}

async fn funded(alice: &FastData, amount: u128) -> Account {
    let (account, _) = Account::generate().unwrap();
    alice
        .transfer(&account.account_id(), amount)
        .await
        .expect("Alice funds a fresh account");
    account
}

/// A funded storage operator registered on chain. It runs no daemon: [`leave`] at the end
/// of the test, so no later stream is assigned to it.
async fn registered_operator(alice: &FastData) -> FastData {
    let operator = alice.as_account(funded(alice, 1_000 * UNIT).await);
    operator
        .submit(fastdata::tx().operators().register(
            200 * UNIT,
            bounded(b"mqtt://127.0.0.1:1883".to_vec()),
            bounded(b"http://127.0.0.1:8088".to_vec()),
            UNIT / 1000,
        ))
        .await
        .expect("operator registers");
    operator
}

/// The operator (without a daemon) leaves the operator set.
async fn leave(operator: &FastData) {
    operator
        .submit(fastdata::tx().operators().leave())
        .await
        .expect("operator leaves");
}

/// Terms of the test offers: one replica, no verification asked of buyers.
fn terms() -> OfferTerms<BlockNumber> {
    OfferTerms {
        licence: Licence::InternalUse,
        resale_allowed: false,
        verified_only: false,
        verified_discount: Perbill::zero(),
        min_trust_score: 0,
        retention: 1_000,
        replication: 1,
    }
}

/// The verified `seller`'s offer of a live stream (20-block periods at 1 UNIT) and its
/// registered stream, with epoch-0 keys in `keystore`.
async fn listed_stream(
    seller: &FastData,
    keystore: &mut Keystore,
    topic: &str,
) -> (OfferId, RegisteredStream) {
    let offer = seller
        .create_offer(topic, PaymentMode::Stream { period: 20 }, UNIT, terms())
        .await
        .unwrap();
    let registered = seller
        .register_stream(
            keystore,
            offer,
            &format!("{}-line-1", topic.replace('/', "-")),
            fastdata_sdk::seller::Hosting::DEMO,
        )
        .await
        .unwrap();
    assert!(!registered.operators.is_empty());
    (offer, registered)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Every storage value of the chain at the finalized head.
async fn all_storage(url: &str) -> Vec<(String, Vec<u8>)> {
    let rpc = RpcClient::from_insecure_url(url).await.unwrap();
    let mut out = Vec::new();
    let mut start: Option<String> = None;
    loop {
        let keys: Vec<String> = rpc
            .request(
                "state_getKeysPaged",
                rpc_params!["0x", 1000u32, start.clone()],
            )
            .await
            .unwrap();
        if keys.is_empty() {
            break;
        }
        for key in &keys {
            let value: Option<String> = rpc
                .request("state_getStorage", rpc_params![key.clone()])
                .await
                .unwrap();
            if let Some(v) = value {
                out.push((
                    key.clone(),
                    hex::decode(v.trim_start_matches("0x")).unwrap(),
                ));
            }
        }
        let done = keys.len() < 1000;
        start = keys.last().cloned();
        if done {
            break;
        }
    }
    out
}

#[tokio::test]
#[ignore = "needs a running fastdata-node; run by scripts/test"]
async fn did_offer_purchase_and_sealed_keys_end_to_end() {
    let url = url();
    let alice = FastData::connect(&url, Account::from_suri("//Alice").unwrap())
        .await
        .expect("node reachable");
    let start_block = alice.finalized_number().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut seller_ks = Keystore::open(dir.path().join("seller.json")).unwrap();
    let mut buyer_ks = Keystore::open(dir.path().join("buyer.json")).unwrap();

    // Accounts: a storage operator, a seller and a buyer, funded by Alice.
    let operator = registered_operator(&alice).await;
    let seller = alice.as_account(funded(&alice, 1_000 * UNIT).await);
    let buyer = alice.as_account(funded(&alice, 1_000 * UNIT).await);

    // Identity: DIDs with X25519 keys; Alice (the dev issuer) attests KYC to the seller.
    let seller_key = seller.create_did(&mut seller_ks, Vec::new()).await.unwrap();
    let buyer_key = buyer.create_did(&mut buyer_ks, Vec::new()).await.unwrap();
    let seller_id = seller.account().account_id();
    let buyer_id = buyer.account().account_id();
    assert_eq!(
        seller.key_agreement_key(&seller_id).await.unwrap(),
        Some(seller_key)
    );
    assert!(!seller.is_verified(&seller_id).await.unwrap());

    // An unverified seller cannot list, and the error says what to do.
    let refused = seller
        .create_offer(
            "plant7/press/temperature",
            PaymentMode::Stream { period: 20 },
            UNIT,
            terms(),
        )
        .await
        .unwrap_err();
    assert!(matches!(refused, Error::Dispatch { .. }), "{refused}");
    assert!(refused.to_string().contains("issuer attest"), "{refused}");

    let expires = alice.finalized_number().await.unwrap() + 100_000;
    let credential = alice
        .attest_credential(&seller_id, b"KYC", H256::repeat_byte(1), expires)
        .await
        .unwrap();
    assert!(seller.is_verified(&seller_id).await.unwrap());
    let doc = seller.did_document(&seller_id).await.unwrap().unwrap();
    assert_eq!(doc.credentials[0].id, credential);
    assert_eq!(doc.key_agreement, seller_key);

    // Seller: offer, stream with the epoch-0 commitment; operators assigned by the chain.
    let (offer, registered) =
        listed_stream(&seller, &mut seller_ks, "plant7/press/temperature").await;
    let stream = registered.stream;
    let epoch0 = seller_ks.epoch_keys(&stream, 0).unwrap();
    assert_eq!(
        seller.epoch_commitment(&stream, 0).await.unwrap(),
        Some(epoch0.commitment())
    );
    let endpoints = buyer.stream_endpoints(&stream).await.unwrap();
    assert_eq!(endpoints.len(), registered.operators.len());

    // Buyer: the listing shows the seller's trust score; buy one period.
    let listed = buyer.all_offers().await.unwrap();
    let listing = listed.iter().find(|o| o.id == offer).expect("offer listed");
    assert_eq!(listing.seller, seller_id);
    assert_eq!(listing.stream, Some(stream));
    assert_eq!(
        listing.seller_trust_score,
        buyer.trust_score(&seller_id).await.unwrap()
    );
    let purchase = buyer.buy(offer, 1, 2 * UNIT).await.unwrap();
    let view = buyer.purchase(purchase).await.unwrap().unwrap();
    assert_eq!(view.state, PurchaseState::AwaitingKeys);
    assert_eq!(view.buyer_key, buyer_key);
    assert!(buyer
        .purchases_of_buyer(&buyer_id)
        .await
        .unwrap()
        .contains(&purchase));

    // Seller's key-delivery pass seals epoch 0 to the buyer; the buyer opens and checks it.
    let delivered = seller.deliver_due_keys(&seller_ks).await.unwrap();
    assert_eq!(delivered.len(), 1, "{delivered:?}");
    assert_eq!(delivered[0].result, Ok(()));
    let active = buyer
        .wait_for_keys(purchase, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(active.state, PurchaseState::Active);
    let opened = buyer.open_keys(&buyer_ks, &active, 0).await.unwrap();
    assert_eq!(opened, epoch0);
    // Nothing more is due, so a second pass delivers nothing.
    assert!(seller
        .deliver_due_keys(&seller_ks)
        .await
        .unwrap()
        .is_empty());
    // Another keystore cannot open the buyer's keys.
    let stranger_ks = Keystore::open(dir.path().join("nobody.json")).unwrap();
    assert!(buyer.open_keys(&stranger_ks, &active, 0).await.is_err());

    // Rotation: epoch 1 is delivered to the paying buyer too.
    let epoch = seller.rotate_epoch(&mut seller_ks, &stream).await.unwrap();
    assert_eq!(epoch, 1);
    let delivered = seller.deliver_due_keys(&seller_ks).await.unwrap();
    assert_eq!(delivered.len(), 1, "{delivered:?}");
    let view = buyer.purchase(purchase).await.unwrap().unwrap();
    let keys = buyer.purchase_keys(&buyer_ks, &view).await.unwrap();
    assert_eq!(keys.len(), 2);
    assert_eq!(keys[&1], seller_ks.epoch_keys(&stream, 1).unwrap());

    // No key in clear anywhere: every storage value and every event since the test began.
    let secrets: Vec<[u8; 32]> = [0, 1]
        .iter()
        .flat_map(|e| {
            let k = seller_ks.epoch_keys(&stream, *e).unwrap();
            [k.k_e, k.k_m]
        })
        .collect();
    let storage = all_storage(&url).await;
    assert!(storage.len() > 10);
    for (key, value) in &storage {
        for s in &secrets {
            assert!(
                !contains(value, s),
                "a data key is in clear in storage {key}"
            );
        }
    }
    let head = alice.finalized_number().await.unwrap();
    for n in start_block..=head {
        let at = alice.client().at_block(n).await.unwrap();
        let events = at.events().fetch().await.unwrap();
        for s in &secrets {
            assert!(
                !contains(events.bytes(), s),
                "a data key is in clear in the events of block {n}"
            );
        }
        let extrinsics = at.extrinsics().fetch().await.unwrap();
        for ext in extrinsics.iter() {
            let ext = ext.unwrap();
            for s in &secrets {
                assert!(
                    !contains(ext.bytes(), s),
                    "a data key is in clear in an extrinsic of block {n}"
                );
            }
        }
    }

    // Rating needs a settled purchase; the error says so. Then the buyer disputes.
    assert!(buyer.rate(purchase, 90, None).await.is_err());
    buyer
        .dispute(
            purchase,
            DisputeReason::KeysMissing,
            Some(H256::repeat_byte(9)),
        )
        .await
        .unwrap();
    let disputed = buyer.purchase(purchase).await.unwrap().unwrap();
    assert_eq!(disputed.state, PurchaseState::Disputed);
    assert_eq!(
        disputed.dispute.map(|d| d.reason),
        Some(DisputeReason::KeysMissing)
    );

    // The operator has no daemon: it leaves, so no later stream is assigned to it.
    leave(&operator).await;
}

/// Transactions of one account sent at once over separate connections (as an operator's
/// heartbeats and claims are) all land: each is signed with the nonce after the previous.
#[tokio::test]
#[ignore = "needs a running fastdata-node; run by scripts/test"]
async fn concurrent_transactions_of_one_account_all_land() {
    let alice = FastData::connect(&url(), Account::from_suri("//Alice").unwrap())
        .await
        .unwrap();
    let sender = funded(&alice, 100 * UNIT).await;
    let (receiver, _) = Account::generate().unwrap();
    let to = receiver.account_id();
    let mut sends = Vec::new();
    for n in 1..=3u128 {
        let chain = FastData::connect(&url(), sender.clone()).await.unwrap();
        let to = to.clone();
        sends.push(tokio::spawn(
            async move { chain.transfer(&to, n * UNIT).await },
        ));
    }
    for send in sends {
        send.await.unwrap().expect("every transfer lands");
    }
    assert_eq!(alice.free_balance(&to).await.unwrap(), 6 * UNIT);
}

/// Twenty transactions of one account sent at once from one connection are all included,
/// with consecutive nonces, within a few blocks: no lock is held across inclusion (it took
/// one block per transaction while each waited for finality before the next was signed).
#[tokio::test]
#[ignore = "needs a running fastdata-node; run by scripts/test"]
async fn twenty_transactions_of_one_account_in_flight_at_once() {
    const SENDS: u128 = 20;
    let alice = FastData::connect(&url(), Account::from_suri("//Alice").unwrap())
        .await
        .unwrap();
    let sender = alice.as_account(funded(&alice, 1_000 * UNIT).await);
    let (receiver, _) = Account::generate().unwrap();
    let to = receiver.account_id();
    let first_nonce = sender.pool_nonce().await.unwrap();
    let head = alice.finalized_number().await.unwrap();
    let mut included: Vec<Included> = (1..=SENDS)
        .map(|n| sender.transfer(&to, n * UNIT))
        .collect::<FuturesUnordered<_>>()
        .try_collect()
        .await
        .expect("every transfer is included");
    included.sort_by_key(|i| i.nonce);
    let nonces: Vec<u64> = included.iter().map(|i| i.nonce).collect();
    let expected: Vec<u64> = (first_nonce..first_nonce + SENDS as u64).collect();
    assert_eq!(nonces, expected, "consecutive nonces");
    let blocks: Vec<BlockNumber> = included.iter().map(|i| i.block_number).collect();
    let (first, last) = (blocks[0], blocks[blocks.len() - 1]);
    assert!(
        blocks.windows(2).all(|w| w[0] <= w[1]),
        "in nonce order: {blocks:?}"
    );
    assert!(
        first > head && last <= head + 4,
        "all {SENDS} within 4 blocks after block {head}: {blocks:?}"
    );
    println!(
        "{SENDS} transfers in blocks {first}..={last} (head {head}); {} reported finalized",
        included.iter().filter(|i| i.finalized).count()
    );
    let paid = SENDS * (SENDS + 1) / 2 * UNIT;
    alice
        .wait_for(
            "the transfers finalized",
            Duration::from_secs(30),
            || async { Ok((alice.free_balance(&to).await? == paid).then_some(())) },
        )
        .await
        .unwrap();
    assert_eq!(
        sender.pool_nonce().await.unwrap(),
        first_nonce + SENDS as u64
    );
}

/// The keys of several purchases go in one `Utility::force_batch` transaction and every
/// buyer opens its own from the chain; a delivery the runtime refuses fails alone.
#[tokio::test]
#[ignore = "needs a running fastdata-node; run by scripts/test"]
async fn keys_of_many_purchases_in_one_batch() {
    const BUYERS: usize = 5;
    let alice = FastData::connect(&url(), Account::from_suri("//Alice").unwrap())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let operator = registered_operator(&alice).await;
    let mut seller_ks = Keystore::open(dir.path().join("seller.json")).unwrap();
    let seller = alice.as_account(funded(&alice, 1_000 * UNIT).await);
    let seller_id = seller.account().account_id();
    seller.create_did(&mut seller_ks, Vec::new()).await.unwrap();
    let expires = alice.finalized_number().await.unwrap() + 100_000;
    alice
        .attest_credential(&seller_id, b"KYC", H256::repeat_byte(1), expires)
        .await
        .unwrap();
    let (offer, registered) = listed_stream(&seller, &mut seller_ks, "plant9/flow").await;
    let epoch0 = seller_ks.epoch_keys(&registered.stream, 0).unwrap();

    // Buyers with DIDs, each buying one period; Alice funds them all at once.
    let accounts: Vec<Account> = (0..BUYERS)
        .map(|_| Account::generate().unwrap().0)
        .collect();
    let ids: Vec<_> = accounts.iter().map(Account::account_id).collect();
    futures_util::future::try_join_all(ids.iter().map(|id| alice.transfer(id, 1_000 * UNIT)))
        .await
        .unwrap();
    let mut buyers = Vec::new();
    for (i, account) in accounts.into_iter().enumerate() {
        let buyer = alice.as_account(account);
        let mut ks = Keystore::open(dir.path().join(format!("buyer-{i}.json"))).unwrap();
        buyer.create_did(&mut ks, Vec::new()).await.unwrap();
        let purchase = buyer.buy(offer, 1, 2 * UNIT).await.unwrap();
        buyers.push((buyer, ks, purchase));
    }
    // The seller reads finalized state.
    seller
        .wait_for("purchases finalized", Duration::from_secs(30), || async {
            Ok((seller.purchases_of_offer(offer).await?.len() == BUYERS).then_some(()))
        })
        .await
        .unwrap();

    // A batch of two good deliveries around one for a purchase that does not exist: the
    // runtime refuses that one alone.
    let mut calls = Vec::new();
    for (_, _, purchase) in &buyers[..2] {
        let view = seller.purchase(*purchase).await.unwrap().unwrap();
        let sealed =
            fastdata_primitives::sealed::seal(&view.buyer_key, view.id, 0, &epoch0).unwrap();
        calls.push(RuntimeCall::Escrow(fastdata::escrow::Call::deliver_keys {
            purchase: view.id,
            epoch: 0,
            sealed: bounded(sealed),
        }));
    }
    calls.insert(
        1,
        RuntimeCall::Escrow(fastdata::escrow::Call::deliver_keys {
            purchase: u64::MAX,
            epoch: 0,
            sealed: bounded(vec![0u8; 113]),
        }),
    );
    let results = seller.submit_batch(&calls, Wait::Finalized).await;
    assert_eq!(results.len(), 3);
    let refused = results[1].as_ref().unwrap_err();
    assert!(
        matches!(refused, Error::Dispatch { error } if error.contains("Escrow::deliver_keys failed with")),
        "{refused}"
    );
    let (a, b) = (results[0].as_ref().unwrap(), results[2].as_ref().unwrap());
    assert_eq!(a.extrinsic_hash, b.extrinsic_hash, "one transaction");
    assert!(a.finalized);
    assert!(a
        .find(|e| matches!(
            e,
            RuntimeEvent::Escrow(fastdata::escrow::Event::KeysDelivered { .. })
        )
        .then_some(()))
        .is_some());

    // The key-delivery pass sends the other buyers' keys, all in one transaction.
    let delivered = seller.deliver_due_keys(&seller_ks).await.unwrap();
    assert_eq!(delivered.len(), BUYERS - 2, "{delivered:?}");
    assert!(delivered.iter().all(|d| d.result.is_ok()), "{delivered:?}");
    let transaction = delivered[0].transaction;
    assert!(transaction.is_some());
    assert!(delivered.iter().all(|d| d.transaction == transaction));
    let mut delivered_to: Vec<_> = delivered.iter().map(|d| d.purchase).collect();
    delivered_to.sort_unstable();
    let mut rest: Vec<_> = buyers[2..].iter().map(|(_, _, p)| *p).collect();
    rest.sort_unstable();
    assert_eq!(delivered_to, rest);

    // Every buyer opens its keys from the chain, checked against the commitment.
    for (buyer, ks, purchase) in &buyers {
        let view = buyer.purchase(*purchase).await.unwrap().unwrap();
        assert_eq!(view.state, PurchaseState::Active, "purchase {purchase}");
        assert_eq!(buyer.open_keys(ks, &view, 0).await.unwrap(), epoch0);
    }
    assert!(seller
        .deliver_due_keys(&seller_ks)
        .await
        .unwrap()
        .is_empty());
    leave(&operator).await;
}

//! End to end on a running dev node (`scripts/test` starts one; `FASTDATA_WS` overrides the
//! URL) with real Mosquitto brokers and real `fastdata-operator` processes that register on
//! chain, follow finalized blocks, gate their brokers and claim. Run one at a time
//! (`--test-threads=1`): every test adds operators to the same chain and removes them at the
//! end.

use std::{collections::BTreeSet, time::Duration};

use codec::Encode;
use fastdata_e2e::{
    node_url, publish, reading, receive, seeded_account, settled, BrokerKind, Network, Trader, UNIT,
};
use fastdata_primitives::{
    api_market::{Licence, OfferTerms},
    escrow::{DisputeReason, PurchaseState},
    tokens::{AccessRequest, Signed, UploadToken},
    Balance, OfferId, PaymentMode, PurchaseId, SCORE_ONE,
};
use fastdata_sdk::{
    fresh_nonce,
    http::HttpClient,
    operator::{OperatorClient, OperatorEndpoint, ACCESS_HEADER},
    receive::{Receiver, Verifier},
    seller::RegisteredStream,
    Error,
};
use hyper::{body::Bytes, Method};
use sp_core::H256;
use sp_runtime::Perbill;
use tempfile::TempDir;

pub(crate) fn terms(replication: u32, verified_only: bool) -> OfferTerms<u32> {
    OfferTerms {
        licence: Licence::InternalUse,
        resale_allowed: false,
        verified_only,
        verified_discount: Perbill::from_percent(10),
        min_trust_score: 0,
        retention: 10_000,
        replication,
    }
}

pub(crate) fn payloads(label: &str, n: u64) -> Vec<Vec<u8>> {
    (0..n).map(|i| reading(label, i)).collect()
}

/// A temp dir, `operators` live operators, and fresh funded traders with DIDs, one per
/// `(keystore name, verified)`.
pub(crate) async fn setup<const N: usize>(
    operators: usize,
    specs: [(&str, bool); N],
) -> (TempDir, Network, [Trader; N]) {
    setup_on(BrokerKind::Mosquitto, operators, specs).await
}

/// [`setup`] with `kind` brokers.
pub(crate) async fn setup_on<const N: usize>(
    kind: BrokerKind,
    operators: usize,
    specs: [(&str, bool); N],
) -> (TempDir, Network, [Trader; N]) {
    let dir = tempfile::tempdir().unwrap();
    let net = Network::start_on(&node_url(), dir.path(), operators, None, kind)
        .await
        .unwrap();
    let mut traders = Vec::new();
    for (name, verified) in specs {
        let path = dir.path().join(format!("{name}.json"));
        let account = seeded_account(None).unwrap();
        traders.push(
            Trader::onboard(&net.alice, account, &path, verified)
                .await
                .unwrap(),
        );
    }
    let traders = traders.try_into().ok().unwrap();
    (dir, net, traders)
}

/// The seller lists an offer with its stream `name` in one transaction and waits for the
/// stream's operators.
pub(crate) async fn list(
    seller: &mut Trader,
    topic: &str,
    mode: PaymentMode<u32>,
    price: Balance,
    terms: OfferTerms<u32>,
    name: &str,
) -> (OfferId, RegisteredStream) {
    let listed = seller
        .chain
        .list_stream(
            &mut seller.keystore,
            topic,
            mode,
            price,
            terms,
            name,
            fastdata_sdk::seller::Hosting::DEMO,
        )
        .await
        .unwrap();
    let operators = seller
        .chain
        .wait_for_operators(&listed.stream)
        .await
        .unwrap();
    let (offer, registered) = (
        listed.offer,
        RegisteredStream {
            stream: listed.stream,
            operators,
            commitment: listed.commitment,
        },
    );
    (offer, registered)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a running fastdata-node; run by scripts/test"]
async fn stream_purchase_delivered_claimed_settled_and_rated() {
    stream_trade(BrokerKind::Mosquitto).await;
}

/// A live stream on three operators with `kind` brokers: bought, delivered, claimed, settled
/// and rated.
pub(crate) async fn stream_trade(kind: BrokerKind) {
    let (_dir, net, [seller, buyer]) = setup_on(kind, 3, [("s", true), ("b", true)]).await;
    let mut seller = seller;

    // The seller lists a live stream (30-block periods) replicated on all three operators.
    let price = 10 * UNIT;
    let (offer, registered) = list(
        &mut seller,
        "plant7/press/temperature",
        PaymentMode::Stream { period: 30 },
        price,
        terms(3, false),
        "press-line-1",
    )
    .await;
    let mine: BTreeSet<_> = net
        .operators
        .iter()
        .map(|o| o.account.account_id())
        .collect();
    let assigned: BTreeSet<_> = registered.operators.iter().cloned().collect();
    assert_eq!(
        assigned, mine,
        "the chain assigned operators outside this network"
    );
    let stream = registered.stream;

    // The buyer pays one period; the seller's key delivery activates the purchase.
    let trust_before = buyer.chain.reputation(&seller.id()).await.unwrap();
    let purchase = buyer.chain.buy(offer, 1, price).await.unwrap();
    let paid = buyer.chain.purchase(purchase).await.unwrap().unwrap().price;
    assert_eq!(
        paid,
        price - Perbill::from_percent(10) * price,
        "verified discount"
    );
    let delivered = seller
        .chain
        .deliver_due_keys(&seller.keystore)
        .await
        .unwrap();
    assert_eq!(delivered.len(), 1, "{delivered:?}");
    buyer
        .chain
        .wait_for_keys(purchase, Duration::from_secs(60))
        .await
        .unwrap();

    // The seller publishes during the period: a stream purchase pays for what is published
    // from the stream's head at purchase time on. Publishing reaches every operator once
    // their followers saw the stream.
    let data = payloads("press-line-1", 40);
    let endpoints = publish(&mut seller, stream, 0, 0, &data).await.unwrap();
    assert_eq!(endpoints.len(), 3);

    // Without a purchase the operators serve nothing.
    let keys = seller.keystore.epoch_keys(&stream, 0).unwrap();
    let mut stranger = Receiver::new(
        buyer.chain.account().clone(),
        buyer.chain.genesis(),
        u64::MAX,
        Verifier::new(stream, [(0, keys)].into()),
        endpoints.clone(),
        1_000_000,
        Some(0),
    );
    let mut got = 0;
    let refused = stranger.download(Some(39), |_| {
        got += 1;
        Ok(())
    });
    assert!(matches!(refused.await, Err(Error::NoOperator(_))));
    assert_eq!(got, 0);

    // Every segment arrives, verified, in order, byte for byte.
    let (segments, summary) = receive(&buyer, purchase, endpoints, 0, 39).await.unwrap();
    let sequences: Vec<u64> = segments.iter().map(|(s, _)| *s).collect();
    assert_eq!(sequences, (0..40).collect::<Vec<_>>());
    let plain: Vec<Vec<u8>> = segments.into_iter().map(|(_, p)| p).collect();
    assert_eq!(plain, data);
    assert_eq!(summary.rejected, 0);
    assert_eq!(summary.duplicates, 0);

    // The operators claim with the buyer's receipts (they record the acknowledged sequence).
    let claimed = buyer
        .chain
        .wait_for("operator claims", Duration::from_secs(90), || async {
            let p = buyer.chain.purchase(purchase).await?.unwrap();
            Ok((p.delivered_up_to == Some(39)).then_some(p))
        })
        .await
        .unwrap();
    assert_eq!(claimed.state, PurchaseState::Active);

    // Settlement (anyone may trigger it; on_idle does it too) pays per the pallet's rule.
    let settled = settled(&buyer.chain, purchase, Duration::from_secs(240))
        .await
        .unwrap();
    let l = &settled.ledger;
    assert_eq!(l.held, 0);
    assert!(l.operators > 0, "operators were not paid: {l:?}");
    assert!(l.seller > 0 && l.fees > 0, "{l:?}");
    assert_eq!(l.operators + l.seller + l.fees + l.refunded, paid, "{l:?}");
    // The period's data is what the operators attested: 0 at purchase, 40 at its end.
    assert_eq!(settled.start_head, Some(0));
    assert_eq!(settled.period_heads, vec![40]);
    // Everything was delivered, so nothing comes back; the fee is 2 % of the seller's gross.
    assert_eq!(l.refunded, 0, "{l:?}");
    assert_eq!(
        l.fees,
        Perbill::from_percent(2) * (paid - l.operators),
        "{l:?}"
    );

    // Both rate each other; the seller's rating shows up in its reputation.
    buyer.chain.rate(purchase, 95, None).await.unwrap();
    seller.chain.rate(purchase, 90, None).await.unwrap();
    let trust_after = buyer.chain.reputation(&seller.id()).await.unwrap();
    assert_eq!(
        trust_after.ratings_in_window,
        trust_before.ratings_in_window + 1
    );
    assert!(trust_after.trust_score <= SCORE_ONE);
    let listing = buyer.chain.offer(offer).await.unwrap().unwrap();
    assert_eq!(listing.seller_trust_score, trust_after.trust_score);
    assert!(
        buyer.chain.rate(purchase, 95, None).await.is_err(),
        "rated twice"
    );

    net.stop(true).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a running fastdata-node; run by scripts/test"]
async fn batch_purchase_survives_kill9_of_an_operator() {
    batch_trade_with_kill9(BrokerKind::Mosquitto).await;
}

/// A verified-buyers-only batch on operators with `kind` brokers, one of which is killed with
/// `kill -9` mid-download.
pub(crate) async fn batch_trade_with_kill9(kind: BrokerKind) {
    let (_dir, mut net, [seller, verified, unverified]) =
        setup_on(kind, 3, [("s", true), ("v", true), ("u", false)]).await;
    let mut seller = seller;

    // A verified-buyers-only batch of 30 recorded segments, on two of the three operators.
    let (offer, registered) = list(
        &mut seller,
        "plant7/press/vibration",
        PaymentMode::Batch { first: 0, last: 29 },
        5 * UNIT,
        terms(2, true),
        "press-vib",
    )
    .await;
    assert_eq!(registered.operators.len(), 2);
    let data = payloads("press-vib", 30);
    let endpoints = publish(&mut seller, registered.stream, 0, 0, &data)
        .await
        .unwrap();

    // An unverified buyer is refused by the chain, with a message naming the rule.
    let refused = unverified.chain.buy(offer, 1, 5 * UNIT).await.unwrap_err();
    assert!(matches!(refused, Error::Dispatch { .. }), "{refused}");

    let purchase = verified.chain.buy(offer, 1, 5 * UNIT).await.unwrap();
    seller
        .chain
        .deliver_due_keys(&seller.keystore)
        .await
        .unwrap();
    verified
        .chain
        .wait_for_keys(purchase, Duration::from_secs(60))
        .await
        .unwrap();

    // The buyer reads the first half from the first operator, which then dies (kill -9);
    // the rest comes from the replica with no gap and no duplicate.
    let (first, _) = receive(&verified, purchase, vec![endpoints[0].clone()], 0, 14)
        .await
        .unwrap();
    let killed = net
        .operators
        .iter_mut()
        .find(|o| o.account.account_id() == endpoints[0].account)
        .unwrap();
    killed.kill9();
    let (rest, summary) = receive(&verified, purchase, endpoints.clone(), 15, 29)
        .await
        .unwrap();
    assert!(summary.failovers >= 1, "{summary:?}");
    assert_eq!(summary.duplicates, 0);
    let all: Vec<_> = first.into_iter().chain(rest).collect();
    assert_eq!(
        all.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
        (0..30).collect::<Vec<_>>()
    );
    assert_eq!(all.into_iter().map(|(_, p)| p).collect::<Vec<_>>(), data);

    // The killed daemon restarts on its data directory with every segment still there.
    killed.restart().unwrap();
    let (again, _) = tokio::time::timeout(Duration::from_secs(90), async {
        loop {
            match receive(&verified, purchase, vec![endpoints[0].clone()], 0, 29).await {
                Ok(found) => return found,
                Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
            }
        }
    })
    .await
    .expect("the restarted operator serves again");
    assert_eq!(again.into_iter().map(|(_, p)| p).collect::<Vec<_>>(), data);

    net.stop(true).await.unwrap();
}

/// A raw request to an operator's HTTP API; returns the status and the JSON error code.
async fn raw(
    http: &HttpClient,
    method: Method,
    url: String,
    headers: &[(&str, String)],
    body: String,
) -> (u16, String) {
    let answer = http
        .send(method, &url, headers, Bytes::from(body), 1 << 20)
        .await
        .unwrap();
    let code = serde_json::from_slice::<serde_json::Value>(&answer.body)
        .ok()
        .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_owned))
        .unwrap_or_default();
    (answer.status.as_u16(), code)
}

fn hex_scale(value: &impl Encode) -> String {
    format!("0x{}", hex::encode(value.encode()))
}

/// The error code an operator answered a download of `purchase` by `buyer` with.
async fn download_refusal(op: &OperatorClient, buyer: &Trader, purchase: PurchaseId) -> String {
    match op
        .download(buyer.chain.account(), purchase, u32::MAX, Some(0), None)
        .await
    {
        Ok(d) => format!("served {} segments", d.envelopes.len()),
        Err(e) => e.to_string(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a running fastdata-node; run by scripts/test"]
async fn forged_and_replayed_refused_missing_keys_refunded_dispute_revokes() {
    refusals_refunds_and_dispute(BrokerKind::Mosquitto).await;
}

/// Forged, foreign and replayed tokens and requests refused by live operators with `kind`
/// brokers, missing keys refunded, a dispute that revokes access and refunds.
pub(crate) async fn refusals_refunds_and_dispute(kind: BrokerKind) {
    let (_dir, net, [seller, buyer1, buyer2]) =
        setup_on(kind, 2, [("s", true), ("b1", false), ("b2", false)]).await;
    let alice = net.alice.clone();
    let mut seller = seller;

    let price = 5 * UNIT;
    let (offer, registered) = list(
        &mut seller,
        "plant7/boiler/pressure",
        // Recorded data (published before the purchases), so a batch: a stream purchase
        // would pay for, and be served, only what is published after it.
        PaymentMode::Batch { first: 0, last: 9 },
        price,
        terms(2, false),
        "boiler-1",
    )
    .await;
    let stream = registered.stream;
    let data = payloads("boiler-1", 10);
    let endpoints = publish(&mut seller, stream, 0, 0, &data).await.unwrap();
    assert_eq!(endpoints.len(), 2);
    let (op, other) = (&endpoints[0], &endpoints[1]);
    let http = HttpClient::new();
    let session_url = format!("{}/v1/broker/session", op.http_url);
    let json = [("content-type", "application/json".to_owned())];
    let expiry = alice.finalized_number().await.unwrap() + 1_000;
    let genesis = alice.genesis();

    // Upload tokens: signed by someone else than the seller, addressed to the other operator,
    // replayed, or not a token at all — each refused with its own code.
    let token = |signer: &Trader, operator: &OperatorEndpoint, nonce: u64| {
        let token = UploadToken {
            stream,
            operator: operator.account.clone(),
            epoch: 0,
            expiry,
            nonce,
        };
        let signed = Signed::sign(token, signer.chain.account().pair(), &genesis);
        serde_json::json!({ "upload_token": hex_scale(&signed) }).to_string()
    };
    // The seller's own token, signed for another network.
    let foreign = {
        let token = UploadToken {
            stream,
            operator: op.account.clone(),
            epoch: 0,
            expiry,
            nonce: fresh_nonce(),
        };
        let other_chain = H256::repeat_byte(0xee);
        let signed = Signed::sign(token, seller.chain.account().pair(), &other_chain);
        serde_json::json!({ "upload_token": hex_scale(&signed) }).to_string()
    };
    let forged = token(&buyer1, op, fresh_nonce());
    let cases = [
        (forged, 401, "bad_signature"),
        (foreign, 401, "bad_signature"),
        (token(&seller, other, fresh_nonce()), 403, "wrong_operator"),
        (
            r#"{"upload_token":"0xdeadbeef"}"#.to_owned(),
            400,
            "malformed",
        ),
    ];
    for (body, status, code) in cases {
        let got = raw(&http, Method::POST, session_url.clone(), &json, body).await;
        assert_eq!(got, (status, code.to_owned()));
    }
    let good = token(&seller, op, fresh_nonce());
    let first = raw(
        &http,
        Method::POST,
        session_url.clone(),
        &json,
        good.clone(),
    )
    .await;
    assert_eq!(first.0, 200, "{first:?}");
    let replay = raw(&http, Method::POST, session_url.clone(), &json, good).await;
    assert_eq!(replay, (403, "replayed".to_owned()));

    // Buyer 1 pays but the seller never delivers its keys: the operators serve nothing, and
    // after the key deadline the whole price goes back to the buyer.
    let p1 = buyer1.chain.buy(offer, 1, price).await.unwrap();
    let after_buy = buyer1.chain.free_balance(&buyer1.id()).await.unwrap();
    let v1 = buyer1.chain.purchase(p1).await.unwrap().unwrap();
    assert_eq!(v1.state, PurchaseState::AwaitingKeys);
    let client = OperatorClient::new(op.clone(), genesis);
    let refusal = alice
        .wait_for(
            "the operator to see purchase 1",
            Duration::from_secs(30),
            || async {
                let r = download_refusal(&client, &buyer1, p1).await;
                Ok((!r.contains("unknown_purchase")).then_some(r))
            },
        )
        .await
        .unwrap();
    assert!(refusal.contains("purchase_not_active"), "{refusal}");

    // Buyer 2 pays and gets its keys: served once per access request, never twice.
    let p2 = buyer2.chain.buy(offer, 1, price).await.unwrap();
    let v2 = buyer2.chain.purchase(p2).await.unwrap().unwrap();
    let keys = seller.keystore.epoch_keys(&stream, 0).unwrap();
    seller.chain.deliver_keys(&v2, 0, &keys).await.unwrap();
    buyer2
        .chain
        .wait_for_keys(p2, Duration::from_secs(60))
        .await
        .unwrap();
    let access = |signer: &Trader, nonce: u64| {
        let request = AccessRequest {
            purchase: p2,
            operator: op.account.clone(),
            expiry,
            nonce,
        };
        let signed = Signed::sign(request, signer.chain.account().pair(), &genesis);
        vec![(ACCESS_HEADER, hex_scale(&signed))]
    };
    let segments_url = format!("{}/v1/purchases/{p2}/segments?from=0&to=9", op.http_url);
    let served = alice
        .wait_for(
            "the operator to serve purchase 2",
            Duration::from_secs(30),
            || async {
                let r = download_refusal(&client, &buyer2, p2).await;
                Ok(r.starts_with("served").then_some(r))
            },
        )
        .await
        .unwrap();
    assert_eq!(served, "served 10 segments");
    // A request signed now carries a nonce above the ones the SDK used above.
    let request = access(&buyer2, fresh_nonce());
    let once = raw(
        &http,
        Method::GET,
        segments_url.clone(),
        &request,
        String::new(),
    )
    .await;
    assert_eq!(once.0, 200, "{once:?}");
    let twice = raw(
        &http,
        Method::GET,
        segments_url.clone(),
        &request,
        String::new(),
    )
    .await;
    assert_eq!(twice, (403, "replayed".to_owned()));
    let stolen = access(&buyer1, fresh_nonce());
    let forged = raw(
        &http,
        Method::GET,
        segments_url.clone(),
        &stolen,
        String::new(),
    )
    .await;
    assert_eq!(forged, (401, "bad_signature".to_owned()));
    let (plain, summary) = receive(&buyer2, p2, endpoints.clone(), 0, 9).await.unwrap();
    assert_eq!(plain.into_iter().map(|(_, p)| p).collect::<Vec<_>>(), data);
    assert_eq!(summary.rejected, 0);

    // Buyer 2 disputes: access stops at once; the upheld dispute refunds it in full and
    // access stays revoked.
    buyer2
        .chain
        .dispute(p2, DisputeReason::DataNotDelivered, None)
        .await
        .unwrap();
    let revoked = alice
        .wait_for(
            "the operator to revoke purchase 2",
            Duration::from_secs(30),
            || async {
                let r = download_refusal(&client, &buyer2, p2).await;
                Ok((!r.starts_with("served")).then_some(r))
            },
        )
        .await
        .unwrap();
    assert!(revoked.contains("purchase_not_active"), "{revoked}");
    alice
        .sudo_resolve_dispute(p2, Perbill::one())
        .await
        .unwrap();
    let resolved = alice.purchase(p2).await.unwrap().unwrap();
    assert_eq!(resolved.state, PurchaseState::Settled);
    let l = &resolved.ledger;
    assert_eq!(l.held, 0, "{l:?}");
    assert_eq!(
        l.operators + l.seller + l.fees + l.refunded,
        v2.price,
        "{l:?}"
    );
    assert_eq!(l.refunded, v2.price - l.operators, "{l:?}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let still = download_refusal(&client, &buyer2, p2).await;
    assert!(still.contains("purchase_not_active"), "{still}");

    // Purchase 1 after its key deadline: refunded in full (anyone may trigger it; on_idle
    // may get there first), and still not served.
    let refunded = alice
        .wait_for(
            "the missing-keys refund",
            Duration::from_secs(180),
            || async {
                let p = alice.purchase(p1).await?.unwrap();
                if p.state == PurchaseState::Refunded {
                    return Ok(Some(p));
                }
                if alice.finalized_number().await? > p.key_deadline {
                    let _ = alice.refund_missing_keys(p1).await;
                }
                Ok(None)
            },
        )
        .await
        .unwrap();
    assert_eq!(refunded.ledger.refunded, v1.price);
    assert_eq!(refunded.ledger.held, 0);
    let back = buyer1.chain.free_balance(&buyer1.id()).await.unwrap() - after_buy;
    assert!(back >= v1.price, "buyer got {back} back of {}", v1.price);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = download_refusal(&client, &buyer1, p1).await;
    assert!(after.contains("purchase_not_active"), "{after}");

    net.stop(true).await.unwrap();
}

//! Serving a purchased range over HTTP within the receipt window, receipts, and replication
//! between two daemons in one process.

use fastdata_sdk::http::HttpClient;
use std::{sync::Arc, time::Duration};

use crate::common::*;
use fastdata_operator::{
    api::{decode_frames, decode_signed_frames, ACCESS_HEADER, REPLICA_HEADER},
    auth::to_hex_scale,
    chain::{ChainEvent, ChainView, InMemoryChainView},
    daemon::Daemon,
    receipts::{NoChainSubmitter, Receipt},
    replication::{BackfillRequest, ReplicaRequest},
    store::NewSegment,
};
use fastdata_primitives::{custody::SegmentStatement, envelope, tokens::Signed, AccountId};
use sp_core::{sr25519, Pair};

fn segments(range: std::ops::RangeInclusive<u64>) -> Vec<NewSegment> {
    range
        .map(|s| NewSegment {
            stream: STREAM,
            sequence: s,
            envelope: segment(s),
        })
        .collect()
}

async fn download(
    daemon: &Daemon,
    access: String,
    from: u64,
    to: u64,
) -> (u16, Vec<u64>, Option<String>) {
    let url = format!(
        "http://{}/v1/purchases/1/segments?from={from}&to={to}",
        daemon.http_addr
    );
    let (status, body) = HttpClient::new()
        .get(&url, &[(ACCESS_HEADER, access)], 1 << 24)
        .await
        .unwrap();
    let sequences = if status.is_success() {
        decode_signed_frames(&body)
            .unwrap()
            .iter()
            .map(|(f, _)| envelope::parse_header(f).unwrap().sequence)
            .collect()
    } else {
        Vec::new()
    };
    (
        status.as_u16(),
        sequences,
        (!status.is_success()).then(|| String::from_utf8_lossy(&body).to_string()),
    )
}

async fn post_receipt(
    daemon: &Daemon,
    receipt: &Receipt,
    buyer: &sp_core::sr25519::Pair,
) -> (u16, String) {
    let body = signed_receipt(receipt, buyer);
    let (status, text) = HttpClient::new()
        .post(
            &format!("http://{}/v1/receipts", daemon.http_addr),
            &[],
            body,
            1 << 16,
        )
        .await
        .unwrap();
    (status.as_u16(), String::from_utf8_lossy(&text).to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buyer_downloads_within_the_receipt_window() {
    let dir = tempfile::tempdir().unwrap();
    let (seller, buyer, operator) = (pair(1), pair(3), pair(2));
    let me = account(&operator);
    let view = view_with(vec![
        ChainEvent::StreamAssigned(assignment(&seller, std::slice::from_ref(&me))),
        ChainEvent::PurchaseUpdated(purchase(1, &buyer, 1_000)),
    ]);
    let daemon = start_vernemq_daemon(dir.path(), 2, view.clone()).await;
    daemon
        .node
        .store
        .insert_segments(&segments(0..=39), 10)
        .unwrap();

    // No receipt yet: the first 8 segments only.
    let (status, got, _) = download(&daemon, access_request(&buyer, &me, 1, 1), 0, 39).await;
    assert_eq!((status, got), (200, (0..=7).collect::<Vec<_>>()));
    // A buyer cannot skip ahead of the window.
    let (status, got, _) = download(&daemon, access_request(&buyer, &me, 1, 2), 20, 39).await;
    assert_eq!((status, got), (200, vec![]));

    // A receipt up to 7 opens 8..=15.
    let receipt = Receipt {
        purchase: 1,
        operator: me.clone(),
        up_to_sequence: 7,
        bytes: 1_000,
        nonce: 1,
    };
    assert_eq!(post_receipt(&daemon, &receipt, &buyer).await.0, 200);
    let (_, got, _) = download(&daemon, access_request(&buyer, &me, 1, 3), 8, 39).await;
    assert_eq!(got, (8..=15).collect::<Vec<_>>());
    // Replayed, lower, forged receipts are refused.
    assert_eq!(post_receipt(&daemon, &receipt, &buyer).await.0, 409);
    let lower = Receipt {
        up_to_sequence: 3,
        nonce: 2,
        ..receipt.clone()
    };
    assert_eq!(post_receipt(&daemon, &lower, &buyer).await.0, 409);
    let forged = Receipt {
        up_to_sequence: 39,
        nonce: 3,
        ..receipt.clone()
    };
    assert_eq!(post_receipt(&daemon, &forged, &seller).await.0, 401);
    let (status, _) = HttpClient::new()
        .post(
            &format!("http://{}/v1/receipts", daemon.http_addr),
            &[],
            "0xnot-hex",
            1 << 16,
        )
        .await
        .unwrap();
    assert_eq!(status.as_u16(), 400);

    // Bad access requests: replayed, wrong signer, another purchase, garbage, missing.
    let (status, _, body) = download(&daemon, access_request(&buyer, &me, 1, 3), 0, 5).await;
    assert_eq!(status, 403, "{body:?}");
    let (status, _, _) = download(&daemon, access_request(&seller, &me, 1, 10), 0, 5).await;
    assert_eq!(status, 401);
    let (status, _, _) = download(&daemon, access_request(&buyer, &me, 2, 10), 0, 5).await;
    assert_eq!(status, 400);
    let (status, _, _) = download(&daemon, "0x1234".into(), 0, 5).await;
    assert_eq!(status, 400);
    let url = format!("http://{}/v1/purchases/1/segments", daemon.http_addr);
    assert_eq!(
        HttpClient::new()
            .get(&url, &[], 1 << 16)
            .await
            .unwrap()
            .0
            .as_u16(),
        401
    );

    // Refund: nothing more is served.
    view.apply(ChainEvent::PurchaseRefunded { purchase: 1 });
    let (status, _, body) = download(&daemon, access_request(&buyer, &me, 1, 11), 0, 5).await;
    assert_eq!(status, 403, "{body:?}");

    let metrics = HttpClient::new()
        .get(
            &format!("http://{}/metrics", daemon.http_addr),
            &[],
            1 << 20,
        )
        .await
        .unwrap()
        .1;
    let metrics = String::from_utf8_lossy(&metrics).to_string();
    assert!(
        metrics.contains("fastdata_operator_segments_served_total 16"),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"fastdata_operator_receipts_total{result="accepted"} 1"#),
        "{metrics}"
    );
    daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_served_frame_is_signed_by_the_operator() {
    let dir = tempfile::tempdir().unwrap();
    let (seller, buyer, operator) = (pair(1), pair(3), pair(2));
    let me = account(&operator);
    let view = view_with(vec![
        ChainEvent::StreamAssigned(assignment(&seller, std::slice::from_ref(&me))),
        ChainEvent::PurchaseUpdated(purchase(1, &buyer, 1_000)),
    ]);
    let daemon = start_vernemq_daemon(dir.path(), 2, view).await;
    daemon
        .node
        .store
        .insert_segments(&segments(0..=5), 10)
        .unwrap();

    let url = format!(
        "http://{}/v1/purchases/1/segments?from=0&to=5",
        daemon.http_addr
    );
    let (status, body) = HttpClient::new()
        .get(
            &url,
            &[(ACCESS_HEADER, access_request(&buyer, &me, 1, 1))],
            1 << 24,
        )
        .await
        .unwrap();
    assert_eq!(status.as_u16(), 200);
    let frames = decode_signed_frames(&body).unwrap();
    assert_eq!(frames.len(), 6);
    for (seq, (served, signature)) in (0u64..).zip(&frames) {
        let stored = daemon.node.store.segment(&STREAM, seq).unwrap().unwrap();
        assert_eq!(
            *served,
            &stored.envelope[..],
            "the stored envelope, as stored"
        );
        let signature = sr25519::Signature::from_raw(*signature);
        let statement = SegmentStatement::of(STREAM, seq, served);
        assert!(
            statement.verify_sr25519(&signature, &operator.public(), &GENESIS),
            "segment {seq}: the operator's signature for this chain"
        );
        // Not for another operator, another chain, another sequence or other bytes.
        assert!(!statement.verify_sr25519(&signature, &seller.public(), &GENESIS));
        assert!(!statement.verify_sr25519(
            &signature,
            &operator.public(),
            &sp_core::H256::repeat_byte(1)
        ));
        let elsewhere = SegmentStatement::of(STREAM, seq + 1, served);
        assert!(!elsewhere.verify_sr25519(&signature, &operator.public(), &GENESIS));
        let mut flipped = served.to_vec();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        let forged = SegmentStatement::of(STREAM, seq, &flipped);
        assert!(!forged.verify_sr25519(&signature, &operator.public(), &GENESIS));
        // Two such statements for one segment are an equivocation.
        assert!(statement.conflicts_with(&forged));
    }
    daemon.shutdown().await;
}

fn two_operator_view(
    seller: &sp_core::sr25519::Pair,
    a: &Daemon,
    b_account: &AccountId,
    b_url: Option<String>,
) -> Arc<InMemoryChainView> {
    let mut events = vec![
        ChainEvent::StreamAssigned(assignment(seller, &[a.node.me.clone(), b_account.clone()])),
        ChainEvent::OperatorEndpoint {
            operator: a.node.me.clone(),
            http_url: format!("http://{}", a.http_addr),
        },
    ];
    if let Some(url) = b_url {
        events.push(ChainEvent::OperatorEndpoint {
            operator: b_account.clone(),
            http_url: url,
        });
    }
    view_with(events)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_operator_backfills_new_assignment_and_gap_without_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let seller = pair(1);
    let (a_pair, b_pair) = (pair(2), pair(4));
    let (a_account, b_account) = (account(&a_pair), account(&b_pair));

    // Operator A has 0..=99.
    let view_a = view_with(vec![]);
    let a = start_vernemq_daemon(&dir.path().join("a"), 2, view_a.clone()).await;
    a.node.store.insert_segments(&segments(0..=99), 10).unwrap();

    // Operator B is assigned the stream later; it catches up from A on start, below the
    // head A attested on chain.
    let view_b = two_operator_view(&seller, &a, &b_account, None);
    view_b.apply(ChainEvent::HeadAttested {
        stream: STREAM,
        head: 100,
    });
    let b = start_vernemq_daemon(&dir.path().join("b"), 4, view_b.clone()).await;
    view_a.apply_all(vec![
        ChainEvent::StreamAssigned(assignment(&seller, &[a_account.clone(), b_account.clone()])),
        ChainEvent::OperatorEndpoint {
            operator: b_account.clone(),
            http_url: format!("http://{}", b.http_addr),
        },
    ]);
    // B started before A knew about it: A refused B's first catch-up. A new assignment event
    // on B triggers nothing new (already known), so ask for the range explicitly, as ingest
    // would on its first gap.
    b.request_backfill(BackfillRequest {
        stream: STREAM,
        from: 0,
        to: 99,
    })
    .await
    .unwrap();
    let store_b = b.node.store.clone();
    assert!(
        wait_until(Duration::from_secs(20), || store_b.count(&STREAM).unwrap()
            == 100)
        .await,
        "B did not catch up"
    );
    assert_eq!(
        store_b.sequences(&STREAM, 0, u64::MAX).unwrap(),
        (0..=99).collect::<Vec<_>>()
    );
    // The envelopes are A's, byte for byte.
    assert_eq!(
        store_b.segment(&STREAM, 42).unwrap().unwrap().envelope,
        a.node.store.segment(&STREAM, 42).unwrap().unwrap().envelope
    );

    // A receives 100..=149; B got 120..=149 live but missed 100..=119: the gap is filled.
    a.node
        .store
        .insert_segments(&segments(100..=149), 11)
        .unwrap();
    store_b.insert_segments(&segments(120..=149), 11).unwrap();
    view_b.apply(ChainEvent::HeadAttested {
        stream: STREAM,
        head: 150,
    });
    b.request_backfill(BackfillRequest {
        stream: STREAM,
        from: 100,
        to: 119,
    })
    .await
    .unwrap();
    assert!(
        wait_until(Duration::from_secs(20), || store_b.count(&STREAM).unwrap()
            == 150)
        .await,
        "gap not filled"
    );
    assert_eq!(
        store_b.sequences(&STREAM, 0, u64::MAX).unwrap(),
        (0..=149).collect::<Vec<_>>()
    );
    // Asking again stores nothing twice.
    b.request_backfill(BackfillRequest {
        stream: STREAM,
        from: 0,
        to: 149,
    })
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(store_b.count(&STREAM).unwrap(), 150);

    // A third party that is not assigned gets nothing from A's replica endpoint; replays are
    // refused too.
    let client = HttpClient::new();
    let url = format!(
        "http://{}/v1/replica/streams/{}/segments?from=0&to=10",
        a.http_addr,
        hex::encode(STREAM.as_bytes())
    );
    let mallory = pair(66);
    let request = |who: &sp_core::sr25519::Pair, nonce: u64| {
        to_hex_scale(&Signed::sign(
            ReplicaRequest {
                stream: STREAM,
                requester: account(who),
                operator: a_account.clone(),
                expiry: 1_000,
                nonce,
            },
            who,
            &GENESIS,
        ))
    };
    assert_eq!(
        client
            .get(&url, &[(REPLICA_HEADER, request(&mallory, 1))], 1 << 20)
            .await
            .unwrap()
            .0
            .as_u16(),
        404
    );
    let (status, body) = client
        .get(
            &url,
            &[(REPLICA_HEADER, request(&b_pair, u64::MAX - 1))],
            1 << 24,
        )
        .await
        .unwrap();
    assert_eq!(status.as_u16(), 200);
    assert_eq!(decode_frames(&body).unwrap().len(), 11);
    assert_eq!(
        client
            .get(
                &url,
                &[(REPLICA_HEADER, request(&b_pair, u64::MAX - 1))],
                1 << 20
            )
            .await
            .unwrap()
            .0
            .as_u16(),
        403
    );

    a.shutdown().await;
    b.shutdown().await;
}

/// The seller, operators A, B and C, and the chain handing A's stream to B at block 10.
struct HandoverCase {
    seller: sr25519::Pair,
    b_pair: sr25519::Pair,
    c_pair: sr25519::Pair,
    a_account: AccountId,
    b_account: AccountId,
    handover: ChainEvent,
}

fn handover_case() -> HandoverCase {
    let (a_pair, b_pair) = (pair(2), pair(4));
    let (a_account, b_account) = (account(&a_pair), account(&b_pair));
    HandoverCase {
        seller: pair(1),
        handover: ChainEvent::StreamHandedOver {
            stream: STREAM,
            from: a_account.clone(),
            to: b_account.clone(),
            at: 10,
        },
        b_pair,
        c_pair: pair(5),
        a_account,
        b_account,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_former_operator_serves_its_successor_for_the_keep_period() {
    let dir = tempfile::tempdir().unwrap();
    let HandoverCase {
        seller,
        b_pair,
        c_pair,
        a_account,
        b_account,
        handover,
    } = handover_case();

    // A hosted the stream alone and stored 0..=39; at block 10 the chain moved it to B.
    let view_a = view_with(vec![ChainEvent::Finalized { number: 10 }, handover.clone()]);
    let a = start_vernemq_daemon(&dir.path().join("a"), 2, view_a.clone()).await;
    a.node.store.insert_segments(&segments(0..=39), 5).unwrap();

    // B hosts it alone (one replica): only A, its former operator, still has the data.
    let view_b = view_with(vec![
        ChainEvent::Finalized { number: 10 },
        handover,
        ChainEvent::OperatorEndpoint {
            operator: a_account.clone(),
            http_url: format!("http://{}", a.http_addr),
        },
        ChainEvent::StreamAssigned(assignment(&seller, std::slice::from_ref(&b_account))),
        ChainEvent::HeadAttested {
            stream: STREAM,
            head: 40,
        },
    ]);
    let b = start_vernemq_daemon(&dir.path().join("b"), 4, view_b.clone()).await;
    let store_b = b.node.store.clone();
    assert!(
        wait_until(Duration::from_secs(20), || store_b.count(&STREAM).unwrap()
            == 40)
        .await,
        "B did not backfill from its former operator"
    );
    assert_eq!(
        store_b.sequences(&STREAM, 0, u64::MAX).unwrap(),
        (0..=39).collect::<Vec<_>>()
    );
    assert_eq!(
        store_b.segment(&STREAM, 17).unwrap().unwrap().envelope,
        a.node.store.segment(&STREAM, 17).unwrap().unwrap().envelope
    );

    // A serves the successor alone, and only for the keep period.
    let client = HttpClient::new();
    let url = format!(
        "http://{}/v1/replica/streams/{}/segments?from=0&to=39",
        a.http_addr,
        hex::encode(STREAM.as_bytes())
    );
    let get = |who: &sr25519::Pair, nonce: u64| {
        let header = to_hex_scale(&Signed::sign(
            ReplicaRequest {
                stream: STREAM,
                requester: account(who),
                operator: a_account.clone(),
                expiry: 100_000,
                nonce,
            },
            who,
            &GENESIS,
        ));
        let (client, url) = (client.clone(), url.clone());
        async move {
            let (status, body) = client
                .get(&url, &[(REPLICA_HEADER, header)], 1 << 24)
                .await
                .unwrap();
            (status.as_u16(), body)
        }
    };
    let (status, _) = get(&c_pair, 1).await;
    assert_eq!(status, 404, "an operator that did not take the stream over");
    let (status, body) = get(&b_pair, u64::MAX - 2).await;
    assert_eq!(status, 200);
    assert_eq!(decode_frames(&body).unwrap().len(), 40);
    view_a.apply(ChainEvent::Finalized {
        number: 11 + fastdata_operator::retention::UNHOSTED_KEEP_BLOCKS,
    });
    let (status, _) = get(&b_pair, u64::MAX - 1).await;
    assert_eq!(status, 404, "after the keep period");

    a.shutdown().await;
    b.shutdown().await;
}

/// `GET` segments `0..=39` of [`STREAM`] from `operator`'s replica endpoint at `base`, as
/// `who`: the status and the number of segments.
async fn replica_get(
    base: std::net::SocketAddr,
    operator: &AccountId,
    who: &sr25519::Pair,
    nonce: u64,
) -> (u16, usize) {
    let url = format!(
        "http://{base}/v1/replica/streams/{}/segments?from=0&to=39",
        hex::encode(STREAM.as_bytes())
    );
    let header = to_hex_scale(&Signed::sign(
        ReplicaRequest {
            stream: STREAM,
            requester: account(who),
            operator: operator.clone(),
            expiry: 100_000,
            nonce,
        },
        who,
        &GENESIS,
    ));
    let (status, body) = HttpClient::new()
        .get(&url, &[(REPLICA_HEADER, header)], 1 << 24)
        .await
        .unwrap();
    let frames = if status.is_success() {
        decode_frames(&body).unwrap().len()
    } else {
        0
    };
    (status.as_u16(), frames)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handovers_survive_restarts_of_both_operators() {
    let dir = tempfile::tempdir().unwrap();
    let HandoverCase {
        seller,
        b_pair,
        c_pair,
        a_account,
        b_account,
        handover,
    } = handover_case();
    let hosted_by_b = || {
        vec![
            ChainEvent::StreamAssigned(assignment(&seller, std::slice::from_ref(&b_account))),
            ChainEvent::HeadAttested {
                stream: STREAM,
                head: 40,
            },
        ]
    };
    let config = |name: &str, seed: u8| vernemq_config(&dir.path().join(name), &seed_suri(seed), 8);

    // A hosted the stream alone and stored 0..=39; at block 10 the chain moved it to B. Both
    // saw the handover, but B did not know A's endpoint yet, so it backfilled nothing.
    let a = Daemon::start(
        config("a", 2),
        view_with(vec![handover.clone()]),
        Arc::new(NoChainSubmitter),
    )
    .await
    .unwrap();
    a.node.store.insert_segments(&segments(0..=39), 5).unwrap();
    let mut events = vec![handover];
    events.extend(hosted_by_b());
    let b = Daemon::start(
        config("b", 4),
        view_with(events),
        Arc::new(NoChainSubmitter),
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(b.node.store.count(&STREAM).unwrap(), 0);
    a.shutdown().await;
    b.shutdown().await;

    // Both restart. Their new views come from chain state, which does not list handovers:
    // each daemon loads them from its store.
    let view_a = view_with(vec![ChainEvent::Finalized { number: 12 }]);
    let a = Daemon::start(config("a", 2), view_a.clone(), Arc::new(NoChainSubmitter))
        .await
        .unwrap();
    assert_eq!(
        view_a.handovers(&STREAM, 0),
        vec![(a_account.clone(), b_account.clone())]
    );
    let mut events = vec![
        ChainEvent::Finalized { number: 12 },
        ChainEvent::OperatorEndpoint {
            operator: a_account.clone(),
            http_url: format!("http://{}", a.http_addr),
        },
    ];
    events.extend(hosted_by_b());
    let view_b = view_with(events);
    let b = Daemon::start(config("b", 4), view_b.clone(), Arc::new(NoChainSubmitter))
        .await
        .unwrap();
    assert_eq!(
        view_b.handovers(&STREAM, 0),
        vec![(a_account.clone(), b_account.clone())]
    );

    // B still backfills from its former operator, which still serves it.
    let store_b = b.node.store.clone();
    assert!(
        wait_until(Duration::from_secs(20), || store_b.count(&STREAM).unwrap()
            == 40)
        .await,
        "B did not backfill from its former operator after the restarts"
    );
    assert_eq!(
        store_b.sequences(&STREAM, 0, u64::MAX).unwrap(),
        (0..=39).collect::<Vec<_>>()
    );
    for sequence in [0, 17, 39] {
        assert_eq!(
            store_b
                .segment(&STREAM, sequence)
                .unwrap()
                .unwrap()
                .envelope,
            a.node
                .store
                .segment(&STREAM, sequence)
                .unwrap()
                .unwrap()
                .envelope
        );
    }

    // The restarted A admits its successor and refuses a third operator.
    assert_eq!(
        replica_get(a.http_addr, &a_account, &c_pair, 1).await,
        (404, 0),
        "an operator that did not take the stream over"
    );
    assert_eq!(
        replica_get(a.http_addr, &a_account, &b_pair, u64::MAX - 2).await,
        (200, 40)
    );
    // After the keep period, A forgets the handover and refuses B too.
    view_a.apply(ChainEvent::Finalized {
        number: 11 + fastdata_operator::retention::UNHOSTED_KEEP_BLOCKS,
    });
    assert!(view_a.handovers(&STREAM, 0).is_empty());
    assert_eq!(
        replica_get(a.http_addr, &a_account, &b_pair, u64::MAX - 1).await,
        (404, 0),
        "after the keep period"
    );

    a.shutdown().await;
    b.shutdown().await;
}

//! The SDK's operator client against a running daemon: every request the client builds is
//! routed by the server and every answer parses, because both sides use the one protocol in
//! `fastdata_primitives::operator_api`. Also the chain's upload-token rule over HTTP: a token
//! for an epoch the chain pruned is refused (the daemon once accepted it).

use crate::common::*;
use fastdata_operator::{auth::stream_topic, chain::ChainEvent, store::NewSegment};
use fastdata_sdk::{
    operator::{OperatorClient, OperatorEndpoint},
    Account, Error,
};
use sp_core::crypto::Ss58Codec;

#[tokio::test]
async fn every_client_request_is_routed_and_understood() {
    let dir = tempfile::tempdir().unwrap();
    let (seller, operator, buyer) = (pair(1), pair(2), pair(3));
    let me = account(&operator);
    // Epoch 2 is current; the chain pruned epoch 0 (its oldest retained epoch is 1).
    let mut stream = assignment(&seller, std::slice::from_ref(&me));
    (stream.epoch, stream.oldest_epoch) = (2, 1);
    let view = view_with_heads(
        vec![
            ChainEvent::StreamAssigned(stream),
            ChainEvent::PurchaseUpdated(purchase(1, &buyer, 1_000)),
        ],
        &[(1, 0)],
    );
    let daemon = start_vernemq_daemon(dir.path(), 2, view).await;
    let stored: Vec<NewSegment> = (0..=3)
        .map(|sequence| NewSegment {
            stream: STREAM,
            sequence,
            envelope: segment(sequence),
        })
        .collect();
    daemon.node.store.insert_segments(&stored, 10).unwrap();
    let client = OperatorClient::new(
        OperatorEndpoint {
            account: me.clone(),
            broker_url: "mqtt://127.0.0.1:1".into(),
            http_url: format!("http://{}", daemon.http_addr),
        },
        GENESIS,
    );
    let (seller, buyer) = (Account::from_seed(&[1; 32]), Account::from_seed(&[3; 32]));

    // GET /v1/terms
    let terms = client.terms().await.unwrap().expect("terms are routed");
    assert_eq!(terms.operator, me.to_ss58check());
    assert_eq!(terms.genesis, GENESIS);
    assert_eq!(terms.receipt_window, 8);

    // POST /v1/broker/session with an upload token of the current epoch.
    let publish = client
        .upload_session(&seller, STREAM, 2, 1_000)
        .await
        .unwrap();
    assert_eq!(publish.access, "publish");
    assert_eq!(publish.topic, stream_topic(&STREAM));
    assert_eq!(
        publish.client_id.as_deref(),
        Some(publish.username.as_str())
    );
    assert_eq!(publish.receipt_window, Some(8));
    // …and with one of the pruned epoch 0: refused, as `pallet-offers` refuses it.
    let pruned = client.upload_session(&seller, STREAM, 0, 1_000).await;
    assert!(
        matches!(&pruned, Err(Error::Operator { code: Some(code), detail, .. })
            if code == "not_assigned" && detail.contains("unknown epoch")),
        "{pruned:?}"
    );

    // POST /v1/broker/session with an access request.
    let subscribe = client.access_session(&buyer, 1, 1_000).await.unwrap();
    assert_eq!(subscribe.access, "subscribe");
    assert_eq!(subscribe.topic, stream_topic(&STREAM));

    // GET /v1/purchases/{id}/segments?from=&to= with the access header.
    let download = client
        .download(&buyer, 1, 1_000, Some(1), Some(3))
        .await
        .unwrap();
    assert_eq!(
        download.envelopes,
        stored[1..=3]
            .iter()
            .map(|s| s.envelope.clone())
            .collect::<Vec<_>>()
    );
    assert_eq!(download.refused, None);
    assert_eq!(download.served_to, Some(3));
    assert_eq!(download.window_end, Some(7));

    // POST /v1/receipts
    let receipt = client.post_receipt(&buyer, 1, 3, 100).await.unwrap();
    assert_eq!(
        daemon
            .node
            .receipts
            .latest(1)
            .unwrap()
            .map(|(r, _)| r.up_to_sequence),
        Some(receipt.up_to_sequence)
    );

    // GET /v1/streams/{stream}/head
    assert_eq!(client.stored_head(&STREAM).await.unwrap(), Some(3));
    daemon.shutdown().await;
}

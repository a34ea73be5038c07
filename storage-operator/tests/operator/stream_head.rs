//! `GET /v1/streams/{stream}/head` through the SDK's client: what a seller's service asks
//! every operator after a crash before it fills the sequences it had reserved.

use crate::common::*;
use fastdata_operator::{chain::ChainEvent, store::NewSegment};
use fastdata_sdk::operator::{OperatorClient, OperatorEndpoint};
use sp_core::H256;

#[tokio::test]
async fn the_stored_head_of_a_hosted_stream_is_answered() {
    let dir = tempfile::tempdir().unwrap();
    let (seller, operator) = (pair(1), pair(2));
    let me = account(&operator);
    let view = view_with(vec![ChainEvent::StreamAssigned(assignment(
        &seller,
        std::slice::from_ref(&me),
    ))]);
    let daemon = start_vernemq_daemon(dir.path(), 2, view).await;
    let client = OperatorClient::new(
        OperatorEndpoint {
            account: me,
            broker_url: "mqtt://127.0.0.1:1".into(),
            http_url: format!("http://{}", daemon.http_addr),
        },
        GENESIS,
    );
    // Nothing stored yet, then the highest stored sequence (with a hole below it).
    assert_eq!(client.stored_head(&STREAM).await.unwrap(), None);
    let stored: Vec<NewSegment> = [0, 1, 2, 9]
        .into_iter()
        .map(|sequence| NewSegment {
            stream: STREAM,
            sequence,
            envelope: segment(sequence),
        })
        .collect();
    daemon.node.store.insert_segments(&stored, 10).unwrap();
    assert_eq!(client.stored_head(&STREAM).await.unwrap(), Some(9));
    // A stream not hosted here is refused by name.
    let err = client.stored_head(&H256([8; 32])).await.unwrap_err();
    assert!(err.to_string().contains("unknown_stream"), "{err}");
    daemon.shutdown().await;
}

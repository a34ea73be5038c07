//! Metadata checks. Which calls, events, storage items and runtime APIs the SDK uses, and
//! their argument and field types, the compiler checks against `metadata/fastdata.scale`
//! (the SDK reaches the chain only through the code subxt generates from it). What is left:
//!
//! - `substituted_types_encode_as_the_metadata_describes` (offline): the runtime's own types
//!   the generated code takes as `Static<T>` (encoded with their SCALE codec, which subxt does
//!   not check against the metadata) encode as the metadata describes the calls' arguments.
//! - `exported_metadata_is_current` (needs a node, `#[ignore]`, run by `scripts/test`): the
//!   file is byte-for-byte the V16 metadata the running node serves from the runtime API
//!   `Metadata_metadata_at_version(16)`, so a runtime change without `scripts/export-metadata`
//!   fails.

use fastdata_sdk::subxt::metadata::Metadata;

const FILE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/metadata/fastdata.scale");

/// The metadata version the file holds (`scripts/export-metadata`).
const METADATA_VERSION: u32 = 16;

fn exported() -> Option<Vec<u8>> {
    match std::fs::read(FILE) {
        Ok(bytes) => Some(bytes),
        Err(_) => {
            eprintln!("{FILE} does not exist yet: run scripts/export-metadata; skipping");
            None
        }
    }
}

/// Every call taking a runtime type substituted as `Static<T>` (see
/// `fastdata_sdk::runtime::substitutes`), encoded by the generated code as the runtime's
/// outer call enum, decodes field by field as the metadata's types with nothing left over.
#[test]
fn substituted_types_encode_as_the_metadata_describes() {
    use fastdata_primitives::{
        api_market::{Licence, OfferTerms},
        custody::SegmentStatement,
        escrow::DisputeReason,
        receipt::Receipt,
        PaymentMode,
    };
    use fastdata_sdk::{
        chain::{fastdata, RuntimeCall},
        subxt::{ext::scale_encode::EncodeAsType, utils::Static},
    };
    use sp_core::H256;
    use sp_runtime::{AccountId32, MultiSignature, Perbill};

    let Some(bytes) = exported() else {
        return;
    };
    let metadata = Metadata::decode_from(&bytes).expect("metadata/fastdata.scale decodes");
    let who = AccountId32::new([7; 32]);
    let terms = OfferTerms {
        licence: Licence::Custom(H256::repeat_byte(3)),
        resale_allowed: true,
        verified_only: false,
        verified_discount: Perbill::from_percent(5),
        min_trust_score: 10,
        retention: 100,
        replication: 2,
    };
    let signature =
        |byte| MultiSignature::Sr25519(sp_core::sr25519::Signature::from_raw([byte; 64]));
    let topic = || fastdata_sdk::chain::bounded(b"a/b".to_vec());
    use fastdata::{escrow::Call as Escrow, offers::Call as Offers, operators::Call as Operators};
    let calls = vec![
        RuntimeCall::Offers(Offers::create_offer {
            topic: topic(),
            mode: Static(PaymentMode::Batch { first: 1, last: 2 }),
            price: 7,
            terms: Static(terms.clone()),
        }),
        RuntimeCall::Offers(Offers::create_offer {
            topic: topic(),
            mode: Static(PaymentMode::Stream { period: 10 }),
            price: 7,
            terms: Static(OfferTerms {
                licence: Licence::InternalUse,
                ..terms.clone()
            }),
        }),
        RuntimeCall::Offers(Offers::update_offer {
            offer: 3,
            price: Some(9),
            terms: Some(Static(terms.clone())),
        }),
        RuntimeCall::Offers(Offers::create_offer_with_stream {
            topic: topic(),
            mode: Static(PaymentMode::Stream { period: 10 }),
            price: 7,
            terms: Static(terms),
            name: fastdata_sdk::chain::bounded(b"line".to_vec()),
            timestamp: 9,
            commitment: H256::zero(),
        }),
        RuntimeCall::Escrow(Escrow::dispute {
            purchase: 3,
            reason: Static(DisputeReason::KeysMismatch),
            evidence: Some(H256::zero()),
        }),
        RuntimeCall::Escrow(Escrow::claim {
            receipt: Static(Receipt {
                purchase: 3,
                operator: who.clone(),
                up_to_sequence: 9,
                bytes: 900,
                nonce: 2,
            }),
            signature: Static(signature(1)),
        }),
        RuntimeCall::Operators(Operators::report_equivocation {
            operator: fastdata_sdk::chain::lookup(&who),
            first: (
                Static(SegmentStatement::of(H256::zero(), 3, b"a")),
                Static(signature(1)),
            ),
            second: (
                Static(SegmentStatement::of(H256::zero(), 3, b"b")),
                Static(signature(2)),
            ),
        }),
    ];
    let call_ty = metadata.outer_enums().call_enum_ty();
    let mut problems = Vec::new();
    for call in calls {
        let bytes = match call.encode_as_type(call_ty, metadata.types()) {
            Ok(bytes) => bytes,
            Err(e) => {
                problems.push(format!("{call:?}: not encodable: {e}"));
                continue;
            }
        };
        let mut input = &bytes[..];
        match fastdata_sdk::subxt::ext::scale_value::scale::decode_as_type(
            &mut input,
            call_ty,
            metadata.types(),
        ) {
            Err(e) => problems.push(format!("{call:?}: {e}")),
            Ok(_) if !input.is_empty() => {
                problems.push(format!("{call:?}: {} bytes left over", input.len()))
            }
            Ok(_) => {}
        }
    }
    assert!(
        problems.is_empty(),
        "argument layouts differ:\n{}",
        problems.join("\n")
    );
}

#[tokio::test]
#[ignore = "needs a running fastdata-node; run by scripts/test"]
async fn exported_metadata_is_current() {
    use codec::{Decode, Encode};
    let url = std::env::var("FASTDATA_WS").unwrap_or_else(|_| fastdata_sdk::DEFAULT_URL.into());
    let bytes =
        std::fs::read(FILE).expect("metadata/fastdata.scale exists (scripts/export-metadata)");
    let rpc = fastdata_sdk::subxt::rpcs::RpcClient::from_insecure_url(&url)
        .await
        .expect("node reachable");
    // `Metadata_metadata_at_version(16)` answers a SCALE `Option<OpaqueMetadata>`: 0x01, a
    // compact length, the metadata bytes.
    let answer: String = rpc
        .request(
            "state_call",
            fastdata_sdk::subxt::rpcs::rpc_params![
                "Metadata_metadata_at_version",
                format!("0x{}", hex::encode(METADATA_VERSION.encode()))
            ],
        )
        .await
        .expect("state_call Metadata_metadata_at_version");
    let answer = hex::decode(answer.trim_start_matches("0x")).expect("hex");
    let served = Option::<Vec<u8>>::decode(&mut &answer[..])
        .expect("Option<OpaqueMetadata>")
        .unwrap_or_else(|| panic!("the node does not serve V{METADATA_VERSION} metadata"));
    assert!(
        served == bytes,
        "client-sdk/metadata/fastdata.scale is stale ({} bytes, node serves {}): run scripts/export-metadata",
        bytes.len(),
        served.len()
    );
}

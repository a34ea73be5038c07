//! Metadata checks.
//!
//! - `sdk_matches_exported_metadata` (offline): every call, event, runtime API and storage item
//!   the SDK uses ([`fastdata_sdk::chain::CALLS`] etc.) exists in `metadata/fastdata.scale`
//!   with the argument and field names the SDK encodes and decodes.
//! - `exported_metadata_is_current` (needs a node, `#[ignore]`, run by `scripts/test`): the
//!   file is byte-for-byte what the running node serves from `state_getMetadata`, so a runtime
//!   change without `scripts/export-metadata` fails.

use fastdata_sdk::chain::{CALLS, EVENTS, RUNTIME_APIS, STORAGE};
use fastdata_sdk::subxt::metadata::Metadata;

const FILE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/metadata/fastdata.scale");

fn exported() -> Option<Vec<u8>> {
    match std::fs::read(FILE) {
        Ok(bytes) => Some(bytes),
        Err(_) => {
            eprintln!("{FILE} does not exist yet: run scripts/export-metadata; skipping");
            None
        }
    }
}

fn names(fields: &[scale_info::Field<scale_info::form::PortableForm>]) -> Vec<String> {
    fields
        .iter()
        .map(|f| f.name.clone().unwrap_or_default())
        .collect()
}

#[test]
fn sdk_matches_exported_metadata() {
    let Some(bytes) = exported() else {
        return;
    };
    let metadata = Metadata::decode_from(&bytes).expect("metadata/fastdata.scale decodes");
    let mut problems = Vec::new();
    for (pallet, call, args) in CALLS {
        match metadata
            .pallet_by_name(pallet)
            .and_then(|p| p.call_variant_by_name(call))
        {
            None => problems.push(format!("call {pallet}::{call} is missing")),
            Some(v) => {
                let found = names(&v.fields);
                if found != args.iter().map(|s| s.to_string()).collect::<Vec<_>>() {
                    problems.push(format!(
                        "call {pallet}::{call} takes {found:?}, the SDK sends {args:?}"
                    ));
                }
            }
        }
    }
    for (pallet, event, leading) in EVENTS {
        let variant = metadata
            .pallet_by_name(pallet)
            .and_then(|p| p.event_variants())
            .and_then(|vs| vs.iter().find(|v| v.name == *event));
        match variant {
            None => problems.push(format!("event {pallet}::{event} is missing")),
            Some(v) => {
                let found = names(&v.fields);
                if found.len() < leading.len()
                    || found[..leading.len()]
                        != leading.iter().map(|s| s.to_string()).collect::<Vec<_>>()[..]
                {
                    problems.push(format!(
                        "event {pallet}::{event} has {found:?}, the SDK reads {leading:?} first"
                    ));
                }
            }
        }
    }
    // `state_getMetadata` serves V14, which has no runtime API section; check the APIs only
    // when the file carries them (V15+).
    let has_apis = metadata.runtime_api_traits().len() > 0;
    for (api, method) in RUNTIME_APIS.iter().filter(|_| has_apis) {
        if metadata
            .runtime_api_trait_by_name(api)
            .and_then(|t| t.method_by_name(method))
            .is_none()
        {
            problems.push(format!("runtime API {api}::{method} is missing"));
        }
    }
    for (pallet, item) in STORAGE {
        if metadata
            .pallet_by_name(pallet)
            .and_then(|p| p.storage())
            .and_then(|s| s.entry_by_name(item))
            .is_none()
        {
            problems.push(format!("storage {pallet}::{item} is missing"));
        }
    }
    assert!(
        problems.is_empty(),
        "SDK and runtime disagree:\n{}",
        problems.join("\n")
    );
}

/// The SCALE bytes the SDK sends for each call (built from the same `fastdata-primitives`
/// types as the SDK) decode exactly, field by field, as the call's argument types in the
/// metadata: same layout, nothing left over.
#[test]
fn sdk_argument_encodings_match_exported_metadata() {
    use codec::Encode;
    use fastdata_primitives::{
        api_market::{Licence, OfferTerms},
        escrow::DisputeReason,
        PaymentMode,
    };
    use fastdata_sdk::{
        chain::encode_call,
        identity::{lookup, RawCall, Service},
    };
    use sp_core::H256;
    use sp_runtime::{AccountId32, Perbill};

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
    let service = Service {
        id: b"broker".to_vec(),
        service_type: b"MQTTBroker".to_vec(),
        endpoint: b"mqtt://x:1883".to_vec(),
    };
    let samples: Vec<(&str, &str, Vec<Vec<u8>>)> = vec![
        (
            "Did",
            "create_did",
            vec![[9u8; 32].encode(), vec![service].encode()],
        ),
        ("Did", "rotate_key_agreement", vec![[9u8; 32].encode()]),
        (
            "Did",
            "register_issuer",
            vec![
                lookup(&who).encode(),
                b"KYC body".to_vec().encode(),
                Perbill::from_percent(50).encode(),
            ],
        ),
        (
            "Did",
            "attest_credential",
            vec![
                lookup(&who).encode(),
                b"KYC".to_vec().encode(),
                H256::zero().encode(),
                5u32.encode(),
            ],
        ),
        (
            "Did",
            "revoke_credential",
            vec![lookup(&who).encode(), H256::zero().encode()],
        ),
        (
            "Balances",
            "transfer_keep_alive",
            vec![lookup(&who).encode(), codec::Compact(5u128).encode()],
        ),
        (
            "Offers",
            "create_offer",
            vec![
                b"a/b".to_vec().encode(),
                PaymentMode::<u32>::Batch { first: 1, last: 2 }.encode(),
                7u128.encode(),
                terms.encode(),
            ],
        ),
        (
            "Offers",
            "create_offer",
            vec![
                b"a/b".to_vec().encode(),
                PaymentMode::<u32>::Stream { period: 10 }.encode(),
                7u128.encode(),
                terms.encode(),
            ],
        ),
        (
            "Offers",
            "register_stream",
            vec![
                3u64.encode(),
                b"line".to_vec().encode(),
                9u64.encode(),
                H256::zero().encode(),
            ],
        ),
        (
            "Offers",
            "rotate_epoch",
            vec![H256::zero().encode(), H256::zero().encode()],
        ),
        ("Offers", "close_stream", vec![H256::zero().encode()]),
        ("Offers", "release_stream", vec![H256::zero().encode()]),
        ("Offers", "retire_offer", vec![3u64.encode()]),
        (
            "Escrow",
            "purchase",
            vec![3u64.encode(), 2u32.encode(), 9u128.encode()],
        ),
        (
            "Escrow",
            "deliver_keys",
            vec![3u64.encode(), 1u32.encode(), vec![1u8; 113].encode()],
        ),
        ("Escrow", "settle", vec![3u64.encode()]),
        ("Escrow", "refund_missing_keys", vec![3u64.encode()]),
        (
            "Escrow",
            "dispute",
            vec![
                3u64.encode(),
                DisputeReason::KeysMismatch.encode(),
                Some(H256::zero()).encode(),
            ],
        ),
        (
            "Escrow",
            "answer_dispute",
            vec![3u64.encode(), H256::zero().encode()],
        ),
        (
            "Trust",
            "rate",
            vec![3u64.encode(), 90u8.encode(), Some(H256::zero()).encode()],
        ),
        (
            "Operators",
            "report_equivocation",
            vec![
                lookup(&who).encode(),
                (
                    fastdata_primitives::custody::SegmentStatement::of(H256::zero(), 3, b"a"),
                    sp_runtime::MultiSignature::Sr25519(sp_core::sr25519::Signature::from_raw(
                        [1; 64],
                    )),
                )
                    .encode(),
                (
                    fastdata_primitives::custody::SegmentStatement::of(H256::zero(), 3, b"b"),
                    sp_runtime::MultiSignature::Sr25519(sp_core::sr25519::Signature::from_raw(
                        [2; 64],
                    )),
                )
                    .encode(),
            ],
        ),
    ];
    // Claims and key deliveries go in `Utility::force_batch` as `RuntimeCall`s encoded by hand.
    let receipt = fastdata_primitives::receipt::Receipt {
        purchase: 3,
        operator: who.clone(),
        up_to_sequence: 9,
        bytes: 900,
        nonce: 2,
    };
    let signature =
        sp_runtime::MultiSignature::Sr25519(sp_core::sr25519::Signature::from_raw([1; 64]));
    let claim_args = vec![receipt.encode(), signature.encode()];
    let deliver_args = vec![3u64.encode(), 1u32.encode(), vec![1u8; 113].encode()];
    let batched = |pallet: &str, call: &str, args: &[Vec<u8>]| {
        RawCall(encode_call(&metadata, pallet, call, &args.concat()).expect("known call"))
    };
    let batch = vec![
        batched("Escrow", "deliver_keys", &deliver_args),
        batched("Escrow", "claim", &claim_args),
    ];
    let samples: Vec<(&str, &str, Vec<Vec<u8>>)> = samples
        .into_iter()
        .chain([
            ("Escrow", "claim", claim_args.clone()),
            ("Utility", "force_batch", vec![batch.encode()]),
        ])
        .collect();
    let mut problems = Vec::new();
    for (pallet, call, args) in samples {
        let variant = metadata
            .pallet_by_name(pallet)
            .and_then(|p| p.call_variant_by_name(call))
            .unwrap_or_else(|| panic!("{pallet}::{call} missing"));
        assert_eq!(variant.fields.len(), args.len(), "{pallet}::{call} arity");
        for (field, arg) in variant.fields.iter().zip(args) {
            let mut input = &arg[..];
            let decoded = fastdata_sdk::subxt::ext::scale_value::scale::decode_as_type(
                &mut input,
                field.ty.id,
                metadata.types(),
            );
            match decoded {
                Err(e) => problems.push(format!("{pallet}::{call}.{:?}: {e}", field.name)),
                Ok(_) if !input.is_empty() => problems.push(format!(
                    "{pallet}::{call}.{:?}: {} bytes left over",
                    field.name,
                    input.len()
                )),
                Ok(_) => {}
            }
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
    let url = std::env::var("FASTDATA_WS").unwrap_or_else(|_| fastdata_sdk::DEFAULT_URL.into());
    let bytes =
        std::fs::read(FILE).expect("metadata/fastdata.scale exists (scripts/export-metadata)");
    let rpc = fastdata_sdk::subxt::rpcs::RpcClient::from_insecure_url(&url)
        .await
        .expect("node reachable");
    let served: String = rpc
        .request(
            "state_getMetadata",
            fastdata_sdk::subxt::rpcs::rpc_params![],
        )
        .await
        .expect("state_getMetadata");
    let served = hex::decode(served.trim_start_matches("0x")).expect("hex");
    assert!(
        served == bytes,
        "client-sdk/metadata/fastdata.scale is stale ({} bytes, node serves {}): run scripts/export-metadata",
        bytes.len(),
        served.len()
    );
}

/// Typed codegen (`fastdata_sdk::runtime`) and the SDK's `fastdata-primitives` encoding give
/// the same call data.
#[test]
fn typed_codegen_and_sdk_encode_calls_identically() {
    use fastdata_sdk::{
        chain::arg,
        runtime::fastdata,
        subxt::{ext::frame_decode::extrinsics::encode_call_data, tx::Payload, utils::H256},
    };
    fn encode<P: Payload>(payload: &P, metadata: &Metadata) -> Vec<u8> {
        encode_call_data(
            payload.pallet_name(),
            payload.call_name(),
            payload.call_data(),
            metadata,
            metadata.types(),
        )
        .expect("encodes")
    }
    let metadata = Metadata::decode_from(&std::fs::read(FILE).expect("metadata file"))
        .expect("metadata/fastdata.scale decodes");
    let sdk = fastdata_sdk::subxt::dynamic::tx(
        "Escrow",
        "purchase",
        (arg(7u64), arg(2u32), arg(1_000u128)),
    );
    let typed = fastdata::transactions().escrow().purchase(7, 2, 1_000);
    assert_eq!(encode(&typed, &metadata), encode(&sdk, &metadata));

    let stream = sp_core::H256::repeat_byte(4);
    let commitment = sp_core::H256::repeat_byte(5);
    let sdk =
        fastdata_sdk::subxt::dynamic::tx("Offers", "rotate_epoch", (arg(stream), arg(commitment)));
    let typed = fastdata::transactions()
        .offers()
        .rotate_epoch(H256(stream.0), H256(commitment.0));
    assert_eq!(encode(&typed, &metadata), encode(&sdk, &metadata));

    let sdk = fastdata_sdk::subxt::dynamic::tx(
        "Trust",
        "rate",
        (arg(3u64), arg(90u8), arg(Some(commitment))),
    );
    let typed = fastdata::transactions()
        .trust()
        .rate(3, 90, Some(H256(commitment.0)));
    assert_eq!(encode(&typed, &metadata), encode(&sdk, &metadata));
}

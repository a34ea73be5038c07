//! The `fastdata` command line against a running dev node and a live operator: a seller and a
//! buyer made by the CLI trade a file, and the buyer's output equals the seller's input byte
//! for byte. Run by `scripts/test` with the other end-to-end tests (`--test-threads=1`).

use std::{path::Path, process::Command};

use fastdata_e2e::{binary, node_url, Network};
use serde_json::Value;

/// Runs `fastdata --json` with `args`; returns the exit code, the JSON it printed (or Null)
/// and its standard error.
fn fastdata(keystore: &Path, args: &[&str]) -> (i32, Value, String) {
    let out = Command::new(binary("fastdata").unwrap())
        .arg("--json")
        .arg("--url")
        .arg(node_url())
        .arg("--keystore")
        .arg(keystore)
        .args(args)
        .env_remove("FASTDATA_SURI")
        .env_remove("FASTDATA_ACCOUNT")
        .output()
        .unwrap();
    let json = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (
        out.status.code().unwrap_or(-1),
        json,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Like [`fastdata`], but the command must succeed.
fn ok(keystore: &Path, args: &[&str]) -> Value {
    let (code, json, err) = fastdata(keystore, args);
    assert_eq!(code, 0, "fastdata {args:?} failed: {err}");
    json
}

fn text<'a>(v: &'a Value, field: &str) -> &'a str {
    v[field]
        .as_str()
        .unwrap_or_else(|| panic!("no {field} in {v}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a running fastdata-node; run by scripts/test"]
async fn cli_seller_publishes_a_file_and_cli_buyer_receives_it_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let net = Network::start(&node_url(), dir.path(), 1, None)
        .await
        .unwrap();
    let ks = dir.path().join("keystore.json");

    // Seller and buyer: new accounts with DIDs, funded by Alice; Alice attests the seller.
    let seller = ok(
        &ks,
        &[
            "--suri", "//Alice", "did", "create", "--name", "seller", "--fund", "1000",
        ],
    );
    let buyer = ok(
        &ks,
        &[
            "--suri", "//Alice", "did", "create", "--name", "buyer", "--fund", "100",
        ],
    );
    assert!(text(&seller, "did").starts_with("did:fast:"), "{seller}");
    assert_eq!(text(&buyer, "name"), "buyer", "{buyer}");
    assert_ne!(text(&buyer, "account"), text(&seller, "account"));
    let seller_account = text(&seller, "account").to_owned();
    let attested = ok(
        &ks,
        &[
            "--suri",
            "//Alice",
            "issuer",
            "attest",
            &seller_account,
            "KYC",
            "--claim",
            "chamber of commerce 7",
        ],
    );
    assert!(
        text(&attested, "subject").ends_with(&seller_account),
        "{attested}"
    );

    // A batch offer of ten 1000-byte segments, its stream, and the file published.
    let input: Vec<u8> = (0..10_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let file = dir.path().join("vibration.bin");
    std::fs::write(&file, &input).unwrap();
    let offer = ok(
        &ks,
        &[
            "--account",
            "seller",
            "offer",
            "create",
            "--topic",
            "plant7/cli/vibration",
            "--batch",
            "0..9",
            "--price",
            "3FAST",
        ],
    );
    let offer = offer["offer"].as_u64().unwrap().to_string();
    let stream = ok(
        &ks,
        &[
            "--account",
            "seller",
            "stream",
            "register",
            &offer,
            "vibration-1",
        ],
    );
    let ops = stream["operators"].as_array().unwrap();
    assert_eq!(ops.len(), 1, "{stream}");
    let stream = text(&stream, "stream").to_owned();
    let published = ok(
        &ks,
        &[
            "--account",
            "seller",
            "publish",
            &stream,
            "--file",
            file.to_str().unwrap(),
            "--chunk",
            "1000",
        ],
    );
    assert_eq!(published["segments"], 10, "{published}");
    assert_eq!(published["last_sequence"], 9, "{published}");
    assert_eq!(published["bytes"], 10_000, "{published}");

    // Before buying, receive explains what is missing.
    let (code, _, err) = fastdata(&ks, &["--account", "buyer", "receive", "999999"]);
    assert_eq!(code, 6, "{err}");

    // The buyer buys; the seller's key-delivery pass seals the keys; the buyer receives.
    let bought = ok(
        &ks,
        &["--account", "buyer", "buy", &offer, "--wait-keys", "0"],
    );
    let purchase = bought["purchase"].as_u64().unwrap().to_string();
    let delivered = ok(
        &ks,
        &["--account", "seller", "stream", "deliver-keys", "--once"],
    );
    // One line per delivery; this seller has exactly one.
    assert_eq!(delivered["purchase"].to_string(), purchase, "{delivered}");
    assert_eq!(delivered["ok"], true, "{delivered}");
    let out = dir.path().join("received.bin");
    let received = ok(
        &ks,
        &[
            "--account",
            "buyer",
            "receive",
            &purchase,
            "--out",
            out.to_str().unwrap(),
        ],
    );
    assert_eq!(received["segments"], 10, "{received}");
    assert_eq!(received["rejected"], 0, "{received}");
    assert_eq!(received["duplicates"], 0, "{received}");
    assert_eq!(std::fs::read(&out).unwrap(), input);

    // The seller cannot receive the buyer's purchase: the keys are sealed to the buyer.
    let (code, _, err) = fastdata(&ks, &["--account", "seller", "receive", &purchase]);
    assert_ne!(code, 0, "{err}");

    net.stop(true).await.unwrap();
}

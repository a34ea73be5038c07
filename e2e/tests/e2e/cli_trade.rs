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

/// The sale `s` of `sales --json` states purchase `p` exactly as the chain does.
fn assert_sale_is(s: &Value, p: &fastdata_sdk::buyer::Purchase) {
    use sp_core::crypto::Ss58Codec;
    let planck = |field: &str, sub: Option<&str>| -> u128 {
        let v = match sub {
            Some(sub) => &s[field][sub],
            None => &s[field],
        };
        v.as_str()
            .and_then(|t| t.parse().ok())
            .unwrap_or_else(|| panic!("no planck {field}.{sub:?} in {s}"))
    };
    assert_eq!(s["purchase"], p.id, "{s}");
    assert_eq!(text(s, "buyer"), p.buyer.to_ss58check(), "{s}");
    assert_eq!(text(s, "state"), format!("{:?}", p.state), "{s}");
    assert_eq!(s["settled_periods"], p.settled_periods, "{s}");
    assert_eq!(planck("price", None), p.price, "{s}");
    assert_eq!(planck("ledger", Some("held")), p.ledger.held, "{s}");
    assert_eq!(
        planck("ledger", Some("operators")),
        p.ledger.operators,
        "{s}"
    );
    assert_eq!(planck("ledger", Some("seller")), p.ledger.seller, "{s}");
    assert_eq!(planck("ledger", Some("fees")), p.ledger.fees, "{s}");
    assert_eq!(planck("ledger", Some("refunded")), p.ledger.refunded, "{s}");
}

/// The operator record of `who` on chain.
async fn record(
    chain: &fastdata_sdk::FastData,
    who: &fastdata_primitives::AccountId,
) -> fastdata_sdk::operator::Operator {
    chain
        .operator(who)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("{who} is not an operator"))
}

/// A planck amount printed as a decimal string.
fn planck(v: &Value) -> u128 {
    v.as_str()
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("{v} is not planck"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a running fastdata-node; run by scripts/test"]
async fn cli_seller_sees_its_sales_and_an_operator_manages_its_record() {
    use fastdata_primitives::api_market::OperatorStatus;
    use fastdata_sdk::{account::parse_account, Account, FastData};

    const FAST: u128 = fastdata_primitives::UNIT;
    let dir = tempfile::tempdir().unwrap();
    let net = Network::start(&node_url(), dir.path(), 1, None)
        .await
        .unwrap();
    let ks = dir.path().join("keystore.json");
    let (reader, _) = Account::generate().unwrap();
    let chain = FastData::connect(&node_url(), reader).await.unwrap();

    // A trade made with the CLI: a batch of five segments bought twice.
    let seller = ok(
        &ks,
        &[
            "--suri", "//Alice", "did", "create", "--name", "seller", "--fund", "1000",
        ],
    );
    ok(
        &ks,
        &[
            "--suri", "//Alice", "did", "create", "--name", "buyer", "--fund", "100",
        ],
    );
    let seller_account = text(&seller, "account").to_owned();
    ok(
        &ks,
        &[
            "--suri",
            "//Alice",
            "issuer",
            "attest",
            &seller_account,
            "KYC",
        ],
    );
    let offer = ok(
        &ks,
        &[
            "--account",
            "seller",
            "offer",
            "create",
            "--topic",
            "plant7/cli/sales",
            "--batch",
            "0..4",
            "--price",
            "2.5FAST",
        ],
    );
    let offer = offer["offer"].as_u64().unwrap();
    let stream = ok(
        &ks,
        &[
            "--account",
            "seller",
            "stream",
            "register",
            &offer.to_string(),
            "sales-1",
        ],
    );
    let stream = text(&stream, "stream").to_owned();
    let file = dir.path().join("five.bin");
    std::fs::write(&file, vec![7u8; 500]).unwrap();
    ok(
        &ks,
        &[
            "--account",
            "seller",
            "publish",
            &stream,
            "--file",
            file.to_str().unwrap(),
            "--chunk",
            "100",
        ],
    );

    // No sales yet: the offer is listed with zero totals.
    let empty = ok(&ks, &["--account", "seller", "sales"]);
    assert_eq!(empty["offers"][0]["offer"], offer, "{empty}");
    assert_eq!(
        empty["offers"][0]["sales"].as_array().map(Vec::len),
        Some(0),
        "{empty}"
    );
    assert_eq!(empty["totals"]["purchases"], 0, "{empty}");
    assert_eq!(planck(&empty["totals"]["paid"]), 0, "{empty}");

    let mut purchases = Vec::new();
    for _ in 0..2 {
        let bought = ok(
            &ks,
            &[
                "--account",
                "buyer",
                "buy",
                &offer.to_string(),
                "--wait-keys",
                "0",
            ],
        );
        purchases.push(bought["purchase"].as_u64().unwrap());
    }
    ok(
        &ks,
        &["--account", "seller", "stream", "deliver-keys", "--once"],
    );

    // `sales` states each purchase as the chain does, to the planck. A purchase may move
    // (settle) between the reads: retry until the chain is the same before and after.
    let mut checked = false;
    for _ in 0..5 {
        let mut before = Vec::new();
        for id in &purchases {
            before.push(chain.purchase(*id).await.unwrap().unwrap());
        }
        let sales = ok(
            &ks,
            &[
                "--account",
                "seller",
                "sales",
                "--offer",
                &offer.to_string(),
            ],
        );
        let mut after = Vec::new();
        for id in &purchases {
            after.push(chain.purchase(*id).await.unwrap().unwrap());
        }
        if before != after {
            continue;
        }
        let offers = sales["offers"].as_array().unwrap();
        assert_eq!(offers.len(), 1, "{sales}");
        let listed = offers[0]["sales"].as_array().unwrap();
        assert_eq!(listed.len(), 2, "{sales}");
        for (s, p) in listed.iter().zip(&after) {
            assert_sale_is(s, p);
            assert_eq!(p.price, 5 * FAST / 2, "the listed price");
            let l = p.ledger;
            assert_eq!(
                l.held + l.operators + l.seller + l.fees + l.refunded,
                p.price
            );
        }
        let totals = &offers[0]["totals"];
        assert_eq!(totals["purchases"], 2, "{sales}");
        assert_eq!(planck(&totals["paid"]), 5 * FAST, "{sales}");
        let sum = |f: fn(&fastdata_sdk::buyer::Purchase) -> u128| after.iter().map(f).sum::<u128>();
        assert_eq!(planck(&totals["ledger"]["held"]), sum(|p| p.ledger.held));
        assert_eq!(
            planck(&totals["ledger"]["seller"]),
            sum(|p| p.ledger.seller)
        );
        assert_eq!(planck(&totals["ledger"]["fees"]), sum(|p| p.ledger.fees));
        assert_eq!(sales["totals"], *totals, "one offer: the same totals");
        let earnings = ok(&ks, &["--account", "seller", "earnings"]);
        assert_eq!(
            planck(&earnings["seller"]["earned"]),
            sum(|p| p.ledger.seller)
        );
        assert_eq!(earnings["seller"]["purchases"], 2, "{earnings}");
        assert!(earnings["operator"].is_null(), "{earnings}");
        checked = true;
        break;
    }
    assert!(
        checked,
        "the purchases never held still for one `sales` call"
    );
    // A live offer of 10-block periods bought for one period and never received: it
    // settles, the unreceipted price refunded; `sales` shows the settled period and the
    // ledger as the chain does, and `earnings` the seller's share of all three purchases.
    let live = ok(
        &ks,
        &[
            "--account",
            "seller",
            "offer",
            "create",
            "--topic",
            "plant7/cli/live",
            "--period",
            "10",
            "--price",
            "1FAST",
        ],
    );
    let live = live["offer"].as_u64().unwrap();
    ok(
        &ks,
        &[
            "--account",
            "seller",
            "stream",
            "register",
            &live.to_string(),
            "live-1",
        ],
    );
    let bought = ok(
        &ks,
        &[
            "--account",
            "buyer",
            "buy",
            &live.to_string(),
            "--periods",
            "1",
            "--wait-keys",
            "0",
        ],
    );
    let live_purchase = bought["purchase"].as_u64().unwrap();
    ok(
        &ks,
        &["--account", "seller", "stream", "deliver-keys", "--once"],
    );
    let done = fastdata_e2e::settled(&chain, live_purchase, std::time::Duration::from_secs(240))
        .await
        .unwrap();
    assert_eq!(done.settled_periods, 1);
    let sales = ok(
        &ks,
        &["--account", "seller", "sales", "--offer", &live.to_string()],
    );
    let listed = &sales["offers"][0]["sales"];
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{sales}");
    assert_sale_is(&listed[0], &done);
    assert_eq!(listed[0]["state"], "Settled", "{sales}");
    assert_eq!(listed[0]["settled_periods"], 1, "{sales}");
    assert_eq!(
        planck(&sales["totals"]["ledger"]["refunded"]),
        done.ledger.refunded
    );
    let mut seller_share = done.ledger.seller;
    for id in &purchases {
        seller_share += chain.purchase(*id).await.unwrap().unwrap().ledger.seller;
    }
    let earnings = ok(&ks, &["--account", "seller", "earnings"]);
    assert_eq!(
        planck(&earnings["seller"]["earned"]),
        seller_share,
        "{earnings}"
    );
    assert_eq!(earnings["seller"]["purchases"], 3, "{earnings}");
    assert_eq!(
        earnings["seller"]["settled_periods"].as_u64(),
        Some(
            1 + u64::from(
                chain
                    .purchase(purchases[0])
                    .await
                    .unwrap()
                    .unwrap()
                    .settled_periods
                    + chain
                        .purchase(purchases[1])
                        .await
                        .unwrap()
                        .unwrap()
                        .settled_periods,
            )
        ),
        "{earnings}"
    );

    // An offer that is not the seller's is refused with "not found".
    let (code, _, err) = fastdata(
        &ks,
        &["--account", "buyer", "sales", "--offer", &offer.to_string()],
    );
    assert_eq!(code, 6, "{err}");

    // An operator registers, pauses, resumes, bonds more and leaves with the CLI; each step
    // is on chain.
    let op = ok(
        &ks,
        &[
            "--suri", "//Alice", "did", "create", "--name", "op", "--fund", "1000",
        ],
    );
    let op_account = parse_account(text(&op, "account")).unwrap();
    let (code, _, err) = fastdata(&ks, &["--account", "op", "operator", "status"]);
    assert_eq!(code, 6, "not registered yet: {err}");
    let registered = ok(
        &ks,
        &[
            "--account",
            "op",
            "operator",
            "register",
            "--stake",
            "100FAST",
            "--broker-url",
            "mqtt://127.0.0.1:1",
            "--http-url",
            "http://127.0.0.1:1",
        ],
    );
    assert_eq!(registered["record"]["status"], "Active", "{registered}");
    assert_eq!(
        planck(&registered["record"]["stake"]),
        100 * FAST,
        "{registered}"
    );
    assert_eq!(
        record(&chain, &op_account).await.status,
        OperatorStatus::Active
    );

    let paused = ok(&ks, &["--account", "op", "operator", "pause"]);
    assert_eq!(paused["action"], "paused", "{paused}");
    assert_eq!(paused["record"]["status"], "Paused", "{paused}");
    assert_eq!(
        record(&chain, &op_account).await.status,
        OperatorStatus::Paused
    );
    // Pausing twice fails on chain (exit 4) naming the pallet error.
    let (code, _, err) = fastdata(&ks, &["--account", "op", "operator", "pause"]);
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("Operators::"), "{err}");

    let resumed = ok(&ks, &["--account", "op", "operator", "resume"]);
    assert_eq!(resumed["record"]["status"], "Active", "{resumed}");
    assert_eq!(
        record(&chain, &op_account).await.status,
        OperatorStatus::Active
    );

    let bonded = ok(&ks, &["--account", "op", "operator", "bond-extra", "5FAST"]);
    assert_eq!(planck(&bonded["record"]["stake"]), 105 * FAST, "{bonded}");
    assert_eq!(record(&chain, &op_account).await.stake, 105 * FAST);
    let status = ok(&ks, &["operator", "status", text(&op, "account")]);
    assert_eq!(planck(&status["stake"]), 105 * FAST, "{status}");
    assert_eq!(status["pending_reassignment"], Value::Null, "{status}");
    let earnings = ok(&ks, &["--account", "op", "earnings"]);
    assert_eq!(
        planck(&earnings["operator"]["stake"]),
        105 * FAST,
        "{earnings}"
    );
    let holds = earnings["funds"]["holds"].as_array().unwrap();
    assert!(
        holds.iter().any(|h| h["reason"]
            .as_str()
            .is_some_and(|r| r.contains("OperatorStake"))
            && planck(&h["amount"]) == 105 * FAST),
        "{earnings}"
    );

    let left = ok(&ks, &["--account", "op", "operator", "leave"]);
    assert_eq!(left["record"]["status"], "Leaving", "{left}");
    assert!(matches!(
        record(&chain, &op_account).await.status,
        OperatorStatus::Leaving { .. }
    ));
    // The stake stays held until unbonding ends.
    let (code, _, err) = fastdata(&ks, &["--account", "op", "operator", "withdraw"]);
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("Operators::"), "{err}");

    net.stop(true).await.unwrap();
}

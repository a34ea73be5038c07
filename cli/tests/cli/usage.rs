//! The `fastdata` binary without a node: help, keystore handling, and the exit codes and
//! messages a person can act on.

use std::process::Command;

fn fastdata(args: &[&str], keystore: &std::path::Path) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_fastdata"))
        .args(args)
        .env("FASTDATA_KEYSTORE", keystore)
        .env_remove("FASTDATA_SURI")
        .env_remove("FASTDATA_ACCOUNT")
        .env_remove("FASTDATA_WS")
        .output()
        .expect("fastdata runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn help_lists_every_subcommand() {
    let dir = tempfile::tempdir().unwrap();
    let (code, out, _) = fastdata(&["--help"], &dir.path().join("ks.json"));
    assert_eq!(code, 0);
    for cmd in [
        "did", "issuer", "offer", "stream", "publish", "buy", "receive", "rate", "dispute",
    ] {
        assert!(out.contains(cmd), "{cmd} missing from --help:\n{out}");
    }
}

#[test]
fn usage_errors_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err) = fastdata(&["rate", "1", "101"], &dir.path().join("ks.json"));
    assert_eq!(code, 2, "{err}");
}

#[test]
fn missing_account_is_explained() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err) = fastdata(&["offer", "retire", "1"], &dir.path().join("ks.json"));
    assert_eq!(code, 9, "{err}");
    assert!(err.contains("--suri"), "{err}");
    let (code, _, err) = fastdata(
        &["--account", "nobody", "offer", "retire", "1"],
        &dir.path().join("ks.json"),
    );
    assert_eq!(code, 9, "{err}");
    assert!(err.contains("did create --name nobody"), "{err}");
}

#[test]
fn unreachable_node_exits_3_with_advice() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("ws://127.0.0.1:{port}");
    let (code, _, err) = fastdata(
        &[
            "--url", &url, "--suri", "//Alice", "--json", "offer", "list",
        ],
        &dir.path().join("ks.json"),
    );
    assert_eq!(code, 3, "{err}");
    let v: serde_json::Value = serde_json::from_str(err.trim()).expect("JSON error on stderr");
    assert_eq!(v["exit_code"], 3);
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("is fastdata-node running"),
        "{err}"
    );
}

#[test]
fn empty_keystore_lists_no_accounts() {
    let dir = tempfile::tempdir().unwrap();
    let (code, out, err) = fastdata(&["--json", "did", "accounts"], &dir.path().join("ks.json"));
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), "[]");
}

#[test]
fn find_equivocation_reads_statement_files_and_names_each_pair() {
    use fastdata_primitives::custody::SegmentStatement;
    use fastdata_sdk::operator::ServedStatement;
    use sp_core::{sr25519, Pair, H256};
    let dir = tempfile::tempdir().unwrap();
    let ks = dir.path().join("ks.json");
    let genesis = H256::repeat_byte(0x47);
    let genesis_arg = format!("{genesis:?}");
    let operator = sr25519::Pair::from_seed(&[5; 32]);
    let served = |sequence, envelope: &[u8]| {
        let statement = SegmentStatement::of(H256::repeat_byte(7), sequence, envelope);
        ServedStatement {
            operator: operator.public().into(),
            signature: statement.sign_sr25519(&operator, &genesis),
            statement,
        }
    };
    let find = |files: &[&std::path::Path]| {
        let mut args = vec![
            "--json",
            "operator",
            "find-equivocation",
            "--genesis",
            &genesis_arg,
        ];
        args.extend(files.iter().map(|f| f.to_str().unwrap()));
        fastdata(&args, &ks)
    };
    // Two buyers' files: the same segment 3 served with two contents. The first line of a is
    // forged: segment 3 with a third digest under the signature of another statement.
    let (a, b) = (dir.path().join("a.jsonl"), dir.path().join("b.jsonl"));
    let first = served(3, b"one");
    let second = served(3, b"two");
    let forged = ServedStatement {
        statement: SegmentStatement::of(H256::repeat_byte(7), 3, b"forged"),
        ..first.clone()
    };
    std::fs::write(
        &a,
        format!(
            "{}\n{}\n{}\n",
            forged.to_line(),
            first.to_line(),
            served(4, b"x").to_line()
        ),
    )
    .unwrap();
    std::fs::write(&b, format!("\n{}\n", second.to_line())).unwrap();
    let (code, out, err) = find(&[&a, &b]);
    assert_eq!(code, 0, "{err}");
    let value: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(value["statements"], 3);
    // The forged line is named and not paired: the pair is the two signed statements.
    assert!(err.contains("a.jsonl:1: "), "{err}");
    assert!(err.contains("not signed by"), "{err}");
    assert_eq!(value["skipped"].as_array().map(Vec::len), Some(1), "{out}");
    let found = value["equivocations"].as_array().unwrap();
    assert_eq!(found.len(), 1, "{out}");
    assert_eq!(found[0]["sequence"], 3);
    // The evidence printed is each statement's, as report-equivocation takes it.
    let evidence =
        |s: &ServedStatement| format!("0x{}", hex::encode(codec::Encode::encode(&s.evidence())));
    assert_eq!(found[0]["first"], evidence(&first));
    assert_eq!(found[0]["second"], evidence(&second));

    // One file alone holds no equivocation.
    let (code, out, _) = find(&[&a]);
    assert_eq!(code, 0);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&out).unwrap()["equivocations"],
        serde_json::json!([])
    );
    // A damaged line is named by file and line, and skipped.
    std::fs::write(&b, format!("{}\nnot json\n", second.to_line())).unwrap();
    let (code, out, err) = find(&[&a, &b]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("b.jsonl:2: "), "{err}");
    let value: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(value["equivocations"].as_array().map(Vec::len), Some(1));
    // Statements signed for another chain do not verify.
    let (code, out, err) = fastdata(
        &[
            "--json",
            "operator",
            "find-equivocation",
            "--genesis",
            &format!("{:?}", H256::zero()),
            a.to_str().unwrap(),
            b.to_str().unwrap(),
        ],
        &ks,
    );
    assert_eq!(code, 0, "{err}");
    let value: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(value["statements"], 0);
    assert_eq!(value["equivocations"], serde_json::json!([]));
}

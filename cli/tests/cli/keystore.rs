//! `fastdata keystore` without a node: status, encrypted backup and restore, encrypting a
//! plaintext keystore, and the refusals (no or wrong passphrase, existing files). The
//! binary derives keys with the default (memory-hard) Argon2id costs.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use serde_json::Value;

const PASSPHRASE: &str = "correct horse battery staple";
const SEED: [u8; 32] = [0x5e; 32];
const K_E: [u8; 32] = [0xe1; 32];

/// Runs `fastdata --keystore <keystore> args…` with `passphrase` (or none) in the
/// environment; returns exit code, stdout and stderr.
fn fastdata(keystore: &Path, passphrase: Option<&str>, args: &[&str]) -> (i32, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_fastdata"));
    cmd.arg("--keystore")
        .arg(keystore)
        .args(args)
        .env_remove("FASTDATA_KEYSTORE")
        .env_remove("FASTDATA_SURI")
        .env_remove("FASTDATA_ACCOUNT")
        .env_remove("FASTDATA_WS");
    match passphrase {
        Some(p) => cmd.env("FASTDATA_KEYSTORE_PASSPHRASE", p),
        None => cmd.env_remove("FASTDATA_KEYSTORE_PASSPHRASE"),
    };
    let out = cmd.output().expect("fastdata runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Like [`fastdata`] with `--json`; the command must succeed. Returns its JSON output.
fn ok_json(keystore: &Path, passphrase: Option<&str>, args: &[&str]) -> Value {
    let (code, out, err) = fastdata(keystore, passphrase, &[&["--json"], args].concat());
    assert_eq!(code, 0, "fastdata {args:?} failed: {err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

/// A plaintext keystore of the format written before encryption existed: account
/// "seller" and the keys of one epoch.
fn plaintext_keystore(dir: &Path) -> PathBuf {
    let path = dir.join("keystore.json");
    let json = format!(
        r#"{{"version":1,"accounts":{{"seller":"0x{}"}},"streams":{{"{}":{{"epochs":{{"0":["0x{}","0x{}"]}},"next_sequence":3}}}}}}"#,
        hex::encode(SEED),
        hex::encode([7u8; 32]),
        hex::encode(K_E),
        hex::encode([0xe2u8; 32]),
    );
    std::fs::write(&path, json).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    path
}

fn shows_secrets(bytes: &[u8]) -> bool {
    let text = String::from_utf8_lossy(bytes);
    text.contains(&hex::encode(SEED)) || text.contains(&hex::encode(K_E))
}

#[test]
fn keystore_backup_and_restore_through_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let ks = plaintext_keystore(dir.path());
    let backup = dir.path().join("backup.json");
    let original = std::fs::read(&ks).unwrap();

    // Status of the plaintext keystore: names and counts, no secrets.
    let status = ok_json(&ks, None, &["keystore", "status"]);
    assert_eq!(status["format"], "plaintext", "{status}");
    assert_eq!(status["passphrase_set"], false);
    assert_eq!(status["contents"]["accounts"][0], "seller");
    assert_eq!(status["contents"]["streams"], 1);
    assert_eq!(status["contents"]["epoch_keys"], 1);
    assert!(!shows_secrets(status.to_string().as_bytes()));
    let (code, out, _) = fastdata(&ks, None, &["keystore", "status"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("plaintext") && out.contains("FASTDATA_KEYSTORE_PASSPHRASE"),
        "{out}"
    );

    // A backup needs a passphrase.
    let b = backup.to_str().unwrap();
    let (code, _, err) = fastdata(&ks, None, &["keystore", "backup", b]);
    assert_eq!(code, 9, "{err}");
    assert!(err.contains("FASTDATA_KEYSTORE_PASSPHRASE"), "{err}");
    assert!(!backup.exists());

    // With one it is written encrypted, and never over an existing file.
    let out = ok_json(&ks, Some(PASSPHRASE), &["keystore", "backup", b]);
    assert_eq!(out["encrypted"], true, "{out}");
    let written = std::fs::read(&backup).unwrap();
    assert!(!shows_secrets(&written));
    let envelope: Value = serde_json::from_slice(&written).unwrap();
    assert_eq!(envelope["version"], 2);
    assert_eq!(envelope["kdf"]["algorithm"], "argon2id");
    assert!(
        envelope["kdf"]["m_cost"].as_u64().unwrap() >= 65536,
        "{envelope}"
    );
    let (code, _, err) = fastdata(&ks, Some(PASSPHRASE), &["keystore", "backup", b]);
    assert_eq!(code, 9, "{err}");
    assert!(err.contains("already exists"), "{err}");
    assert_eq!(std::fs::read(&backup).unwrap(), written);
    // The backup did not touch the keystore.
    assert_eq!(std::fs::read(&ks).unwrap(), original);

    // Restore refuses an existing keystore without --force ...
    let (code, _, err) = fastdata(&ks, Some(PASSPHRASE), &["keystore", "restore", b]);
    assert_eq!(code, 9, "{err}");
    assert!(err.contains("--force"), "{err}");
    assert_eq!(std::fs::read(&ks).unwrap(), original);
    // ... and a wrong or missing passphrase, writing nothing.
    let fresh = dir.path().join("new").join("keystore.json");
    for passphrase in [Some("wrong"), None] {
        let (code, _, err) = fastdata(&fresh, passphrase, &["keystore", "restore", b]);
        assert_eq!(code, 9, "{err}");
        assert!(err.contains("FASTDATA_KEYSTORE_PASSPHRASE"), "{err}");
        assert!(!fresh.exists());
    }

    // Into a new place it restores, encrypted.
    let out = ok_json(&fresh, Some(PASSPHRASE), &["keystore", "restore", b]);
    assert_eq!(out["encrypted"], true, "{out}");
    assert_eq!(out["contents"]["accounts"][0], "seller");
    assert!(!shows_secrets(&std::fs::read(&fresh).unwrap()));
    let status = ok_json(&fresh, Some(PASSPHRASE), &["keystore", "status"]);
    assert_eq!(status["format"], "encrypted", "{status}");
    assert_eq!(status["contents"]["epoch_keys"], 1);
    // Without the passphrase, status says it is locked; other commands refuse it.
    let status = ok_json(&fresh, None, &["keystore", "status"]);
    assert_eq!(status["format"], "encrypted", "{status}");
    assert!(status["contents"].is_null(), "{status}");
    let restored = std::fs::read(&fresh).unwrap();
    let (code, _, err) = fastdata(
        &fresh,
        None,
        &["--account", "seller", "offer", "retire", "1"],
    );
    assert_eq!(code, 9, "{err}");
    assert!(err.contains("FASTDATA_KEYSTORE_PASSPHRASE"), "{err}");
    assert_eq!(std::fs::read(&fresh).unwrap(), restored);

    // --force replaces the plaintext keystore with the encrypted backup.
    let out = ok_json(
        &ks,
        Some(PASSPHRASE),
        &["keystore", "restore", b, "--force"],
    );
    assert_eq!(out["contents"]["streams"], 1, "{out}");
    assert!(!shows_secrets(&std::fs::read(&ks).unwrap()));
}

#[test]
fn plaintext_keystore_warns_once_and_encrypts_on_request() {
    let dir = tempfile::tempdir().unwrap();
    let ks = plaintext_keystore(dir.path());

    // Without a passphrase: one warning on stderr, the error of the command after it.
    let (code, _, err) = fastdata(&ks, None, &["--account", "nobody", "offer", "retire", "1"]);
    assert_eq!(code, 9, "{err}");
    assert_eq!(err.matches("is not encrypted").count(), 1, "{err}");
    assert!(err.contains("did create --name nobody"), "{err}");

    // `keystore encrypt` needs a passphrase, then rewrites the file encrypted.
    let (code, _, err) = fastdata(&ks, None, &["keystore", "encrypt"]);
    assert_eq!(code, 9, "{err}");
    assert!(!shows_secrets(&[]) && shows_secrets(&std::fs::read(&ks).unwrap()));
    let out = ok_json(&ks, Some(PASSPHRASE), &["keystore", "encrypt"]);
    assert_eq!(out["changed"], true, "{out}");
    assert!(!shows_secrets(&std::fs::read(&ks).unwrap()));
    let status = ok_json(&ks, Some(PASSPHRASE), &["keystore", "status"]);
    assert_eq!(status["format"], "encrypted", "{status}");
    assert_eq!(status["contents"]["accounts"][0], "seller");
    // With the passphrase set, no warning any more.
    let (code, _, err) = fastdata(
        &ks,
        Some(PASSPHRASE),
        &["--account", "nobody", "offer", "retire", "1"],
    );
    assert_eq!(code, 9, "{err}");
    assert!(!err.contains("is not encrypted"), "{err}");
    assert!(err.contains("did create --name nobody"), "{err}");
}

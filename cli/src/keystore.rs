//! `fastdata keystore`: where the keystore is, whether it is encrypted and what it holds;
//! encrypted backups and their restore.
//!
//! The passphrase always comes from `FASTDATA_KEYSTORE_PASSPHRASE`; no command prints a
//! secret.

use std::path::{Path, PathBuf};

use clap::Subcommand;
use fastdata_sdk::keystore::{
    KdfParams, Keystore, Passphrase, StoredFormat, Summary, PASSPHRASE_ENV,
};
use serde_json::{json, Value};

use crate::common::{print, Ctx};

/// `fastdata keystore …`.
#[derive(Subcommand)]
pub(crate) enum KeystoreCommand {
    /// Where the keystore is, whether it is encrypted, and what it holds (names and counts,
    /// no secrets).
    Status,
    /// Write an encrypted copy of the keystore to FILE (needs FASTDATA_KEYSTORE_PASSPHRASE;
    /// never overwrites a file).
    Backup {
        /// The backup file to create.
        file: PathBuf,
    },
    /// Restore the keystore from a backup made by `fastdata keystore backup` (opened with
    /// FASTDATA_KEYSTORE_PASSPHRASE, which then also protects the restored keystore).
    Restore {
        /// The backup file.
        file: PathBuf,
        /// Replace an existing keystore (its secrets missing from the backup are lost).
        #[arg(long)]
        force: bool,
    },
    /// Encrypt a plaintext keystore now with FASTDATA_KEYSTORE_PASSPHRASE (otherwise that
    /// happens on its next save).
    Encrypt,
}

fn kdf_json(p: &KdfParams) -> Value {
    json!({"algorithm": "argon2id", "m_cost_kib": p.m_cost, "t_cost": p.t_cost, "p_cost": p.p_cost})
}

fn summary_json(s: &Summary) -> Value {
    json!({
        "accounts": s.accounts,
        "x25519_secrets": s.x25519_secrets,
        "streams": s.streams,
        "epoch_keys": s.epoch_keys,
    })
}

fn summary_text(s: &Summary) -> String {
    format!(
        "accounts: {}; {} X25519 secret(s); {} stream(s) with {} epoch key(s)",
        if s.accounts.is_empty() {
            "none".to_owned()
        } else {
            s.accounts.join(", ")
        },
        s.x25519_secrets,
        s.streams,
        s.epoch_keys
    )
}

fn no_passphrase(path: &Path, what: &str) -> anyhow::Error {
    fastdata_sdk::Error::Keystore {
        path: path.display().to_string(),
        detail: format!("{what} needs a passphrase: set {PASSPHRASE_ENV}"),
    }
    .into()
}

/// Runs a `fastdata keystore` command.
pub(crate) fn keystore(ctx: &Ctx, cmd: KeystoreCommand) -> anyhow::Result<()> {
    let path = &ctx.keystore_path;
    match cmd {
        KeystoreCommand::Status => status(ctx, path),
        KeystoreCommand::Backup { file } => {
            if Passphrase::from_env().is_none() {
                return Err(no_passphrase(&file, "a backup"));
            }
            if Keystore::stored_format(path)? == StoredFormat::Missing {
                anyhow::bail!(fastdata_sdk::Error::Keystore {
                    path: path.display().to_string(),
                    detail: "no keystore here, nothing to back up (pass --keystore or set FASTDATA_KEYSTORE)".into(),
                });
            }
            let keystore = Keystore::open(path)?;
            keystore.backup(&file)?;
            let summary = keystore.summary();
            print(
                ctx,
                &json!({"keystore": path, "backup": file, "encrypted": true, "contents": summary_json(&summary)}),
                || {
                    format!(
                        "wrote an encrypted backup of {} to {}\n  {}\nkeep the passphrase: without it the backup cannot be opened",
                        path.display(),
                        file.display(),
                        summary_text(&summary)
                    )
                },
            );
            Ok(())
        }
        KeystoreCommand::Restore { file, force } => {
            let keystore = Keystore::restore(&file, path, Passphrase::from_env(), force)?;
            let summary = keystore.summary();
            let encrypted = keystore.is_protected();
            print(
                ctx,
                &json!({"keystore": path, "restored_from": file, "encrypted": encrypted, "contents": summary_json(&summary)}),
                || {
                    format!(
                        "restored {} from {} ({})\n  {}",
                        path.display(),
                        file.display(),
                        if encrypted { "encrypted" } else { "plaintext" },
                        summary_text(&summary)
                    )
                },
            );
            if !encrypted {
                crate::common::warn_unprotected(path);
            }
            Ok(())
        }
        KeystoreCommand::Encrypt => {
            if Passphrase::from_env().is_none() {
                return Err(no_passphrase(path, "encryption"));
            }
            let before = Keystore::stored_format(path)?;
            if before == StoredFormat::Missing {
                anyhow::bail!(fastdata_sdk::Error::Keystore {
                    path: path.display().to_string(),
                    detail: "no keystore here, nothing to encrypt (a new one is created encrypted while the passphrase is set)".into(),
                });
            }
            // Opening checks the passphrase of an already encrypted keystore.
            let keystore = Keystore::open(path)?;
            let changed = before == StoredFormat::Plaintext;
            if changed {
                keystore.save()?;
            }
            print(
                ctx,
                &json!({"keystore": path, "encrypted": true, "changed": changed}),
                || {
                    if changed {
                        format!("encrypted {}", path.display())
                    } else {
                        format!(
                            "{} is already encrypted (and the passphrase opens it)",
                            path.display()
                        )
                    }
                },
            );
            Ok(())
        }
    }
}

fn status(ctx: &Ctx, path: &Path) -> anyhow::Result<()> {
    let format = Keystore::stored_format(path)?;
    let passphrase_set = Passphrase::from_env().is_some();
    // An encrypted keystore without a passphrase: say so instead of failing.
    let summary = match format {
        StoredFormat::Encrypted(_) if !passphrase_set => None,
        _ => Some(Keystore::open(path)?.summary()),
    };
    let (format_name, kdf) = match &format {
        StoredFormat::Missing => ("missing", Value::Null),
        StoredFormat::Plaintext => ("plaintext", Value::Null),
        StoredFormat::Encrypted(p) => ("encrypted", kdf_json(p)),
    };
    let value = json!({
        "path": path,
        "format": format_name,
        "kdf": kdf,
        "cipher": matches!(format, StoredFormat::Encrypted(_)).then_some("aes-256-gcm"),
        "passphrase_set": passphrase_set,
        "contents": summary.as_ref().map(summary_json),
    });
    print(ctx, &value, || {
        let stored = match (&format, passphrase_set) {
            (StoredFormat::Missing, true) => {
                "no file yet (created encrypted on the first save)".to_owned()
            }
            (StoredFormat::Missing, false) => format!(
                "no file yet (created as plaintext on the first save unless {PASSPHRASE_ENV} is set)"
            ),
            (StoredFormat::Plaintext, true) => {
                "plaintext; encrypted on the next save (`fastdata keystore encrypt` does it now)"
                    .to_owned()
            }
            (StoredFormat::Plaintext, false) => format!(
                "plaintext: whoever reads the file has the keys; set {PASSPHRASE_ENV} and run `fastdata keystore encrypt`"
            ),
            (StoredFormat::Encrypted(p), _) => format!(
                "encrypted (aes-256-gcm, argon2id m={} KiB t={} p={})",
                p.m_cost, p.t_cost, p.p_cost
            ),
        };
        let contents = match &summary {
            Some(s) => summary_text(s),
            None => format!("locked: set {PASSPHRASE_ENV} to see what it holds"),
        };
        format!("keystore {}\n  {stored}\n  {contents}", path.display())
    });
    Ok(())
}

//! `fastdata did …` and `fastdata issuer …`: decentralized identifiers with their
//! key-agreement keys, keystore accounts, credential issuers and credentials.

use clap::Subcommand;
use fastdata_primitives::Balance;
use fastdata_sdk::{
    account::{did_of, parse_account},
    Account, Error,
};
use serde_json::{json, Value};
use sp_core::crypto::Ss58Codec;
use sp_runtime::Perbill;

use crate::common::{hash_text, parse_h256, print, score, Ctx, FAST};

/// `fastdata did …`.
#[derive(Subcommand)]
pub(crate) enum DidCommand {
    /// Create a DID with a fresh X25519 key-agreement key (kept in the keystore).
    Create {
        /// Generate a new account, store it under this name, and create its DID.
        #[arg(long)]
        name: Option<String>,
        /// Fund a newly generated account from --suri with this many FAST first.
        #[arg(long)]
        fund: Option<u64>,
    },
    /// Show a DID document (default: the acting account's).
    Show {
        /// Account, SS58 or did:fast:….
        who: Option<String>,
    },
    /// Rotate the key-agreement key.
    RotateKey,
    /// List the accounts in the keystore.
    Accounts,
}

/// `fastdata issuer …`.
#[derive(Subcommand)]
pub(crate) enum IssuerCommand {
    /// Register an issuer (dev chains: the sudo account).
    Register {
        /// The issuer account.
        issuer: String,
        /// Its name.
        name: String,
        /// Reputation weight VI in percent.
        #[arg(long, default_value_t = 50)]
        weight: u32,
    },
    /// Attest a credential to a DID (as a registered issuer).
    Attest {
        /// The subject account or DID.
        subject: String,
        /// Credential type, e.g. KYC.
        credential_type: String,
        /// The off-chain claim (only its hash goes on chain).
        #[arg(long, default_value = "")]
        claim: String,
        /// Validity in blocks from now.
        #[arg(long, default_value_t = 1_000_000)]
        valid_for: u32,
    },
    /// Revoke a credential (as its issuer).
    Revoke {
        /// The subject.
        subject: String,
        /// Credential id (0x…).
        id: String,
    },
}

/// Runs a `fastdata did` command.
pub(crate) async fn did(ctx: &Ctx, cmd: DidCommand) -> anyhow::Result<()> {
    match cmd {
        DidCommand::Create { name, fund } => {
            let mut keystore = ctx.keystore()?;
            let account = match &name {
                Some(name) => {
                    if keystore.account(name).is_ok() {
                        anyhow::bail!(Error::Account(format!(
                            "the keystore already has an account named {name:?}; pick another --name"
                        )));
                    }
                    let (account, seed) = Account::generate()?;
                    keystore.add_account(name, &seed);
                    keystore.save()?;
                    if let Some(amount) = fund {
                        let funder = ctx.chain().await?;
                        funder
                            .transfer(&account.account_id(), Balance::from(amount) * FAST)
                            .await?;
                    }
                    account
                }
                None => ctx.acting()?,
            };
            let chain = ctx.chain_as(account.clone()).await?;
            let key = chain.create_did(&mut keystore, Vec::new()).await?;
            print(
                ctx,
                &json!({"did": account.did(), "account": account.address(), "name": name, "key_agreement": format!("0x{}", hex::encode(key))}),
                || {
                    format!(
                        "created {}\n  key agreement 0x{} (secret in {})",
                        account.did(),
                        hex::encode(key),
                        keystore.path().display()
                    )
                },
            );
            Ok(())
        }
        DidCommand::Show { who } => {
            let chain = if who.is_some() {
                ctx.reader().await?
            } else {
                ctx.chain().await?
            };
            let who = match who {
                Some(w) => parse_account(&w)?,
                None => chain.account().account_id(),
            };
            let doc = chain.did_document(&who).await?.ok_or_else(|| {
                Error::NotFound(format!(
                    "{} has no DID; create one with `fastdata did create`",
                    did_of(&who)
                ))
            })?;
            let reputation = chain.reputation(&who).await?;
            let creds: Vec<Value> = doc
                .credentials
                .iter()
                .map(|c| json!({"id": format!("{:?}", c.id), "issuer": c.issuer.to_ss58check(), "type": String::from_utf8_lossy(&c.credential_type), "expires_at": c.expires_at, "valid": c.valid}))
                .collect();
            let value = json!({
                "did": did_of(&who),
                "key_agreement": format!("0x{}", hex::encode(doc.key_agreement)),
                "verified": doc.verified,
                "credentials": creds,
                "trust_score": score(reputation.trust_score),
                "credibility": score(reputation.credibility),
            });
            print(ctx, &value, || {
                let mut s = format!(
                    "{}\n  verified: {}\n  trust score: {:.3}  credibility: {:.3}\n  key agreement: 0x{}",
                    did_of(&who), doc.verified, score(reputation.trust_score), score(reputation.credibility), hex::encode(doc.key_agreement)
                );
                for c in &doc.credentials {
                    s.push_str(&format!(
                        "\n  credential {} from {} ({}), valid: {}",
                        String::from_utf8_lossy(&c.credential_type),
                        c.issuer.to_ss58check(),
                        format_args!("{:?}", c.id),
                        c.valid
                    ));
                }
                s
            });
            Ok(())
        }
        DidCommand::RotateKey => {
            let chain = ctx.chain().await?;
            let mut keystore = ctx.keystore()?;
            let key = chain.rotate_key_agreement(&mut keystore).await?;
            print(
                ctx,
                &json!({"key_agreement": format!("0x{}", hex::encode(key))}),
                || format!("key agreement rotated to 0x{}", hex::encode(key)),
            );
            Ok(())
        }
        DidCommand::Accounts => {
            let keystore = ctx.keystore()?;
            let mut list = Vec::new();
            for name in keystore.account_names() {
                let account = keystore.account(&name)?;
                list.push(
                    json!({"name": name, "account": account.address(), "did": account.did()}),
                );
            }
            let text = list
                .iter()
                .map(|v| {
                    format!(
                        "{}  {}",
                        v["name"].as_str().unwrap_or(""),
                        v["did"].as_str().unwrap_or("")
                    )
                })
                .collect::<Vec<_>>()
                .join("\n");
            print(ctx, &Value::Array(list), || text);
            Ok(())
        }
    }
}

/// Runs a `fastdata issuer` command.
pub(crate) async fn issuer(ctx: &Ctx, cmd: IssuerCommand) -> anyhow::Result<()> {
    let chain = ctx.chain().await?;
    match cmd {
        IssuerCommand::Register {
            issuer,
            name,
            weight,
        } => {
            let who = parse_account(&issuer)?;
            chain
                .sudo_register_issuer(
                    &who,
                    name.as_bytes(),
                    Perbill::from_percent(weight.min(100)),
                )
                .await?;
            print(
                ctx,
                &json!({"issuer": who.to_ss58check(), "name": name, "weight_percent": weight}),
                || {
                    format!(
                        "registered issuer {} ({name}) with weight {weight}%",
                        who.to_ss58check()
                    )
                },
            );
        }
        IssuerCommand::Attest {
            subject,
            credential_type,
            claim,
            valid_for,
        } => {
            let who = parse_account(&subject)?;
            let expires = chain.finalized_number().await?.saturating_add(valid_for);
            let id = chain
                .attest_credential(&who, credential_type.as_bytes(), hash_text(&claim), expires)
                .await?;
            print(
                ctx,
                &json!({"subject": did_of(&who), "credential": format!("{id:?}"), "expires_at": expires}),
                || {
                    format!("attested {credential_type} to {} (credential {id:?}, expires at block {expires})", did_of(&who))
                },
            );
        }
        IssuerCommand::Revoke { subject, id } => {
            let who = parse_account(&subject)?;
            let id = parse_h256(&id)?;
            chain.revoke_credential(&who, id).await?;
            print(ctx, &json!({"revoked": format!("{id:?}")}), || {
                format!("revoked {id:?}")
            });
        }
    }
    Ok(())
}

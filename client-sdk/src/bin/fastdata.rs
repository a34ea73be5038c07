//! `fastdata`: the FAST DATA command line for sellers, buyers and issuers.
//!
//! ```text
//! fastdata --suri //Alice issuer attest <account> KYC
//! fastdata --account seller did create --name seller
//! fastdata --account seller offer create --topic plant7/press/temperature --period 100 --price 10FAST
//! fastdata --account seller stream register <offer> press-line-1
//! fastdata --account seller publish <stream> --sensor press-7 --count 100
//! fastdata --account seller stream deliver-keys            # key-delivery service
//! fastdata --account buyer buy <offer> --periods 2 --max-price 25FAST
//! fastdata --account buyer receive <purchase> --out data.jsonl
//! fastdata --account seller sales --offer 3                 # purchases, ledgers, totals
//! fastdata --account op1 operator pause                      # or resume, leave, withdraw, …
//! ```
//!
//! Exit codes: 0 success, 1 other error, 2 usage, 3 node unreachable or RPC error,
//! 4 transaction failed on chain, 5 verification failed (keys or data), 6 not found,
//! 7 timed out, 8 storage operator error, 9 keystore or account error.

// One file per command group under `fastdata/` (the binary's root is this file, so the
// paths are explicit).
#[path = "fastdata/business.rs"]
mod business;
#[path = "fastdata/keystore.rs"]
mod keystore;
#[path = "fastdata/operator.rs"]
mod operator;
#[path = "fastdata/seller_run.rs"]
mod seller_run;

use std::{
    io::{Read, Write},
    path::PathBuf,
    time::Duration,
};

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand, ValueEnum};
use codec::Decode;
use fastdata_primitives::{
    api_market::{Licence, OfferTerms},
    escrow::{DisputeReason, PurchaseTerms},
    Balance, BlockNumber, PaymentMode, StreamId, SCORE_ONE,
};
use fastdata_sdk::{
    account::{did_of, parse_account},
    keystore::Keystore,
    operator::ServedStatement,
    publish::{SimulatedSensor, StreamPublisher},
    seller::Hosting,
    Account, Error, FastData,
};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{json, Value};
use sp_core::{crypto::Ss58Codec, H256};
use sp_runtime::Perbill;

/// Planck per FAST.
const FAST: Balance = 1_000_000_000_000;

#[derive(Parser)]
#[command(
    name = "fastdata",
    version,
    about = "FAST DATA: trade IIoT data streams on chain"
)]
struct Cli {
    /// Node RPC endpoint.
    #[arg(long, env = "FASTDATA_WS", default_value = fastdata_sdk::DEFAULT_URL, global = true)]
    url: String,
    /// Act as this secret URI (//Alice, a phrase, or a 0x seed).
    #[arg(long, env = "FASTDATA_SURI", global = true, conflicts_with = "account")]
    suri: Option<String>,
    /// Act as this named account from the keystore.
    #[arg(long, env = "FASTDATA_ACCOUNT", global = true)]
    account: Option<String>,
    /// Keystore file [default: $FASTDATA_KEYSTORE or ~/.fastdata/keystore.json].
    #[arg(long, global = true)]
    keystore: Option<PathBuf>,
    /// Machine-readable JSON output.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Decentralized identifiers.
    #[command(subcommand)]
    Did(DidCommand),
    /// Credential issuers.
    #[command(subcommand)]
    Issuer(IssuerCommand),
    /// Data offers.
    #[command(subcommand)]
    Offer(OfferCommand),
    /// Streams and key epochs (seller).
    #[command(subcommand)]
    Stream(StreamCommand),
    /// Seal and publish segments to the stream's operators (seller).
    Publish(PublishArgs),
    /// Buy an offer and wait for its keys (buyer).
    Buy(BuyArgs),
    /// Show purchases.
    #[command(subcommand)]
    Purchase(PurchaseCommand),
    /// Receive, verify and decrypt the data of a purchase (buyer).
    Receive(ReceiveArgs),
    /// Rate the other side of a settled purchase.
    Rate {
        /// The purchase.
        purchase: u64,
        /// Satisfaction 0..=100.
        #[arg(value_parser = clap::value_parser!(u8).range(0..=100))]
        score: u8,
        /// A comment (only its hash goes on chain).
        #[arg(long)]
        comment: Option<String>,
    },
    /// Dispute a purchase (holds the dispute deposit).
    Dispute {
        /// The purchase.
        purchase: u64,
        /// Why.
        reason: Reason,
        /// Evidence text (only its hash goes on chain).
        #[arg(long)]
        evidence: Option<String>,
    },
    /// As the seller, answer a dispute of one of your sales with evidence before its
    /// deadline (an answered dispute nobody resolves lapses instead of being upheld).
    AnswerDispute {
        /// The purchase.
        purchase: u64,
        /// Evidence text (only its hash goes on chain).
        evidence: String,
    },
    /// Your sales as a seller: each purchase of your offers (buyer, state, price paid,
    /// settled periods, where the money went) and totals per offer.
    Sales {
        /// Only this offer.
        #[arg(long)]
        offer: Option<u64>,
    },
    /// What you earned as seller and as storage operator, and your balance with its holds.
    Earnings,
    /// Storage operators: status, register, pause, resume, leave, withdraw, bond-extra, earnings.
    #[command(subcommand)]
    Operator(operator::OperatorCommand),
    /// The seller service: `seller run --config seller.toml` publishes, delivers keys and
    /// rotates epochs in one long-running process.
    #[command(subcommand)]
    Seller(seller_run::SellerCommand),
    /// The local keystore: status, encrypted backup and restore, encrypt.
    #[command(subcommand)]
    Keystore(keystore::KeystoreCommand),
}

#[derive(Subcommand)]
enum DidCommand {
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

#[derive(Subcommand)]
enum IssuerCommand {
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

#[derive(Subcommand)]
enum OfferCommand {
    /// List an offer (the seller needs a verified DID).
    Create(OfferArgs),
    /// List offers with the sellers' trust scores.
    List,
    /// Show one offer.
    Show {
        /// Offer id.
        id: u64,
    },
    /// Retire an offer.
    Retire {
        /// Offer id.
        id: u64,
    },
}

#[derive(Args)]
struct OfferArgs {
    /// Topic, e.g. plant7/press/temperature.
    #[arg(long)]
    topic: String,
    /// Live subscription priced per period of this many blocks.
    #[arg(long, conflicts_with = "batch")]
    period: Option<u32>,
    /// Batch of recorded segments FIRST..LAST (inclusive).
    #[arg(long)]
    batch: Option<String>,
    /// Price (planck, or with suffix FAST).
    #[arg(long)]
    price: String,
    /// Number of operators hosting the stream.
    #[arg(long, default_value_t = 1)]
    replication: u32,
    /// Only verified buyers may purchase.
    #[arg(long)]
    verified_only: bool,
    /// Discount for verified buyers, percent.
    #[arg(long, default_value_t = 0)]
    discount: u32,
    /// Minimum buyer trust score (1.0 = full).
    #[arg(long, default_value_t = 0.0)]
    min_trust: f64,
    /// Blocks the operators keep segments.
    #[arg(long, default_value_t = 14_400)]
    retention: u32,
    /// Licence.
    #[arg(long, value_enum, default_value_t = LicenceArg::Internal)]
    licence: LicenceArg,
    /// The buyer may resell the data.
    #[arg(long)]
    resale: bool,
}

#[derive(Clone, Copy, ValueEnum)]
enum LicenceArg {
    Internal,
    Commercial,
}

#[derive(Subcommand)]
enum StreamCommand {
    /// Register the stream of an offer with fresh epoch-0 keys, and fund its hosting.
    Register {
        /// Offer id.
        offer: u64,
        /// Stream name.
        name: String,
        /// Most MB each operator stores for the stream (segments beyond are refused).
        #[arg(long, default_value_t = 64)]
        quota_mb: u32,
        /// Hosting periods (an hour each on the parachain) to fund for every replica storing
        /// the full quota, at the runtime's hosting price.
        #[arg(long, default_value_t = 24)]
        hosting_periods: u32,
        /// Fund exactly this much instead (planck, or with suffix FAST).
        #[arg(long)]
        hosting_funds: Option<String>,
    },
    /// Set a stream's hosting quota and add hosting funds.
    FundHosting {
        /// Stream id (0x…).
        stream: String,
        /// The quota in MB.
        #[arg(long)]
        quota_mb: u32,
        /// Funds to add (planck, or with suffix FAST); may be 0 to change only the quota.
        #[arg(long, default_value = "0")]
        amount: String,
    },
    /// Show a stream, its operators and epoch.
    Show {
        /// Stream id (0x…).
        stream: String,
    },
    /// Open the next key epoch with fresh keys.
    Rotate {
        /// Stream id.
        stream: String,
    },
    /// Release the operators of a closed stream that no buyer needs any more (anyone may).
    Release {
        /// Stream id (0x…).
        stream: String,
    },
    /// Close a stream: no more sales; its operators serve its buyers to the end.
    Close {
        /// Stream id.
        stream: String,
    },
    /// Key-delivery service: seal due epoch keys to every paying buyer.
    DeliverKeys {
        /// One pass, then exit.
        #[arg(long)]
        once: bool,
    },
}

#[derive(Args)]
struct PublishArgs {
    /// Stream id (0x…).
    stream: String,
    /// Publish this file in segments of --chunk bytes.
    #[arg(long, group = "source")]
    file: Option<PathBuf>,
    /// Publish standard input in segments of --chunk bytes.
    #[arg(long, group = "source")]
    stdin: bool,
    /// Publish readings of a simulated sensor with this name.
    #[arg(long, group = "source")]
    sensor: Option<String>,
    /// Number of sensor readings.
    #[arg(long, default_value_t = 100)]
    count: u64,
    /// Milliseconds between sensor readings.
    #[arg(long, default_value_t = 100)]
    interval_ms: u64,
    /// Segment size for files and stdin.
    #[arg(long, default_value_t = 4096)]
    chunk: usize,
}

#[derive(Args)]
struct BuyArgs {
    /// Offer id.
    offer: u64,
    /// Periods of a live offer (1 for a batch).
    #[arg(long, default_value_t = 1)]
    periods: u32,
    /// Highest price accepted (planck, or with suffix FAST) [default: the listed price × periods].
    #[arg(long)]
    max_price: Option<String>,
    /// Seconds to wait for the seller's keys (0: do not wait).
    #[arg(long, default_value_t = 120)]
    wait_keys: u64,
}

#[derive(Subcommand)]
enum PurchaseCommand {
    /// Show a purchase.
    Show {
        /// Purchase id.
        id: u64,
    },
    /// List the acting account's purchases.
    List,
}

#[derive(Args)]
struct ReceiveArgs {
    /// Purchase id.
    purchase: u64,
    /// Write the verified plaintext here instead of standard output.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Keep following the live stream (Ctrl-C stops).
    #[arg(long)]
    live: bool,
    /// First sequence wanted.
    #[arg(long)]
    from: Option<u64>,
    /// Append the operators' signed statements of every downloaded segment to this file,
    /// one JSON line each: evidence for `fastdata operator find-equivocation`.
    #[arg(long)]
    statements: Option<PathBuf>,
}

#[derive(Clone, Copy, ValueEnum)]
enum Reason {
    KeysMismatch,
    KeysMissing,
    DataNotDelivered,
    Other,
}

fn parse_balance(text: &str) -> anyhow::Result<Balance> {
    let t = text.trim();
    if let Some(num) = t.strip_suffix("FAST").map(str::trim) {
        let (int, frac) = num.split_once('.').unwrap_or((num, ""));
        if frac.len() > 12 {
            anyhow::bail!("{text}: at most 12 decimals");
        }
        let int: Balance = if int.is_empty() { 0 } else { int.parse()? };
        let frac_val: Balance = if frac.is_empty() {
            0
        } else {
            format!("{frac:0<12}").parse()?
        };
        return int
            .checked_mul(FAST)
            .and_then(|v| v.checked_add(frac_val))
            .ok_or_else(|| anyhow::anyhow!("{text}: too large"));
    }
    t.parse()
        .with_context(|| format!("{text:?} is not an amount; use planck or e.g. 1.5FAST"))
}

fn fmt_balance(b: Balance) -> String {
    let number = format!("{}.{:012}", b / FAST, b % FAST);
    format!(
        "{} FAST",
        number.trim_end_matches('0').trim_end_matches('.')
    )
}

fn parse_h256(text: &str) -> anyhow::Result<H256> {
    let mut raw = [0u8; 32];
    hex::decode_to_slice(text.trim().trim_start_matches("0x"), &mut raw)
        .with_context(|| format!("{text:?} is not 0x followed by 64 hex digits"))?;
    Ok(H256(raw))
}

fn hash_text(text: &str) -> H256 {
    H256(sp_io::hashing::blake2_256(text.as_bytes()))
}

fn score(s: u32) -> f64 {
    f64::from(s) / f64::from(SCORE_ONE)
}

/// Warns once per run (on stderr) that the keystore is written without encryption.
fn warn_unprotected(path: &std::path::Path) {
    static WARNED: std::sync::Once = std::sync::Once::new();
    WARNED.call_once(|| {
        eprintln!(
            "warning: keystore {} is not encrypted: anyone who can read it has your keys; set {} (see `fastdata keystore status`)",
            path.display(),
            fastdata_sdk::keystore::PASSPHRASE_ENV
        );
    });
}

struct Ctx {
    cli_url: String,
    suri: Option<String>,
    account: Option<String>,
    keystore_path: PathBuf,
    json: bool,
}

impl Ctx {
    fn keystore(&self) -> anyhow::Result<Keystore> {
        let keystore = Keystore::open(&self.keystore_path)?;
        if !keystore.is_protected() {
            warn_unprotected(&self.keystore_path);
        }
        Ok(keystore)
    }

    fn acting(&self) -> anyhow::Result<Account> {
        if let Some(suri) = &self.suri {
            return Ok(Account::from_suri(suri)?);
        }
        if let Some(name) = &self.account {
            return Ok(self.keystore()?.account(name)?);
        }
        Err(Error::Account(
            "no account: pass --suri //Alice (or FASTDATA_SURI) or --account <name> from the keystore".into(),
        )
        .into())
    }

    async fn chain(&self) -> anyhow::Result<FastData> {
        let account = self.acting()?;
        Ok(FastData::connect(&self.cli_url, account).await?)
    }

    async fn chain_as(&self, account: Account) -> anyhow::Result<FastData> {
        Ok(FastData::connect(&self.cli_url, account).await?)
    }

    /// A connection for read-only queries: the acting account if one is given, else a
    /// throwaway one (queries sign nothing).
    async fn reader(&self) -> anyhow::Result<FastData> {
        if self.suri.is_some() || self.account.is_some() {
            return self.chain().await;
        }
        let (account, _) = Account::generate()?;
        self.chain_as(account).await
    }
}

fn offer_json(o: &fastdata_sdk::seller::Offer) -> Value {
    json!({
        "id": o.id,
        "seller": o.seller.to_ss58check(),
        "seller_trust_score": score(o.seller_trust_score),
        "topic": String::from_utf8_lossy(&o.topic),
        "mode": match o.mode {
            PaymentMode::Batch { first, last } => json!({"batch": {"first": first, "last": last}}),
            PaymentMode::Stream { period } => json!({"stream": {"period_blocks": period}}),
        },
        "price": o.price.to_string(),
        "price_fast": fmt_balance(o.price),
        "verified_only": o.terms.verified_only,
        "replication": o.terms.replication,
        "stream": o.stream.map(|s| format!("{s:?}")),
        "retired": o.retired_at.is_some(),
    })
}

fn purchase_json(p: &fastdata_sdk::buyer::Purchase) -> Value {
    json!({
        "id": p.id,
        "offer": p.offer,
        "buyer": p.buyer.to_ss58check(),
        "seller": p.seller.to_ss58check(),
        "stream": format!("{:?}", p.stream),
        "terms": match p.terms {
            PurchaseTerms::Batch { first, last } => json!({"batch": {"first": first, "last": last}}),
            PurchaseTerms::Stream { period, periods } => json!({"stream": {"period_blocks": period, "periods": periods}}),
        },
        "price": fmt_balance(p.price),
        "state": format!("{:?}", p.state),
        "access": {"start": p.access.start, "end": p.access.end, "first_epoch": p.access.first_epoch, "epochs": p.access.epochs},
        "key_deadline": p.key_deadline,
        "delivered_up_to": p.delivered_up_to,
        "start_head": p.start_head,
        "period_heads": p.period_heads,
        "ledger": {
            "held": fmt_balance(p.ledger.held),
            "operators": fmt_balance(p.ledger.operators),
            "seller": fmt_balance(p.ledger.seller),
            "fees": fmt_balance(p.ledger.fees),
            "refunded": fmt_balance(p.ledger.refunded),
        },
    })
}

fn print(ctx: &Ctx, value: &Value, human: impl FnOnce() -> String) {
    if ctx.json {
        println!(
            "{}",
            serde_json::to_string_pretty(value).unwrap_or_default()
        );
    } else {
        println!("{}", human());
    }
}

fn progress(ctx: &Ctx, len: Option<u64>, what: &str) -> ProgressBar {
    if ctx.json {
        return ProgressBar::hidden();
    }
    let bar = match len {
        Some(len) => ProgressBar::new(len),
        None => ProgressBar::new_spinner(),
    };
    let template = if len.is_some() {
        "{msg} [{bar:40}] {bytes}/{total_bytes} ({bytes_per_sec}, {eta})"
    } else {
        "{msg} {spinner} {bytes} ({bytes_per_sec})"
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(what.to_owned());
    bar
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let ctx = Ctx {
        cli_url: cli.url,
        suri: cli.suri,
        account: cli.account,
        keystore_path: cli.keystore.unwrap_or_else(Keystore::default_path),
        json: cli.json,
    };
    match cli.command {
        Command::Did(cmd) => did(&ctx, cmd).await,
        Command::Issuer(cmd) => issuer(&ctx, cmd).await,
        Command::Offer(cmd) => offer(&ctx, cmd).await,
        Command::Stream(cmd) => stream(&ctx, cmd).await,
        Command::Publish(args) => publish(&ctx, args).await,
        Command::Buy(args) => buy(&ctx, args).await,
        Command::Purchase(cmd) => purchase(&ctx, cmd).await,
        Command::Receive(args) => receive(&ctx, args).await,
        Command::Sales { offer } => business::sales(&ctx, offer).await,
        Command::Earnings => business::earnings(&ctx).await,
        Command::Operator(cmd) => operator::operator(&ctx, cmd).await,
        Command::Seller(cmd) => seller_run::seller(&ctx, cmd).await,
        Command::Keystore(cmd) => keystore::keystore(&ctx, cmd),
        Command::Rate {
            purchase,
            score,
            comment,
        } => {
            let chain = ctx.chain().await?;
            chain
                .rate(purchase, score, comment.as_deref().map(hash_text))
                .await?;
            print(&ctx, &json!({"purchase": purchase, "rated": score}), || {
                format!("rated purchase {purchase}: {score}/100")
            });
            Ok(())
        }
        Command::Dispute {
            purchase,
            reason,
            evidence,
        } => {
            let chain = ctx.chain().await?;
            let reason = match reason {
                Reason::KeysMismatch => DisputeReason::KeysMismatch,
                Reason::KeysMissing => DisputeReason::KeysMissing,
                Reason::DataNotDelivered => DisputeReason::DataNotDelivered,
                Reason::Other => DisputeReason::Other,
            };
            chain
                .dispute(purchase, reason, evidence.as_deref().map(hash_text))
                .await?;
            print(
                &ctx,
                &json!({"purchase": purchase, "disputed": format!("{reason:?}")}),
                || {
                    format!("purchase {purchase} disputed ({reason:?}); its remainder is frozen until the dispute is resolved or its deadline")
                },
            );
            Ok(())
        }
        Command::AnswerDispute { purchase, evidence } => {
            let chain = ctx.chain().await?;
            let hash = hash_text(&evidence);
            chain.answer_dispute(purchase, hash).await?;
            print(
                &ctx,
                &json!({"purchase": purchase, "answered": format!("{hash:?}")}),
                || format!("dispute of purchase {purchase} answered with evidence {hash:?}"),
            );
            Ok(())
        }
    }
}

async fn did(ctx: &Ctx, cmd: DidCommand) -> anyhow::Result<()> {
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

async fn issuer(ctx: &Ctx, cmd: IssuerCommand) -> anyhow::Result<()> {
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

async fn offer(ctx: &Ctx, cmd: OfferCommand) -> anyhow::Result<()> {
    let chain = match cmd {
        OfferCommand::List | OfferCommand::Show { .. } => ctx.reader().await?,
        _ => ctx.chain().await?,
    };
    match cmd {
        OfferCommand::Create(args) => {
            let mode = match (args.period, &args.batch) {
                (Some(period), None) => PaymentMode::Stream { period },
                (None, Some(batch)) => {
                    let (first, last) = batch
                        .split_once("..")
                        .context("--batch takes FIRST..LAST, e.g. 0..999")?;
                    PaymentMode::Batch {
                        first: first.trim().parse().context("--batch FIRST")?,
                        last: last
                            .trim()
                            .trim_start_matches('=')
                            .parse()
                            .context("--batch LAST")?,
                    }
                }
                _ => anyhow::bail!(
                    "give exactly one of --period BLOCKS (live) or --batch FIRST..LAST"
                ),
            };
            let terms = OfferTerms {
                licence: match args.licence {
                    LicenceArg::Internal => Licence::InternalUse,
                    LicenceArg::Commercial => Licence::Commercial,
                },
                resale_allowed: args.resale,
                verified_only: args.verified_only,
                verified_discount: Perbill::from_percent(args.discount.min(100)),
                min_trust_score: (args.min_trust.clamp(0.0, 1_000.0) * f64::from(SCORE_ONE)) as u32,
                retention: args.retention,
                replication: args.replication,
            };
            let price = parse_balance(&args.price)?;
            let id = chain.create_offer(&args.topic, mode, price, terms).await?;
            print(ctx, &json!({"offer": id}), || {
                format!("offer {id} listed; register its stream with `fastdata stream register {id} <name>`")
            });
        }
        OfferCommand::List => {
            let offers = chain.all_offers().await?;
            let list: Vec<Value> = offers.iter().map(offer_json).collect();
            print(ctx, &Value::Array(list), || {
                let mut s = format!(
                    "{:>5}  {:>6}  {:<36} {:>16}  {}",
                    "id", "trust", "topic", "price", "mode"
                );
                for o in &offers {
                    s.push_str(&format!(
                        "\n{:>5}  {:>6.3}  {:<36} {:>16}  {}{}",
                        o.id,
                        score(o.seller_trust_score),
                        String::from_utf8_lossy(&o.topic),
                        fmt_balance(o.price),
                        match o.mode {
                            PaymentMode::Batch { first, last } => format!("batch {first}..{last}"),
                            PaymentMode::Stream { period } => format!("live, per {period} blocks"),
                        },
                        if o.retired_at.is_some() {
                            " (retired)"
                        } else if o.stream.is_none() {
                            " (no stream yet)"
                        } else {
                            ""
                        }
                    ));
                }
                s
            });
        }
        OfferCommand::Show { id } => {
            let o = chain.offer(id).await?.ok_or_else(|| {
                Error::NotFound(format!(
                    "no offer {id}; list them with `fastdata offer list`"
                ))
            })?;
            let v = offer_json(&o);
            print(ctx, &v, || {
                serde_json::to_string_pretty(&v).unwrap_or_default()
            });
        }
        OfferCommand::Retire { id } => {
            chain.retire_offer(id).await?;
            print(ctx, &json!({"retired": id}), || {
                format!("offer {id} retired")
            });
        }
    }
    Ok(())
}

async fn stream(ctx: &Ctx, cmd: StreamCommand) -> anyhow::Result<()> {
    let chain = match cmd {
        StreamCommand::Show { .. } => ctx.reader().await?,
        _ => ctx.chain().await?,
    };
    match cmd {
        StreamCommand::Register {
            offer,
            name,
            quota_mb,
            hosting_periods,
            hosting_funds,
        } => {
            let hosting = match hosting_funds {
                Some(funds) => Hosting {
                    quota_mb,
                    funds: parse_balance(&funds)?,
                },
                None => {
                    let replication = chain
                        .offer(offer)
                        .await?
                        .ok_or_else(|| anyhow::anyhow!("no offer {offer}"))?
                        .terms
                        .replication;
                    let (price, period) = chain.hosting_price().await?;
                    Hosting::covering(
                        quota_mb,
                        replication,
                        period.saturating_mul(hosting_periods),
                        price,
                        period,
                    )
                }
            };
            let mut keystore = ctx.keystore()?;
            let registered = chain
                .register_stream(&mut keystore, offer, &name, hosting)
                .await?;
            let ops: Vec<String> = registered
                .operators
                .iter()
                .map(|o| o.to_ss58check())
                .collect();
            print(
                ctx,
                &json!({"stream": format!("{:?}", registered.stream), "operators": ops, "commitment": format!("{:?}", registered.commitment)}),
                || {
                    format!(
                        "stream {:?} registered, hosted by {}\n  epoch-0 keys kept in {}",
                        registered.stream,
                        ops.join(", "),
                        keystore.path().display()
                    )
                },
            );
        }
        StreamCommand::Show { stream } => {
            let id = parse_h256(&stream)?;
            let s = chain
                .stream(&id)
                .await?
                .ok_or_else(|| Error::NotFound(format!("no stream {id:?}")))?;
            let ops: Vec<String> = s.operators.iter().map(|o| o.to_ss58check()).collect();
            let v = json!({"stream": format!("{id:?}"), "offer": s.offer, "name": String::from_utf8_lossy(&s.name), "operators": ops, "epoch": s.epoch, "closed": s.closed_at.is_some(), "quota_mb": s.quota_mb, "hosting_funded": s.hosting_funded});
            print(ctx, &v, || {
                serde_json::to_string_pretty(&v).unwrap_or_default()
            });
        }
        StreamCommand::Rotate { stream } => {
            let id = parse_h256(&stream)?;
            let mut keystore = ctx.keystore()?;
            let epoch = chain.rotate_epoch(&mut keystore, &id).await?;
            print(
                ctx,
                &json!({"stream": format!("{id:?}"), "epoch": epoch}),
                || {
                    format!(
                        "epoch {epoch} opened; buyers get its keys from the key-delivery service"
                    )
                },
            );
        }
        StreamCommand::FundHosting {
            stream,
            quota_mb,
            amount,
        } => {
            let id = parse_h256(&stream)?;
            let amount = parse_balance(&amount)?;
            chain.fund_hosting(&id, quota_mb, amount).await?;
            print(
                ctx,
                &json!({"stream": format!("{id:?}"), "quota_mb": quota_mb, "added": amount}),
                || {
                    format!(
                        "stream {id:?}: quota {quota_mb} MB, {} added to its hosting funds",
                        fmt_balance(amount)
                    )
                },
            );
        }
        StreamCommand::Close { stream } => {
            let id = parse_h256(&stream)?;
            let included = chain.close_stream(&id).await?;
            // StreamClosed { stream, serving_until }
            let serving_until = included
                .event("Offers", "StreamClosed")
                .and_then(|e| <(StreamId, Option<BlockNumber>)>::decode(&mut &e.fields[..]).ok())
                .and_then(|(_, until)| until);
            print(
                ctx,
                &json!({"closed": format!("{id:?}"), "serving_until": serving_until}),
                || {
                    match serving_until {
                    Some(until) => format!(
                        "stream {id:?} closed: no more sales; its operators serve its buyers until block {until} (then `fastdata stream release`)"
                    ),
                    None => format!("stream {id:?} closed and its operators released"),
                }
                },
            );
        }
        StreamCommand::Release { stream } => {
            let id = parse_h256(&stream)?;
            chain.release_stream(&id).await?;
            print(ctx, &json!({"released": format!("{id:?}")}), || {
                format!("operators of stream {id:?} released")
            });
        }
        StreamCommand::DeliverKeys { once } => {
            let mut keystore = ctx.keystore()?;
            let json_out = ctx.json;
            let report = |d: &fastdata_sdk::seller::Delivery| {
                if json_out {
                    println!(
                        "{}",
                        json!({"purchase": d.purchase, "epoch": d.epoch, "ok": d.result.is_ok(), "error": d.result.as_ref().err()})
                    );
                } else {
                    match &d.result {
                        Ok(()) => eprintln!(
                            "delivered keys of epoch {} to purchase {}",
                            d.epoch, d.purchase
                        ),
                        Err(e) => eprintln!("purchase {} epoch {}: {e}", d.purchase, d.epoch),
                    }
                }
            };
            if once {
                for d in chain.deliver_due_keys(&keystore).await? {
                    report(&d);
                }
            } else {
                if !json_out {
                    eprintln!(
                        "key-delivery service running for {}; Ctrl-C stops",
                        chain.account().did()
                    );
                }
                chain
                    .run_key_delivery(&mut keystore, report, async {
                        let _ = tokio::signal::ctrl_c().await;
                    })
                    .await?;
            }
        }
    }
    Ok(())
}

async fn publish(ctx: &Ctx, args: PublishArgs) -> anyhow::Result<()> {
    let chain = ctx.chain().await?;
    let stream: StreamId = parse_h256(&args.stream)?;
    let mut keystore = ctx.keystore()?;
    let view = chain.stream(&stream).await?.ok_or_else(|| {
        Error::NotFound(format!(
            "no stream {stream:?}; register one with `fastdata stream register`"
        ))
    })?;
    let keys = keystore.epoch_keys(&stream, view.epoch).ok_or_else(|| Error::Keystore {
        path: keystore.path().display().to_string(),
        detail: format!("no keys of epoch {} of stream {stream:?}; use the keystore that registered or rotated it", view.epoch),
    })?;
    if view.epoch_commitment != Some(keys.commitment()) {
        anyhow::bail!(Error::Keystore {
            path: keystore.path().display().to_string(),
            detail: format!(
                "the keys of epoch {} in the keystore do not match the stream's on-chain commitment; buyers could not decrypt. Rotate the epoch with `fastdata stream rotate` using this keystore",
                view.epoch
            ),
        });
    }
    let endpoints = chain.stream_endpoints(&stream).await?;
    let expiry = chain.finalized_number().await?.saturating_add(14_400);
    let next = keystore
        .stream(&stream)
        .map(|s| s.next_sequence)
        .unwrap_or(0);
    keystore.record_epoch_start(&stream, view.epoch, next);
    keystore.save()?;
    let mut publisher = StreamPublisher::connect(
        chain.account(),
        chain.genesis(),
        stream,
        view.epoch,
        keys,
        &endpoints,
        expiry,
        next,
    )
    .await?;
    let chunk = args
        .chunk
        .clamp(1, fastdata_primitives::envelope::MAX_PAYLOAD_LEN);
    let mut total = 0u64;
    let mut count = 0u64;
    if let Some(name) = &args.sensor {
        let bar = progress(ctx, None, "publishing");
        let mut sensor = SimulatedSensor::new(name);
        for i in 0..args.count {
            let reading = sensor.reading();
            publisher.publish(&reading).await?;
            total += reading.len() as u64;
            count += 1;
            bar.set_position(total);
            if i + 1 < args.count {
                tokio::time::sleep(Duration::from_millis(args.interval_ms)).await;
            }
        }
        bar.finish_and_clear();
    } else {
        let (mut reader, len): (Box<dyn Read>, Option<u64>) = match (&args.file, args.stdin) {
            (Some(path), _) => {
                let f = std::fs::File::open(path)
                    .with_context(|| format!("cannot open {}", path.display()))?;
                let len = f.metadata().ok().map(|m| m.len());
                (Box::new(f), len)
            }
            (None, true) => (Box::new(std::io::stdin()), None),
            (None, false) => anyhow::bail!("give one of --file PATH, --stdin or --sensor NAME"),
        };
        let bar = progress(ctx, len, "publishing");
        let mut buf = vec![0u8; chunk];
        loop {
            let mut filled = 0;
            while filled < chunk {
                let n = reader.read(&mut buf[filled..])?;
                if n == 0 {
                    break;
                }
                filled += n;
            }
            if filled == 0 {
                break;
            }
            publisher.publish(&buf[..filled]).await?;
            total += filled as u64;
            count += 1;
            bar.set_position(total);
            if filled < chunk {
                break;
            }
        }
        bar.finish_and_clear();
    }
    let flushed = publisher.flush(Duration::from_secs(60)).await;
    let status = publisher.status();
    keystore.stream_mut(&stream).next_sequence = match publisher.acked_up_to() {
        Some(up_to) if flushed.is_err() => up_to + 1,
        _ => publisher.next_sequence(),
    };
    keystore.save()?;
    flushed?;
    let first = next;
    let last = publisher.next_sequence().saturating_sub(1);
    print(
        ctx,
        &json!({"stream": format!("{stream:?}"), "epoch": view.epoch, "segments": count, "bytes": total, "first_sequence": first, "last_sequence": last, "operators": status.iter().map(|s| json!({"operator": s.operator, "acked": s.acked})).collect::<Vec<_>>()}),
        || {
            format!("published {count} segments ({total} bytes), sequences {first}..={last}, acknowledged by {} operator(s)", status.len())
        },
    );
    Ok(())
}

async fn buy(ctx: &Ctx, args: BuyArgs) -> anyhow::Result<()> {
    let chain = ctx.chain().await?;
    let offer = chain.offer(args.offer).await?.ok_or_else(|| {
        Error::NotFound(format!(
            "no offer {}; list them with `fastdata offer list`",
            args.offer
        ))
    })?;
    let max_price = match &args.max_price {
        Some(p) => parse_balance(p)?,
        None => offer.price.saturating_mul(Balance::from(args.periods)),
    };
    if chain
        .key_agreement_key(&chain.account().account_id())
        .await?
        .is_none()
    {
        anyhow::bail!(Error::NotFound(
            "you have no DID to receive keys on: run `fastdata did create` first".into()
        ));
    }
    let id = chain.buy(args.offer, args.periods, max_price).await?;
    let mut value = json!({"purchase": id});
    if args.wait_keys > 0 {
        if !ctx.json {
            eprintln!("purchase {id} made; waiting for the seller's keys…");
        }
        let purchase = chain
            .wait_for_keys(id, Duration::from_secs(args.wait_keys))
            .await?;
        let keystore = ctx.keystore()?;
        let keys = chain.purchase_keys(&keystore, &purchase).await?;
        value["epochs"] = json!(keys.keys().collect::<Vec<_>>());
        value["details"] = purchase_json(&purchase);
    }
    print(ctx, &value, || {
        format!(
            "purchase {id}{}; receive with `fastdata receive {id}`",
            if args.wait_keys > 0 {
                " active, keys checked against the on-chain commitment"
            } else {
                ""
            }
        )
    });
    Ok(())
}

async fn purchase(ctx: &Ctx, cmd: PurchaseCommand) -> anyhow::Result<()> {
    let chain = match cmd {
        PurchaseCommand::Show { .. } => ctx.reader().await?,
        PurchaseCommand::List => ctx.chain().await?,
    };
    match cmd {
        PurchaseCommand::Show { id } => {
            let p = chain
                .purchase(id)
                .await?
                .ok_or_else(|| Error::NotFound(format!("no purchase {id}")))?;
            let v = purchase_json(&p);
            print(ctx, &v, || {
                serde_json::to_string_pretty(&v).unwrap_or_default()
            });
        }
        PurchaseCommand::List => {
            let me = chain.account().account_id();
            let mut list = Vec::new();
            for id in chain.purchases_of_buyer(&me).await? {
                if let Some(p) = chain.purchase(id).await? {
                    list.push(purchase_json(&p));
                }
            }
            let text = list
                .iter()
                .map(|p| {
                    format!(
                        "{}  offer {}  {}  {}",
                        p["id"],
                        p["offer"],
                        p["state"].as_str().unwrap_or(""),
                        p["price"].as_str().unwrap_or("")
                    )
                })
                .collect::<Vec<_>>()
                .join("\n");
            print(ctx, &Value::Array(list), || text);
        }
    }
    Ok(())
}

async fn receive(ctx: &Ctx, args: ReceiveArgs) -> anyhow::Result<()> {
    let chain = ctx.chain().await?;
    let keystore = ctx.keystore()?;
    let purchase = chain
        .purchase(args.purchase)
        .await?
        .ok_or_else(|| Error::NotFound(format!("no purchase {}", args.purchase)))?;
    if purchase.access.epochs.is_empty() {
        anyhow::bail!(Error::Purchase {
            purchase: purchase.id,
            detail: format!(
                "no keys delivered yet (state {:?}); wait for the seller's key-delivery service",
                purchase.state
            )
        });
    }
    let (first, last) = match purchase.terms {
        PurchaseTerms::Batch { first, last } => {
            (Some(args.from.unwrap_or(first).max(first)), Some(last))
        }
        PurchaseTerms::Stream { .. } => (args.from, None),
    };
    let endpoints = chain.stream_endpoints(&purchase.stream).await?;
    let mut receiver = chain
        .receiver(&keystore, &purchase, endpoints, first, 600)
        .await?;
    if args.statements.is_some() {
        receiver = receiver.with_statements();
    }
    let mut out: Box<dyn Write> = match &args.out {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path)
                .with_context(|| format!("cannot create {}", path.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout())),
    };
    let len = match (first, last) {
        (Some(f), Some(l)) => Some(l.saturating_sub(f).saturating_add(1)),
        _ => None,
    };
    let bar = if args.out.is_some() || ctx.json {
        progress(ctx, None, "receiving")
    } else {
        ProgressBar::hidden()
    };
    if let Some(len) = len {
        bar.set_length(len);
        if let Ok(style) =
            ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} segments ({per_sec}, {eta})")
        {
            bar.set_style(style.progress_chars("=> "));
        }
    }
    let mut write_error = None;
    let mut sink = |segment: fastdata_primitives::envelope::OpenedSegment| {
        if let Err(e) = out.write_all(&segment.payload) {
            write_error = Some(e.to_string());
            return Err(Error::Io(e));
        }
        bar.inc(if len.is_some() {
            1
        } else {
            segment.payload.len() as u64
        });
        Ok(())
    };
    let summary = if args.live {
        // Keys of epochs the seller opens while following (rotations) reach the receiver.
        let keys = receiver.key_updates();
        let forward = {
            let (chain, keystore) = (chain.clone(), ctx.keystore()?);
            let id = purchase.id;
            tokio::spawn(async move {
                if let Err(e) = chain
                    .forward_epoch_keys(&keystore, id, keys, Duration::from_secs(2))
                    .await
                {
                    tracing::warn!("new epoch keys of purchase {id}: {e}");
                }
            })
        };
        let summary = receiver
            .follow(&mut sink, Duration::from_secs(1), async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await;
        forward.abort();
        summary
    } else {
        receiver.download(last, &mut sink).await
    };
    let flushed = out.flush();
    bar.finish_and_clear();
    // The statements received are evidence even when the download failed part-way.
    let (summary, statements_saved) = keep_statements(
        summary,
        args.statements.as_deref(),
        &receiver.take_statements(),
    )?;
    flushed?;
    let value = json!({"purchase": purchase.id, "segments": summary.segments, "statements": statements_saved, "bytes": summary.bytes, "up_to": summary.up_to, "duplicates": summary.duplicates, "rejected": summary.rejected, "bad_signatures": summary.bad_signatures, "failovers": summary.failovers});
    if ctx.json || args.out.is_some() {
        print(ctx, &value, || {
            format!("received {} verified segments ({} bytes) up to sequence {:?}; {} rejected, {} fail-overs", summary.segments, summary.bytes, summary.up_to, summary.rejected, summary.failovers)
        });
    } else {
        eprintln!(
            "received {} verified segments ({} bytes)",
            summary.segments, summary.bytes
        );
    }
    Ok(())
}

/// Appends `statements` to the file at `path`, one line each ([`ServedStatement::to_line`]);
/// how many.
fn save_statements(
    path: &std::path::Path,
    statements: &[ServedStatement],
) -> anyhow::Result<usize> {
    let lines: String = statements.iter().map(|s| s.to_line() + "\n").collect();
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .and_then(|mut f| f.write_all(lines.as_bytes()))
        .with_context(|| format!("cannot write statements to {}", path.display()))?;
    Ok(statements.len())
}

/// Saves the statements received to `path` (if given) whatever the `outcome` of the receive:
/// evidence gathered before a failure is kept. Then the outcome, with how many were saved.
fn keep_statements<T>(
    outcome: Result<T, Error>,
    path: Option<&std::path::Path>,
    statements: &[ServedStatement],
) -> anyhow::Result<(T, usize)> {
    let saved = path.map_or(Ok(0), |path| save_statements(path, statements));
    match outcome {
        Ok(value) => Ok((value, saved?)),
        Err(e) => {
            match (path, saved) {
                (Some(path), Ok(n)) => eprintln!(
                    "{n} statements received before the failure appended to {}",
                    path.display()
                ),
                (_, Err(not_saved)) => eprintln!("warning: {not_saved:#}"),
                (None, Ok(_)) => {}
            }
            Err(e.into())
        }
    }
}

fn exit_code(e: &anyhow::Error) -> i32 {
    match e.downcast_ref::<Error>() {
        Some(Error::Chain(_)) => 3,
        Some(Error::Dispatch { .. }) => 4,
        Some(
            Error::Sealed { .. }
            | Error::CommitmentMismatch { .. }
            | Error::Segment(_)
            | Error::Envelope(_),
        ) => 5,
        Some(Error::NotFound(_) | Error::Purchase { .. }) => 6,
        Some(Error::Timeout(_)) => 7,
        Some(Error::Operator { .. } | Error::NoOperator(_)) => 8,
        Some(Error::Keystore { .. } | Error::Account(_)) => 9,
        _ => 1,
    }
}

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("FASTDATA_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let json = cli.json;
    if let Err(e) = run(cli).await {
        let code = exit_code(&e);
        if json {
            eprintln!("{}", json!({"error": format!("{e:#}"), "exit_code": code}));
        } else {
            eprintln!("error: {e:#}");
        }
        std::process::exit(code);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn balances_parse_and_print() {
        assert_eq!(parse_balance("10").unwrap(), 10);
        assert_eq!(parse_balance("1FAST").unwrap(), FAST);
        assert_eq!(parse_balance("1.5FAST").unwrap(), FAST + FAST / 2);
        assert_eq!(parse_balance(".25 FAST").unwrap(), FAST / 4);
        assert!(parse_balance("1.0000000000001FAST").is_err());
        assert!(parse_balance("ten").is_err());
        assert_eq!(fmt_balance(FAST + FAST / 2), "1.5 FAST");
        assert_eq!(fmt_balance(2 * FAST), "2 FAST");
    }

    #[test]
    fn cli_parses() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
        let cli = Cli::try_parse_from([
            "fastdata",
            "--suri",
            "//Alice",
            "--json",
            "buy",
            "3",
            "--periods",
            "2",
        ])
        .unwrap();
        assert!(cli.json);
        assert!(matches!(
            cli.command,
            Command::Buy(BuyArgs {
                offer: 3,
                periods: 2,
                ..
            })
        ));
        assert!(Cli::try_parse_from(["fastdata", "rate", "1", "101"]).is_err());
        assert!(
            Cli::try_parse_from(["fastdata", "publish", "0x00", "--file", "a", "--stdin"]).is_err()
        );
    }

    #[test]
    fn seller_and_operator_commands_parse() {
        let parse = |args: &[&str]| Cli::try_parse_from([&["fastdata"], args].concat());
        assert!(matches!(
            parse(&["sales", "--offer", "7"]).map(|c| c.command),
            Ok(Command::Sales { offer: Some(7) })
        ));
        assert!(matches!(
            parse(&["sales"]).map(|c| c.command),
            Ok(Command::Sales { offer: None })
        ));
        assert!(parse(&["sales", "--offer", "x"]).is_err());
        assert!(matches!(
            parse(&["--json", "earnings"]).map(|c| c.command),
            Ok(Command::Earnings)
        ));
        for (args, ok) in [
            (&["operator", "pause"][..], true),
            (&["operator", "resume"], true),
            (&["operator", "leave"], true),
            (&["operator", "withdraw"], true),
            (&["operator", "status"], true),
            (&["operator", "status", "5Grw"], true),
            (&["operator", "earnings"], true),
            (&["operator", "bond-extra", "5FAST"], true),
            (&["operator", "bond-extra"], false),
            (&["operator", "fly"], false),
            (&["operator", "register", "--stake", "100FAST"], false),
        ] {
            assert_eq!(parse(args).is_ok(), ok, "{args:?}");
        }
        match parse(&["operator", "bond-extra", "2.5FAST"]).map(|c| c.command) {
            Ok(Command::Operator(operator::OperatorCommand::BondExtra { amount })) => {
                assert_eq!(parse_balance(&amount).ok(), Some(2 * FAST + FAST / 2));
            }
            _ => panic!("bond-extra did not parse"),
        }
    }

    #[test]
    fn statements_received_are_saved_even_when_the_receive_fails() {
        use fastdata_primitives::custody::SegmentStatement;
        use sp_core::{sr25519, Pair};
        let operator = sr25519::Pair::from_seed(&[5; 32]);
        let statements: Vec<ServedStatement> = (0..3)
            .map(|sequence| {
                let statement = SegmentStatement::of(H256::repeat_byte(7), sequence, b"x");
                ServedStatement {
                    operator: operator.public().into(),
                    signature: statement.sign_sr25519(&operator, &H256::repeat_byte(0x47)),
                    statement,
                }
            })
            .collect();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("statements.jsonl");
        let failed: Result<(), Error> = Err(Error::NoOperator("every operator failed".into()));
        let err = keep_statements(failed, Some(&path), &statements).unwrap_err();
        assert!(matches!(
            err.downcast_ref::<Error>(),
            Some(Error::NoOperator(_))
        ));
        let written = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<_> = written.lines().collect();
        assert_eq!(lines.len(), 3);
        for (line, statement) in lines.iter().zip(&statements) {
            assert_eq!(&ServedStatement::from_line(line).unwrap(), statement);
        }
        // A later success appends.
        let (value, saved) = keep_statements(Ok(7), Some(&path), &statements[..1]).unwrap();
        assert_eq!((value, saved), (7, 1));
        assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 4);
        // Nothing asked, nothing written.
        assert_eq!(keep_statements(Ok(1), None, &statements).unwrap(), (1, 0));
    }

    #[test]
    fn exit_codes_follow_the_error() {
        assert_eq!(
            exit_code(&anyhow::Error::from(Error::Dispatch { error: "x".into() })),
            4
        );
        assert_eq!(
            exit_code(&anyhow::Error::from(Error::CommitmentMismatch {
                purchase: 1,
                epoch: 0
            })),
            5
        );
        assert_eq!(exit_code(&anyhow::anyhow!("other")), 1);
    }
}

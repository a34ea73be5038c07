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

// One module per command group; `common` holds what they share.
mod buyer;
mod common;
mod identity;
mod keystore;
mod offer;
mod operator;
mod publish;
mod rating;
mod sales;
mod seller;
mod stream;

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use fastdata_sdk::keystore::Keystore;
use serde_json::json;

use common::Ctx;

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
    Did(identity::DidCommand),
    /// Credential issuers.
    #[command(subcommand)]
    Issuer(identity::IssuerCommand),
    /// Data offers.
    #[command(subcommand)]
    Offer(offer::OfferCommand),
    /// Streams and key epochs (seller).
    #[command(subcommand)]
    Stream(stream::StreamCommand),
    /// Seal and publish segments to the stream's operators (seller).
    Publish(publish::PublishArgs),
    /// Buy an offer and wait for its keys (buyer).
    Buy(buyer::BuyArgs),
    /// Show purchases.
    #[command(subcommand)]
    Purchase(buyer::PurchaseCommand),
    /// Receive, verify and decrypt the data of a purchase (buyer).
    Receive(buyer::ReceiveArgs),
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
        reason: rating::Reason,
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
    Seller(seller::SellerCommand),
    /// The local keystore: status, encrypted backup and restore, encrypt.
    #[command(subcommand)]
    Keystore(keystore::KeystoreCommand),
}

/// Runs the command: each group's module does the work.
async fn run(cli: Cli) -> anyhow::Result<()> {
    let ctx = Ctx {
        cli_url: cli.url,
        suri: cli.suri,
        account: cli.account,
        keystore_path: cli.keystore.unwrap_or_else(Keystore::default_path),
        json: cli.json,
    };
    match cli.command {
        Command::Did(cmd) => identity::did(&ctx, cmd).await,
        Command::Issuer(cmd) => identity::issuer(&ctx, cmd).await,
        Command::Offer(cmd) => offer::offer(&ctx, cmd).await,
        Command::Stream(cmd) => stream::stream(&ctx, cmd).await,
        Command::Publish(args) => publish::publish(&ctx, args).await,
        Command::Buy(args) => buyer::buy(&ctx, args).await,
        Command::Purchase(cmd) => buyer::purchase(&ctx, cmd).await,
        Command::Receive(args) => buyer::receive(&ctx, args).await,
        Command::Sales { offer } => sales::sales(&ctx, offer).await,
        Command::Earnings => sales::earnings(&ctx).await,
        Command::Operator(cmd) => operator::operator(&ctx, cmd).await,
        Command::Seller(cmd) => seller::seller(&ctx, cmd).await,
        Command::Keystore(cmd) => keystore::keystore(&ctx, cmd),
        Command::Rate {
            purchase,
            score,
            comment,
        } => rating::rate(&ctx, purchase, score, comment.as_deref()).await,
        Command::Dispute {
            purchase,
            reason,
            evidence,
        } => rating::dispute(&ctx, purchase, reason, evidence.as_deref()).await,
        Command::AnswerDispute { purchase, evidence } => {
            rating::answer_dispute(&ctx, purchase, &evidence).await
        }
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
        let code = common::exit_code(&e);
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
    use buyer::BuyArgs;
    use common::{parse_balance, FAST};

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
}

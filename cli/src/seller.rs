//! `fastdata seller run --config seller.toml`: the seller service in one process
//! ([`fastdata_sdk::seller_service`]): publishes records from standard input or a plant
//! broker, delivers keys, rotates epochs; stops cleanly on Ctrl-C or SIGTERM.

use std::{path::PathBuf, time::Duration};

use clap::Subcommand;
use fastdata_sdk::{
    seller_service::{config::SellerConfig, SellerService},
    FastData,
};

use crate::common::Ctx;

/// `fastdata seller …`.
#[derive(Subcommand)]
pub(crate) enum SellerCommand {
    /// Run the seller service: publish records of the configured streams in segments (by
    /// size or within max_delay_ms), deliver keys to every purchase, rotate key epochs on a
    /// schedule and when a buyer's access ends. Logs with FASTDATA_LOG=info.
    Run {
        /// The configuration file (TOML, or JSON if it ends in .json).
        #[arg(long, short)]
        config: PathBuf,
    },
}

/// Runs a `fastdata seller` command.
pub(crate) async fn seller(ctx: &Ctx, cmd: SellerCommand) -> anyhow::Result<()> {
    match cmd {
        SellerCommand::Run { config } => {
            let parsed = SellerConfig::load(&config)?;
            let stdin: Option<Box<dyn std::io::BufRead + Send>> =
                if parsed.streams.iter().any(|s| s.stdin) {
                    Some(Box::new(std::io::BufReader::new(std::io::stdin())))
                } else {
                    None
                };
            let keystore = ctx.keystore()?;
            let delivery_keystore = ctx.keystore()?;
            let account = ctx.acting()?;
            // A node that is not up yet is waited for, as a service restarted with it must.
            let mut wait = Duration::from_secs(1);
            let chain = loop {
                match FastData::connect(&ctx.cli_url, account.clone()).await {
                    Ok(chain) => break chain,
                    Err(e) => {
                        tracing::warn!("{e}; retrying in {wait:?}");
                        eprintln!("node not reachable, retrying in {wait:?}: {e}");
                        tokio::select! {
                            _ = fastdata_sdk::termination_signal() => return Ok(()),
                            _ = tokio::time::sleep(wait) => {}
                        }
                        wait = (wait * 2).min(Duration::from_secs(60));
                    }
                }
            };
            if !ctx.json {
                eprintln!(
                    "seller service running for {} ({} stream entr{}); Ctrl-C or SIGTERM stops",
                    chain.account().did(),
                    parsed.streams.len(),
                    if parsed.streams.len() == 1 {
                        "y"
                    } else {
                        "ies"
                    }
                );
            }
            SellerService::new(&ctx.cli_url, chain, parsed, keystore, delivery_keystore)
                .run(stdin, fastdata_sdk::termination_signal())
                .await?;
            Ok(())
        }
    }
}

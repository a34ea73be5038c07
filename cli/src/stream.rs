//! `fastdata stream …`: a seller's streams: registration with epoch-0 keys, hosting funds,
//! key epochs, closing and release, and the key-delivery service.

use clap::Subcommand;
use fastdata_primitives::BlockNumber;
use fastdata_sdk::{
    chain::{fastdata, RuntimeEvent},
    seller::Hosting,
    Error,
};
use serde_json::json;
use sp_core::crypto::Ss58Codec;

use crate::common::{fmt_balance, parse_balance, parse_h256, print, Ctx};

/// `fastdata stream …`.
#[derive(Subcommand)]
pub(crate) enum StreamCommand {
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

/// Runs a `fastdata stream` command.
pub(crate) async fn stream(ctx: &Ctx, cmd: StreamCommand) -> anyhow::Result<()> {
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
            let serving_until: Option<BlockNumber> = included
                .find(|e| match e {
                    RuntimeEvent::Offers(fastdata::offers::Event::StreamClosed {
                        serving_until,
                        ..
                    }) => Some(*serving_until),
                    _ => None,
                })
                .flatten();
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

//! `fastdata offer …`: list, show and retire data offers.

use anyhow::Context as _;
use clap::{Args, Subcommand, ValueEnum};
use fastdata_primitives::{
    api_market::{Licence, OfferTerms},
    PaymentMode, SCORE_ONE,
};
use fastdata_sdk::Error;
use serde_json::{json, Value};
use sp_core::crypto::Ss58Codec;
use sp_runtime::Perbill;

use crate::common::{fmt_balance, parse_balance, print, score, Ctx};

/// `fastdata offer …`.
#[derive(Subcommand)]
pub(crate) enum OfferCommand {
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

/// `fastdata offer create`.
#[derive(Args)]
pub(crate) struct OfferArgs {
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

/// `--licence`.
#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum LicenceArg {
    Internal,
    Commercial,
}

/// An offer as `--json` and `offer show` print it.
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

/// Runs a `fastdata offer` command.
pub(crate) async fn offer(ctx: &Ctx, cmd: OfferCommand) -> anyhow::Result<()> {
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

//! `fastdata buy`, `fastdata purchase …` and `fastdata receive`: the buyer's side: buying an
//! offer and waiting for its keys, purchases, and receiving verified data (with the
//! operators' signed statements kept as evidence).

use std::{io::Write, path::PathBuf, time::Duration};

use anyhow::Context as _;
use clap::{Args, Subcommand};
use fastdata_primitives::{escrow::PurchaseTerms, Balance};
use fastdata_sdk::{operator::ServedStatement, Error};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{json, Value};
use sp_core::crypto::Ss58Codec;

use crate::common::{fmt_balance, parse_balance, print, progress, Ctx};

/// `fastdata buy`.
#[derive(Args)]
pub(crate) struct BuyArgs {
    /// Offer id.
    pub(crate) offer: u64,
    /// Periods of a live offer (1 for a batch).
    #[arg(long, default_value_t = 1)]
    pub(crate) periods: u32,
    /// Highest price accepted (planck, or with suffix FAST) [default: the listed price × periods].
    #[arg(long)]
    pub(crate) max_price: Option<String>,
    /// Seconds to wait for the seller's keys (0: do not wait).
    #[arg(long, default_value_t = 120)]
    pub(crate) wait_keys: u64,
}

/// `fastdata purchase …`.
#[derive(Subcommand)]
pub(crate) enum PurchaseCommand {
    /// Show a purchase.
    Show {
        /// Purchase id.
        id: u64,
    },
    /// List the acting account's purchases.
    List,
}

/// `fastdata receive`.
#[derive(Args)]
pub(crate) struct ReceiveArgs {
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

/// A purchase as `--json` and `purchase show` print it.
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

/// Runs `fastdata buy`: buys, then waits for the keys and checks them.
pub(crate) async fn buy(ctx: &Ctx, args: BuyArgs) -> anyhow::Result<()> {
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

/// Runs a `fastdata purchase` command.
pub(crate) async fn purchase(ctx: &Ctx, cmd: PurchaseCommand) -> anyhow::Result<()> {
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

/// Runs `fastdata receive`: downloads (or follows) a purchase's stream, verified and decrypted.
pub(crate) async fn receive(ctx: &Ctx, args: ReceiveArgs) -> anyhow::Result<()> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use sp_core::H256;

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
}

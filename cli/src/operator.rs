//! `fastdata operator …`: a storage operator's record and its life-cycle calls. Every call
//! waits for finality and prints the record as it is afterwards. `report-equivocation` is
//! anyone's: it proves an operator signed two contents for one segment.

use anyhow::Context as _;
use clap::Subcommand;
use codec::DecodeAll;
use fastdata_primitives::{api_market::OperatorStatus, BlockNumber};
use fastdata_sdk::{
    account::parse_account,
    operator::{equivocations, ServedStatement, StatementEvidence},
    operator_account::OperatorStatusReport,
    Error,
};
use serde_json::{json, Value};
use sp_core::{crypto::Ss58Codec, H256};

use crate::common::{fmt_balance, parse_balance, parse_h256, print, score, Ctx};

/// `fastdata operator …`.
#[derive(Subcommand)]
pub(crate) enum OperatorCommand {
    /// Show an operator's record: stake, status, endpoints, price, last heartbeat, streams
    /// hosted and pending reassignment (default: the acting account).
    Status {
        /// Account (SS58 or did:fast:…).
        who: Option<String>,
    },
    /// Register the acting account as a storage operator (the daemon does this itself from
    /// `[chain.register]`).
    Register {
        /// Stake to hold (planck, or with suffix FAST); at least the runtime's minimum.
        #[arg(long)]
        stake: String,
        /// MQTT broker endpoint (mqtt:// or mqtts://).
        #[arg(long)]
        broker_url: String,
        /// HTTP endpoint (http:// or https://).
        #[arg(long)]
        http_url: String,
        /// Price per MB served (planck, or with suffix FAST).
        #[arg(long, default_value = "0")]
        price_per_mb: String,
    },
    /// Pause: take no new streams; replacements for your streams are drawn a few blocks
    /// later unless you resume first.
    Pause,
    /// Resume after a pause or a suspension (the stake must meet the minimum).
    Resume,
    /// Leave: your streams are reassigned; the stake stays held until unbonding ends.
    Leave,
    /// Withdraw the stake after `leave` and the unbonding period (removes the record).
    Withdraw,
    /// Add to the held stake (e.g. after a slash, before resuming).
    BondExtra {
        /// Amount (planck, or with suffix FAST).
        amount: String,
    },
    /// What you earned (as operator and as seller) and your balance with its holds; the same
    /// as `fastdata earnings`.
    Earnings,
    /// Report that an operator signed two different contents for one segment: the chain
    /// slashes it (no fee for a valid report). Each statement is `0x` + hex SCALE
    /// `(SegmentStatement, MultiSignature)`, as the SDK's `ServedStatement::evidence` gives it
    /// for a segment the operator served.
    ReportEquivocation {
        /// The operator's account (SS58 or did:fast:…).
        operator: String,
        /// The first signed statement.
        #[arg(long)]
        first: String,
        /// The second signed statement, for the same segment with another digest.
        #[arg(long)]
        second: String,
    },
    /// Find equivocations in statements files written by `fastdata receive --statements`:
    /// two statements by one operator about one segment naming different contents, one per
    /// operator and stream. Only statements the operator's signature verifies for the chain
    /// count: any other line is named (`file:line: reason`) and skipped. Prints each with the
    /// evidence `report-equivocation` takes; `--report` sends them (fee-free against an
    /// operator holding the minimum stake), going on after a failed report and failing at
    /// the end if any did.
    FindEquivocation {
        /// Statements files (one JSON statement per line).
        #[arg(required = true)]
        files: Vec<std::path::PathBuf>,
        /// Report every equivocation found on chain.
        #[arg(long)]
        report: bool,
        /// Genesis hash (0x + 64 hex digits) of the chain the statements are signed for
        /// [default: that of the node at --url].
        #[arg(long)]
        genesis: Option<String>,
    },
}

/// A signed statement from `0x` + hex SCALE `(SegmentStatement, MultiSignature)`.
fn parse_evidence(which: &str, text: &str) -> anyhow::Result<StatementEvidence> {
    let bytes = hex::decode(text.trim().trim_start_matches("0x"))
        .map_err(|e| anyhow::anyhow!("--{which} is not hex: {e}"))?;
    StatementEvidence::decode_all(&mut &bytes[..]).map_err(|e| {
        anyhow::anyhow!("--{which} is not a SCALE-encoded (SegmentStatement, MultiSignature): {e}")
    })
}

/// The status as text and, for `Leaving`, the block from which the stake can be withdrawn.
pub(crate) fn status_name(status: &OperatorStatus<u32>) -> (&'static str, Option<u32>) {
    match status {
        OperatorStatus::Active => ("Active", None),
        OperatorStatus::Paused => ("Paused", None),
        OperatorStatus::Suspended => ("Suspended", None),
        OperatorStatus::Leaving { unbonding_until } => ("Leaving", Some(*unbonding_until)),
    }
}

/// An operator's record as `--json` prints it.
pub(crate) fn status_json(r: &OperatorStatusReport) -> Value {
    let op = &r.operator;
    let (status, unbonding_until) = status_name(&op.status);
    json!({
        "account": op.account.to_ss58check(),
        "registered": true,
        "stake": op.stake.to_string(),
        "status": status,
        "unbonding_until": unbonding_until,
        "broker_url": String::from_utf8_lossy(&op.broker_url),
        "http_url": String::from_utf8_lossy(&op.http_url),
        "price_per_mb": op.price_per_mb.to_string(),
        "last_heartbeat": op.last_heartbeat,
        "streams": op.streams,
        "stream_ids": r.streams.iter().map(|s| format!("{s:?}")).collect::<Vec<_>>(),
        "pending_reassignment": r.pending_reassignment,
        "trust_score": score(op.trust_score),
    })
}

/// An operator's record as text.
pub(crate) fn status_text(r: &OperatorStatusReport) -> String {
    let op = &r.operator;
    let (status, unbonding_until) = status_name(&op.status);
    let mut out = vec![
        format!("operator {}", op.account.to_ss58check()),
        format!(
            "  status {status}{}",
            unbonding_until
                .map(|b| format!(" (stake withdrawable from block {b})"))
                .unwrap_or_default()
        ),
        format!("  stake {}", fmt_balance(op.stake)),
        format!("  broker {}", String::from_utf8_lossy(&op.broker_url)),
        format!("  http {}", String::from_utf8_lossy(&op.http_url)),
        format!("  price {} per MB", fmt_balance(op.price_per_mb)),
        format!("  last heartbeat at block {}", op.last_heartbeat),
        format!("  trust score {:.3}", score(op.trust_score)),
        format!("  {} streams hosted", op.streams),
    ];
    out.extend(r.streams.iter().map(|s| format!("    {s:?}")));
    out.push(match r.pending_reassignment {
        Some(at) => format!("  replacements for its streams are drawn from relay block {at}"),
        None => "  no pending reassignment".into(),
    });
    out.join("\n")
}

/// The statements of `files` whose signature verifies for the chain `genesis`, and a
/// `file:line: reason` for every other non-empty line.
fn read_statements(
    files: &[std::path::PathBuf],
    genesis: &H256,
) -> anyhow::Result<(Vec<ServedStatement>, Vec<String>)> {
    let mut statements = Vec::new();
    let mut skipped = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(file)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", file.display()))?;
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let verified =
                ServedStatement::from_line(line).and_then(|s| s.verify(genesis).map(|()| s));
            match verified {
                Ok(statement) => statements.push(statement),
                Err(e) => skipped.push(format!("{}:{}: {e}", file.display(), i + 1)),
            }
        }
    }
    Ok((statements, skipped))
}

/// Reports every pair with `report`, going on after a failure: the block each report was
/// included in, or why it failed.
async fn report_each<F, Fut>(
    pairs: &[(ServedStatement, ServedStatement)],
    mut report: F,
) -> Vec<Result<BlockNumber, anyhow::Error>>
where
    F: FnMut(&ServedStatement, &ServedStatement) -> Fut,
    Fut: std::future::Future<Output = Result<BlockNumber, Error>>,
{
    let mut out = Vec::with_capacity(pairs.len());
    for (first, second) in pairs {
        out.push(
            report(first, second)
                .await
                .map_err(|e| anyhow::Error::from(e).context("report-equivocation failed")),
        );
    }
    out
}

/// `fastdata operator find-equivocation`.
async fn find_equivocation(
    ctx: &Ctx,
    files: &[std::path::PathBuf],
    report: bool,
    genesis: Option<&str>,
) -> anyhow::Result<()> {
    let chain = match report {
        true => Some(ctx.chain().await?),
        false => None,
    };
    let genesis = match (genesis, &chain) {
        (Some(text), chain) => {
            let genesis = parse_h256(text)?;
            if let Some(chain) = chain.as_ref().filter(|c| c.genesis() != genesis) {
                anyhow::bail!(
                    "--genesis {genesis:?} is not the genesis of the node at {} ({:?})",
                    ctx.cli_url,
                    chain.genesis()
                );
            }
            genesis
        }
        (None, Some(chain)) => chain.genesis(),
        (None, None) => ctx
            .reader()
            .await
            .context(
                "statements are checked against the chain's genesis: reach the node or pass --genesis",
            )?
            .genesis(),
    };
    let (statements, skipped) = read_statements(files, &genesis)?;
    for line in &skipped {
        eprintln!("{line}");
    }
    let found = equivocations(&statements);
    let reports = match &chain {
        Some(chain) => {
            report_each(&found, |first, second| {
                let (operator, first, second) =
                    (first.operator.clone(), first.evidence(), second.evidence());
                async move {
                    chain
                        .report_equivocation(&operator, first, second)
                        .await
                        .map(|included| included.block_number)
                }
            })
            .await
        }
        None => Vec::new(),
    };
    let mut reports = reports.into_iter();
    let mut listed = Vec::new();
    let (mut failures, mut first_failure) = (0, None);
    for (first, second) in &found {
        let mut value = json!({
            "operator": first.operator.to_ss58check(),
            "stream": format!("{:?}", first.statement.stream),
            "sequence": first.statement.sequence,
            "first": first.evidence_hex(),
            "second": second.evidence_hex(),
        });
        match reports.next() {
            Some(Ok(block)) => value["reported_at"] = json!(block),
            Some(Err(e)) => {
                value["report_error"] = json!(format!("{e:#}"));
                failures += 1;
                first_failure.get_or_insert(e);
            }
            None => {}
        }
        listed.push(value);
    }
    let value = json!({
        "statements": statements.len(),
        "skipped": skipped,
        "equivocations": listed,
    });
    print(ctx, &value, || {
        let mut lines = vec![format!(
            "{} statements read, {} lines skipped, {} equivocations",
            statements.len(),
            skipped.len(),
            listed.len()
        )];
        for v in &listed {
            let outcome = match (v.get("reported_at"), v.get("report_error")) {
                (Some(block), _) => format!(" (reported at block {block})"),
                (_, Some(e)) => format!(" (report failed: {})", e.as_str().unwrap_or_default()),
                _ => String::new(),
            };
            lines.push(format!(
                "  {} segment {} of stream {}{outcome}\n    --first {}\n    --second {}",
                v["operator"].as_str().unwrap_or_default(),
                v["sequence"],
                v["stream"].as_str().unwrap_or_default(),
                v["first"].as_str().unwrap_or_default(),
                v["second"].as_str().unwrap_or_default(),
            ));
        }
        lines.join("\n")
    });
    match first_failure {
        None => Ok(()),
        Some(e) => Err(e.context(format!(
            "{failures} of {} equivocation reports failed; the first",
            found.len()
        ))),
    }
}

/// Runs a `fastdata operator` command.
pub(crate) async fn operator(ctx: &Ctx, cmd: OperatorCommand) -> anyhow::Result<()> {
    let chain = match &cmd {
        OperatorCommand::Status { .. } => ctx.reader().await?,
        OperatorCommand::Earnings => return crate::sales::earnings(ctx).await,
        OperatorCommand::FindEquivocation {
            files,
            report,
            genesis,
        } => return find_equivocation(ctx, files, *report, genesis.as_deref()).await,
        _ => ctx.chain().await?,
    };
    let (name, action, result) = match cmd {
        OperatorCommand::Earnings => return crate::sales::earnings(ctx).await,
        OperatorCommand::FindEquivocation {
            files,
            report,
            genesis,
        } => return find_equivocation(ctx, &files, report, genesis.as_deref()).await,
        OperatorCommand::ReportEquivocation {
            operator,
            first,
            second,
        } => {
            let operator = parse_account(&operator)?;
            let (first, second) = (
                parse_evidence("first", &first)?,
                parse_evidence("second", &second)?,
            );
            let (stream, sequence) = (first.0.stream, first.0.sequence);
            let included = chain
                .report_equivocation(&operator, first, second)
                .await
                .map_err(|e| anyhow::Error::from(e).context("report-equivocation failed"))?;
            let value = json!({
                "operator": operator.to_ss58check(),
                "action": "equivocation-reported",
                "stream": format!("{stream:?}"),
                "sequence": sequence,
                "block": included.block_number,
            });
            print(ctx, &value, || {
                format!(
                    "reported {} for two contents of segment {sequence} of stream {stream:?} at block {}",
                    operator.to_ss58check(),
                    included.block_number
                )
            });
            return Ok(());
        }
        OperatorCommand::Status { who } => {
            let who = match who {
                Some(w) => parse_account(&w)?,
                None => ctx.acting()?.account_id(),
            };
            let report = chain.operator_status(&who).await?.ok_or_else(|| {
                Error::NotFound(format!(
                    "{} is not a registered storage operator",
                    who.to_ss58check()
                ))
            })?;
            print(ctx, &status_json(&report), || status_text(&report));
            return Ok(());
        }
        OperatorCommand::Register {
            stake,
            broker_url,
            http_url,
            price_per_mb,
        } => {
            let stake = parse_balance(&stake)?;
            let price = parse_balance(&price_per_mb)?;
            (
                "register",
                "registered",
                chain
                    .register_operator(stake, &broker_url, &http_url, price)
                    .await,
            )
        }
        OperatorCommand::Pause => ("pause", "paused", chain.pause_operator().await),
        OperatorCommand::Resume => ("resume", "resumed", chain.resume_operator().await),
        OperatorCommand::Leave => ("leave", "leaving", chain.leave_operators().await),
        OperatorCommand::Withdraw => ("withdraw", "withdrawn", chain.withdraw_stake().await),
        OperatorCommand::BondExtra { amount } => {
            let amount = parse_balance(&amount)?;
            ("bond-extra", "bonded", chain.bond_extra(amount).await)
        }
    };
    let included = result.map_err(|e| {
        anyhow::Error::from(e).context(format!(
            "operator {name} failed; see `fastdata operator status`"
        ))
    })?;
    let me = chain.account().account_id();
    let report = chain.operator_status(&me).await?;
    let value = json!({
        "operator": me.to_ss58check(),
        "action": action,
        "block": included.block_number,
        "record": report.as_ref().map(status_json),
    });
    print(ctx, &value, || {
        format!(
            "{action} at block {}\n{}",
            included.block_number,
            report
                .as_ref()
                .map(status_text)
                .unwrap_or_else(|| "no operator record any more; the stake is released".into())
        )
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use fastdata_primitives::AccountId;
    use fastdata_sdk::operator::Operator;

    #[test]
    fn status_shows_the_record() {
        let report = OperatorStatusReport {
            operator: Operator {
                account: AccountId::new([5; 32]),
                stake: 100_000_000_000_000,
                broker_url: b"mqtt://127.0.0.1:1884".to_vec(),
                http_url: b"http://127.0.0.1:8081".to_vec(),
                price_per_mb: 1_000,
                status: OperatorStatus::Leaving {
                    unbonding_until: 700,
                },
                last_heartbeat: 42,
                streams: 1,
                trust_score: 0,
            },
            streams: vec![sp_core::H256::repeat_byte(1)],
            pending_reassignment: Some(90),
        };
        let v = status_json(&report);
        assert_eq!(v["stake"], "100000000000000");
        assert_eq!(v["status"], "Leaving");
        assert_eq!(v["unbonding_until"], 700);
        assert_eq!(v["broker_url"], "mqtt://127.0.0.1:1884");
        assert_eq!(v["price_per_mb"], "1000");
        assert_eq!(v["last_heartbeat"], 42);
        assert_eq!(v["streams"], 1);
        assert_eq!(v["stream_ids"].as_array().map(Vec::len), Some(1));
        assert_eq!(v["pending_reassignment"], 90);
        let text = status_text(&report);
        assert!(text.contains("withdrawable from block 700"), "{text}");
        assert!(text.contains("drawn from relay block 90"), "{text}");
        assert!(text.contains("100 FAST"), "{text}");
        assert_eq!(status_name(&OperatorStatus::Paused), ("Paused", None));
    }

    #[tokio::test]
    async fn a_failed_report_does_not_stop_the_others() {
        use fastdata_primitives::custody::SegmentStatement;
        use sp_core::{sr25519, Pair};
        let operator = sr25519::Pair::from_seed(&[5; 32]);
        let served = |stream: u8, envelope: &[u8]| {
            let statement = SegmentStatement::of(H256::repeat_byte(stream), 3, envelope);
            ServedStatement {
                operator: operator.public().into(),
                signature: statement.sign_sr25519(&operator, &H256::repeat_byte(0x47)),
                statement,
            }
        };
        let pairs: Vec<_> = (1..=3)
            .map(|stream| (served(stream, b"one"), served(stream, b"two")))
            .collect();
        let mut asked = Vec::new();
        let results = report_each(&pairs, |first, _| {
            let stream = first.statement.stream;
            asked.push(stream);
            async move {
                match stream == H256::repeat_byte(1) {
                    true => Err(Error::Dispatch {
                        error: "Operators.AlreadyReported".into(),
                    }),
                    false => Ok(u32::from(stream.as_bytes()[0]) * 10),
                }
            }
        })
        .await;
        assert_eq!(asked.len(), 3);
        let err = results[0].as_ref().unwrap_err();
        assert!(format!("{err:#}").contains("AlreadyReported"), "{err:#}");
        // The chain's error stays reachable (it sets the exit code).
        assert!(matches!(
            err.downcast_ref::<Error>(),
            Some(Error::Dispatch { .. })
        ));
        assert_eq!(results[1].as_ref().ok(), Some(&20));
        assert_eq!(results[2].as_ref().ok(), Some(&30));
    }

    #[test]
    fn equivocation_evidence_parses_from_hex_scale() {
        use codec::Encode;
        use fastdata_primitives::custody::SegmentStatement;
        let evidence: StatementEvidence = (
            SegmentStatement::of(sp_core::H256::repeat_byte(7), 3, b"envelope"),
            sp_runtime::MultiSignature::Sr25519(sp_core::sr25519::Signature::from_raw([1; 64])),
        );
        let text = format!("0x{}", hex::encode(evidence.encode()));
        assert_eq!(parse_evidence("first", &text).unwrap(), evidence);
        let err = parse_evidence("first", &text[..text.len() - 2]).unwrap_err();
        assert!(err.to_string().contains("--first"), "{err}");
        assert!(parse_evidence("second", &format!("{text}00")).is_err());
        assert!(parse_evidence("second", "0xzz").is_err());
    }
}

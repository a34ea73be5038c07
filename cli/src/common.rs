//! What every command group shares: the invocation's context (acting account, keystore,
//! node connection), amount and hash parsing, output (`--json` or text, progress bars) and
//! the exit code of an error.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use fastdata_primitives::{Balance, SCORE_ONE, TOKEN_DECIMALS};
use fastdata_sdk::{keystore::Keystore, Account, Error, FastData};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;
use sp_core::H256;

/// Planck per FAST.
pub(crate) const FAST: Balance = fastdata_primitives::UNIT;
/// Decimal places of a FAST amount.
const DECIMALS: usize = TOKEN_DECIMALS as usize;

/// Parses an amount: planck, or FAST with the suffix `FAST` (up to [`TOKEN_DECIMALS`]
/// decimals).
pub(crate) fn parse_balance(text: &str) -> anyhow::Result<Balance> {
    let t = text.trim();
    if let Some(num) = t.strip_suffix("FAST").map(str::trim) {
        let (int, frac) = num.split_once('.').unwrap_or((num, ""));
        if frac.len() > DECIMALS {
            anyhow::bail!("{text}: at most {DECIMALS} decimals");
        }
        let int: Balance = if int.is_empty() { 0 } else { int.parse()? };
        let frac_val: Balance = if frac.is_empty() {
            0
        } else {
            format!("{frac:0<DECIMALS$}").parse()?
        };
        return int
            .checked_mul(FAST)
            .and_then(|v| v.checked_add(frac_val))
            .ok_or_else(|| anyhow::anyhow!("{text}: too large"));
    }
    t.parse()
        .with_context(|| format!("{text:?} is not an amount; use planck or e.g. 1.5FAST"))
}

/// An amount in FAST, without trailing zeros (`1.5 FAST`).
pub(crate) fn fmt_balance(b: Balance) -> String {
    let number = format!("{}.{:0DECIMALS$}", b / FAST, b % FAST);
    format!(
        "{} FAST",
        number.trim_end_matches('0').trim_end_matches('.')
    )
}

/// Parses a 32-byte hash given as 64 hex digits, with or without `0x`.
pub(crate) fn parse_h256(text: &str) -> anyhow::Result<H256> {
    let mut raw = [0u8; 32];
    hex::decode_to_slice(text.trim().trim_start_matches("0x"), &mut raw)
        .with_context(|| format!("{text:?} is not 0x followed by 64 hex digits"))?;
    Ok(H256(raw))
}

/// The BLAKE2-256 hash of a text that only goes on chain as its hash (comments, evidence,
/// claims).
pub(crate) fn hash_text(text: &str) -> H256 {
    H256(sp_io::hashing::blake2_256(text.as_bytes()))
}

/// A trust score or credibility as a fraction of [`SCORE_ONE`].
pub(crate) fn score(s: u32) -> f64 {
    f64::from(s) / f64::from(SCORE_ONE)
}

/// Warns once per run (on stderr) that the keystore is written without encryption.
pub(crate) fn warn_unprotected(path: &Path) {
    static WARNED: std::sync::Once = std::sync::Once::new();
    WARNED.call_once(|| {
        eprintln!(
            "warning: keystore {} is not encrypted: anyone who can read it has your keys; set {} (see `fastdata keystore status`)",
            path.display(),
            fastdata_sdk::keystore::PASSPHRASE_ENV
        );
    });
}

/// The global options of one invocation: where the node and the keystore are, who acts, and
/// how to print.
pub(crate) struct Ctx {
    /// The node's RPC endpoint (`--url`).
    pub(crate) cli_url: String,
    /// The acting account's secret URI (`--suri`).
    pub(crate) suri: Option<String>,
    /// The acting account's name in the keystore (`--account`).
    pub(crate) account: Option<String>,
    /// The keystore file.
    pub(crate) keystore_path: PathBuf,
    /// Machine-readable JSON output (`--json`).
    pub(crate) json: bool,
}

impl Ctx {
    /// Opens the keystore, warning once if it is not encrypted.
    pub(crate) fn keystore(&self) -> anyhow::Result<Keystore> {
        let keystore = Keystore::open(&self.keystore_path)?;
        if !keystore.is_protected() {
            warn_unprotected(&self.keystore_path);
        }
        Ok(keystore)
    }

    /// The acting account: `--suri`, else `--account` from the keystore.
    pub(crate) fn acting(&self) -> anyhow::Result<Account> {
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

    /// A connection to the node as the acting account.
    pub(crate) async fn chain(&self) -> anyhow::Result<FastData> {
        let account = self.acting()?;
        Ok(FastData::connect(&self.cli_url, account).await?)
    }

    /// A connection to the node as `account`.
    pub(crate) async fn chain_as(&self, account: Account) -> anyhow::Result<FastData> {
        Ok(FastData::connect(&self.cli_url, account).await?)
    }

    /// A connection for read-only queries: the acting account if one is given, else a
    /// throwaway one (queries sign nothing).
    pub(crate) async fn reader(&self) -> anyhow::Result<FastData> {
        if self.suri.is_some() || self.account.is_some() {
            return self.chain().await;
        }
        let (account, _) = Account::generate()?;
        self.chain_as(account).await
    }
}

/// Prints a command's result on stdout: `value` as pretty JSON with `--json`, else the text
/// `human` makes.
pub(crate) fn print(ctx: &Ctx, value: &Value, human: impl FnOnce() -> String) {
    if ctx.json {
        println!(
            "{}",
            serde_json::to_string_pretty(value).unwrap_or_default()
        );
    } else {
        println!("{}", human());
    }
}

/// A progress bar on stderr counting bytes (a spinner when the total `len` is unknown),
/// labelled `what`; hidden with `--json`.
pub(crate) fn progress(ctx: &Ctx, len: Option<u64>, what: &str) -> ProgressBar {
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

/// The process's exit code for an error: 3 node unreachable or RPC error, 4 transaction
/// failed on chain, 5 verification failed, 6 not found, 7 timed out, 8 storage operator
/// error, 9 keystore or account error, 1 anything else.
pub(crate) fn exit_code(e: &anyhow::Error) -> i32 {
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

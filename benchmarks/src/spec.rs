//! The experiment grid: parsing of seller counts, operator counts and payload rates, and how a
//! payload rate becomes messages (size and interval).

use std::time::Duration;

use anyhow::{bail, Context};

/// Smallest message payload: the bench header (cell, phase, seller, send time) fits in it.
pub const MIN_MESSAGE: usize = 16;
/// Largest message payload the grid sends (the envelope allows 64 KiB).
pub const MAX_MESSAGE: usize = 32 * 1024;
/// Messages per second per seller while the payload rate allows it.
pub const MESSAGES_PER_SECOND: f64 = 10.0;

/// Parses a payload rate such as `100B`, `1KB`, `10kb/s`, `1MB` (decimal units) into bytes/s.
pub fn parse_rate(text: &str) -> anyhow::Result<u64> {
    let t = text.trim().to_ascii_uppercase();
    let t = t.strip_suffix("/S").unwrap_or(&t).trim();
    let (number, scale) = if let Some(n) = t.strip_suffix("MB") {
        (n, 1_000_000)
    } else if let Some(n) = t.strip_suffix("KB") {
        (n, 1_000)
    } else if let Some(n) = t.strip_suffix('B') {
        (n, 1)
    } else {
        (t, 1)
    };
    let n: u64 = number
        .trim()
        .parse()
        .with_context(|| format!("payload rate {text:?}: expected e.g. 100B, 10KB, 1MB"))?;
    let rate = n
        .checked_mul(scale)
        .with_context(|| format!("payload rate {text:?} is too large"))?;
    if rate == 0 || rate > 100_000_000 {
        bail!("payload rate {text:?} must be between 1 B/s and 100 MB/s");
    }
    Ok(rate)
}

/// Renders bytes/s the way [`parse_rate`] reads it (`100 B/s`, `10 KB/s`, `1 MB/s`).
pub fn rate_label(rate: u64) -> String {
    if rate >= 1_000_000 && rate.is_multiple_of(1_000_000) {
        format!("{} MB/s", rate / 1_000_000)
    } else if rate >= 1_000 && rate.is_multiple_of(1_000) {
        format!("{} KB/s", rate / 1_000)
    } else {
        format!("{rate} B/s")
    }
}

/// Parses a comma-separated list of positive numbers (`20,40,60`), each within `1..=max`.
pub fn parse_counts(what: &str, text: &str, max: u32) -> anyhow::Result<Vec<u32>> {
    let mut out = Vec::new();
    for part in text.split(',') {
        let n: u32 = part
            .trim()
            .parse()
            .with_context(|| format!("{what}: {part:?} is not a number"))?;
        if n == 0 || n > max {
            bail!("{what}: {n} is outside 1..={max}");
        }
        if !out.contains(&n) {
            out.push(n);
        }
    }
    Ok(out)
}

/// Parses a comma-separated list of payload rates.
pub fn parse_rates(text: &str) -> anyhow::Result<Vec<u64>> {
    let mut out = Vec::new();
    for part in text.split(',') {
        let rate = parse_rate(part)?;
        if !out.contains(&rate) {
            out.push(rate);
        }
    }
    Ok(out)
}

/// How one seller produces `rate` bytes/s: `size`-byte payloads every `interval`. Payloads are
/// `rate / 10` bytes (10 messages/s), kept within [`MIN_MESSAGE`]..=[`MAX_MESSAGE`]; the
/// interval then makes the rate exact (e.g. 100 B/s → 16 B every 160 ms, 1 MB/s → 32 KiB
/// about 30.5 times a second).
pub fn message_plan(rate: u64) -> (usize, Duration) {
    let size = ((rate as f64 / MESSAGES_PER_SECOND) as usize).clamp(MIN_MESSAGE, MAX_MESSAGE);
    let interval = Duration::from_secs_f64(size as f64 / rate.max(1) as f64);
    (size, interval)
}

/// Messages each seller sends in the upload burst at `size` bytes: about 1 MiB of payload,
/// at least 50 and at most `cap` messages.
pub fn burst_messages(size: usize, cap: u32) -> u32 {
    let n = (1usize << 20) / size.max(1);
    (n.min(u32::MAX as usize) as u32).clamp(50.min(cap), cap.max(1))
}

/// The grid of one run.
#[derive(Clone, Debug, PartialEq)]
pub struct GridSpec {
    /// Concurrent sellers per cell.
    pub sellers: Vec<u32>,
    /// Storage operators per cell.
    pub operators: Vec<u32>,
    /// Payload rates per seller, bytes/s.
    pub rates: Vec<u64>,
    /// Length of each paced phase (plaintext baseline, then FAST DATA).
    pub duration: Duration,
    /// Repetitions of each rate cell.
    pub reps: u32,
    /// Upper bound of messages per seller in the upload burst.
    pub burst_cap: u32,
}

impl GridSpec {
    /// The quick grid: 20 sellers, 1 and 3 operators, 100 B/s and 10 KB/s, 8 s phases.
    pub fn quick() -> Self {
        Self {
            sellers: vec![20],
            operators: vec![1, 3],
            rates: vec![100, 10_000],
            duration: Duration::from_secs(8),
            reps: 1,
            burst_cap: 500,
        }
    }

    /// The paper's grid: 20–100 sellers, 1/3/5 operators, 100 B/s … 1 MB/s, 20 s phases.
    pub fn full() -> Self {
        Self {
            sellers: vec![20, 40, 60, 80, 100],
            operators: vec![1, 3, 5],
            rates: vec![100, 1_000, 10_000, 100_000, 1_000_000],
            duration: Duration::from_secs(20),
            reps: 1,
            burst_cap: 2_000,
        }
    }

    /// Number of rate cells (each repetition counted).
    pub fn cells(&self) -> u64 {
        (self.sellers.len() * self.operators.len() * self.rates.len()) as u64 * u64::from(self.reps)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse_in_decimal_units() {
        assert_eq!(parse_rate("100B").unwrap(), 100);
        assert_eq!(parse_rate("1KB").unwrap(), 1_000);
        assert_eq!(parse_rate(" 10kb/s ").unwrap(), 10_000);
        assert_eq!(parse_rate("1MB").unwrap(), 1_000_000);
        assert_eq!(parse_rate("250").unwrap(), 250);
        for bad in ["", "KB", "0B", "-1KB", "1GB", "1.5KB", "1000MB"] {
            assert!(parse_rate(bad).is_err(), "{bad:?} accepted");
        }
        assert_eq!(parse_rates("100B,10KB,100B").unwrap(), vec![100, 10_000]);
        for rate in [100, 1_000, 10_000, 100_000, 1_000_000, 1_500] {
            let label = rate_label(rate);
            assert_eq!(parse_rate(&label).unwrap(), rate, "{label}");
        }
    }

    #[test]
    fn counts_parse_and_are_bounded() {
        assert_eq!(
            parse_counts("sellers", "20, 40,20", 1000).unwrap(),
            vec![20, 40]
        );
        assert!(parse_counts("sellers", "0", 10).is_err());
        assert!(parse_counts("sellers", "11", 10).is_err());
        assert!(parse_counts("sellers", "a", 10).is_err());
        assert!(parse_counts("sellers", "", 10).is_err());
    }

    #[test]
    fn message_plans_keep_the_rate() {
        for rate in [100u64, 1_000, 10_000, 100_000, 1_000_000] {
            let (size, interval) = message_plan(rate);
            assert!((MIN_MESSAGE..=MAX_MESSAGE).contains(&size));
            let achieved = size as f64 / interval.as_secs_f64();
            assert!(
                (achieved - rate as f64).abs() / (rate as f64) < 0.01,
                "{rate}"
            );
        }
        assert_eq!(message_plan(10_000).0, 1_000);
        assert_eq!(message_plan(100).0, MIN_MESSAGE);
        assert_eq!(message_plan(1_000_000).0, MAX_MESSAGE);
        assert_eq!(burst_messages(16, 100), 100);
        assert_eq!(burst_messages(MAX_MESSAGE, 100), 50);
        assert_eq!(burst_messages(1 << 20, 100), 50);
        assert_eq!(burst_messages(1_000, 2_000), 1_048);
    }

    #[test]
    fn grids() {
        assert_eq!(GridSpec::quick().cells(), 4);
        assert_eq!(GridSpec::full().cells(), 75);
    }
}

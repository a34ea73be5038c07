//! Results on disk: `results.csv` (one row per cell and metric) and `meta.csv` (how the run
//! was made: machine, build profile, mode, repetitions), both in a run directory.

use std::path::Path;

use anyhow::Context;
use serde::{Deserialize, Serialize};

/// File name of the measurements in a run directory.
pub const RESULTS_CSV: &str = "results.csv";
/// File name of the run description in a run directory.
pub const META_CSV: &str = "meta.csv";

/// One measured value of one grid cell (or of the operator benchmark).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Row {
    /// `operator`, `grid`, `trust`, `scale` or `latency`.
    pub experiment: String,
    /// Concurrent sellers of the cell (grid); the cell's size, purchases or sellers (scale).
    pub sellers: Option<u32>,
    /// Storage operators of the cell.
    pub operators: Option<u32>,
    /// Payload rate per seller, bytes/s (`latency`: records/s; `None` for rate-independent
    /// metrics).
    pub rate: Option<u64>,
    /// Repetition index (0-based).
    pub rep: Option<u32>,
    /// Metric name.
    pub metric: String,
    /// Measured value.
    pub value: f64,
    /// Unit of `value`.
    pub unit: String,
}

impl Row {
    /// A row of the operator benchmark.
    pub fn operator(metric: &str, value: f64, unit: &str) -> Self {
        Self {
            experiment: "operator".into(),
            sellers: None,
            operators: None,
            rate: None,
            rep: None,
            metric: metric.into(),
            value,
            unit: unit.into(),
        }
    }

    /// A row of grid cell (`sellers`, `operators`, `rate`, `rep`).
    pub fn grid(
        cell: (u32, u32, Option<u64>, Option<u32>),
        metric: &str,
        value: f64,
        unit: &str,
    ) -> Self {
        Self {
            experiment: "grid".into(),
            sellers: Some(cell.0),
            operators: Some(cell.1),
            rate: cell.2,
            rep: cell.3,
            metric: metric.into(),
            value,
            unit: unit.into(),
        }
    }
}

/// A `key,value` line of `meta.csv`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Meta {
    /// What.
    pub key: String,
    /// Its value.
    pub value: String,
}

fn write_csv<T: Serialize>(path: &Path, items: &[T]) -> anyhow::Result<()> {
    let mut writer =
        csv::Writer::from_path(path).with_context(|| format!("cannot write {}", path.display()))?;
    for item in items {
        writer
            .serialize(item)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    writer
        .flush()
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

fn read_csv<T: serde::de::DeserializeOwned>(path: &Path) -> anyhow::Result<Vec<T>> {
    let mut reader =
        csv::Reader::from_path(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut out = Vec::new();
    for (i, record) in reader.deserialize().enumerate() {
        out.push(record.with_context(|| format!("{}: bad line {}", path.display(), i + 2))?);
    }
    Ok(out)
}

/// Writes `rows` to `dir/results.csv` (replacing it).
pub fn write_rows(dir: &Path, rows: &[Row]) -> anyhow::Result<()> {
    write_csv(&dir.join(RESULTS_CSV), rows)
}

/// Reads `dir/results.csv`.
pub fn read_rows(dir: &Path) -> anyhow::Result<Vec<Row>> {
    read_csv(&dir.join(RESULTS_CSV))
}

/// Writes `meta` to `dir/meta.csv` (replacing it).
pub fn write_meta(dir: &Path, meta: &[Meta]) -> anyhow::Result<()> {
    write_csv(&dir.join(META_CSV), meta)
}

/// Reads `dir/meta.csv` (empty if absent).
pub fn read_meta(dir: &Path) -> anyhow::Result<Vec<Meta>> {
    if !dir.join(META_CSV).exists() {
        return Ok(Vec::new());
    }
    read_csv(&dir.join(META_CSV))
}

/// The value of `key` in `meta`.
pub fn meta_value<'a>(meta: &'a [Meta], key: &str) -> Option<&'a str> {
    meta.iter().find(|m| m.key == key).map(|m| m.value.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_and_meta_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let rows = vec![
            Row::operator("auth_upload_p99", 0.125, "ms"),
            Row::grid(
                (20, 3, Some(10_000), Some(1)),
                "fast_latency_p50",
                4.5,
                "ms",
            ),
            Row::grid((20, 3, None, None), "onboard_mean", 2.25, "s"),
        ];
        write_rows(dir.path(), &rows).unwrap();
        assert_eq!(read_rows(dir.path()).unwrap(), rows);
        let meta = vec![Meta {
            key: "cpu".into(),
            value: "Some CPU, with a comma".into(),
        }];
        write_meta(dir.path(), &meta).unwrap();
        let back = read_meta(dir.path()).unwrap();
        assert_eq!(back, meta);
        assert_eq!(meta_value(&back, "cpu"), Some("Some CPU, with a comma"));
        assert_eq!(meta_value(&back, "nope"), None);
    }

    #[test]
    fn bad_csv_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(RESULTS_CSV), "experiment,metric\nx,y\n").unwrap();
        assert!(read_rows(dir.path()).is_err());
        assert!(read_rows(&dir.path().join("missing")).is_err());
    }
}

//! Summary statistics of samples (latencies, runtimes): nearest-rank percentiles.

/// Count, mean, p50, p99 and extremes of a sample set.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Summary {
    /// Number of samples.
    pub count: usize,
    /// Arithmetic mean.
    pub mean: f64,
    /// Smallest sample.
    pub min: f64,
    /// Median (nearest rank).
    pub p50: f64,
    /// 99th percentile (nearest rank).
    pub p99: f64,
    /// Largest sample.
    pub max: f64,
}

/// The `q`-th percentile (0..=100) of ascending `sorted` samples by the nearest-rank method;
/// `None` for no samples or `q` outside 0..=100.
pub fn percentile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() || !(0.0..=100.0).contains(&q) {
        return None;
    }
    let rank = ((q / 100.0) * sorted.len() as f64).ceil() as usize;
    let index = rank.saturating_sub(1).min(sorted.len() - 1);
    Some(sorted[index])
}

/// Sorts `samples` (NaNs last) and summarizes them; `None` when there are none.
pub fn summarize(samples: &mut [f64]) -> Option<Summary> {
    if samples.is_empty() {
        return None;
    }
    samples.sort_by(|a, b| a.total_cmp(b));
    let sum: f64 = samples.iter().sum();
    Some(Summary {
        count: samples.len(),
        mean: sum / samples.len() as f64,
        min: samples[0],
        p50: percentile(samples, 50.0)?,
        p99: percentile(samples, 99.0)?,
        max: samples[samples.len() - 1],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let sorted: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&sorted, 50.0), Some(50.0));
        assert_eq!(percentile(&sorted, 99.0), Some(99.0));
        assert_eq!(percentile(&sorted, 100.0), Some(100.0));
        assert_eq!(percentile(&sorted, 0.0), Some(1.0));
        assert_eq!(percentile(&[7.0], 99.0), Some(7.0));
        assert_eq!(percentile(&[1.0, 2.0, 3.0], 50.0), Some(2.0));
        assert_eq!(percentile(&[], 50.0), None);
        assert_eq!(percentile(&sorted, 101.0), None);
    }

    #[test]
    fn summary_sorts_and_averages() {
        let mut samples = vec![5.0, 1.0, 3.0, 2.0, 4.0];
        let s = summarize(&mut samples).unwrap();
        assert_eq!(s.count, 5);
        assert_eq!(s.mean, 3.0);
        assert_eq!((s.min, s.p50, s.p99, s.max), (1.0, 3.0, 5.0, 5.0));
        assert!(summarize(&mut []).is_none());
    }
}

//! SVG line charts (plotters) shaped like the paper's figures: throughput and runtime against
//! sellers per operator count, latency and overhead against payload rate.

use std::path::{Path, PathBuf};

use anyhow::Context;
use plotters::prelude::*;

use crate::{report::Table, spec::rate_label};

/// One line of a chart.
#[derive(Clone, Debug)]
pub struct Series {
    /// Legend text.
    pub name: String,
    /// `(x, y)` points, drawn in order.
    pub points: Vec<(f64, f64)>,
}

/// How x values are drawn.
#[derive(Clone, Copy, Debug)]
enum XAxis<'a> {
    /// As they are.
    Linear,
    /// On a log scale, labelled as payload rates.
    LogRate,
    /// On a log scale, labelled as numbers with this unit.
    Log(&'a str),
}

/// Draws `series` as lines with markers into the SVG file `path`. With `log_rate_x`, x values
/// are payload rates drawn on a log scale and labelled as rates.
pub fn line_chart(
    path: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
    log_rate_x: bool,
) -> anyhow::Result<()> {
    let axis = if log_rate_x {
        XAxis::LogRate
    } else {
        XAxis::Linear
    };
    chart(path, title, x_label, y_label, series, axis)
}

/// [`line_chart`] with x values (≥ 1) on a log scale, labelled as numbers of `unit`.
pub fn log_x_chart(
    path: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
    unit: &str,
) -> anyhow::Result<()> {
    chart(path, title, x_label, y_label, series, XAxis::Log(unit))
}

fn chart(
    path: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
    axis: XAxis<'_>,
) -> anyhow::Result<()> {
    let log_x = !matches!(axis, XAxis::Linear);
    let tx = |x: f64| if log_x { x.max(1.0).log10() } else { x };
    let points: Vec<(f64, f64)> = series
        .iter()
        .flat_map(|s| s.points.iter().map(|(x, y)| (tx(*x), *y)))
        .filter(|(x, y)| x.is_finite() && y.is_finite())
        .collect();
    if points.is_empty() {
        return Ok(());
    }
    let (mut x0, mut x1) = points.iter().fold((f64::MAX, f64::MIN), |(a, b), (x, _)| {
        (a.min(*x), b.max(*x))
    });
    let y_max = points.iter().fold(0.0f64, |m, (_, y)| m.max(*y));
    let y_min = points.iter().fold(0.0f64, |m, (_, y)| m.min(*y));
    let pad = if x1 > x0 { (x1 - x0) * 0.05 } else { 1.0 };
    x0 -= pad;
    x1 += pad;
    let y1 = if y_max > 0.0 { y_max * 1.15 } else { 1.0 };
    let y0 = if y_min < 0.0 { y_min * 1.15 } else { 0.0 };

    let root = SVGBackend::new(path, (800, 500)).into_drawing_area();
    let draw = || -> Result<(), Box<dyn std::error::Error>> {
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 20))
            .margin(14)
            .x_label_area_size(45)
            .y_label_area_size(70)
            .build_cartesian_2d(x0..x1, y0..y1)?;
        let format_x = |x: &f64| match axis {
            XAxis::Linear => format!("{x:.0}"),
            XAxis::LogRate => rate_label(10f64.powf(*x).round() as u64),
            XAxis::Log(unit) => format!("{} {unit}", 10f64.powf(*x).round()),
        };
        chart
            .configure_mesh()
            .x_desc(x_label)
            .y_desc(y_label)
            .x_label_formatter(&format_x)
            .draw()?;
        for (i, s) in series.iter().enumerate() {
            let color = Palette99::pick(i).to_rgba();
            let pts: Vec<(f64, f64)> = s.points.iter().map(|(x, y)| (tx(*x), *y)).collect();
            chart
                .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))?
                .label(s.name.clone())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                });
            chart.draw_series(pts.iter().map(|p| Circle::new(*p, 3, color.filled())))?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()?;
        root.present()?;
        Ok(())
    };
    draw().map_err(|e| anyhow::anyhow!("cannot draw {}: {e}", path.display()))
}

/// Draws every figure of a grid run into `dir/plots`; returns the files written.
pub fn grid_figures(table: &Table, dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let plots = dir.join("plots");
    std::fs::create_dir_all(&plots)
        .with_context(|| format!("cannot create {}", plots.display()))?;
    let mut written = Vec::new();
    let ops = table.operators();
    let sellers = table.sellers();
    let rates = table.rates();
    let mut emit =
        |name: String, title: String, x: &str, y: &str, series: Vec<Series>, log: bool| {
            let series: Vec<Series> = series
                .into_iter()
                .filter(|s| !s.points.is_empty())
                .collect();
            if series.is_empty() {
                return Ok::<_, anyhow::Error>(());
            }
            let path = plots.join(name);
            line_chart(&path, &title, x, y, &series, log)?;
            written.push(path);
            Ok(())
        };

    // Upload throughput vs sellers, one line per operator count (one figure per rate).
    for &rate in &rates {
        let series = ops
            .iter()
            .map(|&i| Series {
                name: format!("i = {i} operator(s)"),
                points: sellers
                    .iter()
                    .filter_map(|&s| {
                        table
                            .mean(s, i, Some(rate), "upload_msgs_per_s")
                            .map(|v| (f64::from(s), v))
                    })
                    .collect(),
            })
            .collect();
        emit(
            format!("throughput_vs_sellers_{rate}Bps.svg"),
            format!("Upload throughput vs sellers ({})", rate_label(rate)),
            "concurrent sellers",
            "messages/s (all sellers)",
            series,
            false,
        )?;
    }

    // Onboarding runtime vs sellers.
    let mut series = Vec::new();
    for &i in &ops {
        for (metric, what) in [
            ("onboard_seller_mean", "mean"),
            ("onboard_seller_max", "max"),
        ] {
            series.push(Series {
                name: format!("{what} per seller, i = {i}"),
                points: sellers
                    .iter()
                    .filter_map(|&s| table.mean(s, i, None, metric).map(|v| (f64::from(s), v)))
                    .collect(),
            });
        }
    }
    emit(
        "runtime_vs_sellers.svg".into(),
        "Onboarding runtime (DID + offer + stream) vs sellers".into(),
        "concurrent sellers",
        "seconds",
        series,
        false,
    )?;

    // Latency vs rate and overhead vs rate, per seller count.
    for &s in &sellers {
        let mut latency = Vec::new();
        let mut overhead = Vec::new();
        for &i in &ops {
            for (metric, what) in [
                ("fast_latency_p50", "FAST DATA p50"),
                ("fast_latency_p99", "FAST DATA p99"),
                ("plain_latency_p50", "plaintext p50"),
                ("plain_latency_p99", "plaintext p99"),
            ] {
                latency.push(Series {
                    name: format!("{what}, i = {i}"),
                    points: rates
                        .iter()
                        .filter_map(|&r| table.mean(s, i, Some(r), metric).map(|v| (r as f64, v)))
                        .collect(),
                });
            }
            for (metric, what) in [
                ("overhead_throughput", "throughput (time per message)"),
                ("overhead_latency_p50", "latency p50"),
                ("overhead_latency_p99", "latency p99"),
            ] {
                overhead.push(Series {
                    name: format!("{what}, i = {i}"),
                    points: rates
                        .iter()
                        .filter_map(|&r| table.mean(s, i, Some(r), metric).map(|v| (r as f64, v)))
                        .collect(),
                });
            }
        }
        overhead.push(Series {
            name: "target ≤ 10 %".into(),
            points: rates.iter().map(|&r| (r as f64, 10.0)).collect(),
        });
        emit(
            format!("latency_vs_rate_{s}_sellers.svg"),
            format!("End-to-end latency vs payload rate ({s} sellers)"),
            "payload rate per seller",
            "milliseconds",
            latency,
            true,
        )?;
        emit(
            format!("overhead_vs_rate_{s}_sellers.svg"),
            format!("Encryption + MAC + persistence overhead vs plaintext MQTT ({s} sellers)"),
            "payload rate per seller",
            "% over plaintext",
            overhead,
            true,
        )?;
    }
    Ok(written)
}

/// Publish → PUBACK latency by percentile, one line per broker of an operator run (`runs`:
/// metric prefix and name), idle and beside the flood; into `dir/plots`. Returns the files
/// written.
pub fn puback_figures(
    table: &Table,
    runs: &[(&str, String)],
    dir: &Path,
) -> anyhow::Result<Vec<PathBuf>> {
    let plots = dir.join("plots");
    std::fs::create_dir_all(&plots)
        .with_context(|| format!("cannot create {}", plots.display()))?;
    let mut written = Vec::new();
    for (phase, title) in [
        ("idle", "Publish → PUBACK, one at a time, broker idle"),
        (
            "load",
            "Publish → PUBACK, one at a time, beside the ingest flood",
        ),
    ] {
        let series: Vec<Series> = runs
            .iter()
            .map(|(prefix, name)| Series {
                name: name.clone(),
                points: [50.0, 95.0, 99.0]
                    .into_iter()
                    .filter_map(|q| {
                        table
                            .op(&format!("{prefix}puback_{phase}_p{q:.0}"))
                            .map(|v| (q, v))
                    })
                    .collect(),
            })
            .filter(|s| !s.points.is_empty())
            .collect();
        if series.is_empty() {
            continue;
        }
        let path = plots.join(format!("puback_{phase}_by_broker.svg"));
        line_chart(&path, title, "percentile", "milliseconds", &series, false)?;
        written.push(path);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charts_are_svg_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.svg");
        line_chart(
            &path,
            "t",
            "x",
            "y",
            &[Series {
                name: "a".into(),
                points: vec![(100.0, 1.0), (10_000.0, 3.0)],
            }],
            true,
        )
        .unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("<svg"));
        assert!(text.contains("10 KB/s"), "{text}");
        // Nothing to draw: no file.
        let empty = dir.path().join("e.svg");
        line_chart(&empty, "t", "x", "y", &[], false).unwrap();
        assert!(!empty.exists());
    }
}

//! The latency CDF figure: one line per policy, end-to-end latency on a log10 x axis (ms) against
//! the fraction of completed invocations at or below it.
//!
//! Owns the downsampling that keeps the file small: at most [`MAX_POINTS`] points per line, half
//! spread evenly over ranks and half spread logarithmically over the tail (1 − CDF from 10⁻¹ down
//! to 1/n), so p99 and p99.9 stay sharp however many records a run has.

use super::plot::{color, draw_legend, log_bounds, plot_err, tick_label, write_svg};
use super::plot::{LABEL_FONT, SIZE, TITLE_FONT};
use super::ReportError;
use crate::record::RunResult;
use plotters::prelude::*;
use std::path::Path;

/// Most points drawn per policy.
pub(crate) const MAX_POINTS: usize = 2_000;
/// Latencies below this (1 µs, including zero) are drawn at it: a log axis has no zero.
const FLOOR_MS: f64 = 1e-3;

/// Writes the CDF of end-to-end latency of each run (one line per run, labelled by its policy) to
/// `path` as SVG. Runs with no records still get a legend entry; no runs give empty axes.
pub fn write_latency_cdf_svg(results: &[&RunResult], path: &Path) -> Result<(), ReportError> {
    let curves: Vec<(&str, Vec<(f64, f64)>)> = results
        .iter()
        .map(|r| (r.policy.as_str(), cdf_points(r)))
        .collect();
    let svg = render(&curves, &title(results))?;
    write_svg(&svg, path)
}

fn title(results: &[&RunResult]) -> String {
    match results.first() {
        Some(first)
            if !first.workload.is_empty()
                && results.iter().all(|r| r.workload == first.workload) =>
        {
            format!("End-to-end latency CDF: {}", first.workload)
        }
        _ => "End-to-end latency CDF".to_string(),
    }
}

/// The downsampled CDF of one run's latencies, `(latency ms, fraction ≤ it)`, x ascending.
fn cdf_points(r: &RunResult) -> Vec<(f64, f64)> {
    let mut ms: Vec<f64> = r
        .records
        .iter()
        .map(|rec| rec.latency().as_millis_f64().max(FLOOR_MS))
        .collect();
    ms.sort_unstable_by(f64::total_cmp);
    let n = ms.len() as f64;
    sample_ranks(ms.len(), MAX_POINTS)
        .into_iter()
        .filter_map(|i| ms.get(i).map(|&x| (x, (i + 1) as f64 / n)))
        .collect()
}

/// At most `max` distinct ascending indices into `0..n`, always including the first and last.
pub(crate) fn sample_ranks(n: usize, max: usize) -> Vec<usize> {
    if n <= max {
        return (0..n).collect();
    }
    let last = n - 1;
    let even = (max / 2).max(2);
    let tail = max.saturating_sub(even);
    let mut idx: Vec<usize> = (0..even)
        .map(|k| ((k as f64 * last as f64) / (even - 1) as f64).round() as usize)
        .collect();
    // 1 − CDF log-spaced from 10⁻¹ down to 1/n: index n − ⌈f·n⌉.
    let span = (n as f64).log10() - 1.0;
    if tail >= 2 && span > 0.0 {
        for j in 0..tail {
            let f = 10f64.powf(-1.0 - span * j as f64 / (tail - 1) as f64);
            let above = (f * n as f64).ceil() as usize;
            idx.push(n.saturating_sub(above.max(1)));
        }
    }
    idx.sort_unstable();
    idx.dedup();
    idx.retain(|&i| i <= last);
    idx
}

fn render(curves: &[(&str, Vec<(f64, f64)>)], title: &str) -> Result<String, ReportError> {
    let xs = curves.iter().flat_map(|(_, pts)| pts.iter().map(|p| p.0));
    let (min, max) = xs.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), x| {
        (lo.min(x), hi.max(x))
    });
    let (lo, hi) = log_bounds(min, max);

    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, TITLE_FONT)
            .margin(16)
            .margin_right(32)
            .x_label_area_size(50)
            .y_label_area_size(64)
            .build_cartesian_2d((lo..hi).log_scale(), 0.0..1.0)
            .map_err(plot_err)?;
        chart
            .configure_mesh()
            .x_desc("end-to-end latency (ms, log10 scale)")
            .y_desc("CDF (fraction of completed invocations)")
            .axis_desc_style(LABEL_FONT)
            .x_label_formatter(&|v| tick_label(*v))
            .y_label_formatter(&|v| format!("{v:.1}"))
            .draw()
            .map_err(plot_err)?;
        for (i, (policy, points)) in curves.iter().enumerate() {
            let style = color(i).stroke_width(2);
            chart
                .draw_series(LineSeries::new(points.iter().copied(), style))
                .map_err(plot_err)?
                .label(*policy)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], style));
        }
        if !curves.is_empty() {
            draw_legend(&mut chart, SeriesLabelPosition::LowerRight)?;
        }
        root.present().map_err(plot_err)?;
    }
    Ok(svg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::testdata::{hand_made_run, rec};

    #[test]
    fn ranks_are_bounded_distinct_and_keep_the_ends() {
        assert_eq!(sample_ranks(3, 2_000), vec![0, 1, 2]);
        assert!(sample_ranks(0, 2_000).is_empty());
        let idx = sample_ranks(621_000, 2_000);
        assert!(idx.len() <= 2_000 && idx.len() > 1_500, "{}", idx.len());
        assert_eq!((idx[0], idx[idx.len() - 1]), (0, 620_999));
        assert!(idx.windows(2).all(|w| w[0] < w[1]));
        // The tail is dense: many samples above p99.9.
        assert!(idx.iter().filter(|&&i| i >= 620_379).count() > 200);
    }

    #[test]
    fn writes_svg_with_labels_and_policies() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("cdf.svg");
        let (a, b) = (hand_made_run("fcfs"), hand_made_run("mqfq-sticky"));
        let mut empty = hand_made_run("sjf");
        empty.records.clear();
        write_latency_cdf_svg(&[&a, &b, &empty], &path).expect("write svg");
        let svg = std::fs::read_to_string(&path).expect("read back");
        assert!(
            svg.starts_with("<svg") || svg.starts_with("<?xml"),
            "{}",
            &svg[..80]
        );
        assert!(svg.trim_end().ends_with("</svg>"));
        for text in [
            "fcfs",
            "mqfq-sticky",
            "sjf",
            "latency (ms, log10 scale)",
            "CDF",
            "hand",
        ] {
            assert!(svg.contains(text), "missing {text}");
        }
    }

    #[test]
    fn big_runs_stay_small_and_empty_input_works() {
        let mut r = hand_made_run("fcfs");
        r.records = (0..621_000u64)
            .map(|i| {
                rec(
                    i,
                    (i % 3) as u32,
                    [0, 0, 0, 1 + (i * 7919) % 50_000],
                    1,
                    false,
                )
            })
            .collect();
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("big.svg");
        write_latency_cdf_svg(&[&r], &path).expect("write svg");
        let len = std::fs::metadata(&path).expect("stat").len();
        assert!(len < 1_000_000, "{len} bytes");
        write_latency_cdf_svg(&[], &dir.path().join("none.svg")).expect("empty input");
        let bad = dir.path().join("missing-dir").join("x.svg");
        assert!(matches!(
            write_latency_cdf_svg(&[&r], &bad),
            Err(ReportError::Io(_))
        ));
    }
}

//! The latency-versus-load figure of a sweep: target GPU utilisation on x, latency (ms, log10
//! scale) on y; per policy a solid line with markers for the mean and a dashed line in the same
//! colour for p99.

use super::plot::{color, draw_legend, log_bounds, plot_err, tick_label, write_svg};
use super::plot::{LABEL_FONT, SIZE, TITLE_FONT};
use super::{ReportError, SweepRow};
use plotters::prelude::*;
use std::path::Path;

/// One policy's points, `(target util, mean ms, p99 ms)`, sorted by load.
type Line<'a> = (&'a str, Vec<(f64, f64, f64)>);

/// Writes the sweep's latency-vs-load figure to `path` as SVG. Policies appear in order of first
/// appearance; points with a non-finite load are skipped, non-positive latencies are drawn at
/// the bottom of the axis. No rows gives empty axes.
pub fn write_latency_vs_load_svg(rows: &[SweepRow], path: &Path) -> Result<(), ReportError> {
    let svg = render(&lines(rows))?;
    write_svg(&svg, path)
}

fn lines(rows: &[SweepRow]) -> Vec<Line<'_>> {
    let mut out: Vec<Line<'_>> = Vec::new();
    for row in rows.iter().filter(|r| r.target_util.is_finite()) {
        let s = &row.summary;
        let point = (row.target_util, s.latency_ms.mean, s.latency_ms.p99);
        match out.iter_mut().find(|(p, _)| *p == s.policy) {
            Some((_, pts)) => pts.push(point),
            None => out.push((s.policy.as_str(), vec![point])),
        }
    }
    for (_, pts) in &mut out {
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    out
}

fn render(lines: &[Line<'_>]) -> Result<String, ReportError> {
    let points = || lines.iter().flat_map(|(_, pts)| pts.iter());
    let (x_lo, x_hi) = points().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), p| {
        (lo.min(p.0), hi.max(p.0))
    });
    let (x_lo, x_hi) = match (x_lo.is_finite(), x_hi > x_lo) {
        (true, true) => (x_lo - 0.05 * (x_hi - x_lo), x_hi + 0.05 * (x_hi - x_lo)),
        (true, false) => (x_lo - 0.05, x_hi + 0.05),
        (false, _) => (0.0, 1.0),
    };
    let ys = points()
        .flat_map(|p| [p.1, p.2])
        .filter(|y| y.is_finite() && *y > 0.0);
    let (y_min, y_max) = ys.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), y| {
        (lo.min(y), hi.max(y))
    });
    let (y_lo, y_hi) = log_bounds(y_min, y_max);
    // Keep every point on the axes: a log axis has no zero, and NaN or ∞ has no place at all.
    let y = |v: f64| {
        if v.is_finite() {
            v.clamp(y_lo, y_hi)
        } else {
            y_lo
        }
    };

    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption("Latency vs offered load", TITLE_FONT)
            .margin(16)
            .margin_right(32)
            .x_label_area_size(50)
            .y_label_area_size(64)
            .build_cartesian_2d(x_lo..x_hi, (y_lo..y_hi).log_scale())
            .map_err(plot_err)?;
        chart
            .configure_mesh()
            .x_desc("target GPU utilisation")
            .y_desc("latency (ms, log10 scale): mean solid, p99 dashed")
            .axis_desc_style(LABEL_FONT)
            .x_label_formatter(&|v| format!("{v:.2}"))
            .y_label_formatter(&|v| tick_label(*v))
            .draw()
            .map_err(plot_err)?;
        for (i, (policy, pts)) in lines.iter().enumerate() {
            let style = color(i).stroke_width(2);
            let mean: Vec<(f64, f64)> = pts.iter().map(|p| (p.0, y(p.1))).collect();
            let p99: Vec<(f64, f64)> = pts.iter().map(|p| (p.0, y(p.2))).collect();
            chart
                .draw_series(LineSeries::new(mean.iter().copied(), style))
                .map_err(plot_err)?
                .label(format!("{policy} mean"))
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], style));
            chart
                .draw_series(mean.iter().map(|&p| Circle::new(p, 3, style.filled())))
                .map_err(plot_err)?;
            chart
                .draw_series(DashedLineSeries::new(p99, 8, 5, style))
                .map_err(plot_err)?
                .label(format!("{policy} p99"))
                .legend(move |(x, y)| {
                    EmptyElement::at((x, y))
                        + PathElement::new(vec![(0, 0), (8, 0)], style)
                        + PathElement::new(vec![(14, 0), (22, 0)], style)
                });
        }
        if !lines.is_empty() {
            draw_legend(&mut chart, SeriesLabelPosition::UpperLeft)?;
        }
        root.present().map_err(plot_err)?;
    }
    Ok(svg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::summarize;
    use crate::report::testdata::hand_made_run;

    fn row(util: f64, policy: &str, scale: f64) -> SweepRow {
        let mut summary = summarize(&hand_made_run(policy));
        summary.latency_ms.mean *= scale;
        summary.latency_ms.p99 *= scale;
        SweepRow {
            target_util: util,
            summary,
        }
    }

    #[test]
    fn writes_svg_with_a_legend_per_policy() {
        let rows = [
            row(0.9, "fcfs", 10.0),
            row(0.5, "fcfs", 1.0),
            row(0.5, "mqfq-sticky", 0.5),
            row(0.9, "mqfq-sticky", 2.0),
        ];
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("load.svg");
        write_latency_vs_load_svg(&rows, &path).expect("write svg");
        let svg = std::fs::read_to_string(&path).expect("read back");
        assert!(svg.starts_with("<svg") || svg.starts_with("<?xml"));
        assert!(svg.trim_end().ends_with("</svg>"));
        for text in [
            "fcfs mean",
            "fcfs p99",
            "mqfq-sticky mean",
            "target GPU utilisation",
        ] {
            assert!(svg.contains(text), "missing {text}");
        }
        let fcfs = &lines(&rows)[0];
        assert_eq!((fcfs.1[0].0, fcfs.1[1].0), (0.5, 0.9));
    }

    #[test]
    fn empty_and_degenerate_sweeps_still_draw() {
        let dir = tempfile::tempdir().expect("temp dir");
        write_latency_vs_load_svg(&[], &dir.path().join("none.svg")).expect("no rows");
        let mut zero = row(0.7, "fcfs", 0.0);
        zero.summary.latency_ms.p99 = 0.0;
        let mut inf = row(0.8, "fcfs", 1.0);
        inf.summary.latency_ms.p99 = f64::INFINITY;
        let rows = [zero, inf, row(f64::NAN, "sjf", 1.0)];
        write_latency_vs_load_svg(&rows, &dir.path().join("one.svg")).expect("one load");
    }
}

//! Helpers shared by the SVG figures: colours, log-axis bounds, tick labels, legend styling and
//! turning plotters' errors into [`ReportError`].
//!
//! Figures are drawn into a `String` with plotters' SVG backend (text becomes `<text>` elements, so
//! no font files are needed) and written with `std::fs`, so I/O failures surface as
//! [`ReportError::Io`] rather than being swallowed by the backend.

use super::ReportError;
use plotters::prelude::*;
use std::path::Path;

/// Figure size in pixels.
pub(crate) const SIZE: (u32, u32) = (960, 600);
/// Caption and axis-description fonts (generic families: the SVG viewer picks the face).
pub(crate) const TITLE_FONT: (&str, u32) = ("sans-serif", 22);
pub(crate) const LABEL_FONT: (&str, u32) = ("sans-serif", 15);

/// Tableau-10 colours, cycled by series index.
const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

pub(crate) fn color(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

/// Power-of-ten bounds enclosing the positive values `min..=max` (defaults for no data).
pub(crate) fn log_bounds(min: f64, max: f64) -> (f64, f64) {
    if !(min.is_finite() && max.is_finite() && min > 0.0 && max >= min) {
        return (1.0, 1000.0);
    }
    let lo = 10f64.powi(min.log10().floor() as i32);
    let hi = 10f64.powi(max.log10().ceil() as i32);
    if hi > lo {
        (lo, hi)
    } else {
        (lo, lo * 10.0)
    }
}

/// A tick label with no more decimals than its magnitude needs: `1000`, `20`, `0.5`, `0.02`;
/// scientific from 10⁵ up (`1e5`, `2e6`) so long labels do not collide.
pub(crate) fn tick_label(v: f64) -> String {
    if v >= 1e5 && v.is_finite() {
        return format!("{v:e}");
    }
    if !v.is_finite() || v <= 0.0 || v >= 1.0 {
        return format!("{v:.0}");
    }
    let decimals = (-v.log10().floor()) as usize;
    format!("{v:.decimals$}")
}

/// Wraps any plotters error as [`ReportError::Plot`].
pub(crate) fn plot_err<E: std::fmt::Display>(e: E) -> ReportError {
    ReportError::Plot(e.to_string())
}

/// Draws the legend of every labelled series in `corner`.
pub(crate) fn draw_legend<'a, X, Y>(
    chart: &mut ChartContext<'a, SVGBackend<'a>, Cartesian2d<X, Y>>,
    corner: SeriesLabelPosition,
) -> Result<(), ReportError>
where
    X: Ranged,
    Y: Ranged,
{
    chart
        .configure_series_labels()
        .position(corner)
        .label_font(LABEL_FONT)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(plot_err)
}

/// Writes a finished SVG document to `path`.
pub(crate) fn write_svg(svg: &str, path: &Path) -> Result<(), ReportError> {
    std::fs::write(path, svg)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_and_ticks() {
        assert_eq!(log_bounds(3.0, 450.0), (1.0, 1000.0));
        assert_eq!(log_bounds(10.0, 10.0), (10.0, 100.0));
        assert_eq!(log_bounds(0.0, 0.0), (1.0, 1000.0));
        assert_eq!(tick_label(1000.0), "1000");
        assert_eq!(
            (tick_label(1e7), tick_label(2e5)),
            ("1e7".into(), "2e5".into())
        );
        assert_eq!(tick_label(0.5), "0.5");
        assert_eq!(tick_label(0.02), "0.02");
    }
}

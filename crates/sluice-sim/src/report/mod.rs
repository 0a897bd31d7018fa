//! Reports over finished runs: turns [`RunResult`](crate::record::RunResult)s into numbers and
//! files a person (or a script) reads.
//!
//! This module owns the summary statistics of a run ([`summarize`]), the human text table
//! ([`render_table`]), the machine-readable JSON ([`to_json`]), the load-sweep markdown
//! ([`render_sweep_markdown`]), the per-invocation CSV ([`write_records_csv`]) and the SVG figures
//! ([`write_latency_cdf_svg`], [`write_latency_vs_load_svg`]). It only reads records: running
//! engines, choosing policies and naming output paths belong to the engines and the CLI.
//!
//! Conventions: every duration is reported in milliseconds (`f64`, via `as_millis_f64`), every
//! "GB" is 10⁹ bytes, and no function here panics on an empty run.

mod json;
mod numfmt;
mod plot;
mod records_csv;
mod summary;
mod svg_cdf;
mod svg_load;
mod sweep;
mod table;

pub use json::to_json;
pub use records_csv::write_records_csv;
pub use summary::{summarize, Quantiles, Summary, VsIdeal};
pub use svg_cdf::write_latency_cdf_svg;
pub use svg_load::write_latency_vs_load_svg;
pub use sweep::{render_sweep_markdown, SweepRow};
pub use table::render_table;

/// Why a report could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// Writing a file or stream failed.
    #[error("report I/O failed: {0}")]
    Io(#[from] std::io::Error),
    /// The CSV writer failed (its inner error may itself be I/O).
    #[error("writing CSV failed: {0}")]
    Csv(#[from] csv::Error),
    /// The plotting library could not draw a figure.
    #[error("drawing figure failed: {0}")]
    Plot(String),
}

#[cfg(test)]
mod testdata;

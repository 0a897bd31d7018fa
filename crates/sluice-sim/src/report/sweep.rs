//! The load-sweep report: a markdown table of summaries grouped by target utilisation, and a
//! line per load comparing every policy's mean latency with FCFS's.
//!
//! Owns [`SweepRow`] and [`render_sweep_markdown`]; running the sweep belongs to the CLI.

use super::numfmt::{factor, fairness, gb, num, pct, vs_ideal};
use super::Summary;

/// One policy's summary at one target GPU utilisation of a load sweep.
#[derive(Clone, Debug, PartialEq)]
pub struct SweepRow {
    /// The offered GPU utilisation the trace was scaled to.
    pub target_util: f64,
    /// The policy's summary at that load.
    pub summary: Summary,
}

/// Renders the sweep as one markdown table, rows ordered by load (policies in input order within
/// a load), then, for each load where a `fcfs` row exists, a bullet such as
/// `- load 0.70: fcfs/mqfq-sticky mean = 3.1×` (FCFS's mean latency over the policy's: how many
/// times faster than FCFS the policy is). No rows gives the table header alone.
pub fn render_sweep_markdown(rows: &[SweepRow]) -> String {
    let mut sorted: Vec<&SweepRow> = rows.iter().collect();
    sorted.sort_by(|a, b| a.target_util.total_cmp(&b.target_util)); // stable: keeps policy order

    let mut out = String::from(
        "| load | policy | mean ms | p50 ms | p99 ms | Jain | max slowdown | GPU util % \
         | cold starts | GB moved | rejected | mean/ideal | p99/ideal |\n\
         |---:|:---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for row in &sorted {
        let s = &row.summary;
        let cells = [
            format!("{:.2}", row.target_util),
            s.policy.clone(),
            num(s.latency_ms.mean),
            num(s.latency_ms.p50),
            num(s.latency_ms.p99),
            fairness(s.jain_fairness),
            num(s.max_function_slowdown),
            pct(s.gpu_util),
            s.cold_starts.to_string(),
            gb(s.bytes_to_device, s.bytes_to_host),
            s.rejected.to_string(),
            vs_ideal(s.vs_ideal.map(|v| v.mean)),
            vs_ideal(s.vs_ideal.map(|v| v.p99)),
        ];
        out.push_str("| ");
        out.push_str(&cells.join(" | "));
        out.push_str(" |\n");
    }

    let ratio_lines: Vec<String> = sorted
        .chunk_by(|a, b| a.target_util.total_cmp(&b.target_util).is_eq())
        .filter_map(ratio_line)
        .collect();
    if !ratio_lines.is_empty() {
        out.push_str("\nMean latency relative to FCFS (FCFS mean / policy mean):\n\n");
        for line in ratio_lines {
            out.push_str(&line);
            out.push('\n');
        }
    }
    out
}

/// The comparison bullet for one load, or `None` without an FCFS row or other policies there.
fn ratio_line(group: &[&SweepRow]) -> Option<String> {
    let first = group.first()?;
    let fcfs = group.iter().find(|r| r.summary.policy == "fcfs")?;
    let base = fcfs.summary.latency_ms.mean;
    let parts: Vec<String> = group
        .iter()
        .filter(|r| r.summary.policy != "fcfs")
        .map(|r| {
            let mean = r.summary.latency_ms.mean;
            let value = if mean > 0.0 {
                format!("{}×", factor(base / mean))
            } else {
                "n/a".to_string()
            };
            format!("fcfs/{} mean = {value}", r.summary.policy)
        })
        .collect();
    if parts.is_empty() {
        return None;
    }
    Some(format!(
        "- load {:.2}: {}",
        first.target_util,
        parts.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::summarize;
    use crate::report::testdata::hand_made_run;

    fn row(util: f64, policy: &str, mean_ms: f64) -> SweepRow {
        let mut summary = summarize(&hand_made_run(policy));
        summary.latency_ms.mean = mean_ms;
        SweepRow {
            target_util: util,
            summary,
        }
    }

    #[test]
    fn grouped_by_load_with_fcfs_ratios() {
        let rows = [
            row(0.9, "fcfs", 62.0),
            row(0.5, "fcfs", 31.0),
            row(0.9, "mqfq-sticky", 20.0),
            row(0.5, "mqfq-sticky", 10.0),
            row(0.7, "sjf", 15.0),
        ];
        let md = render_sweep_markdown(&rows);
        let table: Vec<&str> = md.lines().take_while(|l| l.starts_with('|')).collect();
        assert_eq!(table.len(), 7, "{md}");
        assert!(table[2].starts_with("| 0.50 | fcfs | 31.0 |"), "{md}");
        assert!(
            table[3].starts_with("| 0.50 | mqfq-sticky | 10.0 |"),
            "{md}"
        );
        assert!(table[4].starts_with("| 0.70 | sjf |"), "{md}");
        assert!(
            table[6].starts_with("| 0.90 | mqfq-sticky | 20.0 |"),
            "{md}"
        );
        assert!(
            md.contains("- load 0.50: fcfs/mqfq-sticky mean = 3.1×\n"),
            "{md}"
        );
        assert!(
            md.contains("- load 0.90: fcfs/mqfq-sticky mean = 3.1×\n"),
            "{md}"
        );
        assert!(!md.contains("load 0.70:"), "no FCFS at 0.70: {md}");
    }

    #[test]
    fn empty_and_fcfs_free_sweeps() {
        assert_eq!(render_sweep_markdown(&[]).lines().count(), 2);
        let md = render_sweep_markdown(&[row(0.5, "sjf", 1.0)]);
        assert!(!md.contains("relative to FCFS"), "{md}");
    }
}

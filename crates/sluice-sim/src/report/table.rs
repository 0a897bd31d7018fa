//! The human-readable text table: one aligned row per policy's [`Summary`].
//!
//! Owns the column set and layout; number formatting lives in `numfmt`.

use super::numfmt::{fairness, gb, num, pct, vs_ideal};
use super::Summary;

const HEADER: [&str; 15] = [
    "policy",
    "completed/offered",
    "rejected",
    "mean ms",
    "p50 ms",
    "p99 ms",
    "p99.9 ms",
    "queue mean ms",
    "Jain",
    "max slowdown",
    "GPU util %",
    "cold starts",
    "GB moved",
    "mean/ideal",
    "p99/ideal",
];

/// Renders one row per summary under a header and a dashed rule. The policy column is left
/// aligned, every number right aligned; "GB moved" is host→device plus device→host, 10⁹ bytes;
/// "mean/ideal" and "p99/ideal" are the latency over the ideal bound's (`-` without one). No
/// rows gives the header alone.
pub fn render_table(rows: &[Summary]) -> String {
    let cells: Vec<Vec<String>> = rows.iter().map(row_cells).collect();
    let header: Vec<String> = HEADER.iter().map(|h| h.to_string()).collect();
    align(&header, &cells)
}

fn row_cells(s: &Summary) -> Vec<String> {
    vec![
        s.policy.clone(),
        format!("{}/{}", s.completed, s.invocations),
        s.rejected.to_string(),
        num(s.latency_ms.mean),
        num(s.latency_ms.p50),
        num(s.latency_ms.p99),
        num(s.latency_ms.p999),
        num(s.queue_ms.mean),
        fairness(s.jain_fairness),
        num(s.max_function_slowdown),
        pct(s.gpu_util),
        s.cold_starts.to_string(),
        gb(s.bytes_to_device, s.bytes_to_host),
        vs_ideal(s.vs_ideal.map(|v| v.mean)),
        vs_ideal(s.vs_ideal.map(|v| v.p99)),
    ]
}

/// Lays out a header, a rule and rows in columns two spaces apart: column 0 left aligned, the
/// rest right aligned. Width is measured in characters, so multi-byte policy names align too.
fn align(header: &[String], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let rule: Vec<String> = widths.iter().map(|&w| "-".repeat(w)).collect();
    let mut out = String::new();
    for line in std::iter::once(header)
        .chain(std::iter::once(rule.as_slice()))
        .chain(rows.iter().map(Vec::as_slice))
    {
        let mut text = String::new();
        for (i, (cell, &w)) in line.iter().zip(&widths).enumerate() {
            if i > 0 {
                text.push_str("  ");
            }
            let pad = " ".repeat(w.saturating_sub(cell.chars().count()));
            if i == 0 {
                text.push_str(cell);
                text.push_str(&pad);
            } else {
                text.push_str(&pad);
                text.push_str(cell);
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::summarize;
    use crate::report::testdata::hand_made_run;

    #[test]
    fn columns_line_up_and_carry_the_numbers() {
        let rows = [
            summarize(&hand_made_run("fcfs")),
            summarize(&hand_made_run("mqfq-sticky")),
        ];
        let text = render_table(&rows);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4);
        assert!(lines[0].starts_with("policy") && lines[0].ends_with("p99/ideal"));
        assert!(lines[1].starts_with("---"));
        // Every line ends at the same column (right-aligned last column).
        let width = lines[0].chars().count();
        assert!(lines.iter().all(|l| l.chars().count() == width), "{text}");
        let fcfs = lines[2];
        for want in [
            "fcfs", "5/6", "36.0", "40.0", "59.2", "59.9", "12.0", "0.941",
        ] {
            assert!(fcfs.contains(want), "{want} missing from {fcfs}");
        }
        for want in ["3.33", "50.0", "  1", "4.00"] {
            assert!(fcfs.contains(want), "{want} missing from {fcfs}");
        }
    }

    #[test]
    fn no_rows_is_header_only() {
        assert_eq!(render_table(&[]).lines().count(), 2);
    }
}

//! The per-invocation CSV: one row per record of a run, for analysis outside Sluice.
//!
//! Columns: `id,function,policy,arrival_ms,dispatched_ms,started_ms,finished_ms,latency_ms,
//! queue_ms,gpu,cold,solo_ms,slowdown,bytes_to_device`. Times are milliseconds since the run's
//! epoch, `cold` is `true`/`false`, `gpu` the device index, rows in the run's (completion) order.

use super::ReportError;
use crate::record::{InvocationRecord, RunResult};
use serde::Serialize;
use std::borrow::Cow;
use std::io::Write;

/// One CSV row; field names are the header.
#[derive(Serialize)]
struct Row<'a> {
    id: u64,
    function: &'a str,
    policy: &'a str,
    arrival_ms: f64,
    dispatched_ms: f64,
    started_ms: f64,
    finished_ms: f64,
    latency_ms: f64,
    queue_ms: f64,
    gpu: u16,
    cold: bool,
    solo_ms: f64,
    slowdown: f64,
    bytes_to_device: u64,
}

/// Writes every record of `r` as CSV with a header row (the header alone for an empty run).
/// A function id outside `r.functions` is written as `fn#<id>`.
pub fn write_records_csv<W: Write>(r: &RunResult, w: W) -> Result<(), ReportError> {
    let mut out = csv::Writer::from_writer(w);
    if r.records.is_empty() {
        // serde writes the header with the first row; with no rows, write it by hand.
        out.write_record(HEADER)?;
    }
    for rec in &r.records {
        let function = match r.functions.get(rec.func.index()) {
            Some(name) => Cow::Borrowed(name.as_str()),
            None => Cow::Owned(rec.func.to_string()),
        };
        out.serialize(row(rec, &function, &r.policy))?;
    }
    out.flush()?;
    Ok(())
}

const HEADER: [&str; 14] = [
    "id",
    "function",
    "policy",
    "arrival_ms",
    "dispatched_ms",
    "started_ms",
    "finished_ms",
    "latency_ms",
    "queue_ms",
    "gpu",
    "cold",
    "solo_ms",
    "slowdown",
    "bytes_to_device",
];

fn row<'a>(rec: &InvocationRecord, function: &'a str, policy: &'a str) -> Row<'a> {
    Row {
        id: rec.id,
        function,
        policy,
        arrival_ms: rec.arrival.as_millis_f64(),
        dispatched_ms: rec.dispatched.as_millis_f64(),
        started_ms: rec.started.as_millis_f64(),
        finished_ms: rec.finished.as_millis_f64(),
        latency_ms: rec.latency().as_millis_f64(),
        queue_ms: rec.queue_delay().as_millis_f64(),
        gpu: rec.gpu.0,
        cold: rec.cold,
        solo_ms: rec.solo.as_millis_f64(),
        slowdown: rec.slowdown(),
        bytes_to_device: rec.bytes_to_device,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::testdata::hand_made_run;

    const HEADER_LINE: &str = "id,function,policy,arrival_ms,dispatched_ms,started_ms,\
        finished_ms,latency_ms,queue_ms,gpu,cold,solo_ms,slowdown,bytes_to_device";

    fn csv_of(r: &RunResult) -> String {
        let mut buf = Vec::new();
        write_records_csv(r, &mut buf).expect("write to a Vec");
        String::from_utf8(buf).expect("utf-8")
    }

    #[test]
    fn header_and_rows() {
        let text = csv_of(&hand_made_run("fcfs"));
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 6);
        assert_eq!(lines[0], HEADER_LINE);
        // Record 3: function b, cold, 5 → 45 ms, queued 0, started 25, solo 20, slowdown 2.
        assert_eq!(
            lines[3],
            "3,b,fcfs,5.0,5.0,25.0,45.0,40.0,0.0,1,true,20.0,2.0,1500000000"
        );
    }

    #[test]
    fn empty_run_has_header_and_unknown_functions_get_ids() {
        let mut r = hand_made_run("fcfs");
        r.records.clear();
        assert_eq!(csv_of(&r).trim_end(), HEADER_LINE);
        let mut r = hand_made_run("fcfs");
        r.functions.truncate(1);
        let text = csv_of(&r);
        assert!(
            text.lines()
                .nth(3)
                .is_some_and(|l| l.starts_with("3,fn#1,")),
            "{text}"
        );
    }
}

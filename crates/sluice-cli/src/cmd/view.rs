//! Human renderings of API answers: compact JSON (arrays of plain values on one line, so an
//! OCR result's box coordinates do not take a screen each), and short summaries of the worker's
//! status and of a pipeline's status. Every command that prints these takes `--json` for the
//! answer as the API gave it.

use serde_json::Value;
use std::fmt::Write;

/// `v` indented like pretty JSON, except that arrays holding only numbers, strings, booleans
/// and nulls stay on one line.
pub fn compact(v: &Value) -> String {
    let mut out = String::new();
    write_value(&mut out, v, 0);
    out
}

fn is_flat(v: &Value) -> bool {
    match v {
        Value::Array(a) => a.iter().all(|x| !x.is_array() && !x.is_object()),
        _ => true,
    }
}

fn write_value(out: &mut String, v: &Value, indent: usize) {
    let pad = |n: usize| "  ".repeat(n);
    match v {
        Value::Array(a) if a.is_empty() => out.push_str("[]"),
        Value::Object(o) if o.is_empty() => out.push_str("{}"),
        Value::Array(a) if is_flat(v) => {
            let items: Vec<String> = a.iter().map(Value::to_string).collect();
            out.push('[');
            out.push_str(&items.join(", "));
            out.push(']');
        }
        Value::Array(a) => {
            out.push_str("[\n");
            for (i, x) in a.iter().enumerate() {
                out.push_str(&pad(indent + 1));
                write_value(out, x, indent + 1);
                out.push_str(if i + 1 < a.len() { ",\n" } else { "\n" });
            }
            out.push_str(&pad(indent));
            out.push(']');
        }
        Value::Object(o) => {
            out.push_str("{\n");
            for (i, (k, x)) in o.iter().enumerate() {
                let _ = write!(out, "{}{}: ", pad(indent + 1), Value::String(k.clone()));
                write_value(out, x, indent + 1);
                out.push_str(if i + 1 < o.len() { ",\n" } else { "\n" });
            }
            out.push_str(&pad(indent));
            out.push('}');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

fn num(v: &Value) -> f64 {
    v.as_f64().unwrap_or(0.0)
}

fn text(v: &Value) -> &str {
    v.as_str().unwrap_or("?")
}

/// `ms` for display: whole milliseconds from 10 ms up, one decimal below.
fn ms(v: f64) -> String {
    if v >= 10.0 {
        format!("{v:.0} ms")
    } else {
        format!("{v:.1} ms")
    }
}

/// A duration in seconds, as `42 s`, `3 min 5 s` or `2 h 10 min`.
fn ago(seconds: f64) -> String {
    let s = seconds.max(0.0) as u64;
    match s {
        0..=59 => format!("{s} s"),
        60..=3599 => format!("{} min {} s", s / 60, s % 60),
        _ => format!("{} h {} min", s / 3600, (s % 3600) / 60),
    }
}

/// The worker's `/v1/status` in a few lines.
pub fn status_summary(v: &Value) -> String {
    let mut o = String::new();
    let gpus = v["gpus"].as_array().map_or(0, Vec::len);
    let _ = writeln!(
        o,
        "worker up {}; {} GPU(s) ({}), sandboxes: {}; policy {}",
        ago(num(&v["uptime_s"])),
        gpus,
        text(&v["devices"]),
        text(&v["isolation"]),
        text(&v["policy"])
    );
    for g in v["gpus"].as_array().into_iter().flatten() {
        let _ = writeln!(
            o,
            "  gpu {}: {} ({:.1} GiB) {}",
            g["index"],
            text(&g["name"]),
            num(&g["memory_bytes"]) / f64::from(1u32 << 30),
            text(&g["uuid"])
        );
    }
    if let Some(note) = v["note"].as_str() {
        let _ = writeln!(o, "  note: {note}");
    }
    let missing: Vec<&str> = (v["limits_not_enforced"].as_array().into_iter().flatten())
        .filter_map(Value::as_str)
        .collect();
    if !missing.is_empty() {
        let _ = writeln!(o, "  limits not enforced: {}", missing.join(", "));
    }
    let sb = &v["sandboxes"];
    let _ = writeln!(
        o,
        "functions: {}; queued: {}; sandboxes: {} busy, {} idle, {} starting{}",
        v["functions"],
        v["queued"],
        sb["busy"],
        sb["idle"],
        sb["starting"],
        if v["draining"].as_bool() == Some(true) {
            "; DRAINING"
        } else {
            ""
        }
    );
    if let Some(a) = v["async"].as_object() {
        let get = |k: &str| a.get(k).and_then(Value::as_u64).unwrap_or(0);
        let _ = writeln!(
            o,
            "async invocations: {} queued, {} running, {} succeeded, {} failed",
            get("queued"),
            get("running"),
            get("succeeded"),
            get("failed")
        );
    }
    o
}

/// A pipeline's status (`GET /v1/pipelines/{name}`) in a few lines: requests and latency, the
/// stages in pipeline order, the plan, autoscaling and the history of plan changes. `now_ms` is
/// the current time, milliseconds since the Unix epoch.
pub fn pipeline_summary(v: &Value, now_ms: u64) -> String {
    let mut o = String::new();
    let st = &v["status"];
    let lat = &st["latency"];
    let _ = writeln!(
        o,
        "{}: policy {}, target p99 {}, generation {}, up {}",
        text(&v["name"]),
        text(&v["policy"]),
        ms(num(&v["slo_ms"])),
        st["generation"],
        ago(num(&st["uptime_s"]))
    );
    let load = v["measured_load_rps"]
        .as_f64()
        .map_or("not metered yet".to_string(), |l| format!("{l:.2} req/s"));
    let _ = writeln!(
        o,
        "  requests: {} done, {} failed; p50 {}, p99 {}; load {load}",
        st["completed"],
        st["failed"],
        ms(num(&lat["p50_ms"])),
        ms(num(&lat["p99_ms"]))
    );
    let auto = &v["autoscale"];
    let _ = writeln!(
        o,
        "  autoscale: {}, never below {:.2} req/s",
        if auto["enabled"].as_bool() == Some(true) {
            "on"
        } else {
            "off"
        },
        num(&auto["min_load_rps"])
    );
    let plan = &st["plan"];
    let capacity = num(&plan["predicted"]["capacity_rps"]);
    let _ = writeln!(
        o,
        "  plan: {} GPU(s), predicted capacity {}",
        plan["gpus"],
        if capacity > 0.0 {
            format!("{capacity:.2} req/s")
        } else {
            "unknown (no profile)".into()
        }
    );
    let stage_names: Vec<&str> = v["stages"]
        .as_array()
        .into_iter()
        .flatten()
        .map(text)
        .collect();
    let _ = writeln!(o, "  stages, in pipeline order:");
    for (i, s) in st["stages"].as_array().into_iter().flatten().enumerate() {
        let placed: Vec<String> = plan["instances"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|x| x["stage"].as_u64() == Some(i as u64))
            .map(|x| format!("gpu{} {}% b{}", x["gpu"], x["sm_share"], x["batch"]))
            .collect();
        let _ = writeln!(
            o,
            "    {:<12} queued {:>3}  batch {:>4.1}  p50 {:>8}  p99 {:>8}  [{}]",
            stage_names.get(i).copied().unwrap_or(text(&s["name"])),
            s["queued"],
            num(&s["mean_batch"]),
            ms(num(&s["latency"]["p50_ms"])),
            ms(num(&s["latency"]["p99_ms"])),
            placed.join(", ")
        );
    }
    let history = v["history"].as_array().map_or(&[][..], Vec::as_slice);
    if !history.is_empty() {
        let _ = writeln!(o, "  plan changes, oldest first:");
    }
    for h in history {
        let at = h["at_ms"].as_u64().unwrap_or(0);
        let for_load = h["planned_load_rps"]
            .as_f64()
            .map_or("the most load".to_string(), |l| format!("{l:.2} req/s"));
        let _ = writeln!(
            o,
            "    gen {:<3} {} ago: {} for {for_load} (capacity {:.2} req/s): {}",
            h["generation"].as_u64().unwrap_or(0),
            ago(now_ms.saturating_sub(at) as f64 / 1e3),
            text(&h["policy"]),
            num(&h["capacity_rps"]),
            text(&h["reason"])
        );
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn flat_arrays_stay_on_one_line() {
        let v = json!({"text": "hi", "boxes": [[1, 2], [3, 4]], "scores": [0.5, 0.25]});
        let s = compact(&v);
        assert!(s.contains("[1, 2],\n"), "{s}");
        assert!(s.contains("\"scores\": [0.5, 0.25]"), "{s}");
        let back: Value = serde_json::from_str(&s).expect("still JSON");
        assert_eq!(back, v);
    }

    #[test]
    fn pipeline_summary_lists_stages_in_order_with_history() {
        let v = json!({
            "name": "ocr", "policy": "min-resources", "slo_ms": 2000.0,
            "stages": ["det", "cls", "rec"],
            "measured_load_rps": 3.9,
            "autoscale": {"enabled": true, "min_load_rps": 2.0},
            "history": [{"generation": 1, "policy": "min-resources", "planned_load_rps": 2.0,
                          "capacity_rps": 2.04, "reason": "created", "at_ms": 1_000}],
            "status": {"generation": 1, "uptime_s": 42.0, "completed": 10, "failed": 0,
                "latency": {"count": 10, "p50_ms": 850.0, "p99_ms": 1040.0, "mean_ms": 900.0},
                "stages": [
                    {"name": "det", "instances": 1, "queued": 0, "mean_batch": 1.0,
                     "latency": {"p50_ms": 120.0, "p99_ms": 300.0}},
                    {"name": "cls", "instances": 1, "queued": 2, "mean_batch": 2.0,
                     "latency": {"p50_ms": 5.5, "p99_ms": 9.0}},
                    {"name": "rec", "instances": 1, "queued": 0, "mean_batch": 1.0,
                     "latency": {"p50_ms": 600.0, "p99_ms": 700.0}}],
                "plan": {"gpus": 1, "predicted": {"capacity_rps": 2.04},
                    "instances": [{"stage": 0, "gpu": 0, "sm_share": 34, "batch": 1},
                                  {"stage": 2, "gpu": 0, "sm_share": 50, "batch": 1}]}}
        });
        let s = pipeline_summary(&v, 61_000);
        let det = s.find("det").expect("det");
        let cls = s.find("cls").expect("cls");
        let rec = s.find("rec ").expect("rec");
        assert!(det < cls && cls < rec, "pipeline order: {s}");
        assert!(s.contains("gpu0 34% b1"), "{s}");
        assert!(s.contains("load 3.90 req/s"), "{s}");
        assert!(s.contains("autoscale: on, never below 2.00 req/s"), "{s}");
        assert!(
            s.contains("gen 1   1 min 0 s ago: min-resources for 2.00 req/s"),
            "{s}"
        );
        assert!(s.contains("p99 1040 ms"), "{s}");
    }

    #[test]
    fn status_summary_counts() {
        let v = json!({"devices": "simulated", "gpus": [{"index": 0, "name": "sim", "uuid": "GPU-x",
            "memory_bytes": 25769803776u64}], "note": "no GPU found", "isolation": "bubblewrap",
            "limits_not_enforced": ["memory", "cpu"], "policy": "mqfq-sticky", "functions": 3, "queued": 0,
            "sandboxes": {"starting": 0, "idle": 2, "busy": 1}, "draining": false, "uptime_s": 75.0,
            "async": {"queued": 1, "running": 0, "succeeded": 5, "failed": 2}});
        let s = status_summary(&v);
        assert!(
            s.starts_with("worker up 1 min 15 s; 1 GPU(s) (simulated)"),
            "{s}"
        );
        assert!(s.contains("gpu 0: sim (24.0 GiB)"), "{s}");
        assert!(s.contains("1 busy, 2 idle, 0 starting"), "{s}");
        assert!(s.contains("5 succeeded, 2 failed"), "{s}");
        assert!(s.contains("limits not enforced: memory, cpu"), "{s}");
    }
}

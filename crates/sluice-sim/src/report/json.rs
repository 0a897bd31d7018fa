//! The machine-readable summary: `{"policies": [Summary, ...]}` as a `serde_json::Value`.
//!
//! Each element is a [`Summary`] serialised field for field (durations in ms, nested
//! `latency_ms` / `queue_ms` objects with `mean`, `p50`, `p99`, `p999`), so it deserialises back
//! into a `Summary`. Non-finite floats become `null`, as serde_json does.

use super::Summary;
use serde_json::{json, Value};

/// The summaries of several policies under a `"policies"` key, in the given order.
pub fn to_json(rows: &[Summary]) -> Value {
    let policies: Vec<Value> = rows
        .iter()
        .map(|s| {
            // Serialising a struct of numbers and strings into a Value cannot fail; if it ever
            // did, keep the policy name and the reason rather than dropping the row.
            serde_json::to_value(s)
                .unwrap_or_else(|e| json!({ "policy": s.policy.as_str(), "error": e.to_string() }))
        })
        .collect();
    json!({ "policies": policies })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::testdata::hand_made_run;
    use crate::report::{summarize, Summary};

    #[test]
    fn shape_keys_and_types() {
        let rows = [
            summarize(&hand_made_run("fcfs")),
            summarize(&hand_made_run("sjf")),
        ];
        let v = to_json(&rows);
        let policies = v["policies"].as_array().expect("policies is an array");
        assert_eq!(policies.len(), 2);
        let p = &policies[0];
        assert_eq!(p["policy"], "fcfs");
        for key in [
            "invocations",
            "completed",
            "cold_starts",
            "bytes_to_device",
            "bytes_to_host",
        ] {
            assert!(p[key].is_u64(), "{key} should be an integer");
        }
        for key in [
            "jain_fairness",
            "max_function_slowdown",
            "mean_function_slowdown",
            "gpu_util",
            "throughput_per_s",
            "offered_util",
        ] {
            assert!(p[key].is_f64(), "{key} should be a float");
        }
        for group in ["latency_ms", "queue_ms"] {
            for q in ["mean", "p50", "p99", "p999"] {
                assert!(p[group][q].is_f64(), "{group}.{q} should be a float");
            }
        }
        assert_eq!(p["latency_ms"]["mean"], 36.0);
        assert_eq!(p["invocations"], 6);
        let back: Summary = serde_json::from_value(p.clone()).expect("round trip");
        assert_eq!(back, rows[0]);
    }

    #[test]
    fn empty_is_an_empty_list() {
        assert_eq!(to_json(&[]), json!({ "policies": [] }));
    }
}

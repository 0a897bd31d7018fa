//! `sluice load --closed N`: N clients invoke warm functions back to back for a fixed time. It
//! measures the worker's warm throughput and its control-plane overhead: client-observed latency
//! minus the function's own time (`x-sluice-exec-ms`, request sent to response read on the
//! function's socket), and the worker-internal part (`x-sluice-total-ms` minus the same).

use super::client::{Api, Endpoint};
use anyhow::{bail, Result};
use bytes::Bytes;
use hyper::Method;
use sluice_core::stats::quantile_sorted;
use std::time::{Duration, Instant};

#[derive(Default)]
struct Samples {
    latency: Vec<f64>,
    overhead: Vec<f64>,
    internal: Vec<f64>,
    errors: u64,
}

fn header(h: &hyper::HeaderMap, name: &str) -> Option<f64> {
    h.get(name)?.to_str().ok()?.parse().ok()
}

async fn client(api: Api, path: String, body: Bytes, until: Instant) -> Samples {
    let mut s = Samples::default();
    while Instant::now() < until {
        let t = Instant::now();
        match api.call(Method::POST, &path, Some(body.clone())).await {
            Ok(a) if a.status.is_success() => {
                let ms = t.elapsed().as_secs_f64() * 1e3;
                let exec = header(&a.headers, "x-sluice-exec-ms").unwrap_or(0.0);
                let total = header(&a.headers, "x-sluice-total-ms").unwrap_or(ms);
                s.latency.push(ms);
                s.overhead.push(ms - exec);
                s.internal.push(total - exec);
            }
            _ => s.errors += 1,
        }
    }
    s
}

fn q(v: &[f64], p: f64) -> f64 {
    quantile_sorted(v, p).unwrap_or(0.0)
}

pub async fn run(
    ep: &Endpoint,
    functions: &[String],
    input: &str,
    clients: usize,
    seconds: f64,
    json: bool,
) -> Result<()> {
    if clients == 0 || !(seconds.is_finite() && seconds > 0.0 && seconds <= 3600.0) {
        bail!("--closed needs at least 1 client and --duration in (0, 3600]");
    }
    let api = Api::new(ep);
    let body = Bytes::from(input.to_string());
    // One warm-up call per function so every measured call is warm.
    for f in functions {
        let path = format!("/v1/functions/{f}/invoke");
        api.call(Method::POST, &path, Some(body.clone()))
            .await?
            .ok()?;
    }
    let start = Instant::now();
    let until = start + Duration::from_secs_f64(seconds);
    let tasks: Vec<_> = (0..clients)
        .map(|i| {
            let path = format!("/v1/functions/{}/invoke", functions[i % functions.len()]);
            tokio::spawn(client(api.clone(), path, body.clone(), until))
        })
        .collect();
    let mut all = Samples::default();
    for t in tasks {
        let s = t.await?;
        all.latency.extend(s.latency);
        all.overhead.extend(s.overhead);
        all.internal.extend(s.internal);
        all.errors += s.errors;
    }
    let elapsed = start.elapsed().as_secs_f64();
    for v in [&mut all.latency, &mut all.overhead, &mut all.internal] {
        v.sort_by(f64::total_cmp);
    }
    let n = all.latency.len();
    let v = serde_json::json!({
        "clients": clients,
        "completed": n,
        "errors": all.errors,
        "throughput_per_s": n as f64 / elapsed,
        "latency_ms": {"p50": q(&all.latency, 0.5), "p99": q(&all.latency, 0.99)},
        "overhead_ms": {"p50": q(&all.overhead, 0.5), "p99": q(&all.overhead, 0.99)},
        "worker_internal_ms": {"p50": q(&all.internal, 0.5), "p99": q(&all.internal, 0.99)},
    });
    if json {
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!(
            "{clients} client(s), {elapsed:.1} s: {n} ok, {} errors, {:.0}/s",
            all.errors,
            n as f64 / elapsed
        );
        println!(
            "latency ms p50 {:.3} p99 {:.3} | overhead over the function's own time p50 {:.3} p99 {:.3} | inside the worker p50 {:.3} p99 {:.3}",
            q(&all.latency, 0.5),
            q(&all.latency, 0.99),
            q(&all.overhead, 0.5),
            q(&all.overhead, 0.99),
            q(&all.internal, 0.5),
            q(&all.internal, 0.99)
        );
    }
    Ok(())
}

//! `sluice load --pipeline NAME --rates R1,R2,…`: open-loop Poisson load on a deployed pipeline
//! at each rate in turn, with inputs cycled from files. Every request's end-to-end latency and
//! per-stage time (from the worker's `x-sluice-stages` header: queue, total, batch) is kept;
//! the report gives, per rate, the throughput, errors, and p50/p99 end to end and per stage.

use super::client::{Api, Endpoint};
use anyhow::{bail, Context, Result};
use bytes::Bytes;
use hyper::Method;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use sluice_core::stats::quantile_sorted;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What to run.
pub struct PipelineLoad {
    pub pipeline: String,
    pub rates: Vec<f64>,
    pub duration_s: f64,
    pub inputs: Vec<PathBuf>,
    pub seed: u64,
    pub json: bool,
}

#[derive(Default)]
struct Samples {
    e2e: Vec<f64>,
    stages: BTreeMap<String, Vec<f64>>,
    batches: BTreeMap<String, Vec<f64>>,
    errors: usize,
    first_error: Option<String>,
}

/// p50/p99 of one quantity, ms.
#[derive(Serialize, Debug, Clone)]
pub struct Tail {
    pub p50_ms: f64,
    pub p99_ms: f64,
}

fn tail(mut v: Vec<f64>) -> Tail {
    v.sort_by(f64::total_cmp);
    Tail {
        p50_ms: quantile_sorted(&v, 0.5).unwrap_or(0.0),
        p99_ms: quantile_sorted(&v, 0.99).unwrap_or(0.0),
    }
}

/// One rate's results.
#[derive(Serialize, Debug)]
pub struct RateReport {
    pub rate_rps: f64,
    pub sent: usize,
    pub ok: usize,
    pub errors: usize,
    pub throughput_rps: f64,
    pub e2e: Tail,
    pub stages: BTreeMap<String, Tail>,
    pub mean_batch: BTreeMap<String, f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_error: Option<String>,
}

/// `det=0.4/12.1/4,…` → (stage, total ms, batch).
fn parse_stages(h: &str) -> Vec<(String, f64, f64)> {
    h.split(',')
        .filter_map(|part| {
            let (name, rest) = part.split_once('=')?;
            let mut it = rest.split('/');
            let _queue: f64 = it.next()?.parse().ok()?;
            let total: f64 = it.next()?.parse().ok()?;
            let batch: f64 = it.next()?.parse().ok()?;
            Some((name.to_string(), total, batch))
        })
        .collect()
}

async fn one_rate(api: &Api, load: &PipelineLoad, inputs: &[Bytes], rate: f64) -> RateReport {
    let samples = Arc::new(Mutex::new(Samples::default()));
    let mut rng = ChaCha8Rng::seed_from_u64(load.seed ^ rate.to_bits());
    let path = format!("/v1/pipelines/{}/invoke", load.pipeline);
    let start = tokio::time::Instant::now();
    let end = start + Duration::from_secs_f64(load.duration_s);
    let mut at = start;
    let mut tasks = Vec::new();
    let mut k = 0usize;
    loop {
        let gap: f64 = -(1.0 - rng.random::<f64>()).ln() / rate;
        at += Duration::from_secs_f64(gap);
        if at >= end {
            break;
        }
        tokio::time::sleep_until(at).await;
        let (api, path, body, samples) = (
            api.clone(),
            path.clone(),
            inputs[k % inputs.len()].clone(),
            samples.clone(),
        );
        k += 1;
        tasks.push(tokio::spawn(async move {
            let t = Instant::now();
            let r = api.call(Method::POST, &path, Some(body)).await;
            let ms = t.elapsed().as_secs_f64() * 1e3;
            let mut s = samples.lock().unwrap_or_else(|p| p.into_inner());
            match r.and_then(|a| a.ok()) {
                Ok(a) => {
                    s.e2e.push(ms);
                    let h = a
                        .headers
                        .get("x-sluice-stages")
                        .and_then(|v| v.to_str().ok());
                    for (stage, total, batch) in parse_stages(h.unwrap_or("")) {
                        s.stages.entry(stage.clone()).or_default().push(total);
                        s.batches.entry(stage).or_default().push(batch);
                    }
                }
                Err(e) => {
                    s.errors += 1;
                    s.first_error.get_or_insert(e.to_string());
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let s = std::mem::take(&mut *samples.lock().unwrap_or_else(|p| p.into_inner()));
    RateReport {
        rate_rps: rate,
        sent: k,
        ok: s.e2e.len(),
        errors: s.errors,
        throughput_rps: s.e2e.len() as f64 / elapsed.max(1e-9),
        e2e: tail(s.e2e),
        mean_batch: s
            .batches
            .iter()
            .map(|(k, v)| (k.clone(), v.iter().sum::<f64>() / v.len().max(1) as f64))
            .collect(),
        stages: s.stages.into_iter().map(|(k, v)| (k, tail(v))).collect(),
        first_error: s.first_error,
    }
}

fn render(reports: &[RateReport]) -> String {
    let mut out = String::new();
    for r in reports {
        out.push_str(&format!(
            "rate {:.2} req/s: sent {}, ok {}, errors {}, throughput {:.2} req/s, end to end p50 {:.1} ms p99 {:.1} ms\n",
            r.rate_rps, r.sent, r.ok, r.errors, r.throughput_rps, r.e2e.p50_ms, r.e2e.p99_ms
        ));
        for (stage, t) in &r.stages {
            out.push_str(&format!(
                "  {stage:<12} p50 {:9.1} ms  p99 {:9.1} ms  mean batch {:.2}\n",
                t.p50_ms,
                t.p99_ms,
                r.mean_batch.get(stage).copied().unwrap_or(0.0)
            ));
        }
        if let Some(e) = &r.first_error {
            out.push_str(&format!("  first error: {e}\n"));
        }
    }
    out
}

pub async fn run(ep: &Endpoint, load: PipelineLoad) -> Result<()> {
    if load.rates.is_empty() || load.rates.iter().any(|r| !(r.is_finite() && *r > 0.0)) {
        bail!("--rates must be positive numbers, got {:?}", load.rates);
    }
    if !(load.duration_s.is_finite() && load.duration_s > 0.0) {
        bail!("--duration must be positive, got {}", load.duration_s);
    }
    if load.inputs.is_empty() {
        bail!("--inputs: give at least one input file");
    }
    let inputs = load
        .inputs
        .iter()
        .map(|p| {
            std::fs::read(p)
                .map(Bytes::from)
                .with_context(|| format!("cannot read input {}", p.display()))
        })
        .collect::<Result<Vec<_>>>()?;
    let api = Api::new(ep);
    api.call(
        Method::GET,
        &format!("/v1/pipelines/{}", load.pipeline),
        None,
    )
    .await?
    .ok()
    .with_context(|| format!("pipeline {:?} is not deployed", load.pipeline))?;
    let mut reports = Vec::new();
    for &rate in &load.rates {
        reports.push(one_rate(&api, &load, &inputs, rate).await);
    }
    if load.json {
        println!("{}", serde_json::to_string_pretty(&reports)?);
    } else {
        print!("{}", render(&reports));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stage_header_parses_and_skips_garbage() {
        let v = parse_stages("det=0.5/12.25/4,cls=x/1/1,rec=1.0/3.5/2");
        assert_eq!(
            v,
            vec![("det".into(), 12.25, 4.0), ("rec".into(), 3.5, 2.0)]
        );
        assert!(parse_stages("").is_empty());
    }
}

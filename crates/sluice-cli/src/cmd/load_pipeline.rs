//! `sluice load --pipeline NAME --rates R1,R2,…`: open-loop load on a deployed pipeline at each
//! rate in turn, with inputs cycled from files. A run at rate R for D seconds sends exactly
//! round(R·D) requests, at the instants of a Poisson process conditioned on that count (sorted
//! uniform instants over the run), so it keeps Poisson burstiness and still sends what it
//! promises. A request is sent at its instant even when earlier ones have not answered (open
//! loop). Every request's end-to-end latency and per-stage time (from the worker's
//! `x-sluice-stages` header: queue, total, batch) is kept; the report gives, per rate, the
//! throughput, errors, p50/p99 end to end (flagged when the p99 is above the pipeline's target)
//! and per stage, stages in pipeline order.

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

/// One stage's figures at one rate.
#[derive(Serialize, Debug)]
pub struct StageReport {
    pub stage: String,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub mean_batch: f64,
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
    /// The pipeline's p99 target, ms.
    pub slo_ms: f64,
    /// Whether the end-to-end p99 is within the target (and nothing failed).
    pub meets_target: bool,
    /// Per stage, in the pipeline's order.
    pub stages: Vec<StageReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_error: Option<String>,
}

/// What the load needs to know of the deployed pipeline.
struct Target {
    slo_ms: f64,
    stages: Vec<String>,
}

/// The send instants, seconds from the start, of a run at `rate` for `duration_s`: exactly
/// round(rate·duration) of them, sorted, uniform over the run (a Poisson process conditioned on
/// its count), from `seed`.
pub fn arrivals(rate: f64, duration_s: f64, seed: u64) -> Vec<f64> {
    let n = (rate * duration_s).round() as usize;
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ rate.to_bits());
    let mut at: Vec<f64> = (0..n).map(|_| rng.random::<f64>() * duration_s).collect();
    at.sort_by(f64::total_cmp);
    at
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

async fn one_rate(
    api: &Api,
    load: &PipelineLoad,
    target: &Target,
    inputs: &[Bytes],
    rate: f64,
) -> RateReport {
    let samples = Arc::new(Mutex::new(Samples::default()));
    let path = format!("/v1/pipelines/{}/invoke", load.pipeline);
    let start = tokio::time::Instant::now();
    let instants = arrivals(rate, load.duration_s, load.seed);
    let mut tasks = Vec::with_capacity(instants.len());
    for (k, offset) in instants.iter().enumerate() {
        tokio::time::sleep_until(start + Duration::from_secs_f64(*offset)).await;
        let (api, path, body, samples) = (
            api.clone(),
            path.clone(),
            inputs[k % inputs.len()].clone(),
            samples.clone(),
        );
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
    let sent = tasks.len();
    for t in tasks {
        let _ = t.await;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let mut s = std::mem::take(&mut *samples.lock().unwrap_or_else(|p| p.into_inner()));
    let stages = target
        .stages
        .iter()
        .filter_map(|name| {
            let t = tail(s.stages.remove(name)?);
            let b = s.batches.remove(name).unwrap_or_default();
            Some(StageReport {
                stage: name.clone(),
                p50_ms: t.p50_ms,
                p99_ms: t.p99_ms,
                mean_batch: b.iter().sum::<f64>() / b.len().max(1) as f64,
            })
        })
        .collect();
    let e2e = tail(s.e2e.clone());
    RateReport {
        rate_rps: rate,
        sent,
        ok: s.e2e.len(),
        errors: s.errors,
        throughput_rps: s.e2e.len() as f64 / elapsed.max(1e-9),
        meets_target: s.errors == 0 && e2e.p99_ms <= target.slo_ms,
        slo_ms: target.slo_ms,
        e2e,
        stages,
        first_error: s.first_error,
    }
}

fn render(reports: &[RateReport]) -> String {
    let mut out = String::new();
    for r in reports {
        let flag = if r.e2e.p99_ms > r.slo_ms {
            format!("  ABOVE the {:.0} ms target", r.slo_ms)
        } else {
            format!("  (target {:.0} ms)", r.slo_ms)
        };
        out.push_str(&format!(
            "rate {:.2} req/s: sent {}, ok {}, errors {}, throughput {:.2} req/s, end to end p50 {:.1} ms p99 {:.1} ms{flag}\n",
            r.rate_rps, r.sent, r.ok, r.errors, r.throughput_rps, r.e2e.p50_ms, r.e2e.p99_ms
        ));
        for st in &r.stages {
            out.push_str(&format!(
                "  {:<12} p50 {:9.1} ms  p99 {:9.1} ms  mean batch {:.2}\n",
                st.stage, st.p50_ms, st.p99_ms, st.mean_batch
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
    let view = api
        .call(
            Method::GET,
            &format!("/v1/pipelines/{}", load.pipeline),
            None,
        )
        .await?
        .ok()
        .with_context(|| format!("pipeline {:?} is not deployed", load.pipeline))?;
    let view: serde_json::Value = serde_json::from_slice(&view.body)
        .with_context(|| format!("unexpected answer: {}", view.text()))?;
    let target = Target {
        slo_ms: view["slo_ms"].as_f64().unwrap_or(f64::INFINITY),
        stages: view["stages"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s.as_str().map(str::to_string))
            .collect(),
    };
    let mut reports = Vec::new();
    for &rate in &load.rates {
        reports.push(one_rate(&api, &load, &target, &inputs, rate).await);
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

    #[test]
    fn a_run_sends_what_it_promises() {
        for (rate, secs) in [(1.0, 30.0), (4.0, 7.5), (0.5, 3.0), (250.0, 2.0)] {
            let at = arrivals(rate, secs, 7);
            assert_eq!(
                at.len(),
                (rate * secs).round() as usize,
                "{rate} req/s for {secs} s"
            );
            assert!(at.windows(2).all(|w| w[0] <= w[1]), "sorted");
            assert!(at.iter().all(|t| (0.0..secs).contains(t)), "within the run");
            assert_eq!(at, arrivals(rate, secs, 7), "seeded");
        }
        // Spread over the whole run, not bunched at the start: each third gets its share.
        let at = arrivals(10.0, 30.0, 1);
        for third in 0..3 {
            let lo = f64::from(third) * 10.0;
            let n = at.iter().filter(|t| (lo..lo + 10.0).contains(*t)).count();
            assert!((70..=130).contains(&n), "third {third}: {n} of 300");
        }
    }
}

//! Rescaling a workload's time axis so that it offers a chosen GPU utilisation.
//!
//! Traces come from CPU clusters, so their offered GPU load is arbitrary; experiments instead fix the offered
//! utilisation (e.g. 0.8 of `gpus` devices) and stretch or compress arrival times to get it. Service times are
//! left alone, so the mix and the burst shape stay those of the trace.

use super::error::TraceError;
use crate::workload::Workload;
use sluice_core::Time;

/// Multiplies every arrival time by `offered_util(gpus) / target` so that the offered GPU utilisation on `gpus`
/// devices becomes `target`; returns that factor. Fails when `target` is not in (0, 10], `gpus` is zero, an
/// arrival names an unknown function, or the workload offers no work over a positive span.
pub fn scale_to_util(w: &mut Workload, target: f64, gpus: usize) -> Result<f64, TraceError> {
    let bad = |msg: String| Err(TraceError::Scale(msg));
    if !(target.is_finite() && target > 0.0 && target <= 10.0) {
        return bad(format!("target utilisation {target} is not in (0, 10]"));
    }
    if gpus == 0 {
        return bad("the number of GPUs must be at least 1".into());
    }
    if w.arrivals.is_empty() {
        return bad(format!("workload `{}` has no arrivals", w.name));
    }
    if let Some(a) = w
        .arrivals
        .iter()
        .find(|a| a.func.index() >= w.functions.len())
    {
        return bad(format!(
            "an arrival names {} but workload `{}` has {} functions",
            a.func,
            w.name,
            w.functions.len()
        ));
    }
    let offered = w.offered_util(gpus);
    if !(offered.is_finite() && offered > 0.0) {
        return bad(format!(
            "workload `{}` offers no GPU work over a positive span (all arrivals at time zero, or zero service times)",
            w.name
        ));
    }
    let factor = offered / target;
    for a in &mut w.arrivals {
        // `as` saturates (and maps NaN to 0), so huge factors clamp at the end of time.
        a.at = Time::from_micros((a.at.as_micros() as f64 * factor).round() as u64);
    }
    // Rounding to whole microseconds may tie arrivals that were apart; restore the (time, function) order.
    w.arrivals.sort_by_key(|a| (a.at, a.func));
    Ok(factor)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::{load, LoadOptions, TraceSpec};

    const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../data");

    fn workload(spec: &str) -> Workload {
        let spec: TraceSpec = spec.parse().expect("spec");
        load(&spec, &LoadOptions::default())
            .expect("loads")
            .workload
    }

    #[test]
    fn scaling_sets_the_offered_utilisation() {
        let specs = [
            format!("azure2019:{DATA}/azure2019-sample/10"),
            format!("iluvatar:{DATA}/iluvatar-paper-trace"),
            "poisson:squeezenet=3,cupy=1;duration=120".to_string(),
        ];
        for spec in specs {
            let mut w = workload(&spec);
            for (target, gpus) in [(0.8, 1), (0.5, 4), (2.0, 2), (0.8, 1)] {
                let before = w.offered_util(gpus);
                let factor = scale_to_util(&mut w, target, gpus).expect("scales");
                assert!((factor - before / target).abs() <= 1e-12 * factor);
                let after = w.offered_util(gpus);
                let rel = ((after - target) / target).abs();
                assert!(rel < 1e-6, "{spec}: {after} vs {target}");
                assert!(w.arrivals.windows(2).all(|p| p[0].at <= p[1].at));
            }
        }
    }

    #[test]
    fn scaling_refuses_what_it_cannot_do() {
        let mut w = workload("poisson:rnn=1;duration=10");
        for bad in [0.0, -1.0, 10.5, f64::NAN, f64::INFINITY] {
            let err = scale_to_util(&mut w, bad, 1).expect_err("bad target");
            assert!(err.to_string().contains("not in (0, 10]"), "{err}");
        }
        assert!(scale_to_util(&mut w, 1.0, 0).is_err());
        let mut stray = w.clone();
        stray.arrivals[0].func = sluice_core::FunctionId(7);
        assert!(scale_to_util(&mut stray, 1.0, 1).is_err());
        let mut at_zero = w.clone();
        at_zero.arrivals.iter_mut().for_each(|a| a.at = Time::ZERO);
        let err = scale_to_util(&mut at_zero, 1.0, 1).expect_err("no span");
        assert!(err.to_string().contains("offers no GPU work"), "{err}");
        w.arrivals.clear();
        let err = scale_to_util(&mut w, 1.0, 1).expect_err("empty");
        assert!(err.to_string().contains("has no arrivals"), "{err}");
    }
}

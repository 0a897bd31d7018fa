//! The evaluation as markdown: a summary against Camelot's claims, then per app the peak-load
//! table, the gain over the best baseline and the low-load resources table.

use super::{AppResult, Check, Evaluation, TARGET_PEAK_GAIN_PCT, TARGET_SAVING_PCT};
use std::fmt::Write;

/// The whole evaluation as a markdown document (headings from level 2 down).
pub fn render_markdown(ev: &Evaluation) -> String {
    let mut out = String::new();
    let c = &ev.config;
    let _ = writeln!(
        out,
        "Simulated: every number below comes from the pipeline simulator driving the planner's \
         own performance model; none is a measurement on a GPU.\n\n\
         Settings: GPU counts {:?}; peak search {} measured requests per probe (warm-up {:.0}%), \
         seed {}, service-time CV {}, bisection to {:.0}%; low load {:.0}% of the best baseline's \
         simulated peak on the smallest GPU count; checks {} requests at {:.0}% of each simulated \
         peak.\n",
        c.gpu_counts,
        c.peak.requests,
        c.peak.warmup_frac * 100.0,
        c.peak.seed,
        c.peak.noise_cv,
        c.peak.tolerance * 100.0,
        c.low_load_frac * 100.0,
        c.check_requests,
        super::CHECK_FRACTION * 100.0,
    );
    summary(&mut out, ev);
    for app in &ev.apps {
        app_section(&mut out, app);
    }
    out
}

fn summary(out: &mut String, ev: &Evaluation) {
    let _ = writeln!(out, "## Summary against Camelot's claims\n");
    let _ = writeln!(
        out,
        "| app | GPUs | max-load peak rps | best baseline | its peak rps | gain | ≥ +{TARGET_PEAK_GAIN_PCT}%? |"
    );
    let _ = writeln!(out, "|---|---:|---:|---|---:|---:|---|");
    for app in &ev.apps {
        for g in &app.gains {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} |",
                app.app,
                g.gpus,
                rps(g.camelot_rps),
                g.best_baseline,
                rps(g.best_baseline_rps),
                pct(g.gain_pct),
                verdict(g.gain_pct.map(|x| x >= TARGET_PEAK_GAIN_PCT)),
            );
        }
    }
    let _ = writeln!(
        out,
        "\n| app | low load rps | min-resources GPUs | best baseline | its GPUs | saving | ≥ {TARGET_SAVING_PCT}%? |"
    );
    let _ = writeln!(out, "|---|---:|---:|---|---:|---:|---|");
    for app in &ev.apps {
        let Some(l) = &app.low_load else {
            let _ = writeln!(
                out,
                "| {} | – | – | – | – | – | no low load (no baseline peak) |",
                app.app
            );
            continue;
        };
        let gpus_of = |p: &str| {
            l.rows
                .iter()
                .find(|r| r.policy == p)
                .map_or("–".to_string(), |r| format!("{:.2}", r.gpus_used))
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} |",
            app.app,
            rps(l.load_rps),
            gpus_of("min-resources"),
            l.best_baseline.as_deref().unwrap_or("none met the target"),
            l.best_baseline.as_deref().map_or("–".to_string(), gpus_of),
            pct(l.saving_pct),
            verdict(l.saving_pct.map(|x| x >= TARGET_SAVING_PCT)),
        );
    }
    let _ = writeln!(
        out,
        "\nMean |predicted − simulated| / simulated p99 over all checks: {}.\n",
        ev.mean_abs_prediction_error_pct
            .map_or("–".into(), |x| format!("{x:.1}%"))
    );
}

fn app_section(out: &mut String, app: &AppResult) {
    let _ = writeln!(
        out,
        "## {}\n\n{} stages, p99 target {:.1} ms; {}.\n",
        app.app, app.stages, app.slo_ms, app.source
    );
    let _ = writeln!(
        out,
        "### Peak load at the p99 target (plans for maximum load)\n"
    );
    let _ = writeln!(
        out,
        "| GPUs | policy | instances | GPUs used | predicted capacity rps | simulated peak rps | \
         check load rps | p99 predicted ms | p99 simulated ms | note |"
    );
    let _ = writeln!(out, "|---:|---|---:|---:|---:|---:|---:|---:|---:|---|");
    for r in &app.max_load {
        let (load, pred, sim) = check_cells(r.check.as_ref());
        let _ = writeln!(
            out,
            "| {} | {}{} | {} | {:.2} | {} | {} | {load} | {pred} | {sim} | {} |",
            r.gpus,
            r.policy,
            if r.baseline { "" } else { " (Camelot)" },
            r.instances,
            r.gpus_used,
            rps(r.predicted_capacity_rps),
            rps(r.simulated_peak_rps),
            r.error.as_deref().unwrap_or(""),
        );
    }
    if let Some(l) = &app.low_load {
        let _ = writeln!(
            out,
            "\n### Resources at low load: {} rps ({}; up to {} GPUs)\n",
            rps(l.load_rps),
            l.basis,
            l.gpus_available
        );
        let _ = writeln!(
            out,
            "| policy | instances | GPUs used | p99 predicted ms | p99 simulated ms | meets target | note |"
        );
        let _ = writeln!(out, "|---|---:|---:|---:|---:|---|---|");
        for r in &l.rows {
            let (_, pred, sim) = check_cells(r.check.as_ref());
            let _ = writeln!(
                out,
                "| {}{} | {} | {:.2} | {pred} | {sim} | {} | {} |",
                r.policy,
                if r.baseline { "" } else { " (Camelot)" },
                r.instances,
                r.gpus_used,
                verdict(r.check.as_ref().map(|c| c.meets_slo)),
                r.error.as_deref().unwrap_or(""),
            );
        }
    }
    out.push('\n');
}

fn check_cells(c: Option<&Check>) -> (String, String, String) {
    c.map_or(("–".into(), "–".into(), "–".into()), |c| {
        (
            rps(c.load_rps),
            ms(c.predicted_p99_ms),
            ms(c.simulated_p99_ms),
        )
    })
}

/// Requests/s: one decimal, or three significant digits below 10.
pub(super) fn rps(x: f64) -> String {
    if x == 0.0 || x >= 10.0 {
        format!("{x:.1}")
    } else {
        let decimals = (2 - x.log10().floor() as i32).clamp(1, 6) as usize;
        format!("{x:.decimals$}")
    }
}

fn ms(x: f64) -> String {
    if x.is_finite() {
        format!("{x:.2}")
    } else {
        "∞".into()
    }
}

fn pct(x: Option<f64>) -> String {
    x.map_or("–".into(), |x| format!("{x:+.1}%"))
}

fn verdict(x: Option<bool>) -> &'static str {
    match x {
        Some(true) => "yes",
        Some(false) => "**no**",
        None => "–",
    }
}

#[cfg(test)]
mod tests {
    use super::rps;

    #[test]
    fn rates_keep_three_significant_digits_when_small() {
        assert_eq!(rps(0.0), "0.0");
        assert_eq!(rps(0.025886), "0.0259");
        assert_eq!(rps(0.2), "0.200");
        assert_eq!(rps(2.71), "2.71");
        assert_eq!(rps(9.876), "9.88");
        assert_eq!(rps(245.68), "245.7");
    }
}

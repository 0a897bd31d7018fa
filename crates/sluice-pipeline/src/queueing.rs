//! The queueing formulas behind the analytic p99 (`docs/pipelines.md`, "Performance model"):
//! the mean batch a batching server forms at a load, the exponential decay rate of a queue's
//! waiting-time tail (M/D/c, with the service jitter of the lognormal noise), the Erlang-C
//! probability of waiting, and [`Latency`], a three-number summary of a latency distribution
//! (mean and the excesses of its p99 and p99.9 over the mean) that adds along a path and takes
//! the maximum of parallel branches in closed form. Pure functions, no allocation: the planners
//! evaluate them for thousands of candidate plans.

/// Coefficient of variation assumed for batch service times (run-to-run jitter of a GPU kernel;
/// the simulator's default lognormal noise).
pub const SERVICE_CV: f64 = 0.05;
/// Standard normal quantile at 0.99.
pub const Z99: f64 = 2.326_347_874_040_841;
/// Standard normal quantile at 0.999.
pub const Z999: f64 = 3.090_232_306_167_813;
/// The two tail levels a [`Latency`] keeps.
pub const LEVELS: [f64; 2] = [0.01, 0.001];

/// Root `u > 0` of `u = ρ·(E[e^{u·X}] − 1)` for service `X` of mean 1 and coefficient of variation
/// `cv` (normal approximation of the moment generating function: `e^{u + u²cv²/2}`). The waiting
/// time of an M/G/1 queue with mean service `T` then decays as `e^{−u·x/T}`, and an M/G/c queue
/// with `c` such servers as `e^{−c·u·x/T}` (work is cleared `c` times as fast). Infinite for
/// `ρ ≤ 0`, 0 for `ρ ≥ 1`.
pub fn decay_root(rho: f64, cv: f64) -> f64 {
    if rho <= 0.0 {
        return f64::INFINITY;
    }
    if rho >= 1.0 {
        return 0.0;
    }
    let h = 0.5 * cv * cv;
    let l = -rho.ln();
    // Both starts lie at or above the root, where Newton on this convex function descends
    // monotonically onto it.
    let mut u = (2.0 * (1.0 - rho) / (rho * (1.0 + cv * cv))).min(l + (1.0 + 2.0 * l).ln());
    for _ in 0..40 {
        let e = (u + h * u * u).exp();
        let f = rho * (e - 1.0) - u;
        let df = rho * e * (1.0 + 2.0 * h * u) - 1.0;
        if df <= 0.0 {
            break;
        }
        let step = f / df;
        u -= step;
        if step.abs() <= 1e-9 * u.max(1e-12) {
            break;
        }
    }
    u.max(0.0)
}

/// Erlang-C probability that an arrival waits in an M/M/c queue at utilisation `rho` (for `c = 1`
/// exactly `rho`).
pub fn erlang_c(c: u32, rho: f64) -> f64 {
    if rho >= 1.0 {
        return 1.0;
    }
    if rho <= 0.0 {
        return 0.0;
    }
    let a = rho * c as f64;
    let mut b = 1.0;
    for k in 1..=c {
        b = a * b / (k as f64 + a * b);
    }
    b / (1.0 - rho * (1.0 - b))
}

/// `E[min(cap, 1 + N)]` for `N` Poisson with mean `m`: the size of a batch opened by one item
/// that collects whatever arrives within the next `m / λ` ms.
pub fn capped_poisson_batch(m: f64, cap: u32) -> f64 {
    if cap <= 1 || m <= 0.0 {
        return 1.0;
    }
    // Σ_{k ≥ 0} P(N ≥ k) over k = 1..cap−1 gives E[min(N, cap − 1)].
    let mut pk = (-m).exp();
    let mut below = pk;
    let mut sum = 0.0;
    for k in 1..cap {
        let above = 1.0 - below;
        if above <= 1e-12 {
            break;
        }
        sum += above;
        pk *= m / k as f64;
        below += pk;
    }
    1.0 + sum
}

/// p99 of the time `n` Poisson arrivals at `lambda` per ms take (a Gamma(n) quantile by the
/// Wilson–Hilferty approximation), ms.
pub fn gamma_p99_ms(n: f64, lambda: f64) -> f64 {
    if n <= 0.0 {
        return 0.0;
    }
    if lambda <= 0.0 {
        return f64::INFINITY;
    }
    let a = 1.0 / (9.0 * n);
    n / lambda * (1.0 - a + Z99 * a.sqrt()).powi(3)
}

/// A waiting time: 0 with probability `1 − p`, otherwise exponential with rate `theta` per ms.
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct Wait {
    /// Probability of waiting at all, 0..1.
    pub p: f64,
    /// Decay rate of the wait's tail, per ms (> 0).
    pub theta: f64,
}

impl Wait {
    /// No wait.
    pub const NONE: Wait = Wait { p: 0.0, theta: 1.0 };

    /// Mean wait, ms: `p / theta`.
    pub fn mean(&self) -> f64 {
        if self.p > 0.0 {
            self.p / self.theta
        } else {
            0.0
        }
    }

    /// Level-`alpha` upper quantile (`P(W > q) = alpha`; 0 when `p ≤ alpha`).
    pub fn quantile(&self, alpha: f64) -> f64 {
        if self.p > alpha {
            (self.p / alpha).ln() / self.theta
        } else {
            0.0
        }
    }
}

/// A latency distribution summarised by its mean and the excess of its p99 and p99.9 over the
/// mean, kept as the sum of squares of the positive excesses of independent parts plus the sum
/// of the negative ones: for a sum of independent parts `q_α ≈ mean + √(Σ e⁺²) + Σ e⁻`. Exact for
/// normal parts, within a few percent for sums of exponential waiting times.
#[derive(Copy, Clone, Debug, PartialEq, Default)]
pub struct Latency {
    /// Mean latency, ms (infinite for a stage that cannot keep up).
    pub mean: f64,
    pos2: [f64; 2],
    neg: [f64; 2],
}

impl Latency {
    /// A constant delay.
    pub fn fixed(ms: f64) -> Latency {
        Latency {
            mean: ms,
            ..Latency::default()
        }
    }

    /// Never finishes (an overloaded stage).
    pub fn infinite() -> Latency {
        Latency::fixed(f64::INFINITY)
    }

    /// A stage: a constant `fixed_ms`, a normal service of mean `service_ms` and deviation
    /// `sigma_ms`, and a waiting time `wait`.
    pub fn stage(fixed_ms: f64, service_ms: f64, sigma_ms: f64, wait: Wait) -> Latency {
        let w_mean = wait.mean();
        if !(w_mean.is_finite() && service_ms.is_finite() && fixed_ms.is_finite()) {
            return Latency::infinite();
        }
        let mut out = Latency::fixed(fixed_ms + service_ms + w_mean);
        for (i, (&alpha, z)) in LEVELS.iter().zip([Z99, Z999]).enumerate() {
            let e = wait.quantile(alpha) - w_mean;
            let s = z * sigma_ms;
            out.pos2[i] = s * s + if e > 0.0 { e * e } else { 0.0 };
            out.neg[i] = e.min(0.0);
        }
        out
    }

    /// The `i`-th level's quantile ([`LEVELS`]), ms.
    fn q(&self, i: usize) -> f64 {
        self.mean + self.pos2[i].sqrt() + self.neg[i]
    }

    /// p99, ms.
    pub fn p99(&self) -> f64 {
        self.q(0)
    }

    /// p99.9, ms.
    pub fn p999(&self) -> f64 {
        self.q(1)
    }

    /// The sum of two independent latencies.
    pub fn then(&self, other: &Latency) -> Latency {
        Latency {
            mean: self.mean + other.mean,
            pos2: [self.pos2[0] + other.pos2[0], self.pos2[1] + other.pos2[1]],
            neg: [self.neg[0] + other.neg[0], self.neg[1] + other.neg[1]],
        }
    }

    /// The later of latencies that rise and fall together (a common wait dominates them): each
    /// level's quantile is the largest of the parts' (comonotone parts).
    pub fn max_of_comonotone(parts: &[Latency]) -> Latency {
        let Some(first) = parts.first() else {
            return Latency::default();
        };
        let mean = parts
            .iter()
            .map(|l| l.mean)
            .fold(f64::NEG_INFINITY, f64::max);
        if !mean.is_finite() {
            return Latency::infinite();
        }
        let mut out = Latency::fixed(mean);
        for i in 0..LEVELS.len() {
            let e = parts.iter().map(|l| l.q(i)).fold(first.q(i), f64::max) - mean;
            out.pos2[i] = e.max(0.0).powi(2);
            out.neg[i] = e.min(0.0);
        }
        out
    }

    /// The later of independent latencies: each tail beyond its p99 taken as exponential through
    /// its p99 and p99.9, the level-`α` quantile of the maximum solves `Σ P(Lᵢ > x) = α` (the
    /// union bound, tight at these levels). The mean is the largest mean.
    pub fn max_of(parts: &[Latency]) -> Latency {
        match parts {
            [] => return Latency::default(),
            [one] => return *one,
            _ => {}
        }
        let mean = parts
            .iter()
            .map(|l| l.mean)
            .fold(f64::NEG_INFINITY, f64::max);
        if !mean.is_finite() {
            return Latency::infinite();
        }
        // P(Lᵢ > x) = 0.01 · 10^{−(x − q99ᵢ) / sᵢ}, sᵢ = q999ᵢ − q99ᵢ.
        let ln10 = std::f64::consts::LN_10;
        let tail_at = |x: f64| -> (f64, f64) {
            parts.iter().fold((0.0, 0.0), |(p, dp), l| {
                let (q, s) = (l.p99(), (l.p999() - l.p99()).max(1e-6));
                let v = LEVELS[0] * (-(x - q) / s * ln10).exp();
                (p + v, dp - v * ln10 / s)
            })
        };
        let mut out = Latency::fixed(mean);
        for (i, &alpha) in LEVELS.iter().enumerate() {
            let start = parts
                .iter()
                .map(|l| l.q(i))
                .fold(f64::NEG_INFINITY, f64::max);
            // ln Σ P(x) is convex and decreasing: Newton from below converges monotonically.
            let mut x = start;
            for _ in 0..30 {
                let (p, dp) = tail_at(x);
                let g = p.ln() - alpha.ln();
                if g <= 1e-12 {
                    break;
                }
                x -= g / (dp / p);
            }
            let e = x - mean;
            out.pos2[i] = e.max(0.0).powi(2);
            out.neg[i] = e.min(0.0);
        }
        out
    }
}

#[cfg(test)]
#[path = "queueing_tests.rs"]
mod tests;

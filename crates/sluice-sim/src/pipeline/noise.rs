//! The random draws of a pipeline run: exponential inter-arrival gaps and lognormal service-time
//! factors, each from its own seeded ChaCha8 stream so that changing the plan (and so the number
//! of batches drawn) never changes the arrival sequence.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Stream of the arrival process.
const ARRIVAL_STREAM: u64 = 0;
/// Stream of the service noise.
const NOISE_STREAM: u64 = 1;

/// Poisson arrivals: exponential gaps of mean `1 / rate`.
pub(crate) struct Arrivals {
    rng: ChaCha8Rng,
    rate_per_s: f64,
}

impl Arrivals {
    pub(crate) fn new(seed: u64, rate_per_s: f64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(ARRIVAL_STREAM);
        Arrivals { rng, rate_per_s }
    }

    /// The next gap, seconds.
    pub(crate) fn gap_s(&mut self) -> f64 {
        let u: f64 = self.rng.random();
        -(1.0 - u).ln() / self.rate_per_s
    }
}

/// Lognormal factors of mean 1 and coefficient of variation `cv`.
pub(crate) struct ServiceNoise {
    rng: ChaCha8Rng,
    sigma: f64,
    mu: f64,
}

impl ServiceNoise {
    pub(crate) fn new(seed: u64, cv: f64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(NOISE_STREAM);
        let var = (1.0 + cv * cv).ln();
        ServiceNoise {
            rng,
            sigma: var.sqrt(),
            mu: -var / 2.0,
        }
    }

    /// The next factor (exactly 1 when `cv` is 0).
    pub(crate) fn factor(&mut self) -> f64 {
        if self.sigma == 0.0 {
            return 1.0;
        }
        // Box-Muller: u1 in (0, 1] keeps the logarithm finite.
        let u1: f64 = 1.0 - self.rng.random::<f64>();
        let u2: f64 = self.rng.random();
        let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
        (self.mu + self.sigma * z).exp()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lognormal_factor_has_mean_one_and_the_asked_cv() {
        let mut n = ServiceNoise::new(7, 0.2);
        let xs: Vec<f64> = (0..200_000).map(|_| n.factor()).collect();
        let mean = xs.iter().sum::<f64>() / xs.len() as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / xs.len() as f64;
        assert!((mean - 1.0).abs() < 0.005, "{mean}");
        assert!((var.sqrt() / mean - 0.2).abs() < 0.005, "{}", var.sqrt());
        assert!(xs.iter().all(|x| *x > 0.0));
        assert_eq!(ServiceNoise::new(7, 0.0).factor(), 1.0);
    }

    #[test]
    fn exponential_gaps_have_the_asked_mean() {
        let mut a = Arrivals::new(3, 250.0);
        let mean = (0..100_000).map(|_| a.gap_s()).sum::<f64>() / 100_000.0;
        assert!((mean * 250.0 - 1.0).abs() < 0.02, "{mean}");
    }
}

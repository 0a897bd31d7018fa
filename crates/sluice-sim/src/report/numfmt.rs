//! Number formatting shared by the text table and the markdown sweep, so both print the same
//! value the same way.
//!
//! Rule for magnitudes (milliseconds, slowdowns, GB): one decimal at ≥ 100, three significant
//! digits below; exact zero prints as `0`; non-finite values print as Rust does (`NaN`, `inf`).

/// A magnitude: `1234.5`, `123.4`, `12.3`, `1.23`, `0.123`, `0.0123`, `0`.
pub(crate) fn num(x: f64) -> String {
    if !x.is_finite() {
        return format!("{x}");
    }
    if x == 0.0 {
        return "0".to_string();
    }
    let decimals = if x.abs() >= 100.0 {
        1
    } else {
        (2 - x.abs().log10().floor() as i32).clamp(0, 6) as usize
    };
    format!("{x:.decimals$}")
}

/// A 0..1 fraction as a percentage with one decimal: `0.5` → `50.0`.
pub(crate) fn pct(x: f64) -> String {
    format!("{:.1}", x * 100.0)
}

/// Jain's index (0..1) with three decimals.
pub(crate) fn fairness(x: f64) -> String {
    format!("{x:.3}")
}

/// Bytes moved in both directions, as decimal gigabytes (10⁹ bytes) by the [`num`] rule.
pub(crate) fn gb(to_device: u64, to_host: u64) -> String {
    num((to_device as f64 + to_host as f64) / 1e9)
}

/// A speed-up factor: one decimal at ≥ 1 (`3.1`), two below (`0.95`).
pub(crate) fn factor(x: f64) -> String {
    if x.is_finite() && x < 1.0 {
        format!("{x:.2}")
    } else {
        format!("{x:.1}")
    }
}

/// A multiple of the ideal bound's latency (`2.31×`), or `-` when there is none.
pub(crate) fn vs_ideal(x: Option<f64>) -> String {
    x.map_or_else(|| "-".to_string(), |v| format!("{}×", factor(v)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magnitudes_follow_one_rule() {
        assert_eq!(num(1234.56), "1234.6");
        assert_eq!(num(123.45), "123.5");
        assert_eq!(num(12.345), "12.3");
        assert_eq!(num(1.2345), "1.23");
        assert_eq!(num(0.12345), "0.123");
        assert_eq!(num(0.012345), "0.0123");
        assert_eq!(num(0.0), "0");
        assert_eq!(num(-5.0), "-5.00");
        assert_eq!(num(f64::NAN), "NaN");
        assert_eq!(pct(0.5), "50.0");
        assert_eq!(fairness(16.0 / 17.0), "0.941");
        assert_eq!(gb(3_000_000_000, 1_000_000_000), "4.00");
        assert_eq!((factor(3.12), factor(0.954)), ("3.1".into(), "0.95".into()));
    }
}

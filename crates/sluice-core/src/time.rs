//! Time as integer microseconds, shared by the simulator's virtual clock and the worker's real one.
//!
//! [`Time`] is an instant measured from the engine's epoch (trace start in the simulator, process start
//! in the worker); [`Dur`] is a span. Both are plain `u64` microseconds so that ordering is total and
//! arithmetic is exact and cheap. Subtraction saturates at zero instead of panicking.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::ops::{Add, AddAssign, Sub};

/// An instant, in microseconds since the engine's epoch.
#[derive(
    Copy, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Time(u64);

/// A span of time, in microseconds.
#[derive(
    Copy, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Dur(u64);

impl Time {
    /// The engine's epoch.
    pub const ZERO: Time = Time(0);
    /// The last representable instant; used as "never".
    pub const MAX: Time = Time(u64::MAX);

    /// The instant `us` microseconds after the epoch.
    pub const fn from_micros(us: u64) -> Self {
        Time(us)
    }
    /// The instant `ms` milliseconds after the epoch, rounded to the nearest microsecond; negative
    /// or NaN gives [`Time::ZERO`], values past the range give [`Time::MAX`].
    pub fn from_millis_f64(ms: f64) -> Self {
        Time(f64_to_micros(ms * 1e3))
    }
    /// The instant `s` seconds after the epoch, rounded to the nearest microsecond; negative or
    /// NaN gives [`Time::ZERO`], values past the range give [`Time::MAX`].
    pub fn from_secs_f64(s: f64) -> Self {
        Time(f64_to_micros(s * 1e6))
    }
    /// Microseconds since the epoch.
    pub const fn as_micros(self) -> u64 {
        self.0
    }
    /// Milliseconds since the epoch, with the microseconds as the fraction.
    pub fn as_millis_f64(self) -> f64 {
        self.0 as f64 / 1e3
    }
    /// Seconds since the epoch, with the microseconds as the fraction.
    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / 1e6
    }
    /// The span from `earlier` to `self`, zero if `earlier` is later.
    pub fn since(self, earlier: Time) -> Dur {
        Dur(self.0.saturating_sub(earlier.0))
    }
}

impl Dur {
    /// The empty span.
    pub const ZERO: Dur = Dur(0);
    /// The longest representable span; arithmetic saturates here, and it is used as "forever".
    pub const MAX: Dur = Dur(u64::MAX);

    /// A span of `us` microseconds.
    pub const fn from_micros(us: u64) -> Self {
        Dur(us)
    }
    /// A span of `ms` milliseconds, saturating at [`Dur::MAX`].
    pub const fn from_millis(ms: u64) -> Self {
        Dur(ms.saturating_mul(1_000))
    }
    /// A span of `s` seconds, saturating at [`Dur::MAX`].
    pub const fn from_secs(s: u64) -> Self {
        Dur(s.saturating_mul(1_000_000))
    }
    /// A span of `ms` milliseconds, rounded to the nearest microsecond; negative or NaN gives
    /// [`Dur::ZERO`], values past the range give [`Dur::MAX`].
    pub fn from_millis_f64(ms: f64) -> Self {
        Dur(f64_to_micros(ms * 1e3))
    }
    /// A span of `s` seconds, rounded to the nearest microsecond; negative or NaN gives
    /// [`Dur::ZERO`], values past the range give [`Dur::MAX`].
    pub fn from_secs_f64(s: f64) -> Self {
        Dur(f64_to_micros(s * 1e6))
    }
    /// The span in microseconds.
    pub const fn as_micros(self) -> u64 {
        self.0
    }
    /// The span in milliseconds, with the microseconds as the fraction.
    pub fn as_millis_f64(self) -> f64 {
        self.0 as f64 / 1e3
    }
    /// The span in seconds, with the microseconds as the fraction.
    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / 1e6
    }
    /// Scales the span by a non-negative factor (negative or NaN factors give zero).
    pub fn mul_f64(self, k: f64) -> Dur {
        Dur(f64_to_micros(self.0 as f64 * k))
    }
    /// `self − other`, zero if `other` is longer.
    pub fn saturating_sub(self, other: Dur) -> Dur {
        Dur(self.0.saturating_sub(other.0))
    }
}

/// Converts a float count of microseconds to `u64`, clamping negatives and NaN to zero.
fn f64_to_micros(us: f64) -> u64 {
    if us.is_nan() || us <= 0.0 {
        0
    } else if us >= u64::MAX as f64 {
        u64::MAX
    } else {
        us.round() as u64
    }
}

impl Add<Dur> for Time {
    type Output = Time;
    fn add(self, d: Dur) -> Time {
        Time(self.0.saturating_add(d.0))
    }
}

impl AddAssign<Dur> for Time {
    fn add_assign(&mut self, d: Dur) {
        self.0 = self.0.saturating_add(d.0);
    }
}

impl Sub<Time> for Time {
    type Output = Dur;
    fn sub(self, earlier: Time) -> Dur {
        self.since(earlier)
    }
}

impl Add for Dur {
    type Output = Dur;
    fn add(self, o: Dur) -> Dur {
        Dur(self.0.saturating_add(o.0))
    }
}

impl AddAssign for Dur {
    fn add_assign(&mut self, o: Dur) {
        self.0 = self.0.saturating_add(o.0);
    }
}

impl Sub for Dur {
    type Output = Dur;
    fn sub(self, o: Dur) -> Dur {
        self.saturating_sub(o)
    }
}

impl fmt::Display for Time {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.3}s", self.as_secs_f64())
    }
}

impl fmt::Display for Dur {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.3}ms", self.as_millis_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subtraction_saturates_instead_of_panicking() {
        assert_eq!(Time::from_micros(5) - Time::from_micros(9), Dur::ZERO);
        assert_eq!(Dur::from_micros(5) - Dur::from_micros(9), Dur::ZERO);
    }

    #[test]
    fn float_conversions_clamp_bad_values() {
        assert_eq!(Dur::from_millis_f64(-3.0), Dur::ZERO);
        assert_eq!(Dur::from_millis_f64(f64::NAN), Dur::ZERO);
        assert_eq!(Dur::from_secs_f64(1e30), Dur::MAX);
        assert_eq!(Dur::from_millis_f64(1.5).as_micros(), 1_500);
        assert_eq!(Dur::from_secs(2).mul_f64(0.25), Dur::from_millis(500));
    }

    #[test]
    fn addition_saturates_at_max() {
        assert_eq!(Time::MAX + Dur::from_secs(1), Time::MAX);
    }
}

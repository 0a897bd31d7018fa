//! Churn: workers leaving and joining at given times, parsed from
//! `leave:<count>@<seconds>,join:<count>@<seconds>,…` (`--churn`). Leaving workers are the live
//! ones with the highest ids; they stop receiving work at once and finish what they hold
//! (a graceful drain). Joining workers are fresh (cold) ones with new ids.

use sluice_core::Time;
use std::fmt;
use std::str::FromStr;

/// Whether workers leave or join.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum ChurnKind {
    /// The live workers with the highest ids stop receiving work and drain.
    Leave,
    /// Fresh, cold workers with new ids join the ring.
    Join,
}

/// `count` workers leave or join at `at`.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct ChurnEvent {
    /// Leave or join.
    pub kind: ChurnKind,
    /// How many workers (1 to 100,000).
    pub count: u32,
    /// Simulated time of the change, from the start of the trace.
    pub at: Time,
}

/// A churn schedule, sorted by time (stable: events at one instant keep their written order).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Churn(pub Vec<ChurnEvent>);

impl FromStr for Churn {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let mut events = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let bad = |why: &str| {
                format!("churn event `{part}`: {why} (expected leave:<count>@<seconds> or join:<count>@<seconds>)")
            };
            let (kind, rest) = part.split_once(':').ok_or_else(|| bad("missing `:`"))?;
            let kind = match kind.trim() {
                "leave" => ChurnKind::Leave,
                "join" => ChurnKind::Join,
                _ => return Err(bad("the kind must be leave or join")),
            };
            let (count, at) = rest
                .split_once('@')
                .ok_or_else(|| bad("missing `@<seconds>`"))?;
            let count: u32 = count
                .trim()
                .parse()
                .ok()
                .filter(|c| (1..=100_000).contains(c))
                .ok_or_else(|| bad("the count must be an integer in 1..=100000"))?;
            let at: f64 = at
                .trim()
                .parse()
                .ok()
                .filter(|t: &f64| t.is_finite() && *t >= 0.0 && *t <= 1e9)
                .ok_or_else(|| bad("the time must be a number of seconds in [0, 1e9]"))?;
            events.push(ChurnEvent {
                kind,
                count,
                at: Time::from_micros((at * 1e6).round() as u64),
            });
        }
        events.sort_by_key(|e| e.at);
        Ok(Churn(events))
    }
}

impl fmt::Display for Churn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .0
            .iter()
            .map(|e| {
                let kind = match e.kind {
                    ChurnKind::Leave => "leave",
                    ChurnKind::Join => "join",
                };
                format!("{kind}:{}@{}", e.count, e.at.as_secs_f64())
            })
            .collect();
        f.write_str(&parts.join(","))
    }
}

impl Churn {
    /// Workers that join over the whole schedule.
    pub fn joins(&self) -> usize {
        self.0
            .iter()
            .filter(|e| e.kind == ChurnKind::Join)
            .map(|e| e.count as usize)
            .sum()
    }

    /// Checks that no leave empties the cluster, given `workers` at the start, and that at most
    /// [`MAX_WORKERS`](super::MAX_WORKERS) workers take part in all.
    pub fn validate(&self, workers: usize) -> Result<(), String> {
        if workers + self.joins() > super::MAX_WORKERS {
            return Err(format!(
                "churn: {workers} workers and {} joining exceed {} in all",
                self.joins(),
                super::MAX_WORKERS
            ));
        }
        let mut live = workers as i64;
        for e in &self.0 {
            match e.kind {
                ChurnKind::Join => live += i64::from(e.count),
                ChurnKind::Leave => {
                    live -= i64::from(e.count);
                    if live < 1 {
                        return Err(format!(
                            "churn: leave:{}@{} would leave no worker",
                            e.count,
                            e.at.as_secs_f64()
                        ));
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sorts_and_round_trips() {
        let c: Churn = "join:2@7200, leave:3@3600".parse().unwrap();
        assert_eq!(c.0.len(), 2);
        assert_eq!(c.0[0].kind, ChurnKind::Leave);
        assert_eq!(c.0[0].at, Time::from_micros(3_600_000_000));
        assert_eq!(c.to_string().parse::<Churn>().unwrap(), c);
        assert_eq!("".parse::<Churn>().unwrap(), Churn::default());
        assert!(c.validate(4).is_ok());
        assert!(c.validate(3).unwrap_err().contains("no worker"));
        assert_eq!(c.joins(), 2);
        let many: Churn = "join:100000@1".parse().unwrap();
        assert!(many.validate(1).unwrap_err().contains("in all"));
    }

    #[test]
    fn bad_events_are_explained() {
        for (s, needle) in [
            ("leave3@10", "missing `:`"),
            ("crash:1@10", "leave or join"),
            ("leave:1", "missing `@"),
            ("leave:0@1", "count"),
            ("leave:x@1", "count"),
            ("join:1@-5", "time"),
            ("join:1@nan", "time"),
        ] {
            let e = s.parse::<Churn>().unwrap_err();
            assert!(e.contains(needle), "{s}: {e}");
        }
    }
}

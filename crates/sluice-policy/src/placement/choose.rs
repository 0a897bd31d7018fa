//! The choice itself: hints first, then the bounded walk clockwise from the home, then the
//! power-of-two fallback (see the module documentation of [`placement`](super)).

use super::hash::{BinId, Key};
use super::params::unit;
use super::{Placement, Rule};

/// One placement question.
pub struct Request<'a, B> {
    /// What is placed.
    pub key: Key,
    /// Bins that hold something for the key, with a preference level (higher wins; 0 is no
    /// preference). The best acceptable one is chosen before the walk.
    pub hints: &'a [(B, u8)],
    /// Hard filter: a bin for which this is false is never chosen.
    pub usable: &'a dyn Fn(&B) -> bool,
    /// Under the popularity gate, only popular keys spill past their home.
    pub popular: bool,
}

/// How the bin was found.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum ChoiceKind {
    /// The key's home.
    Home,
    /// A hinted bin other than the home.
    Hinted,
    /// The first acceptable bin clockwise, `hops` distinct bins past the home.
    Spilled {
        /// Distinct bins passed over.
        hops: u32,
    },
    /// The power-of-two (or least-loaded) fallback.
    Fallback,
}

/// The bin chosen and how.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Choice<B> {
    /// The bin.
    pub bin: B,
    /// How it was found.
    pub kind: ChoiceKind,
}

impl<B: BinId> Placement<B> {
    /// Chooses a bin for `req` without changing any load (see the module documentation for the
    /// rule). `None` when no bin is usable.
    pub fn choose(&mut self, req: &Request<'_, B>) -> Option<Choice<B>> {
        let rule = self.rule();
        let slot = self.choose_slot(req, rule)?;
        Some(Choice {
            bin: self.bins[slot.0].id.clone(),
            kind: slot.1,
        })
    }

    /// Chooses like [`Placement::choose`] and adds the local load increment (1, or `1 ± jitter`)
    /// to the chosen bin.
    pub fn place(&mut self, req: &Request<'_, B>) -> Option<Choice<B>> {
        let rule = self.rule();
        let (slot, kind) = self.choose_slot(req, rule)?;
        let jitter = self.params.jitter;
        let inc = if jitter > 0.0 {
            1.0 + (2.0 * unit(self.random.next_u64()) - 1.0) * jitter
        } else {
            1.0
        };
        let load = self.bins[slot].load + inc;
        self.set_load_at(slot, load);
        Some(Choice {
            bin: self.bins[slot].id.clone(),
            kind,
        })
    }

    /// The bound of one choice: the ceiling, or under
    /// [`fractional`](super::PlacementParams::fractional) each bin's bound rounded by its draw.
    fn rule(&self) -> Rule {
        if self.params.fractional {
            Rule::Rounded
        } else {
            Rule::Ceiling
        }
    }

    fn choose_slot(&mut self, req: &Request<'_, B>, rule: Rule) -> Option<(usize, ChoiceKind)> {
        let start = self.start(req.key)?;
        let home = self.ring[start].1 as usize;
        let usable = |s: usize| (req.usable)(&self.bins[s].id);
        if self.params.popularity_gate && !req.popular {
            let stay = self.walk(start, usize::MAX, usable);
            let ceiling = self.params.gate_ceiling;
            match stay {
                Some((s, _))
                    if ceiling > 0.0
                        && self.bins[s].load + 1.0 > ceiling * self.bound_under(s, rule) + 1e-9 => {
                }
                other => return other,
            }
        }
        if let Some(s) = self.best_hint(req, home, rule) {
            let kind = if s == home {
                ChoiceKind::Home
            } else {
                ChoiceKind::Hinted
            };
            return Some((s, kind));
        }
        let probes = match self.params.probes {
            0 => usize::MAX,
            n => n,
        };
        if let Some(found) = self.walk(start, probes, |s| {
            usable(s) && self.acceptable(s, rule, 0.0)
        }) {
            return Some(found);
        }
        self.fallback(req).map(|s| (s, ChoiceKind::Fallback))
    }

    /// The best usable, acceptable hinted bin: highest level, then one within its plain bound
    /// (a warm bin that needs the hint slack is taken only when no warm bin of the same level has
    /// room: co-running on a busy bin slows what already runs there), then the home, then the
    /// lowest load per weight, then the lowest id.
    fn best_hint(&self, req: &Request<'_, B>, home: usize, rule: Rule) -> Option<usize> {
        let mut best: Option<(u8, bool, bool, f64, usize)> = None;
        for (id, level) in req.hints {
            if *level == 0 {
                continue;
            }
            let Ok(s) = self.slot(id) else { continue };
            if !(req.usable)(id) || !self.acceptable(s, rule, self.params.hint_slack) {
                continue;
            }
            let within = self.acceptable(s, rule, 0.0);
            let cand = (*level, within, s == home, self.relative_load(s), s);
            let better = match best {
                None => true,
                Some(b) => {
                    (cand.0, cand.1, cand.2) > (b.0, b.1, b.2)
                        || ((cand.0, cand.1, cand.2) == (b.0, b.1, b.2)
                            && (cand.3, cand.4) < (b.3, b.4))
                }
            };
            if better {
                best = Some(cand);
            }
        }
        best.map(|b| b.4)
    }

    fn relative_load(&self, slot: usize) -> f64 {
        (self.bins[slot].load + 1.0) / f64::from(self.bins[slot].weight)
    }

    /// Walks distinct bins clockwise from ring index `start`, at most `limit` of them, and
    /// returns the first for which `ok` holds, with its kind.
    fn walk(
        &self,
        start: usize,
        limit: usize,
        ok: impl Fn(usize) -> bool,
    ) -> Option<(usize, ChoiceKind)> {
        let mut visited = self.visited.borrow_mut();
        let mut stamp = self.walk.get().wrapping_add(1);
        if stamp == 0 {
            visited.iter_mut().for_each(|v| *v = 0);
            stamp = 1;
        }
        self.walk.set(stamp);
        let (n, bins) = (self.ring.len(), self.bins.len());
        let mut hops = 0u32;
        for i in 0..n {
            let s = self.ring[(start + i) % n].1 as usize;
            if visited[s] == stamp {
                continue;
            }
            visited[s] = stamp;
            if ok(s) {
                let kind = if hops == 0 {
                    ChoiceKind::Home
                } else {
                    ChoiceKind::Spilled { hops }
                };
                return Some((s, kind));
            }
            hops += 1;
            if hops as usize >= limit || hops as usize >= bins {
                break;
            }
        }
        None
    }

    /// Power of two choices between bins drawn at random ring points; if neither is usable, the
    /// least loaded usable bin (relative to weight, ties to the lowest id).
    fn fallback(&mut self, req: &Request<'_, B>) -> Option<usize> {
        let n = self.ring.len() as u64;
        let a = self.ring[(self.random.next_u64() % n) as usize].1 as usize;
        let b = self.ring[(self.random.next_u64() % n) as usize].1 as usize;
        let usable = |s: usize| (req.usable)(&self.bins[s].id);
        let lighter = |x: usize, y: usize| {
            if (self.relative_load(y), y) < (self.relative_load(x), x) {
                y
            } else {
                x
            }
        };
        match (usable(a), usable(b)) {
            (true, true) => return Some(lighter(a, b)),
            (true, false) => return Some(a),
            (false, true) => return Some(b),
            (false, false) => {}
        }
        (0..self.bins.len()).filter(|&s| usable(s)).reduce(lighter)
    }
}

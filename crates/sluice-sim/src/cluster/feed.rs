//! Arrivals generated ahead: a helper thread with nothing else to do draws the next batches of
//! the trace while the router's side routes, and the router's side takes them in order
//! ([`Intake`]), drawing a batch itself when none is ready. Whoever draws holds the source, and
//! pushes its batch before letting go of it, so batches keep the trace's order.

use super::lock;
use crate::workload::Arrival;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

/// Arrivals per batch (a few tens of microseconds of drawing).
const BATCH: usize = 256;
/// Batches kept ready at most.
const AHEAD: usize = 64;

/// The trace's arrivals and the batches drawn ahead of the router.
pub(super) struct Feed<I> {
    source: Mutex<I>,
    ready: Mutex<VecDeque<Vec<Arrival>>>,
    queued: AtomicUsize,
    exhausted: AtomicBool,
}

impl<I: Iterator<Item = Arrival>> Feed<I> {
    pub(super) fn new(source: I) -> Self {
        Feed {
            source: Mutex::new(source),
            ready: Mutex::default(),
            queued: AtomicUsize::new(0),
            exhausted: AtomicBool::new(false),
        }
    }

    /// Draws one batch ahead if there is room and nobody else is drawing; whether it did.
    pub(super) fn fill(&self) -> bool {
        if self.exhausted.load(Ordering::Relaxed) || self.queued.load(Ordering::Relaxed) >= AHEAD {
            return false;
        }
        let Ok(mut source) = self.source.try_lock() else {
            return false;
        };
        let batch = self.draw(&mut source);
        if batch.is_empty() {
            return false;
        }
        lock(&self.ready).push_back(batch);
        self.queued.fetch_add(1, Ordering::Relaxed);
        true
    }

    fn draw(&self, source: &mut I) -> Vec<Arrival> {
        let batch: Vec<Arrival> = source.by_ref().take(BATCH).collect();
        if batch.len() < BATCH {
            self.exhausted.store(true, Ordering::Relaxed);
        }
        batch
    }

    /// The next batch in trace order, drawn now if none is ready; empty at the end.
    fn take(&self) -> Vec<Arrival> {
        if let Some(b) = self.pop_ready() {
            return b;
        }
        let mut source = lock(&self.source);
        // A batch pushed while we waited for the source comes first.
        if let Some(b) = self.pop_ready() {
            return b;
        }
        if self.exhausted.load(Ordering::Relaxed) {
            return Vec::new();
        }
        self.draw(&mut source)
    }

    fn pop_ready(&self) -> Option<Vec<Arrival>> {
        let b = lock(&self.ready).pop_front()?;
        self.queued.fetch_sub(1, Ordering::Relaxed);
        Some(b)
    }
}

/// The router's side of a [`Feed`]: the arrivals one by one.
pub(super) struct Intake<'f, I> {
    feed: &'f Feed<I>,
    batch: Vec<Arrival>,
    pos: usize,
    done: bool,
}

impl<'f, I: Iterator<Item = Arrival>> Intake<'f, I> {
    pub(super) fn new(feed: &'f Feed<I>) -> Self {
        Intake {
            feed,
            batch: Vec::new(),
            pos: 0,
            done: false,
        }
    }

    /// The next arrival, without taking it.
    pub(super) fn peek(&mut self) -> Option<Arrival> {
        if self.pos == self.batch.len() && !self.done {
            self.batch = self.feed.take();
            self.pos = 0;
            self.done = self.batch.is_empty();
        }
        self.batch.get(self.pos).copied()
    }

    /// Takes the next arrival if it satisfies `keep`.
    pub(super) fn next_if(&mut self, keep: impl FnOnce(&Arrival) -> bool) -> Option<Arrival> {
        let a = self.peek().filter(keep)?;
        self.pos += 1;
        Some(a)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_core::{FunctionId, Time};

    fn arrivals(n: u64) -> impl Iterator<Item = Arrival> {
        (0..n).map(|i| Arrival {
            at: Time::from_micros(i),
            func: FunctionId((i % 7) as u32),
        })
    }

    /// Batches drawn ahead by another thread and drawn on demand interleave in trace order,
    /// and every arrival comes out exactly once.
    #[test]
    fn arrivals_come_out_once_in_order_whoever_draws_them() {
        let n = (BATCH * AHEAD * 3 + 17) as u64;
        let feed = Feed::new(arrivals(n));
        let stop = AtomicBool::new(false);
        let seen = std::thread::scope(|s| {
            s.spawn(|| {
                while !stop.load(Ordering::Relaxed) {
                    feed.fill();
                    std::thread::yield_now();
                }
            });
            let mut intake = Intake::new(&feed);
            let mut seen = Vec::new();
            while let Some(a) = intake.next_if(|_| true) {
                seen.push(a.at.as_micros());
                if seen.len() % 1000 == 0 {
                    std::thread::yield_now();
                }
            }
            stop.store(true, Ordering::Relaxed);
            seen
        });
        assert_eq!(seen, (0..n).collect::<Vec<_>>());
    }

    #[test]
    fn next_if_leaves_an_arrival_it_does_not_take() {
        let feed = Feed::new(arrivals(3));
        let mut intake = Intake::new(&feed);
        assert!(intake.next_if(|a| a.at > Time::from_micros(0)).is_none());
        assert_eq!(intake.peek().map(|a| a.at.as_micros()), Some(0));
        assert_eq!(intake.next_if(|_| true).map(|a| a.at.as_micros()), Some(0));
        assert!(feed.fill() || feed.exhausted.load(Ordering::Relaxed));
        let rest: Vec<u64> = std::iter::from_fn(|| intake.next_if(|_| true))
            .map(|a| a.at.as_micros())
            .collect();
        assert_eq!(rest, vec![1, 2]);
        assert!(intake.peek().is_none());
    }
}

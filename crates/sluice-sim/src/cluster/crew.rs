//! The parallel phase of a cluster run: the workers that have something to do before the next
//! routing instant advance to it on the calling thread and on helper threads at once. Workers
//! share nothing with each other between two routing instants, so which thread advances which
//! worker cannot change a result: each thread takes the next worker from a shared cursor, keeps
//! its own tallies (integer histograms, merged at the end) and returns its workers' reports,
//! which the caller applies in worker order.
//!
//! A helper takes part in a phase only if it joins before the caller has finished its own
//! share: the caller closes the phase to helpers that have not joined (busy with other work, or
//! parked) instead of waiting for them. Between phases helpers do the idle work they are given
//! (drawing arrivals ahead), else spin briefly, then park; they are told to stop when the run
//! ends. A helper that panics is noticed by the caller, which panics too instead of waiting.

use super::lock;
use super::summary::Histogram;
use crate::engine::{LocalId, Node};
use sluice_core::{InvocationId, Time};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError, RwLock};
use std::thread::Thread;

/// Spins of a waiting helper before it parks (a few hundred microseconds: longer than the
/// routing between two parallel phases, shorter than a scheduler tick).
const SPINS: u32 = 1 << 14;

/// An arrival routed to a worker, submitted when the worker reaches its instant.
#[derive(Copy, Clone, Debug)]
pub(super) struct Pending {
    pub at: Time,
    pub id: InvocationId,
    pub local: LocalId,
}

/// One worker: its node and the arrivals routed to it since it last advanced (in time order).
pub(super) struct Slot<'a> {
    pub node: Node<'a>,
    pub inbox: Vec<Pending>,
    rejected_seen: u64,
}

impl<'a> Slot<'a> {
    pub(super) fn new(node: Node<'a>) -> Self {
        Slot {
            node,
            inbox: Vec::new(),
            rejected_seen: 0,
        }
    }

    /// Handles, in time order, every instant before `until` at which this worker has an arrival
    /// or an event of its own; adds what finished to `tally`.
    fn advance(&mut self, w: u32, until: Time, tally: &mut Tally) -> Report {
        let mut next_in = 0;
        let mut done = 0u32;
        loop {
            let t_in = self.inbox.get(next_in).map(|p| p.at);
            let t_ev = self.node.next_event();
            let Some(now) = [t_in, t_ev].into_iter().flatten().min() else {
                break;
            };
            if now >= until {
                break;
            }
            while let Some(p) = self.inbox.get(next_in).filter(|p| p.at == now) {
                // A refusal is counted by the node and reported below.
                self.node.arrive_local(p.id, p.local, now);
                next_in += 1;
            }
            self.node.step(now);
            for r in self.node.records_mut().drain(..) {
                tally.latency.add(r.latency().as_micros());
                tally.queue.add(r.queue_delay().as_micros());
                tally.last_finish = tally.last_finish.max(r.finished);
                done += 1;
            }
        }
        self.inbox.drain(..next_in);
        let rejected = self.node.rejected();
        let newly = (rejected - self.rejected_seen) as u32;
        self.rejected_seen = rejected;
        Report {
            w,
            ended: done + newly,
            next: self.node.next_event(),
        }
    }
}

/// What one worker's advance tells the router's side.
#[derive(Copy, Clone, Debug)]
pub(super) struct Report {
    pub w: u32,
    /// Invocations that left it (finished or refused).
    pub ended: u32,
    /// Its next instant of its own, if any.
    pub next: Option<Time>,
}

/// Finished invocations seen by one thread.
#[derive(Debug, Default)]
pub(super) struct Tally {
    pub latency: Histogram,
    pub queue: Histogram,
    pub last_finish: Time,
}

impl Tally {
    fn merge(&mut self, other: &Tally) {
        self.latency.merge(&other.latency);
        self.queue.merge(&other.queue);
        self.last_finish = self.last_finish.max(other.last_finish);
    }
}

/// A [`Lane::joined`] value: the phase was closed before the helper joined it.
const CLOSED: u64 = 1;

/// Per thread (the caller is 0): its reports of the current phase and its tally.
#[derive(Default)]
struct Lane {
    reports: Mutex<Vec<Report>>,
    tally: Mutex<Tally>,
    /// The latest phase (shifted left by one) that this helper joined, or that the caller
    /// closed to it (`| CLOSED`).
    joined: AtomicU64,
    /// The last phase this helper finished.
    done: AtomicU64,
    sleeping: AtomicBool,
    thread: Mutex<Option<Thread>>,
}

/// The workers and what the threads share.
pub(super) struct Crew<'a> {
    slots: Vec<Mutex<Slot<'a>>>,
    lanes: Vec<Lane>,
    /// The workers of the current phase.
    active: RwLock<Vec<u32>>,
    cursor: AtomicUsize,
    until: AtomicU64,
    /// Phases started so far.
    phase: AtomicU64,
    stop: AtomicBool,
    panicked: AtomicBool,
}

/// Stops a crew's helpers when dropped ([`Crew::stopper`]).
pub(super) struct Stopper<'c, 'a>(&'c Crew<'a>);

impl Drop for Stopper<'_, '_> {
    fn drop(&mut self) {
        self.0.stop();
    }
}

/// Sets the crew's panic flag if a helper unwinds.
struct PanicFlag<'c>(&'c AtomicBool);

impl Drop for PanicFlag<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.store(true, Ordering::SeqCst);
        }
    }
}

impl<'a> Crew<'a> {
    /// A crew over `slots` for `threads` threads (the caller and `threads - 1` helpers).
    pub(super) fn new(slots: Vec<Slot<'a>>, threads: usize) -> Self {
        Crew {
            slots: slots.into_iter().map(Mutex::new).collect(),
            lanes: (0..threads.max(1)).map(|_| Lane::default()).collect(),
            active: RwLock::default(),
            cursor: AtomicUsize::new(0),
            until: AtomicU64::new(0),
            phase: AtomicU64::new(0),
            stop: AtomicBool::new(false),
            panicked: AtomicBool::new(false),
        }
    }

    /// Threads, the caller included.
    pub(super) fn threads(&self) -> usize {
        self.lanes.len()
    }

    /// Worker `w`, for the router's side between phases.
    pub(super) fn slot(&self, w: u32) -> MutexGuard<'_, Slot<'a>> {
        lock(&self.slots[w as usize])
    }

    /// Workers in all.
    pub(super) fn len(&self) -> usize {
        self.slots.len()
    }

    /// Helper `lane`'s loop (`lane` ≥ 1): joins each phase it is in time for, does `idle`
    /// work between phases (which returns whether it found any), until told to stop.
    pub(super) fn help(&self, lane: usize, idle: &dyn Fn() -> bool) {
        let _flag = PanicFlag(&self.panicked);
        let me = &self.lanes[lane];
        *lock(&me.thread) = Some(std::thread::current());
        let mut seen = 0;
        loop {
            let mut spins = 0;
            loop {
                if self.stop.load(Ordering::SeqCst) {
                    return;
                }
                let p = self.phase.load(Ordering::SeqCst);
                if p > seen {
                    seen = p;
                    break;
                }
                if idle() {
                    spins = 0;
                    continue;
                }
                if spins < SPINS {
                    spins += 1;
                    std::hint::spin_loop();
                    continue;
                }
                me.sleeping.store(true, Ordering::SeqCst);
                if self.phase.load(Ordering::SeqCst) == seen && !self.stop.load(Ordering::SeqCst) {
                    std::thread::park();
                }
                me.sleeping.store(false, Ordering::SeqCst);
                spins = 0;
            }
            let before = me.joined.load(Ordering::SeqCst);
            if before >> 1 == seen {
                continue; // closed to us
            }
            if me
                .joined
                .compare_exchange(before, seen << 1, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
            {
                self.work(lane);
                me.done.store(seen, Ordering::SeqCst);
            }
        }
    }

    /// Advances the workers `active` (each at most once) to `until`, on every thread if
    /// `shared`, else on the caller's alone (the helpers are not told of the phase); returns
    /// their reports in worker order.
    pub(super) fn advance(&self, active: &mut Vec<u32>, until: Time, shared: bool) -> Vec<Report> {
        if active.is_empty() {
            return Vec::new();
        }
        {
            let mut shared = self.active.write().unwrap_or_else(PoisonError::into_inner);
            std::mem::swap(&mut *shared, active);
        }
        self.until.store(until.as_micros(), Ordering::SeqCst);
        self.cursor.store(0, Ordering::SeqCst);
        let helpers = if shared { &self.lanes[1..] } else { &[] };
        let phase = match helpers {
            [] => self.phase.load(Ordering::SeqCst),
            _ => self.phase.fetch_add(1, Ordering::SeqCst) + 1,
        };
        for lane in helpers {
            if lane.sleeping.load(Ordering::SeqCst) {
                if let Some(t) = lock(&lane.thread).as_ref() {
                    t.unpark();
                }
            }
        }
        self.work(0);
        for lane in helpers {
            if Self::close(lane, phase) {
                continue;
            }
            let mut spins = 0u32;
            while lane.done.load(Ordering::SeqCst) < phase {
                assert!(
                    !self.panicked.load(Ordering::SeqCst),
                    "a cluster simulation thread panicked"
                );
                spins = spins.wrapping_add(1);
                if spins.is_multiple_of(1024) {
                    std::thread::yield_now();
                } else {
                    std::hint::spin_loop();
                }
            }
        }
        let mut reports = Vec::new();
        for lane in &self.lanes {
            reports.append(&mut lock(&lane.reports));
        }
        reports.sort_unstable_by_key(|r| r.w);
        let mut shared = self.active.write().unwrap_or_else(PoisonError::into_inner);
        std::mem::swap(&mut *shared, active);
        active.clear();
        reports
    }

    /// Closes `phase` to a helper that has not joined it; false if it has (wait for it).
    fn close(lane: &Lane, phase: u64) -> bool {
        let mut v = lane.joined.load(Ordering::SeqCst);
        loop {
            if v >> 1 == phase {
                return v & CLOSED == CLOSED;
            }
            match lane.joined.compare_exchange(
                v,
                phase << 1 | CLOSED,
                Ordering::SeqCst,
                Ordering::SeqCst,
            ) {
                Ok(_) => return true,
                Err(now) => v = now,
            }
        }
    }

    /// One thread's part of a phase.
    fn work(&self, lane: usize) {
        let active = self.active.read().unwrap_or_else(PoisonError::into_inner);
        let until = Time::from_micros(self.until.load(Ordering::SeqCst));
        let me = &self.lanes[lane];
        let mut reports = lock(&me.reports);
        let mut tally = lock(&me.tally);
        loop {
            let i = self.cursor.fetch_add(1, Ordering::Relaxed);
            let Some(&w) = active.get(i) else {
                break;
            };
            reports.push(lock(&self.slots[w as usize]).advance(w, until, &mut tally));
        }
    }

    /// A guard that tells the helpers to return when it is dropped, also when the caller
    /// unwinds: a scope waits for its threads, so a caller that panicked without telling them
    /// would wait for ever.
    pub(super) fn stopper(&self) -> Stopper<'_, 'a> {
        Stopper(self)
    }

    /// Tells the helpers to return.
    fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        for lane in &self.lanes[1..] {
            if let Some(t) = lock(&lane.thread).as_ref() {
                t.unpark();
            }
        }
    }

    /// Every thread's tallies together.
    pub(super) fn tally(&self) -> Tally {
        let mut all = Tally::default();
        for lane in &self.lanes {
            all.merge(&lock(&lane.tally));
        }
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SimConfig;
    use crate::engine::RunOptions;
    use crate::trace::{SyntheticDay, SyntheticSpec};
    use sluice_core::FunctionId;
    use std::time::{Duration, Instant};

    /// A helper busy with slow idle work is closed out of phases instead of waited for: fifty
    /// phases take far less than fifty of its idle stretches, and every worker still reports,
    /// with everything it was sent finished.
    #[test]
    fn a_helper_busy_elsewhere_never_holds_a_phase_up() {
        let spec: SyntheticSpec = "functions=4;invocations=10;duration=10;seed=1"
            .parse()
            .unwrap();
        let day = SyntheticDay::new(&spec, 0);
        let cfg = SimConfig::embedded();
        let slots = (0..3)
            .map(|_| {
                let node = Node::new(
                    day.functions(),
                    &cfg.scheduler,
                    &cfg.device,
                    1,
                    RunOptions::default(),
                )
                .unwrap();
                Slot::new(node)
            })
            .collect();
        let crew = Crew::new(slots, 2);
        let idle_stretch = Duration::from_millis(20);
        let (started, sent) = std::thread::scope(|s| {
            s.spawn(|| {
                crew.help(1, &|| {
                    std::thread::sleep(idle_stretch);
                    true
                })
            });
            let stopper = crew.stopper();
            std::thread::sleep(idle_stretch / 2);
            let started = Instant::now();
            let mut sent = 0u64;
            let mut active = Vec::new();
            for phase in 0..50u64 {
                let at = Time::from_micros(phase * 1_000_000);
                for w in 0..3u32 {
                    let mut slot = crew.slot(w);
                    let local = slot.node.local_of(FunctionId((phase % 4) as u32));
                    slot.inbox.push(Pending {
                        at,
                        id: InvocationId(sent),
                        local,
                    });
                    sent += 1;
                    active.push(w);
                }
                let reports =
                    crew.advance(&mut active, at + sluice_core::Dur::from_micros(1), true);
                assert_eq!(reports.iter().map(|r| r.w).collect::<Vec<_>>(), [0, 1, 2]);
            }
            let elapsed = started.elapsed();
            drop(stopper);
            (elapsed, sent)
        });
        assert!(
            started < idle_stretch * 20,
            "50 phases took {started:?}: the caller waited for a busy helper"
        );
        let mut active = vec![0, 1, 2];
        crew.advance(&mut active, Time::MAX, true);
        assert_eq!(crew.tally().latency.len(), sent);
    }

    /// A caller that panics mid-run still lets its helpers go, so the panic reaches the
    /// caller's caller instead of the scope waiting for ever (this test hangs without the
    /// guard).
    #[test]
    fn a_panicking_caller_still_stops_its_helpers() {
        let crew = Crew::new(Vec::new(), 2);
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            std::thread::scope(|s| {
                s.spawn(|| crew.help(1, &|| false));
                let _stopper = crew.stopper();
                std::thread::sleep(Duration::from_millis(5));
                panic!("the caller fails mid-run");
            })
        }));
        assert!(outcome.is_err());
    }
}

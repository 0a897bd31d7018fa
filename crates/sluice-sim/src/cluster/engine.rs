//! The cluster run, in epochs: the arrivals of one report window are routed one by one to worker
//! [`Node`]s (into their inboxes), then every worker with something to do before the next window
//! advances to it on the crew's threads (`crew`), found through a queue of per-worker instants
//! ([`WakeQueue`], one entry per worker); their reports reach the router in worker order. Churn
//! is applied at the start of an epoch (no window spans a churn instant). Routing costs
//! `O(log)` per arrival for every rule but the fallbacks; no step scans all workers.

use super::crew::{Crew, Pending, Slot};
use super::feed::{Feed, Intake};
use super::summary::ClusterSummary;
use super::tuner::Tuner;
use super::wake::WakeQueue;
use super::{ChurnKind, ClusterParams};
use crate::device::DeviceModel;
use crate::engine::{LocalId, Node, RunOptions};
use crate::workload::{Arrival, FunctionProfile};
use sluice_core::{Dur, FunctionId, InvocationId, Time};
use sluice_policy::placement::{ChoiceKind, Key, Request};
use sluice_policy::routing::{Popularity, Router};
use sluice_policy::scheduler::{ColdCauses, SchedulerConfig};
use std::time::{Duration, Instant};

/// Recent workers remembered per function for locality hints.
const RECENT: usize = 4;
/// No worker.
const NONE: u32 = u32::MAX;

struct Cluster<'a, 'c> {
    params: &'a ClusterParams,
    cfg: &'a SchedulerConfig,
    crew: &'c Crew<'a>,
    live: Vec<bool>,
    joined: Vec<Time>,
    left: Vec<Option<Time>>,
    /// Workers joined so far (the crew holds every worker of the run from the start).
    members: usize,
    router: Router<u32>,
    weight: u32,
    /// Each worker's pending instant (an arrival or an event of its own).
    wakes: WakeQueue,
    outstanding: Vec<u32>,
    keys: Vec<Key>,
    /// Per function, the workers it was last routed to (most recent first) with the function's
    /// id on each (so a hint check touches one structure of the worker, not two).
    recent: Vec<[(u32, LocalId); RECENT]>,
    popularity: Popularity,
    /// Whether the rule has the popularity gate (only then are arrivals counted per key).
    gated: bool,
    /// Whether the rule hashes (only then are warm workers hinted).
    hashing: bool,
    spilled: u64,
    fallbacks: u64,
    unroutable: u64,
    /// Scratch: the workers of the next parallel phase.
    active: Vec<u32>,
    /// Whether phases are shared with the helpers (speed only).
    tuner: Tuner,
    started: Instant,
    /// Arrivals routed since the last phase (work for the tuner).
    routed_since: u64,
}

/// Runs `arrivals` (sorted by time) of `functions` on the cluster `params` describes; each
/// worker runs `cfg` on `gpus_per_worker` devices of `model`. `progress` gets the number of
/// arrivals routed so far, now and then.
pub fn run(
    functions: &[FunctionProfile],
    arrivals: impl Iterator<Item = Arrival> + Send,
    params: &ClusterParams,
    cfg: &SchedulerConfig,
    model: &DeviceModel,
    opts: RunOptions,
    progress: &mut dyn FnMut(u64),
) -> Result<ClusterSummary, String> {
    params.validate()?;
    let router = Router::new(params.router, &params.placement).map_err(|e| e.to_string())?;
    let tokens = cfg.slots.tokens_per_gpu.max(1);
    let max_weight = (sluice_policy::placement::MAX_POINTS_PER_BIN
        / params.placement.vnodes_per_weight.max(1))
    .max(1);
    let weight = (params.gpus_per_worker as u32 * tokens).clamp(1, max_weight);
    // Every worker that will ever join is built now; the churn schedule names how many.
    let total = params.workers + params.churn.joins();
    let slots = (0..total)
        .map(|_| {
            Node::new(functions, cfg, model, params.gpus_per_worker, opts)
                .map(Slot::new)
                .map_err(|e| e.to_string())
        })
        .collect::<Result<Vec<_>, _>>()?;
    let crew = Crew::new(slots, params.threads());
    let keys: Vec<Key> = functions.iter().map(|f| Key::of_str(&f.name)).collect();
    let feed = Feed::new(arrivals);
    std::thread::scope(|scope| {
        for lane in 1..crew.threads() {
            let (crew, feed) = (&crew, &feed);
            scope.spawn(move || crew.help(lane, &|| feed.fill()));
        }
        let stopper = crew.stopper();
        let mut c = Cluster {
            params,
            cfg,
            crew: &crew,
            live: vec![false; total],
            joined: vec![Time::ZERO; total],
            left: vec![None; total],
            members: 0,
            router,
            weight,
            wakes: WakeQueue::default(),
            outstanding: vec![0; total],
            recent: vec![[(NONE, FunctionId(NONE)); RECENT]; functions.len()],
            keys,
            popularity: Popularity::new(params.popular_rps),
            gated: params
                .router
                .placement_params(&params.placement)
                .popularity_gate,
            hashing: params.router.hashes(),
            spilled: 0,
            fallbacks: 0,
            unroutable: 0,
            active: Vec::new(),
            tuner: Tuner::new(Duration::ZERO),
            started: Instant::now(),
            routed_since: 0,
        };
        let result = c
            .start()
            .and_then(|()| c.replay(Intake::new(&feed), progress));
        drop(stopper);
        result.map(|offered| c.summary(offered))
    })
}

impl<'a> Cluster<'a, '_> {
    fn start(&mut self) -> Result<(), String> {
        self.join(self.params.workers, Time::ZERO)?;
        for &key in &self.keys {
            self.router.track(key);
        }
        Ok(())
    }

    fn join(&mut self, count: usize, now: Time) -> Result<(), String> {
        let first = self.members;
        if first + count > self.crew.len() {
            return Err("churn joins more workers than it declared".into());
        }
        for w in first..first + count {
            self.live[w] = true;
            self.joined[w] = now;
        }
        self.members += count;
        let weight = self.weight;
        self.router
            .join_all((first as u32..self.members as u32).map(|w| (w, weight)))
            .map_err(|e| e.to_string())?;
        Ok(())
    }

    /// The `count` live workers with the highest ids stop receiving work (they drain).
    fn leave(&mut self, count: usize, now: Time) -> Result<(), String> {
        let mut gone = 0;
        for w in (0..self.members).rev() {
            if gone == count {
                break;
            }
            if self.live[w] {
                self.router.leave(&(w as u32)).map_err(|e| e.to_string())?;
                self.live[w] = false;
                self.left[w] = Some(now);
                gone += 1;
            }
        }
        Ok(())
    }

    /// Epochs: at the first pending arrival or churn instant `t`, churn due then is applied and
    /// every arrival before `t` + the report delay (and before the next churn) is routed on the
    /// loads reported so far plus the router's own increments; then every worker advances, in
    /// parallel, to the next epoch's instant, and what they report (completions, refusals)
    /// reaches the router. With no delay, an epoch is one instant.
    fn replay<I: Iterator<Item = Arrival>>(
        &mut self,
        mut arrivals: Intake<'_, I>,
        progress: &mut dyn FnMut(u64),
    ) -> Result<u64, String> {
        let churn = self.params.churn.0.clone();
        let mut next_churn = 0usize;
        let mut routed = 0u64;
        let delay = self.params.report_delay;
        loop {
            let t_arrival = arrivals.peek().map(|a| a.at);
            let t_churn = churn.get(next_churn).map(|e| e.at);
            let Some(now) = [t_arrival, t_churn].into_iter().flatten().min() else {
                break;
            };
            while let Some(e) = churn.get(next_churn).filter(|e| e.at == now) {
                match e.kind {
                    ChurnKind::Leave => self.leave(e.count as usize, now)?,
                    ChurnKind::Join => self.join(e.count as usize, now)?,
                }
                next_churn += 1;
            }
            let mut end = now + Dur::from_micros(delay.as_micros().max(1));
            if let Some(e) = churn.get(next_churn) {
                end = end.min(e.at);
            }
            while let Some(a) = arrivals.next_if(|a| a.at < end) {
                self.route(a, InvocationId(routed));
                routed += 1;
                self.routed_since += 1;
                if routed.is_multiple_of(262_144) {
                    progress(routed);
                }
            }
            let t_arrival = arrivals.peek().map(|a| a.at);
            let t_churn = churn.get(next_churn).map(|e| e.at);
            let until = [t_arrival, t_churn]
                .into_iter()
                .flatten()
                .min()
                .unwrap_or(Time::MAX);
            self.advance(until);
        }
        self.advance(Time::MAX);
        progress(routed);
        Ok(routed)
    }

    /// Every worker with an instant before `until` handles everything before it.
    fn advance(&mut self, until: Time) {
        while let Some((t, w)) = self.wakes.peek() {
            if t >= until {
                break;
            }
            self.wakes.pop();
            self.active.push(w);
        }
        let work = self.active.len() as u64 + self.routed_since;
        let reports = self
            .crew
            .advance(&mut self.active, until, self.tuner.shared());
        self.tuner.record(work, self.started.elapsed());
        self.routed_since = 0;
        for r in reports {
            let i = r.w as usize;
            if r.ended > 0 {
                self.outstanding[i] = self.outstanding[i].saturating_sub(r.ended);
                self.report(r.w);
            }
            if let Some(t) = r.next {
                self.wakes.wake(r.w, t);
            }
        }
    }

    fn route(&mut self, a: Arrival, id: InvocationId) {
        let now = a.at;
        let f = a.func.index();
        let key = self.keys[f];
        let popular = !self.gated || self.popularity.arrive(key, now.as_micros() / 1_000_000);
        let mut hints = [(0u32, 0u8); RECENT];
        let mut n = 0;
        if self.hashing {
            for &(w, l) in &self.recent[f] {
                if w != NONE && self.live[w as usize] && self.crew.slot(w).node.has_idle_local(l) {
                    hints[n] = (w, 1);
                    n += 1;
                }
            }
        }
        let live = &self.live;
        let usable = |w: &u32| live[*w as usize];
        let req = Request {
            key,
            hints: &hints[..n],
            usable: &usable,
            popular,
        };
        let Some(choice) = self.router.place(&req) else {
            self.unroutable += 1;
            return;
        };
        if choice.spilled() {
            self.spilled += 1;
        }
        if choice.kind == Some(ChoiceKind::Fallback) {
            self.fallbacks += 1;
        }
        let w = choice.bin;
        let mut slot = self.crew.slot(w);
        let recent = &mut self.recent[f];
        let pos = recent.iter().position(|&(r, _)| r == w);
        let local = match pos {
            Some(p) => recent[p].1,
            None => slot.node.local_of(a.func),
        };
        let pos = pos.unwrap_or(RECENT - 1);
        recent.copy_within(0..pos, 1);
        recent[0] = (w, local);
        slot.inbox.push(Pending { at: now, id, local });
        drop(slot);
        self.outstanding[w as usize] += 1;
        self.wakes.wake(w, now);
    }

    /// Tells the router a worker's exact outstanding count (a load report).
    fn report(&mut self, w: u32) {
        if self.live[w as usize] {
            let _ = self
                .router
                .set_load(&w, f64::from(self.outstanding[w as usize]));
        }
    }

    fn summary(&self, offered: u64) -> ClusterSummary {
        let tally = self.crew.tally();
        let end = tally.last_finish;
        let gpus = self.params.gpus_per_worker as f64;
        let mut utils = Vec::with_capacity(self.members);
        let (mut busy_all, mut time_all) = (0.0, 0.0);
        let (mut cold, mut bytes, mut rejected) = (0u64, 0u64, self.unroutable);
        let mut causes = ColdCauses::default();
        for i in 0..self.members {
            let slot = self.crew.slot(i as u32);
            let n = &slot.node;
            let busy: f64 = n.gpu_busy().iter().map(|d| d.as_secs_f64()).sum();
            let until = self.left[i].unwrap_or(end).max(self.joined[i]);
            let span = until.since(self.joined[i]).as_secs_f64() * gpus;
            if span > 0.0 {
                utils.push(busy / span);
            }
            busy_all += busy;
            time_all += span;
            cold += n.cold_starts();
            causes.add(&n.cold_causes());
            let (d, h) = n.bytes_moved();
            bytes += d + h;
            rejected += n.rejected();
        }
        let mean = utils.iter().sum::<f64>() / utils.len().max(1) as f64;
        let max = utils.iter().copied().fold(0.0, f64::max);
        ClusterSummary {
            router: self.params.router.name().to_string(),
            policy: self.cfg.policy.clone(),
            workers: self.params.workers,
            gpus_per_worker: self.params.gpus_per_worker,
            invocations: offered,
            completed: tally.latency.len(),
            rejected,
            cold_starts: cold,
            cold_start_causes: causes,
            gb_moved: bytes as f64 / 1e9,
            load_imbalance: if mean > 0.0 { max / mean } else { 1.0 },
            spilled: self.params.router.hashes().then_some(self.spilled),
            fallbacks: self.params.router.hashes().then_some(self.fallbacks),
            remapped: self.router.remaps(),
            latency_ms: tally.latency.quantiles(),
            queue_ms: tally.queue.quantiles(),
            gpu_util: if time_all > 0.0 {
                busy_all / time_all
            } else {
                0.0
            },
            makespan_s: end.since(Time::ZERO).as_secs_f64(),
        }
    }
}

//! The cluster run: arrivals routed one by one to worker [`Node`]s, every node stepped under one
//! clock through a queue of per-node wake-up times ([`WakeQueue`], one entry per node), churn
//! applied between instants. Routing costs `O(log)` per arrival for every rule but the fallbacks; no
//! step scans all workers.

use super::summary::{ClusterSummary, Histogram};
use super::wake::WakeQueue;
use super::{ChurnKind, ClusterParams};
use crate::device::DeviceModel;
use crate::engine::{LocalId, Node, RunOptions};
use crate::workload::{Arrival, FunctionProfile};
use sluice_core::{FunctionId, InvocationId, Time};
use sluice_policy::placement::{ChoiceKind, Key, Request};
use sluice_policy::routing::{Popularity, Router};
use sluice_policy::scheduler::SchedulerConfig;

/// Recent workers remembered per function for locality hints.
const RECENT: usize = 4;
/// No worker.
const NONE: u32 = u32::MAX;

struct Cluster<'a> {
    params: &'a ClusterParams,
    functions: &'a [FunctionProfile],
    cfg: &'a SchedulerConfig,
    model: &'a DeviceModel,
    opts: RunOptions,
    nodes: Vec<Node<'a>>,
    live: Vec<bool>,
    joined: Vec<Time>,
    left: Vec<Option<Time>>,
    router: Router<u32>,
    weight: u32,
    /// Each node's pending wake-up.
    wakes: WakeQueue,
    outstanding: Vec<u32>,
    rejected_seen: Vec<u64>,
    keys: Vec<Key>,
    /// Per function, the workers it was last routed to (most recent first) with the function's
    /// id on each (so a hint check touches one structure of the worker, not two).
    recent: Vec<[(u32, LocalId); RECENT]>,
    popularity: Popularity,
    /// Whether the rule has the popularity gate (only then are arrivals counted per key).
    gated: bool,
    /// Whether the rule hashes (only then are warm workers hinted).
    hashing: bool,
    latency: Histogram,
    queue: Histogram,
    spilled: u64,
    fallbacks: u64,
    unroutable: u64,
    last_finish: Time,
}

/// Runs `arrivals` (sorted by time) of `functions` on the cluster `params` describes; each
/// worker runs `cfg` on `gpus_per_worker` devices of `model`. `progress` gets the number of
/// arrivals routed so far, now and then.
pub fn run(
    functions: &[FunctionProfile],
    arrivals: impl Iterator<Item = Arrival>,
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
    let mut c = Cluster {
        params,
        functions,
        cfg,
        model,
        opts,
        nodes: Vec::new(),
        live: Vec::new(),
        joined: Vec::new(),
        left: Vec::new(),
        router,
        weight,
        wakes: WakeQueue::default(),
        outstanding: Vec::new(),
        rejected_seen: Vec::new(),
        keys: functions.iter().map(|f| Key::of_str(&f.name)).collect(),
        recent: vec![[(NONE, FunctionId(NONE)); RECENT]; functions.len()],
        popularity: Popularity::new(params.popular_rps),
        gated: params
            .router
            .placement_params(&params.placement)
            .popularity_gate,
        hashing: params.router.hashes(),
        latency: Histogram::default(),
        queue: Histogram::default(),
        spilled: 0,
        fallbacks: 0,
        unroutable: 0,
        last_finish: Time::ZERO,
    };
    c.join(params.workers, Time::ZERO)?;
    for i in 0..functions.len() {
        c.router.track(c.keys[i]);
    }
    let offered = c.replay(arrivals, progress)?;
    Ok(c.summary(offered))
}

impl<'a> Cluster<'a> {
    fn join(&mut self, count: usize, now: Time) -> Result<(), String> {
        let first = self.nodes.len() as u32;
        for _ in 0..count {
            let node = Node::new(
                self.functions,
                self.cfg,
                self.model,
                self.params.gpus_per_worker,
                self.opts,
            )
            .map_err(|e| e.to_string())?;
            self.nodes.push(node);
            self.live.push(true);
            self.joined.push(now);
            self.left.push(None);
            self.outstanding.push(0);
            self.rejected_seen.push(0);
        }
        let weight = self.weight;
        self.router
            .join_all((first..self.nodes.len() as u32).map(|w| (w, weight)))
            .map_err(|e| e.to_string())?;
        Ok(())
    }

    /// The `count` live workers with the highest ids stop receiving work (they drain).
    fn leave(&mut self, count: usize, now: Time) -> Result<(), String> {
        let mut gone = 0;
        for w in (0..self.nodes.len()).rev() {
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

    fn replay(
        &mut self,
        arrivals: impl Iterator<Item = Arrival>,
        progress: &mut dyn FnMut(u64),
    ) -> Result<u64, String> {
        let mut arrivals = arrivals.peekable();
        let churn = self.params.churn.0.clone();
        let mut next_churn = 0usize;
        let mut routed = 0u64;
        loop {
            let t_arrival = arrivals.peek().map(|a| a.at);
            let t_churn = churn.get(next_churn).map(|e| e.at);
            let t_wake = self.wakes.peek().map(|(t, _)| t);
            let Some(now) = [t_arrival, t_churn, t_wake].into_iter().flatten().min() else {
                break;
            };
            while let Some(e) = churn.get(next_churn).filter(|e| e.at == now) {
                match e.kind {
                    ChurnKind::Leave => self.leave(e.count as usize, now)?,
                    ChurnKind::Join => self.join(e.count as usize, now)?,
                }
                next_churn += 1;
            }
            while let Some(a) = arrivals.next_if(|a| a.at == now) {
                self.route(a, InvocationId(routed), now);
                routed += 1;
                if routed.is_multiple_of(262_144) {
                    progress(routed);
                }
            }
            while let Some((t, w)) = self.wakes.peek() {
                if t != now {
                    break;
                }
                self.wakes.pop();
                self.step(w, now);
            }
        }
        progress(routed);
        Ok(routed)
    }

    fn route(&mut self, a: Arrival, id: InvocationId, now: Time) {
        let f = a.func.index();
        let key = self.keys[f];
        let popular = !self.gated || self.popularity.arrive(key, now.as_micros() / 1_000_000);
        let mut hints = [(0u32, 0u8); RECENT];
        let mut n = 0;
        if self.hashing {
            for &(w, l) in &self.recent[f] {
                if w != NONE && self.live[w as usize] && self.nodes[w as usize].has_idle_local(l) {
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
        let recent = &mut self.recent[f];
        let pos = recent.iter().position(|&(r, _)| r == w);
        let local = match pos {
            Some(p) => recent[p].1,
            None => self.nodes[w as usize].local_of(a.func),
        };
        let pos = pos.unwrap_or(RECENT - 1);
        recent.copy_within(0..pos, 1);
        recent[0] = (w, local);
        if self.nodes[w as usize].arrive_local(id, local, now) {
            self.outstanding[w as usize] += 1;
        } else {
            self.report(w);
        }
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

    fn step(&mut self, w: u32, now: Time) {
        let i = w as usize;
        let node = &mut self.nodes[i];
        node.step(now);
        let mut done = 0u32;
        for r in node.records_mut().drain(..) {
            self.latency.add(r.latency().as_micros());
            self.queue.add(r.queue_delay().as_micros());
            self.last_finish = self.last_finish.max(r.finished);
            done += 1;
        }
        let rejected = node.rejected();
        let newly = (rejected - self.rejected_seen[i]) as u32;
        self.rejected_seen[i] = rejected;
        let next = node.next_event();
        if done + newly > 0 {
            self.outstanding[i] = self.outstanding[i].saturating_sub(done + newly);
            self.report(w);
        }
        if let Some(t) = next {
            self.wakes.wake(w, t);
        }
    }

    fn summary(&self, offered: u64) -> ClusterSummary {
        let end = self.last_finish;
        let gpus = self.params.gpus_per_worker as f64;
        let mut utils = Vec::with_capacity(self.nodes.len());
        let (mut busy_all, mut time_all) = (0.0, 0.0);
        let (mut cold, mut bytes, mut rejected) = (0u64, 0u64, self.unroutable);
        for (i, n) in self.nodes.iter().enumerate() {
            let busy: f64 = n.gpu_busy().iter().map(|d| d.as_secs_f64()).sum();
            let until = self.left[i].unwrap_or(end).max(self.joined[i]);
            let span = until.since(self.joined[i]).as_secs_f64() * gpus;
            if span > 0.0 {
                utils.push(busy / span);
            }
            busy_all += busy;
            time_all += span;
            cold += n.cold_starts();
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
            completed: self.latency.len(),
            rejected,
            cold_starts: cold,
            gb_moved: bytes as f64 / 1e9,
            load_imbalance: if mean > 0.0 { max / mean } else { 1.0 },
            spilled: self.params.router.hashes().then_some(self.spilled),
            fallbacks: self.params.router.hashes().then_some(self.fallbacks),
            remapped: self.router.remaps(),
            latency_ms: self.latency.quantiles(),
            queue_ms: self.queue.quantiles(),
            gpu_util: if time_all > 0.0 {
                busy_all / time_all
            } else {
                0.0
            },
            makespan_s: end.since(Time::ZERO).as_secs_f64(),
        }
    }
}

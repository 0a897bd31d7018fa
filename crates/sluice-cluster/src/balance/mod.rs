//! Which worker an invocation goes to: the shared placement policy
//! (`sluice_policy::placement`, the same code that picks a GPU inside a worker) over the
//! members, each a bin weighted by its capacity (device tokens), keyed by the function name:
//! consistent hashing with bounded loads on a ring every router builds identically from the
//! member ids, warm workers as locality hints, popularity-gated spilling with random local load
//! increments (CH-RLU) so routers sharing a stale view do not herd, and the power-of-two
//! fallback. `None` (no usable worker) becomes 503 with `Retry-After`.
//!
//! The balancer keeps what the policy needs current: membership from the `workers/` cache
//! (the ring is rebuilt when it changes), loads from each worker's reports (`x-sluice-load`
//! on every response, `GET /v1/load` polled, which also brings the warm functions and draining),
//! and local bookkeeping between reports (the policy's increment on each pick, one less when a
//! call ends unreported). A worker that refused a connection is unusable for 2 s. Picks are
//! counted by how the policy found the worker (`sluice_router_placements_total{kind}`).

use crate::cache::Cache;
use crate::forward::WorkerClient;
use crate::model::{Load, LoadReport, Member};
use serde::{Deserialize, Serialize};
use sluice_policy::placement::{ChoiceKind, Key, Placement, PlacementParams, Request};
use sluice_policy::routing::cluster_params;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a worker that refused a connection is passed over.
const SUSPECT_FOR: Duration = Duration::from_secs(2);
/// A ring bin's weight is at most this (the policy bounds points per bin).
const MAX_WEIGHT: u32 = 600;

/// The router's routing settings (`[routing]` in `router.toml`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RoutingConfig {
    /// The placement policy's parameters (epsilon, ring points, probes, gate, jitter).
    pub placement: PlacementParams,
    /// A function is popular (may spill past its home under the gate) above this many
    /// invocations per second through this router.
    pub popular_rps: f64,
}

impl Default for RoutingConfig {
    fn default() -> Self {
        RoutingConfig {
            // CH-RLU on the cluster ring (ε 0.05, fractional rounding, a walk of 32).
            placement: PlacementParams {
                popularity_gate: true,
                jitter: 0.25,
                ..cluster_params()
            },
            popular_rps: 5.0,
        }
    }
}

impl RoutingConfig {
    /// Checks the parameters.
    pub fn validate(&self) -> Result<(), String> {
        self.placement.validate().map_err(|e| e.to_string())?;
        if !(self.popular_rps.is_finite() && self.popular_rps >= 0.0) {
            return Err("routing.popular_rps must be a non-negative number".into());
        }
        Ok(())
    }
}

#[derive(Default)]
struct Seen {
    warm: HashSet<String>,
    pipelines: HashSet<String>,
    draining: bool,
    inflight: u32,
    suspect_until: Option<Instant>,
    reported: Load,
}

/// Arrivals per function over the last full second, for the popularity gate.
#[derive(Default)]
struct Rate {
    window: u64,
    count: u32,
    last: u32,
}

struct Routing {
    ring: Placement<String>,
    /// The `workers/` cache revision the ring reflects.
    applied: i64,
    seen: HashMap<String, Seen>,
    rates: HashMap<String, Rate>,
}

impl Routing {
    /// Rebuilds the ring when membership changed.
    fn sync(&mut self, members: &Cache<Member>) {
        let rev = members.revision();
        if rev == self.applied && self.ring.len() == members.len() {
            return;
        }
        let now: HashMap<String, u32> = members
            .snapshot()
            .into_iter()
            .map(|(id, m)| (id, m.value.capacity().min(MAX_WEIGHT)))
            .collect();
        let gone: Vec<String> = self
            .ring
            .bins()
            .map(|(b, _, _)| b.clone())
            .filter(|b| !now.contains_key(b))
            .collect();
        for b in gone {
            let _ = self.ring.leave(&b);
            self.seen.remove(&b);
        }
        for (id, w) in now {
            if !self.ring.contains(&id) {
                let _ = self.ring.join(id, w);
            } else if self.ring.bins().any(|(b, bw, _)| *b == id && bw != w) {
                let _ = self.ring.set_weight(&id, w);
            }
        }
        self.applied = rev;
    }

    /// Counts an arrival; whether the function is popular.
    fn popular(&mut self, key: &str, threshold: f64, now_s: u64) -> bool {
        let r = self.rates.entry(key.to_string()).or_default();
        if r.window != now_s {
            r.last = if r.window + 1 == now_s { r.count } else { 0 };
            r.window = now_s;
            r.count = 0;
        }
        r.count += 1;
        f64::from(r.last.max(r.count)) > threshold
    }
}

/// A chosen worker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pick {
    /// Member id.
    pub id: String,
    /// Address to call.
    pub addr: String,
}

/// The router's view of worker load and its choices.
pub struct Balancer {
    members: Arc<Cache<Member>>,
    routing: Mutex<Routing>,
    popular_rps: f64,
    started: Instant,
    /// Picks by how the policy found the worker, in [`PLACEMENT_KINDS`] order.
    placements: [AtomicU64; 4],
}

/// The names of the placement kinds counted by [`Balancer::placements`]: the function's home,
/// a warm (hinted) worker, a spill clockwise within the bound, and the power-of-two fallback
/// (no worker within the walk was under its bound; the fallback ignores the bound, so a large
/// share of these means the walk is too short or the cluster is full).
pub const PLACEMENT_KINDS: [&str; 4] = ["home", "hinted", "spilled", "fallback"];

/// One worker in the router's status.
#[derive(Clone, Debug, serde::Serialize)]
pub struct WorkerView {
    /// The membership record.
    pub member: Member,
    /// The last reported load.
    pub load: Load,
    /// The load the placement policy counts now (reports plus local increments).
    pub placement_load: f64,
    /// This router's calls to it in flight.
    pub inflight: u32,
    /// Whether it reported draining.
    pub draining: bool,
    /// Warm functions it reported.
    pub warm: Vec<String>,
}

impl Balancer {
    /// A balancer over the members in `members`; `seed` feeds the policy's random source (it
    /// should differ between routers).
    pub fn new(
        members: Arc<Cache<Member>>,
        cfg: &RoutingConfig,
        seed: u64,
    ) -> Result<Arc<Balancer>, String> {
        let params = PlacementParams {
            seed,
            ..cfg.placement.clone()
        };
        let ring = Placement::new(params).map_err(|e| e.to_string())?;
        Ok(Arc::new(Balancer {
            members,
            routing: Mutex::new(Routing {
                ring,
                applied: -1,
                seen: HashMap::new(),
                rates: HashMap::new(),
            }),
            popular_rps: cfg.popular_rps,
            started: Instant::now(),
            placements: Default::default(),
        }))
    }

    fn routing(&self) -> std::sync::MutexGuard<'_, Routing> {
        self.routing.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Chooses a worker for `key` (a function name, or `pipeline:<name>`), among `only` if
    /// given, skipping `exclude`d ones, and counts the call until [`Balancer::done`].
    pub fn pick(&self, key: &str, only: Option<&[String]>, exclude: &[String]) -> Option<Pick> {
        let now = Instant::now();
        let mut r = self.routing();
        r.sync(&self.members);
        let popular = r.popular(key, self.popular_rps, self.started.elapsed().as_secs());
        let Routing { ring, seen, .. } = &mut *r;
        let hints: Vec<(String, u8)> = seen
            .iter()
            .filter(|(_, s)| s.warm.contains(key))
            .map(|(id, _)| (id.clone(), 1))
            .collect();
        let usable = |id: &String| {
            !exclude.contains(id)
                && only.is_none_or(|o| o.contains(id))
                && seen
                    .get(id)
                    .is_none_or(|s| !s.draining && s.suspect_until.is_none_or(|t| t <= now))
        };
        let req = Request {
            key: Key::of_str(key),
            hints: &hints,
            usable: &usable,
            popular,
        };
        let choice = ring.place(&req)?;
        let kind = match choice.kind {
            ChoiceKind::Home => 0,
            ChoiceKind::Hinted => 1,
            ChoiceKind::Spilled { .. } => 2,
            ChoiceKind::Fallback => 3,
        };
        self.placements[kind].fetch_add(1, Ordering::Relaxed);
        let id = choice.bin;
        seen.entry(id.clone()).or_default().inflight += 1;
        let addr = self.members.get(&id)?.value.addr.clone();
        Some(Pick { id, addr })
    }

    /// Picks so far by kind, in [`PLACEMENT_KINDS`] order.
    pub fn placements(&self) -> [u64; 4] {
        self.placements
            .each_ref()
            .map(|c| c.load(Ordering::Relaxed))
    }

    /// Ends a call counted by [`Balancer::pick`], recording the load the worker reported
    /// with its answer (or, without one, taking the call off the local count); `warm` marks
    /// the key warm there.
    pub fn done(&self, id: &str, load: Option<Load>, warm: Option<&str>) {
        let mut r = self.routing();
        let Routing { ring, seen, .. } = &mut *r;
        let id = id.to_string();
        match load {
            Some(l) => {
                let _ = ring.set_load(&id, f64::from(l.outstanding()));
            }
            None => {
                let _ = ring.add_load(&id, -1.0);
            }
        }
        let s = seen.entry(id).or_default();
        s.inflight = s.inflight.saturating_sub(1);
        if let Some(l) = load {
            s.reported = l;
        }
        if let Some(f) = warm {
            if !s.warm.contains(f) {
                s.warm.insert(f.to_string());
            }
        }
    }

    /// Passes over a worker that refused a connection for a while.
    pub fn suspect(&self, id: &str) {
        self.routing()
            .seen
            .entry(id.to_string())
            .or_default()
            .suspect_until = Some(Instant::now() + SUSPECT_FOR);
    }

    /// Records a `GET /v1/load` report.
    pub fn report(&self, id: &str, rep: LoadReport) {
        let mut r = self.routing();
        let id = id.to_string();
        let _ = r.ring.set_load(&id, f64::from(rep.load.outstanding()));
        let s = r.seen.entry(id).or_default();
        s.reported = rep.load;
        s.draining = rep.draining;
        s.warm = rep.warm.into_iter().collect();
        s.pipelines = rep.pipelines.into_iter().collect();
        s.suspect_until = None;
    }

    /// How many more calls this router should have in flight: the device tokens of the usable
    /// members, less its calls in flight. Dispatchers pull no more than this, so a
    /// router does not hold invocations that would only wait in workers' queues (and run
    /// again elsewhere if the router died).
    pub fn spare(&self) -> usize {
        let now = Instant::now();
        let r = self.routing();
        let mut room = 0usize;
        let mut inflight = 0usize;
        for (id, m) in self.members.snapshot() {
            let s = r.seen.get(&id);
            inflight += s.map_or(0, |s| s.inflight as usize);
            if s.is_none_or(|s| !s.draining && s.suspect_until.is_none_or(|t| t <= now)) {
                room += m.value.capacity() as usize;
            }
        }
        room.saturating_sub(inflight)
    }

    /// Workers that reported `pipeline` deployed.
    pub fn serving(&self, pipeline: &str) -> Vec<String> {
        self.routing()
            .seen
            .iter()
            .filter(|(_, s)| s.pipelines.contains(pipeline))
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Every live member with what the router knows of it.
    pub fn view(&self) -> Vec<WorkerView> {
        let members = self.members.snapshot();
        let r = self.routing();
        members
            .into_iter()
            .map(|(id, m)| {
                let s = r.seen.get(&id);
                WorkerView {
                    member: (*m.value).clone(),
                    load: s.map(|s| s.reported).unwrap_or_default(),
                    placement_load: r.ring.load(&id).unwrap_or(0.0),
                    inflight: s.map_or(0, |s| s.inflight),
                    draining: s.is_some_and(|s| s.draining),
                    warm: s
                        .map(|s| s.warm.iter().cloned().collect())
                        .unwrap_or_default(),
                }
            })
            .collect()
    }

    /// Polls every member's `GET /v1/load` every `every`, forever; forgets departed members.
    pub async fn poll_loads(self: Arc<Self>, client: WorkerClient, every: Duration) {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let members = self.members.snapshot();
            let live: HashSet<String> = members.iter().map(|(id, _)| id.clone()).collect();
            self.routing().seen.retain(|id, _| live.contains(id));
            let polls = members.into_iter().map(|(id, m)| {
                let client = client.clone();
                async move {
                    let r = client
                        .get_json::<LoadReport>(
                            &m.value.addr,
                            "/v1/load",
                            every.max(Duration::from_millis(500)),
                        )
                        .await;
                    (id, r)
                }
            });
            for (id, r) in futures_util::future::join_all(polls).await {
                match r {
                    Ok(report) => self.report(&id, report),
                    Err(e) => tracing::debug!(worker = %id, "load poll failed: {e}"),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;

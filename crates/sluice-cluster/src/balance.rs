//! Which worker an invocation goes to. The balancer keeps, per member, what it knows of its
//! load: the last report (`x-sluice-load` on every response, `GET /v1/load` polled for locality
//! hints), this router's own outstanding calls to it, and whether it recently refused a
//! connection (suspect for 2 s). The choice itself is [`choose`], over [`Bin`]s built from
//! membership and that view.

use crate::cache::Cache;
use crate::forward::WorkerClient;
use crate::model::{Load, LoadReport, Member};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a worker that refused a connection is passed over.
const SUSPECT_FOR: Duration = Duration::from_secs(2);

#[derive(Default)]
struct Seen {
    reported: Load,
    warm: HashSet<String>,
    pipelines: HashSet<String>,
    draining: bool,
    inflight: u32,
    suspect_until: Option<Instant>,
}

/// A worker as the placement choice sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct Bin {
    /// Member id.
    pub id: String,
    /// Capacity weight (device tokens).
    pub weight: u32,
    /// Invocations it holds by the latest knowledge (its report, or this router's own count
    /// if higher).
    pub load: u32,
    /// Whether it has a warm sandbox of the function.
    pub warm: bool,
}

/// Chooses a bin for `key`: the least loaded relative to weight among the warm bins that have
/// a free token, else among all. `None` when there is no bin. (Until the shared placement
/// policy lands this is a plain least-loaded choice with a warm preference.)
pub fn choose(bins: &[Bin], _key: &str) -> Option<usize> {
    let ratio = |b: &Bin| f64::from(b.load) / f64::from(b.weight.max(1));
    let best = |pred: &dyn Fn(&Bin) -> bool| {
        bins.iter()
            .enumerate()
            .filter(|(_, b)| pred(b))
            .min_by(|(_, a), (_, b)| ratio(a).total_cmp(&ratio(b)).then(a.id.cmp(&b.id)))
            .map(|(i, _)| i)
    };
    best(&|b| b.warm && b.load < b.weight).or_else(|| best(&|_| true))
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
    seen: Mutex<HashMap<String, Seen>>,
}

/// One worker in the router's status.
#[derive(Clone, Debug, serde::Serialize)]
pub struct WorkerView {
    /// The membership record.
    pub member: Member,
    /// The last reported load.
    pub load: Load,
    /// This router's calls to it in flight.
    pub inflight: u32,
    /// Whether it reported draining.
    pub draining: bool,
    /// Warm functions it reported.
    pub warm: Vec<String>,
}

impl Balancer {
    /// A balancer over the members in `members`.
    pub fn new(members: Arc<Cache<Member>>) -> Arc<Balancer> {
        Arc::new(Balancer {
            members,
            seen: Mutex::new(HashMap::new()),
        })
    }

    fn seen(&self) -> std::sync::MutexGuard<'_, HashMap<String, Seen>> {
        self.seen.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Chooses a worker for `function` (among `only`, if given), skipping `exclude`d ones,
    /// and counts the call as in flight until [`Balancer::done`].
    pub fn pick(
        &self,
        function: &str,
        only: Option<&[String]>,
        exclude: &[String],
    ) -> Option<Pick> {
        let members = self.members.snapshot();
        let now = Instant::now();
        let mut seen = self.seen();
        let mut bins = Vec::with_capacity(members.len());
        let mut addrs = Vec::with_capacity(members.len());
        for (id, m) in &members {
            if exclude.contains(id) || only.is_some_and(|o| !o.contains(id)) {
                continue;
            }
            let s = seen.entry(id.clone()).or_default();
            if s.draining || s.suspect_until.is_some_and(|t| t > now) {
                continue;
            }
            bins.push(Bin {
                id: id.clone(),
                weight: m.value.capacity(),
                load: s.reported.outstanding().max(s.inflight),
                warm: s.warm.contains(function),
            });
            addrs.push(m.value.addr.clone());
        }
        let i = choose(&bins, function)?;
        let id = bins[i].id.clone();
        if let Some(s) = seen.get_mut(&id) {
            s.inflight += 1;
            // Until the next report says otherwise, count the call in the reported load too,
            // so other picks see it at once.
            s.reported.queued += 1;
        }
        Some(Pick {
            id,
            addr: addrs.swap_remove(i),
        })
    }

    /// Ends a call counted by [`Balancer::pick`], recording the load the worker reported.
    pub fn done(&self, id: &str, load: Option<Load>, function: Option<&str>) {
        let mut seen = self.seen();
        if let Some(s) = seen.get_mut(id) {
            s.inflight = s.inflight.saturating_sub(1);
            match load {
                Some(l) => s.reported = l,
                None => s.reported.queued = s.reported.queued.saturating_sub(1),
            }
            if let Some(f) = function {
                if !s.warm.contains(f) {
                    s.warm.insert(f.to_string());
                }
            }
        }
    }

    /// Passes over a worker that refused a connection for a while.
    pub fn suspect(&self, id: &str) {
        if let Some(s) = self.seen().get_mut(id) {
            s.suspect_until = Some(Instant::now() + SUSPECT_FOR);
        }
    }

    /// Records a `GET /v1/load` report.
    pub fn report(&self, id: &str, r: LoadReport) {
        let mut seen = self.seen();
        let s = seen.entry(id.to_string()).or_default();
        s.reported = r.load;
        s.draining = r.draining;
        s.warm = r.warm.into_iter().collect();
        s.pipelines = r.pipelines.into_iter().collect();
        s.suspect_until = None;
    }

    /// Workers that reported `pipeline` deployed.
    pub fn serving(&self, pipeline: &str) -> Vec<String> {
        self.seen()
            .iter()
            .filter(|(_, s)| s.pipelines.contains(pipeline))
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Every live member with what the router knows of it.
    pub fn view(&self) -> Vec<WorkerView> {
        let members = self.members.snapshot();
        let seen = self.seen();
        members
            .into_iter()
            .map(|(id, m)| {
                let s = seen.get(&id);
                WorkerView {
                    member: (*m.value).clone(),
                    load: s.map(|s| s.reported).unwrap_or_default(),
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
            self.seen().retain(|id, _| live.contains(id));
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
mod tests {
    use super::*;

    fn bin(id: &str, weight: u32, load: u32, warm: bool) -> Bin {
        Bin {
            id: id.into(),
            weight,
            load,
            warm,
        }
    }

    #[test]
    fn warm_with_room_first_then_least_loaded() {
        let bins = [
            bin("a", 4, 1, false),
            bin("b", 4, 3, true),
            bin("c", 4, 0, false),
        ];
        assert_eq!(choose(&bins, "f"), Some(1));
        let full = [bin("a", 4, 1, false), bin("b", 4, 4, true)];
        assert_eq!(choose(&full, "f"), Some(0));
        assert_eq!(choose(&[], "f"), None);
    }
}

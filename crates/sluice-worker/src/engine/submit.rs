//! Submitting invocations: admission — the queue bounds (`max_queued`,
//! `max_queued_per_function`) and the predicted queueing delay against the function's
//! `max_queue_ms` (the model is `sluice_policy::admission`) — then enqueueing, and cancelling
//! the queued invocation of a caller that went away before it started.

use super::{Engine, Inner, InvokeError, Invoked, Pending, QueueKind, State};
use bytes::Bytes;
use sluice_core::{FunctionId, InvocationId};
use sluice_policy::admission::{decide, Admission};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::oneshot;

/// Awaited just before an invocation is sent to its sandbox (after any cold start): the moment
/// it really starts, where an asynchronous invocation is marked running and its attempt counted.
/// An error withdraws it: it is not sent, and ends as [`InvokeError::Withdrawn`].
pub type StartHook =
    Box<dyn FnOnce() -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>> + Send>;

/// Whether an invocation still has to pass admission.
#[derive(Default)]
pub enum Admitted {
    /// Not yet: the queue bounds and the predicted wait decide now.
    #[default]
    No,
    /// Admitted ahead of submission (see [`Ticket`]).
    Ticket(Ticket),
    /// An accepted asynchronous invocation recovered after a restart: it was admitted then.
    Recovered,
}

/// How an invocation is submitted.
#[derive(Default)]
pub struct InvokeOptions {
    /// Whether it was admitted already. An admitted invocation skips the queue bounds, the
    /// predicted-wait check and draining; only a stopping engine refuses it.
    pub admitted: Admitted,
    /// See [`StartHook`].
    pub on_start: Option<StartHook>,
    /// Keep what the function writes while it runs, in [`Invoked::logs`].
    pub logs: bool,
}

/// An admission granted before the invocation is submitted: the asynchronous API takes one,
/// stores the invocation durably, then submits it with the ticket. Meanwhile the scheduler
/// counts it as queued, so a burst of concurrent submissions cannot all be admitted against
/// the same short queue. Submitting it, or dropping the ticket, gives the reservation back.
pub struct Ticket {
    inner: Arc<Inner>,
    queue: QueueKind,
    func: FunctionId,
    est: sluice_core::Dur,
    held: bool,
}

impl Ticket {
    /// Gives the reservation back, under the state lock the caller holds.
    fn release(&mut self, st: &mut State) {
        if std::mem::take(&mut self.held) {
            st.sched(self.queue).release(self.func, self.est);
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if self.held {
            let inner = self.inner.clone();
            self.release(&mut inner.lock());
        }
    }
}

impl Engine {
    /// Admits one invocation of `name` ahead of its submission, or refuses it (429 with a retry
    /// time, 503 draining, 404 unknown). The asynchronous API takes this before it durably
    /// accepts an invocation, then submits it with the ticket.
    pub fn check_admission(&self, name: &str) -> Result<Ticket, InvokeError> {
        let mut st = self.inner.lock();
        let (func, queue) = self.inner.admit(&st, name, false)?;
        let est = st.sched(queue).reserve(func);
        Ok(Ticket {
            inner: self.inner.clone(),
            queue,
            func,
            est,
            held: true,
        })
    }

    /// Runs `name` on `input` and waits for its result. If this future is dropped before the
    /// invocation started (the HTTP client went away), the invocation is taken off the queue.
    pub async fn invoke_with(&self, name: &str, input: Bytes, opts: InvokeOptions) -> Invoked {
        match self.submit(name, input, opts) {
            Ok(inv) => inv.await,
            Err(e) => Invoked {
                result: Err(e),
                logs: None,
            },
        }
    }

    /// Queues one invocation; the future answers it.
    fn submit(
        &self,
        name: &str,
        input: Bytes,
        opts: InvokeOptions,
    ) -> Result<impl std::future::Future<Output = Invoked> + '_, InvokeError> {
        let (tx, rx) = oneshot::channel();
        let mut opts = opts;
        let (inv, actions) = {
            let mut st = self.inner.lock();
            if let Admitted::Ticket(t) = &mut opts.admitted {
                t.release(&mut st);
            }
            let admitted = !matches!(opts.admitted, Admitted::No);
            let (id, queue) = self.inner.admit(&st, name, admitted)?;
            *st.queued.entry(name.to_string()).or_default() += 1;
            st.queued_total += 1;
            let inv = st.next_invocation;
            st.next_invocation += 1;
            st.pending.insert(
                inv,
                Pending {
                    func: name.to_string(),
                    queue,
                    input,
                    arrived: Instant::now(),
                    reply: tx,
                    on_start: opts.on_start,
                    logs: opts.logs,
                },
            );
            let now = self.inner.now();
            st.sched(queue).submit(InvocationId(inv), id, now);
            (inv, self.inner.poll(&mut st, queue, now))
        };
        self.inner.execute(actions);
        let guard = CancelOnDrop {
            inner: &self.inner,
            inv: Some(inv),
        };
        Ok(async move {
            // The whole guard moves in (not just the field set below), so it is dropped here.
            let mut guard = guard;
            let answer = rx.await;
            guard.inv = None;
            answer.unwrap_or_else(|_| Invoked {
                result: Err(InvokeError::Internal("invocation dropped".into())),
                logs: None,
            })
        })
    }
}

impl Inner {
    /// The admission decision for one more invocation of `name`: its function and queue, or
    /// why it is refused.
    pub(super) fn admit(
        &self,
        st: &State,
        name: &str,
        admitted: bool,
    ) -> Result<(FunctionId, QueueKind), InvokeError> {
        if st.stopping {
            return Err(InvokeError::ShuttingDown);
        }
        if st.draining && !admitted {
            return Err(InvokeError::Draining);
        }
        let f = st
            .functions
            .get(name)
            .ok_or_else(|| InvokeError::UnknownFunction(name.to_string()))?;
        if admitted {
            return Ok((f.id, f.queue));
        }
        let sched = st.sched_ref(f.queue);
        let predicted = sched.predict_wait(f.id);
        let bound_ms = self
            .spec(st, f.id)
            .map_or(u64::MAX, |spec| spec.max_queue_ms());
        let bound = sluice_core::Dur::from_millis(bound_ms);
        let per_fn = st.queued.get(name).copied().unwrap_or(0);
        if st.queued_total >= self.cfg.max_queued || per_fn >= self.cfg.max_queued_per_function {
            let retry = match decide(predicted, sluice_core::Dur::ZERO) {
                Admission::Refuse { retry_after, .. } => retry_after.as_secs_f64() as u64,
                Admission::Admit => 1,
            };
            return Err(InvokeError::QueueFull {
                queued: st.queued_total,
                retry_after_s: retry.max(1),
            });
        }
        match decide(predicted, bound) {
            Admission::Admit => Ok((f.id, f.queue)),
            Admission::Refuse {
                predicted,
                retry_after,
            } => Err(InvokeError::Overloaded {
                predicted_ms: predicted.as_micros() / 1_000,
                bound_ms,
                retry_after_s: retry_after.as_secs_f64() as u64,
            }),
        }
    }

    /// The caller of queued invocation `inv` went away: if it has not started, it never will.
    fn abandon(self: &Arc<Self>, inv: u64) {
        let mut st = self.lock();
        let Some(q) = st.pending.get(&inv).map(|p| p.queue) else {
            return;
        };
        // Once dispatched it runs to the end (its answer is dropped): the scheduler has
        // already given it a token and perhaps a sandbox.
        if st.sched(q).cancel(InvocationId(inv)) {
            if let Some(p) = st.take_pending(inv) {
                self.metrics.count(&p.func, "abandoned");
            }
        }
    }
}

/// Cancels a still-queued invocation when the future waiting for it is dropped.
struct CancelOnDrop<'a> {
    inner: &'a Arc<Inner>,
    inv: Option<u64>,
}

impl Drop for CancelOnDrop<'_> {
    fn drop(&mut self) {
        if let Some(inv) = self.inv.take() {
            self.inner.abandon(inv);
        }
    }
}

//! Ending queued invocations before they start: those of a deleted function, one that no device
//! can hold (the scheduler's `Reject`), and every one at a graceful stop, which then waits for
//! the running ones. Each is cancelled in its scheduler (so it never takes a token) and its
//! caller answered with the reason.

use super::{Engine, Inner, InvokeError, QueueKind};
use sluice_core::InvocationId;
use sluice_policy::scheduler::Reject;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

impl Engine {
    /// Forgets a function; its idle sandboxes expire with keep-alive. Its queued invocations
    /// fail now as [`InvokeError::FunctionDeleted`]; running ones finish. True if it existed.
    pub fn unregister(&self, name: &str) -> bool {
        let mut st = self.inner.lock();
        if st.functions.remove(name).is_none() {
            return false;
        }
        let queued: Vec<(u64, QueueKind)> = st
            .pending
            .iter()
            .filter(|(_, p)| p.func == name)
            .map(|(&inv, p)| (inv, p.queue))
            .collect();
        for (inv, q) in queued {
            if st.sched(q).cancel(InvocationId(inv)) {
                if let Some(p) = st.take_pending(inv) {
                    let err = InvokeError::FunctionDeleted(name.to_string());
                    super::exec::respond(&self.inner.metrics, &p.func, p.reply, Err(err));
                }
            }
        }
        true
    }

    /// Stops for good: nothing more is queued, and every queued invocation ends now as
    /// [`InvokeError::ShuttingDown`] without starting (an accepted asynchronous one stays Queued
    /// in the store, to run at the next start). Running invocations go on; see
    /// [`Engine::wait_idle`]. Returns how many queued invocations were ended.
    pub fn stop(&self) -> usize {
        let mut st = self.inner.lock();
        st.stopping = true;
        st.draining = true;
        let queued: Vec<(u64, QueueKind)> =
            st.pending.iter().map(|(&inv, p)| (inv, p.queue)).collect();
        let mut ended = 0;
        for (inv, q) in queued {
            if st.sched(q).cancel(InvocationId(inv)) {
                if let Some(p) = st.take_pending(inv) {
                    let err = InvokeError::ShuttingDown;
                    super::exec::respond(&self.inner.metrics, &p.func, p.reply, Err(err));
                    ended += 1;
                }
            }
        }
        ended
    }

    /// Waits until no invocation is running, at most `grace`; true if none is.
    pub async fn wait_idle(&self, grace: Duration) -> bool {
        let inner = &self.inner;
        let wait = async {
            loop {
                let notified = inner.idle.notified();
                tokio::pin!(notified);
                // Registered before the check, so a wake-up in between is not lost.
                notified.as_mut().enable();
                if inner.running.load(Ordering::Acquire) == 0 {
                    return;
                }
                notified.await;
            }
        };
        tokio::time::timeout(grace, wait).await.is_ok()
    }

    /// Invocations dispatched and not yet answered.
    pub fn running(&self) -> usize {
        self.inner.running.load(Ordering::Acquire)
    }
}

impl Inner {
    /// The scheduler took `r.inv` off its queue: no device can ever hold it.
    pub(super) fn reject(self: &Arc<Self>, r: Reject) {
        let pending = self.lock().take_pending(r.inv.id.0);
        if let Some(p) = pending {
            tracing::warn!(function = %p.func, "invocation rejected: {}", r.reason);
            let err = InvokeError::Unplaceable(r.reason.to_string());
            super::exec::respond(&self.metrics, &p.func, p.reply, Err(err));
        }
    }
}

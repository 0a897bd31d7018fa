//! Between an invocation's dispatch and its run: counting it as running (so a graceful stop can
//! wait for it), catching a warm sandbox whose process exited while idle before anything is sent
//! to it, and withdrawing an invocation whose start hook refused (freeing its token and sandbox
//! without a sample for the estimator).

use super::{Inner, QueueKind};
use sluice_policy::scheduler::Start;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// Counts one dispatched invocation as running until dropped; the last one out wakes
/// [`Engine::wait_idle`](super::Engine::wait_idle).
pub(super) struct Running<'a>(&'a Inner);

impl<'a> Running<'a> {
    pub(super) fn new(inner: &'a Inner) -> Self {
        inner.running.fetch_add(1, Ordering::AcqRel);
        Running(inner)
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        if self.0.running.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

/// Before a warm start: if the sandbox's process has exited (it died while idle), the
/// scheduler forgets the sandbox and puts the invocation back at the head of its queue, and the
/// remains are cleaned up. True if it was dead.
pub(super) async fn put_back_if_dead(inner: &Arc<Inner>, q: QueueKind, s: &Start) -> bool {
    let (dead, actions) = {
        let mut st = inner.lock();
        let exited = st
            .live
            .get_mut(&(q, s.sandbox))
            .and_then(|sb| sb.try_exited());
        let Some(exit) = exited else {
            return false;
        };
        let dead = st.live.remove(&(q, s.sandbox));
        let now = inner.now();
        st.sched(q).sandbox_gone(s.sandbox, s.inv, now);
        tracing::warn!(sandbox = ?s.sandbox, "a sandbox exited while idle ({exit}); its invocation goes elsewhere");
        (dead, inner.poll(&mut st, q, now))
    };
    inner.execute(actions);
    if let Some(mut sandbox) = dead {
        sandbox.kill().await;
    }
    true
}

/// The invocation was withdrawn before it was sent: its token and sandbox are freed, with no
/// sample for the estimator.
pub(super) fn withdraw(inner: &Arc<Inner>, q: QueueKind, s: &Start) {
    let actions = {
        let mut st = inner.lock();
        let now = inner.now();
        st.sched(q).withdrawn(s.sandbox, s.inv.func, now);
        inner.poll(&mut st, q, now)
    };
    inner.execute(actions);
}

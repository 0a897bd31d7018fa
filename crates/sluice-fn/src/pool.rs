//! A cached thread pool for connections: a connection goes to an idle thread when there is one, else to
//! a new thread; a thread idle for [`IDLE_EXIT`] exits. The worker's client may open a connection per
//! invocation, and reusing threads saves a thread start and exit (stack map, unmap) on each.
//!
//! It owns only the threads; what a thread does with a connection is the caller's closure.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::Duration;

/// How long a thread waits for another connection before it exits.
pub const IDLE_EXIT: Duration = Duration::from_secs(30);

struct State<T> {
    /// Threads waiting in [`Pool::next`].
    idle: usize,
    /// Jobs handed over and not yet taken; never longer than `idle`.
    queue: VecDeque<T>,
}

/// Runs `work(job)` for each job on a reused or new thread.
pub struct Pool<T, F> {
    state: Mutex<State<T>>,
    ready: Condvar,
    work: F,
}

impl<T: Send + 'static, F: Fn(T) + Send + Sync + 'static> Pool<T, F> {
    pub fn new(work: F) -> Arc<Self> {
        Arc::new(Pool {
            state: Mutex::new(State {
                idle: 0,
                queue: VecDeque::new(),
            }),
            ready: Condvar::new(),
            work,
        })
    }

    /// Hands `job` to an idle thread, or starts one for it.
    pub fn submit(self: &Arc<Self>, job: T) -> std::io::Result<()> {
        {
            let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            if st.idle > st.queue.len() {
                st.queue.push_back(job);
                self.ready.notify_one();
                return Ok(());
            }
        }
        let pool = Arc::clone(self);
        std::thread::Builder::new()
            .name("sluice-fn-conn".into())
            .spawn(move || {
                let mut job = Some(job);
                while let Some(j) = job {
                    (pool.work)(j);
                    job = pool.next();
                }
            })
            .map(drop)
    }

    /// Waits for the next job; `None` after [`IDLE_EXIT`] without one (the thread then exits).
    fn next(&self) -> Option<T> {
        let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        st.idle += 1;
        let mut waited = Duration::ZERO;
        loop {
            if let Some(job) = st.queue.pop_front() {
                st.idle -= 1;
                return Some(job);
            }
            if waited >= IDLE_EXIT {
                st.idle -= 1;
                return None;
            }
            let t0 = std::time::Instant::now();
            st = self
                .ready
                .wait_timeout(st, IDLE_EXIT - waited)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
            waited += t0.elapsed();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    #[test]
    fn reuses_idle_threads() {
        let (tx, rx) = mpsc::channel();
        let tx = Mutex::new(tx);
        let pool = Pool::new(move |n: u32| {
            let id = std::thread::current().id();
            tx.lock().unwrap().send((n, id)).unwrap();
        });
        let mut ids = Vec::new();
        for n in 0..20 {
            pool.submit(n).unwrap();
            let (got, id) = rx.recv().unwrap();
            assert_eq!(got, n);
            ids.push(id);
            // Let the thread get back to waiting before the next job.
            while pool.state.lock().unwrap().idle == 0 {
                std::thread::yield_now();
            }
        }
        ids.dedup();
        assert_eq!(ids.len(), 1, "one thread should have served all jobs");
    }

    #[test]
    fn busy_threads_get_company() {
        let (tx, rx) = mpsc::channel();
        let tx = Mutex::new(tx);
        let pool = Pool::new(move |_: ()| {
            std::thread::sleep(Duration::from_millis(100));
            tx.lock().unwrap().send(()).unwrap();
        });
        let t0 = std::time::Instant::now();
        for _ in 0..4 {
            pool.submit(()).unwrap();
        }
        for _ in 0..4 {
            rx.recv().unwrap();
        }
        assert!(
            t0.elapsed() < Duration::from_millis(350),
            "{:?}",
            t0.elapsed()
        );
    }
}

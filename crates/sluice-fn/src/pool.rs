//! Connection threads that accept for themselves: every idle thread waits in `accept` on the
//! shared listener and serves the connection it gets, so a connection goes straight to the
//! thread that serves it. (A separate accept thread handing connections over costs one more
//! wake-up and context switch per connection, and the worker's client opens a connection per
//! invocation.)
//!
//! A thread that takes a connection while no other thread is idle starts one more first, so a
//! new connection never waits for a busy one; a thread that finishes while [`MAX_SPARE`] others
//! are idle exits, so a burst's threads do not outlive it. The calling thread accepts too,
//! forever, so there is always at least one thread accepting; a panic while serving a
//! connection ends that connection only, not the thread (which may be the process's main one).
//!
//! It owns only the threads; what a thread does with a connection is the caller's closure.

use std::io;
use std::os::unix::net::{UnixListener, UnixStream};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Most idle threads kept: one that finishes while this many others are idle exits.
pub const MAX_SPARE: usize = 4;

/// The listener, the serving closure, and how many threads are idle (waiting in `accept`, or
/// on their way there).
struct Acceptors<F> {
    listener: UnixListener,
    idle: AtomicUsize,
    work: F,
}

/// Serves every connection on `listener` with `work`, on the calling thread and on as many more
/// as connections are open at once. Never returns.
pub fn serve<F>(listener: UnixListener, work: F) -> !
where
    F: Fn(UnixStream) + Send + Sync + 'static,
{
    let shared = Arc::new(Acceptors {
        listener,
        idle: AtomicUsize::new(1),
        work,
    });
    shared.run(true);
    unreachable!("the calling thread accepts forever")
}

impl<F: Fn(UnixStream) + Send + Sync + 'static> Acceptors<F> {
    /// Accepts and serves connections, counted idle while not serving; returns only when
    /// `permanent` is false and enough other threads are idle.
    fn run(self: &Arc<Self>, permanent: bool) {
        loop {
            let accepted = self.listener.accept();
            if self.idle.fetch_sub(1, Ordering::AcqRel) == 1 {
                // Every thread is busy now: start one for the next connection.
                self.start_one();
            }
            match accepted {
                Ok((stream, _)) => {
                    // The panic message has gone to stderr; the stream is closed.
                    let _ = catch_unwind(AssertUnwindSafe(|| (self.work)(stream)));
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    // Typically out of file descriptors: back off instead of spinning.
                    eprintln!("sluice-fn: accept: {e}");
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
            if !permanent && self.idle.load(Ordering::Acquire) >= MAX_SPARE {
                return;
            }
            self.idle.fetch_add(1, Ordering::AcqRel);
        }
    }

    /// Starts one more accepting thread (idle from the start); if that fails the existing ones
    /// carry on.
    fn start_one(self: &Arc<Self>) {
        self.idle.fetch_add(1, Ordering::AcqRel);
        let shared = Arc::clone(self);
        let started = std::thread::Builder::new()
            .name("sluice-fn-conn".into())
            .spawn(move || shared.run(false));
        if let Err(e) = started {
            self.idle.fetch_sub(1, Ordering::AcqRel);
            eprintln!("sluice-fn: cannot start a connection thread: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::path::PathBuf;
    use std::sync::mpsc;
    use std::sync::Mutex;
    use std::time::Instant;

    /// A listener on a fresh socket path, served by `work` on a background thread.
    fn listen(name: &str, work: impl Fn(UnixStream) + Send + Sync + 'static) -> PathBuf {
        let path =
            std::env::temp_dir().join(format!("sluice-fn-pool-{name}-{}.sock", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path).unwrap();
        std::thread::spawn(move || serve(listener, work));
        path
    }

    /// Connects, writes one byte, and waits for the connection's one-byte answer.
    fn exchange(path: &PathBuf) {
        let mut s = UnixStream::connect(path).unwrap();
        s.write_all(b"x").unwrap();
        let mut b = [0u8; 1];
        s.read_exact(&mut b).unwrap();
    }

    fn answer(mut s: UnixStream) {
        let mut b = [0u8; 1];
        s.read_exact(&mut b).unwrap();
        s.write_all(b"y").unwrap();
    }

    #[test]
    fn sequential_connections_reuse_threads() {
        let (tx, rx) = mpsc::channel();
        let tx = Mutex::new(tx);
        let path = listen("reuse", move |s| {
            tx.lock()
                .unwrap()
                .send(std::thread::current().id())
                .unwrap();
            answer(s);
        });
        for _ in 0..50 {
            exchange(&path);
        }
        let mut ids: Vec<_> = rx.try_iter().collect();
        assert_eq!(ids.len(), 50);
        ids.sort_by_key(|id| format!("{id:?}"));
        ids.dedup();
        // Two threads take turns; a thread preempted before it counts itself idle again may
        // make a third start, and the spares are bounded.
        assert!(
            ids.len() <= MAX_SPARE + 1,
            "{} threads for one connection at a time",
            ids.len()
        );
        let _ = std::fs::remove_file(path);
    }

    #[test]
    fn a_panic_ends_the_connection_not_the_thread() {
        let path =
            std::env::temp_dir().join(format!("sluice-fn-pool-panic-{}.sock", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path).unwrap();
        // The first connection goes to the thread that called `serve` (the only one accepting).
        let caller = std::thread::spawn(move || {
            serve(listener, |s| {
                answer(s);
                panic!("serving failed after answering");
            })
        });
        for _ in 0..5 {
            exchange(&path);
        }
        std::thread::sleep(Duration::from_millis(100));
        assert!(!caller.is_finished(), "a panic ended the serving thread");
        exchange(&path);
        let _ = std::fs::remove_file(path);
    }

    #[test]
    fn concurrent_connections_get_their_own_threads() {
        let path = listen("busy", |s| {
            std::thread::sleep(Duration::from_millis(100));
            answer(s);
        });
        let t0 = Instant::now();
        let clients: Vec<_> = (0..8)
            .map(|_| {
                let p = path.clone();
                std::thread::spawn(move || exchange(&p))
            })
            .collect();
        clients.into_iter().for_each(|c| c.join().unwrap());
        assert!(
            t0.elapsed() < Duration::from_millis(350),
            "{:?}",
            t0.elapsed()
        );
        let _ = std::fs::remove_file(path);
    }
}

//! What a sandbox's processes write to stdout and stderr. Both pipes are read as the output
//! comes, so a function that prints a lot never blocks on a full pipe, and what is kept is
//! bounded:
//! - a ring of the last [`OUTPUT_RING`] bytes of both streams in arrival order, addressed by
//!   offsets in the sandbox's output (bytes of it since the sandbox started), so that a caller
//!   can take what was written between two points ([`Output::excerpt`]: one invocation's output);
//! - the last [`STDERR_TAIL`] bytes of stderr alone, for error messages;
//! - an optional [`OutputSink`] that gets every piece as it is read (the worker's logs).
//!
//! Pieces are whole lines where possible: each stream's unfinished line waits for its end, for
//! [`MAX_LINE`] bytes, or for [`Output::settle`], so stdout and stderr do not mix within a line.
//!
//! Memory stays bounded whatever the function prints, and so does the work: each stream is read
//! at most at [`READ_RATE`] bytes/s (after a burst of as much), so a function that prints
//! faster waits on its writes, as on a full pipe, instead of making the worker copy without end.

use std::collections::VecDeque;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// How much of a sandbox's output (stdout and stderr together) is kept.
pub const OUTPUT_RING: usize = 64 << 10;
/// How much of the function's stderr is kept for error messages.
pub const STDERR_TAIL: usize = 4096;
/// Longest unfinished line held back before it is kept as it is.
pub const MAX_LINE: usize = 8 << 10;
/// Bytes read from a pipe at once.
const READ_BUF: usize = 64 << 10;
/// Most bytes per second read from one stream, once a burst of as many is spent.
pub const READ_RATE: usize = 8 << 20;
/// Longest [`Output::settle`] waits for the readers to catch up.
const SETTLE_LIMIT: Duration = Duration::from_millis(50);

/// Which pipe a piece of output came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

impl Stream {
    fn index(self) -> usize {
        match self {
            Stream::Stdout => 0,
            Stream::Stderr => 1,
        }
    }

    /// `stdout` or `stderr`.
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// Receives a sandbox's output as it is read (see [`Output::attach`]). Called with the
/// sandbox's output lock held: it must not block, nor call back into the [`Output`].
pub trait OutputSink: Send + Sync {
    /// One piece of `stream` (whole lines where possible).
    fn write(&self, stream: Stream, bytes: &[u8]);
}

/// Part of a sandbox's output (see [`Output::excerpt`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Excerpt {
    /// The text (invalid UTF-8 replaced).
    pub text: String,
    /// Whether the start of the asked-for range is missing (beyond the bound, or no longer kept).
    pub truncated: bool,
}

struct Piece {
    offset: u64,
    stream: Stream,
    bytes: Vec<u8>,
}

struct Ring {
    pieces: VecDeque<Piece>,
    held: usize,
    /// Offset just past the last piece.
    end: u64,
    /// Each stream's unfinished line.
    partial: [Vec<u8>; 2],
    /// Bytes read from each pipe so far (unfinished lines included).
    consumed: [u64; 2],
    stderr: Vec<u8>,
    sink: Option<Arc<dyn OutputSink>>,
}

impl Ring {
    fn push(&mut self, stream: Stream, mut bytes: Vec<u8>) {
        if bytes.is_empty() {
            return;
        }
        if let Some(sink) = &self.sink {
            sink.write(stream, &bytes);
        }
        let mut offset = self.end;
        self.end += bytes.len() as u64;
        if bytes.len() > OUTPUT_RING {
            let cut = bytes.len() - OUTPUT_RING;
            bytes.drain(..cut);
            offset += cut as u64;
        }
        self.held += bytes.len();
        self.pieces.push_back(Piece {
            offset,
            stream,
            bytes,
        });
        while self.held > OUTPUT_RING {
            match self.pieces.pop_front() {
                Some(p) => self.held -= p.bytes.len(),
                None => break,
            }
        }
    }

    /// Keeps what a pipe of `stream` delivered: whole lines now, the rest once it ends.
    fn take(&mut self, stream: Stream, bytes: &[u8]) {
        let s = stream.index();
        self.consumed[s] += bytes.len() as u64;
        if stream == Stream::Stderr {
            self.stderr.extend_from_slice(bytes);
            let excess = self.stderr.len().saturating_sub(STDERR_TAIL);
            self.stderr.drain(..excess);
        }
        if let Some(last) = bytes.iter().rposition(|&b| b == b'\n') {
            let mut lines = std::mem::take(&mut self.partial[s]);
            lines.extend_from_slice(&bytes[..=last]);
            self.push(stream, lines);
            self.partial[s].extend_from_slice(&bytes[last + 1..]);
        } else {
            self.partial[s].extend_from_slice(bytes);
        }
        if self.partial[s].len() >= MAX_LINE {
            self.flush(stream);
        }
    }

    fn flush(&mut self, stream: Stream) {
        let rest = std::mem::take(&mut self.partial[stream.index()]);
        self.push(stream, rest);
    }
}

struct Shared {
    ring: Mutex<Ring>,
    /// Duplicates of the pipes' read ends, to ask how much is still unread (`FIONREAD`).
    pipes: [Option<OwnedFd>; 2],
    /// Woken after every read.
    progress: Notify,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Ring> {
        self.ring.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A sandbox's output; cheap to clone, readable after the sandbox is gone.
#[derive(Clone)]
pub struct Output {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Output")
            .field("position", &self.position())
            .finish()
    }
}

/// Bytes waiting in a pipe (0 if that cannot be told).
fn unread(fd: &OwnedFd) -> u64 {
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD writes one int through the pointer, on a descriptor we own.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), libc::FIONREAD, &mut n) };
    if rc == 0 {
        u64::try_from(n).unwrap_or(0)
    } else {
        0
    }
}

/// A token bucket of bytes: [`READ_RATE`] a second, holding at most as many.
struct Budget {
    tokens: f64,
    at: tokio::time::Instant,
}

impl Budget {
    fn new() -> Budget {
        Budget {
            tokens: READ_RATE as f64,
            at: tokio::time::Instant::now(),
        }
    }

    /// Waits until there is budget left, then spends nothing (see [`Budget::spend`]).
    async fn wait(&mut self) {
        let rate = READ_RATE as f64;
        let now = tokio::time::Instant::now();
        self.tokens = (self.tokens + now.duration_since(self.at).as_secs_f64() * rate).min(rate);
        self.at = now;
        if self.tokens < 0.0 {
            let short = Duration::from_secs_f64(-self.tokens / rate);
            tokio::time::sleep(short).await;
            self.tokens = 0.0;
            self.at = tokio::time::Instant::now();
        }
    }

    fn spend(&mut self, n: usize) {
        self.tokens -= n as f64;
    }
}

async fn read(mut pipe: impl AsyncRead + Unpin, stream: Stream, shared: Arc<Shared>) {
    let mut buf = vec![0u8; READ_BUF];
    let mut budget = Budget::new();
    loop {
        budget.wait().await;
        let got = pipe.read(&mut buf).await;
        if let Ok(n) = got {
            budget.spend(n);
        }
        match got {
            Ok(0) | Err(_) => break,
            Ok(n) => shared.lock().take(stream, &buf[..n]),
        }
        shared.progress.notify_waiters();
    }
    shared.lock().flush(stream);
    shared.progress.notify_waiters();
}

impl Output {
    /// Starts reading `stdout` and `stderr` (either may be absent); returns the output and the
    /// reader tasks (abort them when the sandbox goes).
    pub fn capture<O, E>(stdout: Option<O>, stderr: Option<E>) -> (Output, Vec<JoinHandle<()>>)
    where
        O: AsyncRead + AsFd + Unpin + Send + 'static,
        E: AsyncRead + AsFd + Unpin + Send + 'static,
    {
        let dup =
            |fd: Option<std::os::fd::BorrowedFd<'_>>| fd.and_then(|f| f.try_clone_to_owned().ok());
        let shared = Arc::new(Shared {
            ring: Mutex::new(Ring {
                pieces: VecDeque::new(),
                held: 0,
                end: 0,
                partial: [Vec::new(), Vec::new()],
                consumed: [0, 0],
                stderr: Vec::new(),
                sink: None,
            }),
            pipes: [
                dup(stdout.as_ref().map(AsFd::as_fd)),
                dup(stderr.as_ref().map(AsFd::as_fd)),
            ],
            progress: Notify::new(),
        });
        let mut readers = Vec::new();
        if let Some(o) = stdout {
            readers.push(tokio::spawn(read(o, Stream::Stdout, shared.clone())));
        }
        if let Some(e) = stderr {
            readers.push(tokio::spawn(read(e, Stream::Stderr, shared.clone())));
        }
        (Output { shared }, readers)
    }

    /// The offset just past what has been kept so far.
    pub fn position(&self) -> u64 {
        self.shared.lock().end
    }

    /// What was kept from offset `from` on, at most its last `max` bytes.
    pub fn excerpt(&self, from: u64, max: usize) -> Excerpt {
        let ring = self.shared.lock();
        let mut out = Vec::new();
        let mut truncated = ring.pieces.front().is_some_and(|p| p.offset > from)
            || (ring.pieces.is_empty() && ring.end > from);
        for p in ring
            .pieces
            .iter()
            .filter(|p| p.offset + p.bytes.len() as u64 > from)
        {
            let skip = usize::try_from(from.saturating_sub(p.offset)).unwrap_or(usize::MAX);
            out.extend_from_slice(p.bytes.get(skip..).unwrap_or_default());
        }
        drop(ring);
        if out.len() > max {
            let mut cut = out.len() - max;
            // Start at a character, not inside one.
            while out.get(cut).is_some_and(|b| b & 0xC0 == 0x80) {
                cut += 1;
            }
            out.drain(..cut);
            truncated = true;
        }
        Excerpt {
            text: String::from_utf8_lossy(&out).into_owned(),
            truncated,
        }
    }

    /// The last [`STDERR_TAIL`] bytes of stderr, trimmed.
    pub fn stderr_tail(&self) -> String {
        let t = self.shared.lock().stderr.clone();
        String::from_utf8_lossy(&t).trim_end().to_string()
    }

    /// Waits (at most 50 ms) until what the processes had written when it was called has been
    /// read, then keeps the streams' unfinished lines as they are: afterwards
    /// [`Output::position`] covers everything written before the call.
    pub async fn settle(&self) {
        let shared = &self.shared;
        let target = {
            let ring = shared.lock();
            [0, 1].map(|s| ring.consumed[s] + shared.pipes[s].as_ref().map_or(0, unread))
        };
        let deadline = tokio::time::Instant::now() + SETTLE_LIMIT;
        loop {
            let notified = shared.progress.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let caught_up = {
                let ring = shared.lock();
                ring.consumed[0] >= target[0] && ring.consumed[1] >= target[1]
            };
            if caught_up {
                break;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                break;
            }
        }
        let mut ring = shared.lock();
        ring.flush(Stream::Stdout);
        ring.flush(Stream::Stderr);
    }

    /// Sends everything still kept to `sink`, then every later piece as it is read.
    pub fn attach(&self, sink: Arc<dyn OutputSink>) {
        let mut ring = self.shared.lock();
        for p in &ring.pieces {
            sink.write(p.stream, &p.bytes);
        }
        ring.sink = Some(sink);
    }
}

#[cfg(test)]
#[path = "output_tests.rs"]
mod tests;

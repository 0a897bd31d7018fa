//! Function logs, as OpenWhisk users know activation logs: what functions write to stdout and
//! stderr, kept in two places.
//!
//! - **Per function** ([`FunctionLogs`]): every sandbox of a function feeds one ring of recent
//!   output ([`PER_FUNCTION`] bytes), in pieces tagged with the sandbox, the stream and the
//!   time, numbered across the worker so a reader can follow with "everything after `seq`". At
//!   most [`MAX_FUNCTIONS`] rings are kept: the function written to least recently loses its
//!   ring first, so the total stays bounded whatever functions print.
//! - **Per invocation** ([`InvocationLogs`]): the output its sandbox wrote while it ran, at most
//!   the last [`INVOCATION_TAIL`] bytes, taken by byte offsets of the sandbox's output stream at
//!   its start and end (the engine does this; an asynchronous invocation keeps it in its store
//!   record). With `concurrency` > 1 the invocations sharing a sandbox write to one stream, so
//!   each one's excerpt also holds what the others wrote meanwhile.
//!
//! Memory is bounded on both sides: a sandbox keeps [`sluice_sandbox::OUTPUT_RING`] bytes and
//! these rings [`PER_FUNCTION`] × [`MAX_FUNCTIONS`] in all.

use serde::{Deserialize, Serialize};
use sluice_sandbox::{OutputSink, Stream};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

/// Most bytes of an invocation's output kept with it.
pub const INVOCATION_TAIL: usize = 16 << 10;
/// Most bytes of recent output kept per function.
pub const PER_FUNCTION: usize = 64 << 10;
/// Most functions whose recent output is kept (the total bound: 16 MiB).
pub const MAX_FUNCTIONS: usize = 256;
/// Bytes each kept piece counts beyond its text (its tags), so many tiny pieces stay bounded.
const PIECE_OVERHEAD: usize = 64;

/// What a function wrote to stdout and stderr while one invocation ran (the end of it).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvocationLogs {
    /// Both streams in the order written, whole lines where possible.
    pub text: String,
    /// Whether earlier output of the invocation was left out (beyond [`INVOCATION_TAIL`]).
    pub truncated: bool,
}

/// One piece of a function's recent output.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LogEntry {
    /// Its number: increasing across the worker, never reused while it runs.
    pub seq: u64,
    /// When it was read, ms since the Unix epoch.
    pub at_ms: u64,
    /// The sandbox that wrote it (its serial, as text: it may exceed what a JSON number
    /// holds exactly in some languages).
    pub sandbox: String,
    /// `stdout` or `stderr`.
    pub stream: &'static str,
    /// The text (whole lines where possible).
    pub text: String,
}

/// A function's recent output after a point (see [`FunctionLogs::read`]).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct LogPage {
    /// Entries after the point, oldest first.
    pub entries: Vec<LogEntry>,
    /// The point to ask from next time (the last entry's `seq`, or the one asked with).
    pub next: u64,
    /// Whether output after the asked-for point is no longer kept (it was overwritten).
    pub dropped: bool,
}

struct Piece {
    seq: u64,
    at_ms: u64,
    sandbox: u64,
    stream: Stream,
    text: Vec<u8>,
}

#[derive(Default)]
struct Ring {
    pieces: VecDeque<Piece>,
    /// Bytes counted against [`PER_FUNCTION`].
    bytes: usize,
    /// The `seq` of the last piece dropped (0: none).
    dropped_through: u64,
    /// When it was last written to (a `seq`), for eviction.
    last_write: u64,
}

#[derive(Default)]
struct State {
    rings: HashMap<String, Ring>,
    next_seq: u64,
}

/// The recent output of every function; shared by the engine and the API.
#[derive(Default)]
pub struct FunctionLogs {
    state: Mutex<State>,
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl FunctionLogs {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Keeps a piece `function`'s sandbox `sandbox` wrote.
    pub fn write(&self, function: &str, sandbox: u64, stream: Stream, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        let mut st = self.lock();
        st.next_seq += 1;
        let seq = st.next_seq;
        if !st.rings.contains_key(function) && st.rings.len() >= MAX_FUNCTIONS {
            let oldest = (st.rings.iter())
                .min_by_key(|(_, r)| r.last_write)
                .map(|(name, _)| name.clone());
            if let Some(name) = oldest {
                st.rings.remove(&name);
            }
        }
        let ring = st.rings.entry(function.to_string()).or_default();
        let keep = bytes.len().min(PER_FUNCTION - PIECE_OVERHEAD);
        ring.pieces.push_back(Piece {
            seq,
            at_ms: now_ms(),
            sandbox,
            stream,
            text: bytes[bytes.len() - keep..].to_vec(),
        });
        ring.bytes += keep + PIECE_OVERHEAD;
        ring.last_write = seq;
        while ring.bytes > PER_FUNCTION {
            let Some(p) = ring.pieces.pop_front() else {
                break;
            };
            ring.bytes -= p.text.len() + PIECE_OVERHEAD;
            ring.dropped_through = p.seq;
        }
    }

    /// `function`'s kept output after `after` (0: all), at most `limit` entries (the oldest
    /// ones; ask again from `next` for more).
    pub fn read(&self, function: &str, after: u64, limit: usize) -> LogPage {
        let st = self.lock();
        let Some(ring) = st.rings.get(function) else {
            return LogPage {
                next: after,
                ..LogPage::default()
            };
        };
        let entries: Vec<LogEntry> = (ring.pieces.iter())
            .filter(|p| p.seq > after)
            .take(limit)
            .map(|p| LogEntry {
                seq: p.seq,
                at_ms: p.at_ms,
                sandbox: p.sandbox.to_string(),
                stream: p.stream.as_str(),
                text: String::from_utf8_lossy(&p.text).into_owned(),
            })
            .collect();
        LogPage {
            next: entries.last().map_or(after, |e| e.seq),
            dropped: ring.dropped_through > after,
            entries,
        }
    }

    /// A sink feeding `function`'s ring from its sandbox `sandbox`.
    pub fn sink(self: &Arc<Self>, function: &str, sandbox: u64) -> Arc<dyn OutputSink> {
        Arc::new(Sink {
            logs: self.clone(),
            function: function.into(),
            sandbox,
        })
    }
}

/// One sandbox's feed into its function's ring.
struct Sink {
    logs: Arc<FunctionLogs>,
    function: Arc<str>,
    sandbox: u64,
}

impl OutputSink for Sink {
    fn write(&self, stream: Stream, bytes: &[u8]) {
        self.logs.write(&self.function, self.sandbox, stream, bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reader_follows_by_seq_and_learns_what_it_missed() {
        let logs = FunctionLogs::default();
        logs.write("f", 1, Stream::Stdout, b"one\n");
        logs.write("g", 2, Stream::Stdout, b"other\n");
        logs.write("f", 1, Stream::Stderr, b"two\n");
        let page = logs.read("f", 0, 10);
        let texts: Vec<&str> = page.entries.iter().map(|e| e.text.as_str()).collect();
        assert_eq!(texts, ["one\n", "two\n"]);
        assert_eq!(page.entries[1].stream, "stderr");
        assert!(!page.dropped);
        let next = logs.read("f", page.next, 10);
        assert!(next.entries.is_empty() && next.next == page.next);
        assert_eq!(logs.read("f", 0, 1).entries.len(), 1, "the limit holds");
        assert_eq!(logs.read("nobody", 7, 10).next, 7);
    }

    #[test]
    fn each_function_and_the_total_stay_bounded() {
        let logs = FunctionLogs::default();
        let line = vec![b'x'; 1000];
        for _ in 0..1000 {
            logs.write("chatty", 1, Stream::Stdout, &line);
        }
        logs.write("chatty", 1, Stream::Stdout, &vec![b'y'; 1 << 20]);
        let page = logs.read("chatty", 0, usize::MAX);
        let kept: usize = page.entries.iter().map(|e| e.text.len()).sum();
        assert!(kept <= PER_FUNCTION, "{kept}");
        assert!(page.dropped);
        assert!(page.entries.last().is_some_and(|e| e.text.ends_with('y')));
        for f in 0..MAX_FUNCTIONS + 10 {
            logs.write(&format!("f{f}"), 1, Stream::Stdout, b"hi\n");
        }
        assert!(logs.lock().rings.len() <= MAX_FUNCTIONS);
        assert!(
            logs.read("chatty", 0, 10).entries.is_empty(),
            "least recent goes first"
        );
        assert_eq!(
            logs.read(&format!("f{}", MAX_FUNCTIONS + 9), 0, 10)
                .entries
                .len(),
            1
        );
    }
}

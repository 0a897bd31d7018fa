//! An uploaded archive as a blocking reader: the API handler pushes the request body's chunks
//! into a small bounded channel ([`UploadReader::channel`]) while the import reads them on a
//! blocking thread and writes them to a file in the store — the body is never held in memory.
//! The reader stops with an error past the upload limit or when the body fails, and remembers
//! why ([`UploadReader::failure`]), so the caller answers 413 or 400 rather than blaming the
//! archive.

use bytes::{Buf, Bytes};
use std::io::{self, Read};
use tokio::sync::mpsc;

/// Chunks in flight between the handler and the import.
const IN_FLIGHT: usize = 8;

/// Why an upload stopped before its end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UploadError {
    /// It grew past this many bytes.
    TooLarge(u64),
    /// Reading the request body failed (the message says how).
    Body(String),
}

/// The blocking side of an upload.
pub struct UploadReader {
    rx: mpsc::Receiver<Result<Bytes, String>>,
    buf: Bytes,
    read: u64,
    limit: u64,
    failure: Option<UploadError>,
}

impl UploadReader {
    /// A reader of at most `limit` bytes and the sender the handler feeds (`Err` ends the
    /// upload as failed; dropping the sender ends it).
    pub fn channel(limit: u64) -> (mpsc::Sender<Result<Bytes, String>>, UploadReader) {
        let (tx, rx) = mpsc::channel(IN_FLIGHT);
        let reader = UploadReader {
            rx,
            buf: Bytes::new(),
            read: 0,
            limit,
            failure: None,
        };
        (tx, reader)
    }

    /// Why the upload stopped early, if it did.
    pub fn failure(&self) -> Option<UploadError> {
        self.failure.clone()
    }

    /// Bytes received so far.
    pub fn received(&self) -> u64 {
        self.read
    }
}

impl Read for UploadReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if let Some(f) = &self.failure {
            return Err(io::Error::other(format!("upload stopped: {f:?}")));
        }
        while self.buf.is_empty() {
            match self.rx.blocking_recv() {
                None => return Ok(0),
                Some(Ok(chunk)) => {
                    self.read += chunk.len() as u64;
                    if self.read > self.limit {
                        self.failure = Some(UploadError::TooLarge(self.limit));
                        self.rx.close();
                        return Err(io::Error::other("the upload is over the limit"));
                    }
                    self.buf = chunk;
                }
                Some(Err(m)) => {
                    self.failure = Some(UploadError::Body(m.clone()));
                    self.rx.close();
                    return Err(io::Error::other(m));
                }
            }
        }
        let n = out.len().min(self.buf.len());
        out[..n].copy_from_slice(&self.buf[..n]);
        self.buf.advance(n);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_chunks_in_order_and_stops_past_the_limit() {
        let (tx, mut r) = UploadReader::channel(10);
        let feeder = std::thread::spawn(move || {
            for c in ["abc", "defg", "hij", "k"] {
                if tx.blocking_send(Ok(Bytes::from(c))).is_err() {
                    break;
                }
            }
        });
        let mut got = Vec::new();
        let e = r.read_to_end(&mut got).expect_err("over the limit");
        assert!(e.to_string().contains("limit"), "{e}");
        assert_eq!(got, b"abcdefghij");
        assert_eq!(r.failure(), Some(UploadError::TooLarge(10)));
        feeder.join().expect("feeder");

        let (tx, mut r) = UploadReader::channel(100);
        tx.blocking_send(Ok(Bytes::from("xy"))).expect("send");
        tx.blocking_send(Err("reset by peer".into())).expect("send");
        drop(tx);
        let mut got = Vec::new();
        assert!(r.read_to_end(&mut got).is_err());
        assert_eq!(r.failure(), Some(UploadError::Body("reset by peer".into())));

        let (tx, mut r) = UploadReader::channel(100);
        tx.blocking_send(Ok(Bytes::from("whole"))).expect("send");
        drop(tx);
        let mut got = String::new();
        r.read_to_string(&mut got).expect("read");
        assert_eq!(
            (got.as_str(), r.received(), r.failure()),
            ("whole", 5, None)
        );
    }
}

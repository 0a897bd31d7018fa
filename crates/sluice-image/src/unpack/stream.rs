//! The uncompressed stream of a layer: decompression (gzip, zstd or none) and hashing run on a
//! second thread while the caller consumes the tar, so unpacking uses two cores; the digest covers
//! every decoded byte, whether the consumer read it or not. [`PadAtEnd`] tolerates writers that omit
//! the final padding.

use crate::digest::{Digest, HashingReader};
use crate::spec::Compression;
use std::io::{self, Read};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};

/// Bytes handed from the decoding thread at a time.
const CHUNK: usize = 1 << 20;
/// Chunks in flight between the threads.
const IN_FLIGHT: usize = 8;

/// A reader of `blob` decompressed as `compression` says.
pub fn decoder<'a, R: Read + 'a>(
    compression: Compression,
    blob: R,
) -> io::Result<Box<dyn Read + 'a>> {
    Ok(match compression {
        Compression::None => Box::new(blob),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(blob)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(blob)?),
    })
}

/// Decodes `blob` on a second thread, hands the stream to `consume`, and returns what `consume`
/// returned with the sha256 of the whole decoded stream (`Err` when decoding failed and `consume`
/// did not already fail on it).
pub fn decode_in_background<R, T, E>(
    blob: R,
    compression: Compression,
    consume: impl FnOnce(&mut dyn Read) -> Result<T, E>,
) -> Result<(T, io::Result<Digest>), E>
where
    R: Read + Send,
{
    let stop = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let (tx, rx) = sync_channel::<io::Result<Vec<u8>>>(IN_FLIGHT);
        // Read chunks come back to be refilled, so the buffers are allocated once.
        let (give_back, recycled) = sync_channel::<Vec<u8>>(IN_FLIGHT + 2);
        let stop = &stop;
        let producer = scope.spawn(move || -> io::Result<Digest> {
            let mut hashing = HashingReader::new(decoder(compression, blob)?);
            let mut sending = true;
            loop {
                if stop.load(Ordering::Relaxed) {
                    return Err(io::Error::other("unpacking stopped"));
                }
                let mut chunk = recycled.try_recv().unwrap_or_default();
                chunk.resize(CHUNK, 0);
                let n = match hashing.read(&mut chunk) {
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        let _ = tx.send(Err(io::Error::new(e.kind(), e.to_string())));
                        return Err(e);
                    }
                };
                if n == 0 {
                    break;
                }
                chunk.truncate(n);
                // Once the consumer is done, the rest is only hashed.
                sending = sending && tx.send(Ok(chunk)).is_ok();
            }
            drop(tx);
            hashing.finish().map(|(digest, _)| digest)
        });
        let mut reader = ChannelReader {
            rx,
            give_back,
            chunk: Vec::new(),
            pos: 0,
        };
        let consumed = consume(&mut reader);
        if consumed.is_err() {
            stop.store(true, Ordering::Relaxed);
        }
        drop(reader);
        let digest = producer
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("the decoding thread panicked")));
        consumed.map(|value| (value, digest))
    })
}

/// The consuming end of the channel, as a reader.
struct ChannelReader {
    rx: Receiver<io::Result<Vec<u8>>>,
    give_back: SyncSender<Vec<u8>>,
    chunk: Vec<u8>,
    pos: usize,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.chunk.len() {
            match self.rx.recv() {
                Ok(chunk) => {
                    let used = std::mem::replace(&mut self.chunk, chunk?);
                    let _ = self.give_back.try_send(used);
                    self.pos = 0;
                }
                Err(_) => return Ok(0), // the producer is done
            }
        }
        let n = buf.len().min(self.chunk.len() - self.pos);
        buf[..n].copy_from_slice(&self.chunk[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Reads its inner stream, then (once that ends) up to [`PadAtEnd::PAD`] zero bytes: the padding
/// of the last entry and the end-of-archive blocks, which some writers leave out (umoci 0.4's
/// `insert`; Go's tar reader, and so Docker and containerd, accept such layers). The zeros are not
/// hashed, so a layer cut short anywhere still fails its diff id check.
pub struct PadAtEnd<R> {
    inner: R,
    padded: usize,
    ended: bool,
}

impl<R: Read> PadAtEnd<R> {
    /// One block of padding at most, plus the two end-of-archive blocks.
    const PAD: usize = 3 * 512;

    /// Wraps `inner`.
    pub fn new(inner: R) -> PadAtEnd<R> {
        PadAtEnd {
            inner,
            padded: 0,
            ended: false,
        }
    }
}

impl<R: Read> Read for PadAtEnd<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if !self.ended {
            let n = self.inner.read(buf)?;
            if n > 0 || buf.is_empty() {
                return Ok(n);
            }
            self.ended = true;
        }
        let n = buf.len().min(Self::PAD - self.padded);
        buf[..n].fill(0);
        self.padded += n;
        Ok(n)
    }
}

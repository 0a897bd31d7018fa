use super::*;
use std::io::Write;
use tokio::net::unix::pipe;

/// Output reading two fresh pipes; returns it with the write ends.
fn piped() -> (Output, std::fs::File, std::fs::File) {
    let (out_tx, out_rx) = pipe::pipe().expect("stdout pipe");
    let (err_tx, err_rx) = pipe::pipe().expect("stderr pipe");
    let (output, _readers) = Output::capture(Some(out_rx), Some(err_rx));
    let file = |tx: pipe::Sender| {
        let fd = tx.into_blocking_fd().expect("blocking fd");
        std::fs::File::from(fd)
    };
    (output, file(out_tx), file(err_tx))
}

#[derive(Default)]
struct Collect(Mutex<Vec<(Stream, String)>>);

impl OutputSink for Collect {
    fn write(&self, stream: Stream, bytes: &[u8]) {
        let text = String::from_utf8_lossy(bytes).into_owned();
        self.0.lock().expect("lock").push((stream, text));
    }
}

#[tokio::test]
async fn what_was_written_between_two_points_is_taken_whole_lines_first() {
    let (output, mut out, mut err) = piped();
    out.write_all(b"before\n").expect("write");
    output.settle().await;
    let from = output.position();
    out.write_all(b"one\ntwo, unfinished").expect("write");
    err.write_all(b"warning\n").expect("write");
    output.settle().await;
    let e = output.excerpt(from, 1 << 20);
    assert!(!e.truncated);
    assert!(
        e.text.contains("one\n") && e.text.contains("warning\n"),
        "{e:?}"
    );
    assert!(
        e.text.contains("two, unfinished"),
        "settle keeps unfinished lines: {e:?}"
    );
    assert!(!e.text.contains("before"), "{e:?}");
    assert_eq!(output.stderr_tail(), "warning");
    // Bounded: the last bytes only, starting at a character.
    let from = output.position();
    out.write_all("ééééé\n".as_bytes()).expect("write");
    output.settle().await;
    let e = output.excerpt(from, 4);
    assert!(e.truncated);
    assert_eq!(e.text, "é\n");
}

#[tokio::test]
async fn a_chatty_writer_never_blocks_and_memory_stays_bounded() {
    let (output, mut out, mut err) = piped();
    let line = [b'x'; 99];
    let writer = std::thread::spawn(move || {
        for i in 0..100_000u32 {
            out.write_all(&line).and_then(|()| out.write_all(b"\n"))?;
            if i % 1000 == 0 {
                err.write_all(&[b'e'; 100])?;
            }
        }
        Ok::<(), std::io::Error>(())
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !writer.is_finished() {
        assert!(std::time::Instant::now() < deadline, "the writer blocked");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    writer.join().expect("writer").expect("10 MB written");
    output.settle().await;
    let ring = output.shared.lock();
    assert!(ring.held <= OUTPUT_RING, "{} bytes held", ring.held);
    assert!(ring.stderr.len() <= STDERR_TAIL);
    assert!(ring.partial.iter().all(|p| p.len() < MAX_LINE));
    assert!(ring.end >= 10_000_000, "{} bytes seen", ring.end);
    drop(ring);
    let e = output.excerpt(0, 16 << 10);
    assert!(e.truncated && e.text.len() <= 16 << 10);
}

#[tokio::test]
async fn a_stream_is_read_no_faster_than_its_rate_after_a_burst() {
    let (output, out, _err) = piped();
    let mut out = out;
    let started = std::time::Instant::now();
    let _writer = std::thread::spawn(move || {
        let chunk = vec![b'z'; 1 << 16];
        while out.write_all(&chunk).is_ok() {}
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let read = output.shared.lock().consumed[0] as f64;
    let secs = started.elapsed().as_secs_f64();
    let bound = READ_RATE as f64 * (1.0 + secs) + (2 * READ_BUF) as f64;
    assert!(read <= bound, "{read} bytes read in {secs:.2} s");
    assert!(read >= READ_RATE as f64 / 2.0, "only {read} bytes read");
}

#[tokio::test]
async fn a_sink_gets_what_was_kept_then_every_piece_with_its_stream() {
    let (output, mut out, mut err) = piped();
    out.write_all(b"early\n").expect("write");
    output.settle().await;
    let sink = Arc::new(Collect::default());
    output.attach(sink.clone());
    err.write_all(b"late\n").expect("write");
    output.settle().await;
    let got = sink.0.lock().expect("lock").clone();
    assert_eq!(
        got,
        vec![
            (Stream::Stdout, "early\n".to_string()),
            (Stream::Stderr, "late\n".to_string())
        ]
    );
}

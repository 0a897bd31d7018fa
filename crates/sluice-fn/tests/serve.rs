//! End-to-end tests of `sluice_fn::serve_at`: a server on a temporary Unix socket, spoken to with
//! raw HTTP/1.1 over `UnixStream` (ready, invoke, errors, keep-alive, concurrency), plus an ignored
//! throughput measurement (`cargo test -p sluice-fn --release -- --ignored --nocapture`).

use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

fn handler(input: Value) -> Result<Value, String> {
    if let Some(msg) = input.get("fail").and_then(Value::as_str) {
        return Err(msg.to_string());
    }
    if input.get("panic").is_some() {
        panic!("boom");
    }
    if let Some(ms) = input.get("sleep_ms").and_then(Value::as_u64) {
        std::thread::sleep(Duration::from_millis(ms));
    }
    Ok(json!({ "echo": input }))
}

/// Starts a server on a fresh socket path (with a stale file already there) and returns the path.
fn start() -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let name = format!(
        "sluice-fn-{}-{}.sock",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    let path = std::env::temp_dir().join(name);
    std::fs::write(&path, b"stale").unwrap();
    let p = path.clone();
    std::thread::spawn(move || sluice_fn::serve_at(p, handler));
    for _ in 0..500 {
        if UnixStream::connect(&path).is_ok() {
            return path;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    panic!("server did not come up on {}", path.display());
}

/// Reads one response: (status, headers lower-cased, body).
fn read_response(r: &mut BufReader<UnixStream>) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    let status: u16 = line.split(' ').nth(1).unwrap().parse().unwrap();
    let mut headers = Vec::new();
    loop {
        line.clear();
        r.read_line(&mut line).unwrap();
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        let (k, v) = l.split_once(':').unwrap();
        headers.push((k.to_ascii_lowercase(), v.trim().to_string()));
    }
    let len: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .map(|(_, v)| v.parse().unwrap())
        .unwrap();
    let mut body = vec![0; len];
    r.read_exact(&mut body).unwrap();
    (status, headers, body)
}

fn request(path: &PathBuf, raw: &[u8]) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let mut s = UnixStream::connect(path).unwrap();
    s.write_all(raw).unwrap();
    read_response(&mut BufReader::new(s))
}

fn post(body: &str) -> Vec<u8> {
    format!(
        "POST /invoke HTTP/1.1\r\nHost: f\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn json_of(body: &[u8]) -> Value {
    serde_json::from_slice(body).unwrap()
}

#[test]
fn ready_invoke_and_errors() {
    let path = start();
    let (s, _, b) = request(&path, b"GET /ready HTTP/1.1\r\nHost: f\r\n\r\n");
    assert_eq!((s, b.as_slice()), (200, &b"ok"[..]));

    let (s, h, b) = request(&path, &post(r#"{"name":"x"}"#));
    assert_eq!(s, 200);
    assert!(h.contains(&("content-type".into(), "application/json".into())));
    assert_eq!(json_of(&b), json!({"echo": {"name": "x"}}));

    let (s, _, b) = request(&path, &post(""));
    assert_eq!((s, json_of(&b)), (200, json!({"echo": null})));

    let (s, _, b) = request(&path, &post("{not json"));
    assert_eq!(s, 400);
    assert!(json_of(&b)["error"]
        .as_str()
        .unwrap()
        .contains("invalid JSON"));

    let (s, _, b) = request(&path, &post(r#"{"fail":"no model"}"#));
    assert_eq!((s, json_of(&b)), (500, json!({"error": "no model"})));

    let (s, _, b) = request(&path, &post(r#"{"panic":1}"#));
    assert_eq!(s, 500);
    assert!(json_of(&b)["error"].as_str().unwrap().contains("boom"));

    let (s, _, b) = request(&path, b"GET /nope HTTP/1.1\r\n\r\n");
    assert_eq!(s, 404);
    assert!(json_of(&b)["error"].is_string());
    assert_eq!(request(&path, b"GET /invoke HTTP/1.1\r\n\r\n").0, 405);

    let chunked =
        b"POST /invoke HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n";
    assert_eq!(request(&path, chunked).0, 400);
    let big = b"POST /invoke HTTP/1.1\r\nContent-Length: 100000000\r\n\r\n";
    let (s, h, _) = request(&path, big);
    assert_eq!(s, 413);
    assert!(h.contains(&("connection".into(), "close".into())));
    let _ = std::fs::remove_file(path);
}

#[test]
fn keep_alive_and_close() {
    let path = start();
    let mut s = UnixStream::connect(&path).unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    // Two requests on one connection, the second pipelined with the first's body.
    let mut two = post(r#"{"i":1}"#);
    two.extend(post(r#"{"i":2}"#));
    s.write_all(&two).unwrap();
    assert_eq!(json_of(&read_response(&mut r).2), json!({"echo": {"i": 1}}));
    assert_eq!(json_of(&read_response(&mut r).2), json!({"echo": {"i": 2}}));
    // A third one after a bad body still works: the framing was intact.
    s.write_all(&post("nope")).unwrap();
    assert_eq!(read_response(&mut r).0, 400);
    s.write_all(b"GET /ready HTTP/1.1\r\nConnection: close\r\n\r\n")
        .unwrap();
    let (st, h, _) = read_response(&mut r);
    assert_eq!(st, 200);
    assert!(h.contains(&("connection".into(), "close".into())));
    let mut rest = Vec::new();
    r.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty(), "server must close after Connection: close");
    let _ = std::fs::remove_file(path);
}

#[test]
fn concurrent_connections_run_in_parallel() {
    let path = start();
    let t0 = Instant::now();
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let p = path.clone();
            std::thread::spawn(move || request(&p, &post(r#"{"sleep_ms":300}"#)).0)
        })
        .collect();
    for w in workers {
        assert_eq!(w.join().unwrap(), 200);
    }
    assert!(
        t0.elapsed() < Duration::from_millis(1000),
        "{:?}",
        t0.elapsed()
    );
    let _ = std::fs::remove_file(path);
}

/// Warm invocations per second over one keep-alive connection, and over 4 in parallel.
#[test]
#[ignore = "measurement; run with --release -- --ignored --nocapture"]
fn throughput() {
    let path = start();
    let run = |conns: usize, per_conn: usize| {
        let t0 = Instant::now();
        let ws: Vec<_> = (0..conns)
            .map(|_| {
                let p = path.clone();
                std::thread::spawn(move || {
                    let mut s = UnixStream::connect(&p).unwrap();
                    let mut r = BufReader::new(s.try_clone().unwrap());
                    let req = post("{}");
                    for _ in 0..per_conn {
                        s.write_all(&req).unwrap();
                        assert_eq!(read_response(&mut r).0, 200);
                    }
                })
            })
            .collect();
        ws.into_iter().for_each(|w| w.join().unwrap());
        (conns * per_conn) as f64 / t0.elapsed().as_secs_f64()
    };
    // A connection per invocation (what the worker's client does), from `clients` threads.
    let fresh = |clients: usize, per_client: usize| {
        let t0 = Instant::now();
        let ws: Vec<_> = (0..clients)
            .map(|_| {
                let p = path.clone();
                std::thread::spawn(move || {
                    for _ in 0..per_client {
                        assert_eq!(request(&p, &post("{}")).0, 200);
                    }
                })
            })
            .collect();
        ws.into_iter().for_each(|w| w.join().unwrap());
        (clients * per_client) as f64 / t0.elapsed().as_secs_f64()
    };
    run(1, 2_000); // warm up
    println!(
        "keep-alive, 1 connection : {:.0} invocations/s",
        run(1, 50_000)
    );
    println!(
        "keep-alive, 4 connections: {:.0} invocations/s",
        run(4, 50_000)
    );
    println!(
        "connection per call, 1 client : {:.0} invocations/s",
        fresh(1, 20_000)
    );
    println!(
        "connection per call, 4 clients: {:.0} invocations/s",
        fresh(4, 20_000)
    );
    let _ = std::fs::remove_file(path);
}

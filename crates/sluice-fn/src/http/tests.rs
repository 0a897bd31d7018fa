//! Unit tests of the HTTP framing: well-formed requests, keep-alive rules, and every refusal.

use super::*;

fn parse(raw: &[u8]) -> Result<Option<Request>, ReadError> {
    let mut sink = Vec::new();
    read_request(&mut io::BufReader::new(raw), &mut sink)
}

fn status(raw: &[u8]) -> u16 {
    match parse(raw) {
        Err(ReadError::Bad(s, _)) => s,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn parses_post_with_body() {
    let r = parse(b"POST /invoke?x=1 HTTP/1.1\r\nHost: f\r\ncontent-length: 2\r\n\r\n{}")
        .unwrap()
        .unwrap();
    assert_eq!((r.method.as_str(), r.path.as_str()), ("POST", "/invoke"));
    assert_eq!(r.body, b"{}");
    assert!(r.keep_alive);
}

#[test]
fn absolute_form_targets_are_reduced_to_their_path() {
    let path = |raw: &[u8]| parse(raw).unwrap().unwrap().path;
    assert_eq!(
        path(b"GET http://localhost/ready HTTP/1.1\r\n\r\n"),
        "/ready"
    );
    assert_eq!(
        path(b"GET HTTP://h:80/invoke?q HTTP/1.1\r\n\r\n"),
        "/invoke"
    );
    assert_eq!(path(b"GET http://h HTTP/1.1\r\n\r\n"), "/");
}

#[test]
fn bare_lf_and_leading_empty_lines_are_accepted() {
    let r = parse(b"\r\nGET /ready HTTP/1.1\nHost: f\n\n")
        .unwrap()
        .unwrap();
    assert_eq!(r.path, "/ready");
    assert!(r.body.is_empty());
}

#[test]
fn clean_eof_is_none_and_truncation_is_io() {
    assert!(parse(b"").unwrap().is_none());
    assert!(matches!(
        parse(b"GET /ready HTTP/1.1\r\nHo"),
        Err(ReadError::Closed)
    ));
    let short = b"POST /invoke HTTP/1.1\r\nContent-Length: 10\r\n\r\n{}";
    assert!(matches!(parse(short), Err(ReadError::Closed)));
}

#[test]
fn keep_alive_follows_version_and_connection_header() {
    let ka = |raw: &[u8]| parse(raw).unwrap().unwrap().keep_alive;
    assert!(!ka(b"GET / HTTP/1.0\r\n\r\n"));
    assert!(ka(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"));
    assert!(!ka(b"GET / HTTP/1.1\r\nConnection: foo, close\r\n\r\n"));
}

#[test]
fn refuses_chunked_oversized_and_malformed() {
    assert_eq!(
        status(b"POST /invoke HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"),
        400
    );
    assert_eq!(
        status(b"POST /invoke HTTP/1.1\r\nContent-Length: 67108865\r\n\r\n"),
        413
    );
    let huge = b"POST /invoke HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n";
    assert_eq!(status(huge), 413);
    assert_eq!(
        status(b"POST /invoke HTTP/1.1\r\nContent-Length: -1\r\n\r\n"),
        400
    );
    assert_eq!(
        status(b"POST /invoke HTTP/1.1\r\nContent-Length: 1 2\r\n\r\n"),
        400
    );
    let dup = b"POST /invoke HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n";
    assert_eq!(status(dup), 400);
    assert_eq!(status(b"GET /ready\r\n\r\n"), 400);
    assert_eq!(status(b"GET ready HTTP/1.1\r\n\r\n"), 400);
    assert_eq!(status(b"get /ready HTTP/1.1\r\n\r\n"), 400);
    assert_eq!(status(b"GET /ready HTTP/2.0\r\n\r\n"), 505);
    assert_eq!(status(b"GET /ready HTTP/1.1\r\nNoColon\r\n\r\n"), 400);
    assert_eq!(
        status(b"GET /ready HTTP/1.1\r\nA: b\r\n  folded\r\n\r\n"),
        400
    );
    assert_eq!(status(b"GET /ready HTTP/1.1\r\nA : b\r\n\r\n"), 400);
    assert_eq!(status(b"GET /\xff HTTP/1.1\r\n\r\n"), 400);
    assert_eq!(status(b"GET / HTTP/1.1\r\nExpect: magic\r\n\r\n"), 417);
}

#[test]
fn refuses_long_lines_and_many_headers() {
    let mut raw = b"GET /".to_vec();
    raw.extend(std::iter::repeat_n(b'a', MAX_LINE + 10));
    raw.extend_from_slice(b" HTTP/1.1\r\n\r\n");
    assert_eq!(status(&raw), 431);
    let mut raw = b"GET / HTTP/1.1\r\n".to_vec();
    for i in 0..=MAX_HEADERS {
        raw.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
    }
    raw.extend_from_slice(b"\r\n");
    assert_eq!(status(&raw), 431);
}

#[test]
fn expect_continue_writes_interim_response() {
    let raw = b"POST /invoke HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n{}";
    let mut sink = Vec::new();
    let r = read_request(&mut io::BufReader::new(&raw[..]), &mut sink);
    assert_eq!(r.unwrap().unwrap().body, b"{}");
    assert_eq!(sink, b"HTTP/1.1 100 Continue\r\n\r\n");
}

#[test]
fn response_is_framed() {
    let mut out = Vec::new();
    write_response(&mut out, 200, "application/json", b"{}", true).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"));
    assert!(text.contains("Content-Length: 2\r\n"));
    assert!(text.ends_with("\r\n\r\n{}"));
}

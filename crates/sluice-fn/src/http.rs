//! Minimal HTTP/1.1 framing for the function protocol: reads one request (request line, headers,
//! `Content-Length` body) from a buffered stream and writes one response. It owns the size limits and
//! the keep-alive decision; it does not know about routes or JSON (that is `lib.rs`).
//!
//! Deliberately small: no chunked bodies (refused with 400), no header folding, no trailers.

use std::io::{self, BufRead, Read, Write};

/// Largest request body accepted (64 MiB); a larger `Content-Length` is answered 413.
pub const MAX_BODY: usize = 64 << 20;
/// Largest request line or header line, in bytes (16 KiB, not counting the final `\n`); a longer
/// line is answered 431.
pub const MAX_LINE: usize = 16 << 10;
/// Most header lines in one request.
pub const MAX_HEADERS: usize = 128;

/// One parsed request.
#[derive(Debug, PartialEq, Eq)]
pub struct Request {
    /// The request method as sent (`GET`, `POST`, ...); always ASCII uppercase.
    pub method: String,
    /// The target without its query string.
    pub path: String,
    /// The body, exactly `Content-Length` bytes (empty when the header is absent).
    pub body: Vec<u8>,
    /// Whether the connection stays open after the response.
    pub keep_alive: bool,
}

/// Why no request could be read.
#[derive(Debug)]
pub enum ReadError {
    /// The peer sent something we refuse: answer with this status and message, then close.
    Bad(u16, &'static str),
    /// The stream failed or ended mid-request: just close.
    Closed,
}

impl From<io::Error> for ReadError {
    fn from(_: io::Error) -> Self {
        ReadError::Closed
    }
}

/// Reads one line (up to and including `\n`) into `buf`, refusing lines over [`MAX_LINE`].
/// Returns false on a clean end of stream before any byte.
fn read_line<R: BufRead>(r: &mut R, buf: &mut Vec<u8>) -> Result<bool, ReadError> {
    buf.clear();
    let n = r
        .by_ref()
        .take(MAX_LINE as u64 + 1)
        .read_until(b'\n', buf)?;
    if n == 0 {
        return Ok(false);
    }
    if buf.last() != Some(&b'\n') {
        if n > MAX_LINE {
            return Err(ReadError::Bad(431, "request line or header too long"));
        }
        return Err(ReadError::Closed);
    }
    buf.pop();
    if buf.last() == Some(&b'\r') {
        buf.pop();
    }
    Ok(true)
}

fn has_token(value: &str, token: &str) -> bool {
    value
        .split(',')
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// Reads the next request. `Ok(None)` means the peer closed the connection between requests.
/// When the request carries `Expect: 100-continue`, the interim response is written to `interim`.
pub fn read_request<R: BufRead, W: Write>(
    r: &mut R,
    interim: &mut W,
) -> Result<Option<Request>, ReadError> {
    let mut line = Vec::with_capacity(128);
    // Tolerate empty lines before a request (RFC 9112 §2.2).
    loop {
        if !read_line(r, &mut line)? {
            return Ok(None);
        }
        if !line.is_empty() {
            break;
        }
    }
    let start = std::str::from_utf8(&line).map_err(|_| ReadError::Bad(400, "bad request line"))?;
    let mut parts = start.split(' ');
    let (method, target, version) = match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(m), Some(t), Some(v), None) if !m.is_empty() => (m, origin_form(t)?, v),
        _ => return Err(ReadError::Bad(400, "bad request line")),
    };
    if !method.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(ReadError::Bad(400, "bad method"));
    }
    let mut keep_alive = match version {
        "HTTP/1.1" => true,
        "HTTP/1.0" => false,
        _ => {
            return Err(ReadError::Bad(
                505,
                "only HTTP/1.0 and HTTP/1.1 are supported",
            ))
        }
    };
    let method = method.to_owned();
    let path = target.split('?').next().unwrap_or(target).to_owned();

    let mut content_length: Option<usize> = None;
    let mut expect_continue = false;
    let mut count = 0;
    loop {
        if !read_line(r, &mut line)? {
            return Err(ReadError::Closed);
        }
        if line.is_empty() {
            break;
        }
        count += 1;
        if count > MAX_HEADERS {
            return Err(ReadError::Bad(431, "too many headers"));
        }
        if line[0] == b' ' || line[0] == b'\t' {
            return Err(ReadError::Bad(400, "obsolete header folding"));
        }
        let text = std::str::from_utf8(&line).map_err(|_| ReadError::Bad(400, "bad header"))?;
        let (name, value) = text
            .split_once(':')
            .ok_or(ReadError::Bad(400, "bad header"))?;
        if name.is_empty() || name.ends_with([' ', '\t']) {
            return Err(ReadError::Bad(400, "bad header name"));
        }
        let value = value.trim_matches([' ', '\t']);
        if name.eq_ignore_ascii_case("content-length") {
            let n = parse_length(value)?;
            if content_length.is_some_and(|old| old != n) {
                return Err(ReadError::Bad(400, "conflicting Content-Length"));
            }
            content_length = Some(n);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(ReadError::Bad(
                400,
                "Transfer-Encoding (chunked) is not supported",
            ));
        } else if name.eq_ignore_ascii_case("connection") {
            if has_token(value, "close") {
                keep_alive = false;
            } else if has_token(value, "keep-alive") {
                keep_alive = true;
            }
        } else if name.eq_ignore_ascii_case("expect") {
            if !value.eq_ignore_ascii_case("100-continue") {
                return Err(ReadError::Bad(417, "unsupported Expect"));
            }
            expect_continue = true;
        }
    }
    let len = content_length.unwrap_or(0);
    if len > MAX_BODY {
        return Err(ReadError::Bad(413, "request body over 64 MiB"));
    }
    if expect_continue && len > 0 {
        interim.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
    }
    let mut body = vec![0; len];
    r.read_exact(&mut body)?;
    Ok(Some(Request {
        method,
        path,
        body,
        keep_alive,
    }))
}

/// The path part of a request target: origin form (`/invoke?x`) or absolute form
/// (`http://localhost/invoke`); anything else is refused.
fn origin_form(target: &str) -> Result<&str, ReadError> {
    let lower = target.get(..8).unwrap_or(target).to_ascii_lowercase();
    let rest = if lower.starts_with("http://") {
        &target[7..]
    } else if lower.starts_with("https://") {
        &target[8..]
    } else if target.starts_with('/') {
        return Ok(target);
    } else {
        return Err(ReadError::Bad(400, "bad request target"));
    };
    Ok(rest.find('/').map_or("/", |i| &rest[i..]))
}

fn parse_length(value: &str) -> Result<usize, ReadError> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ReadError::Bad(400, "bad Content-Length"));
    }
    // Any all-digit value too large for usize is certainly over the limit.
    Ok(value.parse().unwrap_or(usize::MAX))
}

fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        413 => "Content Too Large",
        417 => "Expectation Failed",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

/// Writes a complete response in one `write_all`.
pub fn write_response<W: Write>(
    w: &mut W,
    status: u16,
    content_type: &str,
    body: &[u8],
    keep_alive: bool,
) -> io::Result<()> {
    let mut out = Vec::with_capacity(128 + body.len());
    let conn = if keep_alive { "keep-alive" } else { "close" };
    write!(
        out,
        "HTTP/1.1 {status} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: {conn}\r\n\r\n",
        reason(status),
        body.len()
    )?;
    out.extend_from_slice(body);
    w.write_all(&out)
}

#[cfg(test)]
mod tests;

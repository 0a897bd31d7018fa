//! The bearer-token check in front of every route but `/healthz` — unknown routes included, so
//! an unauthenticated client learns nothing about which routes exist. The scheme is matched
//! case-insensitively (`Bearer`, `bearer`, ...; RFC 9110 §11.1) and the token compared in time
//! independent of where it differs.

use super::{ApiError, Shared};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// The only route that needs no token: liveness probes carry none.
const OPEN_PATH: &str = "/healthz";

/// Answers 401 unless the request carries the configured token (when one is configured).
pub(super) async fn check(State(s): State<Shared>, req: Request, next: Next) -> Response {
    if let Some(token) = s.engine.config().auth_token.as_deref() {
        if req.uri().path() != OPEN_PATH && !presented(req.headers(), token) {
            let mut resp = ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "missing or wrong bearer token",
            )
            .into_response();
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
            return resp;
        }
    }
    next.run(req).await
}

/// Whether `headers` carry `Authorization: Bearer <token>`.
fn presented(headers: &HeaderMap, token: &str) -> bool {
    let Some(value) = headers.get(header::AUTHORIZATION).map(|v| v.as_bytes()) else {
        return false;
    };
    let Some(space) = value.iter().position(|&b| b == b' ') else {
        return false;
    };
    let (scheme, rest) = value.split_at(space);
    let given = rest.trim_ascii();
    scheme.eq_ignore_ascii_case(b"bearer") && same(given, token.as_bytes())
}

/// Compares two byte strings in time that depends on their lengths only, not on where they
/// differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn with(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        h
    }

    #[test]
    fn the_scheme_is_case_insensitive_and_the_token_exact() {
        for ok in ["Bearer s3cret", "bearer s3cret", "BEARER  s3cret"] {
            assert!(presented(&with(ok), "s3cret"), "{ok}");
        }
        for bad in [
            "Bearer s3cre",
            "Bearer s3cret2",
            "Basic s3cret",
            "Bearers3cret",
            "s3cret",
            "Bearer ",
        ] {
            assert!(!presented(&with(bad), "s3cret"), "{bad}");
        }
        assert!(!presented(&HeaderMap::new(), "s3cret"));
    }

    #[test]
    fn same_compares_whole_strings() {
        assert!(same(b"abc", b"abc"));
        assert!(!same(b"abc", b"abd"));
        assert!(!same(b"abc", b"ab"));
        assert!(!same(b"", b"a"));
    }
}

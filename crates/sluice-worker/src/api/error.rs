//! API errors: every failure is a JSON body `{"error": {"code", "message"}}` with the right
//! status (400 malformed, 401 unauthorised, 404 unknown or deleted, 408 request too slow, 409
//! an invocation no device can hold, 413 too large, 429 queue full or predicted wait over the
//! function's bound, with `Retry-After`, 502/504 function failures, 503 draining, shutting down
//! or at the connection cap, 500 internal — a damaged store among them).

use crate::engine::InvokeError;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    /// The HTTP status of the answer.
    pub status: StatusCode,
    /// A stable, machine-readable code (`not_found`, `queue_full`, `timeout`, …), the body's
    /// `error.code`.
    pub code: &'static str,
    /// A human-readable explanation, the body's `error.message`.
    pub message: String,
    /// Seconds sent in a `Retry-After` header; `None`: no header.
    pub retry_after_s: Option<u64>,
}

impl ApiError {
    /// An error with this status, code and message, and no `Retry-After`.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            retry_after_s: None,
        }
    }
    /// 400 `bad_request`: the request is malformed or invalid.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }
    /// 404 `not_found`: no such function, invocation, pipeline or image.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }
    /// 500 `internal`: a failure of the worker itself.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"error": {"code": self.code, "message": self.message}});
        let mut resp = (self.status, axum::Json(body)).into_response();
        if let Some(s) = self.retry_after_s {
            if let Ok(v) = HeaderValue::from_str(&s.to_string()) {
                resp.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        resp
    }
}

impl From<InvokeError> for ApiError {
    fn from(e: InvokeError) -> Self {
        let msg = e.to_string();
        match e {
            InvokeError::UnknownFunction(_) => ApiError::not_found(msg),
            InvokeError::QueueFull { retry_after_s, .. } => ApiError {
                retry_after_s: Some(retry_after_s),
                ..ApiError::new(StatusCode::TOO_MANY_REQUESTS, "queue_full", msg)
            },
            InvokeError::Overloaded { retry_after_s, .. } => ApiError {
                retry_after_s: Some(retry_after_s),
                ..ApiError::new(StatusCode::TOO_MANY_REQUESTS, "overloaded", msg)
            },
            InvokeError::Draining => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "draining", msg)
            }
            InvokeError::ShuttingDown => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "shutting_down", msg)
            }
            InvokeError::FunctionDeleted(_) => ApiError::not_found(msg),
            InvokeError::Unplaceable(_) => ApiError::new(StatusCode::CONFLICT, "unplaceable", msg),
            InvokeError::Withdrawn(_) => ApiError::new(StatusCode::CONFLICT, "withdrawn", msg),
            InvokeError::Timeout(_) => ApiError::new(StatusCode::GATEWAY_TIMEOUT, "timeout", msg),
            InvokeError::ColdStartFailed(_) => {
                ApiError::new(StatusCode::BAD_GATEWAY, "start_failed", msg)
            }
            InvokeError::Crashed(_) => ApiError::new(StatusCode::BAD_GATEWAY, "crashed", msg),
            InvokeError::FunctionError { .. } => {
                ApiError::new(StatusCode::BAD_GATEWAY, "function_error", msg)
            }
            InvokeError::ResponseTooLarge(_) => {
                ApiError::new(StatusCode::BAD_GATEWAY, "response_too_large", msg)
            }
            InvokeError::Internal(_) => ApiError::internal(msg),
        }
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        use crate::store::StoreError;
        let code = match e {
            StoreError::Corrupt { .. } => "store_damaged",
            _ => "store_error",
        };
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, code, e.to_string())
    }
}

impl From<axum::extract::rejection::BytesRejection> for ApiError {
    fn from(r: axum::extract::rejection::BytesRejection) -> Self {
        let status = r.status();
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                status,
                "payload_too_large",
                "request body exceeds max_body_bytes",
            )
        } else {
            ApiError::new(status, "bad_request", r.body_text())
        }
    }
}

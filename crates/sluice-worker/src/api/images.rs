//! `/v1/images`: import (from a path inside the worker's import directories, or an uploaded
//! archive streamed to disk under `images.max_upload_bytes`), list, show, delete (409 while a
//! function or pipeline holds the image; garbage is collected right after) and collect garbage.
//! Imports and unpacks run on blocking threads, so a long import holds up no other request.

use super::invoke::parse_json;
use super::{ApiError, Shared};
use crate::images::{ImageView, Images, ImagesError, UploadReader};
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use http_body_util::BodyExt;
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;

/// The content type of an upload.
pub(super) const TAR: &str = "application/x-tar";

impl From<ImagesError> for ApiError {
    fn from(e: ImagesError) -> Self {
        let msg = e.to_string();
        match e {
            ImagesError::Field { .. } => ApiError::bad_request(msg),
            ImagesError::NotFound(_) => ApiError::not_found(msg),
            ImagesError::InUse(_) => ApiError::new(StatusCode::CONFLICT, "in_use", msg),
            ImagesError::TooLarge(_) => {
                ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", msg)
            }
            ImagesError::Internal(_) => ApiError::internal(msg),
        }
    }
}

/// Runs a blocking image operation off the async threads.
pub(crate) async fn blocking<T: Send + 'static>(
    images: &Arc<Images>,
    f: impl FnOnce(&Images) -> Result<T, ImagesError> + Send + 'static,
) -> Result<T, ApiError> {
    let images = images.clone();
    tokio::task::spawn_blocking(move || f(&images))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
        .map_err(ApiError::from)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ImportRequest {
    source: String,
    #[serde(rename = "ref", default)]
    reference: Option<String>,
}

#[derive(Deserialize)]
pub(super) struct UploadQuery {
    #[serde(rename = "ref")]
    reference: Option<String>,
}

fn imported((view, new): (ImageView, bool)) -> Response {
    let status = if new {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    (status, Json(view)).into_response()
}

/// Whether `req` is an archive upload, whose body the handler streams itself (the body
/// middleware leaves it unread).
pub(super) fn is_upload(req: &axum::extract::Request) -> bool {
    req.method() == axum::http::Method::POST
        && req.uri().path() == "/v1/images"
        && is_tar(req.headers())
}

fn is_tar(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(';').next().is_some_and(|t| t.trim() == TAR))
}

/// `POST /v1/images`: a JSON import request, or an archive upload.
pub(super) async fn import(
    State(s): State<Shared>,
    q: Result<Query<UploadQuery>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::bad_request(e.body_text()))?;
    if let Some(r) = &q.reference {
        if r.is_empty() || r.chars().any(char::is_control) {
            return Err(ApiError::bad_request(format!("ref: {r:?} is not a name")));
        }
    }
    if is_tar(&headers) {
        return upload(s, q.reference, &headers, body).await;
    }
    // The body middleware has read a JSON body whole already, under max_body_bytes.
    let bytes = body
        .collect()
        .await
        .map_err(|e| ApiError::bad_request(e.to_string()))?
        .to_bytes();
    let req: ImportRequest = parse_json(&bytes, "image import request")?;
    if let Some(r) = &req.reference {
        if r.is_empty() || r.chars().any(char::is_control) {
            return Err(ApiError::bad_request(format!("ref: {r:?} is not a name")));
        }
    }
    let reference = req.reference.or(q.reference);
    let view = blocking(&s.images, move |im| {
        im.import(&req.source, reference.as_deref())
    })
    .await?;
    Ok(imported(view))
}

/// Streams an uploaded archive into the store: chunks go through a bounded channel to the
/// import on a blocking thread; each must arrive within `http.body_timeout_ms` of the last.
async fn upload(
    s: Shared,
    reference: Option<String>,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let limit = s.images.max_upload_bytes();
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Ok(closing(ImagesError::TooLarge(limit).into()));
    }
    let (tx, mut reader) = UploadReader::channel(limit);
    let images = s.images.clone();
    let import = tokio::task::spawn_blocking(move || {
        images.import_upload(&mut reader, reference.as_deref())
    });
    let idle = Duration::from_millis(s.engine.config().http.body_timeout_ms);
    let mut body = body;
    let mut complete = true;
    loop {
        let frame = match tokio::time::timeout(idle, body.frame()).await {
            Err(_) => {
                complete = false;
                let _ = tx
                    .send(Err(format!(
                        "no part of the body arrived within {} ms",
                        idle.as_millis()
                    )))
                    .await;
                break;
            }
            Ok(None) => break,
            Ok(Some(Err(e))) => {
                complete = false;
                let _ = tx.send(Err(e.to_string())).await;
                break;
            }
            Ok(Some(Ok(f))) => f,
        };
        if let Ok(data) = frame.into_data() {
            if tx.send(Ok(data)).await.is_err() {
                // The import stopped (over the limit, or a bad archive): its error answers.
                complete = false;
                break;
            }
        }
    }
    drop(tx);
    let result = import
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?;
    match result {
        Ok(view) => Ok(imported(view)),
        Err(e) if complete => Err(e.into()),
        Err(e) => Ok(closing(e.into())),
    }
}

/// An error answer after which the connection is closed (the body was not read to its end).
fn closing(e: ApiError) -> Response {
    let mut r = e.into_response();
    r.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    r
}

pub(super) async fn list(State(s): State<Shared>) -> Result<Json<Vec<ImageView>>, ApiError> {
    Ok(Json(blocking(&s.images, |im| im.list()).await?))
}

pub(super) async fn get(
    State(s): State<Shared>,
    Path(digest): Path<String>,
) -> Result<Json<ImageView>, ApiError> {
    Ok(Json(blocking(&s.images, move |im| im.get(&digest)).await?))
}

pub(super) async fn delete(
    State(s): State<Shared>,
    Path(digest): Path<String>,
) -> Result<Response, ApiError> {
    let (view, gc) = blocking(&s.images, move |im| im.remove(&digest)).await?;
    Ok(Json(serde_json::json!({"deleted": view.record.digest, "gc": gc})).into_response())
}

pub(super) async fn gc(State(s): State<Shared>) -> Result<Response, ApiError> {
    let report = blocking(&s.images, |im| im.gc()).await?;
    Ok(Json(report).into_response())
}

//! Asynchronous invocations: `POST /v1/functions/{name}/invoke-async` answers 202 with an id
//! once the invocation is admitted (the same admission as a synchronous call: 429 with a
//! `Retry-After` when its predicted wait is too long) and durably accepted;
//! `GET /v1/invocations[/{id}]` (`invocations.rs`) reports it, with what the function wrote
//! while it ran. Accepted invocations survive a crash: [`resume`] re-runs them at start
//! (at-least-once).
//!
//! An invocation is marked Running, and its attempt counted, only when the engine is about to
//! send it to a sandbox (a start hook), so a restart charges nothing to one that was still
//! queued; at a graceful stop queued ones are handed back (left Queued) to run at the next
//! start. [`AsyncTasks`] lets that stop wait for the runs still recording their outcome.

use super::invoke::json_input;
use super::{blocking, ApiError, Shared};
use crate::engine::{Admitted, InvokeError, InvokeOptions, StartHook, Ticket};
use crate::store::{Outcome, StoreError};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

pub(super) async fn submit(
    State(s): State<Shared>,
    Path(name): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let input = json_input(body?)?;
    let store = s.store.clone();
    let n = name.clone();
    if blocking(move || store.get_function(&n)).await?.is_none() {
        return Err(ApiError::not_found(format!("unknown function {name:?}")));
    }
    let ticket = s.engine.check_admission(&name)?;
    accept_and_run(&s, Target::Function(name), input, Some(ticket)).await
}

/// What an asynchronous invocation runs.
pub(super) enum Target {
    Function(String),
    Pipeline(String),
}

/// Stored name prefix of asynchronous pipeline invocations (`:` is not allowed in function
/// names, so the two never collide).
pub(super) const PIPELINE_PREFIX: &str = "pipeline:";

impl Target {
    fn stored_name(&self) -> String {
        match self {
            Target::Function(f) => f.clone(),
            Target::Pipeline(p) => format!("{PIPELINE_PREFIX}{p}"),
        }
    }

    fn from_stored(name: String) -> Target {
        match name.strip_prefix(PIPELINE_PREFIX) {
            Some(p) => Target::Pipeline(p.to_string()),
            None => Target::Function(name),
        }
    }
}

/// Durably accepts an invocation of `target` (admitted with `ticket`, for a function), answers
/// 202 with its id, and runs it.
pub(super) async fn accept_and_run(
    s: &Shared,
    target: Target,
    input: Bytes,
    ticket: Option<Ticket>,
) -> Result<Response, ApiError> {
    if s.engine.status().draining {
        return Err(InvokeError::Draining.into());
    }
    let store = s.store.clone();
    let (n, bytes) = (target.stored_name(), input.to_vec());
    let rec = blocking(move || store.accept(&n, &bytes, now_ms())).await?;
    let admitted = ticket.map_or(Admitted::Recovered, Admitted::Ticket);
    tokio::spawn(run(s.clone(), rec.id.clone(), target, input, admitted));
    Ok((StatusCode::ACCEPTED, Json(json!({"id": rec.id}))).into_response())
}

/// Runs one accepted invocation and records its outcome, with its function's output.
async fn run(s: Shared, id: String, target: Target, input: Bytes, admitted: Admitted) {
    let _running = s.async_tasks.enter();
    let (outcome, logs) = match target {
        Target::Function(function) => {
            let opts = InvokeOptions {
                admitted,
                on_start: Some(start_hook(&s, &id)),
                logs: true,
            };
            let invoked = s.engine.invoke_with(&function, input, opts).await;
            let outcome = match invoked.result {
                Ok(ok) => Outcome::Succeeded(ok.body.to_vec()),
                // Handed back at a graceful stop: still Queued, it runs at the next start.
                Err(InvokeError::ShuttingDown) => return,
                Err(e) => Outcome::Failed(e.to_string()),
            };
            (outcome, invoked.logs)
        }
        Target::Pipeline(name) => {
            if let Err(e) = mark_running(&s, &id).await {
                tracing::error!("cannot mark {id} running: {e}");
            }
            let outcome = match s.pipelines.invoke(&name, input).await {
                Ok(f) => Outcome::Succeeded(f.body.to_vec()),
                Err(e) => Outcome::Failed(e.to_string()),
            };
            (outcome, None)
        }
    };
    let store = s.store.clone();
    let i = id.clone();
    let finish = move || store.finish_logged(&i, outcome, logs.as_ref(), now_ms());
    match tokio::task::spawn_blocking(finish).await {
        Ok(Ok(())) => {}
        // Already ended: its function was deleted while it waited.
        Ok(Err(StoreError::InvalidTransition { .. })) => {
            tracing::debug!("{id} had already ended")
        }
        Ok(Err(e)) => tracing::error!("cannot record the outcome of {id}: {e}"),
        Err(e) => tracing::error!("cannot record the outcome of {id}: {e}"),
    }
}

/// Marks `id` Running and counts an attempt, durably.
async fn mark_running(s: &Shared, id: &str) -> Result<(), String> {
    let (store, i) = (s.store.clone(), id.to_string());
    match tokio::task::spawn_blocking(move || store.mark_running(&i, now_ms())).await {
        Ok(r) => r.map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    }
}

/// The engine's start hook for `id`: mark it Running just before it is sent to a sandbox. If
/// that fails (its record already ended, the store failed), it is not sent.
fn start_hook(s: &Shared, id: &str) -> StartHook {
    let (s, id) = (s.clone(), id.to_string());
    Box::new(move || Box::pin(async move { mark_running(&s, &id).await }))
}

/// Re-runs every accepted invocation that had not finished when the worker stopped.
pub async fn resume(s: Shared) -> Result<usize, ApiError> {
    let store = s.store.clone();
    let max = s.engine.config().async_max_attempts;
    let records = blocking(move || store.recover(max, now_ms())).await?;
    let n = records.len();
    for r in records {
        let target = Target::from_stored(r.function);
        let input = Bytes::from(r.input);
        tokio::spawn(run(s.clone(), r.id, target, input, Admitted::Recovered));
    }
    Ok(n)
}

/// Counts asynchronous invocations being run, so a graceful stop can wait until each has
/// recorded its outcome (or been handed back).
#[derive(Clone, Debug, Default)]
pub struct AsyncTasks(Arc<(AtomicUsize, Notify)>);

/// One run, counted until dropped.
struct Entered(AsyncTasks);

impl Drop for Entered {
    fn drop(&mut self) {
        let (count, done) = &*(self.0).0;
        if count.fetch_sub(1, Ordering::AcqRel) == 1 {
            done.notify_waiters();
        }
    }
}

impl AsyncTasks {
    fn enter(&self) -> Entered {
        self.0 .0.fetch_add(1, Ordering::AcqRel);
        Entered(self.clone())
    }

    /// Runs still going.
    pub fn count(&self) -> usize {
        self.0 .0.load(Ordering::Acquire)
    }

    /// Waits until no run is going, at most `grace`; true if none is.
    pub async fn wait(&self, grace: Duration) -> bool {
        let (count, done) = &*self.0;
        let all = async {
            loop {
                let notified = done.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                if count.load(Ordering::Acquire) == 0 {
                    return;
                }
                notified.await;
            }
        };
        tokio::time::timeout(grace, all).await.is_ok()
    }
}

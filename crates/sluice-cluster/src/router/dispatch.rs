//! Dispatchers: every router pulls accepted invocations from the shared JetStream consumer
//! (at most `max_inflight` at once, and no more than the usable workers' device tokens
//! less its calls in flight, fetched in batches no larger than that, so no message waits in a
//! router's buffer or a worker's queue while its `ack_wait` runs) and runs each on a worker.
//!
//! One delivery: read the record; if it is already done, ack (its ack was lost). If it has
//! started `max_attempts` times, it is Failed ("lost N times"). Otherwise pick a worker (none:
//! nak with a 1 s delay, not counted as an attempt), count the attempt, mark it Running,
//! invoke — marking the delivery in progress every `ack_wait / 3` — then store the outcome and
//! ack. A worker lost mid-invocation naks for a prompt redelivery (an attempt counted); a
//! router lost mid-invocation stops acking, so JetStream delivers again after `ack_wait`.
//! At least once: an invocation whose worker died may run twice, never zero times.

use super::invoke::{forward, limit_for, Outcome, Target};
use super::Shared;
use crate::queue::{AsyncQueue, Record, Status, TARGET_HEADER};
use async_nats::jetstream::{AckKind, Message};
use futures_util::StreamExt;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

/// Pulls and runs invocations forever.
pub async fn run(s: Shared, q: AsyncQueue) {
    let permits = Arc::new(Semaphore::new(q.config().max_inflight));
    let mut backoff = Duration::from_millis(100);
    loop {
        if s.is_draining() {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        }
        // Wait for one free slot, then ask for as many messages as there are free slots.
        match permits.clone().acquire_owned().await {
            Ok(p) => drop(p),
            Err(_) => return,
        }
        let spare = s.balancer.spare();
        if spare == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        }
        let free = permits.available_permits().min(spare).clamp(1, 64);
        let batch = q
            .consumer()
            .batch()
            .max_messages(free)
            .expires(Duration::from_secs(1))
            .messages()
            .await;
        let mut batch = match batch {
            Ok(b) => {
                backoff = Duration::from_millis(100);
                b
            }
            Err(e) => {
                tracing::debug!("cannot pull invocations: {e}");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
                continue;
            }
        };
        while let Some(m) = batch.next().await {
            let Ok(msg) = m else { break };
            let Ok(permit) = permits.clone().acquire_owned().await else {
                return;
            };
            let (s, q) = (s.clone(), q.clone());
            tokio::spawn(async move {
                handle(&s, &q, msg).await;
                drop(permit);
            });
        }
    }
}

fn header<'a>(msg: &'a Message, name: &str) -> Option<&'a str> {
    msg.headers.as_ref()?.get(name).map(|v| v.as_str())
}

fn parse_target(t: &str) -> Option<Target> {
    if let Some(f) = t.strip_prefix("function:") {
        return Some(Target::Function(f.to_string()));
    }
    t.strip_prefix("pipeline:")
        .map(|p| Target::Pipeline(p.to_string()))
}

async fn finish(q: &AsyncQueue, msg: &Message, rec: &Record) {
    match q.put_record(rec).await {
        // Acked only once the outcome is stored: a lost write means a redelivery, not a loss.
        Ok(()) => {
            if let Err(e) = msg.double_ack().await {
                tracing::debug!(id = %rec.id, "ack failed (the invocation may run again): {e}");
            }
        }
        Err(e) => {
            tracing::warn!(id = %rec.id, "cannot store the outcome: {e}");
            let _ = msg
                .ack_with(AckKind::Nak(Some(Duration::from_secs(1))))
                .await;
        }
    }
}

fn failed(rec: &mut Record, why: String) {
    rec.status = Status::Failed;
    rec.error = Some(why);
    rec.finished_ms = Some(crate::now_ms());
    rec.done = true;
}

async fn handle(s: &Shared, q: &AsyncQueue, msg: Message) {
    let id = header(&msg, "Nats-Msg-Id").unwrap_or("").to_string();
    let raw_target = header(&msg, TARGET_HEADER).unwrap_or("").to_string();
    let Some(target) = parse_target(&raw_target).filter(|_| !id.is_empty()) else {
        tracing::warn!(
            id,
            target = raw_target,
            "dropping a malformed invocation message"
        );
        let _ = msg.ack_with(AckKind::Term).await;
        return;
    };
    let name = raw_target.strip_prefix("function:").unwrap_or(&raw_target);
    let mut rec = match q.record(&id).await {
        Ok(Some(r)) => r,
        Ok(None) => Record::queued(&id, name),
        Err(e) => {
            tracing::debug!(id, "cannot read the record: {e}");
            let _ = msg
                .ack_with(AckKind::Nak(Some(Duration::from_secs(1))))
                .await;
            return;
        }
    };
    if rec.done {
        let _ = msg.double_ack().await;
        return;
    }
    let max = q.config().max_attempts;
    if rec.attempts >= max {
        failed(
            &mut rec,
            format!(
                "gave up after {max} attempts: the worker or router running it was lost each time"
            ),
        );
        s.metrics.dispatched(false);
        return finish(q, &msg, &rec).await;
    }
    rec.attempts += 1;
    rec.status = Status::Running;
    rec.started_ms = Some(crate::now_ms());
    if let Err(e) = q.put_record(&rec).await {
        tracing::debug!(id, "cannot mark running: {e}");
        let _ = msg
            .ack_with(AckKind::Nak(Some(Duration::from_secs(1))))
            .await;
        return;
    }
    let limit = match &target {
        Target::Function(f) => limit_for(s, f),
        Target::Pipeline(_) => Duration::from_secs(600),
    };
    let input = msg.payload.clone();
    let progress_every = q.config().ack_wait() / 3;
    let outcome = {
        let call = forward(s, &target, input, limit);
        tokio::pin!(call);
        let mut tick =
            tokio::time::interval_at(tokio::time::Instant::now() + progress_every, progress_every);
        loop {
            tokio::select! {
                o = &mut call => break o,
                _ = tick.tick() => { let _ = msg.ack_with(AckKind::Progress).await; }
            }
        }
    };
    match outcome {
        Outcome::Answered { reply, .. } if reply.status.is_success() => {
            rec.status = Status::Succeeded;
            rec.result = Some(serde_json::from_slice(&reply.body).unwrap_or_else(|_| {
                serde_json::Value::String(String::from_utf8_lossy(&reply.body).into_owned())
            }));
            rec.error = None;
            rec.finished_ms = Some(crate::now_ms());
            rec.done = true;
            s.metrics.dispatched(true);
            finish(q, &msg, &rec).await;
        }
        Outcome::Answered { reply, worker } if reply.status.as_u16() == 429 => {
            // Not run: the worker's queue is full. Try again shortly, not counted.
            tracing::debug!(id, worker, "worker queue full; retrying later");
            rec.attempts -= 1;
            rec.status = Status::Queued;
            let _ = q.put_record(&rec).await;
            let _ = msg
                .ack_with(AckKind::Nak(Some(Duration::from_millis(500))))
                .await;
        }
        Outcome::Answered { reply, .. } => {
            let text = String::from_utf8_lossy(&reply.body);
            let why = serde_json::from_str::<serde_json::Value>(&text)
                .ok()
                .and_then(|v| v["error"]["message"].as_str().map(str::to_string))
                .unwrap_or_else(|| text.into_owned());
            failed(&mut rec, format!("{}: {why}", reply.status));
            s.metrics.dispatched(false);
            finish(q, &msg, &rec).await;
        }
        Outcome::Lost(e) => {
            tracing::warn!(id, attempt = rec.attempts, "{e}; it will run again");
            rec.error = Some(e.to_string());
            let _ = q.put_record(&rec).await;
            let _ = msg
                .ack_with(AckKind::Nak(Some(Duration::from_millis(200))))
                .await;
        }
        Outcome::NoWorker => {
            rec.attempts -= 1;
            rec.status = Status::Queued;
            let _ = q.put_record(&rec).await;
            let _ = msg
                .ack_with(AckKind::Nak(Some(Duration::from_secs(1))))
                .await;
        }
    }
}

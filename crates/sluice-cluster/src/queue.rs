//! Accepted asynchronous invocations on NATS JetStream, behind [`AsyncQueue`]:
//! - a work-queue stream (`stream`, one subject): an accepted invocation is one message whose
//!   `Nats-Msg-Id` is the invocation id, so a repeated accept within the duplicate window is
//!   stored once; [`AsyncQueue::accept`] returns only after the server acknowledged it;
//! - one durable pull consumer shared by every router's dispatchers, with explicit acks and
//!   `ack_wait`: a message whose dispatcher died is delivered again after it;
//! - a key-value bucket of [`Record`]s (status, attempts, result), whose entries expire after
//!   the retention; `GET /v1/invocations/{id}` on any router reads it.

use crate::error::ClusterError;
use async_nats::jetstream::{self, consumer::pull, kv, stream};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Header naming what an invocation runs: `function:<name>` or `pipeline:<name>`.
pub const TARGET_HEADER: &str = "Sluice-Target";
/// The durable consumer every dispatcher pulls from.
pub const CONSUMER: &str = "dispatchers";

/// The queue's names and limits.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QueueConfig {
    /// Stream name.
    pub stream: String,
    /// The stream's subject.
    pub subject: String,
    /// Key-value bucket of invocation records.
    pub bucket: String,
    /// A delivery not acknowledged (nor marked in progress) within this is delivered again, s.
    pub ack_wait_s: f64,
    /// Deliveries an invocation may start before it is Failed.
    pub max_attempts: u32,
    /// How long records (and results) are kept, s.
    pub retention_s: u64,
    /// Window in which a repeated accept (same id) is stored once, s.
    pub duplicate_window_s: u64,
    /// Invocations one router dispatches at once.
    pub max_inflight: usize,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            stream: "SLUICE_INVOCATIONS".into(),
            subject: "sluice.invocations".into(),
            bucket: "sluice_invocations".into(),
            ack_wait_s: 30.0,
            max_attempts: 3,
            retention_s: 86_400,
            duplicate_window_s: 120,
            max_inflight: 256,
        }
    }
}

impl QueueConfig {
    /// Checks ranges.
    pub fn validate(&self) -> Result<(), String> {
        if !(self.ack_wait_s.is_finite() && (0.5..=3600.0).contains(&self.ack_wait_s)) {
            return Err("async.ack_wait_s must be in 0.5..=3600".into());
        }
        if self.max_attempts == 0 || self.max_inflight == 0 || self.retention_s == 0 {
            return Err("async.max_attempts, max_inflight and retention_s must be positive".into());
        }
        if self.stream.is_empty() || self.subject.is_empty() || self.bucket.is_empty() {
            return Err("async.stream, subject and bucket must be named".into());
        }
        Ok(())
    }

    /// `ack_wait` as a duration.
    pub fn ack_wait(&self) -> Duration {
        Duration::from_secs_f64(self.ack_wait_s)
    }
}

/// Where an invocation is in its life (the worker's words).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Accepted, not started.
    Queued,
    /// Started (at least once).
    Running,
    /// Finished with a result.
    Succeeded,
    /// Finished with an error, or given up.
    Failed,
}

/// An invocation's record in the bucket; serialised as the worker's invocation view.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Invocation id.
    pub id: String,
    /// The function, or `pipeline:<name>`.
    pub function: String,
    /// Where it is.
    pub status: Status,
    /// The result (JSON, or a string holding non-JSON output).
    pub result: Option<serde_json::Value>,
    /// Why it failed.
    pub error: Option<String>,
    /// Deliveries started.
    pub attempts: u32,
    /// Accepted at, ms since the epoch.
    pub accepted_ms: u64,
    /// Last started at.
    pub started_ms: Option<u64>,
    /// Finished at.
    pub finished_ms: Option<u64>,
    /// Whether it finished.
    pub done: bool,
}

impl Record {
    /// A new record for an accepted invocation.
    pub fn queued(id: &str, function: &str) -> Record {
        Record {
            id: id.to_string(),
            function: function.to_string(),
            status: Status::Queued,
            result: None,
            error: None,
            attempts: 0,
            accepted_ms: crate::now_ms(),
            started_ms: None,
            finished_ms: None,
            done: false,
        }
    }
}

fn nats<E: std::fmt::Display>(what: &str) -> impl Fn(E) -> ClusterError + '_ {
    move |e| ClusterError::Nats(format!("{what}: {e}"))
}

/// The stream, consumer and bucket; cheap to clone.
#[derive(Clone)]
pub struct AsyncQueue {
    js: jetstream::Context,
    records: kv::Store,
    consumer: jetstream::consumer::Consumer<pull::Config>,
    client: async_nats::Client,
    cfg: QueueConfig,
}

impl AsyncQueue {
    /// Connects to NATS at `url` and creates (or opens) the stream, consumer and bucket.
    pub async fn connect(url: &str, cfg: QueueConfig) -> Result<AsyncQueue, ClusterError> {
        cfg.validate().map_err(ClusterError::Invalid)?;
        let client = async_nats::ConnectOptions::new()
            .connection_timeout(Duration::from_secs(3))
            .retry_on_initial_connect()
            .connect(url)
            .await
            .map_err(nats("connect"))?;
        let js = jetstream::new(client.clone());
        let stream = js
            .get_or_create_stream(stream::Config {
                name: cfg.stream.clone(),
                subjects: vec![cfg.subject.clone()],
                retention: stream::RetentionPolicy::WorkQueue,
                storage: stream::StorageType::File,
                duplicate_window: Duration::from_secs(cfg.duplicate_window_s),
                ..Default::default()
            })
            .await
            .map_err(nats("create stream"))?;
        let consumer = stream
            .get_or_create_consumer(
                CONSUMER,
                pull::Config {
                    durable_name: Some(CONSUMER.into()),
                    ack_policy: jetstream::consumer::AckPolicy::Explicit,
                    ack_wait: cfg.ack_wait(),
                    max_deliver: -1,
                    max_ack_pending: 100_000,
                    ..Default::default()
                },
            )
            .await
            .map_err(nats("create consumer"))?;
        let records = open_bucket(&js, &cfg).await?;
        Ok(AsyncQueue {
            js,
            records,
            consumer,
            client,
            cfg,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &QueueConfig {
        &self.cfg
    }

    /// Whether the NATS connection is up.
    pub fn connected(&self) -> bool {
        self.client.connection_state() == async_nats::connection::State::Connected
    }

    /// The shared pull consumer.
    pub fn consumer(&self) -> &jetstream::consumer::Consumer<pull::Config> {
        &self.consumer
    }

    /// Durably accepts an invocation of `target` (`function:<f>` / `pipeline:<p>`) under `id`:
    /// returns once JetStream acknowledged the message (true if it was new, false if this id
    /// was already accepted), then writes its Queued record unless one exists.
    pub async fn accept(&self, id: &str, target: &str, input: Bytes) -> Result<bool, ClusterError> {
        let msg = jetstream::message::PublishMessage::build()
            .payload(input)
            .message_id(id)
            .header(TARGET_HEADER, target);
        let ack = self
            .js
            .send_publish(self.cfg.subject.clone(), msg)
            .await
            .map_err(nats("publish"))?
            .await
            .map_err(nats("publish ack"))?;
        let name = target.strip_prefix("function:").unwrap_or(target);
        let rec = serde_json::to_vec(&Record::queued(id, name))
            .map_err(|e| ClusterError::Invalid(e.to_string()))?;
        // Queued only if no dispatcher got there first; a failure here loses nothing (the
        // message is stored; the dispatcher writes the record when it starts).
        if let Err(e) = self.records.create(id, rec.into()).await {
            if e.kind() != kv::CreateErrorKind::AlreadyExists {
                tracing::debug!(id, "cannot write the queued record: {e}");
            }
        }
        Ok(!ack.duplicate)
    }

    /// An invocation's record.
    pub async fn record(&self, id: &str) -> Result<Option<Record>, ClusterError> {
        let Some(raw) = self.records.get(id).await.map_err(nats("read record"))? else {
            return Ok(None);
        };
        serde_json::from_slice(&raw)
            .map(Some)
            .map_err(|e| ClusterError::Malformed {
                key: id.to_string(),
                message: e.to_string(),
            })
    }

    /// Writes an invocation's record.
    pub async fn put_record(&self, r: &Record) -> Result<(), ClusterError> {
        let raw = serde_json::to_vec(r).map_err(|e| ClusterError::Invalid(e.to_string()))?;
        self.records
            .put(&r.id, raw.into())
            .await
            .map_err(nats("write record"))
            .map(|_| ())
    }

    /// Messages in the stream not yet acknowledged (queued or running), for status.
    pub async fn pending(&self) -> Result<u64, ClusterError> {
        let mut s = self
            .js
            .get_stream(&self.cfg.stream)
            .await
            .map_err(nats("stream"))?;
        Ok(s.info().await.map_err(nats("stream info"))?.state.messages)
    }
}

/// Opens the records bucket, creating its stream first if needed. The stream is made here with
/// the key-value conventions (`KV_<bucket>`, subjects `$KV.<bucket>.>`, one message per
/// subject, roll-ups, direct gets) rather than by `create_key_value`, which first reads the
/// account's limits in a form that nats-server 2.9 (Debian's) does not answer.
async fn open_bucket(
    js: &jetstream::Context,
    cfg: &QueueConfig,
) -> Result<kv::Store, ClusterError> {
    if let Ok(kv) = js.get_key_value(&cfg.bucket).await {
        return Ok(kv);
    }
    let max_age = Duration::from_secs(cfg.retention_s);
    js.get_or_create_stream(stream::Config {
        name: format!("KV_{}", cfg.bucket),
        subjects: vec![format!("$KV.{}.>", cfg.bucket)],
        max_messages_per_subject: 1,
        max_age,
        storage: stream::StorageType::File,
        allow_rollup: true,
        deny_delete: true,
        allow_direct: true,
        discard: stream::DiscardPolicy::New,
        num_replicas: 1,
        duplicate_window: max_age.min(Duration::from_secs(120)),
        ..Default::default()
    })
    .await
    .map_err(nats("create bucket"))?;
    js.get_key_value(&cfg.bucket)
        .await
        .map_err(nats("open bucket"))
}

/// Whether `id` can be an invocation id (and a key-value key): 1–64 of `[A-Za-z0-9_-]`.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// A fresh random invocation id (128 bits, hex).
pub fn new_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

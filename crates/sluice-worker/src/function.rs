//! A registered function: any executable — a command on the worker's host, or a container
//! image's entrypoint (`image`, see [`crate::images`]) — plus the resources and limits it runs
//! under. Specs arrive as JSON through the API and are kept in the store;
//! [`FunctionSpec::validate`] is the single place that decides whether one is acceptable.

use crate::images::{ImageRef, ResolvedImage};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

/// Resources a function's sandbox is given.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Resources {
    /// CPU cores (may be fractional): the sandbox's CPU quota.
    pub cpus: f64,
    /// Memory limit of the sandbox, MiB.
    pub memory_mb: u64,
    /// Most processes/threads in the sandbox.
    pub pids: u32,
    /// Whether the function uses a GPU.
    pub gpu: bool,
    /// Estimated device memory of one sandbox, MiB (the memory policy's input).
    pub gpu_memory_mb: u64,
    /// Whether the sandbox may use the network: outbound access through a user-mode stack in
    /// its own network namespace (otherwise it has its own loopback only).
    pub network: bool,
    /// Size of the sandbox's private `/tmp` (a tmpfs counted in its memory), MiB.
    pub tmp_mb: u64,
}

impl Default for Resources {
    fn default() -> Self {
        Resources {
            cpus: 1.0,
            memory_mb: 512,
            pids: 256,
            gpu: false,
            gpu_memory_mb: 0,
            network: false,
            tmp_mb: 64,
        }
    }
}

/// Upper bounds of [`Resources`] (1 TiB of memory, in MiB).
pub const MAX_MEMORY_MB: u64 = 1 << 20;
/// Most processes and threads a sandbox may be allowed.
pub const MAX_PIDS: u32 = 65_536;
/// Largest private `/tmp`, MiB (64 GiB).
pub const MAX_TMP_MB: u64 = 64 << 10;

/// A function as registered.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FunctionSpec {
    /// Unique name: 1–63 characters of `a-z`, `0-9`, `-`, `_`, starting with a letter or digit.
    pub name: String,
    /// The executable and its arguments (`command[0]` is the program). Required unless `image`
    /// is given; with an image it replaces the image's `Entrypoint` and `Cmd`.
    #[serde(default)]
    pub command: Vec<String>,
    /// A container image to run the function from (its root, its entrypoint, workdir, env and
    /// user as defaults); the worker pins the image's digest into it at registration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<ImageRef>,
    /// What this worker resolved `image` to (set at registration and at start; never part of
    /// the JSON). A spec with `image` and without this is never started.
    #[serde(skip)]
    pub resolved: Option<Arc<ResolvedImage>>,
    /// Extra environment variables.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Working directory, bound read-only into the sandbox at its own path (default: the
    /// sandbox's private tmp); with `image`, an absolute directory inside the image (default:
    /// its `WorkingDir`).
    #[serde(default)]
    pub workdir: Option<PathBuf>,
    /// Further host paths the function reads (files or directories, absolute), bound read-only
    /// at their own paths; the program, path arguments, path-valued environment entries and the
    /// workdir are bound without being listed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<PathBuf>,
    /// CPU, memory, process, GPU, network and tmp limits of each sandbox (defaults: 1 CPU,
    /// 512 MiB, no GPU, no network).
    #[serde(default)]
    pub resources: Resources,
    /// An invocation running longer than this is killed, ms.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Most predicted queueing delay at which an invocation is still admitted, ms (default: the
    /// timeout); beyond it the worker answers 429 with a `Retry-After`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_queue_ms: Option<u64>,
    /// Most invocations one sandbox runs at once: with more than 1 the worker sends further
    /// requests to a running sandbox instead of starting another (the function must serve them
    /// concurrently); each invocation still holds its own device slot.
    #[serde(default = "one")]
    pub concurrency: u32,
    /// Fair-share weight of the function's flow.
    #[serde(default = "unit")]
    pub weight: f64,
}

fn default_timeout_ms() -> u64 {
    60_000
}
fn one() -> u32 {
    1
}
fn unit() -> f64 {
    1.0
}

/// Why a spec is refused; the message names the field.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("invalid function spec: {field}: {reason}")]
pub struct SpecError {
    /// The offending field as it appears in the JSON (`resources.cpus`, `timeout_ms`, …).
    pub field: &'static str,
    /// What is wrong with it (often the accepted range).
    pub reason: String,
}

fn err(field: &'static str, reason: impl Into<String>) -> SpecError {
    SpecError {
        field,
        reason: reason.into(),
    }
}

/// Checks a function name: 1–63 characters of `a-z`, `0-9`, `-`, `_`, starting with a letter
/// or digit.
pub fn check_name(n: &str) -> Result<(), SpecError> {
    let ok_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_';
    if n.is_empty() || n.len() > 63 || !n.chars().all(ok_char) || n.starts_with(['-', '_']) {
        return Err(err(
            "name",
            "1-63 characters of a-z, 0-9, '-', '_', starting with a letter or digit",
        ));
    }
    Ok(())
}

impl FunctionSpec {
    /// Checks every field.
    pub fn validate(&self) -> Result<(), SpecError> {
        check_name(&self.name)?;
        if let Some(image) = &self.image {
            image
                .wanted()
                .map_err(|(field, reason)| err(field, reason))?;
            if !self.files.is_empty() {
                return Err(err(
                    "files",
                    "a function from an image sees only its image (put the files into it)",
                ));
            }
            if self.workdir.as_ref().is_some_and(|w| !w.is_absolute()) {
                return Err(err("workdir", "must be absolute inside the image"));
            }
            if self.command.first().is_some_and(String::is_empty) {
                return Err(err("command", "must name a program"));
            }
        } else if self.command.is_empty() || self.command[0].is_empty() {
            return Err(err("command", "must name a program (or give an image)"));
        }
        if self.command.iter().any(|a| a.contains('\0')) {
            return Err(err("command", "arguments may not contain NUL"));
        }
        for (k, v) in &self.env {
            if k.is_empty() || k.contains('=') || k.contains('\0') || v.contains('\0') {
                return Err(err("env", format!("bad variable {k:?}")));
            }
        }
        let r = &self.resources;
        if !(r.cpus.is_finite() && r.cpus > 0.0 && r.cpus <= 1024.0) {
            return Err(err("resources.cpus", "must be in (0, 1024]"));
        }
        if !(16..=MAX_MEMORY_MB).contains(&r.memory_mb) {
            return Err(err(
                "resources.memory_mb",
                format!("must be in 16..={MAX_MEMORY_MB}"),
            ));
        }
        if r.gpu_memory_mb > MAX_MEMORY_MB {
            return Err(err(
                "resources.gpu_memory_mb",
                format!("must be at most {MAX_MEMORY_MB}"),
            ));
        }
        if !(4..=MAX_PIDS).contains(&r.pids) {
            return Err(err("resources.pids", format!("must be in 4..={MAX_PIDS}")));
        }
        if !(1..=MAX_TMP_MB).contains(&r.tmp_mb) {
            return Err(err(
                "resources.tmp_mb",
                format!("must be in 1..={MAX_TMP_MB}"),
            ));
        }
        if self.files.len() > 64 {
            return Err(err("files", "at most 64 paths"));
        }
        for f in &self.files {
            let text = f.to_string_lossy();
            if !f.is_absolute()
                || text.contains('\0')
                || f.components().any(|c| c.as_os_str() == "..")
            {
                return Err(err(
                    "files",
                    format!("{text:?} must be an absolute path without '..'"),
                ));
            }
        }
        if self.timeout_ms == 0 || self.timeout_ms > 24 * 3_600_000 {
            return Err(err("timeout_ms", "must be in 1..=86400000"));
        }
        if self.max_queue_ms.is_some_and(|ms| ms > 24 * 3_600_000) {
            return Err(err("max_queue_ms", "must be in 0..=86400000"));
        }
        if self.concurrency == 0 || self.concurrency > 1024 {
            return Err(err("concurrency", "must be in 1..=1024"));
        }
        if !(self.weight.is_finite() && self.weight > 0.0) {
            return Err(err("weight", "must be a positive number"));
        }
        Ok(())
    }

    /// The admission bound: `max_queue_ms`, or the timeout when it is not set.
    pub fn max_queue_ms(&self) -> u64 {
        self.max_queue_ms.unwrap_or(self.timeout_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> FunctionSpec {
        serde_json::from_str(r#"{"name":"hello","command":["python3","hello.py"]}"#).unwrap()
    }

    #[test]
    fn defaults_fill_in() {
        let s = spec();
        assert_eq!(s.timeout_ms, 60_000);
        assert_eq!(s.concurrency, 1);
        assert_eq!(s.resources.memory_mb, 512);
        assert_eq!(s.max_queue_ms(), 60_000, "the timeout");
        assert!(s.validate().is_ok());
        let json = serde_json::to_value(&s).unwrap();
        assert!(json.get("max_queue_ms").is_none(), "unset stays unset");
    }

    type Mutation = fn(&mut FunctionSpec);

    #[test]
    fn each_bad_field_is_named() {
        let cases: Vec<(Mutation, &str)> = vec![
            (|s| s.name = "Bad Name".into(), "name"),
            (|s| s.name = String::new(), "name"),
            (|s| s.command.clear(), "command"),
            (|s| s.resources.cpus = 0.0, "resources.cpus"),
            (|s| s.resources.memory_mb = 1, "resources.memory_mb"),
            (
                |s| s.resources.memory_mb = MAX_MEMORY_MB + 1,
                "resources.memory_mb",
            ),
            (|s| s.resources.memory_mb = u64::MAX, "resources.memory_mb"),
            (
                |s| s.resources.gpu_memory_mb = u64::MAX,
                "resources.gpu_memory_mb",
            ),
            (
                |s| s.resources.gpu_memory_mb = MAX_MEMORY_MB + 1,
                "resources.gpu_memory_mb",
            ),
            (|s| s.resources.pids = 1, "resources.pids"),
            (|s| s.resources.pids = u32::MAX, "resources.pids"),
            (|s| s.resources.tmp_mb = 0, "resources.tmp_mb"),
            (|s| s.resources.tmp_mb = MAX_TMP_MB + 1, "resources.tmp_mb"),
            (|s| s.files = vec!["relative/path".into()], "files"),
            (|s| s.files = vec!["/a/../etc/shadow".into()], "files"),
            (|s| s.files = vec!["/x".into(); 65], "files"),
            (|s| s.timeout_ms = 0, "timeout_ms"),
            (|s| s.max_queue_ms = Some(86_400_001), "max_queue_ms"),
            (|s| s.concurrency = 0, "concurrency"),
            (|s| s.weight = f64::NAN, "weight"),
            (
                |s| {
                    s.env.insert("A=B".into(), "x".into());
                },
                "env",
            ),
        ];
        for (mutate, field) in cases {
            let mut s = spec();
            mutate(&mut s);
            assert_eq!(s.validate().unwrap_err().field, field);
        }
    }

    #[test]
    fn bounds_are_inclusive_and_files_parse() {
        let mut s: FunctionSpec = serde_json::from_str(
            r#"{"name":"a","command":["x"],"files":["/opt/model.onnx"],"resources":{"tmp_mb":16}}"#,
        )
        .unwrap();
        assert_eq!(s.files, vec![PathBuf::from("/opt/model.onnx")]);
        assert_eq!(s.resources.tmp_mb, 16);
        s.resources.memory_mb = MAX_MEMORY_MB;
        s.resources.gpu_memory_mb = MAX_MEMORY_MB;
        s.resources.pids = MAX_PIDS;
        s.resources.tmp_mb = MAX_TMP_MB;
        assert!(s.validate().is_ok());
        // The largest accepted device memory converts to bytes without overflow.
        assert_eq!(
            s.resources.gpu_memory_mb.checked_mul(1 << 20),
            Some(1 << 40)
        );
    }

    #[test]
    fn an_image_replaces_the_command_and_its_bad_fields_are_named() {
        let parse = |json: &str| serde_json::from_str::<FunctionSpec>(json).unwrap();
        let s = parse(r#"{"name":"a","image":{"source":"docker-archive:/i/a.tar"}}"#);
        assert!(s.validate().is_ok(), "{s:?}");
        let json = serde_json::to_value(&s).unwrap();
        assert!(json.get("resolved").is_none(), "never serialised");
        let field = |json: &str| parse(json).validate().unwrap_err().field;
        assert_eq!(field(r#"{"name":"a"}"#), "command");
        assert_eq!(field(r#"{"name":"a","image":{}}"#), "image");
        assert_eq!(
            field(r#"{"name":"a","image":{"source":"x"}}"#),
            "image.source"
        );
        assert_eq!(
            field(r#"{"name":"a","image":{"digest":"sha256:1"}}"#),
            "image.digest"
        );
        assert_eq!(field(r#"{"name":"a","image":{"ref":""}}"#), "image.ref");
        assert_eq!(
            field(r#"{"name":"a","image":{"ref":"x"},"files":["/etc/x"]}"#),
            "files"
        );
        assert_eq!(
            field(r#"{"name":"a","image":{"ref":"x"},"workdir":"srv"}"#),
            "workdir"
        );
        assert_eq!(
            field(r#"{"name":"a","image":{"ref":"x"},"command":[""]}"#),
            "command"
        );
    }

    #[test]
    fn unknown_fields_are_rejected() {
        let r: Result<FunctionSpec, _> =
            serde_json::from_str(r#"{"name":"a","command":["x"],"colour":"red"}"#);
        assert!(r.unwrap_err().to_string().contains("colour"));
    }
}

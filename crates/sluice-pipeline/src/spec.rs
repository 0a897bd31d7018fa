//! Pipeline specs: a DAG of long-running stages with batching, a p99 latency target and an
//! expected load, read from YAML or JSON and validated with messages that name the stage and the
//! field at fault. This module owns the shape of a spec and its validity rules (unique names,
//! known predecessors, no cycles, sane numbers); it knows nothing of GPUs or plans.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// The pipeline input, as a predecessor name: stages with no `after` take it.
pub const INPUT: &str = "input";

/// How a stage can receive its inputs from a predecessor.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Handoff {
    /// Shared memory on the host (tmpfs segment mapped by both processes).
    Shm,
    /// CUDA IPC memory handle (device memory, same GPU).
    CudaIpc,
    /// An ordinary copy through the request body.
    Copy,
}

/// One stage: a long-running service that takes batches.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageSpec {
    /// Unique within the pipeline: 1-64 characters from `[A-Za-z0-9_.-]`, not `input` (see
    /// [`valid_name`]); `after` lists refer to stages by it.
    pub name: String,
    /// The program to run (argv); relative paths resolve against the spec's directory. Empty for
    /// stages that exist only in planning and simulation (profile-driven models).
    #[serde(default)]
    pub command: Vec<String>,
    /// A container image the stage runs from instead of a host command (its entrypoint unless
    /// `command` replaces it); resolved by the worker that deploys the pipeline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<StageImage>,
    /// Extra environment for the stage's processes.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Profile key of the stage's model; defaults to the stage name.
    #[serde(default)]
    pub model: Option<String>,
    /// Predecessor stages; empty = the stage takes the pipeline input.
    #[serde(default)]
    pub after: Vec<String>,
    /// Largest batch one instance runs.
    #[serde(default = "default_max_batch")]
    pub max_batch: u32,
    /// Longest a queued item waits for its batch to fill, in milliseconds.
    #[serde(default = "default_max_wait_ms")]
    pub max_wait_ms: f64,
    /// Memory one instance holds (GPU memory on a GPU), in MB.
    #[serde(default)]
    pub memory_mb: u64,
    /// Size of one item's output, in KB (used to cost hand-offs).
    #[serde(default = "default_output_kb")]
    pub output_kb: f64,
    /// Hand-off kinds the stage accepts, best first.
    #[serde(default = "default_handoff")]
    pub handoff: Vec<Handoff>,
}

/// A stage's image, named as a function's: `source` (`oci-layout:<dir>` or
/// `docker-archive:<file.tar>` on the worker) with `ref`, or `digest`, or `ref` of an image the
/// worker already has. This crate only carries it; the worker checks and resolves it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageImage {
    /// Where the worker imports it from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// A tag or digest of the source, or the name of an imported image.
    #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    /// The image's manifest digest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
}

fn default_max_batch() -> u32 {
    8
}
fn default_max_wait_ms() -> f64 {
    5.0
}
fn default_output_kb() -> f64 {
    64.0
}
fn default_handoff() -> Vec<Handoff> {
    vec![Handoff::Shm, Handoff::Copy]
}

impl StageSpec {
    /// The profile key of this stage.
    pub fn model(&self) -> &str {
        self.model.as_deref().unwrap_or(&self.name)
    }
    /// Whether this stage accepts a hand-off of `kind`.
    pub fn accepts(&self, kind: Handoff) -> bool {
        self.handoff.contains(&kind)
    }
}

/// A whole pipeline.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineSpec {
    /// The pipeline's name: 1-64 characters from `[A-Za-z0-9_.-]` (see [`valid_name`]).
    pub name: String,
    /// End-to-end p99 latency target, milliseconds.
    pub slo_ms: f64,
    /// Expected load, requests per second.
    #[serde(default)]
    pub load_rps: f64,
    /// The stages (1..=[`MAX_STAGES`]), forming a DAG through their `after` lists; a stage's
    /// index in this list is how plans refer to it.
    pub stages: Vec<StageSpec>,
}

/// Largest batch a spec may ask for.
pub const MAX_BATCH_LIMIT: u32 = 1024;
/// Most stages in one pipeline.
pub const MAX_STAGES: usize = 64;

/// Why a spec was refused.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SpecError {
    /// The text is not YAML/JSON of a spec's shape (the parser's message).
    #[error("not valid YAML/JSON for a pipeline spec: {0}")]
    Parse(String),
    /// The pipeline's name breaks [`valid_name`].
    #[error("pipeline name {0:?} is invalid: use 1-64 characters from [A-Za-z0-9_.-]")]
    Name(String),
    /// A stage's name breaks [`valid_name`] or is the reserved [`INPUT`].
    #[error("stage name {0:?} is invalid: use 1-64 characters from [A-Za-z0-9_.-], not \"input\"")]
    StageName(String),
    /// The spec lists no stage.
    #[error("the pipeline has no stages")]
    Empty,
    /// The spec lists more than [`MAX_STAGES`] stages (how many).
    #[error("the pipeline has {0} stages; at most {MAX_STAGES} are allowed")]
    TooManyStages(usize),
    /// Two stages share this name.
    #[error("stage {0:?} is defined twice")]
    Duplicate(String),
    /// A stage's `after` names a stage the pipeline does not have.
    #[error("stage {stage:?}: `after` names {missing:?}, which is not a stage of this pipeline")]
    UnknownPredecessor {
        /// The stage whose `after` is at fault.
        stage: String,
        /// The name it lists that matches no stage.
        missing: String,
    },
    /// The named stage lists one predecessor twice.
    #[error("stage {0:?} lists the same predecessor twice")]
    RepeatedPredecessor(String),
    /// The `after` lists form a cycle; the name is one stage on (or behind) it.
    #[error("the stages form a cycle through {0:?}")]
    Cycle(String),
    /// A stage's field holds a value outside its range.
    #[error("stage {stage:?}: {field} {problem}")]
    Field {
        /// The stage at fault.
        stage: String,
        /// The field, as spelt in the spec (`max_batch`, `max_wait_ms`, ...).
        field: &'static str,
        /// What is wrong with its value, e.g. "must be 1..=1024, got 0".
        problem: String,
    },
    /// `slo_ms` is not a finite positive number (the value given).
    #[error("slo_ms must be a positive number of milliseconds, got {0}")]
    Slo(f64),
    /// `load_rps` is negative or not finite (the value given).
    #[error("load_rps must be a finite number >= 0, got {0}")]
    Load(f64),
}

impl PipelineSpec {
    /// Reads a spec from YAML (JSON is YAML too) and validates it.
    pub fn parse(text: &str) -> Result<Self, SpecError> {
        let spec: PipelineSpec =
            serde_norway::from_str(text).map_err(|e| SpecError::Parse(e.to_string()))?;
        spec.validate()?;
        Ok(spec)
    }

    /// Checks every rule; the first broken one is reported.
    pub fn validate(&self) -> Result<(), SpecError> {
        if !valid_name(&self.name) {
            return Err(SpecError::Name(self.name.clone()));
        }
        if !(self.slo_ms.is_finite() && self.slo_ms > 0.0) {
            return Err(SpecError::Slo(self.slo_ms));
        }
        if !(self.load_rps.is_finite() && self.load_rps >= 0.0) {
            return Err(SpecError::Load(self.load_rps));
        }
        if self.stages.is_empty() {
            return Err(SpecError::Empty);
        }
        if self.stages.len() > MAX_STAGES {
            return Err(SpecError::TooManyStages(self.stages.len()));
        }
        let mut names = BTreeSet::new();
        for s in &self.stages {
            if !valid_name(&s.name) || s.name == INPUT {
                return Err(SpecError::StageName(s.name.clone()));
            }
            if !names.insert(s.name.as_str()) {
                return Err(SpecError::Duplicate(s.name.clone()));
            }
            s.validate_fields()?;
        }
        for s in &self.stages {
            let mut seen = BTreeSet::new();
            for p in &s.after {
                if !names.contains(p.as_str()) {
                    return Err(SpecError::UnknownPredecessor {
                        stage: s.name.clone(),
                        missing: p.clone(),
                    });
                }
                if !seen.insert(p) {
                    return Err(SpecError::RepeatedPredecessor(s.name.clone()));
                }
            }
        }
        self.topo_order().map(|_| ())
    }

    /// Stage indices in an order where every stage follows its predecessors (ties by position
    /// in the spec, so the order is deterministic).
    pub fn topo_order(&self) -> Result<Vec<usize>, SpecError> {
        let index = self.index();
        let mut indeg: Vec<usize> = self.stages.iter().map(|s| s.after.len()).collect();
        let mut order = Vec::with_capacity(self.stages.len());
        let mut done = vec![false; self.stages.len()];
        while order.len() < self.stages.len() {
            let Some(next) = (0..self.stages.len()).find(|&i| !done[i] && indeg[i] == 0) else {
                let stuck = (0..self.stages.len()).find(|&i| !done[i]).unwrap_or(0);
                return Err(SpecError::Cycle(self.stages[stuck].name.clone()));
            };
            done[next] = true;
            order.push(next);
            for (i, s) in self.stages.iter().enumerate() {
                let from_next = s
                    .after
                    .iter()
                    .filter(|p| index.get(p.as_str()) == Some(&next));
                indeg[i] -= from_next.count();
            }
        }
        Ok(order)
    }

    /// Index of each stage by name.
    pub fn index(&self) -> BTreeMap<&str, usize> {
        self.stages
            .iter()
            .enumerate()
            .map(|(i, s)| (s.name.as_str(), i))
            .collect()
    }

    /// Position of the stage called `name`.
    pub fn stage_index(&self, name: &str) -> Option<usize> {
        self.stages.iter().position(|s| s.name == name)
    }

    /// Predecessor indices of stage `i`, in `after` order.
    pub fn predecessors(&self, i: usize) -> Vec<usize> {
        let index = self.index();
        self.stages[i]
            .after
            .iter()
            .filter_map(|p| index.get(p.as_str()).copied())
            .collect()
    }

    /// Successor indices of stage `i`, in spec order.
    pub fn successors(&self, i: usize) -> Vec<usize> {
        let name = &self.stages[i].name;
        (0..self.stages.len())
            .filter(|&j| self.stages[j].after.iter().any(|p| p == name))
            .collect()
    }

    /// Stages that take the pipeline input.
    pub fn sources(&self) -> Vec<usize> {
        (0..self.stages.len())
            .filter(|&i| self.stages[i].after.is_empty())
            .collect()
    }

    /// Stages nobody consumes: their outputs form the pipeline's result.
    pub fn sinks(&self) -> Vec<usize> {
        (0..self.stages.len())
            .filter(|&i| self.successors(i).is_empty())
            .collect()
    }

    /// Edges (producer, consumer) in spec order.
    pub fn edges(&self) -> Vec<(usize, usize)> {
        (0..self.stages.len())
            .flat_map(|j| self.predecessors(j).into_iter().map(move |i| (i, j)))
            .collect()
    }
}

impl StageSpec {
    fn validate_fields(&self) -> Result<(), SpecError> {
        let bad = |field: &'static str, problem: String| SpecError::Field {
            stage: self.name.clone(),
            field,
            problem,
        };
        if self.max_batch == 0 || self.max_batch > MAX_BATCH_LIMIT {
            return Err(bad(
                "max_batch",
                format!("must be 1..={MAX_BATCH_LIMIT}, got {}", self.max_batch),
            ));
        }
        if !(self.max_wait_ms.is_finite() && (0.0..=60_000.0).contains(&self.max_wait_ms)) {
            return Err(bad(
                "max_wait_ms",
                format!("must be 0..=60000, got {}", self.max_wait_ms),
            ));
        }
        if !(self.output_kb.is_finite() && self.output_kb >= 0.0) {
            return Err(bad(
                "output_kb",
                format!("must be >= 0, got {}", self.output_kb),
            ));
        }
        if self.handoff.is_empty() {
            return Err(bad(
                "handoff",
                "must list at least one of shm, cuda-ipc, copy".into(),
            ));
        }
        if self.command.first().is_some_and(|c| c.is_empty()) {
            return Err(bad("command", "starts with an empty program name".into()));
        }
        if let Some(m) = &self.model {
            if m.is_empty() {
                return Err(bad("model", "is empty".into()));
            }
        }
        Ok(())
    }
}

/// 1-64 characters from `[A-Za-z0-9_.-]`, not starting with '.'.
pub fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && !s.starts_with('.')
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
}

#[cfg(test)]
#[path = "spec_tests.rs"]
mod tests;

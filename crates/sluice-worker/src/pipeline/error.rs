//! The pipeline runtime's errors: [`StageError`] names the stage once and says what went wrong
//! with it ([`StageErrorKind`]: its start, its process, its answer, its outputs); the others say
//! why a deploy request is invalid ([`RequestError`]), a deployment did not start
//! ([`DeployError`]), a stage output could not be read ([`PayloadError`]), a request failed on
//! its way through the DAG ([`RunError`]) and a profiling run stopped ([`ProfileError`]). What
//! the API answers for each is `api/pipelines.rs`'s mapping of [`super::PipelineError`].
//!
//! Errors of one request are shared by every stage waiting on the failed one, so the run-time
//! errors are `Clone` (non-cloneable causes are held in an `Arc`).

use sluice_handoff::shm::ShmError;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

/// Something went wrong with one stage.
#[derive(Debug, Clone, PartialEq)]
pub struct StageError {
    /// The stage's name.
    pub stage: String,
    /// What happened.
    pub kind: StageErrorKind,
}

impl StageError {
    /// `kind` of stage `stage`.
    pub fn new(stage: impl Into<String>, kind: StageErrorKind) -> Self {
        StageError {
            stage: stage.into(),
            kind,
        }
    }
}

impl fmt::Display for StageError {
    /// `stage det did not start: …` for what the stage did; `stage det: …` before a message
    /// that is someone else's (the function protocol's, the stage's own).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sep = if self.kind.is_quoted() { ": " } else { " " };
        write!(f, "stage {}{sep}{}", self.stage, self.kind)
    }
}

impl std::error::Error for StageError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.kind)
    }
}

/// What went wrong with a stage (see [`StageError`], which names it).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StageErrorKind {
    /// Its sandbox did not start or get ready (the launcher's message, with its stderr).
    #[error("did not start: {0}")]
    NotStarted(String),
    /// Its process died more often than an instance restarts it.
    #[error("died ({exit}) {restarts} times; stderr: {stderr}")]
    DiedTooOften {
        /// How the process ended last.
        exit: String,
        /// Restarts so far.
        restarts: u32,
        /// The end of its stderr.
        stderr: String,
    },
    /// Its instance was stopped (a replaced deployment, a shutdown).
    #[error("has stopped")]
    Stopped,
    /// Its instance ended without answering the item.
    #[error("dropped the item")]
    Dropped,
    /// The call to its process failed (the function protocol's message).
    #[error("{0}")]
    Call(String),
    /// It answered an item with an error of its own.
    #[error("{0}")]
    Refused(String),
    /// Its answer is not a valid batch frame, or does not match the request.
    #[error("answered a bad frame: {0}")]
    BadFrame(String),
    /// It answered an output kind other than the one it was told to use.
    #[error("answered {0} when told inline")]
    NotInline(&'static str),
    /// It answered a CUDA IPC handle without being asked for device outputs.
    #[error("answered a CUDA IPC output it was not asked for")]
    UnaskedDeviceOutput,
    /// It exported memory of a GPU other than its own.
    #[error("exported device memory of GPU {device}, but it runs on GPU {runs_on}")]
    WrongGpu {
        /// The GPU the handle is on.
        device: u32,
        /// The GPU the stage runs on.
        runs_on: u32,
    },
    /// It answered a handle the worker still holds from an earlier answer.
    #[error(
        "answered CUDA IPC handle {0} again while an earlier output with that handle is still in use"
    )]
    HandleReused(String),
    /// Its process died, and its device memory with it.
    #[error("died")]
    Died,
    /// It died before a consumer could open its device output.
    #[error(
        "died before stage {consumer} could open its output (CUDA IPC memory is freed with its \
         process)"
    )]
    DiedBeforeHandover {
        /// The consumer stage.
        consumer: String,
    },
    /// Copying its device output to host memory failed.
    #[error("cannot copy its CUDA IPC output (GPU {gpu}) to host: {reason}")]
    DeviceCopy {
        /// The GPU of the output.
        gpu: u32,
        /// Why.
        reason: String,
    },
    /// It answered a shared-memory output without being given a segment.
    #[error("answered a shared-memory output it was not given")]
    UnaskedSegment,
    /// It wrote a segment other than the one it was given.
    #[error("wrote segment {path:?}, not the one it was given ({expected:?})")]
    WrongSegment {
        /// The segment it named.
        path: String,
        /// The one it was given.
        expected: String,
    },
    /// Its segment could not be taken over (the shared-memory arena's message).
    #[error("{0}")]
    Segment(String),
    /// Its segment holds another size than it declared.
    #[error("declared {declared} bytes but its segment holds {holds}")]
    SegmentSize {
        /// The size in its answer.
        declared: u64,
        /// The segment's size.
        holds: u64,
    },
    /// A deploy request gives it neither a command nor an image.
    #[error("has no command: the worker can only deploy stages it can run")]
    NoCommand,
    /// Its image reference is invalid (the field and why).
    #[error("{0}")]
    BadImage(String),
    /// Its device hand-off switch has a bad value.
    #[error("{0}")]
    BadSwitch(String),
    /// It produced no outputs for a successor (profiling).
    #[error("has no outputs")]
    NoOutputs,
}

impl StageErrorKind {
    /// Whether the message is someone else's, shown after `stage X: `.
    fn is_quoted(&self) -> bool {
        matches!(
            self,
            StageErrorKind::Call(_)
                | StageErrorKind::Refused(_)
                | StageErrorKind::Segment(_)
                | StageErrorKind::BadSwitch(_)
                | StageErrorKind::BadImage(_)
                | StageErrorKind::DeviceCopy { .. }
        )
    }
}

/// Why a deploy request cannot be planned.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// The pipeline spec is invalid.
    #[error("{0}")]
    Spec(#[from] sluice_pipeline::spec::SpecError),
    /// A stage of it cannot be deployed.
    #[error("{0}")]
    Stage(#[from] StageError),
    /// `base_dir` is relative.
    #[error("base_dir must be an absolute path, got {}", .0.display())]
    RelativeBaseDir(PathBuf),
    /// The re-planning thresholds are invalid.
    #[error("{0}")]
    Controller(#[from] sluice_pipeline::controller::ConfigError),
    /// A number out of range (the field named in the message).
    #[error("{0}")]
    Range(String),
    /// More GPUs asked for than the worker has.
    #[error("the request asks for {asked} GPUs; this worker has {available}")]
    TooManyGpus {
        /// GPUs asked for.
        asked: u32,
        /// GPUs the worker has.
        available: u32,
    },
    /// The profile CSV cannot be read.
    #[error("profile: {0}")]
    Profile(String),
    /// The planner refused (an unknown policy, no feasible plan).
    #[error("{0}")]
    Plan(#[from] sluice_pipeline::PlanError),
    /// The planning task itself failed.
    #[error("planning failed: {0}")]
    Planning(String),
}

/// Why a deployment did not start.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    /// The plan needs more GPUs than the worker has.
    #[error("the plan needs {needs} GPUs; this worker has {has}")]
    TooManyGpus {
        /// GPUs in the plan.
        needs: u32,
        /// GPUs of the worker.
        has: u32,
    },
    /// A co-location group's shared memory could not be set up.
    #[error("shared memory for GPU {gpu}: {reason}")]
    SharedMemory {
        /// The group's GPU.
        gpu: u32,
        /// Why.
        reason: String,
    },
    /// The uid range has no user left for a group.
    #[error("every sandbox user is in use")]
    NoUser,
    /// A stage instance did not start.
    #[error("{0}")]
    Stage(#[from] StageError),
    /// A start task failed (panicked or was cancelled).
    #[error("starting an instance failed: {0}")]
    Task(String),
    /// A stage's image could not be resolved (not imported, unreadable, no image store).
    #[error("{0}")]
    Image(String),
}

/// Why a stage output could not be read as bytes.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PayloadError {
    /// Its shared-memory segment cannot be read.
    #[error("reading segment {name}: {source}")]
    Segment {
        /// The segment.
        name: String,
        /// The arena's error.
        source: Arc<ShmError>,
    },
    /// Its segment holds another size than recorded.
    #[error("segment {name} holds {holds} bytes, {expected} expected")]
    SegmentSize {
        /// The segment.
        name: String,
        /// Its size.
        holds: u64,
        /// The recorded size.
        expected: u64,
    },
    /// Its producer (a device buffer) failed.
    #[error("{0}")]
    Stage(#[from] StageError),
}

/// Why one request through a deployment failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RunError {
    /// A stage failed.
    #[error("{0}")]
    Stage(#[from] StageError),
    /// A stage's output could not be read.
    #[error("{0}")]
    Payload(#[from] PayloadError),
    /// The spec's order cannot be computed (validated at deploy; never expected).
    #[error("{0}")]
    Spec(String),
    /// A stage's task ended without publishing a result (never expected).
    #[error("a stage task ended without a result")]
    Lost,
    /// The sinks' outputs could not be combined into one answer.
    #[error("cannot encode the result: {0}")]
    Encode(String),
}

/// Why a profiling run stopped.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    /// The options cannot be measured (what is wrong).
    #[error("{0}")]
    Options(String),
    /// A stage to profile is not in the pipeline.
    #[error("no stage {stage:?} in pipeline {pipeline:?}")]
    UnknownStage {
        /// The stage asked for.
        stage: String,
        /// The pipeline.
        pipeline: String,
    },
    /// The spec is invalid.
    #[error("{0}")]
    Spec(#[from] sluice_pipeline::spec::SpecError),
    /// A stage failed.
    #[error("{0}")]
    Stage(#[from] StageError),
    /// A batch frame could not be built.
    #[error("cannot encode a batch: {0}")]
    Encode(String),
}

/// Copying a device buffer to host failed.
pub(crate) fn device_copy(stage: &str, gpu: u32, e: impl fmt::Display) -> StageError {
    StageError::new(
        stage,
        StageErrorKind::DeviceCopy {
            gpu,
            reason: e.to_string(),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stage_is_named_once_and_quoted_messages_follow_a_colon() {
        let e = StageError::new("det", StageErrorKind::NotStarted("exit 1".into()));
        assert_eq!(e.to_string(), "stage det did not start: exit 1");
        let e = StageError::new(
            "p",
            StageErrorKind::DiedBeforeHandover {
                consumer: "c".into(),
            },
        );
        assert!(e
            .to_string()
            .starts_with("stage p died before stage c could open its output"));
        let e = StageError::new("mid", StageErrorKind::Refused("boom".into()));
        assert_eq!(e.to_string(), "stage mid: boom");
        let run = RunError::from(PayloadError::from(e.clone()));
        assert_eq!(run.to_string(), "stage mid: boom", "wrapping adds nothing");
        let req = RequestError::from(StageError::new("a", StageErrorKind::NoCommand));
        assert!(req.to_string().contains("stage a has no command"), "{req}");
    }
}

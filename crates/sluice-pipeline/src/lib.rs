//! Pipelines of GPU microservices (Camelot): the spec of a pipeline as a DAG of batching stages
//! ([`spec`]), the hardware it is planned for ([`cluster`]), placement plans with their hard
//! constraints ([`plan`](mod@plan)), per-model profiles ([`profile`]), the contention model
//! ([`contention`]), the performance model of a placed pipeline ([`model`]), the Camelot
//! planners and their baselines ([`planner`]), the runtime re-planning controller
//! ([`controller`]), the Gpu-let application importer ([`gpulet`]) and plan tables
//! ([`render`](mod@render)).
//! Everything here is pure and deterministic: the simulator and the worker drive the same code.

pub mod cluster;
pub mod contention;
pub mod controller;
pub mod gpulet;
pub mod model;
pub mod plan;
pub mod planner;
pub mod profile;
pub mod queueing;
pub mod render;
pub mod spec;

pub use cluster::{Cluster, GpuModel, LinkModel};
pub use contention::Contention;
pub use controller::{Controller, ControllerConfig, Decision};
pub use model::PerfModel;
pub use plan::{Instance, Plan, Prediction, ServiceModel, Violation};
pub use planner::{plan, Goal, PlanError, Policy};
pub use profile::{ProfileError, Profiles};
pub use render::{render, render_with_model};
pub use spec::{Handoff, PipelineSpec, SpecError, StageSpec};

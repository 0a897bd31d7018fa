//! In-process tests of the worker: its HTTP API through the axum router with tower's `oneshot`
//! (no worker process, no port) — each route's status codes and bodies — and its engine without
//! HTTP. Functions run in real sandboxes, so these need bubblewrap or unshare, as the worker does.

mod asynch;
mod engine;
mod functions;
mod guards;
mod pipelines;
mod support;

//! Container images without a daemon: import an image from an OCI layout or a `docker save`
//! archive into a content store, flatten its layers safely into a cached read-only root file
//! system, and derive its run defaults. Knows nothing of scheduling or sandboxes.
//!
//! # Interface for the worker
//!
//! ```no_run
//! use sluice_image::{ImageSource, ImageStore, RunDefaults};
//! # fn main() -> sluice_image::Result<()> {
//! // Once, at start (sweeps temporaries that dead processes left).
//! let store = ImageStore::open("/var/lib/sluice/images")?;
//! // Registration of a function whose spec has "image": {"source": ..., "ref": ...}.
//! // Blocking: the worker runs these in `spawn_blocking`.
//! let source: ImageSource = "oci-layout:/srv/images/hello".parse()?;
//! let image = store.import(&source, Some("latest"))?;    // no copy if already imported
//! let root = store.root_for(&image)?;                     // unpacks on first use, then cached
//! store.acquire(&image.digest, "hello")?;                 // the function now holds the image
//! let defaults = RunDefaults::from_config(&image.config, &root)?;
//! let command = defaults.command(None)?;                  // or Some(&spec.command)
//! let env = defaults.env_with([("SLUICE_SOCKET", "/run/sluice/fn.sock")]);
//! // ... launch `command` with `--ro-bind <root> /`, `defaults.workdir`, `env`, `defaults.user`.
//! // Deregistration, then cleanup:
//! store.release(&image.digest, "hello")?;
//! store.remove(&image.digest, false)?;                    // refused while held, unless forced
//! let report = store.gc()?;                               // unreferenced blobs and roots
//! # let _ = (command, env, report); Ok(()) }
//! ```
//!
//! Uploads (`POST /v1/images` with an archive body) go through
//! [`ImageStore::import_archive_stream`]; listing through [`ImageStore::list`]; a function spec's
//! `"image"` object deserialises into [`ImageSpec`]. Every error is an [`ImageError`] that names
//! the field, file or digest at fault; bad input never panics.
//!
//! Modules: [`source`] (what an image source is), [`spec`] (OCI JSON and media types),
//! [`digest`] (sha256 and chain ids), [`store`] (blobs, records, roots, gc), [`unpack`] (the safe
//! layer unpacker), [`defaults`] (run defaults); the importers are private.

pub mod defaults;
pub mod digest;
pub mod error;
mod import;
pub mod source;
pub mod spec;
pub mod store;
pub mod unpack;

pub use defaults::{RunDefaults, UserIds};
pub use digest::Digest;
pub use error::{ImageError, Result};
pub use source::{ImageSource, ImageSpec};
pub use store::{GcReport, ImageRecord, ImageStore, LayerRecord, RootInfo};
pub use unpack::UnpackStats;

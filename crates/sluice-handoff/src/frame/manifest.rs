//! The manifests of the stage protocol, with serde mapping them to the exact JSON on the wire: the
//! request and response of `POST /batch`, and the body of `POST /release`.

use crate::cuda_ipc::IpcHandle;
use serde::{Deserialize, Deserializer, Serialize};

/// Where the stage should put each item's output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputMode {
    /// Into the file `SLUICE_SHM_DIR/<out>` (the stage may still answer inline).
    Shm,
    /// In the response's data region.
    Inline,
    /// In device memory the stage keeps until the worker releases it, exported as a CUDA IPC
    /// handle (the stage may still answer shm, when the item names an `out` file, or inline).
    #[serde(rename = "cuda-ipc")]
    CudaIpc,
}

/// Where a payload's bytes are: `{"kind":"inline","offset":..,"len":..}`,
/// `{"kind":"shm","path":"..","len":..}` or `{"kind":"cuda-ipc","handle":"<128 hex digits>",
/// "len":..,"device":..}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum DataRef {
    /// A range of the frame's data region.
    Inline {
        /// Start of the payload in the data region, bytes.
        offset: u64,
        /// Length of the payload, bytes; `offset + len` is within the data region.
        len: u64,
    },
    /// A file inside the co-location group's shared-memory directory.
    Shm {
        /// The segment's file name in that directory: a plain file name ([`crate::name`]).
        path: String,
        /// The payload's length, bytes: the whole file, whose size must match.
        len: u64,
    },
    /// A device allocation of the producer, exported as a CUDA IPC handle: `len` bytes from its
    /// start, on GPU `device` as the worker numbers GPUs (the producer's `SLUICE_GPU_INDEX`).
    #[serde(rename = "cuda-ipc")]
    CudaIpc {
        /// The producer's exported handle (128 hex digits on the wire).
        #[serde(deserialize_with = "hex_handle")]
        handle: IpcHandle,
        /// Bytes of the payload, from the start of the allocation.
        len: u64,
        /// The GPU holding the allocation, as the worker numbers GPUs.
        device: u32,
    },
}

impl DataRef {
    /// The payload's length in bytes.
    pub fn len(&self) -> u64 {
        match self {
            DataRef::Inline { len, .. }
            | DataRef::Shm { len, .. }
            | DataRef::CudaIpc { len, .. } => *len,
        }
    }

    /// The `kind` on the wire: `"inline"`, `"shm"` or `"cuda-ipc"`.
    pub fn kind(&self) -> &'static str {
        match self {
            DataRef::Inline { .. } => "inline",
            DataRef::Shm { .. } => "shm",
            DataRef::CudaIpc { .. } => "cuda-ipc",
        }
    }

    /// Whether the payload is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One input of a request item: the producer (`"input"` for the pipeline input) and the bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputRef {
    /// Name of the producing stage, or [`PIPELINE_INPUT`](super::PIPELINE_INPUT); never empty.
    pub from: String,
    /// Where the input's bytes are (flattened on the wire: `kind` and its fields sit beside
    /// `from`).
    #[serde(flatten)]
    pub data: DataRef,
}

/// One item of a request batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestItem {
    /// Unique within the batch.
    pub id: String,
    /// The output file name inside `SLUICE_SHM_DIR`; present exactly when the output mode is shm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub out: Option<String>,
    /// One per predecessor stage, in the order of the pipeline spec.
    pub inputs: Vec<InputRef>,
}

/// The manifest of `POST /batch`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchRequest {
    /// Name of the stage the batch is for; never empty.
    pub stage: String,
    /// Where the stage should put every item's output.
    pub output: OutputMode,
    /// The items, each with a unique id; the response answers them in this order.
    pub items: Vec<RequestItem>,
}

/// The whole manifest of `POST /batch` as the worker sends it: the batch, and the CUDA IPC handles
/// of this stage instance's earlier outputs that no consumer needs any more. The stage frees those
/// (in any order) before it runs the batch. On the wire the `"release"` list sits beside the
/// batch's fields and is left out when empty, so a manifest without releases is exactly a
/// [`BatchRequest`]. A Rust stage decodes this type (decoding a bare [`BatchRequest`] would ignore
/// the releases).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestManifest {
    /// The batch to run (flattened: its fields are the manifest's top level).
    #[serde(flatten)]
    pub batch: BatchRequest,
    /// Handles of this instance's earlier CUDA IPC outputs to free, each at most once.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "hex_handles"
    )]
    pub release: Vec<IpcHandle>,
}

/// The JSON body of `POST /release`: handles of the stage's earlier outputs to free now (the
/// worker sends it when releases are pending and no batch has gone to the instance for a while).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReleaseRequest {
    /// The handles to free, as the stage exported them.
    #[serde(deserialize_with = "hex_handles")]
    pub release: Vec<IpcHandle>,
}

/// Parses a handle that is exactly 128 hex digits (no sign, no spaces: one spelling per handle).
fn parse_handle<E: serde::de::Error>(s: &str) -> Result<IpcHandle, E> {
    if let Some((at, c)) = s.char_indices().find(|(_, c)| !c.is_ascii_hexdigit()) {
        return Err(E::custom(format!(
            "bad CUDA IPC handle: {c:?} at {at} is not hex"
        )));
    }
    s.parse().map_err(E::custom)
}

fn hex_handle<'de, D: Deserializer<'de>>(d: D) -> Result<IpcHandle, D::Error> {
    parse_handle(&String::deserialize(d)?)
}

fn hex_handles<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<IpcHandle>, D::Error> {
    Vec::<String>::deserialize(d)?
        .iter()
        .map(|s| parse_handle(s))
        .collect()
}

/// One item of a response batch: its id and either its output or why it failed.
///
/// On the wire: `{"id":..,"ok":true,"output":{..}}` or `{"id":..,"ok":false,"error":".."}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "WireResponseItem", into = "WireResponseItem")]
pub struct ResponseItem {
    /// The id of the request item this answers.
    pub id: String,
    /// The item's output, or the stage's message for why it failed (`"ok":false`).
    pub result: Result<DataRef, String>,
}

/// The manifest of a 200 answer to `POST /batch`: one item per request item, in the same order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchResponse {
    /// One answer per request item, same ids, same order.
    pub items: Vec<ResponseItem>,
}

/// The JSON body of a non-200 answer: the whole batch failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// Why the whole batch failed, in the stage's words.
    pub error: String,
}

#[derive(Serialize, Deserialize)]
struct WireResponseItem {
    id: String,
    ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    output: Option<DataRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

impl TryFrom<WireResponseItem> for ResponseItem {
    type Error = String;

    fn try_from(w: WireResponseItem) -> Result<Self, String> {
        let result = match (w.ok, w.output, w.error) {
            (true, Some(output), None) => Ok(output),
            (false, None, Some(error)) => Err(error),
            (true, _, _) => {
                return Err(format!(
                    "response item {:?}: \"ok\":true needs an \"output\" and no \"error\"",
                    w.id
                ))
            }
            (false, _, _) => {
                return Err(format!(
                    "response item {:?}: \"ok\":false needs an \"error\" and no \"output\"",
                    w.id
                ))
            }
        };
        Ok(ResponseItem { id: w.id, result })
    }
}

impl From<ResponseItem> for WireResponseItem {
    fn from(item: ResponseItem) -> Self {
        match item.result {
            Ok(output) => WireResponseItem {
                id: item.id,
                ok: true,
                output: Some(output),
                error: None,
            },
            Err(error) => WireResponseItem {
                id: item.id,
                ok: false,
                output: None,
                error: Some(error),
            },
        }
    }
}

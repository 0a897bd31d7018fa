//! The two manifests of the stage protocol, with serde mapping them to the exact JSON on the wire.

use serde::{Deserialize, Serialize};

/// Where the stage should put each item's output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputMode {
    /// Into the file `SLUICE_SHM_DIR/<out>` (the stage may still answer inline).
    Shm,
    /// In the response's data region.
    Inline,
}

/// Where a payload's bytes are: `{"kind":"inline","offset":..,"len":..}` or
/// `{"kind":"shm","path":"..","len":..}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum DataRef {
    /// A range of the frame's data region.
    Inline { offset: u64, len: u64 },
    /// A file inside the co-location group's shared-memory directory.
    Shm { path: String, len: u64 },
}

impl DataRef {
    /// The payload's length in bytes.
    pub fn len(&self) -> u64 {
        match self {
            DataRef::Inline { len, .. } | DataRef::Shm { len, .. } => *len,
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
    pub from: String,
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
    pub stage: String,
    pub output: OutputMode,
    pub items: Vec<RequestItem>,
}

/// One item of a response batch: its id and either its output or why it failed.
///
/// On the wire: `{"id":..,"ok":true,"output":{..}}` or `{"id":..,"ok":false,"error":".."}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "WireResponseItem", into = "WireResponseItem")]
pub struct ResponseItem {
    pub id: String,
    pub result: Result<DataRef, String>,
}

/// The manifest of a 200 answer to `POST /batch`: one item per request item, in the same order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchResponse {
    pub items: Vec<ResponseItem>,
}

/// The JSON body of a non-200 answer: the whole batch failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
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

//! The one error type of the trace loaders, spec parsers, catalogue and scaling.
//!
//! Messages name the file, the 1-based line and the column where they apply, and say what was expected, so a
//! user can fix the input without reading the code.

use std::path::PathBuf;

/// Why a trace, spec or catalogue could not be turned into a workload.
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is empty: expected a CSV header line ({expected}) followed by data rows", path.display())]
    Empty { path: PathBuf, expected: String },
    #[error("{} has a header but no data rows: expected {expected}", path.display())]
    NoRows { path: PathBuf, expected: String },
    #[error("{}: missing required column `{column}` in the header (header has: {found})", path.display())]
    MissingColumn {
        path: PathBuf,
        column: String,
        found: String,
    },
    #[error("{}: column `{column}` appears more than once in the header", path.display())]
    DuplicateColumn { path: PathBuf, column: String },
    #[error("{}:{line}: row has {found} fields but the header has {expected}", path.display())]
    Ragged {
        path: PathBuf,
        line: u64,
        found: usize,
        expected: usize,
    },
    #[error("{}:{line}: column `{column}`: expected {expected}, found `{value}`", path.display())]
    Field {
        path: PathBuf,
        line: u64,
        column: String,
        value: String,
        expected: &'static str,
    },
    #[error("{}:{line}: malformed CSV: {message}", path.display())]
    Csv {
        path: PathBuf,
        line: u64,
        message: String,
    },
    #[error("{}:{line}: function `{name}` is not in the metadata file {}", path.display(), metadata.display())]
    UnknownFunction {
        path: PathBuf,
        line: u64,
        name: String,
        metadata: PathBuf,
    },
    #[error("{}:{line}: function `{name}` is listed more than once", path.display())]
    DuplicateFunction {
        path: PathBuf,
        line: u64,
        name: String,
    },
    #[error("{what} exceeds the limit of {limit}")]
    TooLarge { what: String, limit: u64 },
    #[error("{source_name}: the workload is empty: {reason}")]
    EmptyWorkload { source_name: String, reason: String },
    #[error("invalid trace spec `{spec}`: {reason}")]
    Spec { spec: String, reason: String },
    #[error("unknown trace kind `{kind}`: known kinds are {known}")]
    UnknownKind { kind: String, known: &'static str },
    #[error("unknown GPU class `{class}`: known classes are {known}")]
    UnknownClass { class: String, known: String },
    #[error("invalid GPU catalogue: {0}")]
    Catalog(String),
    #[error("cannot scale the workload: {0}")]
    Scale(String),
}

/// Cuts a user-supplied value for an error message: at most 40 characters, with an ellipsis if cut.
pub(crate) fn excerpt(s: &str) -> String {
    const MAX: usize = 40;
    match s.char_indices().nth(MAX) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

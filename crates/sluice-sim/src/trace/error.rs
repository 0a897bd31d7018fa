//! The one error type of the trace loaders, spec parsers, catalogue and scaling.
//!
//! Messages name the file, the 1-based line and the column where they apply, and say what was expected, so a
//! user can fix the input without reading the code.

use std::path::PathBuf;

/// Why a trace, spec or catalogue could not be turned into a workload.
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    /// A file could not be opened or read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// A CSV file has no header line (it is empty or its header is blank).
    #[error("{} is empty: expected a CSV header line ({expected}) followed by data rows", path.display())]
    Empty {
        /// The file.
        path: PathBuf,
        /// What the header should list, for the message.
        expected: String,
    },
    /// A CSV file has a header but no data rows.
    #[error("{} has a header but no data rows: expected {expected}", path.display())]
    NoRows {
        /// The file.
        path: PathBuf,
        /// What the rows should be, e.g. "one row per function".
        expected: String,
    },
    /// A required column is absent from a CSV header.
    #[error("{}: missing required column `{column}` in the header (header has: {found})", path.display())]
    MissingColumn {
        /// The file.
        path: PathBuf,
        /// The required column, or a description of the set wanted (e.g. the minute columns).
        column: String,
        /// The header's first 8 columns, comma-separated, then the total count if there are more.
        found: String,
    },
    /// A column the loader reads appears more than once in a CSV header.
    #[error("{}: column `{column}` appears more than once in the header", path.display())]
    DuplicateColumn {
        /// The file.
        path: PathBuf,
        /// The repeated column.
        column: String,
    },
    /// A CSV row has a different number of fields than the header.
    #[error("{}:{line}: row has {found} fields but the header has {expected}", path.display())]
    Ragged {
        /// The file.
        path: PathBuf,
        /// The row's 1-based line in the file.
        line: u64,
        /// Fields in the row.
        found: usize,
        /// Columns in the header.
        expected: usize,
    },
    /// A CSV field does not hold the kind of value its column needs.
    #[error("{}:{line}: column `{column}`: expected {expected}, found `{value}`", path.display())]
    Field {
        /// The file.
        path: PathBuf,
        /// The row's 1-based line in the file (1 for a header cell).
        line: u64,
        /// The column's name in the header.
        column: String,
        /// The offending text, cut to 40 characters.
        value: String,
        /// What the column must hold, e.g. "a non-negative number".
        expected: &'static str,
    },
    /// The CSV reader failed: malformed quoting, invalid UTF-8 or a read error.
    #[error("{}:{line}: malformed CSV: {message}", path.display())]
    Csv {
        /// The file.
        path: PathBuf,
        /// The 1-based line where it failed; 0 when the reader could not tell.
        line: u64,
        /// The reader's description of the failure.
        message: String,
    },
    /// An Ilúvatar trace row names a function its metadata file does not list.
    #[error("{}:{line}: function `{name}` is not in the metadata file {}", path.display(), metadata.display())]
    UnknownFunction {
        /// The trace file.
        path: PathBuf,
        /// The row's 1-based line in the trace file.
        line: u64,
        /// The function name, cut to 40 characters.
        name: String,
        /// The metadata file that lacks it.
        metadata: PathBuf,
    },
    /// A function name appears on two rows of a file that lists each function once (the Ilúvatar
    /// metadata).
    #[error("{}:{line}: function `{name}` is listed more than once", path.display())]
    DuplicateFunction {
        /// The file.
        path: PathBuf,
        /// The 1-based line of the repeat.
        line: u64,
        /// The function name, cut to 40 characters.
        name: String,
    },
    /// An input would build more than a loader accepts: too many invocations, counted or (for a
    /// Poisson mix) expected, or more than `u32::MAX` functions.
    #[error("{what} exceeds the limit of {limit}")]
    TooLarge {
        /// What is too large, as a phrase (it may name the file and line).
        what: String,
        /// The largest count accepted.
        limit: u64,
    },
    /// The input parsed but yields no arrivals to simulate.
    #[error("{source_name}: the workload is empty: {reason}")]
    EmptyWorkload {
        /// The workload's name.
        source_name: String,
        /// Why nothing is left, and what to change.
        reason: String,
    },
    /// A trace spec string, or one of its options, is malformed.
    #[error("invalid trace spec `{spec}`: {reason}")]
    Spec {
        /// The spec or the offending part of it, cut to 40 characters (empty for an empty spec).
        spec: String,
        /// What is wrong and what was expected.
        reason: String,
    },
    /// A trace spec's kind (the part before the first `:`) is not one the loaders know, or the spec
    /// has no `:`.
    #[error("unknown trace kind `{kind}`: known kinds are {known}")]
    UnknownKind {
        /// The kind given (the whole spec if it has no `:`), cut to 40 characters.
        kind: String,
        /// The kinds the loaders know, with the syntax of each.
        known: &'static str,
    },
    /// A Poisson mix names a GPU class the catalogue does not have.
    #[error("unknown GPU class `{class}`: known classes are {known}")]
    UnknownClass {
        /// The class named, cut to 40 characters.
        class: String,
        /// The catalogue's class names, comma-separated.
        known: String,
    },
    /// The GPU catalogue file is not valid TOML or breaks a catalogue rule; the message says which,
    /// and names the file when it was read from one.
    #[error("invalid GPU catalogue: {0}")]
    Catalog(String),
    /// The workload cannot be rescaled to the requested utilisation (target out of range, no GPUs,
    /// no arrivals, or no work over a positive span); the message says which.
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

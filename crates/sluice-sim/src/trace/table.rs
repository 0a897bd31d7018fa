//! Reading one CSV trace file by header name, with errors that name the file, line and column.
//!
//! Owns only the mechanics shared by the loaders (open, header lookup, ragged-row check, number parsing); what
//! the columns mean is up to each loader.

use super::error::{excerpt, TraceError};
use csv::StringRecord;
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

/// An open CSV file whose header has been read.
pub(crate) struct Table {
    path: PathBuf,
    reader: csv::Reader<BufReader<File>>,
    headers: Vec<String>,
}

impl Table {
    /// Opens `path` and reads its header. `expected` describes the header for the "empty file" message.
    pub fn open(path: &Path, expected: &str) -> Result<Table, TraceError> {
        let file = File::open(path).map_err(|source| TraceError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(true)
            .flexible(true)
            .trim(csv::Trim::All)
            .from_reader(BufReader::new(file));
        let headers: Vec<String> = reader
            .headers()
            .map_err(|e| csv_error(path, e))?
            .iter()
            .map(|h| h.trim_start_matches('\u{feff}').trim().to_string())
            .collect();
        if headers.iter().all(|h| h.is_empty()) {
            return Err(TraceError::Empty {
                path: path.to_path_buf(),
                expected: expected.to_string(),
            });
        }
        Ok(Table {
            path: path.to_path_buf(),
            reader,
            headers,
        })
    }

    pub fn headers(&self) -> &[String] {
        &self.headers
    }

    /// The index of column `name`, if the header has it exactly once; an error if it has it twice.
    pub fn find(&self, name: &str) -> Result<Option<usize>, TraceError> {
        let mut hits = self.headers.iter().enumerate().filter(|(_, h)| *h == name);
        let first = hits.next().map(|(i, _)| i);
        if hits.next().is_some() {
            return Err(self.duplicate(name));
        }
        Ok(first)
    }

    /// The index of the required column `name`.
    pub fn column(&self, name: &str) -> Result<usize, TraceError> {
        self.find(name)?.ok_or_else(|| self.missing(name))
    }

    pub fn missing(&self, column: &str) -> TraceError {
        const SHOWN: usize = 8;
        let mut found: Vec<&str> = self
            .headers
            .iter()
            .take(SHOWN)
            .map(String::as_str)
            .collect();
        let more = format!("… ({} columns)", self.headers.len());
        if self.headers.len() > SHOWN {
            found.push(&more);
        }
        TraceError::MissingColumn {
            path: self.path.clone(),
            column: column.to_string(),
            found: found.join(", "),
        }
    }

    pub fn duplicate(&self, column: &str) -> TraceError {
        TraceError::DuplicateColumn {
            path: self.path.clone(),
            column: column.to_string(),
        }
    }

    /// Reads the next row into `rec`; returns its 1-based line, or `None` at the end of the file.
    pub fn next_row(&mut self, rec: &mut StringRecord) -> Result<Option<u64>, TraceError> {
        match self.reader.read_record(rec) {
            Ok(false) => Ok(None),
            Ok(true) => {
                let line = rec.position().map_or(0, |p| p.line());
                if rec.len() != self.headers.len() {
                    return Err(TraceError::Ragged {
                        path: self.path.clone(),
                        line,
                        found: rec.len(),
                        expected: self.headers.len(),
                    });
                }
                Ok(Some(line))
            }
            Err(e) => Err(csv_error(&self.path, e)),
        }
    }

    /// The text of column `col` in `rec` (empty if out of range, which `next_row` rules out).
    pub fn text<'r>(&self, rec: &'r StringRecord, col: usize) -> &'r str {
        rec.get(col).unwrap_or("")
    }

    /// Column `col` as a finite, non-negative number.
    pub fn non_negative(
        &self,
        rec: &StringRecord,
        line: u64,
        col: usize,
    ) -> Result<f64, TraceError> {
        let text = self.text(rec, col);
        match text.parse::<f64>() {
            Ok(v) if v.is_finite() && v >= 0.0 => Ok(v.max(0.0)),
            _ => Err(self.field_error(line, col, text, "a non-negative number")),
        }
    }

    /// Column `col` as a non-negative integer count.
    pub fn count(&self, rec: &StringRecord, line: u64, col: usize) -> Result<u64, TraceError> {
        let text = self.text(rec, col);
        text.parse::<u64>()
            .map_err(|_| self.field_error(line, col, text, "a non-negative integer count"))
    }

    /// Column `col` as a non-empty name.
    pub fn name<'r>(
        &self,
        rec: &'r StringRecord,
        line: u64,
        col: usize,
    ) -> Result<&'r str, TraceError> {
        let text = self.text(rec, col);
        if text.is_empty() {
            return Err(self.field_error(line, col, text, "a non-empty name"));
        }
        Ok(text)
    }

    pub fn field_error(
        &self,
        line: u64,
        col: usize,
        value: &str,
        expected: &'static str,
    ) -> TraceError {
        TraceError::Field {
            path: self.path.clone(),
            line,
            column: self.headers.get(col).cloned().unwrap_or_default(),
            value: excerpt(value),
            expected,
        }
    }
}

fn csv_error(path: &Path, e: csv::Error) -> TraceError {
    let line = e.position().map_or(0, |p| p.line());
    let message = match e.kind() {
        csv::ErrorKind::Utf8 { err, .. } => format!("invalid UTF-8 in field {}", err.field() + 1),
        csv::ErrorKind::Io(io) => format!("read error: {io}"),
        _ => e.to_string(),
    };
    TraceError::Csv {
        path: path.to_path_buf(),
        line,
        message,
    }
}

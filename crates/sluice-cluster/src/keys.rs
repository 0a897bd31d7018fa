//! The etcd keyspace. Everything Sluice writes lives under `/sluice/v1/`:
//!
//! | key | value | written by |
//! |---|---|---|
//! | `workers/<id>` | [`crate::model::Member`], bound to the worker's lease | the worker's agent |
//! | `functions/<name>` | a function spec | routers, by compare-and-swap on `mod_revision` |
//! | `pipelines/<name>` | [`crate::model::PipelineRecord`] | routers, by compare-and-swap |
//! | `assign/<worker>/<pipeline>` | [`crate::model::Assignment`] | the elected controller |
//! | `election/pipelines` | the controller leader's id (etcd election) | etcd's election API |

/// The root of every key.
pub const ROOT: &str = "/sluice/v1/";
/// Members' prefix.
pub const WORKERS: &str = "/sluice/v1/workers/";
/// Functions' prefix.
pub const FUNCTIONS: &str = "/sluice/v1/functions/";
/// Pipelines' prefix.
pub const PIPELINES: &str = "/sluice/v1/pipelines/";
/// Assignments' prefix.
pub const ASSIGN: &str = "/sluice/v1/assign/";
/// The pipeline controller's election name.
pub const ELECTION: &str = "/sluice/v1/election/pipelines";

/// `workers/<id>`.
pub fn worker(id: &str) -> String {
    format!("{WORKERS}{id}")
}

/// `functions/<name>`.
pub fn function(name: &str) -> String {
    format!("{FUNCTIONS}{name}")
}

/// `pipelines/<name>`.
pub fn pipeline(name: &str) -> String {
    format!("{PIPELINES}{name}")
}

/// `assign/<worker>/` — one worker's assignments.
pub fn assignments_of(worker: &str) -> String {
    format!("{ASSIGN}{worker}/")
}

/// `assign/<worker>/<pipeline>`.
pub fn assignment(worker: &str, pipeline: &str) -> String {
    format!("{ASSIGN}{worker}/{pipeline}")
}

/// Splits `assign/<worker>/<pipeline>` (the part after [`ASSIGN`]) into its two names.
pub fn split_assignment(rest: &str) -> Option<(&str, &str)> {
    let (w, p) = rest.split_once('/')?;
    (!w.is_empty() && !p.is_empty() && !p.contains('/')).then_some((w, p))
}

/// Whether `id` is a valid worker id: 1–128 characters of `[A-Za-z0-9._-]`.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip() {
        assert_eq!(worker("w1"), "/sluice/v1/workers/w1");
        let a = assignment("w1", "ocr");
        let rest = a.strip_prefix(ASSIGN).unwrap();
        assert_eq!(split_assignment(rest), Some(("w1", "ocr")));
        assert_eq!(split_assignment("w1/"), None);
        assert_eq!(split_assignment("w1/a/b"), None);
        assert!(valid_id("127.0.0.1-9000") && !valid_id("a/b") && !valid_id(""));
    }
}

//! The plain-file-name rule for segment names (shm paths and output names in manifests, group
//! directory names): one path component, so a name can never leave the directory it is joined to.

use thiserror::Error;

/// Longest name accepted, in bytes (the usual `NAME_MAX`).
pub const MAX_NAME_LEN: usize = 255;

/// Why a string is not a plain file name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum NameError {
    /// The name is empty.
    #[error("it is empty")]
    Empty,
    /// The name is longer than [`MAX_NAME_LEN`] bytes.
    #[error("it is longer than {MAX_NAME_LEN} bytes")]
    TooLong,
    /// The name is `.` or `..`.
    #[error("'.' and '..' are not file names")]
    Dots,
    /// The name contains `/`, so it has more than one path component.
    #[error("it contains '/'")]
    Slash,
    /// The name contains a NUL byte, which no path can.
    #[error("it contains a NUL byte")]
    Nul,
}

/// Checks that `name` is a single path component: not empty, not `.` or `..`, no `/` or NUL, at most
/// [`MAX_NAME_LEN`] bytes.
pub fn check_file_name(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        Err(NameError::Empty)
    } else if name.len() > MAX_NAME_LEN {
        Err(NameError::TooLong)
    } else if name == "." || name == ".." {
        Err(NameError::Dots)
    } else if name.contains('/') {
        Err(NameError::Slash)
    } else if name.contains('\0') {
        Err(NameError::Nul)
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_plain_names() {
        for name in [
            "a",
            "s00000001",
            "det-1.out",
            "..x",
            "x..",
            ".hidden",
            "ünï",
        ] {
            assert_eq!(check_file_name(name), Ok(()), "{name}");
        }
    }

    #[test]
    fn rejects_anything_that_can_escape_or_is_not_a_name() {
        assert_eq!(check_file_name(""), Err(NameError::Empty));
        assert_eq!(check_file_name("."), Err(NameError::Dots));
        assert_eq!(check_file_name(".."), Err(NameError::Dots));
        assert_eq!(check_file_name("../etc/passwd"), Err(NameError::Slash));
        assert_eq!(check_file_name("/abs"), Err(NameError::Slash));
        assert_eq!(check_file_name("a/b"), Err(NameError::Slash));
        assert_eq!(check_file_name("a\0b"), Err(NameError::Nul));
        assert_eq!(check_file_name(&"x".repeat(256)), Err(NameError::TooLong));
        assert_eq!(check_file_name(&"x".repeat(255)), Ok(()));
    }
}

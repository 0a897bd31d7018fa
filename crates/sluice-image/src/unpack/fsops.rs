//! File-system operations on entries named by a directory descriptor and one name: listing a
//! directory and removing a tree, never following a symlink.

use super::resolve::{kind_at, open_dir_at};
use rustix::fs::{unlinkat, AtFlags, Dir, FileType};
use rustix::io::Errno;
use std::os::fd::{AsFd, BorrowedFd};

/// The names in the directory `dir` (without `.` and `..`).
pub fn list_dir(dir: BorrowedFd<'_>) -> Result<Vec<Vec<u8>>, Errno> {
    let mut names = Vec::new();
    for entry in Dir::read_from(dir)? {
        let name = entry?.file_name().to_bytes().to_vec();
        if name != b"." && name != b".." {
            names.push(name);
        }
    }
    Ok(names)
}

/// Removes `name` from `dir`, with everything beneath it if it is a directory. Nothing there is
/// not an error.
pub fn remove_tree(dir: BorrowedFd<'_>, name: &[u8]) -> Result<(), Errno> {
    match kind_at(dir, name)? {
        None => Ok(()),
        Some(FileType::Directory) => {
            let sub = open_dir_at(dir, name)?;
            for child in list_dir(sub.as_fd())? {
                remove_tree(sub.as_fd(), &child)?;
            }
            unlinkat(dir, name, AtFlags::REMOVEDIR)
        }
        Some(_) => unlinkat(dir, name, AtFlags::empty()),
    }
}

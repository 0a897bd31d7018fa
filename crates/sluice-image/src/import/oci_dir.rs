//! An OCI image layout directory as a [`Source`]: `index.json`, `oci-layout` and
//! `blobs/sha256/<hex>` (the hex comes from a validated digest, so no blob name leaves the layout).

use super::Source;
use crate::digest::Digest;
use crate::error::{IoContext, Result};
use crate::store::blobs::{read_limited, JSON_LIMIT};
use std::fs::File;
use std::io::{ErrorKind, Read};
use std::path::{Path, PathBuf};

/// A layout directory on this machine.
pub(crate) struct OciDir {
    dir: PathBuf,
    name: String,
}

impl OciDir {
    /// The layout at `dir`, called `name` in messages.
    pub(crate) fn new(dir: &Path, name: String) -> OciDir {
        OciDir {
            dir: dir.to_path_buf(),
            name,
        }
    }

    fn open(&self, rel: &str) -> Result<Option<File>> {
        let path = self.dir.join(rel);
        match File::open(&path) {
            Ok(file) => Ok(Some(file)),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).ctx(|| format!("open {}", path.display())),
        }
    }
}

impl Source for OciDir {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn read_file(&self, file: &str) -> Result<Option<Vec<u8>>> {
        match self.open(file)? {
            Some(f) => Ok(Some(read_limited(
                f,
                JSON_LIMIT,
                &format!("{file} of {}", self.name),
            )?)),
            None => Ok(None),
        }
    }

    fn open_blob(&self, digest: &Digest) -> Result<Option<Box<dyn Read + '_>>> {
        let file = self.open(&format!("blobs/sha256/{}", digest.hex()))?;
        Ok(file
            .map(|f| Box::new(std::io::BufReader::with_capacity(256 * 1024, f)) as Box<dyn Read>))
    }
}

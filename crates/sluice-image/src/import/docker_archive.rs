//! `docker save` archives, both shapes: the legacy one (`manifest.json` with `Config` and `Layers`
//! paths such as `<id>/layer.tar`, and `RepoTags`) and the OCI-in-tar one Docker 25+ writes
//! (`index.json`, `oci-layout`, `blobs/sha256/…` beside `manifest.json`).
//!
//! The archive is read once, as a stream: each regular member is written to a numbered file in the
//! store's temporary directory (never under its own name) while its sha256 is computed; symlinks
//! and hard links between members become aliases. Those staged files are then a [`Source`] whose
//! blobs can be moved, not copied, into the store. For the legacy shape an OCI manifest is written
//! for the chosen image (deterministically, so re-importing gives the same digest).

use super::{select, Chosen, Source};
use crate::digest::{Digest, HashingWriter};
use crate::error::{ImageError, IoContext, Result};
use crate::spec::{parse_json, Compression, Descriptor, Manifest, OCI_CONFIG, OCI_MANIFEST};
use crate::store::blobs::{read_limited, JSON_LIMIT};
use crate::store::ImageStore;
use crate::unpack::path::{components, link_components};
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

/// One image of a legacy `manifest.json`.
#[derive(Deserialize)]
struct LegacyEntry {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags", default)]
    repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers")]
    layers: Vec<String>,
}

/// A staged member: where it is, its digest and size.
#[derive(Clone)]
struct Member {
    path: PathBuf,
    digest: Digest,
    size: u64,
}

/// The members of an archive, staged in the store's temporary directory; removed when dropped.
pub(crate) struct Staged {
    name: String,
    dir: PathBuf,
    members: BTreeMap<String, Member>,
    by_digest: HashMap<Digest, Member>,
}

impl Drop for Staged {
    fn drop(&mut self) {
        let _ = crate::store::remove_all(&self.dir);
    }
}

/// Reads the archive at `file` into the store's temporary directory.
pub(crate) fn stage(store: &ImageStore, file: &Path, name: String) -> Result<Staged> {
    let dir = store.temp_path("archive");
    std::fs::create_dir(&dir).ctx(|| format!("create {}", dir.display()))?;
    let mut staged = Staged {
        name,
        dir,
        members: BTreeMap::new(),
        by_digest: HashMap::new(),
    };
    let input = File::open(file).ctx(|| format!("open {}", file.display()))?;
    let corrupt = |e: std::io::Error| ImageError::CorruptArchive {
        archive: file.display().to_string(),
        message: e.to_string(),
    };
    let mut archive = tar::Archive::new(BufReader::with_capacity(256 * 1024, input));
    let mut aliases = Vec::new();
    for (n, entry) in archive.entries().map_err(corrupt)?.enumerate() {
        let mut entry = entry.map_err(corrupt)?;
        let parts = components(&entry.path_bytes())?;
        let key = join(&parts);
        match entry.header().entry_type() {
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let path = staged.dir.join(n.to_string());
                let out = File::create(&path).ctx(|| format!("create {}", path.display()))?;
                let mut writer = HashingWriter::new(out);
                std::io::copy(&mut entry, &mut writer).map_err(corrupt)?;
                let (_, digest, size) = writer.finish();
                if size != entry.size() {
                    return Err(corrupt(std::io::Error::other(format!(
                        "{key} is truncated"
                    ))));
                }
                let member = Member { path, digest, size };
                staged
                    .by_digest
                    .insert(member.digest.clone(), member.clone());
                staged.members.insert(key, member);
            }
            tar::EntryType::Symlink => {
                let target = entry.link_name_bytes().unwrap_or_default();
                let mut resolved = parts[..parts.len().saturating_sub(1)].to_vec();
                for part in link_components(&target) {
                    if part == b".." {
                        resolved.pop();
                    } else {
                        resolved.push(part);
                    }
                }
                aliases.push((key, join(&resolved)));
            }
            tar::EntryType::Link => {
                let target = components(&entry.link_name_bytes().unwrap_or_default())?;
                aliases.push((key, join(&target)));
            }
            _ => {}
        }
    }
    // Links may point at links: resolve until nothing changes (at most once per link).
    for _ in 0..aliases.len() {
        let mut changed = false;
        for (alias, target) in &aliases {
            if staged.members.contains_key(alias) {
                continue;
            }
            if let Some(member) = staged.members.get(target).cloned() {
                staged.members.insert(alias.clone(), member);
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    Ok(staged)
}

fn join(parts: &[Vec<u8>]) -> String {
    let strings: Vec<String> = parts
        .iter()
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .collect();
    strings.join("/")
}

impl Staged {
    /// Chooses the image: through `index.json` when the archive has one (Docker 25+), else through
    /// the legacy `manifest.json`.
    pub(crate) fn choose(&self, reference: Option<&str>) -> Result<Chosen> {
        if self.members.contains_key("index.json") && self.members.contains_key("oci-layout") {
            return select::from_index(self, reference, true);
        }
        self.choose_legacy(reference)
    }

    fn choose_legacy(&self, reference: Option<&str>) -> Result<Chosen> {
        let file = "manifest.json";
        let bytes = self
            .read_file(file)?
            .ok_or_else(|| ImageError::MissingFile {
                file: file.to_string(),
                source_name: self.name.clone(),
            })?;
        let entries: Vec<LegacyEntry> = parse_json(&bytes, &format!("{file} of {}", self.name))?;
        let tags = |e: &LegacyEntry| e.repo_tags.clone().unwrap_or_default();
        let available: Vec<String> = entries.iter().flat_map(tags).collect();
        let entry = match reference {
            Some(r) => entries
                .iter()
                .find(|e| {
                    tags(e)
                        .iter()
                        .any(|t| t == r || t.ends_with(&format!("/{r}")))
                })
                .ok_or_else(|| ImageError::RefNotFound {
                    reference: r.to_string(),
                    source_name: self.name.clone(),
                    available: available.clone(),
                })?,
            None if entries.len() == 1 => &entries[0],
            None => {
                return Err(ImageError::MissingRef {
                    source_name: self.name.clone(),
                    available,
                })
            }
        };
        let member = |path: &str, field: String| {
            let key = join(&components(path.as_bytes())?);
            self.members
                .get(&key)
                .cloned()
                .ok_or_else(|| ImageError::MissingFile {
                    file: format!("{path} (manifest.json {field})"),
                    source_name: self.name.clone(),
                })
        };
        let config = member(&entry.config, "Config".to_string())?;
        let mut layers = Vec::new();
        for (i, layer) in entry.layers.iter().enumerate() {
            let staged = member(layer, format!("Layers[{i}]"))?;
            let mut head = [0u8; 4];
            let n = File::open(&staged.path)
                .and_then(|mut f| f.read(&mut head))
                .ctx(|| format!("read {}", staged.path.display()))?;
            let compression = Compression::sniff(&head[..n]);
            layers.push(descriptor(compression.oci_media_type(), &staged));
        }
        let manifest = Manifest {
            schema_version: 2,
            media_type: Some(OCI_MANIFEST.to_string()),
            config: descriptor(OCI_CONFIG, &config),
            layers,
        };
        let manifest_bytes =
            serde_json::to_vec(&manifest).ctx(|| "serialise the manifest".to_string())?;
        Ok(Chosen {
            manifest_bytes,
            manifest,
            names: tags(entry),
        })
    }
}

fn descriptor(media_type: &str, member: &Member) -> Descriptor {
    Descriptor {
        media_type: media_type.to_string(),
        digest: member.digest.clone(),
        size: member.size,
        annotations: BTreeMap::new(),
        platform: None,
    }
}

impl Source for Staged {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn read_file(&self, file: &str) -> Result<Option<Vec<u8>>> {
        let Some(member) = self.members.get(file) else {
            return Ok(None);
        };
        let f = File::open(&member.path).ctx(|| format!("open {}", member.path.display()))?;
        Ok(Some(read_limited(
            f,
            JSON_LIMIT,
            &format!("{file} of {}", self.name),
        )?))
    }

    fn open_blob(&self, digest: &Digest) -> Result<Option<Box<dyn Read + '_>>> {
        let Some(member) = self.by_digest.get(digest) else {
            return Ok(None);
        };
        let f = File::open(&member.path).ctx(|| format!("open {}", member.path.display()))?;
        Ok(Some(Box::new(BufReader::new(f))))
    }

    fn staged(&self, digest: &Digest) -> Option<(PathBuf, u64)> {
        let member = self.by_digest.get(digest)?;
        member
            .path
            .exists()
            .then(|| (member.path.clone(), member.size))
    }
}

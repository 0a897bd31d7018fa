//! Choosing one image manifest: by `ref` (a tag in the `org.opencontainers.image.ref.name` or
//! `io.containerd.image.name` annotation, or a `sha256:` digest) among an index's entries, then
//! down through nested indexes (manifest lists) to the linux/amd64 manifest.

use super::{read_blob, Chosen, Source, ARCH, OS};
use crate::digest::Digest;
use crate::error::{ImageError, Result};
use crate::spec::{
    parse_json, Descriptor, Index, Manifest, DOCKER_LIST, DOCKER_MANIFEST, IMAGE_NAME, OCI_INDEX,
    OCI_MANIFEST, REF_NAME,
};

/// How deep indexes may nest.
const MAX_DEPTH: usize = 4;

/// Chooses a manifest from the source's `index.json` (an OCI layout must also have `oci-layout`).
pub(crate) fn from_index(
    src: &dyn Source,
    reference: Option<&str>,
    need_layout_file: bool,
) -> Result<Chosen> {
    let missing = |file: &str| ImageError::MissingFile {
        file: file.to_string(),
        source_name: src.name(),
    };
    if need_layout_file {
        let layout = src
            .read_file("oci-layout")?
            .ok_or_else(|| missing("oci-layout"))?;
        let _: serde_json::Value = parse_json(&layout, "oci-layout")?;
    }
    let bytes = src
        .read_file("index.json")?
        .ok_or_else(|| missing("index.json"))?;
    let index: Index = parse_json(&bytes, &format!("index.json of {}", src.name()))?;
    let mut candidates: Vec<&Descriptor> = match reference {
        Some(r) if r.starts_with("sha256:") => {
            let digest = Digest::parse(r).map_err(|_| ImageError::InvalidField {
                field: "ref",
                message: format!("{r:?}: expected sha256:<64 hex digits>"),
            })?;
            let listed: Vec<&Descriptor> = index
                .manifests
                .iter()
                .filter(|d| d.digest == digest)
                .collect();
            if listed.is_empty() {
                return resolve_unlisted(src, &digest, &index, r);
            }
            listed
        }
        Some(r) => index
            .manifests
            .iter()
            .filter(|d| matches_ref(d, r))
            .collect(),
        None => index.manifests.iter().collect(),
    };
    if candidates.is_empty() {
        return Err(match reference {
            Some(r) => ImageError::RefNotFound {
                reference: r.to_string(),
                source_name: src.name(),
                available: names(&index.manifests),
            },
            None => ImageError::MissingRef {
                source_name: src.name(),
                available: Vec::new(),
            },
        });
    }
    let chosen = if candidates.len() == 1 {
        candidates.remove(0)
    } else if candidates.iter().all(|d| d.platform.is_some()) {
        pick_platform(&candidates)?
    } else {
        return Err(ImageError::MissingRef {
            source_name: src.name(),
            available: names(&index.manifests),
        });
    };
    let mut chosen = resolve(src, chosen, 0)?;
    chosen
        .names
        .extend(chosen_names(&index.manifests, reference));
    Ok(chosen)
}

/// A digest ref that no index entry lists but whose blob is in the source.
fn resolve_unlisted(src: &dyn Source, digest: &Digest, index: &Index, r: &str) -> Result<Chosen> {
    if src.open_blob(digest)?.is_none() {
        return Err(ImageError::RefNotFound {
            reference: r.to_string(),
            source_name: src.name(),
            available: names(&index.manifests),
        });
    }
    let desc = Descriptor {
        media_type: String::new(),
        digest: digest.clone(),
        size: 0,
        annotations: Default::default(),
        platform: None,
    };
    resolve(src, &desc, 0)
}

/// Reads the manifest (or index, recursively) `desc` names.
fn resolve(src: &dyn Source, desc: &Descriptor, depth: usize) -> Result<Chosen> {
    let what = format!(
        "{} {}",
        if desc.media_type.is_empty() {
            "manifest"
        } else {
            &desc.media_type
        },
        desc.digest
    );
    let size = (desc.size > 0).then_some(desc.size);
    let bytes = read_blob(src, &desc.digest, size, &what)?;
    let kind = if desc.media_type.is_empty() {
        let value: serde_json::Value = parse_json(&bytes, &what)?;
        let declared = value
            .get("mediaType")
            .and_then(|m| m.as_str())
            .map(str::to_string);
        declared.unwrap_or_else(|| {
            if value.get("manifests").is_some() {
                OCI_INDEX
            } else {
                OCI_MANIFEST
            }
            .to_string()
        })
    } else {
        desc.media_type.clone()
    };
    match kind.as_str() {
        OCI_INDEX | DOCKER_LIST if depth < MAX_DEPTH => {
            let index: Index = parse_json(&bytes, &what)?;
            let all: Vec<&Descriptor> = index.manifests.iter().collect();
            resolve(src, pick_platform(&all)?, depth + 1)
        }
        OCI_MANIFEST | DOCKER_MANIFEST => {
            let manifest: Manifest = parse_json(&bytes, &what)?;
            Ok(Chosen {
                manifest_bytes: bytes,
                manifest,
                names: Vec::new(),
            })
        }
        other => Err(ImageError::UnsupportedMediaType {
            media_type: other.to_string(),
            what,
        }),
    }
}

/// The linux/amd64 entry.
fn pick_platform<'a>(entries: &[&'a Descriptor]) -> Result<&'a Descriptor> {
    entries
        .iter()
        .find(|d| {
            d.platform
                .as_ref()
                .is_some_and(|p| p.os == OS && p.architecture == ARCH)
        })
        .copied()
        .ok_or_else(|| ImageError::PlatformNotFound {
            wanted: format!("{OS}/{ARCH}"),
            available: entries
                .iter()
                .map(|d| match &d.platform {
                    Some(p) => match &p.variant {
                        Some(v) => format!("{}/{}/{v}", p.os, p.architecture),
                        None => format!("{}/{}", p.os, p.architecture),
                    },
                    None => format!("{} (no platform)", d.digest),
                })
                .collect(),
        })
}

fn matches_ref(desc: &Descriptor, r: &str) -> bool {
    desc.annotations.get(REF_NAME).is_some_and(|t| t == r)
        || desc
            .annotations
            .get(IMAGE_NAME)
            .is_some_and(|n| n == r || n.ends_with(&format!("/{r}")))
}

/// What each entry is called (its tag, image name, or digest).
fn names(entries: &[Descriptor]) -> Vec<String> {
    let mut out: Vec<String> = entries
        .iter()
        .map(|d| {
            d.annotations
                .get(REF_NAME)
                .or_else(|| d.annotations.get(IMAGE_NAME))
                .cloned()
                .unwrap_or_else(|| d.digest.to_string())
        })
        .collect();
    out.dedup();
    out
}

/// The names of the entries the reference matched (to record with the image).
fn chosen_names(entries: &[Descriptor], reference: Option<&str>) -> Vec<String> {
    let matching = entries
        .iter()
        .filter(|d| reference.is_none_or(|r| matches_ref(d, r)));
    matching
        .flat_map(|d| [d.annotations.get(REF_NAME), d.annotations.get(IMAGE_NAME)])
        .flatten()
        .cloned()
        .collect()
}

//! The OCI image JSON documents this crate reads (index, manifest, image config) and their media
//! types, parsed with errors that name the file and the field (`serde_path_to_error`).
//! Docker's manifest v2 and manifest-list documents have the same shape and are read by the same types.

use crate::digest::Digest;
use crate::error::{ImageError, Result};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image config.
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// Docker manifest list.
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker image manifest (schema 2).
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker image config.
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
/// The annotation that holds a tag in an OCI layout's index.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";
/// The annotation Docker 25+ and containerd put the full image name in.
pub const IMAGE_NAME: &str = "io.containerd.image.name";

/// A content descriptor: what a blob is, its digest and size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Descriptor {
    /// The blob's media type (may be empty in some index entries).
    #[serde(rename = "mediaType", default)]
    pub media_type: String,
    /// The blob's digest.
    pub digest: Digest,
    /// The blob's size in bytes.
    pub size: u64,
    /// Annotations (the tag of an index entry lives here).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// The platform of an index entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
}

/// The platform of an index entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    /// CPU architecture (`amd64`).
    pub architecture: String,
    /// Operating system (`linux`).
    pub os: String,
    /// CPU variant (`v8`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

/// An image index (OCI) or manifest list (Docker).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Index {
    /// Always 2.
    #[serde(rename = "schemaVersion")]
    pub schema_version: u32,
    /// The index's media type, if it states it.
    #[serde(rename = "mediaType", default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// The manifests (or nested indexes) it lists.
    pub manifests: Vec<Descriptor>,
}

/// An image manifest: the config and the layers, bottom first.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    /// Always 2.
    #[serde(rename = "schemaVersion")]
    pub schema_version: u32,
    /// The manifest's media type, if it states it.
    #[serde(rename = "mediaType", default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// The image config blob.
    pub config: Descriptor,
    /// The layer blobs, bottom first.
    pub layers: Vec<Descriptor>,
}

/// The image config file (the blob the manifest's `config` names).
#[derive(Debug, Clone, Deserialize)]
pub struct ConfigFile {
    /// CPU architecture.
    #[serde(default)]
    pub architecture: String,
    /// Operating system.
    #[serde(default)]
    pub os: String,
    /// When the image was built (RFC 3339), if recorded.
    #[serde(default)]
    pub created: Option<String>,
    /// The run defaults.
    #[serde(default)]
    pub config: Option<ImageConfig>,
    /// The layers' diff ids.
    pub rootfs: RootFs,
}

/// The `rootfs` of an image config.
#[derive(Debug, Clone, Deserialize)]
pub struct RootFs {
    /// Always `layers`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The sha256 of each uncompressed layer, bottom first.
    pub diff_ids: Vec<Digest>,
}

/// The run defaults of an image config (the `config` object), as the image gives them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageConfig {
    /// `uid[:gid]` or `name[:group]`.
    #[serde(rename = "User", default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// `NAME=value` entries.
    #[serde(rename = "Env", default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<String>>,
    /// The entrypoint.
    #[serde(
        rename = "Entrypoint",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub entrypoint: Option<Vec<String>>,
    /// The default arguments (or command, without an entrypoint).
    #[serde(rename = "Cmd", default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    /// The working directory.
    #[serde(
        rename = "WorkingDir",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub working_dir: Option<String>,
}

/// How a layer blob is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// A plain tar.
    None,
    /// gzip (one or more members).
    Gzip,
    /// zstd (one or more frames).
    Zstd,
}

impl Compression {
    /// The compression a layer media type implies; unknown media types are an error.
    pub fn from_media_type(media_type: &str, what: &str) -> Result<Compression> {
        let base = media_type
            .strip_prefix("application/vnd.oci.image.layer.nondistributable.v1.tar")
            .or_else(|| media_type.strip_prefix("application/vnd.oci.image.layer.v1.tar"))
            .or_else(|| {
                media_type.strip_prefix("application/vnd.docker.image.rootfs.foreign.diff.tar")
            })
            .or_else(|| media_type.strip_prefix("application/vnd.docker.image.rootfs.diff.tar"));
        match base {
            Some("") => Ok(Compression::None),
            Some("+gzip") | Some(".gzip") => Ok(Compression::Gzip),
            Some("+zstd") | Some(".zstd") => Ok(Compression::Zstd),
            _ => Err(ImageError::UnsupportedMediaType {
                media_type: media_type.to_string(),
                what: what.to_string(),
            }),
        }
    }

    /// Guesses the compression from a blob's first bytes (for archives without media types).
    pub fn sniff(head: &[u8]) -> Compression {
        if head.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Compression::Zstd
        } else {
            Compression::None
        }
    }

    /// The OCI layer media type for this compression.
    pub fn oci_media_type(self) -> &'static str {
        match self {
            Compression::None => "application/vnd.oci.image.layer.v1.tar",
            Compression::Gzip => "application/vnd.oci.image.layer.v1.tar+gzip",
            Compression::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd",
        }
    }
}

/// Parses a JSON document; an error names `file` and the path of the offending field.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8], file: &str) -> Result<T> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(&mut de).map_err(|e| ImageError::MalformedJson {
        file: file.to_string(),
        field: e.path().to_string(),
        message: e.inner().to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_types_map_to_compression() {
        let c = |m| Compression::from_media_type(m, "layer");
        assert_eq!(
            c("application/vnd.oci.image.layer.v1.tar+gzip").unwrap(),
            Compression::Gzip
        );
        assert_eq!(
            c("application/vnd.oci.image.layer.v1.tar+zstd").unwrap(),
            Compression::Zstd
        );
        assert_eq!(
            c("application/vnd.oci.image.layer.v1.tar").unwrap(),
            Compression::None
        );
        assert_eq!(
            c("application/vnd.docker.image.rootfs.diff.tar.gzip").unwrap(),
            Compression::Gzip
        );
        assert_eq!(
            c("application/vnd.docker.image.rootfs.foreign.diff.tar.gzip").unwrap(),
            Compression::Gzip
        );
        let err = c("application/vnd.oci.image.layer.v1.tar+bzip2").unwrap_err();
        assert!(
            matches!(err, ImageError::UnsupportedMediaType { .. }),
            "{err}"
        );
    }

    #[test]
    fn malformed_json_names_file_and_field() {
        let err = parse_json::<Manifest>(
            br#"{"schemaVersion": 2, "config": {"digest": "sha256:x", "size": 1}, "layers": []}"#,
            "blobs/sha256/ab",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("blobs/sha256/ab") && err.contains("config.digest"),
            "{err}"
        );
        let err = parse_json::<Manifest>(b"{", "index.json")
            .unwrap_err()
            .to_string();
        assert!(err.contains("index.json"), "{err}");
        let err = parse_json::<ConfigFile>(br#"{"rootfs": {"type": "layers"}}"#, "config")
            .unwrap_err()
            .to_string();
        assert!(err.contains("rootfs") && err.contains("diff_ids"), "{err}");
    }
}

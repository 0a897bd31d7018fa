//! Where an image comes from: [`ImageSource`] parsed from `oci-layout:<dir>` or
//! `docker-archive:<file.tar>`, and [`ImageSpec`], the `"image"` object of a function spec.

use crate::error::{ImageError, Result};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

/// An image source on this machine. Pulling from a registry would be another variant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum ImageSource {
    /// An OCI image layout directory (`oci-layout`, `index.json`, `blobs/sha256/…`).
    OciLayout(PathBuf),
    /// A `docker save` archive: legacy (`manifest.json` + `<id>/layer.tar`) or the OCI-in-tar shape
    /// Docker 25+ writes.
    DockerArchive(PathBuf),
}

impl ImageSource {
    /// Parses `oci-layout:<dir>` or `docker-archive:<file.tar>`; errors name the `source` field.
    pub fn parse(value: &str) -> Result<ImageSource> {
        let bad = |message: String| ImageError::InvalidField {
            field: "source",
            message,
        };
        let (kind, path) = value.split_once(':').ok_or_else(|| {
            bad(format!(
                "{value:?}: expected oci-layout:<dir> or docker-archive:<file.tar>"
            ))
        })?;
        if path.is_empty() {
            return Err(bad(format!("{value:?}: the path after {kind}: is empty")));
        }
        if path.contains('\0') {
            return Err(bad(format!("{value:?}: the path contains NUL")));
        }
        match kind {
            "oci-layout" | "oci" => Ok(ImageSource::OciLayout(PathBuf::from(path))),
            "docker-archive" => Ok(ImageSource::DockerArchive(PathBuf::from(path))),
            other => Err(bad(format!(
                "unknown kind {other:?}: expected oci-layout or docker-archive"
            ))),
        }
    }
}

impl fmt::Display for ImageSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ImageSource::OciLayout(dir) => write!(f, "oci-layout:{}", dir.display()),
            ImageSource::DockerArchive(file) => write!(f, "docker-archive:{}", file.display()),
        }
    }
}

impl FromStr for ImageSource {
    type Err = ImageError;
    fn from_str(value: &str) -> Result<ImageSource> {
        ImageSource::parse(value)
    }
}

impl TryFrom<String> for ImageSource {
    type Error = ImageError;
    fn try_from(value: String) -> Result<ImageSource> {
        ImageSource::parse(&value)
    }
}

impl From<ImageSource> for String {
    fn from(value: ImageSource) -> String {
        value.to_string()
    }
}

/// The `"image"` object of a function spec: `{"source": "oci-layout:<dir>", "ref": "<tag or digest>"}`
/// or `{"source": "docker-archive:<file.tar>"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageSpec {
    /// Where the image is.
    pub source: ImageSource,
    /// Which image of the source: a tag (`org.opencontainers.image.ref.name`, or a docker
    /// `RepoTags` entry) or a `sha256:` manifest digest. Optional when the source holds one image.
    #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
}

impl ImageSpec {
    /// Checks the `ref` field (not empty, no NUL, no control characters).
    pub fn validate(&self) -> Result<()> {
        if let Some(reference) = &self.reference {
            if reference.is_empty() || reference.chars().any(char::is_control) {
                return Err(ImageError::InvalidField {
                    field: "ref",
                    message: format!("{reference:?}: expected a tag or a sha256: digest"),
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_kinds() {
        assert_eq!(
            "oci-layout:/a/b".parse::<ImageSource>().unwrap(),
            ImageSource::OciLayout("/a/b".into())
        );
        assert_eq!(
            ImageSource::parse("docker-archive:x:y.tar").unwrap(),
            ImageSource::DockerArchive("x:y.tar".into())
        );
        assert_eq!(
            ImageSource::parse("docker-archive:/t.tar")
                .unwrap()
                .to_string(),
            "docker-archive:/t.tar"
        );
    }

    #[test]
    fn errors_name_the_field() {
        for bad in [
            "",
            "oci-layout",
            "oci-layout:",
            "registry:x",
            "docker-archive:a\0b",
        ] {
            let err = ImageSource::parse(bad).unwrap_err().to_string();
            assert!(err.starts_with("invalid image source"), "{bad:?}: {err}");
        }
        let spec: ImageSpec =
            serde_json::from_str(r#"{"source": "oci-layout:/x", "ref": ""}"#).unwrap();
        assert!(spec
            .validate()
            .unwrap_err()
            .to_string()
            .contains("image ref"));
        let err = serde_json::from_str::<ImageSpec>(r#"{"source": "ftp:/x"}"#).unwrap_err();
        assert!(err.to_string().contains("invalid image source"), "{err}");
        assert!(serde_json::from_str::<ImageSpec>(r#"{"source": "oci:/x", "tag": "a"}"#).is_err());
    }
}

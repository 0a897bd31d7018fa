//! The `"image"` field of a function or stage spec ([`ImageRef`]) and what the worker resolves
//! it to ([`ResolvedImage`]): the image's root on this worker and its run defaults merged with
//! the spec's `command`, `workdir` and `env`.
//!
//! Three ways to name an image:
//! - `{"source": "oci-layout:<dir>", "ref": "<tag or digest>"}` or
//!   `{"source": "docker-archive:<file.tar>"}`: imported from a path on the worker (inside one of
//!   its import directories), `ref` choosing the image when the source holds several;
//! - `{"digest": "sha256:…"}`: an image already in the worker's store;
//! - `{"ref": "name:tag"}`: an image in the store imported under that name (with a `digest`
//!   too, the digest decides).
//!
//! With `source`, a `digest` pins the image: the import must give exactly that manifest digest.
//! The worker writes the digest it resolved into the stored spec, so a restart runs the same
//! image without importing anything.

use serde::{Deserialize, Serialize};
use sluice_image::{Digest, ImageSource, UserIds};
use std::path::PathBuf;

/// The `"image"` object of a spec.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageRef {
    /// `oci-layout:<dir>` or `docker-archive:<file.tar>` on the worker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// A tag or `sha256:` digest of the source, or (without `source`) a name in the store.
    #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    /// The image's manifest digest (`sha256:<hex>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
}

impl From<sluice_pipeline::spec::StageImage> for ImageRef {
    fn from(s: sluice_pipeline::spec::StageImage) -> ImageRef {
        ImageRef {
            source: s.source,
            reference: s.reference,
            digest: s.digest,
        }
    }
}

/// What an [`ImageRef`] names, checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Wanted {
    /// Import from this source (then check the digest, if given).
    Import {
        /// The source.
        source: ImageSource,
        /// Which image of it.
        reference: Option<String>,
        /// The digest it must have.
        digest: Option<Digest>,
    },
    /// The image with this digest in the store.
    Digest(Digest),
    /// The image imported under this name.
    Name(String),
}

/// Why an `"image"` object is refused: the field (`image.source`, `image.ref`, `image.digest`,
/// `image`) and the reason.
pub type FieldError = (&'static str, String);

impl ImageRef {
    /// Checks the fields and says what they name.
    pub fn wanted(&self) -> Result<Wanted, FieldError> {
        if let Some(r) = &self.reference {
            if r.is_empty() || r.len() > 512 || r.chars().any(char::is_control) {
                return Err((
                    "image.ref",
                    format!("{r:?}: expected a tag, a name or a sha256: digest"),
                ));
            }
        }
        let digest = self
            .digest
            .as_deref()
            .map(|d| Digest::parse(d).map_err(|e| ("image.digest", e.to_string())))
            .transpose()?;
        match (&self.source, digest, &self.reference) {
            (Some(s), digest, reference) => {
                let source = ImageSource::parse(s).map_err(|e| ("image.source", e.to_string()))?;
                Ok(Wanted::Import {
                    source,
                    reference: reference.clone(),
                    digest,
                })
            }
            // A digest wins over a name (it is what the worker pinned when the name was used).
            (None, Some(d), _) => Ok(Wanted::Digest(d)),
            (None, None, Some(r)) => Ok(Wanted::Name(r.clone())),
            (None, None, None) => Err((
                "image",
                "give source (and ref), digest, or ref of an imported image".to_string(),
            )),
        }
    }

    /// A relative path in `source` resolved against `base` (a function file's directory).
    pub fn with_source_under(mut self, base: &std::path::Path) -> ImageRef {
        if let Some(s) = &self.source {
            if let Some((kind, path)) = s.split_once(':') {
                let p = std::path::Path::new(path);
                if !path.is_empty() && p.is_relative() {
                    self.source = Some(format!("{kind}:{}", base.join(p).display()));
                }
            }
        }
        self
    }
}

/// An image function as this worker runs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolvedImage {
    /// The image's manifest digest.
    pub digest: Digest,
    /// Its unpacked root on this worker.
    pub root: PathBuf,
    /// The command: the spec's, else `Entrypoint` + `Cmd`.
    pub command: Vec<String>,
    /// The working directory inside: the spec's `workdir`, else `WorkingDir`.
    pub workdir: PathBuf,
    /// The image's `Env` with the spec's `env` laid over it.
    pub env: Vec<(String, String)>,
    /// Who runs it inside (the image's `User`; root of the image by default).
    pub user: UserIds,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> ImageRef {
        serde_json::from_str(json).expect("image")
    }

    #[test]
    fn each_way_of_naming_an_image_and_each_bad_field() {
        let d = format!("sha256:{}", "a".repeat(64));
        assert!(matches!(
            parse(r#"{"source": "oci-layout:/srv/x", "ref": "v1"}"#).wanted(),
            Ok(Wanted::Import { reference: Some(r), digest: None, .. }) if r == "v1"
        ));
        assert!(matches!(
            parse(&format!(r#"{{"digest": "{d}"}}"#)).wanted(),
            Ok(Wanted::Digest(_))
        ));
        assert_eq!(
            parse(r#"{"ref": "app:1"}"#).wanted(),
            Ok(Wanted::Name("app:1".into()))
        );
        let field = |json: &str| parse(json).wanted().expect_err(json).0;
        assert_eq!(field(r#"{"source": "ftp:/x"}"#), "image.source");
        assert_eq!(field(r#"{"source": "oci-layout:"}"#), "image.source");
        assert_eq!(field(r#"{"digest": "sha256:12"}"#), "image.digest");
        assert_eq!(field(r#"{"digest": "md5:12"}"#), "image.digest");
        assert_eq!(field(r#"{"ref": ""}"#), "image.ref");
        assert_eq!(field(r#"{"ref": "a\u0000b"}"#), "image.ref");
        assert_eq!(field(r#"{}"#), "image");
        // What the worker stores once it pinned a name: the digest wins.
        assert!(matches!(
            parse(&format!(r#"{{"digest": "{d}", "ref": "x"}}"#)).wanted(),
            Ok(Wanted::Digest(_))
        ));
        assert!(serde_json::from_str::<ImageRef>(r#"{"tag": "x"}"#).is_err());
    }

    #[test]
    fn relative_sources_resolve_against_the_file_directory() {
        let base = std::path::Path::new("/srv/fn");
        let r = parse(r#"{"source": "docker-archive:img/app.tar"}"#).with_source_under(base);
        assert_eq!(
            r.source.as_deref(),
            Some("docker-archive:/srv/fn/img/app.tar")
        );
        let r = parse(r#"{"source": "oci-layout:/abs"}"#).with_source_under(base);
        assert_eq!(r.source.as_deref(), Some("oci-layout:/abs"));
    }
}

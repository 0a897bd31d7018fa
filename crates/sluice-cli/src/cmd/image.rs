//! `sluice image import|list|rm|gc`: a worker's container images. `import` uploads a
//! `docker save` archive, or an OCI layout directory packed into a tar on the fly, streaming it
//! from disk; `--on-worker` asks the worker to import a path of its own instead (which must lie
//! in its import directories). Also the upload `sluice fn register --upload` uses.

use super::client::{Answer, Endpoint};
use anyhow::{bail, Context, Result};
use bytes::Bytes;
use clap::Subcommand;
use hyper::body::Frame;
use hyper::{header, Method, Request};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

#[derive(Subcommand, Debug)]
pub enum ImageCommand {
    /// Import an image: upload an archive or OCI layout, or import a path on the worker.
    #[command(after_help = "Examples:\n  \
        sluice image import app.tar                      # a docker save archive\n  \
        sluice image import ./layout --ref app:1         # an OCI layout directory\n  \
        sluice image import --on-worker oci-layout:/var/lib/sluice/imports/app --ref 1")]
    Import {
        /// A `docker save` archive or an OCI layout directory here, or with `--on-worker` an
        /// `oci-layout:<dir>` / `docker-archive:<file>` source on the worker.
        source: String,
        /// Which image of the source (a tag or sha256: digest); also the name it is kept under.
        #[arg(long = "ref")]
        reference: Option<String>,
        /// The source is a path on the worker, inside its import directories.
        #[arg(long)]
        on_worker: bool,
        #[command(flatten)]
        ep: Endpoint,
    },
    /// List the worker's images.
    #[command(after_help = "Example:\n  sluice image list")]
    List {
        /// Print the API's JSON answer.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        ep: Endpoint,
    },
    /// Delete an image (refused while a function uses it), then collect its garbage.
    #[command(after_help = "Example:\n  sluice image rm sha256:3f1c…")]
    Rm {
        /// The image's digest.
        digest: String,
        #[command(flatten)]
        ep: Endpoint,
    },
    /// Delete every blob and unpacked root no image references.
    #[command(after_help = "Example:\n  sluice image gc")]
    Gc {
        #[command(flatten)]
        ep: Endpoint,
    },
}

pub async fn run(cmd: ImageCommand) -> Result<()> {
    match cmd {
        ImageCommand::Import {
            source,
            reference,
            on_worker,
            ep,
        } => {
            let a = if on_worker {
                let body = serde_json::json!({"source": source, "ref": reference});
                super::client::Api::new(&ep)
                    .call(
                        Method::POST,
                        "/v1/images",
                        Some(Bytes::from(body.to_string())),
                    )
                    .await?
            } else {
                upload(&ep, Path::new(&source), reference.as_deref()).await?
            };
            let created = a.status == hyper::StatusCode::CREATED;
            let v: serde_json::Value = serde_json::from_slice(&a.ok()?.body)?;
            let verb = if created { "imported" } else { "already had" };
            println!("{verb} {}", v["digest"].as_str().unwrap_or("?"));
        }
        ImageCommand::List { json, ep } => {
            let a = super::client::Api::new(&ep)
                .call(Method::GET, "/v1/images", None)
                .await?
                .ok()?;
            if json {
                println!("{}", super::manage::pretty(&a.body));
                return Ok(());
            }
            let v: Vec<serde_json::Value> = serde_json::from_slice(&a.body)?;
            for i in v {
                let digest = i["digest"].as_str().unwrap_or("?");
                let short = digest.get(..19).unwrap_or(digest);
                let refs: Vec<&str> = i["refs"]
                    .as_array()
                    .map(|a| a.iter().filter_map(|r| r.as_str()).collect())
                    .unwrap_or_default();
                let holders = i["holders"].as_array().map_or(0, Vec::len);
                let mb = i["size"].as_u64().unwrap_or(0) as f64 / 1e6;
                println!(
                    "{short:<20} {mb:>8.1} MB  used by {holders}  {}",
                    refs.join(", ")
                );
            }
        }
        ImageCommand::Rm { digest, ep } => {
            let a = super::client::Api::new(&ep)
                .call(Method::DELETE, &format!("/v1/images/{digest}"), None)
                .await?
                .ok()?;
            let v: serde_json::Value = serde_json::from_slice(&a.body)?;
            println!("deleted {digest}; gc: {}", v["gc"]);
        }
        ImageCommand::Gc { ep } => {
            let a = super::client::Api::new(&ep)
                .call(Method::POST, "/v1/images/gc", None)
                .await?
                .ok()?;
            println!("{}", super::manage::pretty(&a.body));
        }
    }
    Ok(())
}

/// A request body read from a file, chunk by chunk, on a blocking thread.
struct FileBody {
    rx: tokio::sync::mpsc::Receiver<std::io::Result<Bytes>>,
    len: u64,
}

impl hyper::body::Body for FileBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        self.rx.poll_recv(cx).map(|o| o.map(|r| r.map(Frame::data)))
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        hyper::body::SizeHint::with_exact(self.len)
    }
}

fn file_body(file: PathBuf, len: u64) -> FileBody {
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    tokio::task::spawn_blocking(move || {
        use std::io::Read;
        let mut f = match std::fs::File::open(&file) {
            Ok(f) => f,
            Err(e) => {
                let _ = tx.blocking_send(Err(e));
                return;
            }
        };
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            match f.read(&mut buf) {
                Ok(0) => return,
                Ok(n) => {
                    if tx
                        .blocking_send(Ok(Bytes::copy_from_slice(&buf[..n])))
                        .is_err()
                    {
                        return;
                    }
                }
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    return;
                }
            }
        }
    });
    FileBody { rx, len }
}

/// A directory (an OCI layout) packed into a temporary tar, removed when dropped.
struct Packed(PathBuf);

impl Drop for Packed {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn pack(dir: &Path) -> Result<Packed> {
    if !dir.join("index.json").is_file() || !dir.join("oci-layout").is_file() {
        bail!(
            "{} is a directory but not an OCI image layout (no index.json and oci-layout)",
            dir.display()
        );
    }
    let out = std::env::temp_dir().join(format!("sluice-upload-{}.tar", std::process::id()));
    let packed = Packed(out.clone());
    let file = std::fs::File::create(&out).with_context(|| format!("create {}", out.display()))?;
    let mut b = tar::Builder::new(std::io::BufWriter::new(file));
    b.follow_symlinks(false);
    for name in ["oci-layout", "index.json"] {
        b.append_path_with_name(dir.join(name), name)?;
    }
    b.append_dir_all("blobs", dir.join("blobs"))?;
    b.into_inner()?.into_inner().map_err(|e| e.into_error())?;
    Ok(packed)
}

/// Uploads the archive at `path` (a directory is packed first) to the worker's `/v1/images`.
pub async fn upload(ep: &Endpoint, path: &Path, reference: Option<&str>) -> Result<Answer> {
    let meta =
        std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
    let (file, _packed) = if meta.is_dir() {
        let dir = path.to_path_buf();
        let packed = tokio::task::spawn_blocking(move || pack(&dir)).await??;
        (packed.0.clone(), Some(packed))
    } else {
        (path.to_path_buf(), None)
    };
    let len = std::fs::metadata(&file)?.len();
    let base = ep.url.trim_end_matches('/');
    let query = reference
        .map(|r| format!("?ref={}", encode(r)))
        .unwrap_or_default();
    let mut req = Request::builder()
        .method(Method::POST)
        .uri(format!("{base}/v1/images{query}"))
        .header(header::CONTENT_TYPE, "application/x-tar")
        .header(header::CONTENT_LENGTH, len);
    if let Some(t) = &ep.token {
        req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    let req = req.body(file_body(file, len))?;
    let client = Client::builder(TokioExecutor::new()).build_http::<FileBody>();
    let resp = client
        .request(req)
        .await
        .with_context(|| format!("cannot reach the worker at {base}"))?;
    let (parts, body) = resp.into_parts();
    use http_body_util::BodyExt;
    let body = body.collect().await?.to_bytes();
    Ok(Answer {
        status: parts.status,
        headers: parts.headers,
        body,
    })
}

/// Percent-encodes a query value.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_encoded() {
        assert_eq!(encode("app:1.0"), "app%3A1.0");
        assert_eq!(encode("a b/c"), "a%20b%2Fc");
    }
}

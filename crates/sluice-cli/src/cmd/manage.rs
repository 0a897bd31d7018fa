//! `sluice fn register|list|rm` (registration may upload the function's image first),
//! `sluice invoke` and `sluice status`: thin clients of the API.

use super::client::{Api, Endpoint};
use anyhow::{Context, Result};
use bytes::Bytes;
use clap::{Args, Subcommand};
use hyper::Method;
use std::path::PathBuf;

#[derive(Subcommand, Debug)]
pub enum FnCommand {
    /// Register (or update) a function from a function.json file.
    #[command(
        after_help = "Example:\n  sluice fn register examples/functions/hello/function.json"
    )]
    Register {
        /// The function.json file; relative `workdir` and `PYTHONPATH` entries in it are resolved
        /// against the current directory, a relative `image.source` against the file's directory.
        file: PathBuf,
        /// Upload the spec's `image.source` (an archive or OCI layout here) first and register
        /// the function by the uploaded image's digest.
        #[arg(long)]
        upload: bool,
        #[command(flatten)]
        ep: Endpoint,
    },
    /// List registered functions.
    #[command(after_help = "Example:\n  sluice fn list")]
    List {
        #[command(flatten)]
        ep: Endpoint,
    },
    /// Delete a function.
    #[command(after_help = "Example:\n  sluice fn rm hello")]
    Rm {
        /// The function's name.
        name: String,
        #[command(flatten)]
        ep: Endpoint,
    },
}

#[derive(Args, Debug)]
pub struct InvokeArgs {
    /// The function's name.
    name: String,
    /// The JSON argument passed to the function (default: null).
    #[arg(default_value = "null")]
    input: String,
    /// Submit asynchronously and wait for the result by polling; exits non-zero if it failed.
    #[arg(long = "async")]
    asynchronous: bool,
    /// Print the timing headers to stderr.
    #[arg(long, short)]
    verbose: bool,
    #[command(flatten)]
    ep: Endpoint,
}

/// A JSON body printed compactly (see [`super::view::compact`]), anything else as (lossy) text.
pub(crate) fn pretty(body: &Bytes) -> String {
    serde_json::from_slice::<serde_json::Value>(body)
        .map(|v| super::view::compact(&v))
        .unwrap_or_else(|_| String::from_utf8_lossy(body).into_owned())
}

pub async fn fns(cmd: FnCommand) -> Result<()> {
    match cmd {
        FnCommand::Register { file, upload, ep } => {
            let cwd = std::env::current_dir()?;
            let mut spec = sluice_worker::server::load_function_file(&file, &cwd)?;
            if upload {
                spec.image = Some(upload_image(&ep, spec.image.take()).await?);
            }
            let body = Bytes::from(serde_json::to_vec(&spec)?);
            let a = Api::new(&ep)
                .call(Method::POST, "/v1/functions", Some(body))
                .await?
                .ok()?;
            let verb = if a.status == hyper::StatusCode::CREATED {
                "registered"
            } else {
                "updated"
            };
            println!("{verb} {}", spec.name);
        }
        FnCommand::List { ep } => {
            let a = Api::new(&ep)
                .call(Method::GET, "/v1/functions", None)
                .await?
                .ok()?;
            let fns: Vec<sluice_worker::function::FunctionSpec> = serde_json::from_slice(&a.body)?;
            for f in fns {
                let gpu = if f.resources.gpu { "gpu" } else { "cpu" };
                let what = match &f.image {
                    Some(i) => format!(
                        "image {} {}",
                        i.digest
                            .as_deref()
                            .or(i.reference.as_deref())
                            .unwrap_or("?"),
                        f.command.join(" ")
                    ),
                    None => f.command.join(" "),
                };
                println!("{:<24} {gpu}  {what}", f.name);
            }
        }
        FnCommand::Rm { name, ep } => {
            Api::new(&ep)
                .call(Method::DELETE, &format!("/v1/functions/{name}"), None)
                .await?
                .ok()?;
            println!("deleted {name}");
        }
    }
    Ok(())
}

/// Uploads the image a spec names by `source` and names it by digest instead.
async fn upload_image(
    ep: &Endpoint,
    image: Option<sluice_worker::images::ImageRef>,
) -> Result<sluice_worker::images::ImageRef> {
    let image = image.context("--upload: the function has no image")?;
    let source = image
        .source
        .as_deref()
        .context("--upload: the function's image has no source to upload")?;
    let (_, path) = source
        .split_once(':')
        .with_context(|| format!("--upload: {source:?} is not kind:path"))?;
    let a = super::image::upload(ep, std::path::Path::new(path), image.reference.as_deref())
        .await?
        .ok()?;
    let v: serde_json::Value = serde_json::from_slice(&a.body)?;
    let digest = v["digest"]
        .as_str()
        .context("the worker answered no digest")?
        .to_string();
    eprintln!("uploaded {source} as {digest}");
    Ok(sluice_worker::images::ImageRef {
        digest: Some(digest),
        ..Default::default()
    })
}

pub async fn invoke(args: InvokeArgs) -> Result<()> {
    serde_json::from_str::<serde_json::Value>(&args.input)
        .with_context(|| format!("the argument is not JSON: {}", args.input))?;
    let api = Api::new(&args.ep);
    let body = Some(Bytes::from(args.input.clone()));
    if !args.asynchronous {
        let a = api
            .call(
                Method::POST,
                &format!("/v1/functions/{}/invoke", args.name),
                body,
            )
            .await?
            .ok()?;
        if args.verbose {
            for (k, v) in a
                .headers
                .iter()
                .filter(|(k, _)| k.as_str().starts_with("x-sluice"))
            {
                eprintln!("{k}: {}", v.to_str().unwrap_or(""));
            }
        }
        println!("{}", pretty(&a.body));
        return Ok(());
    }
    let a = api
        .call(
            Method::POST,
            &format!("/v1/functions/{}/invoke-async", args.name),
            body,
        )
        .await?
        .ok()?;
    let id = serde_json::from_slice::<serde_json::Value>(&a.body)?["id"]
        .as_str()
        .map(str::to_string)
        .context("the worker returned no id")?;
    eprintln!("accepted as {id}");
    loop {
        let a = api
            .call(Method::GET, &format!("/v1/invocations/{id}"), None)
            .await?
            .ok()?;
        let v: serde_json::Value = serde_json::from_slice(&a.body)?;
        if v["done"].as_bool() == Some(true) {
            println!("{}", super::view::compact(&v));
            if v["status"].as_str() != Some("succeeded") {
                let why = v["error"].as_str().unwrap_or("no reason recorded");
                anyhow::bail!("invocation {id} failed: {why}");
            }
            return Ok(());
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

pub async fn status(ep: Endpoint, json: bool) -> Result<()> {
    let a = Api::new(&ep)
        .call(Method::GET, "/v1/status", None)
        .await?
        .ok()?;
    if json {
        println!("{}", pretty(&a.body));
    } else {
        let v: serde_json::Value = serde_json::from_slice(&a.body)
            .with_context(|| format!("the worker's status is not JSON: {}", a.text()))?;
        print!("{}", super::view::status_summary(&v));
    }
    Ok(())
}

//! `sluice logs NAME [--follow]`: a function's recent output on a running worker, what its
//! sandboxes wrote to stdout (printed to stdout) and stderr (printed to stderr), oldest first;
//! `--follow` keeps asking for what comes next until interrupted.

use super::client::{Api, Endpoint};
use anyhow::{Context, Result};
use clap::Args;
use hyper::Method;
use serde_json::Value;
use std::io::Write;
use std::time::Duration;

#[derive(Args, Debug)]
pub struct LogsArgs {
    /// The function's name.
    name: String,
    /// Keep printing new output as it comes (every half second) until interrupted.
    #[arg(long, short)]
    follow: bool,
    /// Print the API's JSON answer (entries with their sandbox, stream and time) instead.
    #[arg(long, conflicts_with = "follow")]
    json: bool,
    #[command(flatten)]
    ep: Endpoint,
}

/// How often `--follow` asks.
const POLL: Duration = Duration::from_millis(500);

pub async fn run(args: LogsArgs) -> Result<()> {
    let api = Api::new(&args.ep);
    let mut after = 0u64;
    loop {
        let path = format!("/v1/functions/{}/logs?after={after}", args.name);
        let a = api.call(Method::GET, &path, None).await?.ok()?;
        if args.json {
            println!("{}", super::manage::pretty(&a.body));
            return Ok(());
        }
        let v: Value = serde_json::from_slice(&a.body).context("the answer is not JSON")?;
        if v["dropped"] == true && after > 0 {
            eprintln!("[sluice: some output was overwritten before it could be shown]");
        }
        print_entries(&v);
        after = v["next"].as_u64().unwrap_or(after);
        if !args.follow {
            return Ok(());
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Each entry's text to stdout or stderr, as the function wrote it.
fn print_entries(v: &Value) {
    let (mut out, mut err) = (std::io::stdout().lock(), std::io::stderr().lock());
    for e in v["entries"].as_array().into_iter().flatten() {
        let text = e["text"].as_str().unwrap_or("");
        let sink: &mut dyn Write = if e["stream"] == "stderr" {
            &mut err
        } else {
            &mut out
        };
        let _ = sink.write_all(text.as_bytes());
        if !text.ends_with('\n') {
            let _ = sink.write_all(b"\n");
        }
    }
    let _ = out.flush();
}

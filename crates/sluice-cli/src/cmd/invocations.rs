//! `sluice invocations list|get`: find accepted (asynchronous) invocations on a running worker
//! and show one with its result, error and logs. A summary by default; `--json` prints the
//! API's answer.

use super::client::{Api, Endpoint};
use anyhow::{Context, Result};
use clap::Subcommand;
use hyper::Method;
use serde_json::Value;
use std::fmt::Write;

#[derive(Subcommand, Debug)]
pub enum InvocationsCommand {
    /// List accepted invocations, newest first.
    #[command(after_help = "Examples:\n  \
        sluice invocations list\n  \
        sluice invocations list --function greet --status failed --limit 5\n  \
        sluice invocations list --json --cursor inv-000000000042   # the page after a next_cursor")]
    List {
        /// Only this function's (`pipeline:NAME` for a pipeline's).
        #[arg(long)]
        function: Option<String>,
        /// Only those in this state: queued, running, succeeded or failed.
        #[arg(long)]
        status: Option<String>,
        /// Most to show (1-1000).
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// Start below this id (a page's next_cursor).
        #[arg(long)]
        cursor: Option<String>,
        /// Print the API's JSON answer instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        ep: Endpoint,
    },
    /// Show one invocation: status, timing, result or error, and what the function wrote.
    #[command(after_help = "Example:\n  sluice invocations get inv-000000000001")]
    Get {
        /// The invocation's id (as `sluice invoke --async` or the list printed it).
        id: String,
        /// Print the API's JSON answer instead of a summary.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        ep: Endpoint,
    },
}

/// Percent-encodes a query value (ids and names need none, but a user may type anything).
fn enc(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

pub async fn run(cmd: InvocationsCommand) -> Result<()> {
    match cmd {
        InvocationsCommand::List {
            function,
            status,
            limit,
            cursor,
            json,
            ep,
        } => {
            let mut q = vec![format!("limit={limit}")];
            let params = [
                ("function", function),
                ("status", status),
                ("cursor", cursor),
            ];
            for (k, v) in params {
                if let Some(v) = v {
                    q.push(format!("{k}={}", enc(&v)));
                }
            }
            let path = format!("/v1/invocations?{}", q.join("&"));
            let a = Api::new(&ep).call(Method::GET, &path, None).await?.ok()?;
            if json {
                println!("{}", super::manage::pretty(&a.body));
            } else {
                let v: Value = serde_json::from_slice(&a.body).context("the answer is not JSON")?;
                print!("{}", list_table(&v));
            }
        }
        InvocationsCommand::Get { id, json, ep } => {
            let path = format!("/v1/invocations/{}", enc(&id));
            let a = Api::new(&ep).call(Method::GET, &path, None).await?.ok()?;
            if json {
                println!("{}", super::manage::pretty(&a.body));
            } else {
                let v: Value = serde_json::from_slice(&a.body).context("the answer is not JSON")?;
                print!("{}", summary(&v));
            }
        }
    }
    Ok(())
}

/// Milliseconds between two optional instants, as text.
fn span(from: &Value, to: &Value) -> String {
    match (from.as_u64(), to.as_u64()) {
        (Some(a), Some(b)) => format!("{} ms", b.saturating_sub(a)),
        _ => "-".into(),
    }
}

/// UTC time of day of a Unix-epoch millisecond instant, `HH:MM:SS`.
fn clock(ms: &Value) -> String {
    ms.as_u64().map_or("-".into(), |ms| {
        let s = (ms / 1000) % 86_400;
        format!("{:02}:{:02}:{:02}", s / 3600, (s / 60) % 60, s % 60)
    })
}

/// The list as a table, and how to get the next page.
pub fn list_table(v: &Value) -> String {
    let mut o = String::new();
    let items = v["invocations"].as_array().cloned().unwrap_or_default();
    if items.is_empty() {
        o.push_str("no invocations\n");
    } else {
        let _ = writeln!(
            o,
            "{:<18} {:<20} {:<10} {:>8} {:>9} {:>3}  error",
            "id", "function", "status", "accepted", "took", "try"
        );
    }
    for i in &items {
        let error = i["error"].as_str().unwrap_or("");
        let error: String = error
            .lines()
            .next()
            .unwrap_or("")
            .chars()
            .take(60)
            .collect();
        let _ = writeln!(
            o,
            "{:<18} {:<20} {:<10} {:>8} {:>9} {:>3}  {error}",
            i["id"].as_str().unwrap_or("?"),
            i["function"].as_str().unwrap_or("?"),
            i["status"].as_str().unwrap_or("?"),
            clock(&i["accepted_ms"]),
            span(&i["started_ms"], &i["finished_ms"]),
            i["attempts"]
                .as_u64()
                .map_or_else(|| "?".to_string(), |n| n.to_string()),
        );
    }
    if let Some(next) = v["next_cursor"].as_str() {
        let _ = writeln!(o, "(more: --cursor {next})");
    }
    o
}

/// One invocation in a few lines, then its logs.
pub fn summary(v: &Value) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "{} {} {} (attempts: {}; accepted {} UTC; queued {}, ran {})",
        v["id"].as_str().unwrap_or("?"),
        v["function"].as_str().unwrap_or("?"),
        v["status"].as_str().unwrap_or("?"),
        v["attempts"],
        clock(&v["accepted_ms"]),
        span(&v["accepted_ms"], &v["started_ms"]),
        span(&v["started_ms"], &v["finished_ms"]),
    );
    if let Some(e) = v["error"].as_str() {
        let _ = writeln!(o, "error: {e}");
    }
    if !v["result"].is_null() {
        let _ = writeln!(o, "result: {}", super::view::compact(&v["result"]));
    }
    match v["logs"].as_str() {
        Some("") => o.push_str("logs: (none written)\n"),
        Some(logs) => {
            let cut = if v["logs_truncated"] == true {
                " (earlier output left out)"
            } else {
                ""
            };
            let _ = writeln!(o, "logs{cut}:");
            for line in logs.lines() {
                let _ = writeln!(o, "  {line}");
            }
        }
        None if v["done"] == true => o.push_str("logs: (not kept)\n"),
        None => {}
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_list_and_an_invocation_read_well() {
        let v = json!({"invocations": [{"id": "inv-000000000002", "function": "greet",
            "status": "failed", "error": "the function returned status 500: boom\nmore",
            "attempts": 1, "accepted_ms": 3_600_000u64, "started_ms": 3_600_010u64,
            "finished_ms": 3_600_050u64, "done": true}], "next_cursor": "inv-000000000002"});
        let t = list_table(&v);
        assert!(t.contains("inv-000000000002   greet"), "{t}");
        assert!(t.contains("01:00:00     40 ms   1  the function"), "{t}");
        assert!(
            t.contains("status 500: boom") && !t.contains("more\n"),
            "{t}"
        );
        assert!(t.contains("(more: --cursor inv-000000000002)"), "{t}");
        assert_eq!(list_table(&json!({"invocations": []})), "no invocations\n");
        let one = json!({"id": "inv-000000000001", "function": "greet", "status": "succeeded",
            "attempts": 1, "accepted_ms": 5u64, "started_ms": 7u64, "finished_ms": 9u64,
            "done": true, "result": {"greeting": "hi"}, "error": null,
            "logs": "loading\nhi world\n", "logs_truncated": false});
        let s = summary(&one);
        assert!(
            s.starts_with("inv-000000000001 greet succeeded (attempts: 1;"),
            "{s}"
        );
        assert!(s.contains("queued 2 ms, ran 2 ms"), "{s}");
        assert!(s.contains("\"greeting\": \"hi\""), "{s}");
        assert!(s.contains("logs:\n  loading\n  hi world\n"), "{s}");
        assert_eq!(enc("pipeline:ocr x"), "pipeline%3Aocr%20x");
    }
}

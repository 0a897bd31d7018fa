//! The engine without HTTP: what an invocation's function wrote comes back with it when asked
//! for, and a function that prints a lot neither blocks nor grows memory without bound.

use crate::support::{function, harness};
use bytes::Bytes;
use serde_json::json;
use sluice_worker::engine::InvokeOptions;
use sluice_worker::function::FunctionSpec;
use sluice_worker::logs::{INVOCATION_TAIL, PER_FUNCTION};
use std::time::{Duration, Instant};

fn spec(name: &str, extra: serde_json::Value) -> FunctionSpec {
    serde_json::from_value(function(name, extra)).expect("a spec")
}

fn logs_on() -> InvokeOptions {
    InvokeOptions {
        logs: true,
        ..InvokeOptions::default()
    }
}

#[tokio::test]
async fn an_invocation_gets_its_output_only_when_asked() {
    let h = harness(|_| {}).await;
    let engine = &h.worker.state.engine;
    engine.register(spec("f", json!({})));
    let input = Bytes::from(r#"{"do": "print", "text": "hi"}"#);
    let quiet = engine
        .invoke_with("f", input.clone(), InvokeOptions::default())
        .await;
    assert!(quiet.result.is_ok() && quiet.logs.is_none());
    let asked = engine.invoke_with("f", input, logs_on()).await;
    let logs = asked.logs.expect("logs");
    assert!(logs.text.contains("to stdout: hi\n") && logs.text.contains("to stderr: hi\n"));
    assert!(
        !logs.text.contains("starting"),
        "a warm invocation: {:?}",
        logs.text
    );
    let unknown = engine.invoke_with("nope", Bytes::new(), logs_on()).await;
    assert!(unknown.result.is_err() && unknown.logs.is_none());
}

#[tokio::test]
async fn a_chatty_function_neither_blocks_nor_grows_memory() {
    let h = harness(|_| {}).await;
    let engine = &h.worker.state.engine;
    engine.register(spec("chatty", json!({"timeout_ms": 60000})));
    let started = Instant::now();
    let input = Bytes::from(r#"{"do": "chatty", "bytes": 20000000}"#);
    let out = engine.invoke_with("chatty", input, logs_on()).await;
    assert!(out.result.is_ok(), "{:?}", out.result.err());
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(30),
        "20 MB of output took {took:?}"
    );
    let logs = out.logs.expect("logs");
    assert!(logs.truncated && logs.text.len() <= INVOCATION_TAIL);
    assert!(logs.text.ends_with("last line\n"), "the end is kept");
    let page = engine.function_logs("chatty", 0, usize::MAX);
    let kept: usize = page.entries.iter().map(|e| e.text.len()).sum();
    assert!(kept <= PER_FUNCTION, "{kept} bytes kept");
    assert!(page.dropped);
}

#[tokio::test]
async fn a_function_printing_without_end_does_not_slow_others() {
    let h = harness(|_| {}).await;
    let engine = &h.worker.state.engine;
    engine.register(spec("noisy", json!({"env": {"CHATTER": "1"}})));
    engine.register(spec("quiet", json!({})));
    assert!(engine.invoke("noisy", Bytes::from("1")).await.is_ok());
    assert!(
        engine.invoke("quiet", Bytes::from("1")).await.is_ok(),
        "warm it"
    );
    let mut took = Vec::new();
    for i in 0..20 {
        let t = Instant::now();
        let r = engine
            .invoke_with("quiet", Bytes::from(i.to_string()), logs_on())
            .await;
        assert!(r.result.is_ok());
        took.push(t.elapsed());
    }
    took.sort();
    let p50 = took[took.len() / 2];
    assert!(
        p50 < Duration::from_millis(100),
        "quiet p50 {p50:?} beside a noisy function"
    );
    let page = engine.function_logs("noisy", 0, usize::MAX);
    let kept: usize = page.entries.iter().map(|e| e.text.len()).sum();
    assert!(kept <= PER_FUNCTION, "{kept}");
}

//! The smallest Sluice function: answers every invocation with `{}` at once.
//! Used for the worker's warm-throughput benchmark. Run it with `SLUICE_SOCKET=<path>`.

fn main() -> std::io::Result<()> {
    sluice_fn::serve(|_input| Ok(serde_json::json!({})))
}

//! A function that keeps one core busy for the requested time: input `{"ms": X}` (default 0)
//! spins X milliseconds and answers `{"spun_ms": X}`. `sluice load --input-from-trace` sends each
//! invocation the trace's execution time, so a live replay does the work the simulator models.

use std::time::{Duration, Instant};

fn main() -> std::io::Result<()> {
    sluice_fn::serve(|input| {
        let ms = input.get("ms").and_then(|v| v.as_f64()).unwrap_or(0.0);
        if !(ms.is_finite() && (0.0..=600_000.0).contains(&ms)) {
            return Err(format!("ms must be in 0..=600000, got {ms}"));
        }
        let until = Instant::now() + Duration::from_secs_f64(ms / 1e3);
        let mut x: u64 = 1;
        while Instant::now() < until {
            for _ in 0..1_000 {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
            }
        }
        std::hint::black_box(x);
        Ok(serde_json::json!({ "spun_ms": ms }))
    })
}

//! A CPU-bound Sluice function: input `{"n": N}` → `{"primes": k}`, the number of primes below `N`,
//! counted with a sieve of Eratosthenes (`N` at most 100,000,000). Run it with `SLUICE_SOCKET=<path>`.

use serde_json::{json, Value};

/// Largest accepted `n` (the sieve takes `n` bytes).
const MAX_N: u64 = 100_000_000;

/// Number of primes strictly below `n`.
fn count_primes(n: usize) -> usize {
    if n < 3 {
        return 0;
    }
    let mut composite = vec![false; n];
    let mut count = 0;
    for i in 2..n {
        if composite[i] {
            continue;
        }
        count += 1;
        let mut j = i.saturating_mul(i);
        while j < n {
            composite[j] = true;
            j += i;
        }
    }
    count
}

fn handle(input: Value) -> Result<Value, String> {
    let n = input
        .get("n")
        .and_then(Value::as_u64)
        .ok_or("input must be {\"n\": <non-negative integer>}")?;
    if n > MAX_N {
        return Err(format!("n must be at most {MAX_N}"));
    }
    Ok(json!({ "primes": count_primes(n as usize) }))
}

fn main() -> std::io::Result<()> {
    sluice_fn::serve(handle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_primes() {
        assert_eq!(count_primes(0), 0);
        assert_eq!(count_primes(2), 0);
        assert_eq!(count_primes(3), 1);
        assert_eq!(count_primes(100), 25);
        assert_eq!(count_primes(1_000_000), 78_498);
    }

    #[test]
    fn refuses_bad_input() {
        assert!(handle(json!({})).is_err());
        assert!(handle(json!({"n": -1})).is_err());
        assert!(handle(json!({"n": MAX_N + 1})).is_err());
        assert_eq!(handle(json!({"n": 10})).unwrap(), json!({"primes": 4}));
    }
}

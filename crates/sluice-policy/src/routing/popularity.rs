//! The CH-RLU popularity gate's input: arrivals per key over the last full second, the rule the
//! cluster router applies (a key is popular above a threshold of arrivals per second).

use crate::placement::Key;
use std::collections::HashMap;

#[derive(Copy, Clone, Debug, Default)]
struct Rate {
    window: u64,
    count: u32,
    last: u32,
}

/// Per-key arrival counts in one-second windows.
#[derive(Clone, Debug)]
pub struct Popularity {
    threshold: f64,
    rates: HashMap<Key, Rate>,
}

impl Popularity {
    /// A counter that calls a key popular above `threshold` arrivals per second.
    pub fn new(threshold: f64) -> Self {
        Popularity {
            threshold,
            rates: HashMap::new(),
        }
    }

    /// Counts an arrival of `key` in second `now_s`; whether the key is popular: more than the
    /// threshold arrivals in the previous full second or so far in this one.
    pub fn arrive(&mut self, key: Key, now_s: u64) -> bool {
        let r = self.rates.entry(key).or_default();
        if r.window != now_s {
            r.last = if r.window + 1 == now_s { r.count } else { 0 };
            r.window = now_s;
            r.count = 0;
        }
        r.count += 1;
        f64::from(r.last.max(r.count)) > self.threshold
    }
}

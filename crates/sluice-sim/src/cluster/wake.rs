//! The cluster's wake-up queue: each worker's next instant to be stepped, at most one per
//! worker, earliest first (ties to the lowest worker id). An indexed binary heap: bringing a
//! worker's wake-up forward moves its entry instead of adding one, so the heap never holds more
//! entries than workers and no stale entry is ever popped.

use sluice_core::Time;

/// Not queued.
const NONE: u32 = u32::MAX;

/// Wake-ups by `(time, worker)`, at most one per worker.
#[derive(Debug, Default)]
pub(super) struct WakeQueue {
    heap: Vec<(Time, u32)>,
    /// Each worker's index in `heap`, or [`NONE`].
    pos: Vec<u32>,
}

impl WakeQueue {
    /// Wakes worker `w` at `at` unless it is already due no later.
    pub(super) fn wake(&mut self, w: u32, at: Time) {
        let wi = w as usize;
        if self.pos.len() <= wi {
            self.pos.resize(wi + 1, NONE);
        }
        let i = match self.pos[wi] {
            NONE => {
                self.heap.push((at, w));
                self.heap.len() - 1
            }
            i if at < self.heap[i as usize].0 => {
                self.heap[i as usize].0 = at;
                i as usize
            }
            _ => return,
        };
        self.sift_up(i);
    }

    /// The earliest wake-up.
    pub(super) fn peek(&self) -> Option<(Time, u32)> {
        self.heap.first().copied()
    }

    /// Removes the earliest wake-up.
    pub(super) fn pop(&mut self) -> Option<(Time, u32)> {
        let top = *self.heap.first()?;
        let last = self.heap.pop()?;
        self.pos[top.1 as usize] = NONE;
        if !self.heap.is_empty() {
            self.heap[0] = last;
            self.pos[last.1 as usize] = 0;
            self.sift_down(0);
        }
        Some(top)
    }

    fn sift_up(&mut self, mut i: usize) {
        let e = self.heap[i];
        while i > 0 {
            let parent = (i - 1) / 2;
            if self.heap[parent] <= e {
                break;
            }
            self.heap[i] = self.heap[parent];
            self.pos[self.heap[i].1 as usize] = i as u32;
            i = parent;
        }
        self.heap[i] = e;
        self.pos[e.1 as usize] = i as u32;
    }

    fn sift_down(&mut self, mut i: usize) {
        let e = self.heap[i];
        let n = self.heap.len();
        loop {
            let left = 2 * i + 1;
            if left >= n {
                break;
            }
            let right = left + 1;
            let child = if right < n && self.heap[right] < self.heap[left] {
                right
            } else {
                left
            };
            if e <= self.heap[child] {
                break;
            }
            self.heap[i] = self.heap[child];
            self.pos[self.heap[i].1 as usize] = i as u32;
            i = child;
        }
        self.heap[i] = e;
        self.pos[e.1 as usize] = i as u32;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;

    /// The queue the cluster used before: a heap of every wake-up pushed, stale ones (not the
    /// worker's current wake-up) skipped when popped.
    #[derive(Default)]
    struct Lazy {
        scheduled: Vec<Option<Time>>,
        heap: BinaryHeap<Reverse<(Time, u32)>>,
    }

    impl Lazy {
        fn wake(&mut self, w: u32, at: Time) {
            if self.scheduled.len() <= w as usize {
                self.scheduled.resize(w as usize + 1, None);
            }
            let s = &mut self.scheduled[w as usize];
            if s.is_none_or(|t| at < t) {
                *s = Some(at);
                self.heap.push(Reverse((at, w)));
            }
        }

        fn pop(&mut self) -> Option<(Time, u32)> {
            while let Some(Reverse((t, w))) = self.heap.pop() {
                if self.scheduled[w as usize] == Some(t) {
                    self.scheduled[w as usize] = None;
                    return Some((t, w));
                }
            }
            None
        }
    }

    #[test]
    fn pops_what_the_lazy_heap_pops() {
        let (mut q, mut lazy) = (WakeQueue::default(), Lazy::default());
        let mut x = 7u64;
        for _ in 0..20_000 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            if (x >> 60) < 9 {
                let w = ((x >> 20) % 50) as u32;
                let at = Time::from_micros((x >> 33) % 200);
                q.wake(w, at);
                lazy.wake(w, at);
            } else {
                let popped = q.pop();
                assert_eq!(popped, lazy.pop());
                // What the cluster does after a step: the worker's next event.
                if let Some((t, w)) = popped.filter(|_| x & 1 == 1) {
                    let at = Time::from_micros(t.as_micros() + (x >> 40) % 30);
                    q.wake(w, at);
                    lazy.wake(w, at);
                }
            }
            let head = q.peek();
            assert!(q.heap.iter().all(|e| Some(*e) >= head));
        }
        while let Some(p) = q.pop() {
            assert_eq!(Some(p), lazy.pop());
        }
        assert_eq!(lazy.pop(), None);
    }
}

//! Panics inside redb become errors without noise: [`catch`] runs a store call under
//! `catch_unwind` with a thread-local flag set, and the panic hook [`install`]ed once logs a
//! panic raised under that flag as one `tracing` line (no backtrace), passing every other panic
//! to the hook that was there before.

use std::any::Any;
use std::cell::Cell;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Once;

thread_local! {
    static IN_STORE: Cell<bool> = const { Cell::new(false) };
}

/// Installs the hook (once per process).
pub(super) fn install() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if IN_STORE.with(Cell::get) {
                let at = info
                    .location()
                    .map(|l| format!(" at {l}"))
                    .unwrap_or_default();
                tracing::error!("the store's database library panicked{at}; reported as damage");
            } else {
                previous(info);
            }
        }));
    });
}

/// Runs `f`, catching a panic (quietly, once [`install`]ed).
pub(super) fn catch<T>(f: impl FnOnce() -> T) -> Result<T, Box<dyn Any + Send>> {
    let was = IN_STORE.with(|c| c.replace(true));
    let out = panic::catch_unwind(AssertUnwindSafe(f));
    IN_STORE.with(|c| c.set(was));
    out
}

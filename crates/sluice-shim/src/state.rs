//! Process-wide state: the registry of live allocations, the budget, and the control socket
//! path, read from the environment on first use:
//!
//! - `SLUICE_SHIM_SOCKET=<path>`: serve the control protocol on this Unix socket, from the first
//!   interposed allocation on;
//! - `SLUICE_SHIM_BUDGET_BYTES=<n>`: report `total = n` and `free = n − allocated` from
//!   `cuMemGetInfo` (unset or not a number: the driver's own figures).

use crate::driver::Driver;
use crate::registry::{Allocation, Registry};
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard, OnceLock};

/// Environment variable naming the control socket's path; unset or empty: no control socket.
pub const SOCKET_ENV: &str = "SLUICE_SHIM_SOCKET";
/// Environment variable holding the memory budget, bytes (a decimal integer).
pub const BUDGET_ENV: &str = "SLUICE_SHIM_BUDGET_BYTES";

/// Everything the interposed calls and the control thread share.
pub struct State {
    registry: Mutex<Registry>,
    budget: Option<u64>,
    socket: Option<PathBuf>,
}

static STATE: OnceLock<State> = OnceLock::new();

/// The process's state, created from the environment on first use.
pub fn get() -> &'static State {
    STATE.get_or_init(|| State {
        registry: Mutex::new(Registry::default()),
        budget: std::env::var(BUDGET_ENV)
            .ok()
            .and_then(|v| v.trim().parse().ok()),
        socket: std::env::var_os(SOCKET_ENV)
            .filter(|p| !p.is_empty())
            .map(PathBuf::from),
    })
}

impl State {
    /// The registry, even if a thread panicked while holding it (its updates are atomic).
    pub fn registry(&self) -> MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The budget `cuMemGetInfo` reports as total memory, bytes; `None` when unset or not a
    /// number.
    pub fn budget(&self) -> Option<u64> {
        self.budget
    }

    /// The control socket's path, if one was asked for.
    pub fn socket(&self) -> Option<&PathBuf> {
        self.socket.as_ref()
    }

    /// Records a successful allocation in the current context and makes sure the control
    /// socket is served.
    pub fn record(&'static self, driver: &Driver, ptr: u64, bytes: u64, managed: bool) {
        let context = driver.current_context() as usize;
        self.registry().insert(
            ptr,
            Allocation {
                bytes,
                context,
                managed,
            },
        );
        crate::server::ensure_started(self);
    }

    /// Forgets an allocation before it is freed.
    pub fn forget(&self, ptr: u64) -> Option<Allocation> {
        self.registry().remove(ptr)
    }

    /// Puts back an allocation whose free failed.
    pub fn restore(&self, ptr: u64, a: Allocation) {
        self.registry().insert(ptr, a);
    }

    /// Whether the shim recorded `ptr`.
    pub fn knows(&self, ptr: u64) -> bool {
        self.registry().contains(ptr)
    }
}

//! Dense identifiers. Functions are numbered from zero so that per-function tables are vectors.

use serde::{Deserialize, Serialize};
use std::fmt;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $inner:ty, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        pub struct $name(pub $inner);

        impl $name {
            /// The id as a table index.
            pub fn index(self) -> usize {
                self.0 as usize
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!($prefix, "{}"), self.0)
            }
        }
    };
}

id_type!(
    /// A registered function (one MQFQ flow). Dense: the n-th function registered is `FunctionId(n)`.
    FunctionId, u32, "fn#"
);
id_type!(
    /// One invocation, unique within an engine run.
    InvocationId, u64, "inv#"
);
id_type!(
    /// A schedulable device: a whole GPU or one MIG instance.
    GpuId, u16, "gpu#"
);
id_type!(
    /// A sandbox (warm container / function process), unique within an engine run.
    SandboxId, u64, "sb#"
);

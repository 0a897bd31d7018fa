//! An invocation as the queueing policies see it.

use crate::{Dur, FunctionId, InvocationId, Time};
use serde::{Deserialize, Serialize};

/// One request to run a function. `est_service` is the service-time estimate taken when it was
/// enqueued; policies order by it but never change it.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invocation {
    /// Unique id of this invocation within the engine run.
    pub id: InvocationId,
    /// The function to run; also the MQFQ flow the invocation is queued on.
    pub func: FunctionId,
    /// When the request arrived, on the engine's clock.
    pub arrival: Time,
    /// Estimated service time (the function's GPU run time), fixed at enqueue time.
    pub est_service: Dur,
}

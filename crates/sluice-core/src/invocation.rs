//! An invocation as the queueing policies see it.

use crate::{Dur, FunctionId, InvocationId, Time};
use serde::{Deserialize, Serialize};

/// One request to run a function. `est_service` is the service-time estimate taken when it was
/// enqueued; policies order by it but never change it.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invocation {
    pub id: InvocationId,
    pub func: FunctionId,
    pub arrival: Time,
    pub est_service: Dur,
}

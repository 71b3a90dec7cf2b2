//! Errors of the store, the scheduler and the orchestrator as gRPC statuses.
//!
//! The code says what the client can do about it (the CLI turns it into its
//! exit code); the message is the error's own text, which names the thing and
//! the fix. None of these errors carries a secret: tokens never reach them,
//! and plugins may not put secrets in theirs (WIT API rule).

use super::convert::Invalid;
use crate::jobs::SchedulerError;
use crate::store::StoreError;
use crate::workflow::OrchestratorError;
use tonic::{Code, Status};

/// A store error: NotFound → NOT_FOUND, a taken name → ALREADY_EXISTS, other
/// conflicts → FAILED_PRECONDITION, Invalid → INVALID_ARGUMENT, else INTERNAL.
pub fn store(e: &StoreError) -> Status {
    let code = match e {
        StoreError::NotFound { .. } => Code::NotFound,
        StoreError::Conflict(message) if message.contains("already exists") => Code::AlreadyExists,
        StoreError::Conflict(_) => Code::FailedPrecondition,
        StoreError::Invalid(_) => Code::InvalidArgument,
        StoreError::Open { .. }
        | StoreError::NewerSchema { .. }
        | StoreError::Database { .. }
        | StoreError::Backup { .. } => Code::Internal,
    };
    Status::new(code, e.to_string())
}

/// A scheduler error: Refused and Finished → FAILED_PRECONDITION, NotFound →
/// NOT_FOUND, an unknown kind → INTERNAL (every RPC names a kind the server runs).
pub fn scheduler(e: &SchedulerError) -> Status {
    match e {
        SchedulerError::Store(inner) => store(inner),
        SchedulerError::NotFound(_) => Status::not_found(e.to_string()),
        SchedulerError::Refused(_) | SchedulerError::Finished(_) => {
            Status::failed_precondition(e.to_string())
        }
        SchedulerError::UnknownKind(_) => Status::internal(e.to_string()),
    }
}

/// An orchestrator error: NotFound, Refused (→ FAILED_PRECONDITION) and
/// Invalid as such; a plugin's failure → INTERNAL with the plugin's message.
pub fn orchestrator(e: &OrchestratorError) -> Status {
    match e {
        OrchestratorError::NotFound(m) => Status::not_found(m.clone()),
        OrchestratorError::Refused(m) => Status::failed_precondition(m.clone()),
        OrchestratorError::Invalid(m) => Status::invalid_argument(m.clone()),
        OrchestratorError::Store(inner) => store(inner),
        OrchestratorError::Scheduler(inner) => scheduler(inner),
        OrchestratorError::Plugin(m) => Status::internal(m.clone()),
    }
}

/// A request that does not make a valid record.
pub fn invalid(e: &Invalid) -> Status {
    Status::invalid_argument(e.to_string())
}

impl From<StoreError> for Status {
    fn from(e: StoreError) -> Status {
        store(&e)
    }
}

impl From<SchedulerError> for Status {
    fn from(e: SchedulerError) -> Status {
        scheduler(&e)
    }
}

impl From<OrchestratorError> for Status {
    fn from(e: OrchestratorError) -> Status {
        orchestrator(&e)
    }
}

impl From<Invalid> for Status {
    fn from(e: Invalid) -> Status {
        invalid(&e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_follow_the_kind_of_error() {
        let missing = StoreError::NotFound {
            what: "group",
            name: "PG9".into(),
        };
        assert_eq!(store(&missing).code(), Code::NotFound);
        assert!(store(&missing).message().contains("PG9"));
        assert_eq!(
            store(&StoreError::Conflict("group PG1 already exists".into())).code(),
            Code::AlreadyExists
        );
        assert_eq!(
            store(&StoreError::Conflict("item is failed over".into())).code(),
            Code::FailedPrecondition
        );
        assert_eq!(
            orchestrator(&OrchestratorError::Refused("split brain".into())).code(),
            Code::FailedPrecondition
        );
        assert_eq!(
            scheduler(&SchedulerError::NotFound(7)).code(),
            Code::NotFound
        );
    }
}

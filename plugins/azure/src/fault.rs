//! Azure's error answers as the API's typed errors.
//!
//! ARM answers `{"error": {"code", "message"}}` (also inside a failed
//! long-running operation); Blob storage answers `<Error><Code>` XML and the
//! `x-ms-error-code` header. The status decides the kind; a few codes refine
//! it (`AuthorizationFailed` names the missing action, an IP already in use
//! is a conflict).

use homeward_sdk::Error;
use homeward_sdk::http::Response;

/// Longest service message kept in an error.
const MAX_MESSAGE: usize = 400;

/// The code and message of an error answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceError {
    /// Error code (`ResourceNotFound`, `BlobNotFound`...), empty when none.
    pub code: String,
    /// Message, empty when none.
    pub message: String,
}

impl ServiceError {
    /// Reads the code and message from an ARM JSON or Storage XML body.
    pub fn from_response(response: &Response) -> ServiceError {
        let mut found = ServiceError::default();
        if let Ok(json) = serde_json::from_slice::<serde_json::Value>(&response.body) {
            found = Self::from_json(&json);
        } else if let Ok(text) = std::str::from_utf8(&response.body)
            && let Ok(doc) = roxmltree::Document::parse(text)
        {
            let child = |name: &str| {
                doc.root_element()
                    .children()
                    .find(|n| n.has_tag_name(name))
                    .and_then(|n| n.text())
                    .unwrap_or_default()
                    .to_string()
            };
            found.code = child("Code");
            found.message = child("Message");
        }
        if found.code.is_empty()
            && let Some(code) = response.header("x-ms-error-code")
        {
            found.code = code.to_string();
        }
        found
    }

    /// Reads `{"error": {"code", "message"}}` (or a bare `{"code", "message"}`).
    pub fn from_json(json: &serde_json::Value) -> ServiceError {
        let error = json.get("error").unwrap_or(json);
        let text = |key: &str| {
            error
                .get(key)
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_string()
        };
        ServiceError {
            code: text("code"),
            message: text("message"),
        }
    }

    /// `code: message`, shortened, on one line.
    pub fn describe(&self) -> String {
        let message: String = self
            .message
            .split(['\r', '\n'])
            .next()
            .unwrap_or_default()
            .chars()
            .take(MAX_MESSAGE)
            .collect();
        match (self.code.is_empty(), message.is_empty()) {
            (true, true) => "no error details".to_string(),
            (false, true) => self.code.clone(),
            (true, false) => message,
            (false, false) => format!("{}: {message}", self.code),
        }
    }

    /// The actions an `AuthorizationFailed` message says the caller may not
    /// perform (`... does not have authorization to perform action 'X' over scope ...`).
    pub fn missing_actions(&self) -> Vec<String> {
        let mut actions = Vec::new();
        let mut rest = self.message.as_str();
        while let Some(at) = rest.find("perform action '") {
            rest = &rest[at + "perform action '".len()..];
            let Some(end) = rest.find('\'') else { break };
            actions.push(rest[..end].to_string());
            rest = &rest[end..];
        }
        actions
    }
}

/// Codes of a 400 answer that mean the request clashes with current state.
const CONFLICT_CODES: &[&str] = &[
    "PrivateIPAddressInUse",
    "PrivateIPAddressIsAllocated",
    "OperationNotAllowed",
    "DiskAttachedToAnotherVM",
    "LeaseIdMissing",
    "LeaseAlreadyPresent",
    "SnapshotsPresent",
];

/// The typed error for an error answer with `status` about `what` (e.g.
/// "virtual machine `vm1`") from `service` (e.g. "ARM").
pub fn to_error(status: u16, error: &ServiceError, service: &str, what: &str) -> Error {
    let details = error.describe();
    if CONFLICT_CODES
        .iter()
        .any(|c| c.eq_ignore_ascii_case(&error.code))
    {
        return Error::conflict(format!("{what}: {service} refused ({details})"));
    }
    match status {
        400 => Error::invalid_input(format!("{what}: {service} refused the request ({details})")),
        401 => Error::permission_denied(
            format!(
                "{what}: {service} did not accept the credentials ({details}): check config \
                 `client-id`, `tenant-id` and the secrets"
            ),
            &[],
        ),
        403 => {
            let missing = error.missing_actions();
            let refs: Vec<&str> = missing.iter().map(String::as_str).collect();
            let fix = if missing.is_empty() {
                "check the principal's role assignments or the storage credential".to_string()
            } else {
                "assign the principal a role with the missing actions (e.g. Contributor on the \
                 resource group)"
                    .to_string()
            };
            Error::permission_denied(
                format!("{what}: {service} refused ({details}): {fix}"),
                &refs,
            )
        }
        404 => Error::not_found(format!("{what} does not exist ({details})")),
        409 | 412 => Error::conflict(format!("{what}: {service} refused ({details})")),
        429 | 503 | 500 | 502 | 504 => Error::unavailable(
            format!("{what}: {service} answered {status} ({details}); try again later"),
            None,
        ),
        501 => Error::unsupported(format!(
            "{what}: {service} does not support this ({details})"
        )),
        _ => Error::internal(format!(
            "{what}: {service} answered an unexpected {status} ({details})"
        )),
    }
}

/// The typed error for `response`.
pub fn from_response(response: &Response, service: &str, what: &str) -> Error {
    to_error(
        response.status,
        &ServiceError::from_response(response),
        service,
        what,
    )
}

/// The typed error for a failed long-running operation's `error` object,
/// which has a code but no status.
pub fn from_operation(error: &ServiceError, what: &str) -> Error {
    let code = error.code.as_str();
    let status = if code.contains("NotFound") {
        404
    } else if code == "AuthorizationFailed" {
        403
    } else if code.contains("Conflict") || code == "OperationNotAllowed" {
        409
    } else if code.starts_with("Invalid") || code == "BadRequest" {
        400
    } else {
        0
    };
    to_error(status, error, "the operation", what)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorization_failed_names_the_action() {
        let e = ServiceError {
            code: "AuthorizationFailed".into(),
            message: "The client 'abc' with object id 'abc' does not have authorization to \
                      perform action 'Microsoft.Compute/virtualMachines/deallocate/action' over \
                      scope '/subscriptions/x' or the scope is invalid."
                .into(),
        };
        assert_eq!(
            e.missing_actions(),
            ["Microsoft.Compute/virtualMachines/deallocate/action"]
        );
        match to_error(403, &e, "ARM", "deallocate") {
            Error::PermissionDenied(p) => {
                assert_eq!(p.missing_privileges.len(), 1);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn statuses_map_to_kinds() {
        let e = ServiceError::default();
        assert!(matches!(to_error(404, &e, "ARM", "x"), Error::NotFound(_)));
        assert!(matches!(to_error(409, &e, "ARM", "x"), Error::Conflict(_)));
        assert!(matches!(
            to_error(400, &e, "ARM", "x"),
            Error::InvalidInput(_)
        ));
        assert!(matches!(
            to_error(500, &e, "ARM", "x"),
            Error::Unavailable(_)
        ));
        let in_use = ServiceError {
            code: "PrivateIPAddressInUse".into(),
            message: String::new(),
        };
        assert!(matches!(
            to_error(400, &in_use, "ARM", "x"),
            Error::Conflict(_)
        ));
    }
}

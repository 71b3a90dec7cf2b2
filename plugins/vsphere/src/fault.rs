//! vim25 faults and transport failures as Homeward's typed errors.
//!
//! A vSphere fault arrives two ways: as a SOAP fault (`<detail><XFault
//! xsi:type="X">`) when a method fails at once, and as a task's `info.error`
//! (`<fault xsi:type="X">`) when a task fails later. Both carry the fault's
//! type name, which decides the error kind; the endpoint's message is kept so
//! the operator sees what vSphere said.

use crate::xml::Element;
use homeward_sdk::Error;

/// A fault: its vim25 type name, vSphere's message and its detail element.
#[derive(Debug, Clone)]
pub struct Fault {
    /// The vim25 fault type (`InvalidLogin`, `NoPermission`...).
    pub kind: String,
    /// The endpoint's message (`faultstring` or `localizedMessage`).
    pub message: String,
    /// The fault's detail element, when there is one.
    pub detail: Option<Element>,
}

impl Fault {
    /// The fault of a SOAP `Fault` element, if it is one.
    pub fn from_soap(fault: &Element) -> Fault {
        let message = fault
            .text_at(&["faultstring"])
            .unwrap_or_default()
            .trim()
            .to_string();
        let detail = fault
            .child("detail")
            .and_then(|d| d.children.first())
            .cloned();
        let kind = detail
            .as_ref()
            .map(|d| {
                d.xsi_type
                    .clone()
                    .unwrap_or_else(|| d.name.trim_end_matches("Fault").to_string())
            })
            .unwrap_or_else(|| "SoapFault".to_string());
        Fault {
            kind,
            message,
            detail,
        }
    }

    /// The fault of a task's `info.error` (a `LocalizedMethodFault`).
    pub fn from_localized(error: &Element) -> Fault {
        let detail = error.child("fault").cloned();
        let kind = detail
            .as_ref()
            .and_then(|d| d.xsi_type.clone())
            .unwrap_or_else(|| "MethodFault".to_string());
        let message = error
            .text_at(&["localizedMessage"])
            .unwrap_or_default()
            .trim()
            .to_string();
        Fault {
            kind,
            message,
            detail,
        }
    }

    /// The typed error for this fault, with `what` saying which call failed.
    pub fn into_error(self, what: &str) -> Error {
        let said = if self.message.is_empty() {
            String::new()
        } else {
            format!(": {}", self.message)
        };
        let kind = self.kind.as_str();
        match kind {
            "InvalidLogin" => Error::permission_denied(
                format!(
                    "{what}: vSphere refused the login (InvalidLogin){said}; check `user` and the secret `password` in the plugin's settings"
                ),
                &[],
            ),
            "NotAuthenticated" | "NoPermission" => {
                let privilege = self
                    .detail
                    .as_ref()
                    .and_then(|d| d.text_at(&["privilegeId"]))
                    .map(str::trim)
                    .filter(|p| !p.is_empty())
                    .map(str::to_string);
                let missing: Vec<&str> = privilege.as_deref().into_iter().collect();
                let object = self
                    .detail
                    .as_ref()
                    .and_then(|d| d.moref_at(&["object"]))
                    .map(|m| format!(" on {} {}", m.kind, m.value))
                    .unwrap_or_default();
                Error::permission_denied(
                    format!(
                        "{what}: vSphere denied it ({kind}{object}){said}; grant the account the privilege it names"
                    ),
                    &missing,
                )
            }
            "ManagedObjectNotFound" | "NotFound" | "FileNotFound" => {
                Error::not_found(format!("{what}: the object is gone ({kind}){said}"))
            }
            "InvalidPowerState"
            | "InvalidState"
            | "InvalidHostState"
            | "TaskInProgress"
            | "DuplicateName"
            | "AlreadyExists"
            | "FileAlreadyExists"
            | "ResourceInUse"
            | "ToolsUnavailable"
            | "ConcurrentAccess"
            | "SnapshotFault"
            | "InsufficientResourcesFault"
            | "FileLocked"
            | "VmConfigIncompatibleForFaultTolerance" => Error::conflict(format!(
                "{what}: vSphere refused it in the current state ({kind}){said}"
            )),
            "InvalidArgument"
            | "InvalidRequest"
            | "InvalidDeviceSpec"
            | "InvalidDatastorePath"
            | "InvalidName"
            | "InvalidType"
            | "InvalidProperty"
            | "InvalidController"
            | "InvalidDeviceBacking" => Error::invalid_input(format!(
                "{what}: vSphere rejected the request ({kind}){said}"
            )),
            "NotSupported"
            | "NotImplemented"
            | "MethodNotFound"
            | "RestrictedVersion"
            | "LicenseRestricted"
            | "DisallowedOperationOnFailoverHost" => Error::unsupported(format!(
                "{what}: the endpoint does not allow it ({kind}){said}"
            )),
            "HostNotConnected" | "HostCommunication" | "HostNotReachable" | "RequestCanceled"
            | "Timedout" | "SystemError" => Error::unavailable(
                format!("{what}: the endpoint cannot do it now ({kind}){said}"),
                None,
            ),
            _ => Error::internal(format!("{what}: vSphere fault {kind}{said}")),
        }
    }
}

/// Removes every occurrence of `secret` from an error's message: the
/// endpoint's own text is quoted in errors, and an endpoint that echoes what
/// it was sent must not make a password visible.
pub fn scrub(error: Error, secret: &str) -> Error {
    if secret.is_empty() {
        return error;
    }
    let clean = |s: String| s.replace(secret, "<redacted>");
    match error {
        Error::NotFound(m) => Error::NotFound(clean(m)),
        Error::PermissionDenied(mut p) => {
            p.message = clean(p.message);
            Error::PermissionDenied(p)
        }
        Error::Unsupported(m) => Error::Unsupported(clean(m)),
        Error::InvalidInput(m) => Error::InvalidInput(clean(m)),
        Error::Conflict(m) => Error::Conflict(clean(m)),
        Error::Unavailable(mut u) => {
            u.message = clean(u.message);
            Error::Unavailable(u)
        }
        Error::Internal(m) => Error::Internal(clean(m)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn soap_fault(detail: &str) -> Fault {
        let xml = format!(
            r#"<Fault xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><faultcode>ServerFaultCode</faultcode><faultstring>said</faultstring><detail>{detail}</detail></Fault>"#
        );
        Fault::from_soap(&Element::parse(&xml).unwrap())
    }

    #[test]
    fn no_permission_names_the_privilege() {
        let f = soap_fault(
            r#"<NoPermissionFault xmlns="urn:vim25" xsi:type="NoPermission"><object type="VirtualMachine">vm-1</object><privilegeId>VirtualMachine.Interact.PowerOn</privilegeId></NoPermissionFault>"#,
        );
        match f.into_error("power on") {
            Error::PermissionDenied(p) => {
                assert_eq!(
                    p.missing_privileges,
                    vec!["VirtualMachine.Interact.PowerOn"]
                );
                assert!(p.message.contains("vm-1"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn kinds_map_to_error_kinds() {
        let kind = |k: &str| {
            soap_fault(&format!(r#"<{k}Fault xsi:type="{k}"></{k}Fault>"#)).into_error("x")
        };
        assert!(matches!(kind("InvalidLogin"), Error::PermissionDenied(_)));
        assert!(matches!(kind("ManagedObjectNotFound"), Error::NotFound(_)));
        assert!(matches!(kind("InvalidPowerState"), Error::Conflict(_)));
        assert!(matches!(kind("DuplicateName"), Error::Conflict(_)));
        assert!(matches!(kind("HostCommunication"), Error::Unavailable(_)));
        match kind("SomethingNew") {
            Error::Internal(m) => assert!(m.contains("SomethingNew")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn scrub_removes_the_secret() {
        let e = scrub(Error::internal("echo hunter2 back"), "hunter2");
        assert!(matches!(e, Error::Internal(m) if m == "echo <redacted> back"));
    }
}

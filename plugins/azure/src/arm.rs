//! Azure Resource Manager: resource ids, and requests with a bearer token
//! and an `api-version`.
//!
//! Ids are `/subscriptions/<sub>/resourceGroups/<rg>/providers/<namespace>/
//! <type>/<name>[/<child type>/<child name>]`; as in ARM, the fixed
//! segments, namespaces and types compare without regard to case.

use crate::auth;
use crate::fault;
use crate::lro;
use crate::settings::Settings;
use crate::transport::Transport;
use homeward_sdk::Error;
use homeward_sdk::http::{Method, Request, Response};
use serde_json::Value;

/// `Microsoft.Compute` API version of every compute request.
pub const COMPUTE_API: &str = "2023-03-01";
/// `Microsoft.Network` API version of every network request.
pub const NETWORK_API: &str = "2023-05-01";
/// `Microsoft.Resources` API version (resource groups, in `connect`).
pub const RESOURCES_API: &str = "2021-04-01";

pub use homeward_arm_id::ResourceId;

/// Parses `id` and checks that it names a `kind` (`what` names it for the
/// message, e.g. "virtual machine").
pub fn parse_kind(id: &str, kind: &str, what: &str) -> Result<ResourceId, Error> {
    let parsed = ResourceId::parse(id)?;
    if !parsed.is_kind(kind) || parsed.child.is_some() {
        return Err(Error::invalid_input(format!(
            "`{}` is not a {what} id ({kind})",
            id.escape_debug()
        )));
    }
    Ok(parsed)
}

/// ARM requests for one plugin call.
pub struct Arm<'a> {
    /// The settings of this call.
    pub settings: &'a Settings,
    /// Its transport (deadline, retries).
    pub transport: &'a Transport,
}

impl<'a> Arm<'a> {
    /// ARM for one call.
    pub fn new(settings: &'a Settings, transport: &'a Transport) -> Arm<'a> {
        Arm {
            settings,
            transport,
        }
    }

    /// The absolute URL of `path` (an id, or an id plus `/action`) at `api`.
    pub fn url(&self, path: &str, api: &str, query: &str) -> String {
        let sep = if path.contains('?') { '&' } else { '?' };
        format!(
            "{}{path}{sep}api-version={api}{query}",
            self.settings.arm_endpoint
        )
    }

    /// Sends one request with a bearer token; a token ARM refuses (401) is
    /// renewed once.
    pub fn send(&self, method: Method, url: &str, body: Option<&Value>) -> Result<Response, Error> {
        let mut renewed = false;
        loop {
            let token = auth::token(self.settings, self.transport)?;
            let mut request = Request::new(method, url.to_string())
                .header("authorization", &format!("Bearer {token}"))
                .header("accept", "application/json");
            if let Some(body) = body {
                let bytes = serde_json::to_vec(body)
                    .map_err(|e| Error::internal(format!("cannot encode a request body: {e}")))?;
                request = request
                    .header("content-type", "application/json")
                    .body(bytes);
            }
            let response = self.transport.send("ARM", &request)?;
            if response.status == 401 && !renewed {
                auth::forget();
                renewed = true;
                continue;
            }
            return Ok(response);
        }
    }

    /// GETs a resource as JSON; `None` when it does not exist (404).
    pub fn get_optional(
        &self,
        path: &str,
        api: &str,
        query: &str,
        what: &str,
    ) -> Result<Option<Value>, Error> {
        let response = self.send(Method::Get, &self.url(path, api, query), None)?;
        match response.status {
            200 => json_body(&response, what).map(Some),
            404 => Ok(None),
            _ => Err(fault::from_response(&response, "ARM", what)),
        }
    }

    /// GETs a resource as JSON; `not-found` naming `what` when it does not exist.
    pub fn get(&self, path: &str, api: &str, query: &str, what: &str) -> Result<Value, Error> {
        let response = self.send(Method::Get, &self.url(path, api, query), None)?;
        match response.status {
            200 => json_body(&response, what),
            _ => Err(fault::from_response(&response, "ARM", what)),
        }
    }

    /// Sends a change (PUT, POST action, DELETE) and waits for its
    /// long-running operation to finish; the final body, when there is one.
    pub fn change(
        &self,
        method: Method,
        path: &str,
        api: &str,
        body: Option<&Value>,
        what: &str,
    ) -> Result<Option<Value>, Error> {
        let response = self.send(method, &self.url(path, api, ""), body)?;
        if !(200..300).contains(&response.status) {
            return Err(fault::from_response(&response, "ARM", what));
        }
        lro::wait(self, &response, what)?;
        Ok(serde_json::from_slice(&response.body).ok())
    }
}

/// The JSON body of a 200 answer.
pub fn json_body(response: &Response, what: &str) -> Result<Value, Error> {
    serde_json::from_slice(&response.body).map_err(|e| {
        Error::internal(format!(
            "ARM answered {what} with a body that is not JSON: {e}"
        ))
    })
}

/// A string at a JSON pointer, or "".
pub fn text<'v>(json: &'v Value, pointer: &str) -> &'v str {
    json.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_parse_case_insensitively_and_keep_names() {
        let id = ResourceId::parse(
            "/SUBSCRIPTIONS/s1/resourcegroups/rg/providers/Microsoft.Network/virtualNetworks/v/subnets/app",
        )
        .unwrap();
        assert_eq!(id.name, "v");
        assert_eq!(id.child, Some(("subnets".into(), "app".into())));
        assert_eq!(id.parent().child, None);
        assert!(ResourceId::parse("subscriptions/x").is_err());
        assert!(ResourceId::parse("/subscriptions/s/resourceGroups/rg/providers/A/b/c?x").is_err());
        assert!(
            parse_kind(
                "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/disks/d",
                "Microsoft.Compute/virtualMachines",
                "virtual machine"
            )
            .is_err()
        );
    }
}

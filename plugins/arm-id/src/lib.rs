//! Azure Resource Manager ids: `/subscriptions/<sub>/resourceGroups/<rg>/
//! providers/<namespace>/<type>/<name>[/<child type>/<child name>]`.
//!
//! As in Azure, the fixed segments, the namespace and the types compare
//! without regard to case; names are kept as written. The Azure adapter and
//! the lab cloud parse ids the same way, so one crate holds the parser.

use std::fmt;

/// A parsed resource id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceId {
    /// Subscription id.
    pub subscription: String,
    /// Resource group name.
    pub resource_group: String,
    /// `Microsoft.Compute/virtualMachines`, as written in the id.
    pub kind: String,
    /// The resource's name.
    pub name: String,
    /// A child resource (`subnets`, `app`), when the id names one.
    pub child: Option<(String, String)>,
}

/// Why a string is not a resource id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadId {
    id: String,
    why: &'static str,
}

impl fmt::Display for BadId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "`{}` is not an Azure resource id ({}): use the id as the cloud returned it, \
             /subscriptions/<subscription>/resourceGroups/<group>/providers/<namespace>/<type>/<name>",
            self.id.escape_debug(),
            self.why
        )
    }
}

impl ResourceId {
    /// Parses `id`.
    pub fn parse(id: &str) -> Result<ResourceId, BadId> {
        let bad = |why| BadId {
            id: id.to_string(),
            why,
        };
        let rest = id
            .strip_prefix('/')
            .ok_or_else(|| bad("it does not start with `/`"))?;
        let parts: Vec<&str> = rest.split('/').collect();
        if parts.iter().any(|p| p.is_empty()) {
            return Err(bad("it has an empty segment"));
        }
        if parts.iter().any(|p| p.contains(['?', '#', '%', '\\'])) {
            return Err(bad("it holds `?`, `#`, `%` or `\\`"));
        }
        let [
            subs,
            subscription,
            groups,
            group,
            providers,
            namespace,
            kind,
            name,
            tail @ ..,
        ] = parts.as_slice()
        else {
            return Err(bad("it has too few segments"));
        };
        if !subs.eq_ignore_ascii_case("subscriptions")
            || !groups.eq_ignore_ascii_case("resourceGroups")
            || !providers.eq_ignore_ascii_case("providers")
        {
            return Err(bad(
                "expected subscriptions/…/resourceGroups/…/providers/… segments",
            ));
        }
        let child = match tail {
            [] => None,
            [child_kind, child_name] => Some((child_kind.to_string(), child_name.to_string())),
            _ => return Err(bad("it has segments after the resource that name no child")),
        };
        Ok(ResourceId {
            subscription: subscription.to_string(),
            resource_group: group.to_string(),
            kind: format!("{namespace}/{kind}"),
            name: name.to_string(),
            child,
        })
    }

    /// The id of a top-level resource.
    pub fn build(subscription: &str, group: &str, kind: &str, name: &str) -> String {
        format!("/subscriptions/{subscription}/resourceGroups/{group}/providers/{kind}/{name}")
    }

    /// The canonical path of this id.
    pub fn path(&self) -> String {
        let base = Self::build(
            &self.subscription,
            &self.resource_group,
            &self.kind,
            &self.name,
        );
        match &self.child {
            None => base,
            Some((kind, name)) => format!("{base}/{kind}/{name}"),
        }
    }

    /// The id without its child.
    pub fn parent(&self) -> ResourceId {
        ResourceId {
            child: None,
            ..self.clone()
        }
    }

    /// Whether the id's type is `kind` (case-insensitive).
    pub fn is_kind(&self, kind: &str) -> bool {
        self.kind.eq_ignore_ascii_case(kind)
    }
}

impl From<BadId> for homeward_sdk::Error {
    /// A malformed id is the caller's mistake: `invalid-input`.
    fn from(bad: BadId) -> Self {
        homeward_sdk::Error::invalid_input(bad.to_string())
    }
}

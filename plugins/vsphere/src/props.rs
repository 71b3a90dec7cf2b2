//! Reading properties: `RetrievePropertiesEx` over a `ContainerView` (every
//! object of a type under the root folder) or on one object, following
//! `ContinueRetrievePropertiesEx` tokens until the result is complete.

use crate::client::{self, method};
use crate::xml::{Element, MoRef, leaf};
use homeward_sdk::Error;
use std::collections::BTreeMap;

/// Objects asked for per page.
const PAGE: u32 = 500;
/// Pages followed at most: a bound on a misbehaving endpoint.
const MAX_PAGES: usize = 10_000;

/// One object and the properties it has (unset properties are absent).
#[derive(Debug, Clone)]
pub struct Object {
    /// The object.
    pub obj: MoRef,
    /// Property path → its `val` element.
    pub props: BTreeMap<String, Element>,
}

impl Object {
    /// A property's value element.
    pub fn get(&self, path: &str) -> Option<&Element> {
        self.props.get(path)
    }

    /// A property's text.
    pub fn text(&self, path: &str) -> Option<&str> {
        self.get(path).map(|e| e.text.as_str())
    }

    /// A property's text, or empty.
    pub fn string(&self, path: &str) -> String {
        self.text(path).unwrap_or_default().trim().to_string()
    }

    /// A property read as a number.
    pub fn number<T: std::str::FromStr>(&self, path: &str) -> Option<T> {
        self.text(path).and_then(|t| t.trim().parse().ok())
    }

    /// A property read as a managed object reference.
    pub fn moref(&self, path: &str) -> Option<MoRef> {
        self.get(path).and_then(Element::moref)
    }

    /// A property holding an array of references (`ArrayOfManagedObjectReference`).
    pub fn morefs(&self, path: &str) -> Vec<MoRef> {
        self.get(path)
            .map(|v| v.children.iter().filter_map(Element::moref).collect())
            .unwrap_or_default()
    }
}

fn prop_set(kind: &str, paths: &[&str]) -> String {
    let paths: String = paths.iter().map(|p| leaf("pathSet", p)).collect();
    format!("<propSet>{}{paths}</propSet>", leaf("type", kind))
}

fn parse_objects(returnval: &Element, out: &mut Vec<Object>) {
    for object in returnval.children_named("objects") {
        let Some(obj) = object.moref_at(&["obj"]) else {
            continue;
        };
        let mut props = BTreeMap::new();
        for set in object.children_named("propSet") {
            if let (Some(name), Some(val)) = (set.text_at(&["name"]), set.child("val")) {
                props.insert(name.to_string(), val.clone());
            }
        }
        out.push(Object { obj, props });
    }
}

/// Runs one `RetrievePropertiesEx` with `spec_set` and follows its tokens.
fn retrieve(spec_set: &str, what: &str) -> Result<Vec<Object>, Error> {
    let session = client::session()?;
    let pc = &session.content.property_collector;
    let options = format!(
        "<options>{}</options>",
        leaf("maxObjects", &PAGE.to_string())
    );
    let answer = client::call(
        &method("RetrievePropertiesEx", pc, &format!("{spec_set}{options}")),
        what,
    )?;
    let mut out = Vec::new();
    let Some(mut page) = answer.child("returnval").cloned() else {
        return Ok(out); // nothing matched
    };
    for _ in 0..MAX_PAGES {
        parse_objects(&page, &mut out);
        let Some(token) = page.text_at(&["token"]).map(str::to_string) else {
            return Ok(out);
        };
        let answer = client::call(
            &method("ContinueRetrievePropertiesEx", pc, &leaf("token", &token)),
            what,
        )?;
        page = client::returnval(&answer, what)?;
    }
    Err(Error::internal(format!(
        "{what}: the endpoint kept paging after {MAX_PAGES} pages"
    )))
}

/// Every object of `kind` under the root folder, with `paths`.
pub fn all(kind: &str, paths: &[&str]) -> Result<Vec<Object>, Error> {
    let session = client::session()?;
    let what = format!("listing every {kind}");
    let args = format!(
        "{}{}{}",
        session.content.root_folder.xml("container"),
        leaf("type", kind),
        leaf("recursive", "true")
    );
    let answer = client::call(
        &method("CreateContainerView", &session.content.view_manager, &args),
        &what,
    )?;
    let view = client::returnval(&answer, &what)?
        .moref()
        .ok_or_else(|| Error::internal(format!("{what}: CreateContainerView answered no view")))?;
    let spec = format!(
        concat!(
            "<specSet>{}<objectSet>{}<skip>true</skip>",
            "<selectSet xsi:type=\"TraversalSpec\"><type>ContainerView</type><path>view</path><skip>false</skip></selectSet>",
            "</objectSet></specSet>"
        ),
        prop_set(kind, paths),
        view.xml("obj")
    );
    let result = retrieve(&spec, &what);
    // A view lives as long as the session; destroy it so long sessions do not pile them up.
    let _ = client::call(
        &method("DestroyView", &view, ""),
        "destroying a container view",
    );
    result
}

/// One object's `paths`. A missing object is `not-found`.
pub fn one(obj: &MoRef, paths: &[&str]) -> Result<Object, Error> {
    let what = format!("reading {} {}", obj.kind, obj.value);
    let spec = format!(
        "<specSet>{}<objectSet>{}<skip>false</skip></objectSet></specSet>",
        prop_set(&obj.kind, paths),
        obj.xml("obj")
    );
    let objects = retrieve(&spec, &what)?;
    objects
        .into_iter()
        .find(|o| &o.obj == obj)
        .ok_or_else(|| Error::not_found(format!("{} {} does not exist", obj.kind, obj.value)))
}

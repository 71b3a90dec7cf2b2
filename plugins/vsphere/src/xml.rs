//! vim25 answers as an owned element tree, and XML text for requests.
//!
//! Answers are parsed once with `roxmltree` (a real parser: namespaces,
//! entities, CDATA) into [`Element`]s that keep only what vim25 readers need:
//! the local name, the `xsi:type` (vim25's polymorphism), the `type`
//! attribute of managed object references, the text and the children. The
//! tree owns its strings, so property values outlive the response text.

use homeward_sdk::Error;

/// The XML Schema instance namespace (`xsi:type`).
const XSI: &str = "http://www.w3.org/2001/XMLSchema-instance";

/// A managed object reference: `<obj type="VirtualMachine">vm-42</obj>`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MoRef {
    /// The managed object type (`VirtualMachine`, `HostSystem`...).
    pub kind: String,
    /// Its value, the id Homeward reports (`vm-42`).
    pub value: String,
}

impl MoRef {
    /// A reference of `kind` to `value`.
    pub fn new(kind: &str, value: &str) -> MoRef {
        MoRef {
            kind: kind.to_string(),
            value: value.to_string(),
        }
    }

    /// The reference as an element named `tag` (`<_this type="...">...</_this>`).
    pub fn xml(&self, tag: &str) -> String {
        format!(
            "<{tag} type=\"{}\">{}</{tag}>",
            escape(&self.kind),
            escape(&self.value)
        )
    }
}

/// One element of an answer.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Element {
    /// Local name, without namespace prefix.
    pub name: String,
    /// The `xsi:type`, without its prefix (`VirtualDisk`, `string`).
    pub xsi_type: Option<String>,
    /// The plain `type` attribute (managed object references carry it).
    pub type_attr: Option<String>,
    /// The text directly inside the element.
    pub text: String,
    /// Child elements, in document order.
    pub children: Vec<Element>,
}

impl Element {
    /// Parses a whole document and returns its root element.
    pub fn parse(xml: &str) -> Result<Element, Error> {
        let doc = roxmltree::Document::parse(xml)
            .map_err(|e| Error::internal(format!("the endpoint answered malformed XML: {e}")))?;
        Ok(Element::from_node(doc.root_element()))
    }

    fn from_node(node: roxmltree::Node<'_, '_>) -> Element {
        let mut element = Element {
            name: node.tag_name().name().to_string(),
            ..Element::default()
        };
        for attr in node.attributes() {
            match (attr.namespace(), attr.name()) {
                (Some(XSI), "type") => {
                    let value = attr.value();
                    let local = value.rsplit(':').next().unwrap_or(value);
                    element.xsi_type = Some(local.to_string());
                }
                (None, "type") => element.type_attr = Some(attr.value().to_string()),
                _ => {}
            }
        }
        for child in node.children() {
            if child.is_element() {
                element.children.push(Element::from_node(child));
            } else if child.is_text()
                && let Some(text) = child.text()
            {
                element.text.push_str(text);
            }
        }
        element
    }

    /// The first child named `name`.
    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    /// Every child named `name`.
    pub fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }

    /// The element at a path of child names.
    pub fn at(&self, path: &[&str]) -> Option<&Element> {
        path.iter().try_fold(self, |e, name| e.child(name))
    }

    /// The text at a path of child names.
    pub fn text_at(&self, path: &[&str]) -> Option<&str> {
        self.at(path).map(|e| e.text.as_str())
    }

    /// The number at a path of child names.
    pub fn number_at<T: std::str::FromStr>(&self, path: &[&str]) -> Option<T> {
        self.text_at(path).and_then(|t| t.trim().parse().ok())
    }

    /// The boolean at a path of child names.
    pub fn bool_at(&self, path: &[&str]) -> Option<bool> {
        match self.text_at(path)?.trim() {
            "true" | "1" => Some(true),
            "false" | "0" => Some(false),
            _ => None,
        }
    }

    /// This element read as a managed object reference.
    pub fn moref(&self) -> Option<MoRef> {
        let kind = self.type_attr.as_deref()?;
        let value = self.text.trim();
        (!value.is_empty()).then(|| MoRef::new(kind, value))
    }

    /// The managed object reference at a path of child names.
    pub fn moref_at(&self, path: &[&str]) -> Option<MoRef> {
        self.at(path).and_then(Element::moref)
    }

    /// Whether the element's `xsi:type` is `kind`.
    pub fn is_type(&self, kind: &str) -> bool {
        self.xsi_type.as_deref() == Some(kind)
    }
}

/// Escapes text for use inside an XML element or attribute.
pub fn escape(text: &str) -> String {
    homeward_sdk::soap::escape(text)
}

/// `<tag>text</tag>` with the text escaped.
pub fn leaf(tag: &str, text: &str) -> String {
    format!("<{tag}>{}</{tag}>", escape(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_types_morefs_and_text() {
        let xml = r#"<a xmlns:X="http://www.w3.org/2001/XMLSchema-instance" xmlns="urn:vim25"><val X:type="xsd:string">a &amp; b</val><obj type="VirtualMachine">vm-1</obj></a>"#;
        let root = Element::parse(xml).unwrap();
        assert_eq!(root.text_at(&["val"]), Some("a & b"));
        assert_eq!(
            root.child("val").unwrap().xsi_type.as_deref(),
            Some("string")
        );
        assert_eq!(
            root.moref_at(&["obj"]),
            Some(MoRef::new("VirtualMachine", "vm-1"))
        );
    }

    #[test]
    fn malformed_xml_is_an_error_not_a_panic() {
        assert!(Element::parse("<a><b></a>").is_err());
        assert!(Element::parse("").is_err());
    }
}

//! SOAP 1.1 over [`crate::http`]: the envelope, the call, and the fault.
//!
//! vSphere's API (vim25) is SOAP. This module does only what every SOAP client
//! needs; the vim25 vocabulary lives with the adapters.

use crate::Error;
use crate::http::{self, Method, Request};

/// Escapes text for use inside an XML element or attribute.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// Wraps a body in a SOAP 1.1 envelope.
pub fn envelope(body_xml: &str) -> String {
    format!(
        concat!(
            r#"<?xml version="1.0" encoding="UTF-8"?>"#,
            r#"<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" "#,
            r#"xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">"#,
            "<soapenv:Body>{}</soapenv:Body></soapenv:Envelope>"
        ),
        body_xml
    )
}

/// The text of the first element named `local_name` (any namespace prefix), unescaped.
/// Enough for faults and simple answers; adapters parse richer documents themselves.
pub fn element_text(xml: &str, local_name: &str) -> Option<String> {
    let mut search = 0;
    while let Some(rel) = xml[search..].find('<') {
        let start = search + rel + 1;
        let end = start + xml[start..].find('>')?;
        let tag = &xml[start..end];
        search = end + 1;
        if tag.starts_with('/') || tag.starts_with('?') || tag.starts_with('!') {
            continue;
        }
        let name = tag.split([' ', '/', '\t', '\n']).next().unwrap_or_default();
        let local = name.rsplit(':').next().unwrap_or(name);
        if local != local_name {
            continue;
        }
        if tag.ends_with('/') {
            return Some(String::new());
        }
        let close = format!("</{name}>");
        let text_end = search + xml[search..].find(&close)?;
        return Some(unescape(&xml[search..text_end]));
    }
    None
}

fn unescape(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

/// A SOAP call's answer: the response body and the cookie the server set, if any.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The whole response document.
    pub xml: String,
    /// The `Set-Cookie` value (a session), if any.
    pub set_cookie: Option<String>,
}

/// Posts `body_xml` in an envelope to `url` with `SOAPAction: action`, sending
/// `cookie` if given. A SOAP fault becomes an error carrying the fault string;
/// a fault whose string mentions permissions becomes `permission-denied`.
pub fn call(
    url: &str,
    action: &str,
    body_xml: &str,
    cookie: Option<&str>,
) -> Result<Answer, Error> {
    let mut request = Request::new(Method::Post, url)
        .header("content-type", "text/xml; charset=utf-8")
        .header("soapaction", action)
        .body(envelope(body_xml));
    if let Some(cookie) = cookie {
        request = request.header("cookie", cookie);
    }
    let response = http::send(&request)?;
    let xml = response.text();
    if let Some(fault) = element_text(&xml, "faultstring") {
        return Err(fault_to_error(&fault, &xml));
    }
    if !(200..300).contains(&response.status) {
        return Err(Error::internal(format!(
            "SOAP call {action} answered HTTP {}",
            response.status
        )));
    }
    Ok(Answer {
        set_cookie: response.header("set-cookie").map(str::to_string),
        xml,
    })
}

/// Maps a SOAP fault to an [`Error`]: `fault` is the fault string, `xml` the
/// whole response document, whose fault detail picks the case. vSphere's
/// `NoPermission` and `NotAuthenticated` become `permission-denied` (with the
/// missing `privilegeId`, if given), `InvalidLogin` a `permission-denied` that
/// points at the plugin's secrets, `ManagedObjectNotFound` `not-found`, and
/// anything else `internal`. [`call`] uses it; adapters that send SOAP
/// themselves can too.
pub fn fault_to_error(fault: &str, xml: &str) -> Error {
    if xml.contains("NoPermission") || xml.contains("NotAuthenticated") {
        let privilege = element_text(xml, "privilegeId");
        let missing: Vec<&str> = privilege.as_deref().into_iter().collect();
        Error::permission_denied(format!("SOAP fault: {fault}"), &missing)
    } else if xml.contains("InvalidLogin") {
        Error::permission_denied(
            "login refused: check the user and password in the plugin's secrets".to_string(),
            &[],
        )
    } else if xml.contains("ManagedObjectNotFound") {
        Error::not_found(format!("SOAP fault: {fault}"))
    } else {
        Error::internal(format!("SOAP fault: {fault}"))
    }
}

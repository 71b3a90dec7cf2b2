//! The SDK's HTTP and SOAP helpers that work natively: URL parsing into
//! `wasi:http` parts, SOAP envelopes and escaping, element text, and SOAP
//! faults mapped to errors.

use homeward_sdk::Error;
use homeward_sdk::http::Url;
use homeward_sdk::soap::{element_text, envelope, escape, fault_to_error};

#[test]
fn parses_urls_into_wasi_parts() {
    let u = Url::parse("https://vc.lab:8443/sdk?x=1#frag").unwrap();
    assert!(u.https);
    assert_eq!(u.authority, "vc.lab:8443");
    assert_eq!(u.path_with_query, "/sdk?x=1");
    let u = Url::parse("http://127.0.0.1").unwrap();
    assert!(!u.https);
    assert_eq!(u.path_with_query, "/");
    let u = Url::parse("http://h?q").unwrap();
    assert_eq!(u.path_with_query, "/?q");
}

#[test]
fn refuses_bad_urls_with_a_reason() {
    for bad in ["ftp://x/", "https://", "https://user:pw@host/", "host/path"] {
        match Url::parse(bad) {
            Err(Error::InvalidInput(msg)) => assert!(!msg.contains("pw"), "{msg}"),
            other => panic!("{bad}: {other:?}"),
        }
    }
}

#[test]
fn envelope_and_escape() {
    let env = envelope(&format!("<x>{}</x>", escape("a<b & 'c'")));
    assert!(env.contains("<soapenv:Body><x>a&lt;b &amp; &apos;c&apos;</x></soapenv:Body>"));
}

#[test]
fn finds_element_text_across_prefixes() {
    let xml = r#"<?xml version="1.0"?><soapenv:Envelope><soapenv:Body><soapenv:Fault><faultcode>ServerFaultCode</faultcode><faultstring>Permission to perform this operation was denied.</faultstring><detail><NoPermissionFault><privilegeId>Datastore.Browse</privilegeId></NoPermissionFault></detail></soapenv:Fault></soapenv:Body></soapenv:Envelope>"#;
    assert_eq!(
        element_text(xml, "faultstring").as_deref(),
        Some("Permission to perform this operation was denied.")
    );
    match fault_to_error("denied", xml) {
        Error::PermissionDenied(p) => assert_eq!(p.missing_privileges, vec!["Datastore.Browse"]),
        other => panic!("{other:?}"),
    }
    assert_eq!(element_text(xml, "missing"), None);
    assert_eq!(element_text("<a:b/>", "b").as_deref(), Some(""));
    assert_eq!(
        element_text("<a>1 &amp; 2</a>", "a").as_deref(),
        Some("1 & 2")
    );
}

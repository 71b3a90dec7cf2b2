//! The endpoint's licence (S14), from `LicenseManager.licenses`.
//!
//! On a standalone ESXi host the licence manager holds the host's own
//! licence; on a vCenter it holds every key added to it. Homeward reports
//! the licence that decides whether failback may write: a free one if any is
//! present (a free ESXi / vSphere Hypervisor key makes the API read-only for
//! the changes failback makes), else the first paid one, else the
//! evaluation licence.
//!
//! A licence is free when its edition key names the free edition
//! (`esxBasic`, or contains `free`) or its product name is the free
//! "vSphere Hypervisor". An endpoint that has not decoded a key (edition
//! and name empty, as the simulator leaves keys added with `AddLicense`)
//! is read through the key's labels `edition` / `product` when present.

use crate::client;
use crate::props;
use crate::time::unix_millis;
use crate::xml::Element;
use homeward_sdk::Error;
use homeward_sdk::types::Licence;

/// One `LicenseManagerLicenseInfo` as Homeward's record.
pub fn classify(info: &Element) -> Licence {
    let label = |key: &str| {
        info.children_named("labels")
            .find(|l| {
                l.text_at(&["key"])
                    .is_some_and(|k| k.eq_ignore_ascii_case(key))
            })
            .and_then(|l| l.text_at(&["value"]))
            .map(|v| v.trim().to_string())
    };
    let property = |key: &str| {
        info.children_named("properties")
            .find(|p| p.text_at(&["key"]) == Some(key))
            .and_then(|p| p.text_at(&["value"]))
            .map(|v| v.trim().to_string())
    };
    let mut edition = info
        .text_at(&["editionKey"])
        .unwrap_or_default()
        .trim()
        .to_string();
    if edition.is_empty() {
        edition = label("edition")
            .or_else(|| label("editionKey"))
            .unwrap_or_default();
    }
    let mut product = info
        .text_at(&["name"])
        .unwrap_or_default()
        .trim()
        .to_string();
    if product.is_empty() {
        product = label("product").unwrap_or_default();
    }
    let edition_lower = edition.to_ascii_lowercase();
    let product_lower = product.to_ascii_lowercase();
    let free = edition_lower.contains("esxbasic")
        || edition_lower.contains("free")
        || product_lower.contains("vsphere hypervisor")
        || product_lower.contains("free");
    Licence {
        product,
        edition,
        free,
        expires_at: property("expirationDate").as_deref().and_then(unix_millis),
    }
}

fn is_evaluation(l: &Licence) -> bool {
    l.edition.eq_ignore_ascii_case("eval") || l.product.to_ascii_lowercase().contains("evaluation")
}

/// The licence that decides what the endpoint allows.
pub fn get() -> Result<Licence, Error> {
    let session = client::session()?;
    let manager = session.content.license_manager.clone().ok_or_else(|| {
        Error::unsupported("the endpoint has no licence manager, so its licence cannot be read")
    })?;
    let object = props::one(&manager, &["licenses"])?;
    let licences: Vec<Licence> = object
        .get("licenses")
        .map(|l| l.children.iter().map(classify).collect())
        .unwrap_or_default();
    let chosen = licences
        .iter()
        .find(|l| l.free)
        .or_else(|| {
            licences
                .iter()
                .find(|l| !is_evaluation(l) && !l.edition.is_empty())
        })
        .or_else(|| licences.first())
        .cloned();
    chosen.ok_or_else(|| {
        Error::internal(format!(
            "{} reports no licence at all",
            session.settings.url
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(xml: &str) -> Element {
        Element::parse(&format!("<i>{xml}</i>")).unwrap()
    }

    #[test]
    fn free_editions_are_free() {
        assert!(
            classify(&info(
                "<editionKey>esxBasic</editionKey><name>vSphere 7 Hypervisor</name>"
            ))
            .free
        );
        assert!(
            !classify(&info(
                "<editionKey>esxEnterprisePlus</editionKey><name>vSphere 8 Enterprise Plus</name>"
            ))
            .free
        );
        assert!(
            !classify(&info(
                "<editionKey>eval</editionKey><name>Evaluation Mode</name>"
            ))
            .free
        );
        let labelled = classify(&info(
            "<licenseKey>K</licenseKey><labels><key>edition</key><value>esxBasic</value></labels>",
        ));
        assert!(labelled.free);
        assert_eq!(labelled.edition, "esxBasic");
    }
}

//! Which of Homeward's privileges the session's account holds on the root
//! folder (so everywhere, as Homeward's roles are meant to be assigned), and
//! refusing a change up front with every privilege it lacks.
//!
//! `HasPrivilegeOnEntities` answers for the session itself; where an
//! endpoint does not offer it, `FetchUserPrivilegeOnEntities` answers for
//! the user name. Privileges are read afresh on every call, so a role fixed
//! meanwhile counts at once.

use crate::client::{self, method};
use crate::privileges::{self, HOMEWARD_REQUIRED};
use crate::xml::leaf;
use homeward_sdk::Error;

/// The privileges of `asked` the account holds on the root folder.
pub fn held(asked: &[&str]) -> Result<Vec<String>, Error> {
    let session = client::session()?;
    let Some(manager) = session.content.authorization_manager.clone() else {
        // An endpoint without an authorization manager checks nothing itself.
        return Ok(asked.iter().map(|p| p.to_string()).collect());
    };
    let root = &session.content.root_folder;
    let what = "reading the account's privileges";
    let ids: String = asked.iter().map(|p| leaf("privId", p)).collect();
    let args = format!(
        "{}{}{ids}",
        root.xml("entity"),
        leaf("sessionId", &session.key)
    );
    match client::call(&method("HasPrivilegeOnEntities", &manager, &args), what) {
        Ok(answer) => {
            let mut out = Vec::new();
            for entity in answer.children_named("returnval") {
                for availability in entity.children_named("privAvailability") {
                    if availability.bool_at(&["isGranted"]) == Some(true)
                        && let Some(id) = availability.text_at(&["privId"])
                    {
                        out.push(id.trim().to_string());
                    }
                }
            }
            Ok(out)
        }
        Err(Error::Unsupported(_)) | Err(Error::Internal(_)) => {
            let args = format!(
                "{}{}",
                root.xml("entities"),
                leaf("userName", &session.user_name)
            );
            let answer = client::call(
                &method("FetchUserPrivilegeOnEntities", &manager, &args),
                what,
            )?;
            Ok(answer
                .children_named("returnval")
                .flat_map(|r| r.children_named("privileges"))
                .map(|p| p.text.trim().to_string())
                .filter(|p| asked.contains(&p.as_str()))
                .collect())
        }
        Err(e) => Err(e),
    }
}

/// The privileges Homeward needs that the account lacks, in the order of
/// [`HOMEWARD_REQUIRED`].
pub fn missing_required() -> Result<Vec<String>, Error> {
    let held = held(HOMEWARD_REQUIRED)?;
    Ok(privileges::missing(HOMEWARD_REQUIRED, &held)
        .into_iter()
        .map(str::to_string)
        .collect())
}

/// Refuses `what` with `permission-denied` listing every privilege of
/// `needed` the account lacks.
pub fn require(needed: &[&str], what: &str) -> Result<(), Error> {
    let held = held(needed)?;
    let missing = privileges::missing(needed, &held);
    if missing.is_empty() {
        return Ok(());
    }
    let session = client::session()?;
    Err(Error::permission_denied(
        format!(
            "{what}: account {} lacks {} on {}; add {} to its role",
            session.settings.user,
            missing.join(", "),
            session.settings.url,
            if missing.len() == 1 { "it" } else { "them" }
        ),
        &missing,
    ))
}

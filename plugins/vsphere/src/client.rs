//! The vim25 client: settings, the SOAP call, the session.
//!
//! One session per plugin instance: the first call logs in with `user` and
//! the secret `password`, later calls send the session cookie, and a call
//! that finds the session expired (`NotAuthenticated`) logs in again once and
//! retries. `disconnect` logs out. The password is read from the secret only
//! to build the `Login` body; it never enters a log line or an error (errors
//! that quote the endpoint are scrubbed of it anyway).

use crate::fault::{Fault, scrub};
use crate::xml::{Element, MoRef, escape, leaf};
use homeward_sdk::Error;
use homeward_sdk::http::{self, Method, Request};
use std::cell::RefCell;

/// vim25 version announced in `SOAPAction`; every vSphere from 6.5 on accepts it.
const VIM_VERSION: &str = "urn:vim25/6.5";
/// Default connect and first-byte timeout of each request.
const DEFAULT_TIMEOUT_MS: u64 = 20_000;
/// Largest timeout an operator may configure: the host's call deadline bounds a call anyway.
const MAX_TIMEOUT_MS: u64 = 600_000;

/// What the operator configured.
#[derive(Clone)]
pub struct Settings {
    /// The SDK URL (`https://vc.example/sdk`).
    pub url: String,
    /// The account.
    pub user: String,
    /// Its password (a secret: never logged, never in an error).
    password: String,
    /// Connect and first-byte timeout per request.
    pub timeout_ms: u64,
    /// How long to wait for a task.
    pub task_timeout_ms: u64,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("url", &self.url)
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .finish()
    }
}

impl Settings {
    /// Reads `url`, `user`, secret `password` and the optional `timeout-ms`
    /// and `task-timeout-ms` from the plugin's configuration.
    pub fn from_config() -> Result<Settings, Error> {
        use homeward_sdk::config;
        let url = normalise_url(&config::require("url")?)?;
        let user = config::require("user")?;
        let password = config::require_secret("password")?;
        let number = |key: &str, default: u64| -> Result<u64, Error> {
            match config::get(key) {
                None => Ok(default),
                Some(v) => v
                    .trim()
                    .parse::<u64>()
                    .ok()
                    .filter(|n| (1..=MAX_TIMEOUT_MS).contains(n))
                    .ok_or_else(|| {
                        Error::invalid_input(format!(
                            "configuration `{key}` = {v:?} must be milliseconds between 1 and {MAX_TIMEOUT_MS}"
                        ))
                    }),
            }
        };
        Ok(Settings {
            url,
            user,
            password,
            timeout_ms: number("timeout-ms", DEFAULT_TIMEOUT_MS)?,
            task_timeout_ms: number("task-timeout-ms", 300_000)?,
        })
    }

    /// Settings given directly (tests, tools).
    pub fn new(url: &str, user: &str, password: &str) -> Result<Settings, Error> {
        Ok(Settings {
            url: normalise_url(url)?,
            user: user.to_string(),
            password: password.to_string(),
            timeout_ms: DEFAULT_TIMEOUT_MS,
            task_timeout_ms: 300_000,
        })
    }
}

/// The SDK endpoint of `url`: a bare `https://host` or `https://host/` means
/// `https://host/sdk`, the path every vCenter and ESXi serves vim25 on.
pub fn normalise_url(url: &str) -> Result<String, Error> {
    let parsed = http::Url::parse(url.trim())?;
    let scheme = if parsed.https { "https" } else { "http" };
    let path = if parsed.path_with_query == "/" {
        "/sdk".to_string()
    } else {
        parsed.path_with_query
    };
    Ok(format!("{scheme}://{}{path}", parsed.authority))
}

/// `about` of the service content.
#[derive(Debug, Clone, Default)]
pub struct About {
    /// `VMware vCenter Server 8.0.2 build-...`.
    pub full_name: String,
    /// `8.0.2`.
    pub version: String,
    /// `VirtualCenter` or `HostAgent`.
    pub api_type: String,
    /// `8.0.2.0`.
    pub api_version: String,
    /// The vCenter instance UUID (empty on ESXi).
    pub instance_uuid: String,
}

/// The managed objects Homeward uses, from `RetrieveServiceContent`.
#[derive(Debug, Clone)]
pub struct ServiceContent {
    /// The inventory root.
    pub root_folder: MoRef,
    /// The property collector.
    pub property_collector: MoRef,
    /// The view manager (container views).
    pub view_manager: MoRef,
    /// The session manager.
    pub session_manager: MoRef,
    /// The authorization manager, when the endpoint has one.
    pub authorization_manager: Option<MoRef>,
    /// The licence manager, when the endpoint has one.
    pub license_manager: Option<MoRef>,
    /// The search index.
    pub search_index: Option<MoRef>,
    /// What the endpoint is.
    pub about: About,
}

impl ServiceContent {
    fn from_element(e: &Element) -> Result<ServiceContent, Error> {
        let need = |name: &str| {
            e.moref_at(&[name]).ok_or_else(|| {
                Error::internal(format!(
                    "the endpoint's service content has no {name}: is the URL a vSphere SDK endpoint?"
                ))
            })
        };
        let text = |name: &str| {
            e.text_at(&["about", name])
                .unwrap_or_default()
                .trim()
                .to_string()
        };
        Ok(ServiceContent {
            root_folder: need("rootFolder")?,
            property_collector: need("propertyCollector")?,
            view_manager: need("viewManager")?,
            session_manager: need("sessionManager")?,
            authorization_manager: e.moref_at(&["authorizationManager"]),
            license_manager: e.moref_at(&["licenseManager"]),
            search_index: e.moref_at(&["searchIndex"]),
            about: About {
                full_name: text("fullName"),
                version: text("version"),
                api_type: text("apiType"),
                api_version: text("apiVersion"),
                instance_uuid: text("instanceUuid"),
            },
        })
    }

    /// Whether the endpoint is a vCenter (not a standalone host).
    pub fn is_vcenter(&self) -> bool {
        self.about.api_type == "VirtualCenter"
    }
}

/// A logged-in session.
#[derive(Debug, Clone)]
pub struct Session {
    /// Where and who.
    pub settings: Settings,
    /// The `vmware_soap_session=...` cookie.
    cookie: String,
    /// The session key (`HasPrivilegeOnEntities` asks for it).
    pub key: String,
    /// The user name the endpoint gave the session.
    pub user_name: String,
    /// The service content.
    pub content: ServiceContent,
}

thread_local! {
    /// The instance's session (a plugin instance is single-threaded).
    static SESSION: RefCell<Option<Session>> = const { RefCell::new(None) };
}

/// An answer's `Body` content: the `...Response` element.
fn post(
    settings: &Settings,
    cookie: Option<&str>,
    body: &str,
    what: &str,
) -> Result<(Element, Option<String>), Error> {
    let envelope = format!(
        concat!(
            r#"<?xml version="1.0" encoding="UTF-8"?>"#,
            r#"<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" "#,
            r#"xmlns:xsd="http://www.w3.org/2001/XMLSchema" "#,
            r#"xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">"#,
            "<soapenv:Body>{}</soapenv:Body></soapenv:Envelope>"
        ),
        body
    );
    let mut request = Request::new(Method::Post, settings.url.clone())
        .header("content-type", "text/xml; charset=utf-8")
        .header("soapaction", VIM_VERSION)
        .body(envelope)
        .timeout_ms(settings.timeout_ms);
    if let Some(cookie) = cookie {
        request = request.header("cookie", cookie);
    }
    let response = http::send(&request).map_err(|e| match e {
        Error::Unavailable(mut u) => {
            u.message = format!(
                "{what}: vSphere endpoint {} is unreachable: {}",
                settings.url, u.message
            );
            Error::Unavailable(u)
        }
        other => other,
    })?;
    let text = response.text();
    let parsed = Element::parse(&text);
    let body_element = parsed
        .as_ref()
        .ok()
        .and_then(|root| root.child("Body"))
        .and_then(|b| b.children.first());
    if let Some(first) = body_element
        && first.name == "Fault"
    {
        return Err(Fault::from_soap(first).into_error(what));
    }
    match response.status {
        200..=299 => {}
        401 | 403 => {
            return Err(Error::permission_denied(
                format!("{what}: {} answered HTTP {}", settings.url, response.status),
                &[],
            ));
        }
        404 => {
            return Err(Error::invalid_input(format!(
                "{what}: {} answered HTTP 404: the URL is not a vSphere SDK endpoint (it usually ends in /sdk)",
                settings.url
            )));
        }
        500..=599 => {
            return Err(Error::unavailable(
                format!("{what}: {} answered HTTP {}", settings.url, response.status),
                response
                    .header("retry-after")
                    .and_then(|s| s.trim().parse::<u64>().ok())
                    .map(|s| s.saturating_mul(1000)),
            ));
        }
        status => {
            return Err(Error::internal(format!(
                "{what}: {} answered HTTP {status}",
                settings.url
            )));
        }
    }
    let element = body_element.cloned().ok_or_else(|| {
        Error::internal(format!(
            "{what}: {} answered something that is not a SOAP response",
            settings.url
        ))
    })?;
    let cookie = response
        .header("set-cookie")
        .and_then(|c| c.split(';').next())
        .map(|c| c.trim().to_string());
    Ok((element, cookie))
}

/// The body of a vim25 method call: `<Name xmlns="urn:vim25"><_this>...</_this>args</Name>`.
pub fn method(name: &str, this: &MoRef, args: &str) -> String {
    format!(
        "<{name} xmlns=\"urn:vim25\">{}{args}</{name}>",
        this.xml("_this")
    )
}

fn login(settings: &Settings) -> Result<Session, Error> {
    let instance = MoRef::new("ServiceInstance", "ServiceInstance");
    let (answer, _) = post(
        settings,
        None,
        &method("RetrieveServiceContent", &instance, ""),
        "reading the service content",
    )?;
    let content = answer
        .child("returnval")
        .ok_or_else(|| Error::internal("RetrieveServiceContent answered no returnval"))
        .and_then(ServiceContent::from_element)?;
    let args = format!(
        "{}{}",
        leaf("userName", &settings.user),
        leaf("password", &settings.password)
    );
    let (answer, cookie) = post(
        settings,
        None,
        &method("Login", &content.session_manager, &args),
        &format!("logging in as {} at {}", settings.user, settings.url),
    )
    .map_err(|e| scrub(e, &settings.password))?;
    let cookie = cookie.ok_or_else(|| {
        Error::internal(format!(
            "{} accepted the login but set no session cookie",
            settings.url
        ))
    })?;
    let key = answer
        .text_at(&["returnval", "key"])
        .unwrap_or_default()
        .to_string();
    let user_name = answer
        .text_at(&["returnval", "userName"])
        .unwrap_or(&settings.user)
        .to_string();
    homeward_sdk::log::debug(&format!(
        "logged in to {} as {} ({})",
        settings.url, settings.user, content.about.full_name
    ));
    Ok(Session {
        settings: settings.clone(),
        cookie,
        key,
        user_name,
        content,
    })
}

/// The instance's session, logging in first if there is none.
pub fn session() -> Result<Session, Error> {
    if let Some(s) = SESSION.with(|s| s.borrow().clone()) {
        return Ok(s);
    }
    let settings = Settings::from_config()?;
    let session = login(&settings)?;
    SESSION.with(|s| *s.borrow_mut() = Some(session.clone()));
    Ok(session)
}

/// Forgets the session (after a logout, or when it expired).
fn forget() {
    SESSION.with(|s| *s.borrow_mut() = None);
}

/// Logs out, if logged in. An expired session counts as logged out.
pub fn logout() -> Result<(), Error> {
    let Some(session) = SESSION.with(|s| s.borrow_mut().take()) else {
        return Ok(());
    };
    let body = method("Logout", &session.content.session_manager, "");
    match post(
        &session.settings,
        Some(&session.cookie),
        &body,
        "logging out",
    ) {
        Ok(_) | Err(Error::PermissionDenied(_)) => Ok(()),
        Err(e) => Err(scrub(e, &session.settings.password)),
    }
}

/// Calls a method in the session and returns its `...Response` element.
/// An expired session is renewed once.
pub fn call(body: &str, what: &str) -> Result<Element, Error> {
    let session = session()?;
    match post(&session.settings, Some(&session.cookie), body, what) {
        Ok((answer, _)) => Ok(answer),
        Err(Error::PermissionDenied(p)) if p.message.contains("NotAuthenticated") => {
            forget();
            let session = self::session()?;
            post(&session.settings, Some(&session.cookie), body, what)
                .map(|(a, _)| a)
                .map_err(|e| scrub(e, &session.settings.password))
        }
        Err(e) => Err(scrub(e, &session.settings.password)),
    }
}

/// The `returnval` of a call's answer.
pub fn returnval(answer: &Element, what: &str) -> Result<Element, Error> {
    answer
        .child("returnval")
        .cloned()
        .ok_or_else(|| Error::internal(format!("{what}: the endpoint answered no returnval")))
}

/// Escaped text for a request (re-exported for the request builders).
pub fn text(value: &str) -> String {
    escape(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_urls_get_the_sdk_path() {
        assert_eq!(
            normalise_url("https://vc.example").unwrap(),
            "https://vc.example/sdk"
        );
        assert_eq!(
            normalise_url("http://127.0.0.1:8989/").unwrap(),
            "http://127.0.0.1:8989/sdk"
        );
        assert_eq!(normalise_url("https://h/sdk").unwrap(), "https://h/sdk");
        assert!(normalise_url("ftp://h").is_err());
    }

    #[test]
    fn settings_debug_hides_the_password() {
        let s = Settings::new("https://h", "u", "hunter2").unwrap();
        assert!(!format!("{s:?}").contains("hunter2"));
    }
}

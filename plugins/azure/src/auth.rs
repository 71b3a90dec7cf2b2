//! Bearer tokens for ARM: the OAuth2 client-credentials grant against the
//! Microsoft identity platform's v2.0 token endpoint (a form POST with
//! `grant_type=client_credentials`, `client_id`, `client_secret` and
//! `scope=https://management.azure.com/.default`).
//!
//! A token is cached in the instance until a minute before it expires, so a
//! job's many calls sign in once. Neither the secret nor a token is ever
//! logged or put in a message; the identity platform's own error text is
//! cut to its first line and scrubbed of the secret before it is quoted.

use crate::settings::Settings;
use crate::transport::{Transport, without_query};
use homeward_sdk::http::{Method, Request};
use homeward_sdk::{Error, log};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The scope of ARM tokens.
pub const ARM_SCOPE: &str = "https://management.azure.com/.default";
/// A token is renewed when less than this is left of it.
const RENEW_BEFORE: Duration = Duration::from_secs(60);

struct Cached {
    /// Token endpoint and client id it was issued for.
    key: (String, String),
    token: String,
    renew_at: Instant,
}

static CACHE: Mutex<Option<Cached>> = Mutex::new(None);

/// Forgets the cached token (ARM refused it).
pub fn forget() {
    if let Ok(mut cache) = CACHE.lock() {
        *cache = None;
    }
}

/// A bearer token for ARM: the cached one, or a new one.
pub fn token(settings: &Settings, transport: &Transport) -> Result<String, Error> {
    let key = (
        settings.token_endpoint.clone(),
        settings.principal.client_id.clone(),
    );
    if let Ok(cache) = CACHE.lock()
        && let Some(cached) = cache.as_ref()
        && cached.key == key
        && Instant::now() < cached.renew_at
    {
        return Ok(cached.token.clone());
    }
    let (token, lifetime) = request_token(settings, transport)?;
    let renew_at = Instant::now() + lifetime.saturating_sub(RENEW_BEFORE);
    if let Ok(mut cache) = CACHE.lock() {
        *cache = Some(Cached {
            key,
            token: token.clone(),
            renew_at,
        });
    }
    Ok(token)
}

/// `application/x-www-form-urlencoded` encoding of one value.
pub fn form_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(char::from(b))
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn request_token(settings: &Settings, transport: &Transport) -> Result<(String, Duration), Error> {
    let principal = &settings.principal;
    let body = format!(
        "grant_type=client_credentials&client_id={}&client_secret={}&scope={}",
        form_encode(&principal.client_id),
        form_encode(&principal.client_secret),
        form_encode(ARM_SCOPE)
    );
    let request = Request::new(Method::Post, settings.token_endpoint.clone())
        .header("content-type", "application/x-www-form-urlencoded")
        .header("accept", "application/json")
        .body(body);
    let response = transport.send("the token endpoint", &request)?;
    let json: serde_json::Value = serde_json::from_slice(&response.body).unwrap_or_default();
    let client = principal.client_id.escape_debug().to_string();
    let endpoint = without_query(&settings.token_endpoint);
    if response.status != 200 {
        let code = json.get("error").and_then(|v| v.as_str()).unwrap_or("");
        let description = json
            .get("error_description")
            .and_then(|v| v.as_str())
            .unwrap_or("")
            .split(['\r', '\n'])
            .next()
            .unwrap_or("")
            .replace(principal.client_secret.as_str(), "<redacted>");
        let said = if code.is_empty() && description.is_empty() {
            format!("HTTP {}", response.status)
        } else {
            format!("{code}: {description}")
        };
        log::warn(&format!(
            "sign-in refused for application `{client}` at {endpoint} ({code})"
        ));
        return Err(match (response.status, code) {
            (400 | 401, "invalid_client" | "unauthorized_client" | "invalid_grant") | (401, _) => {
                Error::permission_denied(
                    format!(
                        "sign-in refused for application `{client}` ({said}): check config \
                         `client-id` and `tenant-id`, and set secret `client-secret` to a \
                         current secret of that application"
                    ),
                    &[],
                )
            }
            (400, _) => Error::invalid_input(format!(
                "the token endpoint {endpoint} refused the request for application `{client}` \
                 ({said})"
            )),
            (403, _) => Error::permission_denied(
                format!("the token endpoint {endpoint} refused application `{client}` ({said})"),
                &[],
            ),
            (404, _) => Error::invalid_input(format!(
                "the token endpoint {endpoint} does not exist (404): check config \
                 `token-endpoint` and `tenant-id`"
            )),
            (status, _) => Error::unavailable(
                format!("the token endpoint {endpoint} answered {status} ({said})"),
                None,
            ),
        });
    }
    let token = json
        .get("access_token")
        .and_then(|v| v.as_str())
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            Error::internal(format!(
                "the token endpoint {endpoint} answered 200 without an access_token"
            ))
        })?;
    // `expires_in` is a number in v2.0, a string in some older endpoints.
    let seconds = json
        .get("expires_in")
        .and_then(|v| {
            v.as_u64()
                .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        })
        .unwrap_or(300);
    log::info(&format!(
        "signed in as application `{client}` (token valid for {seconds} s)"
    ));
    Ok((token.to_string(), Duration::from_secs(seconds)))
}

#[cfg(test)]
mod tests {
    use super::form_encode;

    #[test]
    fn form_encoding_escapes_reserved_bytes() {
        assert_eq!(
            form_encode("https://management.azure.com/.default"),
            "https%3A%2F%2Fmanagement.azure.com%2F.default"
        );
        assert_eq!(form_encode("a b&c=d~"), "a+b%26c%3Dd~");
    }
}

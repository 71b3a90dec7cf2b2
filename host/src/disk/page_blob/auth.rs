//! Authorising Blob requests: a SAS token appended to the query, or a Shared
//! Key signature (HMAC-SHA256 of the canonicalized request, per "Authorize
//! with Shared Key" for service version 2009-09-19 and later), plus making an
//! account SAS from a key (what `az storage account generate-sas` does).
//!
//! The key and the token are secrets: [`Auth`]'s `Debug` prints neither,
//! and [`Auth::redact`] scrubs them from any text that leaves this module.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use std::fmt;

/// How requests to one blob are authorised.
pub(crate) enum Auth {
    /// The URL is public or carries its own authorisation.
    None,
    /// A shared access signature: query parameters appended to every request.
    Sas(String),
    /// The account name and its decoded key.
    SharedKey { account: String, key: Vec<u8> },
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Auth::None => f.write_str("None"),
            Auth::Sas(_) => f.write_str("Sas(<redacted>)"),
            Auth::SharedKey { account, .. } => {
                write!(f, "SharedKey({account}, <redacted>)")
            }
        }
    }
}

impl Auth {
    /// A SAS token as given (a leading `?` is dropped).
    pub fn sas(token: &str) -> Auth {
        Auth::Sas(token.trim_start_matches('?').to_string())
    }

    /// An account and its base64 key; the error never quotes the key.
    pub fn shared_key(account: &str, key_base64: &str) -> Result<Auth, String> {
        let key = BASE64
            .decode(key_base64.trim())
            .map_err(|_| format!("the shared key of account {account} is not valid base64"))?;
        if account.is_empty() {
            return Err("the shared key credential names no account".into());
        }
        Ok(Auth::SharedKey {
            account: account.to_string(),
            key,
        })
    }

    /// Query parameters to append (the SAS token), already encoded.
    pub fn query(&self) -> Option<&str> {
        match self {
            Auth::Sas(token) if !token.is_empty() => Some(token),
            _ => None,
        }
    }

    /// The `Authorization` header for a request, when Shared Key is used.
    ///
    /// `path` is the URL path as sent (percent-encoded), `query` the request's
    /// own parameters decoded (not the SAS), `headers` every header sent
    /// except `Host` and `Content-Length`, whose value is `content_length`.
    pub fn authorization(
        &self,
        method: &str,
        path: &str,
        query: &[(String, String)],
        headers: &[(String, String)],
        content_length: usize,
    ) -> Option<(String, String)> {
        let Auth::SharedKey { account, key } = self else {
            return None;
        };
        let to_sign = string_to_sign(account, method, path, query, headers, content_length);
        let signature = hmac_base64(key, &to_sign);
        Some((
            "Authorization".to_string(),
            format!("SharedKey {account}:{signature}"),
        ))
    }

    /// `text` with every secret of this credential replaced by `<redacted>`:
    /// for messages that quote what a server said.
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_string();
        match self {
            Auth::None => {}
            Auth::Sas(token) => {
                if !token.is_empty() {
                    out = out.replace(token.as_str(), "<redacted>");
                }
                for part in token.split('&') {
                    if let Some(sig) = part.strip_prefix("sig=")
                        && !sig.is_empty()
                    {
                        out = out.replace(sig, "<redacted>");
                        out = out.replace(&percent_decode(sig), "<redacted>");
                    }
                }
            }
            Auth::SharedKey { key, .. } => {
                let encoded = BASE64.encode(key);
                out = out.replace(&encoded, "<redacted>");
            }
        }
        out
    }
}

/// The Shared Key string-to-sign of the Blob service (version 2009-09-19 and
/// later): the verb, eleven standard headers (Content-Length empty when 0),
/// the canonicalized `x-ms-` headers and the canonicalized resource.
fn string_to_sign(
    account: &str,
    method: &str,
    path: &str,
    query: &[(String, String)],
    headers: &[(String, String)],
    content_length: usize,
) -> String {
    let value = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim())
            .unwrap_or("")
    };
    let length = if content_length == 0 {
        String::new()
    } else {
        content_length.to_string()
    };
    let mut s = String::new();
    for field in [
        method,
        value("Content-Encoding"),
        value("Content-Language"),
        &length,
        value("Content-MD5"),
        value("Content-Type"),
        value("Date"),
        value("If-Modified-Since"),
        value("If-Match"),
        value("If-None-Match"),
        value("If-Unmodified-Since"),
        value("Range"),
    ] {
        s.push_str(field);
        s.push('\n');
    }
    let mut ms: Vec<(String, String)> = headers
        .iter()
        .map(|(n, v)| (n.to_ascii_lowercase(), v.trim().to_string()))
        .filter(|(n, _)| n.starts_with("x-ms-"))
        .collect();
    ms.sort();
    for (name, value) in ms {
        s.push_str(&name);
        s.push(':');
        s.push_str(&value);
        s.push('\n');
    }
    s.push('/');
    s.push_str(account);
    s.push_str(path);
    let mut params: Vec<(String, String)> = query
        .iter()
        .map(|(n, v)| (n.to_ascii_lowercase(), v.clone()))
        .collect();
    params.sort();
    let mut i = 0;
    while i < params.len() {
        let name = params[i].0.clone();
        let mut values = Vec::new();
        while i < params.len() && params[i].0 == name {
            values.push(params[i].1.clone());
            i += 1;
        }
        s.push('\n');
        s.push_str(&name);
        s.push(':');
        s.push_str(&values.join(","));
    }
    s
}

fn hmac_base64(key: &[u8], message: &str) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key);
    BASE64.encode(ring::hmac::sign(&key, message.as_bytes()).as_ref())
}

/// An account SAS for the Blob service (`ss=b`), signed with the account's
/// base64 key: service version `2020-12-06` and later string-to-sign
/// (account, permissions, services, resource types, start, expiry, IP,
/// protocol, version, encryption scope). `permissions` are letters such as
/// `rwdlac`, `resource_types` letters of `sco`, `expiry` ISO 8601 UTC such as
/// `2099-01-01T00:00:00Z`. Returns the query string without `?`.
pub fn account_sas(
    account: &str,
    key_base64: &str,
    permissions: &str,
    resource_types: &str,
    expiry: &str,
) -> Result<String, String> {
    let Auth::SharedKey { key, .. } = Auth::shared_key(account, key_base64)? else {
        return Err("not a shared key".into());
    };
    let version = super::client::API_VERSION;
    let to_sign = format!(
        "{account}\n{permissions}\nb\n{resource_types}\n\n{expiry}\n\nhttps,http\n{version}\n\n"
    );
    let sig = hmac_base64(&key, &to_sign);
    Ok(format!(
        "sv={version}&ss=b&srt={resource_types}&sp={permissions}&se={}&spr=https,http&sig={}",
        percent_encode(expiry),
        percent_encode(&sig)
    ))
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
pub(crate) fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Decodes `%XX` escapes (and `+` as space, as query strings do); bad
/// escapes stay as they are.
pub(crate) fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(v) => {
                        out.push(v);
                        i += 3;
                    }
                    Err(_) => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The worked example's shape from "Authorize with Shared Key": the
    /// canonicalized headers sorted, query parameters lowercased, sorted and
    /// their values joined.
    #[test]
    fn string_to_sign_follows_the_canonical_form() {
        let headers = vec![
            ("x-ms-version".to_string(), "2021-08-06".to_string()),
            (
                "x-ms-date".to_string(),
                "Fri, 26 Jun 2015 23:39:12 GMT".to_string(),
            ),
            ("x-ms-range".to_string(), "bytes=0-511".to_string()),
            ("If-None-Match".to_string(), "*".to_string()),
        ];
        let query = vec![
            ("comp".to_string(), "pagelist".to_string()),
            (
                "Snapshot".to_string(),
                "2024-01-01T00:00:00.0000000Z".to_string(),
            ),
        ];
        let s = string_to_sign("acct", "GET", "/acct/c/b.vhd", &query, &headers, 0);
        assert_eq!(
            s,
            "GET\n\n\n\n\n\n\n\n\n*\n\n\n\
             x-ms-date:Fri, 26 Jun 2015 23:39:12 GMT\nx-ms-range:bytes=0-511\nx-ms-version:2021-08-06\n\
             /acct/acct/c/b.vhd\ncomp:pagelist\nsnapshot:2024-01-01T00:00:00.0000000Z"
        );
    }

    /// RFC 4231 test case 2 for HMAC-SHA256.
    #[test]
    fn hmac_matches_rfc_4231() {
        let sig = hmac_base64(b"Jefe", "what do ya want for nothing?");
        let raw = BASE64.decode(sig).unwrap();
        assert_eq!(
            hex::encode(raw),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn debug_and_redact_hide_secrets() {
        let auth = Auth::shared_key("acct", "c2VjcmV0LWtleS1ieXRlcw==").unwrap();
        assert!(!format!("{auth:?}").contains("c2VjcmV0"));
        assert_eq!(
            auth.redact("key c2VjcmV0LWtleS1ieXRlcw== leaked"),
            "key <redacted> leaked"
        );
        let sas = Auth::sas("?sv=1&sig=abc%2Bdef");
        assert!(!format!("{sas:?}").contains("abc"));
        assert_eq!(
            sas.redact("sig abc+def and abc%2Bdef"),
            "sig <redacted> and <redacted>"
        );
        assert!(
            Auth::shared_key("acct", "not base64!")
                .unwrap_err()
                .find("not base64!")
                .is_none()
        );
    }

    #[test]
    fn percent_round_trip() {
        let t = "2024-01-01T00:00:00.0000000Z/+=";
        assert_eq!(percent_decode(&percent_encode(t)), t);
    }
}

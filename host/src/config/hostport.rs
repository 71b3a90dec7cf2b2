//! `host:port` network grants and their normalisation.
//!
//! Grants are compared against the host of each outgoing request, so both
//! sides must be spelled the same way. Normalisation (lower-case, one
//! trailing dot removed, IP literals in canonical form, `localhost` →
//! `127.0.0.1`) happens once here, for grants via [`str::parse`] and for
//! request hosts via [`HostPort::from_authority`], so matching is plain
//! equality.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr};
use std::str::FromStr;

/// A normalised `host:port` pair, e.g. from a `network` grant.
///
/// `host` never carries IPv6 brackets; [`Display`](fmt::Display) adds them
/// back (`[::1]:443`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HostPort {
    /// Lower-case host name, or canonical IP address text.
    pub host: String,
    /// Port, never 0.
    pub port: u16,
}

/// Why a `host:port` grant entry was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostPortError {
    /// The entry is empty.
    #[error("empty entry: write host:port, e.g. example.com:443")]
    Empty,
    /// The entry contains whitespace.
    #[error("whitespace is not allowed in host:port")]
    Whitespace,
    /// The entry looks like a URL.
    #[error("scheme not allowed: write host:port, not a URL")]
    Scheme,
    /// The entry has a path, query or fragment.
    #[error("path not allowed: write host:port only")]
    Path,
    /// The entry has `user@`.
    #[error("user info (`user@`) is not allowed: write host:port only")]
    UserInfo,
    /// The entry contains `*`.
    #[error("wildcards are not allowed in grants: list each host explicitly")]
    Wildcard,
    /// No `:port` suffix.
    #[error("missing port: write host:port, e.g. example.com:443")]
    MissingPort,
    /// Port 0.
    #[error("port 0 is not allowed")]
    PortZero,
    /// Port is not a number in `1..=65535`.
    #[error("invalid port `{0}`: expected a number from 1 to 65535")]
    InvalidPort(String),
    /// Nothing before `:port`.
    #[error("missing host before the port")]
    MissingHost,
    /// An IPv6 address without brackets, e.g. `::1:443`.
    #[error("IPv6 addresses must be in brackets, e.g. [::1]:443")]
    UnbracketedIpv6,
    /// Text in brackets that is not an IPv6 address.
    #[error("invalid IPv6 address `{0}`")]
    InvalidIpv6(String),
    /// The host is not a valid DNS name or IPv4 address.
    #[error("invalid host `{host}`: {reason}")]
    InvalidHost {
        /// The offending host text.
        host: String,
        /// What is wrong with it.
        reason: &'static str,
    },
}

impl HostPort {
    /// Builds a `HostPort` from an already-split authority, e.g. a request
    /// URL's host and port, applying the same normalisation as parsing a
    /// grant (brackets stripped, lower-cased, trailing dot removed, canonical
    /// IPs, `localhost` → `127.0.0.1`). It does not validate: an odd host
    /// simply will not match any grant.
    pub fn from_authority(host: &str, port: u16) -> HostPort {
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        HostPort {
            host: normalise_host(host),
            port,
        }
    }
}

/// Lower-case, strip one trailing dot, canonicalise IPs, map `localhost`.
fn normalise_host(host: &str) -> String {
    let lower = host.to_ascii_lowercase();
    let trimmed = lower.strip_suffix('.').unwrap_or(&lower);
    if trimmed == "localhost" {
        // The host resolves it to loopback anyway; one spelling keeps
        // matching simple. IPv4 because that is what `localhost` means first.
        return "127.0.0.1".to_owned();
    }
    match trimmed.parse::<IpAddr>() {
        // to_canonical: `::ffff:10.0.0.1` is the same peer as `10.0.0.1`.
        Ok(ip) => ip.to_canonical().to_string(),
        Err(_) => trimmed.to_owned(),
    }
}

impl FromStr for HostPort {
    type Err = HostPortError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() {
            return Err(HostPortError::Empty);
        }
        // Order matters: report the most specific mistake first.
        if s.contains("://") {
            return Err(HostPortError::Scheme);
        }
        if s.chars().any(char::is_whitespace) {
            return Err(HostPortError::Whitespace);
        }
        if s.contains('*') {
            return Err(HostPortError::Wildcard);
        }
        if s.contains(['/', '?', '#']) {
            return Err(HostPortError::Path);
        }
        if s.contains('@') {
            return Err(HostPortError::UserInfo);
        }

        let (host, port) = if let Some(rest) = s.strip_prefix('[') {
            let (inside, after) = rest
                .split_once(']')
                .ok_or_else(|| HostPortError::InvalidIpv6(rest.to_owned()))?;
            let ip: Ipv6Addr = inside
                .parse()
                .map_err(|_| HostPortError::InvalidIpv6(inside.to_owned()))?;
            let port = after.strip_prefix(':').ok_or(if after.is_empty() {
                HostPortError::MissingPort
            } else {
                HostPortError::InvalidPort(after.to_owned())
            })?;
            (IpAddr::V6(ip).to_canonical().to_string(), port)
        } else {
            let (host, port) = s.rsplit_once(':').ok_or(HostPortError::MissingPort)?;
            if host.contains(':') {
                return Err(HostPortError::UnbracketedIpv6);
            }
            if host.is_empty() {
                return Err(HostPortError::MissingHost);
            }
            validate_host(host)?;
            (normalise_host(host), port)
        };

        Ok(HostPort {
            host,
            port: parse_port(port)?,
        })
    }
}

fn parse_port(port: &str) -> Result<u16, HostPortError> {
    if port.is_empty() {
        return Err(HostPortError::MissingPort);
    }
    // Digits only: u16::from_str would also accept a leading `+`.
    if !port.bytes().all(|b| b.is_ascii_digit()) {
        return Err(HostPortError::InvalidPort(port.to_owned()));
    }
    match port.parse::<u16>() {
        Ok(0) => Err(HostPortError::PortZero),
        Ok(p) => Ok(p),
        Err(_) => Err(HostPortError::InvalidPort(port.to_owned())),
    }
}

/// Checks a non-bracketed host: a DNS name or dotted IPv4 address.
fn validate_host(host: &str) -> Result<(), HostPortError> {
    let invalid = |reason| {
        Err(HostPortError::InvalidHost {
            host: host.to_owned(),
            reason,
        })
    };
    let name = host.strip_suffix('.').unwrap_or(host);
    if name.parse::<IpAddr>().is_ok() {
        return Ok(());
    }
    if name.len() > 253 {
        return invalid("longer than 253 characters");
    }
    let labels: Vec<&str> = name.split('.').collect();
    for label in &labels {
        if label.is_empty() {
            return invalid("empty label");
        }
        if label.len() > 63 {
            return invalid("label longer than 63 characters");
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return invalid("only letters, digits, `-`, `_` and `.` are allowed");
        }
        if label.starts_with('-') || label.ends_with('-') {
            return invalid("labels must not start or end with `-`");
        }
    }
    // URL parsers read a host whose last label is numeric as an IPv4
    // address (`127.1` = `127.0.0.1`); refuse such spellings so a grant can
    // never mean something other than what it says.
    if labels
        .last()
        .is_some_and(|l| l.bytes().all(|b| b.is_ascii_digit()) || l.starts_with("0x"))
    {
        return invalid("looks like a malformed IPv4 address");
    }
    Ok(())
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

//! TLS trust for a granted endpoint: which certificate the host accepts when a
//! plugin calls `https://host:port`.
//!
//! By default the host trusts the public web PKI roots. Hypervisor endpoints
//! (vCenter, ESXi) usually carry a self-signed or internal-CA certificate, so
//! the operator can name, per granted `host:port`, either a CA bundle (PEM) or
//! the certificate's pinned thumbprint, as vSphere clients do (`govc
//! --thumbprint`). Verification is never switched off.
//!
//! This module describes and checks the setting; `plugin/tls.rs` enforces it.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use sha2::{Digest, Sha256};

use super::hostport::HostPort;

/// What the host trusts for one granted endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsGrant {
    /// The endpoint, as in `grants.network`.
    pub endpoint: HostPort,
    /// How its certificate is checked.
    pub trust: TlsTrust,
}

/// How an endpoint's certificate is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsTrust {
    /// Certificates issued (directly or through the chain the server sends) by
    /// a CA in this PEM file, for the name the plugin asked for.
    Ca(PathBuf),
    /// Exactly the certificate with this thumbprint, whatever its issuer,
    /// name or dates (what pinning means: the operator vouches for it).
    Thumbprint(Thumbprint),
}

/// The digest a thumbprint is made with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ThumbprintAlgorithm {
    /// SHA-256: what current vCenter shows first, and the recommended pin.
    Sha256,
    /// SHA-1: what older vSphere clients and `govc` print. Accepted because a
    /// pin needs a second preimage, not a collision, to be forged.
    Sha1,
}

impl ThumbprintAlgorithm {
    /// Digest length in bytes.
    fn len(self) -> usize {
        match self {
            ThumbprintAlgorithm::Sha256 => 32,
            ThumbprintAlgorithm::Sha1 => 20,
        }
    }

    fn name(self) -> &'static str {
        match self {
            ThumbprintAlgorithm::Sha256 => "sha256",
            ThumbprintAlgorithm::Sha1 => "sha1",
        }
    }
}

/// A certificate thumbprint: the digest of its DER encoding.
///
/// Parsed from `sha256:AB:CD:…`, `sha1:…`, or bare hex with or without
/// colons (64 digits are SHA-256, 40 are SHA-1); case does not matter.
/// Displays as `sha256:AB:CD:…`, the spelling vCenter shows.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Thumbprint {
    algorithm: ThumbprintAlgorithm,
    digest: Vec<u8>,
}

/// Why a thumbprint does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ThumbprintError(String);

impl Thumbprint {
    /// The thumbprint of a DER-encoded certificate.
    pub fn of(algorithm: ThumbprintAlgorithm, der: &[u8]) -> Thumbprint {
        let digest = match algorithm {
            ThumbprintAlgorithm::Sha256 => Sha256::digest(der).to_vec(),
            ThumbprintAlgorithm::Sha1 => {
                ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, der)
                    .as_ref()
                    .to_vec()
            }
        };
        Thumbprint { algorithm, digest }
    }

    /// Which digest it is.
    pub fn algorithm(&self) -> ThumbprintAlgorithm {
        self.algorithm
    }

    /// Whether `der` is the certificate this thumbprint pins.
    pub fn matches(&self, der: &[u8]) -> bool {
        Thumbprint::of(self.algorithm, der) == *self
    }
}

impl FromStr for Thumbprint {
    type Err = ThumbprintError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.trim().to_ascii_lowercase();
        let (named, hex_part) = if let Some(rest) = lower.strip_prefix("sha256:") {
            (Some(ThumbprintAlgorithm::Sha256), rest)
        } else if let Some(rest) = lower.strip_prefix("sha1:") {
            (Some(ThumbprintAlgorithm::Sha1), rest)
        } else {
            (None, lower.as_str())
        };
        let digits: String = hex_part.chars().filter(|c| *c != ':').collect();
        if let Some(c) = digits.chars().find(|c| !c.is_ascii_hexdigit()) {
            return Err(ThumbprintError(format!(
                "expected hex digits (optionally separated by `:`), found `{}`; \
                 write e.g. \"sha256:AB:CD:…\" as vCenter shows it",
                c.escape_debug()
            )));
        }
        let algorithm = match (named, digits.len()) {
            (Some(a), n) if n == a.len() * 2 => a,
            (Some(a), n) => {
                return Err(ThumbprintError(format!(
                    "a {} thumbprint has {} hex digits, found {n}",
                    a.name(),
                    a.len() * 2
                )));
            }
            (None, 64) => ThumbprintAlgorithm::Sha256,
            (None, 40) => ThumbprintAlgorithm::Sha1,
            (None, n) => {
                return Err(ThumbprintError(format!(
                    "expected 64 hex digits (SHA-256) or 40 (SHA-1), found {n}"
                )));
            }
        };
        let digest = hex::decode(&digits)
            .map_err(|e| ThumbprintError(format!("invalid hex in thumbprint: {e}")))?;
        Ok(Thumbprint { algorithm, digest })
    }
}

impl fmt::Display for Thumbprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:", self.algorithm.name())?;
        for (i, byte) in self.digest.iter().enumerate() {
            if i > 0 {
                f.write_str(":")?;
            }
            write!(f, "{byte:02X}")?;
        }
        Ok(())
    }
}

/// Why a CA file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CaFileError {
    /// The file cannot be read.
    #[error("cannot read CA file `{path}`: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// A PEM section is malformed.
    #[error("CA file `{path}` is not valid PEM: {reason}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The file holds no `CERTIFICATE` section.
    #[error(
        "CA file `{path}` holds no certificate: expected one or more \
         -----BEGIN CERTIFICATE----- sections"
    )]
    Empty {
        /// The file.
        path: PathBuf,
    },
    /// A certificate cannot serve as a trust anchor.
    #[error("CA file `{path}`: certificate {index} cannot be used as a CA: {reason}")]
    BadCertificate {
        /// The file.
        path: PathBuf,
        /// 1-based position among the file's certificates.
        index: usize,
        /// What is wrong.
        reason: String,
    },
}

/// Reads a PEM CA bundle into a root store. Sections other than
/// `CERTIFICATE` (keys, CRLs) are ignored; at least one certificate must be
/// there, and every one must be usable as a trust anchor.
pub fn read_ca_file(path: &Path) -> Result<rustls::RootCertStore, CaFileError> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;

    let bytes = std::fs::read(path).map_err(|source| CaFileError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let mut roots = rustls::RootCertStore::empty();
    for (i, cert) in CertificateDer::pem_slice_iter(&bytes).enumerate() {
        let cert = cert.map_err(|e| CaFileError::Pem {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        roots.add(cert).map_err(|e| CaFileError::BadCertificate {
            path: path.to_path_buf(),
            index: i + 1,
            reason: e.to_string(),
        })?;
    }
    if roots.is_empty() {
        return Err(CaFileError::Empty {
            path: path.to_path_buf(),
        });
    }
    Ok(roots)
}

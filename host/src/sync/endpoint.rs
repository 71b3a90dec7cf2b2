//! Where a disk's bytes are, as the data path reaches them: a disk image or
//! device node on this host, or an Azure page blob (a cloud disk, a fixed
//! VHD) reached over HTTP(S) with its credential.
//!
//! A [`DiskEndpoint`] holds a credential, so it is never persisted or
//! printed whole: [`DiskEndpoint::address`] is what messages, job outputs
//! and the state store show (the path, or the blob URL without its query),
//! and its `Debug` does the same.

use crate::disk::image::{self, ImageFormat};
use crate::disk::{BlockDevice, page_blob};
use crate::plugin::adapter::BlobEndpoint;
use std::path::{Path, PathBuf};

/// A disk the data path reads or writes.
#[derive(Clone)]
pub enum DiskEndpoint {
    /// An image (raw, VMDK monolithicFlat, VHD fixed) or device at this path.
    Path(PathBuf),
    /// A page blob holding a fixed VHD, and how to authenticate to it.
    Blob(BlobEndpoint),
}

impl DiskEndpoint {
    /// What to show and record of the disk: its path, or its blob URL
    /// without the query (which may hold a SAS). Never a credential.
    pub fn address(&self) -> String {
        match self {
            DiskEndpoint::Path(path) => path.display().to_string(),
            DiskEndpoint::Blob(blob) => url_without_query(&blob.url),
        }
    }

    /// The last part of the address (a file name or blob name), for
    /// progress labels.
    pub fn short_name(&self) -> String {
        let address = self.address();
        let trimmed = address.trim_end_matches('/');
        trimmed
            .rsplit('/')
            .next()
            .filter(|n| !n.is_empty())
            .unwrap_or(trimmed)
            .to_string()
    }

    /// The path, when the disk is on this host.
    pub fn local_path(&self) -> Option<&Path> {
        match self {
            DiskEndpoint::Path(path) => Some(path),
            DiskEndpoint::Blob(_) => None,
        }
    }

    /// Opens the disk, for writing too when `writable`. A path's format
    /// comes from its content and must agree with `declared` when given; a
    /// page blob is always a fixed VHD, so `declared` may only say so.
    pub fn open(
        &self,
        writable: bool,
        declared: Option<ImageFormat>,
    ) -> Result<Box<dyn BlockDevice>, String> {
        match self {
            DiskEndpoint::Path(path) => {
                image::open(path, writable, declared).map_err(|e| e.to_string())
            }
            DiskEndpoint::Blob(blob) => {
                if let Some(format) = declared.filter(|f| *f != ImageFormat::VhdFixed) {
                    return Err(format!(
                        "{} is a page blob, which holds a fixed VHD, not {}",
                        self.address(),
                        format.cli_name()
                    ));
                }
                // The page-blob code names the blob without its query.
                page_blob::open(blob, writable)
                    .map(|device| Box::new(device) as Box<dyn BlockDevice>)
                    .map_err(|e| e.to_string())
            }
        }
    }
}

impl std::fmt::Debug for DiskEndpoint {
    // The credential stays out: only the address is shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DiskEndpoint::Path(path) => f.debug_tuple("Path").field(path).finish(),
            DiskEndpoint::Blob(_) => f
                .debug_struct("Blob")
                .field("url", &self.address())
                .field("credential", &"<redacted>")
                .finish(),
        }
    }
}

impl From<PathBuf> for DiskEndpoint {
    fn from(path: PathBuf) -> Self {
        DiskEndpoint::Path(path)
    }
}

impl From<&PathBuf> for DiskEndpoint {
    fn from(path: &PathBuf) -> Self {
        DiskEndpoint::Path(path.clone())
    }
}

impl From<&Path> for DiskEndpoint {
    fn from(path: &Path) -> Self {
        DiskEndpoint::Path(path.to_path_buf())
    }
}

impl From<BlobEndpoint> for DiskEndpoint {
    fn from(blob: BlobEndpoint) -> Self {
        DiskEndpoint::Blob(blob)
    }
}

impl From<&DiskEndpoint> for DiskEndpoint {
    fn from(endpoint: &DiskEndpoint) -> Self {
        endpoint.clone()
    }
}

/// `url` up to its query or fragment (a SAS travels in the query).
pub fn url_without_query(url: &str) -> String {
    url.trim()
        .split(['?', '#'])
        .next()
        .unwrap_or_default()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::adapter::BlobCredential;

    #[test]
    fn a_blob_shows_neither_its_sas_nor_its_key() {
        let sas = DiskEndpoint::Blob(BlobEndpoint {
            url: "https://acct.blob.core.windows.net/disks/web01-os.vhd?sv=2021&sig=SECRET".into(),
            credential: BlobCredential::None,
        });
        let key = DiskEndpoint::Blob(BlobEndpoint {
            url: "http://127.0.0.1:10000/devstoreaccount1/disks/web01-data0.vhd".into(),
            credential: BlobCredential::SharedKey(("acct".into(), "S3CRETKEY==".into())),
        });
        for e in [&sas, &key] {
            let shown = format!("{} {:?} {}", e.address(), e, e.short_name());
            assert!(
                !shown.contains("SECRET") && !shown.contains("S3CRET"),
                "{shown}"
            );
        }
        assert_eq!(
            sas.address(),
            "https://acct.blob.core.windows.net/disks/web01-os.vhd"
        );
        assert_eq!(sas.short_name(), "web01-os.vhd");
        assert_eq!(key.short_name(), "web01-data0.vhd");
    }

    #[test]
    fn a_blob_is_never_opened_as_another_format() {
        let blob = DiskEndpoint::Blob(BlobEndpoint {
            url: "http://127.0.0.1:1/acct/disks/x.vhd".into(),
            credential: BlobCredential::None,
        });
        let refused = blob
            .open(false, Some(ImageFormat::VmdkFlat))
            .err()
            .unwrap_or_default();
        assert!(refused.contains("fixed VHD"), "{refused}");
    }
}

//! What the journal records about a recovery point.

use serde::{Deserialize, Serialize};

/// Longest label the journal records, in bytes.
pub const MAX_LABEL: usize = 1024;
/// Longest consistency id the journal records, in bytes.
pub const MAX_CONSISTENCY_ID: usize = 256;

/// A retained recovery point.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PointMeta {
    /// Sequence number: increases with every committed point and is never
    /// reused, also after a rollback.
    pub seq: u64,
    /// When the point was taken at the source (Unix time, milliseconds).
    pub taken_at: u64,
    /// Taken from a quiesced (application-consistent) snapshot.
    pub app_consistent: bool,
    /// The group barrier the point belongs to (multi-VM consistency).
    pub consistency_id: Option<String>,
    /// The data path's whole-disk digest of the replica at this point (BLAKE3
    /// over the xxh3-128 of each 1 MiB block), hex.
    pub digest: String,
    /// Free text for operators (the cycle or snapshot that made the point).
    pub label: String,
}

/// What the caller says about a point it commits; the journal adds the
/// sequence number and the digest.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewPointMeta {
    /// When the point was taken at the source (Unix time, milliseconds).
    pub taken_at: u64,
    /// Taken from a quiesced snapshot.
    pub app_consistent: bool,
    /// The group barrier the point belongs to.
    pub consistency_id: Option<String>,
    /// Free text for operators.
    pub label: String,
}

impl NewPointMeta {
    /// Checks the sizes the points log bounds its records by.
    pub(crate) fn check(&self) -> Result<(), String> {
        if self.label.len() > MAX_LABEL {
            return Err(format!(
                "the label has {} bytes; at most {MAX_LABEL} are recorded",
                self.label.len()
            ));
        }
        if let Some(id) = &self.consistency_id
            && (id.is_empty() || id.len() > MAX_CONSISTENCY_ID)
        {
            return Err(format!(
                "a consistency id must have 1 to {MAX_CONSISTENCY_ID} bytes, this one has {}",
                id.len()
            ));
        }
        Ok(())
    }
}

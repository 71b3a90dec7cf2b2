//! The generated gRPC code of `proto/replication.proto`, and the conversions
//! between its messages and the host's types: blob target and blob endpoint,
//! journal points, pruned points, alarms and retention.
#![allow(missing_docs, clippy::all, clippy::pedantic)]

tonic::include_proto!("homeward.replication.v1");

use crate::plugin::adapter::{BlobCredential, BlobEndpoint};

// A blob target carries a credential: its `Debug` (generation skipped in
// build.rs) shows the URL without query and never the SAS or key.
impl std::fmt::Debug for BlobTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobTarget")
            .field("url", &super::endpoint::url_without_query(&self.url))
            .field("credential", &self.credential)
            .finish()
    }
}

impl std::fmt::Debug for blob_target::Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            blob_target::Credential::SasToken(_) => f.write_str("SasToken(<redacted>)"),
            blob_target::Credential::SharedKey(k) => f.debug_tuple("SharedKey").field(k).finish(),
        }
    }
}

impl std::fmt::Debug for SharedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedKey")
            .field("account", &self.account)
            .field("key", &"<redacted>")
            .finish()
    }
}

impl From<&BlobEndpoint> for BlobTarget {
    fn from(blob: &BlobEndpoint) -> Self {
        BlobTarget {
            url: blob.url.clone(),
            credential: match &blob.credential {
                BlobCredential::None => None,
                BlobCredential::SasToken(token) => {
                    Some(blob_target::Credential::SasToken(token.clone()))
                }
                BlobCredential::SharedKey((account, key)) => {
                    Some(blob_target::Credential::SharedKey(SharedKey {
                        account: account.clone(),
                        key: key.clone(),
                    }))
                }
            },
        }
    }
}

impl From<BlobTarget> for BlobEndpoint {
    fn from(target: BlobTarget) -> Self {
        BlobEndpoint {
            url: target.url,
            credential: match target.credential {
                None => BlobCredential::None,
                Some(blob_target::Credential::SasToken(token)) => BlobCredential::SasToken(token),
                Some(blob_target::Credential::SharedKey(k)) => {
                    BlobCredential::SharedKey((k.account, k.key))
                }
            },
        }
    }
}

use crate::journal;
use std::time::Duration;

impl From<&journal::PointMeta> for JournalPoint {
    fn from(p: &journal::PointMeta) -> Self {
        JournalPoint {
            seq: p.seq,
            taken_at: p.taken_at,
            app_consistent: p.app_consistent,
            consistency_id: p.consistency_id.clone().unwrap_or_default(),
            digest: p.digest.clone(),
            label: p.label.clone(),
        }
    }
}

impl From<JournalPoint> for journal::PointMeta {
    fn from(p: JournalPoint) -> Self {
        journal::PointMeta {
            seq: p.seq,
            taken_at: p.taken_at,
            app_consistent: p.app_consistent,
            consistency_id: Some(p.consistency_id).filter(|id| !id.is_empty()),
            digest: p.digest,
            label: p.label,
        }
    }
}

impl From<&journal::Pruned> for PrunedPoint {
    fn from(p: &journal::Pruned) -> Self {
        let reason = match p.reason {
            journal::PruneReason::Expired => PruneReason::Expired,
            journal::PruneReason::Thinned => PruneReason::Thinned,
            journal::PruneReason::OverMaxPoints => PruneReason::OverMaxPoints,
            journal::PruneReason::SizeCap => PruneReason::SizeCap,
        };
        PrunedPoint {
            seq: p.seq,
            taken_at: p.taken_at,
            reason: reason as i32,
        }
    }
}

impl PrunedPoint {
    /// The journal's record of the drop; `None` for a reason this build
    /// does not know (a newer peer).
    pub fn to_journal(&self) -> Option<journal::Pruned> {
        let reason = match PruneReason::try_from(self.reason).ok()? {
            PruneReason::Expired => journal::PruneReason::Expired,
            PruneReason::Thinned => journal::PruneReason::Thinned,
            PruneReason::OverMaxPoints => journal::PruneReason::OverMaxPoints,
            PruneReason::SizeCap => journal::PruneReason::SizeCap,
            PruneReason::Unspecified => return None,
        };
        Some(journal::Pruned {
            seq: self.seq,
            taken_at: self.taken_at,
            reason,
        })
    }
}

impl From<&journal::Alarm> for DroppedEarly {
    fn from(alarm: &journal::Alarm) -> Self {
        match alarm {
            journal::Alarm::DroppedEarly {
                seq,
                taken_at,
                reason,
            } => DroppedEarly {
                seq: *seq,
                taken_at: *taken_at,
                reason: reason.clone(),
            },
        }
    }
}

impl From<DroppedEarly> for journal::Alarm {
    fn from(d: DroppedEarly) -> Self {
        journal::Alarm::DroppedEarly {
            seq: d.seq,
            taken_at: d.taken_at,
            reason: d.reason,
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl From<&journal::JournalOptions> for JournalRetention {
    fn from(o: &journal::JournalOptions) -> Self {
        JournalRetention {
            // 0 stands for "no cap" on the wire.
            max_bytes: if o.max_bytes == u64::MAX {
                0
            } else {
                o.max_bytes.max(1)
            },
            keep_all_for_ms: millis(o.retention.keep_all_for),
            then_one_per_ms: millis(o.retention.then_one_per),
            max_age_ms: millis(o.retention.max_age),
            max_points: o
                .retention
                .max_points
                .map_or(0, |n| u64::try_from(n.max(1)).unwrap_or(u64::MAX)),
        }
    }
}

impl From<&JournalRetention> for journal::JournalOptions {
    fn from(r: &JournalRetention) -> Self {
        journal::JournalOptions {
            max_bytes: if r.max_bytes == 0 {
                u64::MAX
            } else {
                r.max_bytes
            },
            retention: journal::Retention {
                keep_all_for: Duration::from_millis(r.keep_all_for_ms),
                then_one_per: Duration::from_millis(r.then_one_per_ms),
                max_age: Duration::from_millis(r.max_age_ms),
                max_points: (r.max_points > 0)
                    .then(|| usize::try_from(r.max_points).unwrap_or(usize::MAX)),
            },
        }
    }
}

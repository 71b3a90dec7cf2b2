//! The generated gRPC code of `proto/replication.proto`, and the conversions
//! between its blob target and the host's blob endpoint.
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
                BlobCredential::SasToken(token) => Some(blob_target::Credential::SasToken(token.clone())),
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
                Some(blob_target::Credential::SharedKey(k)) => BlobCredential::SharedKey((k.account, k.key)),
            },
        }
    }
}

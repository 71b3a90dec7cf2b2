//! The plugin's configuration, read once per call from the host's `config`
//! interface (keys and defaults are listed in the crate documentation).
//!
//! Reading is separated from use so that a missing or malformed key is an
//! `invalid-input` naming the key before any request leaves the plugin.

use homeward_sdk::Error;
use homeward_sdk::config;

/// Where ARM is when neither `arm-endpoint` nor `url` is set.
pub const DEFAULT_ARM_ENDPOINT: &str = "https://management.azure.com";
/// The Microsoft identity platform's v2.0 token endpoint; `{tenant}` is
/// replaced with config `tenant-id`.
pub const DEFAULT_TOKEN_ENDPOINT: &str =
    "https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token";
/// Retries of a throttled (429) or unavailable (503) request.
pub const DEFAULT_MAX_RETRIES: u32 = 3;
/// The budget of one plugin call, below the host's default call deadline
/// (30 s), so the plugin answers `unavailable` itself instead of being
/// stopped mid-request.
pub const DEFAULT_TIMEOUT_MS: u64 = 20_000;
/// The container of the page blobs managed-disk ids map to.
pub const DEFAULT_DISK_CONTAINER: &str = "disks";

/// How `changed-ranges` finds changed pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeTracking {
    /// The Blob service's page-range diff (`Get Page Ranges` with `prevsnapshot`).
    ServiceDiff,
    /// Page ranges of both snapshots, then the candidate blocks read and
    /// compared by SHA-256 digest.
    Compare,
}

impl ChangeTracking {
    /// The name reported in `change-set.method`.
    pub fn method(self) -> &'static str {
        match self {
            ChangeTracking::ServiceDiff => "service-diff",
            ChangeTracking::Compare => "page-range-compare",
        }
    }
}

/// The service principal ARM calls are made as.
#[derive(Clone)]
pub struct Principal {
    /// Directory (tenant) id, when set.
    pub tenant_id: Option<String>,
    /// Application (client) id.
    pub client_id: String,
    /// Client secret; never logged, never put in a message.
    pub client_secret: String,
}

/// How storage requests authenticate.
#[derive(Clone)]
pub enum StorageCredential {
    /// The account's base64 Shared Key.
    SharedKey(String),
    /// A SAS query string without the leading `?`.
    Sas(String),
}

/// Storage account settings (only needed by the disk calls).
#[derive(Clone)]
pub struct Storage {
    /// Account name (Shared Key signing names it).
    pub account: String,
    /// Blob service URL without a trailing `/`, e.g.
    /// `https://acct.blob.core.windows.net` or
    /// `http://127.0.0.1:10000/devstoreaccount1` (Azurite, path style).
    pub endpoint: String,
    /// Credential.
    pub credential: StorageCredential,
    /// Container that managed-disk ids map to.
    pub disk_container: String,
}

/// Everything a call needs to know.
#[derive(Clone)]
pub struct Settings {
    /// Subscription id.
    pub subscription_id: String,
    /// Resource group new objects go into.
    pub resource_group: String,
    /// ARM base URL without a trailing `/`.
    pub arm_endpoint: String,
    /// Token endpoint URL, tenant substituted.
    pub token_endpoint: String,
    /// The service principal.
    pub principal: Principal,
    /// Storage, when configured.
    pub storage: Option<Storage>,
    /// The configured change tracking.
    pub change_tracking: ChangeTracking,
    /// Retries of 429/503.
    pub max_retries: u32,
    /// Budget of one plugin call.
    pub timeout_ms: u64,
    /// `osType` of VMs created from disks (`Linux` or `Windows`).
    pub os_type: String,
}

impl std::fmt::Debug for Settings {
    /// Leaves the secrets out.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("subscription_id", &self.subscription_id)
            .field("resource_group", &self.resource_group)
            .field("arm_endpoint", &self.arm_endpoint)
            .field("token_endpoint", &self.token_endpoint)
            .field("client_id", &self.principal.client_id)
            .finish_non_exhaustive()
    }
}

/// A configuration source: the host's `config` in the plugin, a map in tests.
pub trait Source {
    /// A plain value.
    fn get(&self, key: &str) -> Option<String>;
    /// A secret.
    fn secret(&self, key: &str) -> Option<String>;
}

/// The host's `config` interface.
pub struct HostConfig;

impl Source for HostConfig {
    fn get(&self, key: &str) -> Option<String> {
        config::get(key)
    }
    fn secret(&self, key: &str) -> Option<String> {
        config::secret(key)
    }
}

fn require(source: &dyn Source, key: &str) -> Result<String, Error> {
    source.get(key).filter(|v| !v.trim().is_empty()).ok_or_else(|| {
        Error::invalid_input(format!(
            "missing configuration key `{key}`: set it in the plugin's [plugins.<id>.config] table"
        ))
    })
}

fn trim_slash(url: &str) -> String {
    url.trim_end_matches('/').to_string()
}

fn number<T: std::str::FromStr>(source: &dyn Source, key: &str, default: T) -> Result<T, Error> {
    match source.get(key) {
        None => Ok(default),
        Some(text) => text.trim().parse().map_err(|_| {
            Error::invalid_input(format!(
                "configuration key `{key}` is `{}`, not a whole number",
                text.escape_debug()
            ))
        }),
    }
}

impl Settings {
    /// Reads the settings; everything the compute calls need is required,
    /// storage only when `storage-account` or `blob-endpoint` is set.
    pub fn read(source: &dyn Source) -> Result<Settings, Error> {
        let subscription_id = require(source, "subscription-id")?;
        let resource_group = require(source, "resource-group")?;
        let client_id = require(source, "client-id")?;
        let client_secret = source.secret("client-secret").ok_or_else(|| {
            Error::invalid_input(
                "missing secret `client-secret`: set it in the plugin's [plugins.<id>.secrets] table",
            )
        })?;
        let tenant_id = source.get("tenant-id").filter(|t| !t.trim().is_empty());
        // `url` is the key the conformance suite's `--target` sets.
        let arm_endpoint = trim_slash(
            &source
                .get("arm-endpoint")
                .or_else(|| source.get("url"))
                .unwrap_or_else(|| DEFAULT_ARM_ENDPOINT.to_string()),
        );
        let token_template = source
            .get("token-endpoint")
            .unwrap_or_else(|| DEFAULT_TOKEN_ENDPOINT.to_string());
        let token_endpoint = if token_template.contains("{tenant}") {
            let tenant = tenant_id.as_deref().ok_or_else(|| {
                Error::invalid_input(
                    "missing configuration key `tenant-id`: the token endpoint names the tenant \
                     (or set `token-endpoint` to a full URL)",
                )
            })?;
            token_template.replace("{tenant}", tenant)
        } else {
            token_template
        };
        let change_tracking = match source.get("change-tracking").as_deref().map(str::trim) {
            None | Some("compare") => ChangeTracking::Compare,
            Some("service-diff") => ChangeTracking::ServiceDiff,
            Some(other) => {
                return Err(Error::invalid_input(format!(
                    "configuration key `change-tracking` is `{}`: use `compare` or `service-diff`",
                    other.escape_debug()
                )));
            }
        };
        let os_type = match source.get("os-type").as_deref() {
            None | Some("Linux") | Some("linux") => "Linux".to_string(),
            Some("Windows") | Some("windows") => "Windows".to_string(),
            Some(other) => {
                return Err(Error::invalid_input(format!(
                    "configuration key `os-type` is `{}`: use `Linux` or `Windows`",
                    other.escape_debug()
                )));
            }
        };
        Ok(Settings {
            subscription_id,
            resource_group,
            arm_endpoint,
            token_endpoint,
            principal: Principal {
                tenant_id,
                client_id,
                client_secret,
            },
            storage: Self::read_storage(source)?,
            change_tracking,
            max_retries: number(source, "max-retries", DEFAULT_MAX_RETRIES)?,
            timeout_ms: number(source, "timeout-ms", DEFAULT_TIMEOUT_MS)?,
            os_type,
        })
    }

    fn read_storage(source: &dyn Source) -> Result<Option<Storage>, Error> {
        let account = source
            .get("storage-account")
            .filter(|a| !a.trim().is_empty());
        let endpoint = source.get("blob-endpoint").filter(|e| !e.trim().is_empty());
        let (account, endpoint) = match (account, endpoint) {
            (None, None) => return Ok(None),
            (Some(account), Some(endpoint)) => (account, trim_slash(&endpoint)),
            (Some(account), None) => {
                let endpoint = format!("https://{account}.blob.core.windows.net");
                (account, endpoint)
            }
            (None, Some(_)) => {
                return Err(Error::invalid_input(
                    "missing configuration key `storage-account`: `blob-endpoint` is set, and \
                     requests are signed for an account",
                ));
            }
        };
        let credential = match (source.secret("storage-key"), source.secret("storage-sas")) {
            (Some(key), _) => StorageCredential::SharedKey(key),
            (None, Some(sas)) => StorageCredential::Sas(sas.trim_start_matches('?').to_string()),
            (None, None) => {
                return Err(Error::invalid_input(
                    "missing secret `storage-key` (the account's Shared Key) or `storage-sas`: \
                     set one in the plugin's [plugins.<id>.secrets] table",
                ));
            }
        };
        let disk_container = source
            .get("disk-container")
            .unwrap_or_else(|| DEFAULT_DISK_CONTAINER.to_string());
        Ok(Some(Storage {
            account,
            endpoint,
            credential,
            disk_container,
        }))
    }

    /// Storage, or `invalid-input` saying what to configure for `what`.
    pub fn storage(&self, what: &str) -> Result<&Storage, Error> {
        self.storage.as_ref().ok_or_else(|| {
            Error::invalid_input(format!(
                "{what} needs storage: set configuration keys `storage-account` (and \
                 `blob-endpoint` unless it is <account>.blob.core.windows.net) and secret \
                 `storage-key` or `storage-sas`"
            ))
        })
    }
}

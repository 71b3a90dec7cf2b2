//! API tokens and who may call what.
//!
//! A token is 32 random bytes, base64url without padding (43 characters). The
//! server keeps only its SHA-256 digest (`Store::add_token`); the token itself
//! exists in the token file the server wrote for it (0600, in a 0700
//! directory) and in whatever the operator copied it to. A request names its
//! token in `authorization: Bearer TOKEN`; [`Authorized`] digests it, looks
//! the digest up and checks the role the method needs ([`required_role`]).
//! No token, and no message, ever carries the token back.

use super::state::StateDir;
use crate::store::{Role, Store, StoreError};
use base64::Engine as _;
use ring::rand::{SecureRandom, SystemRandom};
use sha2::{Digest, Sha256};
use std::fs::{self, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tonic::Status;
use tonic::body::Body;
use tonic::codegen::{BoxFuture, Context, Poll, Service, http};
use tonic::server::NamedService;

/// Random bytes in a token.
const TOKEN_BYTES: usize = 32;

/// The roles a server makes token files for, in the order it prints them.
pub const ROLES: [Role; 2] = [Role::Operator, Role::ReadOnly];

/// Why tokens could not be made, read or checked.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// A token file or its directory cannot be written or read.
    #[error("{doing} {}: {reason}", path.display())]
    File {
        doing: &'static str,
        path: PathBuf,
        reason: String,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// No randomness.
    #[error("the system's random generator failed; cannot make a token")]
    Random,
}

fn file_error(doing: &'static str, path: &Path, e: impl std::fmt::Display) -> AuthError {
    AuthError::File {
        doing,
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

/// A new random token.
pub fn new_token() -> Result<String, AuthError> {
    let mut bytes = [0u8; TOKEN_BYTES];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| AuthError::Random)?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// The SHA-256 digest the store keeps of a token.
pub fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// The token in a token file (surrounding whitespace removed).
pub fn read_token_file(path: &Path) -> Result<String, AuthError> {
    let text =
        fs::read_to_string(path).map_err(|e| file_error("cannot read the token file", path, e))?;
    let token = text.trim();
    if token.is_empty() {
        return Err(file_error("cannot use the token file", path, "it is empty"));
    }
    Ok(token.to_string())
}

/// A token file of a state directory, as the server found or made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenFile {
    /// The role its token has.
    pub role: Role,
    /// Where it is.
    pub path: PathBuf,
    /// What the server did with it.
    pub made: TokenFileState,
}

/// What happened to a token file at server start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenFileState {
    /// It was there and its token is one of this store's.
    Kept,
    /// It did not exist: a new token was made.
    Created,
    /// Its token is not one of this store's tokens of that role (a store
    /// restored from another server, a file edited by hand): a new token
    /// replaced it.
    Replaced,
}

/// Makes sure each role has a token file in `state` whose token `store`
/// knows, making new tokens where needed. Token files are 0600, their
/// directory 0700; a file found with wider permissions is narrowed.
pub fn ensure_token_files(store: &Store, state: &StateDir) -> Result<Vec<TokenFile>, AuthError> {
    let dir = state.tokens_dir();
    if !dir.is_dir() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(|e| file_error("cannot create the token directory", &dir, e))?;
    }
    let mut files = Vec::new();
    for role in ROLES {
        let path = state.token_path(role);
        let made = if path.exists() {
            narrow_permissions(&path)?;
            let known = match read_token_file(&path) {
                Ok(token) => store
                    .token_role(&digest(&token))?
                    .is_some_and(|(_, found)| found == role),
                Err(_) => false,
            };
            if known {
                TokenFileState::Kept
            } else {
                write_new_token(store, role, &path)?;
                TokenFileState::Replaced
            }
        } else {
            write_new_token(store, role, &path)?;
            TokenFileState::Created
        };
        files.push(TokenFile { role, path, made });
    }
    Ok(files)
}

fn narrow_permissions(path: &Path) -> Result<(), AuthError> {
    let meta = fs::metadata(path).map_err(|e| file_error("cannot read the token file", path, e))?;
    if meta.permissions().mode() & 0o077 != 0 {
        tracing::warn!(
            "token file {} was readable by others; narrowed to 0600",
            path.display()
        );
        fs::set_permissions(path, fs::Permissions::from_mode(0o600))
            .map_err(|e| file_error("cannot narrow the permissions of", path, e))?;
    }
    Ok(())
}

/// Makes a token, records its digest, then writes it to `path` (a 0600
/// temporary file, synced, renamed over `path`). A crash in between leaves a
/// recorded token nobody knows, which is harmless, or the old file.
fn write_new_token(store: &Store, role: Role, path: &Path) -> Result<(), AuthError> {
    let token = new_token()?;
    let digest = digest(&token);
    // Named after its role: a new token of that name replaces the old one
    // in the store (rotation), so an old copy of the file stops working.
    store.add_token(role.as_str(), role, &digest)?;
    let tmp = path.with_extension("token.tmp");
    let _ = fs::remove_file(&tmp);
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| file_error("cannot create the token file", &tmp, e))?;
    file.write_all(format!("{token}\n").as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| file_error("cannot write the token file", &tmp, e))?;
    fs::rename(&tmp, path)
        .map_err(|e| file_error("cannot put the token file in place", path, e))?;
    if let Some(dir) = path.parent()
        && let Ok(dir) = fs::File::open(dir)
    {
        let _ = dir.sync_all();
    }
    Ok(())
}

/// The role a control API method needs: read-only for Get*, List*, Watch*
/// and Discover, operator for everything else (and for names it does not know).
pub fn required_role(method: &str) -> Role {
    let reads = ["Get", "List", "Watch"]
        .iter()
        .any(|prefix| method.starts_with(prefix))
        || method == "Discover";
    if reads {
        Role::ReadOnly
    } else {
        Role::Operator
    }
}

/// Whether a token of role `has` may do what `needs` allows.
pub fn allows(has: Role, needs: Role) -> bool {
    match needs {
        Role::ReadOnly => true,
        Role::Operator => has == Role::Operator,
    }
}

/// Who called: the token's name and role. Handlers find it in the request's
/// extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The token's name in the store.
    pub name: String,
    /// Its role.
    pub role: Role,
}

/// Checks the bearer token of a request to `path` (`/package.Service/Method`).
async fn authorize(
    store: Arc<Store>,
    headers: &http::HeaderMap,
    path: &str,
) -> Result<Caller, Status> {
    let method = path.rsplit('/').next().unwrap_or_default().to_string();
    let token = bearer_token(headers).ok_or_else(|| {
        Status::unauthenticated(
            "no API token: send `authorization: Bearer TOKEN` (the `homeward` command reads \
             --token-file; the server wrote its tokens to tokens/*.token in its state directory)",
        )
    })?;
    let digest = digest(token);
    let found = tokio::task::spawn_blocking(move || store.token_role(&digest))
        .await
        .map_err(|e| Status::internal(format!("checking the token failed: {e}")))?
        .map_err(|e| Status::internal(format!("checking the token failed: {e}")))?;
    let Some((name, role)) = found else {
        return Err(Status::unauthenticated(
            "unknown API token: this server never issued it (use a token file of this server's \
             state directory; a restored store keeps the tokens of the server it came from)",
        ));
    };
    let needs = required_role(&method);
    if !allows(role, needs) {
        return Err(Status::permission_denied(format!(
            "{method} needs the {} role; token `{name}` has the {} role",
            needs.as_str(),
            role.as_str()
        )));
    }
    Ok(Caller { name, role })
}

/// The token of an `authorization: Bearer TOKEN` header.
fn bearer_token(headers: &http::HeaderMap) -> Option<&str> {
    let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// A gRPC service behind token checks: a request reaches `inner` only with a
/// known token whose role the method allows, and carries its [`Caller`].
#[derive(Clone)]
pub struct Authorized<S> {
    inner: S,
    store: Arc<Store>,
}

impl<S> Authorized<S> {
    /// `inner`, checked against the tokens of `store`.
    pub fn new(inner: S, store: Arc<Store>) -> Self {
        Authorized { inner, store }
    }
}

impl<S> Service<http::Request<Body>> for Authorized<S>
where
    S: Service<
            http::Request<Body>,
            Response = http::Response<Body>,
            Error = std::convert::Infallible,
        > + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = std::convert::Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<Body>) -> Self::Future {
        // The clone that was polled ready serves this request (tower's rule).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let store = self.store.clone();
        Box::pin(async move {
            let path = request.uri().path().to_string();
            match authorize(store, request.headers(), &path).await {
                Ok(caller) => {
                    request.extensions_mut().insert(caller);
                    inner.call(request).await
                }
                Err(status) => Ok(status.into_http()),
            }
        })
    }
}

impl<S: NamedService> NamedService for Authorized<S> {
    const NAME: &'static str = S::NAME;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_per_method() {
        for read in ["GetServer", "ListSites", "WatchJob", "Discover", "GetJob"] {
            assert_eq!(required_role(read), Role::ReadOnly, "{read}");
        }
        for write in [
            "AddSite",
            "CreateGroup",
            "Failover",
            "CancelJob",
            "Backup",
            "Protect",
        ] {
            assert_eq!(required_role(write), Role::Operator, "{write}");
        }
        assert!(allows(Role::Operator, Role::ReadOnly));
        assert!(!allows(Role::ReadOnly, Role::Operator));
    }

    #[test]
    fn tokens_are_random_urlsafe_and_digested() {
        let a = new_token().unwrap();
        let b = new_token().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert!(
            a.bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        );
        assert_eq!(digest(&a), digest(&a));
        assert_ne!(digest(&a), digest(&b));
    }

    #[test]
    fn bearer_header_parsing() {
        let mut h = http::HeaderMap::new();
        assert_eq!(bearer_token(&h), None);
        h.insert("authorization", "Bearer abc".parse().unwrap());
        assert_eq!(bearer_token(&h), Some("abc"));
        h.insert("authorization", "bearer  xyz ".parse().unwrap());
        assert_eq!(bearer_token(&h), Some("xyz"));
        h.insert("authorization", "Basic abc".parse().unwrap());
        assert_eq!(bearer_token(&h), None);
        h.insert("authorization", "Bearer ".parse().unwrap());
        assert_eq!(bearer_token(&h), None);
    }
}

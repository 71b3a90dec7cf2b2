//! The data each plugin instance's `Store` holds, and the sandbox it implies.
//!
//! A [`PluginState`] carries a WASI context that grants nothing but the
//! directories in the plugin's effective grants (no environment, no arguments,
//! no sockets, no inherited stdio), a `wasi:http` context whose send hook
//! (`NetworkPolicy`) lets a request out only to a granted `host:port` (over
//! TLS under the operator's trust for it, if given: `tls.rs`), the resource
//! table for `disk` and `guest-fs` handles, and the memory cap.

use super::capability::EffectiveGrants;
use super::limits::MemoryCap;
use super::loaded::PluginMeta;
use super::tls::{EndpointTrust, explain_default_failure};
use crate::config::HostPort;
use std::sync::Arc;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks, WasiHttpView};

/// Store data of one plugin instance.
pub struct PluginState {
    pub(crate) meta: Arc<PluginMeta>,
    pub(crate) table: ResourceTable,
    pub(crate) memory: MemoryCap,
    wasi: WasiCtx,
    http: WasiHttpCtx,
    network: NetworkPolicy,
    /// Where the plugin's log lines are also kept, when someone asked
    /// (conformance cases search them for secrets).
    pub(crate) log_recorder: Option<Arc<super::instance::LogRecorder>>,
}

impl PluginState {
    /// Builds the sandbox for one instance of `meta`'s plugin.
    pub(crate) fn new(meta: Arc<PluginMeta>) -> Result<PluginState, String> {
        let mut wasi = WasiCtx::builder();
        for dir in &meta.grants.dirs {
            let perms = if dir.write {
                FsPerms::ReadWrite
            } else {
                FsPerms::ReadOnly
            };
            wasi.preopened_dir(&dir.host, &dir.guest, perms)
                .map_err(|e| {
                    format!(
                        "granted directory {} cannot be opened: {e:#}",
                        dir.host.display()
                    )
                })?;
        }
        let network = NetworkPolicy::new(&meta.manifest.id, &meta.grants);
        Ok(PluginState {
            memory: MemoryCap::new(usize::try_from(meta.limits.memory_bytes).unwrap_or(usize::MAX)),
            table: ResourceTable::new(),
            wasi: wasi.build(),
            http: WasiHttpCtx::new(),
            network,
            meta,
            log_recorder: None,
        })
    }

    /// The plugin's id.
    pub fn plugin_id(&self) -> &str {
        &self.meta.manifest.id
    }
}

impl WasiView for PluginState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for PluginState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.network,
        }
    }
}

/// The outgoing-HTTP gate: a request leaves only for a granted `host:port`,
/// and HTTPS to an endpoint with a trust setting goes through that setting.
pub(crate) struct NetworkPolicy {
    plugin: Arc<str>,
    allowed: Vec<HostPort>,
    trust: EndpointTrust,
}

impl NetworkPolicy {
    fn new(plugin: &str, grants: &EffectiveGrants) -> Self {
        NetworkPolicy {
            plugin: plugin.into(),
            allowed: grants.network.clone(),
            trust: EndpointTrust::new(&grants.tls),
        }
    }

    /// Refuses a request that was allowed through the gate, with `message`
    /// for the operator (logged) and the plugin (in its error).
    fn refuse(&self, destination: &HostPort, message: String) -> SendFuture {
        tracing::warn!(plugin = %self.plugin, destination = %destination, "{message}");
        Box::new(async move { Err(wasmtime_wasi_http::Error::InternalError(Some(message))) })
    }

    /// The normalised destination of a request, if it names one.
    fn destination(request: &http::Request<wasmtime_wasi_http::WasiBody>) -> Option<HostPort> {
        let uri = request.uri();
        let host = uri.host()?;
        let port = uri.port_u16().unwrap_or(match uri.scheme_str() {
            Some("http") => 80,
            _ => 443,
        });
        Some(HostPort::from_authority(host, port))
    }
}

type SendFuture = Box<
    dyn Future<
            Output = wasmtime_wasi_http::Result<(
                http::Response<wasmtime_wasi_http::WasiBody>,
                Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>,
            )>,
        > + Send,
>;

impl WasiHttpHooks for NetworkPolicy {
    fn send_request(
        &mut self,
        request: http::Request<wasmtime_wasi_http::WasiBody>,
        options: Option<wasmtime_wasi_http::RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>,
    ) -> SendFuture {
        let destination = match Self::destination(&request) {
            Some(granted) if self.allowed.contains(&granted) => granted,
            other => {
                let shown = other.map_or_else(|| "(no host)".to_string(), |d| d.to_string());
                tracing::warn!(
                    plugin = %self.plugin,
                    destination = %shown,
                    "outgoing HTTP denied: not granted; add \"{shown}\" to grants.network of [plugins.{}] if the plugin should reach it",
                    self.plugin
                );
                return Box::new(async { Err(wasmtime_wasi_http::Error::HttpRequestDenied) });
            }
        };
        tracing::debug!(plugin = %self.plugin, uri = %request.uri().path(), "outgoing HTTP");
        let https = request.uri().scheme_str() == Some("https");
        if let Some(connector) = self.trust.connector(&destination) {
            // The operator said how this endpoint proves itself; plaintext
            // would skip that proof, so it is not allowed there.
            if !https {
                let message = format!(
                    "plain HTTP to {destination} refused: [plugins.{}] grants.tls gives it a TLS \
                     setting, so only https is allowed to it",
                    self.plugin
                );
                return self.refuse(&destination, message);
            }
            return match connector {
                Ok(connector) => {
                    let plugin = self.plugin.clone();
                    Box::new(async move { connector.send(&plugin, request, options).await })
                }
                Err(why) => {
                    let message = format!("TLS to {destination} cannot be set up: {why}");
                    self.refuse(&destination, message)
                }
            };
        }
        let plugin = self.plugin.clone();
        Box::new(async move {
            use http_body_util::BodyExt;
            let (response, io) = wasmtime_wasi_http::default_send_request(request, options)
                .await
                .map_err(|e| match e {
                    // Name the endpoint and the fix, which the bare TLS error code cannot.
                    wasmtime_wasi_http::Error::Tls(cause) => {
                        let message = explain_default_failure(&plugin, &destination, &cause);
                        tracing::warn!(plugin = %plugin, destination = %destination, "{message}");
                        wasmtime_wasi_http::Error::InternalError(Some(message))
                    }
                    other => other,
                })?;
            Ok((
                response.map(BodyExt::boxed_unsync),
                Box::new(io) as Box<dyn Future<Output = _> + Send>,
            ))
        })
    }
}

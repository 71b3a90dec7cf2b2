//! What the hypervisor and cloud suites share: the target they run
//! against, the settings that point the plugin at it, and the cases both
//! kinds get (configuration, credentials, dead endpoints), written once over
//! an [`AdapterCall`].
//!
//! With `--target URL`, the endpoint is real: the operator's settings (from
//! `--config`) plus config `url` = the target. Without it, a plugin that asks
//! for files (a lab adapter) gets a lab made in the case's scratch
//! directory; a plugin that only speaks to remote endpoints cannot be tested
//! without one, and its target cases skip with the reason.

use crate::config::HostPort;
use crate::conformance::case::ensure;
use crate::conformance::{CaseContext, CaseEnd, ErrorKind, asks_for_files, expect_error};
use crate::plugin::{LoadedPlugin, PluginError, PluginInstance, PluginSettings};
use std::path::Path;

/// The configuration key adapters read their endpoint URL from.
pub const URL_KEY: &str = "url";

/// A real endpoint.
pub struct Endpoint {
    /// The URL given with `--target`.
    pub url: String,
    /// The operator's settings, with `url` set.
    pub settings: PluginSettings,
}

/// Where an adapter case runs: a lab of kind `L`, or a real endpoint.
pub enum Target<L> {
    /// A lab made for this case.
    Lab(L),
    /// The endpoint given with `--target`.
    Endpoint(Box<Endpoint>),
}

/// The target of one case and the plugin loaded against it.
pub struct Setup<L> {
    /// A lab made for the case, or the `--target` endpoint.
    pub target: Target<L>,
    /// The settings the plugin was loaded with.
    pub settings: PluginSettings,
    /// The plugin under test, loaded with them.
    pub plugin: LoadedPlugin,
}

impl<L> Setup<L> {
    /// The `--target` endpoint, or else a lab that `make_lab` creates in a
    /// directory of the case (returning the lab and the settings for it).
    pub fn new(
        ctx: &mut CaseContext<'_>,
        make_lab: impl FnOnce(&Path) -> Result<(L, PluginSettings), CaseEnd>,
    ) -> Result<Setup<L>, CaseEnd> {
        let (target, mut settings) = match endpoint(ctx)? {
            Some(endpoint) => {
                let settings = endpoint.settings.clone();
                (Target::Endpoint(Box::new(endpoint)), settings)
            }
            None => {
                let dir = ctx.work_dir()?.join("lab");
                let (lab, settings) = make_lab(&dir)?;
                (Target::Lab(lab), settings)
            }
        };
        // The suite tests the file it was given, whatever id a lab expects.
        settings.expected_id = None;
        let plugin = ctx.load_with(settings.clone())?;
        Ok(Setup {
            target,
            settings,
            plugin,
        })
    }

    /// A fresh instance of the plugin on this target.
    pub fn instance(&self, ctx: &mut CaseContext<'_>) -> Result<PluginInstance, CaseEnd> {
        ctx.instance_of(&self.plugin)
    }

    /// The lab, or a skip saying that `why` needs one.
    pub fn lab(&self, why: &str) -> Result<&L, CaseEnd> {
        match &self.target {
            Target::Lab(lab) => Ok(lab),
            Target::Endpoint(_) => Err(CaseEnd::Skip(format!(
                "{why}: the suite can arrange that only in a lab, not on a real endpoint"
            ))),
        }
    }
}

/// The endpoint, when `--target` was given; `Ok(None)` when a lab should be
/// made; a skip when neither can serve this plugin.
pub fn endpoint(ctx: &CaseContext<'_>) -> Result<Option<Endpoint>, CaseEnd> {
    match &ctx.options().target {
        Some(url) => {
            let mut settings = ctx.options().settings.clone();
            settings
                .config
                .entry(URL_KEY.to_string())
                .or_insert_with(|| url.clone());
            Ok(Some(Endpoint {
                url: url.clone(),
                settings,
            }))
        }
        None if asks_for_files(ctx.manifest()) => Ok(None),
        None => Err(CaseEnd::Skip(
            "no --target was given, and the plugin asks for no files, so it cannot be pointed at a lab: run with --target URL and --config with its credentials"
                .to_string(),
        )),
    }
}

/// `settings` with every secret replaced by a wrong value; the wrong values
/// are returned so a case can search logs and errors for them. `None` when
/// the settings hold no secret at all.
pub fn with_wrong_secrets(settings: &PluginSettings) -> Option<(PluginSettings, Vec<String>)> {
    if settings.secrets.is_empty() {
        return None;
    }
    let mut wrong = settings.clone();
    let mut values = Vec::new();
    for (index, secret) in wrong.secrets.values_mut().enumerate() {
        let value = format!("homeward-wrong-secret-{index}-7f3a9c");
        *secret = crate::config::Secret::new(&value);
        values.push(value);
    }
    Some((wrong, values))
}

/// `settings` pointed at a loopback port nothing listens on (granted, so
/// the sandbox lets the call out and the plugin meets a refused connection).
pub fn with_dead_endpoint(settings: &PluginSettings) -> Result<PluginSettings, CaseEnd> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(|e| CaseEnd::Fail(format!("cannot reserve a loopback port: {e}")))?;
    let port = listener
        .local_addr()
        .map_err(|e| CaseEnd::Fail(format!("cannot read the reserved port: {e}")))?
        .port();
    drop(listener);
    let mut dead = settings.clone();
    dead.config
        .insert(URL_KEY.to_string(), format!("http://127.0.0.1:{port}/"));
    dead.grants
        .network
        .push(HostPort::from_authority("127.0.0.1", port));
    Ok(dead)
}

/// Every secret value of `settings`, to search logs and errors for.
pub fn secret_values(settings: &PluginSettings) -> Vec<String> {
    settings
        .secrets
        .values()
        .map(|s| s.expose().to_string())
        .filter(|s| s.len() >= 4)
        .collect()
}

/// Fails when any of `secrets` appears in `text` (an error message or the
/// captured logs).
pub fn check_no_secret(where_: &str, text: &str, secrets: &[String]) -> Result<(), CaseEnd> {
    for secret in secrets {
        if text.contains(secret.as_str()) {
            return Err(CaseEnd::Fail(format!(
                "a secret value appears in {where_}: secrets must never be logged or echoed in errors"
            )));
        }
    }
    Ok(())
}

/// A name for objects a case creates, unique in this process, so a rerun
/// against a real endpoint does not clash with leftovers.
pub fn scratch_name(what: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "homeward-conformance-{what}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// One call of an adapter's own world (`connect`, `discover`...), for the
/// cases both adapter suites run.
pub type AdapterCall = fn(&mut PluginInstance) -> Result<(), PluginError>;

/// Without configuration or grants, `connect` answers a typed error that
/// says what is missing.
pub fn unconfigured(ctx: &mut CaseContext<'_>, connect: AdapterCall) -> Result<(), CaseEnd> {
    let plugin = ctx.load_with(PluginSettings::default())?;
    let mut instance = ctx.instance_of(&plugin)?;
    let failure = expect_error(
        "connect with no configuration and no grants",
        connect(&mut instance),
        &[
            ErrorKind::InvalidInput,
            ErrorKind::Unavailable,
            ErrorKind::PermissionDenied,
            ErrorKind::NotFound,
        ],
    )?;
    ensure!(
        failure.to_string().len() > 20,
        "the error should say what is missing and how to fix it, got: {failure}"
    );
    Ok(())
}

/// With every secret of `settings` wrong, each of `calls` is refused with
/// `permission-denied`, and neither the error nor the plugin's log lines
/// hold a secret, wrong or right.
pub fn wrong_credentials(
    ctx: &mut CaseContext<'_>,
    settings: &PluginSettings,
    calls: &[(&str, AdapterCall)],
) -> Result<(), CaseEnd> {
    let Some((wrong, wrong_values)) = with_wrong_secrets(settings) else {
        return Err(CaseEnd::Skip(
            "the plugin's settings hold no secret, so there is no credential to get wrong"
                .to_string(),
        ));
    };
    let mut secrets = secret_values(settings);
    secrets.extend(wrong_values);
    let plugin = ctx.load_with(wrong)?;
    let mut instance = ctx.instance_of(&plugin)?;
    for (name, call) in calls {
        let result = call(&mut instance);
        let failure = expect_error(
            &format!("{name} with a wrong secret"),
            result,
            &[ErrorKind::PermissionDenied],
        )?;
        check_no_secret("the error message", &failure.to_string(), &secrets)?;
        check_no_secret("the plugin's logs", &ctx.plugin_logs(), &secrets)?;
    }
    Ok(())
}

/// Settings whose endpoint is dead: a closed loopback port for a real
/// target, an empty directory granted in place of a lab.
pub fn dead_target_settings<L>(
    ctx: &mut CaseContext<'_>,
    target: &Target<L>,
    settings: &PluginSettings,
) -> Result<PluginSettings, CaseEnd> {
    match target {
        Target::Endpoint(endpoint) => with_dead_endpoint(&endpoint.settings),
        Target::Lab(_) => {
            let empty = ctx.work_dir()?.join("no-lab");
            std::fs::create_dir_all(&empty)
                .map_err(|e| CaseEnd::Fail(format!("cannot make a directory: {e}")))?;
            let mut dead = settings.clone();
            for grant in &mut dead.grants.dirs {
                grant.host = empty.clone();
            }
            Ok(dead)
        }
    }
}

/// `connect` with `dead` settings answers `unavailable`, saying what is
/// unreachable, within the call's deadline (a stopped call fails the case).
pub fn expect_unavailable(
    ctx: &mut CaseContext<'_>,
    dead: PluginSettings,
    connect: AdapterCall,
) -> Result<(), CaseEnd> {
    let plugin = ctx.load_with(dead)?;
    let mut instance = ctx.instance_of(&plugin)?;
    let failure = expect_error(
        "connect to a dead endpoint",
        connect(&mut instance),
        &[ErrorKind::Unavailable],
    )?;
    ensure!(
        failure.to_string().len() > 20,
        "the error should say what is unreachable, got: {failure}"
    );
    Ok(())
}

/// `connect` to a URL nobody listens on answers `unavailable` (for plugins
/// that declare network access).
pub fn unreachable_network_endpoint(
    ctx: &mut CaseContext<'_>,
    connect: AdapterCall,
) -> Result<(), CaseEnd> {
    let settings = match endpoint(ctx)? {
        Some(endpoint) => endpoint.settings,
        None => ctx.options().settings.clone(),
    };
    expect_unavailable(ctx, with_dead_endpoint(&settings)?, connect)
}

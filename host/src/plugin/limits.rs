//! Per-instance limits, and how a stopped call is explained.
//!
//! Three limits bound every instance: a memory cap (this module's
//! [`MemoryCap`], installed as the store's `ResourceLimiter`), a wall-clock
//! deadline per call (epoch interruption, driven by the runtime's ticker
//! thread), and optionally fuel, a deterministic instruction budget used by
//! conformance runs. When a call is stopped, [`explain`] turns wasmtime's trap
//! into an error that names the plugin and the limit it hit.

use super::error::PluginError;
use std::time::Duration;
use wasmtime::{ResourceLimiter, Trap};

/// Largest table a plugin may grow (function-pointer tables of Rust guests are small).
const MAX_TABLE_ELEMENTS: usize = 100_000;

/// Refuses memory growth past a cap, and remembers that it did, so a trap that
/// follows (a Rust guest aborts when allocation fails) can be blamed on the cap.
#[derive(Debug)]
pub struct MemoryCap {
    limit_bytes: usize,
    refused: Option<usize>,
    peak_bytes: usize,
}

impl MemoryCap {
    /// A cap of `limit_bytes` per memory.
    pub fn new(limit_bytes: usize) -> Self {
        MemoryCap {
            limit_bytes,
            refused: None,
            peak_bytes: 0,
        }
    }

    /// The cap.
    pub fn limit_bytes(&self) -> usize {
        self.limit_bytes
    }

    /// The largest memory size granted so far.
    pub fn peak_bytes(&self) -> usize {
        self.peak_bytes
    }

    /// Forgets an earlier refusal (before each call).
    pub fn clear_refusal(&mut self) {
        self.refused = None;
    }

    /// The size last refused, if any since [`clear_refusal`](Self::clear_refusal).
    pub fn refused(&self) -> Option<usize> {
        self.refused
    }
}

impl ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.limit_bytes {
            self.refused = Some(desired);
            return Ok(false);
        }
        self.peak_bytes = self.peak_bytes.max(desired);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }
}

/// The limits of one plugin's instances.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Memory cap per instance.
    pub memory_bytes: u64,
    /// Wall-clock deadline per call.
    pub call_timeout: Duration,
    /// Fuel per call, when the runtime meters fuel.
    pub fuel: Option<u64>,
}

impl Default for Limits {
    /// The plugin-set file's defaults, so a plugin loaded without one is
    /// bounded exactly like one listed without overrides.
    fn default() -> Self {
        let defaults = crate::config::RuntimeSettings::default();
        Limits {
            memory_bytes: defaults.memory_limit_bytes,
            call_timeout: defaults.call_timeout,
            fuel: None,
        }
    }
}

/// Explains why a call of `plugin`'s `call` export failed with `error`.
pub fn explain(
    plugin: &str,
    call: &'static str,
    error: wasmtime::Error,
    limits: &Limits,
    refused_memory: Option<usize>,
) -> PluginError {
    let plugin = plugin.to_string();
    match error.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => {
            return PluginError::Deadline {
                plugin,
                call,
                limit: limits.call_timeout,
            };
        }
        Some(Trap::OutOfFuel) => {
            return PluginError::OutOfFuel {
                plugin,
                call,
                fuel: limits.fuel.unwrap_or(0),
            };
        }
        _ => {}
    }
    if let Some(requested) = refused_memory {
        return PluginError::MemoryLimit {
            plugin,
            call,
            limit_bytes: limits.memory_bytes,
            requested_bytes: requested as u64,
        };
    }
    PluginError::Trap {
        plugin,
        call,
        message: format!("{error:?}"),
    }
}

//! The plugins built into the `homeward` binary: its embedded defaults.
//!
//! `build.rs` compiles them for wasm32-wasip2 at build time, so the binary runs
//! with no plugin files around. Today that is the SDK's template plugin; the
//! product plugins (adapters, file-system handlers, guest steps) join it as
//! they land in `plugins/`.

/// One embedded plugin.
#[derive(Debug, Clone, Copy)]
pub struct EmbeddedPlugin {
    /// Its id (as in its manifest).
    pub id: &'static str,
    /// The component bytes.
    pub wasm: &'static [u8],
}

/// The SDK's template plugin (a guest step that adds a failback notice to `/etc/motd`).
pub const TEMPLATE: EmbeddedPlugin = EmbeddedPlugin {
    id: "template",
    wasm: include_bytes!(env!("HOMEWARD_TEMPLATE_WASM")),
};

/// Every embedded plugin.
pub const ALL: &[EmbeddedPlugin] = &[TEMPLATE];

/// The embedded plugin with that id.
pub fn get(id: &str) -> Option<EmbeddedPlugin> {
    ALL.iter().copied().find(|p| p.id == id)
}

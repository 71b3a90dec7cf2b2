//! The plugin manifest: what a plugin is and what it asks for.
//!
//! The [`plugin!`](crate::plugin) macro writes it as TOML into a custom section
//! named [`SECTION`] of the plugin's core module. The host reads that section
//! before compiling anything, so a plugin is judged (API version, capabilities)
//! before any of its code runs. A hand-written manifest must follow this schema:
//!
//! ```toml
//! schema = 1                       # manifest schema version
//! id = "vcenter"                   # [a-z0-9][a-z0-9-]{0,62}
//! version = "0.3.1"                # the plugin's own version (semver)
//! api = "0.1.2"                    # the homeward:plugin WIT version it was built against
//! kinds = ["hypervisor-adapter"]   # the world it targets
//! [capabilities]
//! network = ["*:443"]              # host:port patterns it may call; "*" matches any host or port
//! files = "none"                   # "none" | "read-only" | "read-write": directories it may be given
//! disk-write = false               # whether it writes through the `disk` resource
//! ```

/// Name of the custom section that holds the manifest.
pub const SECTION: &str = "homeward-manifest";

/// Copies a string into a fixed-size array at compile time (a custom section must
/// be a static array of bytes).
#[doc(hidden)]
pub const fn to_bytes<const N: usize>(text: &str) -> [u8; N] {
    let bytes = text.as_bytes();
    let mut out = [0u8; N];
    let mut i = 0;
    while i < N {
        out[i] = bytes[i];
        i += 1;
    }
    out
}

//! The plugins built into the `homeward` binary: its embedded defaults.
//!
//! `build.rs` compiles them for wasm32-wasip2 at build time, so the binary runs
//! with no plugin files around: the SDK's template plugin and the product
//! plugins of `plugins/` (today the ext4, XFS and ReiserFS handlers and the
//! static-IP and NetworkManager guest steps; the adapters join them as they
//! land). Embedded plugins are
//! granted nothing by default; a command that needs a grant says so (`homeward
//! fs put` grants `disk-write` for the disk the operator named).

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

/// The ext4 (and ext2/ext3) file-system handler.
pub const FS_EXT4: EmbeddedPlugin = EmbeddedPlugin {
    id: "fs-ext4",
    wasm: include_bytes!(env!("HOMEWARD_PLUGIN_FS_EXT4")),
};

/// The XFS file-system handler.
pub const FS_XFS: EmbeddedPlugin = EmbeddedPlugin {
    id: "fs-xfs",
    wasm: include_bytes!(env!("HOMEWARD_PLUGIN_FS_XFS")),
};

/// The ReiserFS 3.6 file-system handler.
pub const FS_REISERFS: EmbeddedPlugin = EmbeddedPlugin {
    id: "fs-reiserfs",
    wasm: include_bytes!(env!("HOMEWARD_PLUGIN_FS_REISERFS")),
};

/// The guest step that restores each NIC's static addressing (S17).
pub const STATIC_IP_RESET: EmbeddedPlugin = EmbeddedPlugin {
    id: "static-ip-reset",
    wasm: include_bytes!(env!("HOMEWARD_PLUGIN_STATIC_IP_RESET")),
};

/// The guest step that brings NetworkManager back (S16).
pub const NETWORKMANAGER_RESTORE: EmbeddedPlugin = EmbeddedPlugin {
    id: "networkmanager-restore",
    wasm: include_bytes!(env!("HOMEWARD_PLUGIN_NETWORKMANAGER_RESTORE")),
};

/// The lab hypervisor: VMs as directories of VMDK-flat disks on local
/// "datastores" (the demo's on-premises site, and a conformance target).
pub const LAB_HYPERVISOR: EmbeddedPlugin = EmbeddedPlugin {
    id: "lab-hypervisor",
    wasm: include_bytes!(env!("HOMEWARD_PLUGIN_LAB_HYPERVISOR")),
};

/// The lab cloud: VMs as directories of VHD-fixed disks (the demo's cloud, and
/// a conformance target).
pub const LAB_CLOUD: EmbeddedPlugin = EmbeddedPlugin {
    id: "lab-cloud",
    wasm: include_bytes!(env!("HOMEWARD_PLUGIN_LAB_CLOUD")),
};

/// The vCenter hypervisor adapter (vSphere SOAP over `wasi:http`).
pub const VCENTER: EmbeddedPlugin = EmbeddedPlugin {
    id: "vcenter",
    wasm: include_bytes!(env!("HOMEWARD_PLUGIN_VCENTER")),
};

/// The standalone ESXi hypervisor adapter (vSphere SOAP over `wasi:http`).
pub const ESXI: EmbeddedPlugin = EmbeddedPlugin {
    id: "esxi",
    wasm: include_bytes!(env!("HOMEWARD_PLUGIN_ESXI")),
};

/// The Azure cloud adapter (ARM compute and page-blob disks over `wasi:http`).
pub const AZURE: EmbeddedPlugin = EmbeddedPlugin {
    id: "azure",
    wasm: include_bytes!(env!("HOMEWARD_PLUGIN_AZURE")),
};

/// Every embedded plugin.
pub const ALL: &[EmbeddedPlugin] = &[
    TEMPLATE,
    FS_EXT4,
    FS_XFS,
    FS_REISERFS,
    STATIC_IP_RESET,
    NETWORKMANAGER_RESTORE,
    LAB_HYPERVISOR,
    LAB_CLOUD,
    VCENTER,
    ESXI,
    AZURE,
];

/// The embedded plugin with that id.
pub fn get(id: &str) -> Option<EmbeddedPlugin> {
    ALL.iter().copied().find(|p| p.id == id)
}

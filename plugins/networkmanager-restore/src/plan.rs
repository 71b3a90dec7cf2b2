//! The step's plan, assembled concern by concern.
//!
//! Each concern (service, first boot, ifcfg, NetworkManager.conf, profiles)
//! plans with its own [`PlanBuilder`], so the summary can name exactly the
//! concerns that changed something. It also carries mode-only fixes
//! (`rc.local` that is not executable), which `PlanBuilder::write` skips
//! because the content is already right.

use homeward_sdk::guest::{GuestRead, PlanBuilder};
use homeward_sdk::guest_step::exports::homeward::plugin::post_step::{
    ChangeKind, FileChange, StepPlan,
};
use homeward_sdk::types::FileKind;

/// The plan being built.
#[derive(Debug, Default)]
pub struct Plan {
    changes: Vec<FileChange>,
    notes: Vec<String>,
    actions: Vec<String>,
}

impl Plan {
    /// An empty plan.
    pub fn new() -> Self {
        Plan::default()
    }

    /// Records a fact found on the way.
    pub fn note(&mut self, note: impl Into<String>) {
        self.notes.push(note.into());
    }

    /// Plans one concern with a fresh builder; when it changes anything,
    /// `action` joins the summary.
    pub fn concern(&mut self, action: impl Into<String>, plan: impl FnOnce(&mut PlanBuilder)) {
        let mut builder = PlanBuilder::new();
        plan(&mut builder);
        let done = builder.finish("", "");
        if !done.changes.is_empty() {
            self.actions.push(action.into());
        }
        self.changes.extend(done.changes);
        self.notes.extend(done.notes);
    }

    /// Makes the regular file `path` have permission bits `mode` when it
    /// already holds `content` (so no concern rewrites it) but with another
    /// mode: a `replace-file` with that same content (plans have no chmod).
    pub fn fix_mode(
        &mut self,
        guest: &dyn GuestRead,
        path: &str,
        content: &[u8],
        mode: u32,
        reason: &str,
    ) {
        let Ok(stat) = guest.stat(path) else {
            return;
        };
        if stat.kind != FileKind::Regular || stat.mode & 0o7777 == mode {
            return;
        }
        if guest.read_file(path).ok().as_deref() != Some(content) {
            return;
        }
        self.actions.push(format!("make {path} mode {mode:o}"));
        self.changes.push(FileChange {
            path: path.to_string(),
            kind: ChangeKind::ReplaceFile,
            content: content.to_vec(),
            mode,
            reason: reason.to_string(),
        });
    }

    /// The step plan: the summary lists what will be done, or says `idle`.
    pub fn finish(self, idle: &str) -> StepPlan {
        let summary = if self.changes.is_empty() {
            idle.to_string()
        } else {
            self.actions.join("; ")
        };
        StepPlan {
            summary,
            changes: self.changes,
            notes: self.notes,
        }
    }
}

/// Creates every missing directory of the absolute path `dir`, parents
/// first (0755, as `mkdir -p`). Bounded by the path's components.
pub fn ensure_dirs(guest: &dyn GuestRead, builder: &mut PlanBuilder, dir: &str) {
    let mut path = String::new();
    for part in dir.split('/').filter(|p| !p.is_empty()) {
        path.push('/');
        path.push_str(part);
        builder.create_dir(guest, &path, 0o755, format!("create {dir}"));
    }
}

//! The template plugin: a guest post-step that makes sure `/etc/motd` tells
//! whoever logs in that the machine was failed back by Homeward.
//!
//! It shows the whole shape of a plugin in a few lines: read the operator's
//! configuration, log through the host, read the guest through `guest-fs`, and
//! answer with a *plan* of file changes that the host shows and applies. A step
//! never writes by itself, and planning again after the plan was applied must
//! give an empty plan: that is what makes steps safe to re-run.

use homeward_sdk::Error;
use homeward_sdk::guest_step::exports::homeward::plugin::post_step::{
    ChangeKind, FileChange, Guest, StepContext, StepPlan,
};
use homeward_sdk::guest_fs::GuestFs;
use homeward_sdk::types::FileKind;
use homeward_sdk::{config, log};

/// The line the step makes sure `/etc/motd` has, unless the operator sets
/// `message` in `[plugins.template.config]`.
const DEFAULT_MESSAGE: &str = "This machine was failed back by Homeward.";
const MOTD: &str = "/etc/motd";

struct Template;

impl Guest for Template {
    fn plan(root: &GuestFs, context: StepContext) -> Result<StepPlan, Error> {
        let message = config::get("message").unwrap_or_else(|| DEFAULT_MESSAGE.to_string());
        log::info(&format!("planning motd for {}", context.vm_name));

        // Look before reading: the guest may not be a Linux root at all, and
        // `/etc/motd` may be a symlink (Ubuntu points it at /run), which a
        // step must not replace with a file behind the operator's back.
        match root.stat("/etc") {
            Ok(etc) if etc.kind == FileKind::Directory => {}
            _ => {
                return Err(Error::NotFound(
                    "/etc is not a directory in this guest: is the disk's root file system the one mounted as /?"
                        .to_string(),
                ));
            }
        }
        let current = match root.stat(MOTD) {
            Err(Error::NotFound(_)) => None,
            Err(e) => return Err(e),
            Ok(stat) if stat.kind == FileKind::Regular => {
                Some(String::from_utf8_lossy(&root.read_file(MOTD)?).into_owned())
            }
            Ok(stat) => {
                return Ok(StepPlan {
                    summary: format!("{MOTD} is a {:?}, not a file: left alone", stat.kind),
                    changes: Vec::new(),
                    notes: vec![format!("{MOTD} was not changed; add the notice by hand if wanted")],
                });
            }
        };
        if current.as_deref().is_some_and(|text| text.lines().any(|l| l == message)) {
            return Ok(StepPlan {
                summary: format!("{MOTD} already says so: nothing to do"),
                changes: Vec::new(),
                notes: Vec::new(),
            });
        }

        let (kind, mut content) = match current {
            Some(text) => (ChangeKind::ReplaceFile, text),
            None => (ChangeKind::CreateFile, String::new()),
        };
        if !content.is_empty() && !content.ends_with('\n') {
            content.push('\n');
        }
        content.push_str(&message);
        content.push('\n');
        Ok(StepPlan {
            summary: format!("add the failback notice to {MOTD}"),
            changes: vec![FileChange {
                path: MOTD.to_string(),
                kind,
                content: content.into_bytes(),
                mode: 0o644,
                reason: "tell users the machine came home".to_string(),
            }],
            notes: Vec::new(),
        })
    }
}

homeward_sdk::plugin! {
    id: "template",
    kind: guest_step,
    component: Template,
}

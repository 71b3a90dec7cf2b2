//! SKELETON — the networkmanager-restore step is being written; planning says so.

use homeward_sdk::Error;
use homeward_sdk::guest::GuestRead;
use homeward_sdk::guest_step::exports::homeward::plugin::post_step::{StepContext, StepPlan};

/// The step's logic, on any guest tree (the plugin's `guest-fs`, or a
/// fixture tree in native tests).
pub fn plan(_guest: &dyn GuestRead, _context: &StepContext) -> Result<StepPlan, Error> {
    Err(Error::unsupported("the networkmanager-restore step is not written yet"))
}

/// The component: exported only in the wasm build (the native rlib is for
/// tests, and native linkers reject the component's export names).
#[cfg(target_arch = "wasm32")]
mod component {
    use homeward_sdk::Error;
    use homeward_sdk::guest_fs::GuestFs;
    use homeward_sdk::guest_step::exports::homeward::plugin::post_step::{
        Guest, StepContext, StepPlan,
    };

    struct Step;

    impl Guest for Step {
        fn plan(root: &GuestFs, context: StepContext) -> Result<StepPlan, Error> {
            super::plan(root, &context)
        }
    }

    homeward_sdk::plugin! {
        id: "networkmanager-restore",
        kind: guest_step,
        component: Step,
    }
}

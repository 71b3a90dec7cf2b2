//! The hypervisor suite (being written).

use crate::conformance::Case;

/// The cases of this suite.
pub fn cases() -> Vec<Case> {
    Vec::new()
}

//! Azure Resource Manager ids, parsed as the Azure adapter parses them
//! (`homeward-arm-id`).

pub use homeward_arm_id::{BadId, ResourceId};

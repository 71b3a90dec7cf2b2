//! Signing in as a service principal, and role-based access control.
//!
//! As in Azure, authorization comes before existence: a `Reader` asking to
//! delete a VM that does not exist is refused for the missing action, not told
//! the VM is missing. Messages name the client id, never the secret.

use crate::format::{CloudFile, Role};
use homeward_sdk::Error;

/// Who is calling, after a successful sign-in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The service principal's client id.
    pub client_id: String,
    /// Its role on the lab's resource group.
    pub role: Role,
}

/// Signs in `client_id` with `secret` (Azure's client-credentials flow).
pub fn sign_in(cloud: &CloudFile, client_id: &str, secret: &str) -> Result<Caller, Error> {
    let Some(principal) = cloud.principal(client_id) else {
        // AADSTS700016.
        return Err(Error::permission_denied(
            format!(
                "application `{}` was not found in tenant {}: check config `client-id`",
                client_id.escape_debug(),
                cloud.tenant_id
            ),
            &[],
        ));
    };
    if !constant_time_eq(principal.secret.as_bytes(), secret.as_bytes()) {
        // AADSTS7000215.
        return Err(Error::permission_denied(
            format!(
                "invalid client secret for application `{client_id}` in tenant {}: set secret \
                 `client-secret` to a current secret of that application",
                cloud.tenant_id
            ),
            &[],
        ));
    }
    Ok(Caller {
        client_id: principal.client_id.clone(),
        role: principal.role,
    })
}

/// Compares without stopping at the first difference, so the time a refusal
/// takes says nothing about how much of a guess was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = u8::from(a.len() != b.len());
    for (i, x) in a.iter().enumerate() {
        diff |= x ^ b.get(i).copied().unwrap_or(0);
    }
    diff == 0
}

impl Caller {
    /// Allows a change that needs `actions` (Azure action names), or refuses
    /// it with those actions as the missing privileges. `what` says what was
    /// refused.
    pub fn may(&self, cloud: &CloudFile, what: &str, actions: &[&str]) -> Result<(), Error> {
        match self.role {
            Role::Contributor => Ok(()),
            Role::Reader => Err(Error::permission_denied(
                format!(
                    "application `{}` has role Reader on resource group {} and may not {what}: \
                     assign it Contributor, or a role with the missing actions",
                    self.client_id, cloud.resource_group
                ),
                actions,
            )),
        }
    }
}

/// The Azure actions each change needs.
pub mod actions {
    /// Power off (stop) a VM.
    pub const VM_POWER_OFF: &str = "Microsoft.Compute/virtualMachines/powerOff/action";
    /// Deallocate a VM.
    pub const VM_DEALLOCATE: &str = "Microsoft.Compute/virtualMachines/deallocate/action";
    /// Start a VM.
    pub const VM_START: &str = "Microsoft.Compute/virtualMachines/start/action";
    /// Delete a VM.
    pub const VM_DELETE: &str = "Microsoft.Compute/virtualMachines/delete";
    /// Create or update a VM.
    pub const VM_WRITE: &str = "Microsoft.Compute/virtualMachines/write";
    /// Create a NIC.
    pub const NIC_WRITE: &str = "Microsoft.Network/networkInterfaces/write";
    /// Delete a NIC (deleting a VM deletes its NICs in the lab).
    pub const NIC_DELETE: &str = "Microsoft.Network/networkInterfaces/delete";
    /// Attach a NIC to a subnet.
    pub const SUBNET_JOIN: &str = "Microsoft.Network/virtualNetworks/subnets/join/action";
    /// Attach a managed disk to a VM.
    pub const DISK_WRITE: &str = "Microsoft.Compute/disks/write";
    /// Get a SAS for a disk's bytes.
    pub const DISK_GET_ACCESS: &str = "Microsoft.Compute/disks/beginGetAccess/action";
    /// Create a snapshot.
    pub const SNAPSHOT_WRITE: &str = "Microsoft.Compute/snapshots/write";
    /// Delete a snapshot.
    pub const SNAPSHOT_DELETE: &str = "Microsoft.Compute/snapshots/delete";
    /// Get a SAS for a snapshot's bytes (needed to diff incremental snapshots).
    pub const SNAPSHOT_GET_ACCESS: &str = "Microsoft.Compute/snapshots/beginGetAccess/action";
}

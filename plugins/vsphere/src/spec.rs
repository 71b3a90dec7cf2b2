//! Request documents for VM changes: the `VirtualMachineConfigSpec` of a
//! new VM and the device changes of `ReconfigVM_Task`.
//!
//! vSphere checks element order against its schema, so every builder here
//! writes fields in WSDL order (the simulator does not care; a real vCenter
//! does).

use crate::xml::{escape, leaf};

/// Key of the SCSI controller a new VM gets (negative: assigned by vSphere).
pub const NEW_CONTROLLER_KEY: i32 = -100;
/// The unit number a SCSI controller itself occupies.
pub const SCSI_CONTROLLER_UNIT: u32 = 7;
/// Units per SCSI controller.
pub const SCSI_UNITS: u32 = 16;

/// How a NIC reaches its network.
#[derive(Debug, Clone)]
pub enum NicBacking {
    /// A standard port group: its name and reference.
    Network {
        /// Port group name.
        name: String,
        /// Its managed object id.
        id: String,
    },
    /// A distributed port group: its switch's UUID and its key.
    Distributed {
        /// The distributed switch's UUID.
        switch_uuid: String,
        /// The port group key.
        portgroup_key: String,
    },
}

/// A new ParaVirtual SCSI controller on bus 0.
pub fn add_controller(key: i32) -> String {
    format!(
        concat!(
            "<deviceChange><operation>add</operation>",
            "<device xsi:type=\"ParaVirtualSCSIController\"><key>{key}</key>",
            "<busNumber>0</busNumber><sharedBus>noSharing</sharedBus></device>",
            "</deviceChange>"
        ),
        key = key
    )
}

/// A new thin disk of `bytes` (a multiple of 1024) at `unit` of controller
/// `controller_key`, its file created on `datastore` (vSphere picks the
/// name in the VM's directory).
pub fn add_disk(key: i32, controller_key: i32, unit: u32, bytes: u64, datastore: &str) -> String {
    format!(
        concat!(
            "<deviceChange><operation>add</operation><fileOperation>create</fileOperation>",
            "<device xsi:type=\"VirtualDisk\"><key>{key}</key>",
            "<backing xsi:type=\"VirtualDiskFlatVer2BackingInfo\">{file}",
            "<diskMode>persistent</diskMode><thinProvisioned>true</thinProvisioned></backing>",
            "<controllerKey>{controller}</controllerKey><unitNumber>{unit}</unitNumber>",
            "<capacityInKB>{kb}</capacityInKB><capacityInBytes>{bytes}</capacityInBytes>",
            "</device></deviceChange>"
        ),
        key = key,
        file = leaf("fileName", &format!("[{datastore}]")),
        controller = controller_key,
        unit = unit,
        kb = bytes / 1024,
        bytes = bytes
    )
}

/// Removes the disk with device `key`, keeping its file (no `fileOperation`).
pub fn remove_disk(key: i64, controller_key: i64, unit: u32, file: &str, kb: u64) -> String {
    format!(
        concat!(
            "<deviceChange><operation>remove</operation>",
            "<device xsi:type=\"VirtualDisk\"><key>{key}</key>",
            "<backing xsi:type=\"VirtualDiskFlatVer2BackingInfo\">{file}<diskMode>persistent</diskMode></backing>",
            "<controllerKey>{controller}</controllerKey><unitNumber>{unit}</unitNumber>",
            "<capacityInKB>{kb}</capacityInKB></device></deviceChange>"
        ),
        key = key,
        file = leaf("fileName", file),
        controller = controller_key,
        unit = unit,
        kb = kb
    )
}

/// A new VMXNET3 NIC with a generated MAC.
pub fn add_nic(key: i32, backing: &NicBacking) -> String {
    let backing = match backing {
        NicBacking::Network { name, id } => format!(
            "<backing xsi:type=\"VirtualEthernetCardNetworkBackingInfo\">{}<network type=\"Network\">{}</network></backing>",
            leaf("deviceName", name),
            escape(id)
        ),
        NicBacking::Distributed {
            switch_uuid,
            portgroup_key,
        } => format!(
            "<backing xsi:type=\"VirtualEthernetCardDistributedVirtualPortBackingInfo\"><port>{}{}</port></backing>",
            leaf("switchUuid", switch_uuid),
            leaf("portgroupKey", portgroup_key)
        ),
    };
    format!(
        concat!(
            "<deviceChange><operation>add</operation>",
            "<device xsi:type=\"VirtualVmxnet3\"><key>{key}</key>{backing}",
            "<connectable><startConnected>true</startConnected><allowGuestControl>true</allowGuestControl><connected>false</connected></connectable>",
            "<addressType>generated</addressType></device></deviceChange>"
        ),
        key = key,
        backing = backing
    )
}

/// What a new VM is made of.
#[derive(Debug, Clone)]
pub struct NewVm<'a> {
    /// Display name.
    pub name: &'a str,
    /// Guest OS identifier.
    pub guest_id: &'a str,
    /// Datastore name for its files.
    pub datastore: &'a str,
    /// vCPUs.
    pub cpus: u32,
    /// Memory in MiB.
    pub memory_mib: u64,
    /// Disk sizes in bytes (multiples of 1024).
    pub disks: &'a [u64],
    /// NIC backings.
    pub nics: &'a [NicBacking],
}

/// Units for `count` disks on a fresh SCSI controller: 0, 1, ... skipping 7.
pub fn fresh_units(count: usize) -> Vec<u32> {
    (0..SCSI_UNITS)
        .filter(|u| *u != SCSI_CONTROLLER_UNIT)
        .take(count)
        .collect()
}

/// The `config` of `CreateVM_Task`.
pub fn vm_config(vm: &NewVm<'_>) -> String {
    let mut devices = String::new();
    if !vm.disks.is_empty() {
        devices.push_str(&add_controller(NEW_CONTROLLER_KEY));
    }
    for (i, (bytes, unit)) in vm.disks.iter().zip(fresh_units(vm.disks.len())).enumerate() {
        let key = NEW_CONTROLLER_KEY - 1 - i as i32;
        devices.push_str(&add_disk(
            key,
            NEW_CONTROLLER_KEY,
            unit,
            *bytes,
            vm.datastore,
        ));
    }
    for (i, backing) in vm.nics.iter().enumerate() {
        devices.push_str(&add_nic(-200 - i as i32, backing));
    }
    format!(
        "<config>{}{}<files>{}</files>{}{}{devices}</config>",
        leaf("name", vm.name),
        leaf("guestId", vm.guest_id),
        leaf("vmPathName", &format!("[{}]", vm.datastore)),
        leaf("numCPUs", &vm.cpus.to_string()),
        leaf("memoryMB", &vm.memory_mib.to_string()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_skip_the_controller() {
        assert_eq!(fresh_units(9), vec![0, 1, 2, 3, 4, 5, 6, 8, 9]);
        assert_eq!(fresh_units(20).len(), 15);
    }

    #[test]
    fn names_are_escaped() {
        let nics = [NicBacking::Network {
            name: "a<b".to_string(),
            id: "network-1".to_string(),
        }];
        let xml = vm_config(&NewVm {
            name: "x&y",
            guest_id: "otherGuest",
            datastore: "ds",
            cpus: 1,
            memory_mib: 4,
            disks: &[2048],
            nics: &nics,
        });
        assert!(xml.contains("<name>x&amp;y</name>"));
        assert!(xml.contains("a&lt;b"));
        assert!(xml.contains("<capacityInKB>2</capacityInKB>"));
        crate::xml::Element::parse(&format!(
            "<r xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\">{xml}</r>"
        ))
        .unwrap();
    }
}

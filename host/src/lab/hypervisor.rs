//! The lab hypervisor site (being written).

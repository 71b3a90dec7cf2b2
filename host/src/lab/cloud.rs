//! The lab cloud (being written).

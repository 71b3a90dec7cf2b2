//! The plugin conformance suite (being written).

//! The reiserfs handler on arbitrary bytes taken as a volume: probe, used extents,
//! open, walk every file, and a write on a writable copy. It must never panic
//! or hang (in the plugin, a panic is a trap).

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    homeward_fs_reiserfs::fuzz_one(data);
});

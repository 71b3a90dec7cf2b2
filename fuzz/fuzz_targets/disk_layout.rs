//! Disk layout resolution (MBR, GPT, LVM2) on arbitrary bytes taken as an
//! in-memory disk: it must never panic or hang.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    homeward::disk::layout::fuzz_one(data);
});

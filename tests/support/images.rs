//! Disk images for the data-path tests, made and checked with qemu-img.

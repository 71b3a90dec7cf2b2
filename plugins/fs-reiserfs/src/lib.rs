//! SKELETON — the reiserfs handler is being written; every call says so.

use homeward_sdk::Error;
use homeward_sdk::fs::{Device, FileSystem, FsInfo};
use homeward_sdk::types::{ByteRange, DirEntry, FileStat};

/// The reiserfs file system on one volume.
pub struct Handler;

fn todo() -> Error {
    Error::unsupported("the reiserfs handler is not written yet")
}

impl FileSystem for Handler {
    fn probe(_dev: &dyn Device) -> Result<Option<FsInfo>, Error> {
        Ok(None)
    }
    fn used_extents(_dev: &dyn Device) -> Result<Vec<ByteRange>, Error> {
        Err(todo())
    }
    fn open(_dev: Box<dyn Device>, _writable: bool) -> Result<Self, Error> {
        Err(todo())
    }
    fn info(&self) -> FsInfo {
        unreachable!()
    }
    fn stat(&self, _path: &str) -> Result<FileStat, Error> {
        Err(todo())
    }
    fn read_dir(&self, _path: &str) -> Result<Vec<DirEntry>, Error> {
        Err(todo())
    }
    fn read_file(&self, _path: &str, _offset: u64, _length: u32) -> Result<Vec<u8>, Error> {
        Err(todo())
    }
    fn read_link(&self, _path: &str) -> Result<String, Error> {
        Err(todo())
    }
}

homeward_sdk::filesystem_plugin! {
    id: "fs-reiserfs",
    file_system: Handler,
    disk_write: true,
}

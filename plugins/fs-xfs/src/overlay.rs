//! Planning a change before making it: a [`Device`] that keeps writes in
//! memory and reads through them, so a multi-step change (unlink, free the
//! inode, free its blocks) can be worked out with the ordinary read-modify-
//! write helpers and refused as `unsupported` with nothing on disk touched.
//! [`Overlay::commit`] then writes everything in the order it was planned,
//! which is the order that leaves at worst leaked space after a crash.

use homeward_sdk::Error;
use homeward_sdk::fs::{Device, check_bounds};
use std::cell::RefCell;

/// Pending writes over a device.
pub struct Overlay<'a> {
    dev: &'a dyn Device,
    writes: RefCell<Vec<(u64, Vec<u8>)>>,
}

impl<'a> Overlay<'a> {
    pub fn new(dev: &'a dyn Device) -> Self {
        Overlay {
            dev,
            writes: RefCell::default(),
        }
    }

    /// Writes the pending changes to the device, in planning order.
    pub fn commit(self) -> Result<(), Error> {
        for (offset, bytes) in self.writes.into_inner() {
            self.dev.write_at(offset, &bytes)?;
        }
        Ok(())
    }
}

impl Device for Overlay<'_> {
    fn size(&self) -> u64 {
        self.dev.size()
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), Error> {
        self.dev.read_at(offset, buf)?;
        let end = offset.saturating_add(buf.len() as u64);
        for (at, bytes) in self.writes.borrow().iter() {
            let (at, stop) = (*at, at.saturating_add(bytes.len() as u64));
            let (from, to) = (at.max(offset), stop.min(end));
            if from >= to {
                continue;
            }
            // Both ranges contain [from, to), so the indexes are in bounds.
            let src = bytes.get((from - at) as usize..(to - at) as usize);
            let dst = buf.get_mut((from - offset) as usize..(to - offset) as usize);
            if let (Some(src), Some(dst)) = (src, dst) {
                dst.copy_from_slice(src);
            }
        }
        Ok(())
    }

    fn writable(&self) -> bool {
        self.dev.writable()
    }

    fn write_at(&self, offset: u64, data: &[u8]) -> Result<(), Error> {
        check_bounds(self.dev.size(), offset, data.len(), "xfs planned write")?;
        self.writes.borrow_mut().push((offset, data.to_vec()));
        Ok(())
    }

    fn flush(&self) -> Result<(), Error> {
        Ok(())
    }
}

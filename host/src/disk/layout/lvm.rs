//! LVM2 volume groups on a disk: from the PVs found on it to one volume per
//! linear logical volume.
//!
//! Every PV of a VG carries a copy of the VG's metadata; the copy with the
//! highest `seqno` wins, as in LVM. An LV is served when all its segments are
//! `type = "striped"` with `stripe_count = 1` (what `lvs` calls linear): its
//! bytes are then the concatenation of PV extent ranges, each at
//! `pe_start + first_extent * extent_size` sectors (LVM sectors are always 512
//! bytes) of its PV. Anything else is listed, not failed: another segment
//! type is [`SkipReason::Unsupported`] with the type, an LV with an extent on
//! a PV that is not on this disk is [`SkipReason::Unavailable`] with that PV's
//! UUID, and damaged metadata affects only the VG or LV it is in.

use super::error::LayoutError;
use super::lvm_label::{self, PvLabel};
use super::lvm_text::{self, Section, Value};
use super::view::DiskView;
use super::{SkipReason, Skipped, Volume, human_size};
use crate::disk::BlockDevice;
use std::collections::BTreeMap;
use std::sync::Arc;

/// LVM's unit: metadata counts sectors of 512 bytes whatever the disk's.
const LVM_SECTOR: u64 = 512;

/// A PV found on the disk.
pub(crate) struct FoundPv {
    /// The volume id the PV's partition would have had ("p2", "disk").
    pub volume_id: String,
    /// Its byte range on the disk.
    pub start: u64,
    pub len: u64,
    /// Its label.
    pub label: PvLabel,
    /// Its bytes, for reading the metadata.
    pub device: Arc<dyn BlockDevice>,
}

/// What the LVM part of a layout contributes.
#[derive(Default)]
pub(crate) struct Resolved {
    pub volumes: Vec<Volume>,
    pub skipped: Vec<Skipped>,
    pub notes: Vec<String>,
}

/// One copy of a VG's metadata.
struct VgCopy {
    name: String,
    id: String,
    seqno: i64,
    vg: Section,
}

/// Resolves the VGs whose PVs are in `pvs` into volumes of `disk`.
pub(crate) fn resolve(disk: &Arc<dyn BlockDevice>, pvs: &[FoundPv]) -> Resolved {
    let mut out = Resolved::default();
    // Newest copy of each VG, by VG id.
    let mut vgs: BTreeMap<String, VgCopy> = BTreeMap::new();
    // PVs none of whose metadata areas could be read, with the first error.
    let mut unreadable: Vec<(usize, LayoutError)> = Vec::new();
    for (index, pv) in pvs.iter().enumerate() {
        let what = format!("{} (LVM PV {})", pv.volume_id, pv.label.uuid);
        let mut errors = Vec::new();
        let mut read_any = false;
        for &(offset, size) in &pv.label.metadata_areas {
            match read_copy(pv, offset, size, &what) {
                Ok(Some(copy)) => {
                    read_any = true;
                    let newer = vgs.get(&copy.id).is_none_or(|old| copy.seqno > old.seqno);
                    if newer {
                        vgs.insert(copy.id.clone(), copy);
                    }
                }
                Ok(None) => read_any = true,
                Err(e) => errors.push(e),
            }
        }
        if read_any {
            out.notes.extend(
                errors
                    .into_iter()
                    .map(|e| format!("{e}; another copy of the metadata is used")),
            );
        } else if let Some(first) = errors.into_iter().next() {
            unreadable.push((index, first));
        }
    }

    let mut claimed = vec![false; pvs.len()];
    let mut copies: Vec<VgCopy> = vgs.into_values().collect();
    copies.sort_by(|a, b| a.name.cmp(&b.name));
    let mut names_seen = std::collections::HashSet::new();
    for copy in &copies {
        if !names_seen.insert(copy.name.clone()) {
            out.skipped.push(Skipped {
                id: format!("{}/*", copy.name),
                reason: SkipReason::Unsupported(format!(
                    "a second volume group named `{}` (id {}) is on this disk; its logical \
                     volumes would have the same ids, so only the first is listed (rename one \
                     with `vgrename` on a host that has both)",
                    copy.name, copy.id
                )),
            });
            continue;
        }
        resolve_vg(disk, pvs, copy, &mut claimed, &mut out);
    }

    for (index, e) in unreadable {
        if claimed.get(index) == Some(&true) {
            out.notes
                .push(format!("{e}; the volume group was read from another PV"));
        } else if let Some(pv) = pvs.get(index) {
            out.skipped.push(Skipped {
                id: pv.volume_id.clone(),
                reason: SkipReason::Damaged(e),
            });
        }
    }
    for (pv, claimed) in pvs.iter().zip(&claimed) {
        let has_error = out.skipped.iter().any(|s| s.id == pv.volume_id);
        if !claimed && !has_error {
            out.skipped.push(Skipped {
                id: pv.volume_id.clone(),
                reason: SkipReason::PhysicalVolume {
                    vg: None,
                    uuid: pv.label.uuid.clone(),
                },
            });
        }
    }
    out
}

/// Reads and parses one metadata area.
fn read_copy(
    pv: &FoundPv,
    offset: u64,
    size: u64,
    what: &str,
) -> Result<Option<VgCopy>, LayoutError> {
    let Some(text) = lvm_label::metadata_text(pv.device.as_ref(), offset, size, what)? else {
        return Ok(None);
    };
    let structure = format!("LVM metadata text in the area at byte {offset} of {what}");
    let root = lvm_text::parse(&text, &structure)?;
    let Some((name, vg)) = root.sections().next() else {
        return Err(LayoutError::damaged(structure, "no volume group section"));
    };
    let id = vg
        .str("id")
        .ok_or_else(|| LayoutError::damaged(&structure, format!("VG `{name}` has no `id`")))?;
    let seqno = vg
        .int("seqno")
        .ok_or_else(|| LayoutError::damaged(&structure, format!("VG `{name}` has no `seqno`")))?;
    Ok(Some(VgCopy {
        name: name.to_string(),
        id: id.to_string(),
        seqno,
        vg: vg.clone(),
    }))
}

/// A PV of the VG's metadata.
struct VgPv {
    /// UUID without dashes, as in labels.
    uuid: String,
    /// The PV as it appears in the metadata (with dashes), for messages.
    display_uuid: String,
    pe_start: u64,
    pe_count: u64,
    /// Index into the found PVs, when the PV is on this disk.
    found: Option<usize>,
}

fn resolve_vg(
    disk: &Arc<dyn BlockDevice>,
    pvs: &[FoundPv],
    copy: &VgCopy,
    claimed: &mut [bool],
    out: &mut Resolved,
) {
    let vg_name = &copy.name;
    let structure = format!("LVM volume group `{vg_name}`");
    let vg_pvs = match vg_physical_volumes(&copy.vg, pvs, &structure) {
        Ok(list) => list,
        Err(e) => {
            out.skipped.push(Skipped {
                id: format!("{vg_name}/*"),
                reason: SkipReason::Damaged(e),
            });
            return;
        }
    };
    for pv in vg_pvs.values() {
        if let Some(index) = pv.found
            && let Some(slot) = claimed.get_mut(index)
        {
            *slot = true;
            if let Some(found) = pvs.get(index) {
                out.skipped.push(Skipped {
                    id: found.volume_id.clone(),
                    reason: SkipReason::PhysicalVolume {
                        vg: Some(vg_name.clone()),
                        uuid: pv.display_uuid.clone(),
                    },
                });
            }
        }
    }
    let extent_size = match positive(&copy.vg, "extent_size", &structure) {
        Ok(n) => n,
        Err(e) => {
            out.skipped.push(Skipped {
                id: format!("{vg_name}/*"),
                reason: SkipReason::Damaged(e),
            });
            return;
        }
    };
    let Some(lvs) = copy.vg.section("logical_volumes") else {
        return; // A VG without LVs.
    };
    for (lv_name, lv) in lvs.sections() {
        let id = format!("{vg_name}/{lv_name}");
        match resolve_lv(disk, pvs, &vg_pvs, extent_size, &id, lv) {
            Ok(volume) => out.volumes.push(volume),
            Err(reason) => out.skipped.push(Skipped { id, reason }),
        }
    }
}

/// The VG's `physical_volumes`, by their metadata name (`pv0`).
fn vg_physical_volumes(
    vg: &Section,
    found: &[FoundPv],
    structure: &str,
) -> Result<BTreeMap<String, VgPv>, LayoutError> {
    let section = vg
        .section("physical_volumes")
        .ok_or_else(|| LayoutError::damaged(structure, "no `physical_volumes` section"))?;
    let mut out = BTreeMap::new();
    for (name, pv) in section.sections() {
        let pv_structure = format!("{structure}, physical volume `{name}`");
        let display_uuid = pv
            .str("id")
            .ok_or_else(|| LayoutError::damaged(&pv_structure, "no `id`"))?
            .to_string();
        let uuid: String = display_uuid.chars().filter(|&c| c != '-').collect();
        let pe_start = non_negative(pv, "pe_start", &pv_structure)?;
        let pe_count = non_negative(pv, "pe_count", &pv_structure)?;
        let index = found.iter().position(|f| f.label.uuid == uuid);
        out.insert(
            name.to_string(),
            VgPv {
                uuid,
                display_uuid,
                pe_start,
                pe_count,
                found: index,
            },
        );
    }
    Ok(out)
}

fn non_negative(section: &Section, key: &str, structure: &str) -> Result<u64, LayoutError> {
    match section.int(key) {
        Some(n) => u64::try_from(n)
            .map_err(|_| LayoutError::damaged(structure, format!("`{key}` is negative ({n})"))),
        None => Err(LayoutError::damaged(
            structure,
            format!("no integer `{key}`"),
        )),
    }
}

fn positive(section: &Section, key: &str, structure: &str) -> Result<u64, LayoutError> {
    match non_negative(section, key, structure)? {
        0 => Err(LayoutError::damaged(structure, format!("`{key}` is 0"))),
        n => Ok(n),
    }
}

/// One linear segment: where it is in the LV and on which PV extents.
struct Segment {
    start_extent: u64,
    extent_count: u64,
    pv: String,
    first_pe: u64,
}

fn resolve_lv(
    disk: &Arc<dyn BlockDevice>,
    pvs: &[FoundPv],
    vg_pvs: &BTreeMap<String, VgPv>,
    extent_size: u64,
    id: &str,
    lv: &Section,
) -> Result<Volume, SkipReason> {
    let structure = format!("LVM logical volume {id}");
    let damaged = |problem: String| SkipReason::Damaged(LayoutError::damaged(&structure, problem));
    let visible = lv
        .list("status")
        .is_some_and(|l| l.iter().any(|v| v == &Value::Str("VISIBLE".into())));
    if !visible {
        return Err(SkipReason::Hidden);
    }
    let mut segments = Vec::new();
    for (name, seg) in lv.sections() {
        let seg_structure = format!("{structure}, {name}");
        let kind = seg.str("type").unwrap_or("(none)");
        let stripes = seg.int("stripe_count").unwrap_or(0);
        if kind != "striped" {
            return Err(SkipReason::Unsupported(format!(
                "segment type `{kind}` ({}); Homeward reads linear LVs only: copy the LV into \
                 a plain disk on a Linux host that has the VG active (`dd if=/dev/{id}`)",
                segment_kind_hint(kind)
            )));
        }
        if stripes != 1 {
            return Err(SkipReason::Unsupported(format!(
                "striped across {stripes} stripes; Homeward reads linear LVs only: copy the LV \
                 into a plain disk on a Linux host that has the VG active (`dd if=/dev/{id}`)"
            )));
        }
        let field = |key| non_negative(seg, key, &seg_structure).map_err(SkipReason::Damaged);
        let (pv, first_pe) = match seg.list("stripes") {
            Some([Value::Str(pv), Value::Int(pe)]) => (pv.clone(), *pe),
            _ => {
                return Err(damaged(format!(
                    "{name}: `stripes` is not [\"pvN\", first extent]"
                )));
            }
        };
        let first_pe = u64::try_from(first_pe)
            .map_err(|_| damaged(format!("{name}: negative first extent {first_pe}")))?;
        segments.push(Segment {
            start_extent: field("start_extent")?,
            extent_count: field("extent_count")?,
            pv,
            first_pe,
        });
    }
    if segments.is_empty() {
        return Err(damaged("no segments".to_string()));
    }
    segments.sort_by_key(|s| s.start_extent);

    let mut missing = Vec::new();
    let mut ranges = Vec::new();
    let mut next_extent: u64 = 0;
    let extent_bytes = extent_size
        .checked_mul(LVM_SECTOR)
        .ok_or_else(|| damaged(format!("extent size {extent_size} sectors overflows")))?;
    for seg in &segments {
        if seg.start_extent != next_extent {
            return Err(damaged(format!(
                "segments leave a gap or overlap at extent {next_extent} (next segment starts at \
                 {})",
                seg.start_extent
            )));
        }
        next_extent = seg
            .start_extent
            .checked_add(seg.extent_count)
            .ok_or_else(|| damaged("extent count overflows".to_string()))?;
        let vg_pv = vg_pvs.get(&seg.pv).ok_or_else(|| {
            damaged(format!(
                "segment names `{}`, which the VG does not list",
                seg.pv
            ))
        })?;
        let end_pe = seg.first_pe.checked_add(seg.extent_count);
        if end_pe.is_none_or(|end| end > vg_pv.pe_count) {
            return Err(damaged(format!(
                "extents {}+{} of `{}` are past its {} extents",
                seg.first_pe, seg.extent_count, seg.pv, vg_pv.pe_count
            )));
        }
        let Some(found) = vg_pv.found.and_then(|i| pvs.get(i)) else {
            if !missing.contains(&vg_pv.display_uuid) {
                missing.push(vg_pv.display_uuid.clone());
            }
            continue;
        };
        let within = seg
            .first_pe
            .checked_mul(extent_bytes)
            .and_then(|b| b.checked_add(vg_pv.pe_start.checked_mul(LVM_SECTOR)?));
        let len = seg.extent_count.checked_mul(extent_bytes);
        let (Some(within), Some(len)) = (within, len) else {
            return Err(damaged("extent offsets overflow".to_string()));
        };
        if within.checked_add(len).is_none_or(|end| end > found.len) {
            return Err(damaged(format!(
                "extents {}+{} of PV {} end past the PV's {} bytes ({})",
                seg.first_pe, seg.extent_count, vg_pv.uuid, found.len, found.volume_id
            )));
        }
        ranges.push((found.start.saturating_add(within), len));
    }
    if !missing.is_empty() {
        return Err(SkipReason::Unavailable {
            missing_pvs: missing,
        });
    }
    let view = DiskView::concat(disk.clone(), &ranges, format!("LVM {id}"))
        .map_err(SkipReason::Damaged)?;
    let description = format!(
        "LVM logical volume, linear, {} segment{}, {}",
        ranges.len(),
        if ranges.len() == 1 { "" } else { "s" },
        human_size(view.capacity())
    );
    Ok(Volume {
        id: id.to_string(),
        description,
        extents: view.extents().to_vec(),
        device: Arc::new(view),
    })
}

/// What an LVM segment type is, for the operator.
fn segment_kind_hint(kind: &str) -> &'static str {
    match kind {
        "mirror" => "an old-style mirror",
        k if k.starts_with("raid") => "a RAID LV",
        "thin" => "a thin volume",
        "thin-pool" => "a thin pool",
        "snapshot" => "a snapshot",
        "cache" | "cache-pool" | "writecache" => "a cached LV",
        "vdo" | "vdo-pool" => "a VDO volume",
        "error" | "zero" => "a placeholder without data",
        _ => "not a linear layout",
    }
}

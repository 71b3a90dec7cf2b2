//! Protected items, their recovery points, and the split-brain guard's disk
//! generations.
//!
//! An item belongs to one group (stored by id, read back by name); its VM
//! references, disks and NICs as recorded at protection (S16, S17) are JSON
//! columns. Generations are DRBD-like: one row per (item, disk, side), a new
//! random id each time that side becomes primary.

use std::collections::HashSet;

use rusqlite::{Connection, OptionalExtension};

use super::groups::group_id;
use super::records::{DiskGeneration, Item, ItemDisk, ItemState, NewItem, NewPoint, RecoveryPoint};
use super::sql::{RowReader, check_name, db, int, to_json};
use super::{Store, StoreError, now_ms};

const ITEM_SELECT: &str = "SELECT i.id, i.name, g.name AS group_name, i.source, i.replica, i.physical, \
                           i.disks, i.nics, i.state, i.state_detail, i.created_at, i.updated_at \
                           FROM protected_items i JOIN protection_groups g ON g.id = i.group_id";

const POINT_SELECT: &str =
    "SELECT id, item_id, taken_at, kind, direction, consistency_id, disks FROM recovery_points";

impl Store {
    /// Records a protected item, Protecting, in an existing group; its name
    /// must be new.
    pub fn add_item(&self, item: &NewItem) -> Result<Item, StoreError> {
        check_name("item", &item.name)?;
        check_disks(&item.name, &item.disks)?;
        let source = to_json(&item.source, "the item's source VM")?;
        let disks = to_json(&item.disks, "the item's disks")?;
        let nics = to_json(&item.nics, "the item's NICs")?;
        let now = int(now_ms(), "time")?;
        let doing = "adding a protected item";
        self.write(doing, |tx| {
            let group = group_id(tx, &item.group)?
                .ok_or_else(|| StoreError::not_found("group", &item.group))?;
            if item_id(tx, &item.name)?.is_some() {
                return Err(StoreError::Conflict(format!(
                    "an item named {:?} already exists; choose another name",
                    item.name
                )));
            }
            tx.execute(
                "INSERT INTO protected_items (name, group_id, source, replica, physical, disks, nics, \
                 state, state_detail, created_at, updated_at) \
                 VALUES (?1, ?2, ?3, NULL, ?4, ?5, ?6, ?7, '', ?8, ?8)",
                (
                    &item.name,
                    group,
                    &source,
                    item.physical,
                    &disks,
                    &nics,
                    ItemState::Protecting.as_str(),
                    now,
                ),
            )
            .map_err(db(doing))?;
            Ok(())
        })?;
        self.item(&item.name)
    }

    pub fn item(&self, name: &str) -> Result<Item, StoreError> {
        let sql = format!("{ITEM_SELECT} WHERE i.name = ?1");
        select_items(&self.conn(), &sql, [name])?
            .pop()
            .ok_or_else(|| StoreError::not_found("item", name))
    }

    /// Items of one group (NotFound if it does not exist) or all, by name.
    pub fn items(&self, group: Option<&str>) -> Result<Vec<Item>, StoreError> {
        let conn = self.conn();
        if let Some(group) = group
            && group_id(&conn, group)?.is_none()
        {
            return Err(StoreError::not_found("group", group));
        }
        let sql = format!("{ITEM_SELECT} WHERE (?1 IS NULL OR g.name = ?1) ORDER BY i.name");
        select_items(&conn, &sql, [group])
    }

    /// Rewrites an item (found by id): group, state and its detail, replica,
    /// source, disks and NICs (a failover swaps source and replica). Name
    /// and creation time stay.
    pub fn update_item(&self, item: &Item) -> Result<(), StoreError> {
        check_disks(&item.name, &item.disks)?;
        let replica = item
            .replica
            .as_ref()
            .map(|r| to_json(r, "the item's replica VM"))
            .transpose()?;
        let source = to_json(&item.source, "the item's source VM")?;
        let disks = to_json(&item.disks, "the item's disks")?;
        let nics = to_json(&item.nics, "the item's NICs")?;
        let now = int(now_ms(), "time")?;
        let doing = "updating a protected item";
        self.write(doing, |tx| {
            let group = group_id(tx, &item.group)?
                .ok_or_else(|| StoreError::not_found("group", &item.group))?;
            let changed = tx
                .execute(
                    "UPDATE protected_items SET group_id = ?2, replica = ?3, disks = ?4, nics = ?5, \
                     state = ?6, state_detail = ?7, updated_at = ?8, source = ?9 WHERE id = ?1",
                    (
                        item.id,
                        group,
                        replica.as_deref(),
                        &disks,
                        &nics,
                        item.state.as_str(),
                        &item.state_detail,
                        now,
                        &source,
                    ),
                )
                .map_err(db(doing))?;
            if changed == 0 {
                return Err(StoreError::not_found("item", format!("id {}", item.id)));
            }
            Ok(())
        })
    }

    /// Records a recovery point of an existing item.
    pub fn add_point(&self, p: &NewPoint) -> Result<RecoveryPoint, StoreError> {
        let taken_at = int(p.taken_at, "time")?;
        let disks = to_json(&p.disks, "the point's disks")?;
        let doing = "adding a recovery point";
        let id = self.write(doing, |tx| {
            require_item(tx, p.item_id)?;
            tx.execute(
                "INSERT INTO recovery_points (item_id, taken_at, kind, direction, consistency_id, disks) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                (
                    p.item_id,
                    taken_at,
                    p.kind.as_str(),
                    p.direction.as_str(),
                    p.consistency_id.as_deref(),
                    &disks,
                ),
            )
            .map_err(db(doing))?;
            Ok(tx.last_insert_rowid())
        })?;
        self.point(id)
    }

    pub fn point(&self, id: i64) -> Result<RecoveryPoint, StoreError> {
        let sql = format!("{POINT_SELECT} WHERE id = ?1");
        select_points(&self.conn(), &sql, [id])?
            .pop()
            .ok_or_else(|| StoreError::not_found("recovery point", id))
    }

    /// Deletes a recovery point (one the master target's journal dropped);
    /// NotFound if there is none with this id.
    pub fn delete_point(&self, id: i64) -> Result<(), StoreError> {
        let doing = "deleting a recovery point";
        self.write(doing, |tx| {
            let deleted = tx
                .execute("DELETE FROM recovery_points WHERE id = ?1", [id])
                .map_err(db(doing))?;
            if deleted == 0 {
                return Err(StoreError::not_found("recovery point", id));
            }
            Ok(())
        })
    }

    /// An item's recovery points, newest first (NotFound if the item does not exist).
    pub fn points(&self, item_id: i64) -> Result<Vec<RecoveryPoint>, StoreError> {
        let conn = self.conn();
        require_item(&conn, item_id)?;
        let sql = format!("{POINT_SELECT} WHERE item_id = ?1 ORDER BY taken_at DESC, id DESC");
        select_points(&conn, &sql, [item_id])
    }

    /// Records the generation of one disk on one side, replacing the previous one.
    pub fn set_generation(&self, g: &DiskGeneration) -> Result<(), StoreError> {
        if g.generation.trim().is_empty() {
            return Err(StoreError::Invalid(format!(
                "the generation of disk {} of item {} on the {} side is empty",
                g.disk_index, g.item_id, g.side
            )));
        }
        let recorded_at = int(g.recorded_at, "time")?;
        let doing = "recording a disk generation";
        self.write(doing, |tx| {
            require_item(tx, g.item_id)?;
            tx.execute(
                "INSERT INTO disk_generations (item_id, disk_index, side, generation, fingerprint, recorded_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
                 ON CONFLICT (item_id, disk_index, side) DO UPDATE SET generation = excluded.generation, \
                 fingerprint = excluded.fingerprint, recorded_at = excluded.recorded_at",
                (
                    g.item_id,
                    i64::from(g.disk_index),
                    g.side.as_str(),
                    &g.generation,
                    g.fingerprint.as_deref(),
                    recorded_at,
                ),
            )
            .map_err(db(doing))?;
            Ok(())
        })
    }

    /// An item's disk generations, by disk then side.
    pub fn generations(&self, item_id: i64) -> Result<Vec<DiskGeneration>, StoreError> {
        let conn = self.conn();
        require_item(&conn, item_id)?;
        let doing = "reading disk generations";
        let mut stmt = conn
            .prepare(
                "SELECT item_id, disk_index, side, generation, fingerprint, recorded_at \
                 FROM disk_generations WHERE item_id = ?1 ORDER BY disk_index, side",
            )
            .map_err(db(doing))?;
        let mut rows = stmt.query([item_id]).map_err(db(doing))?;
        let mut generations = Vec::new();
        while let Some(row) = rows.next().map_err(db(doing))? {
            let disk: i64 = row.get("disk_index").map_err(db(doing))?;
            let side: String = row.get("side").map_err(db(doing))?;
            let r = RowReader::labelled(
                row,
                "disk_generations",
                format!("row (item {item_id}, disk {disk}, side {side})"),
            );
            generations.push(DiskGeneration {
                item_id,
                disk_index: r.u32("disk_index")?,
                side: r.parse("side")?,
                generation: r.get("generation")?,
                fingerprint: r.get("fingerprint")?,
                recorded_at: r.u64("recorded_at")?,
            });
        }
        Ok(generations)
    }
}

/// Disk indexes of an item are unique.
fn check_disks(item: &str, disks: &[ItemDisk]) -> Result<(), StoreError> {
    let mut seen = HashSet::new();
    for disk in disks {
        if !seen.insert(disk.index) {
            return Err(StoreError::Invalid(format!(
                "item {item:?} lists disk {} twice",
                disk.index
            )));
        }
    }
    Ok(())
}

fn item_id(conn: &Connection, name: &str) -> Result<Option<i64>, StoreError> {
    conn.query_row(
        "SELECT id FROM protected_items WHERE name = ?1",
        [name],
        |row| row.get(0),
    )
    .optional()
    .map_err(db("looking up an item"))
}

/// NotFound unless the item with this id exists.
fn require_item(conn: &Connection, id: i64) -> Result<(), StoreError> {
    conn.query_row(
        "SELECT id FROM protected_items WHERE id = ?1",
        [id],
        |row| row.get::<_, i64>(0),
    )
    .optional()
    .map_err(db("looking up an item"))?
    .map(|_| ())
    .ok_or_else(|| StoreError::not_found("item", format!("id {id}")))
}

fn select_items(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> Result<Vec<Item>, StoreError> {
    let doing = "reading protected items";
    let mut stmt = conn.prepare(sql).map_err(db(doing))?;
    let mut rows = stmt.query(params).map_err(db(doing))?;
    let mut items = Vec::new();
    while let Some(row) = rows.next().map_err(db(doing))? {
        let r = RowReader::by_id(row, "protected_items")?;
        items.push(Item {
            id: r.get("id")?,
            name: r.get("name")?,
            group: r.get("group_name")?,
            source: r.json("source")?,
            replica: r.opt_json("replica")?,
            physical: r.bool("physical")?,
            disks: r.json("disks")?,
            nics: r.json("nics")?,
            state: r.parse("state")?,
            state_detail: r.get("state_detail")?,
            created_at: r.u64("created_at")?,
            updated_at: r.u64("updated_at")?,
        });
    }
    Ok(items)
}

fn select_points(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> Result<Vec<RecoveryPoint>, StoreError> {
    let doing = "reading recovery points";
    let mut stmt = conn.prepare(sql).map_err(db(doing))?;
    let mut rows = stmt.query(params).map_err(db(doing))?;
    let mut points = Vec::new();
    while let Some(row) = rows.next().map_err(db(doing))? {
        let r = RowReader::by_id(row, "recovery_points")?;
        points.push(RecoveryPoint {
            id: r.get("id")?,
            item_id: r.get("item_id")?,
            taken_at: r.u64("taken_at")?,
            kind: r.parse("kind")?,
            direction: r.parse("direction")?,
            consistency_id: r.get("consistency_id")?,
            disks: r.json("disks")?,
        });
    }
    Ok(points)
}

//! Protection groups with their failback pairs, and recovery plans.
//!
//! S1: creating group "PG1" (to the cloud) also creates "PG1_Failback" (back
//! on premises), each paired to the other, so the settings of the way back
//! are chosen and kept from the start. A plan that holds PG1 gets
//! PG1_Failback right after it, so failing back needs no second plan.

use std::collections::HashSet;

use rusqlite::{Connection, OptionalExtension, Transaction};

use super::records::{Direction, Group, GroupSettings, NewGroup, Plan, PlanEntry};
use super::sql::{RowReader, check_name, db, int, is_unique_violation, to_json};
use super::{Store, StoreError, now_ms};

/// The suffix of the failback group created with a to-cloud group.
pub const FAILBACK_SUFFIX: &str = "_Failback";

const GROUP_SELECT: &str = "SELECT g.id, g.name, g.direction, p.name AS paired, g.settings, g.created_at \
                            FROM protection_groups g LEFT JOIN protection_groups p ON p.id = g.paired_id";

impl Store {
    /// Creates a protection group. A to-cloud group "PG1" comes with
    /// "PG1_Failback" (to on-premises, same settings, each `paired` to the
    /// other); the pair is returned as (PG1, PG1_Failback). A to-on-premises
    /// group created directly has no pair: both elements are that group.
    /// Names ending in "_Failback" are reserved (Conflict).
    pub fn create_group(&self, g: &NewGroup) -> Result<(Group, Group), StoreError> {
        check_name("group", &g.name)?;
        if g.name.ends_with(FAILBACK_SUFFIX) {
            let base = &g.name[..g.name.len() - FAILBACK_SUFFIX.len()];
            return Err(StoreError::Conflict(format!(
                "group names ending in \"{FAILBACK_SUFFIX}\" are reserved: Homeward creates {:?} itself \
                 together with the to-cloud group {base:?}; create {base:?} instead",
                g.name
            )));
        }
        let settings = to_json(&g.settings, "the group settings")?;
        let now = int(now_ms(), "time")?;
        let doing = "creating a protection group";
        let pair_name = match g.direction {
            Direction::ToCloud => Some(format!("{}{FAILBACK_SUFFIX}", g.name)),
            Direction::ToOnPremises => None,
        };
        self.write(doing, |tx| {
            for name in std::iter::once(&g.name).chain(pair_name.as_ref()) {
                if group_id(tx, name)?.is_some() {
                    return Err(StoreError::Conflict(format!(
                        "a group named {name:?} already exists; choose another name"
                    )));
                }
            }
            let insert = |name: &str, direction: Direction, paired: Option<i64>| {
                tx.execute(
                    "INSERT INTO protection_groups (name, direction, paired_id, settings, created_at) \
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                    (name, direction.as_str(), paired, &settings, now),
                )
                .map_err(|error| {
                    if is_unique_violation(&error) {
                        StoreError::Conflict(format!(
                            "a group named {name:?} already exists; choose another name"
                        ))
                    } else {
                        db(doing)(error)
                    }
                })?;
                Ok::<i64, StoreError>(tx.last_insert_rowid())
            };
            let id = insert(&g.name, g.direction, None)?;
            if let Some(pair_name) = &pair_name {
                let pair_id = insert(pair_name, Direction::ToOnPremises, Some(id))?;
                tx.execute(
                    "UPDATE protection_groups SET paired_id = ?2 WHERE id = ?1",
                    (id, pair_id),
                )
                .map_err(db(doing))?;
            }
            Ok(())
        })?;
        let group = self.group(&g.name)?;
        let pair = match &pair_name {
            Some(name) => self.group(name)?,
            None => group.clone(),
        };
        Ok((group, pair))
    }

    pub fn group(&self, name: &str) -> Result<Group, StoreError> {
        let sql = format!("{GROUP_SELECT} WHERE g.name = ?1");
        select_groups(&self.conn(), &sql, [name])?
            .pop()
            .ok_or_else(|| StoreError::not_found("group", name))
    }

    /// Every group, by name (so "PG1_Failback" follows "PG1").
    pub fn groups(&self) -> Result<Vec<Group>, StoreError> {
        let sql = format!("{GROUP_SELECT} ORDER BY g.name");
        select_groups(&self.conn(), &sql, [])
    }

    /// Replaces one group's settings (not its pair's: S1 lets the way back
    /// differ).
    pub fn set_group_settings(&self, name: &str, s: &GroupSettings) -> Result<(), StoreError> {
        let settings = to_json(s, "the group settings")?;
        let doing = "changing a group's settings";
        self.write(doing, |tx| {
            let changed = tx
                .execute(
                    "UPDATE protection_groups SET settings = ?2 WHERE name = ?1",
                    (name, &settings),
                )
                .map_err(db(doing))?;
            if changed == 0 {
                return Err(StoreError::not_found("group", name));
            }
            Ok(())
        })
    }

    /// Creates a recovery plan. Every group entry must name an existing group,
    /// once; a group whose pair is its "_Failback" group gets that pair right
    /// after it unless the entries already hold it.
    pub fn create_plan(&self, name: &str, entries: &[PlanEntry]) -> Result<Plan, StoreError> {
        check_name("plan", name)?;
        if entries.is_empty() {
            return Err(StoreError::Invalid(format!(
                "plan {name:?} has no entries; add at least one group"
            )));
        }
        let listed: HashSet<&str> = entries
            .iter()
            .filter_map(|entry| match entry {
                PlanEntry::Group { name } => Some(name.as_str()),
                _ => None,
            })
            .collect();
        let now = int(now_ms(), "time")?;
        let doing = "creating a recovery plan";
        self.write(doing, |tx| {
            if tx
                .query_row(
                    "SELECT id FROM recovery_plans WHERE name = ?1",
                    [name],
                    |row| row.get::<_, i64>(0),
                )
                .optional()
                .map_err(db(doing))?
                .is_some()
            {
                return Err(StoreError::Conflict(format!(
                    "a plan named {name:?} already exists; choose another name"
                )));
            }
            let mut seen = HashSet::new();
            let mut complete = Vec::with_capacity(entries.len() + 1);
            for entry in entries {
                match entry {
                    PlanEntry::Group { name: group } => {
                        if !seen.insert(group.clone()) {
                            return Err(StoreError::Invalid(format!(
                                "plan {name:?} lists group {group:?} twice; list it once"
                            )));
                        }
                        let paired = paired_name(tx, group)?;
                        complete.push(entry.clone());
                        if let Some(pair) = paired
                            && pair.ends_with(FAILBACK_SUFFIX)
                            && !listed.contains(pair.as_str())
                            && seen.insert(pair.clone())
                        {
                            complete.push(PlanEntry::Group { name: pair });
                        }
                    }
                    PlanEntry::Manual { text } if text.trim().is_empty() => {
                        return Err(StoreError::Invalid(format!(
                            "plan {name:?} has an empty manual step; say what the operator does"
                        )));
                    }
                    PlanEntry::Script { command } if command.trim().is_empty() => {
                        return Err(StoreError::Invalid(format!(
                            "plan {name:?} has an empty script step; give the command"
                        )));
                    }
                    PlanEntry::Manual { .. } | PlanEntry::Script { .. } => {
                        complete.push(entry.clone())
                    }
                }
            }
            let json = to_json(&complete, "the plan entries")?;
            tx.execute(
                "INSERT INTO recovery_plans (name, entries, created_at) VALUES (?1, ?2, ?3)",
                (name, &json, now),
            )
            .map_err(db(doing))?;
            Ok(())
        })?;
        self.plan(name)
    }

    pub fn plan(&self, name: &str) -> Result<Plan, StoreError> {
        select_plans(&self.conn(), "WHERE name = ?1", [name])?
            .pop()
            .ok_or_else(|| StoreError::not_found("plan", name))
    }

    /// Every plan, by name.
    pub fn plans(&self) -> Result<Vec<Plan>, StoreError> {
        select_plans(&self.conn(), "", [])
    }
}

/// A group's id by name, if it exists.
pub(super) fn group_id(conn: &Connection, name: &str) -> Result<Option<i64>, StoreError> {
    conn.query_row(
        "SELECT id FROM protection_groups WHERE name = ?1",
        [name],
        |row| row.get(0),
    )
    .optional()
    .map_err(db("looking up a group"))
}

/// The name of a group's pair; NotFound when the group does not exist.
fn paired_name(tx: &Transaction<'_>, group: &str) -> Result<Option<String>, StoreError> {
    tx.query_row(
        "SELECT p.name FROM protection_groups g \
         LEFT JOIN protection_groups p ON p.id = g.paired_id WHERE g.name = ?1",
        [group],
        |row| row.get::<_, Option<String>>(0),
    )
    .optional()
    .map_err(db("looking up a group"))?
    .ok_or_else(|| StoreError::not_found("group", group))
}

fn select_groups(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> Result<Vec<Group>, StoreError> {
    let doing = "reading groups";
    let mut stmt = conn.prepare(sql).map_err(db(doing))?;
    let mut rows = stmt.query(params).map_err(db(doing))?;
    let mut groups = Vec::new();
    while let Some(row) = rows.next().map_err(db(doing))? {
        let r = RowReader::by_id(row, "protection_groups")?;
        groups.push(Group {
            id: r.get("id")?,
            name: r.get("name")?,
            direction: r.parse("direction")?,
            paired: r.get("paired")?,
            settings: r.json("settings")?,
            created_at: r.u64("created_at")?,
        });
    }
    Ok(groups)
}

fn select_plans(
    conn: &Connection,
    filter: &str,
    params: impl rusqlite::Params,
) -> Result<Vec<Plan>, StoreError> {
    let doing = "reading plans";
    let sql =
        format!("SELECT id, name, entries, created_at FROM recovery_plans {filter} ORDER BY name");
    let mut stmt = conn.prepare(&sql).map_err(db(doing))?;
    let mut rows = stmt.query(params).map_err(db(doing))?;
    let mut plans = Vec::new();
    while let Some(row) = rows.next().map_err(db(doing))? {
        let r = RowReader::by_id(row, "recovery_plans")?;
        plans.push(Plan {
            id: r.get("id")?,
            name: r.get("name")?,
            entries: r.json("entries")?,
            created_at: r.u64("created_at")?,
        });
    }
    Ok(plans)
}

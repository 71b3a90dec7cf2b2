//! Sites, data-path components (process servers and master targets) and the
//! plugin sets the server was started with.
//!
//! Component registration is asynchronous (S19): a component is recorded as
//! Registering, and whoever checks it sets Registered, Unreachable or Failed
//! with a detail the operator sees.

use rusqlite::{Connection, OptionalExtension, Row};

use super::records::{Component, ComponentRole, ComponentState, NewComponent, NewSite, Site};
use super::sql::{RowReader, check_name, db, int, is_unique_violation, to_json};
use super::{Store, StoreError, now_ms};

const COMPONENT_COLUMNS: &str = "id, name, role, site, address, host_id, vm_id, datastore_mounts, \
                                 state, detail, registered_at, last_heartbeat";

impl Store {
    /// Records a site; its name must be new.
    pub fn add_site(&self, site: &NewSite) -> Result<Site, StoreError> {
        check_name("site", &site.name)?;
        if site.plugin.trim().is_empty() {
            return Err(StoreError::Invalid(format!(
                "site {:?} needs the id of its adapter plugin",
                site.name
            )));
        }
        let now = int(now_ms(), "time")?;
        let doing = "adding a site";
        self.write(doing, |tx| {
            tx.execute(
                "INSERT INTO sites (name, kind, plugin, created_at) VALUES (?1, ?2, ?3, ?4)",
                (&site.name, site.kind.as_str(), &site.plugin, now),
            )
            .map_err(|error| {
                if is_unique_violation(&error) {
                    StoreError::Conflict(format!(
                        "a site named {:?} already exists; choose another name",
                        site.name
                    ))
                } else {
                    db(doing)(error)
                }
            })?;
            Ok(())
        })?;
        self.site(&site.name)
    }

    pub fn site(&self, name: &str) -> Result<Site, StoreError> {
        select_sites(&self.conn(), "WHERE name = ?1", [name])?
            .pop()
            .ok_or_else(|| StoreError::not_found("site", name))
    }

    /// Every site, by name.
    pub fn sites(&self) -> Result<Vec<Site>, StoreError> {
        select_sites(&self.conn(), "", [])
    }

    /// Records a process server or master target, Registering; its name
    /// must be new.
    pub fn register_component(&self, c: &NewComponent) -> Result<Component, StoreError> {
        check_name("component", &c.name)?;
        if c.address.trim().is_empty() {
            return Err(StoreError::Invalid(format!(
                "component {:?} needs an address (host:port, or \"local\")",
                c.name
            )));
        }
        let mounts = to_json(&c.datastore_mounts, "the datastore mounts")?;
        let now = int(now_ms(), "time")?;
        let doing = "registering a component";
        self.write(doing, |tx| {
            tx.execute(
                "INSERT INTO components (name, role, site, address, host_id, vm_id, datastore_mounts, \
                 state, detail, registered_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, '', ?9)",
                (
                    &c.name,
                    c.role.as_str(),
                    &c.site,
                    &c.address,
                    c.host_id.as_deref(),
                    c.vm_id.as_deref(),
                    &mounts,
                    ComponentState::Registering.as_str(),
                    now,
                ),
            )
            .map_err(|error| {
                if is_unique_violation(&error) {
                    StoreError::Conflict(format!(
                        "a component named {:?} already exists; choose another name",
                        c.name
                    ))
                } else {
                    db(doing)(error)
                }
            })?;
            Ok(())
        })?;
        self.component(&c.name)
    }

    /// Sets a component's registration state and the detail shown with it.
    pub fn set_component_state(
        &self,
        name: &str,
        state: ComponentState,
        detail: &str,
    ) -> Result<(), StoreError> {
        let doing = "changing a component's state";
        self.write(doing, |tx| {
            let changed = tx
                .execute(
                    "UPDATE components SET state = ?2, detail = ?3 WHERE name = ?1",
                    (name, state.as_str(), detail),
                )
                .map_err(db(doing))?;
            if changed == 0 {
                return Err(StoreError::not_found("component", name));
            }
            Ok(())
        })
    }

    /// Records that the component answered at `at_ms`.
    pub fn heartbeat(&self, name: &str, at_ms: u64) -> Result<(), StoreError> {
        let at = int(at_ms, "time")?;
        let doing = "recording a heartbeat";
        self.write(doing, |tx| {
            let changed = tx
                .execute(
                    "UPDATE components SET last_heartbeat = ?2 WHERE name = ?1",
                    (name, at),
                )
                .map_err(db(doing))?;
            if changed == 0 {
                return Err(StoreError::not_found("component", name));
            }
            Ok(())
        })
    }

    pub fn component(&self, name: &str) -> Result<Component, StoreError> {
        let sql = format!("SELECT {COMPONENT_COLUMNS} FROM components WHERE name = ?1");
        select_components(&self.conn(), &sql, [name])?
            .pop()
            .ok_or_else(|| StoreError::not_found("component", name))
    }

    /// Components of one role (or all), by name.
    pub fn components(&self, role: Option<ComponentRole>) -> Result<Vec<Component>, StoreError> {
        let sql = format!(
            "SELECT {COMPONENT_COLUMNS} FROM components WHERE (?1 IS NULL OR role = ?1) ORDER BY name"
        );
        select_components(&self.conn(), &sql, [role.map(|r| r.as_str())])
    }

    /// Stores (or replaces) the plugin-set TOML known by `name`.
    pub fn put_plugin_set(&self, name: &str, toml: &str) -> Result<(), StoreError> {
        check_name("plugin set", name)?;
        let now = int(now_ms(), "time")?;
        let doing = "storing a plugin set";
        self.write(doing, |tx| {
            tx.execute(
                "INSERT INTO plugin_sets (name, toml, updated_at) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (name) DO UPDATE SET toml = excluded.toml, updated_at = excluded.updated_at",
                (name, toml, now),
            )
            .map_err(db(doing))?;
            Ok(())
        })
    }

    /// The plugin-set TOML known by `name`, if any.
    pub fn plugin_set(&self, name: &str) -> Result<Option<String>, StoreError> {
        self.conn()
            .query_row(
                "SELECT toml FROM plugin_sets WHERE name = ?1",
                [name],
                |row| row.get(0),
            )
            .optional()
            .map_err(db("reading a plugin set"))
    }
}

fn select_sites(
    conn: &Connection,
    filter: &str,
    params: impl rusqlite::Params,
) -> Result<Vec<Site>, StoreError> {
    let doing = "reading sites";
    let sql =
        format!("SELECT id, name, kind, plugin, created_at FROM sites {filter} ORDER BY name");
    let mut stmt = conn.prepare(&sql).map_err(db(doing))?;
    let mut rows = stmt.query(params).map_err(db(doing))?;
    let mut sites = Vec::new();
    while let Some(row) = rows.next().map_err(db(doing))? {
        let r = RowReader::by_id(row, "sites")?;
        sites.push(Site {
            id: r.get("id")?,
            name: r.get("name")?,
            kind: r.parse("kind")?,
            plugin: r.get("plugin")?,
            created_at: r.u64("created_at")?,
        });
    }
    Ok(sites)
}

fn select_components(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> Result<Vec<Component>, StoreError> {
    let doing = "reading components";
    let mut stmt = conn.prepare(sql).map_err(db(doing))?;
    let mut rows = stmt.query(params).map_err(db(doing))?;
    let mut components = Vec::new();
    while let Some(row) = rows.next().map_err(db(doing))? {
        components.push(read_component(row)?);
    }
    Ok(components)
}

fn read_component(row: &Row<'_>) -> Result<Component, StoreError> {
    let r = RowReader::by_id(row, "components")?;
    Ok(Component {
        id: r.get("id")?,
        name: r.get("name")?,
        role: r.parse("role")?,
        site: r.get("site")?,
        address: r.get("address")?,
        host_id: r.get("host_id")?,
        vm_id: r.get("vm_id")?,
        datastore_mounts: r.json("datastore_mounts")?,
        state: r.parse("state")?,
        detail: r.get("detail")?,
        registered_at: r.u64("registered_at")?,
        last_heartbeat: r.opt_u64("last_heartbeat")?,
    })
}

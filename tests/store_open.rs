//! Opening the state store: first open creates the identity, reopen keeps it
//! and all data; files it must refuse (newer schema, not SQLite, another
//! program's database, missing directory); one process per store (lock).

use homeward::store::*;

fn sample(store: &Store) {
    store
        .add_site(&NewSite {
            name: "dc1".into(),
            kind: SiteKind::OnPremises,
            plugin: "vcenter".into(),
        })
        .unwrap();
    store
        .create_group(&NewGroup {
            name: "PG1".into(),
            direction: Direction::ToCloud,
            settings: GroupSettings::default(),
        })
        .unwrap();
    store
        .create_plan("RP1", &[PlanEntry::Group { name: "PG1".into() }])
        .unwrap();
    let job = store
        .insert_job(&NewJob {
            kind: "reprotect".into(),
            params: serde_json::json!({ "item": "web01" }),
            steps: vec!["a".into(), "b".into()],
            resources: vec![],
            parent: None,
            summary: "s".into(),
        })
        .unwrap();
    store
        .set_job_state(job.id, JobState::Running, None)
        .unwrap();
    store
        .append_event(&NewJobEvent {
            job_id: job.id,
            kind: EventKind::JobStarted,
            step: None,
            message: "started".into(),
            done_bytes: 0,
            total_bytes: 0,
        })
        .unwrap();
    store
        .add_token("operator", Role::Operator, &[3u8; 32])
        .unwrap();
}

#[test]
fn reopen_keeps_identity_and_data() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("homeward.db");
    let store = Store::open(&path).unwrap();
    assert_eq!(store.path(), path);
    let identity = store.identity().unwrap();
    assert_eq!(identity.schema_version, SCHEMA_VERSION);
    assert!(identity.created_at > 0);
    let hex = identity.server_id.strip_prefix("hw-").expect("hw- prefix");
    assert_eq!(hex.len(), 16);
    assert!(
        hex.chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()),
        "{hex}"
    );
    sample(&store);
    let job = store.unfinished_jobs().unwrap().remove(0);
    drop(store);

    let store = Store::open(&path).unwrap();
    assert_eq!(store.identity().unwrap(), identity);
    assert_eq!(store.site("dc1").unwrap().plugin, "vcenter");
    assert_eq!(
        store.group("PG1").unwrap().paired.as_deref(),
        Some("PG1_Failback")
    );
    assert_eq!(store.plan("RP1").unwrap().entries.len(), 2);
    assert_eq!(store.job(job.id).unwrap(), job);
    assert_eq!(store.events(job.id, 0).unwrap().len(), 1);
    assert_eq!(
        store.token_role(&[3u8; 32]).unwrap(),
        Some(("operator".into(), Role::Operator))
    );

    // Another store is another server.
    let other = Store::open(&dir.path().join("other.db")).unwrap();
    assert_ne!(other.identity().unwrap().server_id, identity.server_id);
}

#[test]
fn a_newer_schema_is_refused_naming_both_versions() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("homeward.db");
    drop(Store::open(&path).unwrap());
    let newer = SCHEMA_VERSION + 7;
    homeward::store::testing::set_schema_version(&path, newer).unwrap();
    let before = std::fs::read(&path).unwrap();

    let err = Store::open(&path).unwrap_err();
    match &err {
        StoreError::NewerSchema {
            path: p,
            found,
            supported,
        } => {
            assert_eq!(p, &path);
            assert_eq!((*found, *supported), (newer, SCHEMA_VERSION));
        }
        other => panic!("expected NewerSchema, got {other:?}"),
    }
    let message = err.to_string();
    assert!(message.contains(&path.display().to_string()), "{message}");
    assert!(
        message.contains(&newer.to_string()) && message.contains(&SCHEMA_VERSION.to_string()),
        "{message}"
    );
    assert!(message.contains("upgrade Homeward"), "{message}");
    assert_eq!(
        std::fs::read(&path).unwrap(),
        before,
        "a refused file is not touched"
    );
}

#[test]
fn a_file_that_is_not_sqlite_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("homeward.db");
    let garbage: Vec<u8> = (0..8192u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(&path, &garbage).unwrap();
    let err = Store::open(&path).unwrap_err();
    assert!(matches!(err, StoreError::Open { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains("not a Homeward state store"), "{message}");
    assert!(message.contains(&path.display().to_string()), "{message}");
    assert_eq!(std::fs::read(&path).unwrap(), garbage);
}

#[test]
fn another_programs_database_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("homeward.db");
    homeward::store::testing::execute_sql(
        &path,
        "CREATE TABLE photos (id INTEGER PRIMARY KEY, data BLOB);",
    )
    .unwrap();
    let err = Store::open(&path).unwrap_err();
    assert!(
        err.to_string().contains("not a Homeward state store"),
        "{err}"
    );
}

#[test]
fn a_missing_directory_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-dir");
    let err = Store::open(&missing.join("homeward.db")).unwrap_err();
    assert!(matches!(err, StoreError::Open { .. }));
    let message = err.to_string();
    assert!(
        message.contains(&missing.display().to_string()) && message.contains("does not exist"),
        "{message}"
    );
    assert!(!missing.exists());
}

#[test]
fn one_process_holds_a_store_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("homeward.db");
    assert!(!Store::is_in_use(&path).unwrap());
    let store = Store::open(&path).unwrap();
    assert!(Store::is_in_use(&path).unwrap());
    let err = Store::open(&path).unwrap_err();
    assert!(matches!(err, StoreError::Open { .. }));
    assert!(
        err.to_string()
            .contains("in use by another Homeward process"),
        "{err}"
    );
    // The refused open did not disturb the holder.
    store
        .add_site(&NewSite {
            name: "s".into(),
            kind: SiteKind::Cloud,
            plugin: "p".into(),
        })
        .unwrap();
    drop(store);
    assert!(!Store::is_in_use(&path).unwrap());
    let store = Store::open(&path).unwrap();
    assert_eq!(store.sites().unwrap().len(), 1);
}

#[test]
fn the_store_runs_in_wal_mode() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("homeward.db");
    let store = Store::open(&path).unwrap();
    sample(&store);
    let mut wal = path.clone().into_os_string();
    wal.push("-wal");
    assert!(
        std::path::Path::new(&wal).exists(),
        "writes go to the write-ahead log"
    );
}

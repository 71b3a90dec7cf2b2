//! Backup and restore of the state store: an online backup while another
//! thread writes is a consistent, checked copy; restore brings back identity
//! and data on an empty machine; bad backups are refused with the store
//! untouched; a running server's store is not restored over.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use homeward::store::*;

fn new_job(n: usize) -> NewJob {
    NewJob {
        kind: "reprotect".into(),
        params: serde_json::json!({ "item": format!("vm{n}"), "padding": "x".repeat(500) }),
        steps: vec!["check".into(), "snapshot".into(), "sync".into()],
        resources: vec![format!("mt:mt-{}", n % 3)],
        parent: None,
        summary: format!("job {n}"),
    }
}

fn populated(path: &Path) -> Store {
    let store = Store::open(path).unwrap();
    store
        .create_group(&NewGroup {
            name: "PG1".into(),
            direction: Direction::ToCloud,
            settings: GroupSettings::default(),
        })
        .unwrap();
    for n in 0..20 {
        store.insert_job(&new_job(n)).unwrap();
    }
    store
        .add_token("operator", Role::Operator, &[5u8; 32])
        .unwrap();
    store
}

fn find_all(haystack: &[u8], needle: &[u8]) -> Vec<usize> {
    haystack
        .windows(needle.len())
        .enumerate()
        .filter(|(_, w)| *w == needle)
        .map(|(i, _)| i)
        .collect()
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

#[test]
fn online_backup_while_a_writer_inserts_is_a_consistent_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(&dir.path().join("homeward.db")).unwrap());
    let identity = store.identity().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let store = Arc::clone(&store);
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                store.insert_job(&new_job(n)).unwrap();
                n += 1;
            }
            n
        })
    };
    while store
        .jobs(&JobFilter {
            limit: Some(1),
            ..Default::default()
        })
        .unwrap()
        .first()
        .map_or(0, |j| j.id)
        < 50
    {
        std::thread::sleep(Duration::from_millis(2));
    }
    let before = store
        .jobs(&JobFilter {
            limit: Some(1),
            ..Default::default()
        })
        .unwrap()[0]
        .id;
    let dest = dir.path().join("backup.db");
    let info = store.backup_to(&dest).unwrap();
    let after = store
        .jobs(&JobFilter {
            limit: Some(1),
            ..Default::default()
        })
        .unwrap()[0]
        .id;
    stop.store(true, Ordering::Relaxed);
    let inserted = writer.join().unwrap();
    assert!(inserted as i64 >= after);
    eprintln!("jobs: {before} before the backup, {after} after it, {inserted} in all");

    assert_eq!(info.path, dest);
    assert_eq!(info.bytes, std::fs::metadata(&dest).unwrap().len());
    assert_eq!(info.server_id, identity.server_id);
    assert_eq!(info.schema_version, SCHEMA_VERSION);
    assert!(!with_suffix(&dest, "-wal").exists(), "a backup is one file");

    let copy = Store::open(&dest).unwrap();
    assert_eq!(copy.identity().unwrap(), identity);
    let jobs = copy.jobs(&JobFilter::default()).unwrap();
    let count = jobs.len() as i64;
    assert!(
        count >= before && count <= after,
        "{before} <= {count} <= {after}"
    );
    // A prefix: ids 1..=count, each job whole with its three steps.
    let mut ids: Vec<i64> = jobs.iter().map(|j| j.id).collect();
    ids.sort();
    assert_eq!(ids, (1..=count).collect::<Vec<_>>());
    assert!(jobs.iter().all(|j| j.steps.len() == 3));
}

#[test]
fn backup_never_overwrites_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = populated(&dir.path().join("homeward.db"));
    let dest = dir.path().join("backup.db");
    std::fs::write(&dest, b"precious").unwrap();
    let err = store.backup_to(&dest).unwrap_err();
    match &err {
        StoreError::Backup { path, reason } => {
            assert_eq!(path, &dest);
            assert!(reason.contains("already exists"), "{reason}");
        }
        other => panic!("expected Backup, got {other:?}"),
    }
    assert_eq!(std::fs::read(&dest).unwrap(), b"precious");

    let err = store
        .backup_to(&dir.path().join("missing-dir").join("b.db"))
        .unwrap_err();
    assert!(matches!(err, StoreError::Backup { .. }), "{err:?}");
}

#[test]
fn restore_into_a_wiped_directory_keeps_identity_and_data() {
    let root = tempfile::tempdir().unwrap();
    let state = root.path().join("state");
    std::fs::create_dir(&state).unwrap();
    let path = state.join("homeward.db");
    let store = populated(&path);
    let identity = store.identity().unwrap();
    let backup = root.path().join("backup.db");
    store.backup_to(&backup).unwrap();
    drop(store);

    std::fs::remove_dir_all(&state).unwrap();
    let restored = Store::restore(&path, &backup).unwrap();
    assert_eq!(restored, identity);
    assert!(!with_suffix(&path, ".restoring").exists());

    let store = Store::open(&path).unwrap();
    assert_eq!(store.identity().unwrap(), identity);
    assert_eq!(store.jobs(&JobFilter::default()).unwrap().len(), 20);
    assert_eq!(
        store.group("PG1").unwrap().paired.as_deref(),
        Some("PG1_Failback")
    );
    assert_eq!(
        store.token_role(&[5u8; 32]).unwrap(),
        Some(("operator".into(), Role::Operator))
    );
}

#[test]
fn restore_replaces_another_store_and_its_write_ahead_log() {
    let dir = tempfile::tempdir().unwrap();
    let a = populated(&dir.path().join("a.db"));
    let a_identity = a.identity().unwrap();
    let backup = dir.path().join("a-backup.db");
    a.backup_to(&backup).unwrap();

    let b_path = dir.path().join("b.db");
    let b = Store::open(&b_path).unwrap();
    b.add_site(&NewSite {
        name: "only-in-b".into(),
        kind: SiteKind::Cloud,
        plugin: "p".into(),
    })
    .unwrap();
    // A server killed with its log not yet checkpointed: copy the files as
    // they are while it runs.
    let wal = std::fs::read(with_suffix(&b_path, "-wal")).unwrap();
    drop(b);
    std::fs::write(with_suffix(&b_path, "-wal"), &wal).unwrap();

    assert_eq!(Store::restore(&b_path, &backup).unwrap(), a_identity);
    assert!(
        !with_suffix(&b_path, "-wal").exists(),
        "the old log is gone"
    );
    let b = Store::open(&b_path).unwrap();
    assert_eq!(b.identity().unwrap(), a_identity);
    assert!(b.sites().unwrap().is_empty());
    assert_eq!(b.jobs(&JobFilter::default()).unwrap().len(), 20);
}

#[test]
fn a_corrupt_backup_is_refused_and_the_store_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("homeward.db");
    let store = populated(&path);
    let identity = store.identity().unwrap();
    let backup = dir.path().join("backup.db");
    store.backup_to(&backup).unwrap();
    drop(store);

    let good = std::fs::read(&backup).unwrap();
    assert!(good.len() > 5 * 4096, "{}", good.len());
    let before = std::fs::read(&path).unwrap();
    // Two kinds of damage: pages 2..4 scribbled over (SQLite cannot read the
    // file), and a silent one only PRAGMA integrity_check finds: the job
    // state "queued" changed inside the jobs table's pages (they hold the
    // "padding" parameter) but not in its index jobs_by_state.
    let mut scribbled = good.clone();
    scribbled[4096..4 * 4096].fill(0xA5);
    let mut unindexed = good.clone();
    let mut changed = 0;
    for page in unindexed.chunks_mut(4096) {
        if find_all(page, b"\"padding\"").is_empty() {
            continue;
        }
        for at in find_all(page, b"queued") {
            page[at + 5] = b'x';
            changed += 1;
        }
    }
    assert!(changed >= 20, "{changed}");

    for (damage, expected) in [(scribbled, "damaged"), (unindexed, "integrity check")] {
        std::fs::write(&backup, &damage).unwrap();
        let err = Store::restore(&path, &backup).unwrap_err();
        match &err {
            StoreError::Backup { path: p, reason } => {
                assert_eq!(p, &backup);
                assert!(reason.contains(expected), "{reason}");
            }
            other => panic!("expected Backup, got {other:?}"),
        }
        assert_eq!(std::fs::read(&path).unwrap(), before);
        assert!(!with_suffix(&path, ".restoring").exists());
    }
    let store = Store::open(&path).unwrap();
    assert_eq!(store.identity().unwrap(), identity);
    assert_eq!(store.jobs(&JobFilter::default()).unwrap().len(), 20);
}

#[test]
fn foreign_and_newer_backups_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("homeward.db");
    let store = populated(&path);
    let identity = store.identity().unwrap();
    let backup = dir.path().join("backup.db");
    store.backup_to(&backup).unwrap();
    drop(store);

    let garbage = dir.path().join("garbage.db");
    std::fs::write(&garbage, vec![0x42u8; 10_000]).unwrap();
    let err = Store::restore(&path, &garbage).unwrap_err();
    assert!(
        matches!(&err, StoreError::Backup { path: p, reason } if p == &garbage && reason.contains("not a Homeward state store")),
        "{err:?}"
    );

    let newer = dir.path().join("newer.db");
    std::fs::copy(&backup, &newer).unwrap();
    homeward::store::testing::set_schema_version(&newer, SCHEMA_VERSION + 1).unwrap();
    let err = Store::restore(&path, &newer).unwrap_err();
    assert!(
        matches!(&err, StoreError::NewerSchema { path: p, .. } if p == &newer),
        "{err:?}"
    );

    let err = Store::restore(&path, &dir.path().join("nope.db")).unwrap_err();
    assert!(matches!(err, StoreError::Backup { .. }));

    assert_eq!(Store::open(&path).unwrap().identity().unwrap(), identity);
}

#[test]
fn restore_refuses_a_store_in_use() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("homeward.db");
    let store = populated(&path);
    let backup = dir.path().join("backup.db");
    store.backup_to(&backup).unwrap();
    store
        .add_site(&NewSite {
            name: "after-backup".into(),
            kind: SiteKind::Cloud,
            plugin: "p".into(),
        })
        .unwrap();

    let err = Store::restore(&path, &backup).unwrap_err();
    assert!(
        matches!(&err, StoreError::Backup { path: p, reason } if p == &path && reason.contains("in use")),
        "{err:?}"
    );
    assert_eq!(
        store.sites().unwrap().len(),
        1,
        "the running store is untouched"
    );
}

//! The state store's record families on a real SQLite file: sites,
//! components, plugin sets, groups with their failback pairs, items, plans
//! with failback auto-insertion, recovery points, disk generations, tokens;
//! enum texts; and a damaged JSON row read back as an error, not a panic.

use homeward::store::*;
use std::path::{Path, PathBuf};

fn new_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("homeward.db")).unwrap();
    (dir, store)
}

fn settings() -> GroupSettings {
    GroupSettings {
        master_target: Some("mt-01".into()),
        process_server: Some("ps-01".into()),
        account: Some("administrator".into()),
        datastore: Some("ds1".into()),
        retention_hours: Some(24),
        consistency: true,
        ..GroupSettings::default()
    }
}

fn new_group(name: &str, direction: Direction) -> NewGroup {
    NewGroup {
        name: name.into(),
        direction,
        settings: settings(),
    }
}

fn new_item(name: &str, group: &str) -> NewItem {
    NewItem {
        name: name.into(),
        group: group.into(),
        source: VmRef {
            site: "azure".into(),
            vm_id: format!("/vms/{name}"),
            name: name.into(),
        },
        physical: false,
        disks: vec![
            ItemDisk {
                index: 0,
                capacity: 8 << 30,
                source_disk_id: "disk-os".into(),
                replica_disk_id: None,
                replica_path: None,
            },
            ItemDisk {
                index: 1,
                capacity: 1 << 40,
                source_disk_id: "disk-data".into(),
                replica_disk_id: Some("[ds1] web01/web01_1.vmdk".into()),
                replica_path: Some("/vmfs/volumes/ds1/web01/web01_1-flat.vmdk".into()),
            },
        ],
        nics: vec![
            RecordedNic {
                mac: "00:50:56:aa:bb:cc".into(),
                network: Some("VM Network".into()),
                device_name: Some("eth0".into()),
                addressing: Addressing::Fixed {
                    addresses: vec![("10.0.0.5".into(), 24), ("fd00::5".into(), 64)],
                    gateways: vec!["10.0.0.1".into()],
                    dns_servers: vec!["10.0.0.2".into()],
                    dns_search: vec!["corp.example".into()],
                },
            },
            RecordedNic {
                mac: "00:50:56:aa:bb:cd".into(),
                network: None,
                device_name: None,
                addressing: Addressing::Dhcp,
            },
        ],
    }
}

fn group_names(entries: &[PlanEntry]) -> Vec<String> {
    entries
        .iter()
        .map(|e| match e {
            PlanEntry::Group { name } => format!("group:{name}"),
            PlanEntry::Manual { text } => format!("manual:{text}"),
            PlanEntry::Script { command } => format!("script:{command}"),
        })
        .collect()
}

#[test]
fn sites_round_trip_and_names_are_unique() {
    let (_dir, store) = new_store();
    let added = store
        .add_site(&NewSite {
            name: "dc1".into(),
            kind: SiteKind::OnPremises,
            plugin: "vcenter".into(),
        })
        .unwrap();
    assert_eq!(added.name, "dc1");
    assert_eq!(added.kind, SiteKind::OnPremises);
    assert!(added.created_at > 0);
    store
        .add_site(&NewSite {
            name: "azure".into(),
            kind: SiteKind::Cloud,
            plugin: "azure".into(),
        })
        .unwrap();
    assert_eq!(store.site("dc1").unwrap(), added);
    let names: Vec<_> = store.sites().unwrap().into_iter().map(|s| s.name).collect();
    assert_eq!(names, ["azure", "dc1"]);

    let err = store
        .add_site(&NewSite {
            name: "dc1".into(),
            kind: SiteKind::Cloud,
            plugin: "x".into(),
        })
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Conflict(m) if m.contains("\"dc1\"")),
        "{err}"
    );
    let err = store.site("nope").unwrap_err();
    assert!(
        matches!(&err, StoreError::NotFound { what: "site", name } if name == "nope"),
        "{err}"
    );
    let err = store
        .add_site(&NewSite {
            name: " ".into(),
            kind: SiteKind::Cloud,
            plugin: "x".into(),
        })
        .unwrap_err();
    assert!(matches!(err, StoreError::Invalid(_)), "{err}");
}

#[test]
fn components_register_then_change_state() {
    let (_dir, store) = new_store();
    let mt = store
        .register_component(&NewComponent {
            name: "mt-01".into(),
            role: ComponentRole::MasterTarget,
            site: "dc1".into(),
            address: "10.0.0.9:9443".into(),
            host_id: Some("host-12".into()),
            vm_id: Some("vm-77".into()),
            datastore_mounts: vec![DatastoreMount {
                datastore: "ds1".into(),
                path: PathBuf::from("/vmfs/volumes/ds1"),
            }],
        })
        .unwrap();
    assert_eq!(mt.state, ComponentState::Registering);
    assert_eq!(mt.detail, "");
    assert_eq!(mt.last_heartbeat, None);
    assert_eq!(mt.datastore_mounts[0].path, Path::new("/vmfs/volumes/ds1"));
    store
        .register_component(&NewComponent {
            name: "ps-01".into(),
            role: ComponentRole::ProcessServer,
            site: "azure".into(),
            address: "local".into(),
            host_id: None,
            vm_id: None,
            datastore_mounts: vec![],
        })
        .unwrap();

    store
        .set_component_state(
            "mt-01",
            ComponentState::Failed,
            "cannot reach 10.0.0.9:9443",
        )
        .unwrap();
    store.heartbeat("mt-01", 1_700_000_000_123).unwrap();
    let mt2 = store.component("mt-01").unwrap();
    assert_eq!(mt2.state, ComponentState::Failed);
    assert_eq!(mt2.detail, "cannot reach 10.0.0.9:9443");
    assert_eq!(mt2.last_heartbeat, Some(1_700_000_000_123));
    assert_eq!(mt2.registered_at, mt.registered_at);

    let all: Vec<_> = store
        .components(None)
        .unwrap()
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(all, ["mt-01", "ps-01"]);
    let ps: Vec<_> = store
        .components(Some(ComponentRole::ProcessServer))
        .unwrap()
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(ps, ["ps-01"]);

    assert!(matches!(
        store.set_component_state("x", ComponentState::Registered, ""),
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        store.heartbeat("x", 1),
        Err(StoreError::NotFound { .. })
    ));
    let dup = store.register_component(&NewComponent {
        name: "ps-01".into(),
        role: ComponentRole::ProcessServer,
        site: "azure".into(),
        address: "local".into(),
        host_id: None,
        vm_id: None,
        datastore_mounts: vec![],
    });
    assert!(matches!(dup, Err(StoreError::Conflict(_))));
}

#[test]
fn plugin_sets_are_stored_and_replaced() {
    let (_dir, store) = new_store();
    assert_eq!(store.plugin_set("default").unwrap(), None);
    store
        .put_plugin_set("default", "[plugins]\na = 1\n")
        .unwrap();
    assert_eq!(
        store.plugin_set("default").unwrap().as_deref(),
        Some("[plugins]\na = 1\n")
    );
    store.put_plugin_set("default", "b = 2\n").unwrap();
    assert_eq!(
        store.plugin_set("default").unwrap().as_deref(),
        Some("b = 2\n")
    );
}

#[test]
fn a_to_cloud_group_comes_with_its_failback_pair() {
    let (_dir, store) = new_store();
    let (pg1, failback) = store
        .create_group(&new_group("PG1", Direction::ToCloud))
        .unwrap();
    assert_eq!(pg1.name, "PG1");
    assert_eq!(pg1.direction, Direction::ToCloud);
    assert_eq!(pg1.paired.as_deref(), Some("PG1_Failback"));
    assert_eq!(failback.name, "PG1_Failback");
    assert_eq!(failback.direction, Direction::ToOnPremises);
    assert_eq!(failback.paired.as_deref(), Some("PG1"));
    assert_eq!(pg1.settings, settings());
    assert_eq!(failback.settings, settings());
    assert_eq!(store.group("PG1_Failback").unwrap(), failback);

    // The way back's settings are its own (S1).
    let back = GroupSettings {
        master_target: Some("mt-02".into()),
        retention_hours: Some(72),
        ..settings()
    };
    store.set_group_settings("PG1_Failback", &back).unwrap();
    assert_eq!(store.group("PG1_Failback").unwrap().settings, back);
    assert_eq!(store.group("PG1").unwrap().settings, settings());

    let names: Vec<_> = store
        .groups()
        .unwrap()
        .into_iter()
        .map(|g| g.name)
        .collect();
    assert_eq!(names, ["PG1", "PG1_Failback"]);
}

#[test]
fn group_names_are_unique_and_failback_names_reserved() {
    let (_dir, store) = new_store();
    store
        .create_group(&new_group("PG1", Direction::ToCloud))
        .unwrap();
    let err = store
        .create_group(&new_group("PG1", Direction::ToCloud))
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Conflict(m) if m.contains("\"PG1\"")),
        "{err}"
    );

    let err = store
        .create_group(&new_group("PG2_Failback", Direction::ToOnPremises))
        .unwrap_err();
    let StoreError::Conflict(message) = &err else {
        panic!("expected Conflict, got {err:?}")
    };
    assert!(
        message.contains("reserved") && message.contains("\"PG2\""),
        "{message}"
    );
    assert!(store.group("PG2_Failback").is_err());

    // A to-on-premises group created directly has no pair.
    let (direct, same) = store
        .create_group(&new_group("Back1", Direction::ToOnPremises))
        .unwrap();
    assert_eq!(direct.paired, None);
    assert_eq!(direct, same);
    assert!(store.group("Back1_Failback").is_err());

    // A to-cloud group whose failback name is taken is refused whole.
    let err = store
        .create_group(&new_group("Back1", Direction::ToCloud))
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)));
    assert_eq!(store.groups().unwrap().len(), 3);

    let err = store.set_group_settings("nope", &settings()).unwrap_err();
    assert!(matches!(err, StoreError::NotFound { what: "group", .. }));
}

#[test]
fn items_round_trip_and_update() {
    let (_dir, store) = new_store();
    store
        .create_group(&new_group("PG1", Direction::ToCloud))
        .unwrap();
    let wanted = new_item("web01", "PG1");
    let item = store.add_item(&wanted).unwrap();
    assert_eq!(item.group, "PG1");
    assert_eq!(item.source, wanted.source);
    assert_eq!(item.disks, wanted.disks);
    assert_eq!(item.nics, wanted.nics);
    assert_eq!(item.state, ItemState::Protecting);
    assert_eq!(item.replica, None);
    assert_eq!(store.item("web01").unwrap(), item);

    let err = store.add_item(&new_item("web01", "PG1")).unwrap_err();
    assert!(
        matches!(&err, StoreError::Conflict(m) if m.contains("web01")),
        "{err}"
    );
    let err = store.add_item(&new_item("db01", "PG9")).unwrap_err();
    assert!(
        matches!(&err, StoreError::NotFound { what: "group", name } if name == "PG9"),
        "{err}"
    );

    let mut changed = item.clone();
    changed.group = "PG1_Failback".into();
    changed.state = ItemState::FailedOver;
    changed.state_detail = "failed over at point 3".into();
    changed.replica = Some(VmRef {
        site: "dc1".into(),
        vm_id: "vm-42".into(),
        name: "web01".into(),
    });
    changed.disks[0].replica_disk_id = Some("[ds1] web01/web01.vmdk".into());
    changed.nics.pop();
    store.update_item(&changed).unwrap();
    let read = store.item("web01").unwrap();
    assert_eq!(read.group, "PG1_Failback");
    assert_eq!(read.state, ItemState::FailedOver);
    assert_eq!(read.state_detail, changed.state_detail);
    assert_eq!(read.replica, changed.replica);
    assert_eq!(read.disks, changed.disks);
    assert_eq!(read.nics, changed.nics);
    assert_eq!(read.created_at, item.created_at);
    assert!(read.updated_at >= item.updated_at);

    store.add_item(&new_item("app01", "PG1")).unwrap();
    let in_pg1: Vec<_> = store
        .items(Some("PG1"))
        .unwrap()
        .into_iter()
        .map(|i| i.name)
        .collect();
    assert_eq!(in_pg1, ["app01"]);
    assert_eq!(store.items(None).unwrap().len(), 2);
    assert!(matches!(
        store.items(Some("PG9")),
        Err(StoreError::NotFound { .. })
    ));

    let mut ghost = read.clone();
    ghost.id = 999;
    assert!(matches!(
        store.update_item(&ghost),
        Err(StoreError::NotFound { what: "item", .. })
    ));
    let mut bad_group = read;
    bad_group.group = "PG9".into();
    assert!(matches!(
        store.update_item(&bad_group),
        Err(StoreError::NotFound { what: "group", .. })
    ));
}

#[test]
fn plans_get_failback_groups_right_after_their_pair() {
    let (_dir, store) = new_store();
    store
        .create_group(&new_group("PG1", Direction::ToCloud))
        .unwrap();
    store
        .create_group(&new_group("PG2", Direction::ToCloud))
        .unwrap();
    store
        .create_group(&new_group("Back", Direction::ToOnPremises))
        .unwrap();

    let plan = store
        .create_plan(
            "RP1",
            &[
                PlanEntry::Group { name: "PG1".into() },
                PlanEntry::Manual {
                    text: "check the firewall".into(),
                },
                PlanEntry::Group { name: "PG2".into() },
                PlanEntry::Script {
                    command: "/usr/local/bin/notify".into(),
                },
                PlanEntry::Group {
                    name: "Back".into(),
                },
            ],
        )
        .unwrap();
    assert_eq!(
        group_names(&plan.entries),
        [
            "group:PG1",
            "group:PG1_Failback",
            "manual:check the firewall",
            "group:PG2",
            "group:PG2_Failback",
            "script:/usr/local/bin/notify",
            "group:Back",
        ]
    );
    assert_eq!(store.plan("RP1").unwrap(), plan);

    // Already listed (anywhere): not inserted again.
    let plan2 = store
        .create_plan(
            "RP2",
            &[
                PlanEntry::Group { name: "PG1".into() },
                PlanEntry::Group { name: "PG2".into() },
                PlanEntry::Group {
                    name: "PG1_Failback".into(),
                },
            ],
        )
        .unwrap();
    assert_eq!(
        group_names(&plan2.entries),
        [
            "group:PG1",
            "group:PG2",
            "group:PG2_Failback",
            "group:PG1_Failback"
        ]
    );

    let err = store
        .create_plan("RP3", &[PlanEntry::Group { name: "PG9".into() }])
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::NotFound { what: "group", name } if name == "PG9"),
        "{err}"
    );
    assert!(matches!(
        store.plan("RP3"),
        Err(StoreError::NotFound { .. })
    ));
    let err = store
        .create_plan("RP1", &[PlanEntry::Group { name: "PG2".into() }])
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Conflict(m) if m.contains("RP1")),
        "{err}"
    );
    let err = store
        .create_plan(
            "RP4",
            &[
                PlanEntry::Group { name: "PG2".into() },
                PlanEntry::Group { name: "PG2".into() },
            ],
        )
        .unwrap_err();
    assert!(matches!(err, StoreError::Invalid(_)));
    assert!(matches!(
        store.create_plan("RP5", &[]),
        Err(StoreError::Invalid(_))
    ));

    let names: Vec<_> = store.plans().unwrap().into_iter().map(|p| p.name).collect();
    assert_eq!(names, ["RP1", "RP2"]);
}

#[test]
fn points_are_listed_newest_first() {
    let (_dir, store) = new_store();
    store
        .create_group(&new_group("PG1", Direction::ToCloud))
        .unwrap();
    let item = store.add_item(&new_item("web01", "PG1")).unwrap();
    let point = |taken_at, kind| NewPoint {
        item_id: item.id,
        taken_at,
        kind,
        direction: Direction::ToOnPremises,
        consistency_id: Some("cg-1".into()),
        disks: vec![PointDisk {
            index: 0,
            snapshot_id: format!("snap-{taken_at}"),
            digest: None,
            journal_seq: None,
            change_method: None,
        }],
    };
    let first = store
        .add_point(&point(1000, PointKind::CrashConsistent))
        .unwrap();
    let third = store
        .add_point(&point(3000, PointKind::AppConsistent))
        .unwrap();
    let second = store
        .add_point(&point(2000, PointKind::CrashConsistent))
        .unwrap();
    assert_eq!(store.point(third.id).unwrap(), third);
    assert_eq!(third.disks[0].snapshot_id, "snap-3000");
    assert_eq!(third.kind, PointKind::AppConsistent);
    let ids: Vec<_> = store
        .points(item.id)
        .unwrap()
        .into_iter()
        .map(|p| p.id)
        .collect();
    assert_eq!(ids, [third.id, second.id, first.id]);

    assert!(matches!(
        store.add_point(&NewPoint {
            item_id: 999,
            ..point(1, PointKind::CrashConsistent)
        }),
        Err(StoreError::NotFound { what: "item", .. })
    ));
    assert!(matches!(
        store.points(999),
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(store.point(999), Err(StoreError::NotFound { .. })));
}

#[test]
fn generations_are_upserted_per_disk_and_side() {
    let (_dir, store) = new_store();
    store
        .create_group(&new_group("PG1", Direction::ToCloud))
        .unwrap();
    let item = store.add_item(&new_item("web01", "PG1")).unwrap();
    let generation =
        |disk_index, side, generation: &str, fingerprint: Option<&str>| DiskGeneration {
            item_id: item.id,
            disk_index,
            side,
            generation: generation.into(),
            fingerprint: fingerprint.map(Into::into),
            recorded_at: 42,
        };
    store
        .set_generation(&generation(0, Side::Cloud, "g1", None))
        .unwrap();
    store
        .set_generation(&generation(0, Side::OnPremises, "g2", Some("abc")))
        .unwrap();
    store
        .set_generation(&generation(1, Side::Cloud, "g3", None))
        .unwrap();
    store
        .set_generation(&generation(0, Side::Cloud, "g4", Some("def")))
        .unwrap();
    let all = store.generations(item.id).unwrap();
    assert_eq!(all.len(), 3);
    assert!(all.contains(&generation(0, Side::Cloud, "g4", Some("def"))));
    assert!(all.contains(&generation(0, Side::OnPremises, "g2", Some("abc"))));
    assert!(all.contains(&generation(1, Side::Cloud, "g3", None)));
    assert!(matches!(
        store.set_generation(&DiskGeneration {
            item_id: 999,
            ..generation(0, Side::Cloud, "g", None)
        }),
        Err(StoreError::NotFound { .. })
    ));
}

#[test]
fn tokens_are_found_by_digest_and_rotate_by_name() {
    let (dir, store) = new_store();
    let operator = [7u8; 32];
    let reader = [9u8; 32];
    store
        .add_token("operator", Role::Operator, &operator)
        .unwrap();
    store
        .add_token("read-only", Role::ReadOnly, &reader)
        .unwrap();
    assert_eq!(
        store.token_role(&operator).unwrap(),
        Some(("operator".into(), Role::Operator))
    );
    assert_eq!(
        store.token_role(&reader).unwrap(),
        Some(("read-only".into(), Role::ReadOnly))
    );
    assert_eq!(store.token_role(&[1u8; 32]).unwrap(), None);

    let rotated = [8u8; 32];
    store
        .add_token("operator", Role::Operator, &rotated)
        .unwrap();
    assert_eq!(store.token_role(&operator).unwrap(), None);
    assert_eq!(
        store.token_role(&rotated).unwrap(),
        Some(("operator".into(), Role::Operator))
    );
    assert!(matches!(
        store.add_token("other", Role::ReadOnly, &reader),
        Err(StoreError::Conflict(_))
    ));

    // Only the digest is in the file (a token's digest is what we passed).
    drop(store);
    let bytes = std::fs::read(dir.path().join("homeward.db")).unwrap();
    assert!(bytes.windows(32).any(|w| w == rotated));
}

/// serde text, `as_str`/`Display` and `FromStr` agree for every variant.
macro_rules! enum_round_trip {
    ($ty:ty) => {
        for &value in <$ty>::ALL {
            let text = value.to_string();
            assert_eq!(text, value.as_str());
            assert_eq!(
                serde_json::to_string(&value).unwrap(),
                format!("\"{text}\"")
            );
            assert_eq!(
                serde_json::from_str::<$ty>(&format!("\"{text}\"")).unwrap(),
                value
            );
            assert_eq!(text.parse::<$ty>().unwrap(), value);
            assert!(
                text.chars().all(|c| c.is_ascii_lowercase() || c == '-'),
                "{text}"
            );
        }
    };
}

#[test]
fn enums_have_one_kebab_case_text() {
    enum_round_trip!(SiteKind);
    enum_round_trip!(ComponentRole);
    enum_round_trip!(ComponentState);
    enum_round_trip!(Direction);
    enum_round_trip!(ItemState);
    enum_round_trip!(PointKind);
    enum_round_trip!(Side);
    enum_round_trip!(JobState);
    enum_round_trip!(StepState);
    enum_round_trip!(EventKind);
    enum_round_trip!(Role);
    assert_eq!(Direction::ToOnPremises.as_str(), "to-on-premises");
    assert_eq!(ItemState::FailedOver.as_str(), "failed-over");
    assert_eq!(Role::ReadOnly.as_str(), "read-only");
    let err = "sideways".parse::<Direction>().unwrap_err();
    assert_eq!(
        err.to_string(),
        "unknown direction \"sideways\": expected one of to-cloud, to-on-premises"
    );

    let entries = vec![
        PlanEntry::Group { name: "PG1".into() },
        PlanEntry::Manual { text: "t".into() },
    ];
    let json = serde_json::to_string(&entries).unwrap();
    assert_eq!(
        serde_json::from_str::<Vec<PlanEntry>>(&json).unwrap(),
        entries
    );
    let fixed = Addressing::Fixed {
        addresses: vec![("10.0.0.5".into(), 24)],
        gateways: vec![],
        dns_servers: vec![],
        dns_search: vec![],
    };
    let json = serde_json::to_string(&fixed).unwrap();
    assert!(json.starts_with("{\"fixed\""), "{json}");
    assert_eq!(serde_json::from_str::<Addressing>(&json).unwrap(), fixed);
}

#[test]
fn a_damaged_row_is_an_error_naming_table_and_row() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("homeward.db");
    let store = Store::open(&path).unwrap();
    store
        .create_group(&new_group("PG1", Direction::ToCloud))
        .unwrap();
    let item = store.add_item(&new_item("web01", "PG1")).unwrap();
    let job = store
        .insert_job(&NewJob {
            kind: "reprotect".into(),
            params: serde_json::json!({}),
            steps: vec!["a".into()],
            resources: vec![],
            parent: None,
            summary: String::new(),
        })
        .unwrap();
    drop(store);
    homeward::store::testing::execute_sql(
        &path,
        &format!(
            "UPDATE protected_items SET disks = '[{{\"index\": \"s3cr3t\"}}]' WHERE id = {};
             UPDATE jobs SET state = 'exploded' WHERE id = {};",
            item.id, job.id
        ),
    )
    .unwrap();

    let store = Store::open(&path).unwrap();
    let err = store.item("web01").unwrap_err();
    let StoreError::Invalid(message) = &err else {
        panic!("expected Invalid, got {err:?}")
    };
    assert!(message.contains("protected_items"), "{message}");
    assert!(message.contains(&format!("row {}", item.id)), "{message}");
    assert!(message.contains("disks"), "{message}");
    assert!(
        !message.contains("s3cr3t"),
        "the stored value leaked: {message}"
    );

    let err = store.job(job.id).unwrap_err();
    let StoreError::Invalid(message) = &err else {
        panic!("expected Invalid, got {err:?}")
    };
    assert!(
        message.contains("jobs") && message.contains(&format!("row {}", job.id)),
        "{message}"
    );
    assert!(message.contains("exploded"), "{message}");
    // Other rows still read.
    assert_eq!(store.group("PG1").unwrap().name, "PG1");
}

//! The control API over gRPC, against a server started in-process on the lab
//! adapters: token checks and roles, reflection, the records (sites,
//! components, groups, plans, items), group settings (journal caps merged,
//! bad values refused), errors, and the online backup.

use homeward::control::client::Connection;
use homeward::control::proto as pb;
use homeward::control::proto::control_client::ControlClient;
use homeward::store::{Role, Store};
use homeward_tests::control::TestServer;
use std::time::{Duration, Instant};
use tokio_stream::StreamExt;
use tonic::Code;

async fn connect(server: &TestServer, role: Role) -> Connection {
    Connection::open(&server.url, &server.token_file(role))
        .await
        .unwrap()
}

#[test]
fn a_call_without_a_token_is_unauthenticated() {
    let server = TestServer::lab();
    server.block_on(async {
        let mut client = ControlClient::connect(server.url.clone()).await.unwrap();
        let status = client
            .list_sites(pb::ListSitesRequest {})
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
        assert!(status.message().contains("Bearer"), "{status:?}");
    });
}

#[test]
fn a_wrong_token_is_unauthenticated_and_never_echoed() {
    let server = TestServer::lab();
    let wrong = "AAAAwrong-token-nobody-issued_0123456789abcd";
    server.block_on(async {
        let conn = Connection::open_with_token(&server.url, wrong)
            .await
            .unwrap();
        let status = conn
            .client
            .clone()
            .get_server(pb::GetServerRequest {})
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
        assert!(!status.message().contains(wrong), "{status:?}");
        assert!(!format!("{status:?}").contains(wrong));
        // A real token of this server with one character changed is as unknown.
        let mut near = server.token(Role::Operator);
        let last = near.pop().unwrap();
        near.push(if last == 'A' { 'B' } else { 'A' });
        let conn = Connection::open_with_token(&server.url, &near)
            .await
            .unwrap();
        let status = conn
            .client
            .clone()
            .list_sites(pb::ListSitesRequest {})
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated);
        assert!(!status.message().contains(&near));
    });
}

#[test]
fn the_read_only_token_reads_but_cannot_change_anything() {
    let server = TestServer::lab();
    server.block_on(async {
        let operator = connect(&server, Role::Operator).await;
        operator
            .client
            .clone()
            .add_site(add_site(
                "onprem",
                pb::SiteKind::OnPremises,
                "lab-hypervisor",
            ))
            .await
            .unwrap();

        let reader = connect(&server, Role::ReadOnly).await;
        let mut client = reader.client.clone();
        let me = client
            .get_server(pb::GetServerRequest {})
            .await
            .unwrap()
            .into_inner();
        assert_eq!(me.caller_role, pb::Role::ReadOnly as i32);
        assert_eq!(me.caller, "read-only");
        let sites = client
            .list_sites(pb::ListSitesRequest {})
            .await
            .unwrap()
            .into_inner()
            .sites;
        assert_eq!(sites.len(), 1);
        // Discover reads the site's endpoint: allowed.
        let inventory = client
            .discover(pb::DiscoverRequest {
                site: "onprem".into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert!(
            inventory.vms.iter().any(|vm| vm.name == "mt-01"),
            "{inventory:?}"
        );

        let status = client
            .add_site(add_site("other", pb::SiteKind::Cloud, "lab-cloud"))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
        assert!(
            status.message().contains("operator") && status.message().contains("AddSite"),
            "the refusal does not name the role needed: {status:?}"
        );
        for status in [
            client
                .create_group(pb::CreateGroupRequest {
                    name: "PG1".into(),
                    direction: pb::Direction::ToCloud as i32,
                    settings: None,
                })
                .await
                .unwrap_err(),
            client
                .backup(pb::BackupRequest {})
                .await
                .map(|_| ())
                .unwrap_err(),
            client
                .cancel_job(pb::CancelJobRequest { job_id: 1 })
                .await
                .unwrap_err(),
        ] {
            assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
        }
        // Nothing changed.
        let sites = client
            .list_sites(pb::ListSitesRequest {})
            .await
            .unwrap()
            .into_inner()
            .sites;
        assert_eq!(sites.len(), 1);
    });
}

#[test]
fn reflection_lists_the_control_service_without_a_token() {
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

    let server = TestServer::lab();
    server.block_on(async {
        let channel = tonic::transport::Endpoint::from_shared(server.url.clone())
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut client = ServerReflectionClient::new(channel);
        let requests = [
            MessageRequest::ListServices(String::new()),
            MessageRequest::FileContainingSymbol("homeward.control.v1.Control".into()),
        ]
        .map(|m| ServerReflectionRequest {
            host: String::new(),
            message_request: Some(m),
        });
        let mut replies = client
            .server_reflection_info(tokio_stream::iter(requests))
            .await
            .unwrap()
            .into_inner();
        let Some(MessageResponse::ListServicesResponse(list)) =
            replies.next().await.unwrap().unwrap().message_response
        else {
            panic!("no service list");
        };
        let names: Vec<_> = list.service.iter().map(|s| s.name.as_str()).collect();
        assert!(names.contains(&"homeward.control.v1.Control"), "{names:?}");
        let Some(MessageResponse::FileDescriptorResponse(files)) =
            replies.next().await.unwrap().unwrap().message_response
        else {
            panic!("no file descriptor for the service");
        };
        assert!(
            files.file_descriptor_proto.iter().any(|f| f
                .windows(b"control.proto".len())
                .any(|w| w == b"control.proto")),
            "the descriptor is not control.proto's"
        );
    });
}

fn add_site(name: &str, kind: pb::SiteKind, plugin: &str) -> pb::AddSiteRequest {
    pb::AddSiteRequest {
        name: name.into(),
        kind: kind as i32,
        plugin: plugin.into(),
    }
}

#[test]
fn sites_components_groups_plans_and_items() {
    let server = TestServer::lab();
    let vm_id = server.add_vm("web01", &[1 << 20]);
    server.block_on(async {
        let conn = connect(&server, Role::Operator).await;
        let mut client = conn.client.clone();

        // Sites; a name is taken once.
        client
            .add_site(add_site(
                "onprem",
                pb::SiteKind::OnPremises,
                "lab-hypervisor",
            ))
            .await
            .unwrap();
        client
            .add_site(add_site("cloud", pb::SiteKind::Cloud, "lab-cloud"))
            .await
            .unwrap();
        let status = client
            .add_site(add_site("cloud", pb::SiteKind::Cloud, "lab-cloud"))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::AlreadyExists, "{status:?}");
        let status = client
            .add_site(pb::AddSiteRequest {
                name: "nokind".into(),
                kind: 0,
                plugin: "lab-cloud".into(),
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        assert!(status.message().contains("SITE_KIND_CLOUD"), "{status:?}");

        // Components: registering at once, then registered (or failed) in the background.
        let reply = client
            .register_component(pb::RegisterComponentRequest {
                name: "ps-01".into(),
                role: pb::ComponentRole::ProcessServer as i32,
                site: "cloud".into(),
                address: "local".into(),
                host_id: None,
                vm_id: None,
                datastore_mounts: vec![],
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(reply.state, pb::ComponentState::Registering as i32);
        let broken = client
            .register_component(pb::RegisterComponentRequest {
                name: "mt-bad".into(),
                role: pb::ComponentRole::MasterTarget as i32,
                site: "onprem".into(),
                address: "local".into(),
                host_id: None,
                vm_id: None,
                datastore_mounts: vec![pb::DatastoreMount {
                    datastore: "ds1".into(),
                    path: "/nonexistent/homeward/ds1".into(),
                }],
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(broken.state, pb::ComponentState::Registering as i32);
        let settled = wait_components(&mut client, &["ps-01", "mt-bad"]).await;
        let ps = &settled["ps-01"];
        assert_eq!(ps.state, pb::ComponentState::Registered as i32, "{ps:?}");
        let bad = &settled["mt-bad"];
        assert_eq!(bad.state, pb::ComponentState::Failed as i32, "{bad:?}");
        assert!(bad.detail.contains("/nonexistent/homeward/ds1"), "{bad:?}");
        let only_ps = client
            .list_components(pb::ListComponentsRequest {
                role: Some(pb::ComponentRole::ProcessServer as i32),
            })
            .await
            .unwrap()
            .into_inner()
            .components;
        assert_eq!(
            only_ps.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
            ["ps-01"]
        );

        // Groups: PG1 brings PG1_Failback, paired both ways.
        let made = client
            .create_group(pb::CreateGroupRequest {
                name: "PG1".into(),
                direction: pb::Direction::ToCloud as i32,
                settings: Some(pb::GroupSettings {
                    process_server: Some("ps-01".into()),
                    retention_hours: Some(24),
                    ..Default::default()
                }),
            })
            .await
            .unwrap()
            .into_inner();
        let failback = made.failback.unwrap();
        assert_eq!(failback.name, "PG1_Failback");
        assert_eq!(failback.direction, pb::Direction::ToOnPremises as i32);
        assert_eq!(failback.paired.as_deref(), Some("PG1"));
        let groups = client
            .list_groups(pb::ListGroupsRequest {})
            .await
            .unwrap()
            .into_inner()
            .groups;
        assert_eq!(groups.len(), 2);
        let changed = client
            .set_group_settings(pb::SetGroupSettingsRequest {
                name: "PG1_Failback".into(),
                settings: Some(pb::GroupSettings {
                    master_target: Some("mt-01".into()),
                    datastore: Some("ds2".into()),
                    ..Default::default()
                }),
                clear: vec![],
            })
            .await
            .unwrap()
            .into_inner();
        let settings = changed.settings.unwrap();
        assert_eq!(settings.datastore.as_deref(), Some("ds2"));
        let status = client
            .set_group_settings(pb::SetGroupSettingsRequest {
                name: "PG9".into(),
                settings: None,
                clear: vec![],
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::NotFound, "{status:?}");

        // Plans: a plan holding PG1 gets PG1_Failback right after it.
        let plan = client
            .create_plan(pb::CreatePlanRequest {
                name: "RP1".into(),
                entries: vec![
                    pb::PlanEntry {
                        entry: Some(pb::plan_entry::Entry::Group("PG1".into())),
                    },
                    pb::PlanEntry {
                        entry: Some(pb::plan_entry::Entry::Manual("check the DNS".into())),
                    },
                ],
            })
            .await
            .unwrap()
            .into_inner();
        let entries: Vec<_> = plan.entries.into_iter().filter_map(|e| e.entry).collect();
        assert_eq!(
            entries,
            [
                pb::plan_entry::Entry::Group("PG1".into()),
                pb::plan_entry::Entry::Group("PG1_Failback".into()),
                pb::plan_entry::Entry::Manual("check the DNS".into()),
            ]
        );

        // Items: one per protected VM, with its disks and NICs.
        let items = client
            .protect(pb::ProtectRequest {
                group: "PG1".into(),
                site: "onprem".into(),
                vm_ids: vec![vm_id.clone()],
            })
            .await
            .unwrap()
            .into_inner()
            .items;
        assert_eq!(items.len(), 1);
        let item = &items[0];
        assert_eq!(item.name, "web01");
        assert_eq!(item.source.as_ref().unwrap().vm_id, vm_id);
        assert_eq!(item.disks.len(), 1);
        assert_eq!(item.disks[0].capacity, 1 << 20);
        let listed = client
            .list_items(pb::ListItemsRequest {
                group: Some("PG1".into()),
            })
            .await
            .unwrap()
            .into_inner()
            .items;
        assert_eq!(listed, items);
        let status = client
            .list_items(pb::ListItemsRequest {
                group: Some("PG9".into()),
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::NotFound, "{status:?}");
        let points = client
            .list_points(pb::ListPointsRequest {
                item: "web01".into(),
            })
            .await
            .unwrap()
            .into_inner()
            .points;
        assert!(points.is_empty());
        let status = client
            .list_points(pb::ListPointsRequest {
                item: "nope".into(),
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::NotFound, "{status:?}");

        // Jobs that do not exist.
        for status in [
            client
                .get_job(pb::GetJobRequest { job_id: 4242 })
                .await
                .unwrap_err(),
            client
                .cancel_job(pb::CancelJobRequest { job_id: 4242 })
                .await
                .unwrap_err(),
            client
                .watch_job(pb::WatchJobRequest {
                    job_id: 4242,
                    after_seq: 0,
                })
                .await
                .map(|_| ())
                .unwrap_err(),
        ] {
            assert_eq!(status.code(), Code::NotFound, "{status:?}");
            assert!(status.message().contains("4242"), "{status:?}");
        }
        // A failover without the operator's confirmation is refused.
        let status = client
            .failover(pb::FailoverRequest {
                plan: "RP1".into(),
                direction: pb::Direction::ToOnPremises as i32,
                point: None,
                planned: true,
                confirm: false,
                network: None,
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    });
}

fn journal(
    keep_all: u64,
    one_per: u64,
    max_age: u64,
    points: u64,
    bytes: u64,
) -> pb::JournalSettings {
    pb::JournalSettings {
        keep_all_secs: Some(keep_all),
        one_per_secs: Some(one_per),
        max_age_secs: Some(max_age),
        max_points: Some(points),
        max_bytes: Some(bytes),
    }
}

async fn set_settings(
    client: &mut homeward::control::client::Client,
    group: &str,
    settings: pb::GroupSettings,
    clear: &[&str],
) -> Result<pb::GroupSettings, tonic::Status> {
    client
        .set_group_settings(pb::SetGroupSettingsRequest {
            name: group.into(),
            settings: Some(settings),
            clear: clear.iter().map(|c| c.to_string()).collect(),
        })
        .await
        .map(|r| r.into_inner().settings.unwrap())
}

#[test]
fn journal_settings_round_trip_and_a_partial_change_keeps_them() {
    let server = TestServer::lab();
    let store = server.orchestrator.store().clone();
    server.block_on(async {
        let conn = connect(&server, Role::Operator).await;
        let mut client = conn.client.clone();
        let caps = journal(600, 300, 7200, 40, 2 << 30);
        let made = client
            .create_group(pb::CreateGroupRequest {
                name: "PG1".into(),
                direction: pb::Direction::ToCloud as i32,
                settings: Some(pb::GroupSettings {
                    consistency: Some(true),
                    rpo_target_secs: Some(300),
                    cycle_interval_secs: Some(60),
                    app_consistent_every: Some(4),
                    journal: Some(caps),
                    ..Default::default()
                }),
            })
            .await
            .unwrap()
            .into_inner();
        let failback = made.failback.unwrap().settings.unwrap();
        assert_eq!(failback.journal, Some(caps), "{failback:?}");
        // What the store keeps, not only what the reply says.
        let stored = store.group("PG1_Failback").unwrap().settings;
        assert_eq!(stored.journal.keep_all_secs, Some(600));
        assert_eq!(stored.journal.one_per_secs, Some(300));
        assert_eq!(stored.journal.max_age_secs, Some(7200));
        assert_eq!(stored.journal.max_points, Some(40));
        assert_eq!(stored.journal.max_bytes, Some(2 << 30));
        assert_eq!(stored.app_consistent_every, Some(4));

        // Only the RPO target: the journal caps, the cycle and consistency stay.
        let after = set_settings(
            &mut client,
            "PG1_Failback",
            pb::GroupSettings {
                rpo_target_secs: Some(120),
                ..Default::default()
            },
            &[],
        )
        .await
        .unwrap();
        assert_eq!(after.rpo_target_secs, Some(120));
        assert_eq!(after.journal, Some(caps), "{after:?}");
        assert_eq!(after.cycle_interval_secs, Some(60));
        assert_eq!(after.consistency, Some(true));
        let stored = store.group("PG1_Failback").unwrap().settings;
        assert_eq!(stored.rpo_target_secs, Some(120));
        assert_eq!(stored.journal.max_bytes, Some(2 << 30));

        // One journal field: the others stay; consistency can be turned off.
        let after = set_settings(
            &mut client,
            "PG1_Failback",
            pb::GroupSettings {
                consistency: Some(false),
                journal: Some(pb::JournalSettings {
                    max_points: Some(10),
                    ..Default::default()
                }),
                ..Default::default()
            },
            &[],
        )
        .await
        .unwrap();
        let j = after.journal.unwrap();
        assert_eq!((j.max_points, j.max_bytes), (Some(10), Some(2 << 30)));
        assert_eq!(after.consistency, Some(false));

        // Clearing: back to the default, the rest untouched.
        let after = set_settings(
            &mut client,
            "PG1_Failback",
            pb::GroupSettings::default(),
            &["journal.max_bytes", "rpo_target_secs"],
        )
        .await
        .unwrap();
        let j = after.journal.unwrap();
        assert_eq!(j.max_bytes, None);
        assert_eq!(j.keep_all_secs, Some(600));
        assert_eq!(after.rpo_target_secs, None);
        assert_eq!(after.cycle_interval_secs, Some(60));
        // The pair was never touched.
        let pg1 = store.group("PG1").unwrap().settings;
        assert_eq!(pg1.rpo_target_secs, Some(300));
        assert_eq!(pg1.journal.max_bytes, Some(2 << 30));
    });
}

#[test]
fn bad_group_settings_are_refused_naming_the_field() {
    let server = TestServer::lab();
    let store = server.orchestrator.store().clone();
    server.block_on(async {
        let conn = connect(&server, Role::Operator).await;
        let mut client = conn.client.clone();
        let status = client
            .create_group(pb::CreateGroupRequest {
                name: "PG1".into(),
                direction: pb::Direction::ToCloud as i32,
                settings: Some(pb::GroupSettings {
                    journal: Some(pb::JournalSettings {
                        one_per_secs: Some(0),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        assert!(
            status.message().contains("journal.one_per_secs is 0")
                && status.message().contains("at least 1 second"),
            "{status:?}"
        );
        assert!(
            store.groups().unwrap().is_empty(),
            "a refused group was made"
        );

        client
            .create_group(pb::CreateGroupRequest {
                name: "PG1".into(),
                direction: pb::Direction::ToCloud as i32,
                settings: Some(pb::GroupSettings {
                    rpo_target_secs: Some(300),
                    cycle_interval_secs: Some(60),
                    journal: Some(journal(600, 300, 7200, 40, 2 << 30)),
                    ..Default::default()
                }),
            })
            .await
            .unwrap();
        let before = store.group("PG1").unwrap().settings;
        let only_journal = |j: pb::JournalSettings| pb::GroupSettings {
            journal: Some(j),
            ..Default::default()
        };
        let cases: Vec<(pb::GroupSettings, Vec<&str>, &str, &str)> = vec![
            (
                only_journal(pb::JournalSettings {
                    max_bytes: Some(4096),
                    ..Default::default()
                }),
                vec![],
                "journal.max_bytes is 4096 bytes",
                "1048576",
            ),
            (
                only_journal(pb::JournalSettings {
                    max_age_secs: Some(86_400_000),
                    ..Default::default()
                }),
                vec![],
                "journal.max_age_secs",
                "366 days",
            ),
            (
                only_journal(pb::JournalSettings {
                    max_points: Some(0),
                    ..Default::default()
                }),
                vec![],
                "journal.max_points is 0",
                "clear it",
            ),
            (
                pb::GroupSettings {
                    rpo_target_secs: Some(0),
                    ..Default::default()
                },
                vec![],
                "rpo_target_secs is 0",
                "at least 1 second",
            ),
            (
                pb::GroupSettings {
                    app_consistent_every: Some(0),
                    ..Default::default()
                },
                vec![],
                "app_consistent_every is 0",
                "clear it",
            ),
            // Checked against what the group already has: its 60 s cycle.
            (
                pb::GroupSettings {
                    rpo_target_secs: Some(30),
                    ..Default::default()
                },
                vec![],
                "cycle_interval_secs (60 s) is longer than rpo_target_secs (30 s)",
                "at most 30 s",
            ),
            (
                pb::GroupSettings::default(),
                vec!["journal.size"],
                "\"journal.size\", which is not a setting",
                "journal.max_bytes",
            ),
            (
                only_journal(pb::JournalSettings {
                    max_bytes: Some(1 << 30),
                    ..Default::default()
                }),
                vec!["journal"],
                "journal.max_bytes is both set and cleared",
                "one or the other",
            ),
        ];
        for (settings, clear, what, fix) in cases {
            let status = set_settings(&mut client, "PG1", settings, &clear)
                .await
                .unwrap_err();
            assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
            assert!(
                status.message().contains(what) && status.message().contains(fix),
                "want {what:?} and {fix:?}: {status:?}"
            );
            assert_eq!(
                store.group("PG1").unwrap().settings,
                before,
                "a refused change was kept"
            );
        }
        // The edges are accepted: one block, 366 days.
        let after = set_settings(
            &mut client,
            "PG1",
            pb::GroupSettings {
                journal: Some(pb::JournalSettings {
                    max_bytes: Some(1 << 20),
                    max_age_secs: Some(366 * 86_400),
                    ..Default::default()
                }),
                ..Default::default()
            },
            &[],
        )
        .await
        .unwrap();
        assert_eq!(after.journal.unwrap().max_bytes, Some(1 << 20));
    });
}

/// Polls until none of `names` is registering any more (60 s at most).
async fn wait_components(
    client: &mut homeward::control::client::Client,
    names: &[&str],
) -> std::collections::HashMap<String, pb::Component> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let all = client
            .list_components(pb::ListComponentsRequest { role: None })
            .await
            .unwrap()
            .into_inner()
            .components;
        let settled: std::collections::HashMap<_, _> = all
            .into_iter()
            .filter(|c| names.contains(&c.name.as_str()))
            .filter(|c| c.state != pb::ComponentState::Registering as i32)
            .map(|c| (c.name.clone(), c))
            .collect();
        if settled.len() == names.len() {
            return settled;
        }
        assert!(Instant::now() < deadline, "still registering: {settled:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[test]
fn an_online_backup_is_a_store_with_the_same_identity() {
    let server = TestServer::lab();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("backup.db");
    let identity = server.block_on(async {
        let conn = connect(&server, Role::Operator).await;
        let mut client = conn.client.clone();
        client
            .add_site(add_site(
                "onprem",
                pb::SiteKind::OnPremises,
                "lab-hypervisor",
            ))
            .await
            .unwrap();
        let me = client
            .get_server(pb::GetServerRequest {})
            .await
            .unwrap()
            .into_inner();
        let mut chunks = client
            .backup(pb::BackupRequest {})
            .await
            .unwrap()
            .into_inner();
        let mut bytes = Vec::new();
        let mut first = None;
        while let Some(chunk) = chunks.next().await {
            let chunk = chunk.unwrap();
            bytes.extend_from_slice(&chunk.data);
            first.get_or_insert((chunk.total_bytes, chunk.server_id.clone()));
        }
        let (total, server_id) = first.unwrap();
        assert_eq!(bytes.len() as u64, total);
        assert_eq!(server_id, me.server_id);
        std::fs::write(&file, &bytes).unwrap();
        me
    });
    // The backup is a store of its own, with the server's identity and records,
    // while the server keeps running.
    let copy = Store::open(&file).unwrap();
    assert_eq!(copy.identity().unwrap().server_id, identity.server_id);
    assert_eq!(copy.sites().unwrap().len(), 1);
    // No temporary copy is left next to the server's store.
    let leftovers: Vec<_> = std::fs::read_dir(server.state.root())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(".backup-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

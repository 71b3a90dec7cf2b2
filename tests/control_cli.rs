//! The `homeward` client commands against a server started in-process:
//! tables, `--json` parsed back, exit codes, group settings and item RPO,
//! backup and restore, and a job submitted and followed with `--wait`.

use homeward::store::{
    Direction, Group, Item, JobRecord, JobState, NewPoint, Plan, PointDisk, PointKind, Role, Site,
    Store,
};
use homeward_tests::control::TestServer;
use homeward_tests::homeward_exit;
use std::process::ExitCode;

/// Runs a client command against `server` with a role's token.
fn cli(server: &TestServer, role: Role, args: &[&str]) -> (ExitCode, String) {
    let mut all: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    all.extend(server.cli_args(role));
    let all: Vec<&str> = all.iter().map(String::as_str).collect();
    homeward_exit(&all)
}

fn ok(server: &TestServer, args: &[&str]) -> String {
    let (code, out) = cli(server, Role::Operator, args);
    assert_eq!(code, ExitCode::SUCCESS, "homeward {args:?}:\n{out}");
    out
}

/// Runs a command with `--json`; its output parsed (into a record type at the call site).
fn json(server: &TestServer, args: &[&str]) -> serde_json::Value {
    let mut with_json = args.to_vec();
    with_json.push("--json");
    let out = ok(server, &with_json);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("homeward {args:?}: {e}:\n{out}"))
}

#[test]
fn records_through_the_cli_as_tables_and_json() {
    let server = TestServer::lab();
    let vm_id = server.add_vm("web01", &[2 << 20, 1 << 20]);

    let out = ok(
        &server,
        &[
            "site",
            "add",
            "onprem",
            "--kind",
            "on-premises",
            "--plugin",
            "lab-hypervisor",
        ],
    );
    assert!(out.contains("added site onprem"), "{out}");
    ok(
        &server,
        &[
            "site",
            "add",
            "cloud",
            "--kind",
            "cloud",
            "--plugin",
            "lab-cloud",
        ],
    );
    // The server options also go before the command.
    let token = server.token_file(Role::Operator);
    let (code, table) = homeward_exit(&[
        "--server",
        &server.url,
        "--token-file",
        token.to_str().unwrap(),
        "site",
        "list",
    ]);
    assert_eq!(code, ExitCode::SUCCESS, "{table}");
    let lines: Vec<&str> = table.lines().collect();
    assert!(
        lines[0].starts_with("NAME") && lines[0].contains("KIND"),
        "{table}"
    );
    // Columns are aligned: KIND starts at the same place on every line.
    let at = lines[0].find("KIND").unwrap();
    assert!(
        lines[1..]
            .iter()
            .all(|l| l[at..].starts_with("on-premises") || l[at..].starts_with("cloud")),
        "{table}"
    );
    let sites: Vec<Site> = serde_json::from_value(json(&server, &["site", "list"])).unwrap();
    let mut names: Vec<&str> = sites.iter().map(|s| s.name.as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, ["cloud", "onprem"]);

    // Registration: registering, then registered.
    let out = ok(
        &server,
        &[
            "component",
            "register",
            "ps-01",
            "--role",
            "process-server",
            "--site",
            "cloud",
        ],
    );
    assert!(
        out.contains("ps-01: registering") && out.contains("ps-01: registered"),
        "{out}"
    );
    let table = ok(&server, &["component", "list"]);
    assert!(
        table.contains("ps-01") && table.contains("registered"),
        "{table}"
    );

    let out = ok(&server, &["discover", "onprem"]);
    assert!(
        out.contains("esx-01") && out.contains("web01") && out.contains("ds1"),
        "{out}"
    );
    let inventory: serde_json::Value = json(&server, &["discover", "onprem"]);
    assert!(
        inventory["vms"]
            .as_array()
            .unwrap()
            .iter()
            .any(|vm| vm["id"] == vm_id.as_str())
    );

    let groups: Vec<Group> = serde_json::from_value(json(
        &server,
        &[
            "group",
            "create",
            "PG1",
            "--process-server",
            "ps-01",
            "--retention-hours",
            "24",
        ],
    ))
    .unwrap();
    assert_eq!(
        groups.iter().map(|g| g.name.as_str()).collect::<Vec<_>>(),
        ["PG1", "PG1_Failback"]
    );
    let out = ok(
        &server,
        &[
            "group",
            "set",
            "PG1_Failback",
            "--datastore",
            "ds2",
            "--consistency",
            "true",
        ],
    );
    assert!(out.contains("ds2"), "{out}");
    let groups: Vec<Group> = serde_json::from_value(json(&server, &["group", "list"])).unwrap();
    let failback = groups.iter().find(|g| g.name == "PG1_Failback").unwrap();
    assert_eq!(failback.settings.datastore.as_deref(), Some("ds2"));
    assert!(failback.settings.consistency);
    // Untouched by `set`: what create gave both groups.
    assert_eq!(failback.settings.process_server.as_deref(), Some("ps-01"));

    let plan: Plan = serde_json::from_value(json(
        &server,
        &[
            "plan",
            "create",
            "RP1",
            "--group",
            "PG1",
            "--manual",
            "check DNS",
        ],
    ))
    .unwrap();
    let names: Vec<String> = plan
        .entries
        .iter()
        .map(|e| serde_json::to_string(e).unwrap())
        .collect();
    assert_eq!(names.len(), 3, "{names:?}");
    assert!(
        names[1].contains("PG1_Failback") && names[2].contains("check DNS"),
        "{names:?}"
    );
    let table = ok(&server, &["plan", "list"]);
    assert!(
        table.contains("PG1 → PG1_Failback → manual: check DNS"),
        "{table}"
    );

    let items: Vec<Item> = serde_json::from_value(json(
        &server,
        &["protect", "PG1", "--site", "onprem", &vm_id],
    ))
    .unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].disks.len(), 2);
    let listed: Vec<Item> =
        serde_json::from_value(json(&server, &["items", "--group", "PG1"])).unwrap();
    assert_eq!(listed, items);
    let table = ok(&server, &["items"]);
    assert!(table.contains("web01") && table.contains("PG1"), "{table}");
    let table = ok(&server, &["points", "web01"]);
    assert!(table.starts_with("ID"), "{table}");
    let jobs: Vec<JobRecord> = serde_json::from_value(json(&server, &["jobs"])).unwrap();
    assert!(jobs.is_empty());
}

#[test]
fn exit_codes_say_what_went_wrong() {
    let server = TestServer::lab();
    ok(
        &server,
        &[
            "site",
            "add",
            "onprem",
            "--kind",
            "on-premises",
            "--plugin",
            "lab-hypervisor",
        ],
    );

    // 4: not found.
    for args in [
        &["points", "nope"][..],
        &["items", "--group", "PG9"],
        &["jobs", "77"],
        &["discover", "mars"],
    ] {
        let (code, out) = cli(&server, Role::Operator, args);
        assert_eq!(code, ExitCode::from(4), "{args:?}:\n{out}");
    }
    // 5: refused (a name taken).
    let (code, out) = cli(
        &server,
        Role::Operator,
        &[
            "site",
            "add",
            "onprem",
            "--kind",
            "cloud",
            "--plugin",
            "lab-cloud",
        ],
    );
    assert_eq!(code, ExitCode::from(5), "{out}");
    assert!(out.contains("already exists"), "{out}");
    // 3: the read-only token cannot change anything.
    let (code, out) = cli(
        &server,
        Role::ReadOnly,
        &[
            "site",
            "add",
            "x",
            "--kind",
            "cloud",
            "--plugin",
            "lab-cloud",
        ],
    );
    assert_eq!(code, ExitCode::from(3), "{out}");
    assert!(out.contains("operator"), "{out}");
    // 3: a token file that holds no token of this server.
    let dir = tempfile::tempdir().unwrap();
    let bogus = dir.path().join("bogus.token");
    std::fs::write(&bogus, "not-a-token-of-this-server\n").unwrap();
    let (code, out) = homeward_exit(&[
        "site",
        "list",
        "--server",
        &server.url,
        "--token-file",
        bogus.to_str().unwrap(),
    ]);
    assert_eq!(code, ExitCode::from(3), "{out}");
    assert!(
        !out.contains("not-a-token-of-this-server"),
        "the token was echoed:\n{out}"
    );
    // 3: nobody listens there.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let token = server.token_file(Role::Operator);
    let (code, out) = homeward_exit(&[
        "site",
        "list",
        "--server",
        &format!("http://{closed}"),
        "--token-file",
        token.to_str().unwrap(),
    ]);
    assert_eq!(code, ExitCode::from(3), "{out}");
    assert!(out.contains("cannot reach"), "{out}");
    // 2: failover without --yes says where it would go, and sends nothing.
    let (code, out) = cli(
        &server,
        Role::Operator,
        &["failover", "RP1", "--direction", "to-on-premises"],
    );
    assert_eq!(code, ExitCode::from(2), "{out}");
    assert!(
        out.contains("to on-premises") && out.contains("--yes"),
        "{out}"
    );
    let jobs: Vec<JobRecord> = serde_json::from_value(json(&server, &["jobs"])).unwrap();
    assert!(jobs.is_empty());
    // 2: input the server rejects.
    let (code, out) = cli(&server, Role::Operator, &["plan", "create", "RP0"]);
    assert_eq!(code, ExitCode::from(2), "{out}");
}

#[test]
fn backup_streams_from_the_server_and_restore_waits_for_it_to_stop() {
    let server = TestServer::lab();
    ok(
        &server,
        &[
            "site",
            "add",
            "onprem",
            "--kind",
            "on-premises",
            "--plugin",
            "lab-hypervisor",
        ],
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("homeward-backup.db");
    let out = ok(&server, &["admin", "backup", file.to_str().unwrap()]);
    assert!(out.contains("backup of server hw-"), "{out}");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let identity = server.orchestrator.store().identity().unwrap();
    {
        let copy = Store::open(&file).unwrap();
        assert_eq!(copy.identity().unwrap(), identity);
    }
    // Never over an existing file.
    let (code, out) = cli(
        &server,
        Role::Operator,
        &["admin", "backup", file.to_str().unwrap()],
    );
    assert_eq!(code, ExitCode::from(2), "{out}");

    // The server holds the store: restore refuses and leaves it alone.
    ok(
        &server,
        &[
            "site",
            "add",
            "cloud",
            "--kind",
            "cloud",
            "--plugin",
            "lab-cloud",
        ],
    );
    let state = server.state.root().to_str().unwrap().to_string();
    let (code, out) = homeward_exit(&[
        "admin",
        "restore",
        file.to_str().unwrap(),
        "--state-dir",
        &state,
    ]);
    assert_eq!(code, ExitCode::from(5), "{out}");
    assert!(out.contains("stop it first"), "{out}");
    assert_eq!(server.orchestrator.store().sites().unwrap().len(), 2);
    // Without a state directory it does not guess.
    let (code, out) = homeward_exit(&["admin", "restore", file.to_str().unwrap()]);
    assert_eq!(code, ExitCode::from(2), "{out}");

    // Stopped (and the store closed), the restore goes through.
    let store_path = server.state.store_path();
    let _dir = server.close();
    assert!(store_path.exists());
    let (code, out) = homeward_exit(&[
        "admin",
        "restore",
        file.to_str().unwrap(),
        "--state-dir",
        &state,
    ]);
    assert_eq!(code, ExitCode::SUCCESS, "{out}");
    assert!(out.contains(&identity.server_id), "{out}");
    let restored = Store::open(&store_path).unwrap();
    assert_eq!(restored.identity().unwrap(), identity);
    assert_eq!(
        restored.sites().unwrap().len(),
        1,
        "the site added after the backup is gone"
    );
}

/// The value on `name`'s line of `group show`'s table.
fn setting(detail: &str, name: &str) -> String {
    detail
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .map(str::trim)
        .unwrap_or_else(|| panic!("no {name} in:\n{detail}"))
        .to_string()
}

/// A group's journal caps and RPO through `group create/set/show/list`, and
/// the items' RPO in `items --json`.
#[test]
fn group_settings_and_the_items_rpo_through_the_cli() {
    let server = TestServer::lab();
    let vm_id = server.add_vm("web01", &[1 << 20]);
    ok(
        &server,
        &[
            "site",
            "add",
            "onprem",
            "--kind",
            "on-premises",
            "--plugin",
            "lab-hypervisor",
        ],
    );
    ok(
        &server,
        &[
            "group",
            "create",
            "PG1",
            "--rpo-target-secs",
            "600",
            "--cycle-interval-secs",
            "60",
            "--app-consistent-every",
            "4",
            "--journal-keep-all-secs",
            "900",
            "--journal-max-points",
            "40",
            "--journal-max-bytes",
            "2GiB",
        ],
    );
    // Only the RPO target changes; the journal caps stay.
    let changed: Group = serde_json::from_value(json(
        &server,
        &["group", "set", "PG1", "--rpo-target-secs", "120"],
    ))
    .unwrap();
    assert_eq!(changed.settings.rpo_target_secs, Some(120));
    let groups: Vec<Group> = serde_json::from_value(json(&server, &["group", "list"])).unwrap();
    let pg1 = groups.iter().find(|g| g.name == "PG1").unwrap();
    assert_eq!(pg1.settings.rpo_target_secs, Some(120));
    assert_eq!(pg1.settings.cycle_interval_secs, Some(60));
    assert_eq!(pg1.settings.app_consistent_every, Some(4));
    assert_eq!(pg1.settings.journal.keep_all_secs, Some(900));
    assert_eq!(pg1.settings.journal.max_points, Some(40));
    assert_eq!(pg1.settings.journal.max_bytes, Some(2 << 30));
    let shown: Group = serde_json::from_value(json(&server, &["group", "show", "PG1"])).unwrap();
    assert_eq!(&shown, pg1);

    let table = ok(&server, &["group", "list"]);
    assert!(
        table.lines().next().unwrap().contains("RPO-TARGET")
            && table.contains("keep-all=900s max-points=40 max-bytes=2 GiB"),
        "{table}"
    );
    let detail = ok(&server, &["group", "show", "PG1"]);
    assert_eq!(setting(&detail, "rpo-target-secs"), "120s (2m)");
    assert_eq!(setting(&detail, "journal-max-bytes"), "2147483648 (2 GiB)");
    assert_eq!(
        setting(&detail, "journal-one-per-secs"),
        "- (default 3600s (1h))"
    );
    // An unset journal age follows the group's retention.
    ok(&server, &["group", "set", "PG1", "--retention-hours", "72"]);
    let detail = ok(&server, &["group", "show", "PG1"]);
    assert_eq!(
        setting(&detail, "journal-max-age-secs"),
        "- (default 259200s (3d))"
    );

    // --clear unsets one journal cap; the others stay.
    let cleared: Group = serde_json::from_value(json(
        &server,
        &["group", "set", "PG1", "--clear", "journal-max-bytes"],
    ))
    .unwrap();
    assert_eq!(cleared.settings.journal.max_bytes, None);
    assert_eq!(cleared.settings.journal.keep_all_secs, Some(900));
    // Bad values: exit 2, the field and the fix named, nothing changed.
    let (code, out) = cli(
        &server,
        Role::Operator,
        &["group", "set", "PG1", "--journal-one-per-secs", "0"],
    );
    assert_eq!(code, ExitCode::from(2), "{out}");
    assert!(
        out.contains("journal.one_per_secs is 0") && out.contains("at least 1 second"),
        "{out}"
    );
    let (code, out) = cli(
        &server,
        Role::Operator,
        &["group", "set", "PG1", "--clear", "journal-size"],
    );
    // Refused by the command line before anything is sent.
    assert_ne!(code, ExitCode::SUCCESS, "{out}");
    assert!(out.contains("journal-max-bytes"), "{out}");
    let groups: Vec<Group> = serde_json::from_value(json(&server, &["group", "list"])).unwrap();
    let pg1 = groups.iter().find(|g| g.name == "PG1").unwrap();
    assert_eq!(pg1.settings, cleared.settings);

    // Items: RPO per item; before any point the target is missed.
    let items: Vec<Item> = serde_json::from_value(json(
        &server,
        &["protect", "PG1", "--site", "onprem", &vm_id],
    ))
    .unwrap();
    let listed = json(&server, &["items", "--group", "PG1"]);
    let rpo = &listed[0]["rpo"];
    assert_eq!(rpo["target_secs"], 120, "{listed:#}");
    assert_eq!(rpo["alert"], true, "{listed:#}");
    assert!(rpo["age_secs"].is_null() && rpo["latest_point_at"].is_null());
    // The record is still the store's own shape, with `rpo` beside it.
    let records: Vec<Item> = serde_json::from_value(listed).unwrap();
    assert_eq!(records, items);

    // A point taken 5 minutes ago: 300 s old, over the 120 s target.
    let store = server.orchestrator.store();
    let taken_at = homeward::store::now_ms() - 300_000;
    store
        .add_point(&NewPoint {
            item_id: items[0].id,
            taken_at,
            kind: PointKind::CrashConsistent,
            direction: Direction::ToCloud,
            consistency_id: None,
            disks: vec![PointDisk {
                index: 0,
                snapshot_id: "snap-1".into(),
                digest: None,
                journal_seq: Some(7),
                change_method: None,
            }],
        })
        .unwrap();
    let listed = json(&server, &["items"]);
    let rpo = &listed[0]["rpo"];
    let age = rpo["age_secs"].as_u64().unwrap();
    assert!((300..330).contains(&age), "{listed:#}");
    assert_eq!(rpo["latest_point_at"], taken_at, "{listed:#}");
    assert_eq!(rpo["journal_seq"], 7, "{listed:#}");
    assert_eq!(rpo["alert"], true, "{listed:#}");
    // A target the point meets clears the alert.
    ok(
        &server,
        &["group", "set", "PG1", "--rpo-target-secs", "3600"],
    );
    let listed = json(&server, &["items"]);
    assert_eq!(listed[0]["rpo"]["alert"], false, "{listed:#}");
    assert_eq!(listed[0]["rpo"]["target_secs"], 3600, "{listed:#}");
    let table = ok(&server, &["items"]);
    assert!(table.contains("/3600s"), "{table}");
}

/// The demo lab's first stage, submitted and followed through the CLI.
#[test]
fn a_reprotect_submitted_with_wait_is_followed_to_its_end() {
    let dir = tempfile::tempdir().unwrap();
    let lab = homeward::demo::DemoLab::create(dir.path()).unwrap();
    let state = homeward::control::state::StateDir::new(dir.path().join("state"));
    let server = TestServer::serve(lab.orchestrator.clone(), state);

    let (code, out) = cli(
        &server,
        Role::Operator,
        &[
            "reprotect",
            homeward::demo::VM,
            "--direction",
            "to-cloud",
            "--process-server",
            "ps-01",
            "--wait",
        ],
    );
    assert_eq!(code, ExitCode::SUCCESS, "{out}");
    assert!(out.contains("submitted: "), "{out}");
    assert!(out.contains(": done"), "no step was reported done:\n{out}");
    assert!(out.lines().last().unwrap().ends_with("succeeded"), "{out}");

    let id = out
        .lines()
        .find_map(|l| l.strip_prefix("job ")?.split_once(" submitted: "))
        .map(|(id, _)| id.to_string())
        .unwrap_or_else(|| panic!("no job id:\n{out}"));
    let jobs: Vec<JobRecord> =
        serde_json::from_value(json(&server, &["jobs", "--kind", "reprotect"])).unwrap();
    let job = jobs.iter().find(|j| j.id.to_string() == id).unwrap();
    assert_eq!(job.state, JobState::Succeeded);
    // Watching a finished job replays its events as JSON lines and ends.
    let (code, out) = cli(&server, Role::ReadOnly, &["jobs", &id, "--watch", "--json"]);
    assert_eq!(code, ExitCode::SUCCESS, "{out}");
    let kinds: Vec<String> = out
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["kind"].as_str().map(str::to_string))
        .collect();
    assert_eq!(
        kinds.first().map(String::as_str),
        Some("job-started"),
        "{out}"
    );
    assert!(kinds.iter().any(|k| k == "job-finished"), "{out}");
    let detail = ok(&server, &["jobs", &id]);
    assert!(detail.contains("state:     succeeded"), "{detail}");
    // A finished job cannot be cancelled.
    let (code, out) = cli(&server, Role::Operator, &["jobs", "cancel", &id]);
    assert_eq!(code, ExitCode::from(5), "{out}");
}

#[test]
#[ignore = "entry point of child processes, run by the other tests"]
fn child_entry() {
    homeward_tests::child::entry();
}

/// `homeward serve` as the operator runs it: first start makes the state
/// directory and token files (paths printed, tokens never), SIGTERM stops it
/// cleanly, and the next start keeps the tokens.
#[test]
fn serve_without_a_role_makes_its_state_and_stops_on_sigterm() {
    use homeward_tests::child::spawn_until;
    use std::os::unix::fs::PermissionsExt;

    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let args = [
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--state-dir",
        state.to_str().unwrap(),
    ];
    let (mut child, line) = spawn_until(&args, "control API listening on 127.0.0.1:");
    let url = format!("http://{}", line.rsplit(' ').next().unwrap());
    let token_file = state.join("tokens/operator.token");
    let token = std::fs::read_to_string(&token_file).unwrap();
    let token = token.trim();
    assert_eq!(token.len(), 43);
    let printed = child.lines.join("\n");
    assert!(printed.contains(token_file.to_str().unwrap()), "{printed}");
    assert!(printed.contains("read-only.token"), "{printed}");
    // Continuous replication runs with the server (groups with a cycle interval).
    assert!(printed.contains("replication cycles:"), "{printed}");
    assert!(!printed.contains(token), "a token was printed:\n{printed}");
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&token_file), 0o600);
    assert_eq!(mode(&state.join("tokens/read-only.token")), 0o600);
    assert_eq!(mode(&state.join("tokens")), 0o700);
    assert_eq!(mode(&state), 0o700);

    let (code, out) = homeward_exit(&[
        "site",
        "list",
        "--server",
        &url,
        "--token-file",
        token_file.to_str().unwrap(),
    ]);
    assert_eq!(code, ExitCode::SUCCESS, "{out}");
    // The state directory gives the token file on the server's machine.
    let (code, out) = homeward_exit(&[
        "site",
        "list",
        "--server",
        &url,
        "--state-dir",
        state.to_str().unwrap(),
    ]);
    assert_eq!(code, ExitCode::SUCCESS, "{out}");

    let status = child.terminate();
    assert!(
        status.success(),
        "SIGTERM did not stop it cleanly: {status:?}"
    );

    // The store is free again, and the next start keeps the tokens.
    assert!(!Store::is_in_use(&state.join("homeward.db")).unwrap());
    let (mut child, _) = spawn_until(&args, "control API listening on");
    let printed = child.lines.join("\n");
    assert!(!printed.contains("(new"), "{printed}");
    assert_eq!(std::fs::read_to_string(&token_file).unwrap().trim(), token);
    assert!(child.terminate().success());
}

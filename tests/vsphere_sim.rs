//! The vSphere simulator harness (`tests/support/vsphere_sim.rs`): both models
//! answer raw SOAP, accept exactly their two accounts, answer privilege
//! queries by role, back their datastores with real directories, close their
//! port when stopped, and the adapter settings point at them.

use homeward::plugin::PluginSettings;
use homeward_tests::vsphere_sim::{Account, Model, SoapAnswer, VsphereSim};
use std::net::TcpStream;

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The service content's managed-object ids we need.
struct Content {
    api_type: String,
    root_folder: String,
    session_manager: String,
    authorization_manager: String,
    license_manager: String,
}

fn service_content(sim: &VsphereSim) -> Content {
    let answer = sim.soap(None,
        r#"<RetrieveServiceContent xmlns="urn:vim25"><_this type="ServiceInstance">ServiceInstance</_this></RetrieveServiceContent>"#,
    );
    assert_eq!(answer.status, 200, "{}", answer.body);
    let get = |name: &str| {
        answer
            .text(name)
            .unwrap_or_else(|| panic!("no {name} in {}", answer.body))
    };
    Content {
        api_type: get("apiType"),
        root_folder: get("rootFolder"),
        session_manager: get("sessionManager"),
        authorization_manager: get("authorizationManager"),
        license_manager: get("licenseManager"),
    }
}

fn login(sim: &VsphereSim, content: &Content, user: &str, password: &str) -> SoapAnswer {
    sim.soap(None,
        &format!(
            r#"<Login xmlns="urn:vim25"><_this type="SessionManager">{}</_this><userName>{}</userName><password>{}</password></Login>"#,
            content.session_manager,
            xml_escape(user),
            xml_escape(password)
        ),
    )
}

/// Logs `account` in; returns its session cookie.
fn session(sim: &VsphereSim, content: &Content, account: Account) -> String {
    let (user, password) = sim.credentials(account);
    let answer = login(sim, content, user, password);
    assert_eq!(answer.status, 200, "{account:?} login: {}", answer.body);
    assert_eq!(answer.text("userName").as_deref(), Some(user));
    answer.cookie.expect("a login sets the session cookie")
}

/// (privilege, granted) for `privileges` on the root folder, as the session sees it.
fn privileges_on_root(
    sim: &VsphereSim,
    content: &Content,
    cookie: &str,
    privileges: &[&str],
) -> Vec<(String, bool)> {
    let ids: String = privileges
        .iter()
        .map(|p| format!("<privId>{p}</privId>"))
        .collect();
    let answer = sim.soap(Some(cookie),
        &format!(
            r#"<HasPrivilegeOnEntities xmlns="urn:vim25"><_this type="AuthorizationManager">{}</_this><entity type="Folder">{}</entity><sessionId>{cookie}</sessionId>{ids}</HasPrivilegeOnEntities>"#,
            content.authorization_manager, content.root_folder
        ),
    );
    assert_eq!(answer.status, 200, "{}", answer.body);
    answer
        .texts("privId")
        .into_iter()
        .zip(answer.texts("isGranted"))
        .map(|(p, g)| (p, g == "true"))
        .collect()
}

fn add_license(sim: &VsphereSim, content: &Content, cookie: &str, key: &str) -> SoapAnswer {
    sim.soap(Some(cookie),
        &format!(
            r#"<AddLicense xmlns="urn:vim25"><_this type="LicenseManager">{}</_this><licenseKey>{key}</licenseKey></AddLicense>"#,
            content.license_manager
        ),
    )
}

/// Everything a model must do: answer, accept exactly its two accounts,
/// answer privileges by role, refuse a read-only change, back its datastores.
fn check_model(model: Model, api_type: &str) {
    let sim = VsphereSim::start(model);
    let content = service_content(&sim);
    assert_eq!(content.api_type, api_type);

    // Exactly the two accounts log in.
    let (admin, admin_password) = sim.admin();
    let wrong = login(&sim, &content, admin, "not-the-password");
    assert_eq!(wrong.status, 500, "{}", wrong.body);
    assert_eq!(
        wrong.fault_type().as_deref(),
        Some("InvalidLogin"),
        "{}",
        wrong.body
    );
    assert!(wrong.cookie.is_none());
    let stranger = login(&sim, &content, "someone@vsphere.local", admin_password);
    assert_eq!(
        stranger.fault_type().as_deref(),
        Some("InvalidLogin"),
        "{}",
        stranger.body
    );
    let swapped = login(&sim, &content, sim.readonly().0, admin_password);
    assert_eq!(
        swapped.fault_type().as_deref(),
        Some("InvalidLogin"),
        "{}",
        swapped.body
    );
    let admin_session = session(&sim, &content, Account::Admin);
    let reader_session = session(&sim, &content, Account::ReadOnly);

    // Privileges follow the role.
    let asked = ["System.Read", "VirtualMachine.State.CreateSnapshot"];
    assert_eq!(
        privileges_on_root(&sim, &content, &admin_session, &asked),
        vec![
            ("System.Read".to_string(), true),
            ("VirtualMachine.State.CreateSnapshot".to_string(), true)
        ]
    );
    assert_eq!(
        privileges_on_root(&sim, &content, &reader_session, &asked),
        vec![
            ("System.Read".to_string(), true),
            ("VirtualMachine.State.CreateSnapshot".to_string(), false)
        ]
    );

    // A change is refused to the reader and done for the admin.
    let key = "AAAAA-BBBBB-CCCCC-DDDDD-EEEEE";
    let refused = add_license(&sim, &content, &reader_session, key);
    assert_eq!(refused.status, 500, "{}", refused.body);
    assert_eq!(
        refused.fault_type().as_deref(),
        Some("NoPermission"),
        "{}",
        refused.body
    );
    assert_eq!(
        refused.text("privilegeId").as_deref(),
        Some("Global.Licenses")
    );
    let added = add_license(&sim, &content, &admin_session, key);
    assert_eq!(added.status, 200, "{}", added.body);
    assert_eq!(added.text("licenseKey").as_deref(), Some(key));

    // Without a session, nothing but the service content and login.
    let anonymous = add_license(&sim, &content, "no-such-session", key);
    assert_eq!(anonymous.fault_type().as_deref(), Some("NotAuthenticated"));

    // Every VM's files are in its directory on the one datastore.
    assert_eq!(sim.datastores(), vec!["LocalDS_0".to_string()]);
    let datastore = sim.datastore_dir("LocalDS_0");
    assert!(datastore.is_dir(), "{}", datastore.display());
    assert!(!sim.vms().is_empty());
    for vm in sim.vms() {
        let vmx = datastore.join(&vm).join(format!("{vm}.vmx"));
        assert!(vmx.is_file(), "{} is missing", vmx.display());
        assert!(datastore.join(&vm).join("disk1.vmdk").is_file());
    }
}

#[test]
fn vcenter_model_answers_and_checks_accounts() {
    check_model(Model::Vpx, "VirtualCenter");
}

#[test]
fn esxi_model_answers_and_checks_accounts() {
    check_model(Model::Esx, "HostAgent");
}

#[test]
fn stopped_simulator_closes_its_port_and_removes_its_datastores() {
    let mut sim = VsphereSim::start(Model::Esx);
    let datastore = sim.datastore_dir("LocalDS_0");
    assert!(TcpStream::connect(sim.host_port()).is_ok());
    assert!(datastore.is_dir());

    sim.stop();

    let refused = TcpStream::connect(sim.host_port());
    assert!(refused.is_err(), "port {} still open", sim.host_port());
    assert!(
        !datastore.exists(),
        "a clean stop removes {}",
        datastore.display()
    );
}

#[test]
fn plugin_settings_and_plugin_set_point_at_the_simulator() {
    let sim = VsphereSim::start(Model::Vpx);
    let settings = sim.plugin_settings(Account::ReadOnly);
    let (user, password) = sim.readonly();
    assert_eq!(settings.config["url"], sim.url());
    assert!(sim.url().starts_with("http://127.0.0.1:") && sim.url().ends_with("/sdk"));
    assert_eq!(settings.config["user"], user);
    assert_eq!(settings.secrets["password"].expose(), password);
    assert_eq!(settings.grants.network, vec![sim.network_grant()]);
    assert_eq!(sim.network_grant().to_string(), sim.host_port());

    // The plugin-set file says the same, with the password kept out of it.
    let dir = tempfile::tempdir().unwrap();
    let wasm = dir.path().join("vcenter.wasm");
    let path = sim.write_plugin_set(dir.path(), "vcenter", &wasm, Account::ReadOnly);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(!text.contains(password), "{text}");
    let parsed = homeward::config::load(&path).unwrap();
    assert!(!parsed.has_errors(), "{:?}\n{text}", parsed.diagnostics);
    let set = parsed.set.expect("a plugin set");
    let entry = set
        .plugins
        .iter()
        .find(|p| p.id == "vcenter")
        .expect("entry");
    assert_eq!(entry.path, wasm);
    let from_file = PluginSettings::from_entry(entry, &set.runtime).unwrap();
    assert_eq!(from_file.config, settings.config);
    assert_eq!(from_file.grants, settings.grants);
    assert_eq!(from_file.secrets["password"].expose(), password);
}

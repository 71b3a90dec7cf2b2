//! Components stay visible (S19): local ones beat, remote ones that stop
//! beating turn unreachable, and come back when they beat again.

use homeward::store::{ComponentRole, ComponentState, NewComponent, Store, now_ms};
use homeward::workflow::components;
use std::time::Duration;

fn component(name: &str, address: &str) -> NewComponent {
    NewComponent {
        name: name.into(),
        role: ComponentRole::ProcessServer,
        site: "cloud".into(),
        address: address.into(),
        host_id: None,
        vm_id: None,
        datastore_mounts: Vec::new(),
    }
}

#[test]
fn stale_components_turn_unreachable_and_come_back() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("homeward.db")).unwrap();
    for (name, address) in [
        ("ps-local", "local"),
        ("ps-remote", "10.0.0.5:9444"),
        ("ps-new", "10.0.0.6:9444"),
    ] {
        store.register_component(&component(name, address)).unwrap();
    }
    for name in ["ps-local", "ps-remote"] {
        store
            .set_component_state(name, ComponentState::Registered, "checked")
            .unwrap();
    }
    let interval = Duration::from_secs(1);
    store.heartbeat("ps-remote", now_ms() - 10_000).unwrap();

    let changed = components::check(&store, interval).unwrap();
    assert_eq!(changed, vec!["ps-remote".to_string()]);
    let remote = store.component("ps-remote").unwrap();
    assert_eq!(remote.state, ComponentState::Unreachable);
    assert!(remote.detail.contains("no heartbeat"), "{}", remote.detail);
    let local = store.component("ps-local").unwrap();
    assert_eq!(local.state, ComponentState::Registered);
    assert!(now_ms() - local.last_heartbeat.unwrap() < 5_000);
    // A registration still being checked is left alone.
    assert_eq!(
        store.component("ps-new").unwrap().state,
        ComponentState::Registering
    );

    store.heartbeat("ps-remote", now_ms()).unwrap();
    assert_eq!(
        components::check(&store, interval).unwrap(),
        vec!["ps-remote".to_string()]
    );
    assert_eq!(
        store.component("ps-remote").unwrap().state,
        ComponentState::Registered
    );
    assert!(
        components::check(&store, interval).unwrap().is_empty(),
        "nothing changes twice"
    );
}

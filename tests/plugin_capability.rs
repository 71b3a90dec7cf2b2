//! Capabilities: manifest network patterns, and the effective grant as the
//! intersection of what a plugin asks for and what the operator grants.

use std::path::PathBuf;

use homeward::config::{DirGrant, Grants, HostPort};
use homeward::plugin::capability::{FileAccess, NetworkPattern, RequestedCapabilities, grant};

fn hp(s: &str) -> HostPort {
    s.parse().unwrap()
}

#[test]
fn patterns_match_normalised_targets() {
    let any443: NetworkPattern = "*:443".parse().unwrap();
    assert!(any443.matches(&hp("vc.lab:443")));
    assert!(!any443.matches(&hp("vc.lab:80")));
    let local: NetworkPattern = "localhost:*".parse().unwrap();
    assert!(local.matches(&hp("127.0.0.1:8080")));
    let v6: NetworkPattern = "[::1]:443".parse().unwrap();
    assert!(v6.matches(&hp("[::1]:443")));
    assert_eq!(v6.to_string(), "[::1]:443");
    for bad in ["*", "vc.lab", "*.lab:443", "h:0", "h:x", ":443"] {
        assert!(bad.parse::<NetworkPattern>().is_err(), "{bad}");
    }
}

#[test]
fn effective_grant_is_the_intersection() {
    let requested = RequestedCapabilities {
        network: vec!["*:443".parse().unwrap()],
        files: FileAccess::ReadOnly,
        disk_write: false,
    };
    let granted = Grants {
        network: vec![hp("vc.lab:443"), hp("db.lab:5432")],
        dirs: vec![DirGrant {
            host: PathBuf::from("/srv/g"),
            guest: "/g".to_string(),
            write: true,
        }],
        disk_write: true,
        tls: Vec::new(),
    };
    let (eff, unused) = grant(&requested, &granted);
    assert_eq!(eff.network, vec![hp("vc.lab:443")]);
    assert!(eff.allows(&hp("vc.lab:443")));
    assert!(!eff.allows(&hp("db.lab:5432")));
    assert_eq!(eff.dirs.len(), 1);
    assert!(!eff.dirs[0].write, "read-only request caps a write grant");
    assert!(!eff.disk_write);
    assert_eq!(unused.len(), 3, "{unused:?}");
}

#[test]
fn nothing_requested_means_nothing_granted() {
    let granted = Grants {
        network: vec![hp("vc.lab:443")],
        dirs: Vec::new(),
        disk_write: false,
        tls: Vec::new(),
    };
    let (eff, unused) = grant(&RequestedCapabilities::default(), &granted);
    assert!(eff.network.is_empty());
    assert_eq!(unused.len(), 1);
}

//! WIT API versions: which plugin API versions this host serves, and why it
//! refuses the others.

use homeward::plugin::api::{ApiLine, select};
use semver::Version;

#[test]
fn serves_its_own_line_only() {
    assert_eq!(select("p", &Version::new(0, 1, 0)).unwrap(), ApiLine::V0_1);
    for (v, says) in [
        (Version::new(0, 2, 0), "newer than this host"),
        (Version::new(1, 0, 0), "newer than this host"),
        (Version::new(0, 1, 7), "upgrade Homeward"),
        (Version::new(0, 0, 9), "no longer serves"),
    ] {
        let err = select("p", &v).unwrap_err().to_string();
        assert!(err.contains(&v.to_string()), "{err}");
        assert!(err.contains("0.1.0"), "{err}");
        assert!(err.contains(says), "{err}");
    }
}

//! The SDK's `Error` constructors fill the right case, and only
//! `unavailable` is retryable.

use homeward_sdk::Error;

#[test]
fn constructors_fill_the_right_case() {
    match Error::permission_denied("cannot browse", &["Datastore.Browse"]) {
        Error::PermissionDenied(p) => {
            assert_eq!(p.missing_privileges, vec!["Datastore.Browse".to_string()]);
            assert_eq!(p.message, "cannot browse");
        }
        other => panic!("wrong case: {other:?}"),
    }
    assert!(Error::unavailable("busy", Some(500)).is_retryable());
    assert!(!Error::not_found("vm-42").is_retryable());
}

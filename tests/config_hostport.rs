//! `host:port` network grants: normalisation (case, trailing dot, IP forms,
//! `localhost`), request authorities matching parsed grants, and every
//! rejected spelling with its reason.

use homeward::config::{HostPort, HostPortError};

fn hp(s: &str) -> Result<HostPort, HostPortError> {
    s.parse()
}

#[test]
fn normalises() {
    assert_eq!(
        hp("VC.Lab.Example.:443").unwrap().to_string(),
        "vc.lab.example:443"
    );
    assert_eq!(hp("localhost:8080").unwrap().to_string(), "127.0.0.1:8080");
    assert_eq!(hp("LOCALHOST.:1").unwrap().host, "127.0.0.1");
    assert_eq!(hp("[::1]:443").unwrap().host, "::1");
    assert_eq!(hp("[::1]:443").unwrap().to_string(), "[::1]:443");
    assert_eq!(
        hp("[0:0:0:0:0:0:0:1]:443").unwrap().to_string(),
        "[::1]:443"
    );
    assert_eq!(
        hp("[::FFFF:10.0.0.1]:80").unwrap().to_string(),
        "10.0.0.1:80"
    );
    assert_eq!(hp("127.0.0.1:8989").unwrap().port, 8989);
}

#[test]
fn from_authority_matches_parsed_grants() {
    let grant = hp("vc.lab.example:443").unwrap();
    assert_eq!(HostPort::from_authority("VC.LAB.EXAMPLE.", 443), grant);
    assert_eq!(
        HostPort::from_authority("[::1]", 443),
        hp("[::1]:443").unwrap()
    );
    assert_eq!(
        HostPort::from_authority("::1", 443),
        hp("[::1]:443").unwrap()
    );
    assert_eq!(
        HostPort::from_authority("localhost", 80),
        hp("127.0.0.1:80").unwrap()
    );
}

#[test]
fn rejects() {
    use HostPortError::*;
    assert_eq!(hp("example.com"), Err(MissingPort));
    assert_eq!(hp("example.com:"), Err(MissingPort));
    assert_eq!(hp("example.com:0"), Err(PortZero));
    assert_eq!(hp("example.com:65536"), Err(InvalidPort("65536".into())));
    assert_eq!(hp("example.com:+1"), Err(InvalidPort("+1".into())));
    assert_eq!(hp("*.example.com:443"), Err(Wildcard));
    assert_eq!(hp("https://example.com:443"), Err(Scheme));
    assert_eq!(hp("example.com:443/x"), Err(Path));
    assert_eq!(hp("u@example.com:443"), Err(UserInfo));
    assert_eq!(hp(":443"), Err(MissingHost));
    assert_eq!(hp("::1:443"), Err(UnbracketedIpv6));
    assert_eq!(hp("[::1]"), Err(MissingPort));
    assert_eq!(hp("[::g]:1"), Err(InvalidIpv6("::g".into())));
    assert_eq!(hp("[::1:1"), Err(InvalidIpv6("::1:1".into())));
    assert_eq!(hp("[::1]x:1"), Err(InvalidPort("x:1".into())));
    assert_eq!(hp(""), Err(Empty));
    assert_eq!(hp("a b:1"), Err(Whitespace));
    assert!(matches!(hp("127.1:80"), Err(InvalidHost { .. })));
    assert!(matches!(hp("a..b:80"), Err(InvalidHost { .. })));
    assert!(matches!(hp("-a.com:80"), Err(InvalidHost { .. })));
    assert!(matches!(hp("exa$mple.com:80"), Err(InvalidHost { .. })));
}

//! `Url::parse`: what is accepted, and a clear error for everything else.

use device_fw::http::{HttpError, Url};

#[test]
fn accepts_http_urls() {
    let u = Url::parse("http://bucket.example.com/fw/app.bin").unwrap();
    assert_eq!(
        u,
        Url {
            host: "bucket.example.com",
            port: 80,
            path: "/fw/app.bin"
        }
    );
    assert_eq!(
        Url::parse("HTTP://10.0.0.2:8080/a?b=c#frag").unwrap(),
        Url {
            host: "10.0.0.2",
            port: 8080,
            path: "/a?b=c"
        }
    );
    assert_eq!(
        Url::parse("http://h").unwrap(),
        Url {
            host: "h",
            port: 80,
            path: "/"
        }
    );
    assert_eq!(
        Url::parse("http://h:/x").unwrap(),
        Url {
            host: "h",
            port: 80,
            path: "/x"
        }
    );
    assert_eq!(Url::parse("http://my_host-1.local:65535/").unwrap().port, 65535);
}

#[test]
fn displays_in_normal_form() {
    assert_eq!(Url::parse("HTTP://h:80/x").unwrap().to_string(), "http://h/x");
    assert_eq!(Url::parse("http://h:81").unwrap().to_string(), "http://h:81/");
}

#[test]
fn https_and_other_schemes_are_unsupported() {
    for text in ["https://h/x", "HTTPS://h/x", "ftp://h/x", "file:///x"] {
        let e = Url::parse(text).unwrap_err();
        assert_eq!(e, HttpError::UnsupportedScheme, "{text}");
        assert!(e.to_string().contains("TLS"), "{e}");
    }
}

#[test]
fn bad_urls_say_what_is_wrong() {
    for (text, needle) in [
        ("h/x", "scheme"),
        ("://h/x", "scheme"),
        ("http:///x", "missing host"),
        ("http://h:0/x", "port"),
        ("http://h:65536/x", "port"),
        ("http://h:8o/x", "port"),
        ("http://user:pw@h/x", "credentials"),
        ("http://[::1]/x", "IPv6"),
        ("http://h/a b", "percent-encode"),
        ("http://h/ü", "percent-encode"),
        ("http://h?x=1", "query"),
        ("http://h~/x", "host"),
    ] {
        match Url::parse(text) {
            Err(e @ HttpError::BadUrl(reason)) => {
                assert!(reason.contains(needle), "{text}: {reason}");
                assert!(!e.is_retryable());
            }
            other => panic!("{text}: {other:?}"),
        }
    }
}

#[test]
fn same_origin_ignores_host_case_not_port() {
    let a = Url::parse("http://Example.com/a").unwrap();
    assert!(a.same_origin(&Url::parse("http://example.COM:80/b").unwrap()));
    assert!(!a.same_origin(&Url::parse("http://example.com:81/a").unwrap()));
}

use std::fs;
use std::path::Path;

use super::local_cas::{LocalPutError, replace_local};
use super::*;

fn parse(text: &str) -> Result<Location, BucketError> {
    Location::parse(text, Path::new("/srv/project"))
}

#[test]
fn local_forms() {
    let root = |l: Location| match l.kind {
        Kind::File { root } => root,
        other => panic!("{other:?}"),
    };
    assert_eq!(root(parse("file:///srv/ota").unwrap()), Path::new("/srv/ota"));
    assert_eq!(root(parse("file:///srv/my%20ota/").unwrap()), Path::new("/srv/my ota"));
    assert_eq!(root(parse("file:dist").unwrap()), Path::new("/srv/project/dist"));
    assert_eq!(root(parse("file://./dist").unwrap()), Path::new("/srv/project/dist"));
    assert_eq!(root(parse("file://../dist").unwrap()), Path::new("/srv/dist"));
    assert_eq!(root(parse("dist").unwrap()), Path::new("/srv/project/dist"));
    assert_eq!(root(parse("./dist/../out").unwrap()), Path::new("/srv/project/out"));
    assert_eq!(root(parse("/srv/ota").unwrap()), Path::new("/srv/ota"));
    assert!(parse("file://dist").is_err(), "a host-relative file URL is ambiguous");
    assert_eq!(parse("file:///srv/ota").unwrap().url(), "file:///srv/ota");
}

#[test]
fn cloud_forms() {
    let s3 = parse("s3://fleet-ota/prod/eu/").unwrap();
    assert_eq!(
        s3.kind,
        Kind::S3 {
            bucket: "fleet-ota".into()
        }
    );
    assert_eq!(s3.prefix, "prod/eu");
    assert_eq!(s3.url(), "s3://fleet-ota/prod/eu");
    assert_eq!(parse("gs://b").unwrap().kind, Kind::Gcs { bucket: "b".into() });
    assert_eq!(parse("az://c/p").unwrap().kind, Kind::Azure { container: "c".into() });
    assert!(parse("ftp://x/y").is_err());
    assert!(parse("s3:///prefix").is_err());
    assert!(parse("").is_err());
    assert!(parse("http:x").is_err());
}

#[test]
fn local_compare_and_swap() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("manifest.json");
    fs::write(&path, b"one").unwrap();
    assert!(matches!(
        replace_local(&path, b"two", b"zero"),
        Err(LocalPutError::Conflict(_))
    ));
    assert_eq!(fs::read(&path).unwrap(), b"one");
    assert!(replace_local(&path, b"two", b"one").is_ok());
    assert_eq!(fs::read(&path).unwrap(), b"two");
    fs::remove_file(&path).unwrap();
    assert!(matches!(
        replace_local(&path, b"three", b"two"),
        Err(LocalPutError::Conflict(_))
    ));
    let left: Vec<_> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(left, [".manifest.json.lock"], "no staging file is left behind");
}

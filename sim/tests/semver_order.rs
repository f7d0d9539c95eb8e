//! The device's no-heap semver ordering agrees with the reference implementation (the one
//! cargo uses) on random versions, pre-releases included.

use device_fw::wire::semver::Version;
use rand::rngs::ChaCha8Rng;
use rand::{RngExt, SeedableRng};

fn identifier(rng: &mut ChaCha8Rng) -> String {
    match rng.random_range(0..4) {
        0 => rng.random_range(0..3u32).to_string(),
        1 => rng.random_range(0..30u32).to_string(),
        2 => ["alpha", "beta", "rc", "x-1", "A", "a"][rng.random_range(0..6)].to_owned(),
        _ => format!(
            "{}{}",
            ["a", "b", "1a"][rng.random_range(0..3)],
            rng.random_range(0..3u32)
        ),
    }
}

fn version(rng: &mut ChaCha8Rng) -> String {
    let mut v = format!(
        "{}.{}.{}",
        rng.random_range(0..3u32),
        rng.random_range(0..3u32),
        rng.random_range(0..12u32)
    );
    if rng.random_bool(0.5) {
        let n = rng.random_range(1..4);
        let ids: Vec<String> = (0..n).map(|_| identifier(rng)).collect();
        v.push('-');
        v.push_str(&ids.join("."));
    }
    if rng.random_bool(0.2) {
        v.push_str("+build.");
        v.push_str(&rng.random_range(0..9u32).to_string());
    }
    v
}

#[test]
fn precedence_matches_the_reference_on_random_versions() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    for _ in 0..20_000 {
        let (a, b) = (version(&mut rng), version(&mut rng));
        let ours = Version::parse(&a).unwrap().precedence(&Version::parse(&b).unwrap());
        let reference = semver::Version::parse(&a)
            .unwrap()
            .cmp_precedence(&semver::Version::parse(&b).unwrap());
        assert_eq!(ours, reference, "{a} vs {b}");
    }
}

#[test]
fn rejects_what_the_reference_rejects() {
    for text in [
        "1.2",
        "1.2.3.4",
        "01.2.3",
        "1.2.3-01",
        "1.2.3-",
        "1.2.3+",
        "1.2.3-a..b",
        "v1.2.3",
        " 1.2.3",
    ] {
        assert!(semver::Version::parse(text).is_err(), "reference accepts {text}");
        assert!(Version::parse(text).is_err(), "device accepts {text}");
    }
}

//! The tables that say when a device updates by itself, where it reports, and how a
//! rollout is judged: defaults, rules and their errors; and the reader's facts (spellings,
//! URL rules, defaults) against the core's, which it cannot share code with.
#![cfg(feature = "profile")]

#[path = "profile_support.rs"]
mod support;

use std::time::Duration;

use device_fw::modem::Dialect;
use device_fw::profile::{Chip, Profile, ProfileErrorKind};

use support::{BASE, assert_error, parse_err, profiles_dir};

// ---------------------------------------------------------------------------------------
// [update], [release] report_url, [rollout].

#[test]
fn update_defaults_are_the_schedules() {
    let p = Profile::parse(BASE, "x").unwrap();
    assert_eq!(p.update_policy(), device_fw::ota::schedule::UpdatePolicy::default());
    assert_eq!(p.rollout.thresholds(), device_fw::fleet::Thresholds::default());
    assert_eq!(p.release.report_url, None);

    let p = Profile::parse(
        &format!(
            "{BASE}\n[update]\ncheck_every = \"1h 30m\"\njitter = \"90s\"\nretry_after = \"1s\"\nretry_max = \"2d\"\nmax_attempts_per_day = 0\n"
        ),
        "x",
    )
    .unwrap();
    let policy = p.update_policy();
    assert_eq!(policy.check_every_us, 5_400_000_000);
    assert_eq!(policy.jitter_us, 90_000_000);
    assert_eq!(policy.retry_after_us, 1_000_000);
    assert_eq!(policy.retry_max_us, 2 * 86_400_000_000);
    assert_eq!(policy.max_attempts_per_day, 0);
}

#[test]
fn scheduled_checks_can_be_turned_off() {
    let p = Profile::parse(&format!("{BASE}\n[update]\ncheck_every = \"0s\"\n"), "x").unwrap();
    assert_eq!(p.update_policy().check_every_us, 0);
    // The default jitter (30 min) is longer than "0s": it does not matter when nothing is
    // scheduled.
    assert_eq!(p.update.jitter.0, Duration::from_secs(30 * 60));
}

#[test]
fn update_rules() {
    let update = |body: &str| parse_err(&format!("{BASE}\n[update]\n{body}\n"));
    let line = BASE.lines().count() + 3;
    let e = update("check_every = \"5s\"");
    assert_error(
        &e,
        ProfileErrorKind::BadValue,
        "update.check_every",
        Some(line),
        &[
            "update.check_every = \"5s\" is below 10 s",
            "\"0s\" turns scheduled checks off",
        ],
    );
    let e = update("check_every = \"1h\"\njitter = \"2h\"");
    assert_error(
        &e,
        ProfileErrorKind::BadValue,
        "update.jitter",
        Some(line + 1),
        &["update.jitter = \"2h\" is longer than update.check_every = \"1h\""],
    );
    let e = update("retry_after = \"500ms\"");
    assert_error(
        &e,
        ProfileErrorKind::BadValue,
        "update.retry_after",
        Some(line),
        &["below 1 s", "1 s to 365 days"],
    );
    let e = update("retry_after = \"1h\"\nretry_max = \"10m\"");
    assert_error(
        &e,
        ProfileErrorKind::BadValue,
        "update.retry_max",
        Some(line + 1),
        &["update.retry_max = \"10m\" is below update.retry_after = \"1h\""],
    );
    let e = update("retry_max = \"400days\"");
    assert_error(
        &e,
        ProfileErrorKind::BadValue,
        "update.retry_max",
        Some(line),
        &["longer than 365 days"],
    );
    let e = update("check_every = \"soon\"");
    assert_error(
        &e,
        ProfileErrorKind::BadValue,
        "update.check_every",
        Some(line),
        &["\"soon\" is not a duration", "\"30m\""],
    );
    let e = update("check_every = 3600");
    assert_error(
        &e,
        ProfileErrorKind::WrongType,
        "update.check_every",
        Some(line),
        &["must be a duration, found integer", "\"6h\""],
    );
    let e = update("max_attempts_per_day = 300");
    assert_error(
        &e,
        ProfileErrorKind::BadValue,
        "update.max_attempts_per_day",
        Some(line),
        &["300", "0 (no limit) to 255"],
    );
    let e = update("check_evry = \"6h\"");
    assert_error(
        &e,
        ProfileErrorKind::UnknownKey,
        "update.check_evry",
        Some(line),
        &[
            "did you mean `check_every`",
            "known keys of [update]: check_every, jitter",
        ],
    );
}

#[test]
fn report_url_rules() {
    let release = |body: &str| format!("{BASE}\n[release]\n{body}\n");
    let line = BASE.lines().count() + 3;
    let p = Profile::parse(
        &release("report_url = \"http://ota.example.com:8080/reports?fleet=a\""),
        "x",
    )
    .unwrap();
    assert_eq!(
        p.release.report_url.as_deref(),
        Some("http://ota.example.com:8080/reports?fleet=a")
    );
    let e = parse_err(&release("report_url = \"https://ota.example.com/reports\""));
    assert_error(
        &e,
        ProfileErrorKind::BadValue,
        "release.report_url",
        Some(line),
        &["https://", "plain http://", "otactl serve"],
    );
    let e = parse_err(&release(&format!("report_url = \"http://h/{}\"", "r".repeat(200))));
    assert_error(
        &e,
        ProfileErrorKind::BadValue,
        "release.report_url",
        Some(line),
        &["209 bytes, more than the 200"],
    );
    let e = parse_err(&release("report_ur = \"http://h/r\""));
    assert_error(
        &e,
        ProfileErrorKind::UnknownKey,
        "release.report_ur",
        Some(line),
        &["did you mean `report_url`"],
    );
}

#[test]
fn device_url_gives_a_manifest_url_a_device_keeps() {
    let p = Profile::parse(
        &format!("{BASE}\n[release]\nchannel = \"beta\"\ndevice_url = \"http://h:81/fleet/\"\n"),
        "x",
    )
    .unwrap();
    assert_eq!(
        p.manifest_url().as_deref(),
        Some("http://h:81/fleet/beta/manifest.json")
    );
    let e = parse_err(&format!(
        "{BASE}\n[release]\ndevice_url = \"http://h/{}\"\n",
        "d".repeat(180)
    ));
    assert_error(
        &e,
        ProfileErrorKind::BadValue,
        "release.device_url",
        None,
        &["manifest URL of 210 bytes", "shorter base URL"],
    );
    let e = parse_err(&format!("{BASE}\n[release]\ndevice_url = \"http://h/fleet?x=1\"\n"));
    assert_error(&e, ProfileErrorKind::BadValue, "release.device_url", None, &["query"]);
}

#[test]
fn rollout_rules() {
    let p = Profile::parse(
        &format!("{BASE}\n[rollout]\nmin_reports = 50\nmax_failure_rate = 0.02\nhalt_min_reports = 10\n"),
        "x",
    )
    .unwrap();
    let t = p.rollout.thresholds();
    assert_eq!((t.min_reports, t.max_failure_rate, t.halt_min_reports), (50, 0.02, 10));
    for bad in ["1.5", "-0.1", "nan"] {
        let e = parse_err(&format!("{BASE}\n[rollout]\nmax_failure_rate = {bad}\n"));
        assert_error(
            &e,
            ProfileErrorKind::BadValue,
            "rollout.max_failure_rate",
            Some(BASE.lines().count() + 3),
            &["outside 0..=1", "0.05 for 5 %"],
        );
    }
    let e = parse_err(&format!("{BASE}\n[rollout]\nmin_reports = -1\n"));
    assert_error(&e, ProfileErrorKind::BadValue, "rollout.min_reports", None, &["-1"]);
}

// ---------------------------------------------------------------------------------------
// The reader's facts against the core's.

#[test]
fn profile_spellings_are_the_cores_names() {
    use device_fw::profile::{ChipName, DialectName, MAX_KEYS};
    assert_eq!(ChipName::ALL.len(), Chip::ALL.len());
    for chip in Chip::ALL {
        assert_eq!(ChipName::from(chip).as_str(), chip.as_str());
        assert_eq!(Chip::from(ChipName::from(chip)), chip);
        assert_eq!(format!("{:?}", ChipName::from(chip)), format!("{chip:?}"));
        assert_eq!(
            ChipName::from(chip).target(),
            Profile::parse(BASE, "x").unwrap().build.target_for(chip)
        );
    }
    for name in DialectName::ALL {
        let dialect = Dialect::from(name);
        assert_eq!(DialectName::from(dialect), name);
        assert_eq!(name.as_str(), dialect.name().to_ascii_lowercase());
        assert_eq!(format!("{name:?}"), format!("{dialect:?}"));
    }
    assert_eq!(MAX_KEYS, device_fw::wire::manifest::MAX_KEYS);
}

#[test]
fn urls_a_profile_takes_are_urls_the_device_takes() {
    use device_fw::http::Url;
    use device_fw::profile::device_url_problem;
    for url in [
        "http://ota.example.com/fleet",
        "http://ota.example.com",
        "http://10.0.0.2:8080/a/b/",
        "http://h:/x",
        "http://my_host.local/x?y=1",
        "https://ota.example.com/fleet",
        "HTTP://ota.example.com/fleet",
        "ftp://h/x",
        "ota.example.com/fleet",
        "http://",
        "http:///path",
        "http://user@h/x",
        "http://[::1]/x",
        "http://h:0/x",
        "http://h:65536/x",
        "http://h:8o/x",
        "http://h x/y",
        "http://h/a b",
        "http://h/\u{e9}",
        "http://h?x",
        "http://h/x#frag",
        "http://ho$t/x",
    ] {
        if device_url_problem(url, true).is_none() {
            assert!(
                Url::parse(url).is_ok(),
                "the profile takes {url:?}, the device does not"
            );
        }
    }
}

#[test]
fn the_shipped_profiles_commented_examples_hold_and_say_the_defaults() {
    let examples = [
        "[update]",
        "check_every",
        "jitter",
        "retry_after",
        "retry_max",
        "max_attempts_per_day",
        "[rollout]",
        "min_reports",
        "max_failure_rate",
        "halt_min_reports",
        "report_url",
    ];
    for entry in std::fs::read_dir(profiles_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let uncommented: Vec<&str> = text
            .lines()
            .map(|l| match l.strip_prefix("# ") {
                Some(rest) if examples.iter().any(|k| rest.starts_with(k)) => rest,
                _ => l,
            })
            .collect();
        let p = Profile::parse(&uncommented.join("\n"), &path.display().to_string()).unwrap_or_else(|e| panic!("{e}"));
        let shipped = Profile::load(&path).unwrap();
        assert_eq!(
            p.update,
            shipped.update,
            "{}: the commented [update] is not the default",
            path.display()
        );
        assert_eq!(p.rollout, shipped.rollout, "{}", path.display());
        assert!(
            p.release.report_url.is_some(),
            "{}: no report_url example",
            path.display()
        );
    }
}

#[test]
fn an_https_device_url_needs_ca_certs_on_a_modem_with_tls() {
    let https = "[release]\ndevice_url = \"https://ota.example.com/fleet\"\n";
    let p = Profile::parse(&format!("{BASE}\n{https}ca_certs = [\"fleet-ca.pem\"]\n"), "x").unwrap();
    assert_eq!(p.release.ca_certs, ["fleet-ca.pem"]);
    assert_eq!(
        p.manifest_url().as_deref(),
        Some("https://ota.example.com/fleet/stable/manifest.json")
    );
    let e = parse_err(&format!("{BASE}\n{https}"));
    assert_error(
        &e,
        ProfileErrorKind::BadValue,
        "release.device_url",
        None,
        &["https://", "release.ca_certs names no CA certificate"],
    );
    // Both dialects' drivers do TLS in the modem.
    let sim7080 = format!("{BASE}\n{https}ca_certs = [\"fleet-ca.pem\"]\n").replace("\"sim7600\"", "\"sim7080\"");
    assert_ne!(
        sim7080,
        format!("{BASE}\n{https}ca_certs = [\"fleet-ca.pem\"]\n"),
        "BASE names its dialect"
    );
    let p = Profile::parse(&sim7080, "x").unwrap();
    assert_eq!(p.release.ca_certs, ["fleet-ca.pem"]);
    assert_eq!(p.modem_config().unwrap().dialect, device_fw::modem::Dialect::Sim7080);
    let e = parse_err(&format!(
        "{BASE}\n[release]\ndevice_url = \"https://h/fleet?x=1\"\nca_certs = [\"a.pem\"]\n"
    ));
    assert_error(&e, ProfileErrorKind::BadValue, "release.device_url", None, &["query"]);
}

//! `otactl rollout` on a `file://` bucket, run as an operator or a CI job runs it: the real
//! binary, keys from `otactl keygen`, releases from `otactl release --rollout`, outcome
//! reports filed as `otactl serve` files them (and, once, POSTed to it), and after every
//! change a check that the channel's manifest verifies and its previous one was kept.

mod support;

use std::fs;
use std::time::Duration;

use device_fw::esp::image::{CHIP_ESP32C3, build_test_image};
use device_fw::wire::manifest::{PayloadBuf, open};
use device_fw::wire::report::Outcome;
use support::hold::hold;
use support::reports::{self as reports, report};
use support::rollout::{
    PROFILE, current, file_reports, history, ok, percent_state, publish, refused, rollout, rollout_cmd, setup, snapshot,
};
use support::server::Server;
use support::{Project, check_bucket, code, json, otactl, text};

#[test]
fn a_staged_release_and_its_status() {
    let (p, profile) = setup();
    let out = publish(&p, &profile, "1.0.0", &["--rollout", "5%"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let j = json(&out);
    assert_eq!(j["rollout"]["percent"], 5);
    assert_eq!(current(&p), ("1.0.0".into(), Some((5, "active".into(), vec![]))));
    assert_eq!(code(&p.verify("dist/stable/manifest.json")), 0);

    let status = ok(&rollout(&p, &profile, "status", &[]));
    assert_eq!(status["current"]["version"], "1.0.0");
    assert_eq!(status["current"]["rollout"]["percent"], 5);
    assert_eq!(status["current"]["rollout"]["state"], "active");
    let v = &status["versions"][0];
    assert_eq!(v["version"], "1.0.0");
    assert_eq!(v["current"], true);
    assert_eq!(v["stages"].as_array().unwrap().len(), 1);
    assert_eq!(v["stages"][0]["from_percent"], 0);
    assert_eq!(v["stages"][0]["to_percent"], 5);
    assert_eq!(v["total"]["reported"], 0);
    assert_eq!(v["advance"]["allowed"], false);
    assert_eq!(status["thresholds"]["min_reports"], 5);

    // Reports per stage, each device placed by its own id, its latest attempt counted.
    let root = p.path().join("dist");
    let canaries = file_reports(&p, "1.0.0", 0, 5, 6, "c", Outcome::Confirmed);
    reports::file(&root, &report(&canaries[0], "1.0.0", Outcome::RolledBack, 2));
    reports::file(&root, &report(&canaries[1], "1.0.0", Outcome::Failed, 0));
    file_reports(&p, "1.0.0", 50, 100, 2, "far", Outcome::Rejected);
    // A report filed under another device's name is not counted; nor is a broken one.
    let forged = report(&canaries[2], "1.0.0", Outcome::RolledBack, 7);
    let wrong_place = reports::path(&root, &report("someone-else", "1.0.0", Outcome::RolledBack, 7));
    fs::write(&wrong_place, reports::body(&forged)).unwrap();
    fs::write(root.join("reports/field-logger/stable/1.0.0/junk.1.json"), b"{").unwrap();

    let status = ok(&rollout(&p, &profile, "status", &[]));
    let v = &status["versions"][0];
    let stage = &v["stages"][0];
    assert_eq!(stage["reported"], 6, "{stage}");
    assert_eq!(stage["confirmed"], 5);
    assert_eq!(stage["rolled_back"], 1);
    assert_eq!(stage["judged"], 6);
    assert_eq!(v["total"]["reported"], 8);
    assert_eq!(v["total"]["rejected"], 2);
    assert_eq!(status["reports"]["skipped"].as_array().unwrap().len(), 2);
    // 1 of 6 failing in the stage: above 10 %.
    assert_eq!(v["advance"]["allowed"], false);
    assert!(v["advance"]["reason"].as_str().unwrap().contains("16.7 %"));

    // The same for a person.
    let out = otactl(p.path())
        .args(["rollout", "status", "--profile", &profile, "--bucket", "dist"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", text(&out));
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(shown.contains("1.0.0 (current)"), "{shown}");
    assert!(shown.contains("0–5 %"), "{shown}");
    assert!(shown.contains("rollout 5 % active"), "{shown}");
}

#[test]
fn set_raises_and_lowering_needs_force() {
    let (p, profile) = setup();
    assert_eq!(code(&publish(&p, &profile, "1.0.0", &["--rollout", "5"])), 0);
    let j = ok(&rollout(&p, &profile, "set", &["--percent", "25%"]));
    assert_eq!(j["outcome"], "changed");
    assert_eq!(j["rollout"]["before"]["percent"], 5);
    assert_eq!(j["rollout"]["after"]["percent"], 25);
    assert_eq!(j["objects"]["manifest"]["write"], "replaced");
    assert_eq!(percent_state(&p), (25, "active".into()));
    assert_eq!(code(&p.verify("dist/stable/manifest.json")), 0);
    // `raise` and `start` are the same command.
    assert_eq!(
        ok(&rollout(&p, &profile, "raise", &["--percent", "30"]))["outcome"],
        "changed"
    );
    assert_eq!(
        ok(&rollout(&p, &profile, "start", &["--percent", "30"]))["outcome"],
        "unchanged"
    );

    let before = snapshot(&p.path().join("dist"));
    let j = refused(&rollout(&p, &profile, "set", &["--percent", "10"]), 1, "lowering");
    assert!(j["help"].as_str().unwrap().contains("--force"));
    assert_eq!(snapshot(&p.path().join("dist")), before, "a refusal writes nothing");
    let j = ok(&rollout(&p, &profile, "set", &["--percent", "10", "--force"]));
    assert_eq!(j["rollout"]["after"]["percent"], 10);

    // Listed devices are in whatever the percentage; dropping one needs --force too.
    let j = ok(&rollout(
        &p,
        &profile,
        "set",
        &["--percent", "10", "--device", "bench-1", "--device", "bench-2"],
    ));
    assert_eq!(
        j["rollout"]["after"]["devices"],
        serde_json::json!(["bench-1", "bench-2"])
    );
    ok(&rollout(&p, &profile, "set", &["--percent", "15"]));
    assert_eq!(
        current(&p).1.unwrap().2,
        ["bench-1", "bench-2"],
        "kept without --device"
    );
    refused(
        &rollout(&p, &profile, "set", &["--percent", "15", "--device", "bench-1"]),
        1,
        "drops bench-2",
    );
    refused(
        &rollout(&p, &profile, "set", &["--percent", "15", "--device", "Bench-3"]),
        2,
        "not a device id",
    );
    ok(&rollout(
        &p,
        &profile,
        "set",
        &["--percent", "15", "--clear-devices", "--force"],
    ));
    assert!(current(&p).1.unwrap().2.is_empty());

    // Percentages are whole numbers from 0 to 100.
    for bad in ["101", "5.5", "-1", "five"] {
        let out = rollout(&p, &profile, "set", &["--percent", bad]);
        assert_eq!(code(&out), 2, "{bad}: {}", text(&out));
    }
    let stages = ok(&rollout(&p, &profile, "status", &[]))["versions"][0]["stages"].clone();
    let bands: Vec<(u64, u64)> = stages
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["from_percent"].as_u64().unwrap(), s["to_percent"].as_u64().unwrap()))
        .collect();
    assert_eq!(bands, [(0, 5), (5, 25), (25, 30)], "a lowering opens no band");
}

#[test]
fn pause_resume_halt_and_a_halt_is_final() {
    let (p, profile) = setup();
    assert_eq!(code(&publish(&p, &profile, "1.0.0", &["--rollout", "10%"])), 0);
    assert_eq!(ok(&rollout(&p, &profile, "pause", &[]))["outcome"], "changed");
    assert_eq!(percent_state(&p), (10, "paused".into()));
    assert_eq!(ok(&rollout(&p, &profile, "pause", &[]))["outcome"], "unchanged");
    refused(&rollout(&p, &profile, "advance", &["--to", "20"]), 1, "paused");
    // A paused rollout can still be widened by hand; it stays paused.
    ok(&rollout(&p, &profile, "set", &["--percent", "20"]));
    assert_eq!(percent_state(&p), (20, "paused".into()));
    ok(&rollout(&p, &profile, "resume", &[]));
    assert_eq!(percent_state(&p), (20, "active".into()));

    let j = ok(&rollout(&p, &profile, "halt", &[]));
    assert_eq!(j["rollout"]["after"]["state"], "halted");
    assert_eq!(percent_state(&p), (20, "halted".into()));
    assert_eq!(code(&p.verify("dist/stable/manifest.json")), 0);
    let before = snapshot(&p.path().join("dist"));
    for (sub, args) in [
        ("resume", &[][..]),
        ("pause", &[][..]),
        ("set", &["--percent", "50"][..]),
        ("advance", &["--to", "50"][..]),
    ] {
        let j = refused(&rollout(&p, &profile, sub, args), 1, "halted");
        assert!(j["help"].as_str().unwrap().contains("fixed version"), "{sub}");
    }
    assert_eq!(ok(&rollout(&p, &profile, "halt", &[]))["outcome"], "unchanged");
    assert_eq!(code(&rollout(&p, &profile, "check", &[])), 4);
    assert_eq!(snapshot(&p.path().join("dist")), before);

    // The fix is a new release, with its own rollout.
    assert_eq!(code(&publish(&p, &profile, "1.0.1", &["--rollout", "1%"])), 0);
    assert_eq!(current(&p), ("1.0.1".into(), Some((1, "active".into(), vec![]))));
}

#[test]
fn advance_needs_enough_good_reports() {
    let (p, profile) = setup();
    assert_eq!(code(&publish(&p, &profile, "1.0.0", &["--rollout", "5%"])), 0);
    let j = refused(
        &rollout(&p, &profile, "advance", &["--to", "25"]),
        5,
        "fewer than the 5",
    );
    assert_eq!(j["refused"], "too-few-reports");
    assert_eq!(j["judgement"]["stage"]["judged"], 0);
    refused(&rollout(&p, &profile, "advance", &["--to", "5"]), 1, "would not widen");

    // Four good ones, a network failure (not judged) and devices outside the stage.
    let good = file_reports(&p, "1.0.0", 0, 5, 4, "a", Outcome::Confirmed);
    file_reports(&p, "1.0.0", 0, 5, 1, "net", Outcome::Failed);
    file_reports(&p, "1.0.0", 60, 100, 3, "out", Outcome::Confirmed);
    let j = refused(
        &rollout(&p, &profile, "advance", &["--to", "25"]),
        5,
        "4 judged reports",
    );
    assert_eq!(j["judgement"]["stage"]["reported"], 5);

    // A fifth device that rolled back: 1 of 5 is 20 %, above 10 %.
    let bad = file_reports(&p, "1.0.0", 0, 5, 1, "b", Outcome::RolledBack);
    let j = refused(&rollout(&p, &profile, "advance", &["--to", "25"]), 1, "20.0 %");
    assert_eq!(j["refused"], "failure-rate");
    assert_eq!(percent_state(&p), (5, "active".into()));
    // A looser threshold on the command line decides otherwise.
    let out = rollout(
        &p,
        &profile,
        "advance",
        &["--to", "25", "--max-failure-rate", "25%", "--dry-run"],
    );
    assert_eq!(ok(&out)["outcome"], "dry-run");
    assert_eq!(percent_state(&p), (5, "active".into()));

    // The device's next attempt confirms: only its latest one counts.
    reports::file(&p.path().join("dist"), &report(&bad[0], "1.0.0", Outcome::Confirmed, 2));
    let j = ok(&rollout(&p, &profile, "advance", &["--to", "25"]));
    assert_eq!(j["judgement"]["stage"]["confirmed"], 5);
    assert_eq!(j["rollout"]["after"]["percent"], 25);
    assert_eq!(percent_state(&p), (25, "active".into()));
    assert_eq!(good.len(), 4);

    // The next stage is judged on its own devices: the canaries are in already.
    refused(&rollout(&p, &profile, "advance", &["--to", "50"]), 5, "stage 5–25 %");
    file_reports(&p, "1.0.0", 5, 25, 3, "s2", Outcome::Confirmed);
    let out = rollout(&p, &profile, "advance", &["--to", "50", "--min-reports", "3"]);
    assert_eq!(ok(&out)["rollout"]["after"]["percent"], 50);

    // For a person: the stage and the reason.
    let out = otactl(p.path())
        .args([
            "rollout",
            "advance",
            "--profile",
            &profile,
            "--bucket",
            "dist",
            "--to",
            "75",
        ])
        .args(["--key", "keys/otactl.key"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 5, "{}", text(&out));
    assert!(text(&out).contains("stage 25–50 %"), "{}", text(&out));
}

#[test]
fn check_halts_a_failing_rollout() {
    let (p, profile) = setup();
    assert_eq!(code(&publish(&p, &profile, "1.0.0", &["--rollout", "10%"])), 0);
    let j = ok(&rollout(&p, &profile, "check", &[]));
    assert_eq!(j["verdict"], "healthy");
    assert_eq!(j["outcome"], "unchanged");

    // Three rollbacks of four: too few judged to halt on yet (5 needed).
    file_reports(&p, "1.0.0", 0, 10, 3, "rb", Outcome::RolledBack);
    file_reports(&p, "1.0.0", 0, 10, 1, "ok", Outcome::Confirmed);
    assert_eq!(ok(&rollout(&p, &profile, "check", &[]))["verdict"], "healthy");

    file_reports(&p, "1.0.0", 0, 10, 2, "ok2", Outcome::Confirmed);
    let before = snapshot(&p.path().join("dist"));
    let out = rollout(&p, &profile, "check", &["--dry-run"]);
    assert_eq!(code(&out), 3, "{}", text(&out));
    let j = json(&out);
    assert_eq!(j["verdict"], "halted");
    assert_eq!(j["outcome"], "dry-run");
    assert_eq!(j["judgement"]["total"]["judged"], 6);
    assert_eq!(snapshot(&p.path().join("dist")), before, "a dry run writes nothing");

    let out = otactl(p.path())
        .args(["rollout", "check", "--profile", &profile, "--bucket", "dist"])
        .args(["--key", "keys/otactl.key"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 3, "{}", text(&out));
    assert!(text(&out).contains("HALTED the rollout of 1.0.0"), "{}", text(&out));
    assert_eq!(percent_state(&p), (10, "halted".into()));
    assert_eq!(code(&p.verify("dist/stable/manifest.json")), 0);
    let out = rollout(&p, &profile, "check", &[]);
    assert_eq!(code(&out), 4, "{}", text(&out));
    assert_eq!(json(&out)["verdict"], "already-halted");

    // A check that could not halt is no check: the key is needed up front.
    let (q, qprofile) = setup();
    assert_eq!(code(&publish(&q, &qprofile, "1.0.0", &["--rollout", "10%"])), 0);
    let out = otactl(q.path())
        .args(["rollout", "check", "--profile", &qprofile, "--bucket", "dist", "--json"])
        .output()
        .unwrap();
    refused(&out, 2, "OTACTL_SIGNING_KEY");
}

#[test]
fn every_rewrite_keeps_the_manifest_it_replaces() {
    let (p, profile) = setup();
    assert_eq!(code(&publish(&p, &profile, "1.0.0", &["--rollout", "5"])), 0);
    assert!(history(&p).is_empty());
    let j = ok(&rollout(&p, &profile, "set", &["--percent", "25"]));
    let kept = j["objects"]["history"]["key"].as_str().unwrap().to_owned();
    assert!(
        kept.starts_with("stable/history/") && kept.ends_with("-1.0.0-5-active.json"),
        "{kept}"
    );
    ok(&rollout(&p, &profile, "pause", &[]));
    ok(&rollout(&p, &profile, "resume", &[]));
    ok(&rollout(&p, &profile, "set", &["--percent", "100"]));
    let out = publish(&p, &profile, "1.1.0", &["--rollout", "1%"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let released = json(&out);
    assert!(
        released["objects"]["history"]["key"]
            .as_str()
            .unwrap()
            .ends_with("-1.0.0-100-active.json")
    );
    let names = history(&p);
    let tails: Vec<&str> = names.iter().map(|n| n.split_once('-').unwrap().1).collect();
    assert_eq!(
        tails,
        [
            "1.0.0-5-active.json",
            "1.0.0-25-active.json",
            "1.0.0-25-paused.json",
            "1.0.0-25-active.json",
            "1.0.0-100-active.json"
        ]
    );
    // Each is the signed manifest as it was, verifiable as devices verify it.
    for name in &names {
        let envelope = fs::read(p.path().join("dist/stable/history").join(name)).unwrap();
        assert!(open(&envelope, &[p.public_key()], &mut PayloadBuf::default()).is_ok());
    }
    assert_eq!(check_bucket(&p.path().join("dist"), &p.public_key()).len(), 1);

    let status = ok(&rollout(&p, &profile, "status", &[]));
    let versions = status["versions"].as_array().unwrap();
    assert_eq!(versions.len(), 2);
    assert_eq!(versions[0]["version"], "1.1.0");
    assert_eq!(versions[1]["version"], "1.0.0");
    let steps: Vec<(u64, String)> = versions[1]["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["percent"].as_u64().unwrap(), m["state"].as_str().unwrap().to_owned()))
        .collect();
    assert_eq!(
        steps,
        [
            (5, "active".into()),
            (25, "active".into()),
            (25, "paused".into()),
            (25, "active".into()),
            (100, "active".into())
        ]
    );
    let bands: Vec<u64> = versions[1]["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["to_percent"].as_u64().unwrap())
        .collect();
    assert_eq!(bands, [5, 25, 100]);
}

#[test]
fn a_dry_run_writes_nothing() {
    let (p, profile) = setup();
    assert_eq!(code(&publish(&p, &profile, "1.0.0", &["--rollout", "5"])), 0);
    file_reports(&p, "1.0.0", 0, 5, 5, "a", Outcome::Confirmed);
    let before = snapshot(&p.path().join("dist"));
    for (sub, args) in [
        ("set", &["--percent", "50"][..]),
        ("pause", &[][..]),
        ("halt", &[][..]),
        ("advance", &["--to", "25"][..]),
    ] {
        let mut args = args.to_vec();
        args.push("--dry-run");
        let j = ok(&rollout(&p, &profile, sub, &args));
        assert_eq!(j["outcome"], "dry-run", "{sub}");
        assert_eq!(j["objects"]["manifest"]["write"], "would-replace", "{sub}");
        assert!(j["objects"]["history"].is_null(), "{sub}");
    }
    let out = publish(&p, &profile, "1.1.0", &["--rollout", "5", "--dry-run"]);
    assert_eq!(json(&out)["outcome"], "dry-run", "{}", text(&out));
    assert_eq!(snapshot(&p.path().join("dist")), before);
}

#[test]
fn a_channel_it_cannot_trust_is_not_changed() {
    let (p, profile) = setup();
    refused(&rollout(&p, &profile, "set", &["--percent", "5"]), 1, "has no release");
    assert_eq!(code(&publish(&p, &profile, "1.0.0", &["--rollout", "5"])), 0);
    // A manifest signed by a key the profile's devices do not hold.
    let other = Project::new();
    let other_profile = other.profile(PROFILE, "esp32c3", "", "");
    let img = build_test_image(CHIP_ESP32C3, "2.0.0", "field-logger", b"x");
    let file = other.write("fw/app.bin", &img);
    let out = other.release(&other_profile, &["--image", &file, "--bucket", "dist"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    fs::copy(
        other.path().join("dist/stable/manifest.json"),
        p.path().join("dist/stable/manifest.json"),
    )
    .unwrap();
    let before = snapshot(&p.path().join("dist"));
    for (sub, args) in [("set", &["--percent", "50"][..]), ("halt", &[][..]), ("check", &[][..])] {
        refused(&rollout(&p, &profile, sub, args), 1, "does not verify");
    }
    refused(&rollout(&p, &profile, "status", &[]), 1, "does not verify");
    assert_eq!(snapshot(&p.path().join("dist")), before);
}

#[test]
fn two_changes_racing_on_a_channel_one_loses_and_says_so() {
    let (p, profile) = setup();
    assert_eq!(code(&publish(&p, &profile, "1.0.0", &["--rollout", "5"])), 0);
    let outputs = hold(
        p.path(),
        vec![
            rollout_cmd(&p, &profile, "set", &["--percent", "10"]),
            rollout_cmd(&p, &profile, "set", &["--percent", "20"]),
        ],
    )
    .release();
    let winners: Vec<usize> = (0..2).filter(|&i| code(&outputs[i]) == 0).collect();
    assert_eq!(
        winners.len(),
        1,
        "exactly one wins:\n{}\n{}",
        text(&outputs[0]),
        text(&outputs[1])
    );
    let (winner, loser) = (winners[0], 1 - winners[0]);
    let j = refused(&outputs[loser], 1, "lost a race on channel stable");
    let won = [10u8, 20][winner];
    assert!(
        j["error"]
            .as_str()
            .unwrap()
            .contains(&format!("it now holds 1.0.0 at {won} %")),
        "{j}"
    );
    assert!(j["help"].as_str().unwrap().contains("devices never saw it"));
    assert_eq!(percent_state(&p), (won, "active".into()));
    // The history shows the 5 % manifest once, though both jobs kept a copy of it.
    let status = ok(&rollout(&p, &profile, "status", &[]));
    let steps = status["versions"][0]["manifests"].as_array().unwrap().len();
    assert_eq!(steps, 2, "{status}");

    // A release and a rollout change racing: the same guarantee.
    let img = build_test_image(CHIP_ESP32C3, "1.1.0", "field-logger", b"next");
    let file = p.write("fw/next.bin", &img);
    let release = p.release_cmd(&profile, &["--image", &file, "--bucket", "dist", "--json"]);
    let held = hold(p.path(), vec![release]);
    ok(&rollout(&p, &profile, "pause", &[]));
    let out = held.release().remove(0);
    refused(&out, 1, "lost a race on channel stable");
    assert_eq!(current(&p).0, "1.0.0");
    assert_eq!(percent_state(&p).1, "paused");
}

#[test]
fn reports_posted_to_serve_reach_status() {
    let (p, profile) = setup();
    assert_eq!(code(&publish(&p, &profile, "1.0.0", &["--rollout", "5"])), 0);
    let server = Server::start(&p, "dist");
    let http = reqwest::blocking::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let ids = reports::ids_in(0, 5, 5, "dev");
    for id in &ids {
        let r = report(id, "1.0.0", Outcome::Confirmed, 1);
        let response = http
            .post(format!("{}/reports", server.base))
            .header("content-type", device_fw::wire::report::CONTENT_TYPE)
            .body(reports::body(&r))
            .send()
            .unwrap();
        assert_eq!(response.status(), reqwest::StatusCode::ACCEPTED);
    }
    let status = ok(&rollout(&p, &profile, "status", &[]));
    assert_eq!(status["versions"][0]["stages"][0]["confirmed"], 5);
    assert_eq!(status["versions"][0]["advance"]["allowed"], true);
    let j = ok(&rollout(&p, &profile, "advance", &["--to", "20"]));
    assert_eq!(j["rollout"]["after"]["percent"], 20);
    // Devices fetch the new manifest from the same origin.
    let manifest = http
        .get(format!("{}/stable/manifest.json", server.base))
        .send()
        .unwrap()
        .bytes()
        .unwrap();
    let mut buf = PayloadBuf::default();
    let (m, _) = open(&manifest, &[p.public_key()], &mut buf).unwrap();
    assert_eq!(m.rollout.unwrap().percent, 20);
}

#[test]
fn a_staged_rollout_on_s3() {
    use support::moto;
    let Some(moto) = moto::start("a_staged_rollout_on_s3") else {
        return;
    };
    moto.create_bucket("ota");
    let (p, profile) = setup();
    let img = build_test_image(CHIP_ESP32C3, "1.0.0", "field-logger", b"s3");
    let file = p.write("fw/app.bin", &img);
    let mut cmd = p.release_cmd(
        &profile,
        &[
            "--image",
            &file,
            "--bucket",
            "s3://ota/fleet",
            "--rollout",
            "5%",
            "--json",
        ],
    );
    moto::s3_env(&mut cmd, &moto);
    let out = cmd.output().unwrap();
    assert_eq!(code(&out), 0, "{}", text(&out));

    let s3 = |sub: &str, args: &[&str]| {
        let mut cmd = otactl(p.path());
        cmd.args([
            "rollout",
            sub,
            "--profile",
            &profile,
            "--bucket",
            "s3://ota/fleet",
            "--json",
        ]);
        if sub != "status" {
            cmd.args(["--key", "keys/otactl.key"]);
        }
        if matches!(sub, "status" | "check" | "advance") {
            cmd.args(["--reports", "s3://ota/collected"]);
        }
        cmd.args(args);
        moto::s3_env(&mut cmd, &moto);
        cmd.output().unwrap()
    };
    let j = ok(&s3("set", &["--percent", "25"]));
    assert!(
        j["objects"]["history"]["key"]
            .as_str()
            .unwrap()
            .ends_with("-1.0.0-5-active.json")
    );

    // Reports POSTed to serve (for a bench bucket holding the same release) go to S3, where
    // status and check read them.
    let published = publish(&p, &profile, "1.0.0", &["--rollout", "25"]);
    assert_eq!(code(&published), 0, "{}", text(&published));
    let server = Server::start_with(&p, "dist", &["--reports", "s3://ota/collected"], |cmd| {
        moto::s3_env(cmd, &moto)
    });
    let http = reqwest::blocking::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let ids = reports::ids_in(0, 25, 5, "s3dev");
    for (n, id) in ids.iter().enumerate() {
        let outcome = if n < 3 { Outcome::RolledBack } else { Outcome::Confirmed };
        let r = report(id, "1.0.0", outcome, 1);
        let post = || {
            http.post(format!("{}/reports", server.base))
                .header("content-type", "application/json")
                .body(reports::body(&r))
                .send()
                .unwrap()
                .status()
        };
        assert_eq!(post(), reqwest::StatusCode::ACCEPTED);
        assert_eq!(post(), reqwest::StatusCode::OK, "once per device and attempt");
    }
    let status = ok(&s3("status", &[]));
    assert_eq!(status["versions"][0]["total"]["rolled_back"], 3, "{status}");
    assert_eq!(status["versions"][0]["must_halt"], true);
    let out = s3("check", &[]);
    assert_eq!(code(&out), 3, "{}", text(&out));
    let status = ok(&s3("status", &[]));
    assert_eq!(status["current"]["rollout"]["state"], "halted");
    assert!(!text(&out).contains(moto::SECRET_KEY));
}

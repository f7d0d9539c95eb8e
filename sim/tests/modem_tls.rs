//! `https://` through the SIM7600's own SSL client (`AT+CCH*`): the emulator does real TLS
//! (rustls) to an origin that terminates it, with the certificate checks the modem makes.

use std::time::Duration;

use sim::scenario::{self, RunResult, RunSpec, SEED_IMAGE_BYTES, Strategy, TlsSpec};
use sim::tls::{TestCa, Validity};

fn https(tls: TlsSpec) -> RunSpec {
    RunSpec {
        scenario: "tls".into(),
        tls: Some(tls),
        ..RunSpec::seed(Strategy::Otactl)
    }
}

/// A server certificate from `server_ca` for `hosts`, the device trusting `device_ca`.
fn served(server_ca: &TestCa, hosts: &[&str], validity: Validity, device_ca: &TestCa) -> TlsSpec {
    TlsSpec {
        server: server_ca.issue(hosts, validity).server_config(),
        device_ca: Box::leak(device_ca.cert_pem.clone().into_bytes().into_boxed_slice()),
    }
}

/// A refused server: the handshake error, nothing written to the slot, one attempt only
/// (a TLS error is not retried), well before the deadline.
fn assert_refused(r: &RunResult, what: &str) {
    assert_eq!(r.outcome, "failed", "{what}: {r:?}");
    let error = r.error.as_deref().unwrap_or_default();
    assert!(error.contains("Tls(Handshake)"), "{what}: {error}");
    assert_eq!(r.bytes_written, 0, "{what}: the slot is untouched: {r:?}");
    assert_eq!(r.attempts, 1, "{what}: not retried: {r:?}");
    assert!(r.virtual_s < 120.0, "{what}: gives up at once: {r:?}");
}

#[test]
fn an_update_over_https_reaches_a_verified_image() {
    let r = scenario::run(&https(TlsSpec::trusted()));
    assert_eq!((r.outcome, r.slot_matches), ("updated", true), "{r:?}");
    assert_eq!(r.bytes_written, SEED_IMAGE_BYTES as u64);
    assert_eq!(r.nat_drops, 0, "chunks are still paced against the NAT: {r:?}");
}

#[test]
fn a_server_from_another_ca_is_refused() {
    let fleet = TestCa::new("fleet CA");
    let other = TestCa::new("someone else's CA");
    let r = scenario::run(&https(served(
        &other,
        &[scenario::ORIGIN_HOST],
        Validity::Current,
        &fleet,
    )));
    assert_refused(&r, "unknown CA");
}

#[test]
fn a_certificate_for_another_host_is_refused() {
    let ca = TestCa::new("fleet CA");
    let spec = https(served(&ca, &["cdn.other.example"], Validity::Current, &ca));
    let r = scenario::run(&spec);
    assert_refused(&r, "wrong host");
}

#[test]
fn an_expired_certificate_is_refused() {
    let ca = TestCa::new("fleet CA");
    let r = scenario::run(&https(served(&ca, &[scenario::ORIGIN_HOST], Validity::Expired, &ca)));
    assert_refused(&r, "expired");
}

#[test]
fn a_nat_drop_over_tls_resumes_with_a_new_session() {
    let mut spec = https(TlsSpec::trusted());
    spec.nat.idle_timeout = Some(Duration::from_secs(12));
    let r = scenario::run(&spec);
    assert_eq!((r.outcome, r.slot_matches), ("updated", true), "{r:?}");
    assert!(r.resumes >= 1, "the first chunk outlives the mapping: {r:?}");
    assert_eq!(r.nat_drops, 1, "after one drop the chunks fit the real timeout: {r:?}");
}

#[test]
fn seed_cgnat_over_https_costs_one_handshake_and_its_records() {
    let plain = scenario::run(&RunSpec::seed(Strategy::Otactl));
    let tls = scenario::run(&RunSpec {
        tls: Some(TlsSpec::trusted()),
        ..RunSpec::seed(Strategy::Otactl)
    });
    assert_eq!(tls.strategy, "otactl-tls");
    assert_eq!((tls.outcome, tls.slot_matches), ("updated", true), "{tls:?}");
    let cost = tls.tls.expect("a TLS run reports its cost");
    assert_eq!(cost.handshakes, 1, "one session, kept alive: {tls:?}");
    // The certificate chain alone is some hundreds of bytes; records add a header and tag
    // each. Both are airtime the plain run does not have.
    assert!(cost.overhead_bytes > 500, "{cost:?}");
    assert!(tls.airtime_overhead > plain.airtime_overhead, "{tls:?} vs {plain:?}");
    assert_eq!(tls.nat_drops, 0, "{tls:?}");
}

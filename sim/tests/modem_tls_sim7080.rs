//! `https://` through the SIM7080's SSL on its `CA*` connection: the emulator does real TLS
//! (rustls) to an origin that terminates it, with the certificate checks the modem makes,
//! and answers each failure with its own `+CAOPEN` result, which the device reports apart.

use std::time::Duration;

use device_fw::modem::{Dialect as DeviceDialect, Modem, ModemConfig};
use device_fw::socket::Socket;
use sim::modem::{Dialect, ModemEmulatorConfig, spawn_modem};
use sim::net::{NatConfig, NatExpiry, NetConfig, Network};
use sim::origin::{OriginBehaviour, spawn_tls_origin};
use sim::scenario::{self, ORIGIN_HOST, RunResult, RunSpec, SEED_IMAGE_BYTES, Strategy, TlsSpec};
use sim::time::{self, BenchClock};
use sim::tls::{TestCa, Validity};
use sim::uart::chip_uart;

fn https(tls: TlsSpec) -> RunSpec {
    RunSpec {
        scenario: "tls".into(),
        dialect: Dialect::Sim7080,
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

/// A refused server: the named TLS error, nothing written to the slot, one attempt only
/// (a TLS error is not retried), well before the deadline.
fn assert_refused(r: &RunResult, error: &str) {
    assert_eq!(r.outcome, "failed", "{error}: {r:?}");
    let got = r.error.as_deref().unwrap_or_default();
    assert!(got.contains(error), "want {error}: {got}");
    assert_eq!(r.bytes_written, 0, "{error}: the slot is untouched: {r:?}");
    assert_eq!(r.attempts, 1, "{error}: not retried: {r:?}");
    assert!(r.virtual_s < 120.0, "{error}: gives up at once: {r:?}");
}

#[test]
fn an_update_over_https_reaches_a_verified_image() {
    let r = scenario::run(&https(TlsSpec::trusted()));
    assert_eq!((r.outcome, r.slot_matches), ("updated", true), "{r:?}");
    assert_eq!(r.bytes_written, SEED_IMAGE_BYTES as u64);
    assert_eq!(r.nat_drops, 0, "chunks are still paced against the NAT: {r:?}");
    // Reads of at most 512 bytes, the most an SSL read may ask: a larger one comes back
    // short and the driver would stall waiting for a notice that never comes.
    assert_eq!(r.resumes, 0, "no read stalled: {r:?}");
    let cost = r.tls.expect("a TLS run reports its cost");
    assert_eq!(cost.handshakes, 1, "one session, kept alive: {r:?}");
    assert!(
        cost.overhead_bytes > 500,
        "the handshake and records cross the link: {cost:?}"
    );
}

#[test]
fn a_server_from_another_ca_is_refused() {
    let fleet = TestCa::new("fleet CA");
    let other = TestCa::new("someone else's CA");
    let r = scenario::run(&https(served(&other, &[ORIGIN_HOST], Validity::Current, &fleet)));
    assert_refused(&r, "Tls(Handshake)");
}

#[test]
fn a_certificate_for_another_host_is_refused_as_such() {
    let ca = TestCa::new("fleet CA");
    let r = scenario::run(&https(served(&ca, &["cdn.other.example"], Validity::Current, &ca)));
    assert_refused(&r, "Tls(WrongHost)");
}

#[test]
fn an_expired_certificate_is_refused_as_such() {
    let ca = TestCa::new("fleet CA");
    let r = scenario::run(&https(served(&ca, &[ORIGIN_HOST], Validity::Expired, &ca)));
    assert_refused(&r, "Tls(Expired)");
    // Expired and for another host: the modem's code 26, which the device takes as the
    // name (fixing the URL or the certificate comes first).
    let r = scenario::run(&https(served(&ca, &["cdn.other.example"], Validity::Expired, &ca)));
    assert_refused(&r, "Tls(WrongHost)");
}

#[test]
fn a_nat_drop_over_tls_resumes_with_a_new_session() {
    let mut spec = https(TlsSpec::trusted());
    spec.nat.idle_timeout = Some(Duration::from_secs(12));
    let r = scenario::run(&spec);
    assert_eq!((r.outcome, r.slot_matches), ("updated", true), "{r:?}");
    assert!(r.resumes >= 1, "the first chunk outlives the mapping: {r:?}");
    assert_eq!(r.nat_drops, 1, "after one drop the chunks fit the real timeout: {r:?}");
    assert!(
        r.tls.expect("TLS cost").handshakes >= 2,
        "a new session after the drop: {r:?}"
    );
}

/// Two boots of device and modem: the first writes the CA file, converts it and saves
/// network time; the second finds all of it and writes nothing to the modem's flash, yet
/// its handshake succeeds (the store and the setting survived the modem's restart).
#[test]
fn a_second_boot_writes_nothing_to_the_modems_flash() {
    time::run_virtual(async {
        let ca = TestCa::new("fleet CA");
        let net = Network::new(NetConfig::lte(NatConfig {
            idle_timeout: None,
            on_expiry: NatExpiry::Reset,
        }));
        let server = ca.issue(&[ORIGIN_HOST], Validity::Current).server_config();
        let origin = spawn_tls_origin(net.listen(ORIGIN_HOST, 443), OriginBehaviour::default(), server);
        origin.put("/hello", b"hello over TLS".to_vec());
        let (device_uart, modem_uart) = chip_uart(115_200, false, 4096);
        let modem = spawn_modem(ModemEmulatorConfig::new(Dialect::Sim7080), modem_uart, net.clone());
        let mut cfg = ModemConfig::new(DeviceDialect::Sim7080, "m2m.example").unwrap();
        cfg.ca_cert = Some(Box::leak(ca.cert_pem.clone().into_bytes().into_boxed_slice()));

        let mut uart = device_uart;
        let mut writes = Vec::new();
        for boot in 0..2 {
            let mut m = Modem::new(uart, BenchClock, cfg.clone());
            m.bring_up().await.unwrap_or_else(|e| panic!("boot {boot}: {e}"));
            m.connect_tls(ORIGIN_HOST, 443)
                .await
                .unwrap_or_else(|e| panic!("boot {boot}: {e}"));
            let req = format!("GET /hello HTTP/1.1\r\nHost: {ORIGIN_HOST}\r\n\r\n");
            m.write_all(req.as_bytes()).await.unwrap();
            let mut reply = Vec::new();
            let mut buf = [0u8; 512];
            while !reply.ends_with(b"hello over TLS") {
                let n = m.read(&mut buf).await.unwrap_or_else(|e| panic!("boot {boot}: {e}"));
                assert!(n > 0, "boot {boot}: closed early: {}", String::from_utf8_lossy(&reply));
                reply.extend_from_slice(&buf[..n]);
            }
            assert!(reply.starts_with(b"HTTP/1.1 200"), "boot {boot}");
            m.close().await;
            writes.push(modem.stats().cert_downloads);
            uart = m.into_inner();
            // Power cycle: the modem reboots, the chip starts a fresh driver.
            modem.reset();
        }
        // The file, its conversion into the certificate store, the saved `CLTS=1`.
        assert_eq!(writes, [3, 3], "flash writes after each boot");
        assert_eq!(modem.stats().tls_handshakes, 2);
    });
}

//! SIM7080 SSL on the `CA*` stack against scripted modem output in the forms of
//! `docs/at-dialects.md`: network time, the CA written to the file system and converted
//! once, connection 0 with SSL, SNI per host, and the `+CAOPEN` results that name the
//! certificate's fault.

#[path = "modem_support.rs"]
mod support;

use device_fw::http::HttpError;
use device_fw::modem::Dialect;
use device_fw::socket::{Socket, SocketError, TlsError};
use sha2::{Digest, Sha256};
use support::*;

const D: Dialect = Dialect::Sim7080;
const CA: &[u8] = b"-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUbench\n-----END CERTIFICATE-----\n";
const HOST: &str = "ota.example.com";

fn ca_name() -> String {
    let digest = Sha256::digest(CA);
    let hex: String = digest[..5].iter().map(|b| format!("{b:02x}")).collect();
    format!("otaca-{hex}.pem")
}

/// What setup sends once the file system says whether it holds the CA.
fn contexts(converted: bool) -> Script {
    let name = ca_name();
    let mut s = Script::new();
    if converted {
        s = s.ok(&format!("AT+CSSLCFG=\"convert\",2,\"{name}\""));
    }
    s.ok("AT+CSSLCFG=\"sslversion\",0,3")
        .ok("AT+CSSLCFG=\"ignorertctime\",0,0")
        .ok("AT+CASSLCFG=0,\"SSL\",1")
        .ok("AT+CASSLCFG=0,\"CRINDEX\",0")
        .ok(&format!("AT+CASSLCFG=0,\"CACERT\",\"{name}\""))
}

/// A setup that finds the CA on the modem and network time on: asks, writes nothing.
fn setup_held() -> Script {
    Script::new()
        .cmd("AT+CLTS?", "\r\n+CLTS: 1\r\n\r\nOK\r\n")
        .ok("AT+CFSINIT")
        .cmd(
            &format!("AT+CFSGFIS=3,\"{}\"", ca_name()),
            format!("\r\n+CFSGFIS: {}\r\n\r\nOK\r\n", CA.len()),
        )
        .ok("AT+CFSTERM")
        .then(contexts(false))
}

fn open_tls(result: u16) -> Script {
    Script::new().ok(&format!("AT+CSSLCFG=\"sni\",0,\"{HOST}\"")).cmd(
        &format!("AT+CAOPEN=0,0,\"TCP\",\"{HOST}\",443"),
        format!("\r\n+CAOPEN: 0,{result}\r\n\r\nOK\r\n"),
    )
}

fn tls_modem(uart: &FakeUart) -> TestModem {
    modem_with(uart, D, |cfg| cfg.ca_cert = Some(CA))
}

/// First bring-up: network time off and no CA file, so the driver turns the time on,
/// writes the file after `DOWNLOAD`, converts it; plaintext goes through `CASEND`/`CARECV`
/// byte for byte, in reads of at most 512 bytes. Second bring-up: the file is there, nothing is written or converted.
#[tokio::test(start_paused = true)]
async fn ca_written_once_and_the_connection_carries_plaintext() {
    let name = ca_name();
    let data = nasty_payload(1900);
    let req = b"GET / HTTP/1.1\r\n\r\n";
    let uart = up(D)
        .cmd("AT+CLTS?", "\r\n+CLTS: 0\r\n\r\nOK\r\n")
        .ok("AT+CLTS=1")
        .ok("AT+CFSINIT")
        .cmd(&format!("AT+CFSGFIS=3,\"{name}\""), "\r\nERROR\r\n")
        .expect(format!("AT+CFSWFILE=3,\"{name}\",0,{},10000\r", CA.len()))
        .out("\r\nDOWNLOAD\r\n")
        .expect(CA)
        .out("\r\nOK\r\n")
        .ok("AT+CFSTERM")
        .then(contexts(true))
        .then(open_tls(0))
        .expect(format!("AT+CASEND=0,{}\r", req.len()))
        .out("\r\n>")
        .expect(req)
        .out("\r\nOK\r\n")
        // At most 512 bytes per read on an SSL connection.
        .cmd("AT+CARECV=0,512", carecv(&data[..512]))
        .cmd("AT+CARECV=0,512", carecv(&data[512..1024]))
        .cmd("AT+CARECV=0,512", carecv(&data[1024..1536]))
        .cmd("AT+CARECV=0,512", carecv(&data[1536..]))
        .ok("AT+CACLOSE=0")
        .then(up(D))
        .then(setup_held())
        .then(open_tls(0))
        .build();
    let mut m = tls_modem(&uart);
    assert!(m.supports_tls());
    m.bring_up().await.unwrap();
    m.connect_tls(HOST, 443).await.unwrap();
    m.write_all(req).await.unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while got.len() < data.len() {
        let n = m.read(&mut buf).await.unwrap();
        assert!(n > 0);
        got.extend_from_slice(&buf[..n]);
    }
    assert_eq!(got, data);
    m.close().await;
    m.bring_up().await.unwrap();
    m.connect_tls(HOST, 443).await.unwrap();
    uart.assert_done();
    assert_eq!(uart.count_written("AT+CFSWFILE"), 1, "second bring-up wrote no file");
    assert_eq!(uart.count_written("convert"), 1, "and converted nothing");
    assert_eq!(uart.count_written("AT+CLTS=1"), 1, "nor saved the setting again");
}

/// 24 expired, 25 another host (26 both), 27 any other failed handshake: TLS errors with
/// their own update codes, which the HTTP client does not retry; 23 (refused) stays a
/// connect failure, which it does.
#[tokio::test(start_paused = true)]
async fn open_results_name_the_certificate_fault() {
    let uart = up(D)
        .then(setup_held())
        .then(open_tls(24))
        .then(open_tls(25))
        .then(open_tls(26))
        .then(open_tls(27))
        .then(open_tls(23))
        .build();
    let mut m = tls_modem(&uart);
    m.bring_up().await.unwrap();
    for (want, code) in [
        (TlsError::Expired, "tls-cert-expired"),
        (TlsError::WrongHost, "tls-wrong-host"),
        (TlsError::WrongHost, "tls-wrong-host"),
        (TlsError::Handshake, "tls-handshake-failed"),
    ] {
        let e = m.connect_tls(HOST, 443).await.unwrap_err();
        assert_eq!(e, SocketError::Tls(want));
        assert_eq!(want.code(), code);
        assert!(!HttpError::Socket(e).is_retryable());
    }
    let refused = m.connect_tls(HOST, 443).await.unwrap_err();
    assert_eq!(refused, SocketError::ConnectFailed(23));
    assert!(HttpError::Socket(refused).is_retryable());
    assert!(!m.is_connected());
    uart.assert_done();
}

/// An SSL read that hands out less than the modem holds (no new data notice comes while the
/// buffer is not empty): the driver asks again until the modem says it is empty, instead of
/// waiting for a notice until the read deadline.
#[tokio::test(start_paused = true)]
async fn a_short_ssl_read_is_followed_up_until_the_buffer_is_empty() {
    let data = nasty_payload(700);
    let uart = up(D)
        .then(setup_held())
        .then(open_tls(0))
        .out("\r\n+CADATAIND: 0\r\n")
        .cmd("AT+CARECV=0,512", carecv(&data[..300]))
        .cmd("AT+CARECV=0,512", carecv(&data[300..]))
        .cmd("AT+CARECV=0,512", carecv(&[]))
        .build();
    let mut m = tls_modem(&uart);
    m.bring_up().await.unwrap();
    m.connect_tls(HOST, 443).await.unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while got.len() < data.len() {
        let n = m.read(&mut buf).await.unwrap();
        got.extend_from_slice(&buf[..n]);
    }
    assert_eq!(got, data);
    // Nothing more: the empty answer, then the wait for a notice, which ends at the deadline.
    assert_eq!(m.read(&mut buf).await, Err(SocketError::Timeout));
    uart.assert_done();
}

/// A device with a CA that connects plain `http://` turns SSL off on connection 0 first,
/// once per bring-up; without a CA the plain transcript is unchanged; a CA the modem cannot
/// load is dropped from its file system, so the next boot writes it again.
#[tokio::test(start_paused = true)]
async fn plain_connects_and_refused_conversions() {
    let name = ca_name();
    let uart = up(D)
        .ok("AT+CASSLCFG=0,\"SSL\",0")
        .then(open_7080())
        .ok("AT+CACLOSE=0")
        .then(open_7080())
        .ok("AT+CACLOSE=0")
        .cmd("AT+CLTS?", "\r\n+CLTS: 1\r\n\r\nOK\r\n")
        .cmd("AT+CFSINIT", "\r\nERROR\r\n")
        .cmd(&format!("AT+CFSGFIS=3,\"{name}\""), "\r\n+CFSGFIS: 12\r\n\r\nOK\r\n")
        .expect(format!("AT+CFSWFILE=3,\"{name}\",0,{},10000\r", CA.len()))
        .out("\r\nDOWNLOAD\r\n")
        .expect(CA)
        .out("\r\nOK\r\n")
        .ok("AT+CFSTERM")
        .cmd(&format!("AT+CSSLCFG=\"convert\",2,\"{name}\""), "\r\nERROR\r\n")
        .ok("AT+CFSINIT")
        .ok(&format!("AT+CFSDFILE=3,\"{name}\""))
        .ok("AT+CFSTERM")
        .build();
    let mut m = tls_modem(&uart);
    m.bring_up().await.unwrap();
    m.connect("example.com", 80).await.unwrap();
    m.close().await;
    m.connect("example.com", 80).await.unwrap();
    m.close().await;
    assert_eq!(
        m.connect_tls(HOST, 443).await.unwrap_err(),
        SocketError::Tls(TlsError::Setup)
    );
    uart.assert_done();
}

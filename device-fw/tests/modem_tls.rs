//! SIM7600 SSL client (`CCH*`) against scripted modem output in the forms of
//! `docs/at-dialects.md`: the CA stored once, the session's send/read/close, and the
//! `+CCHOPEN` codes that must end an update rather than be retried.

#[path = "modem_support.rs"]
mod support;

use device_fw::http::{HttpClient, HttpError, Target};
use device_fw::modem::Dialect;
use device_fw::socket::{Socket, SocketError, TlsError};
use sha2::{Digest, Sha256};
use support::*;

const D: Dialect = Dialect::Sim7600;
const CA: &[u8] = b"-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUbench\n-----END CERTIFICATE-----\n";

fn ca_name() -> String {
    let digest = Sha256::digest(CA);
    let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!("otaca-{hex}.pem")
}

/// The setup after `AT+CCERTLIST`: context 0 and the service.
fn context_and_start() -> Script {
    let name = ca_name();
    Script::new()
        .ok("AT+CSSLCFG=\"sslversion\",0,3")
        .ok("AT+CSSLCFG=\"authmode\",0,1")
        .ok(&format!("AT+CSSLCFG=\"cacert\",0,\"{name}\""))
        .ok("AT+CSSLCFG=\"enableSNI\",0,1")
        .ok("AT+CCHSET=0,1")
        .ok("AT+CTZU=1")
        .cmd("AT+CCHSTART", "\r\nOK\r\n")
        .sleep(200_000)
        .out("\r\n+CCHSTART: 0\r\n")
}

fn open_session(code: u16) -> Script {
    Script::new()
        .ok("AT+CCHSSLCFG=0,0")
        .cmd("AT+CCHOPEN=0,\"ota.example.com\",443,2", "\r\nOK\r\n")
        .sleep(900_000)
        .out(format!("\r\n+CCHOPEN: 0,{code}\r\n"))
}

fn cchrecv(data: &[u8]) -> Vec<u8> {
    let mut v = format!("\r\nOK\r\n\r\n+CCHRECV: DATA,0,{}\r\n", data.len()).into_bytes();
    v.extend_from_slice(data);
    v.extend_from_slice(b"\r\n+CCHRECV: 0,0\r\n");
    v
}

fn tls_modem(uart: &FakeUart) -> TestModem {
    modem_with(uart, D, |cfg| cfg.ca_cert = Some(CA))
}

/// First bring-up: the modem lacks the CA, so it is downloaded (and a stale one of ours
/// deleted); plaintext goes through `CCHSEND`/`CCHRECV` byte for byte, payload bytes that
/// look like `OK` and notices included. Second bring-up: the list shows the name, nothing is
/// written.
#[tokio::test(start_paused = true)]
async fn ca_downloaded_once_and_session_carries_plaintext() {
    let name = ca_name();
    let data = nasty_payload(1900);
    let req = b"GET / HTTP/1.1\r\n\r\n";
    let uart = up(D)
        .cmd(
            "AT+CCERTLIST",
            "\r\n+CCERTLIST: \"client.pem\"\r\n+CCERTLIST: \"otaca-0000000000000000.pem\"\r\n\r\nOK\r\n",
        )
        .expect(format!("AT+CCERTDOWN=\"{name}\",{}\r", CA.len()))
        .out("\r\n>")
        .expect(CA)
        .out("\r\nOK\r\n")
        .ok("AT+CCERTDELE=\"otaca-0000000000000000.pem\"")
        .then(context_and_start())
        .then(open_session(0))
        .expect(format!("AT+CCHSEND=0,{}\r", req.len()))
        .out("\r\n>")
        .expect(req)
        .out("\r\nOK\r\n")
        .cmd("AT+CCHRECV=0,1460", cchrecv(&data[..1460]))
        .cmd("AT+CCHRECV=0,1460", cchrecv(&data[1460..]))
        .cmd("AT+CCHCLOSE=0", "\r\nOK\r\n\r\n+CCHCLOSE: 0,0\r\n")
        .then(up(D))
        .cmd("AT+CCERTLIST", format!("\r\n+CCERTLIST: \"{name}\"\r\n\r\nOK\r\n"))
        .then(context_and_start())
        .then(open_session(0))
        .build();
    let mut m = tls_modem(&uart);
    assert!(m.supports_tls());
    m.bring_up().await.unwrap();
    m.connect_tls("ota.example.com", 443).await.unwrap();
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
    m.connect_tls("ota.example.com", 443).await.unwrap();
    uart.assert_done();
    assert_eq!(uart.count_written("AT+CCERTDOWN"), 1, "second bring-up wrote no flash");
}

/// `+CCHOPEN: 0,15` (unknown CA, wrong host name or expired: one code on the SIM7600) and
/// `0,19` are TLS errors, which the HTTP client does not call retryable; 13 (DNS) stays a
/// connect failure, which it does.
#[tokio::test(start_paused = true)]
async fn open_codes_are_distinct_errors() {
    let uart = up(D)
        .cmd(
            "AT+CCERTLIST",
            format!("\r\n+CCERTLIST: \"{}\"\r\n\r\nOK\r\n", ca_name()),
        )
        .then(context_and_start())
        .then(open_session(15))
        .then(open_session(19))
        .then(open_session(13))
        .build();
    let mut m = tls_modem(&uart);
    m.bring_up().await.unwrap();
    let handshake = m.connect_tls("ota.example.com", 443).await.unwrap_err();
    assert_eq!(handshake, SocketError::Tls(TlsError::Handshake));
    assert!(!HttpError::Socket(handshake).is_retryable());
    assert_eq!(TlsError::Handshake.code(), "tls-handshake-failed");
    let no_ca = m.connect_tls("ota.example.com", 443).await.unwrap_err();
    assert_eq!(no_ca, SocketError::Tls(TlsError::NoCaCert));
    let dns = m.connect_tls("ota.example.com", 443).await.unwrap_err();
    assert_eq!(dns, SocketError::ConnectFailed(13));
    assert!(HttpError::Socket(dns).is_retryable());
    assert!(!m.is_connected());
    uart.assert_done();
}

/// Without a CA the driver offers no TLS: an `https://` URL fails at once, before any
/// command, with the scheme error; plain `http://` is untouched.
#[tokio::test(start_paused = true)]
async fn no_ca_means_no_https() {
    let uart = up(D).build();
    let mut m = modem(&uart, D);
    m.bring_up().await.unwrap();
    assert!(!m.supports_tls());
    assert_eq!(
        m.connect_tls("ota.example.com", 443).await,
        Err(SocketError::Tls(TlsError::NoCaCert))
    );
    let mut http = HttpClient::new(m);
    let target = Target::parse("https://ota.example.com/fw.bin").unwrap();
    assert_eq!(target.url.port, 443);
    assert_eq!(http.get(&target, None).await.unwrap_err(), HttpError::UnsupportedScheme);
    uart.assert_done();
}

/// An `http://` manifest URL redirected to `https://`: the client closes the `CIP` link and
/// reopens through the SSL client, where the body comes from.
#[tokio::test(start_paused = true)]
async fn redirect_from_http_to_https_reopens_through_tls() {
    let agent = device_fw::http::USER_AGENT;
    let head = |path: &str| {
        format!("GET {path} HTTP/1.1\r\nHost: ota.example.com\r\nUser-Agent: {agent}\r\nConnection: keep-alive\r\n\r\n")
    };
    let moved = b"HTTP/1.1 302 Found\r\nLocation: https://ota.example.com/m.json\r\nContent-Length: 0\r\n\r\n";
    let ok = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
    // The same request on both connections: the Host header has no port at either default.
    let req = head("/m.json");
    let uart = up(D)
        .cmd("AT+CIPOPEN=0,\"TCP\",\"ota.example.com\",80", "\r\nOK\r\n")
        .sleep(150_000)
        .out("\r\n+CIPOPEN: 0,0\r\n")
        .expect(format!("AT+CIPSEND=0,{}\r", req.len()))
        .out("\r\n>")
        .expect(&req)
        .out(format!("\r\nOK\r\n\r\n+CIPSEND: 0,{0},{0}\r\n", req.len()))
        .cmd("AT+CIPRXGET=2,0,1024", ciprxget(moved, 0))
        .cmd("AT+CIPCLOSE=0", "\r\nOK\r\n\r\n+CIPCLOSE: 0,0\r\n")
        .cmd(
            "AT+CCERTLIST",
            format!("\r\n+CCERTLIST: \"{}\"\r\n\r\nOK\r\n", ca_name()),
        )
        .then(context_and_start())
        .then(open_session(0))
        .expect(format!("AT+CCHSEND=0,{}\r", req.len()))
        .out("\r\n>")
        .expect(&req)
        .out("\r\nOK\r\n")
        .cmd("AT+CCHRECV=0,1024", cchrecv(ok))
        .build();
    let mut m = tls_modem(&uart);
    m.bring_up().await.unwrap();
    let mut http = HttpClient::new(m);
    let url = Target::parse("http://ota.example.com/m.json").unwrap();
    let head = http.get(&url, None).await.unwrap();
    assert_eq!(head.status, 200);
    let mut body = [0u8; 16];
    let n = http.read_body(&mut body).await.unwrap();
    assert_eq!(&body[..n], b"hello");
    assert_eq!(http.effective_url(), Some("https://ota.example.com/m.json"));
    uart.assert_done();
}

//! What one scheduled check costs over the air, measured: the device's own HTTP client and
//! modem driver against the bench origin, through the modem emulator and the emulated
//! network, with every byte the socket carries counted.
//!
//! A fleet checks every few hours for years and almost always finds nothing new, so this
//! is the steady cost of a device on an M2M plan. Two figures come out of one run:
//! - the TCP payload of the exchange (request and response, counted at the socket: exact);
//! - the IP bytes, adding 40 bytes of IPv4 and TCP headers per segment for the segments one
//!   short connection takes (handshake 3, request and response with their ACKs 4, close 4).
//!   That part is a model (no options, no retransmissions, no DNS: the modem caches the
//!   name after the first lookup), stated as such.

use device_fw::http::{Fetched, HttpClient, Url};
use device_fw::modem::Modem;
use device_fw::socket::{Socket, SocketError};
use device_fw::wire::manifest::MAX_ENVELOPE;
use serde::Serialize;

use crate::device::{DeviceSetup, World, manifest_url, release};
use crate::time::{self, BenchClock};
use crate::trust::{NEW_PAYLOAD, NEW_VERSION, app_image};
use crate::uart::{UartEnd, retune};

/// IPv4 (20) and TCP (20) headers of one segment without options.
pub const SEGMENT_HEADERS: u64 = 40;
/// Segments of one short HTTP exchange on its own connection: SYN, SYN-ACK, ACK; the
/// request and its ACK; the response and its ACK; FIN, ACK, FIN, ACK.
pub const SEGMENTS_PER_CHECK: u64 = 11;

/// Counts what goes through a socket.
#[derive(Debug)]
struct Counting<S> {
    inner: S,
    sent: u64,
    received: u64,
}

impl<S: Socket> Socket for Counting<S> {
    async fn connect(&mut self, host: &str, port: u16) -> Result<(), SocketError> {
        self.inner.connect(host, port).await
    }

    async fn write_all(&mut self, data: &[u8]) -> Result<(), SocketError> {
        self.sent += data.len() as u64;
        self.inner.write_all(data).await
    }

    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, SocketError> {
        let n = self.inner.read(buf).await?;
        self.received += n as u64;
        Ok(n)
    }

    async fn close(&mut self) {
        self.inner.close().await
    }

    fn is_connected(&self) -> bool {
        self.inner.is_connected()
    }

    async fn recover(&mut self) -> Result<(), SocketError> {
        self.inner.recover().await
    }
}

/// The bytes of a check, by kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct CheckCost {
    /// A check of an unchanged manifest (`If-None-Match` → `304`): TCP payload.
    pub unchanged_payload_bytes: u64,
    /// The same with IP and TCP headers (see the module docs).
    pub unchanged_ip_bytes: u64,
    /// A check that fetches the whole signed manifest (`200`): TCP payload.
    pub full_payload_bytes: u64,
    pub full_ip_bytes: u64,
}

/// Measures both kinds of check against the bench origin serving the field release.
pub async fn measure() -> Result<CheckCost, String> {
    let setup = DeviceSetup::field();
    let rel = release(
        app_image(setup.chip().image_chip_id(), NEW_VERSION, 0, NEW_PAYLOAD, 2),
        NEW_VERSION,
    );
    let mut world = World::new(&setup, &rel);
    let uart: UartEnd = world.take_modem_uart().ok_or("modem UART taken")?;
    let mut modem = Modem::new(uart, BenchClock, setup.modem_config()).with_uart_rate(retune);
    time::timeout(std::time::Duration::from_secs(120), modem.bring_up())
        .await
        .map_err(|_| "modem bring-up timed out".to_owned())?
        .map_err(|e| format!("modem bring-up failed: {e}"))?;
    let mut http = HttpClient::new(Counting {
        inner: modem,
        sent: 0,
        received: 0,
    });
    let url = manifest_url();
    let target = Url::parse(&url).map_err(|e| e.to_string())?;

    // A check that finds the manifest new: the whole envelope.
    http.get(&target, None)
        .await
        .map_err(|e| format!("manifest GET: {e}"))?;
    let mut body = [0u8; MAX_ENVELOPE];
    while http.read_body(&mut body).await.map_err(|e| e.to_string())? > 0 {}
    let known = http.validators().clone();
    http.close().await;
    let full = take(&mut http);

    // The next check, with what the first one learnt.
    match http.get_if_changed(&target, &known).await {
        Ok(Fetched::NotModified) => {}
        other => return Err(format!("the bench origin did not answer 304: {other:?}")),
    }
    http.close().await;
    let unchanged = take(&mut http);
    let ip = |payload: u64| payload + SEGMENTS_PER_CHECK * SEGMENT_HEADERS;
    Ok(CheckCost {
        unchanged_payload_bytes: unchanged,
        unchanged_ip_bytes: ip(unchanged),
        full_payload_bytes: full,
        full_ip_bytes: ip(full),
    })
}

fn take<S: Socket>(http: &mut HttpClient<Counting<S>>) -> u64 {
    let s = http.socket();
    let n = s.sent + s.received;
    s.sent = 0;
    s.received = 0;
    n
}

/// [`measure`] in its own virtual-time runtime, for callers outside one.
pub fn measure_blocking() -> Result<CheckCost, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .map_err(|e| e.to_string())?
        .block_on(async {
            time::use_virtual_time();
            measure().await
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unchanged_check_costs_a_fraction_of_a_full_one() {
        let cost = measure_blocking().unwrap();
        println!("{cost:?}");
        // The request and the 304 head: a few hundred bytes, against the whole envelope.
        assert!(cost.unchanged_payload_bytes > 100, "{cost:?}");
        assert!(cost.unchanged_payload_bytes * 2 < cost.full_payload_bytes, "{cost:?}");
        assert_eq!(cost.unchanged_ip_bytes, cost.unchanged_payload_bytes + 440);
    }
}

//! The cellular network between modem and origin: bandwidth, latency and a carrier NAT.
//!
//! Each TCP connection is two [`pipe`]s. The NAT watches the last time any byte crossed
//! in either direction; a mapping idle for longer than its timeout is forgotten, after
//! which the NAT either resets both ends (what the seed field case shows: the modem's
//! socket dies and its unread data is thrown away) or silently drops every later packet
//! (the device only notices when its next request gets no answer).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;

use crate::time;

use crate::pipe::{PipeConfig, PipeControl, PipeError, PipeReader, PipeState, PipeWriter, pipe};

/// What a NAT does when it forgets an idle mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum NatExpiry {
    /// RST to both ends.
    Reset,
    /// Later packets vanish; nobody is told.
    Drop,
}

/// A carrier NAT's idle behaviour; `idle_timeout: None` is a public-IP APN (no NAT).
#[derive(Debug, Clone, Copy)]
pub struct NatConfig {
    pub idle_timeout: Option<Duration>,
    pub on_expiry: NatExpiry,
}

/// The cellular link.
#[derive(Debug, Clone, Copy)]
pub struct NetConfig {
    /// Origin → modem, bytes per second.
    pub downlink_bytes_per_sec: f64,
    /// Modem → origin, bytes per second.
    pub uplink_bytes_per_sec: f64,
    /// One-way delay.
    pub latency: Duration,
    /// The modem's socket receive buffer; when full, the origin's sends stall.
    pub modem_rx_buffer: usize,
    pub nat: NatConfig,
}

impl NetConfig {
    /// An LTE link as in the seed case: it delivers a 233 KB image in well under a second.
    pub fn lte(nat: NatConfig) -> Self {
        NetConfig {
            downlink_bytes_per_sec: 2_500_000.0,
            uplink_bytes_per_sec: 625_000.0,
            latency: Duration::from_millis(40),
            modem_rx_buffer: 512 * 1024,
            nat,
        }
    }
}

/// Why a connection could not be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectError {
    #[error("connection refused: nothing listens on {0}")]
    Refused(String),
    #[error("network is down")]
    NetworkDown,
}

/// Counters a scenario reports.
#[derive(Debug, Default, Clone, Copy, serde::Serialize)]
pub struct NetStats {
    pub connections: u64,
    pub nat_expiries: u64,
    pub injected_disconnects: u64,
}

/// One end of a TCP connection.
#[derive(Debug)]
pub struct Connection {
    pub reader: PipeReader,
    pub writer: PipeWriter,
    link: Arc<Link>,
}

impl Connection {
    pub async fn read(&mut self, buf: &mut [u8]) -> Result<usize, PipeError> {
        self.reader.read(buf).await
    }

    pub async fn write(&self, data: &[u8]) -> Result<(), PipeError> {
        self.writer.write(data).await
    }

    /// Graceful close of our sending side (FIN).
    pub fn shutdown(&self) {
        self.writer.close();
    }

    /// Abortive close (RST): both ends see a reset.
    pub fn abort(&self) {
        self.link.reset();
    }

    /// Whether the connection is still usable in both directions.
    pub fn is_open(&self) -> bool {
        self.reader.state() == PipeState::Open && self.writer.control().state() == PipeState::Open
    }
}

#[derive(Debug)]
struct Link {
    down: PipeControl,
    up: PipeControl,
}

impl Link {
    fn reset(&self) {
        self.down.reset();
        self.up.reset();
    }

    fn blackhole(&self) {
        self.down.blackhole();
        self.up.blackhole();
    }

    /// Bench ns of the last byte that crossed the NAT either way.
    fn last_activity_ns(&self) -> u64 {
        self.down.last_arrival_ns().max(self.up.last_arrival_ns())
    }

    fn finished(&self) -> bool {
        let done = |p: &PipeControl| p.state() != PipeState::Open;
        done(&self.down) && done(&self.up)
    }
}

#[derive(Debug, Default)]
struct State {
    listeners: HashMap<String, mpsc::UnboundedSender<Connection>>,
    links: Vec<std::sync::Weak<Link>>,
    down: bool,
}

#[derive(Debug)]
struct NetShared {
    cfg: NetConfig,
    state: Mutex<State>,
    connections: AtomicU64,
    nat_expiries: AtomicU64,
    injected: AtomicU64,
}

/// The network: origins listen on it, the modem connects through it.
#[derive(Debug, Clone)]
pub struct Network {
    shared: Arc<NetShared>,
}

/// Accepts connections made to one `host:port`.
#[derive(Debug)]
pub struct Listener {
    rx: mpsc::UnboundedReceiver<Connection>,
}

impl Listener {
    /// The next connection; `None` once the network is gone.
    pub async fn accept(&mut self) -> Option<Connection> {
        self.rx.recv().await
    }
}

impl Network {
    pub fn new(cfg: NetConfig) -> Self {
        Network {
            shared: Arc::new(NetShared {
                cfg,
                state: Mutex::new(State::default()),
                connections: AtomicU64::new(0),
                nat_expiries: AtomicU64::new(0),
                injected: AtomicU64::new(0),
            }),
        }
    }

    pub fn config(&self) -> &NetConfig {
        &self.shared.cfg
    }

    /// Serves `host:port`.
    pub fn listen(&self, host: &str, port: u16) -> Listener {
        let (tx, rx) = mpsc::unbounded_channel();
        self.shared
            .state
            .lock()
            .expect("net lock")
            .listeners
            .insert(format!("{host}:{port}"), tx);
        Listener { rx }
    }

    /// Opens a connection from the modem, after one round trip (SYN, SYN-ACK).
    pub async fn connect(&self, host: &str, port: u16) -> Result<Connection, ConnectError> {
        let cfg = self.shared.cfg;
        time::sleep(cfg.latency * 2).await;
        let key = format!("{host}:{port}");
        let listener = {
            let state = self.shared.state.lock().expect("net lock");
            if state.down {
                return Err(ConnectError::NetworkDown);
            }
            state.listeners.get(&key).cloned()
        };
        let Some(listener) = listener else {
            return Err(ConnectError::Refused(key));
        };
        let (down_w, down_r) = pipe(PipeConfig {
            bytes_per_sec: Some(cfg.downlink_bytes_per_sec),
            latency: cfg.latency,
            batch: 1460,
            capacity: cfg.modem_rx_buffer,
            blocking_write: false,
        });
        let (up_w, up_r) = pipe(PipeConfig {
            bytes_per_sec: Some(cfg.uplink_bytes_per_sec),
            latency: cfg.latency,
            batch: 1460,
            capacity: 1 << 20,
            blocking_write: false,
        });
        let link = Arc::new(Link {
            down: down_w.control(),
            up: up_w.control(),
        });
        let modem_end = Connection {
            reader: down_r,
            writer: up_w,
            link: link.clone(),
        };
        let origin_end = Connection {
            reader: up_r,
            writer: down_w,
            link: link.clone(),
        };
        if listener.send(origin_end).is_err() {
            return Err(ConnectError::Refused(key));
        }
        self.shared.connections.fetch_add(1, Ordering::Relaxed);
        {
            let mut state = self.shared.state.lock().expect("net lock");
            state.links.retain(|l| l.strong_count() > 0);
            state.links.push(Arc::downgrade(&link));
        }
        if let Some(idle) = cfg.nat.idle_timeout {
            tokio::spawn(nat_watch(link, idle, cfg.nat.on_expiry, self.shared.clone()));
        }
        Ok(modem_end)
    }

    /// Breaks every open connection at once, as a cell handover or a core-network hiccup
    /// does: `Reset` tells both ends, `Drop` tells nobody.
    pub fn disconnect_all(&self, how: NatExpiry) {
        let links: Vec<_> = {
            let state = self.shared.state.lock().expect("net lock");
            state.links.iter().filter_map(|l| l.upgrade()).collect()
        };
        for link in links.iter().filter(|l| !l.finished()) {
            self.shared.injected.fetch_add(1, Ordering::Relaxed);
            match how {
                NatExpiry::Reset => link.reset(),
                NatExpiry::Drop => link.blackhole(),
            }
        }
    }

    /// Takes the packet network down (new connections fail) or up again.
    pub fn set_down(&self, down: bool) {
        self.shared.state.lock().expect("net lock").down = down;
    }

    pub fn stats(&self) -> NetStats {
        NetStats {
            connections: self.shared.connections.load(Ordering::Relaxed),
            nat_expiries: self.shared.nat_expiries.load(Ordering::Relaxed),
            injected_disconnects: self.shared.injected.load(Ordering::Relaxed),
        }
    }
}

async fn nat_watch(link: Arc<Link>, idle: Duration, how: NatExpiry, net: Arc<NetShared>) {
    let idle_ns = idle.as_nanos() as u64;
    let opened_ns = time::now_ns();
    loop {
        let expires_ns = link.last_activity_ns().max(opened_ns) + idle_ns;
        time::sleep_until_ns(expires_ns).await;
        if link.finished() {
            return;
        }
        if link.last_activity_ns().max(opened_ns) + idle_ns <= time::now_ns() {
            net.nat_expiries.fetch_add(1, Ordering::Relaxed);
            match how {
                NatExpiry::Reset => link.reset(),
                NatExpiry::Drop => link.blackhole(),
            }
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(idle_s: Option<u64>, how: NatExpiry) -> Network {
        time::use_virtual_time();
        Network::new(NetConfig::lte(NatConfig {
            idle_timeout: idle_s.map(Duration::from_secs),
            on_expiry: how,
        }))
    }

    #[tokio::test(start_paused = true)]
    async fn idle_mapping_is_reset_after_timeout() {
        let net = net(Some(59), NatExpiry::Reset);
        let mut l = net.listen("origin", 80);
        let mut modem = net.connect("origin", 80).await.unwrap();
        let origin = l.accept().await.unwrap();
        origin.write(&[1u8; 1000]).await.unwrap();
        let t0 = time::now();
        time::sleep(Duration::from_secs(58)).await;
        assert!(modem.is_open());
        let mut buf = [0u8; 100];
        assert_eq!(
            modem.read(&mut buf).await.unwrap(),
            100,
            "data is readable before expiry"
        );
        time::sleep(Duration::from_secs(2)).await;
        assert_eq!(
            modem.read(&mut buf).await,
            Err(PipeError::Reset),
            "unread data gone after {:?}",
            time::now() - t0
        );
        assert_eq!(net.stats().nat_expiries, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn traffic_keeps_the_mapping_alive() {
        let net = net(Some(10), NatExpiry::Reset);
        let mut l = net.listen("origin", 80);
        let modem = net.connect("origin", 80).await.unwrap();
        let mut origin = l.accept().await.unwrap();
        let mut buf = [0u8; 8];
        for _ in 0..10 {
            time::sleep(Duration::from_secs(8)).await;
            modem.write(b"ping").await.unwrap();
            assert_eq!(origin.read(&mut buf).await.unwrap(), 4);
        }
        assert_eq!(net.stats().nat_expiries, 0);
    }

    #[tokio::test(start_paused = true)]
    async fn dropping_nat_swallows_later_packets() {
        let net = net(Some(5), NatExpiry::Drop);
        let mut l = net.listen("origin", 80);
        let modem = net.connect("origin", 80).await.unwrap();
        let mut origin = l.accept().await.unwrap();
        time::sleep(Duration::from_secs(6)).await;
        modem.write(b"GET").await.unwrap();
        let mut buf = [0u8; 8];
        let r = time::timeout(Duration::from_secs(30), origin.read(&mut buf)).await;
        assert!(r.is_err(), "a request after expiry must never arrive");
    }

    #[tokio::test(start_paused = true)]
    async fn refused_without_listener() {
        let net = net(None, NatExpiry::Reset);
        assert!(matches!(
            net.connect("nowhere", 80).await,
            Err(ConnectError::Refused(_))
        ));
    }
}

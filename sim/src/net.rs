//! The cellular network between modem and origin: bandwidth, latency and a carrier NAT.
//!
//! Each TCP connection is two [`pipe`]s. The NAT watches the last time any byte crossed
//! in either direction; a mapping idle for longer than its timeout is forgotten, after
//! which the NAT either resets both ends (what the seed field case shows: the modem's
//! socket dies and its unread data is thrown away) or silently drops every later packet
//! (the device only notices when its next request gets no answer).
//!
//! On the real bench ([`Network::bridge_to_loopback`]) a connection to a host the emulator
//! does not serve is carried to a real TCP server on this machine: the modem still sees the
//! emulated link (bandwidth, latency, the NAT's idle timeout, all in bench time) and the
//! origin sees an ordinary TCP client. Only loopback addresses may be dialled, and names are
//! never looked up in DNS, so a test or a demo cannot send a packet off the machine.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use crate::time;

use crate::pipe::{PipeConfig, PipeControl, PipeError, PipeReader, PipeState, PipeWriter, pipe};

mod shaper;

use shaper::shaped_link;
pub use shaper::{BoxFuture, Direction, Shaper};

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
    /// The real bench only dials this machine.
    #[error("{0}")]
    NotLoopback(String),
}

/// What the network reports to an observer on the real bench (see [`Network::observe`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetEvent {
    /// A connection was carried to a real TCP server.
    Bridged { peer: String },
    /// A connection was refused: nothing listens, or the address is not on this machine.
    Refused { peer: String, reason: String },
    /// The NAT forgot an idle mapping.
    NatExpired {
        peer: String,
        idle: Duration,
        how: NatExpiry,
    },
}

/// Receives [`NetEvent`]s; called from the network's tasks.
pub type NetObserver = Arc<dyn Fn(&NetEvent) + Send + Sync>;

/// Counters a scenario reports.
#[derive(Debug, Default, Clone, Copy, serde::Serialize)]
pub struct NetStats {
    pub connections: u64,
    pub nat_expiries: u64,
    pub injected_disconnects: u64,
    /// Connections carried to a real TCP server (real bench only).
    pub bridged: u64,
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

    /// Two ends joined inside one host, with no wire between them: the plaintext side of a
    /// TLS layer ([`crate::tls`]), which the modem's socket or the origin's server reads
    /// and writes as if it were the connection itself. A writer waits once `capacity`
    /// bytes are unread, so the layer passes the reader's back-pressure on to the wire.
    pub fn local_pair(capacity: usize) -> (Connection, Connection) {
        let cfg = PipeConfig {
            bytes_per_sec: None,
            latency: Duration::ZERO,
            batch: 1,
            capacity,
            blocking_write: false,
        };
        let (a_w, a_r) = pipe(cfg);
        let (b_w, b_r) = pipe(cfg);
        let link = Arc::new(Link {
            down: a_w.control(),
            up: b_w.control(),
            relayed: Vec::new(),
        });
        let a = Connection {
            reader: a_r,
            writer: b_w,
            link: link.clone(),
        };
        let b = Connection {
            reader: b_r,
            writer: a_w,
            link,
        };
        (a, b)
    }
}

#[derive(Debug)]
struct Link {
    /// The pipes whose arrivals the NAT sees: into the modem, into the origin.
    down: PipeControl,
    up: PipeControl,
    /// The origin-side and modem-side pipes a [`Shaper`] relays between, if any.
    relayed: Vec<PipeControl>,
}

impl Link {
    fn reset(&self) {
        self.down.reset();
        self.up.reset();
        self.relayed.iter().for_each(PipeControl::reset);
    }

    fn blackhole(&self) {
        self.down.blackhole();
        self.up.blackhole();
        self.relayed.iter().for_each(PipeControl::blackhole);
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

#[derive(Default)]
struct State {
    listeners: HashMap<String, mpsc::UnboundedSender<Connection>>,
    links: Vec<std::sync::Weak<Link>>,
    down: bool,
    /// Connections nobody listens for go to real TCP on this machine.
    bridge: bool,
    observer: Option<NetObserver>,
    shaper: Option<Arc<dyn Shaper>>,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State")
            .field("listeners", &self.listeners.keys().collect::<Vec<_>>())
            .field("links", &self.links.len())
            .field("down", &self.down)
            .field("bridge", &self.bridge)
            .finish_non_exhaustive()
    }
}

#[derive(Debug)]
struct NetShared {
    cfg: NetConfig,
    state: Mutex<State>,
    connections: AtomicU64,
    nat_expiries: AtomicU64,
    injected: AtomicU64,
    bridged: AtomicU64,
}

impl NetShared {
    fn report(&self, event: NetEvent) {
        let observer = self.state.lock().expect("net lock").observer.clone();
        if let Some(observer) = observer {
            observer(&event);
        }
    }
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
                bridged: AtomicU64::new(0),
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

    /// Carries connections to any `host:port` no emulated listener serves to a real TCP
    /// server on this machine (the real bench). Hosts must be loopback addresses,
    /// `localhost`, or names `/etc/hosts` maps to loopback; anything else is refused with
    /// [`ConnectError::NotLoopback`].
    pub fn bridge_to_loopback(&self) {
        self.shared.state.lock().expect("net lock").bridge = true;
    }

    /// Reports connections, refusals and NAT expiries to `observer` (for a person watching
    /// the real bench; the virtual benches count them in [`NetStats`]).
    pub fn observe(&self, observer: NetObserver) {
        self.shared.state.lock().expect("net lock").observer = Some(observer);
    }

    /// Shapes every later connection with `shaper` (see [`Shaper`]).
    pub fn set_shaper(&self, shaper: Arc<dyn Shaper>) {
        self.shared.state.lock().expect("net lock").shaper = Some(shaper);
    }

    fn shaper(&self) -> Option<Arc<dyn Shaper>> {
        self.shared.state.lock().expect("net lock").shaper.clone()
    }

    /// Opens a connection from the modem, after one round trip (SYN, SYN-ACK).
    pub async fn connect(&self, host: &str, port: u16) -> Result<Connection, ConnectError> {
        let cfg = self.shared.cfg;
        time::sleep(cfg.latency * 2).await;
        if let Some(shaper) = self.shaper() {
            shaper.connect().await?;
        }
        let key = format!("{host}:{port}");
        let (listener, bridge) = {
            let state = self.shared.state.lock().expect("net lock");
            if state.down {
                return Err(ConnectError::NetworkDown);
            }
            (state.listeners.get(&key).cloned(), state.bridge)
        };
        let (modem_end, origin_end) = match (listener, bridge) {
            (Some(listener), _) => {
                let (modem_end, origin_end) = self.link();
                if listener.send(origin_end).is_err() {
                    return Err(ConnectError::Refused(key));
                }
                (modem_end, None)
            }
            (None, true) => {
                let stream = match dial_loopback(host, port).await {
                    Ok(stream) => stream,
                    Err(e) => {
                        self.shared.report(NetEvent::Refused {
                            peer: key,
                            reason: e.to_string(),
                        });
                        return Err(e);
                    }
                };
                let (modem_end, origin_end) = self.link();
                self.shared.bridged.fetch_add(1, Ordering::Relaxed);
                self.shared.report(NetEvent::Bridged { peer: key.clone() });
                (modem_end, Some((origin_end, stream)))
            }
            (None, false) => return Err(ConnectError::Refused(key)),
        };
        let link = modem_end.link.clone();
        self.shared.connections.fetch_add(1, Ordering::Relaxed);
        {
            let mut state = self.shared.state.lock().expect("net lock");
            state.links.retain(|l| l.strong_count() > 0);
            state.links.push(Arc::downgrade(&link));
        }
        if let Some((origin_end, stream)) = origin_end {
            tokio::spawn(carry(origin_end, stream));
        }
        if let Some(idle) = cfg.nat.idle_timeout {
            tokio::spawn(nat_watch(link, idle, cfg.nat.on_expiry, self.shared.clone(), key));
        }
        Ok(modem_end)
    }

    /// The two ends of a new connection across the cellular link: (modem, origin).
    fn link(&self) -> (Connection, Connection) {
        let cfg = self.shared.cfg;
        if let Some(shaper) = self.shaper() {
            return shaped_link(&cfg, shaper);
        }
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
            relayed: Vec::new(),
        });
        let modem_end = Connection {
            reader: down_r,
            writer: up_w,
            link: link.clone(),
        };
        let origin_end = Connection {
            reader: up_r,
            writer: down_w,
            link,
        };
        (modem_end, origin_end)
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
            bridged: self.shared.bridged.load(Ordering::Relaxed),
        }
    }
}

/// Where `host:port` is on this machine, without asking DNS: a loopback address, the
/// `localhost` names (RFC 6761), or a name `/etc/hosts` gives only loopback addresses.
pub fn loopback_addrs(host: &str, port: u16) -> Result<Vec<SocketAddr>, ConnectError> {
    let refuse = |why: &str| {
        ConnectError::NotLoopback(format!(
            "refused to dial {host}:{port}: {why}; the virtual device only reaches servers on this \
             machine (127.0.0.0/8, [::1], localhost)"
        ))
    };
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return if ip.is_loopback() {
            Ok(vec![SocketAddr::new(ip, port)])
        } else {
            Err(refuse("not a loopback address"))
        };
    }
    let name = host.to_ascii_lowercase();
    if name == "localhost" || name.ends_with(".localhost") {
        return Ok(vec![
            SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port),
            SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), port),
        ]);
    }
    let hosts = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
    let ips: Vec<IpAddr> = hosts
        .lines()
        .filter_map(|line| {
            let mut words = line.split('#').next()?.split_whitespace();
            let ip = words.next()?.parse::<IpAddr>().ok()?;
            words.any(|w| w.eq_ignore_ascii_case(&name)).then_some(ip)
        })
        .collect();
    if ips.is_empty() {
        return Err(refuse(
            "not a loopback address and not in /etc/hosts (names are not looked up in DNS)",
        ));
    }
    if !ips.iter().all(IpAddr::is_loopback) {
        return Err(refuse("/etc/hosts maps it to an address off this machine"));
    }
    Ok(ips.into_iter().map(|ip| SocketAddr::new(ip, port)).collect())
}

/// Connects to the loopback server behind `host:port`.
async fn dial_loopback(host: &str, port: u16) -> Result<TcpStream, ConnectError> {
    let addrs = loopback_addrs(host, port)?;
    let mut last = None;
    for addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(stream) => {
                let _ = stream.set_nodelay(true);
                return Ok(stream);
            }
            Err(_) => last = Some(addr.to_string()),
        }
    }
    Err(ConnectError::Refused(last.unwrap_or_else(|| format!("{host}:{port}"))))
}

/// Moves bytes between the origin end of an emulated connection and a real TCP stream
/// until both directions are done. FINs cross as FINs; a reset on either side (the NAT,
/// the modem dropping its socket, the server) resets the other.
async fn carry(conn: Connection, mut stream: TcpStream) {
    let Connection {
        mut reader,
        writer,
        link,
    } = conn;
    // Borrowed halves: an owned write half would send a FIN when dropped, before the RST.
    let (mut from_server, mut to_server) = stream.split();
    // Modem → server.
    let up = async {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            match reader.read(&mut buf).await {
                Ok(0) => return to_server.shutdown().await.is_ok(),
                Ok(n) => {
                    if to_server.write_all(&buf[..n]).await.is_err() {
                        return false;
                    }
                }
                Err(_) => return false,
            }
        }
    };
    // Server → modem. A NAT that drops silently hides the server's FIN as well.
    let down = async {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            match from_server.read(&mut buf).await {
                Ok(0) => {
                    if !writer.control().is_blackholed() {
                        writer.close();
                    }
                    return true;
                }
                Ok(n) => {
                    if writer.write(&buf[..n]).await.is_err() {
                        return false;
                    }
                }
                Err(_) => return false,
            }
        }
    };
    let clean = {
        let (mut up, mut down) = (pin!(up), pin!(down));
        let (mut up_done, mut down_done) = (false, false);
        loop {
            let ok = tokio::select! {
                ok = &mut up, if !up_done => { up_done = true; ok }
                ok = &mut down, if !down_done => { down_done = true; ok }
            };
            if !ok {
                break false;
            }
            if up_done && down_done {
                break true;
            }
        }
    };
    if !clean {
        link.reset();
        // RST rather than FIN, as the server would see from a NAT or a modem that reset.
        let _ = stream.set_zero_linger();
    }
}

async fn nat_watch(link: Arc<Link>, idle: Duration, how: NatExpiry, net: Arc<NetShared>, peer: String) {
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
            net.report(NetEvent::NatExpired { peer, idle, how });
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

    /// A real TCP server on loopback, as the real bench's origin.
    async fn loopback_server() -> (tokio::net::TcpListener, u16) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        (listener, port)
    }

    fn bridged_net(idle: Option<Duration>) -> Network {
        time::use_scaled_time(50.0);
        let net = Network::new(NetConfig::lte(NatConfig {
            idle_timeout: idle,
            on_expiry: NatExpiry::Reset,
        }));
        net.bridge_to_loopback();
        net
    }

    #[tokio::test]
    async fn the_bridge_carries_bytes_and_fins_to_a_real_server() {
        let net = bridged_net(None);
        let (listener, port) = loopback_server().await;
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut got = Vec::new();
            s.read_to_end(&mut got).await.unwrap();
            s.write_all(&got.repeat(1000)).await.unwrap();
            got
        });
        let mut modem = net.connect("localhost", port).await.unwrap();
        modem.write(b"GET /x").await.unwrap();
        modem.shutdown();
        let mut back = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match modem.read(&mut buf).await.unwrap() {
                0 => break,
                n => back.extend_from_slice(&buf[..n]),
            }
        }
        assert_eq!(server.await.unwrap(), b"GET /x");
        assert_eq!(back, b"GET /x".repeat(1000));
        assert_eq!(net.stats().bridged, 1);
    }

    #[tokio::test]
    async fn only_this_machine_is_dialled() {
        let net = bridged_net(None);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        net.observe(Arc::new(move |e: &NetEvent| log.lock().unwrap().push(e.clone())));
        for host in ["10.0.0.1", "8.8.8.8", "ota.example.com", "[2001:db8::1]"] {
            let err = net.connect(host, 80).await.unwrap_err();
            assert!(
                matches!(&err, ConnectError::NotLoopback(m) if m.contains(host)),
                "{err}"
            );
        }
        assert_eq!(seen.lock().unwrap().len(), 4);
        assert!(loopback_addrs("127.0.0.2", 1).is_ok());
        assert!(loopback_addrs("[::1]", 1).is_ok());
        assert!(loopback_addrs("device.localhost", 1).is_ok());
        // Nothing listens on a port we just released: refused, not hung.
        let (listener, port) = loopback_server().await;
        drop(listener);
        assert!(matches!(
            net.connect("127.0.0.1", port).await,
            Err(ConnectError::Refused(_))
        ));
    }

    #[tokio::test]
    async fn an_idle_nat_mapping_resets_the_real_connection_too() {
        // 2 s of bench time is 40 ms of wall time at 50×.
        let net = bridged_net(Some(Duration::from_secs(2)));
        let (listener, port) = loopback_server().await;
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 16];
            s.read(&mut buf).await
        });
        let mut modem = net.connect("127.0.0.1", port).await.unwrap();
        let mut buf = [0u8; 16];
        assert_eq!(
            time::timeout(Duration::from_secs(10), modem.read(&mut buf))
                .await
                .unwrap(),
            Err(PipeError::Reset)
        );
        let at_server = server.await.unwrap();
        assert!(
            matches!(&at_server, Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset),
            "{at_server:?}"
        );
        assert_eq!(net.stats().nat_expiries, 1);
    }
}

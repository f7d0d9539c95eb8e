//! A poor rural cellular link: a slow radio, long round trips, packet loss and coverage
//! outages, as the modem's TCP stack experiences them.
//!
//! # Loss
//!
//! The device never sees a lost packet: its modem's TCP stack retransmits, and what reaches
//! the UART is a slower stream with pauses. So loss is modelled by its effect, not packet by
//! packet:
//!
//! - **Downlink (the image):** a TCP sender facing random loss `p` settles at the throughput
//!   Mathis et al. derived ("The macroscopic behavior of the TCP congestion avoidance
//!   algorithm", CCR 1997): `MSS / RTT × √(3 / 2p)`. The link delivers at the lower of that
//!   and its radio rate. At 2 s and 5 % this is 4 kB/s whatever the radio; at 0.3 s and 1 %
//!   it is 60 kB/s, above every radio rate drawn.
//! - **Uplink (requests, one small segment each):** a lost lone segment has no duplicate
//!   acknowledgements to trigger a fast retransmit, so it waits for the retransmission
//!   timeout: with probability `p`, a request is held back one RTO (and again, doubling,
//!   if the retransmission is lost too). SYNs alike.
//!
//! # Outages
//!
//! While coverage is gone the link carries nothing. A sender with data keeps retransmitting
//! with exponential backoff (RTO doubling up to 120 s, RFC 6298), so after the outage the
//! stream resumes only at the first retransmission that falls after it, not at once. A
//! connect during an outage repeats its SYN (1, 2, 4, … s) and gives up after
//! [`RuralLinkConfig::syn_give_up`]. Nothing crosses the NAT meanwhile, so an outage longer
//! than the NAT's idle timeout makes it forget the mapping (the bench then resets or drops
//! at the expiry, not at the next retransmission). Bytes already in flight when an outage
//! starts (at most one segment and the one-way delay's worth) still arrive.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::rngs::ChaCha8Rng;
use rand::{RngExt, SeedableRng};
use tokio::sync::Notify;

use crate::net::{BoxFuture, ConnectError, Direction, NetConfig, Shaper};
use crate::pipe::{PipeConfig, PipeReader, PipeWriter};
use crate::time;

/// TCP's maximum segment size on a 1500-byte MTU.
pub const MSS: f64 = 1460.0;
/// RFC 6298's ceiling on the retransmission timeout.
const RTO_MAX: Duration = Duration::from_secs(120);

/// What the radio and the modem's TCP stack make of the link.
#[derive(Debug, Clone, Copy)]
pub struct RuralLinkConfig {
    /// Radio rate, bytes per second, each way.
    pub bytes_per_sec: f64,
    pub rtt: Duration,
    /// Packet loss, 0..1.
    pub loss: f64,
    /// How long a connect keeps repeating its SYN through an outage. Modem stacks differ
    /// and none is documented publicly; a setting.
    pub syn_give_up: Duration,
}

impl RuralLinkConfig {
    /// The downlink's delivery rate: the radio's, or what TCP achieves under the loss.
    pub fn goodput(&self) -> f64 {
        let mathis = MSS / self.rtt.as_secs_f64() * (1.5 / self.loss.max(1e-9)).sqrt();
        self.bytes_per_sec.min(mathis)
    }

    /// The retransmission timeout once the round trip is measured: SRTT + 4 RTTVAR with
    /// the variance at a quarter of the round trip (RFC 6298), at least 1 s.
    pub fn rto(&self) -> Duration {
        (self.rtt * 2).max(Duration::from_secs(1))
    }
}

#[derive(Debug, Default)]
struct Coverage {
    /// In an outage now.
    down: bool,
}

/// The link's shared state: coverage, the loss draws and the counters.
#[derive(Debug)]
pub struct RuralLink {
    cfg: RuralLinkConfig,
    coverage: Mutex<Coverage>,
    changed: Notify,
    rng: Mutex<ChaCha8Rng>,
    downlink_bytes: AtomicU64,
    held_segments: AtomicU64,
}

impl RuralLink {
    pub fn new(cfg: RuralLinkConfig, seed: u64) -> Arc<Self> {
        Arc::new(RuralLink {
            cfg,
            coverage: Mutex::new(Coverage::default()),
            changed: Notify::new(),
            rng: Mutex::new(ChaCha8Rng::seed_from_u64(seed ^ 0x7275_7261_6c00)),
            downlink_bytes: AtomicU64::new(0),
            held_segments: AtomicU64::new(0),
        })
    }

    pub fn config(&self) -> &RuralLinkConfig {
        &self.cfg
    }

    /// Coverage goes (`true`) or comes back.
    pub fn set_outage(&self, down: bool) {
        self.coverage.lock().expect("coverage lock").down = down;
        self.changed.notify_waiters();
    }

    pub fn in_outage(&self) -> bool {
        self.coverage.lock().expect("coverage lock").down
    }

    /// Bytes the radio delivered towards the modem (headers, bodies, data later thrown
    /// away with a dead socket): what the device paid airtime for.
    pub fn downlink_bytes(&self) -> u64 {
        self.downlink_bytes.load(Ordering::Relaxed)
    }

    /// Segments held back by an outage or by a lost request.
    pub fn held_segments(&self) -> u64 {
        self.held_segments.load(Ordering::Relaxed)
    }

    fn lost(&self) -> bool {
        let p = self.cfg.loss;
        self.rng.lock().expect("rng lock").random_bool(p)
    }

    /// Waits until coverage is back.
    async fn covered(&self) {
        loop {
            let changed = self.changed.notified();
            if !self.in_outage() {
                return;
            }
            changed.await;
        }
    }

    /// A segment first sent now: returns once a transmission of it gets through. Each
    /// transmission is lost in an outage, or with the loss probability when `lossy`;
    /// retransmissions follow the RTO, doubling.
    async fn transmit(&self, lossy: bool) {
        let mut rto = self.cfg.rto();
        let mut held = false;
        loop {
            if self.in_outage() {
                held = true;
                let sent_at = time::now();
                self.covered().await;
                // The first retransmission after coverage returned.
                let back = time::now();
                let mut at = sent_at;
                while at < back {
                    at += rto;
                    rto = (rto * 2).min(RTO_MAX);
                }
                time::sleep(at - back).await;
                continue;
            }
            if lossy && self.lost() {
                held = true;
                time::sleep(rto).await;
                rto = (rto * 2).min(RTO_MAX);
                continue;
            }
            break;
        }
        if held {
            self.held_segments.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A connect: SYN retransmissions at 1, 2, 4, … s through an outage, up to
    /// `syn_give_up`.
    async fn syn(self: Arc<Self>) -> Result<(), ConnectError> {
        let start = time::now();
        let mut rto = Duration::from_secs(1);
        loop {
            let lost = self.in_outage() || self.lost();
            if !lost {
                return Ok(());
            }
            if time::now() + rto - start > self.cfg.syn_give_up {
                time::sleep((start + self.cfg.syn_give_up).saturating_sub(time::now())).await;
                return Err(ConnectError::NetworkDown);
            }
            time::sleep(rto).await;
            rto = (rto * 2).min(RTO_MAX);
        }
    }

    async fn carry(self: Arc<Self>, dir: Direction, mut from: PipeReader, to: PipeWriter) {
        let mut buf = vec![0u8; MSS as usize];
        loop {
            let n = match from.read(&mut buf).await {
                Ok(0) => {
                    if !to.control().is_blackholed() {
                        to.close();
                    }
                    return;
                }
                Ok(n) => n,
                Err(_) => {
                    to.control().reset();
                    return;
                }
            };
            // Downlink loss is in the rate (see the module notes); a request waits an RTO.
            self.transmit(dir == Direction::Up).await;
            if to.write(&buf[..n]).await.is_err() {
                from.control().reset();
                return;
            }
            if dir == Direction::Down && !to.control().is_blackholed() {
                self.downlink_bytes.fetch_add(n as u64, Ordering::Relaxed);
            }
        }
    }
}

impl Shaper for Arc<RuralLink> {
    fn connect(&self) -> BoxFuture<'static, Result<(), ConnectError>> {
        Box::pin(self.clone().syn())
    }

    fn pipe_config(&self, dir: Direction, cfg: &NetConfig) -> PipeConfig {
        PipeConfig {
            bytes_per_sec: Some(match dir {
                Direction::Down => self.cfg.goodput(),
                Direction::Up => self.cfg.bytes_per_sec,
            }),
            latency: self.cfg.rtt / 2,
            batch: MSS as usize,
            capacity: match dir {
                Direction::Down => cfg.modem_rx_buffer,
                Direction::Up => 1 << 20,
            },
            // The relay paces itself by the write: one segment on the radio at a time.
            blocking_write: true,
        }
    }

    fn relay(&self, dir: Direction, from: PipeReader, to: PipeWriter) -> BoxFuture<'static, ()> {
        Box::pin(self.clone().carry(dir, from, to))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(rate: f64, rtt_ms: u64, loss: f64) -> RuralLinkConfig {
        RuralLinkConfig {
            bytes_per_sec: rate,
            rtt: Duration::from_millis(rtt_ms),
            loss,
            syn_give_up: Duration::from_secs(30),
        }
    }

    #[test]
    fn loss_caps_the_downlink_as_tcp_does() {
        // 1460 / 2 s × √(1.5 / 0.05) = 3998 B/s.
        let c = cfg(20_000.0, 2000, 0.05);
        assert!((c.goodput() - 3998.5).abs() < 1.0, "{}", c.goodput());
        assert_eq!(cfg(20_000.0, 300, 0.01).goodput(), 20_000.0);
        assert_eq!(cfg(20_000.0, 300, 0.01).rto(), Duration::from_secs(1));
        assert_eq!(cfg(20_000.0, 2000, 0.01).rto(), Duration::from_secs(4));
    }

    #[tokio::test(start_paused = true)]
    async fn an_outage_holds_a_segment_until_the_next_retransmission() {
        time::use_virtual_time();
        let link = RuralLink::new(cfg(1000.0, 1000, 0.0), 1);
        link.set_outage(true);
        let l2 = link.clone();
        tokio::spawn(async move {
            time::sleep(Duration::from_secs(10)).await;
            l2.set_outage(false);
        });
        let t0 = time::now();
        link.transmit(false).await;
        // RTO 2 s: tries at 0, 2, 6, 14 s; coverage back at 10 s.
        assert_eq!(time::now() - t0, Duration::from_secs(14));
        assert_eq!(link.held_segments(), 1);
    }
}

//! The hook for links that a fixed rate and latency do not describe (see [`Shaper`]).

use std::sync::Arc;
use std::time::Duration;

use super::{ConnectError, Connection, Link, NetConfig};
use crate::pipe::{PipeConfig, PipeReader, PipeWriter, pipe};

/// A boxed future, for the [`Shaper`] hooks.
pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// Which way a relayed direction carries bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Origin → modem.
    Down,
    /// Modem → origin.
    Up,
}

/// Shapes a link beyond a fixed rate and latency (coverage outages, loss, a rate drawn per
/// run). With a shaper set, every connection gets two pipes per direction: the sender writes
/// into an unpaced one, the shaper relays from it into a paced one as the radio allows, and
/// the NAT watches the paced ones. A pipe's arrival times are fixed when bytes are written,
/// so an outage that starts later can only be modelled by holding bytes back before that.
pub trait Shaper: Send + Sync + std::fmt::Debug {
    /// Runs after the SYN's round trip; an error fails the connect.
    fn connect(&self) -> BoxFuture<'static, Result<(), ConnectError>>;
    /// The paced pipe of one direction (rate, latency, receive buffer).
    fn pipe_config(&self, dir: Direction, cfg: &NetConfig) -> PipeConfig;
    /// Carries one direction from `from` into `to` until either end is done; it must close
    /// `to` after `from`'s EOF and reset the other end when one end resets.
    fn relay(&self, dir: Direction, from: PipeReader, to: PipeWriter) -> BoxFuture<'static, ()>;
}

/// A connection whose directions a [`Shaper`] relays: (modem, origin).
pub(super) fn shaped_link(cfg: &NetConfig, shaper: Arc<dyn Shaper>) -> (Connection, Connection) {
    // The senders' side: a socket send buffer the relay drains as the link allows.
    let unpaced = PipeConfig {
        bytes_per_sec: None,
        latency: Duration::ZERO,
        batch: 1460,
        capacity: 64 * 1024,
        blocking_write: false,
    };
    let (down_in, down_from) = pipe(unpaced);
    let (down_to, down_out) = pipe(shaper.pipe_config(Direction::Down, cfg));
    let (up_in, up_from) = pipe(unpaced);
    let (up_to, up_out) = pipe(shaper.pipe_config(Direction::Up, cfg));
    let link = Arc::new(Link {
        down: down_to.control(),
        up: up_to.control(),
        relayed: vec![down_in.control(), up_in.control()],
    });
    tokio::spawn(shaper.relay(Direction::Down, down_from, down_to));
    tokio::spawn(shaper.relay(Direction::Up, up_from, up_to));
    let modem_end = Connection {
        reader: down_out,
        writer: up_in,
        link: link.clone(),
    };
    let origin_end = Connection {
        reader: up_out,
        writer: down_in,
        link,
    };
    (modem_end, origin_end)
}

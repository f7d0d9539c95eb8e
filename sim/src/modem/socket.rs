//! The modem's sockets: receive buffers, the watcher that fills them, and how they close.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use super::{Core, Dialect, Shared, Unsolicited};
use crate::net::Connection;
use crate::pipe::{PipeControl, PipeReader, PipeState, PipeWriter};
use crate::time;

/// Where a socket stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SockState {
    /// SIM7600 `CIPOPEN` answered `OK`, the connect is under way.
    Connecting,
    Open,
    /// SIM7600: the peer closed (`+IPCLOSE: <l>,1` sent); unread data stays readable and
    /// the socket goes away when it has been read.
    PeerClosed,
}

/// A message to a socket's watcher.
#[derive(Debug)]
pub(super) enum Request {
    /// Take in everything that has arrived, then acknowledge.
    Drain(oneshot::Sender<()>),
    /// The host read from a full buffer: there is room again.
    Room,
}

/// The network side of an open socket.
#[derive(Debug)]
pub(super) struct SockConn {
    writer: PipeWriter,
    /// Origin → modem.
    down: PipeControl,
    /// Modem → origin.
    up: PipeControl,
    pub(super) requests: mpsc::UnboundedSender<Request>,
}

#[derive(Debug)]
pub(super) struct Socket {
    /// Unique per modem, so a late task never touches a newer socket on the same link.
    pub(super) id: u64,
    pub(super) state: SockState,
    /// Arrived, unread bytes.
    pub(super) buf: VecDeque<u8>,
    /// The data-ready notice will be sent when data next arrives in the empty buffer.
    pub(super) armed: bool,
    pub(super) conn: Option<SockConn>,
    /// Payload bytes the host sent (`+CAACK`).
    pub(super) sent: u64,
}

impl Socket {
    /// Resets both directions (RST): the peer sees a reset, in-flight data is gone.
    pub(super) fn abort(self) {
        if let Some(c) = self.conn {
            c.down.reset();
            c.up.reset();
        }
    }

    pub(super) fn writer(&self) -> Option<PipeWriter> {
        match (&self.conn, self.state) {
            (Some(c), SockState::Open) => Some(c.writer.clone()),
            _ => None,
        }
    }
}

/// While the buffer is full the watcher cannot wait on the pipe (it is readable at once),
/// so it looks for a reset this often.
const FULL_POLL: Duration = Duration::from_millis(10);

impl Shared {
    /// A new socket on `link`, connecting. Returns its id.
    pub(super) fn new_socket(&self, core: &mut Core, link: usize) -> u64 {
        let id = core.next_socket_id;
        core.next_socket_id += 1;
        core.links[link] = Some(Socket {
            id,
            state: SockState::Connecting,
            buf: VecDeque::new(),
            armed: true,
            conn: None,
            sent: 0,
        });
        id
    }

    /// The connect for socket `id` completed: the socket is open and `conn`'s receive side
    /// goes to the watcher (returned with its request queue). If the socket was closed or
    /// dropped meanwhile, the new connection is reset and `None` returned.
    pub(super) fn attach(
        &self,
        link: usize,
        id: u64,
        conn: Connection,
    ) -> Option<(Connection, mpsc::UnboundedReceiver<Request>)> {
        let mut core = self.lock();
        let Some(sock) = core.socket_mut(link, id).filter(|s| s.state == SockState::Connecting) else {
            conn.abort();
            return None;
        };
        let (tx, rx) = mpsc::unbounded_channel();
        sock.conn = Some(SockConn {
            writer: conn.writer.clone(),
            down: conn.reader.control(),
            up: conn.writer.control(),
            requests: tx,
        });
        sock.state = SockState::Open;
        Some((conn, rx))
    }

    /// Drops socket `id` after a failed connect.
    pub(super) fn forget(&self, link: usize, id: u64) {
        let mut core = self.lock();
        if core.socket(link, id).is_some() {
            core.links[link] = None;
        }
    }

    /// The host closes `link`: FIN if everything was read, RST if unread data is thrown
    /// away (as a TCP stack closing a socket with unread data does). `false`: nothing open.
    pub(super) fn close_by_host(&self, core: &mut Core, link: usize) -> bool {
        let Some(sock) = core.links.get_mut(link).and_then(Option::take) else {
            return false;
        };
        core.stats.discarded_bytes += sock.buf.len() as u64;
        if !sock.buf.is_empty() {
            sock.abort();
        } else if let Some(c) = &sock.conn {
            c.writer.close();
        }
        true
    }

    /// The peer's FIN arrived after all its data.
    fn close_by_peer(&self, core: &mut Core, link: usize) {
        let dialect = self.cfg.dialect;
        let Some(sock) = core.links[link].as_mut() else { return };
        if let Some(c) = sock.conn.take() {
            c.writer.close();
        }
        match dialect {
            Dialect::Sim7600 => {
                sock.state = SockState::PeerClosed;
                if sock.buf.is_empty() {
                    core.links[link] = None;
                }
            }
            Dialect::Sim7080 => {
                core.stats.discarded_bytes += sock.buf.len() as u64;
                core.links[link] = None;
            }
        }
        self.queue(core, Unsolicited::Line(dialect.closed_urc(link, true)));
    }

    /// The connection was reset under the socket: unread data is gone.
    fn close_by_reset(&self, core: &mut Core, link: usize) {
        let Some(sock) = core.links[link].take() else { return };
        core.stats.discarded_bytes += sock.buf.len() as u64;
        self.queue(core, Unsolicited::Line(self.cfg.dialect.closed_urc(link, false)));
    }

    /// Whether socket `id`'s buffer is full; `None` if the socket is gone or no longer
    /// watched.
    fn buffer_full(&self, link: usize, id: u64) -> Option<bool> {
        let core = self.lock();
        let sock = core.socket(link, id).filter(|s| s.conn.is_some())?;
        Some(sock.buf.len() >= self.cfg.rx_buffer.max(1))
    }

    /// Moves what has arrived into socket `id`'s buffer (up to its size), raises the
    /// data-ready notice, and handles FIN and reset. `true`: the watcher is done.
    fn drain(&self, link: usize, id: u64, reader: &mut PipeReader) -> bool {
        let mut core = self.lock();
        let cap = self.cfg.rx_buffer.max(1);
        let Some(sock) = core.socket_mut(link, id).filter(|s| s.conn.is_some()) else {
            return true;
        };
        let was_empty = sock.buf.is_empty();
        let mut chunk = [0u8; 4096];
        let mut reset = false;
        loop {
            // With no room this still asks the pipe, which tells a reset apart.
            let room = cap.saturating_sub(sock.buf.len()).min(chunk.len());
            match reader.try_read(&mut chunk[..room]) {
                Ok(0) => break,
                Ok(n) => sock.buf.extend(&chunk[..n]),
                Err(_) => {
                    reset = true;
                    break;
                }
            }
        }
        let ready = was_empty && !sock.buf.is_empty() && sock.armed;
        if ready {
            sock.armed = false;
        }
        if ready {
            self.queue(&mut core, Unsolicited::DataReady { link, id });
        }
        if reset {
            self.close_by_reset(&mut core, link);
            return true;
        }
        let fin = reader.state() == PipeState::Closed
            && reader.available() == 0
            && reader.control().last_arrival_ns() <= time::now_ns();
        if fin {
            self.close_by_peer(&mut core, link);
            return true;
        }
        false
    }
}

/// Fills socket `id`'s buffer from the connection as bytes arrive, until the connection
/// ends or the socket goes away.
pub(super) async fn watch(
    sh: Arc<Shared>,
    link: usize,
    id: u64,
    mut conn: Connection,
    mut requests: mpsc::UnboundedReceiver<Request>,
) {
    enum Wake {
        Pipe,
        Request(Request),
        Gone,
    }
    while let Some(full) = sh.buffer_full(link, id) {
        let wake = if full {
            tokio::select! {
                biased;
                r = requests.recv() => r.map_or(Wake::Gone, Wake::Request),
                _ = time::sleep(FULL_POLL) => Wake::Pipe,
            }
        } else {
            tokio::select! {
                biased;
                _ = conn.reader.readable() => Wake::Pipe,
                r = requests.recv() => r.map_or(Wake::Gone, Wake::Request),
            }
        };
        if matches!(wake, Wake::Gone) {
            break;
        }
        let done = sh.drain(link, id, &mut conn.reader);
        if let Wake::Request(Request::Drain(ack)) = wake {
            let _ = ack.send(());
        }
        if done {
            return;
        }
    }
    // The host closed the socket (or the modem dropped it). Data the peer still sends gets
    // a reset, as a TCP stack answers segments for a socket that no longer exists.
    if conn.reader.state() == PipeState::Open && matches!(conn.reader.readable().await, Ok(true)) {
        conn.abort();
    }
}

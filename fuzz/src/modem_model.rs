//! A modem that answers the driver's commands as `docs/at-dialects.md` says, with the
//! fuzzer choosing everything the contract leaves open: unsolicited lines at any line
//! boundary, line noise, how many bytes each read reply carries, how the UART splits its
//! output, a reply that never comes.
//!
//! It serves one known payload through the dialect's read command and counts every
//! payload byte the UART hands out, so the target can hold the driver to "every byte
//! delivered once, in order, none invented, none dropped".

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;

use arbitrary::Arbitrary;
use embedded_io_async::{ErrorKind, ErrorType, Read, Write};

/// An unsolicited line (or noise) the modem may put between lines.
#[derive(Debug, Clone, Arbitrary)]
pub enum Urc {
    Cereg(u8, u8),
    /// `DST: 0`, network time.
    Dst(u8),
    /// `*PSUTTZ: …`, network time on SIMCom.
    Psuttz(u8),
    Ctzv,
    Rdy,
    SmsDone,
    PbDone,
    CpinReady,
    CfunOne,
    SmsReady,
    Cgev,
    /// A data-ready notice again (spurious, or for data already read).
    DataReady,
    /// SIM7600 only: the peer closed; unread data stays readable.
    RemoteClosed,
    /// Line noise from an alphabet that cannot spell a result code, a reply header or a
    /// prompt, so it can be told from an answer (anything else could forge one).
    Garbage(Vec<u8>),
    /// An empty line.
    Blank,
}

/// What the fuzzer decides for one reply.
#[derive(Debug, Clone, Default, Arbitrary)]
pub struct Knob {
    /// Lines put in at the part boundaries of the reply: `(boundary, line)`.
    pub urcs: Vec<(u8, Urc)>,
    /// Most payload bytes this read reply carries (0: as many as asked).
    pub cap: u16,
    /// UART read size while this reply is handed out (0: whole).
    pub split: u8,
    /// The modem never answers this command.
    pub silent: bool,
}

/// The session the fuzzer plays.
#[derive(Debug, Clone, Arbitrary)]
pub struct Session {
    pub sim7080: bool,
    pub payload: Vec<u8>,
    pub knobs: Vec<Knob>,
    /// Caller buffer sizes for `Socket::read`.
    pub reads: Vec<u16>,
    pub read_block: u16,
    pub boot_noise: Vec<Urc>,
}

const GARBAGE_ALPHABET: &[u8] = b"abcdxyz019 ,:\r\n\x00\x7f\xff\x80\t";

fn urc_text(urc: &Urc, sim7080: bool) -> Vec<u8> {
    let line = |s: &str| format!("\r\n{s}\r\n").into_bytes();
    match urc {
        Urc::Cereg(n, stat) => line(&format!("+CEREG: {},{}", n % 3, stat % 6)),
        Urc::Dst(d) => line(&format!("DST: {}", d % 3)),
        Urc::Psuttz(h) => line(&format!("*PSUTTZ: 26/12/07,{:02}:00:00,\"+04\",0", h % 24)),
        Urc::Ctzv => line("+CTZV: +04,0"),
        Urc::Rdy => line("RDY"),
        Urc::SmsDone => line("SMS DONE"),
        Urc::PbDone => line("PB DONE"),
        Urc::CpinReady => line("+CPIN: READY"),
        Urc::CfunOne => line("+CFUN: 1"),
        Urc::SmsReady => line("SMS Ready"),
        Urc::Cgev => line("+CGEV: EPS PDN ACT 1"),
        Urc::DataReady if sim7080 => line("+CADATAIND: 0"),
        Urc::DataReady => line("+CIPRXGET: 1,0"),
        Urc::RemoteClosed if sim7080 => Vec::new(),
        Urc::RemoteClosed => line("+IPCLOSE: 0,1"),
        Urc::Garbage(g) => g
            .iter()
            .take(40)
            .map(|b| GARBAGE_ALPHABET[usize::from(*b) % GARBAGE_ALPHABET.len()])
            .collect(),
        Urc::Blank => b"\r\n".to_vec(),
    }
}

/// The modem's side: commands in, replies out, payload accounting.
#[derive(Debug)]
pub struct Model {
    pub sim7080: bool,
    pub payload: Vec<u8>,
    /// Payload bytes put into read replies so far.
    pub served: usize,
    knobs: VecDeque<Knob>,
    out: VecDeque<(u8, bool)>,
    split: usize,
    echo: bool,
    line: Vec<u8>,
    /// Raw bytes still expected after a send prompt.
    sending: usize,
    send_total: usize,
    connected: bool,
    notified: bool,
    closed_sent: bool,
    /// Payload bytes the UART has handed to the driver.
    pub handed: usize,
    pub restarts: u32,
}

impl Model {
    pub fn new(s: &Session) -> Self {
        let mut m = Model {
            sim7080: s.sim7080,
            payload: s.payload.clone(),
            served: 0,
            knobs: s.knobs.iter().cloned().collect(),
            out: VecDeque::new(),
            split: 0,
            echo: true,
            line: Vec::new(),
            sending: 0,
            send_total: 0,
            connected: false,
            notified: false,
            closed_sent: false,
            handed: 0,
            restarts: 0,
        };
        for u in s.boot_noise.iter().take(8) {
            if matches!(u, Urc::Rdy) {
                m.restarts += 1;
            }
            let t = urc_text(u, m.sim7080);
            m.push(&t, false);
        }
        m
    }

    fn push(&mut self, bytes: &[u8], payload: bool) {
        self.out.extend(bytes.iter().map(|&b| (b, payload)));
    }

    fn line_part(text: &str) -> Part {
        Part::Text(format!("\r\n{text}\r\n").into_bytes())
    }

    /// Sends `parts`, with the knob's lines at its boundaries.
    fn reply(&mut self, parts: Vec<Part>, knob: &Knob) {
        if knob.split != 0 {
            self.split = usize::from(knob.split);
        }
        let boundaries = parts.len() + 1;
        let mut urcs: Vec<(usize, Vec<u8>)> = Vec::new();
        for (at, u) in knob.urcs.iter().take(6) {
            if matches!(u, Urc::Rdy) {
                self.restarts += 1;
            }
            urcs.push((usize::from(*at) % boundaries, urc_text(u, self.sim7080)));
        }
        for i in 0..boundaries {
            for (_, t) in urcs.iter().filter(|(at, _)| *at == i) {
                let t = t.clone();
                self.push(&t, false);
            }
            if let Some(p) = parts.get(i) {
                match p {
                    Part::Text(t) => self.push(t, false),
                    Part::Payload { head, body, tail } => {
                        self.push(head, false);
                        self.push(body, true);
                        self.push(tail, false);
                    }
                }
            }
        }
    }

    fn command(&mut self, cmd: &[u8]) {
        let knob = self.knobs.pop_front().unwrap_or_default();
        let text = String::from_utf8_lossy(cmd).into_owned();
        let mut parts = Vec::new();
        if self.echo {
            parts.push(Part::Text([cmd, b"\r"].concat()));
        }
        if knob.silent {
            self.reply(parts, &knob);
            return;
        }
        let ok = || Self::line_part("OK");
        let t = text.as_str();
        match t {
            "ATE0" => {
                self.echo = false;
                parts.push(ok());
            }
            "AT+CGMM" => {
                let model = if self.sim7080 { "SIM7080G" } else { "SIMCOM_SIM7600G-H" };
                parts.push(Self::line_part(model));
                parts.push(ok());
            }
            "AT+CPIN?" => {
                parts.push(Self::line_part("+CPIN: READY"));
                parts.push(ok());
            }
            "AT+CSQ" => {
                parts.push(Self::line_part("+CSQ: 21,99"));
                parts.push(ok());
            }
            "AT+CEREG?" => {
                parts.push(Self::line_part("+CEREG: 0,1"));
                parts.push(ok());
            }
            "AT+COPS?" => {
                parts.push(Self::line_part("+COPS: 0,0,\"Fuzz Mobile\",7"));
                parts.push(ok());
            }
            "AT+NETOPEN" => {
                parts.push(ok());
                parts.push(Self::line_part("+NETOPEN: 0"));
            }
            "AT+NETOPEN?" => {
                parts.push(Self::line_part("+NETOPEN: 1"));
                parts.push(ok());
            }
            "AT+CNACT=0,1" => {
                parts.push(ok());
                parts.push(Self::line_part("+APP PDP: 0,ACTIVE"));
            }
            "AT+CNACT?" => {
                parts.push(Self::line_part("+CNACT: 0,1,\"10.0.0.2\""));
                parts.push(ok());
            }
            "AT+CASTATE?" => {
                let s = if self.connected { 1 } else { 0 };
                parts.push(Self::line_part(&format!("+CASTATE: 0,{s}")));
                parts.push(ok());
            }
            "AT+CIPRXGET=4,0" => {
                let unread = self.payload.len() - self.served;
                parts.push(Self::line_part(&format!("+CIPRXGET: 4,0,{unread}")));
                parts.push(ok());
            }
            "AT+CIPCLOSE=0" | "AT+CACLOSE=0" => {
                self.connected = false;
                parts.push(ok());
                if !self.sim7080 {
                    parts.push(Self::line_part("+CIPCLOSE: 0,0"));
                }
            }
            _ if t.starts_with("AT+CIPOPEN=") => {
                self.connected = true;
                parts.push(ok());
                parts.push(Self::line_part("+CIPOPEN: 0,0"));
            }
            _ if t.starts_with("AT+CAOPEN=") => {
                self.connected = true;
                parts.push(Self::line_part("+CAOPEN: 0,0"));
                parts.push(ok());
            }
            _ if t.starts_with("AT+CIPSEND=0,") || t.starts_with("AT+CASEND=0,") => {
                let n = t.rsplit(',').next().and_then(|n| n.parse::<usize>().ok()).unwrap_or(0);
                parts.push(Part::Text(b"\r\n>".to_vec()));
                self.sending = n;
                self.send_total = n;
                if n == 0 {
                    self.sent(0, &mut parts);
                }
            }
            _ if t.starts_with("AT+CIPRXGET=2,0,") || t.starts_with("AT+CARECV=0,") => {
                let asked = t.rsplit(',').next().and_then(|n| n.parse::<usize>().ok()).unwrap_or(0);
                let unread = self.payload.len() - self.served;
                let cap = if knob.cap == 0 {
                    usize::MAX
                } else {
                    usize::from(knob.cap)
                };
                let k = asked.min(unread).min(cap);
                let body = self.payload[self.served..self.served + k].to_vec();
                self.served += k;
                let rest = unread - k;
                if self.sim7080 {
                    if k == 0 {
                        parts.push(Self::line_part("+CARECV: 0"));
                    } else {
                        parts.push(Part::Payload {
                            head: format!("\r\n+CARECV: {k},").into_bytes(),
                            body,
                            tail: b"\r\n".to_vec(),
                        });
                    }
                    parts.push(ok());
                } else if k == 0 {
                    parts.push(Self::line_part("+IP ERROR: No data"));
                    parts.push(Self::line_part("ERROR"));
                } else {
                    parts.push(Part::Payload {
                        head: format!("\r\n+CIPRXGET: 2,0,{k},{rest}\r\n").into_bytes(),
                        body,
                        tail: Vec::new(),
                    });
                    parts.push(ok());
                }
                if rest == 0 && self.served == self.payload.len() {
                    self.closing(&mut parts);
                }
            }
            _ => parts.push(ok()),
        }
        self.reply(parts, &knob);
    }

    /// The request went out: the origin answers with the payload, then closes.
    fn sent(&mut self, n: usize, parts: &mut Vec<Part>) {
        parts.push(Self::line_part("OK"));
        if !self.sim7080 {
            parts.push(Self::line_part(&format!("+CIPSEND: 0,{n},{n}")));
        }
        if !self.notified && self.served < self.payload.len() {
            self.notified = true;
            parts.push(Self::line_part(if self.sim7080 {
                "+CADATAIND: 0"
            } else {
                "+CIPRXGET: 1,0"
            }));
        }
        if self.served == self.payload.len() {
            self.closing(parts);
        }
    }

    fn closing(&mut self, parts: &mut Vec<Part>) {
        if !self.closed_sent {
            self.closed_sent = true;
            parts.push(Self::line_part(if self.sim7080 {
                "+CASTATE: 0,0"
            } else {
                "+IPCLOSE: 0,1"
            }));
        }
    }

    fn take_written(&mut self, buf: &[u8]) {
        for &b in buf {
            if self.sending > 0 {
                self.sending -= 1;
                if self.sending == 0 {
                    let knob = self.knobs.pop_front().unwrap_or_default();
                    let mut parts = Vec::new();
                    self.sent(self.send_total, &mut parts);
                    self.reply(parts, &knob);
                }
                continue;
            }
            if b == b'\r' {
                let cmd = std::mem::take(&mut self.line);
                self.command(&cmd);
            } else if self.line.len() < 600 {
                self.line.push(b);
            }
        }
    }
}

#[derive(Debug)]
enum Part {
    Text(Vec<u8>),
    /// A read reply's header, payload and what follows on the same line: one piece, since
    /// nothing may come between a header and its payload.
    Payload {
        head: Vec<u8>,
        body: Vec<u8>,
        tail: Vec<u8>,
    },
}

/// The UART end of a [`Model`]; clones share the model, so the target keeps one to check
/// what the driver was handed.
#[derive(Debug, Clone)]
pub struct ModelUart {
    pub model: Rc<RefCell<Model>>,
}

impl ModelUart {
    pub fn new(s: &Session) -> Self {
        ModelUart {
            model: Rc::new(RefCell::new(Model::new(s))),
        }
    }
}

impl ErrorType for ModelUart {
    type Error = ErrorKind;
}

impl Read for ModelUart {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, ErrorKind> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.model.borrow().out.is_empty() {
            core::future::pending::<()>().await;
        }
        let mut m = self.model.borrow_mut();
        let cap = if m.split == 0 {
            buf.len()
        } else {
            m.split.min(buf.len())
        };
        let n = cap.min(m.out.len());
        for slot in buf.iter_mut().take(n) {
            let (b, payload) = m.out.pop_front().unwrap_or((0, false));
            *slot = b;
            if payload {
                m.handed += 1;
            }
        }
        Ok(n)
    }
}

impl Write for ModelUart {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, ErrorKind> {
        self.model.borrow_mut().take_written(buf);
        Ok(buf.len())
    }

    async fn flush(&mut self) -> Result<(), ErrorKind> {
        Ok(())
    }
}

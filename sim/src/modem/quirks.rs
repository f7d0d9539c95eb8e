//! Firmware quirks from real modem logs, switched on per scenario: notices inside a reply,
//! restarts that print no `RDY`, connects answered after a long stall. The settings that
//! hold for a whole run (commands that answer a plain `ERROR`, the radio the modem
//! registered on, echo that `ATE0` does not turn off) are in
//! [`super::ModemEmulatorConfig`].

use std::time::Duration;

use super::{Core, ModemHandle, Unsolicited};

/// Where in the answer to a command an injected notice goes. Every point is a line boundary,
/// where the contract lets a notice land; none is inside a payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyPoint {
    /// Before the echo (with echo off: before anything else of the answer).
    BeforeEcho,
    /// After the echo, while the modem works on the command.
    AfterEcho,
    /// After the information lines (or a read's payload), before `OK` / `ERROR`.
    BeforeFinal,
    /// Right after the final result, before anything else.
    AfterFinal,
}

/// Something waiting for the answer to a command.
#[derive(Debug, Clone)]
pub(super) struct InReply {
    /// The command text it goes with, from `AT` (case-insensitive prefix).
    command: String,
    pub(super) at: ReplyPoint,
    pub(super) what: Injected,
}

#[derive(Debug, Clone)]
pub(super) enum Injected {
    /// A notice, framed `\r\n<line>\r\n`.
    Line(String),
    /// The modem restarts there (the rest of the answer is never sent), printing this.
    Restart(BootOutput),
}

/// What the modem prints when it restarts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum BootOutput {
    /// `RDY` and the dialect's boot lines.
    #[default]
    Lines,
    /// The boot lines without `RDY` (SIM7080: `+CFUN: 1`, `+CPIN: READY`, `SMS Ready`).
    WithoutRdy,
    /// Only these bytes (a restart whose output is lost to line noise).
    Garbage(Vec<u8>),
}

/// The next connect's stall.
#[derive(Debug, Clone, Copy)]
pub(super) struct Stall {
    pub(super) delay: Duration,
    /// The result code to end with instead of connecting.
    pub(super) result: Option<u8>,
}

impl ModemHandle {
    /// Puts `line` (framed `\r\n<line>\r\n`) at `at` in the answer to the next command whose
    /// text starts with `command` (e.g. `"AT+CGMM"`). Once.
    pub fn inject_in_reply(&self, command: &str, at: ReplyPoint, line: &str) {
        self.shared.lock().in_reply.push(InReply {
            command: command.to_string(),
            at,
            what: Injected::Line(line.to_string()),
        });
    }

    /// The modem restarts at `at` in its answer to the next command that starts with
    /// `command`, printing `output` when it is up again. Once.
    pub fn restart_in_reply(&self, command: &str, at: ReplyPoint, output: BootOutput) {
        self.shared.lock().in_reply.push(InReply {
            command: command.to_string(),
            at,
            what: Injected::Restart(output),
        });
    }

    /// Reboots like [`ModemHandle::reset`], printing `output` instead of the usual lines.
    pub fn reset_printing(&self, output: BootOutput) {
        let mut core = self.shared.lock();
        self.shared.reboot_state(&mut core);
        core.boot_output = output;
        drop(core);
        self.shared.reboot.notify_one();
    }

    /// The next connect (`CAOPEN`, `CIPOPEN`) takes `delay` before its result; with
    /// `result`, it then fails with that code (`+CAOPEN: 0,2` after a 75 s stall is in
    /// the SIM7080 logs) instead of connecting. A SIM7080 holds its answer, so commands sent
    /// meanwhile wait and are answered after it; a SIM7600 has answered `OK` already.
    pub fn stall_next_connect(&self, delay: Duration, result: Option<u8>) {
        self.shared.lock().stall = Some(Stall { delay, result });
    }
}

impl Core {
    /// The notice waiting for the command `text`, if any.
    pub(super) fn take_in_reply(&mut self, text: &[u8]) -> Option<InReply> {
        let i = self.in_reply.iter().position(|r| {
            text.len() >= r.command.len() && text[..r.command.len()].eq_ignore_ascii_case(r.command.as_bytes())
        })?;
        Some(self.in_reply.remove(i))
    }

    /// Queues what this boot prints (`lines`, or what [`BootOutput`] says instead) in front
    /// of everything else.
    pub(super) fn queue_boot(&mut self, lines: &[&str]) {
        match std::mem::take(&mut self.boot_output) {
            BootOutput::Lines => push_lines(self, lines.iter().copied()),
            BootOutput::WithoutRdy => push_lines(self, lines.iter().copied().filter(|l| *l != "RDY")),
            BootOutput::Garbage(bytes) => self.out.push_front(Unsolicited::Raw(bytes)),
        }
    }
}

/// Lines injected during the boot wait behind the boot lines.
fn push_lines<'a>(core: &mut Core, lines: impl DoubleEndedIterator<Item = &'a str>) {
    for l in lines.rev() {
        core.out.push_front(Unsolicited::Line(l.to_string()));
    }
}

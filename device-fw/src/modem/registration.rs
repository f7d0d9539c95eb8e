//! Waiting for the SIM and for the network to take the modem.

use embedded_io_async::{Read, Write};

use super::at::{AtError, Take};
use super::reply::{after, registration_stat, set_text};
use super::{Modem, ModemError, POLL_US, us_to_secs};
use crate::clock::Clock;

impl<U: Read + Write, C: Clock> Modem<U, C> {
    /// `AT+CPIN?` until `READY`; `SIM busy` (early in boot) is retried.
    pub(super) async fn sim_ready(&mut self) -> Result<(), ModemError> {
        let end = self.at.deadline(self.cfg.boot_timeout_us);
        loop {
            let mut state: heapless::String<48> = heapless::String::new();
            let st = &mut state;
            let res = self
                .at
                .command(
                    format_args!("AT+CPIN?"),
                    self.cfg.command_timeout_us,
                    &mut |line| match after(line, b"+CPIN:") {
                        Some(rest) => {
                            set_text(st, rest);
                            Take::Yes
                        }
                        None => Take::No,
                    },
                )
                .await;
            let last = match res {
                Ok(()) if state == "READY" => return Ok(()),
                Ok(()) if state.is_empty() => return Err(self.protocol("AT+CPIN?")),
                Ok(()) => return Err(ModemError::SimLocked(state)),
                // `SIM busy` and the like come as `+CME ERROR`; a plain `ERROR` is the
                // command itself refused, which asking again does not change.
                Err(AtError::Rejected) if !self.at.verbose_error => {
                    return Err(self.at_error("AT+CPIN?", AtError::Rejected));
                }
                Err(AtError::Rejected) => self.at.err_text.clone(),
                Err(e) => return Err(self.at_error("AT+CPIN?", e)),
            };
            if self.at.now_us() >= end {
                return Err(ModemError::SimNotReady {
                    reply: last,
                    secs: us_to_secs(self.cfg.boot_timeout_us),
                });
            }
            // `SIM busy`: the modem announces `+CPIN: READY` when done.
            self.at.events.sim_ready = false;
            let wake = end.min(self.at.now_us() + POLL_US);
            self.idle(wake, |ev| ev.sim_ready).await?;
        }
    }

    /// `AT+CEREG?` until registered (home or roaming) on LTE, or, while LTE is not,
    /// `AT+CGREG?` and `AT+CREG?` for 2G/3G. The profile has no setting for the radios a
    /// module may use, so registration on any of them is taken: a module that falls back
    /// from LTE in poor coverage reports it only there.
    pub(super) async fn registered(&mut self) -> Result<(), ModemError> {
        let end = self.at.deadline(self.cfg.register_timeout_us);
        loop {
            let lte = match self.registration(0).await? {
                Some(1 | 5) => return Ok(()),
                // The subscription is refused; the other radios use the same one.
                Some(3) => return Err(ModemError::RegistrationDenied),
                Some(stat) => stat,
                None => return Err(self.protocol("AT+CEREG?")),
            };
            for radio in 1..RADIOS.len() {
                if let Some(1 | 5) = self.registration(radio).await? {
                    return Ok(());
                }
            }
            if self.at.now_us() >= end {
                return Err(ModemError::NotRegistered {
                    stat: lte,
                    secs: us_to_secs(self.cfg.register_timeout_us),
                });
            }
            let wake = end.min(self.at.now_us() + POLL_US);
            self.idle(wake, |_| false).await?;
        }
    }

    /// The `<stat>` one registration query answers (`None`: no answer line). A 2G/3G query
    /// the firmware refuses counts as not registered there.
    async fn registration(&mut self, radio: usize) -> Result<Option<u8>, ModemError> {
        let (name, prefix) = RADIOS[radio];
        let mut stat = None;
        let res = self
            .at
            .command(
                format_args!("{name}"),
                self.cfg.command_timeout_us,
                &mut |line| match registration_stat(line, prefix) {
                    Some(s) if stat.is_none() => {
                        stat = Some(s);
                        Take::Yes
                    }
                    _ => Take::No,
                },
            )
            .await;
        match res {
            Ok(()) => Ok(stat),
            Err(AtError::Rejected) if radio > 0 => Ok(None),
            Err(e) => Err(self.at_error(name, e)),
        }
    }
}

/// Registration queries and their answer prefixes: LTE (EPS), 2G/3G packet, 2G/3G circuit.
const RADIOS: [(&str, &[u8]); 3] = [
    ("AT+CEREG?", b"+CEREG:"),
    ("AT+CGREG?", b"+CGREG:"),
    ("AT+CREG?", b"+CREG:"),
];

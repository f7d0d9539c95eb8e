//! Commands both dialects answer alike: echo, errors, identity, SIM, registration, rate.

use super::at::{self, Command, Form, line};
use super::{IPR_RATES, IprBehaviour, RegisteredOn, Session, Stop};

impl Session<'_> {
    /// Commands both dialects answer alike. `Ok(false)`: not one of them.
    pub(super) async fn common(&mut self, cmd: &Command) -> Result<bool, Stop> {
        let cfg = &self.sh.cfg;
        let reply = match (cmd.name.as_str(), &cmd.form) {
            ("", Form::Exec) => vec![at::ok()],
            ("E", Form::Set(_)) => match cmd.num(0) {
                Some(v @ 0..=1) => {
                    if !(cfg.keeps_echo && v == 0) {
                        self.sh.lock().echo = v == 1;
                    }
                    vec![at::ok()]
                }
                _ => vec![at::error()],
            },
            ("+CMEE", Form::Set(_)) => match cmd.num(0) {
                Some(v @ 0..=2) => {
                    self.sh.lock().cmee = v as u8;
                    vec![at::ok()]
                }
                _ => vec![at::error()],
            },
            ("+CMEE", Form::Read) => vec![line(&format!("+CMEE: {}", self.sh.lock().cmee)), at::ok()],
            ("+CGMM" | "+GMM", Form::Exec) => vec![line(cfg.dialect.model()), at::ok()],
            ("+CPIN", Form::Read) => vec![line("+CPIN: READY"), at::ok()],
            ("+CSQ", Form::Exec) => vec![line(&format!("+CSQ: {},99", cfg.rssi)), at::ok()],
            ("+CEREG", Form::Read) => {
                let core = self.sh.lock();
                let stat = if cfg.registered_on == RegisteredOn::Lte {
                    core.reg_stat
                } else {
                    0
                };
                vec![line(&format!("+CEREG: {},{stat}", core.cereg_mode)), at::ok()]
            }
            ("+CEREG", Form::Set(_)) => match cmd.num(0) {
                Some(v @ 0..=1) => {
                    self.sh.lock().cereg_mode = v as u8;
                    vec![at::ok()]
                }
                _ => vec![at::error()],
            },
            ("+CGREG", Form::Read) => {
                let stat = if cfg.registered_on == RegisteredOn::CircuitOnly {
                    0
                } else {
                    self.sh.lock().reg_stat
                };
                vec![line(&format!("+CGREG: 0,{stat}")), at::ok()]
            }
            ("+CREG", Form::Read) => vec![line(&format!("+CREG: 0,{}", self.sh.lock().reg_stat)), at::ok()],
            ("+CGATT", Form::Read) => {
                let attached = self.sh.lock().registered();
                vec![line(&format!("+CGATT: {}", u8::from(attached))), at::ok()]
            }
            // Not registered: no operator, only the mode (3GPP TS 27.007 §7.3).
            ("+COPS", Form::Read) if !self.sh.lock().registered() => vec![line("+COPS: 0"), at::ok()],
            ("+COPS", Form::Read) => vec![line(&format!("+COPS: 0,0,\"{}\",7", cfg.operator)), at::ok()],
            ("+CGDCONT", Form::Set(args)) if args.len() >= 3 && cmd.num(0).is_some() => {
                self.sh.lock().apn = cmd.text(2).unwrap_or_default().to_string();
                vec![at::ok()]
            }
            ("+CGDCONT", Form::Read) => {
                let apn = self.sh.lock().apn.clone();
                vec![line(&format!("+CGDCONT: 1,\"IP\",\"{apn}\"")), at::ok()]
            }
            ("+IPR", Form::Read) => vec![line(&format!("+IPR: {}", self.sh.lock().baud)), at::ok()],
            ("+IPR", Form::Set(args)) if args.len() == 1 => match (cfg.ipr, cmd.num(0)) {
                (IprBehaviour::Switches, Some(rate)) if IPR_RATES.contains(&rate) => {
                    // The OK goes out at the old rate; then the UART retunes.
                    self.reply(vec![at::ok()]).await?;
                    self.uart.set_baud(rate as u32);
                    self.sh.lock().baud = rate as u32;
                    return Ok(true);
                }
                (IprBehaviour::Ignores, Some(_)) => vec![at::ok()],
                _ => vec![at::error()],
            },
            ("+CFUN", Form::Read) => vec![line("+CFUN: 1"), at::ok()],
            ("+CFUN", Form::Set(args)) => match (cmd.num(0), cmd.num(1), args.len()) {
                (Some(1), _, 1) => vec![at::ok()],
                (Some(1), Some(1), 2) => {
                    self.reply(vec![at::ok()]).await?;
                    return Err(self.reboot());
                }
                _ => vec![at::error()],
            },
            _ => return Ok(false),
        };
        self.reply(reply).await?;
        Ok(true)
    }
}

//! Reading single lines: what a notice looks like, what an answer looks like, and fields.
//!
//! A modem may put a notice (time zone, network, boot) between a command and its answer, so
//! no parser may take "the next line" for the answer. Prefixed answers (`+CSQ: …`) are
//! told apart by their prefix; answers that are a bare line (`AT+CGMM`, `AT+CGMI`, `AT+CGMR`,
//! `AT+CGSN`, `AT+CIMI`) by rejecting the shapes notices take: a line that starts with a
//! sign (`+CTZV: …`, `*PSUTTZ: …`, `^SYSSTART`), an upper-case word and a colon (`DST: 1`),
//! or one of the few plain-text boot lines (`RDY`, `SMS Ready`, `PB DONE`, …).

/// An unsolicited result, parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Urc {
    /// `RDY`: the modem rebooted.
    Ready,
    /// `+CPIN: READY`: the SIM is ready; outside bring-up, also a restart that printed no `RDY`.
    SimReady,
    /// `+CFUN: 1`, `SMS Ready`, `Call Ready`: printed once per boot, right after `RDY`.
    Booted,
    /// Time, network and message notices that change nothing the driver keeps
    /// (`SMS DONE`, `PB DONE` may come many seconds after the boot, so they are here too).
    Notice,
    DataReady(u16),
    IpClose(u16, u16),
    SocketState(u16, u16),
    SocketClosed(u16),
    NetworkDown,
    PdpActive,
    NetOpen(u16),
    Open(u16, u16),
    CloseDone(u16),
    /// `+CCHSTART: <err>`: the SSL service started (0) or not.
    CchStart(u16),
    Other,
}

/// The plain-text notices (no `NAME:` shape), which a bare-line answer must never be taken for.
pub(crate) fn plain_notice(line: &[u8]) -> Option<Urc> {
    match line {
        b"RDY" => Some(Urc::Ready),
        b"SMS Ready" | b"Call Ready" => Some(Urc::Booted),
        b"SMS DONE" | b"PB DONE" => Some(Urc::Notice),
        _ => None,
    }
}

/// Whether a line has the shape of a notice: a sign then a name and a colon (`+CIEV: …`,
/// `*PSUTTZ: …`, `^SYSSTART`), or an upper-case word and a colon (`DST: 1`). Model names,
/// revisions (`Revision:1951B08SIM7080`, mixed case), IMEIs and IMSIs have neither shape.
pub(crate) fn notice_shaped(line: &[u8]) -> bool {
    match line.first() {
        Some(b'+' | b'*' | b'^' | b'#' | b'$' | b'%') => true,
        Some(_) => match line.iter().position(|&b| b == b':') {
            Some(colon) => line[..colon].iter().all(|b| b.is_ascii_uppercase()),
            None => false,
        },
        None => false,
    }
}

/// A bare-line answer (`AT+CGMM` and the like): any line that is not a notice.
pub(crate) fn bare_answer(line: &[u8]) -> bool {
    plain_notice(line).is_none() && !notice_shaped(line)
}

/// The `<stat>` of a registration query answer `<prefix> <n>,<stat>[,…]`. The notice form
/// (`+CEREG: <stat>[,"<tac>",…]`, sent when the modem has `AT+CEREG=1` or `2` stored) has a
/// single number or a quoted second field, and is not an answer.
pub(crate) fn registration_stat(line: &[u8], prefix: &[u8]) -> Option<u8> {
    let mut f = Fields(after(line, prefix)?);
    f.num()?;
    f.num().and_then(|s| u8::try_from(s).ok())
}

/// Whether an error text says that the operation is not allowed (`+CME ERROR: 3` or its
/// verbose form): on a socket the driver holds open, the modem no longer knows it.
pub(crate) fn not_allowed(text: &[u8]) -> bool {
    text == b"3" || text.eq_ignore_ascii_case(b"operation not allowed")
}

pub(crate) enum Header {
    Found { len: usize, header: usize },
    NeedMore,
    No,
}

/// Looks for `+CARECV: <n>,` at the start of `buf`. Payload bytes follow the comma, so the
/// header must be found before the buffer is searched for a line end.
pub(crate) fn carecv_header(buf: &[u8]) -> Header {
    const P: &[u8] = b"+CARECV: ";
    let n = buf.len().min(P.len());
    if buf[..n] != P[..n] {
        return Header::No;
    }
    if buf.len() <= P.len() {
        return Header::NeedMore;
    }
    let mut len = 0usize;
    let mut digits = 0;
    for (i, &b) in buf[P.len()..].iter().enumerate() {
        match b {
            b'0'..=b'9' if digits < 6 => {
                len = len * 10 + usize::from(b - b'0');
                digits += 1;
            }
            b',' if digits > 0 => {
                return Header::Found {
                    len,
                    header: P.len() + i + 1,
                };
            }
            _ => return Header::No,
        }
    }
    Header::NeedMore
}

pub(crate) fn parse_urc(line: &[u8]) -> Option<Urc> {
    let (name, rest) = split_name(line)?;
    let mut f = Fields(rest);
    let urc = match name {
        b"+CPIN" if trim(rest) == b"READY" => Urc::SimReady,
        b"+CFUN" if trim(rest) == b"1" => Urc::Booted,
        b"+CFUN" | b"+CGEV" | b"*PSUTTZ" | b"+CTZV" | b"+CTZE" | b"DST" | b"+CIEV" | b"+CMTI" => Urc::Notice,
        b"+CIPRXGET" => match (f.num(), f.num(), f.next()) {
            (Some(1), Some(link), None) => Urc::DataReady(link),
            _ => return None,
        },
        b"+CADATAIND" => Urc::DataReady(f.num()?),
        b"+IPCLOSE" => Urc::IpClose(f.num()?, f.num().unwrap_or(0)),
        b"+CASTATE" => Urc::SocketState(f.num()?, f.num()?),
        b"+CACLOSE" => match (f.num(), f.next()) {
            (Some(cid), None) => Urc::SocketClosed(cid),
            _ => return None,
        },
        b"+CIPEVENT" => Urc::NetworkDown,
        b"+APP PDP" => {
            let state = trim(rest.rsplit(|&b| b == b',').next().unwrap_or(rest));
            let cid = if rest.contains(&b',') { f.num()? } else { 0 };
            match (cid, state) {
                (0, b"ACTIVE") => Urc::PdpActive,
                (0, b"DEACTIVE") => Urc::NetworkDown,
                _ => Urc::Other,
            }
        }
        b"+NETOPEN" => match (f.num(), f.next()) {
            (Some(err), None) => Urc::NetOpen(err),
            _ => return None,
        },
        b"+CIPOPEN" | b"+CAOPEN" => Urc::Open(f.num()?, f.num()?),
        b"+CIPCLOSE" => match (f.num(), f.num(), f.next()) {
            (Some(link), Some(_), None) => Urc::CloseDone(link),
            _ => return None,
        },
        b"+CIPSEND" | b"+CASEND" => Urc::Other,
        // The SIM7600 SSL client (`AT+CCH*`), session 0 taking the place of link 0.
        b"+CCHOPEN" => Urc::Open(f.num()?, f.num()?),
        b"+CCHEVENT" => match (f.num(), f.next()) {
            (Some(session), Some(b"RECV EVENT")) => Urc::DataReady(session),
            _ => Urc::Other,
        },
        b"+CCH_PEER_CLOSED" => Urc::IpClose(f.num()?, 1),
        b"+CCH_RECV_CLOSED" => Urc::IpClose(f.num()?, 2),
        b"+CCHCLOSE" => Urc::CloseDone(f.num()?),
        b"+CCHSTART" => Urc::CchStart(f.num()?),
        // The service stopped under us (network lost): a new bring-up sets it up again.
        b"+CCH" if trim(rest) == b"CCH STOP" => Urc::NetworkDown,
        b"+CCHSTOP" => Urc::Other,
        _ => return None,
    };
    Some(urc)
}

/// `+NAME: rest` → (`+NAME`, `rest`).
pub(crate) fn split_name(line: &[u8]) -> Option<(&[u8], &[u8])> {
    let colon = line.iter().position(|&b| b == b':')?;
    Some((&line[..colon], trim(&line[colon + 1..])))
}

/// The part after `prefix` (e.g. `+CSQ:`), trimmed, if the line starts with it.
pub(crate) fn after<'a>(line: &'a [u8], prefix: &[u8]) -> Option<&'a [u8]> {
    line.strip_prefix(prefix).map(trim)
}

pub(crate) fn trim(s: &[u8]) -> &[u8] {
    s.trim_ascii()
}

/// Comma-separated fields of an information line.
#[derive(Debug)]
pub(crate) struct Fields<'a>(pub &'a [u8]);

impl<'a> Fields<'a> {
    /// The next field, trimmed; `None` at the end.
    #[allow(clippy::should_implement_trait)]
    pub(crate) fn next(&mut self) -> Option<&'a [u8]> {
        if self.0.is_empty() {
            return None;
        }
        let (field, rest) = match self.0.iter().position(|&b| b == b',') {
            Some(i) => (&self.0[..i], &self.0[i + 1..]),
            None => (self.0, &[][..]),
        };
        self.0 = rest;
        Some(trim(field))
    }

    /// The next field as a number.
    pub(crate) fn num(&mut self) -> Option<u16> {
        parse_num(self.next()?).and_then(|n| u16::try_from(n).ok())
    }

    /// The next field as a larger number.
    pub(crate) fn num32(&mut self) -> Option<u32> {
        parse_num(self.next()?)
    }
}

pub(crate) fn parse_num(s: &[u8]) -> Option<u32> {
    if s.is_empty() || s.len() > 9 {
        return None;
    }
    s.iter()
        .try_fold(0u32, |n, &b| b.is_ascii_digit().then(|| n * 10 + u32::from(b - b'0')))
}

/// Copies as much of `src` (ASCII by construction) as fits.
pub(crate) fn set_text<const N: usize>(dst: &mut heapless::String<N>, src: &[u8]) {
    dst.clear();
    for &b in src.iter().take(N) {
        // Lines reaching here are printable ASCII; anything else becomes '?'.
        let c = if (0x20..=0x7e).contains(&b) { b as char } else { '?' };
        let _ = dst.push(c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urcs_parse() {
        assert_eq!(parse_urc(b"+CIPRXGET: 1,0"), Some(Urc::DataReady(0)));
        assert_eq!(parse_urc(b"+CIPRXGET: 1,3"), Some(Urc::DataReady(3)));
        assert_eq!(parse_urc(b"+CIPRXGET: 2,0,5,0"), None);
        assert_eq!(parse_urc(b"+IPCLOSE: 0,1"), Some(Urc::IpClose(0, 1)));
        assert_eq!(parse_urc(b"+CASTATE: 0,0"), Some(Urc::SocketState(0, 0)));
        assert_eq!(parse_urc(b"+APP PDP: 0,ACTIVE"), Some(Urc::PdpActive));
        assert_eq!(parse_urc(b"+APP PDP: ACTIVE"), Some(Urc::PdpActive));
        assert_eq!(parse_urc(b"+APP PDP: 0,DEACTIVE"), Some(Urc::NetworkDown));
        assert_eq!(parse_urc(b"+CIPCLOSE: 0,1,0,0,0,0,0,0,0,0"), None);
        assert_eq!(parse_urc(b"+CIPCLOSE: 0,0"), Some(Urc::CloseDone(0)));
        assert_eq!(parse_urc(b"+NETOPEN: 0"), Some(Urc::NetOpen(0)));
        assert_eq!(
            parse_urc(b"+CIPEVENT: NETWORK CLOSED UNEXPECTEDLY"),
            Some(Urc::NetworkDown)
        );
        assert_eq!(parse_urc(b"+CFUN: 1"), Some(Urc::Booted));
        assert_eq!(parse_urc(b"+CFUN: 0"), Some(Urc::Notice));
        assert_eq!(parse_urc(b"DST: 0"), Some(Urc::Notice));
        assert_eq!(parse_urc(b"*PSUTTZ: 24/12/07,06:41:32\",\"+04\",0"), Some(Urc::Notice));
    }

    #[test]
    fn notices_are_not_bare_answers() {
        for notice in [
            &b"DST: 0"[..],
            b"*PSUTTZ: 2024,12,7,6,41,32,\"+04\",0",
            b"+CTZV: +04,0",
            b"+CIEV: 10,\"26201\",\"1NCE\"",
            b"^SYSSTART",
            b"RDY",
            b"SMS Ready",
            b"Call Ready",
            b"PB DONE",
            b"SMS DONE",
        ] {
            assert!(!bare_answer(notice), "{}", notice.escape_ascii());
        }
        for answer in [
            &b"SIMCOM_SIM7600G-H"[..],
            b"SIM7080G",
            b"SIMCOM INCORPORATED",
            b"Revision:1951B08SIM7080",
            b"861234567890123",
        ] {
            assert!(bare_answer(answer), "{}", answer.escape_ascii());
        }
    }

    #[test]
    fn registration_answers_and_notices() {
        assert_eq!(registration_stat(b"+CEREG: 0,1", b"+CEREG:"), Some(1));
        assert_eq!(
            registration_stat(b"+CGREG: 2,5,\"1A2B\",\"01A2B3C\",2", b"+CGREG:"),
            Some(5)
        );
        // Notice forms (`AT+CEREG=1` / `=2` stored in the modem).
        assert_eq!(registration_stat(b"+CEREG: 1", b"+CEREG:"), None);
        assert_eq!(registration_stat(b"+CEREG: 1,\"1A2B\",\"01A2B3C\",7", b"+CEREG:"), None);
        assert_eq!(registration_stat(b"+CREG: 0,1", b"+CEREG:"), None);
    }

    #[test]
    fn carecv_header_needs_the_comma() {
        assert!(matches!(carecv_header(b"+CAR"), Header::NeedMore));
        assert!(matches!(carecv_header(b"+CARECV: 14"), Header::NeedMore));
        assert!(matches!(
            carecv_header(b"+CARECV: 14,\r\nOK"),
            Header::Found { len: 14, header: 12 }
        ));
        assert!(matches!(carecv_header(b"+CARECV: 0\r\n"), Header::No));
        assert!(matches!(carecv_header(b"+CASTATE: 0,0\r\n"), Header::No));
    }

    #[test]
    fn numbers() {
        assert_eq!(parse_num(b"1460"), Some(1460));
        assert_eq!(parse_num(b""), None);
        assert_eq!(parse_num(b"1a"), None);
        let mut f = Fields(b"2,0,5, 11");
        assert_eq!(
            (f.num(), f.num(), f.num32(), f.num32(), f.next()),
            (Some(2), Some(0), Some(5), Some(11), None)
        );
    }
}

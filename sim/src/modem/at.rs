//! Command lines in, framed lines out.

/// `\r\n<text>\r\n`: how every result and unsolicited line is framed.
pub(super) fn line(text: &str) -> Vec<u8> {
    format!("\r\n{text}\r\n").into_bytes()
}

pub(super) fn ok() -> Vec<u8> {
    line("OK")
}

pub(super) fn error() -> Vec<u8> {
    line("ERROR")
}

/// The data prompt of `CIPSEND` / `CASEND`: no line end follows it.
pub(super) const PROMPT: &[u8] = b"\r\n>";

/// The shape of a command after its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Form {
    /// `AT+X`
    Exec,
    /// `AT+X?`
    Read,
    /// `AT+X=?`
    Test,
    /// `AT+X=a,b,...` (arguments as written, quotes included)
    Set(Vec<String>),
}

/// One parsed command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Command {
    /// Upper case: `""` for a bare `AT`, `"E"` for `ATE0`, `"+CIPOPEN"`, ...
    pub name: String,
    pub form: Form,
}

impl Command {
    /// Parses `AT...` (without the `\r`). `None` if it is not a command this parser
    /// understands (the modem answers `ERROR`).
    pub(super) fn parse(text: &[u8]) -> Option<Command> {
        let text = std::str::from_utf8(text).ok()?;
        if text.len() < 2 || !text[..2].eq_ignore_ascii_case("AT") {
            return None;
        }
        let body = &text[2..];
        if body.is_empty() {
            return Some(Command {
                name: String::new(),
                form: Form::Exec,
            });
        }
        let first = body.chars().next()?;
        if first.eq_ignore_ascii_case(&'E') && body[1..].chars().all(|c| c.is_ascii_digit()) {
            let v = if body.len() > 1 { &body[1..] } else { "0" };
            return Some(Command {
                name: "E".into(),
                form: Form::Set(vec![v.to_string()]),
            });
        }
        if first != '+' {
            return None;
        }
        let end = body.find(['=', '?']).unwrap_or(body.len());
        let name = body[..end].to_ascii_uppercase();
        let rest = &body[end..];
        let form = match rest {
            "" => Form::Exec,
            "?" => Form::Read,
            "=?" => Form::Test,
            _ => Form::Set(split_args(rest.strip_prefix('=')?)?),
        };
        Some(Command { name, form })
    }

    fn arg(&self, i: usize) -> Option<&str> {
        match &self.form {
            Form::Set(args) => args.get(i).map(String::as_str),
            _ => None,
        }
    }

    pub(super) fn argc(&self) -> usize {
        match &self.form {
            Form::Set(args) => args.len(),
            _ => 0,
        }
    }

    /// Argument `i` as a decimal number.
    pub(super) fn num(&self, i: usize) -> Option<u64> {
        let a = self.arg(i)?;
        if a.is_empty() || !a.bytes().all(|b| b.is_ascii_digit()) || a.len() > 12 {
            return None;
        }
        a.parse().ok()
    }

    /// Argument `i` as text, surrounding quotes removed.
    pub(super) fn text(&self, i: usize) -> Option<&str> {
        let a = self.arg(i)?;
        Some(a.strip_prefix('"').and_then(|a| a.strip_suffix('"')).unwrap_or(a))
    }
}

/// Splits on commas outside double quotes; `None` for an unterminated quote.
fn split_args(s: &str) -> Option<Vec<String>> {
    let mut args = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for c in s.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                cur.push(c);
            }
            ',' if !quoted => args.push(std::mem::take(&mut cur).trim().to_string()),
            _ => cur.push(c),
        }
    }
    if quoted {
        return None;
    }
    args.push(cur.trim().to_string());
    Some(args)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Command {
        Command::parse(s.as_bytes()).unwrap_or_else(|| panic!("{s} did not parse"))
    }

    #[test]
    fn forms() {
        assert_eq!(
            parse("AT"),
            Command {
                name: String::new(),
                form: Form::Exec
            }
        );
        assert_eq!(
            parse("at+csq"),
            Command {
                name: "+CSQ".into(),
                form: Form::Exec
            }
        );
        assert_eq!(
            parse("AT+CPIN?"),
            Command {
                name: "+CPIN".into(),
                form: Form::Read
            }
        );
        assert_eq!(
            parse("AT+CASEND=?"),
            Command {
                name: "+CASEND".into(),
                form: Form::Test
            }
        );
        assert_eq!(parse("ATE0").num(0), Some(0));
        assert_eq!(parse("ATE").num(0), Some(0));
        assert_eq!(parse("ATE1").num(0), Some(1));
        assert!(Command::parse(b"ATI").is_none());
        assert!(Command::parse(b"AT+X=\"open").is_none());
    }

    #[test]
    fn arguments_keep_commas_inside_quotes() {
        let c = parse("AT+CIPOPEN=0,\"TCP\",\"a,b.example\",8080");
        assert_eq!(c.name, "+CIPOPEN");
        assert_eq!(c.argc(), 4);
        assert_eq!(c.num(0), Some(0));
        assert_eq!(c.text(1), Some("TCP"));
        assert_eq!(c.text(2), Some("a,b.example"));
        assert_eq!(c.num(3), Some(8080));
        assert_eq!(c.num(1), None);
        assert_eq!(c.num(9), None);
    }
}

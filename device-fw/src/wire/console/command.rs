//! Console commands: the short text lines a person or `otactl watch` types, parsed on the
//! device without a heap and written back by the host from the same [`Command`], so that
//! the two cannot disagree on a spelling.

use core::fmt;

use super::MAX_COMMAND_LINE;

/// A console command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Command<'a> {
    /// Update from the given manifest URL, or the device's configured one.
    Update {
        manifest_url: Option<&'a str>,
    },
    /// Fetch and judge the manifest without downloading the image.
    Check {
        manifest_url: Option<&'a str>,
    },
    Status,
    /// Mark the running app valid by hand (its self-test is skipped).
    Confirm,
    /// Hold scheduled updates for this many minutes (0: stop holding them).
    Defer {
        minutes: u32,
    },
    Reboot,
    Version,
    Help,
}

/// The commands, as `help` lists them.
pub const HELP: &str =
    "ota update [URL] | ota check [URL] | ota status | ota confirm | ota defer [MINUTES] | reboot | version | help";
/// `ota defer` without a number.
pub const DEFAULT_DEFER_MINUTES: u32 = 60;

/// Why a line is not a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CommandError {
    #[error("line is longer than {MAX_COMMAND_LINE} bytes")]
    TooLong,
    #[error("line is not UTF-8 text")]
    NotText,
    #[error("unknown command; try: {HELP}")]
    Unknown,
    #[error("`ota` needs a subcommand: update, check, status, confirm or defer")]
    MissingSubcommand,
    #[error("too many arguments; try: {HELP}")]
    TooManyArguments,
    #[error("manifest URL must start with http://")]
    BadUrl,
    #[error("`ota defer` takes a number of minutes, 0 to 10080 (a week)")]
    BadMinutes,
}

impl<'a> Command<'a> {
    /// Parses a line (without or with its line ending). Blank lines are `Ok(None)`.
    pub fn parse(line: &'a [u8]) -> Result<Option<Self>, CommandError> {
        if line.len() > MAX_COMMAND_LINE + 2 {
            return Err(CommandError::TooLong);
        }
        let text = core::str::from_utf8(line).map_err(|_| CommandError::NotText)?;
        let mut words = text.split_ascii_whitespace();
        let Some(first) = words.next() else {
            return Ok(None);
        };
        let url = |w: Option<&'a str>| match w {
            Some(u) if !u.starts_with("http://") => Err(CommandError::BadUrl),
            other => Ok(other),
        };
        let command = match first {
            "ota" => match words.next() {
                Some("update") => Command::Update {
                    manifest_url: url(words.next())?,
                },
                Some("check") => Command::Check {
                    manifest_url: url(words.next())?,
                },
                Some("status") => Command::Status,
                Some("confirm") => Command::Confirm,
                Some("defer") => Command::Defer {
                    minutes: match words.next() {
                        None => DEFAULT_DEFER_MINUTES,
                        Some(n) => n
                            .parse::<u32>()
                            .ok()
                            .filter(|&m| m <= 7 * 24 * 60)
                            .ok_or(CommandError::BadMinutes)?,
                    },
                },
                Some(_) => return Err(CommandError::Unknown),
                None => return Err(CommandError::MissingSubcommand),
            },
            "reboot" => Command::Reboot,
            "version" => Command::Version,
            "help" => Command::Help,
            _ => return Err(CommandError::Unknown),
        };
        if words.next().is_some() {
            return Err(CommandError::TooManyArguments);
        }
        Ok(Some(command))
    }
}

/// The line the host sends (without the line ending).
impl fmt::Display for Command<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let with_url = |f: &mut fmt::Formatter<'_>, verb: &str, url: &Option<&str>| match url {
            Some(u) => write!(f, "ota {verb} {u}"),
            None => write!(f, "ota {verb}"),
        };
        match self {
            Command::Update { manifest_url } => with_url(f, "update", manifest_url),
            Command::Check { manifest_url } => with_url(f, "check", manifest_url),
            Command::Status => f.write_str("ota status"),
            Command::Confirm => f.write_str("ota confirm"),
            Command::Defer { minutes } => write!(f, "ota defer {minutes}"),
            Command::Reboot => f.write_str("reboot"),
            Command::Version => f.write_str("version"),
            Command::Help => f.write_str("help"),
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use std::string::{String, ToString};

    use super::*;

    #[test]
    fn commands_round_trip_through_their_text() {
        let cases = [
            Command::Update { manifest_url: None },
            Command::Update {
                manifest_url: Some("http://ota.example.com/fleet/stable/manifest.json"),
            },
            Command::Check { manifest_url: None },
            Command::Status,
            Command::Confirm,
            Command::Defer { minutes: 0 },
            Command::Defer { minutes: 90 },
            Command::Reboot,
            Command::Version,
            Command::Help,
        ];
        assert_eq!(
            Command::parse(b"ota defer"),
            Ok(Some(Command::Defer {
                minutes: DEFAULT_DEFER_MINUTES
            }))
        );
        assert_eq!(Command::parse(b"ota defer soon"), Err(CommandError::BadMinutes));
        assert_eq!(Command::parse(b"ota defer 99999"), Err(CommandError::BadMinutes));
        for c in cases {
            let text = c.to_string();
            assert_eq!(Command::parse(text.as_bytes()), Ok(Some(c)), "{text}");
            let with_ending = std::format!("  {text} \r\n");
            assert_eq!(Command::parse(with_ending.as_bytes()), Ok(Some(c)));
        }
    }

    #[test]
    fn bad_lines_get_errors_not_panics() {
        type Parsed<'a> = Result<Option<Command<'a>>, CommandError>;
        let cases: [(&[u8], Parsed<'_>); 9] = [
            (b"", Ok(None)),
            (b"   \r\n", Ok(None)),
            (b"ota", Err(CommandError::MissingSubcommand)),
            (b"ota flash", Err(CommandError::Unknown)),
            (b"format c:", Err(CommandError::Unknown)),
            (b"reboot now", Err(CommandError::TooManyArguments)),
            (b"ota update ftp://x/m.json", Err(CommandError::BadUrl)),
            (b"ota status \xff", Err(CommandError::NotText)),
            (&[b'x'; 300], Err(CommandError::TooLong)),
        ];
        for (line, want) in cases {
            assert_eq!(Command::parse(line), want, "{:?}", String::from_utf8_lossy(line));
        }
        // Arbitrary bytes never panic.
        let mut seed = 0x1234_5678u32;
        for _ in 0..2000 {
            let mut line = [0u8; 40];
            for b in &mut line {
                seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
                *b = (seed >> 16) as u8;
            }
            let _ = Command::parse(&line[..(seed as usize % 40)]);
        }
    }
}

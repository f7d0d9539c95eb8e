//! The JSON writer the device writes its console events and outcome reports with: string
//! and number members into a fixed buffer, escaped exactly as serde_json escapes, so that
//! the host parses with serde what the device wrote without one (tests hold both to it).

use super::console::LineTooLong;

/// Appends JSON pieces to a fixed buffer.
pub(crate) struct JsonOut<'o> {
    out: &'o mut [u8],
    len: usize,
}

impl<'o> JsonOut<'o> {
    pub(crate) fn new(out: &'o mut [u8]) -> Self {
        JsonOut { out, len: 0 }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn raw(&mut self, bytes: &[u8]) -> Result<(), LineTooLong> {
        let end = self.len + bytes.len();
        self.out
            .get_mut(self.len..end)
            .ok_or(LineTooLong)?
            .copy_from_slice(bytes);
        self.len = end;
        Ok(())
    }

    /// Ends the `"ev"` value that `write_line` opened.
    pub(crate) fn tag(&mut self, name: &str) -> Result<(), LineTooLong> {
        self.raw(name.as_bytes())?;
        self.raw(b"\"")
    }

    pub(crate) fn key(&mut self, name: &str) -> Result<(), LineTooLong> {
        self.raw(b",\"")?;
        self.raw(name.as_bytes())?;
        self.raw(b"\":")
    }

    /// A string member (`null` for `None`), escaped as serde_json escapes.
    pub(crate) fn text(&mut self, name: &str, value: Option<&str>) -> Result<(), LineTooLong> {
        self.key(name)?;
        let Some(value) = value else {
            return self.raw(b"null");
        };
        self.raw(b"\"")?;
        for &b in value.as_bytes() {
            let short = match b {
                b'"' => b'"',
                b'\\' => b'\\',
                b'\n' => b'n',
                b'\r' => b'r',
                b'\t' => b't',
                0x08 => b'b',
                0x0C => b'f',
                0..=0x1F => {
                    const HEX: &[u8; 16] = b"0123456789abcdef";
                    self.raw(&[
                        b'\\',
                        b'u',
                        b'0',
                        b'0',
                        HEX[usize::from(b >> 4)],
                        HEX[usize::from(b & 0xF)],
                    ])?;
                    continue;
                }
                _ => {
                    self.raw(&[b])?;
                    continue;
                }
            };
            self.raw(&[b'\\', short])?;
        }
        self.raw(b"\"")
    }

    /// A number member (`null` for `None`).
    pub(crate) fn number(&mut self, name: &str, value: Option<u64>) -> Result<(), LineTooLong> {
        self.key(name)?;
        match value {
            Some(n) => self.unsigned(n),
            None => self.raw(b"null"),
        }
    }

    /// An unsigned integer, in decimal.
    pub(crate) fn unsigned(&mut self, mut n: u64) -> Result<(), LineTooLong> {
        let mut digits = [0u8; 20];
        let mut at = digits.len();
        loop {
            at -= 1;
            digits[at] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        self.raw(&digits[at..])
    }

    /// A `true`/`false` member.
    pub(crate) fn boolean(&mut self, name: &str, value: bool) -> Result<(), LineTooLong> {
        self.key(name)?;
        self.raw(if value { b"true" } else { b"false" })
    }
}

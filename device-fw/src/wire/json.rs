//! The JSON reader the device opens manifests with: strings borrowed from the input,
//! unsigned 32-bit integers, and a skip for any value a later schema adds. No heap and no
//! recursion (nesting is tracked in one word), so hostile input cannot exhaust the stack.
//!
//! Why not serde: with serde-json-core's derive, reading the manifest was the largest
//! function of the firmware (about 30 KB of a 340 KB image) and its error paths pulled in
//! the f64 formatter (another 13 KB). The manifest needs three kinds of value; this reader
//! is those and nothing else, and it is not generic, so every caller shares one copy.
//!
//! Strings a reader returns are plain: an escape or a control character in them is an
//! error, because no manifest field may contain one and the writer never produces one.
//! Strings inside skipped values may use every JSON escape.

/// How deep skipped values may nest.
pub const MAX_DEPTH: u32 = 32;

/// What is wrong with a JSON text, and where (byte offset into it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JsonError {
    #[error("it ends early, at byte {at}")]
    Truncated { at: usize },
    #[error("expected {expected} at byte {at}")]
    Expected { expected: &'static str, at: usize },
    #[error("the string at byte {at} has an escape, a control character or bytes that are not UTF-8")]
    StringNotPlain { at: usize },
    #[error("the number at byte {at} is not an unsigned 32-bit integer")]
    NotU32 { at: usize },
    #[error("values nest deeper than {MAX_DEPTH} levels at byte {at}")]
    TooDeep { at: usize },
    #[error("field `{0}` is missing")]
    MissingField(&'static str),
    #[error("field `{0}` appears twice")]
    DuplicateField(&'static str),
    #[error("`{field}` has more than {max} entries")]
    TooMany { field: &'static str, max: usize },
    #[error("characters after the end of the object, at byte {at}")]
    Trailing { at: usize },
}

/// A cursor over one JSON text.
///
/// Objects are read with [`Reader::begin_object`] then [`Reader::next_key`] until it gives
/// `None`; after each key the caller reads or skips exactly one value. Arrays likewise with
/// [`Reader::begin_array`] and [`Reader::next_element`].
#[derive(Debug)]
pub struct Reader<'a> {
    text: &'a [u8],
    pos: usize,
    /// Just after `{` or `[`: the next member needs no comma.
    fresh: bool,
}

impl<'a> Reader<'a> {
    pub fn new(text: &'a [u8]) -> Self {
        Reader {
            text,
            pos: 0,
            fresh: false,
        }
    }

    /// Byte offset of the cursor (after the last value read), for slicing out a value's raw text.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// The input text.
    pub fn text(&self) -> &'a [u8] {
        self.text
    }

    fn skip_whitespace(&mut self) {
        while self
            .text
            .get(self.pos)
            .is_some_and(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
        {
            self.pos += 1;
        }
    }

    /// The next byte that is not whitespace.
    fn peek(&mut self) -> Result<u8, JsonError> {
        self.skip_whitespace();
        self.text
            .get(self.pos)
            .copied()
            .ok_or(JsonError::Truncated { at: self.pos })
    }

    fn expect(&mut self, byte: u8, expected: &'static str) -> Result<(), JsonError> {
        if self.peek()? != byte {
            return Err(JsonError::Expected { expected, at: self.pos });
        }
        self.pos += 1;
        Ok(())
    }

    pub fn begin_object(&mut self) -> Result<(), JsonError> {
        self.expect(b'{', "an object")?;
        self.fresh = true;
        Ok(())
    }

    pub fn begin_array(&mut self) -> Result<(), JsonError> {
        self.expect(b'[', "an array")?;
        self.fresh = true;
        Ok(())
    }

    /// Steps over the `,` before the next member, or the `close` that ends the container
    /// (then `false`).
    fn another(&mut self, close: u8, expected: &'static str) -> Result<bool, JsonError> {
        let fresh = core::mem::replace(&mut self.fresh, false);
        let b = self.peek()?;
        if b == close {
            self.pos += 1;
            return Ok(false);
        }
        if !fresh {
            if b != b',' {
                return Err(JsonError::Expected { expected, at: self.pos });
            }
            self.pos += 1;
        }
        Ok(true)
    }

    /// The next member's key (then read its value), or `None` at the end of the object.
    pub fn next_key(&mut self) -> Result<Option<&'a str>, JsonError> {
        if !self.another(b'}', "`,` or `}`")? {
            return Ok(None);
        }
        let key = self.string()?;
        self.expect(b':', "`:` after a key")?;
        Ok(Some(key))
    }

    /// Whether the array has another element (then read it).
    pub fn next_element(&mut self) -> Result<bool, JsonError> {
        self.another(b']', "`,` or `]`")
    }

    /// A plain string (see the module notes), borrowed from the text.
    pub fn string(&mut self) -> Result<&'a str, JsonError> {
        self.expect(b'"', "a string")?;
        let at = self.pos - 1;
        let start = self.pos;
        loop {
            match self.text.get(self.pos) {
                None => return Err(JsonError::Truncated { at: self.pos }),
                Some(b'"') => break,
                Some(b'\\' | 0..=0x1f) => return Err(JsonError::StringNotPlain { at }),
                Some(_) => self.pos += 1,
            }
        }
        let text = core::str::from_utf8(&self.text[start..self.pos]).map_err(|_| JsonError::StringNotPlain { at })?;
        self.pos += 1;
        Ok(text)
    }

    /// An integer from 0 to `u32::MAX`, written without sign, fraction or exponent.
    pub fn u32(&mut self) -> Result<u32, JsonError> {
        let at = self.pos_of_next()?;
        let digits = self.text[at..].iter().take_while(|b| b.is_ascii_digit()).count();
        if digits == 0 {
            return Err(match self.text[at] {
                b'-' => JsonError::NotU32 { at },
                _ => JsonError::Expected {
                    expected: "a number",
                    at,
                },
            });
        }
        self.pos = at + digits;
        let not_integer = matches!(self.text.get(self.pos), Some(b'.' | b'e' | b'E'));
        if not_integer || (digits > 1 && self.text[at] == b'0') {
            return Err(JsonError::NotU32 { at });
        }
        self.text[at..self.pos]
            .iter()
            .try_fold(0u32, |n, d| n.checked_mul(10)?.checked_add(u32::from(d - b'0')))
            .ok_or(JsonError::NotU32 { at })
    }

    fn pos_of_next(&mut self) -> Result<usize, JsonError> {
        self.peek()?;
        Ok(self.pos)
    }

    /// Steps over one value of any kind, checking its syntax.
    pub fn skip_value(&mut self) -> Result<(), JsonError> {
        // One bit per open container, innermost lowest: 1 for an object, 0 for an array.
        let mut open: u32 = 0;
        let mut depth: u32 = 0;
        'value: loop {
            let at = self.pos_of_next()?;
            match self.text[at] {
                b'{' | b'[' => {
                    if depth == MAX_DEPTH {
                        return Err(JsonError::TooDeep { at });
                    }
                    // Opened: the loop below reads its first member, or its end.
                    open = (open << 1) | u32::from(self.text[at] == b'{');
                    depth += 1;
                    self.pos += 1;
                    self.fresh = true;
                }
                b'"' => self.skip_string()?,
                b'-' | b'0'..=b'9' => self.skip_number()?,
                b't' => self.literal("true")?,
                b'f' => self.literal("false")?,
                b'n' => self.literal("null")?,
                _ => {
                    return Err(JsonError::Expected {
                        expected: "a value",
                        at,
                    });
                }
            }
            // Continue the innermost container, or close containers until one goes on.
            while depth > 0 {
                let more = if open & 1 == 1 {
                    self.next_raw_key()?
                } else {
                    self.next_element()?
                };
                if more {
                    continue 'value;
                }
                open >>= 1;
                depth -= 1;
            }
            return Ok(());
        }
    }

    /// Like [`Reader::next_key`] for a skipped object, whose keys may have escapes.
    fn next_raw_key(&mut self) -> Result<bool, JsonError> {
        if !self.another(b'}', "`,` or `}`")? {
            return Ok(false);
        }
        if self.peek()? != b'"' {
            return Err(JsonError::Expected {
                expected: "a string",
                at: self.pos,
            });
        }
        self.skip_string()?;
        self.expect(b':', "`:` after a key")?;
        Ok(true)
    }

    fn skip_string(&mut self) -> Result<(), JsonError> {
        let at = self.pos;
        self.pos += 1;
        loop {
            match self.text.get(self.pos) {
                None => return Err(JsonError::Truncated { at: self.pos }),
                Some(b'"') => break,
                Some(0..=0x1f) => {
                    return Err(JsonError::Expected {
                        expected: "a string",
                        at,
                    });
                }
                Some(b'\\') => match self.text.get(self.pos + 1) {
                    None => return Err(JsonError::Truncated { at: self.pos + 1 }),
                    Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => self.pos += 2,
                    Some(b'u') => {
                        let hex = self.text.get(self.pos + 2..self.pos + 6);
                        match hex {
                            None => return Err(JsonError::Truncated { at: self.text.len() }),
                            Some(h) if h.iter().all(u8::is_ascii_hexdigit) => self.pos += 6,
                            Some(_) => {
                                return Err(JsonError::Expected {
                                    expected: "a string",
                                    at,
                                });
                            }
                        }
                    }
                    Some(_) => {
                        return Err(JsonError::Expected {
                            expected: "a string",
                            at,
                        });
                    }
                },
                Some(_) => self.pos += 1,
            }
        }
        self.pos += 1;
        Ok(())
    }

    /// `-? int frac? exp?` as JSON spells numbers.
    fn skip_number(&mut self) -> Result<(), JsonError> {
        let at = self.pos;
        let digits = |r: &mut Self| {
            let n = r.text[r.pos..].iter().take_while(|b| b.is_ascii_digit()).count();
            r.pos += n;
            n
        };
        if self.text[self.pos] == b'-' {
            self.pos += 1;
        }
        let int = digits(self);
        let mut ok = int > 0 && !(int > 1 && self.text[self.pos - int] == b'0');
        if self.text.get(self.pos) == Some(&b'.') {
            self.pos += 1;
            ok &= digits(self) > 0;
        }
        if matches!(self.text.get(self.pos), Some(b'e' | b'E')) {
            self.pos += 1;
            if matches!(self.text.get(self.pos), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            ok &= digits(self) > 0;
        }
        if !ok {
            return Err(if self.pos == self.text.len() {
                JsonError::Truncated { at: self.pos }
            } else {
                JsonError::Expected {
                    expected: "a number",
                    at,
                }
            });
        }
        Ok(())
    }

    fn literal(&mut self, word: &'static str) -> Result<(), JsonError> {
        let at = self.pos;
        let end = at + word.len();
        match self.text.get(at..end) {
            Some(found) if found == word.as_bytes() => {
                self.pos = end;
                Ok(())
            }
            None if word.as_bytes().starts_with(&self.text[at..]) => Err(JsonError::Truncated { at: self.text.len() }),
            _ => Err(JsonError::Expected {
                expected: "a value",
                at,
            }),
        }
    }

    /// The text ends here, up to whitespace.
    pub fn end(&mut self) -> Result<(), JsonError> {
        self.skip_whitespace();
        if self.pos < self.text.len() {
            return Err(JsonError::Trailing { at: self.pos });
        }
        Ok(())
    }
}

/// Stores a field's value, refusing a second one.
pub fn set_once<T>(slot: &mut Option<T>, field: &'static str, value: T) -> Result<(), JsonError> {
    if slot.is_some() {
        return Err(JsonError::DuplicateField(field));
    }
    *slot = Some(value);
    Ok(())
}

/// A field that must be there.
pub fn required<T>(slot: Option<T>, field: &'static str) -> Result<T, JsonError> {
    slot.ok_or(JsonError::MissingField(field))
}

#[cfg(test)]
mod tests {
    extern crate std;

    use super::*;

    /// Reads `{"a": <skipped>, "n": <u32>}` and gives `n`.
    fn skip_then_number(text: &str) -> Result<u32, JsonError> {
        let mut r = Reader::new(text.as_bytes());
        r.begin_object()?;
        let mut n = None;
        while let Some(key) = r.next_key()? {
            match key {
                "n" => set_once(&mut n, "n", r.u32()?)?,
                _ => r.skip_value()?,
            }
        }
        r.end()?;
        required(n, "n")
    }

    #[test]
    fn skips_every_kind_of_value() {
        let values = [
            "0",
            "-12.5e+3",
            "1E9",
            "true",
            "false",
            "null",
            r#""plain""#,
            r#""esc \" \\ \/ \b \f \n \r \t \u00e9""#,
            "[]",
            "{}",
            r#"[1, "two", [3, {"four": [5]}], {}, []]"#,
            r#"{"k\u0041": {"deeper": {"x": [true, null]}}, "y": -0.5}"#,
        ];
        for v in values {
            let text = std::format!(r#"{{ "a" : {v} , "n": 7 }}"#);
            assert_eq!(skip_then_number(&text), Ok(7), "{text}");
        }
    }

    #[test]
    fn bad_values_are_errors_with_their_offset() {
        let expected = |expected, at| JsonError::Expected { expected, at };
        let cases = [
            (r#"{"a": 01, "n": 1}"#, expected("a number", 6)),
            (r#"{"a": 1., "n": 1}"#, expected("a number", 6)),
            (r#"{"a": tru, "n": 1}"#, expected("a value", 6)),
            (r#"{"a": [1,], "n": 1}"#, expected("a value", 9)),
            (r#"{"a": [1 2], "n": 1}"#, expected("`,` or `]`", 9)),
            (r#"{"a": {"b" 1}, "n": 1}"#, expected("`:` after a key", 11)),
            (r#"{"a": "\x", "n": 1}"#, expected("a string", 6)),
            (r#"{"a": 1, "n": 1,}"#, expected("a string", 16)),
            (r#"{"a": 1 "n": 1}"#, expected("`,` or `}`", 8)),
            (r#"{"n": -1}"#, JsonError::NotU32 { at: 6 }),
            (r#"{"n": 1.5}"#, JsonError::NotU32 { at: 6 }),
            (r#"{"n": 1e3}"#, JsonError::NotU32 { at: 6 }),
            (r#"{"n": 007}"#, JsonError::NotU32 { at: 6 }),
            (r#"{"n": 4294967296}"#, JsonError::NotU32 { at: 6 }),
            (r#"{"n": "7"}"#, expected("a number", 6)),
            (r#"{"n": 1, "n": 2}"#, JsonError::DuplicateField("n")),
            (r#"{"m": 1}"#, JsonError::MissingField("n")),
            (r#"{"n": 1} x"#, JsonError::Trailing { at: 9 }),
            (r#"["n", 1]"#, expected("an object", 0)),
            ("{\"n\u{1}\": 1}", JsonError::StringNotPlain { at: 1 }),
            (r#"{"\u006e": 1}"#, JsonError::StringNotPlain { at: 1 }),
        ];
        for (text, error) in cases {
            assert_eq!(skip_then_number(text), Err(error), "{text}");
        }
        assert_eq!(skip_then_number(r#"{"n": 4294967295}"#), Ok(u32::MAX));
        assert_eq!(skip_then_number(r#"{"n": 0}"#), Ok(0));
    }

    #[test]
    fn every_truncation_is_an_error() {
        let text = r#"{"a": [1, -2.5e3, "s\"", {"k": [true, false, null]}], "n": 42}"#;
        assert_eq!(skip_then_number(text), Ok(42));
        for cut in 0..text.len() {
            let e = skip_then_number(&text[..cut]).unwrap_err();
            assert!(
                matches!(e, JsonError::Truncated { at } if at == cut),
                "cut at {cut}: {e:?}"
            );
        }
    }

    #[test]
    fn nesting_is_bounded_without_recursion() {
        let deep = |n: usize| std::format!(r#"{{"a": {}{}, "n": 1}}"#, "[".repeat(n), "]".repeat(n));
        assert_eq!(skip_then_number(&deep(MAX_DEPTH as usize)), Ok(1));
        assert_eq!(
            skip_then_number(&deep(MAX_DEPTH as usize + 1)),
            Err(JsonError::TooDeep {
                at: 6 + MAX_DEPTH as usize
            })
        );
        // Far deeper than any stack would take by recursion: still one error.
        let hostile = std::format!(r#"{{"a": {}"#, "[".repeat(100_000));
        assert!(matches!(skip_then_number(&hostile), Err(JsonError::TooDeep { .. })));
    }

    #[test]
    fn strings_are_borrowed_and_plain() {
        let mut r = Reader::new(br#" [ "caf\xc3\xa9" , "x" ] "#);
        // The raw bytes above are not an escape: they are the text `\xc3`.
        r.begin_array().unwrap();
        assert!(r.next_element().unwrap());
        assert_eq!(r.string(), Err(JsonError::StringNotPlain { at: 3 }));

        let text = " [ \"café\" , \"x\" ] ".as_bytes();
        let mut r = Reader::new(text);
        r.begin_array().unwrap();
        assert!(r.next_element().unwrap());
        assert_eq!(r.string(), Ok("café"));
        assert!(r.next_element().unwrap());
        assert_eq!(r.string(), Ok("x"));
        assert!(!r.next_element().unwrap());
        assert_eq!(r.end(), Ok(()));

        let not_utf8 = [b'"', 0xff, b'"'];
        assert_eq!(
            Reader::new(&not_utf8).string(),
            Err(JsonError::StringNotPlain { at: 0 })
        );
    }
}

//! Where in the text a problem is: the spanned TOML tree, keys found by position and back,
//! and serde's messages turned into ones that name the key, the value and the fix.

use std::ops::Range;

use toml::de::{DeTable, DeValue};

use super::error::{Details, ProfileError, ProfileErrorKind, did_you_mean, expectation, known_keys};

/// The text being parsed, with its spanned tree to find keys by position and back.
pub(super) struct Doc<'a> {
    origin: &'a str,
    text: &'a str,
    tree: toml::Spanned<DeTable<'a>>,
}

/// One key of the document: dotted path, span of the key, span of the value.
struct Entry {
    path: String,
    key: Range<usize>,
    value: Range<usize>,
}

fn entries(table: &DeTable<'_>, prefix: &str, out: &mut Vec<Entry>) {
    for (k, v) in table.iter() {
        let path = if prefix.is_empty() {
            k.get_ref().to_string()
        } else {
            format!("{prefix}.{}", k.get_ref())
        };
        out.push(Entry {
            path: path.clone(),
            key: k.span(),
            value: v.span(),
        });
        value_entries(v.get_ref(), &path, out);
    }
}

fn value_entries(value: &DeValue<'_>, path: &str, out: &mut Vec<Entry>) {
    match value {
        DeValue::Table(t) => entries(t, path, out),
        DeValue::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let path = format!("{path}[{i}]");
                out.push(Entry {
                    path: path.clone(),
                    key: item.span(),
                    value: item.span(),
                });
                value_entries(item.get_ref(), &path, out);
            }
        }
        _ => {}
    }
}

/// 1-based line and column of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before
        .rfind('\n')
        .map_or(before, |nl| &before[nl + 1..])
        .chars()
        .count()
        + 1;
    (line, column)
}

fn syntax_error(origin: &str, text: &str, e: &toml::de::Error) -> ProfileError {
    let (line, column) = e.span().map(|s| line_col(text, s.start)).unzip();
    ProfileError(Box::new(Details {
        origin: origin.into(),
        kind: ProfileErrorKind::Syntax,
        key: None,
        line,
        column,
        reason: format!("TOML syntax error: {}", e.message().trim_end()),
        help: match (line, column) {
            (Some(l), Some(c)) => format!("fix the TOML at line {l}, column {c}"),
            _ => "fix the TOML syntax".into(),
        },
    }))
}

impl<'a> Doc<'a> {
    /// Parses `text` into its spanned tree; a syntax error names line and column.
    pub(super) fn parse(text: &'a str, origin: &'a str) -> Result<Self, ProfileError> {
        let tree = DeTable::parse(text).map_err(|e| syntax_error(origin, text, &e))?;
        Ok(Doc { origin, text, tree })
    }

    fn entries(&self) -> Vec<Entry> {
        let mut out = Vec::new();
        entries(self.tree.get_ref(), "", &mut out);
        out
    }

    /// Where `key` is written: its value's start, else nothing (a default).
    pub(super) fn position_of(&self, key: &str) -> (Option<usize>, Option<usize>) {
        self.entries()
            .into_iter()
            .find(|e| e.path == key)
            .map(|e| line_col(self.text, e.value.start))
            .unzip()
    }

    pub(super) fn error(
        &self,
        kind: ProfileErrorKind,
        key: &str,
        at: Option<usize>,
        reason: String,
        help: String,
    ) -> ProfileError {
        let (line, column) = match at {
            Some(offset) => {
                let (line, column) = line_col(self.text, offset);
                (Some(line), Some(column))
            }
            None => self.position_of(key),
        };
        ProfileError(Box::new(Details {
            origin: self.origin.into(),
            kind,
            key: Some(key.into()),
            line,
            column,
            reason,
            help,
        }))
    }

    pub(super) fn bad_value(&self, key: &str, reason: String) -> ProfileError {
        self.error(ProfileErrorKind::BadValue, key, None, reason, expectation(key).1)
    }

    pub(super) fn layout(&self, key: &str, reason: String, help: String) -> ProfileError {
        // A region's fields may be defaults; point at the region, or at [slots].
        let key_here = if self.position_of(key).0.is_some() {
            key
        } else {
            let parent = key.rsplit_once('.').map_or("", |(p, _)| p);
            if self.position_of(parent).0.is_some() {
                parent
            } else {
                "slots"
            }
        };
        let at = self
            .entries()
            .into_iter()
            .find(|e| e.path == key_here)
            .map(|e| e.value.start);
        self.error(ProfileErrorKind::Layout, key, at, reason, help)
    }

    /// Turns a serde error from `toml::from_str` into one that names the key.
    pub(super) fn serde_error(&self, e: &toml::de::Error) -> ProfileError {
        let message = e.message().trim_end();
        let span = e.span().unwrap_or(0..0);
        let entries = self.entries();
        // The key the error is about: an exact key match (unknown field), else the deepest
        // entry whose value spans the error (wrong type, bad value, missing field in it).
        let entry = entries.iter().find(|en| en.key == span).or_else(|| {
            entries
                .iter()
                .filter(|en| en.value.start <= span.start && span.end <= en.value.end)
                .max_by_key(|en| (en.path.matches('.').count(), en.path.len()))
        });
        let path = entry.map_or(String::new(), |en| en.path.clone());
        let at = entry.map(|en| if en.key == span { en.key.start } else { span.start });
        let quoted = |m: &str| m.split('`').nth(1).map(str::to_owned);

        if let Some(rest) = message.strip_prefix("unknown field ") {
            let name = quoted(rest).unwrap_or_default();
            let table = path
                .strip_suffix(&name)
                .map_or(path.as_str(), |t| t.trim_end_matches('.'));
            let known = known_keys(table);
            let what = if table.is_empty() { "top-level table" } else { "key" };
            let mut help = if table.is_empty() {
                format!("known top-level tables: {}", known.join(", "))
            } else {
                format!("known keys of [{table}]: {}", known.join(", "))
            };
            if let Some(close) = did_you_mean(&name, known) {
                help = format!("did you mean `{close}`? {help}");
            }
            return self.error(
                ProfileErrorKind::UnknownKey,
                &path,
                at,
                format!("unknown {what} `{path}`"),
                help,
            );
        }
        if let Some(rest) = message.strip_prefix("missing field ") {
            let name = quoted(rest).unwrap_or_default();
            let key = if path.is_empty() {
                name.clone()
            } else {
                format!("{path}.{name}")
            };
            let (what, how) = expectation(&key);
            let help = if path.is_empty() {
                let with = match name.as_str() {
                    "device" => "product = \"…\", chip = \"…\" and board = \"…\"",
                    "modem" => "dialect = \"…\", baud = … and apn = \"…\"",
                    "flash" => "size = \"…\" (the chip's flash size)",
                    _ => "its keys",
                };
                format!("add a [{name}] section with {with}")
            } else {
                format!("add `{name} = …` ({what}) under [{path}]: {how}")
            };
            return self.error(
                ProfileErrorKind::MissingKey,
                &key,
                at,
                format!("missing required key `{key}`"),
                help,
            );
        }
        let snippet = self.text.get(span.clone()).unwrap_or("").trim();
        let (what, help) = expectation(&path);
        if let Some(rest) = message.strip_prefix("invalid type: ") {
            let found = rest.split(", expected").next().unwrap_or(rest);
            return self.error(
                ProfileErrorKind::WrongType,
                &path,
                at,
                format!("{path} must be {what}, found {found}"),
                help,
            );
        }
        let value = if snippet.is_empty() {
            String::new()
        } else {
            format!(" = {snippet}")
        };
        let reason = if message.starts_with("unknown variant") {
            format!("{path}{value} is not a known {}", what.trim_start_matches("a "))
        } else if message.starts_with("invalid value: integer") {
            format!("{path}{value} is out of range for {what}")
        } else {
            format!("{path}{value} is not {what} ({message})")
        };
        self.error(ProfileErrorKind::BadValue, &path, at, reason, help)
    }
}

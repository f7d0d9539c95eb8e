//! The validators of a response (`ETag`, `Last-Modified`), kept in fixed buffers so that the
//! next check of the same object can be a conditional GET answered by a bodiless 304.

use core::fmt;

/// Longest `ETag` kept, quotes and a `W/` prefix included.
///
/// Object stores and web servers send at most about half of this: S3, R2 and MinIO send
/// the MD5 in hex, 34 bytes with the quotes, and multipart uploads add `-<parts>` (up to
/// 40); GCS and Azure send less than that, nginx, Apache and `otactl serve` about 20-30.
/// 80 also holds a weak SHA-256 in hex (`W/"<64 hex>"`, 68 bytes), the longest form that
/// is seen in practice. A longer one is not kept, and the next request is unconditional:
/// it costs one full fetch, never a missed change.
pub const MAX_ETAG_LEN: usize = 80;
/// Longest `Last-Modified` kept: 33 bytes, the longest HTTP-date (RFC 9110 §5.6.7: the
/// obsolete RFC 850 form with "Wednesday"); servers send the 29-byte IMF-fixdate.
pub const MAX_DATE_LEN: usize = 33;
/// RAM of one [`Validators`] value: both buffers and their length bytes.
pub const VALIDATORS_RAM: usize = MAX_ETAG_LEN + MAX_DATE_LEN + 2;

/// What identifies one version of an object: its `ETag` or, when the origin sends none, its
/// `Last-Modified` date. Both are kept as the origin wrote them, as the next request must
/// send them back.
///
/// Free of the client, so the caller can clone the validators of its manifest into its
/// own state while the client fetches other objects in between (each 200 replaces the
/// client's [`super::HttpClient::validators`]). `Clone` but not `Copy`: at 115 bytes, a
/// copy into an async function's state should be one that is written down.
#[derive(Clone, PartialEq, Eq)]
pub struct Validators {
    etag: Field<MAX_ETAG_LEN>,
    last_modified: Field<MAX_DATE_LEN>,
}

impl Validators {
    /// No validators: a GET with them is unconditional.
    pub const NONE: Validators = Validators {
        etag: Field::EMPTY,
        last_modified: Field::EMPTY,
    };

    /// Validators with `etag` (as the origin wrote it, quotes included); `None` when it is
    /// empty, longer than [`MAX_ETAG_LEN`] or has a byte that cannot go back in a header
    /// (a space, a control byte, non-ASCII).
    pub fn from_etag(etag: &str) -> Option<Self> {
        let mut v = Validators::NONE;
        v.etag.set(etag.as_bytes(), is_etag_byte).then_some(v)
    }

    /// Validators with only a `Last-Modified` date (as the origin wrote it); `None` when it
    /// is empty, longer than [`MAX_DATE_LEN`] or not printable ASCII.
    pub fn from_last_modified(date: &str) -> Option<Self> {
        let mut v = Validators::NONE;
        v.last_modified.set(date.as_bytes(), is_date_byte).then_some(v)
    }

    /// The `ETag`, sent back as `If-None-Match`.
    pub fn etag(&self) -> Option<&str> {
        self.etag.as_str()
    }

    /// The `Last-Modified` date, sent back as `If-Modified-Since`; only kept when the
    /// response had no `ETag` (an origin that gets both decides on the ETag alone, RFC 9110
    /// §13.2.2).
    pub fn last_modified(&self) -> Option<&str> {
        self.last_modified.as_str()
    }

    /// Whether there is nothing to make a request conditional with.
    pub fn is_empty(&self) -> bool {
        self.etag.len == 0 && self.last_modified.len == 0
    }

    /// Records an `ETag` header of the response being read. A second one makes both
    /// unusable: which of them is the object's is unknown.
    pub(crate) fn record_etag(&mut self, value: &[u8], seen_before: bool) {
        if seen_before || !self.etag.set(value, is_etag_byte) {
            self.etag = Field::EMPTY;
        }
    }

    /// Records a `Last-Modified` header of the response being read.
    pub(crate) fn record_last_modified(&mut self, value: &[u8]) {
        if !self.last_modified.set(value, is_date_byte) {
            self.last_modified = Field::EMPTY;
        }
    }

    /// The head is complete: when it carried an `ETag` (kept or not), the date goes.
    ///
    /// An `ETag` too long to keep does not fall back to the date: a date only says "not
    /// older than", so an object restored to an older copy (a rollback that keeps file
    /// times) would look unchanged, and it has a one-second resolution. An unconditional
    /// GET instead costs one manifest body.
    pub(crate) fn finish(&mut self, etag_seen: bool) {
        if etag_seen {
            self.last_modified = Field::EMPTY;
        }
    }
}

impl Default for Validators {
    fn default() -> Self {
        Validators::NONE
    }
}

impl fmt::Debug for Validators {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Validators")
            .field("etag", &self.etag())
            .field("last_modified", &self.last_modified())
            .finish()
    }
}

/// `etagc` of RFC 9110 §8.8.3 (ASCII part) and the quotes and `W/` around it.
fn is_etag_byte(b: u8) -> bool {
    (0x21..=0x7e).contains(&b)
}

/// An HTTP-date: letters, digits, spaces, `,` and `:`; any printable ASCII is let through.
fn is_date_byte(b: u8) -> bool {
    (0x20..=0x7e).contains(&b)
}

/// A header value of up to `N` bytes. Bytes past `len` are always zero, so that the derived
/// equality compares values.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Field<const N: usize> {
    len: u8,
    bytes: [u8; N],
}

impl<const N: usize> Field<N> {
    const EMPTY: Self = {
        assert!(N <= u8::MAX as usize, "the length is kept in a byte");
        Field { len: 0, bytes: [0; N] }
    };

    /// Stores `value` if it fits and every byte passes `allowed`; returns whether it did
    /// (the field is left empty otherwise).
    fn set(&mut self, value: &[u8], allowed: fn(u8) -> bool) -> bool {
        *self = Field::EMPTY;
        if value.is_empty() || value.len() > N || !value.iter().all(|&b| allowed(b)) {
            return false;
        }
        self.bytes[..value.len()].copy_from_slice(value);
        self.len = value.len() as u8;
        true
    }

    fn as_str(&self) -> Option<&str> {
        // Only ASCII is ever stored.
        (self.len > 0).then(|| core::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or(""))
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use super::*;

    #[test]
    fn keeps_what_fits_and_can_be_sent_back() {
        let s3 = "\"9bb58f26192e4ba00f01e2e7b136bbd8\"";
        assert_eq!(s3.len(), 34);
        assert_eq!(Validators::from_etag(s3).unwrap().etag(), Some(s3));
        let weak_sha256 = std::format!("W/\"{}\"", "a".repeat(64));
        assert_eq!(weak_sha256.len(), 68);
        assert!(Validators::from_etag(&weak_sha256).is_some());
        assert!(Validators::from_etag(&"e".repeat(MAX_ETAG_LEN)).is_some());
        assert!(Validators::from_etag(&"e".repeat(MAX_ETAG_LEN + 1)).is_none());
        for bad in ["", "\"a b\"", "\"a\r\nX: y\"", "\"é\""] {
            assert!(Validators::from_etag(bad).is_none(), "{bad:?}");
        }
        let date = "Mon, 23 Nov 2026 21:14:07 GMT";
        let v = Validators::from_last_modified(date).unwrap();
        assert_eq!((v.etag(), v.last_modified()), (None, Some(date)));
        assert!(Validators::from_last_modified("Wednesday, 25-Nov-26 21:14:07 GMT").is_some());
        assert!(Validators::from_last_modified("Mon, 23 Nov 2026\n21:14:07 GMT").is_none());
        assert!(Validators::NONE.is_empty() && !v.is_empty());
    }

    #[test]
    fn an_etag_drops_the_date_and_a_second_etag_drops_both() {
        let mut v = Validators::NONE;
        v.record_last_modified(b"Mon, 23 Nov 2026 21:14:07 GMT");
        v.record_etag(b"\"x\"", false);
        v.finish(true);
        assert_eq!(v, Validators::from_etag("\"x\"").unwrap());
        v.record_etag(b"\"y\"", true);
        v.finish(true);
        assert!(v.is_empty());
        // Equality compares values, not what a longer earlier value left behind.
        let mut a = Validators::from_etag("\"long-etag\"").unwrap();
        a.record_etag(b"\"s\"", false);
        assert_eq!(a, Validators::from_etag("\"s\"").unwrap());
    }
}

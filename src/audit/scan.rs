//! The fast path of [`verify`]: one pass over a record line's bytes that
//! proves it is exactly what the daemon writes and hashes it in place.
//!
//! Why: parsing every line into a `serde_json::Value`, re-serializing it to
//! compare with the line and serializing it once more without `hash` to
//! hash it costs several allocations and three passes per record; verify
//! ran at about 200,000 records/s, and an auditor's log has hundreds of
//! millions of records (issue 11 asks for 1,000,000/s).
//!
//! The scanner is *conservative*: it accepts only lines that are, byte for
//! byte, the canonical form [`AuditRecord::to_line`] writes (the eight keys
//! in sorted order, no whitespace, strings escaped exactly as
//! [`canonical_json`] escapes them, integers in plain decimal, object keys
//! strictly increasing in UTF-16 order, hence no duplicates). For such a
//! line, [`parse_line`] accepts it too and `compute_hash` hashes the very
//! same bytes minus the `,"hash":"…"` member, because the canonical form of
//! the record without `hash` is the canonical line with that member cut out
//! (`hash` is never the first key). Anything else — an error, but also a
//! float, an escaped key or a deeply nested value, which canonical lines may
//! legally hold but records never do — is answered `None`, and the caller
//! checks the line the slow, general way, which also words the message.
//! So the fast path can only ever skip work, never change a verdict.

use super::*;

/// Nesting deeper than this inside `data` goes to the slow path (well below
/// serde_json's own recursion limit of 128, so both agree on what parses).
const MAX_DEPTH: usize = 32;

/// A record line the scanner proved canonical: what the chain checks need.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct ScannedLine<'a> {
    /// The record's `seq`.
    pub(super) seq: u64,
    /// The `prev` member's text (it holds no escapes, so text = value).
    pub(super) prev: &'a [u8],
    /// The `hash` member's text (no escapes).
    pub(super) hash: &'a [u8],
    /// Lowercase hex SHA-256 of the line without its `hash` member: the hash
    /// the record must carry.
    pub(super) computed: [u8; 64],
}

impl ScannedLine<'_> {
    /// Whether the record carries the hash of its own contents.
    pub(super) fn hash_recomputes(&self) -> bool {
        self.hash == self.computed.as_slice()
    }
}

/// Scans one line (without its `'\n'`); `None` when the line is not
/// certainly canonical (see the module documentation). The tests' view of
/// [`scan_record`]: verify itself scans whole runs of lines.
#[cfg(test)]
pub(super) fn scan_line(line: &[u8]) -> Option<ScannedLine<'_>> {
    std::str::from_utf8(line).ok()?;
    match scan_record(line)? {
        (scanned, end) if end == line.len() => Some(scanned),
        _ => None,
    }
}

/// Scans the record at the start of `bytes`, which must be valid UTF-8
/// (the caller checks a whole run of lines at once); returns it and where
/// it ends (after its closing brace). It never reads past the line's end:
/// a `'\n'` is a control character, which nothing in the grammar accepts,
/// so the caller only has to check that a `'\n'` follows.
pub(super) fn scan_record(bytes: &[u8]) -> Option<(ScannedLine<'_>, usize)> {
    let line = bytes;
    let mut c = Cursor { b: line, i: 0 };
    c.lit(b"{\"at\":")?;
    c.string()?;
    c.lit(b",\"data\":")?;
    c.value(0)?;
    let hash_member = c.i;
    c.lit(b",\"hash\":")?;
    let hash = c.plain_string()?;
    let after_hash = c.i;
    c.lit(b",\"kind\":")?;
    c.string()?;
    c.lit(b",\"prev\":")?;
    let prev = c.plain_string()?;
    c.lit(b",\"resource\":")?;
    c.string_or_null()?;
    c.lit(b",\"seq\":")?;
    let seq = c.unsigned()?;
    c.lit(b",\"tenant\":")?;
    c.string_or_null()?;
    c.lit(b"}")?;
    let end = c.i;
    let digest = Sha256::new().chain_update(&line[..hash_member]).chain_update(&line[after_hash..end]).finalize();
    let mut computed = [0u8; 64];
    hex::encode_to_slice(digest, &mut computed).ok()?;
    Some((ScannedLine { seq, prev, hash, computed }, end))
}

/// A position in the line.
struct Cursor<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn lit(&mut self, text: &[u8]) -> Option<()> {
        if self.b.get(self.i..self.i + text.len()) == Some(text) {
            self.i += text.len();
            Some(())
        } else {
            None
        }
    }

    /// A string exactly as [`write_canonical_str`] writes it; returns its
    /// text between the quotes and whether it holds an escape.
    fn string(&mut self) -> Option<(&'a [u8], bool)> {
        self.lit(b"\"")?;
        let start = self.i;
        let mut escaped = false;
        loop {
            self.skip_plain();
            let b = self.peek()?;
            self.i += 1;
            match b {
                b'"' => return Some((&self.b[start..self.i - 1], escaped)),
                b'\\' => {
                    escaped = true;
                    let e = self.peek()?;
                    self.i += 1;
                    match e {
                        b'"' | b'\\' | b'b' | b't' | b'n' | b'f' | b'r' => {}
                        // Only controls without a short form are written
                        // as \u00xx, in lowercase hex.
                        b'u' => {
                            let hex = self.b.get(self.i..self.i + 4)?;
                            self.i += 4;
                            let low = |d: u8| match d {
                                b'0'..=b'9' => Some(d - b'0'),
                                b'a'..=b'f' => Some(d - b'a' + 10),
                                _ => None,
                            };
                            if hex[0] != b'0' || hex[1] != b'0' {
                                return None;
                            }
                            let v = low(hex[2])? * 16 + low(hex[3])?;
                            if v >= 0x20 || matches!(v, 0x08 | 0x09 | 0x0a | 0x0c | 0x0d) {
                                return None;
                            }
                        }
                        _ => return None,
                    }
                }
                // Controls are always escaped in canonical form.
                0x00..=0x1f => return None,
                _ => {}
            }
        }
    }

    /// Skips string bytes that need no escape (anything but `"`, `\\` and
    /// controls), eight at a time: most of a line is such bytes.
    fn skip_plain(&mut self) {
        const ONES: u64 = 0x0101_0101_0101_0101;
        const HIGH: u64 = 0x8080_8080_8080_8080;
        let has_zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
        while let Some(word) = self.b.get(self.i..self.i + 8) {
            let x = u64::from_le_bytes([word[0], word[1], word[2], word[3], word[4], word[5], word[6], word[7]]);
            // A byte below 0x20, or equal to '"' or '\\', stops the skip
            // (bytes of 0x80 and above are never below 0x20).
            let below_space = x.wrapping_sub(ONES * 0x20) & !x & HIGH;
            if below_space | has_zero(x ^ (ONES * u64::from(b'"'))) | has_zero(x ^ (ONES * u64::from(b'\\'))) != 0 {
                return;
            }
            self.i += 8;
        }
    }

    /// A string without escapes (`prev`, `hash`, object keys): its text is
    /// its value, so it can be compared and sorted as bytes.
    fn plain_string(&mut self) -> Option<&'a [u8]> {
        match self.string()? {
            (text, false) => Some(text),
            (_, true) => None,
        }
    }

    fn string_or_null(&mut self) -> Option<()> {
        if self.peek() == Some(b'n') {
            self.lit(b"null")
        } else {
            self.string().map(|_| ())
        }
    }

    /// Plain decimal digits without a leading zero (a lone `0` aside),
    /// fitting in u64, and not followed by a fraction or exponent.
    fn unsigned(&mut self) -> Option<u64> {
        let start = self.i;
        let mut n: u64 = 0;
        while let Some(d @ b'0'..=b'9') = self.peek() {
            n = n.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
            self.i += 1;
        }
        let digits = self.i - start;
        if digits == 0 || (digits > 1 && self.b[start] == b'0') || matches!(self.peek(), Some(b'.' | b'e' | b'E')) {
            return None;
        }
        Some(n)
    }

    /// Any value as [`write_canonical`] writes it, integers only.
    fn value(&mut self, depth: usize) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        match self.peek()? {
            b'"' => self.string().map(|_| ()),
            b't' => self.lit(b"true"),
            b'f' => self.lit(b"false"),
            b'n' => self.lit(b"null"),
            b'-' => {
                self.i += 1;
                // serde_json keeps -1 ..= -2^63 as integers; -0 and
                // anything below i64::MIN become floats.
                let n = self.unsigned()?;
                (n != 0 && n <= 1u64 << 63).then_some(())
            }
            b'0'..=b'9' => self.unsigned().map(|_| ()),
            b'[' => {
                self.i += 1;
                if self.lit(b"]").is_some() {
                    return Some(());
                }
                loop {
                    self.value(depth + 1)?;
                    match self.peek()? {
                        b',' => self.i += 1,
                        b']' => {
                            self.i += 1;
                            return Some(());
                        }
                        _ => return None,
                    }
                }
            }
            b'{' => {
                self.i += 1;
                if self.lit(b"}").is_some() {
                    return Some(());
                }
                let mut last: Option<&[u8]> = None;
                loop {
                    let key = self.plain_string()?;
                    if let Some(last) = last {
                        if !sorts_before(last, key)? {
                            return None;
                        }
                    }
                    last = Some(key);
                    self.lit(b":")?;
                    self.value(depth + 1)?;
                    match self.peek()? {
                        b',' => self.i += 1,
                        b'}' => {
                            self.i += 1;
                            return Some(());
                        }
                        _ => return None,
                    }
                }
            }
            _ => None,
        }
    }
}

/// Whether key `a` comes strictly before key `b` in JCS order (UTF-16 code
/// units). For ASCII keys that is byte order; otherwise compare as UTF-16.
fn sorts_before(a: &[u8], b: &[u8]) -> Option<bool> {
    if a.is_ascii() && b.is_ascii() {
        return Some(a < b);
    }
    let (a, b) = (std::str::from_utf8(a).ok()?, std::str::from_utf8(b).ok()?);
    Some(a.encode_utf16().lt(b.encode_utf16()))
}

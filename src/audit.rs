//! The tamper-evident audit log (product-spec §7).
//!
//! Every irreversible step the daemon takes is recorded here so that an
//! operator, an auditor or a customer can later prove what was deleted, when
//! and why — and prove that nobody edited that story afterwards. The proof is
//! a hash chain: each record carries the SHA-256 of its own canonical JSON
//! (RFC 8785) and the hash of the record before it, so changing, removing,
//! reordering or inserting any record breaks the chain at that point.
//! Removing whole records *from the end* keeps the chain intact, which is why
//! [`verify`] accepts the head the daemon keeps in its database.
//!
//! On disk the log is `<state_dir>/audit.jsonl`, one record per line, with
//! rotated segments `audit-000001.jsonl`, `audit-000002.jsonl`, … beside it
//! (oldest first, all older than `audit.jsonl`). `seq` runs from 1 across all
//! of them without gaps.
//!
//! Crash safety: the daemon first stores each sealed record in its database
//! (the outbox), then calls [`AuditLog::append`], which writes and fsyncs.
//! A crash can therefore leave a torn, unterminated last line, which
//! [`AuditLog::open`] cuts off; the daemon then re-appends the outbox records
//! whose `seq` is above [`AuditLog::head`]. Only complete lines are ever
//! trusted, and the log never rewrites a complete line.
//!
//! Records never carry business data; for the same reason nothing in this
//! module logs or reports the contents of a record, only positions, sequence
//! numbers and hashes.

use crate::time::{fmt_rfc3339, Timestamp};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// The `prev` of the very first record: 64 zeros, so the first record is
/// chained like every other one and verification needs no special case.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// File name of the live (appended-to) log inside the state directory.
const CURRENT_NAME: &str = "audit.jsonl";

/// The highest segment number the six-digit naming scheme can express.
const MAX_SEGMENT_NUMBER: u32 = 999_999;

/// Chunk size for scanning a file backwards for its last lines.
const TAIL_CHUNK: u64 = 8 * 1024;

/// Every key a record line must have, and the only keys it may have, in
/// canonical (sorted) order.
const RECORD_KEYS: [&str; 8] = ["at", "data", "hash", "kind", "prev", "resource", "seq", "tenant"];

/// One line of the audit log.
///
/// The field set is closed (`deny_unknown_fields`) because the hash covers
/// exactly these fields: a reader that silently dropped an unknown key would
/// compute a different hash than the writer and the chain would look broken
/// (or, worse, an attacker could smuggle unhashed content in).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditRecord {
    /// Position in the log, 1 for the first record, +1 for each next one,
    /// across segments; gaps and repeats are how deletions and insertions
    /// show up.
    pub seq: u64,
    /// When the step happened, RFC 3339 UTC as produced by
    /// [`crate::time::fmt_rfc3339`].
    pub at: String,
    /// What happened (e.g. a deletion step); the vocabulary belongs to the
    /// callers, the log only hashes it.
    pub kind: String,
    /// The tenant concerned, or `None` (JSON `null`) for daemon-wide records.
    pub tenant: Option<String>,
    /// The resource concerned, or `None` (JSON `null`) for records about no
    /// single resource.
    pub resource: Option<String>,
    /// Step-specific details (ids, counts, hashes — never business data).
    /// Integers, strings, booleans, null, arrays and objects only: floats are
    /// not covered by the canonical form used here, see [`canonical_json`].
    pub data: Value,
    /// `hash` of the previous record, [`GENESIS_HASH`] for seq 1.
    pub prev: String,
    /// Lowercase hex SHA-256 of the canonical JSON of this record without
    /// the `hash` key.
    pub hash: String,
}

impl AuditRecord {
    /// Builds a record chained onto `prev` and computes its hash, so callers
    /// can never produce a record whose hash disagrees with its contents.
    /// `at` is formatted with [`crate::time::fmt_rfc3339`] so that every
    /// record spells time the same way (the hash depends on the spelling).
    pub fn seal(
        seq: u64,
        at: Timestamp,
        kind: &str,
        tenant: Option<&str>,
        resource: Option<&str>,
        data: Value,
        prev: &str,
    ) -> AuditRecord {
        let mut record = AuditRecord {
            seq,
            at: fmt_rfc3339(at),
            kind: kind.to_owned(),
            tenant: tenant.map(str::to_owned),
            resource: resource.map(str::to_owned),
            data,
            prev: prev.to_owned(),
            hash: String::new(),
        };
        record.hash = record.compute_hash();
        record
    }

    /// The hash this record must carry: lowercase hex SHA-256 over the
    /// canonical JSON of every field except `hash`. Canonical JSON makes the
    /// hash independent of how any particular serializer orders keys or
    /// spaces tokens, so a verifier written in another language agrees.
    pub fn compute_hash(&self) -> String {
        let canonical = canonical_json(&self.to_value(false));
        hex::encode(Sha256::digest(canonical.as_bytes()))
    }

    /// The exact line written to the log: canonical JSON of the whole record
    /// plus `'\n'`. Canonical JSON escapes every control character inside
    /// strings, so the only raw newline is the terminator.
    pub fn to_line(&self) -> String {
        let mut line = canonical_json(&self.to_value(true));
        line.push('\n');
        line
    }

    /// The record as a JSON object, optionally without `hash`. Built by hand
    /// rather than through `serde_json::to_value` so there is no failure path.
    fn to_value(&self, with_hash: bool) -> Value {
        let opt = |s: &Option<String>| s.as_ref().map_or(Value::Null, |s| Value::String(s.clone()));
        let mut map = Map::new();
        map.insert("seq".into(), Value::from(self.seq));
        map.insert("at".into(), Value::String(self.at.clone()));
        map.insert("kind".into(), Value::String(self.kind.clone()));
        map.insert("tenant".into(), opt(&self.tenant));
        map.insert("resource".into(), opt(&self.resource));
        map.insert("data".into(), self.data.clone());
        map.insert("prev".into(), Value::String(self.prev.clone()));
        if with_hash {
            map.insert("hash".into(), Value::String(self.hash.clone()));
        }
        Value::Object(map)
    }
}

/// Sequence number and hash of the last record of the log: everything a
/// writer needs to chain the next record, and everything a verifier needs to
/// notice that trailing records were removed.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AuditHead {
    /// `seq` of the last record, 0 for an empty log.
    pub seq: u64,
    /// `hash` of the last record, [`GENESIS_HASH`] for an empty log.
    pub hash: String,
}

impl AuditHead {
    /// The head of an empty log, onto which record 1 chains.
    pub fn genesis() -> Self {
        AuditHead { seq: 0, hash: GENESIS_HASH.to_owned() }
    }

    fn of(record: &AuditRecord) -> Self {
        AuditHead { seq: record.seq, hash: record.hash.clone() }
    }
}

/// RFC 8785 (JCS) canonical JSON for the values audit records carry:
/// objects, arrays, strings, integers, booleans and null.
///
/// Why: the hash must be reproducible byte for byte by any independent
/// verifier, so the bytes hashed cannot depend on serializer details. This
/// writes object members sorted by the UTF-16 code units of their keys (as
/// JCS requires — this differs from UTF-8 byte order for characters above
/// U+FFFF against U+E000..U+FFFF), no insignificant whitespace, strings as
/// UTF-8 with only `"`, `\` and control characters escaped (`\b \t \n \f \r`
/// short forms, other controls as lowercase `\u00xx`), and integers in plain
/// decimal.
///
/// Floats: records never carry them (JCS would require ECMAScript number
/// formatting, which this does not implement); should one appear it is
/// written as `serde_json` writes it. Integers beyond 2^53 are written
/// exactly, not rounded through a double as strict JCS would.
pub fn canonical_json(v: &Value) -> String {
    let mut out = String::new();
    write_canonical(&mut out, v);
    out
}

fn write_canonical(out: &mut String, v: &Value) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                out.push_str(&u.to_string());
            } else if let Some(i) = n.as_i64() {
                out.push_str(&i.to_string());
            } else {
                // Documented above: floats are outside the record vocabulary.
                out.push_str(&n.to_string());
            }
        }
        Value::String(s) => write_canonical_str(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(out, item);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|(a, _), (b, _)| a.encode_utf16().cmp(b.encode_utf16()));
            out.push('{');
            for (i, (key, value)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical_str(out, key);
                out.push(':');
                write_canonical(out, value);
            }
            out.push('}');
        }
    }
}

/// JCS string serialization (RFC 8785 §3.2.2.2).
fn write_canonical_str(out: &mut String, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\u{c}' => out.push_str("\\f"),
            '\r' => out.push_str("\\r"),
            c if u32::from(c) < 0x20 => {
                let b = u32::from(c) as usize;
                out.push_str("\\u00");
                out.push(char::from(HEX[b >> 4]));
                out.push(char::from(HEX[b & 0xf]));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Why the audit log could not be opened, appended to or read.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// A file-system operation failed; `op` says which, so an operator can
    /// tell a full disk from a permissions problem from a missing directory.
    #[error("audit log: cannot {op} {}: {source}", path.display())]
    Io {
        /// What was being attempted ("open", "append to", "fsync", …).
        op: &'static str,
        /// The file or directory concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A complete line the log depends on is not a valid record (for example
    /// the last record, whose hash the next record must chain onto). The log
    /// refuses to guess: chaining onto a damaged record would hide the damage.
    /// Run `retentiond audit verify` to locate the first bad record.
    #[error("audit log {}:{line} is damaged: {reason}", path.display())]
    Corrupt {
        /// The file holding the bad line.
        path: PathBuf,
        /// 1-based line number within that file.
        line: u64,
        /// What is wrong with it.
        reason: String,
    },
    /// A record passed to [`AuditLog::append`] does not chain onto the head
    /// (wrong seq, wrong prev, or a hash that does not match its contents).
    /// Nothing was written: appending it would break the chain for good.
    #[error("audit record {index} of the batch (seq {seq}) does not chain onto the log: {reason}")]
    NotChained {
        /// Position of the offending record in the slice passed to append.
        index: usize,
        /// The `seq` the offending record carries.
        seq: u64,
        /// What does not match.
        reason: String,
    },
    /// An earlier failure left the file in a state this handle can no longer
    /// vouch for (a failed write could not be rolled back, or rotation
    /// stopped half-way). Appends are refused until the log is reopened with
    /// [`AuditLog::open`], which re-derives everything from disk.
    #[error("audit log {} must be reopened: {reason}", path.display())]
    Poisoned {
        /// The live log file.
        path: PathBuf,
        /// The failure that poisoned the handle.
        reason: String,
    },
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> AuditError + 'a {
    move |source| AuditError::Io { op, path: path.to_path_buf(), source }
}

/// A rotated segment `audit-NNNNNN.jsonl`.
#[derive(Clone, Debug)]
struct Segment {
    number: u32,
    path: PathBuf,
}

/// The writer's handle on the audit log: knows the head, appends durably,
/// rotates, and reads back.
///
/// One process must own a state directory at a time (the daemon guarantees
/// this with its database lock); two writers would interleave chains.
#[derive(Debug)]
pub struct AuditLog {
    dir: PathBuf,
    path: PathBuf,
    file: File,
    /// Length of `audit.jsonl` covering only complete, fsynced lines.
    len: u64,
    head: AuditHead,
    max_segment_bytes: Option<u64>,
    /// Number the next rotated segment gets.
    next_segment: u32,
    /// Bytes of a torn tail that `open` cut off, if any.
    torn_tail_removed: Option<u64>,
    /// Set when the handle can no longer append safely.
    poisoned: Option<String>,
}

impl AuditLog {
    /// Opens or creates `dir/audit.jsonl` (`dir` must exist).
    ///
    /// A crash mid-append can leave an unterminated last line; exactly that
    /// tail is cut off and the file fsynced (see
    /// [`AuditLog::torn_tail_removed`]), because those records are still in
    /// the daemon's outbox and will be re-appended. Complete lines are never
    /// touched. The head is learned from the last record of `audit.jsonl`,
    /// or of the newest segment if `audit.jsonl` is empty (a crash between
    /// rotation steps leaves it so), or is genesis for a new log; that last
    /// record must parse and its hash must recompute, otherwise
    /// [`AuditError::Corrupt`].
    ///
    /// `max_segment_bytes`: when `audit.jsonl` grows past it after an append,
    /// it is renamed to the next `audit-NNNNNN.jsonl` and a fresh
    /// `audit.jsonl` is started, keeping each file a manageable size for
    /// shipping and archiving. `None` never rotates.
    pub fn open(dir: &Path, max_segment_bytes: Option<u64>) -> Result<AuditLog, AuditError> {
        let path = dir.join(CURRENT_NAME);
        let mut file = open_current(&path)?;

        let len = file.metadata().map_err(io_err("read metadata of", &path))?.len();
        let tail = scan_tail(&mut file, len).map_err(io_err("read", &path))?;
        let mut torn_tail_removed = None;
        if tail.complete_len < len {
            let cut = len - tail.complete_len;
            file.set_len(tail.complete_len).map_err(io_err("truncate torn tail of", &path))?;
            tracing::warn!(
                path = %path.display(),
                bytes = cut,
                "audit log ended in an unterminated line (interrupted append); cut it off"
            );
            torn_tail_removed = Some(cut);
        }
        // Always sync, not only after a cut: a process that died between
        // write and fsync leaves lines that are readable but not yet durable,
        // and the daemon is about to treat them as written (it skips their
        // outbox entries). Likewise the directory, for a create or rotation
        // rename whose directory fsync never happened.
        file.sync_all().map_err(io_err("fsync", &path))?;
        sync_dir(dir)?;

        let segments = list_segments(dir).map_err(io_err("list", dir))?;
        let next_segment = segments.last().map_or(1, |s| s.number.saturating_add(1));

        let head = if let Some((start, line)) = tail.last_line {
            head_from_line(&path, &mut file, start, &line)?
        } else if let Some(newest) = segments.last() {
            let mut seg = File::open(&newest.path).map_err(io_err("open", &newest.path))?;
            let seg_len = seg.metadata().map_err(io_err("read metadata of", &newest.path))?.len();
            let seg_tail = scan_tail(&mut seg, seg_len).map_err(io_err("read", &newest.path))?;
            if seg_tail.complete_len < seg_len {
                return Err(AuditError::Corrupt {
                    path: newest.path.clone(),
                    line: line_number_at(&mut seg, seg_tail.complete_len),
                    reason: "segment ends in an unterminated line".into(),
                });
            }
            match seg_tail.last_line {
                Some((start, line)) => head_from_line(&newest.path, &mut seg, start, &line)?,
                None => {
                    return Err(AuditError::Corrupt {
                        path: newest.path.clone(),
                        line: 1,
                        reason: "segment is empty".into(),
                    })
                }
            }
        } else {
            AuditHead::genesis()
        };

        Ok(AuditLog {
            dir: dir.to_path_buf(),
            path,
            file,
            len: tail.complete_len,
            head,
            max_segment_bytes,
            next_segment,
            torn_tail_removed,
            poisoned: None,
        })
    }

    /// The last record written (genesis for an empty log): new records must
    /// chain onto it, and the daemon replays outbox records above its seq.
    pub fn head(&self) -> &AuditHead {
        &self.head
    }

    /// How many bytes of an unterminated last line [`AuditLog::open`] cut
    /// off, or `None` if the file ended cleanly. Lets the daemon report a
    /// recovered crash instead of it passing silently.
    pub fn torn_tail_removed(&self) -> Option<u64> {
        self.torn_tail_removed
    }

    /// Appends `records`, which must chain exactly onto the head: the first
    /// has `seq = head.seq + 1` and `prev = head.hash`, each next one chains
    /// onto the one before, and every hash recomputes. Any mismatch is
    /// [`AuditError::NotChained`] and nothing is written, because a broken
    /// link could never be repaired afterwards.
    ///
    /// The batch goes out in one write followed by `sync_data`; only then is
    /// the head advanced, so `Ok` means the records are durable. If the write
    /// or sync fails the file is cut back to its previous length; if even
    /// that fails the handle is poisoned ([`AuditError::Poisoned`]).
    ///
    /// Rotation (see [`AuditLog::open`]) happens after a successful append.
    /// It never makes the append fail, since the records are already
    /// durable: if renaming fails it is retried after the next append; if it
    /// fails after the rename, the handle is poisoned and the next append
    /// asks for a reopen. Both are logged.
    pub fn append(&mut self, records: &[AuditRecord]) -> Result<(), AuditError> {
        if let Some(reason) = &self.poisoned {
            return Err(AuditError::Poisoned { path: self.path.clone(), reason: reason.clone() });
        }
        if records.is_empty() {
            return Ok(());
        }

        let mut expected_seq = self.head.seq;
        let mut expected_prev = self.head.hash.as_str();
        let mut buf = String::new();
        for (index, record) in records.iter().enumerate() {
            let not_chained = |reason: String| AuditError::NotChained { index, seq: record.seq, reason };
            expected_seq = expected_seq.checked_add(1).ok_or_else(|| not_chained("seq space exhausted".into()))?;
            if record.seq != expected_seq {
                return Err(not_chained(format!("expected seq {expected_seq}")));
            }
            if record.prev != expected_prev {
                return Err(not_chained(format!("prev is {}, expected {expected_prev}", record.prev)));
            }
            if record.compute_hash() != record.hash {
                return Err(not_chained("hash does not match the record's contents".into()));
            }
            buf.push_str(&record.to_line());
            expected_prev = record.hash.as_str();
        }

        let written = self
            .file
            .write_all(buf.as_bytes())
            .map_err(io_err("append to", &self.path))
            .and_then(|()| self.file.sync_data().map_err(io_err("fsync", &self.path)));
        if let Err(err) = written {
            self.roll_back();
            return Err(err);
        }

        self.len += buf.len() as u64;
        if let Some(last) = records.last() {
            self.head = AuditHead::of(last);
        }

        if self.max_segment_bytes.is_some_and(|max| self.len > max) {
            self.rotate();
        }
        Ok(())
    }

    /// Records with `seq > after_seq`, at most `limit`, oldest first, across
    /// segments — for shipping the log elsewhere and for the API. Segments
    /// wholly at or below `after_seq` are skipped by a binary search over
    /// their first lines instead of being read.
    pub fn read_after(&self, after_seq: u64, limit: usize) -> Result<Vec<AuditRecord>, AuditError> {
        let mut out = Vec::new();
        if limit == 0 || after_seq >= self.head.seq {
            return Ok(out);
        }
        let segments = list_segments(&self.dir).map_err(io_err("list", &self.dir))?;

        // Find the last segment whose first seq is <= after_seq + 1; every
        // segment before it holds only records <= after_seq.
        let (mut lo, mut hi) = (0usize, segments.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let first = first_seq(&segments[mid].path)?;
            if first.is_some_and(|first| first <= after_seq.saturating_add(1)) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        let start = lo.saturating_sub(1);

        let files = segments[start..]
            .iter()
            .map(|s| (s.path.as_path(), None))
            .chain(std::iter::once((self.path.as_path(), Some(self.len))));
        for (path, max_len) in files {
            read_records(path, max_len, after_seq, limit, &mut out)?;
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }

    /// The live log file, `audit.jsonl`.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// After a failed write or sync: cut the file back to the last known
    /// good length so the next append does not land after garbage.
    fn roll_back(&mut self) {
        let restored = self.file.set_len(self.len).and_then(|()| self.file.sync_all());
        if let Err(err) = restored {
            tracing::error!(
                path = %self.path.display(),
                error = %err,
                "could not roll back a failed audit append; refusing further appends until reopened"
            );
            self.poisoned = Some(format!("rolling back a failed append failed: {err}"));
        }
    }

    /// Moves the full `audit.jsonl` aside as the next segment and starts a
    /// fresh one. See [`AuditLog::append`] for how failures are handled.
    fn rotate(&mut self) {
        if self.next_segment > MAX_SEGMENT_NUMBER {
            tracing::warn!(
                dir = %self.dir.display(),
                "audit segment numbers exhausted; not rotating"
            );
            return;
        }
        let target = self.dir.join(segment_name(self.next_segment));
        // std::fs::rename replaces an existing target; an existing segment
        // must never be overwritten, so refuse (and keep appending) instead.
        match fs::symlink_metadata(&target) {
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            Ok(_) => {
                tracing::error!(
                    target = %target.display(),
                    "audit segment already exists; not rotating over it"
                );
                return;
            }
            Err(err) => {
                tracing::warn!(
                    target = %target.display(),
                    error = %err,
                    "cannot check audit segment name; will retry after the next append"
                );
                return;
            }
        }
        if let Err(err) = fs::rename(&self.path, &target) {
            tracing::warn!(
                path = %self.path.display(),
                error = %err,
                "audit log rotation failed; will retry after the next append"
            );
            return;
        }
        self.next_segment += 1;
        // From here on our handle points at the segment: no more appends
        // through it, whatever happens next.
        let fresh = open_current(&self.path).and_then(|file| sync_dir(&self.dir).map(|()| file));
        match fresh {
            Ok(file) => {
                self.file = file;
                self.len = 0;
                tracing::info!(segment = %target.display(), "rotated audit log");
            }
            Err(err) => {
                tracing::error!(
                    path = %self.path.display(),
                    error = %err,
                    "audit log rotation stopped after the rename; reopen the log"
                );
                self.poisoned = Some(format!("rotation stopped after the rename: {err}"));
            }
        }
    }
}

/// Opens `audit.jsonl` for reading and appending (every write lands at the
/// end, whatever the file position), creating it if needed. The caller
/// fsyncs the directory.
///
/// Created 0600 whatever the umask (the rename at rotation keeps the mode,
/// so segments are 0600 too): the log names tenants and resources, which
/// only the daemon's user and those it trusts should read. A file an older
/// version left readable by others is tightened, and that is logged.
fn open_current(path: &Path) -> Result<File, AuditError> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let file = OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .mode(PRIVATE_FILE_MODE)
        .open(path)
        .map_err(io_err("open", path))?;
    let mode = file.metadata().map_err(io_err("read metadata of", path))?.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        file.set_permissions(fs::Permissions::from_mode(PRIVATE_FILE_MODE)).map_err(io_err("chmod 0600", path))?;
        tracing::warn!(path = %path.display(), was = format!("{mode:04o}"), "audit log was readable by others; now 0600");
    }
    Ok(file)
}

/// Mode of the audit files: the daemon's user only.
const PRIVATE_FILE_MODE: u32 = 0o600;

fn sync_dir(dir: &Path) -> Result<(), AuditError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io_err("fsync directory", dir))
}

fn segment_name(number: u32) -> String {
    format!("audit-{number:06}.jsonl")
}

/// `audit-NNNNNN.jsonl` with exactly six digits and N >= 1.
fn parse_segment_name(name: &str) -> Option<u32> {
    let digits = name.strip_prefix("audit-")?.strip_suffix(".jsonl")?;
    if digits.len() != 6 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().filter(|&n| n >= 1)
}

/// The files of the log in `dir` in chain order: the rotated segments,
/// oldest first, then `audit.jsonl` (whether or not it exists yet). For
/// readers outside this module, so they read exactly what [`verify`] reads.
pub fn log_files(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = list_segments(dir)?.into_iter().map(|s| s.path).collect();
    files.push(dir.join(CURRENT_NAME));
    Ok(files)
}

/// Rotated segments in `dir`, oldest (lowest number) first.
fn list_segments(dir: &Path) -> io::Result<Vec<Segment>> {
    let mut segments = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if let Some(number) = entry.file_name().to_str().and_then(parse_segment_name) {
            segments.push(Segment { number, path: entry.path() });
        }
    }
    segments.sort_by_key(|s| s.number);
    Ok(segments)
}

/// What the end of a log file looks like.
struct Tail {
    /// Length up to and including the last `'\n'` (0 if there is none).
    complete_len: u64,
    /// The last complete line without its `'\n'`, with its start offset.
    last_line: Option<(u64, Vec<u8>)>,
}

/// Finds the last complete line of a file by reading backwards, so opening
/// a large log does not read all of it.
fn scan_tail(file: &mut File, len: u64) -> io::Result<Tail> {
    let Some(last_nl) = last_newline_before(file, len)? else {
        return Ok(Tail { complete_len: 0, last_line: None });
    };
    let start = last_newline_before(file, last_nl)?.map_or(0, |p| p + 1);
    let mut line = vec![0u8; usize::try_from(last_nl - start).map_err(io::Error::other)?];
    file.seek(SeekFrom::Start(start))?;
    file.read_exact(&mut line)?;
    Ok(Tail { complete_len: last_nl + 1, last_line: Some((start, line)) })
}

/// Position of the last `'\n'` in `[0, end)`.
fn last_newline_before(file: &mut File, end: u64) -> io::Result<Option<u64>> {
    let mut pos = end;
    let mut buf = Vec::new();
    while pos > 0 {
        let start = pos.saturating_sub(TAIL_CHUNK);
        buf.resize(usize::try_from(pos - start).map_err(io::Error::other)?, 0);
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(&mut buf)?;
        if let Some(i) = buf.iter().rposition(|&b| b == b'\n') {
            return Ok(Some(start + i as u64));
        }
        pos = start;
    }
    Ok(None)
}

/// 1-based number of the line starting at byte `start`, for error messages
/// only (it reads the file up to there); 0 if the file cannot be read.
fn line_number_at(file: &mut File, start: u64) -> u64 {
    count_newlines(file, start).map_or(0, |n| n + 1)
}

/// Number of `'\n'` bytes in `[0, end)`.
fn count_newlines(file: &mut File, end: u64) -> io::Result<u64> {
    file.seek(SeekFrom::Start(0))?;
    let mut reader = BufReader::new(Read::by_ref(file).take(end));
    let mut count = 0u64;
    loop {
        let chunk = reader.fill_buf()?;
        if chunk.is_empty() {
            return Ok(count);
        }
        count += chunk.iter().filter(|&&b| b == b'\n').count() as u64;
        let n = chunk.len();
        reader.consume(n);
    }
}

/// The head a complete last line stands for; the line must be a valid
/// record whose hash recomputes, since the next record will chain onto it.
/// Counting the line number is deferred to the error path so that opening a
/// large, never-rotated log stays cheap.
fn head_from_line(path: &Path, file: &mut File, start: u64, line: &[u8]) -> Result<AuditHead, AuditError> {
    let reason = match parse_line(line) {
        Ok(record) if record.compute_hash() == record.hash => {
            return Ok(AuditHead::of(&record));
        }
        Ok(record) => format!("record seq {}: hash does not match the record's contents", record.seq),
        Err((_, reason)) => reason,
    };
    Err(AuditError::Corrupt { path: path.to_path_buf(), line: line_number_at(file, start), reason })
}

/// Removes a trailing `'\n'`; false (and `line` untouched) if there is none.
fn strip_newline(line: &mut Vec<u8>) -> bool {
    if line.last() == Some(&b'\n') {
        line.pop();
        true
    } else {
        false
    }
}

/// `seq` of the first record of a file, `None` if it is empty.
fn first_seq(path: &Path) -> Result<Option<u64>, AuditError> {
    let file = File::open(path).map_err(io_err("open", path))?;
    let mut line = Vec::new();
    BufReader::new(file).read_until(b'\n', &mut line).map_err(io_err("read", path))?;
    if line.is_empty() {
        return Ok(None);
    }
    if !strip_newline(&mut line) {
        return Err(AuditError::Corrupt { path: path.to_path_buf(), line: 1, reason: "unterminated line".into() });
    }
    parse_line(&line).map(|r| Some(r.seq)).map_err(|(_, reason)| AuditError::Corrupt {
        path: path.to_path_buf(),
        line: 1,
        reason,
    })
}

/// Appends the records of one file with `seq > after_seq` to `out` until it
/// holds `limit`. `max_len` bounds how much of the file is read.
fn read_records(
    path: &Path,
    max_len: Option<u64>,
    after_seq: u64,
    limit: usize,
    out: &mut Vec<AuditRecord>,
) -> Result<(), AuditError> {
    let file = match File::open(path) {
        Ok(file) => file,
        // A freshly rotated-away live file is re-created right after; treat
        // a missing audit.jsonl as empty.
        Err(err) if err.kind() == io::ErrorKind::NotFound && max_len.is_some() => return Ok(()),
        Err(err) => return Err(io_err("open", path)(err)),
    };
    let mut reader = BufReader::new(file.take(max_len.unwrap_or(u64::MAX)));
    let mut line = Vec::new();
    let mut line_no = 0u64;
    while out.len() < limit {
        line.clear();
        let n = reader.read_until(b'\n', &mut line).map_err(io_err("read", path))?;
        if n == 0 {
            break;
        }
        line_no += 1;
        let corrupt = |reason: String| AuditError::Corrupt { path: path.to_path_buf(), line: line_no, reason };
        if !strip_newline(&mut line) {
            return Err(corrupt("unterminated line".into()));
        }
        let record = parse_line(&line).map_err(|(_, reason)| corrupt(reason))?;
        if record.seq > after_seq {
            out.push(record);
        }
    }
    Ok(())
}

/// Parses one line (without its `'\n'`) strictly: a JSON object with exactly
/// the record keys, right types, and written in canonical form. The last
/// check rejects anything the daemon would not have written — including
/// duplicate keys, which JSON parsers resolve differently and which could
/// otherwise make one verifier see different content than another.
/// On failure returns the record's seq if it could be read, and why.
fn parse_line(line: &[u8]) -> Result<AuditRecord, (Option<u64>, String)> {
    let text = std::str::from_utf8(line).map_err(|_| (None, "line is not valid UTF-8".to_owned()))?;
    if text.is_empty() {
        return Err((None, "empty line".into()));
    }
    let value: Value = serde_json::from_str(text).map_err(|e| (None, format!("not valid JSON ({e})")))?;
    let Value::Object(map) = &value else {
        return Err((None, "not a JSON object".into()));
    };
    let seq = map.get("seq").and_then(Value::as_u64);
    let missing: Vec<&str> = RECORD_KEYS.iter().copied().filter(|k| !map.contains_key(*k)).collect();
    if !missing.is_empty() {
        return Err((seq, format!("missing key(s): {}", missing.join(", "))));
    }
    let unknown: Vec<&str> = map.keys().map(String::as_str).filter(|k| !RECORD_KEYS.contains(k)).collect();
    if !unknown.is_empty() {
        return Err((seq, format!("unknown key(s): {}", unknown.join(", "))));
    }
    let record: AuditRecord = serde_json::from_value(value).map_err(|e| (seq, format!("malformed record ({e})")))?;
    if canonical_json(&record.to_value(true)).as_bytes() != line {
        return Err((
            Some(record.seq),
            "line is not in canonical form (RFC 8785), so not as the daemon wrote it".into(),
        ));
    }
    Ok(record)
}

/// Outcome of a successful [`verify`]: how much was checked and where the
/// chain ends, so the operator can compare the head against the daemon's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyReport {
    /// Number of records checked across all files.
    pub records: u64,
    /// The last record (genesis if the log is empty).
    pub head: AuditHead,
}

impl fmt::Display for VerifyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ok: {} records, head {}", self.records, self.head.hash)
    }
}

/// The first place where [`verify`] found the log not to be what the daemon
/// wrote. Only the first problem is reported: everything after a break in
/// the chain is unproven anyway.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyFailure {
    /// The file holding the bad record (or that could not be read).
    pub file: PathBuf,
    /// 1-based line number in `file`; 0 when the failure concerns the file
    /// as a whole (unreadable, misnamed), in which case Display omits it.
    pub line: u64,
    /// The seq of the bad record when it could be read (for a missing
    /// record: the seq that should have been there).
    pub seq: Option<u64>,
    /// What is wrong.
    pub reason: String,
}

impl VerifyFailure {
    fn new(file: &Path, line: u64, seq: Option<u64>, reason: impl Into<String>) -> Self {
        VerifyFailure { file: file.to_path_buf(), line, seq, reason: reason.into() }
    }
}

impl fmt::Display for VerifyFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if self.line > 0 {
            write!(f, ":{}", self.line)?;
        }
        if let Some(seq) = self.seq {
            write!(f, ": record seq {seq}")?;
        }
        write!(f, ": {}", self.reason)
    }
}

impl std::error::Error for VerifyFailure {}

/// Checks the whole hash chain offline (`retentiond audit verify PATH`).
///
/// `path` may be `audit.jsonl` or the directory holding it; all segments
/// `audit-NNNNNN.jsonl` in that directory are checked oldest first (their
/// numbers must run 1, 2, 3, … without gaps), then `audit.jsonl`. A
/// directory whose `audit.jsonl` is missing but which has segments is
/// accepted as a log whose live file was not yet re-created after a rotation.
///
/// Every line must be a complete (newline-terminated) record with exactly
/// the known keys, in canonical form; seq must run 1, 2, 3, …; `prev` must
/// equal the previous record's hash ([`GENESIS_HASH`] first); each hash must
/// recompute. A final line without `'\n'` fails as truncated — `verify`
/// never repairs, unlike [`AuditLog::open`].
///
/// A chain cut off after a complete record is still a valid chain, so
/// removing whole trailing records is only detectable against an
/// independently kept head: with `expected_head`, the last record must be
/// exactly it.
pub fn verify(path: &Path, expected_head: Option<&AuditHead>) -> Result<VerifyReport, VerifyFailure> {
    let meta = fs::metadata(path).map_err(|e| VerifyFailure::new(path, 0, None, format!("cannot read: {e}")))?;
    let (dir, current) = if meta.is_dir() {
        (path.to_path_buf(), path.join(CURRENT_NAME))
    } else {
        if path.file_name().and_then(|n| n.to_str()).and_then(parse_segment_name).is_some() {
            return Err(VerifyFailure::new(
                path,
                0,
                None,
                "is a rotated segment; pass audit.jsonl or the directory holding it",
            ));
        }
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        (dir, path.to_path_buf())
    };

    let segments =
        list_segments(&dir).map_err(|e| VerifyFailure::new(&dir, 0, None, format!("cannot list directory: {e}")))?;
    for (i, segment) in segments.iter().enumerate() {
        let expected = u32::try_from(i + 1).unwrap_or(u32::MAX);
        if segment.number != expected {
            return Err(VerifyFailure::new(
                &segment.path,
                0,
                None,
                format!("segment numbering has a gap: {} is missing", segment_name(expected)),
            ));
        }
    }
    let current_exists = match fs::metadata(&current) {
        Ok(_) => true,
        Err(e) if e.kind() == io::ErrorKind::NotFound && !segments.is_empty() => false,
        Err(e) => return Err(VerifyFailure::new(&current, 0, None, format!("cannot read: {e}"))),
    };

    let mut head = AuditHead::genesis();
    let mut records = 0u64;
    for segment in &segments {
        let lines = verify_file(&segment.path, expected_head, &mut head, &mut records)?;
        if lines == 0 {
            return Err(VerifyFailure::new(
                &segment.path,
                0,
                None,
                "segment is empty (rotation only ever moves a non-empty log aside)",
            ));
        }
    }
    let current_lines = if current_exists { verify_file(&current, expected_head, &mut head, &mut records)? } else { 0 };

    if let Some(expected) = expected_head {
        if head != *expected {
            // Records at or past the expected seq were already checked
            // against it in verify_file, so the log is short (or the expected
            // head is not a possible head at all).
            let reason = if head.seq < expected.seq {
                format!(
                    "missing: the log ends at seq {} but the expected head is seq {} hash {}",
                    head.seq, expected.seq, expected.hash
                )
            } else {
                format!(
                    "the log's head (seq {} hash {}) is not the expected head (seq {} hash {})",
                    head.seq, head.hash, expected.seq, expected.hash
                )
            };
            let seq = head.seq.saturating_add(1);
            return Err(VerifyFailure::new(&current, current_lines + 1, Some(seq), reason));
        }
    }
    Ok(VerifyReport { records, head })
}

/// Verifies one file, continuing the chain from `head`; returns its number
/// of lines. Records at or beyond `expected`'s seq are checked against it
/// here so the failure names the exact line.
fn verify_file(
    path: &Path,
    expected: Option<&AuditHead>,
    head: &mut AuditHead,
    records: &mut u64,
) -> Result<u64, VerifyFailure> {
    let file = File::open(path).map_err(|e| VerifyFailure::new(path, 0, None, format!("cannot read: {e}")))?;
    let mut reader = BufReader::new(file);
    let mut line = Vec::new();
    let mut line_no = 0u64;
    loop {
        line.clear();
        let n = reader
            .read_until(b'\n', &mut line)
            .map_err(|e| VerifyFailure::new(path, line_no + 1, None, format!("cannot read: {e}")))?;
        if n == 0 {
            return Ok(line_no);
        }
        line_no += 1;
        if !strip_newline(&mut line) {
            let seq = parse_line(&line).ok().map(|r| r.seq);
            return Err(VerifyFailure::new(path, line_no, seq, "truncated: last line has no terminating newline"));
        }
        let record = parse_line(&line).map_err(|(seq, reason)| VerifyFailure::new(path, line_no, seq, reason))?;
        let fail = |reason: String| VerifyFailure::new(path, line_no, Some(record.seq), reason);
        let expected_seq = head.seq.saturating_add(1);
        if record.seq != expected_seq {
            return Err(fail(format!("expected seq {expected_seq} (records missing, reordered or inserted)")));
        }
        if record.prev != head.hash {
            return Err(fail(format!("prev does not match the hash of the record before it ({})", head.hash)));
        }
        if record.compute_hash() != record.hash {
            return Err(fail("hash does not match the record's contents (altered)".into()));
        }
        if let Some(expected) = expected {
            if record.seq == expected.seq && record.hash != expected.hash {
                return Err(fail(format!("hash differs from the expected head's hash {}", expected.hash)));
            }
            if record.seq > expected.seq {
                return Err(fail(format!("record beyond the expected head (seq {})", expected.seq)));
            }
        }
        *head = AuditHead::of(&record);
        *records += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};
    use proptest::prelude::*;
    use serde_json::json;

    fn ts(secs: i64) -> Timestamp {
        Utc.timestamp_opt(1_790_000_000 + secs, 0).unwrap()
    }

    /// `n` records chained onto `head`.
    fn chain(head: &AuditHead, n: u64) -> Vec<AuditRecord> {
        let mut prev = head.hash.clone();
        (head.seq + 1..=head.seq + n)
            .map(|seq| {
                let r = AuditRecord::seal(
                    seq,
                    ts(seq as i64),
                    "copy.deleted",
                    Some("t-1"),
                    if seq % 2 == 0 { None } else { Some("vm-01") },
                    json!({"step": seq, "note": "abcd", "nested": {"z": 1, "a": [true, null]}}),
                    &prev,
                );
                prev = r.hash.clone();
                r
            })
            .collect()
    }

    /// A fresh unrotated log of `n` records; returns its head.
    fn write_log(dir: &Path, n: u64) -> AuditHead {
        let mut log = AuditLog::open(dir, None).unwrap();
        let records = chain(log.head(), n);
        log.append(&records).unwrap();
        log.head().clone()
    }

    fn lines_of(path: &Path) -> Vec<String> {
        fs::read_to_string(path).unwrap().lines().map(|l| format!("{l}\n")).collect()
    }

    fn seqs(records: &[AuditRecord]) -> Vec<u64> {
        records.iter().map(|r| r.seq).collect()
    }

    // ---- canonical JSON -------------------------------------------------

    #[test]
    fn canonical_sorts_keys_by_utf16_at_every_level() {
        // U+FF21 sorts after U+1F600 in UTF-16 (0xFF21 > 0xD83D) but before
        // it in UTF-8 (EF.. < F0..); U+00E9 sorts first either way.
        let v = json!({
            "b": 1,
            "a": {"z": true, "y": null, "m": [{"d": 1, "c": 2}]},
            "\u{FF21}": 1,
            "\u{1F600}": 2,
            "\u{e9}": 3,
        });
        assert_eq!(
            canonical_json(&v),
            "{\"a\":{\"m\":[{\"c\":2,\"d\":1}],\"y\":null,\"z\":true},\"b\":1,\
             \"\u{e9}\":3,\"\u{1F600}\":2,\"\u{FF21}\":1}"
        );
        // serde_json's own (byte) order differs, so the test above can fail.
        let bytewise = serde_json::to_string(&v).unwrap();
        assert!(bytewise.find('\u{FF21}') < bytewise.find('\u{1F600}'));
    }

    #[test]
    fn canonical_matches_rfc8785_sorting_example() {
        // RFC 8785 §3.2.3.
        let v: Value = serde_json::from_str(
            r#"{"\u20ac":"Euro Sign","\r":"Carriage Return","\ufb33":"Hebrew Letter Dalet With Dagesh","1":"One","\ud83d\ude00":"Emoji: Grinning Face","\u0080":"Control","\u00f6":"Latin Small Letter O With Diaeresis"}"#,
        )
        .unwrap();
        assert_eq!(
            canonical_json(&v),
            "{\"\\r\":\"Carriage Return\",\"1\":\"One\",\"\u{80}\":\"Control\",\
             \"\u{f6}\":\"Latin Small Letter O With Diaeresis\",\"\u{20ac}\":\"Euro Sign\",\
             \"\u{1F600}\":\"Emoji: Grinning Face\",\
             \"\u{fb33}\":\"Hebrew Letter Dalet With Dagesh\"}"
        );
    }

    #[test]
    fn canonical_is_compact_literal_and_escapes_like_jcs() {
        let v = json!({
            "s": "q\"b\\s\u{8}\t\n\u{c}\r\u{0}\u{1}\u{1f}\u{7f}/\u{e9}\u{20ac}\u{1F600}\u{2028}",
            "n": [0, -1, 42, u64::MAX, i64::MIN, 9_007_199_254_740_993u64],
            "b": [true, false, null],
            "e": {},
            "a": [],
        });
        assert_eq!(
            canonical_json(&v),
            "{\"a\":[],\"b\":[true,false,null],\"e\":{},\
             \"n\":[0,-1,42,18446744073709551615,-9223372036854775808,9007199254740993],\
             \"s\":\"q\\\"b\\\\s\\b\\t\\n\\f\\r\\u0000\\u0001\\u001f\u{7f}/\u{e9}\u{20ac}\u{1F600}\u{2028}\"}"
        );
    }

    fn arb_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<String>().prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 32, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::btree_map(any::<String>(), inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        /// Our string escaping is byte-identical to serde_json's, which
        /// escapes exactly what JCS requires, the same way.
        #[test]
        fn canonical_strings_match_serde_json(s in any::<String>()) {
            prop_assert_eq!(canonical_json(&Value::String(s.clone())), serde_json::to_string(&s).unwrap());
        }

        /// Canonical output is valid JSON for the same value, and a fixpoint.
        #[test]
        fn canonical_round_trips(v in arb_value()) {
            let text = canonical_json(&v);
            let back: Value = serde_json::from_str(&text).unwrap();
            prop_assert_eq!(&back, &v);
            prop_assert_eq!(canonical_json(&back), text);
        }
    }

    // ---- records ----------------------------------------------------------

    #[test]
    fn sealed_record_hash_matches_independent_sha256() {
        let at = Utc.with_ymd_and_hms(2026, 1, 31, 0, 0, 0).unwrap();
        let r = AuditRecord::seal(
            1,
            at,
            "resource.deleted",
            Some("t-1"),
            Some("vm-01"),
            json!({"ids": ["a", "b"], "executor": "fs", "copies": 2}),
            GENESIS_HASH,
        );
        // Computed once with: printf '%s' '<this string>' | sha256sum
        let canonical = "{\"at\":\"2026-01-31T00:00:00Z\",\"data\":{\"copies\":2,\"executor\":\"fs\",\"ids\":[\"a\",\"b\"]},\"kind\":\"resource.deleted\",\"prev\":\"0000000000000000000000000000000000000000000000000000000000000000\",\"resource\":\"vm-01\",\"seq\":1,\"tenant\":\"t-1\"}";
        let mut without_hash = serde_json::to_value(&r).unwrap();
        without_hash.as_object_mut().unwrap().remove("hash");
        assert_eq!(canonical_json(&without_hash), canonical);
        assert_eq!(r.hash, "d4c0ce5a3db7fac773ab5dad5825578cbec67f6fcb2e3cc8f62db3d0d36868f4");
        assert_eq!(r.compute_hash(), r.hash);
    }

    #[test]
    fn to_line_is_one_canonical_line_that_parses_back() {
        let r = AuditRecord::seal(7, ts(0), "daemon.started", None, None, json!({"why": "line\nbreak"}), GENESIS_HASH);
        let line = r.to_line();
        assert!(line.ends_with('\n'));
        assert_eq!(line.matches('\n').count(), 1);
        assert!(line.contains("\"tenant\":null") && line.contains("\"resource\":null"));
        assert_eq!(parse_line(line.trim_end().as_bytes()).unwrap(), r);
        let mut changed = r.clone();
        changed.tenant = Some("t".into());
        assert_ne!(changed.compute_hash(), r.hash);
    }

    #[test]
    fn genesis_is_64_zeros() {
        assert_eq!(GENESIS_HASH.len(), 64);
        assert!(GENESIS_HASH.bytes().all(|b| b == b'0'));
        assert_eq!(AuditHead::genesis(), AuditHead { seq: 0, hash: GENESIS_HASH.into() });
    }

    // ---- append / open ----------------------------------------------------

    #[test]
    fn append_and_reopen_keep_the_head() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = AuditLog::open(dir.path(), None).unwrap();
        assert_eq!(log.head(), &AuditHead::genesis());
        assert_eq!(log.path(), dir.path().join("audit.jsonl"));
        assert_eq!(log.torn_tail_removed(), None);

        let first = chain(log.head(), 3);
        log.append(&first).unwrap();
        assert_eq!(log.head(), &AuditHead::of(&first[2]));
        let second = chain(log.head(), 1);
        log.append(&second).unwrap();
        log.append(&[]).unwrap();
        let head = log.head().clone();
        assert_eq!(head.seq, 4);
        drop(log);

        let log = AuditLog::open(dir.path(), None).unwrap();
        assert_eq!(log.head(), &head);
        assert_eq!(log.torn_tail_removed(), None);
        assert_eq!(seqs(&log.read_after(0, 100).unwrap()), [1, 2, 3, 4]);
        assert_eq!(seqs(&log.read_after(1, 2).unwrap()), [2, 3]);
        assert!(log.read_after(4, 10).unwrap().is_empty());
        assert!(log.read_after(0, 0).unwrap().is_empty());
        let report = verify(dir.path(), Some(&head)).unwrap();
        assert_eq!(report, VerifyReport { records: 4, head: head.clone() });
        assert_eq!(report.to_string(), format!("ok: 4 records, head {}", head.hash));
    }

    #[test]
    fn append_refuses_records_that_do_not_chain_and_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        write_log(dir.path(), 2);
        let mut log = AuditLog::open(dir.path(), None).unwrap();
        let before = fs::read(log.path()).unwrap();
        let head = log.head().clone();
        let good = chain(&head, 2);

        let mut wrong_seq = chain(&AuditHead { seq: head.seq + 1, hash: head.hash.clone() }, 1);
        assert_eq!(wrong_seq[0].seq, 4);
        let mut wrong_prev = good[0].clone();
        wrong_prev.prev = GENESIS_HASH.into();
        wrong_prev.hash = wrong_prev.compute_hash();
        let mut wrong_hash = good[0].clone();
        wrong_hash.data = json!({"step": 99});
        let mut bad_second = good.clone();
        bad_second[1].hash = good[0].hash.clone();
        let mut repeated = good[0].clone();
        repeated.seq = head.seq;
        repeated.hash = repeated.compute_hash();

        for (batch, index) in [
            (std::mem::take(&mut wrong_seq), 0),
            (vec![wrong_prev], 0),
            (vec![wrong_hash], 0),
            (bad_second, 1),
            (vec![repeated], 0),
        ] {
            match log.append(&batch) {
                Err(AuditError::NotChained { index: i, .. }) => assert_eq!(i, index),
                other => panic!("expected NotChained, got {other:?}"),
            }
            assert_eq!(log.head(), &head);
            assert_eq!(fs::read(log.path()).unwrap(), before);
        }
        log.append(&good).unwrap();
        assert_eq!(verify(dir.path(), Some(log.head())).unwrap().records, 4);
    }

    #[test]
    fn open_cuts_exactly_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let head = write_log(dir.path(), 3);
        let path = dir.path().join("audit.jsonl");
        let valid = fs::read(&path).unwrap();
        let next = chain(&head, 1).remove(0).to_line();
        let half = &next.as_bytes()[..next.len() / 2];
        let mut torn = valid.clone();
        torn.extend_from_slice(half);
        fs::write(&path, &torn).unwrap();
        assert!(verify(&path, None).is_err());

        let mut log = AuditLog::open(dir.path(), None).unwrap();
        assert_eq!(log.torn_tail_removed(), Some(half.len() as u64));
        assert_eq!(log.head(), &head);
        assert_eq!(fs::read(&path).unwrap(), valid);
        assert_eq!(verify(&path, Some(&head)).unwrap().records, 3);

        // The outbox replay then continues the chain.
        log.append(&chain(&head, 1)).unwrap();
        assert_eq!(verify(&path, Some(log.head())).unwrap().records, 4);
        drop(log);
        assert_eq!(AuditLog::open(dir.path(), None).unwrap().torn_tail_removed(), None);
    }

    #[test]
    fn open_cuts_a_torn_first_line_back_to_genesis() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        fs::write(&path, b"{\"at\":\"2026-").unwrap();
        let log = AuditLog::open(dir.path(), None).unwrap();
        assert_eq!(log.torn_tail_removed(), Some(12));
        assert_eq!(log.head(), &AuditHead::genesis());
        assert_eq!(fs::metadata(&path).unwrap().len(), 0);
    }

    #[test]
    fn open_refuses_a_damaged_last_record() {
        let dir = tempfile::tempdir().unwrap();
        write_log(dir.path(), 3);
        let path = dir.path().join("audit.jsonl");
        let text = fs::read_to_string(&path).unwrap();
        let idx = text.rfind("abcd").unwrap();
        let damaged = format!("{}abce{}", &text[..idx], &text[idx + 4..]);
        fs::write(&path, &damaged).unwrap();
        match AuditLog::open(dir.path(), None) {
            Err(AuditError::Corrupt { line, reason, .. }) => {
                assert_eq!(line, 3);
                assert!(reason.contains("hash"), "{reason}");
            }
            other => panic!("expected Corrupt, got {other:?}"),
        }
        // Nothing was cut: the damage stays for verify to show.
        assert_eq!(fs::read_to_string(&path).unwrap(), damaged);
    }

    // ---- verify -------------------------------------------------------------

    /// Writes a 5-record log, rewrites its lines with `edit`, and returns
    /// the verify result against the path (no expected head).
    fn verify_edited(edit: impl FnOnce(&mut Vec<String>)) -> Result<VerifyReport, VerifyFailure> {
        let dir = tempfile::tempdir().unwrap();
        write_log(dir.path(), 5);
        let path = dir.path().join("audit.jsonl");
        let mut lines = lines_of(&path);
        edit(&mut lines);
        fs::write(&path, lines.concat()).unwrap();
        verify(&path, None)
    }

    fn assert_fails_at(result: Result<VerifyReport, VerifyFailure>, line: u64, seq: Option<u64>, why: &str) {
        let failure = result.expect_err("tampering went unnoticed");
        assert_eq!((failure.line, failure.seq), (line, seq), "{failure}");
        assert!(failure.reason.contains(why), "{failure}");
        assert!(failure.file.ends_with("audit.jsonl"));
    }

    #[test]
    fn verify_accepts_an_untouched_log() {
        let report = verify_edited(|_| {}).unwrap();
        assert_eq!(report.records, 5);
        assert_eq!(report.head.seq, 5);
    }

    #[test]
    fn verify_catches_a_changed_byte_in_data() {
        let r = verify_edited(|lines| lines[1] = lines[1].replacen("abcd", "abcx", 1));
        assert_fails_at(r, 2, Some(2), "hash does not match");
    }

    #[test]
    fn verify_catches_a_deleted_middle_line() {
        let r = verify_edited(|lines| {
            lines.remove(2);
        });
        assert_fails_at(r, 3, Some(4), "expected seq 3");
    }

    #[test]
    fn verify_catches_swapped_lines() {
        let r = verify_edited(|lines| lines.swap(1, 2));
        assert_fails_at(r, 2, Some(3), "expected seq 2");
    }

    #[test]
    fn verify_catches_an_inserted_copy() {
        let r = verify_edited(|lines| {
            let copy = lines[1].clone();
            lines.insert(2, copy);
        });
        assert_fails_at(r, 3, Some(2), "expected seq 3");
    }

    #[test]
    fn verify_catches_a_mid_line_truncation() {
        let r = verify_edited(|lines| {
            lines.truncate(4);
            let cut = lines[3].len() / 2;
            lines[3].truncate(cut);
        });
        assert_fails_at(r, 4, None, "truncated");
    }

    #[test]
    fn verify_catches_a_missing_final_newline() {
        let r = verify_edited(|lines| {
            let last = lines.last_mut().unwrap();
            last.pop();
        });
        assert_fails_at(r, 5, Some(5), "truncated");
    }

    #[test]
    fn verify_catches_a_removed_last_line_only_against_the_expected_head() {
        let dir = tempfile::tempdir().unwrap();
        let head = write_log(dir.path(), 5);
        let path = dir.path().join("audit.jsonl");
        let mut lines = lines_of(&path);
        lines.pop();
        fs::write(&path, lines.concat()).unwrap();

        let report = verify(&path, None).unwrap();
        assert_eq!(report.records, 4);
        let failure = verify(&path, Some(&head)).unwrap_err();
        assert_eq!((failure.line, failure.seq), (5, Some(5)), "{failure}");
        assert!(failure.reason.contains("missing"), "{failure}");
        assert_eq!(
            failure.to_string(),
            format!(
                "{}:5: record seq 5: missing: the log ends at seq 4 but the expected head is seq 5 hash {}",
                path.display(),
                head.hash
            )
        );
    }

    #[test]
    fn verify_checks_records_against_the_expected_head() {
        let dir = tempfile::tempdir().unwrap();
        let head = write_log(dir.path(), 5);
        let mut older = AuditLog::open(dir.path(), None).unwrap().read_after(2, 1).unwrap();
        let at_three = AuditHead::of(&older.remove(0));
        assert_fails_at(verify(dir.path(), Some(&at_three)), 4, Some(4), "beyond the expected head");
        let forged = AuditHead { seq: 5, hash: GENESIS_HASH.into() };
        assert_fails_at(verify(dir.path(), Some(&forged)), 5, Some(5), "expected head");
        assert_fails_at(verify(dir.path(), Some(&AuditHead::genesis())), 1, Some(1), "beyond");
        assert!(verify(dir.path(), Some(&head)).is_ok());
    }

    #[test]
    fn verify_rejects_lines_the_daemon_would_not_write() {
        type Edit = fn(&str) -> String;
        let cases: [(&str, Edit); 6] = [
            ("canonical", |l| l.replacen(",", ", ", 1)),
            ("canonical", |l| l.replacen("{", "{\"seq\":2,", 1)), // duplicate key
            ("unknown key", |l| l.replacen("{", "{\"extra\":1,", 1)),
            ("missing key", |l| l.replacen("\"tenant\":\"t-1\"", "\"x\":1", 1).replacen(",\"x\":1", "", 1)),
            ("not valid JSON", |_| "{\"seq\":2,\n".into()),
            ("empty line", |_| "\n".into()),
        ];
        for (why, edit) in cases {
            let r = verify_edited(|lines| lines[1] = edit(&lines[1]));
            let failure = r.expect_err(why);
            assert_eq!(failure.line, 2, "{why}: {failure}");
            assert!(failure.reason.contains(why), "{why}: {failure}");
        }
    }

    #[test]
    fn verify_of_a_new_log_is_ok_and_empty() {
        let dir = tempfile::tempdir().unwrap();
        AuditLog::open(dir.path(), None).unwrap();
        let report = verify(dir.path(), Some(&AuditHead::genesis())).unwrap();
        assert_eq!(report.records, 0);
        assert_eq!(report.to_string(), format!("ok: 0 records, head {GENESIS_HASH}"));
        let missing = verify(&dir.path().join("nope"), None).unwrap_err();
        assert_eq!(missing.line, 0);
        assert!(missing.to_string().starts_with(&format!("{}: cannot read", dir.path().join("nope").display())));
    }

    // ---- rotation -----------------------------------------------------------

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> =
            fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        names.sort();
        names
    }

    #[test]
    fn rotation_keeps_one_chain_across_segments() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        // Rotate after every append.
        let mut log = AuditLog::open(d, Some(1)).unwrap();
        for _ in 0..3 {
            let next = chain(log.head(), 1);
            log.append(&next).unwrap();
        }
        let batch = chain(log.head(), 2);
        log.append(&batch).unwrap();
        let head5 = log.head().clone();
        assert_eq!(head5.seq, 5);
        drop(log);
        assert_eq!(
            names(d),
            ["audit-000001.jsonl", "audit-000002.jsonl", "audit-000003.jsonl", "audit-000004.jsonl", "audit.jsonl"]
        );
        assert_eq!(fs::metadata(d.join("audit.jsonl")).unwrap().len(), 0);
        assert_eq!(lines_of(&d.join("audit-000004.jsonl")).len(), 2);

        // audit.jsonl is empty: the head comes from the newest segment.
        let mut log = AuditLog::open(d, Some(100_000)).unwrap();
        assert_eq!(log.head(), &head5);
        let more = chain(log.head(), 2);
        log.append(&more).unwrap();
        let head7 = log.head().clone();
        assert_eq!(lines_of(log.path()).len(), 2);

        assert_eq!(seqs(&log.read_after(0, 100).unwrap()), [1, 2, 3, 4, 5, 6, 7]);
        assert_eq!(seqs(&log.read_after(2, 3).unwrap()), [3, 4, 5]);
        assert_eq!(seqs(&log.read_after(3, 1).unwrap()), [4]);
        assert_eq!(seqs(&log.read_after(4, 10).unwrap()), [5, 6, 7]);
        assert_eq!(seqs(&log.read_after(5, 10).unwrap()), [6, 7]);
        assert!(log.read_after(7, 10).unwrap().is_empty());
        let all = log.read_after(0, 100).unwrap();
        assert_eq!(all[3..5], batch[..]);
        drop(log);

        for path in [d.to_path_buf(), d.join("audit.jsonl")] {
            let report = verify(&path, Some(&head7)).unwrap();
            assert_eq!(report, VerifyReport { records: 7, head: head7.clone() });
        }

        // Numbering continues after a reopen.
        let mut log = AuditLog::open(d, Some(1)).unwrap();
        assert_eq!(log.head(), &head7);
        let eight = chain(log.head(), 1);
        log.append(&eight).unwrap();
        assert!(d.join("audit-000005.jsonl").exists());
        assert_eq!(lines_of(&d.join("audit-000005.jsonl")).len(), 3);
        assert_eq!(AuditLog::open(d, None).unwrap().head(), log.head());
        assert_eq!(verify(d, Some(log.head())).unwrap().records, 8);

        // A segment given directly is refused; a missing one is named.
        assert!(verify(&d.join("audit-000002.jsonl"), None).is_err());
        fs::remove_file(d.join("audit-000002.jsonl")).unwrap();
        let failure = verify(d, None).unwrap_err();
        assert!(failure.file.ends_with("audit-000003.jsonl"), "{failure}");
        assert!(failure.reason.contains("audit-000002.jsonl is missing"), "{failure}");
    }

    #[test]
    fn rotation_at_a_size_threshold_and_a_lost_live_file() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let probe = chain(&AuditHead::genesis(), 1)[0].to_line().len() as u64;
        // One record fits, the second pushes the file past the limit.
        let mut log = AuditLog::open(d, Some(probe + probe / 2)).unwrap();
        for _ in 0..5 {
            let next = chain(log.head(), 1);
            log.append(&next).unwrap();
        }
        let head = log.head().clone();
        drop(log);
        assert_eq!(names(d), ["audit-000001.jsonl", "audit-000002.jsonl", "audit.jsonl"]);
        assert_eq!(lines_of(&d.join("audit.jsonl")).len(), 1);

        // A crash between the rename and creating audit.jsonl.
        let lines = lines_of(&d.join("audit.jsonl"));
        fs::remove_file(d.join("audit.jsonl")).unwrap();
        fs::write(d.join("audit-000003.jsonl"), lines.concat()).unwrap();
        assert_eq!(verify(d, Some(&head)).unwrap().records, 5);
        let log = AuditLog::open(d, None).unwrap();
        assert_eq!(log.head(), &head);
        assert_eq!(seqs(&log.read_after(3, 10).unwrap()), [4, 5]);

        // Tampering inside a segment is named in that segment.
        drop(log);
        let seg = d.join("audit-000001.jsonl");
        let mut seg_lines = lines_of(&seg);
        seg_lines[1] = seg_lines[1].replacen("abcd", "abcx", 1);
        fs::write(&seg, seg_lines.concat()).unwrap();
        let failure = verify(d, None).unwrap_err();
        assert!(failure.file.ends_with("audit-000001.jsonl"), "{failure}");
        assert_eq!((failure.line, failure.seq), (2, Some(2)));
    }
}

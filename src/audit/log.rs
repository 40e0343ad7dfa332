//! The segmented, append-only audit file: open, append with fsync,
//! rotate, and read back.

use super::*;

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

pub(super) fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> AuditError + 'a {
    move |source| AuditError::Io { op, path: path.to_path_buf(), source }
}

/// A rotated segment `audit-NNNNNN.jsonl`.
#[derive(Clone, Debug)]
pub(super) struct Segment {
    pub(super) number: u32,
    pub(super) path: PathBuf,
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
        self.append_checked(records, true)
    }

    /// [`AuditLog::append`] for records this process has just sealed
    /// ([`AuditRecord::seal`]) and not changed since: their hash was computed
    /// from these very fields, so it is not computed a second time (issue
    /// 11: hashing every record twice was a tenth of a deletion's cost).
    /// Their sequence and chaining are still checked. Records read back from
    /// anywhere (the outbox after a crash) go through `append`.
    pub fn append_sealed(&mut self, records: &[AuditRecord]) -> Result<(), AuditError> {
        self.append_checked(records, false)
    }

    fn append_checked(&mut self, records: &[AuditRecord], check_hashes: bool) -> Result<(), AuditError> {
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
            if check_hashes && record.compute_hash() != record.hash {
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
    pub(super) fn roll_back(&mut self) {
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
    pub(super) fn rotate(&mut self) {
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
pub(super) fn open_current(path: &Path) -> Result<File, AuditError> {
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
pub(super) const PRIVATE_FILE_MODE: u32 = 0o600;

pub(super) fn sync_dir(dir: &Path) -> Result<(), AuditError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io_err("fsync directory", dir))
}

pub(super) fn segment_name(number: u32) -> String {
    format!("audit-{number:06}.jsonl")
}

/// `audit-NNNNNN.jsonl` with exactly six digits and N >= 1.
pub(super) fn parse_segment_name(name: &str) -> Option<u32> {
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
pub(super) fn list_segments(dir: &Path) -> io::Result<Vec<Segment>> {
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
pub(super) struct Tail {
    /// Length up to and including the last `'\n'` (0 if there is none).
    complete_len: u64,
    /// The last complete line without its `'\n'`, with its start offset.
    last_line: Option<(u64, Vec<u8>)>,
}

/// Finds the last complete line of a file by reading backwards, so opening
/// a large log does not read all of it.
pub(super) fn scan_tail(file: &mut File, len: u64) -> io::Result<Tail> {
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
pub(super) fn last_newline_before(file: &mut File, end: u64) -> io::Result<Option<u64>> {
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
pub(super) fn line_number_at(file: &mut File, start: u64) -> u64 {
    count_newlines(file, start).map_or(0, |n| n + 1)
}

/// Number of `'\n'` bytes in `[0, end)`.
pub(super) fn count_newlines(file: &mut File, end: u64) -> io::Result<u64> {
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
pub(super) fn head_from_line(path: &Path, file: &mut File, start: u64, line: &[u8]) -> Result<AuditHead, AuditError> {
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
pub(super) fn strip_newline(line: &mut Vec<u8>) -> bool {
    if line.last() == Some(&b'\n') {
        line.pop();
        true
    } else {
        false
    }
}

/// `seq` of the first record of a file, `None` if it is empty.
pub(super) fn first_seq(path: &Path) -> Result<Option<u64>, AuditError> {
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
pub(super) fn read_records(
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
pub(super) fn parse_line(line: &[u8]) -> Result<AuditRecord, (Option<u64>, String)> {
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

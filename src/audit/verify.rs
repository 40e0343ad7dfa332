//! Offline verification of a whole log, segment by segment.

use super::*;

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
    pub(super) fn new(file: &Path, line: u64, seq: Option<u64>, reason: impl Into<String>) -> Self {
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
pub(super) fn verify_file(
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

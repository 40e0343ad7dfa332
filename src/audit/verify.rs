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

/// Bytes read and checked at a time: large enough that starting the
/// worker threads is lost in the noise, small enough to stay in cache-sized
/// pieces per thread.
const CHUNK_BYTES: usize = 4 * 1024 * 1024;

/// Verifies one file, continuing the chain from `head`; returns its number
/// of lines. Records at or beyond `expected`'s seq are checked against it
/// here so the failure names the exact line.
pub(super) fn verify_file(
    path: &Path,
    expected: Option<&AuditHead>,
    head: &mut AuditHead,
    records: &mut u64,
) -> Result<u64, VerifyFailure> {
    verify_file_in_chunks(path, expected, head, records, CHUNK_BYTES)
}

/// [`verify_file`] reading `chunk` bytes at a time (tests use small chunks
/// so that chunk and part edges fall everywhere).
///
/// Each chunk's complete lines are split into one part per core; the parts
/// are scanned in parallel ([`scan_part`]), each checking its own records
/// and the links between them, and the links between parts and to the
/// chain so far are then checked here in order. A part with anything the
/// fast path does not vouch for is checked again line by line the general
/// way ([`check_line`]), continuing from the head before it, so the first
/// bad record and the message naming it are exactly what a purely
/// sequential check finds.
pub(super) fn verify_file_in_chunks(
    path: &Path,
    expected: Option<&AuditHead>,
    head: &mut AuditHead,
    records: &mut u64,
    chunk: usize,
) -> Result<u64, VerifyFailure> {
    let chunk = chunk.max(1);
    let mut file = File::open(path).map_err(|e| VerifyFailure::new(path, 0, None, format!("cannot read: {e}")))?;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, 8);
    let mut buf: Vec<u8> = Vec::with_capacity(chunk);
    let mut line_no = 0u64;
    loop {
        // Top the buffer up to `chunk` bytes (more when one line is longer).
        let mut eof = false;
        let mut read_error = None;
        let mut complete = 0;
        while !eof && read_error.is_none() {
            // Past `chunk` only while no line has ended yet: grow by doubling.
            let want = if buf.len() < chunk { chunk } else { buf.len() * 2 };
            let limit = u64::try_from(want - buf.len()).unwrap_or(u64::MAX);
            match Read::by_ref(&mut file).take(limit).read_to_end(&mut buf) {
                Ok(0) => eof = true,
                Ok(_) => {}
                Err(e) => read_error = Some(e),
            }
            complete = buf.iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1);
            if buf.len() >= chunk && complete > 0 {
                break;
            }
        }
        verify_block(path, &buf[..complete], threads, expected, head, records, &mut line_no)?;
        buf.drain(..complete);
        if let Some(e) = read_error {
            return Err(VerifyFailure::new(path, line_no + 1, None, format!("cannot read: {e}")));
        }
        if eof {
            if buf.is_empty() {
                return Ok(line_no);
            }
            let seq = parse_line(&buf).ok().map(|r| r.seq);
            return Err(VerifyFailure::new(path, line_no + 1, seq, "truncated: last line has no terminating newline"));
        }
    }
}

/// Checks the complete lines of `block` (each ending in `'\n'`), which
/// follow line `line_no` of the file, advancing `head`, `records` and
/// `line_no`.
fn verify_block(
    path: &Path,
    block: &[u8],
    threads: usize,
    expected: Option<&AuditHead>,
    head: &mut AuditHead,
    records: &mut u64,
    line_no: &mut u64,
) -> Result<(), VerifyFailure> {
    if block.is_empty() {
        return Ok(());
    }
    let parts = split_lines(block, threads);
    let scanned: Vec<PartScan> = if parts.len() == 1 {
        vec![scan_part(parts[0])]
    } else {
        std::thread::scope(|s| {
            let others: Vec<_> = parts[1..].iter().map(|part| s.spawn(|| scan_part(part))).collect();
            let mut all = vec![scan_part(parts[0])];
            // A scan cannot panic short of a bug; treat one as "unproven",
            // which sends the part down the general path.
            all.extend(others.into_iter().map(|h| h.join().unwrap_or(PartScan::Unproven)));
            all
        })
    };
    for (part, scan) in parts.iter().zip(scanned) {
        if let PartScan::Chained { lines, first_seq, first_prev, last_seq, last_hash } = scan {
            let links = first_seq == head.seq.saturating_add(1) && first_prev == head.hash.as_bytes();
            let before_expected = expected.is_none_or(|e| last_seq < e.seq);
            if links && before_expected {
                head.seq = last_seq;
                head.hash.clear();
                head.hash.extend(last_hash.iter().map(|&b| char::from(b)));
                *records += lines;
                *line_no += lines;
                continue;
            }
        }
        for line in part.split_inclusive(|&b| b == b'\n') {
            *line_no += 1;
            check_line(path, *line_no, &line[..line.len() - 1], expected, head, records)?;
        }
    }
    Ok(())
}

/// Splits `block` (complete lines) into at most `n` runs of whole lines of
/// about equal size.
fn split_lines(block: &[u8], n: usize) -> Vec<&[u8]> {
    let mut parts = Vec::with_capacity(n);
    let mut rest = block;
    for left in (1..=n).rev() {
        if rest.is_empty() {
            break;
        }
        // The part ends at the first line end at or after its fair share.
        let from = (rest.len() / left).saturating_sub(1);
        let cut = if left == 1 {
            rest.len()
        } else {
            rest[from..].iter().position(|&b| b == b'\n').map_or(rest.len(), |p| from + p + 1)
        };
        let (part, tail) = rest.split_at(cut);
        parts.push(part);
        rest = tail;
    }
    parts
}

/// What [`scan_part`] proved about a run of complete lines.
enum PartScan<'a> {
    /// Every line is a canonical record whose hash recomputes, each linked
    /// to the one before it (seq + 1, prev = its hash). What is left is to
    /// link the first to the chain so far.
    Chained { lines: u64, first_seq: u64, first_prev: &'a [u8], last_seq: u64, last_hash: [u8; 64] },
    /// Something the fast path does not vouch for: check line by line.
    Unproven,
}

/// The fast path over a run of complete lines; see [`PartScan`].
fn scan_part(part: &[u8]) -> PartScan<'_> {
    let mut lines = 0u64;
    let mut first: Option<(u64, &[u8])> = None;
    let mut last: Option<(u64, [u8; 64])> = None;
    if std::str::from_utf8(part).is_err() {
        return PartScan::Unproven;
    }
    let mut pos = 0;
    while pos < part.len() {
        let Some((rec, len)) = scan::scan_record(&part[pos..]) else {
            return PartScan::Unproven;
        };
        if part.get(pos + len) != Some(&b'\n') {
            return PartScan::Unproven;
        }
        pos += len + 1;
        if !rec.hash_recomputes() {
            return PartScan::Unproven;
        }
        match &last {
            None => first = Some((rec.seq, rec.prev)),
            Some((seq, hash)) => {
                if rec.seq != seq.saturating_add(1) || rec.prev != hash.as_slice() {
                    return PartScan::Unproven;
                }
            }
        }
        last = Some((rec.seq, rec.computed));
        lines += 1;
    }
    match (first, last) {
        (Some((first_seq, first_prev)), Some((last_seq, last_hash))) => {
            PartScan::Chained { lines, first_seq, first_prev, last_seq, last_hash }
        }
        _ => PartScan::Unproven,
    }
}

/// Checks one complete line (without its `'\n'`) the general way: parse,
/// canonical form, seq, prev, hash and the expected head, in that order.
pub(super) fn check_line(
    path: &Path,
    line_no: u64,
    line: &[u8],
    expected: Option<&AuditHead>,
    head: &mut AuditHead,
    records: &mut u64,
) -> Result<(), VerifyFailure> {
    let record = parse_line(line).map_err(|(seq, reason)| VerifyFailure::new(path, line_no, seq, reason))?;
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
    Ok(())
}

//! Tests of the fast verify path: the line scanner agrees with the general
//! parser on everything it accepts, and the chunked, parallel file check
//! finds the same first bad record, with the same message, as checking one
//! line after another — wherever the chunk and part edges fall.

use super::verify::{check_line, verify_file_in_chunks};
use super::*;
use chrono::{TimeZone, Utc};
use proptest::prelude::*;
use serde_json::json;

fn ts(secs: i64) -> Timestamp {
    Utc.timestamp_opt(1_790_000_000 + secs, 0).unwrap()
}

/// `n` records with data shaped like the engine's, chained from genesis.
fn chain(n: u64) -> Vec<AuditRecord> {
    let mut prev = GENESIS_HASH.to_owned();
    (1..=n)
        .map(|seq| {
            let data = match seq % 4 {
                0 => json!({"event_id": format!("ev-{seq}"), "type": "resource.created", "at": "2026-01-01T00:00:00Z"}),
                1 => json!({"cause": "expiry", "reason": null, "buffer": "15days", "delete_after": "2026-02-15T00:00:00Z",
                            "policy_version": "v1", "late_event_floor": true}),
                2 => json!({"store": "primary", "copy": "primary", "class": "online", "failures_before": 0,
                            "copies": [{"store": "a", "outcome": "deleted"}, {"store": "b", "outcome": "deleted"}]}),
                _ => json!({"why": "line\nbreak \"quoted\" \u{1} caf\u{e9} \u{1F600}", "n": -42, "big": u64::MAX, "empty": {}, "list": []}),
            };
            let resource = if seq % 3 == 0 { None } else { Some("ecs-00000042") };
            let r = AuditRecord::seal(seq, ts(seq as i64), "copy.deleted", Some("t-1"), resource, data, &prev);
            prev = r.hash.clone();
            r
        })
        .collect()
}

fn lines(records: &[AuditRecord]) -> Vec<String> {
    records.iter().map(AuditRecord::to_line).collect()
}

/// What one file's check ends with: lines, head and record count, or the
/// failure.
type Outcome = Result<(u64, AuditHead, u64), VerifyFailure>;

/// The reference: every line checked the general way, one after another,
/// as verify did before it had a fast path.
fn sequential(path: &Path, expected: Option<&AuditHead>) -> Outcome {
    let file = File::open(path).unwrap();
    let mut reader = BufReader::new(file);
    let (mut head, mut records, mut line_no) = (AuditHead::genesis(), 0u64, 0u64);
    let mut line = Vec::new();
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line).unwrap() == 0 {
            return Ok((line_no, head, records));
        }
        line_no += 1;
        if !strip_newline(&mut line) {
            let seq = parse_line(&line).ok().map(|r| r.seq);
            return Err(VerifyFailure::new(path, line_no, seq, "truncated: last line has no terminating newline"));
        }
        check_line(path, line_no, &line, expected, &mut head, &mut records)?;
    }
}

fn chunked(path: &Path, expected: Option<&AuditHead>, chunk: usize) -> Outcome {
    let (mut head, mut records) = (AuditHead::genesis(), 0u64);
    let lines = verify_file_in_chunks(path, expected, &mut head, &mut records, chunk)?;
    Ok((lines, head, records))
}

/// Chunk sizes that put edges inside lines, at line ends, and nowhere (0
/// reads a byte at a time rather than nothing).
const CHUNKS: [usize; 8] = [0, 1, 5, 200, 700, 1_500, 9_000, 1 << 22];

/// Writes `text` as a log and asserts every chunk size agrees with the
/// sequential reference; returns that outcome.
fn same_as_sequential(text: &str, expected: Option<&AuditHead>) -> Outcome {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    fs::write(&path, text).unwrap();
    let reference = sequential(&path, expected);
    for chunk in CHUNKS {
        assert_eq!(chunked(&path, expected, chunk), reference, "chunk {chunk}");
    }
    reference
}

// ---- the scanner --------------------------------------------------------

#[test]
fn scanner_accepts_what_the_daemon_writes_and_hashes_it_the_same() {
    for r in chain(40) {
        let line = r.to_line();
        let scanned = scan::scan_line(line.trim_end_matches('\n').as_bytes()).expect("a daemon line is scanned");
        assert_eq!(scanned.seq, r.seq);
        assert_eq!(scanned.prev, r.prev.as_bytes());
        assert_eq!(scanned.hash, r.hash.as_bytes());
        assert_eq!(scanned.computed.as_slice(), r.compute_hash().as_bytes());
        assert!(scanned.hash_recomputes());
    }
}

#[test]
fn scanner_leaves_to_the_general_path_what_it_does_not_vouch_for() {
    let line = chain(1)[0].to_line();
    let line = line.trim_end_matches('\n');
    let cases = [
        line.replacen(",\"kind\"", ", \"kind\"", 1),      // whitespace
        line.replacen("{\"at\"", "{\"seq\":1,\"at\"", 1), // duplicate / order
        line.replacen("\"late_event_floor\":true,", "", 1).replacen(
            "{\"buffer\"",
            "{\"late_event_floor\":true,\"buffer\"",
            1,
        ),
        line.replacen("\"policy_version\":\"v1\"", "\"policy_version\":1.5", 1), // a float
        line.replacen("\"policy_version\":\"v1\"", "\"policy_version\":01", 1),  // leading zero
        line.replacen("\"policy_version\":\"v1\"", "\"policy_version\":-0", 1),
        line.replacen("\"policy_version\":\"v1\"", "\"policy_version\":\"\\u0041\"", 1), // needless escape
        line.replacen("\"policy_version\":\"v1\"", "\"policy_version\":\"\\/\"", 1),
        line.replacen("\"policy_version\":\"v1\"", "\"policy_version\":\"\\u000A\"", 1), // uppercase hex
        line.replacen("\"policy_version\":\"v1\"", "\"policy_version\":\"\\u000a\"", 1), // \n has a short form
        line.replacen("\"policy_version\":\"v1\"", "\"policy_version\":\"\t\"", 1),      // raw control
        line.replacen("\"seq\":1", "\"seq\":\"1\"", 1),
        line.replacen("\"tenant\":\"t-1\"", "\"tenant\":1", 1),
        format!("{line} "),
        line.replacen('}', "", 1),
        String::new(),
    ];
    for (i, case) in cases.iter().enumerate() {
        assert_eq!(scan::scan_line(case.as_bytes()), None, "case {i}: {case}");
    }
    assert_eq!(scan::scan_line(b"{\"at\":\"\xff\"}"), None);
}

fn arb_value() -> impl Strategy<Value = Value> {
    let key = prop_oneof![4 => "[a-z_]{0,6}", 1 => any::<String>()];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<String>().prop_map(Value::String),
        "[ -~]{0,8}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 32, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(key.clone(), inner, 0..6).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn arb_record() -> impl Strategy<Value = AuditRecord> {
    (1..u64::MAX, any::<String>(), prop::option::of(any::<String>()), prop::option::of("[a-z0-9-]{0,12}"), arb_value())
        .prop_map(|(seq, kind, tenant, resource, data)| {
            AuditRecord::seal(seq, ts(0), &kind, tenant.as_deref(), resource.as_deref(), data, GENESIS_HASH)
        })
}

/// An edit of a line: replace, insert or remove a byte at a position.
fn arb_edit() -> impl Strategy<Value = (usize, u8, u8)> {
    (any::<usize>(), 0u8..3, prop_oneof![Just(b' '), Just(b'"'), Just(b'\\'), Just(b','), Just(b'0'), any::<u8>()])
}

proptest! {
    /// Whatever the scanner accepts, the general parser accepts as the same
    /// record with the same hash: the fast path never changes a verdict.
    #[test]
    fn scanner_agrees_with_the_parser(r in arb_record(), edits in prop::collection::vec(arb_edit(), 0..3)) {
        let mut line = r.to_line().into_bytes();
        line.pop();
        if edits.is_empty() {
            // Untouched lines with ordinary keys are always scanned.
            let plain = !line.contains(&b'\\') && line.is_ascii();
            prop_assert!(!plain || scan::scan_line(&line).is_some());
        }
        for (at, op, byte) in edits {
            let at = at % (line.len() + 1);
            match op {
                0 if at < line.len() => line[at] = byte,
                1 => line.insert(at, byte),
                _ if at < line.len() => { line.remove(at); }
                _ => {}
            }
        }
        if let Some(scanned) = scan::scan_line(&line) {
            let parsed = parse_line(&line);
            prop_assert!(parsed.is_ok(), "scanned but not parsed: {:?}", String::from_utf8_lossy(&line));
            let parsed = parsed.unwrap();
            prop_assert_eq!(scanned.seq, parsed.seq);
            prop_assert_eq!(scanned.prev, parsed.prev.as_bytes());
            prop_assert_eq!(scanned.hash, parsed.hash.as_bytes());
            let computed = parsed.compute_hash();
            prop_assert_eq!(scanned.computed.as_slice(), computed.as_bytes());
        }
    }
}

// ---- the chunked, parallel check ---------------------------------------

#[test]
fn an_untouched_log_passes_at_every_chunk_size() {
    let records = chain(60);
    let (line_count, head, count) = same_as_sequential(&lines(&records).concat(), None).unwrap();
    assert_eq!((line_count, count), (60, 60));
    assert_eq!(head, AuditHead::of(&records[59]));
    let expected = AuditHead::of(&records[59]);
    assert!(same_as_sequential(&lines(&records).concat(), Some(&expected)).is_ok());
    assert_eq!(same_as_sequential("", None).unwrap(), (0, AuditHead::genesis(), 0));
}

/// A tampering of a 60-line log at line index `i`.
type Tamper = fn(&mut Vec<String>, usize);

/// Every kind of tampering, at the first, a middle and the last lines, and
/// the failure each must produce (line, seq, words of the reason).
#[test]
fn each_tampering_is_caught_at_the_same_record_with_the_same_message() {
    let records = chain(60);
    let hash_of = |i: usize| records[i].hash.clone();
    let cases: Vec<(&str, Tamper, &str)> = vec![
        ("changed data", |l, i| l[i] = l[i].replacen("\"t-1\"", "\"t-2\"", 1), "hash does not match"),
        (
            "changed hash",
            |l, i| {
                let h = l[i].split("\"hash\":\"").nth(1).unwrap()[..64].to_owned();
                let flipped: String = h.chars().rev().collect();
                l[i] = l[i].replacen(&h, &flipped, 1);
            },
            "hash does not match",
        ),
        (
            "broken prev",
            |l, i| {
                let p = l[i].split("\"prev\":\"").nth(1).unwrap()[..64].to_owned();
                l[i] = l[i].replacen(&p, &"1".repeat(64), 1);
            },
            "prev does not match",
        ),
        (
            "missing record",
            |l, i| {
                l.remove(i);
            },
            "expected seq",
        ),
        (
            "reordered records",
            |l, i| {
                let j = if i + 1 < l.len() { i + 1 } else { i - 1 };
                l.swap(i, j);
            },
            "expected seq",
        ),
        (
            "inserted copy",
            |l, i| {
                let c = l[i].clone();
                l.insert(i, c);
            },
            "expected seq",
        ),
        ("whitespace", |l, i| l[i] = l[i].replacen(",\"kind\"", ", \"kind\"", 1), "canonical form"),
        (
            "key order",
            |l, i| {
                l[i] =
                    l[i].replacen("\"at\":", "\"kind\":\"x\",\"at\":", 1).replacen(",\"kind\":\"copy.deleted\"", "", 1)
            },
            "canonical form",
        ),
        ("empty line", |l, i| l[i] = "\n".into(), "empty line"),
        ("not JSON", |l, i| l[i] = "{\"seq\":\n".into(), "not valid JSON"),
        (
            "truncated last line",
            |l, i| {
                l.truncate(i + 1);
                let n = l[i].len() / 2;
                l[i].truncate(n);
            },
            "truncated",
        ),
        (
            "missing final newline",
            |l, i| {
                l.truncate(i + 1);
                l[i].pop();
            },
            "truncated",
        ),
    ];
    for (name, tamper, why) in cases {
        for i in [0, 1, 17, 30, 58, 59] {
            if name == "missing record" && i == 59 {
                continue; // a chain cut short is valid: see below
            }
            let mut l = lines(&records);
            tamper(&mut l, i);
            let failure = same_as_sequential(&l.concat(), None).expect_err(name);
            assert!(failure.reason.contains(why), "{name} at {i}: {failure}");
            // The failure names the tampered line (a removed record: the
            // line now in its place; a swap at the end: the earlier line;
            // an inserted copy: the copy, after the original).
            let line = match name {
                "reordered records" if i == 59 => 59,
                "inserted copy" => i as u64 + 2,
                _ => i as u64 + 1,
            };
            assert_eq!(failure.line, line, "{name} at {i}: {failure}");
        }
    }
    // A removed last record shows only against the expected head.
    let mut l = lines(&records);
    l.pop();
    let expected = AuditHead { seq: 60, hash: hash_of(59) };
    assert!(same_as_sequential(&l.concat(), None).is_ok());
    let (_, head, _) = same_as_sequential(&l.concat(), Some(&expected)).unwrap();
    assert_eq!(head.seq, 59, "verify() compares the head with the expected one after the last file");
}

#[test]
fn records_beyond_or_unlike_the_expected_head_are_named() {
    let records = chain(60);
    let text = lines(&records).concat();
    let at_20 = AuditHead::of(&records[19]);
    let failure = same_as_sequential(&text, Some(&at_20)).unwrap_err();
    assert_eq!((failure.line, failure.seq), (21, Some(21)));
    assert!(failure.reason.contains("beyond the expected head"), "{failure}");
    let forged = AuditHead { seq: 40, hash: GENESIS_HASH.into() };
    let failure = same_as_sequential(&text, Some(&forged)).unwrap_err();
    assert_eq!((failure.line, failure.seq), (40, Some(40)));
    assert!(failure.reason.contains("expected head's hash"), "{failure}");
}

/// Lines the fast path leaves to the general one (a float in data) are
/// still accepted, exactly as before.
#[test]
fn lines_outside_the_fast_path_are_still_checked_and_accepted() {
    let mut prev = GENESIS_HASH.to_owned();
    let mut text = String::new();
    for seq in 1..=30u64 {
        let data = match seq % 7 {
            0 => json!({"ratio": 0.5, "n": seq}),
            3 => json!({"\u{e9}t\u{e9}": 1, "\u{1F600}": 2, "\u{e000}": 3, "a\"b": 4, "-": i64::MIN}),
            _ => json!({"n": seq}),
        };
        let r = AuditRecord::seal(seq, ts(0), "x", None, None, data, &prev);
        prev = r.hash.clone();
        text.push_str(&r.to_line());
    }
    let (lines, head, records) = same_as_sequential(&text, None).unwrap();
    assert_eq!((lines, records, head.hash), (30, 30, prev));
}

/// A log several chunks long through the public entry point, tampered in
/// the middle of a rotated segment.
#[test]
fn verify_names_a_bad_record_in_the_middle_of_a_segment() {
    let dir = tempfile::tempdir().unwrap();
    let records = chain(3_000);
    let mut log = AuditLog::open(dir.path(), Some(400_000)).unwrap();
    for batch in records.chunks(100) {
        log.append(batch).unwrap();
    }
    let head = log.head().clone();
    drop(log);
    assert_eq!(verify(dir.path(), Some(&head)).unwrap(), VerifyReport { records: 3_000, head: head.clone() });
    let segment = dir.path().join("audit-000002.jsonl");
    let mut l: Vec<String> = fs::read_to_string(&segment).unwrap().lines().map(|l| format!("{l}\n")).collect();
    let seq: u64 = l[500].split("\"seq\":").nth(1).unwrap().split(',').next().unwrap().parse().unwrap();
    l[500] = l[500].replacen("\"t-1\"", "\"t-9\"", 1);
    fs::write(&segment, l.concat()).unwrap();
    let failure = verify(dir.path(), Some(&head)).unwrap_err();
    assert!(failure.file.ends_with("audit-000002.jsonl"), "{failure}");
    assert_eq!((failure.line, failure.seq), (501, Some(seq)), "{failure}");
    assert_eq!(
        failure.to_string(),
        format!("{}:501: record seq {seq}: hash does not match the record's contents (altered)", segment.display())
    );
}

/// The eight-bytes-at-a-time skip inside strings stops at every byte that
/// matters, wherever it falls in the word.
#[test]
fn scanner_sees_quotes_backslashes_and_controls_at_every_offset() {
    let line = chain(2)[1].to_line();
    let line = line.trim_end_matches('\n');
    for offset in 0..20 {
        let pad = "a".repeat(offset);
        for special in ["\u{0}", "\u{1f}", "\n", "\"", "\\"] {
            let edited = line.replacen("\"primary\"", &format!("\"{pad}{special}aaaaaaaaa\""), 1);
            assert_eq!(scan::scan_line(edited.as_bytes()), None, "{offset} {special:?}");
        }
        for ordinary in [" ", "\u{7f}", "\u{e9}", "\u{1F600}", "~"] {
            let edited = line.replacen("\"primary\"", &format!("\"{pad}{ordinary}aaaaaaaaa\""), 1);
            let scanned = scan::scan_line(edited.as_bytes()).expect("an ordinary character");
            assert!(!scanned.hash_recomputes(), "the edit changed the contents");
        }
    }
}

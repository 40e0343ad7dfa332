//! Tests of the audit log: hashing, canonical JSON, appending, rotation,
//! crash recovery and verification.

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

    /// The record's line and hash input, written straight from its fields,
    /// are exactly the canonical JSON of the record as an object (the form
    /// the hash is defined on, product-spec §7), with and without `hash`.
    #[test]
    fn records_are_written_as_the_canonical_json_of_their_object(
        seq in any::<u64>(),
        strings in proptest::collection::vec(any::<String>(), 6),
        tenant in proptest::option::of(any::<String>()),
        resource in proptest::option::of(any::<String>()),
        data in arb_value(),
    ) {
        let r = AuditRecord {
            seq,
            at: strings[0].clone(),
            kind: strings[1].clone(),
            tenant,
            resource,
            data,
            prev: strings[2].clone(),
            hash: strings[3].clone(),
        };
        let mut line = canonical_json(&r.to_value(true));
        line.push('\n');
        prop_assert_eq!(r.to_line(), line);
        let want = hex::encode(Sha256::digest(canonical_json(&r.to_value(false)).as_bytes()));
        prop_assert_eq!(r.compute_hash(), want);
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

/// `append_sealed` trusts the hashes of records sealed by this process,
/// but still refuses records out of sequence or not chained onto the head.
#[test]
fn append_sealed_still_checks_the_chain() {
    let dir = tempfile::tempdir().unwrap();
    write_log(dir.path(), 2);
    let mut log = AuditLog::open(dir.path(), None).unwrap();
    let head = log.head().clone();
    let good = chain(&head, 2);
    let mut wrong_prev = good[0].clone();
    wrong_prev.prev = GENESIS_HASH.into();
    wrong_prev.hash = wrong_prev.compute_hash();
    let wrong_seq = chain(&AuditHead { seq: head.seq + 1, hash: head.hash.clone() }, 1);
    for batch in [vec![wrong_prev], wrong_seq, vec![good[1].clone()]] {
        assert!(matches!(log.append_sealed(&batch), Err(AuditError::NotChained { index: 0, .. })));
        assert_eq!(log.head(), &head);
    }
    log.append_sealed(&good).unwrap();
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

//! The compact encoding's promises: every resource reads back exactly as
//! written (a property over arbitrary resources), the bytes of a known
//! record are pinned, and bytes no build writes are refused.

use super::*;
use proptest::prelude::*;
use proptest::sample::select;

/// Any time chrono holds: the ends of time, whole seconds (as events
/// give), sub-second ones, and leap seconds.
fn any_time() -> BoxedStrategy<Timestamp> {
    prop_oneof![
        Just(chrono::DateTime::<chrono::Utc>::MIN_UTC),
        Just(chrono::DateTime::<chrono::Utc>::MAX_UTC),
        (-5_000_000_000i64..5_000_000_000).prop_map(|s| chrono::DateTime::from_timestamp(s, 0).unwrap()),
        (-5_000_000_000i64..5_000_000_000, 0u32..1_000_000_000)
            .prop_map(|(s, n)| chrono::DateTime::from_timestamp(s, n).unwrap()),
        (0i64..100_000_000, 0u32..1_000_000_000).prop_map(|(m, n)| chrono::DateTime::from_timestamp(
            m * 60 + 59,
            1_000_000_000 + n
        )
        .unwrap()),
    ]
    .boxed()
}

fn opt<T: std::fmt::Debug>(s: impl Strategy<Value = T>) -> impl Strategy<Value = Option<T>> {
    proptest::option::of(s)
}

/// Words, times as the lifecycle formats them, near-misses of both, and
/// any text, run together: what history sentences and names are made of.
fn any_text() -> BoxedStrategy<String> {
    let piece = prop_oneof![
        select(WORDS).prop_map(str::to_owned),
        any_time().prop_map(fmt_rfc3339),
        any_time().prop_map(|t| t.to_rfc3339()),
        Just("2026-01-01T00:00:00".to_owned()),
        Just("2026-13-01T00:00:00Z".to_owned()),
        Just("2026-01-01T00:00:00.Z".to_owned()),
        Just("2026-01-01T00:00:00.500000000Z".to_owned()),
        "\\PC{0,12}",
        "[a-z .,:()0-9-]{0,12}",
    ];
    proptest::collection::vec(piece, 0..5).prop_map(|v| v.concat()).boxed()
}

fn any_buffer() -> BoxedStrategy<Buffer> {
    (
        select(vec![Cause::Expiry, Cause::Termination, Cause::Arrears, Cause::Release]),
        opt(select(TerminationReason::ALL.to_vec())),
        any_time(),
        any_time(),
        any_text(),
        opt(any_time()),
    )
        .prop_map(|(cause, reason, started_at, delete_after, policy_version, late_floor)| Buffer {
            cause,
            reason,
            started_at,
            delete_after,
            policy_version,
            late_floor,
        })
        .boxed()
}

fn any_copy() -> BoxedStrategy<DataCopy> {
    let states = vec![
        CopyState::Present,
        CopyState::Deleting,
        CopyState::Restricting,
        CopyState::Restricted,
        CopyState::Purging,
        CopyState::Deleted,
    ];
    (
        (any_text(), prop_oneof![Just(None), opt(any_text())]),
        select(vec![StoreClass::Online, StoreClass::Cache, StoreClass::Backup]),
        select(states),
        any::<u32>(),
        opt(any_time()),
        opt(any_text()),
        (opt(any_time()), opt(any_time())),
        any::<bool>(),
        opt(any::<u64>()),
        opt(any_text()),
        opt(any_time()),
        any::<bool>(),
    )
        .prop_map(
            |(
                (store, copy),
                class,
                state,
                attempts,
                next_attempt_at,
                last_error,
                (done_at, expires_at),
                stuck,
                done_seq,
                outcome,
                restricted_until,
                restriction_overdue,
            )| DataCopy {
                copy: copy.unwrap_or_else(|| store.clone()),
                store,
                class,
                state,
                attempts,
                next_attempt_at,
                last_error,
                done_at,
                expires_at,
                stuck,
                done_seq,
                outcome,
                restricted_until,
                restriction_overdue,
            },
        )
        .boxed()
}

fn any_notice() -> BoxedStrategy<Notice> {
    let kinds = vec![
        NoticeKind::RenewalReminder,
        NoticeKind::BufferStarted,
        NoticeKind::DeletionWarning,
        NoticeKind::DeletionCompleted,
    ];
    (
        any_text(),
        select(kinds),
        any_time(),
        opt(any_time()),
        opt(select(vec![Cause::Expiry, Cause::Termination, Cause::Arrears, Cause::Release])),
        opt(any::<u64>()),
        opt(any_time()),
        any::<u32>(),
        opt(any_time()),
        any::<bool>(),
    )
        .prop_map(|(key, kind, due_at, date, cause, offset_secs, sent_at, attempts, next_attempt_at, superseded)| {
            Notice { key, kind, due_at, date, cause, offset_secs, sent_at, attempts, next_attempt_at, superseded }
        })
        .boxed()
}

fn any_arrears() -> BoxedStrategy<Arrears> {
    (
        any_time(),
        opt((any::<i64>(), 0u32..10).prop_map(|(m, s)| rust_decimal::Decimal::new(m, s))),
        opt(any_text()),
        opt(any_buffer()),
        opt(any_time()),
        opt(any_time()),
    )
        .prop_map(|(started_at, amount, currency, buffer, grace_ends_at, late_floor)| Arrears {
            started_at,
            amount,
            currency,
            buffer,
            grace_ends_at,
            late_floor,
        })
        .boxed()
}

/// Any hold; a review date (and its report) only now and then, so most
/// resources keep to version 2 and some need version 3.
fn any_hold() -> BoxedStrategy<Hold> {
    let review = prop_oneof![3 => Just((None, None)), 1 => (opt(any_time()), opt(any_time()))];
    (any_text(), any_text(), any_text(), any::<bool>(), any_time(), review)
        .prop_map(|(hold_id, authority, reason, tenant_wide, placed_at, (review_at, review_reported_at))| Hold {
            hold_id,
            authority,
            reason,
            tenant_wide,
            placed_at,
            review_at,
            review_reported_at,
        })
        .boxed()
}

/// Any resource, whatever the lifecycle would make of it: the encoding
/// must keep every value a field can hold.
fn any_resource() -> BoxedStrategy<Resource> {
    let states = vec![State::Active, State::Retained, State::Deleting, State::Deleted, State::Purged];
    let head = (
        "[a-z0-9._-]{1,20}",
        any_text(),
        any_text(),
        select(vec![Billing::Prepaid, Billing::Postpaid]),
        any_time(),
        opt(any_time()),
        opt(any_buffer()),
        opt(any_time()),
        opt(any_arrears()),
        opt(any_time()),
        any::<bool>(),
    );
    let middle = (
        opt((any_time(), select(TerminationReason::ALL.to_vec()), opt(any_buffer()), opt(any_time()))),
        opt(any_time()),
        any::<bool>(),
        opt(any_buffer()),
        proptest::collection::vec(any_hold(), 0..3),
        proptest::collection::vec((any_text(), any_time()), 0..3),
        opt(any_time()),
        select(states),
    );
    let tail = (
        opt(any_buffer()),
        opt(any_time()),
        any::<bool>(),
        proptest::collection::vec(any_copy(), 0..4),
        proptest::collection::vec(
            (any_time(), any_text(), any_text()).prop_map(|(at, what, detail)| HistoryEntry { at, what, detail }),
            0..6,
        ),
        proptest::collection::vec(any_notice(), 0..3),
    );
    (head, middle, tail)
        .prop_map(
            |(
                (
                    id,
                    tenant,
                    product,
                    billing,
                    created_at,
                    term_end,
                    expiry,
                    expiry_late_floor,
                    arrears,
                    arrears_settled_at,
                    settlement_spent,
                ),
                (termination, reinstated_at, reinstatement_spent, release, holds, released_holds, not_before, state),
                (deciding, deletion_started_at, guard_approved, copies, history, notices),
            )| Resource {
                id,
                tenant,
                product,
                billing,
                created_at,
                term_end,
                expiry,
                expiry_late_floor,
                arrears,
                arrears_settled_at,
                settlement_spent,
                termination: termination.map(|(at, reason, buffer, late_floor)| Termination {
                    at,
                    reason,
                    buffer,
                    late_floor,
                }),
                reinstated_at,
                reinstatement_spent,
                release,
                holds,
                released_holds,
                not_before,
                state,
                deciding,
                deletion_started_at,
                guard_approved,
                copies,
                history,
                notices,
            },
        )
        .boxed()
}

/// Written and read back: as version 3 exactly when a hold has a review
/// date or its report, else as version 2.
fn round_trip(r: &Resource, due: Option<Timestamp>) -> (Resource, Option<Timestamp>) {
    let bytes = encode_resource(r, due);
    let review = r.holds.iter().any(|h| h.review_at.is_some() || h.review_reported_at.is_some());
    assert_eq!(bytes[0], if review { V3 } else { V2 });
    let decode = if review { decode_resource_v3 } else { decode_resource };
    decode(&r.id, &bytes[1..]).expect("what was written reads back")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Whatever a resource holds reads back identically: equal as a value,
    /// and as the JSON the API and version 1 show (a decimal's scale too).
    #[test]
    fn every_resource_reads_back_as_written(r in any_resource(), due in opt(any_time())) {
        let (back, back_due) = round_trip(&r, due);
        prop_assert_eq!(&back, &r);
        prop_assert_eq!(back_due, due);
        prop_assert_eq!(serde_json::to_value(&back).unwrap(), serde_json::to_value(&r).unwrap());
    }

    /// A sentence split into words, times and the rest is the same
    /// sentence when put together again.
    #[test]
    fn history_sentences_read_back_exactly(s in any_text()) {
        prop_assert_eq!(sentence(pieces(&s)).unwrap(), s);
    }

    /// Cut short anywhere, a record is refused, never read as another.
    #[test]
    fn a_record_cut_short_is_refused(r in any_resource(), cut in any::<prop::sample::Index>()) {
        let bytes = encode_resource(&r, None);
        let end = 1 + cut.index(bytes.len() - 1);
        let decode = if bytes[0] == V3 { decode_resource_v3 } else { decode_resource };
        prop_assert!(decode(&r.id, &bytes[1..end]).is_err());
    }
}

/// A resource as the scale benchmark creates it: prepaid, one online copy,
/// one history line.
fn created() -> Resource {
    serde_json::from_value(serde_json::json!({
        "id": "r1", "tenant": "t1", "product": "ecs", "billing": "prepaid",
        "created_at": "2026-01-01T00:00:00Z", "term_end": "2026-03-04T05:06:07Z",
        "expiry": null, "arrears": null, "arrears_settled_at": null, "termination": null,
        "reinstated_at": null, "release": null, "holds": [], "released_holds": [], "not_before": null,
        "state": "active", "deciding": null, "deletion_started_at": null,
        "copies": [{"store": "primary", "copy": "primary", "class": "online", "state": "present"}],
        "history": [{"at": "2026-01-01T00:00:00Z", "what": "resource.created",
                     "detail": "created (ecs, prepaid, term ends 2026-03-04T05:06:07Z)"}],
    }))
    .expect("test resource")
}

/// The bytes of a known record, spelled out: a change here is a change of
/// format, which needs a new version byte (and this build must still read
/// what the older one wrote).
#[test]
fn v2_bytes_are_pinned() {
    let due = chrono::DateTime::from_timestamp(1_772_600_767, 0);
    let bytes = encode_resource(&created(), due);
    assert_eq!(
        hex::encode(&bytes),
        "0201fef6bd9a0d00027431036563730080e4ad950d0001fef6bd9a0d000000000000000000000000000000000001077072696d617279\
         000000000000000000000000000180e4ad950d0000000501210003656373012202fef6bd9a0d0000012900"
    );
    assert_eq!(decode_resource("r1", &bytes[1..]).unwrap(), (created(), due));
    let outcome = EventOutcome { status: "applied".into(), resource: Some("r1".into()) };
    assert_eq!(encode_outcome(&outcome), b"\x02\x00\x1b\x01\x02r1");
    assert_eq!(decode_outcome(&encode_outcome(&outcome)[1..]).unwrap(), outcome);
}

/// A hold with a review date makes the record version 3: v2's bytes with
/// the hold's review date and report after it. The same record without
/// them is the v2 record, byte for byte, as older builds read it.
#[test]
fn v3_bytes_are_pinned() {
    let mut r = created();
    let hold = Hold {
        hold_id: "h1".into(),
        authority: "court".into(),
        reason: "case".into(),
        tenant_wide: false,
        placed_at: chrono::DateTime::from_timestamp(1_767_225_600, 0).unwrap(),
        review_at: None,
        review_reported_at: None,
    };
    r.holds.push(hold.clone());
    let v2 = encode_resource(&r, None);
    assert_eq!(v2[0], V2);
    r.holds[0].review_at = chrono::DateTime::from_timestamp(1_767_312_000, 0);
    let bytes = encode_resource(&r, None);
    assert_eq!(
        hex::encode(&bytes),
        "0300027431036563730080e4ad950d0001fef6bd9a0d000000000000000000000102683105636f75727404636173650080e4ad95\
         0d000180aab8950d000000000000000001077072696d617279000000000000000000000000000180e4ad950d0000000501210003\
         656373012202fef6bd9a0d0000012900"
    );
    assert_eq!(decode_resource_v3("r1", &bytes[1..]).unwrap(), (r.clone(), None));
    assert!(decode_resource("r1", &bytes[1..]).is_err(), "never read as v2");
    r.holds[0] = hold;
    assert_eq!(encode_resource(&r, None), v2);
}

/// Codes and words no build writes are refused: an unknown state, a word
/// past the end of [`WORDS`], a time out of range, bytes left over.
#[test]
fn values_no_build_writes_are_refused() {
    let good = encode_resource(&created(), None);
    let mut trailing = good.clone();
    trailing.push(0);
    assert!(matches!(decode_resource("r1", &trailing[1..]), Err(RecordError::Field("trailing bytes"))));
    assert!(matches!(word(WORDS.len() as u16), Err(RecordError::Field("word"))));
    assert!(matches!(state_of(5), Err(RecordError::Field("state"))));
    assert!(matches!(Ts(i64::MAX, 0).get(), Err(RecordError::Field("time"))));
    assert!(matches!(Ts(0, 2_000_000_000).get(), Err(RecordError::Field("time"))));
    let outcome = [0x00, 0xff, 0x7f, 0x00];
    assert!(matches!(decode_outcome(&outcome), Err(RecordError::Field("word"))));
}

/// A bench resource costs a tenth of its JSON (the figure behind
/// docs/benchmarks.md's bytes a resource).
#[test]
fn a_created_resource_is_small() {
    let r = created();
    let json = serde_json::to_vec(&serde_json::json!({"v": 1, "due": null, "resource": r})).unwrap();
    let compact = encode_resource(&r, None);
    assert!(compact.len() * 5 < json.len(), "{} bytes compact, {} as JSON", compact.len(), json.len());
}

fn any_json() -> BoxedStrategy<serde_json::Value> {
    use serde_json::Value;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any_text().prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map(any_text(), inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
    .boxed()
}

fn any_hash() -> BoxedStrategy<String> {
    prop_oneof![any::<[u8; 32]>().prop_map(hex::encode), any::<[u8; 32]>().prop_map(hex::encode_upper), any_text()]
        .boxed()
}

fn any_audit_record() -> BoxedStrategy<crate::audit::AuditRecord> {
    (
        any::<u64>(),
        prop_oneof![any_time().prop_map(fmt_rfc3339), any_text()],
        prop_oneof![select(WORDS).prop_map(str::to_owned), any_text()],
        opt(any_text()),
        opt(any_text()),
        any_json(),
        any_hash(),
        any_hash(),
    )
        .prop_map(|(seq, at, kind, tenant, resource, data, prev, hash)| crate::audit::AuditRecord {
            seq,
            at,
            kind,
            tenant,
            resource,
            data,
            prev,
            hash,
        })
        .boxed()
}

proptest! {
    /// An outbox record reads back as the very texts it held (its hash
    /// covers them): times, kinds, hashes and details alike.
    #[test]
    fn every_outbox_record_reads_back_as_written(r in any_audit_record()) {
        let bytes = encode_audit(&r);
        prop_assert_eq!(bytes[0], V2);
        prop_assert_eq!(decode_audit(&bytes[1..]).unwrap(), r);
    }
}

proptest! {
    /// A commit's records split into chunks read back whole and in order,
    /// each chunk keyed by its last seq and no chunk past the size asked
    /// for by more than its last record; a chunk of one is a plain v2
    /// record (what builds before chunks read).
    #[test]
    fn outbox_chunks_read_back_as_the_records_in_order(
        records in proptest::collection::vec(any_audit_record(), 1..40),
        max_bytes in 1usize..3_000,
    ) {
        let chunks = encode_audit_chunks(&records, max_bytes);
        let mut back = Vec::new();
        for (last, bytes) in &chunks {
            let chunk = match bytes[0] {
                V2 => vec![decode_audit(&bytes[1..]).unwrap()],
                CHUNK => decode_audit_chunk(&bytes[1..]).unwrap(),
                other => panic!("leading byte {other}"),
            };
            prop_assert!(bytes[0] == V2 || chunk.len() > 1);
            prop_assert_eq!(chunk.last().unwrap().seq, *last);
            let without_last: usize = chunk[..chunk.len() - 1].iter().map(|r| encode_audit(r).len() - 1).sum();
            prop_assert!(without_last < max_bytes, "{} bytes before the last record", without_last);
            back.extend(chunk);
        }
        prop_assert_eq!(back, records);
    }
}

/// The chunk layout, pinned: [`CHUNK`], the count as a varint, then each
/// record's v2 body as [`encode_audit`] writes it, nothing between.
#[test]
fn an_outbox_chunks_bytes_are_pinned() {
    let at = chrono::DateTime::from_timestamp(1_767_225_600, 0).unwrap();
    let first =
        crate::audit::AuditRecord::seal(7, at, "event.applied", Some("t1"), Some("r1"), serde_json::json!({}), "00");
    let second =
        crate::audit::AuditRecord::seal(8, at, "event.applied", None, None, serde_json::json!({}), &first.hash);
    let chunks = encode_audit_chunks(&[first.clone(), second.clone()], 4096);
    let expected = [&[CHUNK, 2][..], &encode_audit(&first)[1..], &encode_audit(&second)[1..]].concat();
    assert_eq!(chunks, vec![(8, expected)]);
    assert_eq!(CHUNK, 4, "the leading byte of a chunk is part of the format");
}

/// An outbox record as the engine seals it is a fraction of its JSON.
#[test]
fn a_sealed_outbox_record_is_small() {
    let at = chrono::DateTime::from_timestamp(1_767_225_600, 0).unwrap();
    let data = serde_json::json!({"event_id": "e1", "type": "resource.created", "at": "2026-01-01T00:00:00Z"});
    let r = crate::audit::AuditRecord::seal(7, at, "event.applied", Some("t1"), Some("r1"), data, &"ab".repeat(32));
    let (compact, json) = (encode_audit(&r), serde_json::to_vec(&r).unwrap());
    assert!(compact.len() * 2 < json.len(), "{} bytes compact, {} as JSON", compact.len(), json.len());
    assert_eq!(decode_audit(&compact[1..]).unwrap(), r);
}

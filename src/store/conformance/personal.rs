//! The promises about personal data (issue 12), in the suite of
//! `conformance.rs`: subjects, their deadline index, the request index and
//! the open requests.

use super::*;
use crate::domain::privacy::{Request, RequestKind, RequestProof, RequestState, Subject};
use crate::store::{OpenRequest, SubjectKey};

/// Subject `id` of `tenant` with requests `(id, state)`, due on day 15.
fn subject(tenant: &str, id: &str, requests: &[(&str, RequestState)]) -> Subject {
    let mut s = Subject::new(tenant, id, Some(ts("2026-01-01T00:00:00Z")));
    s.requests = requests
        .iter()
        .map(|(rid, state)| Request {
            id: rid.to_string(),
            kind: RequestKind::Erasure,
            grounds: Vec::new(),
            verified: true,
            received_at: ts("2026-01-01T00:00:00Z"),
            due: ts("2026-01-16T00:00:00Z"),
            state: *state,
            overdue: false,
            warnings_sent: 0,
            decided_at: None,
            refusal: None,
            linked_to: None,
            outcomes: Vec::new(),
            completed_at: None,
            lifted_at: None,
            proof: RequestProof::default(),
        })
        .collect();
    s
}

fn key(tenant: &str, id: &str) -> SubjectKey {
    SubjectKey { tenant: tenant.into(), subject: id.into() }
}

fn put_subjects(store: &dyn Store, subjects: Vec<(Subject, Option<&str>)>) {
    let mut w = WriteSet::default();
    for (s, due) in subjects {
        w.put_subject(s, due.map(ts));
    }
    store.commit(w).expect("commit");
}

/// Every subject entry, through `subjects_due` in slices of two.
fn all_subject_due(store: &dyn Store) -> Vec<(Timestamp, SubjectKey)> {
    let end = ts("9999-01-01T00:00:00Z");
    let mut out: Vec<(Timestamp, SubjectKey)> = Vec::new();
    loop {
        let after = out.last().map(|(t, k)| (*t, k));
        let slice = store.subjects_due(after, end, 2).unwrap();
        assert!(slice.len() <= 2);
        if slice.is_empty() {
            return out;
        }
        out.extend(slice);
    }
}

pub(super) fn subjects_read_back_and_are_listed_by_tenant(store: &dyn Store) {
    assert_eq!(store.subject(&key("t1", "alice")).unwrap(), None);
    assert!(store.tenant_subjects("t1").unwrap().is_empty());
    let alice = subject("t1", "alice", &[]);
    put_subjects(
        store,
        vec![
            (alice.clone(), None),
            (subject("t1", "t1", &[]), None),
            (subject("t1", "bob", &[]), None),
            (subject("t10", "carol", &[]), None),
            (subject("t", "dan", &[]), None),
        ],
    );
    assert_eq!(store.subject(&key("t1", "alice")).unwrap(), Some(alice));
    assert_eq!(store.subject(&key("t10", "alice")).unwrap(), None, "a subject id is unique within its tenant only");
    assert_eq!(store.tenant_subjects("t1").unwrap(), ["alice", "bob", "t1"]);
    assert_eq!(store.tenant_subjects("t10").unwrap(), ["carol"]);
    assert_eq!(store.tenant_subjects("t").unwrap(), ["dan"]);
    let mut later = subject("t1", "alice", &[]);
    later.closed_at = Some(ts("2026-02-01T00:00:00Z"));
    put_subjects(store, vec![(later.clone(), None)]);
    assert_eq!(store.subject(&key("t1", "alice")).unwrap(), Some(later), "as last written");
    assert_eq!(store.tenant_subjects("t1").unwrap().len(), 3, "listed once");
}

pub(super) fn the_subjects_due_index_follows_each_records_due(store: &dyn Store) {
    put_subjects(
        store,
        vec![
            (subject("t1", "b", &[]), Some("2026-03-01T00:00:00.0009Z")),
            (subject("t1", "a", &[]), Some("2026-03-01T00:00:00Z")),
            (subject("t0", "z", &[]), Some("2026-03-01T00:00:00Z")),
            (subject("t1", "c", &[]), Some("1960-01-01T00:00:00Z")),
            (subject("t1", "d", &[]), None),
        ],
    );
    let entries: Vec<(String, String)> =
        all_subject_due(store).into_iter().map(|(t, k)| (crate::time::fmt_rfc3339(t), k.display())).collect();
    assert_eq!(
        entries,
        [
            ("1960-01-01T00:00:00Z".to_string(), "t1/c".to_string()),
            ("2026-03-01T00:00:00Z".into(), "t0/z".into()),
            ("2026-03-01T00:00:00Z".into(), "t1/a".into()),
            ("2026-03-01T00:00:00Z".into(), "t1/b".into()),
        ],
        "by time (to the millisecond, rounded down), times before 1970 first, then key; none for no due"
    );
    // Rewriting a subject moves its entry; a `None` removes it.
    put_subjects(store, vec![(subject("t1", "c", &[]), None), (subject("t1", "a", &[]), Some("2026-04-01T00:00:00Z"))]);
    let keys: Vec<String> = all_subject_due(store).into_iter().map(|(_, k)| k.display()).collect();
    assert_eq!(keys, ["t0/z", "t1/b", "t1/a"]);
    // `until` is included; `next_subject_due_after` is strictly after.
    let until = store.subjects_due(None, ts("2026-03-01T00:00:00Z"), 10).unwrap();
    assert_eq!(until.len(), 2);
    assert_eq!(store.next_subject_due_after(ts("2026-02-01T00:00:00Z")).unwrap(), Some(ts("2026-03-01T00:00:00Z")));
    assert_eq!(store.next_subject_due_after(ts("2026-03-01T00:00:00Z")).unwrap(), Some(ts("2026-04-01T00:00:00Z")));
    assert_eq!(store.next_subject_due_after(ts("2026-04-01T00:00:00Z")).unwrap(), None);
}

pub(super) fn requests_are_indexed_and_open_ones_listed(store: &dyn Store) {
    use RequestState::*;
    put_subjects(
        store,
        vec![
            (subject("t1", "alice", &[("q3", Received), ("q1", Completed)]), None),
            (subject("t2", "bob", &[("q2", Approved), ("q4", Refused)]), None),
        ],
    );
    assert_eq!(store.request_owner("q2").unwrap(), Some(key("t2", "bob")));
    assert_eq!(store.request_owner("nope").unwrap(), None);
    let page = store.requests_after(None, 3).unwrap();
    let ids: Vec<&str> = page.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids, ["q1", "q2", "q3"]);
    let rest = store.requests_after(Some("q3"), 3).unwrap();
    assert_eq!(rest, vec![("q4".to_string(), key("t2", "bob"))]);
    let open = |store: &dyn Store| -> Vec<(String, RequestState)> {
        store.open_requests().unwrap().into_iter().map(|o: OpenRequest| (o.id, o.state)).collect()
    };
    assert_eq!(open(store), vec![("q2".to_string(), Approved), ("q3".to_string(), Received)]);
    // A request closes: it leaves the open list, stays in the index.
    put_subjects(store, vec![(subject("t1", "alice", &[("q3", Refused), ("q1", Completed), ("q5", Received)]), None)]);
    assert_eq!(open(store), vec![("q2".to_string(), Approved), ("q5".to_string(), Received)]);
    assert_eq!(store.request_owner("q3").unwrap(), Some(key("t1", "alice")));
    // Equal to a recount of the records.
    let mut recount = Vec::new();
    for (tenant, id) in [("t1", "alice"), ("t2", "bob")] {
        recount.extend(crate::store::personal::open_requests(&store.subject(&key(tenant, id)).unwrap().unwrap()));
    }
    recount.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(store.open_requests().unwrap(), recount);
}

/// A subject's erasure starts are deletion starts for the guard (issue 12):
/// one per instant whatever the classes begun then, none for classes an
/// operator's approval began, and as the last record written has them.
pub(super) fn subjects_erasure_starts_are_counted_with_the_deletion_starts(store: &dyn Store) {
    use crate::domain::privacy::{ClassRecord, Erasure};
    let class = |name: &str, started: Option<&str>, approved: bool| ClassRecord {
        class: name.into(),
        erasure: Erasure::Delete,
        erase_after: Some(ts("2026-02-01T00:00:00Z")),
        scheduled_by: None,
        policy_version: None,
        keep_until: None,
        started_at: started.map(ts),
        guard_approved: approved,
        copies: Vec::new(),
    };
    let since = ts("2026-01-01T00:00:00Z");
    let mut a = subject("t1", "alice", &[]);
    a.classes = vec![
        class("contact", Some("2026-02-01T00:00:00.000200Z"), false),
        class("usage", Some("2026-02-01T00:00:00.000200Z"), false),
        class("billing", Some("2026-03-01T00:00:00Z"), true),
        class("later", None, false),
    ];
    let mut b = subject("t2", "bob", &[]);
    b.classes = vec![class("contact", Some("2026-02-02T00:00:00Z"), false)];
    put_subjects(store, vec![(a.clone(), None), (b, None)]);
    // Classes begun together are one start, rounded up to the millisecond;
    // the approved class is not counted.
    assert_eq!(
        store.deletions_started_after(since).unwrap(),
        vec![ts("2026-02-01T00:00:00.001Z"), ts("2026-02-02T00:00:00Z")]
    );
    // A resource's start and a subject's at the same instant are two.
    let mut r = resource("r1", "t1");
    r.deletion_started_at = Some(ts("2026-02-02T00:00:00Z"));
    put(store, r, None);
    assert_eq!(store.deletions_started_after(since).unwrap().len(), 3);
    // Rewritten: the index follows the record.
    a.classes[0].started_at = None;
    a.classes[1].started_at = None;
    a.classes[3].started_at = Some(ts("2026-04-01T00:00:00Z"));
    put_subjects(store, vec![(a, None)]);
    assert_eq!(
        store.deletions_started_after(since).unwrap(),
        vec![ts("2026-02-02T00:00:00Z"), ts("2026-02-02T00:00:00Z"), ts("2026-04-01T00:00:00Z")]
    );
}

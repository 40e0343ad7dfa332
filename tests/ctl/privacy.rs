//! `retentiond ctl request ...`, `ctl subject show` and `ctl retry
//! --subject` (issue 12, part 6), and `retentiond audit receipt`: the real
//! binary against the in-process daemon on a manual clock, with two
//! personal `fs` stores: `crm` (contact data) and `ledger` (billing
//! records, kept a year by law).

use super::{ctl, ok, run, Out};
use crate::common::*;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// Contact data in `crm`, deleted 30 days after closure; billing records
/// in `ledger`, kept 365 days (legal minimum); requests answered within
/// 15 days. `extra` goes under `[daemon]`.
fn config(daemon_extra: &str) -> String {
    let extra = r#"
[stores.crm]
class = "online"
data = "personal"
executor = { kind = "fs", root = "crm", path = "{tenant}/{subject}" }

[stores.ledger]
class = "online"
data = "personal"
executor = { kind = "fs", root = "ledger", path = "{tenant}/{subject}" }

[privacy]
response_time = "15d"
warn_before = ["5d"]

[privacy.classes.contact]
stores = ["crm"]
after_closure = "30d"
erasure = "delete"

[privacy.classes.billing]
stores = ["ledger"]
after_closure = "400d"
legal_minimum = "365d"
erasure = "delete"
"#;
    base_config(extra).replace("state_dir = \"state\"", &format!("state_dir = \"state\"\n{daemon_extra}"))
}

/// A daemon with both store roots (and their markers) in place.
async fn start(daemon_extra: &str) -> Harness {
    let h = Harness::with_config(&config(daemon_extra)).await;
    fs_root(&h.dir.path().join("crm"));
    fs_root(&h.dir.path().join("ledger"));
    h
}

/// A subject's data in `store`, as a file under its directory.
fn personal(h: &Harness, store: &str, subject: &str) -> PathBuf {
    let dir = h.dir.path().join(store).join("t1").join(subject);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("profile"), b"personal data").unwrap();
    dir
}

/// An event about tenant t1's account at T0.
fn account(id: &str, kind: &str, fields: Value) -> Value {
    let mut v = json!({"event_id": id, "type": kind, "at": T0, "tenant": "t1"});
    v.as_object_mut().unwrap().extend(fields.as_object().unwrap().clone());
    v
}

/// The account holder's erasure request q1 (verified), and q2 of user u1
/// (not verified).
async fn two_requests(h: &Harness) {
    h.events(json!([
        account("s1", "subject.created", json!({"subject": "u1"})),
        account(
            "e1",
            "erasure.requested",
            json!({"request_id": "q1", "grounds": ["consent_withdrawn"], "verified": true})
        ),
        account("e2", "erasure.requested", json!({"request_id": "q2", "subject": "u1", "grounds": ["no_consent"]})),
    ]))
    .await;
}

/// `retentiond audit receipt FILE --log LOG` (the binary, not ctl).
async fn audit_receipt(file: &Path, log: &Path) -> Out {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_retentiond"))
        .args(["audit", "receipt"])
        .arg(file)
        .arg("--log")
        .arg(log)
        .output()
        .await
        .unwrap();
    Out {
        code: out.status.code().unwrap(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Lines as ctl prints them, each ending in a newline.
fn text(lines: &[&str]) -> String {
    lines.iter().map(|l| format!("{l}\n")).collect()
}

/// A request shown, listed, decided through ctl (an unverified one
/// rejected, exit 1), executed through the fs stores, and its receipt
/// saved and checked offline: it holds, and an edited copy does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_is_shown_listed_decided_and_its_receipt_checks() {
    let h = start("").await;
    let contact = personal(&h, "crm", "t1");
    let billing = personal(&h, "ledger", "t1");
    two_requests(&h).await;

    let out = ctl(&h, AUDITOR, &["request", "show", "q1"]).await;
    ok(&out);
    assert_eq!(
        out.stdout,
        text(&[
            "request         q1",
            "tenant          t1",
            "subject         t1",
            "kind            erasure",
            "state           received",
            "overdue         no",
            "verified        yes",
            "grounds         consent_withdrawn",
            "received_at     2026-01-01T00:00:00Z",
            "due             2026-01-16T00:00:00Z",
            "decided_at      -",
            "refusal_ground  -",
            "completed_at    -",
            "",
            "classes:",
            "(none)",
        ])
    );
    let out = ctl(&h, AUDITOR, &["request", "list"]).await;
    ok(&out);
    assert_eq!(
        out.stdout,
        text(&[
            "REQUEST  TENANT  SUBJECT  KIND     STATE     RECEIVED_AT           DUE                   OVERDUE",
            "q1       t1      t1       erasure  received  2026-01-01T00:00:00Z  2026-01-16T00:00:00Z  no",
            "q2       t1      u1       erasure  received  2026-01-01T00:00:00Z  2026-01-16T00:00:00Z  no",
            "2 requests, 0 open and overdue",
        ])
    );

    // An unverified request cannot be executed: the daemon's rejection, exit 1.
    h.advance("14d").await;
    let out = ctl(&h, OPERATOR, &["request", "decide", "q2", "--execute"]).await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.has_row(&["EVENT_ID", "STATUS", "ERROR"]), "{out:?}");
    let id = out.stdout.lines().nth(1).unwrap().split_whitespace().next().unwrap().to_string();
    assert!(id.starts_with("ctl-decide-q2-") && out.has_row(&[&id, "rejected"]), "{out:?}");
    assert!(out.stderr.starts_with(&format!("retentiond ctl: request.decided event {id} rejected: ")), "{out:?}");
    assert!(out.stderr.contains("verified"), "the daemon's reason: {out:?}");
    // Refused on a ground of the closed list instead, dated by the daemon's clock.
    let out = ctl(&h, OPERATOR, &["request", "decide", "q2", "--refuse", "repetitive"]).await;
    ok(&out);
    assert!(out.stdout.ends_with("1 applied, 0 duplicate, 0 rejected\n"), "{out:?}");
    let (_, q2) = h.get_as(AUDITOR, "/v1/requests/q2").await;
    assert_eq!((&q2["state"], &q2["refusal_ground"]), (&json!("refused"), &json!("repetitive")));
    assert_eq!(q2["decided_at"], "2026-01-15T00:00:00Z");

    // Executed on day 14: contact data deleted, billing records kept.
    let out = ctl(&h, OPERATOR, &["request", "decide", "q1", "--execute", "--event-id", "d-q1"]).await;
    ok(&out);
    assert!(out.has_row(&["d-q1", "applied"]), "{out:?}");
    h.advance("0s").await;
    assert!(!contact.exists() && billing.exists());
    let out = ctl(&h, AUDITOR, &["request", "show", "q1"]).await;
    ok(&out);
    assert_eq!(
        out.stdout,
        text(&[
            "request         q1",
            "tenant          t1",
            "subject         t1",
            "kind            erasure",
            "state           partially_completed",
            "overdue         no",
            "verified        yes",
            "grounds         consent_withdrawn",
            "received_at     2026-01-01T00:00:00Z",
            "due             2026-01-16T00:00:00Z",
            "decided_at      2026-01-15T00:00:00Z",
            "refusal_ground  -",
            "completed_at    2026-01-15T00:00:00Z",
            "",
            "classes:",
            "CLASS    OUTCOME  KEPT_UNTIL",
            "billing  kept     2027-01-01T00:00:00Z",
            "contact  erased   -",
        ])
    );
    let out = ctl(&h, AUDITOR, &["--json", "request", "show", "q1"]).await;
    ok(&out);
    assert_eq!(out.json(), h.get_as(AUDITOR, "/v1/requests/q1").await.1);
    let out = ctl(&h, AUDITOR, &["request", "list", "--state", "refused"]).await;
    assert!(out.has_row(&["q2", "t1", "u1", "erasure", "refused"]) && !out.stdout.contains("q1"), "{out:?}");

    // The receipt, saved, holds against the audit log; edited, it does not.
    let file = h.dir.path().join("q1.receipt.json");
    let out = ctl(&h, AUDITOR, &["request", "receipt", "q1", "--out", file.to_str().unwrap()]).await;
    ok(&out);
    assert_eq!(
        out.stdout,
        format!("receipt of request q1 (partially_completed, 2 entries) written to {}\n", file.display())
    );
    let printed = ctl(&h, AUDITOR, &["request", "receipt", "q1"]).await;
    ok(&printed);
    let receipt: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(printed.json(), receipt, "printed and saved alike");
    assert_eq!(receipt, h.get_as(AUDITOR, "/v1/certificates/requests/q1").await.1, "the receipt as served");
    let checked = audit_receipt(&file, &h.state_dir()).await;
    assert_eq!(checked.code, 0, "{checked:?}");
    assert!(
        checked.stdout.starts_with("ok: receipt of request q1 holds: partially_completed, 2 entries"),
        "{checked:?}"
    );
    let erased = receipt["entries"].as_array().unwrap().iter().position(|e| e["outcome"] == "erased").unwrap();
    for (path, value) in [
        (format!("/entries/{erased}/store"), json!("ledger")),
        ("/decision".to_string(), json!("refuse")),
        ("/due".to_string(), json!("2026-01-31T00:00:00Z")),
    ] {
        let mut forged = receipt.clone();
        *forged.pointer_mut(&path).unwrap() = value;
        let edited = h.dir.path().join("edited.json");
        std::fs::write(&edited, forged.to_string()).unwrap();
        let checked = audit_receipt(&edited, &h.state_dir()).await;
        assert_eq!(checked.code, 1, "{path}: {checked:?}");
        assert!(checked.stderr.starts_with("receipt does not hold: record "), "{path}: {checked:?}");
        assert!(checked.stdout.is_empty(), "{checked:?}");
    }
    // Not JSON at all: exit 2 naming the file, as `audit certificate`.
    std::fs::write(h.dir.path().join("edited.json"), "{").unwrap();
    let checked = audit_receipt(&h.dir.path().join("edited.json"), &h.state_dir()).await;
    assert_eq!(checked.code, 2, "{checked:?}");
    assert!(checked.stderr.contains("edited.json: "), "{checked:?}");
}

/// Unknown requests and subjects read as the other 404s of ctl (exit 1,
/// one line), an open request has no receipt yet, and a ground off the
/// closed list, or a decision that is neither, is a usage error (exit 2).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_requests_open_receipts_and_bad_decisions_are_refused() {
    let h = start("").await;
    two_requests(&h).await;
    let out = ctl(&h, AUDITOR, &["request", "show", "ghost"]).await;
    assert_eq!((out.code, out.stdout.as_str()), (1, ""), "{out:?}");
    assert_eq!(out.stderr, "retentiond ctl: not found (404): unknown request\n");
    let out = ctl(&h, AUDITOR, &["request", "receipt", "ghost"]).await;
    assert_eq!(out.stderr, "retentiond ctl: not found (404): unknown request\n");
    let out = ctl(&h, OPERATOR, &["request", "decide", "ghost", "--execute"]).await;
    assert_eq!((out.code, out.stdout.as_str()), (1, ""), "{out:?}");
    assert_eq!(out.stderr, "retentiond ctl: reading request ghost for its tenant: not found (404): unknown request\n");
    let out = ctl(&h, AUDITOR, &["subject", "show", "t1", "nobody"]).await;
    assert_eq!(out.code, 1, "{out:?}");
    assert_eq!(out.stderr, "retentiond ctl: not found (404): no such subject of that tenant\n");

    let out = ctl(&h, AUDITOR, &["request", "receipt", "q1"]).await;
    assert_eq!((out.code, out.stdout.as_str()), (1, ""), "{out:?}");
    assert!(out.stderr.contains("409") && out.stderr.contains("request is received"), "{out:?}");

    for args in [
        &["request", "decide", "q1"][..],
        &["request", "decide", "q1", "--execute", "--refuse", "repetitive"],
        &["request", "decide", "q1", "--refuse", "not_a_ground"],
        &["request", "list", "--state", "pending"],
        &["request", "list", "--due-before", "tomorrow"],
    ] {
        let out = ctl(&h, OPERATOR, args).await;
        assert_eq!(out.code, 2, "{args:?}: {out:?}");
    }
    let out = ctl(&h, OPERATOR, &["request", "decide", "q1", "--refuse", "not_a_ground"]).await;
    assert!(out.stderr.contains("legal_obligation") && out.stderr.contains("impractical"), "grounds listed: {out:?}");

    // The billing feed may not decide: refused before anything is posted.
    let out = ctl(&h, INGEST, &["request", "decide", "q1", "--execute"]).await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("may not decide requests (403"), "{out:?}");
    // An auditor reads it, but the daemon refuses the event (403): nothing stored.
    let out = ctl(&h, AUDITOR, &["request", "decide", "q1", "--execute"]).await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("(403)"), "{out:?}");
    assert_eq!(h.get_as(AUDITOR, "/v1/requests/q1").await.1["state"], "received");
}

/// `--state overdue` and `--due-before` filter as the API does, across
/// pages; the table flags what is overdue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_list_filters_by_state_and_due_date_across_pages() {
    let h = start("").await;
    two_requests(&h).await;
    h.advance("5d").await;
    let later = json!({"event_id": "e3", "type": "erasure.requested", "at": "2026-01-06T00:00:00Z", "tenant": "t2",
                       "request_id": "q3", "grounds": ["purpose_fulfilled"], "verified": true});
    h.events(json!([later])).await;
    h.advance("11d").await;

    let out = ctl(&h, AUDITOR, &["request", "list", "--state", "overdue"]).await;
    ok(&out);
    assert_eq!(
        out.stdout,
        text(&[
            "REQUEST  TENANT  SUBJECT  KIND     STATE     RECEIVED_AT           DUE                   OVERDUE",
            "q1       t1      t1       erasure  received  2026-01-01T00:00:00Z  2026-01-16T00:00:00Z  yes",
            "q2       t1      u1       erasure  received  2026-01-01T00:00:00Z  2026-01-16T00:00:00Z  yes",
            "2 requests, 2 open and overdue",
        ])
    );
    let out = ctl(&h, AUDITOR, &["request", "list", "--state", "open", "--due-before", "2026-01-20T00:00:00Z"]).await;
    assert!(out.has_row(&["q1"]) && out.has_row(&["q2"]) && !out.has_row(&["q3"]), "{out:?}");
    let out = ctl(&h, AUDITOR, &["request", "list", "--due-before", "2026-01-16T00:00:00Z"]).await;
    assert_eq!(out.stdout, "(none)\n0 requests, 0 open and overdue\n", "strictly before");

    // More than a page: ctl follows `next` to the end, one JSON answer.
    let many: Vec<Value> = (0..1001)
        .map(|i| {
            json!({"event_id": format!("m{i}"), "type": "erasure.requested", "at": "2026-01-17T00:00:00Z",
                   "tenant": format!("tm{i:04}"), "request_id": format!("qm{i:04}"), "grounds": ["no_consent"]})
        })
        .collect();
    for chunk in many.chunks(1000) {
        let (status, v) = h.post_as(INGEST, "/v1/events", &json!(chunk)).await;
        assert_eq!(status, reqwest::StatusCode::OK, "{v}");
    }
    let out = ctl(&h, AUDITOR, &["--json", "request", "list", "--state", "received"]).await;
    ok(&out);
    let v = out.json();
    let ids: Vec<&str> = v["requests"].as_array().unwrap().iter().map(|r| r["request"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 1004);
    assert_eq!((ids[0], ids[1003]), ("q1", "qm1000"));
    assert_eq!(v.get("next"), None);
    // Answered late, q1 stays flagged but is no longer open.
    ok(&ctl(&h, OPERATOR, &["request", "decide", "q1", "--refuse", "impractical"]).await);
    let out = ctl(&h, AUDITOR, &["request", "list"]).await;
    assert!(out.has_row(&["q1", "t1", "t1", "erasure", "refused", T0, "2026-01-16T00:00:00Z", "yes"]), "{out:?}");
    assert!(out.stdout.ends_with("1004 requests, 1 open and overdue\n"), "{}", out.stdout.lines().last().unwrap());
}

/// A subject's classes by store, with a stuck call (the crm volume gone,
/// one attempt allowed), retried through `ctl retry --tenant --subject`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subject_show_and_a_stuck_personal_store_retried() {
    let h = start("max_attempts = 1").await;
    let contact = personal(&h, "crm", "t1");
    personal(&h, "ledger", "t1");
    two_requests(&h).await;
    std::fs::remove_file(h.dir.path().join("crm").join(MARKER)).unwrap(); // the volume is not mounted
    let out = ctl(&h, OPERATOR, &["request", "decide", "q1", "--execute"]).await;
    ok(&out);
    h.advance("0s").await;
    assert!(contact.exists());

    // The account holder: SUBJECT left out.
    let out = ctl(&h, AUDITOR, &["subject", "show", "t1"]).await;
    ok(&out);
    let lines: Vec<&str> = out.stdout.lines().collect();
    let want_head = [
        "tenant          t1",
        "subject         t1",
        "account_holder  yes",
        "registered_at   -",
        "closed_at       -",
        "restricted_by   -",
        "",
        "classes:",
    ];
    assert_eq!(lines[..8], want_head, "{}", out.stdout);
    assert!(out.has_row(&["CLASS", "ERASURE", "ERASE_AFTER", "KEEP_UNTIL", "SCHEDULED_BY", "STARTED_AT"]), "{out:?}");
    assert!(out.has_row(&["contact", "delete", T0, "-", "q1", T0]), "{out:?}");
    assert!(out.has_row(&["billing", "delete", "2027-01-01T00:00:00Z", "2027-01-01T00:00:00Z", "q1", "-"]), "{out:?}");
    assert!(out.has_row(&["CLASS", "STORE", "STATE", "ATTEMPTS", "DONE_AT", "AUDIT_SEQ", "LAST_ERROR"]), "{out:?}");
    assert!(out.has_row(&["contact", "crm", "erasing", "(stuck)", "1", "-", "-"]), "{out:?}");
    assert!(out.stdout.contains("marker"), "the last error names the missing marker: {out:?}");
    assert!(out.has_row(&["billing", "ledger", "present", "0", "-", "-", "-"]), "{out:?}");
    assert!(out.stdout.ends_with(&text(&[
        "requests:",
        "REQUEST  KIND     STATE      DUE                   OVERDUE",
        "q1       erasure  executing  2026-01-16T00:00:00Z  no",
    ])));
    let out = ctl(&h, AUDITOR, &["subject", "show", "t1", "u1", "--json"]).await;
    ok(&out);
    assert_eq!(out.json(), h.get_as(AUDITOR, "/v1/subjects/t1/u1").await.1);
    assert_eq!(out.json()["account_holder"], false);

    // Retry: the subject named by --tenant and --subject; RESOURCE and
    // --subject together, or --subject alone, are usage errors.
    for args in [&["retry", "r1", "--tenant", "t1", "--subject", "t1"][..], &["retry", "--subject", "t1"], &["retry"]] {
        assert_eq!(ctl(&h, OPERATOR, args).await.code, 2, "{args:?}");
    }
    let out = ctl(&h, OPERATOR, &["retry", "--tenant", "t1", "--subject", "ghost"]).await;
    assert_eq!(out.stderr, "retentiond ctl: not found (404): no such subject of that tenant\n");
    let out = ctl(&h, OPERATOR, &["retry", "--tenant", "t1", "--subject", "t1", "--store", "primary"]).await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("field store: the subject has no data in store \"primary\""), "{out:?}");
    fs_root(&h.dir.path().join("crm")); // the volume is back
    let out = ctl(&h, OPERATOR, &["retry", "--tenant", "t1", "--subject", "t1", "--store", "crm"]).await;
    ok(&out);
    assert_eq!(out.stdout, "retried 1 stuck personal-store calls of subject t1 of tenant t1\n");
    h.advance("0s").await;
    assert!(!contact.exists());
    let out = ctl(&h, AUDITOR, &["request", "show", "q1"]).await;
    assert_eq!(out.field("state").as_deref(), Some("partially_completed"), "{out:?}");
    let out = ctl(&h, OPERATOR, &["--json", "retry", "--tenant", "t1", "--subject", "t1"]).await;
    ok(&out);
    assert_eq!(out.json(), json!({"retried": 0}));
    // A business resource's retry is unchanged.
    let out = run(&[("RETENTIOND_ADDR", &h.base), ("RETENTIOND_TOKEN", OPERATOR)], &["retry", "nope"], None).await;
    assert_eq!(out.stderr, "retentiond ctl: not found (404): unknown resource \"nope\"\n");
}

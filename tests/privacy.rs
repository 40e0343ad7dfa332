//! Personal data of account holders (issue 12; domain-rules §3,
//! product-spec §8) through the HTTP API of the real binary (`retentiond
//! serve` in its own process, [`Harness::binary`]) on the manual clock: a
//! scenario per rule, the bad input of issue 12 point 7 refused with
//! nothing stored, the receipt checked against the daemon's own audit log,
//! and a crash of the process in the middle of a request's fan-out.
//!
//! Two personal stores: `files`, an `fs` store (delete only) holding the
//! contact class under `personal/{tenant}/{subject}`, and `crm`, a
//! `command` store whose program appends its argv (`{action} {tenant}
//! {subject} {class}`) to `crm.log`, holding both classes: so a test sees
//! which action reached which executor. Contact data is deleted 30 days
//! after closure; billing records are anonymised 400 days after it and
//! kept a year by law (`legal_minimum`).

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// A daemon (the real binary) with the two personal stores, and the
/// directory holding the stores' data and the crm program's log.
struct Privacy {
    h: Harness,
    tools: tempfile::TempDir,
}

/// The config: `contact` lists the stores of the contact class (an `fs`
/// store cannot restrict, so the restriction scenario leaves it out);
/// `extra` is added to `[privacy]`; `crm_body` is the crm program.
fn config(tools: &Path, contact: &str, extra: &str, crm_body: &str) -> String {
    let files = fs_root(&tools.join("personal"));
    let crm = script(tools, "crm.sh", crm_body);
    base_config(&format!(
        r#"
[stores.files]
class = "online"
data = "personal"
executor = {{ kind = "fs", root = "{files}", path = "{{tenant}}/{{subject}}" }}

[stores.crm]
class = "online"
data = "personal"
executor = {{ kind = "command", argv = ["{crm}", "{{action}}", "{{tenant}}", "{{subject}}", "{{class}}"] }}

[privacy]
response_time = "15d"
warn_before = ["5d", "1d"]
{extra}

[privacy.classes.contact]
stores = {contact}
after_closure = "30d"
erasure = "delete"

[privacy.classes.billing]
stores = ["crm"]
after_closure = "400d"
legal_minimum = "365d"
erasure = "anonymize"
"#,
        files = files.display(),
        crm = crm.display(),
    ))
}

/// The crm program that records each call and succeeds.
fn recording(tools: &Path) -> String {
    format!("echo \"$@\" >> {}", tools.join("crm.log").display())
}

impl Privacy {
    /// Both stores hold the contact class.
    async fn start() -> Privacy {
        Self::with(r#"["files", "crm"]"#, "").await
    }

    async fn with(contact: &str, extra: &str) -> Privacy {
        let tools = tempfile::tempdir().unwrap();
        let h = Harness::binary(&config(tools.path(), contact, extra, &recording(tools.path()))).await;
        Privacy { h, tools }
    }

    /// Writes the subject's contact data in the `files` store.
    fn personal(&self, tenant: &str, subject: &str) -> PathBuf {
        let p = self.tools.path().join("personal").join(tenant).join(subject);
        std::fs::create_dir_all(&p).unwrap();
        std::fs::write(p.join("profile.json"), b"{\"name\": \"someone\"}").unwrap();
        p
    }

    /// The crm program's calls so far, one `action tenant subject class` each.
    fn crm(&self) -> Vec<String> {
        let text = std::fs::read_to_string(self.tools.path().join("crm.log")).unwrap_or_default();
        text.lines().map(String::from).collect()
    }

    /// Posts one event as the operator; returns its result.
    async fn operator(&self, body: Value) -> Value {
        let (status, v) = self.h.post_as(OPERATOR, "/v1/events", &body).await;
        assert_eq!(status, StatusCode::OK, "{v}");
        v["results"][0].clone()
    }

    /// `request.decided`: `execute`, or refuse on `ground`.
    async fn decide(&self, event_id: &str, request: &str, ground: Option<&str>) -> Value {
        let mut body = ev(event_id, "request.decided", &self.now().await, json!({"request_id": request}));
        match ground {
            None => body["decision"] = json!("execute"),
            Some(g) => {
                body["decision"] = json!("refuse");
                body["ground"] = json!(g);
            }
        }
        self.operator(body).await
    }

    /// `GET /v1/requests/{id}`, answered 200.
    async fn request(&self, id: &str) -> Value {
        let (status, v) = self.h.get_as(AUDITOR, &format!("/v1/requests/{id}")).await;
        assert_eq!(status, StatusCode::OK, "{v}");
        v
    }

    /// `GET /v1/requests?query`: the ids listed (200).
    async fn listed(&self, query: &str) -> Vec<String> {
        let (status, v) = self.h.get_as(AUDITOR, &format!("/v1/requests{query}")).await;
        assert_eq!(status, StatusCode::OK, "{v}");
        v["requests"].as_array().unwrap().iter().map(|r| r["request"].as_str().unwrap().to_string()).collect()
    }

    /// `GET /v1/requests`, whole: what a test compares before and after
    /// input that must store nothing.
    async fn all_requests(&self) -> Value {
        let (status, v) = self.h.get_as(AUDITOR, "/v1/requests").await;
        assert_eq!(status, StatusCode::OK, "{v}");
        v
    }

    /// `GET /v1/restore-check?tenant=..&subject=..`: allowed, and why.
    async fn restore(&self, tenant: &str, subject: &str) -> (bool, String) {
        let (status, v) = self.h.get_as(AUDITOR, &format!("/v1/restore-check?tenant={tenant}&subject={subject}")).await;
        assert_eq!(status, StatusCode::OK, "{v}");
        (v["allowed"].as_bool().unwrap(), v["reason"].as_str().unwrap().to_string())
    }

    /// The clock's reading.
    async fn now(&self) -> String {
        self.h.advance("0s").await
    }

    /// One sample of `/metrics`.
    async fn metric(&self, name: &str) -> u64 {
        let (status, text) = self.h.get_text(AUDITOR, "/metrics").await;
        assert_eq!(status, StatusCode::OK);
        let line = text.lines().find(|l| l.split([' ', '{']).next() == Some(name)).expect("the metric is exported");
        line.rsplit(' ').next().unwrap().parse().unwrap()
    }

    /// Audit records of one kind.
    fn records(&self, kind: &str) -> Vec<Value> {
        self.h.audit().into_iter().filter(|r| r["kind"] == kind).collect()
    }
}

/// An event about tenant `t1`'s account (no resource), with `fields`.
fn ev(id: &str, kind: &str, at: &str, fields: Value) -> Value {
    let mut v = json!({"event_id": id, "type": kind, "at": at, "tenant": "t1"});
    for (k, x) in fields.as_object().unwrap() {
        v[k] = x.clone();
    }
    v
}

/// `erasure.requested` for `subject` of `t1`, on ground `consent_withdrawn`.
fn erasure(id: &str, request: &str, subject: &str, verified: bool, at: &str) -> Value {
    ev(
        id,
        "erasure.requested",
        at,
        json!({"request_id": request, "subject": subject, "grounds": ["consent_withdrawn"], "verified": verified}),
    )
}

/// Privacy policy 5.5.2 and 7.2: closing the account stops the services
/// (the resource ends, reason `account_closed`) and erases every class of
/// every subject at `at + after_closure`, not a second before: contact
/// data deleted in both its stores on day 30, billing records anonymised
/// on day 400. The forecast lists the personal erasures beside the
/// business deletions, and the restore gate refuses erased data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn privacy_policy_5_5_2_closure_erases_each_class_at_after_closure_and_not_a_second_before() {
    let p = Privacy::start().await;
    p.h.apply(json!({"event_id": "c1", "type": "resource.created", "at": T0, "tenant": "t1", "resource": "r1",
                     "product": "ecs", "billing": "postpaid"}))
        .await;
    p.h.apply(ev("s1", "subject.created", T0, json!({"subject": "u1"}))).await;
    let (holder, user) = (p.personal("t1", "t1"), p.personal("t1", "u1"));
    let now = p.h.advance("1d").await;
    p.h.apply(ev("a1", "account.closed", &now, json!({}))).await;

    let r = p.h.resource("r1").await;
    assert_eq!((r["state"].as_str(), r["reason"].as_str()), (Some("retained"), Some("account_closed")), "{r}");
    let (_, forecast) = p.h.get_as(AUDITOR, "/v1/deletions?before=2026-03-01T00:00:00Z").await;
    let personal: Vec<(&str, &str, &str, &str, &str)> = forecast["personal"]
        .as_array()
        .expect("the forecast lists personal erasures")
        .iter()
        .map(|e| {
            let s = |k: &str| e[k].as_str().unwrap();
            (s("subject"), s("class"), s("erasure"), s("erase_after"), s("scheduled_by"))
        })
        .collect();
    assert_eq!(
        personal,
        [
            ("t1", "contact", "delete", "2026-02-01T00:00:00Z", "account_closed"),
            ("u1", "contact", "delete", "2026-02-01T00:00:00Z", "account_closed"),
        ],
        "{forecast}"
    );
    assert!(forecast["deletions"].as_array().unwrap().iter().any(|d| d["resource"] == "r1"), "{forecast}");
    let (_, s) = p.h.get_as(AUDITOR, "/v1/subjects/t1/u1").await;
    let billing = s["classes"].as_array().unwrap().iter().find(|c| c["class"] == "billing").unwrap().clone();
    assert_eq!(billing["erase_after"], "2027-02-06T00:00:00Z", "{s}");
    assert_eq!(billing["keep_until"], "2027-01-02T00:00:00Z", "{s}");

    p.h.set_clock("2026-01-31T23:59:59Z").await;
    assert!(holder.exists() && user.exists(), "kept until after_closure has run");
    assert_eq!(p.crm(), Vec::<String>::new());
    assert!(p.restore("t1", "u1").await.0, "nothing erased yet");
    p.h.advance("1s").await;
    assert!(!holder.exists() && !user.exists(), "both subjects' contact data deleted in the fs store");
    let mut calls = p.crm();
    calls.sort();
    assert_eq!(calls, ["delete t1 t1 contact", "delete t1 u1 contact"], "deleted in the crm, billing kept");
    let (allowed, why) = p.restore("t1", "u1").await;
    assert!(!allowed && why.contains("erased"), "{why}");

    p.h.set_clock("2027-02-05T23:59:59Z").await;
    assert_eq!(p.crm().len(), 2, "billing records kept 400 days");
    p.h.advance("1s").await;
    let mut calls = p.crm();
    calls.sort();
    assert_eq!(
        calls,
        ["anonymize t1 t1 billing", "anonymize t1 u1 billing", "delete t1 t1 contact", "delete t1 u1 contact"]
    );
    assert_eq!((p.records("personal.erased").len(), p.records("personal.anonymized").len()), (4, 2));
    p.h.verify_audit();
}

/// Privacy policy 5.6.1: requests answered within 15 days. Warned 5 days
/// and 1 day before; a request decided on day 14 is not overdue; one left
/// unanswered is flagged `overdue` on day 15 (not a second before): the
/// request shows it, the listing of overdue requests has it, and so does
/// the metric.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn privacy_policy_5_6_1_answered_on_day_14_is_on_time_and_unanswered_is_overdue_on_day_15() {
    let p = Privacy::start().await;
    p.h.apply(ev("s1", "subject.created", T0, json!({"subject": "u1"}))).await;
    p.h.apply(erasure("e1", "q1", "t1", true, T0)).await;
    p.h.apply(erasure("e2", "q2", "u1", true, T0)).await;
    assert_eq!(p.request("q2").await["due"], "2026-01-16T00:00:00Z");
    p.h.advance("10d").await;
    assert_eq!(p.records("request.due_soon").len(), 2, "both warned 5 days before");
    p.h.advance("4d").await;
    assert_eq!(p.records("request.due_soon").len(), 4, "and 1 day before");
    assert_eq!(p.decide("d1", "q1", None).await["status"], "applied");

    p.h.set_clock("2026-01-15T23:59:59Z").await;
    assert_eq!(p.request("q2").await["overdue"], false);
    assert_eq!(p.listed("?state=overdue").await, Vec::<String>::new());
    assert_eq!(p.metric("retentiond_requests_overdue").await, 0);
    p.h.advance("1s").await;
    let q2 = p.request("q2").await;
    assert_eq!((q2["state"].as_str(), q2["overdue"].as_bool()), (Some("received"), Some(true)), "{q2}");
    assert_eq!(p.request("q1").await["overdue"], false, "answered on day 14");
    assert_eq!(p.listed("?state=overdue").await, ["q2"]);
    assert_eq!(p.listed("?state=open&due_before=2026-01-17T00:00:00Z").await, ["q2"]);
    assert_eq!(p.metric("retentiond_requests_overdue").await, 1);
    assert_eq!(p.records("request.overdue").len(), 1);
    // Answered late: the flag stays.
    assert_eq!(p.decide("d2", "q2", Some("impractical")).await["status"], "applied");
    assert_eq!(p.request("q2").await["overdue"], true);
    assert_eq!(p.metric("retentiond_requests_overdue").await, 0, "no longer waiting");
}

/// Privacy policy 5.8 and 5.6.2: a request may be refused on each listed
/// ground, and only a listed one; the request shows it and nothing is
/// erased. A decision on a refused request is rejected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn privacy_policy_5_8_every_refusal_ground_is_accepted_and_shown() {
    let p = Privacy::start().await;
    let contact = p.personal("t1", "t1");
    let grounds = [
        "legal_obligation",
        "national_security",
        "public_safety",
        "criminal_investigation",
        "abuse_of_rights",
        "protection_of_life_or_property",
        "harm_to_others",
        "trade_secret",
        "repetitive",
        "impractical",
    ];
    for (i, ground) in grounds.iter().enumerate() {
        let now = p.now().await;
        p.h.apply(erasure(&format!("e{i}"), &format!("q{i}"), "t1", true, &now)).await;
        let r = p.decide(&format!("d{i}"), &format!("q{i}"), Some(ground)).await;
        assert_eq!(r["status"], "applied", "{ground}: {r}");
        let q = p.request(&format!("q{i}")).await;
        assert_eq!((q["state"].as_str(), q["refusal_ground"].as_str()), (Some("refused"), Some(*ground)), "{q}");
        assert!(q["linked_to"].is_null(), "a refused request is closed: the next is not linked to it");
    }
    let r = p.decide("again", "q0", None).await;
    assert_eq!(r["status"], "rejected", "{r}");
    assert_eq!(p.listed("?state=refused").await.len(), 10);
    p.h.advance("30d").await;
    assert!(contact.exists() && p.crm().is_empty(), "a refusal erases nothing");
    assert_eq!(p.listed("?state=overdue").await, Vec::<String>::new());
}

/// Privacy policy 7.2: an erasure request while the account is open
/// erases what it can now and keeps the class under its legal minimum
/// (`partially_completed`, the class with its date, counted from the
/// request), then erases it at its end (`completed`). The receipt is 409
/// before the answer, then 200, and holds against the daemon's audit log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn privacy_policy_7_2_a_legal_minimum_is_kept_then_erased_at_its_end_with_a_receipt() {
    let p = Privacy::start().await;
    let contact = p.personal("t1", "t1");
    p.h.apply(erasure("e1", "q1", "t1", true, T0)).await;
    let (status, v) = p.h.get_as(AUDITOR, "/v1/certificates/requests/q1").await;
    assert_eq!(status, StatusCode::CONFLICT, "no receipt before the answer: {v}");
    let now = p.h.advance("2d").await;
    assert_eq!(p.decide("d1", "q1", None).await["status"], "applied");
    p.h.advance("0s").await;
    assert!(!contact.exists());
    assert_eq!(p.crm(), ["delete t1 t1 contact"]);
    let q = p.request("q1").await;
    assert_eq!(q["state"], "partially_completed", "{q}");
    let classes: Vec<(&str, &str, Option<&str>)> = q["classes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["class"].as_str().unwrap(), c["outcome"].as_str().unwrap(), c["kept_until"].as_str()))
        .collect();
    assert!(classes.contains(&("billing", "kept", Some("2027-01-01T00:00:00Z"))), "{q}");
    assert!(classes.contains(&("contact", "erased", None)), "{q}");
    assert_eq!(q["decided_at"].as_str(), Some(now.as_str()));

    let log = p.h.state_dir().join("audit.jsonl");
    let (status, receipt) = p.h.get_as(AUDITOR, "/v1/certificates/requests/q1").await;
    assert_eq!(status, StatusCode::OK, "{receipt}");
    let ok = retentiond::receipt::check(&receipt, &log).unwrap_or_else(|e| panic!("{e}: {receipt}"));
    assert!(ok.contains("partially_completed"), "{ok}");
    let entries = receipt["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 3, "each class in each store: {receipt}");
    let kept = entries.iter().find(|e| e["class"] == "billing").unwrap();
    assert_eq!((kept["outcome"].as_str(), kept["kept_until"].as_str()), (Some("kept"), Some("2027-01-01T00:00:00Z")));
    let mut forged = receipt.clone();
    forged["state"] = json!("completed");
    assert!(retentiond::receipt::check(&forged, &log).is_err(), "the receipt says what the log says");

    p.h.set_clock("2026-12-31T23:59:59Z").await;
    assert_eq!(p.crm().len(), 1, "never before the legal minimum ends");
    p.h.advance("1s").await;
    assert_eq!(p.crm(), ["delete t1 t1 contact", "anonymize t1 t1 billing"]);
    assert_eq!(p.request("q1").await["state"], "completed");
    let (status, receipt) = p.h.get_as(AUDITOR, "/v1/certificates/requests/q1").await;
    assert_eq!(status, StatusCode::OK, "{receipt}");
    let ok = retentiond::receipt::check(&receipt, &log).unwrap_or_else(|e| panic!("{e}: {receipt}"));
    assert!(ok.contains("completed"), "{ok}");
    assert!(receipt["entries"].as_array().unwrap().iter().all(|e| e["outcome"] != "kept"), "{receipt}");
}

/// Privacy policy 7.2 after a closure, and the two erasures reaching the
/// executor as the class says: a request after the account closed erases
/// the contact class now (`delete` in both stores) and anonymises billing
/// records when the legal minimum counted from the closure ends
/// (`anonymize`, never `delete`), before the 400 days of `after_closure`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymize_and_delete_reach_the_executor_as_each_class_says() {
    let p = Privacy::start().await;
    let contact = p.personal("t1", "t1");
    p.h.apply(ev("a1", "account.closed", T0, json!({}))).await;
    let now = p.h.advance("10d").await;
    p.h.apply(erasure("e1", "q1", "t1", true, &now)).await;
    p.decide("d1", "q1", None).await;
    p.h.advance("0s").await;
    assert!(!contact.exists(), "the fs store deleted it");
    assert_eq!(p.crm(), ["delete t1 t1 contact"]);
    assert_eq!(p.request("q1").await["classes"][0]["kept_until"], "2027-01-01T00:00:00Z");
    p.h.set_clock("2027-01-01T00:00:00Z").await;
    assert_eq!(p.crm(), ["delete t1 t1 contact", "anonymize t1 t1 billing"]);
    assert_eq!(p.request("q1").await["state"], "completed");
    let (_, s) = p.h.get_as(AUDITOR, "/v1/subjects/t1/t1").await;
    for c in s["classes"].as_array().unwrap() {
        assert!(c["stores"].as_array().unwrap().iter().all(|s| s["state"] == "erased"), "{s}");
    }
}

/// International privacy policy: restriction of processing. Decided, every
/// personal store is asked to `restrict`; the restore gate refuses the
/// subject's data while restricted and allows it again once the
/// restriction is lifted (`unrestrict` in every store). Lifting is an
/// operator's event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restriction_holds_until_lifted_and_the_restore_gate_follows_it() {
    let p = Privacy::with(r#"["crm"]"#, "").await;
    p.h.apply(ev("r1", "restriction.requested", T0, json!({"request_id": "x1", "verified": true}))).await;
    assert!(p.restore("t1", "t1").await.0, "not restricted before the decision");
    assert_eq!(p.decide("d1", "x1", None).await["status"], "applied");
    p.h.advance("0s").await;
    let mut calls = p.crm();
    calls.sort();
    assert_eq!(calls, ["restrict t1 t1 billing", "restrict t1 t1 contact"]);
    assert_eq!(p.request("x1").await["state"], "completed");
    let (allowed, why) = p.restore("t1", "t1").await;
    assert!(!allowed && why.contains("restricted"), "{why}");
    let (_, s) = p.h.get_as(AUDITOR, "/v1/subjects/t1/t1").await;
    assert_eq!(s["restricted_by"], "x1", "{s}");

    let now = p.h.advance("3d").await;
    let lift = ev("l1", "restriction.lifted", &now, json!({"request_id": "x1", "subject": "t1"}));
    let (status, _) = p.h.post_as(INGEST, "/v1/events", &lift).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "lifting is an operator's decision");
    assert!(!p.restore("t1", "t1").await.0);
    assert_eq!(p.operator(lift).await["status"], "applied");
    p.h.advance("0s").await;
    let mut calls = p.crm();
    calls.sort();
    assert_eq!(
        calls,
        ["restrict t1 t1 billing", "restrict t1 t1 contact", "unrestrict t1 t1 billing", "unrestrict t1 t1 contact"]
    );
    assert_eq!(
        p.restore("t1", "t1").await,
        (true, "personal data of subject t1/t1 is neither restricted nor erased".into())
    );
    assert_eq!(p.request("x1").await["lifted_at"].as_str(), Some(now.as_str()));
}

/// Privacy policy 5.8: a hold on the tenant defers an approved erasure (the
/// request shows the hold in `deferred_by`, and is not overdue: it was
/// answered); it runs a day after the release (`safety.after_hold_release`),
/// not before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn privacy_policy_5_8_a_hold_defers_a_request_until_a_day_after_its_release() {
    let p = Privacy::start().await;
    let contact = p.personal("t1", "t1");
    p.operator(ev("h1", "hold.placed", T0, json!({"hold_id": "court-1", "authority": "Court", "reason": "case 7"})))
        .await;
    p.h.apply(erasure("e1", "q1", "t1", true, T0)).await;
    p.decide("d1", "q1", None).await;
    p.h.advance("20d").await;
    let q = p.request("q1").await;
    assert_eq!((q["state"].as_str(), q["overdue"].as_bool()), (Some("approved"), Some(false)), "{q}");
    assert_eq!(q["deferred_by"], json!(["court-1"]), "{q}");
    assert!(contact.exists() && p.crm().is_empty(), "nothing erased under the hold");
    let now = p.now().await;
    assert_eq!(p.operator(ev("h2", "hold.released", &now, json!({"hold_id": "court-1"}))).await["status"], "applied");
    p.h.advance("23h59m59s").await;
    assert!(contact.exists() && p.crm().is_empty(), "not sooner than safety.after_hold_release");
    assert!(p.request("q1").await["deferred_by"].is_null(), "released: nothing defers it");
    p.h.advance("1s").await;
    assert!(!contact.exists());
    assert_eq!(p.crm(), ["delete t1 t1 contact"]);
    assert_eq!(p.request("q1").await["state"], "partially_completed");
}

/// safety.guard (issue 12.5): a mistaken mass of erasures must not erase
/// everyone's personal data at once. With a guard that lets two starts an
/// hour go, three users whose erasures begin together are held
/// whole: nothing erased, `/readyz` shows the batch, `guard.tripped` names
/// the subjects; the operator's approval of exactly that batch lets the
/// three go.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn safety_guard_a_burst_of_personal_erasures_is_held_whole_until_approved() {
    let guard = "auto_approve = true\n[safety.guard]\nwindow = \"1h\"\nmax_resources = 2\n\
                 min_resources = 1000\nlong_max_resources = 1000\n";
    let p = Privacy::with(r#"["files"]"#, guard).await;
    let users = ["alice", "bob", "carol"];
    for u in users {
        p.h.apply(ev(&format!("c-{u}"), "subject.created", T0, json!({"subject": u}))).await;
    }
    let data: Vec<PathBuf> = users.iter().map(|u| p.personal("t1", u)).collect();
    // The three requests in one post: their erasures begin at one instant.
    let requests: Vec<Value> =
        users.iter().map(|u| erasure(&format!("e-{u}"), &format!("q-{u}"), u, true, T0)).collect();
    let results = p.h.events(json!(requests)).await;
    assert!(results.iter().all(|r| r["status"] == "applied"), "{results:?}");
    p.h.advance("1s").await;
    assert!(data.iter().all(|d| d.exists()), "three erasures against a limit of two: none begins");
    let trips = p.records("guard.tripped");
    assert_eq!(trips.len(), 1);
    assert_eq!(trips[0]["data"]["resources"], json!(["subject:t1/alice", "subject:t1/bob", "subject:t1/carol"]));
    let (_, ready) = p.h.get_as(AUDITOR, "/readyz").await;
    assert_eq!(ready["guard_batch"]["size"], 3, "{ready}");
    assert_eq!(p.request("q-alice").await["state"], "approved", "the request waits, approved");
    assert!(p.records("personal.erasure_started").is_empty());

    let digest = trips[0]["data"]["batch_digest"].clone();
    let (status, v) = p.h.post_as(OPERATOR, "/v1/admin/approve", &json!({"batch_digest": digest})).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["batch"]["size"], 3, "{v}");
    p.h.advance("1s").await;
    assert!(data.iter().all(|d| !d.exists()), "the approved batch goes whole");
    for u in users {
        assert_eq!(p.request(&format!("q-{u}")).await["state"], "partially_completed", "billing is kept by law");
    }
}

/// Privacy policy 5.6.1: the requester's identity may be verified first;
/// an unverified request cannot be executed (the decision is rejected and
/// nothing changes), and is verified by the intake repeating the same
/// request id with `verified: true`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn privacy_policy_5_6_1_an_unverified_request_cannot_be_executed_until_verified() {
    let p = Privacy::start().await;
    let contact = p.personal("t1", "t1");
    p.h.apply(erasure("e1", "q1", "t1", false, T0)).await;
    let r = p.decide("d1", "q1", None).await;
    assert_eq!(r["status"], "rejected", "{r}");
    assert!(r["error"].as_str().unwrap().contains("not verified"), "{r}");
    p.h.advance("1d").await;
    let q = p.request("q1").await;
    assert_eq!((q["state"].as_str(), q["verified"].as_bool()), (Some("received"), Some(false)), "{q}");
    assert!(contact.exists() && p.crm().is_empty());

    let now = p.now().await;
    p.h.apply(erasure("e2", "q1", "t1", true, &now)).await;
    let q = p.request("q1").await;
    assert_eq!((q["verified"].as_bool(), q["received_at"].as_str()), (Some(true), Some(T0)), "the same request: {q}");
    assert_eq!(p.records("request.verified").len(), 1);
    assert_eq!(p.decide("d2", "q1", None).await["status"], "applied");
    p.h.advance("0s").await;
    assert!(!contact.exists());
}

/// A request for a subject while another is open is linked to it: it
/// cannot be decided on its own, shares the answer, calls no store twice,
/// and has a receipt of its own that holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_request_is_linked_and_not_executed_twice() {
    let p = Privacy::start().await;
    p.h.apply(erasure("e1", "q1", "t1", true, T0)).await;
    let now = p.h.advance("1d").await;
    p.h.apply(erasure("e2", "q2", "t1", true, &now)).await;
    assert_eq!(p.request("q2").await["linked_to"], "q1");
    let r = p.decide("d1", "q2", None).await;
    assert_eq!(r["status"], "rejected", "decide the first one: {r}");
    assert_eq!(p.decide("d2", "q1", None).await["status"], "applied");
    p.h.advance("0s").await;
    assert_eq!(p.crm(), ["delete t1 t1 contact"], "called once");
    let (q1, q2) = (p.request("q1").await, p.request("q2").await);
    assert_eq!(q2["state"], q1["state"]);
    assert_eq!(q2["state"], "partially_completed");
    let (status, receipt) = p.h.get_as(AUDITOR, "/v1/certificates/requests/q2").await;
    assert_eq!(status, StatusCode::OK, "{receipt}");
    assert_eq!(receipt["linked_to"], "q1");
    retentiond::receipt::check(&receipt, &p.h.state_dir().join("audit.jsonl")).unwrap();
}

/// Privacy policy 5.6.1 for a repeat: its due date is its own. A repeat
/// posted late (made on day 0, posted on day 14 after the request it
/// repeats) is flagged overdue on its own day 15, though the one it
/// repeats is due two weeks later: the daemon wakes for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeat_posted_late_goes_overdue_on_its_own_due_date() {
    let p = Privacy::start().await;
    let now = p.h.advance("14d").await;
    p.h.apply(erasure("e1", "q1", "t1", false, &now)).await;
    p.h.apply(erasure("e0", "q0", "t1", false, T0)).await;
    assert_eq!(p.request("q0").await["linked_to"], "q1");
    p.h.set_clock("2026-01-15T23:59:59Z").await;
    assert_eq!(p.listed("?state=overdue").await, Vec::<String>::new());
    p.h.advance("1s").await;
    assert_eq!(p.listed("?state=overdue").await, ["q0"]);
    assert_eq!(p.request("q1").await["overdue"], false, "due on day 29");
    assert_eq!(p.metric("retentiond_requests_overdue").await, 1);
}

/// Issue 12 point 7: bad input is refused, 400 naming the field or
/// `rejected` in the result (403 for a role that may not decide), and
/// nothing is stored: the requests read the same after each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_naming_the_field_and_stores_nothing() {
    let p = Privacy::start().await;
    p.h.apply(ev("s1", "subject.created", T0, json!({"subject": "u1"}))).await;
    p.h.apply(erasure("e1", "q1", "t1", true, T0)).await;
    p.h.apply(erasure("e2", "q2", "u1", false, T0)).await;
    assert_eq!(p.decide("d1", "q2", Some("repetitive")).await["status"], "applied");
    let before = p.all_requests().await;
    assert_eq!(before["requests"].as_array().unwrap().len(), 2, "{before}");

    let mut unknown_ground = erasure("b1", "q9", "t1", true, T0);
    unknown_ground["grounds"] = json!(["consent_withdrawn", "because"]);
    let no_ground = ev("b2", "request.decided", T0, json!({"request_id": "q1", "decision": "refuse"}));
    let bad_decision = ev("b3", "request.decided", T0, json!({"request_id": "q1", "decision": "maybe"}));
    let mut with_resource = ev("b4", "account.closed", T0, json!({}));
    with_resource["resource"] = json!("r1");
    let unknown_refusal =
        ev("b5", "request.decided", T0, json!({"request_id": "q1", "decision": "refuse", "ground": "busy"}));
    for (body, field) in [
        (&unknown_ground, "grounds"),
        (&no_ground, "ground"),
        (&bad_decision, "decision"),
        (&with_resource, "resource"),
        (&unknown_refusal, "ground"),
    ] {
        let (status, v) = p.h.post_as(OPERATOR, "/v1/events", body).await;
        assert_eq!((status, v["field"].as_str()), (StatusCode::BAD_REQUEST, Some(field)), "{body}: {v}");
        assert_eq!(p.all_requests().await, before, "{body} stored something");
    }

    let decided = ev("b6", "request.decided", T0, json!({"request_id": "q1", "decision": "execute"}));
    let (status, v) = p.h.post_as(INGEST, "/v1/events", &decided).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "the decision is an operator's: {v}");
    assert_eq!(p.all_requests().await, before);

    let other_tenant = json!({"event_id": "b7", "type": "erasure.requested", "at": T0, "tenant": "t2",
                              "request_id": "q7", "subject": "u1", "grounds": ["no_consent"], "verified": true});
    for (body, needle) in [
        (ev("b8", "request.decided", T0, json!({"request_id": "nope", "decision": "execute"})), "unknown request"),
        (ev("b9", "request.decided", T0, json!({"request_id": "q2", "decision": "execute"})), "already refused"),
        (other_tenant, "unknown subject"),
    ] {
        let r = p.operator(body.clone()).await;
        assert_eq!(r["status"], "rejected", "{body}: {r}");
        assert!(r["error"].as_str().unwrap().contains(needle), "{body}: {r}");
        assert_eq!(p.all_requests().await, before, "{body} stored something");
    }
    let (status, _) = p.h.get_as(AUDITOR, "/v1/subjects/t2/u1").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "no subject made for the other tenant");
    assert!(p.crm().is_empty());
}

/// Engineering-notes habit 1 on the real binary: the process dies (SIGKILL,
/// from the crm program itself) while a request's fan-out is under way.
/// The erasure's intent was durable before the calls; the next start calls
/// them again, the request completes as far as the law allows, and the
/// log holds one erasure record per store, and verifies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_in_the_middle_of_a_fan_out_resumes_at_the_next_start() {
    let tools = tempfile::tempdir().unwrap();
    let killed = tools.path().join("killed");
    // The first call kills the daemon that made it, as a crash would, and
    // never answers; later calls record themselves and succeed.
    let crm = format!(
        "if [ ! -e {k} ]; then touch {k}; kill -9 $PPID; exit 1; fi\n{record}",
        k = killed.display(),
        record = recording(tools.path())
    );
    let mut h = Harness::binary(&config(tools.path(), r#"["files", "crm"]"#, "", &crm)).await;
    let contact = tools.path().join("personal/t1/t1");
    std::fs::create_dir_all(&contact).unwrap();
    h.apply(erasure("e1", "q1", "t1", true, T0)).await;
    let decided = ev("d1", "request.decided", T0, json!({"request_id": "q1", "decision": "execute"}));
    // Answered once durable; the fan-out starts, and the daemon dies in it
    // (this request or the clock move after it gets no answer).
    let answered = h.client.post(format!("{}/v1/events", h.base)).bearer_auth(OPERATOR).json(&decided).send().await;
    let _ = h
        .client
        .post(format!("{}/v1/admin/clock", h.base))
        .bearer_auth(ADMIN)
        .json(&json!({"advance": "0s"}))
        .send()
        .await;
    assert_eq!(h.restart_after_crash().await, None, "killed by a signal");
    assert!(killed.exists(), "the crm program ran and killed the daemon");
    if let Ok(resp) = answered {
        let v: Value = resp.json().await.unwrap_or(Value::Null);
        assert!(v.is_null() || v["results"][0]["status"] == "applied", "{v}");
    }

    h.advance("0s").await;
    let (_, q) = h.get_as(AUDITOR, "/v1/requests/q1").await;
    assert_eq!(q["state"], "partially_completed", "resumed from the stored intent: {q}");
    assert!(!contact.exists());
    let log = std::fs::read_to_string(tools.path().join("crm.log")).unwrap();
    assert_eq!(log, "delete t1 t1 contact\n", "called again once, after the restart");
    let erased: Vec<(String, String)> = h
        .audit()
        .into_iter()
        .filter(|r| r["kind"] == "personal.erased")
        .map(|r| (r["data"]["class"].as_str().unwrap().into(), r["data"]["store"].as_str().unwrap().into()))
        .collect();
    assert_eq!(erased.len(), 2, "one record per store: {erased:?}");
    assert!(erased.contains(&("contact".into(), "files".into())) && erased.contains(&("contact".into(), "crm".into())));
    h.verify_audit();
    let (status, receipt) = h.get_as(AUDITOR, "/v1/certificates/requests/q1").await;
    assert_eq!(status, StatusCode::OK, "{receipt}");
    retentiond::receipt::check(&receipt, &h.state_dir().join("audit.jsonl")).unwrap();
}

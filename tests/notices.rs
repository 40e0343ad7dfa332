//! Notices to tenants (issue 5; domain-rules §1.3): the renewal reminder,
//! the start of a buffer, warnings at exactly the product's `notices`
//! offsets, and the completion, each sent at least once through a
//! `command` notifier, deduplicated by key, audited as `notice.sent`, and
//! never moving a deletion.

mod common;

use common::*;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// A notifier script that appends each notice (one JSON line from stdin)
/// to `sent.jsonl`, or fails while the file `fail` exists; it takes a
/// second while the file `slow` exists.
fn notifier(dir: &Path) -> PathBuf {
    let body = format!(
        "if [ -e {d}/slow ]; then sleep 1; fi\nif [ -e {d}/fail ]; then cat >/dev/null; exit 7; fi\ncat >> {d}/sent.jsonl",
        d = dir.display()
    );
    script(dir, "notify.sh", &body)
}

/// The notices the script received, in order.
fn sent(dir: &Path) -> Vec<Value> {
    read_jsonl(&dir.join("sent.jsonl"))
}

/// Each received notice as `kind date`, for readable assertions.
fn summary(dir: &Path) -> Vec<String> {
    sent(dir)
        .iter()
        .map(|n| format!("{} {}", n["notice"].as_str().unwrap(), n["date"].as_str().unwrap_or("-")))
        .collect()
}

async fn start() -> Harness {
    let mut h = Harness::start().await;
    h.stop().await;
    let script = notifier(h.dir.path());
    let extra = format!(
        "notices = [\"1d\", \"7d\"]\nrenewal_reminder = \"7d\"\n\n[notifier]\nkind = \"command\"\nargv = [\"{}\"]\n",
        script.display()
    );
    h.start_with(&base_config(&extra)).await;
    h
}

#[tokio::test]
async fn notices_go_out_at_exactly_the_configured_times_once_each() {
    let mut h = start().await;
    h.make_data("t1", "r1");
    h.apply(created("e1", "t1", "r1", "2026-01-31T00:00:00Z")).await;

    // general terms 2.3.1.3: the renewal is due 7 days before the term end
    // (2026-01-24); the reminder comes renewal_reminder (7d) before that
    // cutoff, not at it.
    h.set_clock("2026-01-16T23:59:59Z").await;
    assert!(summary(h.dir.path()).is_empty(), "nothing before the reminder: {:?}", summary(h.dir.path()));
    h.set_clock("2026-01-17T00:00:00Z").await;
    assert_eq!(summary(h.dir.path()), ["renewal_reminder 2026-01-31T00:00:00Z"]);

    // The term ends: the expiry buffer (15d) starts and names the deletion date.
    h.set_clock("2026-01-30T23:59:59Z").await;
    assert_eq!(summary(h.dir.path()).len(), 1);
    h.set_clock("2026-01-31T00:00:00Z").await;
    assert_eq!(summary(h.dir.path())[1], "buffer_started 2026-02-15T00:00:00Z");

    // Warnings at exactly 7d and 1d before the deletion date; a restart in
    // between sends nothing twice.
    h.set_clock("2026-02-07T23:59:59Z").await;
    assert_eq!(summary(h.dir.path()).len(), 2);
    h.set_clock("2026-02-08T00:00:00Z").await;
    assert_eq!(summary(h.dir.path())[2], "deletion_warning 2026-02-15T00:00:00Z");
    assert_eq!(sent(h.dir.path())[2]["offset"], "7days");
    h.restart().await;
    h.set_clock("2026-02-13T23:59:59Z").await;
    assert_eq!(summary(h.dir.path()).len(), 3);
    h.set_clock("2026-02-14T00:00:00Z").await;
    assert_eq!(sent(h.dir.path())[3]["offset"], "1day");

    // The deletion runs on its date, and the tenant is told it is done.
    h.set_clock("2026-02-15T00:00:00Z").await;
    assert!(!h.data_path("t1", "r1").exists());
    assert_eq!(summary(h.dir.path())[4], "deletion_completed -");
    h.advance("30d").await;
    h.restart().await;
    h.advance("1d").await;

    let all = sent(h.dir.path());
    assert_eq!(all.len(), 5, "{:?}", summary(h.dir.path()));
    let keys: std::collections::BTreeSet<_> = all.iter().map(|n| n["key"].as_str().unwrap().to_string()).collect();
    assert_eq!(keys.len(), 5, "dedupe keys are distinct");
    for n in &all {
        assert_eq!(
            (n["tenant"].as_str(), n["resource"].as_str(), n["product"].as_str()),
            (Some("t1"), Some("r1"), Some("ecs"))
        );
    }
    let audited: Vec<String> =
        h.audit_of("notice.sent", "r1").iter().map(|r| r["data"]["key"].as_str().unwrap().to_string()).collect();
    assert_eq!(audited.len(), 5);
    assert_eq!(audited.into_iter().collect::<std::collections::BTreeSet<_>>(), keys);
    h.verify_audit();

    // Counted since the last restart: nothing was sent again after it.
    let m =
        h.client.get(format!("{}/metrics", h.base)).bearer_auth(AUDITOR).send().await.unwrap().text().await.unwrap();
    assert!(m.contains("retentiond_notices_total{notice=\"deletion_completed\",result=\"sent\"} 0\n"), "{m}");
}

#[tokio::test]
async fn a_failing_notifier_is_retried_and_never_moves_the_deletion() {
    let h = start().await;
    h.make_data("t1", "r1");
    std::fs::write(h.dir.path().join("fail"), b"").unwrap();
    h.apply(created("e1", "t1", "r1", "2026-01-31T00:00:00Z")).await;

    h.set_clock("2026-01-17T00:00:00Z").await; // the reminder, before the renewal cutoff
    assert!(sent(h.dir.path()).is_empty());
    let failed = h.audit_of("notice.failed", "r1");
    assert_eq!(failed.len(), 1, "the failure is audited");
    assert_eq!(failed[0]["data"]["notice"], "renewal_reminder");

    // The deletion runs at 2026-02-15 exactly, whatever the notifier does.
    h.set_clock("2026-02-14T23:59:59Z").await;
    assert!(h.data_path("t1", "r1").exists(), "not a second early");
    assert_eq!(h.resource("r1").await["state"], "retained");
    h.set_clock("2026-02-15T00:00:00Z").await;
    assert!(!h.data_path("t1", "r1").exists(), "not late either");

    // Once the notifier works again, what is still true goes out once;
    // the reminder, the buffer start and the warning announced a future
    // that has passed, so they are dropped (audited), not sent late.
    std::fs::remove_file(h.dir.path().join("fail")).unwrap();
    h.advance("2h").await;
    h.advance("2h").await;
    assert_eq!(summary(h.dir.path()), ["deletion_completed -"]);
    let mut superseded: Vec<String> = h
        .audit_of("notice.superseded", "r1")
        .iter()
        .map(|r| r["data"]["notice"].as_str().unwrap().to_string())
        .collect();
    superseded.sort();
    assert_eq!(superseded, ["buffer_started", "deletion_warning", "renewal_reminder"]);
    assert_eq!(h.audit_of("notice.sent", "r1").len(), 1);
    let m =
        h.client.get(format!("{}/metrics", h.base)).bearer_auth(AUDITOR).send().await.unwrap().text().await.unwrap();
    assert!(m.contains("retentiond_notices_total{notice=\"deletion_warning\",result=\"superseded\"} 1\n"), "{m}");
    assert!(!m.contains("retentiond_notices_total{notice=\"renewal_reminder\",result=\"failed\"} 0\n"), "{m}");
}

#[tokio::test]
async fn after_downtime_only_the_most_imminent_warning_is_sent() {
    let mut h = start().await;
    h.make_data("t1", "r1");
    h.apply(created("e1", "t1", "r1", "2026-01-31T00:00:00Z")).await;
    h.set_clock("2026-01-17T00:00:00Z").await;
    h.set_clock("2026-01-31T00:00:00Z").await;
    assert_eq!(summary(h.dir.path()).len(), 2, "reminder and buffer start");
    // Down from before the 7d warning to after the 1d one.
    h.stop().await;
    let text = std::fs::read_to_string(h.config_path()).unwrap().replace(T0, "2026-02-14T12:00:00Z");
    h.start_with(&text).await;
    h.advance("0s").await;
    assert_eq!(summary(h.dir.path())[2..], ["deletion_warning 2026-02-15T00:00:00Z"]);
    assert_eq!(sent(h.dir.path())[2]["offset"], "1day");
    h.set_clock("2026-02-15T00:00:00Z").await;
    assert_eq!(summary(h.dir.path()).len(), 4);
}

#[tokio::test]
async fn a_renewal_before_the_reminder_moves_it_and_a_hold_silences_warnings() {
    let h = start().await;
    h.apply(created("e1", "t1", "r1", "2026-01-31T00:00:00Z")).await;
    h.apply(json!({"event_id": "e2", "type": "resource.renewed", "at": T0, "tenant": "t1", "resource": "r1",
                   "term_end": "2026-03-31T00:00:00Z"}))
        .await;
    h.set_clock("2026-01-17T00:00:00Z").await;
    assert!(summary(h.dir.path()).is_empty(), "no reminder for the old term end");
    h.set_clock("2026-03-17T00:00:00Z").await;
    assert_eq!(summary(h.dir.path()), ["renewal_reminder 2026-03-31T00:00:00Z"]);

    let hold = json!({"event_id": "h1", "type": "hold.placed", "at": "2026-03-17T00:00:00Z", "tenant": "t1",
                      "resource": "r1", "hold_id": "court-1", "authority": "court", "reason": "case"});
    let (status, v) = h.post_as(OPERATOR, "/v1/events", &hold).await;
    assert_eq!((status.as_u16(), v["results"][0]["status"].as_str()), (200, Some("applied")), "{v}");
    h.set_clock("2026-04-20T00:00:00Z").await;
    assert_eq!(
        summary(h.dir.path()),
        ["renewal_reminder 2026-03-31T00:00:00Z", "buffer_started 2026-04-15T00:00:00Z"],
        "no warning under a hold"
    );
}

#[tokio::test]
async fn a_notice_that_waited_is_dropped_if_its_news_is_no_longer_true() {
    let h = start().await;
    std::fs::write(h.dir.path().join("fail"), b"").unwrap();
    h.apply(created("e1", "t1", "r1", "2026-01-31T00:00:00Z")).await;
    h.set_clock("2026-01-31T00:00:00Z").await; // the buffer starts; its notice fails
    assert_eq!(h.audit_of("notice.failed", "r1").len(), 1);
    h.apply(json!({"event_id": "e2", "type": "resource.renewed", "at": "2026-01-31T00:00:00Z", "tenant": "t1",
                   "resource": "r1", "term_end": "2027-01-31T00:00:00Z"}))
        .await;
    assert_eq!(h.resource("r1").await["state"], "active");
    std::fs::remove_file(h.dir.path().join("fail")).unwrap();
    h.advance("2h").await;
    assert!(
        summary(h.dir.path()).is_empty(),
        "a tenant who renewed is not told of a deletion: {:?}",
        summary(h.dir.path())
    );
    let superseded = h.audit_of("notice.superseded", "r1");
    assert_eq!(superseded.len(), 1);
    assert_eq!(superseded[0]["data"]["notice"], "buffer_started");
    // The next term's reminder still comes.
    h.set_clock("2027-01-17T00:00:00Z").await;
    assert_eq!(summary(h.dir.path()), ["renewal_reminder 2027-01-31T00:00:00Z"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notice_being_sent_when_its_news_goes_stale_has_one_outcome() {
    let h = start().await;
    std::fs::write(h.dir.path().join("slow"), b"").unwrap();
    // The term ends in 10 days (its renewal cutoff in 3): the reminder is
    // due at once and goes to the (slow) notifier; time then jumps past the
    // whole buffer.
    h.apply(created("e1", "t1", "r1", "2026-01-11T00:00:00Z")).await;
    h.advance("40d").await;
    h.advance("1h").await;
    let key = "r1:renewal_reminder:604800s:2026-01-11T00:00:00Z";
    let outcomes: Vec<String> = h
        .audit()
        .into_iter()
        .filter(|r| r["data"]["key"] == key && r["kind"] != "notice.failed")
        .map(|r| r["kind"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(outcomes, ["notice.sent"], "one outcome per key: the notifier had it");
    assert_eq!(h.resource("r1").await["state"], "purged");
}

/// domain-rules §1.3: reminders go out before the renewal cutoff (7 days
/// before the term end), one per configured offset, each once; after
/// downtime only the most imminent of those already due is sent.
#[tokio::test]
async fn renewal_reminders_come_before_the_cutoff_at_each_offset() {
    let mut h = Harness::start().await;
    h.stop().await;
    let script = notifier(h.dir.path());
    let extra = format!(
        "renewal_reminder = [\"3d\", \"14d\"]\n\n[notifier]\nkind = \"command\"\nargv = [\"{}\"]\n",
        script.display()
    );
    h.start_with(&base_config(&extra)).await;
    h.apply(created("e1", "t1", "r1", "2026-03-01T00:00:00Z")).await;
    // Cutoff 2026-02-22; reminders 14d and 3d before it.
    h.set_clock("2026-02-07T23:59:59Z").await;
    assert!(summary(h.dir.path()).is_empty());
    h.set_clock("2026-02-08T00:00:00Z").await;
    assert_eq!(summary(h.dir.path()), ["renewal_reminder 2026-03-01T00:00:00Z"]);
    assert_eq!(sent(h.dir.path())[0]["offset"], "14days");
    h.set_clock("2026-02-18T23:59:59Z").await;
    assert_eq!(summary(h.dir.path()).len(), 1);
    h.set_clock("2026-02-19T00:00:00Z").await;
    assert_eq!(sent(h.dir.path())[1]["offset"], "3days");
    h.set_clock("2026-02-28T00:00:00Z").await;
    assert_eq!(summary(h.dir.path()).len(), 2, "each once");

    // A second resource whose both reminders fell due while nobody looked.
    h.apply(created("e2", "t1", "r2", "2026-03-10T00:00:00Z")).await;
    h.advance("1s").await;
    let r2: Vec<_> = sent(h.dir.path()).into_iter().filter(|n| n["resource"] == "r2").collect();
    assert_eq!(r2.len(), 1, "only the most imminent: {r2:?}");
    assert_eq!(r2[0]["offset"], "3days");
}

/// A resource whose renewal cutoff has already passed gets no reminder: it
/// would ask for a payment that is already late (domain-rules §1.3).
#[tokio::test]
async fn no_reminder_after_the_renewal_cutoff() {
    let h = start().await;
    h.apply(created("e1", "t1", "r1", "2026-01-04T00:00:00Z")).await;
    h.advance("2d").await;
    assert!(summary(h.dir.path()).is_empty(), "{:?}", summary(h.dir.path()));
    assert!(h.audit_of("notice.skipped", "r1").is_empty());
}

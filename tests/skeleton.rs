//! The walking skeleton end to end: events in over HTTP, deadlines kept on a
//! manual clock, data deleted through the fs executor, audit out.

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::json;

const TERM_END: &str = "2026-02-01T00:00:00Z";
/// TERM_END + the product's 15-day expiry buffer.
const DEADLINE: &str = "2026-02-16T00:00:00Z";

/// general terms 4.1.5: after the buffer every copy of the business data goes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiry_deletes_the_data_after_the_buffer_and_audits_it() {
    let h = Harness::start().await;
    let data = h.make_data("t1", "r1");
    let sibling = h.make_data("t1", "r2");
    h.apply(created("e1", "t1", "r1", TERM_END)).await;
    h.apply(created("e2", "t1", "r2", "2027-01-01T00:00:00Z")).await;

    // Term end passes by itself: the buffer starts, anchored at the term end.
    h.set_clock("2026-02-01T12:00:00Z").await;
    let r = h.resource("r1").await;
    assert_eq!(r["state"], "retained");
    assert_eq!(r["cause"], "expiry");
    assert_eq!(r["buffer_started_at"], TERM_END);
    assert_eq!(r["delete_after"], DEADLINE);
    assert!(data.exists(), "nothing is deleted during the buffer");

    h.advance("15d").await;
    assert!(!data.exists(), "the resource's data is gone after the buffer");
    assert!(sibling.exists(), "another resource of the tenant is untouched");
    let r = h.resource("r1").await;
    assert_eq!(r["state"], "purged");
    assert_eq!(r["copies"][0]["state"], "deleted");
    assert_eq!(h.resource("r2").await["state"], "active");

    let scheduled = h.audit_of("deletion.scheduled", "r1");
    assert_eq!(scheduled.len(), 1);
    assert_eq!(scheduled[0]["data"]["delete_after"], DEADLINE);
    assert_eq!(scheduled[0]["data"]["policy_version"], r["policy_version"]);
    assert!(scheduled[0]["data"]["policy_version"].as_str().is_some_and(|v| v.len() == 16));
    assert_eq!(h.audit_of("copy.deleted", "r1").len(), 1);
    assert_eq!(h.audit_of("resource.purged", "r1").len(), 1);
    assert!(h.audit_of("copy.deleted", "r2").is_empty());
    assert_eq!(h.verify_audit(), h.audit().len() as u64);
}

/// domain-rules §5.3: nothing is deleted before its deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_deleted_one_second_before_the_deadline() {
    let h = Harness::start().await;
    let data = h.make_data("t1", "r1");
    h.apply(created("e1", "t1", "r1", TERM_END)).await;

    h.set_clock("2026-02-15T23:59:59Z").await;
    assert!(data.exists());
    assert_eq!(h.resource("r1").await["state"], "retained");
    assert!(h.audit_of("deletion.started", "r1").is_empty());

    h.advance("1s").await;
    assert!(!data.exists());
    assert_eq!(h.resource("r1").await["state"], "purged");
}

/// general terms 7.2.2: a renewal before the term end keeps the service.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renewal_before_term_end_means_nothing_is_ever_deleted() {
    let h = Harness::start().await;
    let data = h.make_data("t1", "r1");
    h.apply(created("e1", "t1", "r1", TERM_END)).await;
    h.set_clock("2026-01-20T00:00:00Z").await;
    h.apply(json!({"event_id":"e2","type":"resource.renewed","at":"2026-01-20T00:00:00Z",
                   "tenant":"t1","resource":"r1","term_end":"2027-02-01T00:00:00Z"}))
        .await;
    for _ in 0..12 {
        h.advance("30d").await;
    }
    assert!(data.exists());
    let r = h.resource("r1").await;
    assert_eq!(r["state"], "active");
    assert_eq!(r["term_end"], "2027-02-01T00:00:00Z");
    assert!(h.audit_of("deletion.scheduled", "r1").is_empty());
    assert!(h.audit_of("copy.deleted", "r1").is_empty());
}

/// domain-rules §1.2: a renewal during the buffer cancels the deletion.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renewal_during_the_expiry_buffer_cancels_the_deletion() {
    let h = Harness::start().await;
    let data = h.make_data("t1", "r1");
    h.apply(created("e1", "t1", "r1", TERM_END)).await;
    h.set_clock("2026-02-05T00:00:00Z").await;
    assert_eq!(h.resource("r1").await["state"], "retained");
    h.apply(json!({"event_id":"e2","type":"resource.renewed","at":"2026-02-05T00:00:00Z",
                   "tenant":"t1","resource":"r1","term_end":"2026-03-05T00:00:00Z"}))
        .await;
    let r = h.resource("r1").await;
    assert_eq!(r["state"], "active");
    assert_eq!(r["delete_after"], serde_json::Value::Null);
    assert_eq!(h.audit_of("deletion.cancelled", "r1").len(), 1);
    h.set_clock("2026-03-01T00:00:00Z").await;
    assert!(data.exists(), "the old deadline of Feb 16 no longer applies");
}

/// general terms 4.1.4: the tenant's release deletes at once, no buffer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn release_deletes_at_once_without_a_buffer() {
    let h = Harness::start().await;
    let data = h.make_data("t1", "r1");
    h.apply(created("e1", "t1", "r1", TERM_END)).await;
    h.apply(json!({"event_id":"e2","type":"resource.released","at":T0,"tenant":"t1","resource":"r1"})).await;
    // A zero advance waits for the deletion the release started; no time passes.
    let now = h.advance("0s").await;
    assert_eq!(now, T0);
    assert!(!data.exists());
    let r = h.resource("r1").await;
    assert_eq!(r["state"], "purged");
    assert_eq!(r["cause"], "release");
    assert_eq!(r["delete_after"], T0);
    // A renewal after deletion is refused and audited.
    let res = h
        .events(json!({"event_id":"e3","type":"resource.renewed","at":T0,"tenant":"t1","resource":"r1",
                        "term_end":"2027-01-01T00:00:00Z"}))
        .await;
    assert_eq!(res[0]["status"], "rejected");
    assert!(res[0]["error"].as_str().unwrap().contains("purged"), "{res:?}");
    assert_eq!(h.audit_of("event.rejected", "r1").len(), 1);
}

/// The deadline survives a restart, and one that passed while the daemon was
/// down runs as soon as it is back (before the API even opens).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_keeps_the_deadline_and_catches_up_on_missed_ones() {
    let mut h = Harness::start().await;
    let d1 = h.make_data("t1", "r1");
    let d2 = h.make_data("t1", "r2");
    h.apply(created("e1", "t1", "r1", TERM_END)).await;
    h.apply(created("e2", "t1", "r2", "2026-03-01T00:00:00Z")).await;
    h.set_clock("2026-02-10T00:00:00Z").await;

    h.restart().await;
    let r = h.resource("r1").await;
    assert_eq!(r["state"], "retained");
    assert_eq!(r["delete_after"], DEADLINE);
    assert_eq!(h.advance("0s").await, "2026-02-10T00:00:00Z", "the clock reading persisted");
    h.set_clock("2026-02-15T23:59:59Z").await;
    assert!(d1.exists());

    // Down from Feb 15 to Mar 10: r1's deadline (Feb 16) passed while down;
    // r2's term end (Mar 1) passed too, and its buffer runs to Mar 16.
    h.stop().await;
    let later = base_config("").replace(T0, "2026-03-10T00:00:00Z");
    h.start_with(&later).await;
    // Catch-up ran before the API opened: the deletion was already started.
    let r1 = h.resource("r1").await;
    assert!(["deleting", "purged"].contains(&r1["state"].as_str().unwrap()), "{r1}");
    // A zero advance waits for the executor call; no time passes.
    assert_eq!(h.advance("0s").await, "2026-03-10T00:00:00Z");
    assert!(!d1.exists(), "missed deadline caught up at start");
    assert_eq!(h.resource("r1").await["state"], "purged");
    let r2 = h.resource("r2").await;
    assert_eq!(r2["state"], "retained", "r2's term ended while down; its buffer runs from Mar 1");
    assert_eq!(r2["delete_after"], "2026-03-16T00:00:00Z");
    assert!(d2.exists());
    h.verify_audit();
}

/// A repeated event_id is a no-op, even with other content.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_event_id_changes_nothing() {
    let h = Harness::start().await;
    h.apply(created("e1", "t1", "r1", TERM_END)).await;
    let before = h.resource("r1").await;
    let records = h.audit().len();
    let res = h.events(created("e1", "t1", "r1", TERM_END)).await;
    assert_eq!(res[0]["status"], "duplicate");
    let res = h
        .events(json!({"event_id":"e1","type":"resource.renewed","at":T0,"tenant":"t1","resource":"r1",
                        "term_end":"2030-01-01T00:00:00Z"}))
        .await;
    assert_eq!(res[0]["status"], "duplicate");
    assert_eq!(h.resource("r1").await, before);
    assert_eq!(h.audit().len(), records);
    // Within one request too: the second copy is the duplicate.
    let res = h.events(json!([created("e9", "t1", "r9", TERM_END), created("e9", "t1", "r9", TERM_END)])).await;
    assert_eq!(res[0]["status"], "applied");
    assert_eq!(res[1]["status"], "duplicate");
}

/// product-spec §4: a malformed event is a 400 naming the field, and nothing
/// of the request is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_event_changes_nothing_and_names_its_field() {
    let h = Harness::start().await;
    let records = h.audit().len();
    let mut bad = created("e1", "t1", "r1", TERM_END);
    bad["term_end"] = json!("next tuesday");
    let (status, v) = h.post_as(INGEST, "/v1/events", &bad).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(v["field"], "term_end");

    // One bad event in a batch: nothing of the batch is stored.
    let mut bad_id = created("e3", "t1", "r3", TERM_END);
    bad_id["resource"] = json!("../../etc");
    let (status, v) = h.post_as(INGEST, "/v1/events", &json!([created("e2", "t1", "r2", TERM_END), bad_id])).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(v["field"], "resource");
    assert_eq!(v["index"], 1);

    let mut unknown_product = created("e4", "t1", "r4", TERM_END);
    unknown_product["product"] = json!("nosuch");
    let (status, v) = h.post_as(INGEST, "/v1/events", &unknown_product).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(v["field"], "product");

    let (status, _) = h.post_raw(INGEST, "/v1/events", Some("application/json"), "{not json").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    for id in ["r1", "r2", "r3", "r4"] {
        let (status, _) = h.get_as(AUDITOR, &format!("/v1/resources/{id}")).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{id} must not exist");
    }
    assert_eq!(h.audit().len(), records);
    // The ids of refused requests are still free to use.
    h.apply(created("e1", "t1", "r1", TERM_END)).await;
}

/// safety.max_future_skew: an event dated too far ahead is refused, and may
/// be sent again later because nothing of it was stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_from_the_future_is_rejected_and_not_stored() {
    let h = Harness::start().await;
    let mut ev = created("e1", "t1", "r1", TERM_END);
    ev["at"] = json!("2026-01-01T00:06:00Z");
    let res = h.events(ev.clone()).await;
    assert_eq!(res[0]["status"], "rejected");
    assert!(res[0]["error"].as_str().unwrap().contains("max_future_skew"));
    h.advance("10m").await;
    let res = h.events(ev).await;
    assert_eq!(res[0]["status"], "applied");
}

/// A store that cannot be reached (its root is missing, as with an unmounted
/// volume) is not reported as deleted: the copy is retried until it works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_deletion_is_retried_not_dropped() {
    let h = Harness::start().await;
    let data = h.make_data("t1", "r1");
    let root = h.dir.path().join("data");
    let parked = h.dir.path().join("data-unmounted");
    h.apply(created("e1", "t1", "r1", TERM_END)).await;
    std::fs::rename(&root, &parked).unwrap();
    h.set_clock(DEADLINE).await;
    let r = h.resource("r1").await;
    assert_eq!(r["state"], "deleting");
    assert_eq!(r["copies"][0]["state"], "deleting");
    assert_eq!(r["copies"][0]["attempts"], 1);
    assert!(r["copies"][0]["last_error"].as_str().is_some());
    assert!(h.audit_of("copy.deleted", "r1").is_empty());

    // The first retry comes after 1 minute plus up to 25 % jitter.
    let next = retentiond::time::parse_rfc3339(r["copies"][0]["next_attempt_at"].as_str().unwrap()).unwrap();
    let deadline = retentiond::time::parse_rfc3339(DEADLINE).unwrap();
    let wait = (next - deadline).num_seconds();
    assert!((60..=75).contains(&wait), "retry after {wait}s");
    std::fs::rename(&parked, &root).unwrap();
    h.advance(&format!("{}s", wait - 1)).await;
    assert!(data.exists(), "retry waits for its backoff");
    h.advance("1s").await;
    assert!(!data.exists());
    assert_eq!(h.resource("r1").await["state"], "purged");
    assert_eq!(h.audit_of("copy.deleted", "r1").len(), 1);
}

/// product-spec §3: without a valid token nothing but /healthz answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_need_a_token_with_the_right_role() {
    let h = Harness::start().await;
    let resp = h.client.get(format!("{}/healthz", h.base)).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let resp =
        h.client.post(format!("{}/v1/events", h.base)).json(&created("e1", "t1", "r1", TERM_END)).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let (status, _) = h.post_as("wrong-token", "/v1/events", &created("e1", "t1", "r1", TERM_END)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = h.post_as(AUDITOR, "/v1/events", &created("e1", "t1", "r1", TERM_END)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = h.post_as(INGEST, "/v1/admin/clock", &json!({"advance":"1d"})).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = h.get_as(INGEST, "/v1/resources/r1").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = h.get_as(AUDITOR, "/v1/resources/r1").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "nothing was stored by the refused requests");
}

/// safety.dry_run: deadlines are kept and audited, no executor is called.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_schedules_but_never_deletes() {
    let h = Harness::with_config(
        &base_config("").replace("[stores.primary]", "[safety]\ndry_run = true\n\n[stores.primary]"),
    )
    .await;
    let data = h.make_data("t1", "r1");
    h.apply(created("e1", "t1", "r1", TERM_END)).await;
    h.set_clock("2026-06-01T00:00:00Z").await;
    assert!(data.exists());
    let r = h.resource("r1").await;
    assert_eq!(r["state"], "retained");
    assert_eq!(r["delete_after"], DEADLINE);
    assert_eq!(h.audit_of("deletion.scheduled", "r1").len(), 1);
    assert!(h.audit_of("deletion.started", "r1").is_empty());
    let (_, v) = h.get_as(AUDITOR, "/v1/deletions?before=2027-01-01T00:00:00Z").await;
    assert_eq!(v["deletions"][0]["blockers"], json!(["dry_run"]));
}

/// A template joining two ids is refused at load time: with
/// "{tenant}-{resource}", tenant "acme-db" releasing "1" would have deleted
/// tenant "acme"'s "db-1".
#[test]
fn a_path_template_that_could_reach_another_tenant_is_refused() {
    let text = base_config("").replace("{tenant}/{resource}", "{tenant}-{resource}");
    let err = retentiond::config::parse(std::path::Path::new("/etc/retentiond/r.toml"), &text).unwrap_err().to_string();
    assert!(err.contains("joins several ids"), "{err}");
}

/// A clock move past the end of representable time is a 400 and changes
/// nothing; durations over 100 years are refused in the config. Found in
/// review: both used to panic the engine.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn impossible_times_are_refused_without_stopping_the_daemon() {
    let h = Harness::start().await;
    h.apply(created("e1", "t1", "r1", TERM_END)).await;
    h.jump_clock("9999-12-31T00:00:00Z").await;
    let (status, v) = h.post_as(ADMIN, "/v1/admin/clock", &json!({"advance": "100y"})).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    // chrono ends in year 262142: some 2,500 moves of 100 years from here.
    let mut refused = None;
    for i in 0..3000 {
        let (status, v) = h.post_as(ADMIN, "/v1/admin/clock", &json!({"advance": "100y"})).await;
        if status != StatusCode::OK {
            assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
            assert_eq!(v["field"], "advance");
            refused = Some(i);
            break;
        }
    }
    assert!(refused.is_some_and(|i| i > 2000), "refused after {refused:?} moves");
    assert!(!h.daemon.as_ref().unwrap().is_finished(), "the engine is still running");

    let text = base_config("").replace("expiry = \"15d\"", "expiry = \"300000y\"");
    let err = retentiond::config::parse(std::path::Path::new("/etc/retentiond/r.toml"), &text).unwrap_err().to_string();
    assert!(err.contains("longer than 100 years"), "{err}");
}

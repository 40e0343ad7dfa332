//! The mass-deletion guard (product-spec §3 `[safety.guard]`): the whole
//! batch of resources due at one instant is judged before any of it
//! starts, and held whole when it would cross a limit; a slow drip is
//! caught by a second, longer window; `approve` releases exactly the batch
//! that was shown. Counted, not timed: hundreds of resources, virtual time.

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};

/// `n` postpaid resources `r0..` of tenant `t1`, each with business data.
async fn resources(h: &Harness, n: usize) -> Vec<std::path::PathBuf> {
    let mut paths = Vec::new();
    let mut events = Vec::new();
    for i in 0..n {
        let r = format!("r{i}");
        paths.push(h.make_data("t1", &r));
        events.push(json!({"event_id": format!("c{i}"), "type": "resource.created", "at": T0, "tenant": "t1",
                           "resource": r, "product": "ecs", "billing": "postpaid"}));
    }
    for chunk in events.chunks(500) {
        let results = h.events(json!(chunk)).await;
        assert!(results.iter().all(|r| r["status"] == "applied"));
    }
    paths
}

fn gone(paths: &[std::path::PathBuf]) -> usize {
    paths.iter().filter(|p| !p.exists()).count()
}

fn tripped(h: &Harness) -> Vec<Value> {
    h.audit().into_iter().filter(|r| r["kind"] == "guard.tripped").collect()
}

fn release(i: usize, at: &str) -> Value {
    json!({"event_id": format!("x{i}"), "type": "resource.released", "at": at, "tenant": "t1",
           "resource": format!("r{i}")})
}

/// 500 postpaid resources put into arrears by one tenant-wide event: when
/// their buffers run out together, not one is deleted (the old guard let
/// the first 50 through before it tripped).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn arrears_on_500_resources_are_held_whole() {
    let h = Harness::start().await;
    let paths = resources(&h, 500).await;
    h.apply(json!({"event_id": "a", "type": "arrears.started", "at": T0, "tenant": "t1", "amount": "10.00"})).await;
    h.advance("15d").await;
    assert_eq!(gone(&paths), 0, "nothing of a batch over the limit starts");
    let trips = tripped(&h);
    assert_eq!(trips.len(), 1);
    assert_eq!(trips[0]["data"]["batch_size"], 500);
    assert_eq!(trips[0]["data"]["window_kind"], "short");
    let (_, ready) = h.get_as(AUDITOR, "/readyz").await;
    assert_eq!(ready["guard_tripped"], true);
    assert_eq!(ready["guard_batch"]["size"], 500);
    assert_eq!(ready["guard_batch"]["digest"], trips[0]["data"]["batch_digest"]);
    assert_eq!(h.resource("r0").await["state"], "retained");
    h.verify_audit();
}

/// A hundred releases in one request (the tenant's own instruction, no
/// buffer) count like every other deletion start: held whole. So are a
/// hundred zero-buffer violation terminations an operator posts at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_releases_or_violations_in_one_request_are_held_whole() {
    let h = Harness::start().await;
    let paths = resources(&h, 200).await;
    let releases: Vec<Value> = (0..100).map(|i| release(i, T0)).collect();
    h.events(json!(releases)).await;
    assert_eq!(gone(&paths), 0);
    assert_eq!(tripped(&h)[0]["data"]["batch_size"], 100);

    let (status, v) = h.post_as(OPERATOR, "/v1/admin/approve", &json!({})).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    h.advance("0s").await; // answers once the executor calls have run
    assert_eq!(gone(&paths), 100, "the approved batch goes, whole");
    let violations: Vec<Value> = (100..200)
        .map(|i| {
            json!({"event_id": format!("v{i}"), "type": "resource.terminated", "at": T0, "tenant": "t1",
                        "resource": format!("r{i}"), "reason": "violation"})
        })
        .collect();
    let (status, v) = h.post_as(OPERATOR, "/v1/events", &json!(violations)).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    h.advance("0s").await;
    assert_eq!(gone(&paths), 100, "the violations wait whole");
    assert_eq!(tripped(&h).len(), 2);
    assert_eq!(tripped(&h)[1]["data"]["batch_size"], 100);
}

/// `approve` releases exactly the batch shown in `guard.tripped`: a wrong
/// digest approves nothing (409), and resources that came due after the
/// trip are judged afresh, not slipped in with the approval.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approve_releases_exactly_the_batch_that_was_shown() {
    let guard = "[safety.guard]\nwindow = \"1h\"\nmax_resources = 5\nmax_fraction = 1.0\nmin_resources = 1\n\
                 long_max_resources = 100\n\n[stores.primary]";
    let h = Harness::with_config(&base_config("").replace("[stores.primary]", guard)).await;
    let paths = resources(&h, 20).await;
    let first: Vec<Value> = (0..12).map(|i| release(i, T0)).collect();
    h.events(json!(first)).await;
    assert_eq!(gone(&paths), 0);
    let trip = tripped(&h).remove(0);
    assert_eq!(trip["data"]["batch_size"], 12);
    let digest = trip["data"]["batch_digest"].as_str().unwrap().to_string();
    let ids: Vec<&str> = trip["data"]["resources"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert_eq!(ids.len(), 12, "{trip}");

    // Six more come due while the guard holds the first batch.
    let now = h.advance("1h").await;
    let second: Vec<Value> = (12..18).map(|i| release(i, &now)).collect();
    h.events(json!(second)).await;
    assert_eq!(gone(&paths), 0);

    let (status, v) = h.post_as(OPERATOR, "/v1/admin/approve", &json!({"batch_digest": "00".repeat(32)})).await;
    assert_eq!(status, StatusCode::CONFLICT, "{v}");
    assert_eq!(gone(&paths), 0, "a wrong digest approves nothing");
    let (_, ready) = h.get_as(AUDITOR, "/readyz").await;
    assert_eq!(ready["guard_tripped"], true);

    let (status, v) = h.post_as(OPERATOR, "/v1/admin/approve", &json!({"batch_digest": digest})).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["approved"], json!(["guard"]));
    assert_eq!(v["batch"]["size"], 12);
    assert_eq!(v["batch"]["digest"], digest.as_str());
    h.advance("0s").await;
    assert_eq!(gone(&paths), 12);
    for (i, p) in paths.iter().enumerate().take(12) {
        assert!(!p.exists(), "r{i} of the approved batch");
    }
    // The six that came due since are a batch of their own, over the limit.
    assert!((12..18).all(|i| paths[i].exists()));
    let trips = tripped(&h);
    assert_eq!(trips.len(), 2);
    assert_eq!(trips[1]["data"]["batch_size"], 6);
    let approvals: Vec<Value> = h.audit().into_iter().filter(|r| r["kind"] == "guard.approved").collect();
    assert_eq!(approvals[0]["data"]["batch_size"], 12);
    assert_eq!(approvals[0]["data"]["batch_digest"], digest.as_str());
}

/// 500 resources released at 40 an hour stay under the short window's
/// limits (40 < 10 % of 500) but not under the long window's (25 % a
/// day): the drip is stopped at 120; neither a restart nor an approve with
/// nothing held forgets the starts already counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_drip_is_caught_by_the_long_window_across_a_restart() {
    let mut h = Harness::start().await;
    let paths = resources(&h, 500).await;
    let mut next = 0;
    for hour in 0..6 {
        let now = h.advance("0s").await;
        let batch: Vec<Value> = (next..next + 40).map(|i| release(i, &now)).collect();
        next += 40;
        h.events(json!(batch)).await;
        if hour == 1 {
            h.restart().await;
        }
        if hour == 2 {
            // An approve with nothing held lifts nothing and resets no count.
            let (_, v) = h.post_as(OPERATOR, "/v1/admin/approve", &json!({})).await;
            assert_eq!(v["approved"], json!([]));
        }
        h.advance("1h").await;
    }
    assert_eq!(gone(&paths), 120, "three hours of 40 went through; the fourth would pass 25 % of 500 in a day");
    let trips = tripped(&h);
    assert_eq!(trips.len(), 1, "{trips:?}");
    assert_eq!(trips[0]["data"]["window_kind"], "long");
    assert_eq!(trips[0]["data"]["started_in_window"], 120);
    assert_eq!(trips[0]["data"]["batch_size"], 40);
}

fn small_guard() -> String {
    let guard = "[safety.guard]\nwindow = \"1h\"\nmax_resources = 5\nmax_fraction = 1.0\nmin_resources = 1\n\
                 long_max_resources = 100\n\n[stores.primary]";
    base_config("").replace("[stores.primary]", guard)
}

/// Approved starts are never counted, before or after a restart; every
/// other start is: four that came due after the trip start with the
/// approved batch (4 <= 5), and the next one still fits, at once and after
/// a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approved_starts_are_not_counted_and_the_rest_are() {
    let mut h = Harness::with_config(&small_guard()).await;
    let paths = resources(&h, 20).await;
    h.events(json!((0..12).map(|i| release(i, T0)).collect::<Vec<_>>())).await;
    let now = h.advance("1m").await;
    h.events(json!((12..16).map(|i| release(i, &now)).collect::<Vec<_>>())).await;
    assert_eq!(gone(&paths), 0);
    h.post_as(OPERATOR, "/v1/admin/approve", &json!({})).await;
    h.advance("0s").await;
    assert_eq!(gone(&paths), 16, "the approved 12, and the 4 judged on their own");
    h.restart().await;
    let now = h.advance("1s").await;
    h.apply(release(16, &now)).await;
    h.advance("0s").await;
    assert_eq!(gone(&paths), 17, "4 counted + 1 = 5: within the limit");
    assert_eq!(tripped(&h).len(), 1);
    let now = h.advance("1s").await;
    h.apply(release(17, &now)).await;
    assert_eq!(tripped(&h).len(), 2, "the sixth unapproved start in the hour trips it");
    assert_eq!(tripped(&h)[1]["data"]["started_in_window"], 5);
}

/// An approval covers the deletion each resource was held for, and only
/// for the next tick that may start deletions: approved while paused, then
/// renewed, the same resources expiring again later are a new batch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approval_does_not_cover_a_later_deletion_of_the_same_resources() {
    let h = Harness::with_config(&small_guard()).await;
    let mut paths = Vec::new();
    for i in 0..12 {
        let r = format!("r{i}");
        paths.push(h.make_data("t1", &r));
        h.apply(created(&format!("c{i}"), "t1", &r, "2026-02-01T00:00:00Z")).await;
    }
    h.set_clock("2026-02-16T00:00:00Z").await;
    assert_eq!(tripped(&h).len(), 1);
    h.post_as(OPERATOR, "/v1/admin/pause", &json!({})).await;
    let (_, v) = h.post_as(OPERATOR, "/v1/admin/approve", &json!({})).await;
    assert_eq!(v["batch"]["size"], 12);
    for i in 0..12 {
        h.apply(json!({"event_id": format!("n{i}"), "type": "resource.renewed", "at": "2026-02-16T00:00:00Z",
                       "tenant": "t1", "resource": format!("r{i}"), "term_end": "2026-03-01T00:00:00Z"}))
            .await;
    }
    h.set_clock("2026-03-20T00:00:00Z").await;
    h.post_as(OPERATOR, "/v1/admin/resume", &json!({})).await;
    h.advance("0s").await;
    assert_eq!(gone(&paths), 0, "a deletion nobody approved");
    assert_eq!(tripped(&h).len(), 2);
}

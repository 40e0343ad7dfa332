//! Events that arrive late (dated far back) keep event-time semantics, but
//! a deletion they make due waits `safety.late_event_floor` (24h) after the
//! daemon learned of it, so it shows in the forecast and can be held;
//! release stays immediate (general terms 4.1.4). Events with equal
//! timestamps are ordered by arrival, so no applied event is lost.

mod common;

use common::*;
use serde_json::{json, Value};

const YEAR_AGO: &str = "2025-01-01T00:00:00Z";

fn ev(id: &str, kind: &str, at: &str, resource: Option<&str>, extra: Value) -> Value {
    let mut v = json!({"event_id": id, "type": kind, "at": at, "tenant": "t1"});
    if let Some(r) = resource {
        v["resource"] = json!(r);
    }
    for (k, x) in extra.as_object().unwrap() {
        v[k] = x.clone();
    }
    v
}

fn postpaid(id: &str) -> Value {
    ev(&format!("c-{id}"), "resource.created", YEAR_AGO, Some(id), json!({"product": "ecs", "billing": "postpaid"}))
}

/// A back-dated event whose whole buffer lies in the past: not deleted at
/// once; the forecast shows it due 24h after it arrived (a hold placed in
/// that day stops it: see below); it goes at the floor.
async fn waits_the_floor(h: &Harness, resource: &str) {
    let data = h.data_path("t1", resource);
    h.advance("0s").await;
    assert!(data.exists(), "deleted at once by a late event");
    let r = h.resource(resource).await;
    assert_eq!(r["state"], "retained", "{r}");
    assert_eq!(r["delete_after"], "2026-01-02T00:00:00Z", "{r}");
    let (_, f) = h.get_as(AUDITOR, "/v1/deletions?before=2026-01-03T00:00:00Z").await;
    let listed: Vec<&Value> = f["deletions"].as_array().unwrap().iter().filter(|d| d["resource"] == resource).collect();
    assert_eq!(listed.len(), 1, "{f}");
    assert_eq!(listed[0]["deadline"], "2026-01-02T00:00:00Z");
    let scheduled = h.audit_of("deletion.scheduled", resource);
    assert_eq!(scheduled.last().unwrap()["data"]["late_event_floor"], true);

    h.set_clock("2026-01-01T23:59:59Z").await;
    assert!(data.exists());
    h.advance("1s").await;
    assert!(!data.exists(), "deleted at the floor");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_termination_dated_a_year_back_waits_the_late_event_floor() {
    let h = Harness::start().await;
    h.make_data("t1", "r1");
    h.apply(postpaid("r1")).await;
    h.apply(ev("t", "resource.terminated", YEAR_AGO, Some("r1"), json!({"reason": "agreement"}))).await;
    waits_the_floor(&h, "r1").await;
    let r = h.resource("r1").await;
    assert_eq!(r["buffer_started_at"], YEAR_AGO, "event time still anchors the buffer");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_arrears_dated_a_year_back_wait_the_late_event_floor() {
    let h = Harness::start().await;
    h.make_data("t1", "r1");
    h.apply(postpaid("r1")).await;
    h.apply(ev("a", "arrears.started", YEAR_AGO, None, json!({"amount": "12.50", "currency": "EUR"}))).await;
    waits_the_floor(&h, "r1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resource_created_with_a_term_long_past_waits_the_late_event_floor() {
    let h = Harness::start().await;
    h.make_data("t1", "r1");
    h.apply(ev(
        "c",
        "resource.created",
        YEAR_AGO,
        Some("r1"),
        json!({"product": "ecs", "billing": "prepaid", "term_end": "2025-02-01T00:00:00Z"}),
    ))
    .await;
    waits_the_floor(&h, "r1").await;
}

/// The floor is a window to react in: a hold placed during it keeps the data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hold_placed_within_the_floor_keeps_the_data() {
    let h = Harness::start().await;
    let data = h.make_data("t1", "r1");
    h.apply(postpaid("r1")).await;
    h.apply(ev("t", "resource.terminated", YEAR_AGO, Some("r1"), json!({"reason": "agreement"}))).await;
    h.advance("12h").await;
    let hold = ev(
        "h",
        "hold.placed",
        &h.advance("0s").await,
        Some("r1"),
        json!({"hold_id": "court-1", "authority": "court", "reason": "case"}),
    );
    h.apply_as(OPERATOR, hold).await;
    h.advance("30d").await;
    assert!(data.exists());
    assert_eq!(h.resource("r1").await["state"], "retained");
}

/// Release is the tenant's own instruction: immediate however it is dated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_release_stays_immediate() {
    let h = Harness::start().await;
    let data = h.make_data("t1", "r1");
    h.apply(postpaid("r1")).await;
    h.apply(ev("x", "resource.released", YEAR_AGO, Some("r1"), json!({}))).await;
    h.advance("0s").await;
    assert!(!data.exists());
}

/// Arrears at T, settled at T, arrears again at T (arriving an hour
/// later): the last one arrived last, so it stands; the resource is not
/// left active for ever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn arrears_again_at_the_instant_of_a_settlement_is_not_lost() {
    let h = Harness::start().await;
    let data = h.make_data("t1", "r1");
    h.apply(ev("c", "resource.created", T0, Some("r1"), json!({"product": "ecs", "billing": "postpaid"}))).await;
    h.apply(ev("a1", "arrears.started", T0, Some("r1"), json!({}))).await;
    h.apply(ev("s1", "arrears.settled", T0, Some("r1"), json!({}))).await;
    assert!(h.resource("r1").await["arrears"].is_null());
    h.advance("1h").await;
    h.apply(ev("a2", "arrears.started", T0, Some("r1"), json!({}))).await;
    let r = h.resource("r1").await;
    assert_eq!(r["arrears"]["started_at"], T0, "{r}");
    h.advance("15d").await;
    assert!(!data.exists(), "the arrears that arrived last ran their buffer");
}

/// The same for a termination and its withdrawal at one instant, and for a
/// hold placed again at the instant it was released.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn equal_times_follow_arrival_order_for_terminations_and_holds() {
    let h = Harness::start().await;
    let r1 = h.make_data("t1", "r1");
    let r2 = h.make_data("t1", "r2");
    for r in ["r1", "r2"] {
        h.apply(postpaid(r)).await;
    }
    h.apply(ev("t1", "resource.terminated", T0, Some("r1"), json!({"reason": "agreement"}))).await;
    h.apply_as(OPERATOR, ev("w1", "resource.reinstated", T0, Some("r1"), json!({}))).await;
    h.apply(ev("t2", "resource.terminated", T0, Some("r1"), json!({"reason": "agreement"}))).await;
    assert_eq!(h.resource("r1").await["termination"]["at"], T0);

    let hold = |id: &str| json!({"hold_id": "h1", "authority": "court", "reason": "case", "event_id": id});
    let place = |id: &str| {
        let mut v = ev(id, "hold.placed", T0, Some("r2"), json!({}));
        for (k, x) in hold(id).as_object().unwrap() {
            v[k] = x.clone();
        }
        v
    };
    h.apply_as(OPERATOR, place("p1")).await;
    h.apply_as(OPERATOR, ev("u1", "hold.released", T0, Some("r2"), json!({"hold_id": "h1"}))).await;
    h.apply_as(OPERATOR, place("p2")).await;
    h.apply(ev("x2", "resource.released", T0, Some("r2"), json!({}))).await;
    h.advance("16d").await;
    assert!(!r1.exists(), "the termination that arrived last stands");
    assert!(r2.exists(), "the hold placed again at its release's instant stands");
}

/// A late renewal whose new term end has also passed cancels the expiry
/// buffer and starts it again at once: the wait after the last hold
/// release (`safety.after_hold_release`) must survive that (found by the
/// property test: it used to be dropped in between, deleting at once).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_renewal_keeps_the_wait_after_a_hold_release() {
    let h = Harness::start().await;
    let data = h.make_data("t1", "r1");
    h.apply(created("c", "t1", "r1", "2026-01-31T00:00:00Z")).await;
    let hold = ev("h", "hold.placed", T0, Some("r1"), json!({"hold_id": "h1", "authority": "court", "reason": "x"}));
    h.apply_as(OPERATOR, hold).await;
    h.set_clock("2026-03-10T00:00:00Z").await; // the 15-day buffer ran out under the hold
    h.apply_as(OPERATOR, ev("u", "hold.released", T0, Some("r1"), json!({"hold_id": "h1"}))).await;
    h.apply(ev("n", "resource.renewed", T0, Some("r1"), json!({"term_end": "2026-02-01T00:00:00Z"}))).await;
    h.advance("0s").await;
    assert!(data.exists(), "deleted at once despite after_hold_release");
    assert_eq!(h.resource("r1").await["not_before"], "2026-03-11T00:00:00Z");
    h.set_clock("2026-03-11T00:00:00Z").await;
    assert!(!data.exists());
}

/// A settlement (or a reinstatement) that overtakes its own cause at the
/// same instant still cancels it: it found nothing to cancel, so the
/// equal-time notice that arrives after it is the one it settled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancellation_overtaking_its_cause_at_the_same_instant_still_cancels_it() {
    let h = Harness::start().await;
    let r1 = h.make_data("t1", "r1");
    let r2 = h.make_data("t1", "r2");
    for r in ["r1", "r2"] {
        h.apply(postpaid(r)).await;
    }
    h.apply(ev("s1", "arrears.settled", T0, Some("r1"), json!({}))).await;
    h.apply(ev("a1", "arrears.started", T0, Some("r1"), json!({}))).await;
    h.apply_as(OPERATOR, ev("w1", "resource.reinstated", T0, Some("r2"), json!({}))).await;
    h.apply(ev("t1", "resource.terminated", T0, Some("r2"), json!({"reason": "agreement"}))).await;
    h.advance("20d").await;
    assert!(r1.exists() && r2.exists());
    assert_eq!(h.resource("r1").await["state"], "active");
    assert_eq!(h.resource("r2").await["state"], "active");
}

//! One scenario per trigger and exception of domain-rules §1, through the
//! HTTP API of the daemon running in-process on a manual clock.
//!
//! Coverage map (rows of §1.1, bullets of §1.2):
//! - term expiry (general terms 7.2.1): `skeleton::expiry_deletes_the_data_after_the_buffer_and_audits_it`,
//!   and here `buffers_are_set_per_product`
//! - early termination (7.4, 7.5.1-7.5.3, 8.3): `early_termination_keeps_the_buffer_of_its_reason`
//! - arrears (2.3; trial terms 3.4): `tenant_arrears_start_the_buffer_after_the_grace_and_settlement_cancels_it`
//! - release (4.1.4): `skeleton::release_deletes_at_once_without_a_buffer`
//! - buffer then every copy (4.1.5): `deletion_covers_online_and_cache_copies`
//! - exceptions/holds (4.1.5, privacy 5.8): `a_hold_stops_deletion_until_the_last_is_released_then_waits`
//! - no recovery (4.1.6): `deleted_data_cannot_be_recovered`, and `skeleton::release_..`
//! - the cause goes away (§1.2): `reinstatement_cancels_a_termination_buffer`, the arrears test,
//!   `skeleton::renewal_during_the_expiry_buffer_cancels_the_deletion`
//! - serious breach purges at once (7.5.2): `serious_breach_may_purge_at_once_by_an_operators_decision`
//! - per-product policies (7.5.3 vs IoT 7.2.3): `buffers_are_set_per_product`

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};

const PRODUCTS: &str = r#"
[stores.cache]
class = "cache"
executor = { kind = "fs", root = "cache", path = "{resource}" }

[products.db]
stores = ["primary", "cache"]
buffer = { expiry = "30d", arrears = "10d", termination = "20d", violation = "0s", attack = "45d" }
arrears_grace = "3d"
late_fee_per_day = "0.05%"
"#;

async fn start() -> Harness {
    let h = Harness::with_config(&base_config(PRODUCTS)).await;
    fs_root(&h.dir.path().join("cache"));
    h
}

fn create(id: &str, tenant: &str, product: &str, billing: &str) -> Value {
    let mut v = json!({"event_id": format!("c-{id}"), "type": "resource.created", "at": T0, "tenant": tenant,
                       "resource": id, "product": product, "billing": billing});
    if billing == "prepaid" {
        v["term_end"] = json!("2026-02-01T00:00:00Z");
    }
    v
}

fn event(id: &str, kind: &str, at: &str, tenant: &str, resource: Option<&str>, extra: Value) -> Value {
    let mut v = json!({"event_id": id, "type": kind, "at": at, "tenant": tenant});
    if let Some(r) = resource {
        v["resource"] = json!(r);
    }
    for (k, x) in extra.as_object().unwrap() {
        v[k] = x.clone();
    }
    v
}

/// A `hold.placed` event (`resource` None: the whole tenant).
fn hold(
    id: &str,
    at: &str,
    tenant: &str,
    resource: Option<&str>,
    hold_id: &str,
    authority: &str,
    reason: &str,
) -> Value {
    event(
        id,
        "hold.placed",
        at,
        tenant,
        resource,
        json!({"hold_id": hold_id, "authority": authority, "reason": reason}),
    )
}

async fn operator(h: &Harness, body: Value) -> Value {
    let (status, v) = h.post_as(OPERATOR, "/v1/events", &body).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["results"][0]["status"], "applied", "{v}");
    v
}

/// general terms 7.4, 7.5.1, 7.5.3, 8.3: an early termination keeps the
/// product's buffer for its reason (attack overridden per product).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn early_termination_keeps_the_buffer_of_its_reason() {
    let h = start().await;
    let cases = [
        ("agreement", "2026-01-21T00:00:00Z"),
        ("attack", "2026-02-15T00:00:00Z"),
        ("discontinued", "2026-01-21T00:00:00Z"),
        ("provider_outage", "2026-01-21T00:00:00Z"),
    ];
    for (reason, deadline) in cases {
        let id = format!("r-{reason}");
        h.make_data("t1", &id);
        h.apply(create(&id, "t1", "db", "postpaid")).await;
        h.apply(event(
            &format!("term-{reason}"),
            "resource.terminated",
            T0,
            "t1",
            Some(&id),
            json!({"reason": reason}),
        ))
        .await;
        let r = h.resource(&id).await;
        assert_eq!(r["state"], "retained", "{reason}");
        assert_eq!(r["cause"], "termination");
        assert_eq!(r["reason"], reason);
        assert_eq!(r["delete_after"], deadline, "{reason}");
    }
    h.set_clock("2026-01-20T23:59:59Z").await;
    assert!(h.data_path("t1", "r-agreement").exists());
    h.advance("1s").await;
    for reason in ["agreement", "discontinued", "provider_outage"] {
        assert!(!h.data_path("t1", &format!("r-{reason}")).exists(), "{reason}");
    }
    assert!(h.data_path("t1", "r-attack").exists(), "attack keeps its 45-day buffer");
}

/// general terms 7.5.2; domain-rules §1.2: a serious breach may purge at
/// once (a zero violation buffer), every other reason keeps the buffer.
/// That irreversible step is an operator's decision: the billing feed
/// (ingest) may not post it, and nothing of its attempt is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serious_breach_may_purge_at_once_by_an_operators_decision() {
    let h = start().await;
    let data = h.make_data("t1", "r1");
    h.apply(create("r1", "t1", "db", "postpaid")).await;
    let violation = event("t", "resource.terminated", T0, "t1", Some("r1"), json!({"reason": "violation"}));
    let (status, v) = h.post_as(INGEST, "/v1/events", &violation).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{v}");
    h.advance("0s").await;
    assert!(data.exists());
    assert_eq!(h.resource("r1").await["state"], "active");
    assert!(h.audit().iter().all(|r| r["data"]["event_id"] != "t"), "nothing of the refused event is stored");
    // Other reasons stay the billing feed's to report.
    let agreement = event("t2", "resource.terminated", T0, "t1", Some("r2"), json!({"reason": "agreement"}));
    let (status, _) = h.post_as(INGEST, "/v1/events", &agreement).await;
    assert_eq!(status, StatusCode::OK);
    h.apply_as(OPERATOR, violation).await;
    assert_eq!(h.advance("0s").await, T0);
    assert!(!data.exists());
    let r = h.resource("r1").await;
    assert_eq!(r["state"], "purged");
    assert_eq!(r["reason"], "violation");
    assert_eq!(r["delete_after"], T0);
}

/// general terms 2.3 (trial terms 3.4): arrears of a tenant affect its postpaid
/// resources; the buffer starts after arrears_grace; the late fee accrues at
/// 0.05% a day; settlement cancels the deletion and serves the resource again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_arrears_start_the_buffer_after_the_grace_and_settlement_cancels_it() {
    let h = start().await;
    let post = h.make_data("t1", "post");
    h.apply(create("post", "t1", "db", "postpaid")).await;
    h.apply(create("pre", "t1", "db", "prepaid")).await;
    h.apply(create("other", "t2", "db", "postpaid")).await;
    h.apply(event("a1", "arrears.started", T0, "t1", None, json!({"amount": "1000.00", "currency": "EUR"}))).await;

    let r = h.resource("post").await;
    assert_eq!(r["state"], "active", "grace of 3 days first");
    assert_eq!(r["arrears"]["amount"], "1000.00");
    assert!(h.resource("pre").await["arrears"].is_null(), "prepaid is not affected by default");
    assert!(h.resource("other").await["arrears"].is_null(), "another tenant is not affected");

    h.set_clock("2026-01-04T00:00:00Z").await;
    let r = h.resource("post").await;
    assert_eq!(r["state"], "retained");
    assert_eq!(r["cause"], "arrears");
    assert_eq!(r["buffer_started_at"], "2026-01-04T00:00:00Z");
    assert_eq!(r["delete_after"], "2026-01-14T00:00:00Z");

    h.set_clock("2026-01-11T00:00:00Z").await;
    let r = h.resource("post").await;
    assert_eq!(r["arrears"]["late_fee_days"], 10);
    assert_eq!(r["arrears"]["late_fee"], "5.00", "1000.00 x 0.05% x 10 days");
    assert_eq!(r["arrears"]["late_fee_per_day"], "0.05%");

    h.apply(event("s1", "arrears.settled", "2026-01-11T00:00:00Z", "t1", None, json!({}))).await;
    let r = h.resource("post").await;
    assert_eq!(r["state"], "active");
    assert!(r["arrears"].is_null());
    assert_eq!(h.audit_of("deletion.cancelled", "post").len(), 1);
    h.set_clock("2026-03-01T00:00:00Z").await;
    assert!(post.exists());
}

/// general terms 4.1.5: at the end of the buffer every copy goes, caches too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletion_covers_online_and_cache_copies() {
    let h = start().await;
    let online = h.make_data("t1", "r1");
    let cache = h.dir.path().join("cache/r1");
    std::fs::create_dir_all(&cache).unwrap();
    std::fs::write(cache.join("page"), b"cached business data").unwrap();
    h.apply(create("r1", "t1", "db", "prepaid")).await;
    h.set_clock("2026-03-03T00:00:00Z").await; // term end Feb 1 + 30 days
    assert!(!online.exists());
    assert!(!cache.exists());
    let r = h.resource("r1").await;
    assert_eq!(r["state"], "purged");
    let copies: Vec<(&str, &str)> = r["copies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["store"].as_str().unwrap(), c["state"].as_str().unwrap()))
        .collect();
    assert_eq!(copies, vec![("primary", "deleted"), ("cache", "deleted")]);
    assert_eq!(h.audit_of("copy.deleted", "r1").len(), 2);
}

/// general terms 4.1.5; privacy policy 5.8: while any hold covers a
/// resource nothing of it is deleted; the deadline is kept; after the last
/// release a passed deadline waits safety.after_hold_release (24h).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hold_stops_deletion_until_the_last_is_released_then_waits() {
    let h = start().await;
    let data = h.make_data("t1", "r1");
    h.apply(create("r1", "t1", "ecs", "prepaid")).await;
    operator(&h, hold("h1", T0, "t1", None, "court-7", "District court", "case 7/2026")).await;
    operator(&h, hold("h2", T0, "t1", Some("r1"), "legal-1", "Legal", "dispute")).await;

    h.set_clock("2026-03-01T00:00:00Z").await; // deadline Feb 16 passed
    assert!(data.exists());
    let r = h.resource("r1").await;
    assert_eq!(r["state"], "retained");
    assert_eq!(r["delete_after"], "2026-02-16T00:00:00Z", "the deadline is kept, not dropped");
    let holds: Vec<&str> = r["holds"].as_array().unwrap().iter().map(|x| x["hold_id"].as_str().unwrap()).collect();
    assert_eq!(holds, vec!["court-7", "legal-1"]);

    operator(&h, event("h3", "hold.released", "2026-03-01T00:00:00Z", "t1", None, json!({"hold_id": "court-7"}))).await;
    h.advance("30d").await;
    assert!(data.exists(), "one hold is still in force");

    operator(&h, event("h4", "hold.released", "2026-03-31T00:00:00Z", "t1", Some("r1"), json!({"hold_id": "legal-1"})))
        .await;
    assert_eq!(h.resource("r1").await["not_before"], "2026-04-01T00:00:00Z");
    h.advance("23h 59m 59s").await;
    assert!(data.exists(), "after_hold_release gives people a day to react");
    h.advance("1s").await;
    assert!(!data.exists());
    assert_eq!(h.audit_of("hold.placed", "r1").len(), 2);
    assert_eq!(h.audit_of("hold.released", "r1").len(), 2);
}

/// A tenant-wide hold also covers a resource created after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_hold_covers_resources_created_later() {
    let h = start().await;
    operator(&h, hold("h1", T0, "t1", None, "police-1", "Police", "investigation")).await;
    let data = h.make_data("t1", "r1");
    h.apply(create("r1", "t1", "ecs", "prepaid")).await;
    h.apply(event("rel", "resource.released", T0, "t1", Some("r1"), json!({}))).await;
    h.advance("1d").await;
    assert!(data.exists());
    assert_eq!(h.resource("r1").await["holds"][0]["scope"], "tenant");
}

/// product-spec §3: only operators (and admins) place and release holds; a
/// request holding one such event is refused whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_billing_feed_cannot_place_holds_and_nothing_of_the_request_is_stored() {
    let h = start().await;
    let body = json!([create("r1", "t1", "ecs", "prepaid"), hold("h1", T0, "t1", None, "x", "a", "b")]);
    let (status, _) = h.post_as(INGEST, "/v1/events", &body).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = h.get_as(AUDITOR, "/v1/resources/r1").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) =
        h.post_as(INGEST, "/v1/events", &event("ri", "resource.reinstated", T0, "t1", Some("r1"), json!({}))).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

/// domain-rules §1.2: withdrawing a termination by agreement cancels its buffer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reinstatement_cancels_a_termination_buffer() {
    let h = start().await;
    let data = h.make_data("t1", "r1");
    h.apply(create("r1", "t1", "db", "postpaid")).await;
    h.apply(event("t", "resource.terminated", T0, "t1", Some("r1"), json!({"reason": "agreement"}))).await;
    h.set_clock("2026-01-10T00:00:00Z").await;
    operator(&h, event("ri", "resource.reinstated", "2026-01-10T00:00:00Z", "t1", Some("r1"), json!({}))).await;
    let r = h.resource("r1").await;
    assert_eq!(r["state"], "active");
    assert!(r["termination"].is_null());
    h.set_clock("2026-06-01T00:00:00Z").await;
    assert!(data.exists());
}

/// general terms 4.1.6: deleted data cannot be recovered: no event brings a
/// deleted resource back, and each refusal is audited.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_data_cannot_be_recovered() {
    let h = start().await;
    h.apply(create("r1", "t1", "db", "postpaid")).await;
    h.apply_as(OPERATOR, event("t", "resource.terminated", T0, "t1", Some("r1"), json!({"reason": "violation"}))).await;
    h.advance("0s").await;
    let (status, v) =
        h.post_as(OPERATOR, "/v1/events", &event("ri", "resource.reinstated", T0, "t1", Some("r1"), json!({}))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["results"][0]["status"], "rejected");
    assert!(v["results"][0]["error"].as_str().unwrap().contains("cannot be restored"));
    let res = h.events(event("s", "arrears.settled", T0, "t1", Some("r1"), json!({}))).await;
    assert_eq!(res[0]["status"], "rejected");
    assert_eq!(h.resource("r1").await["state"], "purged");
    assert_eq!(h.audit_of("event.rejected", "r1").len(), 2);
}

/// domain-rules §1.2 "per product": the same event gives each product's own buffer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buffers_are_set_per_product() {
    let h = start().await;
    h.apply(create("e", "t1", "ecs", "prepaid")).await;
    h.apply(create("d", "t1", "db", "prepaid")).await;
    h.set_clock("2026-02-01T00:00:00Z").await;
    let (e, d) = (h.resource("e").await, h.resource("d").await);
    assert_eq!(e["delete_after"], "2026-02-16T00:00:00Z");
    assert_eq!(d["delete_after"], "2026-03-03T00:00:00Z");
    assert_ne!(e["policy_version"], d["policy_version"]);
}

/// Event time: a renewal dated before the term end that arrives after the
/// expiry fired gives the in-order result: the expiry never happened.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_renewal_dated_before_the_term_end_cancels_the_expiry() {
    let h = start().await;
    let data = h.make_data("t1", "r1");
    h.apply(create("r1", "t1", "ecs", "prepaid")).await;
    h.set_clock("2026-02-03T00:00:00Z").await;
    assert_eq!(h.resource("r1").await["state"], "retained");
    h.apply(event(
        "rn",
        "resource.renewed",
        "2026-01-25T00:00:00Z",
        "t1",
        Some("r1"),
        json!({"term_end": "2026-03-01T00:00:00Z"}),
    ))
    .await;
    let r = h.resource("r1").await;
    assert_eq!(r["state"], "active");
    assert_eq!(r["term_end"], "2026-03-01T00:00:00Z");
    h.set_clock("2026-03-10T00:00:00Z").await;
    let r = h.resource("r1").await;
    assert_eq!(r["state"], "retained", "the new term end expires in turn");
    assert_eq!(r["delete_after"], "2026-03-16T00:00:00Z");
    assert!(data.exists());
}

/// Event time: a settlement that overtakes its arrears notice leaves no arrears.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_settlement_overtaking_its_arrears_notice_leaves_no_arrears() {
    let h = start().await;
    h.apply(create("r1", "t1", "db", "postpaid")).await;
    h.set_clock("2026-01-05T00:00:00Z").await;
    h.apply(event("s", "arrears.settled", "2026-01-03T00:00:00Z", "t1", None, json!({}))).await;
    h.apply(event("a", "arrears.started", "2026-01-02T00:00:00Z", "t1", None, json!({"amount": "10"}))).await;
    let r = h.resource("r1").await;
    assert!(r["arrears"].is_null(), "{r}");
    assert_eq!(r["state"], "active");
    // A new notice after the settlement does count.
    h.apply(event("a2", "arrears.started", "2026-01-04T00:00:00Z", "t1", None, json!({"amount": "10"}))).await;
    assert_eq!(h.resource("r1").await["arrears"]["started_at"], "2026-01-04T00:00:00Z");
}

/// The forecast lists every deletion due before T, running or projected,
/// with cause, deadline, policy and blockers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_forecast_shows_what_will_be_deleted_and_why() {
    let h = start().await;
    h.apply(create("exp", "t1", "ecs", "prepaid")).await; // projected: Feb 1 + 15d
    h.apply(create("term", "t1", "db", "postpaid")).await;
    h.apply(event("t", "resource.terminated", T0, "t1", Some("term"), json!({"reason": "agreement"}))).await; // Jan 21
    h.apply(create("held", "t2", "db", "postpaid")).await;
    h.apply(event("t2", "resource.terminated", T0, "t2", Some("held"), json!({"reason": "agreement"}))).await;
    operator(&h, hold("h", T0, "t2", None, "court-1", "Court", "case")).await;
    h.apply(create("late", "t1", "db", "prepaid")).await; // Feb 1 + 30d: after T

    let (status, v) = h.get_as(AUDITOR, "/v1/deletions?before=2026-03-01T00:00:00Z").await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let list = v["deletions"].as_array().unwrap();
    let ids: Vec<&str> = list.iter().map(|d| d["resource"].as_str().unwrap()).collect();
    assert_eq!(ids, vec!["held", "term", "exp"], "ordered by deadline, 'late' excluded");
    let exp = &list[2];
    assert_eq!(exp["cause"], "expiry");
    assert_eq!(exp["deadline"], "2026-02-16T00:00:00Z");
    assert_eq!(exp["projected"], true);
    let ecs_version = retentiond::config::load(&h.config_path()).unwrap().products["ecs"].version.clone();
    assert_eq!(exp["policy_version"], ecs_version.as_str(), "a projected deadline names the policy in force");
    assert_eq!(list[1]["cause"], "termination");
    assert_eq!(list[1]["projected"], false);
    assert_eq!(list[0]["blockers"], json!(["hold:court-1"]));

    let (status, _) = h.post_as(OPERATOR, "/v1/admin/pause", &json!({})).await;
    assert_eq!(status, StatusCode::OK);
    let (_, v) = h.get_as(AUDITOR, "/v1/deletions?before=2026-03-01T00:00:00Z").await;
    assert_eq!(v["deletions"][1]["blockers"], json!(["paused"]));
    let (status, v) = h.get_as(AUDITOR, "/v1/deletions?before=soon").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(v["field"], "before");
}

/// Pausing stops every deletion until resumed; the deadline is kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_stops_deletions_until_resumed() {
    let h = start().await;
    let data = h.make_data("t1", "r1");
    h.apply(create("r1", "t1", "ecs", "prepaid")).await;
    let (status, _) = h.post_as(INGEST, "/v1/admin/pause", &json!({})).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = h.post_as(OPERATOR, "/v1/admin/pause", &json!({})).await;
    assert_eq!(status, StatusCode::OK);
    h.set_clock("2026-03-01T00:00:00Z").await;
    assert!(data.exists());
    assert_eq!(h.resource("r1").await["state"], "retained");
    let (status, _) = h.post_as(OPERATOR, "/v1/admin/resume", &json!({})).await;
    assert_eq!(status, StatusCode::OK);
    h.advance("0s").await;
    assert!(!data.exists());
}

/// The hold scenario gives the same outcome with a restart after any step.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lifecycle_survives_a_restart_at_any_step() {
    type Step = fn(&Harness) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>>;
    let steps: Vec<Step> = vec![
        |h| Box::pin(async move { h.apply(create("r1", "t1", "db", "postpaid")).await }),
        |h| {
            Box::pin(
                async move { h.apply(event("a", "arrears.started", T0, "t1", None, json!({"amount": "50"}))).await },
            )
        },
        |h| {
            Box::pin(async move {
                h.set_clock("2026-01-05T00:00:00Z").await;
            })
        },
        |h| {
            Box::pin(async move {
                operator(h, hold("h", "2026-01-05T00:00:00Z", "t1", Some("r1"), "k", "Court", "x")).await;
            })
        },
        |h| {
            Box::pin(async move {
                h.set_clock("2026-02-01T00:00:00Z").await;
            })
        },
        |h| {
            Box::pin(async move {
                operator(
                    h,
                    event("hr", "hold.released", "2026-02-01T00:00:00Z", "t1", Some("r1"), json!({"hold_id": "k"})),
                )
                .await;
            })
        },
        |h| {
            Box::pin(async move {
                h.advance("23h").await;
            })
        },
        |h| {
            Box::pin(async move {
                h.advance("1h").await;
            })
        },
    ];
    let mut outcomes = Vec::new();
    for restart_after in 0..=steps.len() {
        let mut h = start().await;
        let data = h.make_data("t1", "r1");
        let mut snapshots = Vec::new();
        for (i, step) in steps.iter().enumerate() {
            step(&h).await;
            if i + 1 == restart_after {
                h.restart().await;
            }
            snapshots.push((data.exists(), h.resource("r1").await["state"].clone()));
        }
        h.verify_audit();
        outcomes.push(snapshots);
    }
    let expected = &outcomes[0];
    assert_eq!(expected.last().unwrap(), &(false, json!("purged")));
    assert_eq!(expected[6], (true, json!("retained")), "23h after the release: still kept");
    for (i, o) in outcomes.iter().enumerate() {
        assert_eq!(o, expected, "restart after step {i} changed the outcome");
    }
}

/// Event time within one request: a replayed history (an old creation whose
/// term ended long ago, then the renewal made before that term end) keeps
/// the resource, as it would have in order. Found in review: each event used
/// to be advanced before the next was read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_history_in_one_request_gives_the_in_order_result() {
    let h = start().await;
    let data = h.make_data("t1", "r1");
    let res = h
        .events(json!([
            {"event_id":"c1","type":"resource.created","at":"2025-01-01T00:00:00Z","tenant":"t1","resource":"r1",
             "product":"ecs","billing":"prepaid","term_end":"2025-06-01T00:00:00Z"},
            {"event_id":"n1","type":"resource.renewed","at":"2025-05-20T00:00:00Z","tenant":"t1","resource":"r1",
             "term_end":"2027-01-01T00:00:00Z"}
        ]))
        .await;
    assert!(res.iter().all(|r| r["status"] == "applied"), "{res:?}");
    h.advance("0s").await;
    assert!(data.exists());
    assert_eq!(h.resource("r1").await["state"], "active");
    assert!(h.audit_of("deletion.scheduled", "r1").is_empty());
}

//! `GET /metrics`: the numbers an operator watches, checked against a real
//! scenario run on the manual clock (product-spec §4; issue "Metrics and logs").

mod common;

use common::*;
use reqwest::StatusCode;
use retentiond::time::parse_rfc3339;
use serde_json::{json, Value};

/// Products over three stores: `primary` (fs, works), `broken` (an fs cache
/// store whose root does not exist: every call fails) and `snapshots` (a
/// backup store whose command always succeeds, so backups are restricted).
fn config() -> String {
    let extra = r#"
[stores.broken]
class = "cache"
executor = { kind = "fs", root = "missing-volume", path = "{resource}" }

[stores.snapshots]
class = "backup"
purge = "at_expiry"
executor = { kind = "command", argv = ["/usr/bin/true", "{action}", "{resource}", "{copy}"], timeout = "10s" }

[products.db]
stores = ["primary", "snapshots"]
buffer = { expiry = "15d", arrears = "15d", termination = "15d" }

[products.flaky]
stores = ["primary", "broken"]
buffer = { expiry = "15d", arrears = "15d", termination = "15d" }
"#;
    base_config(extra).replace("state_dir = \"state\"", "state_dir = \"state\"\nmax_attempts = 2")
}

fn create(id: &str, product: &str, term_end: &str) -> Value {
    json!({"event_id": format!("c-{id}"), "type": "resource.created", "at": T0, "tenant": "t1", "resource": id,
           "product": product, "billing": "prepaid", "term_end": term_end})
}

/// Scrapes `/metrics` as the auditor; returns the text after checking the
/// status and content type.
async fn scrape(h: &Harness) -> String {
    let resp = h.client.get(format!("{}/metrics", h.base)).bearer_auth(AUDITOR).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let ct = resp.headers()["content-type"].to_str().unwrap().to_string();
    assert_eq!(ct, "text/plain; version=0.0.4; charset=utf-8");
    resp.text().await.unwrap()
}

/// The value of one series, spelled as in the exposition
/// (`name{label="value",...}`), or None when there is no such sample.
fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit_once(' '))
        .find(|(s, _)| *s == series)
        .map(|(_, v)| v.parse().unwrap_or_else(|_| panic!("bad value for {series}")))
}

/// Like [`metric`], failing when the series is absent.
fn get(text: &str, series: &str) -> f64 {
    metric(text, series).unwrap_or_else(|| panic!("no series {series} in\n{text}"))
}

fn states(text: &str) -> [f64; 5] {
    ["active", "retained", "deleting", "deleted", "purged"]
        .map(|s| get(text, &format!("retentiond_resources{{state=\"{s}\"}}")))
}

fn unix(t: &str) -> f64 {
    parse_rfc3339(t).unwrap().timestamp_millis() as f64 / 1000.0
}

/// The executor latency histogram's count for one store and action, after
/// checking that its buckets are cumulative and end in the count.
fn histogram_count(text: &str, store: &str, action: &str) -> f64 {
    let h = "retentiond_executor_call_duration_seconds";
    let labels = format!("store=\"{store}\",action=\"{action}\"");
    let count = get(text, &format!("{h}_count{{{labels}}}"));
    let mut last = 0.0;
    for le in ["0.01", "0.05", "0.1", "0.5", "1", "5", "30", "120", "600", "+Inf"] {
        let b = get(text, &format!("{h}_bucket{{{labels},le=\"{le}\"}}"));
        assert!(b >= last, "{store}/{action}: bucket le={le} falls");
        last = b;
    }
    assert_eq!(last, count, "{store}/{action}: +Inf bucket is the count");
    assert!(get(text, &format!("{h}_sum{{{labels}}}")) >= 0.0);
    count
}

/// A day in the life of the daemon, read from `/metrics`: events by status,
/// resources by state, deletions by outcome, executor calls, retries up to a
/// stuck copy, restricted backups, deadlines and the audit head.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_follow_a_real_scenario() {
    let h = Harness::with_config(&config()).await;

    // 5 active for long, 3 that will be retained at the scrape, 2 with
    // backups that end restricted, 1 whose cache store always fails, and
    // 4 the tenant releases at once.
    let mut creates = Vec::new();
    for i in 1..=5 {
        creates.push(create(&format!("a{i}"), "ecs", "2026-06-01T00:00:00Z"));
    }
    for i in 1..=3 {
        creates.push(create(&format!("k{i}"), "ecs", "2026-02-10T00:00:00Z"));
    }
    for id in ["d1", "d2"] {
        creates.push(create(id, "db", "2026-02-01T00:00:00Z"));
    }
    creates.push(create("f1", "flaky", "2026-02-01T00:00:00Z"));
    let mut releases = Vec::new();
    for i in 1..=4 {
        let id = format!("p{i}");
        creates.push(create(&id, "ecs", "2026-06-01T00:00:00Z"));
        releases.push(
            json!({"event_id": format!("x-{id}"), "type": "resource.released", "at": T0, "tenant": "t1", "resource": id}),
        );
    }
    let data: Vec<_> = ["d1", "d2", "f1", "p1", "p2", "p3", "p4"].iter().map(|id| h.make_data("t1", id)).collect();
    let results = h.events(json!(creates)).await;
    assert!(results.iter().all(|r| r["status"] == "applied"), "{results:?}");
    for id in ["d1", "d2"] {
        h.apply(json!({"event_id": format!("b-{id}"), "type": "backup.created", "at": T0, "tenant": "t1",
                       "resource": id, "store": "snapshots", "copy": format!("snap-{id}"),
                       "expires_at": "2027-01-01T00:00:00Z"}))
            .await;
    }
    let results = h.events(json!(releases)).await;
    assert!(results.iter().all(|r| r["status"] == "applied"), "{results:?}");
    h.advance("0s").await; // the released resources' deletions have run

    // A duplicate, two rejections (a purged resource, an unknown one) and
    // two requests refused with 400 (a bad id; not JSON).
    assert_eq!(h.events(create("a1", "ecs", "2026-06-01T00:00:00Z")).await[0]["status"], "duplicate");
    for (eid, id) in [("r-p1", "p1"), ("r-ghost", "ghost")] {
        let renew = json!({"event_id": eid, "type": "resource.renewed", "at": T0, "tenant": "t1", "resource": id,
                           "term_end": "2027-01-01T00:00:00Z"});
        assert_eq!(h.events(renew).await[0]["status"], "rejected");
    }
    let (status, _) = h.post_as(INGEST, "/v1/events", &create("bad/id", "ecs", "2026-06-01T00:00:00Z")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = h.post_raw(INGEST, "/v1/events", Some("application/json"), "{not json").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let m = scrape(&h).await;
    let ev = |t: &str, s: &str| get(&m, &format!("retentiond_events_total{{type=\"{t}\",status=\"{s}\"}}"));
    assert_eq!(ev("resource.created", "applied"), 15.0);
    assert_eq!(ev("resource.released", "applied"), 4.0);
    assert_eq!(ev("backup.created", "applied"), 2.0);
    assert_eq!(ev("resource.created", "duplicate"), 1.0);
    assert_eq!(ev("resource.renewed", "rejected"), 2.0);
    assert_eq!(ev("resource.created", "invalid"), 1.0);
    assert_eq!(ev("unknown", "invalid"), 1.0);
    assert_eq!(metric(&m, "retentiond_events_total{type=\"resource.renewed\",status=\"applied\"}"), None);
    assert_eq!(states(&m), [11.0, 0.0, 0.0, 0.0, 4.0]);
    assert_eq!(get(&m, "retentiond_resources_purged_total"), 4.0);
    assert_eq!(get(&m, "retentiond_deletions_total{outcome=\"deleted\"}"), 4.0);
    assert_eq!(histogram_count(&m, "primary", "delete"), 4.0);
    // Every resource still active is due at its renewal reminder, 7 days
    // (the default) before the renewal cutoff, itself 7 days before the
    // term end; the earliest term ends 1 February.
    assert_eq!(get(&m, "retentiond_pending_deadlines"), 11.0);
    assert_eq!(get(&m, "retentiond_next_deadline_timestamp_seconds"), unix("2026-01-18T00:00:00Z"));

    // Past the buffer of the 1 February term ends: d1, d2 deleted with
    // their backups restricted, f1's cache copy fails, then fails again and
    // is stuck (max_attempts = 2).
    h.set_clock("2026-02-16T00:00:00Z").await;
    let broken = |r: &Value| r["copies"].as_array().unwrap().iter().find(|c| c["store"] == "broken").unwrap().clone();
    let retry_at = broken(&h.resource("f1").await)["next_attempt_at"].as_str().expect("a retry").to_string();
    h.set_clock(&retry_at).await;
    assert_eq!(broken(&h.resource("f1").await)["stuck"], true);
    assert!(data.iter().all(|p| !p.exists()), "every primary copy is gone");

    let m = scrape(&h).await;
    assert_eq!(states(&m), [5.0, 3.0, 1.0, 2.0, 4.0], "active, retained, deleting, deleted, purged");
    let del = |o: &str| get(&m, &format!("retentiond_deletions_total{{outcome=\"{o}\"}}"));
    assert_eq!(
        [
            del("deleted"),
            del("restricted"),
            del("purged"),
            del("removed_by_backup_system"),
            del("failed"),
            del("stuck")
        ],
        [7.0, 2.0, 0.0, 0.0, 1.0, 1.0]
    );
    assert_eq!(get(&m, "retentiond_resources_purged_total"), 4.0);
    assert_eq!(get(&m, "retentiond_retries_total{by=\"backoff\"}"), 1.0);
    assert_eq!(get(&m, "retentiond_retries_total{by=\"operator\"}"), 0.0);
    assert_eq!(get(&m, "retentiond_copies_stuck"), 1.0);
    assert_eq!(get(&m, "retentiond_copies_restricted"), 2.0);
    let calls = |s: &str, a: &str, r: &str| {
        metric(&m, &format!("retentiond_executor_calls_total{{store=\"{s}\",action=\"{a}\",result=\"{r}\"}}"))
    };
    assert_eq!(calls("primary", "delete", "ok"), Some(7.0));
    assert_eq!(calls("primary", "delete", "error"), Some(0.0));
    assert_eq!(calls("snapshots", "restrict", "ok"), Some(2.0));
    assert_eq!(calls("broken", "delete", "error"), Some(2.0));
    assert_eq!(calls("snapshots", "purge", "ok"), None, "no purge has been called");
    assert_eq!(histogram_count(&m, "primary", "delete"), 7.0);
    assert_eq!(histogram_count(&m, "snapshots", "restrict"), 2.0);
    assert_eq!(histogram_count(&m, "broken", "delete"), 2.0);
    // Due: 5 term ends, 3 retained deletions, 2 backup expiries; the stuck
    // copy waits for an operator, not a deadline. The earliest is the
    // retained resources' deletion.
    assert_eq!(get(&m, "retentiond_pending_deadlines"), 10.0);
    let k1 = h.resource("k1").await;
    assert_eq!(k1["state"], "retained");
    let next = get(&m, "retentiond_next_deadline_timestamp_seconds");
    assert_eq!(next, unix(k1["delete_after"].as_str().unwrap()));
    assert_eq!(next, unix("2026-02-25T00:00:00Z"));
    // The audit head is the last record served by the API (and in the file).
    let (_, audit) = h.get_as(AUDITOR, "/v1/audit?after_seq=0&limit=10000").await;
    let last = audit["records"].as_array().unwrap().last().unwrap()["seq"].as_f64().unwrap();
    assert_eq!(get(&m, "retentiond_audit_head_seq"), last);
    assert_eq!(last, h.audit().len() as f64);
    for flag in ["paused", "guard_tripped", "clock_anomaly", "dry_run"] {
        assert_eq!(get(&m, &format!("retentiond_{flag}")), 0.0, "{flag}");
    }
    assert_eq!(get(&m, &format!("retentiond_build_info{{version=\"{}\"}}", env!("CARGO_PKG_VERSION"))), 1.0);

    // Pause shows; an operator retry counts, fails again (a retry is
    // scheduled: the next deadline), and the copy is no longer stuck.
    assert_eq!(h.post_as(OPERATOR, "/v1/admin/pause", &json!({})).await.0, StatusCode::OK);
    assert_eq!(get(&scrape(&h).await, "retentiond_paused"), 1.0);
    assert_eq!(h.post_as(OPERATOR, "/v1/admin/resume", &json!({})).await.0, StatusCode::OK);
    let (status, v) = h.post_as(OPERATOR, "/v1/admin/retry", &json!({"resource": "f1"})).await;
    assert_eq!((status, v["retried"].as_u64()), (StatusCode::OK, Some(1)), "{v}");
    h.advance("0s").await;
    let m = scrape(&h).await;
    assert_eq!(get(&m, "retentiond_paused"), 0.0);
    assert_eq!(get(&m, "retentiond_retries_total{by=\"operator\"}"), 1.0);
    assert_eq!(get(&m, "retentiond_retries_total{by=\"backoff\"}"), 2.0);
    assert_eq!(get(&m, "retentiond_deletions_total{outcome=\"failed\"}"), 2.0);
    assert_eq!(histogram_count(&m, "broken", "delete"), 3.0);
    assert_eq!(get(&m, "retentiond_copies_stuck"), 0.0);
    assert_eq!(get(&m, "retentiond_pending_deadlines"), 11.0);
    let retry_at = broken(&h.resource("f1").await)["next_attempt_at"].as_str().expect("a retry").to_string();
    assert_eq!(get(&m, "retentiond_next_deadline_timestamp_seconds"), unix(&retry_at));

    // A clock set by hand shows as an anomaly.
    h.jump_clock("2026-09-01T00:00:00Z").await;
    assert_eq!(get(&scrape(&h).await, "retentiond_clock_anomaly"), 1.0);
}

/// No deadline: the next-deadline gauge has no sample (its family is still
/// declared), and every state reads 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_daemon_has_zeros_and_no_next_deadline() {
    let h = Harness::start().await;
    let m = scrape(&h).await;
    assert_eq!(states(&m), [0.0; 5]);
    assert_eq!(get(&m, "retentiond_pending_deadlines"), 0.0);
    assert!(m.contains("# TYPE retentiond_next_deadline_timestamp_seconds gauge\n"), "{m}");
    assert_eq!(metric(&m, "retentiond_next_deadline_timestamp_seconds"), None);
    assert_eq!(get(&m, "retentiond_audit_head_seq"), 0.0);
}

/// `retentiond_dry_run` follows the config in force: 1 from a dry-run
/// start, 0 once a reload switches dry run off (the alert rules read it to
/// keep quiet about deadlines a dry run leaves due).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_shows_as_the_config_in_force_says() {
    let dry = base_config("").replace("[stores.primary]", "[safety]\ndry_run = true\n\n[stores.primary]");
    let h = Harness::with_config(&dry).await;
    assert_eq!(get(&scrape(&h).await, "retentiond_dry_run"), 1.0);
    std::fs::write(h.config_path(), base_config("")).unwrap();
    h.daemon.as_ref().unwrap().reload().await.expect("reload accepted");
    assert_eq!(get(&scrape(&h).await, "retentiond_dry_run"), 0.0);
}

/// Read permission: admin, operator and auditor; 401 without a valid
/// token, 403 for the billing feed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_need_read_permission() {
    let h = Harness::start().await;
    let url = format!("{}/metrics", h.base);
    let resp = h.client.get(&url).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let resp = h.client.get(&url).bearer_auth("not-a-token").send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let resp = h.client.get(&url).bearer_auth(INGEST).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    for token in [ADMIN, OPERATOR, AUDITOR] {
        let resp = h.client.get(&url).bearer_auth(token).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{token}");
    }
}

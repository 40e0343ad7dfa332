//! Reloads and policy versions (issue 5; domain-rules §5.2): a reload never
//! makes a pending deadline earlier on its own; applying a new policy to
//! running buffers is an explicit operator action that never brings a
//! deletion closer than `safety.min_notice`. And the periodic sweeps,
//! called directly (tokio-cron-scheduler cannot run on a manual clock).

mod common;

use common::*;
use retentiond::engine::SweepKind;
use serde_json::{json, Value};

async fn reload(h: &Harness, config_text: &str) -> retentiond::engine::ReloadReport {
    std::fs::write(h.config_path(), config_text).unwrap();
    h.daemon.as_ref().unwrap().reload().await.expect("reload accepted")
}

fn with_min_notice(extra: &str, min_notice: &str) -> String {
    format!("{}\n[safety]\nmin_notice = \"{min_notice}\"\n", base_config(extra))
}

async fn apply_policy(h: &Harness, token: &str, product: &str) -> (u16, Value) {
    let (status, v) = h.post_as(token, "/v1/admin/apply-policy", &json!({ "product": product })).await;
    (status.as_u16(), v)
}

#[tokio::test]
async fn a_shorter_buffer_after_reload_never_brings_a_running_deletion_closer() {
    let h = Harness::with_config(&with_min_notice("", "2d")).await;
    h.make_data("t1", "r1");
    h.apply(created("e1", "t1", "r1", "2026-01-31T00:00:00Z")).await;
    h.set_clock("2026-02-01T00:00:00Z").await;
    let before = h.resource("r1").await;
    assert_eq!(before["delete_after"], "2026-02-15T00:00:00Z");
    let v1 = before["history"].to_string();
    assert!(v1.contains("policy"), "{v1}");

    // The product's expiry buffer shrinks from 15 to 5 days.
    let shorter = with_min_notice("", "2d").replacen("expiry = \"15d\"", "expiry = \"5d\"", 1);
    let report = reload(&h, &shorter).await;
    assert_eq!(report.changed, ["ecs"]);
    let after = h.resource("r1").await;
    assert_eq!(after["delete_after"], "2026-02-15T00:00:00Z", "the running buffer keeps its deadline");
    let reloaded = h.audit().into_iter().filter(|r| r["kind"] == "config.reloaded").count();
    assert_eq!(reloaded, 1);

    // Under the new policy it would have gone on 6 February: it does not.
    h.set_clock("2026-02-10T00:00:00Z").await;
    assert!(h.data_path("t1", "r1").exists());
    assert_eq!(h.resource("r1").await["state"], "retained");

    // A buffer that starts after the reload takes the new policy.
    h.make_data("t1", "r2");
    h.apply(json!({"event_id": "e2", "type": "resource.created", "at": "2026-02-10T00:00:00Z", "tenant": "t1",
                   "resource": "r2", "product": "ecs", "billing": "prepaid", "term_end": "2026-02-11T00:00:00Z"}))
        .await;
    h.set_clock("2026-02-11T00:00:00Z").await;
    assert_eq!(h.resource("r2").await["delete_after"], "2026-02-16T00:00:00Z");

    // Applying the policy is an operator's act: not the billing feed's.
    assert_eq!(apply_policy(&h, INGEST, "ecs").await.0, 403);
    let (status, v) = apply_policy(&h, OPERATOR, "nosuch").await;
    assert_eq!((status, v["field"].as_str()), (400, Some("product")), "{v}");

    // Now 11 Feb: r1 would be due on 6 Feb, the notice floor is 13 Feb.
    let (status, v) = apply_policy(&h, OPERATOR, "ecs").await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        v["rescheduled"],
        json!([{"resource": "r1", "from": "2026-02-15T00:00:00Z", "to": "2026-02-13T00:00:00Z"}]),
        "{v}"
    );
    assert_eq!(v["unchanged"], 1, "r2 already runs under the new policy");
    let rescheduled = h.audit_of("deletion.rescheduled", "r1");
    assert_eq!(rescheduled.len(), 1);
    assert_eq!(rescheduled[0]["data"]["policy_version"], v["policy_version"]);
    assert_ne!(rescheduled[0]["data"]["policy_version_from"], v["policy_version"]);

    h.set_clock("2026-02-12T23:59:59Z").await;
    assert!(h.data_path("t1", "r1").exists(), "not before the notice floor");
    h.set_clock("2026-02-13T00:00:00Z").await;
    assert!(!h.data_path("t1", "r1").exists());
    h.verify_audit();
}

#[tokio::test]
async fn a_longer_buffer_applied_moves_the_deletion_later() {
    let h = Harness::start().await;
    h.make_data("t1", "r1");
    h.apply(created("e1", "t1", "r1", "2026-01-31T00:00:00Z")).await;
    h.set_clock("2026-02-01T00:00:00Z").await;
    reload(&h, &base_config("").replacen("expiry = \"15d\"", "expiry = \"40d\"", 1)).await;
    assert_eq!(h.resource("r1").await["delete_after"], "2026-02-15T00:00:00Z");
    let (status, v) = apply_policy(&h, ADMIN, "ecs").await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["rescheduled"][0]["to"], "2026-03-12T00:00:00Z");
    h.set_clock("2026-03-11T23:59:59Z").await;
    assert!(h.data_path("t1", "r1").exists());
    h.set_clock("2026-03-12T00:00:00Z").await;
    assert!(!h.data_path("t1", "r1").exists());
}

#[tokio::test]
async fn a_shorter_arrears_grace_after_reload_does_not_start_the_buffer_sooner() {
    let grace = |g: &str| base_config(&format!("arrears_grace = \"{g}\""));
    let h = Harness::with_config(&grace("3d")).await;
    h.apply(json!({"event_id": "c1", "type": "resource.created", "at": T0, "tenant": "t1", "resource": "p1",
                   "product": "ecs", "billing": "postpaid"}))
        .await;
    h.apply(json!({"event_id": "a1", "type": "arrears.started", "at": T0, "tenant": "t1"})).await;
    reload(&h, &grace("1d")).await;
    h.set_clock("2026-01-03T23:59:59Z").await;
    assert_eq!(h.resource("p1").await["state"], "active", "the grace fixed when the arrears came still runs");
    h.set_clock("2026-01-04T00:00:00Z").await;
    let r = h.resource("p1").await;
    assert_eq!((r["state"].as_str(), r["delete_after"].as_str()), (Some("retained"), Some("2026-01-19T00:00:00Z")));
}

/// Rewrites a stopped daemon's record of `id` through `edit` (which also
/// gives its new due time), as a lost write or an older version would.
fn rewrite_record(
    h: &Harness,
    id: &str,
    edit: impl FnOnce(&mut retentiond::domain::lifecycle::Resource) -> Option<retentiond::time::Timestamp>,
) {
    use retentiond::store::{SledStore, Store, WriteSet};
    let store = SledStore::open(&h.state_dir().join("db"), 8 << 20).unwrap();
    let mut r = store.resource(id).unwrap().unwrap();
    let due = edit(&mut r);
    let mut w = WriteSet::default();
    w.put_resource(r, due);
    store.commit(w).unwrap();
    store.flush().unwrap();
}

/// Erases a resource's entry in the due index, as a lost write would.
fn lose_due_entry(h: &Harness, id: &str) {
    rewrite_record(h, id, |_| None);
}

#[tokio::test]
async fn a_record_from_before_grace_ends_were_stored_keeps_its_grace_after_a_reload() {
    let grace = |g: &str| base_config(&format!("arrears_grace = \"{g}\""));
    let mut h = Harness::with_config(&grace("3d")).await;
    h.apply(json!({"event_id": "c1", "type": "resource.created", "at": T0, "tenant": "t1", "resource": "p1",
                   "product": "ecs", "billing": "postpaid"}))
        .await;
    h.apply(json!({"event_id": "a1", "type": "arrears.started", "at": T0, "tenant": "t1"})).await;
    h.stop().await;
    // As session 1's version wrote it: no grace end stored.
    rewrite_record(&h, "p1", |r| {
        r.arrears.as_mut().unwrap().grace_ends_at = None;
        Some(retentiond::time::parse_rfc3339("2026-01-04T00:00:00Z").unwrap())
    });
    h.start_with(&grace("3d")).await; // fixed at start, under the grace in force
    reload(&h, &grace("1d")).await;
    h.set_clock("2026-01-03T23:59:59Z").await;
    assert_eq!(h.resource("p1").await["state"], "active", "the shorter grace of the reload does not apply");
    h.set_clock("2026-01-04T00:00:00Z").await;
    assert_eq!(h.resource("p1").await["state"], "retained");
}

/// A reload re-derives every due time before it answers (its reconcile
/// read off the engine's thread, issue 11): a lost index entry is back, and
/// the repair audited, by the time the reload returns.
#[tokio::test]
async fn a_reload_answers_once_its_reconcile_has_repaired_every_due_time() {
    let mut h = Harness::start().await;
    h.apply(created("e1", "t1", "r1", "2026-01-31T00:00:00Z")).await;
    h.stop().await;
    lose_due_entry(&h, "r1");
    h.start_with(&base_config("")).await;
    assert_eq!(h.audit().into_iter().filter(|r| r["kind"] == "sweep.repaired").count(), 0);
    reload(&h, &base_config("")).await;
    let repaired: Vec<Value> = h.audit().into_iter().filter(|r| r["kind"] == "sweep.repaired").collect();
    assert_eq!(repaired.len(), 1, "repaired before the reload answered");
    assert_eq!((repaired[0]["data"]["checked"].clone(), repaired[0]["data"]["fixed"].clone()), (json!(1), json!(1)));
    h.set_clock("2026-02-01T00:00:00Z").await;
    assert_eq!(h.resource("r1").await["state"], "retained", "the term end is indexed again");
}

#[tokio::test]
async fn the_reconcile_sweep_repairs_a_lost_deadline() {
    let mut h = Harness::start().await;
    h.make_data("t1", "r1");
    h.apply(created("e1", "t1", "r1", "2026-01-31T00:00:00Z")).await;
    h.stop().await;
    lose_due_entry(&h, "r1");
    h.start_with(&base_config("")).await;

    // Without its index entry the term end passes unnoticed...
    h.set_clock("2026-02-01T00:00:00Z").await;
    assert_eq!(h.resource("r1").await["state"], "active");
    // ...until the sweep re-derives it from the stored state.
    let engine = &h.daemon.as_ref().unwrap().engine;
    let report = engine.sweep(SweepKind::Reconcile).await.unwrap();
    assert_eq!((report.checked, report.fixed), (1, 1));
    assert_eq!(h.resource("r1").await["state"], "retained", "the missed term end ran");
    assert_eq!(h.resource("r1").await["delete_after"], "2026-02-15T00:00:00Z", "anchored at the term end");
    let again = engine.sweep(SweepKind::Reconcile).await.unwrap();
    assert_eq!(again.fixed, 0, "idempotent");
    assert_eq!(h.audit().into_iter().filter(|r| r["kind"] == "sweep.repaired").count(), 1);
    h.set_clock("2026-02-15T00:00:00Z").await;
    assert!(!h.data_path("t1", "r1").exists());
}

/// A product whose backups are restricted at deletion, purged at expiry.
const BACKUPS: &str = r#"
[stores.snap]
class = "backup"
purge = "at_expiry"
executor = { kind = "fs", root = "snap", path = "{resource}/{copy}" }

[products.bk]
stores = ["primary", "snap"]
buffer = { expiry = "15d", arrears = "15d", termination = "15d" }
"#;

/// r1 of product `bk`, its online copy deleted on 15 February, its backup
/// `snap/r1/s1` (expiring at `expires_at`) restricted.
async fn deleted_with_restricted_backup(expires_at: &str) -> Harness {
    let h = Harness::with_config(&base_config(BACKUPS)).await;
    fs_root(&h.dir.path().join("snap"));
    std::fs::create_dir_all(h.dir.path().join("snap/r1/s1")).unwrap();
    h.make_data("t1", "r1");
    h.apply(json!({"event_id": "e1", "type": "resource.created", "at": T0, "tenant": "t1", "resource": "r1",
                   "product": "bk", "billing": "prepaid", "term_end": "2026-01-31T00:00:00Z"}))
        .await;
    h.apply(json!({"event_id": "b1", "type": "backup.created", "at": T0, "tenant": "t1", "resource": "r1",
                   "store": "snap", "copy": "s1", "expires_at": expires_at}))
        .await;
    h.set_clock("2026-02-15T00:00:00Z").await;
    let r = h.resource("r1").await;
    assert_eq!(r["state"], "deleted", "{r}");
    h
}

#[tokio::test]
async fn the_backup_expiry_sweep_purges_an_expired_restricted_copy_left_waiting() {
    let mut h = deleted_with_restricted_backup("2026-04-01T00:00:00Z").await;
    h.stop().await;
    lose_due_entry(&h, "r1");
    h.start_with(&base_config(BACKUPS)).await;

    h.set_clock("2026-04-01T00:00:00Z").await;
    assert!(h.dir.path().join("snap/r1/s1").exists(), "the lost entry left it waiting");
    let engine = &h.daemon.as_ref().unwrap().engine;
    let report = engine.sweep(SweepKind::BackupExpiry).await.unwrap();
    assert_eq!(report.fixed, 1);
    h.advance("0s").await;
    assert!(!h.dir.path().join("snap/r1/s1").exists(), "purged once found");
    assert_eq!(h.resource("r1").await["state"], "purged");
}

#[tokio::test]
async fn a_repeated_arrears_notice_after_reload_keeps_the_grace_fixed_at_first() {
    let grace = |g: &str| base_config(&format!("arrears_grace = \"{g}\""));
    let h = Harness::with_config(&grace("3d")).await;
    h.apply(json!({"event_id": "c1", "type": "resource.created", "at": T0, "tenant": "t1", "resource": "p1",
                   "product": "ecs", "billing": "postpaid"}))
        .await;
    h.apply(json!({"event_id": "a1", "type": "arrears.started", "at": T0, "tenant": "t1", "amount": "10"})).await;
    reload(&h, &grace("1d")).await;
    // Billing re-sends the arrears notice with an updated amount, as feeds do.
    h.set_clock("2026-01-01T12:00:00Z").await;
    h.apply(json!({"event_id": "a2", "type": "arrears.started", "at": "2026-01-01T12:00:00Z", "tenant": "t1",
                   "amount": "12"}))
        .await;
    h.set_clock("2026-01-03T23:59:59Z").await;
    assert_eq!(h.resource("p1").await["state"], "active", "the grace fixed on 1 January still runs");
    h.set_clock("2026-01-04T00:00:00Z").await;
    assert_eq!(h.resource("p1").await["delete_after"], "2026-01-19T00:00:00Z");
}

#[tokio::test]
async fn a_config_without_a_product_still_in_use_is_refused_at_reload_and_start() {
    let other = "\n[products.other]\nstores = [\"primary\"]\nbuffer = { expiry = \"15d\", arrears = \"15d\", termination = \"15d\" }\n";
    let with_ecs = base_config(other);
    let renamed = with_ecs.replacen("[products.ecs]", "[products.ecs_v2]", 1);
    let mut h = Harness::with_config(&with_ecs).await;
    h.make_data("t1", "r1");
    h.apply(created("e1", "t1", "r1", "2026-01-31T00:00:00Z")).await;
    h.set_clock("2026-02-01T00:00:00Z").await;

    // Renaming the product by mistake would leave r1 without a policy:
    // a tenant-wide legal hold placed then could not reach it.
    std::fs::write(h.config_path(), &renamed).unwrap();
    let err = h.daemon.as_ref().unwrap().reload().await.unwrap_err().to_string();
    assert!(err.contains("\"ecs\" (1 resources)"), "{err}");
    let failed = h.audit().into_iter().filter(|r| r["kind"] == "config.reload_failed").count();
    assert_eq!(failed, 1, "the refusal is audited");
    let hold = json!({"event_id": "h1", "type": "hold.placed", "at": "2026-02-01T00:00:00Z", "tenant": "t1",
                      "hold_id": "court-1", "authority": "court", "reason": "litigation"});
    let (status, v) = h.post_as(OPERATOR, "/v1/events", &hold).await;
    assert_eq!(status.as_u16(), 200, "{v}");
    assert_eq!(h.resource("r1").await["holds"][0]["hold_id"], "court-1", "the hold reached the resource");
    h.set_clock("2026-02-20T00:00:00Z").await;
    assert!(h.data_path("t1", "r1").exists(), "held");

    // The same config is refused at start, naming what is missing.
    h.stop().await;
    let config = retentiond::config::parse(&h.config_path(), &renamed).unwrap();
    let err = retentiond::daemon::Daemon::start(config).await.err().expect("refused").to_string();
    assert!(err.contains("products still in use are missing") && err.contains("\"ecs\""), "{err}");
    h.start_with(&with_ecs).await;
    assert_eq!(h.resource("r1").await["state"], "retained");
}

#[tokio::test]
async fn the_backup_expiry_sweep_leaves_a_held_resource_alone() {
    let h = deleted_with_restricted_backup("2026-03-01T00:00:00Z").await;
    let hold = json!({"event_id": "h1", "type": "hold.placed", "at": "2026-02-15T00:00:00Z", "tenant": "t1",
                      "resource": "r1", "hold_id": "h", "authority": "police", "reason": "inquiry"});
    let (status, v) = h.post_as(OPERATOR, "/v1/events", &hold).await;
    assert_eq!(status.as_u16(), 200, "{v}");
    h.set_clock("2026-03-02T00:00:00Z").await;
    let engine = &h.daemon.as_ref().unwrap().engine;
    for _ in 0..3 {
        assert_eq!(engine.sweep(SweepKind::BackupExpiry).await.unwrap().fixed, 0, "nothing to repair under a hold");
        h.advance("1h").await;
    }
    assert!(h.dir.path().join("snap/r1/s1").exists(), "held: not purged");
    assert_eq!(h.audit().into_iter().filter(|r| r["kind"] == "sweep.repaired").count(), 0);
}

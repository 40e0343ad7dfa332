//! Holds past their review date (issue 13; general terms 4.1.5: a review
//! date lifts no hold): the date wakes the engine, the hold is reported
//! once, and nothing it covers is deleted.

use super::*;

/// The review date is one of the times the loop sleeps until; when it
/// comes the hold is reported once (not at the next step, nor after a
/// restart), it stays in force, and the buffer that ran out under it
/// deletes nothing. A tenant-wide hold is reported once for the tenant.
#[tokio::test]
async fn a_hold_past_its_review_date_is_reported_once_and_stays() {
    let rig = Rig::new("");
    let mut engine = rig.open().await;
    let data = rig.data("r1");
    let terminated = event("x1", "resource.terminated", t0(), "r1", json!({"reason": "agreement"}));
    let hold = json!({"hold_id": "court-7", "authority": "District court", "reason": "case 7/2026",
                      "review_at": "2026-01-11T00:00:00Z"});
    let placed = event("h1", "hold.placed", t0(), "r1", hold);
    let mut tenant_wide = event(
        "h2",
        "hold.placed",
        t0(),
        "r1",
        json!({"hold_id": "reg-1", "authority": "Regulator",
                                 "reason": "inquiry", "review_at": "2026-01-21T00:00:00Z"}),
    );
    tenant_wide.resource = None;
    assert_eq!(ingest(&mut engine, vec![created("r1"), terminated, placed, tenant_wide]).await, ["applied"; 4]);

    advance(&mut engine, "9d 23h 59m 50s").await;
    assert_eq!(engine.sleep_duration().unwrap(), std::time::Duration::from_secs(10), "woken at the review date");
    assert!(!kinds(&engine, Some("r1")).contains(&"hold.review_due".to_string()));

    advance(&mut engine, "10s").await;
    let due: Vec<AuditRecord> = audit(&engine).into_iter().filter(|r| r.kind == "hold.review_due").collect();
    assert_eq!(due.len(), 1);
    assert_eq!((due[0].tenant.as_deref(), due[0].resource.as_deref()), (Some("t1"), Some("r1")));
    assert_eq!(due[0].data, json!({"hold_id": "court-7", "scope": "resource", "review_at": "2026-01-11T00:00:00Z"}));
    assert_eq!(rig.store.hold_counts().unwrap(), crate::store::HoldCounts { in_force: 2, review_due: 1 });

    advance(&mut engine, "20d").await;
    let due: Vec<AuditRecord> = audit(&engine).into_iter().filter(|r| r.kind == "hold.review_due").collect();
    assert_eq!(due.len(), 2, "the resource's once, the tenant's once: {due:?}");
    assert_eq!((due[1].resource.as_deref(), &due[1].data["scope"]), (None, &json!("tenant")));
    let r = rig.resource("r1");
    assert_eq!(r.holds.len(), 2, "both holds stay in force");
    assert_eq!(r.state, State::Retained, "the buffer ran out 15 days ago: held, not deleted");
    assert_eq!(exists(&data), [true, true]);

    drop(engine);
    let mut engine = rig.open().await;
    advance(&mut engine, "1d").await;
    assert_eq!(audit(&engine).iter().filter(|r| r.kind == "hold.review_due").count(), 2, "not again after a restart");
    assert_eq!(rig.store.hold_counts().unwrap(), crate::store::HoldCounts { in_force: 2, review_due: 2 });
}

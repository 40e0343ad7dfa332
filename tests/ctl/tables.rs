//! `retentiond ctl`'s tables, whole: layout, column order and wording, for
//! a resource with arrears, a late fee, a termination and a hold. Pinned
//! when ctl moved from reading untyped JSON to the API's wire types, and
//! checked then against the binary built from the code before it.

use super::{ctl, ctl_in, event, policies};
use crate::common::*;
use serde_json::json;

/// What events, resource, forecast, restore-check, audit and status print.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tables_keep_their_layout() {
    let extra = r#"
[stores.cache]
class = "cache"
executor = { kind = "fs", root = "cache", path = "{resource}" }

[products.db]
stores = ["primary", "cache"]
buffer = { expiry = "30d", arrears = "10d", termination = "20d", violation = "0s" }
arrears_grace = "3d"
late_fee_per_day = "0.05%"
"#;
    let h = Harness::with_config(&base_config(extra)).await;
    fs_root(&h.dir.path().join("cache"));
    let versions = policies(&h).await;
    let (db, ecs) = (versions["db"].as_str().unwrap().to_string(), versions["ecs"].as_str().unwrap().to_string());
    let batch = json!([
        event(
            "c1",
            "resource.created",
            "r1",
            json!({"product": "db", "billing": "prepaid", "term_end": "2026-03-01T00:00:00Z"})
        ),
        event("c2", "resource.created", "r2", json!({"product": "db", "billing": "postpaid"})),
        json!({"event_id": "a1", "type": "arrears.started", "at": T0, "tenant": "t1", "amount": "1000.00", "currency": "EUR"}),
        event("x2", "resource.terminated", "r2", json!({"reason": "agreement"})),
        event("h1", "hold.placed", "r1", json!({"hold_id": "court-1", "authority": "Court", "reason": "case 7"})),
        event("h2", "hold.placed", "r1", json!({"hold_id": "court-1", "authority": "Court", "reason": "again"})),
    ]);
    let out = ctl_in(&h, ADMIN, &["events"], &batch.to_string()).await;
    assert_eq!(out.code, 1, "{out:?}");
    assert_eq!(
        out.stdout,
        text(&[
            "EVENT_ID  STATUS    ERROR",
            "c1        applied",
            "c2        applied",
            "a1        applied",
            "x2        applied",
            "h1        applied",
            "h2        rejected  hold \"court-1\" is already placed on \"r1\"",
            "5 applied, 0 duplicate, 1 rejected",
        ])
    );
    h.advance("10d").await;
    let pinned = |args: &'static [&'static str], want: &[&str]| {
        let h = &h;
        let want = text(want).replace("$DB", &db).replace("$ECS", &ecs);
        async move {
            let out = ctl(h, AUDITOR, args).await;
            assert_eq!(out.stdout, want, "ctl {args:?}\n{}", out.stdout);
        }
    };
    pinned(
        &["resource", "r1"],
        &[
            "resource           r1",
            "tenant             t1",
            "product            db (prepaid)",
            "term_end           2026-03-01T00:00:00Z",
            "state              active",
            "cause              -",
            "buffer_started_at  -",
            "delete_after       -",
            "policy_version     -",
            "holds              court-1 (resource, Court: case 7)",
            "",
            "copies:",
            "STORE    COPY     CLASS   STATE    ATTEMPTS  DONE_AT  LAST_ERROR",
            "primary  primary  online  present  0         -        -",
            "cache    cache    cache   present  0         -        -",
            "",
            "history:",
            "AT                    WHAT              DETAIL",
            "2026-01-01T00:00:00Z  resource.created  created (db, prepaid, term ends 2026-03-01T00:00:00Z)",
            "2026-01-01T00:00:00Z  hold.placed       hold court-1 placed by Court",
        ],
    )
    .await;
    pinned(
        &["resource", "r2"],
        &[
            "resource           r2",
            "tenant             t1",
            "product            db (postpaid)",
            "term_end           -",
            "state              retained",
            "cause              arrears",
            "buffer_started_at  2026-01-04T00:00:00Z",
            "delete_after       2026-01-14T00:00:00Z",
            "policy_version     $DB",
            "arrears            since 2026-01-01T00:00:00Z, 1000.00 EUR, late fee so far 5.00",
            "holds              none",
            "",
            "copies:",
            "STORE    COPY     CLASS   STATE    ATTEMPTS  DONE_AT  LAST_ERROR",
            "primary  primary  online  present  0         -        -",
            "cache    cache    cache   present  0         -        -",
            "",
            "history:",
            "AT                    WHAT                 DETAIL",
            "2026-01-01T00:00:00Z  resource.created     created (db, postpaid)",
            "2026-01-01T00:00:00Z  arrears.started      fees in arrears",
            "2026-01-01T00:00:00Z  resource.terminated  terminated: agreement",
            "2026-01-01T00:00:00Z  buffer.started       termination buffer started",
            "2026-01-01T00:00:00Z  deletion.scheduled   termination deletion scheduled for 2026-01-21T00:00:00Z (policy $DB)",
            "2026-01-01T00:00:00Z  notice.skipped       buffer_started notice not sent",
            "2026-01-04T00:00:00Z  buffer.started       arrears buffer started",
            "2026-01-04T00:00:00Z  deletion.scheduled   arrears deletion scheduled for 2026-01-14T00:00:00Z (policy $DB)",
            "2026-01-11T00:00:00Z  notice.skipped       buffer_started notice not sent",
        ],
    )
    .await;
    pinned(
        &["forecast", "--before", "2026-12-31T00:00:00Z"],
        &[
            "deletions due before 2026-12-31T00:00:00Z:",
            "DEADLINE              RESOURCE  TENANT  STATE     CAUSE    PROJECTED  BLOCKERS",
            "2026-01-14T00:00:00Z  r2        t1      retained  arrears  no         -",
            "2026-03-31T00:00:00Z  r1        t1      active    expiry   yes        hold:court-1",
        ],
    )
    .await;
    pinned(&["restore-check", "--tenant", "t1"], &["allowed: no resource of tenant t1 is deleted or restricted"]).await;
    pinned(
        &["audit", "--limit", "3"],
        &[
            "SEQ  AT                    KIND           TENANT  RESOURCE",
            "1    2026-01-01T00:00:00Z  event.applied  t1      r1",
            "2    2026-01-01T00:00:00Z  event.applied  t1      r2",
            "3    2026-01-01T00:00:00Z  event.applied  t1      -",
            "(more may follow: --after-seq 3)",
        ],
    )
    .await;
    pinned(
        &["status"],
        &[
            "clock          manual",
            "clock_anomaly  false",
            "dry_run        false",
            "guard_batch    -",
            "guard_tripped  false",
            "last_reload    none since start",
            "now            2026-01-11T00:00:00Z",
            "paused         false",
            "policies       db $DB, ecs $ECS",
            "ready          true",
        ],
    )
    .await;
}

/// Lines as ctl prints them, each ending in a newline.
fn text(lines: &[&str]) -> String {
    lines.iter().map(|l| format!("{l}\n")).collect()
}

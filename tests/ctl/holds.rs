//! `retentiond ctl hold list` and `hold place --review-at` (issue 13, part
//! 5): every hold in force as a table (or the daemon's JSON), read page by
//! page, with the review date and whether it is due.

use super::{ctl, event, ok};
use crate::common::*;
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hold_list_shows_every_hold_in_force_with_its_review() {
    let h = Harness::start().await;
    h.events(json!([
        event("c1", "resource.created", "r1", json!({"product": "ecs", "billing": "postpaid"})),
        event("c2", "resource.created", "r2", json!({"product": "ecs", "billing": "postpaid"})),
    ]))
    .await;
    let place = ["hold", "place", "--hold-id", "court-1", "--authority", "District court", "--reason", "case 12"];
    let mut args = place.to_vec();
    args.extend(["--resource", "r1", "--at", T0, "--review-at", "2026-02-01T00:00:00Z"]);
    ok(&ctl(&h, OPERATOR, &args).await);
    let mut args = place.to_vec();
    args[3] = "reg-1";
    args[5] = "Regulator";
    args.extend(["--tenant", "t1", "--at", T0]);
    ok(&ctl(&h, OPERATOR, &args).await);
    assert_eq!(h.resource("r1").await["holds"][0]["review_at"], "2026-02-01T00:00:00Z", "--review-at was sent");

    let out = ctl(&h, AUDITOR, &["hold", "list"]).await;
    ok(&out);
    let want = [
        "TENANT  RESOURCE        HOLD_ID  AUTHORITY       PLACED_AT             REVIEW_AT             REASON",
        "t1      (whole tenant)  reg-1    Regulator       2026-01-01T00:00:00Z  -                     case 12",
        "t1      r1              court-1  District court  2026-01-01T00:00:00Z  2026-02-01T00:00:00Z  case 12",
        "2 holds in force, 0 due for review",
    ];
    assert_eq!(out.stdout.lines().map(str::trim_end).collect::<Vec<_>>(), want, "{out:?}");
    let out = ctl(&h, AUDITOR, &["hold", "list", "--authority", "District court", "--tenant", "t1"]).await;
    ok(&out);
    assert!(out.has_row(&["t1", "r1", "court-1"]) && !out.stdout.contains("reg-1"), "{out:?}");

    h.advance("31d").await;
    let out = ctl(&h, AUDITOR, &["hold", "list"]).await;
    assert!(out.has_row(&["t1", "r1", "court-1", "District", "court", T0, "2026-02-01T00:00:00Z", "(DUE)"]), "{out:?}");
    assert!(out.stdout.ends_with("2 holds in force, 1 due for review\n"), "{out:?}");

    // The billing feed may not read holds: the daemon's refusal, exit 1.
    let out = ctl(&h, INGEST, &["hold", "list"]).await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("(403)"), "{out:?}");
}

/// More holds than one page: `ctl hold list` follows `next` to the end and
/// prints them as one list; with --json, as one answer without `next`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hold_list_reads_every_page() {
    let h = Harness::start().await;
    let hold = |i: usize| {
        json!({"event_id": format!("h{i}"), "type": "hold.placed", "at": T0, "tenant": "t-many",
               "hold_id": format!("h{i:04}"), "authority": "Court", "reason": "case"})
    };
    for chunk in (0..1001).map(hold).collect::<Vec<Value>>().chunks(1000) {
        let (status, v) = h.post_as(OPERATOR, "/v1/events", &json!(chunk)).await;
        assert_eq!(status, reqwest::StatusCode::OK, "{v}");
    }
    let out = ctl(&h, AUDITOR, &["hold", "list", "--tenant", "t-many", "--json"]).await;
    ok(&out);
    let v = out.json();
    let ids: Vec<&str> = v["holds"].as_array().unwrap().iter().map(|h| h["hold_id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 1001);
    assert_eq!((ids[0], ids[1000]), ("h0000", "h1000"));
    assert_eq!(v.get("next"), None);
    let out = ctl(&h, AUDITOR, &["hold", "list", "--tenant", "t-many"]).await;
    assert!(out.stdout.ends_with("1001 holds in force, 0 due for review\n"), "{out:?}");
}

//! Holds an operator can manage (issue 13, part 5), through the HTTP API
//! of the daemon running in-process on a manual clock: `GET /v1/holds`
//! lists every hold in force (by tenant and authority, in pages), and a
//! hold placed with `review_at` is reported as due for review once that
//! date passes (an audit record, a metric), while it stays in force
//! (general terms 4.1.5: holds are the exceptions that stop deletion; only
//! a release lifts one).

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};

/// A `hold.placed` event of tenant `t1` (or `tenant`), on `resource` or the
/// whole tenant, with `extra` fields.
fn placed(id: &str, tenant: &str, resource: Option<&str>, hold_id: &str, authority: &str, extra: Value) -> Value {
    let mut v = json!({"event_id": id, "type": "hold.placed", "at": T0, "tenant": tenant, "hold_id": hold_id,
                       "authority": authority, "reason": format!("case of {hold_id}")});
    if let Some(r) = resource {
        v["resource"] = json!(r);
    }
    for (k, x) in extra.as_object().unwrap() {
        v[k] = x.clone();
    }
    v
}

/// `GET /v1/holds?query` as an auditor, answered 200.
async fn holds(h: &Harness, query: &str) -> Value {
    let (status, v) = h.get_as(AUDITOR, &format!("/v1/holds{query}")).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    v
}

/// The (tenant, resource, hold_id) of each hold listed.
fn places(v: &Value) -> Vec<(String, Option<String>, String)> {
    v["holds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            let s = |k: &str| h[k].as_str().map(str::to_string);
            (s("tenant").unwrap(), s("resource"), s("hold_id").unwrap())
        })
        .collect()
}

fn place(tenant: &str, resource: Option<&str>, hold_id: &str) -> (String, Option<String>, String) {
    (tenant.into(), resource.map(Into::into), hold_id.into())
}

/// A sample's value in the metrics text.
async fn metric(h: &Harness, name: &str) -> String {
    let (status, text) = h.get_text(AUDITOR, "/metrics").await;
    assert_eq!(status, StatusCode::OK);
    let line = text.lines().find(|l| l.split(' ').next() == Some(name)).unwrap_or_else(|| panic!("{name}\n{text}"));
    line.rsplit(' ').next().unwrap().to_string()
}

/// Three tenants' resources under holds of two authorities, one on a whole
/// tenant: all listed in order of tenant, resource (the tenant-wide hold
/// first) and hold id; narrowed by tenant, by authority, by both; read in
/// pages that cover the list once; a released hold is gone; only read
/// roles may list.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_hold_in_force_is_listed_by_tenant_and_authority_in_pages() {
    let h = Harness::start().await;
    for (tenant, r) in [("t1", "r1"), ("t1", "r2"), ("t2", "r3")] {
        h.apply(json!({"event_id": format!("c-{r}"), "type": "resource.created", "at": T0, "tenant": tenant,
                       "resource": r, "product": "ecs", "billing": "postpaid"}))
            .await;
    }
    let review = json!({"review_at": "2026-03-01T00:00:00Z"});
    for ev in [
        placed("p1", "t1", Some("r1"), "court-1", "District court", review.clone()),
        placed("p2", "t1", None, "reg-1", "Regulator", json!({})),
        placed("p3", "t1", Some("r2"), "legal-1", "Legal team", json!({})),
        placed("p4", "t2", Some("r3"), "court-2", "District court", json!({})),
    ] {
        h.apply_as(OPERATOR, ev).await;
    }

    let all = holds(&h, "").await;
    let want = [
        place("t1", None, "reg-1"),
        place("t1", Some("r1"), "court-1"),
        place("t1", Some("r2"), "legal-1"),
        place("t2", Some("r3"), "court-2"),
    ];
    assert_eq!(places(&all), want, "{all}");
    assert_eq!(all.get("next"), None, "one page holds them all");
    assert_eq!(
        all["holds"][1],
        json!({"hold_id": "court-1", "tenant": "t1", "resource": "r1", "authority": "District court",
               "reason": "case of court-1", "placed_at": T0, "review_at": "2026-03-01T00:00:00Z",
               "review_due": false})
    );
    assert_eq!(all["holds"][0].get("resource"), None, "a tenant-wide hold names no resource");
    assert_eq!(all["holds"][0].get("review_at"), None);
    // A tenant-wide hold is one hold, not one per resource (r1 and r2 both
    // carry it).
    assert_eq!(h.resource("r2").await["holds"].as_array().unwrap().len(), 2);
    assert_eq!(metric(&h, "retentiond_holds").await, "4");
    assert_eq!(metric(&h, "retentiond_holds_review_due").await, "0");

    assert_eq!(places(&holds(&h, "?tenant=t1").await), want[..3]);
    assert_eq!(places(&holds(&h, "?authority=District%20court").await), [want[1].clone(), want[3].clone()]);
    assert_eq!(places(&holds(&h, "?authority=District%20court&tenant=t2").await), [want[3].clone()]);
    assert_eq!(places(&holds(&h, "?authority=district%20court").await), [], "the authority as placed, exactly");
    assert_eq!(places(&holds(&h, "?tenant=t9").await), []);

    // Pages of one: each names the next, the last none.
    let (mut seen, mut query) = (Vec::new(), "?limit=1".to_string());
    loop {
        let page = holds(&h, &query).await;
        assert_eq!(page["holds"].as_array().unwrap().len(), 1);
        seen.extend(places(&page));
        match page["next"].as_str() {
            Some(next) => query = format!("?limit=1&after={next}"),
            None => break,
        }
    }
    assert_eq!(seen, want);
    let page = holds(&h, "?tenant=t1&limit=2").await;
    assert_eq!(places(&page), want[..2]);
    let rest = holds(&h, &format!("?tenant=t1&limit=2&after={}", page["next"].as_str().unwrap())).await;
    assert_eq!((places(&rest), rest.get("next")), (want[2..3].to_vec(), None));

    // Released: gone from the list (and the resource view).
    h.apply_as(
        OPERATOR,
        json!({"event_id": "u3", "type": "hold.released", "at": T0, "tenant": "t1",
                                "resource": "r2", "hold_id": "legal-1"}),
    )
    .await;
    assert_eq!(places(&holds(&h, "").await), [want[0].clone(), want[1].clone(), want[3].clone()]);
    h.apply_as(
        OPERATOR,
        json!({"event_id": "u2", "type": "hold.released", "at": T0, "tenant": "t1",
                                "hold_id": "reg-1"}),
    )
    .await;
    assert_eq!(places(&holds(&h, "?tenant=t1").await), [want[1].clone()]);
    assert_eq!(metric(&h, "retentiond_holds").await, "2");

    // Auditors, operators and admins read; the billing feed does not.
    for token in [OPERATOR, ADMIN] {
        assert_eq!(h.get_as(token, "/v1/holds").await.0, StatusCode::OK);
    }
    let (status, v) = h.get_as(INGEST, "/v1/holds").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{v}");
    let unauthenticated = h.client.get(format!("{}/v1/holds", h.base)).send().await.unwrap();
    assert_eq!(unauthenticated.status(), StatusCode::UNAUTHORIZED);
}

/// A query the daemon cannot read is a 400 naming the parameter; a
/// `review_at` that is not an RFC 3339 time after the placement is a 400
/// naming it, and nothing of that event is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_queries_and_bad_review_dates_are_refused_naming_the_field() {
    let h = Harness::start().await;
    h.apply(json!({"event_id": "c1", "type": "resource.created", "at": T0, "tenant": "t1", "resource": "r1",
                   "product": "ecs", "billing": "postpaid"}))
        .await;
    for (query, field) in [
        ("?tenant=a/b", "tenant"),
        ("?tenant=", "tenant"),
        ("?authority=", "authority"),
        ("?authority=a%0Ab", "authority"),
        ("?limit=0", "limit"),
        ("?limit=10001", "limit"),
        ("?limit=ten", "limit"),
        ("?after=t1", "after"),
        ("?after=t1,r1,h/1", "after"),
        ("?before=2026-01-01T00:00:00Z", "before"),
    ] {
        let (status, v) = h.get_as(AUDITOR, &format!("/v1/holds{query}")).await;
        assert_eq!((status, v["field"].as_str()), (StatusCode::BAD_REQUEST, Some(field)), "{query}: {v}");
    }
    for (bad, why) in [
        (json!("next spring"), "not a time"),
        (json!("2025-12-31T00:00:00Z"), "before the placement"),
        (json!(T0), "at the placement"),
        (json!(1767225600), "a number"),
    ] {
        let ev = placed("p1", "t1", Some("r1"), "court-1", "Court", json!({"review_at": bad}));
        let (status, v) = h.post_as(OPERATOR, "/v1/events", &ev).await;
        assert_eq!((status, v["field"].as_str()), (StatusCode::BAD_REQUEST, Some("review_at")), "{why}: {v}");
    }
    assert_eq!(places(&holds(&h, "").await), [], "nothing stored");
    assert_eq!(h.resource("r1").await["holds"], json!([]));
    assert!(h.audit().iter().all(|r| r["kind"] != "hold.placed"));
    // The same event with a good date is applied: its id was left free.
    let ev = placed("p1", "t1", Some("r1"), "court-1", "Court", json!({"review_at": "2026-01-02T00:00:00Z"}));
    h.apply_as(OPERATOR, ev).await;
    assert_eq!(h.resource("r1").await["holds"][0]["review_at"], "2026-01-02T00:00:00Z");
}

/// Past its review date a hold stays in force: it is listed as due for
/// review, reported once in the audit trail (not again as time goes on),
/// counted by `retentiond_holds_review_due`, and the resource whose
/// buffer ran out under it is not deleted. A tenant-wide hold's review is
/// reported once for the tenant.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hold_past_its_review_date_stays_and_is_reported_once() {
    let h = Harness::start().await;
    let data = h.make_data("t1", "r1");
    h.apply(json!({"event_id": "c1", "type": "resource.created", "at": T0, "tenant": "t1", "resource": "r1",
                   "product": "ecs", "billing": "postpaid"}))
        .await;
    h.apply_as(
        ADMIN,
        json!({"event_id": "x1", "type": "resource.terminated", "at": T0, "tenant": "t1",
                             "resource": "r1", "reason": "agreement"}),
    )
    .await;
    let review = |at: &str| json!({"review_at": at});
    h.apply_as(OPERATOR, placed("p1", "t1", Some("r1"), "court-1", "District court", review("2026-01-11T00:00:00Z")))
        .await;
    h.apply_as(OPERATOR, placed("p2", "t1", None, "reg-1", "Regulator", review("2026-01-21T00:00:00Z"))).await;

    h.advance("9d 23h").await;
    assert!(holds(&h, "").await["holds"].as_array().unwrap().iter().all(|x| x["review_due"] == false));
    assert!(h.audit().iter().all(|r| r["kind"] != "hold.review_due"));

    h.advance("1h").await;
    let listed = holds(&h, "").await;
    let due: Vec<bool> = listed["holds"].as_array().unwrap().iter().map(|x| x["review_due"] == true).collect();
    assert_eq!(
        (places(&listed), due),
        (vec![place("t1", None, "reg-1"), place("t1", Some("r1"), "court-1")], vec![false, true])
    );
    let reported: Vec<Value> = h.audit().into_iter().filter(|r| r["kind"] == "hold.review_due").collect();
    assert_eq!(reported.len(), 1, "{reported:?}");
    assert_eq!((&reported[0]["tenant"], &reported[0]["resource"]), (&json!("t1"), &json!("r1")));
    assert_eq!(
        reported[0]["data"],
        json!({"hold_id": "court-1", "scope": "resource", "review_at": "2026-01-11T00:00:00Z"})
    );
    assert_eq!(metric(&h, "retentiond_holds_review_due").await, "1");
    assert_eq!(metric(&h, "retentiond_holds").await, "2");

    // The buffer ends on day 15, the tenant's review comes on day 20.
    h.advance("12d").await;
    let reported: Vec<Value> = h.audit().into_iter().filter(|r| r["kind"] == "hold.review_due").collect();
    assert_eq!(reported.len(), 2, "court-1 not again; reg-1 once: {reported:?}");
    assert_eq!((&reported[1]["resource"], &reported[1]["data"]["hold_id"]), (&Value::Null, &json!("reg-1")));
    assert_eq!(metric(&h, "retentiond_holds_review_due").await, "2");
    let r = h.resource("r1").await;
    assert_eq!(r["state"], "retained", "past its buffer and both review dates, held: {r}");
    assert_eq!(r["holds"].as_array().unwrap().len(), 2);
    assert!(data.exists(), "nothing of a held resource is deleted");
    assert!(h.audit().iter().all(|r| r["kind"] != "deletion.started"));

    h.advance("30d").await;
    assert_eq!(h.audit().iter().filter(|r| r["kind"] == "hold.review_due").count(), 2);
    assert!(data.exists());
    h.verify_audit();
}

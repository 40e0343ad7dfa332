//! Issue 11: the forecast read from the indexes gives the answer the full
//! scan gave, on a daemon driven into varied states: prepaid and postpaid,
//! expiry, arrears and termination buffers, projected and running, holds
//! on a resource and on a tenant, a release, a deletion done and one stuck
//! on a failing store, notices due before deletions, deletions paused. The
//! API's pages, read one after another, hold the same deletions.

mod common;

use common::{base_config, created, script, Harness, ADMIN, AUDITOR, OPERATOR};
use retentiond::store::{SledStore, Store};
use retentiond::time::parse_rfc3339;
use serde_json::{json, Value};

/// `ecs` (15-day buffers, a renewal reminder and deletion warnings, no
/// notifier) and `vault`, whose copies sit in a store that always fails.
fn config(tools: &std::path::Path) -> String {
    let fails = script(tools, "fails", "echo boom >&2\nexit 3");
    base_config(&format!(
        r#"
[stores.vault]
class = "online"
executor = {{ kind = "command", argv = ["{}", "{{resource}}"] }}

[products.vault]
stores = ["vault"]
buffer = {{ expiry = "5d", arrears = "5d", termination = "5d" }}
"#,
        fails.display()
    ))
    .replace("state_dir = \"state\"", "state_dir = \"state\"\nmax_attempts = 2")
    .replace(
        "buffer = { expiry = \"15d\", arrears = \"15d\", termination = \"15d\", violation = \"0s\" }",
        "buffer = { expiry = \"15d\", arrears = \"15d\", termination = \"15d\", violation = \"0s\" }\n\
         arrears_grace = \"2d\"\nnotices = [\"7d\", \"1d\"]\nrenewal_reminder = \"7d\"",
    )
}

fn event(id: &str, kind: &str, tenant: &str, resource: Option<&str>, at: &str, extra: Value) -> Value {
    let mut e = json!({"event_id": id, "type": kind, "tenant": tenant, "at": at});
    if let Some(r) = resource {
        e["resource"] = json!(r);
    }
    e.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    e
}

fn postpaid(id: &str, tenant: &str, resource: &str, product: &str) -> Value {
    event(
        id,
        "resource.created",
        tenant,
        Some(resource),
        "2026-01-01T00:00:00Z",
        json!({"product": product, "billing": "postpaid"}),
    )
}

/// The forecast before `before` as served: whole, and read in pages of
/// `limit` (sorted as the whole answer is).
async fn served(h: &Harness, before: &str, limit: Option<usize>) -> Vec<Value> {
    let mut out = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let mut path = format!("/v1/deletions?before={before}");
        if let Some(n) = limit {
            path.push_str(&format!("&limit={n}"));
        }
        if let Some(a) = &after {
            path.push_str(&format!("&after={a}"));
        }
        let (status, v) = h.get_as(AUDITOR, &path).await;
        assert!(status.is_success(), "{path}: {v}");
        let page = v["deletions"].as_array().unwrap().clone();
        if let Some(n) = limit {
            assert!(page.len() <= n, "{v}");
        }
        out.extend(page);
        match v["next"].as_str() {
            Some(next) => after = Some(next.to_string()),
            None => break,
        }
    }
    out.sort_by(|a, b| {
        (a["deadline"].as_str(), a["resource"].as_str()).cmp(&(b["deadline"].as_str(), b["resource"].as_str()))
    });
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_forecast_from_the_indexes_is_the_full_scans_on_varied_states() {
    let tools = tempfile::tempdir().unwrap();
    let mut h = Harness::with_config(&config(tools.path())).await;
    for (i, r) in ["pre-soon", "pre-held", "pre-late"].iter().enumerate() {
        let end = ["2026-01-20T00:00:00Z", "2026-01-10T00:00:00Z", "2026-09-01T00:00:00Z"][i];
        h.apply(created(&format!("c-{r}"), "t1", r, end)).await;
    }
    h.apply(json!([
        postpaid("c-post", "t2", "post-arrears", "ecs"),
        postpaid("c-term", "t1", "post-term", "ecs"),
        postpaid("c-rel", "t1", "post-released", "ecs"),
        postpaid("c-vault", "t1", "vault-stuck", "vault"),
        postpaid("c-t3", "t3", "t3-held", "ecs"),
        postpaid("c-quiet", "t1", "post-quiet", "ecs"),
    ]))
    .await;
    h.set_clock("2026-01-05T00:00:00Z").await;
    h.apply(json!([
        event("a1", "arrears.started", "t2", None, "2026-01-02T00:00:00Z", json!({})),
        event(
            "x1",
            "resource.terminated",
            "t1",
            Some("post-term"),
            "2026-01-03T00:00:00Z",
            json!({"reason": "agreement"})
        ),
        event("x2", "resource.terminated", "t3", Some("t3-held"), "2026-01-03T00:00:00Z", json!({"reason": "attack"})),
        event("rel", "resource.released", "t1", Some("post-released"), "2026-01-05T00:00:00Z", json!({})),
    ]))
    .await;
    h.apply_as(
        ADMIN,
        json!([
            event(
                "x3",
                "resource.terminated",
                "t1",
                Some("vault-stuck"),
                "2026-01-01T00:00:00Z",
                json!({"reason": "violation"})
            ),
            event(
                "h1",
                "hold.placed",
                "t1",
                Some("pre-held"),
                "2026-01-04T00:00:00Z",
                json!({"hold_id": "court-1", "authority": "court", "reason": "case 7"})
            ),
            event(
                "h2",
                "hold.placed",
                "t3",
                None,
                "2026-01-04T00:00:00Z",
                json!({"hold_id": "police-2", "authority": "police", "reason": "case 8"})
            ),
        ]),
    )
    .await;
    // The vault's store fails until its copy is stuck; the held resource's
    // expiry buffer starts under its hold.
    for _ in 0..6 {
        h.advance("1d").await;
    }
    let r = h.resource("vault-stuck").await;
    assert_eq!((r["state"].as_str(), r["copies"][0]["stuck"].as_bool()), (Some("deleting"), Some(true)), "{r}");
    assert_eq!(h.resource("post-released").await["state"], "purged");
    let (status, _) = h.post_as(OPERATOR, "/v1/admin/pause", &json!({})).await;
    assert!(status.is_success());

    let befores = [
        "2025-01-01T00:00:00Z",
        "2026-01-10T00:00:00Z",
        "2026-01-25T00:00:00Z",
        "2026-02-10T00:00:00Z",
        "2027-01-01T00:00:00Z",
    ];
    let mut whole = Vec::new();
    for before in befores {
        let all = served(&h, before, None).await;
        for limit in [1, 2, 5] {
            assert_eq!(served(&h, before, Some(limit)).await, all, "pages of {limit} before {before}");
        }
        whole.push(all);
    }
    let far = whole.last().unwrap();
    let listed: Vec<&str> = far.iter().map(|d| d["resource"].as_str().unwrap()).collect();
    for r in ["pre-soon", "pre-held", "pre-late", "post-arrears", "post-term", "vault-stuck", "t3-held"] {
        assert!(listed.contains(&r), "{r} in {far:?}");
    }
    assert!(!listed.contains(&"post-quiet") && !listed.contains(&"post-released"), "{listed:?}");

    // The same state read with every record decoded, as before issue 11.
    h.stop().await;
    let config = retentiond::config::load(&h.config_path()).unwrap();
    let store = SledStore::open(&h.state_dir().join("db"), 1 << 24).unwrap();
    for (before, served) in befores.iter().zip(&whole) {
        let before = parse_rfc3339(before).unwrap();
        let scan = retentiond::api::forecast::full_scan(&store, &config, before).unwrap();
        assert_eq!(&serde_json::to_value(&scan).unwrap(), &json!(served), "before {before}");
        let (read, next) = retentiond::api::forecast::read(&store, &config, before, None, None).unwrap();
        assert_eq!((read, next), (scan, None));
    }
    assert!(store.products_in_use().unwrap().contains_key("vault"));
}

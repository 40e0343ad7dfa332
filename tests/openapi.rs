//! The OpenAPI description (`GET /v1/openapi.json`, product-spec §4):
//! - it describes exactly the routes and methods the router serves, so a
//!   route added without a description fails here;
//! - it is an OpenAPI 3.1 document (checked against the OpenAPI
//!   Initiative's schema for 3.1, `tests/data/openapi-3.1-schema.json`,
//!   Apache-2.0, as shipped by the openapi-spec-validator package), every
//!   schema in it is a valid JSON Schema and every reference resolves;
//! - a running daemon's answers, errors included, match it;
//! - its schema of events agrees with the daemon's event parser.
//!
//! `contrib/schemathesis/run` fuzzes a running daemon against it.

mod common;

use common::{Harness, ADMIN, AUDITOR, INGEST, OPERATOR, T0};
use reqwest::StatusCode;
use retentiond::api::{description, router, ApiState};
use retentiond::auth::{Role, Tokens};
use retentiond::clock::{Clock, ManualClock};
use retentiond::config::Shared;
use retentiond::store::MemoryStore;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::sync::Arc;
use tower_service::Service;

/// The methods an operation may have in OpenAPI (HEAD aside: axum answers
/// it for every GET, and a description lists GET alone).
const METHODS: [&str; 7] = ["get", "put", "post", "delete", "options", "patch", "trace"];

fn document() -> Value {
    serde_json::to_value(description()).unwrap()
}

/// Every (path, method) the document describes.
fn described(doc: &Value) -> BTreeSet<(String, String)> {
    let mut ops = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for m in METHODS {
            if item.get(m).is_some() {
                ops.insert((path.clone(), m.to_string()));
            }
        }
    }
    ops
}

/// The router of a daemon on the in-memory store, its engine running, and
/// a stop for the engine.
async fn live_router(dir: &std::path::Path) -> (axum::Router, tokio::sync::watch::Sender<bool>) {
    let config = common::engine_config(dir, "");
    let store = Arc::new(MemoryStore::new());
    let audit = retentiond::audit::AuditLog::open(&config.daemon.state_dir, None).unwrap();
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(T0.parse().unwrap()));
    let metrics = Arc::new(retentiond::metrics::Metrics::new());
    let (mut engine, handle) =
        retentiond::engine::Engine::open(store.clone(), audit, clock.clone(), config.clone(), metrics.clone()).unwrap();
    engine.catch_up().await.unwrap();
    let audit = engine.audit_log();
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(engine.run(stop_rx));
    let state = ApiState {
        engine: handle,
        store,
        config: Arc::new(Shared::new((*config).clone())),
        tokens: Arc::new(Shared::new(Tokens::from_plain(&[("admin", Role::Admin, ADMIN)]))),
        clock,
        last_reload: Arc::new(std::sync::Mutex::new(None)),
        audit,
        metrics,
        auth_failures: Arc::new(std::sync::Mutex::new(retentiond::auth::AuthFailures::default())),
    };
    (router(state), stop)
}

/// The paths the router holds, as axum lists them in its `Debug` output
/// (`Node { paths: {RouteId(1): "/v1/events", ..} }`: axum has no other
/// way to list them). Fails rather than find none, should that output change.
fn routed_paths(router: &axum::Router) -> BTreeSet<String> {
    let debug = format!("{router:?}");
    let start = debug.find("path_router").expect("axum's Router debug output names its path_router");
    let end = debug[start..].find("fallback_router").map_or(debug.len(), |i| start + i);
    let mut paths = BTreeSet::new();
    let mut rest = &debug[start..end];
    while let Some(i) = rest.find("RouteId(") {
        rest = &rest[i..];
        let Some(q) = rest.find(": \"") else { break };
        let close = rest[q + 3..].find('"').expect("a quoted path");
        paths.insert(rest[q + 3..q + 3 + close].to_string());
        rest = &rest[q + 3 + close..];
    }
    assert!(!paths.is_empty(), "no path found in the router's debug output (has axum changed it?): {debug}");
    paths
}

/// A route without a description (a bare `.route(..)`, or a method added
/// to a path) fails here, and so does a description of a route that is
/// not served.
#[tokio::test]
async fn the_document_describes_exactly_the_routes_the_router_serves() {
    let dir = tempfile::tempdir().unwrap();
    let (mut app, stop) = live_router(dir.path()).await;
    let doc = document();
    let ops = described(&doc);

    let described_paths: BTreeSet<String> = ops.iter().map(|(p, _)| p.clone()).collect();
    // The console (issue 13.8) is HTML for browsers, outside the API's
    // description by design: every other path must be described.
    let (console, api): (BTreeSet<String>, BTreeSet<String>) =
        routed_paths(&app).into_iter().partition(|p| p == "/console" || p.starts_with("/console/"));
    assert!(console.contains("/console/login"), "the console is routed: {console:?}");
    assert_eq!(api, described_paths, "paths routed (left) and described (right)");
    for must in ["/v1/openapi.json", "/v1/events", "/healthz", "/readyz", "/metrics"] {
        assert!(described_paths.contains(must), "{must} is not described");
    }

    // Every method on every path: described means served (not 405), and
    // the rest is refused with 405.
    for path in &described_paths {
        let uri = path.replace("{id}", "r1");
        for m in METHODS {
            let req = axum::http::Request::builder()
                .method(m.to_uppercase().as_str())
                .uri(&uri)
                .header("authorization", format!("Bearer {ADMIN}"))
                .body(axum::body::Body::empty())
                .unwrap();
            let resp = app.call(req).await.unwrap();
            let status = resp.status();
            if ops.contains(&(path.clone(), m.to_string())) {
                assert_ne!(status, axum::http::StatusCode::METHOD_NOT_ALLOWED, "{m} {path} is described, not served");
                // A handler's 404 says what it did not find; the router's is empty.
                let body = http_body_util::BodyExt::collect(resp.into_body()).await.unwrap().to_bytes();
                assert!(status != axum::http::StatusCode::NOT_FOUND || !body.is_empty(), "{m} {uri}: routed nowhere");
            } else {
                assert_eq!(status, axum::http::StatusCode::METHOD_NOT_ALLOWED, "{m} {path} is served, not described");
            }
        }
    }
    stop.send(true).unwrap();
}

/// The document is OpenAPI 3.1: it validates against the OpenAPI
/// Initiative's schema, each of its schemas is a valid JSON Schema (2020-12,
/// OpenAPI 3.1's dialect), and every `$ref` names something it holds.
#[test]
fn the_document_is_valid_openapi_3_1() {
    let doc = document();
    assert_eq!(doc["openapi"], "3.1.0");
    let oas: Value = serde_json::from_str(include_str!("data/openapi-3.1-schema.json")).unwrap();
    let validator = jsonschema::options().build(&oas).expect("the OpenAPI 3.1 schema compiles");
    let errors: Vec<String> = validator.iter_errors(&doc).map(|e| format!("{} at {}", e, e.instance_path())).collect();
    assert!(errors.is_empty(), "not OpenAPI 3.1:\n{}", errors.join("\n"));

    for (name, schema) in doc["components"]["schemas"].as_object().unwrap() {
        jsonschema::meta::validate(schema).unwrap_or_else(|e| panic!("schema {name} is not a JSON Schema: {e}"));
    }
    let mut refs = Vec::new();
    collect_refs(&doc, &mut refs);
    assert!(refs.len() > 50, "few references: {refs:?}");
    for r in refs {
        let pointer = r.strip_prefix('#').unwrap_or_else(|| panic!("{r}: a reference outside the document"));
        assert!(doc.pointer(pointer).is_some(), "{r} names nothing in the document");
    }

    // The bearer scheme, required by every operation but /healthz.
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"],
        json!({"type": "http", "scheme": "bearer",
        "description": doc["components"]["securitySchemes"]["bearer"]["description"]})
    );
    assert_eq!(doc["security"], json!([{"bearer": []}]));
    for (path, method) in described(&doc) {
        let op = &doc["paths"][&path][&method];
        if path == "/healthz" {
            assert_eq!(op["security"], json!([{}]), "/healthz needs no token");
            continue;
        }
        assert!(op.get("security").is_none(), "{method} {path} overrides the bearer requirement");
        for status in ["401", "429"] {
            assert_eq!(
                op["responses"][status]["content"]["application/json"]["schema"]["$ref"],
                "#/components/schemas/ErrorBody",
                "{method} {path}: {status}"
            );
        }
        assert!(op["responses"]["429"]["headers"]["Retry-After"].is_object(), "{method} {path}");
    }
}

fn collect_refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                match (k.as_str(), v) {
                    ("$ref", Value::String(r)) => out.push(r.clone()),
                    _ => collect_refs(v, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|v| collect_refs(v, out)),
        _ => {}
    }
}

/// A validator for `schema`, in the document's context (its `$ref`s to
/// `#/components/..` resolve), formats checked.
fn validator(doc: &Value, schema: &Value) -> jsonschema::Validator {
    let mut root = schema.clone();
    if let Value::Object(m) = &mut root {
        m.insert("components".into(), doc["components"].clone());
    } else {
        panic!("not a schema object: {schema}");
    }
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .should_validate_formats(true)
        .build(&root)
        .unwrap_or_else(|e| panic!("{schema} does not compile: {e}"))
}

/// Checks an answer against what the document says `method path_template`
/// answers with `status`: the status is listed, the content type is the
/// one listed, and the body matches the schema.
async fn check(doc: &Value, method: &str, template: &str, resp: reqwest::Response) -> Value {
    let status = resp.status().as_u16().to_string();
    let content_type = resp.headers().get("content-type").map(|v| v.to_str().unwrap().to_string());
    let text = resp.text().await.unwrap();
    let op = &doc["paths"][template][method];
    assert!(op.is_object(), "{method} {template} is not described");
    let listed = &op["responses"][&status];
    assert!(listed.is_object(), "{method} {template} answered {status}, which is not described: {text}");
    let content = listed["content"].as_object().expect("described with content");
    let content_type =
        content_type.unwrap_or_else(|| panic!("{method} {template} {status} has no Content-Type: {text:?}"));
    let (media, described) = content.iter().next().unwrap();
    assert_eq!(&content_type, media, "{method} {template} {status}");
    if media != "application/json" {
        assert_eq!(described["schema"]["type"], "string");
        return Value::String(text);
    }
    let body: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{method} {template}: {e}: {text}"));
    let validator = validator(doc, &described["schema"]);
    let errors: Vec<String> = validator.iter_errors(&body).map(|e| format!("{e} at {}", e.instance_path())).collect();
    assert!(errors.is_empty(), "{method} {template} {status} breaks the schema:\n{}\n{body:#}", errors.join("\n"));
    body
}

/// A daemon's answers, successes and errors, match the document it serves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_daemons_answers_match_the_document() {
    let h = Harness::with_config(&common::base_config(
        r#"
[stores.tape]
class = "backup"
executor = { kind = "fs", root = "data", path = "backup/{tenant}/{resource}" }

[products.kept]
stores = ["primary", "tape"]
buffer = { expiry = "15d", arrears = "15d", termination = "15d", violation = "0s" }
"#,
    ))
    .await;
    let c = &h.client;
    let url = |p: &str| format!("{}{p}", h.base);

    // The document served is the one built, and any valid token reads it.
    for token in [INGEST, AUDITOR, OPERATOR, ADMIN] {
        let resp = c.get(url("/v1/openapi.json")).bearer_auth(token).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.headers()["content-type"], "application/json");
        assert_eq!(resp.json::<Value>().await.unwrap(), document(), "as {token}");
    }
    let resp = c.get(url("/v1/openapi.json")).send().await.unwrap();
    let doc = document();
    let refused = check(&doc, "get", "/v1/openapi.json", resp).await;
    assert_eq!(refused["error"], "missing bearer token");

    // Events: applied, and a malformed one (400 naming the field).
    h.make_data("t1", "r1");
    h.make_data("t1", "r2");
    let events = json!([
        {"event_id": "e1", "type": "resource.created", "at": T0, "tenant": "t1", "resource": "r1",
         "product": "kept", "billing": "prepaid", "term_end": "2026-02-01T00:00:00Z"},
        {"event_id": "e2", "type": "resource.created", "at": T0, "tenant": "t1", "resource": "r2",
         "product": "ecs", "billing": "postpaid"},
        {"event_id": "e3", "type": "arrears.started", "at": T0, "tenant": "t1", "resource": "r2",
         "amount": "120.50", "currency": "EUR"},
        {"event_id": "e4", "type": "backup.created", "at": T0, "tenant": "t1", "resource": "r1",
         "store": "tape", "copy": "c1", "expires_at": "2026-06-01T00:00:00Z"},
        {"event_id": "e6", "type": "resource.created", "at": T0, "tenant": "t1", "resource": "r3",
         "product": "ecs", "billing": "postpaid"},
        {"event_id": "e7", "type": "resource.released", "at": T0, "tenant": "t1", "resource": "r3"},
    ]);
    let resp = c.post(url("/v1/events")).bearer_auth(INGEST).json(&events).send().await.unwrap();
    let answer = check(&doc, "post", "/v1/events", resp).await;
    assert!(answer["results"].as_array().unwrap().iter().all(|r| r["status"] == "applied"), "{answer}");
    let hold = json!({"event_id": "e5", "type": "hold.placed", "at": T0, "tenant": "t1", "resource": "r2",
                      "hold_id": "court-1", "authority": "Court", "reason": "case 7"});
    let resp = c.post(url("/v1/events")).bearer_auth(OPERATOR).json(&hold).send().await.unwrap();
    check(&doc, "post", "/v1/events", resp).await;
    let resp = c.post(url("/v1/events")).bearer_auth(INGEST).json(&json!([{"event_id": "x"}])).send().await.unwrap();
    let bad = check(&doc, "post", "/v1/events", resp).await;
    assert_eq!((bad["field"].as_str(), bad["index"].as_u64()), (Some("type"), Some(0)), "{bad}");
    let resp = c.post(url("/v1/events")).bearer_auth(INGEST).body("{}").send().await.unwrap();
    assert_eq!(
        check(&doc, "post", "/v1/events", resp).await["error"].as_str().map(|e| e.contains("Content-Type")),
        Some(true)
    );
    let resp = c.post(url("/v1/events")).bearer_auth(AUDITOR).json(&hold).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    check(&doc, "post", "/v1/events", resp).await;

    // Time passes: r3 (released) is deleted and purged, r1's term ends.
    let resp = c.post(url("/v1/admin/clock")).bearer_auth(ADMIN).json(&json!({"advance": "20d"})).send().await.unwrap();
    check(&doc, "post", "/v1/admin/clock", resp).await;
    let resp =
        c.post(url("/v1/admin/clock")).bearer_auth(ADMIN).json(&json!({"advance": "soon"})).send().await.unwrap();
    assert_eq!(check(&doc, "post", "/v1/admin/clock", resp).await["field"], "advance");

    // Reads: a resource in arrears and held, one with a backup copy, the
    // forecast (whole and by pages), restore checks, the audit trail, a
    // certificate, readiness, metrics.
    for (path, template) in [
        ("/v1/resources/a%20b", "/v1/resources/{id}"),
        ("/v1/resources/%FF", "/v1/resources/{id}"),
        ("/v1/certificates/%FF%FE", "/v1/certificates/{id}"),
        ("/v1/resources/a%20b", "/v1/resources/{id}"),
        ("/v1/resources/%FF", "/v1/resources/{id}"),
        ("/v1/certificates/%FF%FE", "/v1/certificates/{id}"),
        ("/v1/resources/a%20b", "/v1/resources/{id}"),
        ("/v1/resources/%FF", "/v1/resources/{id}"),
        ("/v1/certificates/%FF%FE", "/v1/certificates/{id}"),
        ("/v1/resources/nope", "/v1/resources/{id}"),
        ("/v1/resources/a%20b", "/v1/resources/{id}"),
        ("/v1/resources/%FF", "/v1/resources/{id}"),
        ("/v1/certificates/%FF%FE", "/v1/certificates/{id}"),
        ("/v1/deletions?before=2027-01-01T00:00:00Z", "/v1/deletions"),
        ("/v1/deletions?before=2027-01-01T00:00:00Z&limit=1", "/v1/deletions"),
        ("/v1/deletions?before=tomorrow", "/v1/deletions"),
        ("/v1/restore-check?resource=r1", "/v1/restore-check"),
        ("/v1/restore-check?tenant=t1", "/v1/restore-check"),
        ("/v1/restore-check?colour=red", "/v1/restore-check"),
        ("/v1/audit?after_seq=0&limit=50", "/v1/audit"),
        ("/v1/audit?limit=many", "/v1/audit"),
        ("/v1/certificates/r3", "/v1/certificates/{id}"),
        ("/v1/certificates/r1", "/v1/certificates/{id}"),
        ("/readyz", "/readyz"),
        ("/metrics", "/metrics"),
    ] {
        let resp = c.get(url(path)).bearer_auth(AUDITOR).send().await.unwrap();
        let status = resp.status();
        let body = check(&doc, "get", template, resp).await;
        match path {
            "/v1/resources/r2" => {
                assert_eq!(body["arrears"]["amount"], "120.50", "{body}");
                assert_eq!(body["holds"][0]["hold_id"], "court-1", "{body}");
            }
            "/v1/resources/r3" | "/v1/certificates/r3" => assert_eq!(body["resource"], "r3", "{body}"),
            "/v1/resources/nope" | "/v1/certificates/r1" => assert_eq!(status, StatusCode::NOT_FOUND),
            // Not UTF-8 once decoded: the same error body as any bad id
            // (axum's own refusal is plain text).
            "/v1/resources/a%20b" | "/v1/resources/%FF" | "/v1/certificates/%FF%FE" => {
                assert_eq!((status, &body["field"]), (StatusCode::BAD_REQUEST, &json!("resource")), "{body}")
            }
            "/v1/deletions?before=2027-01-01T00:00:00Z&limit=1" => assert!(body["next"].is_string(), "{body}"),
            "/v1/audit?after_seq=0&limit=50" => assert!(body["records"].as_array().unwrap().len() > 5, "{body}"),
            _ => {}
        }
    }
    let resp = c.get(url("/readyz")).bearer_auth(INGEST).send().await.unwrap();
    assert_eq!(check(&doc, "get", "/readyz", resp).await["error"], "role ingest may not do this");

    // Switches: pause, approve (nothing held), retry, apply-policy; a
    // wrong body and a wrong role.
    for (path, token, body) in [
        ("/v1/admin/pause", OPERATOR, None),
        ("/v1/admin/resume", OPERATOR, None),
        ("/v1/admin/approve", OPERATOR, None),
        ("/v1/admin/approve", OPERATOR, Some(json!({"batch_digest": "ab12"}))),
        ("/v1/admin/retry", OPERATOR, Some(json!({"resource": "r1"}))),
        ("/v1/admin/retry", OPERATOR, Some(json!({"resource": "nope"}))),
        ("/v1/admin/apply-policy", OPERATOR, Some(json!({"product": "ecs"}))),
        ("/v1/admin/apply-policy", OPERATOR, Some(json!({"product": "ecs", "colour": "red"}))),
        ("/v1/admin/clock", OPERATOR, Some(json!({"advance": "1d"}))),
    ] {
        let mut req = c.post(url(path)).bearer_auth(token);
        if let Some(b) = &body {
            req = req.json(b);
        }
        check(&doc, "post", path, req.send().await.unwrap()).await;
    }
}

/// Events: the schema names every type the parser knows, and on a valid
/// event of each type, with a field removed or an unknown one added, the
/// schema and the parser agree (the schema lists exactly the fields each
/// type takes, and which are required).
#[test]
fn the_schema_of_events_agrees_with_the_parser() {
    let doc = document();
    let event = validator(&doc, &json!({"$ref": "#/components/schemas/Event"}));
    let variants = doc["components"]["schemas"]["Event"]["oneOf"].as_array().unwrap();
    let titles: BTreeSet<&str> = variants.iter().map(|v| v["title"].as_str().unwrap()).collect();
    let types: BTreeSet<&str> = retentiond::domain::event::TYPES.into_iter().collect();
    assert_eq!(titles, types, "event types described (left) and parsed (right)");

    let base = |kind: &str| json!({"event_id": "e1", "type": kind, "at": T0, "tenant": "t1", "resource": "r1"});
    let samples = [
        ("resource.created", json!({"product": "ecs", "billing": "prepaid", "term_end": "2026-02-01T00:00:00Z"})),
        ("resource.renewed", json!({"term_end": "2026-03-01T00:00:00Z"})),
        ("resource.terminated", json!({"reason": "provider_outage"})),
        ("resource.reinstated", json!({})),
        ("resource.released", json!({})),
        ("arrears.started", json!({"amount": "120.50", "currency": "EUR"})),
        ("arrears.settled", json!({})),
        (
            "hold.placed",
            json!({"hold_id": "h1", "authority": "Court", "reason": "case 7", "review_at": "2026-06-01T00:00:00Z"}),
        ),
        ("hold.released", json!({"hold_id": "h1"})),
        ("backup.created", json!({"store": "tape", "copy": "c1", "expires_at": "2026-06-01T00:00:00Z"})),
        ("backup.deleted", json!({"store": "tape", "copy": "c1"})),
        ("account.closed", json!({})),
        ("subject.created", json!({"subject": "u1"})),
        (
            "erasure.requested",
            json!({"request_id": "q1", "subject": "u1", "grounds": ["no_consent", "consent_withdrawn"], "verified": true}),
        ),
        ("restriction.requested", json!({"request_id": "q2", "subject": "u1", "verified": false})),
        ("restriction.lifted", json!({"request_id": "q2", "subject": "u1"})),
        ("request.decided", json!({"request_id": "q1", "decision": "refuse", "ground": "impractical"})),
    ];
    assert_eq!(samples.len(), types.len(), "a sample of every type");
    let parses = |v: &Value| retentiond::domain::event::parse_event(v).is_ok();
    // The account's events concern no resource (product-spec §8).
    let personal = [
        "account.closed",
        "subject.created",
        "erasure.requested",
        "restriction.requested",
        "restriction.lifted",
        "request.decided",
    ];
    for (kind, extra) in samples {
        let mut sample = base(kind);
        if personal.contains(&kind) {
            sample.as_object_mut().unwrap().remove("resource");
        }
        sample.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        assert!(parses(&sample), "{sample}");
        assert!(event.is_valid(&sample), "{sample} breaks the schema");

        let variant = variants.iter().find(|v| v["title"] == kind).unwrap();
        let properties: BTreeSet<&String> = variant["properties"].as_object().unwrap().keys().collect();
        let fields: BTreeSet<&String> = sample.as_object().unwrap().keys().collect();
        assert_eq!(properties, fields, "{kind}: described (left), the sample's (right)");
        for field in sample.as_object().unwrap().keys() {
            let mut without = sample.clone();
            without.as_object_mut().unwrap().remove(field);
            // A prepaid creation needs its term end, which the schema
            // cannot say without making a postpaid one need it too.
            if (kind, field.as_str()) == ("resource.created", "term_end") {
                assert!(!parses(&without) && event.is_valid(&without));
                continue;
            }
            // Likewise a refusal needs its ground, an execution has none.
            if (kind, field.as_str()) == ("request.decided", "ground") {
                assert!(!parses(&without) && event.is_valid(&without));
                continue;
            }
            assert_eq!(event.is_valid(&without), parses(&without), "{kind} without {field}");
        }
        let mut more = sample.clone();
        more["colour"] = json!("red");
        assert!(!parses(&more) && !event.is_valid(&more), "{kind} with an unknown field");
    }

    // Ids: what the pattern refuses, the parser refuses too.
    for id in ["", ".", "..", "-rf", "a b", "ä", &"a".repeat(129)] {
        let mut e = base("resource.released");
        e["resource"] = json!(id);
        assert!(!parses(&e) && !event.is_valid(&e), "{id:?}");
    }
    for id in ["...", ".a", "a-", "vm-01.eu_west:2", &"a".repeat(128)] {
        let mut e = base("resource.released");
        e["resource"] = json!(id);
        assert!(parses(&e) && event.is_valid(&e), "{id:?}");
    }
}

//! Access control (issue 5; product-spec §3): every role against every
//! endpoint, allowed or 401/403 as the table says, plus no token, a wrong
//! token, and a daemon without a tokens file.

mod common;

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// Who may call an endpoint.
#[derive(Clone, Copy)]
enum Need {
    /// Nobody is asked for a token.
    Open,
    /// ingest, operator, admin (billing events).
    Billing,
    /// operator, admin (holds, pause, resume, approve, retry, apply-policy).
    Operate,
    /// operator, auditor, admin (reads).
    Read,
    /// admin only (the manual clock).
    Admin,
}

impl Need {
    fn allows(self, role: &str) -> bool {
        match self {
            Need::Open => true,
            Need::Billing => matches!(role, "ingest" | "operator" | "admin"),
            Need::Operate => matches!(role, "operator" | "admin"),
            Need::Read => matches!(role, "operator" | "auditor" | "admin"),
            Need::Admin => role == "admin",
        }
    }
}

/// Every endpoint of product-spec §4 with a body that is valid for it.
fn endpoints() -> Vec<(Method, &'static str, Option<Value>, Need)> {
    let billing = json!({"event_id": "acc-1", "type": "resource.created", "at": T0, "tenant": "t1", "resource": "r1",
                         "product": "ecs", "billing": "postpaid"});
    let hold = json!({"event_id": "acc-2", "type": "hold.placed", "at": T0, "tenant": "t1", "hold_id": "h1",
                      "authority": "court", "reason": "case"});
    vec![
        (Method::GET, "/healthz", None, Need::Open),
        (Method::GET, "/readyz", None, Need::Read),
        (Method::GET, "/metrics", None, Need::Read),
        (Method::POST, "/v1/events", Some(billing), Need::Billing),
        (Method::POST, "/v1/events", Some(hold), Need::Operate),
        (Method::GET, "/v1/resources/r1", None, Need::Read),
        (Method::GET, "/v1/deletions?before=2027-01-01T00:00:00Z", None, Need::Read),
        (Method::GET, "/v1/restore-check?resource=r1", None, Need::Read),
        (Method::GET, "/v1/audit?after_seq=0", None, Need::Read),
        (Method::GET, "/v1/certificates/r1", None, Need::Read),
        (Method::POST, "/v1/admin/pause", Some(json!({})), Need::Operate),
        (Method::POST, "/v1/admin/resume", Some(json!({})), Need::Operate),
        (Method::POST, "/v1/admin/approve", Some(json!({})), Need::Operate),
        (Method::POST, "/v1/admin/retry", Some(json!({"resource": "r1"})), Need::Operate),
        (Method::POST, "/v1/admin/apply-policy", Some(json!({"product": "ecs"})), Need::Operate),
        (Method::POST, "/v1/admin/clock", Some(json!({"advance": "0s"})), Need::Admin),
    ]
}

/// These tests refuse many tokens on purpose, all from 127.0.0.1: the
/// lock-out after repeated failures (tests/http_front.rs) is lifted out of
/// their way.
fn without_lockout(config: &str) -> String {
    config.replace("listen = \"127.0.0.1:0\"\n", "listen = \"127.0.0.1:0\"\nmax_auth_failures = 1000\n")
}

async fn call(h: &Harness, method: &Method, path: &str, body: &Option<Value>, token: Option<&str>) -> StatusCode {
    let mut req = h.client.request(method.clone(), format!("{}{path}", h.base));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(b);
    }
    req.send().await.unwrap().status()
}

#[tokio::test]
async fn every_role_against_every_endpoint() {
    let h = Harness::with_config(&without_lockout(&base_config(""))).await;
    let roles = [("ingest", INGEST), ("operator", OPERATOR), ("auditor", AUDITOR), ("admin", ADMIN)];
    let mut table = Vec::new();
    for (method, path, body, need) in endpoints() {
        let anonymous = call(&h, &method, path, &body, None).await;
        let wrong = call(&h, &method, path, &body, Some("not-a-known-token")).await;
        match need {
            Need::Open => assert_eq!((anonymous, wrong), (StatusCode::OK, StatusCode::OK), "{method} {path}"),
            _ => assert_eq!(
                (anonymous, wrong),
                (StatusCode::UNAUTHORIZED, StatusCode::UNAUTHORIZED),
                "{method} {path} without a valid token"
            ),
        }
        for (role, token) in roles {
            let status = call(&h, &method, path, &body, Some(token)).await;
            let refused = matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN);
            if need.allows(role) {
                assert!(!refused, "{role} must be allowed {method} {path}, got {status}");
                assert!(!status.is_server_error(), "{role} {method} {path}: {status}");
            } else {
                assert_eq!(status, StatusCode::FORBIDDEN, "{role} must be refused {method} {path}");
            }
            table.push(format!("{role:8} {method:4} {path} {}", status.as_u16()));
        }
    }
    // The whole table, for a reader of a failure.
    eprintln!("{}", table.join("\n"));
}

#[tokio::test]
async fn without_a_tokens_file_only_healthz_answers() {
    let text = without_lockout(&base_config("")).replace("tokens_file = \"tokens.toml\"\n", "");
    let h = Harness::with_config(&text).await;
    for (method, path, body, need) in endpoints() {
        let status = call(&h, &method, path, &body, Some(ADMIN)).await;
        match need {
            Need::Open => assert_eq!(status, StatusCode::OK),
            _ => assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {path}"),
        }
    }
    let (status, _) = h.get_as(ADMIN, "/v1/resources/r1").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_reloaded_tokens_file_takes_effect_at_once() {
    let h = Harness::start().await;
    assert_eq!(call(&h, &Method::GET, "/v1/audit", &None, Some(AUDITOR)).await, StatusCode::OK);
    // The auditor's token is revoked: only the admin stays.
    let tokens = std::fs::read_to_string(h.dir.path().join("tokens.toml")).unwrap();
    let kept: Vec<&str> = tokens.split("[[token]]").filter(|t| t.contains("role = \"admin\"")).collect();
    std::fs::write(h.dir.path().join("tokens.toml"), format!("[[token]]{}", kept[0])).unwrap();
    h.daemon.as_ref().unwrap().reload().await.unwrap();
    assert_eq!(call(&h, &Method::GET, "/v1/audit", &None, Some(AUDITOR)).await, StatusCode::UNAUTHORIZED);
    assert_eq!(call(&h, &Method::GET, "/v1/audit", &None, Some(ADMIN)).await, StatusCode::OK);
}

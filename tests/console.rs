//! The read-only console (issue 13, part 8; product-spec §4 `/console/`),
//! fetched as a browser would: log in with a token through the form, then
//! every page with the session cookie only. The daemon runs in-process on a
//! manual clock (tests/common).

mod common;

use common::*;
use reqwest::header::{CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE};
use reqwest::{Client, StatusCode};
use serde_json::json;
use std::path::Path;

/// A client that does not follow redirects, so a test sees each answer.
fn client() -> Client {
    Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

/// `POST /console/login` with `token`; the answer.
async fn login_answer(h: &Harness, token: &str) -> reqwest::Response {
    client()
        .post(format!("{}/console/login", h.base))
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(format!("token={token}"))
        .send()
        .await
        .unwrap()
}

/// Logs in with `token` and gives the `name=value` of the session cookie.
async fn login(h: &Harness, token: &str) -> String {
    let resp = login_answer(h, token).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(resp.headers()[LOCATION], "/console/");
    let set = resp.headers()[SET_COOKIE].to_str().unwrap().to_string();
    set.split(';').next().unwrap().to_string()
}

/// `GET path` with `cookie`: status, and the body's text.
async fn page(h: &Harness, cookie: &str, path: &str) -> (StatusCode, String) {
    let resp = client().get(format!("{}{path}", h.base)).header(COOKIE, cookie).send().await.unwrap();
    (resp.status(), resp.text().await.unwrap())
}

/// `GET path` with `cookie`, answered 200; its HTML.
async fn ok_page(h: &Harness, cookie: &str, path: &str) -> String {
    let (status, body) = page(h, cookie, path).await;
    assert_eq!(status, StatusCode::OK, "{path}: {body}");
    body
}

/// A config with product `ecs` (the fs store) and product `bad`, whose
/// only store's executor always fails, so its copies end stuck.
fn config(tools: &Path) -> String {
    let fail = script(tools, "fail", "echo boom >&2\nexit 3");
    base_config(&format!(
        "[stores.broken]\nclass = \"online\"\nexecutor = {{ kind = \"command\", argv = [\"{}\", \"{{resource}}\"], timeout = \"10s\" }}\n\n\
         [products.bad]\nstores = [\"broken\"]\n\
         buffer = {{ expiry = \"15d\", arrears = \"15d\", termination = \"15d\", violation = \"0s\" }}\n",
        fail.display()
    ))
    .replace("state_dir = \"state\"", "state_dir = \"state\"\nmax_attempts = 2")
}

/// Logged in as an auditor, each page shows what the daemon holds: the
/// forecast's deletions by day, a resource with its copies and history, a
/// hold (its free text escaped), a stuck copy, a purged resource's
/// certificate checked against the log, and the audit feed with a
/// verified chain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_page_shows_what_the_daemon_holds() {
    let tools = tempfile::tempdir().unwrap();
    let h = Harness::with_config(&config(tools.path())).await;
    h.make_data("t1", "r1");
    h.apply(created("e1", "t1", "r1", "2026-02-01T00:00:00Z")).await;
    h.apply(created("e2", "t1", "r-later", "2026-03-01T00:00:00Z")).await;
    let mut bad = created("e3", "t1", "r-stuck", "2026-02-01T00:00:00Z");
    bad["product"] = json!("bad");
    h.apply(bad).await;
    h.apply_as(
        OPERATOR,
        json!({"event_id": "e4", "type": "hold.placed", "at": T0, "tenant": "t2", "hold_id": "h1",
                   "authority": "court & \"co\"", "reason": "<script>alert(1)</script>"}),
    )
    .await;
    h.set_clock("2026-02-16T12:00:00Z").await;
    for _ in 0..5 {
        h.advance("1d").await;
    }
    assert_eq!(h.resource("r1").await["state"], "purged");
    assert_eq!(h.resource("r-stuck").await["copies"][0]["stuck"], true);

    let cookie = login(&h, AUDITOR).await;
    let overview = ok_page(&h, &cookie, "/console/").await;
    assert!(overview.contains("Resources tracked") && overview.contains("Audit head"), "{overview}");

    let forecast = ok_page(&h, &cookie, "/console/forecast").await;
    assert!(forecast.contains("<h2>2026-03-16</h2>"), "r-later's deadline day heads its deletions: {forecast}");
    assert!(forecast.contains("href=\"/console/resources/r-later\""), "{forecast}");
    assert!(!forecast.contains("/console/resources/r1\""), "a purged resource is not forecast: {forecast}");
    let (status, _) = page(&h, &cookie, "/console/forecast?days=0").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let resource = ok_page(&h, &cookie, "/console/resources/r1").await;
    assert!(resource.contains("purged") && resource.contains("deleted"), "state and copy: {resource}");
    assert!(resource.contains("href=\"/console/certificates/r1\""), "{resource}");
    assert!(resource.contains("<h2>History</h2>"), "{resource}");
    let (status, _) = page(&h, &cookie, "/console/resources/nobody").await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let holds = ok_page(&h, &cookie, "/console/holds").await;
    assert!(holds.contains("&lt;script&gt;alert(1)&lt;/script&gt;"), "the reason, escaped: {holds}");
    assert!(holds.contains("court &amp; &quot;co&quot;"), "the authority, escaped: {holds}");
    assert!(!holds.contains("<script"), "no markup from a hold's text: {holds}");

    let stuck = ok_page(&h, &cookie, "/console/stuck").await;
    assert!(stuck.contains("href=\"/console/resources/r-stuck\"") && stuck.contains("broken"), "{stuck}");

    let cert = ok_page(&h, &cookie, "/console/certificates/r1").await;
    assert!(cert.contains("class=\"ok\">Valid: "), "{cert}");
    let (status, _) = page(&h, &cookie, "/console/certificates/r-later").await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let audit = ok_page(&h, &cookie, "/console/audit").await;
    assert!(audit.contains("class=\"ok\">Verified: "), "{audit}");
    assert!(audit.contains("resource.purged"), "{audit}");
}

/// A tampered audit log shows on the feed as a chain that does not verify,
/// and on a certificate as a check that fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_chain_shows_as_broken() {
    let h = Harness::start().await;
    h.make_data("t1", "r1");
    h.apply(created("e1", "t1", "r1", "2026-02-01T00:00:00Z")).await;
    h.set_clock("2026-02-16T12:00:00Z").await;
    h.advance("1d").await;
    assert_eq!(h.resource("r1").await["state"], "purged");
    let log = h.state_dir().join("audit.jsonl");
    let text = std::fs::read_to_string(&log).unwrap();
    std::fs::write(&log, text.replacen("\"t1\"", "\"tX\"", 1)).unwrap();
    let cookie = login(&h, OPERATOR).await;
    let audit = ok_page(&h, &cookie, "/console/audit").await;
    assert!(audit.contains("class=\"bad\">Chain does NOT verify"), "{audit}");
    let cert = ok_page(&h, &cookie, "/console/certificates/r1").await;
    assert!(cert.contains("class=\"bad\">Does not check"), "{cert}");
}

/// Pages need a session; a wrong token is refused, an ingest token may not
/// read; the cookie is HttpOnly and SameSite=Strict; log out ends the
/// session; a login from another site is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_roles_and_logout() {
    let h = Harness::start().await;
    let (status, _) = page(&h, "", "/console/").await;
    assert_eq!(status, StatusCode::SEE_OTHER, "no session: to the login form");
    let (status, body) = page(&h, "", "/console/login").await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("<form method=\"post\" action=\"/console/login\">"), "{body}");
    assert!(!body.contains("<script"), "no JavaScript: {body}");

    let wrong = login_answer(&h, "not-a-token").await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert!(wrong.headers().get(SET_COOKIE).is_none());
    let ingest = login_answer(&h, INGEST).await;
    assert_eq!(ingest.status(), StatusCode::FORBIDDEN, "ingest may not read");
    assert!(ingest.headers().get(SET_COOKIE).is_none());

    let resp = login_answer(&h, AUDITOR).await;
    let set = resp.headers()[SET_COOKIE].to_str().unwrap().to_string();
    assert!(set.contains("HttpOnly") && set.contains("SameSite=Strict") && set.contains("Path=/console/"), "{set}");
    assert!(!set.contains(AUDITOR), "the token is never in the cookie: {set}");
    assert!(!set.contains("Secure"), "plain HTTP here: {set}");
    let cookie = set.split(';').next().unwrap().to_string();
    let (status, body) = page(&h, &cookie, "/console/").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _) = page(&h, "retentiond_console=00ff", "/console/").await;
    assert_eq!(status, StatusCode::SEE_OTHER, "a made-up session is no session");
    let (status, _) = page(&h, &format!("Authorization=Bearer {AUDITOR}"), "/console/").await;
    assert_eq!(status, StatusCode::SEE_OTHER);

    let out = client().post(format!("{}/console/logout", h.base)).header(COOKIE, &cookie).send().await.unwrap();
    assert_eq!(out.status(), StatusCode::SEE_OTHER);
    assert!(out.headers()[SET_COOKIE].to_str().unwrap().contains("Max-Age=0"));
    let (status, _) = page(&h, &cookie, "/console/").await;
    assert_eq!(status, StatusCode::SEE_OTHER, "the session ended at log out");

    let cross = client()
        .post(format!("{}/console/login", h.base))
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header("sec-fetch-site", "cross-site")
        .body(format!("token={AUDITOR}"))
        .send()
        .await
        .unwrap();
    assert_eq!(cross.status(), StatusCode::FORBIDDEN);
    assert!(cross.headers().get(SET_COOKIE).is_none());
}

/// A log cut short (its last records removed, the rest a valid chain)
/// shows as not verifying: the chain must reach the daemon's own head.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_cut_short_shows_as_broken() {
    let h = Harness::start().await;
    h.apply(created("e1", "t1", "r1", "2026-02-01T00:00:00Z")).await;
    h.apply(created("e2", "t1", "r2", "2026-02-01T00:00:00Z")).await;
    let log = h.state_dir().join("audit.jsonl");
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines.len() > 1, "{text}");
    std::fs::write(&log, lines[..lines.len() - 1].iter().map(|l| format!("{l}\n")).collect::<String>()).unwrap();
    let cookie = login(&h, AUDITOR).await;
    let audit = ok_page(&h, &cookie, "/console/audit").await;
    assert!(audit.contains("Chain does NOT verify") && audit.contains("before the daemon"), "{audit}");
}
